//! Unit tests of the end-to-end envelope: round trips, and every way an envelope must fail.
#![allow(
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "test code: fixed offsets into envelopes it just built"
)]

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;

struct Parties {
    alice: IdentityKeypair,
    mallory: IdentityKeypair,
    bob: EncryptionKeypair,
    carol: EncryptionKeypair,
    rng: ChaCha20Rng,
}

fn parties() -> Parties {
    let mut rng = ChaCha20Rng::seed_from_u64(50);
    Parties {
        alice: IdentityKeypair::generate(&mut rng),
        mallory: IdentityKeypair::generate(&mut rng),
        bob: EncryptionKeypair::generate(&mut rng),
        carol: EncryptionKeypair::generate(&mut rng),
        rng,
    }
}

const ID: [u8; 16] = [7; 16];
const TS: u64 = 1_706_789_012;

fn seal_for_bob(p: &mut Parties, content: &[u8]) -> Vec<u8> {
    encrypt_message(&mut p.rng, &p.alice, &p.bob.public(), ID, TS, content).unwrap()
}

/// What `decrypt_message` does before the signature check: the inner plaintext.
fn open_inner(recipient: &EncryptionKeypair, env: &[u8]) -> Vec<u8> {
    let ephemeral = EncryptionPublicKey(env[1..HEADER_LEN].try_into().unwrap());
    let shared = recipient.diffie_hellman(&ephemeral).unwrap();
    let (key, nonce) = derive_key(shared.as_bytes(), &ephemeral, &recipient.public());
    let mut plain = env[HEADER_LEN..].to_vec();
    let len = key
        .open_in_place(nonce, Aad::from(&env[..HEADER_LEN]), &mut plain)
        .unwrap()
        .len();
    plain.truncate(len);
    plain
}

#[test]
fn round_trips_empty_one_byte_and_one_mib_binary() {
    let mut p = parties();
    let big: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(31) >> 3) as u8)
        .collect();
    for content in [&b""[..], &[0xff], &big] {
        let env = seal_for_bob(&mut p, content);
        assert_eq!(env.len(), ENVELOPE_OVERHEAD + content.len());
        let opened = decrypt_message(&p.bob, &env).unwrap();
        assert_eq!(opened.sender(), &p.alice.public());
        assert_eq!(opened.message_id(), ID);
        assert_eq!(opened.timestamp(), TS);
        assert_eq!(opened.content(), content);
    }
}

#[test]
fn relays_see_neither_sender_nor_content() {
    let mut p = parties();
    let env = seal_for_bob(&mut p, b"secret words");
    let sender = p.alice.public().to_bytes();
    assert!(!env.windows(32).any(|w| w == sender));
    assert!(!env.windows(12).any(|w| w == b"secret words"));
    let opened = decrypt_message(&p.bob, &env).unwrap();
    assert!(!format!("{opened:?}").contains("secret"));
}

#[test]
fn wrong_recipient_fails() {
    let mut p = parties();
    let env = seal_for_bob(&mut p, b"hi");
    assert_eq!(
        decrypt_message(&p.carol, &env).unwrap_err(),
        EnvelopeError::Decrypt
    );
}

#[test]
fn tampering_any_byte_fails() {
    let mut p = parties();
    let env = seal_for_bob(&mut p, b"0123456789");
    for i in 0..env.len() {
        let mut bad = env.clone();
        bad[i] ^= 0x01;
        let err = decrypt_message(&p.bob, &bad).unwrap_err();
        let expected = if i == 0 {
            EnvelopeError::UnsupportedVersion(ENVELOPE_VERSION ^ 1)
        } else {
            EnvelopeError::Decrypt
        };
        // Flipping a bit of E can land on a small-order point only with negligible chance.
        assert_eq!(err, expected, "byte {i}");
    }
}

#[test]
fn trailing_byte_fails() {
    let mut p = parties();
    let mut env = seal_for_bob(&mut p, b"hi");
    env.push(0);
    assert_eq!(
        decrypt_message(&p.bob, &env).unwrap_err(),
        EnvelopeError::Decrypt
    );
}

#[test]
fn truncation_at_every_length_fails() {
    let mut p = parties();
    let env = seal_for_bob(&mut p, b"hi");
    for len in 0..env.len() {
        let err = decrypt_message(&p.bob, &env[..len]).unwrap_err();
        let framing = len < ENVELOPE_OVERHEAD;
        assert_eq!(
            matches!(err, EnvelopeError::Decode(DecodeError::Truncated { .. })),
            framing,
            "length {len}: {err:?}"
        );
        if !framing {
            assert_eq!(err, EnvelopeError::Decrypt, "length {len}");
        }
    }
}

#[test]
fn another_senders_signature_fails() {
    let mut p = parties();
    // Mallory claims Alice's identity and signs the right message with her own key.
    let ephemeral = EncryptionKeypair::generate(&mut p.rng);
    let signed = signed_message(
        &p.bob.public(),
        &ephemeral.public(),
        &ID,
        TS,
        b"pay mallory",
    );
    let inner = InnerFields {
        sender: p.alice.public(),
        signature: p.mallory.sign(&signed),
        message_id: ID,
        timestamp: TS,
    };
    let env = seal(&ephemeral, &p.bob.public(), &inner, b"pay mallory")
        .unwrap()
        .0;
    assert_eq!(
        decrypt_message(&p.bob, &env).unwrap_err(),
        EnvelopeError::BadSignature
    );
}

