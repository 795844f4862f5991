//! `ournet-relay`: runs an our-network relay. See `ournet-relay --help` and `relay/README.md`.
#![forbid(unsafe_code)]
#![allow(
    clippy::print_stdout,
    reason = "the ready line goes to stdout for supervisors and tests"
)]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use ournet_relay::config::{BackendChoice, Config};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An our-network relay: forwards onion cells and is home to the nodes that register with it.
///
/// When ready it prints one JSON line on stdout: its bound addresses, backend and public keys.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A TOML configuration file (flags override it).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Where to accept links, e.g. 0.0.0.0:9001 (port 0 picks one).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Where to serve /health and /metrics (keep it on loopback).
    #[arg(long)]
    control: Option<SocketAddr>,
    /// Where keys are kept (created 0700; keys 0600, generated on first start).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Worker threads (0: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// The data-plane backend.
    #[arg(long, value_enum)]
    backend: Option<BackendChoice>,
    /// Do not pin workers to cores.
    #[arg(long)]
    no_pin: bool,
    /// Let EXTEND reach loopback and private addresses (local test networks only).
    #[arg(long)]
    allow_private_extend: bool,
    /// A seed to register with and heartbeat to, e.g. http://seed.example:8470 (repeatable;
    /// adds to the file's `seeds`).
    #[arg(long = "seed-url", value_name = "URL")]
    seed_urls: Vec<String>,
    /// The link endpoint published to seeds (default: --listen when it is a specific IP;
    /// required when listening on 0.0.0.0 with seeds). Port 0 means the bound port.
    #[arg(long = "advertise-addr", value_name = "ADDR")]
    advertise_addr: Option<SocketAddr>,
    /// Seconds SIGTERM waits for circuits before destroying them.
    #[arg(long)]
    drain_timeout: Option<u64>,
    /// Log filter (tracing `EnvFilter` syntax; RUST_LOG wins if set).
    #[arg(long, default_value = "info")]
    log: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&args.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = load_config(&args)?;
    ournet_relay::server::run(config, |ready| {
        if let Ok(line) = serde_json::to_string(ready) {
            println!("{line}");
        }
    })
    .context("relay failed")
}

fn load_config(args: &Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = args.control {
        config.control = v;
    }
    if let Some(v) = &args.data_dir {
        config.data_dir.clone_from(v);
    }
    if let Some(v) = args.workers {
        config.workers = v;
    }
    if let Some(v) = args.backend {
        config.backend = v;
    }
    if let Some(v) = args.drain_timeout {
        config.drain_timeout_secs = v;
    }
    if args.advertise_addr.is_some() {
        config.advertise = args.advertise_addr;
    }
    config.seeds.extend(args.seed_urls.iter().cloned());
    config.pin_cores &= !args.no_pin;
    config.limits.extend_to_private |= args.allow_private_extend;
    Ok(config)
}
