//! `ournet-bench load`: load against real relays (started here, or given), side by side with
//! a private Tor network, printed as a table and written as JSON.
//!
//! Workloads (each in `load/`): bulk over 1 and 16 circuits to home nodes (`bulk`),
//! request/response latency by PING and by home-node echo (`echo`), circuit creations and
//! idle-circuit memory against one relay (`create`), the one-core ceiling (`ceiling`),
//! and Tor's figures from `tor-net/bench.sh` (`tor`).

mod bulk;
mod ceiling;
mod create;
mod echo;
mod link;
mod relays;
mod report;
mod tor;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};

use relays::{Relay, Spawn};
pub use report::{Fraction, Report, Row};

/// Options of `ournet-bench load`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The relay binary to start (default: `ournet-relay` beside this binary, else
    /// `target/release/ournet-relay`). Build it with `cargo build --release -p ournet-relay`.
    #[arg(long)]
    pub relay_bin: Option<PathBuf>,
    /// Use these relays instead of starting them: a file of ready lines (one JSON per line,
    /// as `ournet-relay` prints; add `"pid": N` for CPU figures). The first three make the
    /// path; the first takes the creation load. The idle-circuit and scaling runs need
    /// relays started here and are skipped.
    #[arg(long)]
    pub relays: Option<PathBuf>,
    /// Backend of the relays started here (auto, uring, epoll).
    #[arg(long, default_value = "uring")]
    pub backend: String,
    /// Workers per relay started here.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Do not pin relay workers to cores.
    #[arg(long)]
    pub no_pin: bool,
    /// Seconds measured per bulk and creation workload.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds of each workload not counted (ramp-up).
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Bytes per bulk message.
    #[arg(long, default_value_t = 256 * 1024)]
    pub message_bytes: usize,
    /// Messages each bulk client keeps unacknowledged (end-to-end ACKs from its home node).
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
    /// Request/response exchanges per latency test.
    #[arg(long, default_value_t = 1000)]
    pub pings: usize,
    /// Client links for the creation-rate run.
    #[arg(long, default_value_t = 4)]
    pub create_links: usize,
    /// CREATEs outstanding per link.
    #[arg(long, default_value_t = 32)]
    pub create_in_flight: usize,
    /// Idle circuits to open against one fresh relay (0: skip).
    #[arg(long, default_value_t = 100_000)]
    pub idle_circuits: u64,
    /// Seconds each ceiling measurement runs (0: skip).
    #[arg(long, default_value_t = 2)]
    pub ceiling_secs: u64,
    /// Skip the 1-worker scaling runs.
    #[arg(long)]
    pub no_scaling: bool,
    /// A private Tor network started by `tor-net/setup.sh DIR`: run its `bench.sh` in the
    /// same run and print ratios.
    #[arg(long)]
    pub tor: Option<PathBuf>,
    /// Where the tor-net scripts are.
    #[arg(long)]
    pub tor_scripts: Option<PathBuf>,
    /// Write the whole result here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Run only these workloads (comma-separated: bulk1, bulk16, echo, create, ceiling, idle,
    /// scaling). Default: all.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Where relay data directories go.
    #[arg(long, default_value = "/tmp/ournet-bench-load")]
    pub work_dir: PathBuf,
}

