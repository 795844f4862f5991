//! Property tests for the onion crypto: round trips, tagging, replay, reorder, position.
#![allow(
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "test code indexes known-size buffers and builds byte patterns"
)]

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

use super::*;
use crate::cell::{BODY_LEN, PAYLOAD_LEN};

fn circuit(n: usize, seed: u64) -> (ClientCircuitCrypto, Vec<RelayHopCrypto>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut client = ClientCircuitCrypto::new();
    let mut relays = Vec::new();
    for _ in 0..n {
        let mut km = Zeroizing::new([0u8; HOP_KEY_MATERIAL_LEN]);
        rng.fill_bytes(&mut *km);
        client.push_hop(HopKeys::from_key_material(&km)).unwrap();
        relays.push(RelayHopCrypto::new(HopKeys::from_key_material(&km)));
    }
    (client, relays)
}

fn data_body(fill: u8) -> Vec<u8> {
    let mut body = vec![0u8; BODY_LEN];
    body[TAG_AREA_LEN..].fill(fill);
    body
}

#[test]
fn forward_and_backward_round_trip_for_every_length() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    for n in 1..=MAX_HOPS {
        let (mut client, mut relays) = circuit(n, n as u64);
        for round in 0..4u8 {
            let mut body = data_body(round);
            client.seal_forward(&mut body, &mut rng).unwrap();
            for relay in &mut relays {
                relay.peel_forward(&mut body).unwrap();
            }
            assert!(body[TAG_AREA_LEN..].iter().all(|&b| b == round), "n={n}");

            let mut back = data_body(round ^ 0x5a);
            for relay in relays.iter_mut().rev() {
                relay.seal_backward(&mut back).unwrap();
            }
            client.open_backward(&mut back).unwrap();
            assert!(back[TAG_AREA_LEN..].iter().all(|&b| b == round ^ 0x5a));
        }
    }
}

#[test]
fn every_single_bit_flip_is_caught_at_the_next_hop() {
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    for flip_before_hop in 0..3 {
        for bit in 0..BODY_LEN * 8 {
            let (mut client, mut relays) = circuit(3, 77);
            let mut body = data_body(1);
            client.seal_forward(&mut body, &mut rng).unwrap();
            for relay in relays.iter_mut().take(flip_before_hop) {
                relay.peel_forward(&mut body).unwrap();
            }
            body[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                relays[flip_before_hop].peel_forward(&mut body),
                Err(OnionError::Integrity),
                "bit {bit} flipped before hop {flip_before_hop} passed"
            );
        }
    }
}

#[test]
fn a_flip_in_a_later_hops_slot_fails_at_the_first_honest_hop() {
    // The attack the AAD exists for: hop 0 is malicious and flips a bit in the slot that will
    // become hop 2's tag, hoping hop 1 passes it and colluding hop 2 sees its tag fail.
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let (mut client, mut relays) = circuit(3, 5);
    let mut body = data_body(3);
    client.seal_forward(&mut body, &mut rng).unwrap();
    relays[0].peel_forward(&mut body).unwrap();
    body[2 * TAG_LEN] ^= 0x80;
    assert_eq!(
        relays[1].peel_forward(&mut body),
        Err(OnionError::Integrity)
    );
}

#[test]
fn backward_tampering_is_caught_by_the_client() {
    for flip_after_hop in [2usize, 1] {
        // Each of the `flip_after_hop` hops still to come drops its input's last slot.
        let dropped = (MAX_HOPS - flip_after_hop) * TAG_LEN * 8..TAG_AREA_LEN * 8;
        for bit in 0..BODY_LEN * 8 {
            let (mut client, mut relays) = circuit(3, 12);
            let mut body = data_body(4);
            for relay in relays.iter_mut().rev().take(3 - flip_after_hop) {
                relay.seal_backward(&mut body).unwrap();
            }
            body[bit / 8] ^= 1 << (bit % 8);
            for relay in relays.iter_mut().rev().skip(3 - flip_after_hop) {
                relay.seal_backward(&mut body).unwrap();
            }
            let result = client.open_backward(&mut body);
            if dropped.contains(&bit) {
                // The flipped slot is discarded before the client: it never reaches anyone.
                assert_eq!(result, Ok(()), "bit {bit}");
                assert!(body[TAG_AREA_LEN..].iter().all(|&b| b == 4));
            } else {
                assert_eq!(
                    result,
                    Err(OnionError::Integrity),
                    "bit {bit} after {flip_after_hop}"
                );
            }
        }
    }
}

#[test]
fn replay_reorder_and_reinsert_fail() {
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let (mut client, mut relays) = circuit(3, 14);
    let cells: Vec<Vec<u8>> = (0..3u8)
        .map(|i| {
            let mut b = data_body(i);
            client.seal_forward(&mut b, &mut rng).unwrap();
            b
        })
        .collect();

    // Replay: cell 0 twice.
    let mut first = cells[0].clone();
    relays[0].peel_forward(&mut first).unwrap();
    let mut replay = cells[0].clone();
    assert_eq!(
        relays[0].peel_forward(&mut replay),
        Err(OnionError::Integrity)
    );

    // Reorder: cell 2 before cell 1.
    let mut third = cells[2].clone();
    assert_eq!(
        relays[0].peel_forward(&mut third),
        Err(OnionError::Integrity)
    );

    // A failure does not move the counter: cell 1 still opens, then cell 2.
    let mut second = cells[1].clone();
    relays[0].peel_forward(&mut second).unwrap();
    let mut third = cells[2].clone();
    relays[0].peel_forward(&mut third).unwrap();

    // Backward: a cell dropped and re-inserted later fails at the client.
    let mut b0 = data_body(7);
    let mut b1 = data_body(8);
    for relay in relays.iter_mut().rev() {
        relay.seal_backward(&mut b0).unwrap();
    }
    for relay in relays.iter_mut().rev() {
        relay.seal_backward(&mut b1).unwrap();
    }
    assert_eq!(client.open_backward(&mut b1), Err(OnionError::Integrity));
}

