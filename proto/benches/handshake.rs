//! Handshakes per second against the raw X25519 operations they are made of (issue 3,
//! "Benchmarks"; PROTOCOL.md §3.2 and §6.2).
//!
//! One group `handshake`, throughput one handshake (criterion prints handshakes per second):
//!
//! * the baselines: one X25519 `diffie_hellman` (variable base) and one X25519 key generation
//!   (fixed base), with `x25519-dalek` directly;
//! * the circuit handshake, split by side: the client's `start` (one key generation) and
//!   `finish` (two DH, the transcript MACs, HKDF, hop key schedules), and the relay's
//!   `relay_handshake` (one key generation, two DH, the same hashing); the client's cost is
//!   `start` + `finish`;
//! * the link handshakes: Noise NK (client to relay) and Noise IK (relay to relay) full rounds,
//!   both ends, and the responder's share alone, which is what a relay pays per connection.
//!
//! Setup that a measured side does not pay (the other side's messages) runs outside the timed
//! region through `iter_batched`.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented `pub fn`"
)]

use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, black_box, criterion_group, criterion_main};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use ournet_proto::handshake::{ClientHandshake, ClientHello, RelayReply, relay_handshake};
use ournet_proto::link::{LinkIdentity, LinkInitiator, LinkResponder};
use ournet_proto::{EncryptionKeypair, IdentityKeypair};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use x25519_dalek::{PublicKey, StaticSecret};

/// Inputs per criterion batch for the sides that need the other side's message first.
const POOL: u64 = 64;

/// A relay's long-term keys: identity, onion key and link identity.
struct Relay {
    id: IdentityKeypair,
    onion: EncryptionKeypair,
    link: LinkIdentity,
}

impl Relay {
    fn new(rng: &mut ChaCha20Rng) -> Self {
        Self {
            id: IdentityKeypair::generate(rng),
            onion: EncryptionKeypair::generate(rng),
            link: LinkIdentity::new(
                IdentityKeypair::generate(rng),
                EncryptionKeypair::generate(rng),
            ),
        }
    }

    fn answer(&self, rng: &mut ChaCha20Rng, hello: &ClientHello) -> RelayReply {
        relay_handshake(rng, &self.id.public(), &[&self.onion], hello)
            .expect("hello is for this relay")
            .0
    }
}

/// X25519(`secret`, `peer`) computed on the Edwards curve: `None` for a `peer` that is not on
/// the curve (on its twist), where the ladder would still answer.
fn x25519_via_edwards(secret: &[u8; 32], peer: &[u8; 32]) -> Option<[u8; 32]> {
    let point = MontgomeryPoint(*peer).to_edwards(0)?.mul_by_cofactor();
    Some((point * clamped_div8(secret)).to_montgomery().to_bytes())
}

/// The clamped X25519 scalar divided by the cofactor 8, reduced: a clamped scalar is a
/// multiple of 8, so `s * P = (s / 8) * (8 * P)`, and `8 * P` has prime order, where
/// reducing the scalar is exact whatever torsion `P` carries.
fn clamped_div8(secret: &[u8; 32]) -> Scalar {
    let mut s = *secret;
    s[0] &= 248;
    s[31] &= 127;
    s[31] |= 64;
    let mut div = [0u8; 32];
    for i in 0..32 {
        let next = s.get(i + 1).copied().unwrap_or(0);
        div[i] = (s[i] >> 3) | (next << 5);
    }
    Scalar::from_bytes_mod_order(div)
}

/// The handshakes' `now`: only deadlines are computed from it, no time is read back.
#[expect(
    clippy::disallowed_methods,
    reason = "a bench needs one base Instant; no elapsed time is read"
)]
fn base_instant() -> Instant {
    Instant::now()
}

