//! Shared fixtures for the `ournet-proto` fuzz targets: a cursor that turns fuzz bytes into
//! structured choices, fixed keys, seeded RNGs and the one base `Instant`.
//!
//! Everything here is deterministic given the input, so a crash reproduces from its artifact.
//! This is harness code, not `proto/`: it may read the clock (once, for a base `Instant` that
//! the handshakes need as an argument; no target reads elapsed time).

use std::sync::OnceLock;
use std::time::Instant;

use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_proto::onion::{HOP_KEY_MATERIAL_LEN, HopKeys};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

/// Reads structured choices off the fuzz input. Every read succeeds: past the end it yields
/// zeros (or an empty slice), so any input is a valid program for a target.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    /// Starts reading `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    /// One byte, or 0 at the end.
    pub fn byte(&mut self) -> u8 {
        let [b] = self.array::<1>();
        b
    }

    /// A big-endian `u16`, zero-padded at the end.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.array())
    }

    /// A big-endian `u64`, zero-padded at the end.
    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.array())
    }

    /// `N` bytes, zero-padded at the end.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.rest.len());
        let (head, tail) = self.rest.split_at(n);
        out[..n].copy_from_slice(head);
        self.rest = tail;
        out
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = tail;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }
}

/// `data` zero-padded or truncated to exactly `N` bytes.
pub fn fit<const N: usize>(data: &[u8]) -> [u8; N] {
    Input::new(data).array()
}

/// A ChaCha20 RNG seeded from `seed`.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The base instant for the handshakes' `now` argument, read once per process.
pub fn t0() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

/// A fixed Ed25519 identity, distinct per `n`.
pub fn identity(n: u8) -> IdentityKeypair {
    IdentityKeypair::from_secret_bytes(&[n; 32])
}

/// A fixed X25519 key pair, distinct per `n`.
pub fn encryption_key(n: u8) -> EncryptionKeypair {
    EncryptionKeypair::from_secret_bytes(&[n.wrapping_add(0x80); 32])
}

/// Fixed hop keys for hop `n` of a circuit (both the client's and the relay's copy).
pub fn hop_keys(n: u8) -> HopKeys {
    let mut km = Zeroizing::new([0u8; HOP_KEY_MATERIAL_LEN]);
    for (b, i) in km.iter_mut().zip(0u8..) {
        *b = n.wrapping_mul(0x3b) ^ i;
    }
    HopKeys::from_key_material(&km)
}
