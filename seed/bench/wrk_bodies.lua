-- wrk script: POST one pre-built JSON body per request, read from BODIES (one per line).
-- Each thread takes every Nth line, so no body is sent twice (a registration is single-use).
-- Usage: BODIES=file PATH_=/register wrk -s wrk_bodies.lua ...
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local n = tonumber(os.getenv("WRK_THREADS") or "1")
  bodies = {}
  local i = 0
  for line in io.lines(os.getenv("BODIES")) do
    if i % n == id then
      table.insert(bodies, line)
    end
    i = i + 1
  end
  idx = 0
  path = os.getenv("PATH_") or "/register"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  idx = idx + 1
  if idx > #bodies then
    idx = #bodies
  end
  return wrk.format("POST", path, nil, bodies[idx])
end
