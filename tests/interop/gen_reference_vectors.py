#!/usr/bin/env python3
"""Writes test vectors from the Python reference package (our-network 0.1.0).

Run it with the reference venv (the package is yanked, so pin the version):

    python3 -m venv /work/venv-ref
    /work/venv-ref/bin/pip install our-network==0.1.0
    /work/venv-ref/bin/python tests/interop/gen_reference_vectors.py proto/tests/vectors

Every key comes from a fixed seed (SHA-256 of a label), so the keys are the same on every run.
The reference draws its AES-GCM nonces and ephemeral keys from the OS inside each call, so the
ciphertexts differ from run to run: the vectors record outputs, and the Rust tests
(proto/tests/interop_vectors.rs) decrypt and peel them rather than re-create them.
"""

import hashlib
import json
import logging
import os
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

import our_network
from our_network import crypto, messages

assert our_network.__version__ == "0.1.0", our_network.__version__
# The seed logs every failed PoW check; the boundary checks below fail on purpose.
logging.disable(logging.WARNING)


def seed(label: str) -> bytes:
    return hashlib.sha256(b"ournet-test-vector:" + label.encode()).digest()


def identity(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed("ed25519:" + label))


def encryption(label: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(seed("x25519:" + label))


def ed_pub_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes_raw().hex()


def x_priv_hex(key: X25519PrivateKey) -> str:
    return key.private_bytes_raw().hex()


def x_pub_hex(key: X25519PrivateKey) -> str:
    return key.public_key().public_bytes_raw().hex()


CONTENTS = {
    "empty": b"",
    "short_ascii": b"hello, onion",
    "utf8_text": "gr\u00fc\u00dfe \u2603 \U0001f9c5".encode(),
    "binary_all_bytes": bytes(range(256)),
    "one_kib": bytes((i * 7 + 3) % 256 for i in range(1024)),
}


def e2e_vectors() -> dict:
    sender = identity("alice")
    recipient = encryption("bob")
    other_sender = identity("mallory")
    cases = []
    for name, content in CONTENTS.items():
        envelope = crypto.encrypt_message(content, recipient.public_key(), sender)
        assert crypto.decrypt_message(envelope, recipient, sender.public_key()) == content
        cases.append(
            {
                "name": name,
                "content": content.hex(),
                "envelope": envelope,
                "signed_bytes": json.dumps(envelope["payload"], sort_keys=True),
                "json_len": len(json.dumps(envelope)),
            }
        )
    return {
        "description": "crypto.encrypt_message outputs (spec 3.3); decrypt them with the keys below",
        "sender_seed": seed("ed25519:alice").hex(),
        "sender_public": ed_pub_hex(sender),
        "other_sender_public": ed_pub_hex(other_sender),
        "recipient_private": x_priv_hex(recipient),
        "recipient_public": x_pub_hex(recipient),
        "cases": cases,
    }


CIRCUIT_IDS = ["c1", "", "5f0c6a52-8d8e-4f1e-9a55-3b2d8c1f7e90", "circuit-\u00e9\u2603"]


def circuit_key_vectors() -> dict:
    cases = []
    for i, circuit_id in enumerate(CIRCUIT_IDS):
        client = encryption(f"circuit-client-{i}")
        router = encryption(f"circuit-router-{i}")
        key = crypto.derive_circuit_key(client, router.public_key(), circuit_id)
        assert key == crypto.derive_circuit_key(router, client.public_key(), circuit_id)
        cases.append(
            {
                "circuit_id": circuit_id,
                "client_private": x_priv_hex(client),
                "client_public": x_pub_hex(client),
                "router_private": x_priv_hex(router),
                "router_public": x_pub_hex(router),
                "key": key.hex(),
            }
        )
    return {"description": "crypto.derive_circuit_key (spec 3.6)", "cases": cases}


def hop_keys(n: int, tag: str) -> list[bytes]:
    keys = []
    for i in range(n):
        client = encryption(f"{tag}-client-{i}")
        router = encryption(f"{tag}-router-{i}")
        keys.append(crypto.derive_circuit_key(client, router.public_key(), f"{tag}-circuit"))
    return keys


def onion_vectors() -> dict:
    cases = []
    id_sets = [
        [ed_pub_hex(identity(f"router-{i}")) for i in range(3)],
        ["router-a", "router-b", "r\u00e9-c"],
    ]
    for ids in id_sets:
        for hops in (1, 2, 3):
            for content_name in ("empty", "short_ascii", "binary_all_bytes"):
                content = CONTENTS[content_name]
                keys = hop_keys(hops, f"onion-{hops}")
                onion = crypto.create_onion(content, keys, ids[:hops])
                assert len(onion) == len(content) + 93 * hops
                cases.append(
                    {
                        "content": content.hex(),
                        "hop_keys": [k.hex() for k in keys],
                        "hop_ids": ids[:hops],
                        "onion": onion.hex(),
                    }
                )
    long_id = "x" * 80
    key = hop_keys(1, "onion-long")[0]
    layer = crypto.encrypt_onion_layer(b"inner", key, next_hop=long_id)
    single = [
        {
            "content": b"inner".hex(),
            "key": key.hex(),
            "next_hop": long_id,
            "next_hop_after_peel": crypto.decrypt_onion_layer(layer, key)[1],
            "layer": layer.hex(),
        }
    ]
    return {
        "description": "crypto.create_onion (spec 3.4): hop i peels with hop_keys[i] and learns "
        "hop_ids[i+1]; the last hop learns no next hop and gets content. "
        "single_layers: encrypt_onion_layer with a next hop over 64 bytes (truncated)",
        "cases": cases,
        "single_layers": single,
    }


def circuit_payload_vectors() -> dict:
    forward = []
    backward = []
    for hops in (1, 2, 3):
        for content_name in ("empty", "short_ascii", "one_kib"):
            content = CONTENTS[content_name]
            keys = hop_keys(hops, f"circuit-{hops}")
            payload = crypto.encrypt_circuit_payload(content, keys)
            assert len(payload) == len(content) + 28 * hops
            forward.append(
                {"content": content.hex(), "keys": [k.hex() for k in keys], "payload": payload.hex()}
            )
            # Backward: the exit adds its layer first, the first hop last.
            p = content
            for key in reversed(keys):
                p = crypto.encrypt_backward_payload(p, key)
            assert crypto.decrypt_backward_layers(p, keys) == content
            backward.append(
                {"content": content.hex(), "keys": [k.hex() for k in keys], "payload": p.hex()}
            )
    return {
        "description": "spec 3.5: forward = encrypt_circuit_payload(content, keys), peeled with "
        "decrypt_circuit_layer in path order; backward = encrypt_backward_payload applied by the "
        "last hop first, removed with decrypt_backward_layers(payload, keys)",
        "forward": forward,
        "backward": backward,
    }


def padding_vectors() -> dict:
    sizes = [0, 1, 5, 1021, 1022, 1023, 1024, 4093, 4094, 4095, 4096, 16381, 16382, 16383,
             65533, 65534, 65535, 65536, 100000]
    padded_sizes = [{"len": n, "padded": messages.get_padded_size(n)} for n in sizes]
    pads = []
    for content, target in [
        (b"", None), (b"Hello", None), (b"\x80\x00", None), (bytes(1021), None),
        (bytes(1022), None), (b"abc", 8), (b"abc", 4), (b"abc", 3), (b"abc", 0),
        (b"abcdef", 2),
    ]:
        out = messages.pad_message(content, target)
        pads.append({"content": content.hex(), "target": target, "padded": out.hex()})
    unpads = []
    for padded in [
        b"", b"abc", b"abc\x80", b"abc\x80\x00\x00", b"\x80", b"\x80\x00", b"abc\x00\x00",
        b"a\x80b", b"a\x80\x00b", b"a\x80\x00\x80\x00", b"a\x80\x80", b"\x80\x80\x00\x01",
        b"x\x80\x00\x00\x01\x00", messages.pad_message(b"\x80\x80payload\x80"),
    ]:
        unpads.append({"padded": padded.hex(), "content": messages.unpad_message(padded).hex()})
    return {
        "description": "messages.get_padded_size / pad_message / unpad_message (spec 3.7)",
        "buckets": messages.MESSAGE_SIZE_BUCKETS,
        "padded_sizes": padded_sizes,
        "pad": pads,
        "unpad": unpads,
    }


def leading_zero_bits(digest: bytes) -> int:
    # Copied from router.py:RouterNode._generate_pow and seed_node.py:SeedNode._verify_pow.
    leading_zeros = 0
    for byte in digest:
        if byte == 0:
            leading_zeros += 8
        else:
            for i in range(7, -1, -1):
                if byte & (1 << i):
                    break
                leading_zeros += 1
            break
    return leading_zeros


def pow_vectors() -> dict:
    from our_network.router import RouterNode
    from our_network.seed import SeedConfig, SeedNode

    seed_node = SeedNode(SeedConfig())
    router_id = ed_pub_hex(identity("pow-router"))
    challenge = seed("pow-challenge")[:16].hex()
    cases = []

    def add(ch: str, nonce: int, rid: str) -> None:
        digest = hashlib.sha256(f"{ch}{nonce}{rid}".encode()).digest()
        bits = leading_zero_bits(digest)
        # Cross-check against the seed's own verifier at the boundary.
        assert seed_node._verify_pow(rid, {"challenge": ch, "nonce": nonce}, bits)
        assert not seed_node._verify_pow(rid, {"challenge": ch, "nonce": nonce}, bits + 1)
        cases.append({"challenge": ch, "nonce": nonce, "router_id": rid,
                      "digest": digest.hex(), "leading_zero_bits": bits})

    for nonce in (0, 1, 9, 10, 12345, 2**32, 2**64 - 1):
        add(challenge, nonce, router_id)
    add("", 0, router_id)
    add(challenge, 7, "")
    # Nonces that meet a difficulty, found the way RouterNode searches (count up from 0).
    for difficulty in (4, 8, 12, 16):
        nonce = 0
        while leading_zero_bits(
            hashlib.sha256(f"{challenge}{nonce}{router_id}".encode()).digest()
        ) < difficulty:
            nonce += 1
        add(challenge, nonce, router_id)
    # A proof mined by RouterNode itself.
    router = RouterNode(host="127.0.0.1", port=0)
    proof = router._generate_pow(difficulty=8)
    add(proof["challenge"], proof["nonce"], router.router_id)
    return {
        "description": "PoW hash (spec 3.8): sha256(utf8(challenge + str(nonce) + router_id)), "
        "difficulty = leading zero bits",
        "cases": cases,
    }


def canonical_json_vectors() -> dict:
    values = [
        {"nonce": "00ff", "ephemeral_public": "ab", "ciphertext": ""},
        {"b": 1, "a": [True, False, None, -7, 12345678901234567890], "c": {"z": "", "y": []}},
        {"quote\"back\\slash": "ctl\x00\x01\x1f\x7f\b\f\n\r\t end"},
        {"\u00e9": "caf\u00e9 \u2603 \U0001f9c5", "\u00e0": "", "z": "", "A": ""},
        [],
        {},
        "plain",
    ]
    cases = []
    for value in values:
        cases.append({
            "value": value,
            "spaced": json.dumps(value, sort_keys=True),
            "compact": json.dumps(value, sort_keys=True, separators=(",", ":")),
        })
    return {"description": "json.dumps(sort_keys=True), spaced and compact (spec 3.2)",
            "cases": cases}


def main() -> None:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "proto/tests/vectors"
    os.makedirs(out_dir, exist_ok=True)
    files = {
        "reference_e2e.json": e2e_vectors(),
        "reference_circuit_key.json": circuit_key_vectors(),
        "reference_onion.json": onion_vectors(),
        "reference_circuit_payload.json": circuit_payload_vectors(),
        "reference_padding.json": padding_vectors(),
        "reference_pow.json": pow_vectors(),
        "reference_canonical_json.json": canonical_json_vectors(),
    }
    for name, data in files.items():
        data = {"generator": "tests/interop/gen_reference_vectors.py",
                "reference": "our-network 0.1.0", **data}
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, ensure_ascii=True)
            f.write("\n")
        print(f"wrote {os.path.join(out_dir, name)}")


if __name__ == "__main__":
    main()
