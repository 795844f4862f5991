//! Fuzzes `envelope::decrypt_message` with a fixed recipient key: on arbitrary bytes, on
//! envelopes this harness seals around arbitrary inner plaintext (following the layout in
//! `proto/src/envelope.rs`, so the fuzzer reaches the inner parser and the signature check
//! behind the AEAD), and on real envelopes from `encrypt_message_with_ack`, modified.
//!
//! Invariants: nothing panics; arbitrary bytes never open; a harness-sealed inner plaintext
//! always passes the AEAD (so the documented layout is the implemented one) and then fails
//! only as `Decode` (too short), `InvalidSenderKey` or `BadSignature`; a real envelope opens to
//! exactly what was sealed, with the sender's ACK token; a real envelope with any byte
//! changed, cut or appended is refused.
#![no_main]

use hkdf::Hkdf;
use libfuzzer_sys::fuzz_target;
use ournet_proto::envelope::{
    ENVELOPE_VERSION, EnvelopeError, decrypt_message, encrypt_message_with_ack,
};
use ournet_proto::keys::EncryptionKeypair;
use ournet_proto_fuzz::{Input, encryption_key, identity, rng};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::Sha256;

/// The fixed inner fields: sender key, signature, message id, timestamp.
const INNER_FIXED_LEN: usize = 32 + 64 + 16 + 8;

fuzz_target!(|data: &[u8]| {
    let recipient = encryption_key(1);
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => {
            let result = decrypt_message(&recipient, input.rest());
            assert!(result.is_err(), "arbitrary bytes opened");
        }
        1 => harness_sealed(&recipient, &mut input),
        _ => real(&recipient, &mut input),
    }
});

fn harness_sealed(recipient: &EncryptionKeypair, input: &mut Input<'_>) {
    let ephemeral = EncryptionKeypair::from_secret_bytes(&input.array());
    let inner = input.rest();
    let envelope = seal(&ephemeral, recipient, inner);
    match decrypt_message(recipient, &envelope) {
        Err(EnvelopeError::Decode(_)) => assert!(inner.len() < INNER_FIXED_LEN),
        Err(EnvelopeError::InvalidSenderKey | EnvelopeError::BadSignature) => {
            assert!(inner.len() >= INNER_FIXED_LEN);
        }
        other => panic!("harness-sealed envelope: {other:?}"),
    }
}

/// `version ‖ E ‖ AES-256-GCM(k, n, inner, aad = version ‖ E)`, with `k ‖ n` from
/// HKDF-SHA256(ikm = X25519(e, R), salt = E ‖ R, info = "ournet-e2e-v1").
fn seal(ephemeral: &EncryptionKeypair, recipient: &EncryptionKeypair, inner: &[u8]) -> Vec<u8> {
    let e = ephemeral.public().0;
    let r = recipient.public().0;
    let shared = ephemeral
        .diffie_hellman(&recipient.public())
        .expect("the fixed recipient key has full order");
    let salt = [e, r].concat();
    let mut okm = [0u8; 44];
    Hkdf::<Sha256>::new(Some(&salt), shared.as_bytes())
        .expand(b"ournet-e2e-v1", &mut okm)
        .unwrap();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &okm[..32]).unwrap());
    let nonce = Nonce::try_assume_unique_for_key(&okm[32..]).unwrap();
    let mut header = vec![ENVELOPE_VERSION];
    header.extend_from_slice(&e);
    let mut body = inner.to_vec();
    key.seal_in_place_append_tag(nonce, Aad::from(&header), &mut body)
        .unwrap();
    [header, body].concat()
}

fn real(recipient: &EncryptionKeypair, input: &mut Input<'_>) {
    let sender = identity(input.byte());
    let seed = input.u64();
    let message_id: [u8; 16] = input.array();
    let timestamp = input.u64();
    let pos = usize::from(input.u16());
    let flip = input.byte();
    let cut = usize::from(input.u16());
    let extra = usize::from(input.byte() % 4);
    let content = input.rest();
    let (mut envelope, ack) = encrypt_message_with_ack(
        &mut rng(seed),
        &sender,
        &recipient.public(),
        message_id,
        timestamp,
        content,
    )
    .expect("content is small");
    let original = envelope.clone();
    let len = envelope.len();
    envelope[pos % len] ^= flip;
    envelope.truncate(cut.max(len.saturating_sub(64)));
    envelope.resize(envelope.len() + extra, 0);
    let modified = envelope != original;
    match decrypt_message(recipient, &envelope) {
        Ok(opened) => {
            assert!(!modified, "a modified envelope opened");
            assert_eq!(opened.sender(), &sender.public());
            assert_eq!(opened.message_id(), message_id);
            assert_eq!(opened.timestamp(), timestamp);
            assert_eq!(opened.content(), content);
            assert_eq!(opened.ack_token(), &ack);
        }
        Err(e) => assert!(modified, "a real envelope was refused: {e:?}"),
    }
}
