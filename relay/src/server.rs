//! Starting a relay: keys, listeners, workers, the control plane, and the drain on SIGTERM.
//!
//! The main thread binds one SO_REUSEPORT listener per worker on the same address (the kernel
//! spreads accepts across them), starts the worker threads (pinned to cores unless told
//! not to), then serves the control plane and waits for SIGTERM or SIGINT on a small tokio
//! runtime of its own. On a signal it sets the shutdown flag and wakes the workers, which
//! stop accepting, let circuits finish until the drain timeout, then destroy the rest
//! (reason: shutting down) and exit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rand_core::{OsRng, RngCore};
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

use crate::backend::{self, Backend, BackendError, WorkerSetup};
use crate::config::Config;
use crate::core::RelayContext;
use crate::cross::{self, Postman};
use crate::directory::Directory;
use crate::keys::{KeyFileError, RelayKeys};
use crate::metrics::WorkerMetrics;
use crate::seed;

/// What the relay announces when it is ready: where it listens and its descriptor essentials
/// (public keys, in hex). The binary prints it as one JSON line on stdout.
#[derive(Debug, Clone, Serialize)]
pub struct Ready {
    /// Always `"ready"`.
    pub event: &'static str,
    /// The bound link address.
    pub listen: SocketAddr,
    /// The bound control address.
    pub control: SocketAddr,
    /// The Ed25519 identity, hex.
    pub identity: String,
    /// The X25519 onion key, hex.
    pub onion_key: String,
    /// The X25519 link key, hex.
    pub link_key: String,
    /// The backend in use.
    pub backend: &'static str,
    /// Worker threads.
    pub workers: usize,
    /// The endpoint published to seeds (`None` when listening on a wildcard address with no
    /// `--advertise-addr`, which is allowed only without seeds).
    pub advertise: Option<SocketAddr>,
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The keys could not be loaded or created.
    #[error("keys: {0}")]
    Keys(#[from] KeyFileError),
    /// No backend could be set up.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Binding a listener or starting a thread failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Seed registration is configured but cannot start (no advertisable endpoint, bad URL).
    #[error("seed: {0}")]
    Seed(#[from] seed::SeedError),
}

/// 32 bytes from the OS RNG, to seed a worker's ChaCha RNG.
pub fn os_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    seed
}

/// Runs a relay until SIGTERM or SIGINT and its drain. `on_ready` is called once everything
/// listens.
///
/// # Errors
/// [`ServerError`] when the relay cannot start.
pub fn run(config: Config, on_ready: impl FnOnce(&Ready)) -> Result<(), ServerError> {
    let started = Instant::now();
    let keys = RelayKeys::load_or_generate(&config.data_dir, &mut OsRng)?;
    let backend: Arc<dyn Backend> = backend::select(config.backend)?.into();
    let n = config.worker_count();
    let listeners = bind_all(config.listen, n)?;
    let listen = listeners
        .first()
        .map(std::net::TcpListener::local_addr)
        .ok_or_else(|| std::io::Error::other("no listener"))??;
    let advertise = advertise_for(&config, listen)?;
    let (boxes, receivers) = mailboxes(backend.as_ref(), n, config.limits.mailbox_cap)?;
    let ready = ready_line(&keys, listen, backend.name(), n, advertise);
    let ctx = Arc::new(RelayContext {
        keys,
        directory: Directory::new(&config),
        postman: Postman::new(boxes),
        metrics: (0..n).map(|_| Arc::new(WorkerMetrics::default())).collect(),
        shutdown: AtomicBool::new(false),
        config,
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let control = rt.block_on(tokio::net::TcpListener::bind(ctx.config.control))?;
    let ready = Ready {
        control: control.local_addr()?,
        ..ready
    };
    let threads = spawn_workers(&ctx, &backend, listeners, receivers)?;
    tracing::info!(backend = backend.name(), workers = n, "relay ready");
    on_ready(&ready);
    let state = crate::control::ControlState {
        ctx: ctx.clone(),
        backend: backend.name(),
        seed: Arc::default(),
    };
    rt.block_on(async {
        if let Some(endpoint) = advertise {
            seed::spawn(&ctx, endpoint, started, &state.seed)?;
        }
        serve_until_signal(control, state)
            .await
            .map_err(ServerError::from)
    })?;
    drain(&ctx, threads);
    Ok(())
}

/// The endpoint to publish, if any: required (and checked) only when seeds are configured.
fn advertise_for(config: &Config, listen: SocketAddr) -> Result<Option<SocketAddr>, ServerError> {
    match seed::advertised_endpoint(config.advertise, listen) {
        Ok(a) => Ok(Some(a)),
        Err(e) if !config.seeds.is_empty() => Err(e.into()),
        Err(_) => Ok(None),
    }
}

/// Sets the shutdown flag, wakes the workers and waits for their drain.
fn drain(ctx: &RelayContext, threads: Vec<std::thread::JoinHandle<()>>) {
    tracing::info!("shutting down: draining");
    ctx.shutdown.store(true, Ordering::Relaxed);
    ctx.postman.wake_all();
    for t in threads {
        let _ = t.join();
    }
    tracing::info!("stopped");
}

fn ready_line(
    keys: &RelayKeys,
    listen: SocketAddr,
    backend: &'static str,
    n: usize,
    advertise: Option<SocketAddr>,
) -> Ready {
    Ready {
        event: "ready",
        listen,
        control: listen,
        identity: keys.identity.public().to_hex(),
        onion_key: keys.onion.public().to_hex(),
        link_key: keys.link.link_public().to_hex(),
        backend,
        workers: n,
        advertise,
    }
}

type Senders = Vec<(
    crossbeam_channel::Sender<cross::CrossMsg>,
    Arc<dyn cross::Wake>,
)>;

fn mailboxes(
    backend: &dyn Backend,
    n: usize,
    cap: usize,
) -> Result<(Senders, Receivers), ServerError> {
    let mut boxes = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = cross::mailbox(cap);
        let waker = backend.waker()?;
        boxes.push((tx, waker.clone()));
        receivers.push((rx, waker));
    }
    Ok((boxes, receivers))
}

type Receivers = Vec<(
    crossbeam_channel::Receiver<cross::CrossMsg>,
    Arc<dyn cross::Wake>,
)>;

fn spawn_workers(
    ctx: &Arc<RelayContext>,
    backend: &Arc<dyn Backend>,
    listeners: Vec<std::net::TcpListener>,
    receivers: Receivers,
) -> Result<Vec<std::thread::JoinHandle<()>>, ServerError> {
    let n = listeners.len();
    let (started, started_rx) = crossbeam_channel::bounded(n);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let pin = ctx.config.pin_cores;
    let mut threads = Vec::new();
    for (index, (listener, (mailbox, waker))) in listeners.into_iter().zip(receivers).enumerate() {
        let setup = WorkerSetup {
            index,
            ctx: ctx.clone(),
            listener,
            mailbox,
            waker,
            started: started.clone(),
        };
        let backend = backend.clone();
        let core = cores.get(index % cores.len().max(1)).copied();
        let t = std::thread::Builder::new()
            .name(format!("ournet-w{index}"))
            .spawn(move || {
                if let Some(core) = core.filter(|_| pin) {
                    let _ = core_affinity::set_for_current(core);
                }
                let metrics = setup.ctx.metrics.get(index).cloned();
                let alive = |v| {
                    metrics
                        .iter()
                        .for_each(|m| crate::metrics::set(&m.alive, v))
                };
                alive(1);
                if let Err(e) = backend.run_worker(setup) {
                    tracing::error!(worker = index, error = %e, "worker failed");
                }
                alive(0);
            })?;
        threads.push(t);
    }
    drop(started);
    for _ in 0..n {
        started_rx
            .recv()
            .map_err(|_| std::io::Error::other("a worker failed to start"))?;
    }
    Ok(threads)
}

async fn serve_until_signal(
    control: tokio::net::TcpListener,
    state: crate::control::ControlState,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let app = crate::control::app(state);
    tokio::select! {
        r = axum::serve(control, app) => r,
        _ = term.recv() => Ok(()),
        _ = int.recv() => Ok(()),
    }
}

/// Binds `n` listeners on `addr` with SO_REUSEPORT. Port 0 picks one port for all of them.
fn bind_all(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let first = bind_reuseport(addr)?;
    let addr = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..n {
        all.push(bind_reuseport(addr)?);
    }
    Ok(all)
}

fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
