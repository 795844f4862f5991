//! The figures a heartbeat reports, measured from the workers' metrics, and the retry
//! backoff. Both are pure: time comes in as an argument, so tests run on a simulated clock.
//!
//! The reference router reports a constant `uptime_pct` of 99.9 and no load (W31). Here:
//!
//! * `uptime_pct`: the share of the time since the relay started during which its workers
//!   were running, integrated between samples (a dead worker counts as a lost fraction);
//! * `load_pct`: `ournet_proto::flow::load_pct` over all workers (connections against the
//!   connection cap, queued bytes against the workers' queue budget);
//! * `messages_per_sec`: cells forwarded per second since the previous sample (a relay's
//!   throughput is counted in cells), `messages_relayed` the total;
//! * `queue_depth`: cells waiting in link send queues; connections and circuits as counted.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ournet_proto::cell::CELL_LEN;
use ournet_proto::flow::load_pct;
use rand_core::RngCore;
use serde_json::{Map, Value, json};

use crate::config::Limits;
use crate::core::RelayContext;

/// The workers' metrics at one instant, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Open connections.
    pub connections: u64,
    /// Open circuits.
    pub circuits: u64,
    /// Cells queued for sending since start.
    pub cells_out: u64,
    /// Bytes waiting in link send queues.
    pub queued_bytes: u64,
    /// Workers whose thread runs.
    pub alive_workers: u64,
    /// Workers started.
    pub workers: u64,
}

impl Snapshot {
    /// Reads every worker's metrics.
    pub fn read(ctx: &RelayContext) -> Self {
        let mut s = Self {
            workers: ctx.metrics.len() as u64,
            ..Self::default()
        };
        for m in &ctx.metrics {
            s.connections += m.connections.load(Ordering::Relaxed);
            s.circuits += m.circuits.load(Ordering::Relaxed);
            s.cells_out += m.cells_out.load(Ordering::Relaxed);
            s.queued_bytes += m.out_queue_bytes.load(Ordering::Relaxed);
            s.alive_workers += m.alive.load(Ordering::Relaxed).min(1);
        }
        s
    }

    fn alive_fraction(&self) -> f64 {
        if self.workers == 0 {
            return 0.0;
        }
        self.alive_workers as f64 / self.workers as f64
    }
}

/// One heartbeat's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadReport {
    /// Open connections.
    pub connections: u64,
    /// The connection cap.
    pub max_connections: u64,
    /// Open circuits.
    pub circuits: u64,
    /// Cells forwarded per second since the previous sample.
    pub cells_per_sec: f64,
    /// Cells forwarded since start.
    pub cells_relayed: u64,
    /// Cells waiting in send queues.
    pub queue_depth: u64,
    /// Load in percent (PROTOCOL.md §8).
    pub load_pct: f64,
    /// Share of the time since start the workers ran, in percent.
    pub uptime_pct: f64,
}

impl LoadReport {
    /// The heartbeat fields the seed reads (spec §4.1), plus `circuits`.
    pub fn to_json(&self) -> Map<String, Value> {
        let v = json!({
            "active_connections": self.connections,
            "max_connections": self.max_connections,
            "circuits": self.circuits,
            "messages_per_sec": self.cells_per_sec,
            "messages_relayed": self.cells_relayed,
            "queue_depth": self.queue_depth,
            "load_pct": self.load_pct,
            "uptime_pct": self.uptime_pct,
        });
        v.as_object().cloned().unwrap_or_default()
    }
}

/// Turns successive [`Snapshot`]s into [`LoadReport`]s.
#[derive(Debug, Clone)]
pub struct LoadSampler {
    started: Instant,
    last_at: Instant,
    last_cells: u64,
    serving: Duration,
}

impl LoadSampler {
    /// A sampler for a relay that started at `started`; `first` is read at `now`.
    pub fn new(started: Instant, now: Instant, first: &Snapshot) -> Self {
        let since = now.saturating_duration_since(started);
        Self {
            started,
            last_at: now,
            last_cells: first.cells_out,
            serving: since.mul_f64(first.alive_fraction()),
        }
    }

