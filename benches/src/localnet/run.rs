//! The job's phases: binaries, run directory, seed, relays (registered and listed), nodes
//! (ready, then told their peers), the once-a-second loop, and the ordered shutdown.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the job reports to the terminal"
)]

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::Args;
use super::bins::{self, Source};
use super::collect::NodeFeed;
use super::net::{Relay, RelayOpts, Seed, wait_discoverable};
use super::procs::{Proc, ready_channel, usage};
use super::render;
use super::report::{Names, NodeSample, RelaySample, Row, RunMeta, Summary, Tracker};
use super::signals::{self, Stop};
use crate::node::mix::{mix_config, parse_privacy, parse_sizes};
use crate::node::stats::PeersLine;

/// How long a node may take to join (discover relays, connect its homes, publish).
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopping process may take after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A client node process and what its stdout thread gathers.
#[derive(Debug)]
struct Node {
    proc: Proc,
    feed: Arc<Mutex<NodeFeed>>,
}

/// Everything started.
#[derive(Debug)]
struct Network {
    seed: Seed,
    relays: Vec<Relay>,
    nodes: Vec<Node>,
}

/// Runs the job.
///
/// # Errors
/// A process did not start or exited early, or no message arrived at all.
pub fn run(args: Args) -> anyhow::Result<()> {
    let sizes = parse_sizes(&args.size)?;
    let privacy = parse_privacy(&args.privacy)?;
    if let Some(hops) = &args.mix_hops {
        mix_config(privacy, hops)?;
    }
    if args.relays < 3 {
        bail!("3-hop circuits need at least 3 relays");
    }
    let stop = signals::install()?;
    let src = Source {
        debug: args.debug,
        no_build: args.no_build || args.bin_dir.is_some(),
        dir: args.bin_dir.clone(),
    };
    eprintln!("localnet: building or finding ournet-seed and ournet-relay ...");
    let bins = bins::resolve(&src)?;
    let dir = RunDir::create()?;
    let mut meta = RunMeta {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        relays: args.relays,
        nodes: args.nodes,
        sizes,
        rate_per_node: args.rate,
        privacy: match &args.mix_hops {
            Some(hops) => format!("{privacy}, mix {hops} hops"),
            None => privacy.as_str().to_owned(),
        },
        profile: if args.debug { "debug" } else { "release" }.to_owned(),
        ..RunMeta::default()
    };
    let result = start(&args, &bins, &dir.path, &stop).and_then(|mut net| {
        meta.backend = net
            .relays
            .first()
            .map(|r| r.backend.clone())
            .unwrap_or_default();
        let out = drive(&args, &mut net, &stop, &mut meta);
        shutdown(&mut net, &mut meta);
        out
    });
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "localnet: logs of every process are in {}",
                dir.keep().display()
            );
            return Err(e);
        }
    };
    print!("{}", render::summary(&summary));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.keep {
        eprintln!("localnet: run directory kept: {}", dir.keep().display());
    }
    check(&summary)
}

/// Starts the seed, the relays (until `/discover` lists them all) and the nodes (until each
/// printed its address), then tells each node the others' addresses.
fn start(args: &Args, bins: &bins::Bins, dir: &Path, stop: &Stop) -> anyhow::Result<Network> {
    let t0 = Instant::now();
    let seed = Seed::start(&bins.seed, dir)?;
    eprintln!("localnet: seed on {}", seed.api);
    let opts = RelayOpts {
        backend: args.backend.clone(),
        workers: args.relay_workers,
    };
    let mut relays = (0..args.relays)
        .map(|i| Relay::start(&bins.relay, dir, i, &seed.url(), &opts))
        .collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!(
        "localnet: {} relays up, registering with the seed (PoW) ...",
        relays.len()
    );
    let seed_key = wait_discoverable(&seed, &mut relays, &|| stop.requested())?;
    eprintln!(
        "localnet: all relays listed by /discover after {:.1} s; starting {} nodes ...",
        t0.elapsed().as_secs_f64(),
        args.nodes
    );
    let mut net = Network {
        seed,
        relays,
        nodes: Vec::new(),
    };
    let mut addresses = Vec::new();
    for i in 0..args.nodes {
        let (node, address) = start_node(args, bins, dir, i, &net.seed.url(), &seed_key)?;
        net.nodes.push(node);
        addresses.push(address);
    }
    for (i, node) in net.nodes.iter_mut().enumerate() {
        let peers = PeersLine {
            peers: addresses
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| a.clone())
                .collect(),
        };
        let stdin = node.proc.stdin().context("node stdin")?;
        writeln!(stdin, "{}", serde_json::to_string(&peers)?)?;
        stdin.flush()?;
    }
    eprintln!(
        "localnet: network up after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(net)
}

fn start_node(
    args: &Args,
    bins: &bins::Bins,
    dir: &Path,
    i: usize,
    seed_url: &str,
    seed_key: &str,
) -> anyhow::Result<(Node, String)> {
    let name = format!("node-{}", i + 1);
    let mut cmd = Command::new(&bins.node);
    cmd.arg("node")
        .args(["--seed-url", seed_url, "--seed-key", seed_key])
        .args(["--size", &args.size, "--rate", &args.rate.to_string()])
        .args([
            "--privacy",
            &args.privacy,
            "--homes",
            &args.homes.to_string(),
        ])
        .arg("--state-dir")
        .arg(dir.join(&name));
    if let Some(hops) = &args.mix_hops {
        cmd.args(["--mix-hops", hops]);
    }
    let (tx, rx) = ready_channel();
    let (feed, on_line) = NodeFeed::new(tx);
    let mut proc = Proc::spawn(&name, cmd, &dir.join(format!("{name}.log")), on_line)?;
    let address = rx.wait(&mut proc, NODE_READY_TIMEOUT)?;
    Ok((Node { proc, feed }, address))
}

