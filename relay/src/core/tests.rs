//! Unit tests of the core: no sockets, a simulated clock, seeded RNGs.
#![allow(clippy::indexing_slicing, reason = "test code")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use ournet_proto::cell::CircId;
use ournet_proto::circuit::ClientCircuit;
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_proto::link::LinkInitiator;
use ournet_proto::link::channel::Channel;
use ournet_proto::link_msg::LinkMsg;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::*;
use crate::config::Config;
use crate::cross::Postman;
use crate::directory::Directory;
use crate::keys::RelayKeys;
use crate::metrics::{DropKind, WorkerMetrics};

mod cross_home;
mod home;

fn relay(seed: u64, now: Instant) -> Relay {
    Relay::new(
        context(seed, Postman::new(Vec::new()), 1),
        0,
        [seed as u8; 32],
        now,
    )
}

fn context(seed: u64, postman: Postman, workers: usize) -> Arc<RelayContext> {
    context_with(seed, postman, workers, Config::default())
}

fn context_with(seed: u64, postman: Postman, workers: usize, config: Config) -> Arc<RelayContext> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let identity = IdentityKeypair::generate(&mut rng);
    let link_key = EncryptionKeypair::generate(&mut rng);
    let onion = EncryptionKeypair::generate(&mut rng);
    Arc::new(RelayContext {
        keys: RelayKeys::new(identity, onion, link_key),
        directory: Directory::new(&config),
        postman,
        metrics: (0..workers)
            .map(|_| Arc::new(WorkerMetrics::default()))
            .collect(),
        shutdown: AtomicBool::new(false),
        config,
    })
}

fn actions(r: &mut Relay) -> Vec<Action> {
    std::iter::from_fn(|| r.poll_action()).collect()
}

fn output(r: &mut Relay, id: ConnId) -> BytesMut {
    let mut out = BytesMut::new();
    r.take_output(id, &mut out);
    out
}

/// A client link to `r` over conn `id`, completed in memory.
fn client_link(r: &mut Relay, rng: &mut ChaCha20Rng, now: Instant) -> (ConnId, Channel, [u8; 32]) {
    link_as(r, rng, now, None)
}

/// A link to `r` completed in memory: a client's (NK), or a relay's when `own` is given (IK).
fn link_as(
    r: &mut Relay,
    rng: &mut ChaCha20Rng,
    now: Instant,
    own: Option<&ournet_proto::link::LinkIdentity>,
) -> (ConnId, Channel, [u8; 32]) {
    let id = r.handle_accept(now, [10, 0, 0, 1].into()).unwrap();
    let keys = &r.ctx.keys;
    let (identity, link_key) = (keys.identity.public(), keys.link.link_public());
    let mut out = Vec::new();
    let mut init = LinkInitiator::start(rng, now, own, identity, link_key, &mut out).unwrap();
    r.handle_input(now, id, &out);
    let reply = output(r, id);
    let (used, est) = init.handle_input(&reply).unwrap().unwrap();
    assert_eq!(used, reply.len());
    (id, Channel::new(est.crypto, now), est.channel_binding)
}

#[test]
fn garbage_of_any_length_closes_the_link_without_panicking() {
    let now = Instant::now();
    let mut r = relay(1, now);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    for (k, len) in [1usize, 7, 8, 9, 10, 100, 1033, 1034, 1035, 5000]
        .into_iter()
        .enumerate()
    {
        let now = now + Duration::from_secs(20 * k as u64);
        let id = r.handle_accept(now, [10, 0, 0, 2].into()).unwrap();
        let mut junk = vec![0u8; len];
        rng.fill_bytes(&mut junk);
        if len > 8 {
            junk[..8].copy_from_slice(b"OURNET\x01\x01");
        }
        for chunk in junk.chunks(3) {
            r.handle_input(now, id, chunk);
        }
        r.handle_timeout(now + Duration::from_secs(11));
        assert!(actions(&mut r).contains(&Action::Close(id)), "len {len}");
        r.handle_closed(now, id);
    }
    assert_eq!(r.connection_count(), 0);
    assert!(
        r.metrics.drops(DropKind::LinkHandshake) + r.metrics.drops(DropKind::HandshakeTimeout)
            >= 10
    );
}

