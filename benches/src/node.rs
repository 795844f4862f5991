//! `ournet-bench node`: one client node of a local network, the process `localnet` starts M
//! of. It joins through the seed (`ournet_client::discovery`, the seed's key pinned),
//! publishes its signed address to the seed and prints it, reads its peers' addresses
//! on stdin, sends them messages of the configured sizes at the configured rate through
//! 3-hop circuits, receives theirs, and prints its figures as one JSON line a second
//! ([`stats`]). Everything it does on the network is `ournet-client`'s.
//!
//! * [`engine`]: the `NodeClient` and its sender, receiver and report tasks.
//! * [`mix`]: size lists and privacy names.
//! * [`payload`]: contents the recipient checks byte for byte and timestamps for one-way
//!   latency.
//! * [`stats`]: the stdout lines `localnet` reads.

pub mod engine;
pub mod mix;
pub mod payload;
pub mod stats;

use std::path::PathBuf;

/// Options of `ournet-bench node`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The seed to discover relays from (and publish to).
    #[arg(long)]
    pub seed_url: String,
    /// The seed's public key (hex) to pin: lists it did not sign are refused.
    #[arg(long)]
    pub seed_key: String,
    /// Content sizes, comma-separated (k = 1024, m = 1048576), one taken at random per message.
    #[arg(long, default_value = "1k")]
    pub size: String,
    /// Messages per second this node sends (0: receive only).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Stop sending after this many messages (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub messages: u64,
    /// Privacy level: low, medium, high or paranoid.
    #[arg(long, default_value = "low")]
    pub privacy: String,
    /// Home relays to keep.
    #[arg(long, default_value_t = 2)]
    pub homes: usize,
    /// Turn mixing on: each message gets a fresh circuit of MIN to MAX hops (3 to 5), and
    /// the node sends loop cover messages to itself.
    #[arg(long, value_name = "MIN-MAX")]
    pub mix_hops: Option<String>,
    /// Where the node keeps its keys and state.
    #[arg(long)]
    pub state_dir: PathBuf,
}

/// Runs a node until SIGTERM, SIGINT or the end of its stdin.
///
/// # Errors
/// Bad options, or the node could not join.
pub fn run(args: Args) -> anyhow::Result<()> {
    let sizes = mix::parse_sizes(&args.size)?;
    let privacy = mix::parse_privacy(&args.privacy)?;
    engine::check_args(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(engine::run(args, sizes, privacy))
}
