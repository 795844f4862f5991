#!/usr/bin/env python3
"""Interop: the reference Python DiscoveryClient gets a *verified* router list from our seed.

The reference client (our-network 0.1.0, default verify_signatures=True) rejects every router
the reference seed serves (spec W1). Our seed serves the router's signed descriptor unchanged,
so the same client must accept it. This script:

1. starts `ournet-seed` (path from $OURNET_SEED_BIN, default target/debug/ournet-seed) on
   127.0.0.1 port 0 with a fresh data dir, endpoint probing off and low PoW difficulty;
2. registers three routers *from Python*, independently of our Rust code: it signs the
   descriptor (spaced JSON of the six reference fields, and our labelled compact JSON of the
   full descriptor), fetches a seed challenge, mines the PoW, and signs the body;
3. runs the reference `DiscoveryClient` (verify_signatures=True) and requires all routers
   back, verified, with signature_failures == 0;
4. checks the seed's signature over the whole answer against the seed key it pinned.

Run: python tests/interop/reference_discovery.py   (needs `pip install our-network==0.1.0`)
Exit status 0 and the line "1 passed, 0 failed" on success.
"""

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from our_network.discovery import DiscoveryClient

CONFIG = """
pow_difficulty_base = 8
pow_difficulty_second = 8
pow_difficulty_third_plus = 8
probe_endpoints = false
discover_cache_seconds = 0.0
rate_limit_enabled = false
"""


def raw(pub):
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def compact(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def http(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def solve(challenge, router_id, difficulty):
    nonce = 0
    while True:
        d = hashlib.sha256((challenge + str(nonce) + router_id).encode()).digest()
        if int.from_bytes(d, "big") >> (256 - difficulty) == 0:
            return nonce
        nonce += 1


def register(base, i):
    key = Ed25519PrivateKey.generate()
    router_id = raw(key.public_key()).hex()
    now = time.time()
    desc = {
        "router_id": router_id,
        "endpoints": [f"198.{51 + i}.100.7:8471"],
        "capacity": {"max_connections": 100, "bandwidth_mbps": 100.0},
        "regions": ["eu"],
        "features": ["circuits"],
        "registered_at": now,
        "region": "DE",
        "coordinates": [52.52, 13.405],
        "onion_key": raw(X25519PrivateKey.generate().public_key()).hex(),
        "link_key": raw(X25519PrivateKey.generate().public_key()).hex(),
        "published_at": now,
    }
    reference_part = {k: desc[k] for k in
                      ("router_id", "endpoints", "capacity", "regions", "features", "registered_at")}
    desc["router_signature"] = key.sign(json.dumps(reference_part, sort_keys=True).encode()).hex()
    full = {k: v for k, v in desc.items() if k != "router_signature"}
    label = b"ournet-router-descriptor-v1\n"
    desc["descriptor_signature"] = key.sign(label + compact(full).encode()).hex()
    status, ch = http(base, "GET", "/challenge")
    assert status == 200, ch
    nonce = solve(ch["challenge"], router_id, ch["difficulty"])
    body = dict(desc, proof_of_work={"challenge": ch["challenge"], "nonce": nonce,
                                     "difficulty": ch["difficulty"]}, timestamp=time.time())
    body["signature"] = key.sign(compact(body).encode()).hex()
    status, resp = http(base, "POST", "/register", body)
    assert status == 200 and resp["action"] == "registered", resp
    return router_id


def start_seed(tmp):
    binary = os.environ.get("OURNET_SEED_BIN", "target/debug/ournet-seed")
    cfg = os.path.join(tmp, "seed.toml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    proc = subprocess.Popen(
        [binary, "--config", cfg, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
         "--data-dir", os.path.join(tmp, "data")],
        stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("listening on "):
            return proc, "http://" + line.split()[-1]
    raise RuntimeError("seed exited before it was ready")


def check_list_signature(base, ids):
    status, answer = http(base, "POST", "/discover", {"requested_count": 20})
    assert status == 200
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    seed_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(answer["seed_key"]))
    sig = bytes.fromhex(answer.pop("seed_signature"))
    seed_key.verify(sig, b"ournet-router-list-v1\n" + compact(answer).encode())
    assert sorted(r["router_id"] for r in answer["routers"]) == sorted(ids)


async def main():
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start_seed(tmp)
        try:
            ids = [register(base, i) for i in range(3)]
            client = DiscoveryClient(verify_signatures=True)
            client.add_seed(base)
            routers = await client.discover_routers(count=5, force_refresh=True)
            stats = client.get_stats()
            got = sorted(r.router_id for r in routers)
            assert got == sorted(ids), (got, ids)
            assert stats["signature_failures"] == 0, stats
            assert all(r.router_signature for r in routers)
            check_list_signature(base, ids)
            print(f"reference DiscoveryClient verified {len(routers)} routers from {base}; "
                  f"stats={stats}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except AssertionError as e:
        print(f"FAILED: {e!r}", file=sys.stderr)
        print("0 passed, 1 failed")
        sys.exit(1)
