//! Running the service: key file, store, listeners, background loops, shutdown.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ournet_proto::IdentityKeypair;
use rand_core::OsRng;
use tokio::net::TcpListener;

use crate::clock::SystemClock;
use crate::config::SeedConfig;
use crate::http::{app, metrics_app};
use crate::policy::asn::AsnTable;
use crate::probe::{FixedProber, LinkProber, Prober};
use crate::state::AppState;
use crate::store::Store;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;

/// Loads the seed's signing key from `dir/seed_key`, or makes one on first start and writes it
/// with mode 0600.
///
/// # Errors
/// IO errors, or a key file that is not 32 bytes.
pub fn load_or_create_key(dir: &Path) -> anyhow::Result<IdentityKeypair> {
    let path = dir.join("seed_key");
    if path.exists() {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let secret: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key", path.display()))?;
        return Ok(IdentityKeypair::from_secret_bytes(&secret));
    }
    let key = IdentityKeypair::generate(&mut OsRng);
    write_private(&path, key.secret_bytes().as_slice())?;
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(f.sync_all()?)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    Ok(std::fs::write(path, bytes)?)
}

/// Builds the state from a config: data dir, key, store, prober, ASN table.
///
/// # Errors
/// Any setup failure, with context.
pub async fn build_state(cfg: SeedConfig) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let key = load_or_create_key(&cfg.data_dir)?;
    let store: Arc<dyn Store> = match &cfg.database_url {
        Some(url) => Arc::new(
            PgStore::connect(url)
                .await
                .context("connecting to postgres")?,
        ),
        None => Arc::new(SqliteStore::open_dir(&cfg.data_dir).context("opening sqlite store")?),
    };
    let prober: Arc<dyn Prober> = if cfg.probe_endpoints {
        Arc::new(LinkProber {
            timeout: Duration::from_secs_f64(cfg.probe_timeout_seconds.max(0.001)),
        })
    } else {
        Arc::new(FixedProber(true))
    };
    let asns = match &cfg.asn_table_path {
        Some(p) => AsnTable::parse(&std::fs::read_to_string(p)?)?,
        None => AsnTable::default(),
    };
    Ok(AppState::new(cfg, store, key, Arc::new(SystemClock), prober, asns).await?)
}

/// Serves until SIGTERM or Ctrl-C. Prints `metrics on <addr>` then `listening on <addr>` on
/// stdout once both are bound (e2e tests read the second line as "ready").
///
/// # Errors
/// Bind or serve failures.
pub async fn serve(cfg: SeedConfig) -> anyhow::Result<()> {
    let (listen, metrics_listen) = (cfg.listen, cfg.metrics_listen);
    let state = build_state(cfg).await?;
    let api = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let met = TcpListener::bind(metrics_listen)
        .await
        .with_context(|| format!("binding {metrics_listen}"))?;
    ready_line(&format!(
        "metrics on {}\nlistening on {}",
        met.local_addr()?,
        api.local_addr()?
    ));
    tracing::info!(seed_id = state.seed_id(), "seed ready");
    let jobs = [
        tokio::spawn(revocation_file_loop(state.clone())),
        tokio::spawn(health_loop(state.clone())),
        tokio::spawn(probe_loop(state.clone())),
        tokio::spawn(crate::http::gossip_loop(state.clone())),
        tokio::spawn(serve_metrics(met, state.clone())),
    ];
    let header_timeout = Duration::from_secs_f64(state.0.cfg.request_timeout_seconds.max(0.001));
    let max_conns = state.0.cfg.max_connections;
    crate::listener::serve(
        api,
        app(state),
        header_timeout,
        max_conns,
        shutdown_signal(),
    )
    .await;
    for j in jobs {
        j.abort();
    }
    tracing::info!("seed stopped");
    Ok(())
}

/// Writes the ready lines. A closed stdout (the reader went away) must not stop the seed.
fn ready_line(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

async fn serve_metrics(listener: TcpListener, state: AppState) {
    if let Err(e) = axum::serve(listener, metrics_app(state)).await {
        tracing::error!(error = %e, "metrics listener failed");
    }
}

/// Loads the revocation list file at start, then reloads it whenever its modification time
/// moves forward, checking every `seed_revocation_list_check_interval` seconds (§5.8).
async fn revocation_file_loop(state: AppState) {
    let Some(path) = state.0.cfg.seed_revocation_list_path.clone() else {
        return;
    };
    let secs = state.0.cfg.seed_revocation_list_check_interval.max(1.0);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(secs));
    let mut seen = None;
    loop {
        tick.tick().await;
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        if seen.is_some() && mtime <= seen {
            continue;
        }
        seen = mtime;
        match crate::revocation::load_list_file(&state, &path).await {
            Ok((n, errors)) => tracing::info!(accepted = n, ?errors, "revocation list loaded"),
            Err(e) => tracing::error!(error = ?e, "revocation list load failed"),
        }
    }
}

/// Active probing every `probe_interval_seconds` (reference: 900 s, 10 routers).
async fn probe_loop(state: AppState) {
    let cfg = &state.0.cfg;
    if !cfg.probe_endpoints {
        return;
    }
    let every = Duration::from_secs_f64(cfg.probe_interval_seconds.max(1.0));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = state.probe_round(cfg.probe_sample_size).await {
            tracing::error!(error = %e, "probe round failed");
        }
    }
}

/// Runs the health check every `health_check_interval_seconds`.
async fn health_loop(state: AppState) {
    let secs = state.0.cfg.health_check_interval_seconds.max(1.0);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(secs));
    loop {
        tick.tick().await;
        if let Err(e) = state.health_check().await {
            tracing::error!(error = %e, "health check failed");
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown signal received");
}
