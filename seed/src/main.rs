//! `ournet-seed`: run the our-network seed service.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use ournet_seed::config::SeedConfig;

/// The our-network seed: router registration with PoW, anti-Sybil rules, signed router lists.
///
/// Settings come from the TOML file given with --config (every key is documented in
/// `seed/src/config.rs` and `seed/seed.example.toml`); the flags below override it.
#[derive(Debug, Parser)]
#[command(name = "ournet-seed", version)]
struct Args {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// API listen address (default 0.0.0.0:8470; use port 0 for any free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Prometheus metrics listen address (default 127.0.0.1:9470).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Data directory for the embedded store and the seed key (default ./seed-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Share state with other replicas through PostgreSQL: postgres://user@host:port/db
    #[arg(long)]
    database_url: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut cfg = match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            SeedConfig::from_toml(&text).with_context(|| format!("parsing {}", p.display()))?
        }
        None => SeedConfig::default(),
    };
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(l) = args.metrics_listen {
        cfg.metrics_listen = l;
    }
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if args.database_url.is_some() {
        cfg.database_url = args.database_url;
    }
    runtime()?.block_on(ournet_seed::run::serve(cfg))
}

/// A multi-thread runtime, or a single-thread one when the process may use one CPU only
/// (e.g. pinned with `taskset`): there a work-stealing scheduler has nobody to steal from and
/// only adds synchronization per task wake-up.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut b = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    b.enable_all().build()
}
