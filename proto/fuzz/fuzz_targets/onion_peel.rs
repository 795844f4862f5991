//! Fuzzes the onion layer: `onion::RelayHopCrypto::peel_forward` (and its batch form) and
//! `onion::ClientCircuitCrypto::open_backward` on arbitrary bodies of arbitrary length with fixed
//! hop keys, and real circuits of 1 to 5 hops whose cells the input modifies in flight.
//!
//! Invariants: nothing panics; a body no longer than the tag area is `BodyTooShort`; arbitrary
//! bytes never open (that would be a forgery), not even on a circuit without hops; an unmodified
//! cell passes every hop, in both directions, and arrives with its payload intact; a forward cell
//! changed at any byte before hop `j` is refused by hop `j` itself (per-hop integrity: the tagging
//! attack dies at the first honest hop); a backward cell changed at any byte is refused by the
//! client; a replayed cell is refused and does not move the hop's counter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ournet_proto::cell::{MAX_HOPS, TAG_AREA_LEN};
use ournet_proto::onion::{ClientCircuitCrypto, OnionError, RelayHopCrypto};
use ournet_proto_fuzz::{Input, hop_keys, rng};

/// Longest payload the round-trip modes use (a cell's is 928 bytes; longer still must work).
const MAX_PAYLOAD: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let hops = usize::from(mode >> 4) % (MAX_HOPS + 1);
    match mode & 3 {
        0 => raw(hops, &mut input),
        1 => forward(hops.max(1), &mut input),
        _ => backward(hops.max(1), &mut input),
    }
});

fn client(hops: usize) -> ClientCircuitCrypto {
    let mut c = ClientCircuitCrypto::new();
    for i in 0..hops {
        c.push_hop(hop_keys(i as u8)).unwrap();
    }
    c
}

fn relays(hops: usize) -> Vec<RelayHopCrypto> {
    (0..hops)
        .map(|i| RelayHopCrypto::new(hop_keys(i as u8)))
        .collect()
}

/// Arbitrary bodies: the first `u16` of the input is how many bytes go to the first body; the
/// rest is cut into bodies of the same length for the batch.
fn raw(hops: usize, input: &mut Input<'_>) {
    let len = usize::from(input.u16()) % (MAX_PAYLOAD + TAG_AREA_LEN + 1);
    let body = input.take(len).to_vec();
    let short = body.len() <= TAG_AREA_LEN;

    let mut relay = RelayHopCrypto::new(hop_keys(0));
    let mut b = body.clone();
    match relay.peel_forward(&mut b) {
        Err(OnionError::BodyTooShort(n)) => assert!(short && n == body.len()),
        Err(OnionError::Integrity) => assert!(!short),
        other => panic!("arbitrary forward body: {other:?}"),
    }
    let mut b = body.clone();
    match client(hops).open_backward(&mut b) {
        Err(OnionError::HopCount(0)) => assert_eq!(hops, 0),
        Err(OnionError::BodyTooShort(n)) => assert!(short && n == body.len() && hops > 0),
        Err(OnionError::Integrity) => assert!(!short && hops > 0),
        other => panic!("arbitrary backward body with {hops} hops: {other:?}"),
    }
    let mut batch: Vec<Vec<u8>> = std::iter::once(body)
        .chain(input.rest().chunks(len.max(1)).map(<[u8]>::to_vec))
        .collect();
    match relay.peel_forward_batch(&mut batch) {
        Err((0, _)) => {}
        other => panic!("arbitrary batch: {other:?}"),
    }
}

/// Reads a payload length (at least 1) and that many bytes, zero-padded.
fn payload(input: &mut Input<'_>) -> Vec<u8> {
    let len = 1 + usize::from(input.u16()) % MAX_PAYLOAD;
    let mut p = input.take(len).to_vec();
    p.resize(len, 0);
    p
}

/// Up to three forward cells through `hops` relays; each may be changed before one hop.
fn forward(hops: usize, input: &mut Input<'_>) {
    let mut client = client(hops);
    let mut relays = relays(hops);
    let mut previous: Option<Vec<u8>> = None;
    for _ in 0..1 + input.byte() % 3 {
        let seed = input.u64();
        let at_hop = usize::from(input.byte()) % hops;
        let flip_pos = usize::from(input.u16());
        let flip = input.byte();
        let plain = payload(input);
        let mut body = vec![0u8; TAG_AREA_LEN];
        body.extend_from_slice(&plain);
        client.seal_forward(&mut body, &mut rng(seed)).unwrap();
        let sealed = body.clone();
        for (j, relay) in relays.iter_mut().enumerate() {
            if j == at_hop && flip != 0 {
                let pos = flip_pos % body.len();
                body[pos] ^= flip;
                assert_eq!(
                    relay.peel_forward(&mut body),
                    Err(OnionError::Integrity),
                    "hop {j} of {hops} passed a cell changed at byte {pos}"
                );
                // The circuit is destroyed now: counters no longer agree downstream.
                return;
            }
            relay
                .peel_forward(&mut body)
                .unwrap_or_else(|e| panic!("hop {j} of {hops} refused an unmodified cell: {e:?}"));
            if j == 0
                && let Some(mut old) = previous.take()
            {
                assert_eq!(relay.peel_forward(&mut old), Err(OnionError::Integrity));
            }
        }
        assert_eq!(
            body[TAG_AREA_LEN..],
            plain[..],
            "payload changed on the way"
        );
        previous = Some(sealed);
    }
}

/// Up to three backward cells from the last hop; each may be changed before the client.
fn backward(hops: usize, input: &mut Input<'_>) {
    let mut client = client(hops);
    let mut relays = relays(hops);
    for _ in 0..1 + input.byte() % 3 {
        let flip_pos = usize::from(input.u16());
        let flip = input.byte();
        let plain = payload(input);
        let mut body = vec![0u8; TAG_AREA_LEN];
        body.extend_from_slice(&plain);
        for relay in relays.iter_mut().rev() {
            relay.seal_backward(&mut body).unwrap();
        }
        if flip != 0 {
            let pos = flip_pos % body.len();
            body[pos] ^= flip;
            assert_eq!(
                client.open_backward(&mut body),
                Err(OnionError::Integrity),
                "client passed a backward cell changed at byte {pos} ({hops} hops)"
            );
            return;
        }
        client.open_backward(&mut body).unwrap();
        assert_eq!(
            body[TAG_AREA_LEN..],
            plain[..],
            "payload changed on the way"
        );
    }
}