#[test]
fn random_cells_after_a_good_handshake_close_the_link() {
    let now = Instant::now();
    let mut r = relay(3, now);
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let (id, _, _) = client_link(&mut r, &mut rng, now);
    let mut junk = vec![0u8; 3000];
    rng.fill_bytes(&mut junk);
    r.handle_input(now, id, &junk);
    assert!(actions(&mut r).contains(&Action::Close(id)));
    assert_eq!(r.metrics.drops(DropKind::LinkForged), 1);
}

#[test]
fn a_circuit_is_created_and_freed_with_its_link() {
    let now = Instant::now();
    let mut r = relay(5, now);
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let (id, mut channel, _) = client_link(&mut r, &mut rng, now);
    let keys = &r.ctx.keys;
    let hop = ournet_proto::circuit::PathHop {
        identity: keys.identity.public(),
        onion_key: keys.onion.public(),
        link_key: keys.link.link_public(),
        addr: ([127, 0, 0, 1], 1).into(),
    };
    let (mut circ, htype, hdata) = ClientCircuit::build(&mut rng, now, vec![hop]).unwrap();
    let circ_id = CircId::new(0x8000_0001);
    let create = LinkMsg::Create {
        htype,
        hdata: &hdata,
    };
    let cell = channel.encode_msg(now, circ_id, &create).unwrap();
    r.handle_input(now, id, &cell);
    assert_eq!(r.circuit_count(), 1);
    let mut out = output(&mut r, id);
    let got = channel.decode(now, &mut out).unwrap().unwrap();
    let Ok(LinkMsg::Created { hdata }) = got.link_msg() else {
        panic!("expected CREATED")
    };
    circ.handle_created(&mut rng, hdata).unwrap();
    assert!(circ.is_open());
    assert!(!out.has_remaining());
    // A second CREATE on the same id is a protocol violation that closes the link.
    let again = channel.encode_msg(now, circ_id, &create).unwrap();
    r.handle_input(now, id, &again);
    assert!(actions(&mut r).contains(&Action::Close(id)));
    assert_eq!(r.circuit_count(), 0, "closing the link freed its circuit");
    r.handle_closed(now, id);
    assert_eq!(r.connection_count(), 0);
}

#[derive(Debug)]
struct NoWake;

impl crate::cross::Wake for NoWake {
    fn wake(&self) {}
}

/// A one-hop client circuit to a worker core, moved by hand.
struct MemCircuit {
    conn: ConnId,
    channel: Channel,
    circ: ClientCircuit,
    binding: [u8; 32],
    rng: ChaCha20Rng,
}

impl MemCircuit {
    fn open(r: &mut Relay, seed: u64, now: Instant) -> Self {
        Self::open_as(r, seed, now, None)
    }

    /// As [`MemCircuit::open`], over a relay link when `own` is given.
    fn open_as(
        r: &mut Relay,
        seed: u64,
        now: Instant,
        own: Option<&ournet_proto::link::LinkIdentity>,
    ) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (conn, mut channel, binding) = link_as(r, &mut rng, now, own);
        let circ = circuit_on(r, conn, &mut channel, &mut rng, now, 0x8000_0001);
        Self {
            conn,
            channel,
            circ,
            binding,
            rng,
        }
    }

    /// Sends what the client queued and takes what the relay sent back.
    fn pump(&mut self, r: &mut Relay, now: Instant) -> Vec<ournet_proto::circuit::ClientEvent> {
        self.pump_counting(r, now).1
    }

    /// As [`MemCircuit::pump`], also counting the cells sent forward.
    fn pump_counting(
        &mut self,
        r: &mut Relay,
        now: Instant,
    ) -> (usize, Vec<ournet_proto::circuit::ClientEvent>) {
        let (conn, channel, rng) = (self.conn, &mut self.channel, &mut self.rng);
        let sent = send_forward(r, conn, channel, rng, &mut self.circ, now, 0x8000_0001);
        let mut out = output(r, self.conn);
        while let Some(mut cell) = self.channel.decode(now, &mut out).unwrap() {
            self.circ
                .handle_backward(&mut self.rng, cell.body_mut())
                .unwrap();
        }
        (
            sent,
            std::iter::from_fn(|| self.circ.poll_event()).collect(),
        )
    }
}

