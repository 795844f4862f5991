#!/usr/bin/env python3
"""Seed load benchmark: our `ournet-seed` beside the reference Python seed, in one run.

Measures, for each seed pinned to one core (taskset), with wrk pinned to the other:
  * POST /discover: requests per CPU-second of the seed process (utime+stime from /proc) and
    wrk's p99 latency, with 50 routers registered (wrk -t2 -c50, as in issue 4);
  * POST /register: new registrations accepted per second, each with body-signature and PoW
    verification (difficulty 8; bodies pre-built so client-side mining is not measured), in
    consecutive rounds (--rounds, default 2) so a slowdown as the registry grows shows up. A
    round whose wrk run used up its bodies is flagged `bodies_exhausted` (wrk then repeats
    the last body, so its figures include cheap replay refusals); give more --register-bodies.

Both seeds run with probing and registration rate limiting off (every request comes from
127.0.0.1); ours also with its per-IP request limit raised. Usage (from the repo root):

  cargo build --release -p ournet-seed
  python seed/bench/seed_bench.py --ours target/release/ournet-seed --seconds 10 \
      --register-bodies 40000 --rounds 4

Needs `pip install our-network==0.1.0` and Debian's `wrk`.
"""

import argparse
import hashlib
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

HERE = os.path.dirname(os.path.abspath(__file__))
DIFFICULTY = 8
OUR_CONFIG = f"""
pow_difficulty_base = {DIFFICULTY}
pow_difficulty_second = {DIFFICULTY}
pow_difficulty_third_plus = {DIFFICULTY}
adaptive_pow_enabled = false
probe_endpoints = false
rate_limit_enabled = false
correlation_detection_enabled = true
requests_per_second_per_ip = 1e9
request_burst_per_ip = 1e9
max_routers = 1000000
"""


def raw(pub):
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def compact(o):
    return json.dumps(o, sort_keys=True, separators=(",", ":"))


def solve(challenge, rid):
    n = 0
    while int.from_bytes(hashlib.sha256((challenge + str(n) + rid).encode()).digest(), "big") >> (256 - DIFFICULTY):
        n += 1
    return n


def endpoint(i):
    return f"{10 + (i >> 16) % 200}.{(i >> 8) & 255}.{i & 255}.1:8471"


def our_body(conn, i):
    key = Ed25519PrivateKey.generate()
    rid = raw(key.public_key()).hex()
    now = time.time()
    d = {"router_id": rid, "endpoints": [endpoint(i)], "capacity": {"max_connections": 100},
         "regions": [], "features": [], "registered_at": now,
         "onion_key": raw(X25519PrivateKey.generate().public_key()).hex(),
         "link_key": raw(X25519PrivateKey.generate().public_key()).hex(), "published_at": now}
    ref = {k: d[k] for k in ("router_id", "endpoints", "capacity", "regions", "features", "registered_at")}
    d["router_signature"] = key.sign(json.dumps(ref, sort_keys=True).encode()).hex()
    # The full-descriptor signature always covers region and coordinates (null when unset).
    full = dict({k: v for k, v in d.items() if k != "router_signature"}, region=None, coordinates=None)
    d["descriptor_signature"] = key.sign(b"ournet-router-descriptor-v1\n" + compact(full).encode()).hex()
    conn.request("GET", "/challenge")
    ch = json.loads(conn.getresponse().read())["challenge"]
    d["proof_of_work"] = {"challenge": ch, "nonce": solve(ch, rid), "difficulty": DIFFICULTY}
    d["timestamp"] = now
    d["signature"] = key.sign(compact(d).encode()).hex()
    return d


