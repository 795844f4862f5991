//! `ournet-bench`: the local network with a live report (`localnet`, the main job) and load
//! generators run against real relays beside a private Tor network (`load`).
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

/// our-network benchmarks.
#[derive(Debug, Parser)]
#[command(name = "ournet-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start a seed, relays and client nodes on loopback and show a live report.
    Localnet(ournet_bench::localnet::Args),
    /// One client node of a local network (started by `localnet`; prints JSON lines).
    Node(ournet_bench::node::Args),
    /// Load-generate against relays (started here or given), side by side with Tor.
    Load(Box<ournet_bench::load::Args>),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Localnet(args) => ournet_bench::localnet::run(args),
        Cmd::Node(args) => ournet_bench::node::run(args),
        Cmd::Load(args) => ournet_bench::load::run(*args),
    }
}