#[test]
fn delivery_and_ack_cross_workers_through_the_mailboxes() {
    use ournet_proto::circuit::ClientEvent;
    use ournet_proto::relay_msg::DeliveryStatus;

    let now = Instant::now();
    let (tx0, rx0) = crate::cross::mailbox(crate::cross::MAILBOX_CAP);
    let (tx1, rx1) = crate::cross::mailbox(crate::cross::MAILBOX_CAP);
    let wake: Arc<dyn crate::cross::Wake> = Arc::new(NoWake);
    let postman = Postman::new(vec![(tx0, wake.clone()), (tx1, wake)]);
    let ctx = context(7, postman, 2);
    let mut w0 = Relay::new(ctx.clone(), 0, [1; 32], now);
    let mut w1 = Relay::new(ctx, 1, [2; 32], now);
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let bob = IdentityKeypair::generate(&mut rng);

    let mut home = MemCircuit::open(&mut w1, 9, now);
    home.circ.home_auth(&bob, &home.binding.clone()).unwrap();
    assert!(
        home.pump(&mut w1, now)
            .contains(&ClientEvent::HomeAuthed { queued: 0 })
    );

    let mut alice = MemCircuit::open(&mut w0, 10, now);
    let to = bob.public().to_bytes();
    alice
        .circ
        .send_message([4; 16], to, b"envelope".to_vec())
        .unwrap();
    let status = ClientEvent::DeliveryStatus {
        message_id: [4; 16],
        status: DeliveryStatus::DELIVERED,
    };
    assert!(alice.pump(&mut w0, now).contains(&status));
    let alice_key = w0
        .circuits
        .lookup((alice.conn, CircId::new(0x8000_0001).unwrap()))
        .unwrap()
        .0;
    let held = |w: &mut Relay| w.circuits.get_mut(alice_key).unwrap().hop.held_cells();
    assert_eq!(held(&mut w0), 1, "the credit waits for bob's home circuit");
    for msg in rx1.try_iter() {
        w1.handle_cross(now, msg);
    }
    let message = ClientEvent::Message {
        message_id: [4; 16],
        envelope: b"envelope".to_vec(),
    };
    assert!(home.pump(&mut w1, now).contains(&message));

    home.circ.send_ack([4; 16], [5; 16]).unwrap();
    assert!(home.pump(&mut w1, now).is_empty());
    for msg in rx0.try_iter() {
        w0.handle_cross(now, msg);
    }
    assert_eq!(held(&mut w0), 0, "the credit came back through the mailbox");
    let ack = ClientEvent::Ack {
        message_id: [4; 16],
        ack_token: [5; 16],
    };
    assert_eq!(alice.pump(&mut w0, now), vec![ack]);
}

