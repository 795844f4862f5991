//! Home delivery across two workers (`credit.rs`, `pending.rs`, `directory::budget`): the
//! sender's circuit on worker 0, the node's home circuit on worker 1, their mailboxes between.

use crossbeam_channel::Receiver;
use ournet_proto::circuit::ClientEvent;
use ournet_proto::flow::{CIRCUIT_WINDOW, HOME_BUFFER_BYTES};
use ournet_proto::frag::cells_for;
use ournet_proto::relay_msg::DeliveryStatus;

use super::*;
use crate::cross::{CrossMsg, MAILBOX_CAP};

/// 8 KiB messages: 9 cells each.
const MSG_LEN: usize = 8192;

/// Two workers sharing one context; worker 0's mailbox holds `cap0` messages.
struct Pair {
    w0: Relay,
    w1: Relay,
    rx0: Receiver<CrossMsg>,
    rx1: Receiver<CrossMsg>,
}

impl Pair {
    fn new(seed: u64, cap0: usize, now: Instant) -> Self {
        let (tx0, rx0) = crate::cross::mailbox(cap0);
        let (tx1, rx1) = crate::cross::mailbox(MAILBOX_CAP);
        let wake: Arc<dyn crate::cross::Wake> = Arc::new(NoWake);
        let postman = Postman::new(vec![(tx0, wake.clone()), (tx1, wake)]);
        let ctx = context(seed, postman, 2);
        Self {
            w0: Relay::new(ctx.clone(), 0, [1; 32], now),
            w1: Relay::new(ctx, 1, [2; 32], now),
            rx0,
            rx1,
        }
    }

    /// Hands each worker what its mailbox holds.
    fn deliver_mail(&mut self, now: Instant) {
        for msg in self.rx1.try_iter().collect::<Vec<_>>() {
            self.w1.handle_cross(now, msg);
        }
        for msg in self.rx0.try_iter().collect::<Vec<_>>() {
            self.w0.handle_cross(now, msg);
        }
    }
}

/// `bob`'s authenticated home circuit on `r`.
fn home_on(r: &mut Relay, bob: &IdentityKeypair, seed: u64, now: Instant) -> MemCircuit {
    let mut home = MemCircuit::open(r, seed, now);
    home.circ.home_auth(bob, &home.binding.clone()).unwrap();
    assert!(
        home.pump(r, now)
            .contains(&ClientEvent::HomeAuthed { queued: 0 })
    );
    home
}

fn id(sender: usize, i: usize) -> [u8; 16] {
    let mut id = [0; 16];
    id[..8].copy_from_slice(&(sender as u64).to_le_bytes());
    id[8..].copy_from_slice(&(i as u64).to_le_bytes());
    id
}

/// Sorts `events` into `delivered` and `refused` message ids.
fn note_statuses(
    events: Vec<ClientEvent>,
    delivered: &mut Vec<[u8; 16]>,
    refused: &mut Vec<[u8; 16]>,
) {
    for e in events {
        if let ClientEvent::DeliveryStatus { message_id, status } = e {
            match status {
                DeliveryStatus::DELIVERED => delivered.push(message_id),
                DeliveryStatus::REFUSED => refused.push(message_id),
                other => panic!("unexpected status {other:?}"),
            }
        }
    }
}

fn held(r: &mut Relay, c: &MemCircuit) -> u32 {
    let key = r
        .circuits
        .lookup((c.conn, CircId::new(0x8000_0001).unwrap()))
        .unwrap()
        .0;
    r.circuits.get_mut(key).unwrap().hop.held_cells()
}

