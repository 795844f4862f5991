//! Home flow control across a relay's two workers, with real relay processes (PROTOCOL.md
//! §8): senders whose circuits live on one worker fill the home buffer of a node whose home
//! circuit lives on the other and who is not reading. The relay decides the buffer cap
//! before it answers, so every message answered DELIVERED reaches the node exactly once and
//! every refusal is answered REFUSED at once (the sender retries); credits crossing back
//! between the workers all arrive, so no sender's circuit stalls.
#![allow(clippy::unwrap_used, clippy::print_stderr, reason = "test code")]

use std::sync::mpsc;
use std::time::Duration;

use ournet_proto::circuit::ClientEvent;
use ournet_proto::keys::IdentityKeypair;
use ournet_proto::relay_msg::DeliveryStatus;
use ournet_tests::client::{Circ, Link, rng};
use ournet_tests::relay::{RelayProc, backends};

/// Senders on the worker that does not hold the node's home circuit.
const SENDERS: usize = 4;
/// Messages each sender sends: together about five home buffers' worth.
const PER_SENDER: usize = 150;
/// 8 KiB messages (9 cells each).
const MSG_LEN: usize = 8192;
/// Turns a hang into a failure; never a speed check.
const HANG: Duration = Duration::from_secs(180);
/// Attempts of one message before the test calls it stalled (each a REFUSED answer).
const MAX_TRIES: usize = 20_000;

fn msg_id(sender: usize, i: usize) -> [u8; 16] {
    let mut id = [0; 16];
    id[..8].copy_from_slice(&(sender as u64).to_le_bytes());
    id[8..].copy_from_slice(&(i as u64).to_le_bytes());
    id
}

/// Circuits per worker, from the relay's gauges.
fn circuits_per_worker(relay: &RelayProc) -> [u64; 2] {
    [0, 1].map(|w| relay.metric(&format!("ournet_circuits{{worker=\"{w}\"}}")))
}

/// Polls `cond` every 50 ms until it holds, or fails naming `what` after [`HANG`].
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG, "hung: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Builds one-hop circuits to `relay` (each on its own link) until `n` live on `worker`;
/// returns those, and the others to keep open (closing them would move the gauges).
fn senders_on(relay: &RelayProc, worker: usize, n: usize) -> (Vec<Circ>, Vec<Circ>) {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..16 * n {
        if on.len() == n {
            break;
        }
        let before = circuits_per_worker(relay);
        let hop = relay.info.hop();
        let c = Circ::build_on(Link::connect(&hop), vec![hop]).unwrap();
        let mut now = before;
        until("the new circuit's gauge", || {
            now = circuits_per_worker(relay);
            now.iter().sum::<u64>() > before.iter().sum::<u64>()
        });
        if now[worker] > before[worker] {
            on.push(c);
        } else {
            off.push(c);
        }
    }
    assert_eq!(on.len(), n, "no {n} links landed on worker {worker}");
    (on, off)
}

/// What one sender saw.
#[derive(Debug, Default)]
struct Sent {
    /// REFUSED answers (each retried).
    refused: usize,
    /// Messages answered QUEUED: a full mailbox between the workers sent them to the
    /// offline queue, where the node finds them when it next registers.
    queued: Vec<[u8; 16]>,
}