fn handshake(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Elements(1));
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let relay = Relay::new(&mut rng);

    let secret = StaticSecret::random_from_rng(&mut rng);
    let peer = PublicKey::from(&StaticSecret::random_from_rng(&mut rng));
    group.bench_function("x25519_diffie_hellman (raw)", |b| {
        b.iter(|| black_box(&secret).diffie_hellman(black_box(&peer)));
    });
    // The candidate for the relay side: the same X25519 through dalek's Edwards arithmetic,
    // whose variable-base multiplication has a vectorized (AVX2) backend picked at run time,
    // where the Montgomery ladder above is serial. Checked equal before it is timed.
    let secret_bytes = secret.to_bytes();
    let via_edwards = x25519_via_edwards(&secret_bytes, peer.as_bytes());
    assert_eq!(via_edwards, Some(secret.diffie_hellman(&peer).to_bytes()));
    group.bench_function("x25519_diffie_hellman via Edwards (candidate)", |b| {
        b.iter(|| x25519_via_edwards(black_box(&secret_bytes), black_box(peer.as_bytes())));
    });
    let onion = StaticSecret::random_from_rng(&mut rng);
    let onion_bytes = onion.to_bytes();
    group.bench_function("x25519 two DH with one peer point, ladder", |b| {
        b.iter(|| {
            (
                black_box(&secret).diffie_hellman(black_box(&peer)),
                black_box(&onion).diffie_hellman(black_box(&peer)),
            )
        });
    });
    group.bench_function(
        "x25519 two DH with one peer point, Edwards (candidate)",
        |b| {
            b.iter(|| {
                let point = MontgomeryPoint(*black_box(peer.as_bytes()))
                    .to_edwards(0)
                    .map(|p| p.mul_by_cofactor());
                point.map(|p| {
                    (
                        (p * clamped_div8(black_box(&secret_bytes))).to_montgomery(),
                        (p * clamped_div8(black_box(&onion_bytes))).to_montgomery(),
                    )
                })
            });
        },
    );
    group.bench_function("x25519_keygen (raw)", |b| {
        b.iter(|| PublicKey::from(&StaticSecret::random_from_rng(&mut rng)));
    });

    group.bench_function("circuit_client_start", |b| {
        b.iter(|| ClientHandshake::start(&mut rng, relay.id.public(), relay.onion.public()));
    });
    let mut answered = ChaCha20Rng::seed_from_u64(5);
    group.bench_function("circuit_client_finish", |b| {
        b.iter_batched(
            || {
                let (client, hello) =
                    ClientHandshake::start(&mut answered, relay.id.public(), relay.onion.public());
                let reply = relay.answer(&mut answered, &hello);
                (client, reply)
            },
            |(client, reply)| client.finish(&reply).expect("reply from the right relay"),
            BatchSize::NumIterations(POOL),
        );
    });
    let (_, hello) = ClientHandshake::start(&mut rng, relay.id.public(), relay.onion.public());
    group.bench_function("circuit_relay_side", |b| {
        b.iter(|| {
            relay_handshake(&mut rng, &relay.id.public(), &[&relay.onion], &hello)
                .expect("hello is for this relay")
        });
    });

    let now = base_instant();
    let initiator = Relay::new(&mut rng);
    for (name, own) in [("noise_nk", None), ("noise_ik", Some(&initiator.link))] {
        group.bench_function(format!("link_{name}_full_round"), |b| {
            b.iter(|| link_round(&mut rng, now, own, &relay.link));
        });
        group.bench_function(format!("link_{name}_responder_side"), |b| {
            b.iter_batched(
                || {
                    let mut flight1 = Vec::new();
                    let init = start_link(&mut answered, now, own, &relay.link, &mut flight1);
                    (init, flight1, LinkResponder::new(&mut answered, now))
                },
                |(_init, flight1, mut resp)| {
                    let mut flight2 = Vec::new();
                    resp.handle_input(&relay.link, &flight1, &mut flight2)
                        .expect("well-formed first flight")
                        .expect("first flight complete")
                },
                BatchSize::NumIterations(POOL),
            );
        });
    }
    group.finish();
}

fn start_link(
    rng: &mut ChaCha20Rng,
    now: Instant,
    own: Option<&LinkIdentity>,
    responder: &LinkIdentity,
    out: &mut Vec<u8>,
) -> LinkInitiator {
    LinkInitiator::start(
        rng,
        now,
        own,
        responder.identity(),
        responder.link_public(),
        out,
    )
    .expect("snow accepts our parameters")
}

/// One full link handshake, both ends, messages passed in memory.
fn link_round(
    rng: &mut ChaCha20Rng,
    now: Instant,
    own: Option<&LinkIdentity>,
    responder: &LinkIdentity,
) {
    let mut flight1 = Vec::new();
    let mut init = start_link(rng, now, own, responder, &mut flight1);
    let mut resp = LinkResponder::new(rng, now);
    let mut flight2 = Vec::new();
    let (_, resp_link) = resp
        .handle_input(responder, &flight1, &mut flight2)
        .expect("well-formed first flight")
        .expect("first flight complete");
    let (_, init_link) = init
        .handle_input(&flight2)
        .expect("well-formed reply")
        .expect("reply complete");
    black_box((resp_link, init_link));
}

criterion_group!(benches, handshake);
criterion_main!(benches);
