//! The reference's JSON end-to-end envelope (spec §3.3).
//!
//! ```text
//! { "payload": { "ephemeral_public": hex(E), "nonce": hex(12 bytes),
//!                "ciphertext": hex(AES-256-GCM(dek, nonce, content) ‖ tag) },
//!   "signature": hex(Ed25519(sender, spaced-canonical-JSON(payload))),
//!   "sender_public": hex(sender Ed25519 key) }
//! dek = HKDF-SHA256(ikm = X25519(e, recipient), salt = none, info = "valence-relay-v1")
//! ```
//!
//! Nothing binds the recipient, a timestamp or a message id (W15), and the signature covers
//! only the ciphertext, so anyone can strip it and re-sign the payload as their own. The
//! reference node also verifies with the `sender_public` found in the envelope (W16); here
//! the caller says whom it expects, and any other `sender_public` is rejected.

use rand_core::{CryptoRng, RngCore};
use ring::aead::NONCE_LEN;
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use super::canonical_json::{JsonStyle, canonical_json};
use super::{ReferenceError, gcm, hkdf32};
use crate::keys::{
    EncryptionKeypair, EncryptionPublicKey, IdentityKeypair, IdentityPublicKey, Signature,
    random_array,
};

/// HKDF `info` of the envelope's data key.
const E2E_KDF_INFO: &[u8] = b"valence-relay-v1";

/// The envelope as the reference writes it. Unknown fields are rejected (the reference never
/// writes any; extra `payload` fields would change the signed text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceEnvelope {
    /// The encrypted part; its spaced canonical JSON is what is signed.
    pub payload: ReferencePayload,
    /// Ed25519 signature, 128 hex characters.
    pub signature: String,
    /// The sender's Ed25519 public key, 64 hex characters. Untrusted: see
    /// [`decrypt_message_reference`].
    pub sender_public: String,
}

/// The signed, encrypted part of a [`ReferenceEnvelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferencePayload {
    /// The sender's ephemeral X25519 public key, 64 hex characters.
    pub ephemeral_public: String,
    /// The AES-GCM nonce, 24 hex characters.
    pub nonce: String,
    /// AES-256-GCM ciphertext with the 16-byte tag appended, as hex.
    pub ciphertext: String,
}

impl ReferencePayload {
    /// The bytes the reference signs: `json.dumps(payload, sort_keys=True)`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let value = json!({
            "ephemeral_public": self.ephemeral_public,
            "nonce": self.nonce,
            "ciphertext": self.ciphertext,
        });
        canonical_json(&value, JsonStyle::Spaced)
            .expect("a payload of three strings holds no number")
            .into_bytes()
    }
}

/// Encrypts `content` for `recipient` and signs it as `sender`, in the reference format
/// (`crypto.encrypt_message(content, recipient_public_key, sender_private_key)`).
///
/// # Errors
/// [`ReferenceError::WeakKey`] if `recipient` is a small-order point.
pub fn encrypt_message_reference(
    rng: &mut (impl RngCore + CryptoRng),
    content: &[u8],
    recipient: &EncryptionPublicKey,
    sender: &IdentityKeypair,
) -> Result<ReferenceEnvelope, ReferenceError> {
    let ephemeral = EncryptionKeypair::generate(rng);
    let shared = ephemeral
        .diffie_hellman(recipient)
        .ok_or(ReferenceError::WeakKey)?;
    let dek = Zeroizing::new(hkdf32(shared.as_bytes(), &[E2E_KDF_INFO]));
    let nonce: [u8; NONCE_LEN] = random_array(rng);
    let ciphertext = gcm::seal_with_nonce(&dek, nonce, content);
    let payload = ReferencePayload {
        ephemeral_public: ephemeral.public().to_hex(),
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(ciphertext),
    };
    let signature = sender.sign(&payload.signed_bytes());
    Ok(ReferenceEnvelope {
        payload,
        signature: signature.to_hex(),
        sender_public: sender.public().to_hex(),
    })
}

