//! The result of a load run: every workload's figures, the ratios to Tor against issue 5's
//! targets, the table printed on stdout and the JSON document.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the report is the program's output; progress notes go to stderr"
)]

use std::fmt::Write as _;

use serde::Serialize;

use super::Args;
use super::bulk::BulkResult;
use super::ceiling::Ceiling;
use super::create::{CreateResult, IdleResult};
use super::echo::EchoResult;
use super::relays::Relay;
use super::tor::TorResult;

/// The 1-worker runs, for scaling.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OneWorker {
    /// 16-circuit bulk through three 1-worker relays.
    pub(crate) bulk_16: BulkResult,
    /// Creations against a 1-worker relay.
    pub(crate) create: CreateResult,
}

/// One figure beside Tor's.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What it is.
    pub figure: String,
    /// Ours.
    pub ours: f64,
    /// Tor's, when run.
    pub tor: Option<f64>,
    /// ours / Tor.
    pub ratio: Option<f64>,
    /// Issue 5's target, in words.
    pub target: String,
    /// Whether it is met (when a target applies and the figures exist).
    pub met: Option<bool>,
}

/// How close the middle relay came to its one-core ceiling.
#[derive(Debug, Clone, Serialize)]
pub struct Fraction {
    /// Which bulk run.
    pub run: String,
    /// Cells the middle relay received per CPU-second it used.
    pub cells_per_cpu_s: f64,
    /// The ceiling (loopback TCP + one AEAD pass per cell).
    pub ceiling_cells_per_cpu_s: f64,
    /// The share of the ceiling reached.
    pub fraction: f64,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    schema: &'static str,
    date_utc: String,
    load_before: String,
    load_after: String,
    /// The relays' backend.
    pub backend: String,
    /// The relays' workers.
    pub workers: u64,
    paths: Paths,
    pub(crate) bulk_1: Option<BulkResult>,
    pub(crate) bulk_16: Option<BulkResult>,
    pub(crate) rss_after_bulk: Vec<u64>,
    pub(crate) echo_ping: Option<EchoResult>,
    pub(crate) echo_home: Option<EchoResult>,
    pub(crate) create: Option<CreateResult>,
    pub(crate) idle: Option<IdleResult>,
    pub(crate) ceiling: Option<Ceiling>,
    pub(crate) scaling_1: Option<OneWorker>,
    pub(crate) tor: Option<TorResult>,
    /// Ratios to Tor and targets.
    pub rows: Vec<Row>,
    /// Forwarding against the ceiling.
    pub fractions: Vec<Fraction>,
}

/// Which relay path each workload takes (stated in the output).
#[derive(Debug, Clone, Serialize)]
struct Paths {
    bulk: &'static str,
    echo_ping: &'static str,
    echo_home: &'static str,
    create: &'static str,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn date_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl Report {
    pub(crate) fn new(args: &Args) -> Self {
        let _ = args;
        Self {
            schema: "ournet-bench-load/1",
            date_utc: date_utc(),
            load_before: loadavg(),
            load_after: String::new(),
            backend: String::new(),
            workers: 0,
            paths: Paths {
                bulk: "client -> R1 -> R2 -> R3 (home relay) -> home node; messages of \
                       --message-bytes, --in-flight of them unACKed per client; payload = \
                       message bytes received whole",
                echo_ping: "PING answered by R3 with PONG (3 TCP hops each way)",
                echo_home: "100-byte message to a home node on R3, answered by its ACK \
                            (4 TCP hops each way, like Tor's echo to the sink)",
                create: "CREATE -> CREATED -> DESTROY on one-hop circuits to R1",
            },
            bulk_1: None,
            bulk_16: None,
            rss_after_bulk: Vec::new(),
            echo_ping: None,
            echo_home: None,
            create: None,
            idle: None,
            ceiling: None,
            scaling_1: None,
            tor: None,
            rows: Vec::new(),
            fractions: Vec::new(),
        }
    }

    /// A progress note on stderr.
    pub(crate) fn note(&self, what: &str) {
        eprintln!("[ournet-bench load] {what} (load {})", loadavg());
    }

