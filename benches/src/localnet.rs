//! `ournet-bench localnet`, the main job (issue 6): one command starts a real local network
//! on loopback (a seed, N relays and M client nodes, each its own process), has the nodes
//! exchange messages through 3-hop circuits, and shows a live report each second until
//! `--duration` passes or Ctrl-C; then it stops everything and prints a summary.
//!
//! * [`bins`]: builds or finds the seed and relay binaries (nodes are this executable).
//! * [`net`]: the seed and relays, registered by real PoW and listed by `/discover`.
//! * [`procs`]: child processes, their stdout lines, CPU and memory.
//! * [`collect`], [`report`], [`render`]: figures in, a row per second and a summary out.
//! * [`run`](mod@run): the job's phases and its main loop.
//!
//! It decides nothing about the protocol: traffic is the nodes' (`ournet-bench node`, built on
//! `ournet-client`), and every figure comes from a node's stats line, a relay's `/metrics` or
//! `/proc`.

pub mod bins;
pub mod collect;
pub mod http;
pub mod net;
pub mod procs;
pub mod render;
pub mod report;
pub mod run;
pub mod signals;

use std::path::PathBuf;

pub use run::run;

/// Options of `ournet-bench localnet`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Relays to start.
    #[arg(long, default_value_t = 5)]
    pub relays: usize,
    /// Client nodes to start.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Seconds of traffic, then stop (0: until Ctrl-C).
    #[arg(long, default_value_t = 0.0)]
    pub duration: f64,
    /// Content sizes, comma-separated (k = 1024, m = 1048576); each message takes one at
    /// random, e.g. `1,1k,64k,1m`.
    #[arg(long, default_value = "1k")]
    pub size: String,
    /// Messages per second each node sends.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Privacy level of every node: low, medium, high or paranoid.
    #[arg(long, default_value = "low")]
    pub privacy: String,
    /// Turn mixing on in every node: a fresh circuit of MIN to MAX hops (3 to 5) per message,
    /// plus loop cover traffic (needs MAX relays in distinct /16s).
    #[arg(long, value_name = "MIN-MAX")]
    pub mix_hops: Option<String>,
    /// SIGKILL the relay carrying the most circuits this many seconds into the traffic.
    #[arg(long, value_name = "SECONDS")]
    pub kill_relay_at: Option<f64>,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Relay backend: auto, uring or epoll.
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Worker threads per relay.
    #[arg(long, default_value_t = 1)]
    pub relay_workers: u32,
    /// Home relays per node.
    #[arg(long, default_value_t = 2)]
    pub homes: usize,
    /// Use the debug build of the seed and relay (faster to build, slower to run).
    #[arg(long)]
    pub debug: bool,
    /// Do not run cargo: take the seed and relay binaries from --bin-dir or from beside this
    /// executable.
    #[arg(long)]
    pub no_build: bool,
    /// Where prebuilt `ournet-seed` and `ournet-relay` are (implies --no-build).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Keep the run directory (data and each process's log) after a clean run.
    #[arg(long)]
    pub keep: bool,
    /// One line per second even on a terminal.
    #[arg(long)]
    pub plain: bool,
}
