//! Circuit creation against one relay: the rate (CREATE -> CREATED, then DESTROY), and the
//! memory of circuits left open and idle.
//!
//! Each CREATE carries a fresh client handshake (`ClientCircuit::build`: one X25519 key
//! generation, a sixth of the relay's work). The client half of the handshake is completed
//! and checked for one CREATED in [`VERIFY_EVERY`]; the others are counted without it, so
//! the generator's CPU goes on making load, not on work the relay does not see.

use std::collections::HashMap;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ournet_proto::cell::{CellCmd, CircId};
use ournet_proto::circuit::{ClientCircuit, PathHop};
use ournet_proto::link_msg::{DestroyReason, LinkMsg};
use rand_chacha::ChaCha20Rng;

use super::link::{Link, rng};
use super::relays::{Relay, Snapshot, Window};

/// One CREATED in this many has its handshake completed and checked by the client.
const VERIFY_EVERY: u64 = 64;

/// What the creation-rate run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct CreateResult {
    /// Client links used.
    pub(crate) links: usize,
    /// CREATEs kept outstanding per link.
    pub(crate) in_flight: usize,
    /// CREATED answers in the window.
    pub(crate) created: u64,
    /// Handshakes completed and checked by the client (all passed).
    pub(crate) verified: u64,
    /// Creations per second (wall).
    pub(crate) per_s: f64,
    /// Creations per relay CPU-second (per core at full use).
    pub(crate) per_relay_cpu_s: f64,
    /// The relay's workers.
    pub(crate) relay_workers: u64,
    /// The window.
    pub(crate) window: Window,
}

/// Shared counters of the link threads.
#[derive(Debug, Default)]
struct Counts {
    created: AtomicU64,
    verified: AtomicU64,
    /// Circuits still open (idle mode).
    open: AtomicU64,
}

/// Where the link threads wait: every link connected, then the start.
#[derive(Debug)]
struct Gates {
    connected: Barrier,
    go: Barrier,
}

impl Gates {
    fn new(links: usize) -> Self {
        Self {
            connected: Barrier::new(links + 1),
            go: Barrier::new(links + 1),
        }
    }
}

/// One link's job: `Some(n)` opens `n` circuits and keeps them; `None` creates and destroys
/// until stopped.
#[derive(Debug, Clone, Copy)]
struct Job {
    keep: Option<u64>,
    in_flight: usize,
}

/// Measures creations per second against `relay`.
pub(crate) fn rate(
    relay: &Relay,
    links: usize,
    in_flight: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<CreateResult> {
    let counts = Counts::default();
    let stop = AtomicBool::new(false);
    let gates = Gates::new(links);
    let job = Job {
        keep: None,
        in_flight,
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..links)
            .map(|_| s.spawn(|| creator(&relay.hop, job, &gates, &stop, &counts)))
            .collect();
        gates.connected.wait();
        gates.go.wait();
        std::thread::sleep(warmup);
        let (a, c0) = (
            Snapshot::take(&[relay]),
            counts.created.load(Ordering::Relaxed),
        );
        std::thread::sleep(duration);
        let (b, c1) = (
            Snapshot::take(&[relay]),
            counts.created.load(Ordering::Relaxed),
        );
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("creator panicked"))??;
        }
        let window = a.delta(&b);
        let created = c1 - c0;
        Ok(CreateResult {
            links,
            in_flight,
            created,
            verified: counts.verified.load(Ordering::Relaxed),
            per_s: created as f64 / window.seconds,
            per_relay_cpu_s: created as f64 / window.mean_relay_cpu(),
            relay_workers: relay.workers,
            window,
        })
    })
}

/// What the idle-circuit run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct IdleResult {
    /// Circuits open at the end.
    pub(crate) circuits: u64,
    /// Client links they are spread over.
    pub(crate) links: usize,
    /// Relay RSS with the links up and no circuit, bytes.
    pub(crate) rss_before: u64,
    /// Relay RSS with every circuit open, bytes.
    pub(crate) rss_after: u64,
    /// (after - before) / circuits.
    pub(crate) bytes_per_circuit: f64,
    /// Seconds it took to open them all.
    pub(crate) open_seconds: f64,
}

