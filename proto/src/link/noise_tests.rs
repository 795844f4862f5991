//! Link handshake tests: in-memory pairs with a seeded RNG.
#![allow(clippy::indexing_slicing, reason = "test code")]

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::cell::{CELL_LEN, CellCmd, CellHeader, CircId};
use crate::test_util::t0;

fn relay_identity(seed: u64) -> LinkIdentity {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    LinkIdentity::new(
        IdentityKeypair::generate(&mut rng),
        EncryptionKeypair::generate(&mut rng),
    )
}

/// Runs a handshake, feeding the bytes one at a time to exercise partial input.
fn run(own: Option<&LinkIdentity>, responder: &LinkIdentity) -> (Established, Established) {
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let now = t0();
    let mut flight1 = Vec::new();
    let mut init = LinkInitiator::start(
        &mut rng,
        now,
        own,
        responder.identity(),
        responder.link_public(),
        &mut flight1,
    )
    .unwrap();
    let mut resp = LinkResponder::new(&mut rng, now);
    let mut flight2 = Vec::new();
    let mut done = None;
    for end in 0..=flight1.len() {
        if let Some((used, est)) = resp
            .handle_input(responder, &flight1[..end], &mut flight2)
            .unwrap()
        {
            assert_eq!(used, flight1.len());
            done = Some(est);
            break;
        }
    }
    let resp_est = done.expect("responder completed");
    for end in 0..flight2.len() {
        assert!(init.handle_input(&flight2[..end]).unwrap().is_none());
    }
    let (used, init_est) = init.handle_input(&flight2).unwrap().unwrap();
    assert_eq!(used, flight2.len());
    (init_est, resp_est)
}

fn cells_flow(a: &mut Established, b: &mut Established) {
    let h = CellHeader {
        circ_id: CircId::new(0x8000_0001),
        cmd: CellCmd::CREATE,
    };
    let mut cell = [0u8; CELL_LEN];
    a.crypto.seal(h, &mut cell).unwrap();
    assert_eq!(b.crypto.open(&mut cell).unwrap(), h);
    b.crypto.seal(h, &mut cell).unwrap();
    assert_eq!(a.crypto.open(&mut cell).unwrap(), h);
}

#[test]
fn client_link_is_anonymous_and_authenticates_the_relay() {
    let relay = relay_identity(1);
    let (mut client, mut server) = run(None, &relay);
    assert_eq!(client.peer_identity, Some(relay.identity()));
    assert_eq!(
        server.peer_identity, None,
        "the relay learns no client identity"
    );
    assert_eq!(client.channel_binding, server.channel_binding);
    cells_flow(&mut client, &mut server);
}

#[test]
fn relay_link_authenticates_both_ends() {
    let a = relay_identity(2);
    let b = relay_identity(3);
    let (mut ia, mut rb) = run(Some(&a), &b);
    assert_eq!(ia.peer_identity, Some(b.identity()));
    assert_eq!(rb.peer_identity, Some(a.identity()));
    cells_flow(&mut ia, &mut rb);
}

#[test]
fn wrong_relay_key_or_identity_fails() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let now = t0();
    let real = relay_identity(5);
    let other = relay_identity(6);
    // The client expects `other`'s link key but reaches `real`: Noise fails at the responder.
    let mut f1 = Vec::new();
    LinkInitiator::start(
        &mut rng,
        now,
        None,
        real.identity(),
        other.link_public(),
        &mut f1,
    )
    .unwrap();
    let mut resp = LinkResponder::new(&mut rng, now);
    assert_eq!(
        resp.handle_input(&real, &f1, &mut Vec::new()).unwrap_err(),
        LinkHandshakeError::Noise
    );
    // Right key, but the responder's certificate names another identity than expected.
    let mut f1 = Vec::new();
    let mut init = LinkInitiator::start(
        &mut rng,
        now,
        None,
        other.identity(),
        real.link_public(),
        &mut f1,
    )
    .unwrap();
    let mut f2 = Vec::new();
    LinkResponder::new(&mut rng, now)
        .handle_input(&real, &f1, &mut f2)
        .unwrap()
        .unwrap();
    assert_eq!(
        init.handle_input(&f2).unwrap_err(),
        LinkHandshakeError::BadCertificate
    );
}

#[test]
fn garbage_and_downgrades_are_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let now = t0();
    let relay = relay_identity(8);
    let mut resp = LinkResponder::new(&mut rng, now);
    assert_eq!(
        resp.handle_input(&relay, b"GET / HTTP/1.1\r\n", &mut Vec::new())
            .unwrap_err(),
        LinkHandshakeError::BadPreamble
    );
    assert_eq!(
        resp.handle_input(&relay, b"OURNET\x01\x09\x00\x00", &mut Vec::new())
            .unwrap_err(),
        LinkHandshakeError::Unsupported
    );
    assert_eq!(
        resp.handle_input(&relay, b"OURNET\x01\x01\xff\xff", &mut Vec::new())
            .unwrap_err(),
        LinkHandshakeError::TooLong(0xffff)
    );
    // Rewriting the client's kind byte to "relay" changes the pattern and the prologue.
    let mut f1 = Vec::new();
    LinkInitiator::start(
        &mut rng,
        now,
        None,
        relay.identity(),
        relay.link_public(),
        &mut f1,
    )
    .unwrap();
    f1[7] = 2;
    assert!(resp.handle_input(&relay, &f1, &mut Vec::new()).is_err());
    // Any flipped byte of message 1 fails.
    for i in PREAMBLE_LEN + 2..f1.len() {
        let mut f = Vec::new();
        LinkInitiator::start(
            &mut rng,
            now,
            None,
            relay.identity(),
            relay.link_public(),
            &mut f,
        )
        .unwrap();
        f[i] ^= 0x10;
        let mut resp = LinkResponder::new(&mut rng, now);
        assert!(
            resp.handle_input(&relay, &f, &mut Vec::new()).is_err(),
            "byte {i}"
        );
    }
}

#[test]
fn handshake_deadline_is_reported() {
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let now = t0();
    let resp = LinkResponder::new(&mut rng, now);
    assert_eq!(resp.poll_timeout(), now + HANDSHAKE_TIMEOUT);
}