#[test]
fn back_pressure_pauses_the_heaviest_client_link_never_a_relay_link_and_resumes() {
    let now = Instant::now();
    let mut r = relay(11, now);
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let peer = ournet_proto::link::LinkIdentity::new(
        IdentityKeypair::generate(&mut rng),
        EncryptionKeypair::generate(&mut rng),
    );
    let mut via_relay = MemCircuit::open_as(&mut r, 13, now, Some(&peer));
    let mut heavy = MemCircuit::open(&mut r, 14, now);
    let mut light = MemCircuit::open(&mut r, 15, now);
    // The relay link carries the most traffic, then `heavy`; `light` sends one cell.
    for (c, pings) in [(&mut via_relay, 40), (&mut heavy, 20), (&mut light, 1)] {
        for n in 0..pings {
            c.circ.send_ping(n).unwrap();
        }
        c.pump(&mut r, now);
    }
    let _ = actions(&mut r);
    // Any load now counts as over the threshold (the simulated relay is nearly idle).
    r.back_pressure.threshold_pct = 0.0;
    r.back_pressure.release_pct = 0.0;
    r.handle_timeout(now + Duration::from_secs(1));
    assert_eq!(read_switches(&mut r), vec![Action::PauseRead(heavy.conn)]);
    assert_eq!(r.metrics.paused_links.load(Ordering::Relaxed), 1);
    // Still under pressure a sweep later: nothing new to pause, nothing resumed.
    r.handle_timeout(now + Duration::from_secs(2));
    assert_eq!(read_switches(&mut r), vec![]);
    // Load falls under the release point: every paused link reads again.
    r.back_pressure.release_pct = 100.0;
    r.handle_timeout(now + Duration::from_secs(3));
    assert_eq!(read_switches(&mut r), vec![Action::ResumeRead(heavy.conn)]);
    assert_eq!(r.metrics.paused_links.load(Ordering::Relaxed), 0);
}

/// The read pauses and resumes among the actions `r` has queued (the rest are dropped).
fn read_switches(r: &mut Relay) -> Vec<Action> {
    actions(r)
        .into_iter()
        .filter(|a| matches!(a, Action::PauseRead(_) | Action::ResumeRead(_)))
        .collect()
}

/// Opens a one-hop circuit `id` on the client link `conn` and completes its handshake.
fn circuit_on(
    r: &mut Relay,
    conn: ConnId,
    channel: &mut Channel,
    rng: &mut ChaCha20Rng,
    now: Instant,
    id: u32,
) -> ClientCircuit {
    let keys = &r.ctx.keys;
    let hop = ournet_proto::circuit::PathHop {
        identity: keys.identity.public(),
        onion_key: keys.onion.public(),
        link_key: keys.link.link_public(),
        addr: ([127, 0, 0, 1], 1).into(),
    };
    let (mut circ, htype, hdata) = ClientCircuit::build(rng, now, vec![hop]).unwrap();
    let create = LinkMsg::Create {
        htype,
        hdata: &hdata,
    };
    let cell = channel.encode_msg(now, CircId::new(id), &create).unwrap();
    r.handle_input(now, conn, &cell);
    let mut out = output(r, conn);
    let got = channel.decode(now, &mut out).unwrap().unwrap();
    let Ok(LinkMsg::Created { hdata }) = got.link_msg() else {
        panic!("expected CREATED")
    };
    circ.handle_created(rng, hdata).unwrap();
    circ
}

/// Sends what `circ` has queued as circuit `id` on `conn`; returns how many cells.
fn send_forward(
    r: &mut Relay,
    conn: ConnId,
    channel: &mut Channel,
    rng: &mut ChaCha20Rng,
    circ: &mut ClientCircuit,
    now: Instant,
    id: u32,
) -> usize {
    let mut body = [0u8; ournet_proto::cell::BODY_LEN];
    let mut sent = 0;
    while circ.poll_forward(rng, &mut body).unwrap() {
        sent += 1;
        let mut cell = [0u8; CELL_LEN];
        cell[ournet_proto::cell::HEADER_LEN..].copy_from_slice(&body);
        let header = ournet_proto::cell::CellHeader {
            circ_id: CircId::new(id),
            cmd: ournet_proto::cell::CellCmd::RELAY,
        };
        channel.encode(now, header, &mut cell).unwrap();
        r.handle_input(now, conn, &cell);
    }
    sent
}