/// Opens `total` circuits on `relay` over `links` links, leaves them idle, and reports the
/// relay's RSS per circuit.
pub(crate) fn idle(relay: &Relay, total: u64, links: usize) -> anyhow::Result<IdleResult> {
    let counts = Counts::default();
    let stop = AtomicBool::new(false);
    let gates = Gates::new(links);
    let per_link = total.div_ceil(links as u64);
    let job = Job {
        keep: Some(per_link),
        in_flight: 256,
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..links)
            .map(|_| s.spawn(|| creator(&relay.hop, job, &gates, &stop, &counts)))
            .collect();
        gates.connected.wait();
        std::thread::sleep(Duration::from_millis(500));
        let rss_before = relay.rss_bytes().context("relay RSS")?;
        let t = Instant::now();
        gates.go.wait();
        let deadline = t + Duration::from_secs(600);
        while counts.open.load(Ordering::Relaxed) < per_link * links as u64
            && Instant::now() < deadline
            && !handles.iter().any(|h| h.is_finished())
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        let open_seconds = t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs(1));
        let rss_after = relay.rss_bytes().context("relay RSS")?;
        let circuits = counts.open.load(Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("creator panicked"))??;
        }
        Ok(IdleResult {
            circuits,
            links,
            rss_before,
            rss_after,
            bytes_per_circuit: rss_after.saturating_sub(rss_before) as f64 / circuits.max(1) as f64,
            open_seconds,
        })
    })
}

/// One link: keeps `job.in_flight` CREATEs outstanding.
fn creator(
    hop: &PathHop,
    job: Job,
    gates: &Gates,
    stop: &AtomicBool,
    counts: &Counts,
) -> anyhow::Result<()> {
    let link = Link::connect(hop);
    gates.connected.wait();
    gates.go.wait();
    let mut link = link?;
    let mut rng = rng();
    let mut pending: HashMap<u32, ClientCircuit> = HashMap::with_capacity(job.in_flight);
    let (mut next, mut sent, mut done) = (0u32, 0u64, 0u64);
    let limit = job.keep.unwrap_or(u64::MAX);
    while !stop.load(Ordering::Relaxed) {
        while pending.len() < job.in_flight && sent < limit {
            next += 1;
            let id = 0x8000_0000 | (next & 0x7fff_ffff);
            send_create(&mut link, &mut rng, hop, id, &mut pending)?;
            sent += 1;
        }
        link.flush()?;
        if !link.read_some()? {
            continue;
        }
        while let Some(cell) = link.next_cell()? {
            let id = cell.header.circ_id.map_or(0, CircId::get);
            let circ = pending.remove(&id).context("an answer for no CREATE")?;
            match cell.link_msg() {
                Ok(LinkMsg::Created { hdata }) if cell.header.cmd == CellCmd::CREATED => {
                    done += 1;
                    if done % VERIFY_EVERY == 1 {
                        let mut circ = circ;
                        circ.handle_created(&mut rng, hdata)
                            .context("the relay's CREATED did not verify")?;
                        counts.verified.fetch_add(1, Ordering::Relaxed);
                    }
                }
                other => bail!("CREATE answered with {other:?}"),
            }
            let cid = CircId::new(id).context("id")?;
            if job.keep.is_some() {
                counts.open.fetch_add(1, Ordering::Relaxed);
            } else {
                link.queue_msg(cid, &LinkMsg::Destroy(DestroyReason::NONE))?;
                counts.created.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

fn send_create(
    link: &mut Link,
    rng: &mut ChaCha20Rng,
    hop: &PathHop,
    id: u32,
    pending: &mut HashMap<u32, ClientCircuit>,
) -> anyhow::Result<()> {
    let (circ, htype, hdata) = ClientCircuit::build(rng, Instant::now(), vec![hop.clone()])?;
    link.queue_msg(
        CircId::new(id).context("id")?,
        &LinkMsg::Create {
            htype,
            hdata: &hdata,
        },
    )?;
    pending.insert(id, circ);
    Ok(())
}
