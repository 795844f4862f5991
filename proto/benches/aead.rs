//! AES-256-GCM seal on this CPU, ring against the `aes-gcm` crate: the ceiling for every cell
//! operation and the evidence behind the crate choice (issue 3, "Benchmarks").
//!
//! One group, so every figure has a same-run baseline: both crates on 1 KiB (about one cell
//! body), and both on 8 B (what one call costs whatever its length) and 8 KiB (the bulk rate
//! that batching several cells into one call could approach).

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented `pub fn`"
)]

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

/// Buffer lengths: per-call overhead, one cell body, bulk.
const LENS: [usize; 3] = [8, 1024, 8 * 1024];
const KEY: [u8; 32] = [0x42; 32];

/// A fresh 96-bit nonce per call, as the protocol's implicit counters give.
fn nonce_bytes(seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n
}

fn aead(c: &mut Criterion) {
    let mut group = c.benchmark_group("aead/aes256gcm_seal");
    let ring_key =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).expect("32-byte AES-256 key"));
    let rc_key = Aes256Gcm::new(&KEY.into());
    for len in LENS {
        group.throughput(Throughput::Bytes(len as u64));
        let mut buf = vec![0u8; len];
        let mut seq = 0u64;
        group.bench_function(BenchmarkId::new("ring", len), |b| {
            b.iter(|| {
                seq += 1;
                let nonce = Nonce::assume_unique_for_key(nonce_bytes(seq));
                ring_key
                    .seal_in_place_separate_tag(nonce, Aad::empty(), black_box(&mut buf))
                    .expect("buffer within GCM's length limit")
            });
        });
        group.bench_function(BenchmarkId::new("aes-gcm", len), |b| {
            b.iter(|| {
                seq += 1;
                let nonce = nonce_bytes(seq);
                rc_key
                    .encrypt_in_place_detached(&nonce.into(), b"", black_box(&mut buf))
                    .expect("buffer within GCM's length limit")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, aead);
criterion_main!(benches);