#[test]
fn surreptitious_forwarding_fails() {
    let mut p = parties();
    let env = seal_for_bob(&mut p, b"I love you, Bob");
    let opened = decrypt_message(&p.bob, &env).unwrap();
    // Bob re-seals Alice's signed inner part, unchanged, to Carol.
    let inner = parse_inner(&open_inner(&p.bob, &env)).unwrap();
    let ephemeral = EncryptionKeypair::generate(&mut p.rng);
    let forwarded = seal(&ephemeral, &p.carol.public(), &inner, opened.content())
        .unwrap()
        .0;
    assert_eq!(
        decrypt_message(&p.carol, &forwarded).unwrap_err(),
        EnvelopeError::BadSignature
    );
}

#[test]
fn signed_fields_cannot_be_changed_by_the_sealer() {
    let mut p = parties();
    let ephemeral = EncryptionKeypair::generate(&mut p.rng);
    let signed = signed_message(&p.bob.public(), &ephemeral.public(), &ID, TS, b"x");
    let good = InnerFields {
        sender: p.alice.public(),
        signature: p.alice.sign(&signed),
        message_id: ID,
        timestamp: TS,
    };
    let env = seal(&ephemeral, &p.bob.public(), &good, b"x").unwrap().0;
    assert!(decrypt_message(&p.bob, &env).is_ok());
    let replayed_later = InnerFields {
        timestamp: TS + 3600,
        ..good
    };
    let env = seal(&ephemeral, &p.bob.public(), &replayed_later, b"x")
        .unwrap()
        .0;
    assert_eq!(
        decrypt_message(&p.bob, &env).unwrap_err(),
        EnvelopeError::BadSignature
    );
}

#[test]
fn bad_keys_and_sizes_are_typed_errors() {
    let mut p = parties();
    assert_eq!(
        encrypt_message(
            &mut p.rng,
            &p.alice,
            &EncryptionPublicKey([0; 32]),
            ID,
            TS,
            b""
        )
        .unwrap_err(),
        EnvelopeError::WeakKey
    );
    let mut env = seal_for_bob(&mut p, b"hi");
    env[1..33].fill(0);
    assert_eq!(
        decrypt_message(&p.bob, &env).unwrap_err(),
        EnvelopeError::WeakKey
    );
    let too_big = vec![0u8; MAX_CONTENT_LEN + 1];
    assert_eq!(
        encrypt_message(&mut p.rng, &p.alice, &p.bob.public(), ID, TS, &too_big).unwrap_err(),
        EnvelopeError::ContentTooLong {
            len: MAX_CONTENT_LEN + 1,
            max: MAX_CONTENT_LEN
        }
    );
    let mut huge = vec![0u8; MAX_ENVELOPE_LEN + 1];
    huge[0] = ENVELOPE_VERSION;
    assert!(matches!(
        decrypt_message(&p.bob, &huge).unwrap_err(),
        EnvelopeError::Decode(DecodeError::TooLong { .. })
    ));
}

#[test]
fn invalid_sender_key_inside_is_rejected() {
    let mut p = parties();
    let ephemeral = EncryptionKeypair::generate(&mut p.rng);
    let env = seal(
        &ephemeral,
        &p.bob.public(),
        &InnerFields {
            sender: p.alice.public(),
            signature: Signature([0; 64]),
            message_id: ID,
            timestamp: TS,
        },
        b"",
    )
    .unwrap()
    .0;
    // Rewrite the sender field with bytes that are not a curve point, then re-seal.
    let mut plain = open_inner(&p.bob, &env);
    let shared = ephemeral.diffie_hellman(&p.bob.public()).unwrap();
    let not_a_point = (0u8..=255)
        .map(|b| [b; 32])
        .find(|k| IdentityPublicKey::from_bytes(k).is_err())
        .unwrap();
    plain[..32].copy_from_slice(&not_a_point);
    let (key, nonce) = derive_key(shared.as_bytes(), &ephemeral.public(), &p.bob.public());
    let tag = key
        .seal_in_place_separate_tag(nonce, Aad::from(&env[..HEADER_LEN]), &mut plain)
        .unwrap();
    let mut bad = env[..HEADER_LEN].to_vec();
    bad.extend_from_slice(&plain);
    bad.extend_from_slice(tag.as_ref());
    assert_eq!(
        decrypt_message(&p.bob, &bad).unwrap_err(),
        EnvelopeError::InvalidSenderKey
    );
}

#[test]
fn ack_token_matches_only_for_the_real_recipient() {
    let mut rng = ChaCha20Rng::seed_from_u64(0xac);
    let sender = IdentityKeypair::generate(&mut rng);
    let recipient = EncryptionKeypair::generate(&mut rng);
    let (env, token) =
        encrypt_message_with_ack(&mut rng, &sender, &recipient.public(), [1; 16], 5, b"hi")
            .unwrap();
    let opened = decrypt_message(&recipient, &env).unwrap();
    assert_eq!(opened.ack_token(), &token);
    let (env2, token2) =
        encrypt_message_with_ack(&mut rng, &sender, &recipient.public(), [1; 16], 5, b"hi")
            .unwrap();
    assert_ne!(token, token2, "every envelope has its own token");
    assert_eq!(
        decrypt_message(&recipient, &env2).unwrap().ack_token(),
        &token2
    );
}
