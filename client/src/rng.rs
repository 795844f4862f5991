//! Where the client's randomness comes from: a ChaCha20 generator seeded from the OS, one per
//! task, handed to `proto` as an argument.

use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};

/// A fresh generator seeded from the OS.
pub(crate) fn fresh_rng() -> ChaCha20Rng {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut seed[..]);
    ChaCha20Rng::from_seed(*seed)
}

/// A random message id or nonce.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}
