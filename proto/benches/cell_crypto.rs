//! Per-cell crypto cost of the onion and link layers, against plain AES-256-GCM in the same
//! run (issue 3, "Benchmarks"; PROTOCOL.md §3.3 and §5).
//!
//! Two groups:
//!
//! * `cell_crypto/per_cell`: one cell per iteration. The ceiling is one ring AES-256-GCM seal
//!   over a whole cell body ([`BODY_LEN`] bytes); every other entry is an operation a relay or
//!   a client runs per cell. Throughput is [`BODY_LEN`] bytes for every entry, so the GB/s
//!   column compares like with like; the time column is the cost per cell. Beside the ceiling
//!   are three seals with three keys (what a 3-hop wrap cannot go below), a 16-byte GCM
//!   seal+open (what an AEAD over the header alone would cost) and a GCM open of a RELAY
//!   payload with the tag area as AAD (the GCM share of a relay peel).
//! * `cell_crypto/batch`: the batch entry points with 1, 16 and 64 cells per call (time is
//!   per call; divide by the batch size for the cost per cell).
//!
//! Relay peels and client opens need cells sealed in sequence for their counters, so they
//! run in pools: an untimed setup builds a fresh circuit (or link) and up to
//! [`POOL_CELLS`] cells for it, and only the peels or opens are timed
//! ([`fixtures::time_pooled`]).
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented `pub fn`"
)]

#[path = "support/fixtures.rs"]
mod fixtures;

use criterion::{
    BatchSize, BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main,
};
use ournet_proto::cell::{
    BODY_LEN, CELL_LEN, CellCmd, CellHeader, CircId, PAYLOAD_LEN, TAG_AREA_LEN, TAG_LEN,
};
use ournet_proto::link::LinkCrypto;
use ournet_proto::onion::ClientCircuitCrypto;
use rand_chacha::ChaCha20Rng;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

use fixtures::{HOPS, POOL_CELLS, circuit, link_pair, relay_with_cells, rng, time_pooled};

/// Batch sizes for the batch entry points.
const BATCHES: [usize; 3] = [1, 16, 64];

fn per_cell(c: &mut Criterion) {
    let mut group = c.benchmark_group("cell_crypto/per_cell");
    group.throughput(Throughput::Bytes(BODY_LEN as u64));
    let mut rng = rng(1);
    let mut body = vec![0x5a_u8; BODY_LEN];
    let keys: Vec<LessSafeKey> = (0..HOPS).map(|i| gcm_key(i as u8)).collect();
    let mut seq = 0u64;

    group.bench_function("gcm_seal_body (ceiling)", |b| {
        b.iter(|| {
            seq += 1;
            gcm_seal(&keys[0], seq, black_box(&mut body))
        });
    });
    group.bench_function("gcm_seal_body_x3", |b| {
        b.iter(|| {
            seq += 1;
            keys.iter()
                .map(|key| gcm_seal(key, seq, black_box(&mut body)))
                .last()
        });
    });
    group.bench_function("gcm_seal_open_16B (header-only AEAD)", |b| {
        let mut header = [0u8; 16];
        b.iter(|| {
            seq += 1;
            let tag = gcm_seal(&keys[0], seq, black_box(&mut header));
            keys[0]
                .open_in_place_separate_tag(nonce(seq), Aad::empty(), tag, &mut header, 0..)
                .expect("tag made just above")
                .len()
        });
    });
    group.bench_function("gcm_open_payload_aad (GCM part of a peel)", |b| {
        b.iter_batched_ref(
            || {
                seq += 1;
                sealed_payload(&keys[0], seq)
            },
            |(seq, area, payload)| {
                let (tag, aad) = area.split_at(TAG_LEN);
                let tag = Tag::try_from(tag).expect("slot is one tag long");
                keys[0]
                    .open_in_place_separate_tag(nonce(*seq), Aad::from(aad), tag, payload, 0..)
                    .expect("sealed in setup")
                    .len()
            },
            BatchSize::NumIterations(POOL_CELLS),
        );
    });

    group.bench_function("relay_peel_forward", |b| {
        b.iter_custom(|iters| {
            time_pooled(
                iters,
                POOL_CELLS,
                |k| relay_with_cells(&mut rng, BODY_LEN, k),
                |(relay, cells)| {
                    for cell in cells {
                        relay.peel_forward(cell).expect("cells come in sequence");
                    }
                },
            )
        });
    });
    let (mut client, mut relays) = circuit(&mut rng, HOPS);
    group.bench_function("relay_seal_backward", |b| {
        b.iter(|| {
            relays[0]
                .seal_backward(black_box(&mut body))
                .expect("counter far from exhausted");
        });
    });
    group.bench_function("client_wrap_forward_3hop", |b| {
        b.iter(|| {
            client
                .seal_forward(black_box(&mut body), &mut rng)
                .expect("circuit has hops");
        });
    });
    group.bench_function("client_open_backward_3hop", |b| {
        b.iter_custom(|iters| {
            time_pooled(
                iters,
                POOL_CELLS,
                |k| backward_cells(&mut rng, k),
                |(client, cells)| {
                    for cell in cells {
                        client.open_backward(cell).expect("sealed by every hop");
                    }
                },
            )
        });
    });

    let (mut send, mut recv) = link_pair(&mut rng);
    let mut cell = [0x5a_u8; CELL_LEN];
    group.bench_function("link_header_seal_open (RELAY)", |b| {
        b.iter(|| {
            send.seal(relay_header(), black_box(&mut cell))
                .expect("sequence far from exhausted");
            recv.open(black_box(&mut cell)).expect("sealed just above")
        });
    });
    let create = CellHeader {
        circ_id: CircId::new(0x8000_0001),
        cmd: CellCmd::CREATE,
    };
    group.bench_function("link_seal_open (non-RELAY, full AEAD)", |b| {
        b.iter(|| {
            send.seal(create, black_box(&mut cell))
                .expect("sequence far from exhausted");
            recv.open(black_box(&mut cell)).expect("sealed just above")
        });
    });
    group.finish();
}

