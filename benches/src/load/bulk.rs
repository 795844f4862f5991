//! Bulk transfer: each of N clients sends messages over its own 3-hop circuit to its own home
//! node, connected to the last hop (PROTOCOL.md §7.2, §7.4). The payload counted is the
//! message bytes the home nodes received whole inside the window.
//!
//! The home node ACKs every message end to end (§7.3) and a client keeps at most
//! `in_flight` messages unacknowledged, as the client library does. (Without that window a
//! client is still paced by its home node: the home relay credits the client's circuit only
//! as the node's home circuit window takes each message, §8.)

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use ournet_proto::cell::CircId;
use ournet_proto::circuit::{ClientEvent, PathHop};
use ournet_proto::keys::IdentityKeypair;

use super::link::{Circ, Link, rng};
use super::relays::{Relay, Snapshot, Window};

/// Cells sealed per write.
const BATCH: usize = 64;

/// What a bulk run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct BulkResult {
    /// Circuits (each with its own client link and home node).
    pub(crate) circuits: usize,
    /// Bytes per message.
    pub(crate) message_bytes: usize,
    /// Message bytes received whole by the home nodes in the window.
    pub(crate) payload_bytes: u64,
    /// RELAY cells the home nodes received in the window.
    pub(crate) home_cells: u64,
    /// Messages kept unacknowledged per client.
    pub(crate) in_flight: usize,
    /// DELIVERY_STATUS answers seen by the clients over the whole run: delivered, queued
    /// offline, refused.
    pub(crate) statuses: [u64; 3],
    /// Payload MB/s (10^6 bytes).
    pub(crate) payload_mbps: f64,
    /// Cells per second reaching the home nodes.
    pub(crate) cells_per_s: f64,
    /// Payload bytes per CPU-second of a relay (the mean of the relays' CPU).
    pub(crate) payload_per_relay_cpu_s: f64,
    /// Smallest and largest circuit's payload MB/s.
    pub(crate) per_circuit_mbps: (f64, f64),
    /// The window: wall time, relay CPU, relay cells, generator CPU.
    pub(crate) window: Window,
}

/// Runs bulk over `circuits` 3-hop circuits through `relays` (first, middle, last).
pub(crate) fn run(
    relays: &[&Relay],
    circuits: usize,
    message_bytes: usize,
    in_flight: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<BulkResult> {
    let path: Vec<PathHop> = relays.iter().map(|r| r.hop.clone()).collect();
    let home = path.last().context("no relays")?.clone();
    let stop = AtomicBool::new(false);
    let bytes: Vec<AtomicU64> = (0..circuits).map(|_| AtomicU64::new(0)).collect();
    let cells = AtomicU64::new(0);
    let statuses = [const { AtomicU64::new(0) }; 3];
    let ready = Barrier::new(2 * circuits + 1);
    std::thread::scope(|s| -> anyhow::Result<BulkResult> {
        let mut handles = Vec::new();
        for counter in &bytes {
            let who = IdentityKeypair::generate(&mut rng());
            let to = who.public().to_bytes();
            let (home, ready, stop, cells) = (&home, &ready, &stop, &cells);
            handles.push(s.spawn(move || receiver(home, &who, ready, stop, counter, cells)));
            let path = path.clone();
            let statuses = &statuses;
            let job = Job {
                to,
                message_bytes,
                in_flight,
            };
            handles.push(s.spawn(move || sender(path, job, ready, stop, statuses)));
        }
        ready.wait();
        std::thread::sleep(warmup);
        let before = (
            Snapshot::take(relays),
            sum(&bytes),
            cells.load(Ordering::Relaxed),
        );
        let per0: Vec<u64> = bytes.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        std::thread::sleep(duration);
        let after = (
            Snapshot::take(relays),
            sum(&bytes),
            cells.load(Ordering::Relaxed),
        );
        let per1: Vec<u64> = bytes.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        }
        let window = before.0.delta(&after.0);
        let payload = after.1 - before.1;
        let secs = window.seconds;
        let per: Vec<f64> = per1
            .iter()
            .zip(&per0)
            .map(|(b, a)| (b - a) as f64 / secs / 1e6)
            .collect();
        Ok(BulkResult {
            circuits,
            message_bytes,
            in_flight,
            statuses: statuses.each_ref().map(|s| s.load(Ordering::Relaxed)),
            payload_bytes: payload,
            home_cells: after.2 - before.2,
            payload_mbps: payload as f64 / secs / 1e6,
            cells_per_s: (after.2 - before.2) as f64 / secs,
            payload_per_relay_cpu_s: payload as f64 / window.mean_relay_cpu(),
            per_circuit_mbps: (
                per.iter().copied().fold(f64::INFINITY, f64::min),
                per.iter().copied().fold(0.0, f64::max),
            ),
            window,
        })
    })
}