/// Sends `PER_SENDER` messages one after another, each until it is DELIVERED or QUEUED (a
/// REFUSED one is sent again after a short pause, as the client library does).
fn send_all(mut c: Circ, sender: usize, to: [u8; 32]) -> Result<Sent, String> {
    let mut sent = Sent::default();
    for i in 0..PER_SENDER {
        let id = msg_id(sender, i);
        let mut tries = 0;
        loop {
            tries += 1;
            if tries > MAX_TRIES {
                return Err(format!("message {i} of sender {sender} never delivered"));
            }
            let mut envelope = vec![0; MSG_LEN];
            envelope[..16].copy_from_slice(&id);
            c.circ
                .send_message(id, to, envelope)
                .map_err(|e| e.to_string())?;
            let ev = c
                .wait_for(|e| matches!(e, ClientEvent::DeliveryStatus { message_id, .. } if *message_id == id))
                .map_err(|e| format!("sender {sender} at message {i}: {e:?}"))?;
            let ClientEvent::DeliveryStatus { status, .. } = ev else {
                unreachable!()
            };
            match status {
                DeliveryStatus::DELIVERED => break,
                DeliveryStatus::QUEUED => {
                    sent.queued.push(id);
                    break;
                }
                DeliveryStatus::REFUSED => {
                    sent.refused += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return Err(format!("unexpected status {other:?}")),
            }
        }
    }
    Ok(sent)
}

/// Reads messages on `home` and passes their ids on until the link ends.
fn read_into(mut home: Circ, ids: &mpsc::Sender<[u8; 16]>) {
    while let Ok(ClientEvent::Message { message_id, .. }) =
        home.wait_for(|e| matches!(e, ClientEvent::Message { .. }))
    {
        if ids.send(message_id).is_err() {
            return;
        }
    }
}

/// What a run saw, summed over senders.
struct Outcome {
    refused: usize,
    queued: usize,
}

/// One relay with `backend` and `extra` flags; a node with its home circuit on one worker and
/// [`SENDERS`] one-hop senders on the other. With `fill`, the node reads nothing until its
/// home buffer has refused something. Checks that every message reaches the node exactly once
/// (those queued offline when it registers again) and that no sender stalls.
fn run(backend: &str, extra: &[&str], fill: bool) -> (RelayProc, Outcome) {
    let relay = RelayProc::start(backend, extra);
    let bob = IdentityKeypair::generate(&mut rng());
    let hop = relay.info.hop();
    let (home, _) = Circ::home(Link::connect(&hop), hop.clone(), &bob).unwrap();
    let mut gauges = [0; 2];
    until("the home circuit's gauge", || {
        gauges = circuits_per_worker(&relay);
        gauges.iter().sum::<u64>() == 1
    });
    let home_worker = usize::from(gauges[1] == 1);
    let (senders, _others) = senders_on(&relay, 1 - home_worker, SENDERS);

    let to = bob.public().to_bytes();
    let (done_tx, done_rx) = mpsc::channel();
    for (s, c) in senders.into_iter().enumerate() {
        let tx = done_tx.clone();
        std::thread::spawn(move || tx.send(send_all(c, s, to)));
    }
    if fill {
        until("bob's home buffer to fill", || relay.drops("home_full") > 0);
    }
    let (ids_tx, ids_rx) = mpsc::channel();
    std::thread::spawn(move || read_into(home, &ids_tx));

    let (mut refused, mut queued) = (0, Vec::new());
    for _ in 0..SENDERS {
        let r = done_rx.recv_timeout(HANG).expect("a sender hung");
        let sent = r.unwrap_or_else(|e| panic!("{backend}: {e}"));
        refused += sent.refused;
        queued.extend(sent.queued);
    }
    let total = SENDERS * PER_SENDER;
    let mut got: Vec<_> = (0..total - queued.len())
        .map(|_| ids_rx.recv_timeout(HANG).expect("bob's reading hung"))
        .collect();
    if !queued.is_empty() {
        // Bob registers again and gets what waited in the offline queue.
        let (mut again, n) = Circ::home(Link::connect(&hop), hop, &bob).unwrap();
        assert_eq!(n as usize, queued.len(), "{backend}: the offline queue");
        for _ in 0..n {
            match again.wait_for(|e| matches!(e, ClientEvent::Message { .. })) {
                Ok(ClientEvent::Message { message_id, .. }) => got.push(message_id),
                other => panic!("{backend}: {other:?}"),
            }
        }
    }
    got.sort_unstable();
    let mut want: Vec<_> = (0..SENDERS)
        .flat_map(|s| (0..PER_SENDER).map(move |i| msg_id(s, i)))
        .collect();
    want.sort_unstable();
    assert_eq!(got, want, "{backend}: every message exactly once");
    // Every refusal was answered REFUSED by the worker that decided it; none came after a
    // DELIVERED. No credit is still owed.
    assert_eq!(relay.drops("home_full"), refused as u64, "{backend}");
    assert_eq!(relay.metric("ournet_pending_credits"), 0, "{backend}");
    eprintln!(
        "{backend} {extra:?}: {total} messages, {refused} refusals retried, {} queued, {} credits deferred",
        queued.len(),
        relay.metric("ournet_credits_deferred_total")
    );
    let queued = queued.len();
    (relay, Outcome { refused, queued })
}

#[test]
fn a_slow_node_across_workers_gets_every_delivered_message_once_and_no_sender_stalls() {
    for backend in &backends() {
        let (relay, out) = run(backend, &[], true);
        assert!(out.refused > 0, "{backend}: the buffer filled");
        assert_eq!(out.queued, 0, "{backend}: the mailboxes had room");
        assert_eq!(relay.drops("mailbox_full"), 0, "{backend}");
        assert_eq!(
            relay.metric("ournet_credits_deferred_total"),
            0,
            "{backend}"
        );
    }
}

/// With one-message mailboxes credits between the workers are often refused: before the
/// fix they were dropped and the senders stalled once their windows ran dry.
#[test]
fn credits_a_full_mailbox_refuses_are_deferred_and_no_sender_stalls() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, "[limits]\nmailbox_cap = 1\n").unwrap();
    let config = config.to_str().unwrap();
    for backend in &backends() {
        let (relay, _) = run(backend, &["--config", config], false);
        assert!(
            relay.metric("ournet_credits_deferred_total") > 0,
            "{backend}: the mailbox was full at times"
        );
    }
}
