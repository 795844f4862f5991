//! Hostile peers against a real relay process: garbage, truncated and stalled handshakes,
//! connection floods, CREATE floods and tampered cells. Each is cut off (or refused) while a
//! good client keeps being served and the relay's memory stays bounded.
#![allow(clippy::unwrap_used, reason = "test code")]

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};

use ournet_proto::cell::{BODY_LEN, CircId};
use ournet_proto::circuit::ClientEvent;
use ournet_proto::link_msg::{DestroyReason, LinkMsg};
use ournet_tests::client::{Circ, Link, LinkEnd, rng, tcp_from};
use ournet_tests::relay::{RelayProc, backends};
use rand_core::RngCore;

fn hostile_ip(n: u8) -> IpAddr {
    [127, 0, 0, n].into()
}

/// Blocks until the relay closes `s` (EOF or reset); the read timeout turns a hang into a
/// failure.
fn assert_closed_by_relay(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                let kind = e.kind();
                assert!(
                    !matches!(
                        kind,
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "relay kept a hostile connection open"
                );
                return;
            }
        }
    }
}

fn good_client_is_served(relay: &RelayProc) {
    let mut c = Circ::build(vec![relay.info.hop()]).unwrap();
    c.circ.send_ping(9).unwrap();
    assert_eq!(
        c.wait_for(|e| matches!(e, ClientEvent::Pong(_))),
        Ok(ClientEvent::Pong(9))
    );
}

#[test]
fn garbage_oversized_and_stalled_handshakes_are_cut_off() {
    for backend in &backends() {
        let relay = RelayProc::start(backend, &[]);
        let addr = relay.info.addr;
        let mut garbage = tcp_from(hostile_ip(2), addr).unwrap();
        let mut bytes = vec![0u8; 4096];
        rng().fill_bytes(&mut bytes);
        let _ = garbage.write_all(&bytes);
        let mut oversized = tcp_from(hostile_ip(2), addr).unwrap();
        oversized.write_all(b"OURNET\x01\x01\xff\xff").unwrap();
        // Slowloris: a plausible start, then silence until the handshake timeout.
        let mut stalled = tcp_from(hostile_ip(3), addr).unwrap();
        stalled.write_all(b"OURNET\x01\x01\x00\x30abc").unwrap();
        good_client_is_served(&relay);
        assert_closed_by_relay(garbage);
        assert_closed_by_relay(oversized);
        assert_closed_by_relay(stalled);
        good_client_is_served(&relay);
        assert!(relay.drops("link_handshake") >= 2);
        assert!(relay.drops("handshake_timeout") >= 1);
    }
}

#[test]
fn a_connection_flood_leaves_a_good_client_served_with_bounded_memory() {
    for backend in &backends() {
        let relay = RelayProc::start(backend, &[]);
        let addr = relay.info.addr;
        let mut flood = Vec::new();
        for ip in 2..12u8 {
            for _ in 0..64 {
                let mut s = tcp_from(hostile_ip(ip), addr).unwrap();
                let _ = s.write_all(b"OURNET");
                flood.push(s);
            }
        }
        // One more from a flooding address is over the per-IP cap and is closed at once.
        let over = tcp_from(hostile_ip(2), addr).unwrap();
        assert_closed_by_relay(over);
        good_client_is_served(&relay);
        let rss = relay.rss_kib();
        assert!(
            rss < 200 * 1024,
            "{backend}: RSS {rss} KiB under a 640-connection flood"
        );
        assert!(relay.drops("conn_refused") >= 1);
        drop(flood);
        good_client_is_served(&relay);
    }
}

#[test]
fn circuit_creation_is_rate_limited_per_ip() {
    let dir = std::env::temp_dir().join(format!("ournet-rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        "[limits]\ncircuit_burst = 5.0\ncircuit_rate_per_sec = 0.001\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    for backend in &backends() {
        let relay = RelayProc::start(backend, &["--config", config]);
        let mut link = Link::connect_from(hostile_ip(4), &relay.info.hop());
        for i in 1..=20u32 {
            let id = CircId::new(0x8000_0000 | i).unwrap();
            link.send_msg(
                id,
                &LinkMsg::Create {
                    htype: 1,
                    hdata: &[0u8; 96],
                },
            );
        }
        let mut reasons = Vec::new();
        for _ in 0..20 {
            match link.recv().unwrap().link_msg() {
                Ok(LinkMsg::Destroy(r)) => reasons.push(r),
                other => panic!("{other:?}"),
            }
        }
        let limited = reasons
            .iter()
            .filter(|r| **r == DestroyReason::RESOURCE_LIMIT)
            .count();
        let refused = reasons
            .iter()
            .filter(|r| **r == DestroyReason::HANDSHAKE)
            .count();
        assert_eq!(
            (refused, limited),
            (5, 15),
            "{backend}: burst of 5, then the limit"
        );
        good_client_is_served(&relay);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tampered_cell_destroys_its_circuit_and_is_counted() {
    for backend in &backends() {
        let relays: Vec<_> = (0..2).map(|_| RelayProc::start(backend, &[])).collect();
        let path = relays.iter().map(|r| r.info.hop()).collect();
        let mut c = Circ::build(path).unwrap();
        c.circ.send_ping(1).unwrap();
        let mut body = [0u8; BODY_LEN];
        assert!(c.circ.poll_forward(&mut rng(), &mut body).unwrap());
        body[500] ^= 1;
        let id = c.id;
        c.link.send_relay(id, &body);
        assert_eq!(
            c.wait_for(|_| false),
            Err(LinkEnd::Destroyed(DestroyReason::INTEGRITY)),
            "{backend}"
        );
        assert_eq!(relays[0].drops("onion_integrity"), 1);
        good_client_is_served(&relays[0]);
    }
}