/// The once-a-second loop: sample, render, kill a relay when asked; until the duration
/// passes or a stop is requested. Returns the summary.
fn drive(
    args: &Args,
    net: &mut Network,
    stop: &Stop,
    meta: &mut RunMeta,
) -> anyhow::Result<Summary> {
    let names = Names {
        relays: net.relays.iter().map(|r| r.proc.name.clone()).collect(),
        nodes: net.nodes.iter().map(|n| n.proc.name.clone()).collect(),
    };
    let mut tracker = Tracker::new(names);
    let tty = std::io::stdout().is_terminal() && !args.plain;
    let title = format!(
        "ournet localnet: {} relays, {} nodes, sizes {}, {} msg/s per node, privacy {}",
        args.relays, args.nodes, args.size, args.rate, args.privacy
    );
    let start = Instant::now();
    let mut next = start + Duration::from_secs(1);
    let mut last_row = Row::default();
    let mut kill_at = args.kill_relay_at;
    let mut exited = vec![false; net.nodes.len()];
    while !stop.requested() {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next += Duration::from_secs(1);
        let t = start.elapsed().as_secs_f64();
        if kill_at.is_some_and(|k| t >= k) {
            kill_at = None;
            kill_busiest_relay(net, &last_row, t, meta);
        }
        last_row = sample(net, &mut tracker, t);
        note_exits(net, &mut exited, t, meta);
        let mut out = std::io::stdout().lock();
        let text = if tty {
            render::screen(&last_row, &title)
        } else {
            render::line(&last_row) + "\n"
        };
        out.write_all(text.as_bytes())?;
        out.flush()?;
        if args.duration > 0.0 && t >= args.duration {
            break;
        }
    }
    if stop.requested() {
        meta.events.push("stopped by a signal".into());
    }
    Ok(tracker.summary(meta.clone()))
}

fn sample(net: &Network, tracker: &mut Tracker, t: f64) -> Row {
    let nodes = net
        .nodes
        .iter()
        .map(|n| {
            let (stats, ack, one_way) = NodeFeed::take(&n.feed);
            NodeSample {
                stats,
                ack,
                one_way,
                usage: usage(n.proc.pid()),
            }
        })
        .collect();
    let relays: Vec<RelaySample> = net
        .relays
        .iter()
        .map(|r| RelaySample {
            metrics: r.metrics().map(|m| super::collect::parse_relay_metrics(&m)),
            usage: if r.killed { None } else { usage(r.proc.pid()) },
        })
        .collect();
    tracker.tick(t, nodes, &relays, usage(net.seed.proc.pid()))
}

/// SIGKILLs the relay with the most circuits in the last row (the first if none has any).
fn kill_busiest_relay(net: &mut Network, last: &Row, t: f64, meta: &mut RunMeta) {
    let busiest = last
        .relays
        .iter()
        .enumerate()
        .max_by_key(|(_, r)| r.circuits)
        .map_or(0, |(i, _)| i);
    if let Some(r) = net.relays.get_mut(busiest) {
        r.proc.kill();
        r.killed = true;
        let circuits = last.relays.get(busiest).map_or(0, |r| r.circuits);
        meta.events.push(format!(
            "{} SIGKILLed at t={t:.1}s (it carried {circuits} circuits)",
            r.proc.name
        ));
    }
}

fn note_exits(net: &mut Network, exited: &mut [bool], t: f64, meta: &mut RunMeta) {
    for (n, gone) in net.nodes.iter_mut().zip(exited.iter_mut()) {
        if !*gone && let Some(st) = n.proc.exited() {
            *gone = true;
            meta.events.push(format!(
                "{} exited at t={t:.1}s ({st}); see its log",
                n.proc.name
            ));
        }
    }
    for r in net.relays.iter_mut().filter(|r| !r.killed) {
        if let Some(st) = r.proc.exited() {
            r.killed = true;
            meta.events.push(format!(
                "{} exited at t={t:.1}s ({st}); see its log",
                r.proc.name
            ));
        }
    }
}

/// Stops nodes, then relays, then the seed (SIGTERM, SIGKILL after a grace period).
fn shutdown(net: &mut Network, meta: &mut RunMeta) {
    let procs = net
        .nodes
        .iter_mut()
        .map(|n| &mut n.proc)
        .chain(
            net.relays
                .iter_mut()
                .filter(|r| !r.killed)
                .map(|r| &mut r.proc),
        )
        .chain(std::iter::once(&mut net.seed.proc));
    for p in procs {
        match p.stop(STOP_GRACE) {
            Some(st) if st.success() => {}
            Some(st) => meta.events.push(format!("{} stopped with {st}", p.name)),
            None => meta.events.push(format!("{} could not be reaped", p.name)),
        }
    }
}

/// The exit status: a run where nothing arrived, or where a node died, failed.
fn check(s: &Summary) -> anyhow::Result<()> {
    if s.meta.nodes >= 2 && s.totals.sent > 0 && s.totals.received == 0 {
        bail!("no message arrived (see the nodes' logs with --keep)");
    }
    if s.meta
        .events
        .iter()
        .any(|e| e.starts_with("node-") && e.contains("exited"))
    {
        bail!("a node exited during the run (see its log with --keep)");
    }
    Ok(())
}

/// The run directory (seed and relay data, node state, every process's log); removed when
/// dropped unless kept.
#[derive(Debug)]
struct RunDir {
    path: PathBuf,
    keep: bool,
}

impl RunDir {
    fn create() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("ournet-localnet-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("{}", path.display()))?;
        Ok(Self { path, keep: false })
    }

    /// Keeps it; its path.
    fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
