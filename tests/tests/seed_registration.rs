//! Relays register with a real seed (PoW, signed descriptors, heartbeats), and a client that
//! knows only the seed's `/discover` answer builds a 3-hop circuit through them and delivers a
//! message, under every backend the relay ships.
#![allow(clippy::unwrap_used, reason = "test code")]

use std::time::{Duration, Instant};

use ournet_proto::circuit::PathHop;
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_proto::relay_msg::DeliveryStatus;
use ournet_tests::client::{Circ, Link, rng};
use ournet_tests::network::relay_listen;
use ournet_tests::relay::{RelayProc, backends};
use ournet_tests::seed::{SeedProc, TEST_SEED_CONFIG};

/// Turns a hang into a failure; nothing asserts how long anything took.
const WAIT: Duration = Duration::from_secs(120);

/// Polls until `f` gives `Some`.
fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn relays_register_with_a_seed_and_carry_a_message_over_discovered_descriptors() {
    for backend in &backends() {
        let seed = SeedProc::start(TEST_SEED_CONFIG);
        let url = seed.url();
        // Loopback hosts in distinct /16s: a seed refuses endpoints nearly identical to
        // another's and serves at most one router per /16.
        let relays: Vec<RelayProc> = (0..3)
            .map(|i| RelayProc::start_on(backend, &relay_listen(i), &["--seed-url", &url]))
            .collect();
        let ids: Vec<String> = relays.iter().map(|r| r.info.identity.to_hex()).collect();
        let hops = seed.wait_listed(&ids, WAIT);
        let path: Vec<PathHop> = ids.iter().map(|id| hops[id].clone()).collect();
        for (relay, hop) in relays.iter().zip(&path) {
            assert_eq!(hop.addr, relay.info.addr, "advertised = listen address");
            assert_eq!(hop.onion_key, relay.info.onion_key);
            assert_eq!(hop.link_key, relay.info.link_key);
            wait_until("a heartbeat accepted", || {
                (relay.metric("ournet_seed_heartbeats_total") > 0).then_some(())
            });
            assert_eq!(relay.metric("ournet_seed_registered"), 1);
        }
        send_over(&path, backend);
    }
}

/// Bob homes on the last hop; Alice's message crosses the path to him.
fn send_over(path: &[PathHop], backend: &str) {
    let mut r = rng();
    let (alice, bob, bob_enc) = (
        IdentityKeypair::generate(&mut r),
        IdentityKeypair::generate(&mut r),
        EncryptionKeypair::generate(&mut r),
    );
    let (mut home, _) = Circ::home(Link::connect(&path[2]), path[2].clone(), &bob).unwrap();

    let mut sender = Circ::build(path.to_vec()).unwrap();
    let (status, _token) = sender.send_sealed(
        &alice,
        &bob.public(),
        &bob_enc.public(),
        [9; 16],
        b"via the seed",
    );
    assert_eq!(status, DeliveryStatus::DELIVERED, "{backend}");
    let (_, opened) = home.receive_opened(&bob_enc);
    assert_eq!(opened.content(), b"via the seed");
    assert_eq!(opened.sender(), &alice.public());
}
