//! No file descriptor outlives its connection: open and drop many connections of every kind
//! (garbage, stalled, completed handshakes, circuits, refused ones), then the relay's fd count
//! returns to where it started.
#![allow(clippy::unwrap_used, reason = "test code")]

use std::io::Write;
use std::time::Duration;

use ournet_proto::circuit::ClientEvent;
use ournet_tests::client::{Circ, Link, tcp_from};
use ournet_tests::relay::{RelayProc, backends};

fn churn(relay: &RelayProc) {
    let hop = relay.info.hop();
    for round in 0..5u8 {
        let mut held = Vec::new();
        for i in 0..20u8 {
            let mut s = tcp_from([127, 0, 0, 2 + (i % 4)].into(), hop.addr).unwrap();
            let _ = s.write_all(if i % 2 == 0 {
                b"garbage!garbage!"
            } else {
                b"OURNET"
            });
            held.push(s);
        }
        let links: Vec<_> = (0..5).map(|_| Link::connect(&hop)).collect();
        let mut c = Circ::build(vec![hop.clone()]).unwrap();
        c.circ.send_ping(u64::from(round)).unwrap();
        c.wait_for(|e| matches!(e, ClientEvent::Pong(_))).unwrap();
        drop((held, links, c));
    }
}

#[test]
fn connections_of_every_kind_leave_no_fd_behind() {
    for backend in &backends() {
        let relay = RelayProc::start_bin(env!("CARGO_BIN_EXE_ournet-relay").as_ref(), backend, &[]);
        let baseline = relay.fd_count();
        churn(&relay);
        // The relay notices the closes asynchronously: wait (bounded) for the count to settle.
        let mut now = relay.fd_count();
        for _ in 0..300 {
            if now <= baseline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            now = relay.fd_count();
        }
        let listing: Vec<_> = std::fs::read_dir(format!("/proc/{}/fd", relay.pid()))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .collect();
        assert_eq!(
            now, baseline,
            "{backend}: fds before {baseline}, after {now}: {listing:?}"
        );
    }
}