fn batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("cell_crypto/batch");
    let mut rng = rng(2);
    for n in BATCHES {
        group.throughput(Throughput::Bytes((BODY_LEN * n) as u64));
        let per_pool = POOL_CELLS / n as u64;
        group.bench_function(BenchmarkId::new("relay_peel_forward_batch", n), |b| {
            b.iter_custom(|iters| {
                time_pooled(
                    iters,
                    per_pool,
                    |k| relay_with_cells(&mut rng, BODY_LEN, k * n),
                    |(relay, cells)| {
                        for batch in cells.chunks_mut(n) {
                            relay
                                .peel_forward_batch(batch)
                                .expect("cells come in sequence");
                        }
                    },
                )
            });
        });
        group.bench_function(BenchmarkId::new("link_open_batch (RELAY)", n), |b| {
            b.iter_custom(|iters| {
                time_pooled(
                    iters,
                    per_pool,
                    |k| link_cells(&mut rng, k * n),
                    |(recv, cells, headers)| {
                        for batch in cells.chunks_mut(n) {
                            headers.clear();
                            recv.open_batch(batch, headers)
                                .expect("cells come in sequence");
                        }
                    },
                )
            });
        });
    }
    group.finish();
}

/// A key, its sequence number, and a RELAY payload it sealed with the tag area (tag in slot 0,
/// the other slots as AAD), as a relay's peel opens it.
fn sealed_payload(key: &LessSafeKey, seq: u64) -> (u64, [u8; TAG_AREA_LEN], Vec<u8>) {
    let mut area = [0x5a_u8; TAG_AREA_LEN];
    let (tag_slot, aad) = area.split_at_mut(TAG_LEN);
    let mut payload = vec![0x5a_u8; PAYLOAD_LEN];
    let tag = key
        .seal_in_place_separate_tag(nonce(seq), Aad::from(&*aad), &mut payload)
        .expect("buffer within GCM's length limit");
    tag_slot.copy_from_slice(tag.as_ref());
    (seq, area, payload)
}

/// A fresh 3-hop circuit's client and `k` backward cells that every hop sealed, last hop
/// first, in the order the client receives them.
fn backward_cells(rng: &mut ChaCha20Rng, k: usize) -> (ClientCircuitCrypto, Vec<Vec<u8>>) {
    let (client, mut relays) = circuit(rng, HOPS);
    let cells = (0..k)
        .map(|_| {
            let mut body = vec![0u8; BODY_LEN];
            body[TAG_AREA_LEN..].fill(0x5a);
            for relay in relays.iter_mut().rev() {
                relay
                    .seal_backward(&mut body)
                    .expect("counter far from exhausted");
            }
            body
        })
        .collect();
    (client, cells)
}

/// A fresh link's receiving end and `k` RELAY cells its peer sealed, with room for the
/// headers `open_batch` returns.
fn link_cells(
    rng: &mut ChaCha20Rng,
    k: usize,
) -> (LinkCrypto, Vec<[u8; CELL_LEN]>, Vec<CellHeader>) {
    let (mut send, recv) = link_pair(rng);
    let mut cells = vec![[0x5a_u8; CELL_LEN]; k];
    for cell in &mut cells {
        send.seal(relay_header(), cell)
            .expect("sequence far from exhausted");
    }
    (recv, cells, Vec::with_capacity(k))
}

fn relay_header() -> CellHeader {
    CellHeader {
        circ_id: CircId::new(0x8000_0001),
        cmd: CellCmd::RELAY,
    }
}

fn gcm_key(i: u8) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[i; 32]).expect("32-byte AES-256 key"))
}

fn gcm_seal(key: &LessSafeKey, seq: u64, buf: &mut [u8]) -> Tag {
    key.seal_in_place_separate_tag(nonce(seq), Aad::empty(), buf)
        .expect("buffer within GCM's length limit")
}

fn nonce(seq: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

criterion_group!(benches, per_cell, batch);
criterion_main!(benches);