#[test]
fn a_congested_link_serves_circuits_by_their_qos_weights_and_starves_none() {
    let now = Instant::now();
    let mut r = relay(21, now);
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    // Two home circuits on one client link: Bob's with the Critical weight, Carol's with the
    // Minimum weight.
    let (link, mut channel, binding) = client_link(&mut r, &mut rng, now);
    let mut keys = Vec::new();
    for (id, weight) in [(0x8000_0001u32, 20u32), (0x8000_0002, 1)] {
        let mut circ = circuit_on(&mut r, link, &mut channel, &mut rng, now, id);
        let node = IdentityKeypair::generate(&mut rng);
        circ.home_auth(&node, &binding).unwrap();
        send_forward(&mut r, link, &mut channel, &mut rng, &mut circ, now, id);
        let mut out = output(&mut r, link);
        while channel.decode(now, &mut out).unwrap().is_some() {}
        let (key, _) = r.circuits.lookup((link, CircId::new(id).unwrap())).unwrap();
        r.circuits.get_mut(key).unwrap().weight = weight;
        keys.push(node.public().to_bytes());
    }
    // Alice sends each of them a message of ~900 cells while their link is not read.
    let mut alice = MemCircuit::open(&mut r, 23, now);
    for (n, to) in keys.iter().enumerate() {
        alice
            .circ
            .send_message([n as u8; 16], *to, vec![n as u8; 850_000])
            .unwrap();
        while alice.circ.queued_bytes() > 0 {
            alice.pump(&mut r, now);
        }
    }
    let ids = [CircId::new(0x8000_0001), CircId::new(0x8000_0002)];
    let mut rounds: Vec<[usize; 2]> = Vec::new();
    loop {
        let mut out = output(&mut r, link);
        if out.is_empty() {
            break;
        }
        let mut counts = [0usize; 2];
        while let Some(cell) = channel.decode(now, &mut out).unwrap() {
            if let Some(i) = ids.iter().position(|id| *id == cell.header.circ_id) {
                counts[i] += 1;
            }
        }
        rounds.push(counts);
        r.handle_writable(now, link);
    }
    // The first take is what was sealed before the link congested; the next two rounds are
    // scheduled while both circuits are backlogged.
    let [bob, carol] = [0, 1].map(|i| rounds[1..3].iter().map(|c| c[i]).sum::<usize>());
    assert!(carol >= 1, "the Minimum tier is not starved: {rounds:?}");
    assert!(bob >= 10 * carol, "Critical gets ~20x Minimum: {rounds:?}");
    let total = [0, 1].map(|i| rounds.iter().map(|c| c[i]).sum::<usize>());
    assert!(
        total[0] >= 900 && total[1] >= 900,
        "everything arrives: {total:?}"
    );
}

/// Opens `n` circuits on one client link and queues `cells` RELAY cells of each toward the
/// client (as a middle relay does with backward cells) while the link is not written.
fn fill_link(r: &mut Relay, n: u32, cells: usize, now: Instant) -> ConnId {
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    let (link, mut channel, _) = client_link(r, &mut rng, now);
    let ids: Vec<CircId> = (1..=n)
        .map(|i| {
            let id = 0x8000_0000 | i;
            circuit_on(r, link, &mut channel, &mut rng, now, id);
            CircId::new(id).unwrap()
        })
        .collect();
    for _ in 0..cells {
        for id in &ids {
            let Some((key, _)) = r.circuits.lookup((link, *id)) else {
                continue;
            };
            let mut cell = [7u8; CELL_LEN];
            r.send_relay(now, key, link, *id, &mut cell);
        }
    }
    link
}

#[test]
fn a_link_queues_a_full_window_for_each_of_its_circuits_under_the_default_caps() {
    let now = Instant::now();
    let mut r = relay(30, now);
    let window = ournet_proto::flow::CIRCUIT_WINDOW as usize;
    let link = fill_link(&mut r, 16, window, now);
    let queued = r.conns[&link].queued_bytes();
    // 16 windows are about 16 MiB, four times the old fixed 4 MiB cap, and nothing is shed.
    assert!(queued >= 16 * window * CELL_LEN, "{queued}");
    assert_eq!(r.circuit_count(), 16);
    assert_eq!(r.metrics.drops(DropKind::MemoryShed), 0);
    assert_eq!(r.metrics.drops(DropKind::ResourceLimit), 0);
    assert_eq!(r.send_queued, queued);
    // Every cell goes out, in full.
    let mut sent = 0;
    loop {
        let out = output(&mut r, link);
        if out.is_empty() {
            break;
        }
        sent += out.len();
        r.handle_writable(now, link);
    }
    assert!(
        sent >= queued && r.send_queued == 0,
        "{sent} {}",
        r.send_queued
    );
}

