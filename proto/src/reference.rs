//! The Python reference's crypto formats (`our-network` 0.1.0), byte for byte.
//!
//! **This is not what our network uses.** It exists so that we can read what the reference
//! writes, write what the reference reads, and cross-check both against the Python package
//! (the vectors in `proto/tests/vectors/`, made by `tests/interop/gen_reference_vectors.py`).
//! Our end-to-end envelope is [`crate::envelope`]; our circuits use the fixed-size cells of
//! [`crate::onion`].
//!
//! The formats here have the reference's weaknesses (spec §8), and keep them on purpose:
//!
//! * **W8, hop position leaks.** An onion layer adds 93 bytes per hop and a circuit layer 28,
//!   so every relay learns how far it is from both ends just from the size it sees.
//! * **W15, no replay protection.** The JSON envelope carries no timestamp, message id or
//!   recipient binding: a captured envelope can be replayed, or its signed payload re-used.
//! * **W17, unauthenticated circuit keys.**
//!   [`derive_circuit_key`](crate::reference::derive_circuit_key) is plain X25519 + HKDF
//!   with no binding to the router's identity.
//!
//! One weakness is fixed where the format allows it:
//! [`decrypt_message_reference`](crate::reference::decrypt_message_reference) checks the
//! signature with the sender key the *caller* expects, and rejects an envelope whose embedded
//! `sender_public` names anyone else (W16: the reference node trusts the embedded key).
//!
//! Parsing is stricter than the reference wherever the reference would accept something it
//! never produces (an onion flag byte other than 0 or 1, a hop id with NUL bytes, a nonce that
//! is not 12 bytes, unknown JSON fields); each function's doc names the difference.
//!
//! Implements spec §3.3 to §3.8 of `shared/reference/seed-spec.md`.

mod canonical_json;
mod circuit;
mod gcm;
mod message;
mod onion;
mod padding;
mod pow;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::codec::DecodeError;
use crate::keys::{EncryptionKeypair, EncryptionPublicKey};

pub use canonical_json::{JsonStyle, canonical_json};
pub use circuit::{
    decrypt_backward_layers, decrypt_circuit_layer, encrypt_backward_payload,
    encrypt_circuit_payload,
};
pub use message::{
    ReferenceEnvelope, ReferencePayload, decrypt_message_reference, encrypt_message_reference,
};
pub use onion::{
    MAX_HOP_ID_LEN, ONION_LAYER_OVERHEAD, PeeledLayer, create_onion, decrypt_onion_layer,
    encrypt_onion_layer, peel_onion,
};
pub use padding::{MESSAGE_SIZE_BUCKETS, get_padded_size, pad_message, unpad_message};
pub use pow::{leading_zero_bits, pow_digest};

/// HKDF `info` prefix of [`derive_circuit_key`]; the circuit id follows it.
const CIRCUIT_KDF_INFO: &str = "valence-circuit-v1:";

/// Why a reference-format operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// Bytes ended too early (a layer shorter than its nonce and tag) or a field was too long.
    #[error("malformed input: {0}")]
    Decode(#[from] DecodeError),
    /// AES-GCM refused to open: wrong key, or the bytes were modified.
    #[error("decryption failed (wrong key or modified data)")]
    Decrypt,
    /// A decrypted onion routing header is not one the reference writes (flag byte, id
    /// padding or UTF-8).
    #[error("malformed onion routing header: {0}")]
    MalformedHeader(&'static str),
    /// Local misuse: `hop_keys` and `hop_ids` differ in length.
    #[error("hop_keys and hop_ids must have same length ({keys} keys, {ids} ids)")]
    LengthMismatch {
        /// Number of keys given.
        keys: usize,
        /// Number of ids given.
        ids: usize,
    },
    /// Local misuse: a next-hop id is empty, longer than [`MAX_HOP_ID_LEN`] bytes or holds a
    /// NUL byte, so it would not survive the 64-byte NUL-padded field.
    #[error("invalid next-hop id: {0}")]
    InvalidHopId(&'static str),
    /// X25519 gave an all-zero secret: the peer key is a small-order point.
    #[error("X25519 with a small-order public key")]
    WeakKey,
    /// A hex field of the JSON envelope is not hex of the right length.
    #[error("bad hex in field {0}")]
    BadHex(&'static str),
    /// The envelope's `sender_public` is not the sender the caller expects (W16).
    #[error("envelope sender_public is not the expected sender")]
    SenderMismatch,
    /// The envelope's signature does not verify under the expected sender key.
    #[error("envelope signature does not verify")]
    BadSignature,
    /// A JSON number that is not an integer: Python's float `repr` is not reproduced here.
    #[error("canonical JSON of a non-integer number is not supported")]
    UnsupportedJsonNumber,
}

/// A 32-byte AES-256-GCM key for one hop of a reference onion or circuit payload.
///
/// Zeroized on drop; no `Clone`, and `Debug` does not show it.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct HopKey([u8; 32]);

impl HopKey {
    /// Wraps raw key bytes (normally the output of [`derive_circuit_key`]).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key, for a cross-check against a test vector or for the AEAD.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for HopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HopKey(..)")
    }
}

/// The reference's circuit hop key: `HKDF-SHA256(ikm = X25519(private, peer), salt = none,
/// info = "valence-circuit-v1:" + circuit_id, L = 32)` (spec §3.6).
///
/// Symmetric: each side gets the same key from its own secret and the other's public key.
/// Nothing binds the router's identity (W17).
///
/// # Errors
/// [`ReferenceError::WeakKey`] if `peer` is a small-order point. The reference does not check
/// this and would derive a key from an all-zero secret.
pub fn derive_circuit_key(
    private: &EncryptionKeypair,
    peer: &EncryptionPublicKey,
    circuit_id: &str,
) -> Result<HopKey, ReferenceError> {
    let shared = private
        .diffie_hellman(peer)
        .ok_or(ReferenceError::WeakKey)?;
    Ok(HopKey(hkdf32(
        shared.as_bytes(),
        &[CIRCUIT_KDF_INFO.as_bytes(), circuit_id.as_bytes()],
    )))
}

/// HKDF-SHA256 with no salt (RFC 5869: a zero-filled salt) and a 32-byte output, the KDF of
/// every reference format. `info` is the concatenation of its parts.
fn hkdf32(ikm: &[u8; 32], info: &[&[u8]]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(None, ikm)
        .expand_multi_info(info, &mut out)
        .expect("32 bytes is within HKDF-SHA256's 8160-byte output limit");
    out
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn circuit_key_is_symmetric_and_per_circuit() {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let a = EncryptionKeypair::generate(&mut rng);
        let b = EncryptionKeypair::generate(&mut rng);
        let ab = derive_circuit_key(&a, &b.public(), "c1").unwrap();
        let ba = derive_circuit_key(&b, &a.public(), "c1").unwrap();
        assert_eq!(ab.as_bytes(), ba.as_bytes());
        let other = derive_circuit_key(&a, &b.public(), "c2").unwrap();
        assert_ne!(ab.as_bytes(), other.as_bytes());
        assert_eq!(format!("{ab:?}"), "HopKey(..)");
    }

    #[test]
    fn circuit_key_rejects_small_order_peer() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let a = EncryptionKeypair::generate(&mut rng);
        assert_eq!(
            derive_circuit_key(&a, &EncryptionPublicKey([0; 32]), "c").unwrap_err(),
            ReferenceError::WeakKey
        );
    }
}