    /// Computes the ratios and fractions.
    pub(crate) fn finish(&mut self, _path: &[&Relay]) {
        self.load_after = loadavg();
        let tor = self.tor.clone();
        let t = tor.as_ref();
        if let Some(b) = self.bulk_1.clone() {
            self.row(
                "bulk, 1 circuit, MB/s",
                b.payload_mbps,
                t.map(|t| t.bulk_1_mbps),
                50.0,
            );
            self.row(
                "payload MB per relay CPU-s, 1 circuit",
                b.payload_per_relay_cpu_s / 1e6,
                t.map(|t| t.bulk_1_per_relay_cpu_s / 1e6),
                10.0,
            );
        }
        if let Some(b) = self.bulk_16.clone() {
            self.row(
                "bulk, 16 circuits, MB/s",
                b.payload_mbps,
                t.map(|t| t.bulk_16_mbps),
                10.0,
            );
            self.row(
                "payload MB per relay CPU-s, 16 circuits",
                b.payload_per_relay_cpu_s / 1e6,
                t.map(|t| t.bulk_16_per_relay_cpu_s / 1e6),
                10.0,
            );
        }
        for e in [self.echo_home.clone(), self.echo_ping.clone()]
            .into_iter()
            .flatten()
        {
            let kind = e.kind;
            self.row_at_most(
                &format!("echo {kind} p50 ms"),
                e.p50_ms,
                t.map(|t| t.echo_p50_ms),
            );
            self.row_at_most(
                &format!("echo {kind} p99 ms"),
                e.p99_ms,
                t.map(|t| t.echo_p99_ms),
            );
        }
        if let Some(c) = &self.create {
            self.rows.push(Row {
                figure: "circuit creations per relay CPU-s".into(),
                ours: c.per_relay_cpu_s,
                tor: None,
                ratio: None,
                target: ">= 6,000 per relay core".into(),
                met: Some(c.per_relay_cpu_s >= 6000.0),
            });
        }
        self.fractions = self.compute_fractions();
    }

    fn row(&mut self, figure: &str, ours: f64, tor: Option<f64>, at_least: f64) {
        let ratio = tor.map(|t| ours / t);
        self.rows.push(Row {
            figure: figure.into(),
            ours,
            tor,
            ratio,
            target: format!(">= {at_least}x Tor"),
            met: ratio.map(|r| r >= at_least),
        });
    }

    fn row_at_most(&mut self, figure: &str, ours: f64, tor: Option<f64>) {
        let ratio = tor.map(|t| ours / t);
        self.rows.push(Row {
            figure: figure.into(),
            ours,
            tor,
            ratio,
            target: "<= 0.05x Tor".into(),
            met: ratio.map(|r| r <= 0.05),
        });
    }

    fn compute_fractions(&self) -> Vec<Fraction> {
        let Some(c) = &self.ceiling else {
            return Vec::new();
        };
        let runs = [
            ("bulk 1 circuit", &self.bulk_1),
            ("bulk 16 circuits", &self.bulk_16),
        ];
        runs.iter()
            .filter_map(|(name, b)| {
                let w = &b.as_ref()?.window;
                let cells = *w.relay_cells_in.get(1)? as f64;
                let cpu = *w.relay_cpu.get(1)?;
                let per = cells / cpu;
                Some(Fraction {
                    run: (*name).to_owned(),
                    cells_per_cpu_s: per,
                    ceiling_cells_per_cpu_s: c.cells_per_cpu_s,
                    fraction: per / c.cells_per_cpu_s,
                })
            })
            .collect()
    }

    /// Prints the table.
    pub fn print(&self) {
        println!("{}", self.table());
    }

