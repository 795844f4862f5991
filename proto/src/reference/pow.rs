//! The reference's proof-of-work hash (spec §3.8), for cross-checks.
//!
//! The reference hashes `challenge + str(nonce) + router_id` and counts leading zero bits. Its
//! challenge is chosen by the router, so a proof is reusable forever (W15); our own PoW binds a
//! seed-issued challenge. These two functions only reproduce the reference's arithmetic.

use sha2::{Digest, Sha256};

/// `SHA-256(UTF-8(challenge ‖ decimal(nonce) ‖ router_id))`.
pub fn pow_digest(challenge: &str, nonce: u64, router_id: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(challenge.as_bytes());
    hasher.update(nonce.to_string().as_bytes());
    hasher.update(router_id.as_bytes());
    hasher.finalize().into()
}

/// The number of leading zero bits of `digest`: 8 per zero byte, then the high zero bits of
/// the first non-zero byte (the reference's "difficulty").
pub fn leading_zero_bits(digest: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for &byte in digest {
        bits += byte.leading_zeros();
        if byte != 0 {
            break;
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bits() {
        let mut d = [0u8; 32];
        assert_eq!(leading_zero_bits(&d), 256);
        d[1] = 0x10;
        assert_eq!(leading_zero_bits(&d), 11);
        d[0] = 0x80;
        assert_eq!(leading_zero_bits(&d), 0);
    }
}