#[test]
fn the_worker_cap_bounds_a_link_and_sheds_the_heaviest_circuits() {
    let now = Instant::now();
    let mut config = Config::default();
    config.limits.conn_out_bytes = 1 << 20;
    config.limits.worker_send_bytes = 4 << 20;
    let mut r = Relay::new(
        context_with(32, Postman::new(Vec::new()), 1, config),
        0,
        [32; 32],
        now,
    );
    let link = fill_link(&mut r, 16, 1000, now);
    let queued = r.conns[&link].queued_bytes();
    assert!(queued <= 4 << 20, "bounded by the worker cap: {queued}");
    assert!(r.metrics.drops(DropKind::MemoryShed) > 0);
    assert!(r.circuit_count() < 16, "{}", r.circuit_count());
    assert!(r.circuit_count() > 0, "only what does not fit is shed");
}

#[test]
fn cells_peeled_in_a_lent_buffer_are_handled_whatever_the_read_boundaries() {
    use ournet_proto::circuit::ClientEvent;

    let now = Instant::now();
    let mut r = relay(40, now);
    let mut rng = ChaCha20Rng::seed_from_u64(41);
    let (link, mut channel, _) = client_link(&mut r, &mut rng, now);
    let mut circ = circuit_on(&mut r, link, &mut channel, &mut rng, now, 0x8000_0001);
    for n in 0..60 {
        circ.send_ping(n).unwrap();
    }
    // The whole stream of sealed cells, as the socket would deliver it.
    let mut stream = Vec::new();
    let mut body = [0u8; ournet_proto::cell::BODY_LEN];
    while circ.poll_forward(&mut rng, &mut body).unwrap() {
        let mut cell = [0u8; CELL_LEN];
        cell[ournet_proto::cell::HEADER_LEN..].copy_from_slice(&body);
        let header = ournet_proto::cell::CellHeader {
            circ_id: CircId::new(0x8000_0001),
            cmd: ournet_proto::cell::CellCmd::RELAY,
        };
        channel.encode(now, header, &mut cell).unwrap();
        stream.extend_from_slice(&cell);
    }
    // Reads that end mid-header, mid-body, on a boundary, and span several cells.
    let sizes = [1usize, 15, 1008, 1024, 3000, 7, 2048, 5121, 333];
    let mut rest = &mut stream[..];
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (read, tail) = rest.split_at_mut((*size).min(rest.len()));
        r.handle_input_mut(now, link, read);
        rest = tail;
    }
    assert!(r.conns[&link].inbuf.is_empty());
    let mut out = output(&mut r, link);
    while let Some(mut cell) = channel.decode(now, &mut out).unwrap() {
        circ.handle_backward(&mut rng, cell.body_mut()).unwrap();
    }
    let pongs: Vec<u64> = std::iter::from_fn(|| circ.poll_event())
        .filter_map(|e| match e {
            ClientEvent::Pong(n) => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(pongs, (0..60).collect::<Vec<_>>());
    assert_eq!(r.metrics.drops(DropKind::LinkForged), 0);
}

#[test]
fn a_forged_cell_in_a_lent_buffer_closes_the_link() {
    let now = Instant::now();
    let mut r = relay(42, now);
    let mut rng = ChaCha20Rng::seed_from_u64(43);
    let (link, mut channel, _) = client_link(&mut r, &mut rng, now);
    let msg = LinkMsg::Destroy(ournet_proto::link_msg::DestroyReason(1));
    let mut stream = Vec::new();
    for i in 1..=3 {
        stream.extend_from_slice(&channel.encode_msg(now, CircId::new(i), &msg).unwrap());
    }
    stream[CELL_LEN + 2] ^= 0x40;
    r.handle_input_mut(now, link, &mut stream);
    assert!(actions(&mut r).contains(&Action::Close(link)));
    assert_eq!(r.metrics.drops(DropKind::LinkForged), 1);
}