    /// The report for `snap`, read at `now`.
    pub fn sample(&mut self, now: Instant, snap: &Snapshot, limits: &Limits) -> LoadReport {
        let dt = now.saturating_duration_since(self.last_at);
        self.serving += dt.mul_f64(snap.alive_fraction());
        let cells = snap.cells_out.saturating_sub(self.last_cells);
        let cells_per_sec = if dt.is_zero() {
            0.0
        } else {
            cells as f64 / dt.as_secs_f64()
        };
        let up = now.saturating_duration_since(self.started);
        let uptime_pct = if up.is_zero() {
            100.0 * snap.alive_fraction()
        } else {
            (100.0 * self.serving.as_secs_f64() / up.as_secs_f64()).min(100.0)
        };
        self.last_at = now;
        self.last_cells = snap.cells_out;
        let budget = limits
            .worker_queue_budget()
            .saturating_mul(snap.workers as usize);
        LoadReport {
            connections: snap.connections,
            max_connections: limits.max_connections as u64,
            circuits: snap.circuits,
            cells_per_sec,
            cells_relayed: snap.cells_out,
            queue_depth: snap.queued_bytes / CELL_LEN as u64,
            load_pct: load_pct(
                usize::try_from(snap.connections).unwrap_or(usize::MAX),
                limits.max_connections,
                usize::try_from(snap.queued_bytes).unwrap_or(usize::MAX),
                budget,
            ),
            uptime_pct,
        }
    }
}

/// Exponential backoff with jitter: `min · 2^failures`, capped at `max`, then a uniform pick
/// in its upper half so that relays restarted together do not retry together.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff between `min` and `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The delay before the next attempt, after one more failure.
    pub fn next_delay(&mut self, rng: &mut impl RngCore) -> Duration {
        let full = self
            .min
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let jitter = f64::from(rng.next_u32()) / f64::from(u32::MAX);
        full.mul_f64(0.5 + 0.5 * jitter)
    }

    /// Back to the shortest delay (after a success).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn snap(cells_out: u64, alive: u64) -> Snapshot {
        Snapshot {
            connections: 10,
            circuits: 4,
            cells_out,
            queued_bytes: 8 * CELL_LEN as u64,
            alive_workers: alive,
            workers: 2,
        }
    }

    #[test]
    fn reports_rates_load_and_measured_uptime_on_a_simulated_clock() {
        let t0 = Instant::now();
        let limits = Limits {
            max_connections: 100,
            ..Limits::default()
        };
        let mut s = LoadSampler::new(t0, t0, &snap(0, 2));
        let r = s.sample(t0 + Duration::from_secs(10), &snap(5000, 2), &limits);
        assert_eq!(r.cells_per_sec, 500.0);
        assert_eq!(r.uptime_pct, 100.0);
        assert_eq!(r.queue_depth, 8);
        assert_eq!((r.connections, r.circuits, r.max_connections), (10, 4, 100));
        let budget = limits.worker_queue_budget() * 2;
        assert_eq!(r.load_pct, load_pct(10, 100, 8 * CELL_LEN, budget));
        // One of two workers dies for the next 10 s: half of that time is lost.
        let r = s.sample(t0 + Duration::from_secs(20), &snap(5000, 1), &limits);
        assert_eq!(r.cells_per_sec, 0.0);
        assert_eq!(r.uptime_pct, 75.0);
        assert_eq!(r.to_json()["uptime_pct"], 75.0);
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_and_resets() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let caps = [1, 2, 4, 8, 8, 8];
        for cap in caps {
            let d = b.next_delay(&mut rng);
            let cap = Duration::from_secs(cap);
            assert!(d >= cap / 2 && d <= cap, "{d:?} vs {cap:?}");
        }
        b.reset();
        assert!(b.next_delay(&mut rng) <= Duration::from_secs(1));
    }
}
