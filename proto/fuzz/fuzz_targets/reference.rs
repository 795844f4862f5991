//! Fuzzes the reference (Python-compatible) formats with fixed keys: `reference::peel_onion`,
//! `reference::decrypt_onion_layer`, the circuit-layer openers and `reference::unpad_message`
//! on arbitrary bytes and on layers this harness seals around arbitrary plaintext; the JSON
//! envelope parsed by serde_json into `reference::ReferenceEnvelope` and opened with
//! `decrypt_message_reference` (arbitrary JSON, envelopes signed around arbitrary fields, and
//! real envelopes with their JSON text modified); and `canonical_json` on arbitrary JSON.
//!
//! Invariants: nothing panics; arbitrary bytes never open; an opened onion layer re-encrypts to
//! the same plaintext (the routing header has one encoding) and a refused one is refused for
//! its header or length, never its AEAD; `unpad_message` returns a prefix and undoes
//! `pad_message`; a parsed envelope serializes back to itself; an envelope signed by the
//! expected sender passes the signature check; a modified real envelope opens, if at all, to
//! the original content; canonical JSON parses back to the value it was made from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ournet_proto::keys::EncryptionKeypair;
use ournet_proto::reference::{
    HopKey, JsonStyle, ReferenceEnvelope, ReferenceError, ReferencePayload, canonical_json,
    decrypt_backward_layers, decrypt_circuit_layer, decrypt_message_reference, decrypt_onion_layer,
    encrypt_circuit_payload, encrypt_message_reference, encrypt_onion_layer, pad_message,
    peel_onion, unpad_message,
};
use ournet_proto_fuzz::{Input, encryption_key, identity, rng};
use serde_json::Value;

fn key(n: u8) -> HopKey {
    HopKey::from_bytes([n; 32])
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.byte() % 6 {
        0 => raw_layers(input.rest()),
        1 => sealed_layer(&mut input),
        2 => padding(&mut input),
        3 => json(input.rest()),
        4 => signed_fields(&mut input),
        _ => modified_real(&mut input),
    }
});

fn raw_layers(bytes: &[u8]) {
    assert!(
        peel_onion(bytes, &key(1)).is_err(),
        "arbitrary onion opened"
    );
    assert!(decrypt_onion_layer(bytes, &key(1)).is_err());
    assert!(decrypt_circuit_layer(bytes, &key(1)).is_err());
    assert!(decrypt_backward_layers(bytes, &[key(1), key(2)]).is_err());
    check_unpad(bytes);
}

fn sealed_layer(input: &mut Input<'_>) {
    let seed = input.u64();
    let plain = input.rest();
    let layer = encrypt_circuit_payload(&mut rng(seed), plain, &[key(1)]);
    match peel_onion(&layer, &key(1)) {
        Ok(peeled) => {
            let again = encrypt_onion_layer(
                &mut rng(seed),
                &peeled.inner,
                &key(1),
                peeled.next_hop.as_deref(),
            )
            .expect("a decoded next hop is a valid one");
            assert_eq!(decrypt_circuit_layer(&again, &key(1)).unwrap(), plain);
            assert_eq!(decrypt_onion_layer(&again, &key(1)), Ok(peeled));
        }
        Err(ReferenceError::Decode(_)) => assert!(plain.len() < 65),
        Err(ReferenceError::MalformedHeader(_)) => {}
        Err(e) => panic!("harness-sealed layer: {e:?}"),
    }
}

fn padding(input: &mut Input<'_>) {
    let target = match input.u16() {
        0 => None,
        t => Some(usize::from(t)),
    };
    let content = input.rest();
    check_unpad(content);
    let padded = pad_message(content, target);
    assert!(padded.len() > content.len());
    assert_eq!(unpad_message(&padded), content);
}

fn check_unpad(bytes: &[u8]) {
    let out = unpad_message(bytes);
    assert!(bytes.starts_with(out));
    if out.len() < bytes.len() {
        assert_eq!(bytes[out.len()], 0x80);
        assert!(bytes[out.len() + 1..].iter().all(|&b| b == 0));
    }
}

fn json(text: &[u8]) {
    if let Ok(env) = serde_json::from_slice::<ReferenceEnvelope>(text) {
        let again = serde_json::to_string(&env).unwrap();
        assert_eq!(
            serde_json::from_str::<ReferenceEnvelope>(&again).unwrap(),
            env
        );
        let result = decrypt_message_reference(&env, &encryption_key(1), &identity(1).public());
        assert!(result.is_err(), "arbitrary JSON envelope opened");
    }
    if let Ok(value) = serde_json::from_slice::<Value>(text) {
        for style in [JsonStyle::Spaced, JsonStyle::Compact] {
            if let Ok(canonical) = canonical_json(&value, style) {
                assert!(canonical.is_ascii());
                let back: Value = serde_json::from_str(&canonical).expect("canonical JSON parses");
                assert_eq!(back, value);
            }
        }
    }
}

/// Three fields from the input, signed by the expected sender, so opening gets past the
/// sender and signature checks to the hex fields, the key agreement and the AEAD.
fn signed_fields(input: &mut Input<'_>) {
    let field = |input: &mut Input<'_>| {
        let len = usize::from(input.byte());
        String::from_utf8_lossy(input.take(len)).into_owned()
    };
    let payload = ReferencePayload {
        ephemeral_public: field(input),
        nonce: field(input),
        ciphertext: field(input),
    };
    let sender = identity(1);
    let env = ReferenceEnvelope {
        signature: sender.sign(&payload.signed_bytes()).to_hex(),
        sender_public: sender.public().to_hex(),
        payload,
    };
    match decrypt_message_reference(&env, &encryption_key(1), &sender.public()) {
        Err(
            ReferenceError::BadHex(_)
            | ReferenceError::WeakKey
            | ReferenceError::Decode(_)
            | ReferenceError::Decrypt,
        ) => {}
        other => panic!("signed arbitrary fields: {other:?}"),
    }
}

/// A real envelope whose JSON text is changed at one byte.
fn modified_real(input: &mut Input<'_>) {
    let seed = input.u64();
    let pos = usize::from(input.u16());
    let flip = input.byte();
    let content = input.rest();
    let sender = identity(1);
    let recipient: EncryptionKeypair = encryption_key(1);
    let env = encrypt_message_reference(&mut rng(seed), content, &recipient.public(), &sender)
        .expect("the fixed recipient key has full order");
    let mut text = serde_json::to_vec(&env).unwrap();
    let len = text.len();
    text[pos % len] ^= flip;
    let Ok(parsed) = serde_json::from_slice::<ReferenceEnvelope>(&text) else {
        return;
    };
    match decrypt_message_reference(&parsed, &recipient, &sender.public()) {
        Ok(opened) => assert_eq!(
            opened, content,
            "a modified envelope opened to other content"
        ),
        Err(e) => assert_ne!(flip, 0, "the real envelope was refused: {e:?}"),
    }
}
