//! Request/response latency over 3 hops, one exchange at a time, in two forms:
//!
//! * `ping`: PING answered with PONG by the last hop (PROTOCOL.md §7.5): 3 TCP hops each way.
//! * `home`: a 100-byte message to a home node connected to the last hop, answered by the
//!   node's end-to-end ACK routed back by the home relay (§7.3): 4 TCP hops each way, like
//!   Tor's client -> guard -> middle -> exit -> sink echo.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use ournet_proto::cell::CircId;
use ournet_proto::circuit::{ClientEvent, PathHop};
use ournet_proto::keys::IdentityKeypair;

use super::link::{Circ, Link, SETUP_TIMEOUT, rng};
use super::relays::Relay;

/// Latency quantiles of one echo run.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct EchoResult {
    /// `ping` or `home` (module doc).
    pub(crate) kind: &'static str,
    /// Exchanges measured (after the warm-up ones).
    pub(crate) exchanges: usize,
    /// Median, ms.
    pub(crate) p50_ms: f64,
    /// 99th percentile, ms.
    pub(crate) p99_ms: f64,
    /// 99.9th percentile, ms.
    pub(crate) p999_ms: f64,
    /// Mean, ms.
    pub(crate) mean_ms: f64,
    /// Largest, ms.
    pub(crate) max_ms: f64,
}

/// Exchanges not counted at the start.
const WARMUP: usize = 20;

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

fn result(kind: &'static str, h: &Histogram<u64>) -> EchoResult {
    let ms = |us: u64| us as f64 / 1000.0;
    EchoResult {
        kind,
        exchanges: usize::try_from(h.len()).unwrap_or(usize::MAX),
        p50_ms: ms(h.value_at_quantile(0.5)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        mean_ms: h.mean() / 1000.0,
        max_ms: ms(h.max()),
    }
}

/// PING/PONG over a 3-hop circuit.
pub(crate) fn ping(relays: &[&Relay], count: usize) -> anyhow::Result<EchoResult> {
    let path: Vec<PathHop> = relays.iter().map(|r| r.hop.clone()).collect();
    let mut link = Link::connect(path.first().context("no relays")?)?;
    let mut c = Circ::build(&mut link, CircId::new(0x8000_0001).context("id")?, path)?;
    let mut h = histogram()?;
    for i in 0..WARMUP + count {
        let t = Instant::now();
        let nonce = i as u64;
        c.circ.send_ping(nonce)?;
        c.wait_for(&mut link, |e| *e == ClientEvent::Pong(nonce))?;
        if i >= WARMUP {
            h.record(micros(t.elapsed()))?;
        }
    }
    Ok(result("ping", &h))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// A 100-byte message to a home node on the last hop, answered by its ACK.
pub(crate) fn home(relays: &[&Relay], count: usize, size: usize) -> anyhow::Result<EchoResult> {
    let path: Vec<PathHop> = relays.iter().map(|r| r.hop.clone()).collect();
    let last = path.last().context("no relays")?.clone();
    let who = IdentityKeypair::generate(&mut rng());
    let to = who.public().to_bytes();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (stop, who, last) = (&stop, &who, &last);
        let node = s.spawn(move || answerer(last, who, stop, tx));
        let measured = rx
            .recv_timeout(SETUP_TIMEOUT)
            .map_err(|_| anyhow::anyhow!("the home node did not come up"))
            .and_then(|()| exchange(path, to, count, size));
        stop.store(true, Ordering::Relaxed);
        let node = node
            .join()
            .map_err(|_| anyhow::anyhow!("home node panicked"));
        let h = measured?;
        node??;
        Ok(result("home", &h))
    })
}

fn exchange(
    path: Vec<PathHop>,
    to: [u8; 32],
    count: usize,
    size: usize,
) -> anyhow::Result<Histogram<u64>> {
    let mut link = Link::connect(path.first().context("no relays")?)?;
    let mut c = Circ::build(&mut link, CircId::new(0x8000_0001).context("id")?, path)?;
    let mut h = histogram()?;
    let message = vec![0x5au8; size];
    for i in 0..WARMUP + count {
        let t = Instant::now();
        let id = (i as u128 + 1).to_be_bytes();
        c.circ.send_message(id, to, message.clone())?;
        let ev = c.wait_for(&mut link, |e| matches!(e, ClientEvent::Ack { .. }))?;
        match ev {
            ClientEvent::Ack { message_id, .. } if message_id == id => {}
            other => bail!("expected the ACK of message {i}, got {other:?}"),
        }
        if i >= WARMUP {
            h.record(micros(t.elapsed()))?;
        }
    }
    Ok(h)
}

/// The home node: ACKs every message it receives.
fn answerer(
    hop: &PathHop,
    who: &IdentityKeypair,
    stop: &AtomicBool,
    up: std::sync::mpsc::SyncSender<()>,
) -> anyhow::Result<()> {
    let mut link = Link::connect(hop)?;
    let mut c = Circ::build(
        &mut link,
        CircId::new(0x8000_0001).context("id")?,
        vec![hop.clone()],
    )?;
    let binding = link.binding;
    c.circ.home_auth(who, &binding)?;
    c.wait_for(&mut link, |e| matches!(e, ClientEvent::HomeAuthed { .. }))?;
    let _ = up.send(());
    while !stop.load(Ordering::Relaxed) {
        if !link.read_some()? {
            continue;
        }
        c.handle_input(&mut link)?;
        while let Some(ev) = c.circ.poll_event() {
            if let ClientEvent::Message { message_id, .. } = ev {
                c.circ.send_ack(message_id, [0; 16])?;
            }
        }
        c.flush(&mut link)?;
    }
    Ok(())
}
