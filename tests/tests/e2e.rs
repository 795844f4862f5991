//! End to end through real relay processes: 3-hop circuits, delivery to a home node, ACKs
//! back to the sender, and the offline queue, under every backend the relay ships.
#![allow(clippy::unwrap_used, reason = "test code")]

use ournet_proto::circuit::ClientEvent;
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_proto::link_msg::DestroyReason;
use ournet_proto::relay_msg::DeliveryStatus;
use ournet_tests::client::{Circ, Link, LinkEnd, rng};
use ournet_tests::relay::{RelayProc, backends};

fn three_relays(backend: &str) -> Vec<RelayProc> {
    (0..3).map(|_| RelayProc::start(backend, &[])).collect()
}

/// A node with a home circuit on `relay`.
fn go_home(relay: &RelayProc, who: &IdentityKeypair) -> (Circ, u32) {
    let hop = relay.info.hop();
    Circ::home(Link::connect(&hop), hop, who).unwrap()
}

fn is_message(e: &ClientEvent) -> bool {
    matches!(e, ClientEvent::Message { .. })
}

#[test]
fn a_message_crosses_three_relays_to_a_home_node_and_its_ack_comes_back() {
    for backend in &backends() {
        let relays = three_relays(backend);
        let mut r = rng();
        let (alice, bob, bob_enc) = (
            IdentityKeypair::generate(&mut r),
            IdentityKeypair::generate(&mut r),
            EncryptionKeypair::generate(&mut r),
        );
        let (mut bob_home, queued) = go_home(&relays[2], &bob);
        assert_eq!(queued, 0);

        let path = relays.iter().map(|p| p.info.hop()).collect();
        let mut sender = Circ::build(path).unwrap();
        let (status, token) =
            sender.send_sealed(&alice, &bob.public(), &bob_enc.public(), [7; 16], b"hi bob");
        assert_eq!(status, DeliveryStatus::DELIVERED, "{backend}");

        let (message_id, opened) = bob_home.receive_opened(&bob_enc);
        assert_eq!(opened.content(), b"hi bob");
        assert_eq!(opened.sender(), &alice.public());

        bob_home.ack(message_id, &opened);
        let (_, ack_token) = sender.wait_ack();
        assert_eq!(ack_token, token, "proof of receipt");
        assert!(relays[1].metric("ournet_cells_in_total") > 0);
    }
}

#[test]
fn a_large_message_crosses_under_flow_control() {
    for backend in &backends() {
        let relays = three_relays(backend);
        let mut r = rng();
        let bob = IdentityKeypair::generate(&mut r);
        let (mut bob_home, _) = go_home(&relays[2], &bob);
        let path = relays.iter().map(|p| p.info.hop()).collect();
        let mut sender = Circ::build(path).unwrap();
        // 3 MiB: about 3,400 cells, over three windows of 1,000.
        let data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        sender
            .circ
            .send_message([1; 16], bob.public().to_bytes(), data.clone())
            .unwrap();
        sender
            .wait_for(|e| matches!(e, ClientEvent::DeliveryStatus { .. }))
            .unwrap();
        let got = bob_home.wait_for(is_message).unwrap();
        assert_eq!(
            got,
            ClientEvent::Message {
                message_id: [1; 16],
                envelope: data
            },
            "{backend}"
        );
    }
}

#[test]
fn a_message_for_an_offline_node_is_queued_and_released_only_to_its_owner() {
    for backend in &backends() {
        let relays = three_relays(backend);
        let mut r = rng();
        let (alice, carol, carol_enc, mallory) = (
            IdentityKeypair::generate(&mut r),
            IdentityKeypair::generate(&mut r),
            EncryptionKeypair::generate(&mut r),
            IdentityKeypair::generate(&mut r),
        );
        let path = relays.iter().map(|p| p.info.hop()).collect();
        let mut sender = Circ::build(path).unwrap();
        let (status, _) = sender.send_sealed(
            &alice,
            &carol.public(),
            &carol_enc.public(),
            [3; 16],
            b"later",
        );
        assert_eq!(status, DeliveryStatus::QUEUED, "{backend}");

        // Another key gets nothing; a proof made for another link is refused outright.
        let (_mallory_home, queued) = go_home(&relays[2], &mallory);
        assert_eq!(
            queued, 0,
            "{backend}: queued messages are not released to another key"
        );
        let hop = relays[2].info.hop();
        let mut replay = Circ::build(vec![hop]).unwrap();
        replay.circ.home_auth(&carol, &[0xee; 32]).unwrap();
        let end = replay.wait_for(|e| matches!(e, ClientEvent::HomeAuthed { .. }));
        assert_eq!(end, Err(LinkEnd::Destroyed(DestroyReason::PROTOCOL)));

        let (mut carol_home, queued) = go_home(&relays[2], &carol);
        assert_eq!(queued, 1);
        let (_, opened) = carol_home.receive_opened(&carol_enc);
        assert_eq!(opened.content(), b"later");
    }
}

#[test]
fn ping_is_answered_by_the_last_hop_and_sigterm_drains_cleanly() {
    for backend in &backends() {
        let relays = three_relays(backend);
        let path = relays.iter().map(|p| p.info.hop()).collect();
        let mut c = Circ::build(path).unwrap();
        c.circ.send_ping(42).unwrap();
        assert_eq!(
            c.wait_for(|e| matches!(e, ClientEvent::Pong(_))),
            Ok(ClientEvent::Pong(42))
        );
        let health = relays[0].control_get("/health");
        assert!(
            health.contains(&format!("\"backend\":\"{backend}\"")),
            "{health}"
        );
        let mut relays = relays;
        let first = relays.remove(0);
        let status = first.terminate();
        assert!(status.success(), "{backend}: exit status {status}");
        // The drain destroyed the circuit (or closed the link) rather than leaving it hanging.
        let end = c.wait_for(|_| false).unwrap_err();
        assert!(
            matches!(
                end,
                LinkEnd::Destroyed(DestroyReason::SHUTDOWN) | LinkEnd::Closed
            ),
            "{end:?}"
        );
    }
}
