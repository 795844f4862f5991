//! Circuits and links for the benches, built from random key material: the benches measure
//! cell crypto, so they skip the handshakes (benched on their own in `handshake.rs`).
#![allow(dead_code, reason = "shared by several benches; each uses a subset")]

use ournet_proto::link::LinkCrypto;
use ournet_proto::onion::{ClientCircuitCrypto, HOP_KEY_MATERIAL_LEN, HopKeys, RelayHopCrypto};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use zeroize::Zeroizing;

/// Hops of the circuits the benches build: the usual path length.
pub(crate) const HOPS: usize = 3;

/// A deterministic RNG, so every run measures the same bytes.
pub(crate) fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A client circuit of `hops` hops and the relays' ends of it, in path order.
pub(crate) fn circuit(
    rng: &mut ChaCha20Rng,
    hops: usize,
) -> (ClientCircuitCrypto, Vec<RelayHopCrypto>) {
    let mut client = ClientCircuitCrypto::new();
    let mut relays = Vec::with_capacity(hops);
    for _ in 0..hops {
        let mut km = Zeroizing::new([0u8; HOP_KEY_MATERIAL_LEN]);
        rng.fill_bytes(&mut *km);
        client
            .push_hop(HopKeys::from_key_material(&km))
            .expect("HOPS is within MAX_HOPS");
        relays.push(RelayHopCrypto::new(HopKeys::from_key_material(&km)));
    }
    (client, relays)
}

/// `n` forward bodies of `body_len` bytes, wrapped in sequence for every hop of `client`.
pub(crate) fn wrap_forward(
    client: &mut ClientCircuitCrypto,
    rng: &mut ChaCha20Rng,
    body_len: usize,
    n: usize,
) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let mut body = vec![0x5a; body_len];
            client
                .seal_forward(&mut body, rng)
                .expect("body is longer than the tag area");
            body
        })
        .collect()
}

/// A fresh circuit whose first relay is ready to peel `n` cells of `body_len` bytes, handed
/// over in the order the relay must peel them.
pub(crate) fn relay_with_cells(
    rng: &mut ChaCha20Rng,
    body_len: usize,
    n: usize,
) -> (RelayHopCrypto, Vec<Vec<u8>>) {
    let (mut client, relays) = circuit(rng, HOPS);
    let cells = wrap_forward(&mut client, rng, body_len, n);
    let first = relays.into_iter().next().expect("HOPS > 0");
    (first, cells)
}

/// Both ends of a link, as the Noise split would leave them.
pub(crate) fn link_pair(rng: &mut ChaCha20Rng) -> (LinkCrypto, LinkCrypto) {
    let mut k1 = [0u8; 32];
    let mut k2 = [0u8; 32];
    rng.fill_bytes(&mut k1);
    rng.fill_bytes(&mut k2);
    (
        LinkCrypto::from_split(&k1, &k2),
        LinkCrypto::from_split(&k2, &k1),
    )
}