def ref_body(_conn, i):
    key = Ed25519PrivateKey.generate()
    rid = raw(key.public_key()).hex()
    ch = os.urandom(16).hex()
    d = {"router_id": rid, "endpoints": [endpoint(i)],
         "capacity": {"max_connections": 100, "current_connections": 0, "bandwidth_mbps": 100},
         "regions": [], "features": [], "region": None, "coordinates": None,
         "proof_of_work": {"challenge": ch, "nonce": solve(ch, rid), "difficulty": DIFFICULTY},
         "timestamp": time.time()}
    d["signature"] = key.sign(compact(d).encode()).hex()
    return d


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, path, seconds, bodies_file=None, threads=2, conns=50):
    env = dict(os.environ, PATH_=path, WRK_THREADS=str(threads))
    if bodies_file:
        env["BODIES"] = bodies_file
        script = os.path.join(HERE, "wrk_bodies.lua")
    else:
        body = os.path.join(tempfile.gettempdir(), "discover.json")
        with open(body, "w") as f:
            f.write(json.dumps({"protocol_version": "1.0", "requested_count": 5, "preferences": {}}) + "\n")
        env["BODIES"] = body
        script = os.path.join(HERE, "wrk_bodies.lua")
        env["WRK_THREADS"] = "1"  # every thread reuses the single body
    cmd = ["taskset", "-c", "0", "wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency",
           "-s", script, url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return out, cmd


def parse(out):
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return reqs, int(non2xx.group(1)) if non2xx else 0, float(p99.group(1)) * scale


def start(cmd):
    p = subprocess.Popen(["taskset", "-c", "1"] + cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return p


def registry_size(url):
    conn = http.client.HTTPConnection(url.split("//")[1], timeout=120)
    conn.request("GET", "/status")
    return json.loads(conn.getresponse().read())["routers"]["total"]


def measure(name, url, pid, make_body, seconds, n_register, n_rounds):
    conn = http.client.HTTPConnection(url.split("//")[1])
    for i in range(50):
        b = make_body(conn, 1_000_000 + i)
        conn.request("POST", "/register", json.dumps(b), {"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200, (name, r.status, r.read())
        r.read()
    c0 = cpu_seconds(pid)
    out, cmd = wrk(url, "/discover", seconds)
    c1 = cpu_seconds(pid)
    reqs, bad, p99 = parse(out)
    assert bad == 0, out
    # The idle keep-alive connection may have been closed during the wrk run.
    conn = http.client.HTTPConnection(url.split("//")[1])
    rounds = []
    for rnd in range(n_rounds):
        before = registry_size(url)
        bodies = os.path.join(tempfile.gettempdir(), f"bodies-{name}-{rnd}.jsonl")
        with open(bodies, "w") as f:
            for i in range(n_register):
                f.write(json.dumps(make_body(conn, rnd * n_register + i)) + "\n")
        r0 = cpu_seconds(pid)
        rout, rcmd = wrk(url, "/register", seconds, bodies, threads=2, conns=8)
        r1 = cpu_seconds(pid)
        rreqs, rbad, rp99 = parse(rout)
        ok = min(rreqs - rbad, n_register)
        rounds.append({"registry_before": before, "registry_after": registry_size(url),
                       "register_ok": ok, "register_per_s": ok / seconds,
                       "register_per_cpu_s": ok / max(r1 - r0, 1e-9), "register_p99_ms": rp99,
                       "bodies_exhausted": rreqs > n_register})
        conn = http.client.HTTPConnection(url.split("//")[1])
    return {"seed": name, "discover_req": reqs, "discover_cpu_s": c1 - c0,
            "discover_per_cpu_s": reqs / max(c1 - c0, 1e-9), "discover_p99_ms": p99,
            "register_rounds": rounds, "wrk_discover": " ".join(cmd), "wrk_register": " ".join(rcmd)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default="target/release/ournet-seed")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--register-bodies", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "seed.toml")
        open(cfg, "w").write(OUR_CONFIG)
        ours = start([a.ours, "--config", cfg, "--listen", "127.0.0.1:0", "--metrics-listen",
                      "127.0.0.1:0", "--data-dir", os.path.join(tmp, "data")])
        url = None
        for line in ours.stdout:
            if line.startswith("listening on "):
                url = "http://" + line.split()[-1]
                break
        try:
            results.append(measure("ours", url, ours.pid, our_body, a.seconds, a.register_bodies,
                                   a.rounds))
        finally:
            ours.terminate()
            ours.wait()
        port = 18470
        ref = start([sys.executable, "-c",
                     "import asyncio, logging; logging.disable(logging.WARNING);"
                     "from our_network.seed import run_seed_node;"
                     f"asyncio.run(run_seed_node('127.0.0.1', {port}, pow_difficulty_base={DIFFICULTY},"
                     f"pow_difficulty_second={DIFFICULTY}, pow_difficulty_third_plus={DIFFICULTY},"
                     "adaptive_pow_enabled=False, probe_endpoints=False, rate_limit_enabled=False,"
                     "gossip_enabled=False))"])
        try:
            for _ in range(100):
                try:
                    http.client.HTTPConnection("127.0.0.1", port).request("GET", "/health")
                    break
                except OSError:
                    time.sleep(0.1)
            results.append(measure("reference", f"http://127.0.0.1:{port}", ref.pid, ref_body,
                                   a.seconds, a.register_bodies // 4, a.rounds))
        finally:
            ref.terminate()
            ref.wait()
    for r in results:
        print(json.dumps(r))
    o, p = results
    print(f"discover per CPU-second: ours {o['discover_per_cpu_s']:.0f}, reference "
          f"{p['discover_per_cpu_s']:.0f}, ratio {o['discover_per_cpu_s'] / p['discover_per_cpu_s']:.1f}x; "
          f"p99 ours {o['discover_p99_ms']:.2f} ms, reference {p['discover_p99_ms']:.2f} ms")
    for i in range(len(o["register_rounds"])):
        ro, rp = o["register_rounds"][i], p["register_rounds"][i]
        flag = lambda r: " BODIES EXHAUSTED" if r["bodies_exhausted"] else ""
        print(f"register round {i + 1} per second: ours {ro['register_per_s']:.0f} "
              f"({ro['register_per_cpu_s']:.0f}/CPU-s, registry {ro['registry_before']} -> "
              f"{ro['registry_after']}{flag(ro)}), reference {rp['register_per_s']:.0f} "
              f"({rp['register_per_cpu_s']:.0f}/CPU-s, registry {rp['registry_before']} -> "
              f"{rp['registry_after']}{flag(rp)}), ratio "
              f"{ro['register_per_s'] / max(rp['register_per_s'], 1e-9):.1f}x")


if __name__ == "__main__":
    main()
