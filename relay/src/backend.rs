//! The data-plane backends and the choice between them.
//!
//! A backend runs one worker: it owns the worker's sockets and event loop, feeds the
//! worker's [`Relay`](crate::core::Relay) core and carries out its actions. All protocol
//! handling is in the core, so backends differ only in how bytes move. Chosen once at start
//! (`--backend auto|uring|epoll`) and reported in the log.

use std::sync::Arc;

use crossbeam_channel::Receiver;

use crate::config::BackendChoice;
use crate::core::RelayContext;
use crate::cross::{CrossMsg, Wake};

/// What one worker starts with.
#[derive(Debug)]
pub struct WorkerSetup {
    /// The worker's index (its metrics and mailbox slot).
    pub index: usize,
    /// What all workers share.
    pub ctx: Arc<RelayContext>,
    /// This worker's SO_REUSEPORT listener (non-blocking).
    pub listener: std::net::TcpListener,
    /// The worker's mailbox.
    pub mailbox: Receiver<CrossMsg>,
    /// The waker registered for this worker in the [`crate::cross::Postman`] (made by
    /// [`Backend::waker`] of the same backend).
    pub waker: Arc<dyn Wake>,
    /// Signalled once the worker's event loop is set up (the relay announces itself ready
    /// only after every worker has).
    pub started: crossbeam_channel::Sender<()>,
}

/// Why a backend could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// Setting up the event loop or a socket failed.
    #[error("backend IO: {0}")]
    Io(#[from] std::io::Error),
    /// The requested backend is not available here.
    #[error("backend {0} is not available: {1}")]
    Unavailable(&'static str, String),
    /// The waker handed to a worker is not this backend's.
    #[error("waker of another backend")]
    WrongWaker,
}

/// A way to run workers.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The name reported in logs and `/health`.
    fn name(&self) -> &'static str;

    /// Makes the waker of one worker, before the workers start.
    ///
    /// # Errors
    /// [`BackendError::Io`] if the OS refuses (an eventfd, for example).
    fn waker(&self) -> Result<Arc<dyn Wake>, BackendError>;

    /// Runs one worker until its drain completes. Called on the worker's own thread.
    ///
    /// # Errors
    /// [`BackendError`] when the event loop cannot be set up.
    fn run_worker(&self, setup: WorkerSetup) -> Result<(), BackendError>;
}

/// Picks the backend for `choice`: `auto` falls back to epoll when io_uring cannot be set up.
///
/// # Errors
/// [`BackendError::Unavailable`] when `uring` is asked for and cannot be had.
pub fn select(choice: BackendChoice) -> Result<Box<dyn Backend>, BackendError> {
    match choice {
        BackendChoice::Epoll => Ok(Box::new(crate::epoll::EpollBackend)),
        BackendChoice::Uring => uring_backend(),
        BackendChoice::Auto => match uring_backend() {
            Ok(b) => Ok(b),
            Err(e) => {
                tracing::info!(reason = %e, "io_uring unavailable, using epoll");
                Ok(Box::new(crate::epoll::EpollBackend))
            }
        },
    }
}

fn uring_backend() -> Result<Box<dyn Backend>, BackendError> {
    Ok(Box::new(crate::uring::UringBackend::probe()?))
}
