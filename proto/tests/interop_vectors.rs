#![allow(clippy::unwrap_used, reason = "test code")]
//! Checks our reference-format code against vectors written by the Python reference
//! (`tests/interop/gen_reference_vectors.py`, our-network 0.1.0). The reference draws nonces
//! and ephemeral keys from the OS, so these tests decrypt and peel what it wrote, and compare
//! every deterministic output (keys, signed JSON text, padding, PoW hashes) byte for byte.

use ournet_proto::keys::{EncryptionKeypair, EncryptionPublicKey, IdentityPublicKey};
use ournet_proto::reference::{
    HopKey, JsonStyle, MESSAGE_SIZE_BUCKETS, ReferenceEnvelope, ReferenceError, canonical_json,
    decrypt_backward_layers, decrypt_circuit_layer, decrypt_message_reference, decrypt_onion_layer,
    derive_circuit_key, get_padded_size, leading_zero_bits, pad_message, peel_onion, pow_digest,
    unpad_message,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn load<T: DeserializeOwned>(json: &str) -> T {
    serde_json::from_str(json).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn unhex32(s: &str) -> [u8; 32] {
    unhex(s).try_into().unwrap()
}

fn hop_key(s: &str) -> HopKey {
    HopKey::from_bytes(unhex32(s))
}

#[derive(Deserialize)]
struct E2eFile {
    sender_public: String,
    other_sender_public: String,
    recipient_private: String,
    recipient_public: String,
    cases: Vec<E2eCase>,
}

#[derive(Deserialize)]
struct E2eCase {
    name: String,
    content: String,
    envelope: ReferenceEnvelope,
    signed_bytes: String,
    json_len: usize,
}

#[test]
fn e2e_envelopes_from_python_decrypt() {
    let file: E2eFile = load(include_str!("vectors/reference_e2e.json"));
    let recipient = EncryptionKeypair::from_secret_bytes(&unhex32(&file.recipient_private));
    assert_eq!(recipient.public().to_hex(), file.recipient_public);
    let sender = IdentityPublicKey::from_hex(&file.sender_public).unwrap();
    let other = IdentityPublicKey::from_hex(&file.other_sender_public).unwrap();
    assert_eq!(file.cases.len(), 5);
    for case in &file.cases {
        let content = unhex(&case.content);
        assert_eq!(
            case.envelope.payload.signed_bytes(),
            case.signed_bytes.as_bytes(),
            "{}",
            case.name
        );
        assert_eq!(case.json_len, 2 * content.len() + 418, "{}", case.name);
        let opened = decrypt_message_reference(&case.envelope, &recipient, &sender).unwrap();
        assert_eq!(opened, content, "{}", case.name);
        // W16: the caller's expectation wins over the embedded sender_public.
        assert_eq!(
            decrypt_message_reference(&case.envelope, &recipient, &other).unwrap_err(),
            ReferenceError::SenderMismatch
        );
        let mut relabelled = case.envelope.clone();
        relabelled.sender_public = file.other_sender_public.clone();
        assert_eq!(
            decrypt_message_reference(&relabelled, &recipient, &other).unwrap_err(),
            ReferenceError::BadSignature
        );
    }
}

#[derive(Deserialize)]
struct CircuitKeyFile {
    cases: Vec<CircuitKeyCase>,
}

#[derive(Deserialize)]
struct CircuitKeyCase {
    circuit_id: String,
    client_private: String,
    client_public: String,
    router_private: String,
    router_public: String,
    key: String,
}

#[test]
fn circuit_keys_match_python() {
    let file: CircuitKeyFile = load(include_str!("vectors/reference_circuit_key.json"));
    assert_eq!(file.cases.len(), 4);
    for case in &file.cases {
        let client = EncryptionKeypair::from_secret_bytes(&unhex32(&case.client_private));
        let router = EncryptionKeypair::from_secret_bytes(&unhex32(&case.router_private));
        assert_eq!(client.public().to_hex(), case.client_public);
        let router_pub = EncryptionPublicKey::from_hex(&case.router_public).unwrap();
        let key = derive_circuit_key(&client, &router_pub, &case.circuit_id).unwrap();
        assert_eq!(
            hex::encode(key.as_bytes()),
            case.key,
            "{:?}",
            case.circuit_id
        );
        let back = derive_circuit_key(&router, &client.public(), &case.circuit_id).unwrap();
        assert_eq!(back.as_bytes(), key.as_bytes());
    }
}

#[derive(Deserialize)]
struct OnionFile {
    cases: Vec<OnionCase>,
    single_layers: Vec<SingleLayer>,
}

#[derive(Deserialize)]
struct OnionCase {
    content: String,
    hop_keys: Vec<String>,
    hop_ids: Vec<String>,
    onion: String,
}

#[derive(Deserialize)]
struct SingleLayer {
    content: String,
    key: String,
    next_hop_after_peel: String,
    layer: String,
}

#[test]
fn onions_from_python_peel_hop_by_hop() {
    let file: OnionFile = load(include_str!("vectors/reference_onion.json"));
    assert_eq!(file.cases.len(), 18);
    for case in &file.cases {
        let mut onion = unhex(&case.onion);
        let hops = case.hop_keys.len();
        for (i, key) in case.hop_keys.iter().enumerate() {
            let before = onion.len();
            let peeled = peel_onion(&onion, &hop_key(key)).unwrap();
            assert_eq!(peeled.inner.len(), before - 93);
            assert_eq!(
                peeled.next_hop.as_deref(),
                case.hop_ids.get(i + 1).map(String::as_str)
            );
            // Only this hop's key opens this layer.
            if let Some(next_key) = case.hop_keys.get(i + 1) {
                assert_eq!(
                    peel_onion(&onion, &hop_key(next_key)).unwrap_err(),
                    ReferenceError::Decrypt
                );
            }
            onion = peeled.inner;
        }
        assert_eq!(onion, unhex(&case.content), "{hops} hops");
    }
    for layer in &file.single_layers {
        let peeled = decrypt_onion_layer(&unhex(&layer.layer), &hop_key(&layer.key)).unwrap();
        assert_eq!(peeled.inner, unhex(&layer.content));
        assert_eq!(peeled.next_hop.unwrap(), layer.next_hop_after_peel);
    }
}

#[derive(Deserialize)]
struct CircuitPayloadFile {
    forward: Vec<CircuitPayloadCase>,
    backward: Vec<CircuitPayloadCase>,
}

#[derive(Deserialize)]
struct CircuitPayloadCase {
    content: String,
    keys: Vec<String>,
    payload: String,
}

#[test]
fn circuit_payloads_from_python_decrypt() {
    let file: CircuitPayloadFile = load(include_str!("vectors/reference_circuit_payload.json"));
    assert_eq!((file.forward.len(), file.backward.len()), (9, 9));
    for case in &file.forward {
        let mut payload = unhex(&case.payload);
        for key in &case.keys {
            payload = decrypt_circuit_layer(&payload, &hop_key(key)).unwrap();
        }
        assert_eq!(payload, unhex(&case.content));
    }
    for case in &file.backward {
        let keys: Vec<HopKey> = case.keys.iter().map(|k| hop_key(k)).collect();
        let payload = unhex(&case.payload);
        assert_eq!(
            decrypt_backward_layers(&payload, &keys).unwrap(),
            unhex(&case.content)
        );
        let reversed: Vec<HopKey> = case.keys.iter().rev().map(|k| hop_key(k)).collect();
        if keys.len() > 1 {
            assert!(decrypt_backward_layers(&payload, &reversed).is_err());
        }
    }
}

#[derive(Deserialize)]
struct PaddingFile {
    buckets: Vec<usize>,
    padded_sizes: Vec<PaddedSize>,
    pad: Vec<PadCase>,
    unpad: Vec<UnpadCase>,
}

#[derive(Deserialize)]
struct PaddedSize {
    len: usize,
    padded: usize,
}

#[derive(Deserialize)]
struct PadCase {
    content: String,
    target: Option<usize>,
    padded: String,
}

#[derive(Deserialize)]
struct UnpadCase {
    padded: String,
    content: String,
}

#[test]
fn padding_matches_python() {
    let file: PaddingFile = load(include_str!("vectors/reference_padding.json"));
    assert_eq!(file.buckets, MESSAGE_SIZE_BUCKETS);
    for case in &file.padded_sizes {
        assert_eq!(get_padded_size(case.len), case.padded, "len {}", case.len);
    }
    for case in &file.pad {
        let padded = pad_message(&unhex(&case.content), case.target);
        assert_eq!(
            hex::encode(&padded),
            case.padded,
            "target {:?}",
            case.target
        );
    }
    assert_eq!(file.unpad.len(), 14);
    for case in &file.unpad {
        assert_eq!(
            hex::encode(unpad_message(&unhex(&case.padded))),
            case.content,
            "{}",
            case.padded
        );
    }
}

#[derive(Deserialize)]
struct PowFile {
    cases: Vec<PowCase>,
}

#[derive(Deserialize)]
struct PowCase {
    challenge: String,
    nonce: u64,
    router_id: String,
    digest: String,
    leading_zero_bits: u32,
}

#[test]
fn pow_hashes_match_python() {
    let file: PowFile = load(include_str!("vectors/reference_pow.json"));
    assert_eq!(file.cases.len(), 14);
    for case in &file.cases {
        let digest = pow_digest(&case.challenge, case.nonce, &case.router_id);
        assert_eq!(hex::encode(digest), case.digest, "nonce {}", case.nonce);
        assert_eq!(leading_zero_bits(&digest), case.leading_zero_bits);
    }
}

#[derive(Deserialize)]
struct CanonicalFile {
    cases: Vec<CanonicalCase>,
}

#[derive(Deserialize)]
struct CanonicalCase {
    value: Value,
    spaced: String,
    compact: String,
}

#[test]
fn canonical_json_matches_python() {
    let file: CanonicalFile = load(include_str!("vectors/reference_canonical_json.json"));
    for case in &file.cases {
        assert_eq!(
            canonical_json(&case.value, JsonStyle::Spaced).unwrap(),
            case.spaced
        );
        assert_eq!(
            canonical_json(&case.value, JsonStyle::Compact).unwrap(),
            case.compact
        );
    }
}