    /// The table as text.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "ournet-bench load  {}  backend {}  workers {}  load avg {} -> {}",
            self.date_utc, self.backend, self.workers, self.load_before, self.load_after
        );
        self.table_workloads(&mut s);
        self.table_ratios(&mut s);
        s
    }

    fn table_workloads(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\nworkload               MB/s   cells/s  relay CPU-s (R1 R2 R3)   gen CPU-s"
        );
        for (name, b) in [
            ("bulk 1 circuit", &self.bulk_1),
            ("bulk 16 circuits", &self.bulk_16),
        ] {
            if let Some(b) = b {
                bulk_line(s, name, b);
            }
        }
        if let Some(one) = &self.scaling_1 {
            bulk_line(s, "bulk 16, 1 worker", &one.bulk_16);
        }
        let _ = writeln!(s, "  bulk path: {}", self.paths.bulk);
        for e in [&self.echo_ping, &self.echo_home].into_iter().flatten() {
            let _ = writeln!(
                s,
                "echo {:<5} {} x: p50 {:.3} ms  p99 {:.3} ms  p999 {:.3} ms  max {:.3} ms",
                e.kind, e.exchanges, e.p50_ms, e.p99_ms, e.p999_ms, e.max_ms
            );
        }
        let _ = writeln!(
            s,
            "  ping: {}\n  home: {}",
            self.paths.echo_ping, self.paths.echo_home
        );
        for (name, c) in [
            ("", self.create.as_ref()),
            (" (1 worker)", self.scaling_1.as_ref().map(|o| &o.create)),
        ] {
            if let Some(c) = c {
                let _ = writeln!(
                    s,
                    "creations{name}: {:.0}/s, {:.0} per relay CPU-s, relay CPU {:.2} s, gen CPU {:.2} s, {} checked",
                    c.per_s,
                    c.per_relay_cpu_s,
                    c.window.mean_relay_cpu(),
                    c.window.gen_cpu,
                    c.verified
                );
            }
        }
        if let Some(i) = &self.idle {
            let _ = writeln!(
                s,
                "idle circuits: {} open in {:.1} s, relay RSS {:.1} -> {:.1} MiB: {:.0} bytes per circuit",
                i.circuits,
                i.open_seconds,
                i.rss_before as f64 / 1048576.0,
                i.rss_after as f64 / 1048576.0,
                i.bytes_per_circuit
            );
        }
        let rss: Vec<String> = self
            .rss_after_bulk
            .iter()
            .map(|b| format!("{:.1}", *b as f64 / 1048576.0))
            .collect();
        let _ = writeln!(s, "relay RSS after bulk (MiB): {}", rss.join(" "));
        if let Some(c) = &self.ceiling {
            let _ = writeln!(
                s,
                "ceiling: loopback TCP {:.3} ns/byte + ring seal {:.0} ns/cell = {:.0} cells per CPU-s",
                c.tcp_ns_per_byte, c.seal_ns_per_cell, c.cells_per_cpu_s
            );
        }
        for f in &self.fractions {
            let _ = writeln!(
                s,
                "R2 forwarding, {}: {:.0} cells per CPU-s = {:.1} % of the ceiling",
                f.run,
                f.cells_per_cpu_s,
                f.fraction * 100.0
            );
        }
    }

    fn table_ratios(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n{:<42} {:>12} {:>12} {:>10}  target",
            "figure", "ours", "Tor", "ours/Tor"
        );
        for r in &self.rows {
            let opt = |v: Option<f64>, p: usize| v.map_or("-".to_owned(), |v| format!("{v:.p$}"));
            let met = match r.met {
                Some(true) => "met",
                Some(false) => "SHORT",
                None => "",
            };
            let _ = writeln!(
                s,
                "{:<42} {:>12.3} {:>12} {:>10}  {} {met}",
                r.figure,
                r.ours,
                opt(r.tor, 3),
                opt(r.ratio, 3),
                r.target
            );
        }
    }
}

fn bulk_line(s: &mut String, name: &str, b: &BulkResult) {
    let cpu: Vec<String> = b
        .window
        .relay_cpu
        .iter()
        .map(|c| format!("{c:.2}"))
        .collect();
    let _ = writeln!(
        s,
        "{:<20} {:>8.1} {:>9.0}  {:<24} {:>6.2}   ({} circuits, {:.1} s, per circuit {:.1}-{:.1} MB/s, statuses delivered/queued/refused {:?})",
        name,
        b.payload_mbps,
        b.cells_per_s,
        cpu.join(" "),
        b.window.gen_cpu,
        b.circuits,
        b.window.seconds,
        b.per_circuit_mbps.0,
        b.per_circuit_mbps.1,
        b.statuses
    );
}
