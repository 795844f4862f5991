//! Home delivery flow control (PROTOCOL.md §8, `credit.rs`): a sender is paced by its
//! recipient's reading, and a node's buffer at its home relay is bounded.

use ournet_proto::circuit::ClientEvent;
use ournet_proto::flow::{CIRCUIT_WINDOW, HOME_BUFFER_BYTES, SENDME_INCREMENT};
use ournet_proto::frag::cells_for;
use ournet_proto::relay_msg::DeliveryStatus;

use super::*;

/// 8 KiB messages: 9 cells each, so message and SENDME boundaries do not line up.
const MSG_LEN: usize = 8192;

/// SENDMEs a sender got back: the cells it sent past its first window, per increment.
fn sendmes(sent: usize, circ: &ClientCircuit) -> usize {
    let in_flight = (CIRCUIT_WINDOW - circ.send_window()) as usize;
    (sent - in_flight) / SENDME_INCREMENT as usize
}

/// `bob`'s home circuit on `r`, authenticated.
fn home_of(r: &mut Relay, bob: &IdentityKeypair, seed: u64, now: Instant) -> MemCircuit {
    let mut home = MemCircuit::open(r, seed, now);
    home.circ.home_auth(bob, &home.binding.clone()).unwrap();
    let events = home.pump(r, now);
    assert!(events.contains(&ClientEvent::HomeAuthed { queued: 0 }));
    home
}

/// Pumps `alice` until she sends nothing more; returns the cells sent and the statuses.
fn pump_until_stalled(alice: &mut MemCircuit, r: &mut Relay, now: Instant) -> (usize, usize) {
    let (mut sent, mut delivered) = (0, 0);
    for _ in 0..10_000 {
        let (n, events) = alice.pump_counting(r, now);
        sent += n;
        delivered += events
            .iter()
            .filter(|e| {
                matches!(e, ClientEvent::DeliveryStatus { status, .. }
                    if *status == DeliveryStatus::DELIVERED)
            })
            .count();
        if n == 0 {
            return (sent, delivered);
        }
    }
    panic!("the sender never stalled");
}

#[test]
fn a_sender_that_outruns_its_home_node_stalls_and_resumes_as_the_node_reads() {
    let now = Instant::now();
    let mut r = relay(31, now);
    let mut rng = ChaCha20Rng::seed_from_u64(32);
    let bob = IdentityKeypair::generate(&mut rng);
    let mut home = home_of(&mut r, &bob, 33, now);
    let mut alice = MemCircuit::open(&mut r, 34, now);
    let to = bob.public().to_bytes();
    let total = 400u32; // 3600 cells: more than three windows.
    for i in 0..total {
        let id = [i.to_le_bytes(), [0; 4], [0; 4], [0; 4]].concat();
        let envelope = vec![i as u8; MSG_LEN];
        alice
            .circ
            .send_message(id.try_into().unwrap(), to, envelope)
            .unwrap();
    }

    // Bob reads nothing: Alice gets credit for what his window (and his link's queue, which
    // may fill first) took, at most a window's worth, then stalls.
    let (sent, delivered) = pump_until_stalled(&mut alice, &mut r, now);
    let window = CIRCUIT_WINDOW as usize;
    let credited = sendmes(sent, &alice.circ);
    assert!(
        (1..=11).contains(&credited),
        "{credited} SENDMEs for bob's window of {window} cells"
    );
    assert!(sent <= 2 * window + 100, "stalled after {sent} cells");
    let per_msg = cells_for(MSG_LEN);
    assert!(
        delivered * per_msg <= 2 * window,
        "{delivered} messages taken"
    );
    let key = r
        .circuits
        .lookup((home.conn, CircId::new(0x8000_0001).unwrap()))
        .unwrap()
        .0;
    let queued = r.circuits.get_mut(key).unwrap().hop.queued_message_bytes();
    assert!(
        queued <= window * MSG_LEN / per_msg + MSG_LEN,
        "bob's buffer: {queued}"
    );
    assert!(queued <= HOME_BUFFER_BYTES);
    // Pumping again changes nothing: no credit comes without Bob.
    assert_eq!(pump_until_stalled(&mut alice, &mut r, now).0, 0);

    // Bob reads: SENDMEs resume and every message arrives, in order.
    let mut got = Vec::new();
    for _ in 0..10_000 {
        for e in home.pump(&mut r, now) {
            if let ClientEvent::Message { envelope, .. } = e {
                got.push(envelope[0]);
            }
        }
        r.handle_writable(now, home.conn);
        let _ = pump_until_stalled(&mut alice, &mut r, now);
        if got.len() == total as usize {
            break;
        }
    }
    let want: Vec<u8> = (0..total).map(|i| i as u8).collect();
    assert_eq!(got, want);
    assert_eq!(alice.circ.queued_bytes(), 0, "Alice sent everything");
    let alice_key = r
        .circuits
        .lookup((alice.conn, CircId::new(0x8000_0001).unwrap()))
        .unwrap()
        .0;
    assert_eq!(r.circuits.get_mut(alice_key).unwrap().hop.held_cells(), 0);
}

#[test]
fn many_senders_cannot_buffer_more_than_the_cap_for_one_node() {
    let now = Instant::now();
    let mut r = relay(41, now);
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let bob = IdentityKeypair::generate(&mut rng);
    let home = home_of(&mut r, &bob, 43, now);
    let to = bob.public().to_bytes();
    let per_msg = cells_for(MSG_LEN);
    // Each sender fills a whole window: together far more than the cap.
    let senders = 2 * HOME_BUFFER_BYTES / (CIRCUIT_WINDOW as usize * MSG_LEN / per_msg) + 2;
    let (mut delivered, mut refused) = (0, 0);
    for s in 0..senders {
        let mut alice = MemCircuit::open(&mut r, 100 + s as u64, now);
        for i in 0..(CIRCUIT_WINDOW as usize / per_msg + 1) {
            let id = [s as u8, i as u8].repeat(8);
            let envelope = vec![0; MSG_LEN];
            alice
                .circ
                .send_message(id.try_into().unwrap(), to, envelope)
                .unwrap();
        }
        for e in alice.pump(&mut r, now) {
            match e {
                ClientEvent::DeliveryStatus { status, .. }
                    if status == DeliveryStatus::DELIVERED =>
                {
                    delivered += 1;
                }
                ClientEvent::DeliveryStatus { status, .. } if status == DeliveryStatus::REFUSED => {
                    refused += 1;
                }
                _ => {}
            }
        }
    }
    let key = r
        .circuits
        .lookup((home.conn, CircId::new(0x8000_0001).unwrap()))
        .unwrap()
        .0;
    let queued = r.circuits.get_mut(key).unwrap().hop.queued_message_bytes();
    assert!(queued <= HOME_BUFFER_BYTES, "bob's buffer: {queued}");
    assert!(
        refused > 0 && delivered > 0,
        "{delivered} delivered, {refused} refused"
    );
    assert_eq!(r.metrics.drops(DropKind::HomeFull), refused as u64);
    // Nothing went to the offline queue behind Bob's back.
    assert_eq!(r.ctx.directory.stats().offline_messages, 0);
}
