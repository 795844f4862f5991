//! Turning one second of gathered figures into a report row, and the run into a summary.
//!
//! Rates are differences of counters between two samples over the time between them, so a
//! late tick does not inflate them. Latency percentiles of a row come from that second's
//! samples; the summary's from every sample of the run.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::collect::{RelayMetrics, histogram};
use super::procs::Usage;
use crate::node::stats::{Counters, StatsLine};

/// One node's inputs to a tick.
#[derive(Debug)]
pub struct NodeSample {
    /// Its counters.
    pub stats: StatsLine,
    /// Its send-to-ACK samples of this second.
    pub ack: Histogram<u64>,
    /// Its one-way samples of this second.
    pub one_way: Histogram<u64>,
    /// CPU and memory, `None` once it exited.
    pub usage: Option<Usage>,
}

/// One relay's inputs to a tick.
#[derive(Debug, Clone)]
pub struct RelaySample {
    /// Its metrics, `None` when it did not answer (killed).
    pub metrics: Option<RelayMetrics>,
    /// CPU and memory, `None` once it exited.
    pub usage: Option<Usage>,
}

/// A process as a row shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcRow {
    /// `seed`, `relay-1`, `node-1`.
    pub name: String,
    /// Whether it is running.
    pub up: bool,
    /// CPU use over the last second, percent of one core.
    pub cpu_pct: f64,
    /// Resident memory, MiB.
    pub rss_mib: f64,
}

/// One relay in a row.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RelayRow {
    /// The process.
    pub proc: ProcRow,
    /// Cells received per second.
    pub cells_in_per_s: f64,
    /// Cells sent per second.
    pub cells_out_per_s: f64,
    /// Open circuits.
    pub circuits: u64,
    /// Open connections.
    pub connections: u64,
}

/// One node in a row.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeRow {
    /// The process.
    pub proc: ProcRow,
    /// Its counters.
    #[serde(flatten)]
    pub counters: Counters,
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Latency {
    /// The percentiles of `h` (µs samples).
    #[expect(clippy::cast_precision_loss, reason = "latencies in µs fit in f64")]
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |v: u64| v as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// The figures of one second.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    /// Seconds since traffic started.
    pub t: f64,
    /// Messages received per second (all nodes).
    pub msgs_per_s: f64,
    /// Content megabytes (10^6) received per second.
    pub mb_per_s: f64,
    /// Messages sent per second.
    pub sent_per_s: f64,
    /// Send-to-ACK latency of this second.
    pub ack_latency: Latency,
    /// Send-to-receive latency of this second.
    pub one_way_latency: Latency,
    /// Counters since the start, summed over nodes.
    pub totals: Counters,
    /// Relays.
    pub relays: Vec<RelayRow>,
    /// Nodes.
    pub nodes: Vec<NodeRow>,
    /// The seed.
    pub seed: ProcRow,
    /// Drops by reason: relays' `ournet_drops_total` and nodes' failed sends.
    pub drops: BTreeMap<String, u64>,
}

/// Keeps what rates and the summary need across ticks.
#[derive(Debug)]
pub struct Tracker {
    names: Names,
    last_t: f64,
    last_totals: Counters,
    last_relays: Vec<Option<RelayMetrics>>,
    last_cpu: BTreeMap<String, f64>,
    peak_rss: BTreeMap<String, f64>,
    ack_all: Histogram<u64>,
    one_way_all: Histogram<u64>,
    last_row: Row,
}

/// The names of the processes, in report order.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Relays.
    pub relays: Vec<String>,
    /// Nodes.
    pub nodes: Vec<String>,
}

impl Tracker {
    /// A tracker for these processes.
    pub fn new(names: Names) -> Self {
        Self {
            last_relays: vec![None; names.relays.len()],
            names,
            last_t: 0.0,
            last_totals: Counters::default(),
            last_cpu: BTreeMap::new(),
            peak_rss: BTreeMap::new(),
            ack_all: histogram(),
            one_way_all: histogram(),
            last_row: Row::default(),
        }
    }

