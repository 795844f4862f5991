//! Reference circuit payload layers, with no routing header (spec §3.5).
//!
//! ```text
//! one layer:  | nonce (12) | AES-256-GCM(key, nonce, inner) | tag (16) |
//! forward:    the originator wraps for the last hop first, so hop 0's layer is outermost
//! backward:   each hop wraps what it got from further out; the originator peels in path order
//! ```
//!
//! Each layer adds 28 bytes, which tells a relay its hop position (W8). Only for interop.

use rand_core::{CryptoRng, RngCore};

use super::{HopKey, ReferenceError, gcm};

/// Wraps `content` in one layer per key, innermost for the last key, so that hop `i` removes
/// its layer with [`decrypt_circuit_layer`] and `circuit_keys[i]`. With no keys, returns
/// `content` unchanged.
pub fn encrypt_circuit_payload(
    rng: &mut (impl RngCore + CryptoRng),
    content: &[u8],
    circuit_keys: &[HopKey],
) -> Vec<u8> {
    let mut payload = content.to_vec();
    for key in circuit_keys.iter().rev() {
        payload = gcm::seal(rng, key, &payload);
    }
    payload
}

/// Removes one layer (a relay's forward step, or one step of the originator's backward peel).
///
/// # Errors
/// [`ReferenceError::Decode`] if shorter than a nonce and a tag, [`ReferenceError::Decrypt`]
/// if the key is wrong or the payload was modified.
pub fn decrypt_circuit_layer(payload: &[u8], key: &HopKey) -> Result<Vec<u8>, ReferenceError> {
    gcm::open(key, payload)
}

/// Adds one backward layer: what each hop does to a reply on its way to the originator.
pub fn encrypt_backward_payload(
    rng: &mut (impl RngCore + CryptoRng),
    content: &[u8],
    key: &HopKey,
) -> Vec<u8> {
    gcm::seal(rng, key, content)
}

/// The originator's backward peel: removes the layers in path order (the first hop's, which
/// was added last, first).
///
/// # Errors
/// As [`decrypt_circuit_layer`], for the first layer that fails.
pub fn decrypt_backward_layers(
    payload: &[u8],
    circuit_keys: &[HopKey],
) -> Result<Vec<u8>, ReferenceError> {
    let mut result = payload.to_vec();
    for key in circuit_keys {
        result = gcm::open(key, &result)?;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn forward_and_backward_round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(30);
        let keys: Vec<HopKey> = (1..=3).map(|i| HopKey::from_bytes([i; 32])).collect();
        let forward = encrypt_circuit_payload(&mut rng, b"data", &keys);
        assert_eq!(forward.len(), 4 + 3 * 28);
        let mut p = forward;
        for key in &keys {
            p = decrypt_circuit_layer(&p, key).unwrap();
        }
        assert_eq!(p, b"data");

        let mut back = b"reply".to_vec();
        for key in keys.iter().rev() {
            back = encrypt_backward_payload(&mut rng, &back, key);
        }
        assert_eq!(decrypt_backward_layers(&back, &keys).unwrap(), b"reply");
        assert_eq!(
            decrypt_backward_layers(&back, &keys[1..]).unwrap_err(),
            ReferenceError::Decrypt
        );
        assert!(matches!(
            decrypt_circuit_layer(&[0; 27], &keys[0]),
            Err(ReferenceError::Decode(_))
        ));
    }
}