/// Fraction of one bits in each tag slot (and in the payload) over many cells seen at `hop`.
fn bit_balance(n: usize, hop: usize, cells: usize, padding: bool) -> Vec<f64> {
    let mut rng = ChaCha20Rng::seed_from_u64(15);
    let (mut client, mut relays) = circuit(n, 16 + n as u64);
    let mut ones = [0u64; MAX_HOPS + 1];
    for i in 0..cells {
        let mut body = data_body(if padding { 0 } else { i as u8 });
        client.seal_forward(&mut body, &mut rng).unwrap();
        for relay in relays.iter_mut().take(hop) {
            relay.peel_forward(&mut body).unwrap();
        }
        for (slot, count) in ones.iter_mut().enumerate() {
            let range = if slot < MAX_HOPS {
                slot * TAG_LEN..(slot + 1) * TAG_LEN
            } else {
                TAG_AREA_LEN..TAG_AREA_LEN + TAG_LEN
            };
            *count += body[range]
                .iter()
                .map(|b| u64::from(b.count_ones()))
                .sum::<u64>();
        }
        relays[hop].peel_forward(&mut body).unwrap();
        for relay in relays.iter_mut().skip(hop + 1) {
            relay.peel_forward(&mut body).unwrap();
        }
    }
    ones.iter()
        .map(|&c| c as f64 / (cells * TAG_LEN * 8) as f64)
        .collect()
}

#[test]
fn no_hop_sees_position_dependent_structure() {
    // Whatever the path length and the hop's position, and whether the cell is data or
    // padding, every slot a hop receives is balanced like random bytes. Zero slots, constant
    // filler or slots that depend on position would push a slot far from 0.5: with 1,600
    // cells x 128 bits a slot's standard deviation is 0.0031, so 0.02 is over 6 sigma.
    for n in 1..=MAX_HOPS {
        for hop in 0..n {
            for padding in [false, true] {
                for (slot, frac) in bit_balance(n, hop, 1600, padding).iter().enumerate() {
                    assert!(
                        (frac - 0.5).abs() < 0.02,
                        "n={n} hop={hop} slot={slot} padding={padding}: {frac}"
                    );
                }
            }
        }
    }
}

#[test]
fn wrong_sizes_and_hop_counts_are_errors() {
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    let (mut client, mut relays) = circuit(2, 18);
    let mut short = vec![0u8; TAG_AREA_LEN];
    assert_eq!(
        client.seal_forward(&mut short, &mut rng),
        Err(OnionError::BodyTooShort(80))
    );
    assert_eq!(
        relays[0].peel_forward(&mut short),
        Err(OnionError::BodyTooShort(80))
    );
    let mut empty = ClientCircuitCrypto::new();
    let mut body = data_body(0);
    assert_eq!(
        empty.seal_forward(&mut body, &mut rng),
        Err(OnionError::HopCount(0))
    );
    let (mut full, _) = circuit(MAX_HOPS, 19);
    let km = Zeroizing::new([1u8; HOP_KEY_MATERIAL_LEN]);
    assert_eq!(
        full.push_hop(HopKeys::from_key_material(&km)),
        Err(OnionError::HopCount(MAX_HOPS + 1))
    );
    assert_eq!(PAYLOAD_LEN, BODY_LEN - TAG_AREA_LEN);
}

/// Found by `cargo fuzz run onion_peel` (proto/fuzz/README.md): a circuit with no hops opened
/// any backward body whose tag area was all zero, handing its payload on unauthenticated.
#[test]
fn a_circuit_without_hops_opens_nothing() {
    let mut empty = ClientCircuitCrypto::new();
    let mut body = data_body(0x42);
    assert_eq!(empty.open_backward(&mut body), Err(OnionError::HopCount(0)));
    assert_eq!(body, data_body(0x42));
}

#[test]
fn batches_match_single_calls_and_stop_at_a_bad_cell() {
    let mut rng = ChaCha20Rng::seed_from_u64(20);
    let (mut client, mut relays) = circuit(1, 21);
    let mut cells: Vec<Vec<u8>> = (0..16u8)
        .map(|i| {
            let mut b = data_body(i);
            client.seal_forward(&mut b, &mut rng).unwrap();
            b
        })
        .collect();
    cells[10][100] ^= 1;
    assert_eq!(
        relays[0].peel_forward_batch(&mut cells),
        Err((10, OnionError::Integrity))
    );
    for (i, cell) in cells.iter().take(10).enumerate() {
        assert!(cell[TAG_AREA_LEN..].iter().all(|&b| usize::from(b) == i));
    }
}