    /// The row for the samples taken at `t` seconds.
    pub fn tick(
        &mut self,
        t: f64,
        nodes: Vec<NodeSample>,
        relays: &[RelaySample],
        seed: Option<Usage>,
    ) -> Row {
        let dt = (t - self.last_t).max(1e-3);
        let mut row = Row {
            t,
            ..Row::default()
        };
        let (mut ack, mut one_way) = (histogram(), histogram());
        let node_names = self.names.nodes.clone();
        for (name, n) in node_names.iter().zip(nodes) {
            row.totals.add(&n.stats.counters);
            let _ = ack.add(&n.ack);
            let _ = one_way.add(&n.one_way);
            for (reason, v) in &n.stats.drops {
                *row.drops.entry(format!("node:{reason}")).or_default() += v;
            }
            row.nodes.push(NodeRow {
                proc: self.proc_row(name, n.usage, dt),
                counters: n.stats.counters,
            });
        }
        let _ = self.ack_all.add(&ack);
        let _ = self.one_way_all.add(&one_way);
        row.ack_latency = Latency::of(&ack);
        row.one_way_latency = Latency::of(&one_way);
        self.relay_rows(&mut row, relays, dt);
        row.seed = self.proc_row("seed", seed, dt);
        let (now, before) = (row.totals, self.last_totals);
        #[expect(clippy::cast_precision_loss, reason = "counts fit in f64")]
        {
            row.msgs_per_s = now.received.saturating_sub(before.received) as f64 / dt;
            row.sent_per_s = now.sent.saturating_sub(before.sent) as f64 / dt;
            row.mb_per_s =
                now.bytes_received.saturating_sub(before.bytes_received) as f64 / dt / 1e6;
        }
        self.last_totals = now;
        self.last_t = t;
        self.last_row = row.clone();
        row
    }

    fn relay_rows(&mut self, row: &mut Row, relays: &[RelaySample], dt: f64) {
        let names = self.names.relays.clone();
        for (i, (name, r)) in names.iter().zip(relays).enumerate() {
            let mut rr = RelayRow {
                proc: self.proc_row(name, r.usage, dt),
                ..RelayRow::default()
            };
            // A killed relay keeps its last figures in the drop totals.
            let current = r.metrics.clone().or_else(|| self.last_relays[i].clone());
            if let (Some(m), Some(prev)) = (&r.metrics, &self.last_relays[i]) {
                #[expect(clippy::cast_precision_loss, reason = "counts fit in f64")]
                {
                    rr.cells_in_per_s = m.cells_in.saturating_sub(prev.cells_in) as f64 / dt;
                    rr.cells_out_per_s = m.cells_out.saturating_sub(prev.cells_out) as f64 / dt;
                }
            }
            if let Some(m) = &r.metrics {
                rr.circuits = m.circuits;
                rr.connections = m.connections;
            }
            if let Some(m) = &current {
                for (reason, v) in &m.drops {
                    *row.drops.entry(format!("relay:{reason}")).or_default() += v;
                }
            }
            self.last_relays[i] = current;
            row.relays.push(rr);
        }
    }

    fn proc_row(&mut self, name: &str, usage: Option<Usage>, dt: f64) -> ProcRow {
        let Some(u) = usage else {
            return ProcRow {
                name: name.to_owned(),
                ..ProcRow::default()
            };
        };
        let prev = self.last_cpu.insert(name.to_owned(), u.cpu_secs);
        #[expect(clippy::cast_precision_loss, reason = "KiB of RSS fit in f64")]
        let rss_mib = u.rss_kib as f64 / 1024.0;
        let peak = self.peak_rss.entry(name.to_owned()).or_default();
        *peak = peak.max(rss_mib);
        ProcRow {
            name: name.to_owned(),
            up: true,
            cpu_pct: prev.map_or(0.0, |p| (u.cpu_secs - p).max(0.0) * 100.0 / dt),
            rss_mib,
        }
    }