/// Checks and opens a reference envelope from `expected_sender` to `recipient`.
///
/// Unlike the reference node, the sender key comes from the caller, and an envelope whose
/// `sender_public` names anyone else is rejected before any crypto (W16). As in the reference,
/// the signature is checked before the ECDH.
///
/// # Errors
/// [`ReferenceError::BadHex`] for a malformed field (including a nonce that is not 12 bytes,
/// which the reference would accept), [`ReferenceError::SenderMismatch`],
/// [`ReferenceError::BadSignature`], [`ReferenceError::WeakKey`] for a small-order ephemeral
/// key, [`ReferenceError::Decrypt`] for a wrong recipient or a modified ciphertext.
pub fn decrypt_message_reference(
    envelope: &ReferenceEnvelope,
    recipient: &EncryptionKeypair,
    expected_sender: &IdentityPublicKey,
) -> Result<Vec<u8>, ReferenceError> {
    let embedded: [u8; 32] = decode_hex(&envelope.sender_public, "sender_public")?;
    if embedded != expected_sender.to_bytes() {
        return Err(ReferenceError::SenderMismatch);
    }
    let signature = Signature(decode_hex(&envelope.signature, "signature")?);
    let payload = &envelope.payload;
    let _verified = expected_sender
        .verify(&payload.signed_bytes(), &signature)
        .map_err(|_| ReferenceError::BadSignature)?;

    let ephemeral = EncryptionPublicKey(decode_hex(&payload.ephemeral_public, "ephemeral_public")?);
    let nonce: [u8; NONCE_LEN] = decode_hex(&payload.nonce, "nonce")?;
    let ciphertext =
        hex::decode(&payload.ciphertext).map_err(|_| ReferenceError::BadHex("ciphertext"))?;
    let shared = recipient
        .diffie_hellman(&ephemeral)
        .ok_or(ReferenceError::WeakKey)?;
    let dek = Zeroizing::new(hkdf32(shared.as_bytes(), &[E2E_KDF_INFO]));
    gcm::open_with_nonce(&dek, nonce, &ciphertext)
}

/// Decodes hex (either case) of exactly `N` bytes.
fn decode_hex<const N: usize>(s: &str, field: &'static str) -> Result<[u8; N], ReferenceError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| ReferenceError::BadHex(field))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    struct Parties {
        alice: IdentityKeypair,
        mallory: IdentityKeypair,
        bob: EncryptionKeypair,
        rng: ChaCha20Rng,
    }

    fn parties() -> Parties {
        let mut rng = ChaCha20Rng::seed_from_u64(40);
        Parties {
            alice: IdentityKeypair::generate(&mut rng),
            mallory: IdentityKeypair::generate(&mut rng),
            bob: EncryptionKeypair::generate(&mut rng),
            rng,
        }
    }

    #[test]
    fn round_trip_and_json_size() {
        let mut p = parties();
        let env = encrypt_message_reference(&mut p.rng, b"hi", &p.bob.public(), &p.alice).unwrap();
        let opened = decrypt_message_reference(&env, &p.bob, &p.alice.public()).unwrap();
        assert_eq!(opened, b"hi");
        // Spec §3.3: Python's json.dumps of the envelope is 2·|plaintext| + 418 bytes; serde
        // writes no spaces after its 10 separators, so it is 10 bytes shorter.
        assert_eq!(serde_json::to_string(&env).unwrap().len(), 2 * 2 + 418 - 10);
    }

    #[test]
    fn w16_spoofed_sender_is_rejected() {
        let mut p = parties();
        // Mallory signs with her own key and claims to be herself: the caller expected Alice.
        let env =
            encrypt_message_reference(&mut p.rng, b"hi", &p.bob.public(), &p.mallory).unwrap();
        assert_eq!(
            decrypt_message_reference(&env, &p.bob, &p.alice.public()).unwrap_err(),
            ReferenceError::SenderMismatch
        );
        // Mallory claims to be Alice but cannot sign as her.
        let mut forged = env;
        forged.sender_public = p.alice.public().to_hex();
        assert_eq!(
            decrypt_message_reference(&forged, &p.bob, &p.alice.public()).unwrap_err(),
            ReferenceError::BadSignature
        );
    }

    #[test]
    fn tampering_and_bad_fields_fail() {
        let mut p = parties();
        let env = encrypt_message_reference(&mut p.rng, b"hi", &p.bob.public(), &p.alice).unwrap();
        let alice = p.alice.public();
        let mut bad = env.clone();
        bad.payload.ciphertext.replace_range(0..1, "f");
        if bad.payload.ciphertext == env.payload.ciphertext {
            bad.payload.ciphertext.replace_range(0..1, "0");
        }
        assert_eq!(
            decrypt_message_reference(&bad, &p.bob, &alice).unwrap_err(),
            ReferenceError::BadSignature
        );
        let mut bad = env.clone();
        bad.signature.pop();
        assert_eq!(
            decrypt_message_reference(&bad, &p.bob, &alice).unwrap_err(),
            ReferenceError::BadHex("signature")
        );
        let other = EncryptionKeypair::generate(&mut p.rng);
        assert_eq!(
            decrypt_message_reference(&env, &other, &alice).unwrap_err(),
            ReferenceError::Decrypt
        );
        let json = serde_json::to_string(&env).unwrap();
        let extra = json.replacen(
            "{\"ephemeral_public\"",
            "{\"x\":\"\",\"ephemeral_public\"",
            1,
        );
        assert!(serde_json::from_str::<ReferenceEnvelope>(&extra).is_err());
    }
}