fn sum(v: &[AtomicU64]) -> u64 {
    v.iter().map(|b| b.load(Ordering::Relaxed)).sum()
}

/// What one client sends.
#[derive(Debug, Clone, Copy)]
struct Job {
    to: [u8; 32],
    message_bytes: usize,
    in_flight: usize,
}

/// A client: keeps `in_flight` messages unacknowledged and the circuit's window full; reads
/// only when it has nothing to send (SENDMEs, DELIVERY_STATUS and ACKs come back).
fn sender(
    path: Vec<PathHop>,
    job: Job,
    ready: &Barrier,
    stop: &AtomicBool,
    statuses: &[AtomicU64; 3],
) -> anyhow::Result<()> {
    let setup = (|| {
        let mut link = Link::connect(path.first().context("empty path")?)?;
        let id = CircId::new(0x8000_0001).context("circ id")?;
        let circ = Circ::build(&mut link, id, path)?;
        anyhow::Ok((link, circ))
    })();
    ready.wait();
    let (mut link, mut c) = setup?;
    let message = vec![0xa5u8; job.message_bytes];
    let (mut sent, mut acked) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        while sent - acked < job.in_flight as u64 {
            sent += 1;
            let id = u128::from(sent).to_be_bytes();
            c.circ.send_message(id, job.to, message.clone())?;
        }
        if link.queue_relay(c.id, &mut c.circ, &mut c.rng, BATCH)? > 0 {
            link.flush()?;
            continue;
        }
        if link.read_some()? {
            c.handle_input(&mut link)?;
            while let Some(ev) = c.circ.poll_event() {
                match ev {
                    ClientEvent::Ack { .. } => acked += 1,
                    ClientEvent::DeliveryStatus { status, .. } => {
                        let i = usize::from(status.0.min(2));
                        if let Some(n) = statuses.get(i) {
                            n.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// A home node: authenticates on the last hop, then reads, counts whole messages and answers
/// with SENDMEs and an ACK per message.
fn receiver(
    hop: &PathHop,
    who: &IdentityKeypair,
    ready: &Barrier,
    stop: &AtomicBool,
    bytes: &AtomicU64,
    cells: &AtomicU64,
) -> anyhow::Result<()> {
    let setup = (|| {
        let mut link = Link::connect(hop)?;
        let id = CircId::new(0x8000_0001).context("circ id")?;
        let mut c = Circ::build(&mut link, id, vec![hop.clone()])?;
        let binding = link.binding;
        c.circ.home_auth(who, &binding)?;
        c.wait_for(&mut link, |e| matches!(e, ClientEvent::HomeAuthed { .. }))?;
        anyhow::Ok((link, c))
    })();
    ready.wait();
    let (mut link, mut c) = setup?;
    while !stop.load(Ordering::Relaxed) {
        if !link.read_some()? {
            continue;
        }
        let n = c.handle_input(&mut link)?;
        cells.fetch_add(n as u64, Ordering::Relaxed);
        while let Some(ev) = c.circ.poll_event() {
            if let ClientEvent::Message {
                message_id,
                envelope,
            } = ev
            {
                bytes.fetch_add(envelope.len() as u64, Ordering::Relaxed);
                c.circ.send_ack(message_id, [0; 16])?;
            }
        }
        c.flush(&mut link)?;
    }
    Ok(())
}