    /// The summary of the run so far.
    pub fn summary(&self, meta: RunMeta) -> Summary {
        let last = &self.last_row;
        let t = last.t.max(1e-3);
        #[expect(clippy::cast_precision_loss, reason = "counts fit in f64")]
        let (msgs_per_s, mb_per_s) = (
            last.totals.received as f64 / t,
            last.totals.bytes_received as f64 / t / 1e6,
        );
        let relays = self
            .names
            .relays
            .iter()
            .zip(&self.last_relays)
            .map(|(name, m)| RelayTotal {
                name: name.clone(),
                cpu_s: self.last_cpu.get(name).copied().unwrap_or(0.0),
                peak_rss_mib: self.peak_rss.get(name).copied().unwrap_or(0.0),
                metrics: m.clone().unwrap_or_default(),
            })
            .collect();
        let proc_total = |name: &String| ProcTotal {
            name: name.clone(),
            cpu_s: self.last_cpu.get(name).copied().unwrap_or(0.0),
            peak_rss_mib: self.peak_rss.get(name).copied().unwrap_or(0.0),
        };
        Summary {
            meta,
            traffic_seconds: last.t,
            totals: last.totals,
            acked_pct: last.totals.acked_pct(),
            msgs_per_s,
            mb_per_s,
            ack_latency: Latency::of(&self.ack_all),
            one_way_latency: Latency::of(&self.one_way_all),
            relays,
            nodes: self.names.nodes.iter().map(proc_total).collect(),
            seed: proc_total(&"seed".to_owned()),
            drops: last.drops.clone(),
        }
    }
}

/// How the run was set up, for the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunMeta {
    /// The command line.
    pub command: String,
    /// Relay count.
    pub relays: usize,
    /// Node count.
    pub nodes: usize,
    /// Content sizes mixed (bytes).
    pub sizes: Vec<usize>,
    /// Messages per second each node sends.
    pub rate_per_node: f64,
    /// Privacy level.
    pub privacy: String,
    /// Relay backend as the relays reported it.
    pub backend: String,
    /// `release` or `debug`.
    pub profile: String,
    /// What happened besides traffic (relay killed, process exits).
    pub events: Vec<String>,
}

/// A relay's figures over the run.
#[derive(Debug, Clone, Serialize)]
pub struct RelayTotal {
    /// Name.
    pub name: String,
    /// CPU seconds.
    pub cpu_s: f64,
    /// Peak resident memory.
    pub peak_rss_mib: f64,
    /// Its last metrics.
    pub metrics: RelayMetrics,
}

/// A process's resources over the run.
#[derive(Debug, Clone, Serialize)]
pub struct ProcTotal {
    /// Name.
    pub name: String,
    /// CPU seconds.
    pub cpu_s: f64,
    /// Peak resident memory.
    pub peak_rss_mib: f64,
}

/// The run's summary (printed at the end, and written by `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Setup.
    pub meta: RunMeta,
    /// Seconds of traffic.
    pub traffic_seconds: f64,
    /// Message counters.
    pub totals: Counters,
    /// ACKed of sent, percent.
    pub acked_pct: f64,
    /// Received messages per second over the run.
    pub msgs_per_s: f64,
    /// Received content MB (10^6) per second over the run.
    pub mb_per_s: f64,
    /// Send-to-ACK latency over the run.
    pub ack_latency: Latency,
    /// Send-to-receive latency over the run.
    pub one_way_latency: Latency,
    /// Relays.
    pub relays: Vec<RelayTotal>,
    /// Nodes.
    pub nodes: Vec<ProcTotal>,
    /// The seed.
    pub seed: ProcTotal,
    /// Drops by reason.
    pub drops: BTreeMap<String, u64>,
}
