#!/usr/bin/env python3
"""Checks vectors written by our Rust code with the Python reference package (our-network 0.1.0).

    cargo run -p ournet-proto --example write_vectors -- /tmp/rust_vectors.json
    /work/venv-ref/bin/python tests/interop/check_rust_vectors.py /tmp/rust_vectors.json

Not run by CI (CI has no reference venv). Exits non-zero on the first mismatch and prints a
count of each kind of check on success.
"""

import json
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

import our_network
from our_network import crypto

assert our_network.__version__ == "0.1.0", our_network.__version__


def check_e2e(e2e: dict) -> int:
    recipient = X25519PrivateKey.from_private_bytes(bytes.fromhex(e2e["recipient_private"]))
    sender = Ed25519PublicKey.from_public_bytes(bytes.fromhex(e2e["sender_public"]))
    for case in e2e["cases"]:
        envelope = case["envelope"]
        assert envelope["sender_public"] == e2e["sender_public"]
        plain = crypto.decrypt_message(envelope, recipient, sender)
        assert plain == bytes.fromhex(case["content"]), case["content"]
        # Python's JSON form of our envelope has the size the spec gives for its own.
        assert len(json.dumps(envelope)) == 2 * len(plain) + 418
    return len(e2e["cases"])


def check_circuit_keys(cases: list) -> int:
    for case in cases:
        client = X25519PrivateKey.from_private_bytes(bytes.fromhex(case["client_private"]))
        router = X25519PublicKey.from_public_bytes(bytes.fromhex(case["router_public"]))
        key = crypto.derive_circuit_key(client, router, case["circuit_id"])
        assert key.hex() == case["key"], case["circuit_id"]
    return len(cases)


def check_onions(cases: list) -> int:
    for case in cases:
        onion = bytes.fromhex(case["onion"])
        keys = [bytes.fromhex(k) for k in case["hop_keys"]]
        ids = case["hop_ids"]
        for i, key in enumerate(keys):
            inner, next_hop = crypto.peel_onion(onion, key)
            expected = ids[i + 1] if i + 1 < len(ids) else None
            assert next_hop == expected, (i, next_hop, expected)
            assert len(inner) == len(onion) - 93
            onion = inner
        assert onion == bytes.fromhex(case["content"])
    return len(cases)


def check_circuit_payloads(payloads: dict) -> int:
    for case in payloads["forward"]:
        payload = bytes.fromhex(case["payload"])
        for key in case["keys"]:
            payload = crypto.decrypt_circuit_layer(payload, bytes.fromhex(key))
        assert payload == bytes.fromhex(case["content"])
    for case in payloads["backward"]:
        keys = [bytes.fromhex(k) for k in case["keys"]]
        plain = crypto.decrypt_backward_layers(bytes.fromhex(case["payload"]), keys)
        assert plain == bytes.fromhex(case["content"])
    return len(payloads["forward"]) + len(payloads["backward"])


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rust_vectors.json"
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)
    counts = {
        "e2e envelopes decrypted": check_e2e(vectors["e2e"]),
        "circuit keys matched": check_circuit_keys(vectors["circuit_keys"]),
        "onions peeled": check_onions(vectors["onions"]),
        "circuit payloads decrypted": check_circuit_payloads(vectors["circuit_payloads"]),
    }
    for what, n in counts.items():
        print(f"{what}: {n}")
    total = sum(counts.values())
    print(f"{total} passed, 0 failed")


if __name__ == "__main__":
    main()
