//! Circuits, links and a pooled timer for the benches. Circuits come from random key material:
//! the benches measure cell crypto, so they skip the handshakes (benched in `handshake.rs`).
#![allow(dead_code, reason = "shared by several benches; each uses a subset")]

use std::time::{Duration, Instant};

use criterion::black_box;
use ournet_proto::link::LinkCrypto;
use ournet_proto::onion::{ClientCircuitCrypto, HOP_KEY_MATERIAL_LEN, HopKeys, RelayHopCrypto};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use zeroize::Zeroizing;

/// Hops of the client circuits the benches build: the usual path length.
pub(crate) const HOPS: usize = 3;
/// Inputs built per timed stretch: enough that the timer's cost vanishes (about 2 timer reads
/// per 128 operations), few enough that the cells stay in L2 as a relay's just-received cells
/// would.
pub(crate) const POOL_CELLS: u64 = 128;

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
            .expect("hops is within MAX_HOPS");
        relays.push(RelayHopCrypto::new(HopKeys::from_key_material(&km)));
    }
    (client, relays)
}

/// A relay's end of a fresh circuit and `n` forward bodies of `body_len` bytes for it, in the
/// order it must peel them. The client wraps for this one hop only: a relay's peel is the same
/// work at every position (it cannot even tell its position), and a 1-hop wrap keeps the
/// untimed setup short.
pub(crate) fn relay_with_cells(
    rng: &mut ChaCha20Rng,
    body_len: usize,
    n: usize,
) -> (RelayHopCrypto, Vec<Vec<u8>>) {
    let (mut client, relays) = circuit(rng, 1);
    let cells = (0..n)
        .map(|_| {
            let mut body = vec![0x5a; body_len];
            client
                .seal_forward(&mut body, rng)
                .expect("body is longer than the tag area");
            body
        })
        .collect();
    let relay = relays.into_iter().next().expect("one hop");
    (relay, cells)
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

/// For `Bencher::iter_custom`: runs `iters` iterations in pools of at most `per_pool` and
/// times only `run`. `setup(k)` builds the state for `k` iterations that must run in sequence
/// (a fresh circuit and its cells); `run` performs all `k` of them.
pub(crate) fn time_pooled<S>(
    iters: u64,
    per_pool: u64,
    mut setup: impl FnMut(usize) -> S,
    mut run: impl FnMut(&mut S),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let k = left.min(per_pool.max(1));
        let mut state = setup(usize::try_from(k).expect("a pool fits in memory"));
        let start = now();
        run(black_box(&mut state));
        total += start.elapsed();
        drop(black_box(state));
        left -= k;
    }
    total
}

#[expect(
    clippy::disallowed_methods,
    reason = "a bench times its own region; proto's sans-IO code never reads the clock"
)]
fn now() -> Instant {
    Instant::now()
}