/// Before the fix a message handed to the other worker was answered DELIVERED and then
/// refused there (`home_full`): its sender heard of the loss only at its ACK timeout.
#[test]
fn over_the_cap_across_workers_is_refused_before_answering_and_every_delivered_arrives() {
    let now = Instant::now();
    let mut p = Pair::new(51, MAILBOX_CAP, now);
    let mut rng = ChaCha20Rng::seed_from_u64(52);
    let bob = IdentityKeypair::generate(&mut rng);
    let mut home = home_on(&mut p.w1, &bob, 53, now);
    let to = bob.public().to_bytes();
    // Together far more than the cap; each sender a window's worth.
    let per_sender = CIRCUIT_WINDOW as usize / cells_for(MSG_LEN) + 1;
    let senders = 2 * HOME_BUFFER_BYTES / (per_sender * MSG_LEN) + 2;
    let mut alices: Vec<_> = (0..senders)
        .map(|s| MemCircuit::open(&mut p.w0, 200 + s as u64, now))
        .collect();
    let (mut delivered, mut refused) = (Vec::new(), Vec::new());
    for (s, alice) in alices.iter_mut().enumerate() {
        for i in 0..per_sender {
            alice
                .circ
                .send_message(id(s, i), to, vec![s as u8; MSG_LEN])
                .unwrap();
        }
        note_statuses(alice.pump(&mut p.w0, now), &mut delivered, &mut refused);
    }
    // Bob has read nothing yet: the worker that answered decided the cap.
    assert!(!refused.is_empty() && !delivered.is_empty());
    assert_eq!(p.w0.metrics.drops(DropKind::HomeFull), refused.len() as u64);

    // Bob reads everything; credits cross back and the senders finish.
    let mut got = Vec::new();
    for _ in 0..10_000 {
        p.deliver_mail(now);
        for e in home.pump(&mut p.w1, now) {
            if let ClientEvent::Message { message_id, .. } = e {
                got.push(message_id);
            }
        }
        p.w1.handle_writable(now, home.conn);
        for alice in &mut alices {
            note_statuses(alice.pump(&mut p.w0, now), &mut delivered, &mut refused);
        }
        if got.len() == delivered.len() && p.rx0.is_empty() && p.rx1.is_empty() {
            break;
        }
    }
    assert_eq!(
        delivered.len() + refused.len(),
        senders * per_sender,
        "every message answered once"
    );
    // Exactly the messages answered DELIVERED arrived, each once; no refusal after it.
    let mut want = delivered.clone();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(p.w1.metrics.drops(DropKind::HomeFull), 0);
    assert_eq!(p.w1.ctx.directory.stats().offline_messages, 0);
    for alice in &alices {
        assert_eq!(held(&mut p.w0, alice), 0, "every credit came back");
    }
}

/// Before the fix a credit the full mailbox refused was dropped (`mailbox_full`): the
/// sender's window never reopened by it, and with a one-message mailbox the sender stalled.
#[test]
fn credits_a_full_mailbox_refuses_wait_coalesced_and_none_is_lost() {
    let start = Instant::now();
    let mut p = Pair::new(61, 1, start);
    let mut rng = ChaCha20Rng::seed_from_u64(62);
    let bob = IdentityKeypair::generate(&mut rng);
    let mut home = home_on(&mut p.w1, &bob, 63, start);
    let mut alice = MemCircuit::open(&mut p.w0, 64, start);
    let to = bob.public().to_bytes();
    let total = 400; // 3600 cells: several windows, so the sender needs every credit back.
    for i in 0..total {
        alice
            .circ
            .send_message(id(0, i), to, vec![i as u8; MSG_LEN])
            .unwrap();
    }
    let mut got = Vec::new();
    let mut now = start;
    for _ in 0..20_000 {
        let _ = alice.pump(&mut p.w0, now);
        p.deliver_mail(now);
        for e in home.pump(&mut p.w1, now) {
            if let ClientEvent::Message { envelope, .. } = e {
                got.push(envelope[0]);
            }
        }
        p.w1.handle_writable(now, home.conn);
        // The retry tick of worker 1, as its backend would run it.
        now += credit::CREDIT_RETRY;
        if now >= p.w1.poll_timeout() {
            p.w1.handle_timeout(now);
        }
        if got.len() == total && p.w1.pending_credits.is_empty() && p.rx0.is_empty() {
            break;
        }
    }
    let want: Vec<u8> = (0..total).map(|i| i as u8).collect();
    assert_eq!(got, want, "the sender never stalled");
    let _ = alice.pump(&mut p.w0, now);
    assert_eq!(alice.circ.queued_bytes(), 0, "Alice sent everything");
    assert!(
        p.w1.metrics.credits_deferred.load(Ordering::Relaxed) > 0,
        "the mailbox was full at times"
    );
    assert!(p.w1.pending_credits.is_empty(), "nothing left owed");
    assert_eq!(held(&mut p.w0, &alice), 0, "every cell's credit came back");
    assert_eq!(p.w1.metrics.drops(DropKind::MailboxFull), 0);
}
