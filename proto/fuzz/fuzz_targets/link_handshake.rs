//! Fuzzes the link handshake: `link::LinkResponder::handle_input` with a fixed relay
//! `LinkIdentity` on arbitrary first flights (raw, behind a valid client or relay preamble, or
//! a real first flight modified), and `link::LinkInitiator::handle_input` after a real start,
//! on arbitrary replies (raw, or the real reply modified). Input is fed as a prefix and then
//! whole, as a stream delivers it.
//!
//! Invariants: nothing panics; `Ok(None)` writes nothing; a completed handshake used no more
//! bytes than it was given, and those bytes are exactly a flight a real initiator sent (Noise
//! authenticates every byte of it, so no modified flight completes); the unmodified flight
//! always completes, with the peer identity the certificate proves (none for a client); the two
//! ends' `LinkCrypto`s then agree.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ournet_proto::cell::{CELL_LEN, CellCmd, CellHeader, CircId, HEADER_LEN};
use ournet_proto::link::{Established, LinkIdentity, LinkInitiator, LinkResponder};
use ournet_proto_fuzz::{Input, encryption_key, identity, rng, t0};

/// The relay that accepts the link.
fn responder_id() -> &'static LinkIdentity {
    static ID: OnceLock<LinkIdentity> = OnceLock::new();
    ID.get_or_init(|| LinkIdentity::new(identity(1), encryption_key(1)))
}

/// The relay that opens a relay-to-relay link.
fn initiator_id() -> &'static LinkIdentity {
    static ID: OnceLock<LinkIdentity> = OnceLock::new();
    ID.get_or_init(|| LinkIdentity::new(identity(2), encryption_key(2)))
}

const RESPONDER_SEED: u64 = 11;
const INITIATOR_SEED: u64 = 7;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let as_relay = mode & 0x10 != 0;
    if mode & 0x80 == 0 {
        responder_side(mode, as_relay, &mut input);
    } else {
        initiator_side(mode, as_relay, &mut input);
    }
});

/// Starts the deterministic initiator; returns it and its first flight.
fn start(as_relay: bool) -> (LinkInitiator, Vec<u8>) {
    let own = as_relay.then(initiator_id);
    let relay = responder_id();
    let mut flight1 = Vec::new();
    let init = LinkInitiator::start(
        &mut rng(INITIATOR_SEED),
        t0(),
        own,
        relay.identity(),
        relay.link_public(),
        &mut flight1,
    )
    .expect("valid parameters");
    (init, flight1)
}

/// The deterministic initiator's first flights, as a client and as a relay.
fn flights() -> &'static [Vec<u8>; 2] {
    static FLIGHTS: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    FLIGHTS.get_or_init(|| [start(false).1, start(true).1])
}

/// Runs the deterministic responder on `flight1`; returns its reply and link.
fn respond(flight1: &[u8]) -> (Vec<u8>, Established) {
    let mut reply = Vec::new();
    let (_, est) = LinkResponder::new(&mut rng(RESPONDER_SEED), t0())
        .handle_input(responder_id(), flight1, &mut reply)
        .expect("a real first flight is accepted")
        .expect("a whole first flight completes");
    (reply, est)
}

/// `real` changed as the input says: one byte XORed, cut, and bytes appended. Returns the
/// bytes and whether `real` is still a prefix of them.
fn mutate(real: &[u8], input: &mut Input<'_>) -> (Vec<u8>, bool) {
    let pos = usize::from(input.u16()) % real.len();
    let flip = input.byte();
    let cut = usize::from(input.u16());
    let mut bytes = real.to_vec();
    bytes[pos] ^= flip;
    bytes.truncate(cut.max(real.len().saturating_sub(usize::from(u8::MAX))));
    bytes.extend_from_slice(input.rest());
    let intact = bytes.starts_with(real);
    (bytes, intact)
}

fn responder_side(mode: u8, as_relay: bool, input: &mut Input<'_>) {
    let seed = input.u64();
    let split = usize::from(input.u16());
    let (bytes, intact) = match mode & 3 {
        0 => (input.rest().to_vec(), false),
        1 | 2 => {
            let kind = if mode & 3 == 1 { 1 } else { 2 };
            let mut bytes = b"OURNET\x01".to_vec();
            bytes.push(kind);
            bytes.extend_from_slice(input.rest());
            (bytes, false)
        }
        _ => mutate(&flights()[usize::from(as_relay)], input),
    };
    let mut resp = LinkResponder::new(&mut rng(seed), t0());
    let mut out = Vec::new();
    let prefix = &bytes[..split.min(bytes.len())];
    let mut result = resp.handle_input(responder_id(), prefix, &mut out);
    if matches!(result, Ok(None)) {
        assert!(out.is_empty(), "wrote a reply before completing");
        result = resp.handle_input(responder_id(), &bytes, &mut out);
    }
    match result {
        Ok(None) => {
            assert!(out.is_empty(), "wrote a reply before completing");
            assert!(!intact, "the whole real flight did not complete");
        }
        Ok(Some((used, est))) => {
            assert!(used <= bytes.len() && !out.is_empty());
            // Noise authenticates every byte of a flight, so only flights an initiator made
            // complete. The fuzzer learns both deterministic ones (libFuzzer picks up compared
            // bytes) and may splice either in; a client flight is anonymous, so any copy of it
            // is a valid one.
            let kind = flights()
                .iter()
                .position(|f| f[..] == bytes[..used])
                .expect("accepted a flight no initiator made");
            let expected = (kind == 1).then(|| initiator_id().identity());
            assert_eq!(est.peer_identity, expected);
        }
        Err(e) => assert!(!intact, "the real flight was refused: {e:?}"),
    }
}

fn initiator_side(mode: u8, as_relay: bool, input: &mut Input<'_>) {
    let (mut init, flight1) = start(as_relay);
    let split = usize::from(input.u16());
    let (bytes, intact) = if mode & 1 == 0 {
        (input.rest().to_vec(), false)
    } else {
        let (reply, _) = respond(&flight1);
        mutate(&reply, input)
    };
    let prefix = &bytes[..split.min(bytes.len())];
    let mut result = init.handle_input(prefix);
    if matches!(result, Ok(None)) {
        result = init.handle_input(&bytes);
    }
    match result {
        Ok(Some((used, mut est))) => {
            assert!(used <= bytes.len());
            let (reply, mut peer) = respond(&flight1);
            assert_eq!(&bytes[..used], &reply[..], "accepted a modified reply");
            assert_eq!(est.peer_identity, Some(responder_id().identity()));
            assert_eq!(est.channel_binding, peer.channel_binding);
            assert_links_agree(&mut est, &mut peer);
        }
        Ok(None) => assert!(!intact, "the whole real reply did not complete"),
        Err(e) => assert!(!intact, "the real reply was refused: {e:?}"),
    }
}

/// A cell sealed by one end opens at the other, both ways.
fn assert_links_agree(a: &mut Established, b: &mut Established) {
    assert_one_way(a, b);
    assert_one_way(b, a);
}

fn assert_one_way(from: &mut Established, to: &mut Established) {
    let header = CellHeader {
        circ_id: CircId::new(0x8000_0001),
        cmd: CellCmd::DESTROY,
    };
    let mut cell = [0u8; CELL_LEN];
    cell[HEADER_LEN] = 7;
    from.crypto.seal(header, &mut cell).unwrap();
    assert_eq!(to.crypto.open(&mut cell), Ok(header));
    assert_eq!(cell[HEADER_LEN], 7);
}
