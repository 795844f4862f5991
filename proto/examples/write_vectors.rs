//! Writes reference-format vectors made by OUR code, for the Python reference to check.
//!
//! ```text
//! cargo run -p ournet-proto --example write_vectors -- /tmp/rust_vectors.json
//! /work/venv-ref/bin/python tests/interop/check_rust_vectors.py /tmp/rust_vectors.json
//! ```
//!
//! The RNG is seeded, so the output is the same on every run. It covers the reference JSON
//! envelope, circuit keys, onions and circuit payloads: each is something the reference must
//! be able to open, with the keys to do so.
#![allow(
    clippy::print_stdout,
    reason = "a command-line example reports what it wrote"
)]

use std::error::Error;

use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_proto::reference::{
    HopKey, create_onion, derive_circuit_key, encrypt_backward_payload, encrypt_circuit_payload,
    encrypt_message_reference,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: write_vectors OUTPUT.json")?;
    let mut rng = ChaCha20Rng::seed_from_u64(0x6f75_726e_6574);
    let contents: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"hello from rust".to_vec(),
        (0..=255).collect(),
        (0..1024u32).map(|i| (i * 13 % 251) as u8).collect(),
    ];
    let vectors = json!({
        "generator": "proto/examples/write_vectors.rs",
        "e2e": e2e(&mut rng, &contents)?,
        "circuit_keys": circuit_keys(&mut rng)?,
        "onions": onions(&mut rng, &contents)?,
        "circuit_payloads": circuit_payloads(&mut rng, &contents)?,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&vectors)? + "\n")?;
    println!("wrote {path}");
    Ok(())
}

fn e2e(rng: &mut ChaCha20Rng, contents: &[Vec<u8>]) -> Result<Value, Box<dyn Error>> {
    let sender = IdentityKeypair::generate(rng);
    let recipient = EncryptionKeypair::generate(rng);
    let mut cases = Vec::new();
    for content in contents {
        let envelope = encrypt_message_reference(rng, content, &recipient.public(), &sender)?;
        cases.push(json!({ "content": hex::encode(content), "envelope": envelope }));
    }
    Ok(json!({
        "sender_public": sender.public().to_hex(),
        "recipient_private": hex::encode(*recipient.secret_bytes()),
        "cases": cases,
    }))
}

fn circuit_keys(rng: &mut ChaCha20Rng) -> Result<Value, Box<dyn Error>> {
    let mut cases = Vec::new();
    for circuit_id in ["c1", "", "circuit-\u{e9}\u{2603}"] {
        let client = EncryptionKeypair::generate(rng);
        let router = EncryptionKeypair::generate(rng);
        let key = derive_circuit_key(&client, &router.public(), circuit_id)?;
        cases.push(json!({
            "circuit_id": circuit_id,
            "client_private": hex::encode(*client.secret_bytes()),
            "router_public": router.public().to_hex(),
            "key": hex::encode(key.as_bytes()),
        }));
    }
    Ok(Value::Array(cases))
}

/// Hop keys as the reference derives them, with their hex for the Python side.
fn hop_keys(rng: &mut ChaCha20Rng, n: usize) -> Result<(Vec<HopKey>, Vec<String>), Box<dyn Error>> {
    let mut keys = Vec::new();
    let mut hex_keys = Vec::new();
    for _ in 0..n {
        let client = EncryptionKeypair::generate(rng);
        let router = EncryptionKeypair::generate(rng);
        let key = derive_circuit_key(&client, &router.public(), "rust-vector")?;
        hex_keys.push(hex::encode(key.as_bytes()));
        keys.push(key);
    }
    Ok((keys, hex_keys))
}

fn onions(rng: &mut ChaCha20Rng, contents: &[Vec<u8>]) -> Result<Value, Box<dyn Error>> {
    let mut cases = Vec::new();
    for hops in 1..=3 {
        for content in contents {
            let (keys, hex_keys) = hop_keys(rng, hops)?;
            let ids: Vec<String> = (0..hops)
                .map(|_| IdentityKeypair::generate(rng).public().to_hex())
                .collect();
            let onion = create_onion(rng, content, &keys, &ids)?;
            cases.push(json!({
                "content": hex::encode(content),
                "hop_keys": hex_keys,
                "hop_ids": ids,
                "onion": hex::encode(onion),
            }));
        }
    }
    Ok(Value::Array(cases))
}

fn circuit_payloads(rng: &mut ChaCha20Rng, contents: &[Vec<u8>]) -> Result<Value, Box<dyn Error>> {
    let mut forward = Vec::new();
    let mut backward = Vec::new();
    for hops in 1..=3 {
        for content in contents {
            let (keys, hex_keys) = hop_keys(rng, hops)?;
            let payload = encrypt_circuit_payload(rng, content, &keys);
            forward.push(json!({
                "content": hex::encode(content),
                "keys": hex_keys,
                "payload": hex::encode(payload),
            }));
            let mut back = content.clone();
            for key in keys.iter().rev() {
                back = encrypt_backward_payload(rng, &back, key);
            }
            backward.push(json!({
                "content": hex::encode(content),
                "keys": hex_keys,
                "payload": hex::encode(back),
            }));
        }
    }
    Ok(json!({ "forward": forward, "backward": backward }))
}