/// Runs every workload, prints the table and writes the JSON.
///
/// # Errors
/// When relays cannot be started or reached, or a workload fails.
pub fn run(args: Args) -> anyhow::Result<()> {
    let report = measure(&args)?;
    report.print();
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

impl Args {
    fn wants(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|w| w == workload)
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Runs the workloads and returns what they measured.
///
/// # Errors
/// As [`run`].
pub fn measure(args: &Args) -> anyhow::Result<Report> {
    let mut report = Report::new(args);
    if let Some(dir) = &args.tor {
        let scripts = args
            .tor_scripts
            .clone()
            .unwrap_or_else(tor::default_scripts);
        report.note("tor: running tor-net bench.sh");
        let t = tor::run(
            &scripts,
            dir,
            secs(args.warmup),
            secs(args.duration),
            args.pings,
        )?;
        report.tor = Some(t);
    }
    let spawn = Spawn {
        bin: args
            .relay_bin
            .clone()
            .unwrap_or_else(relays::default_relay_bin),
        backend: args.backend.clone(),
        workers: args.workers,
        pin: !args.no_pin,
        dir: args.work_dir.clone(),
    };
    let path = match &args.relays {
        Some(file) => given_relays(file)?,
        None => (0..3)
            .map(|n| spawn.start(n))
            .collect::<anyhow::Result<_>>()?,
    };
    if path.len() < 3 {
        bail!("need three relays, have {}", path.len());
    }
    let path: Vec<&Relay> = path.iter().take(3).collect();
    report.backend = path.first().map(|r| r.backend.clone()).unwrap_or_default();
    report.workers = path.first().map_or(0, |r| r.workers);
    main_workloads(args, &path, &mut report)?;
    if args.relays.is_none() {
        extra_workloads(args, &spawn, &mut report)?;
    }
    report.finish(&path);
    Ok(report)
}

fn main_workloads(args: &Args, path: &[&Relay], report: &mut Report) -> anyhow::Result<()> {
    let (w, d) = (secs(args.warmup), secs(args.duration));
    if args.wants("bulk1") {
        report.note("bulk over 1 circuit");
        report.bulk_1 = Some(bulk::run(
            path,
            1,
            args.message_bytes,
            args.in_flight,
            w,
            d,
        )?);
    }
    if args.wants("bulk16") {
        report.note("bulk over 16 circuits");
        report.bulk_16 = Some(bulk::run(
            path,
            16,
            args.message_bytes,
            args.in_flight,
            w,
            d,
        )?);
    }
    report.rss_after_bulk = path.iter().map(|r| r.rss_bytes().unwrap_or(0)).collect();
    if args.wants("echo") {
        report.note("echo: PING/PONG");
        report.echo_ping = Some(echo::ping(path, args.pings)?);
        report.note("echo: message to a home node, ACK back");
        report.echo_home = Some(echo::home(path, args.pings, 100)?);
    }
    if args.wants("create") {
        report.note("circuit creations against the first relay");
        let first = path.first().context("no relay")?;
        report.create = Some(create::rate(
            first,
            args.create_links,
            args.create_in_flight,
            w,
            d,
        )?);
    }
    if args.ceiling_secs > 0 && args.wants("ceiling") {
        report.note("ceiling: loopback TCP forwarder and ring seal");
        report.ceiling = Some(ceiling::measure(secs(args.ceiling_secs))?);
    }
    Ok(())
}

fn extra_workloads(args: &Args, spawn: &Spawn, report: &mut Report) -> anyhow::Result<()> {
    let (w, d) = (secs(args.warmup), secs(args.duration));
    if args.idle_circuits > 0 && args.wants("idle") {
        report.note("idle circuits against a fresh relay");
        let fresh = spawn.start(10)?;
        let links = usize::try_from(args.idle_circuits.div_ceil(50_000))
            .unwrap_or(1)
            .max(4);
        report.idle = Some(create::idle(&fresh, args.idle_circuits, links)?);
    }
    if !args.no_scaling && args.workers != 1 && args.wants("scaling") {
        report.note("scaling: the same runs with 1-worker relays");
        let one = Spawn {
            workers: 1,
            ..spawn.clone()
        };
        let relays: Vec<Relay> = (20..23)
            .map(|n| one.start(n))
            .collect::<anyhow::Result<_>>()?;
        let path: Vec<&Relay> = relays.iter().collect();
        let bulk_16 = bulk::run(&path, 16, args.message_bytes, args.in_flight, w, d)?;
        let first = path.first().context("no relay")?;
        let create = create::rate(first, args.create_links, args.create_in_flight, w, d)?;
        report.scaling_1 = Some(report::OneWorker { bulk_16, create });
    }
    Ok(())
}

fn given_relays(file: &std::path::Path) -> anyhow::Result<Vec<Relay>> {
    std::fs::read_to_string(file)
        .with_context(|| format!("reading {}", file.display()))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(Relay::from_ready_line)
        .collect()
}
