//! The io_uring backend: thread-per-core, one ring per worker, the `io-uring` crate directly.
//!
//! Each worker thread owns a ring, its SO_REUSEPORT listener (multishot accept), its sockets
//! (multishot receive into a pool of provided buffers the ring owns; sends straight from the
//! core's send buffer, moved into the operation and handed back at completion) and its
//! [`Relay`](crate::core::Relay) core. The loop submits, waits for a completion or the core's
//! next deadline (one `io_uring_enter` with a timeout), and feeds every completion of the
//! batch to the core. Other threads wake it through a socket pair the ring reads from.
//!
//! All `unsafe` is in `uring/ops.rs` (see its ownership rule); this file and
//! `uring/worker.rs` are safe code.

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, PoisonError};

use crate::backend::{Backend, BackendError, WorkerSetup};
use crate::cross::Wake;

mod ops;
mod worker;

/// The io_uring backend.
#[derive(Debug, Clone, Copy)]
pub struct UringBackend(());

impl UringBackend {
    /// Checks that a ring with the features the worker needs can be set up here (the kernel
    /// may be too old, or a sandbox may forbid io_uring).
    ///
    /// # Errors
    /// [`BackendError::Unavailable`] with the reason.
    pub fn probe() -> Result<Self, BackendError> {
        match ops::Ring::new(8) {
            Ok(_) => Ok(Self(())),
            Err(e) => Err(BackendError::Unavailable("uring", e.to_string())),
        }
    }
}

/// A worker's waker: one byte on a socket pair the worker's ring has a receive armed on.
#[derive(Debug)]
pub struct SocketWake {
    tx: UnixStream,
    rx: Mutex<Option<UnixStream>>,
}

impl SocketWake {
    fn new() -> std::io::Result<Self> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        Ok(Self {
            tx,
            rx: Mutex::new(Some(rx)),
        })
    }

    fn take_rx(&self) -> Option<UnixStream> {
        self.rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl Wake for SocketWake {
    fn wake(&self) {
        // A full socket buffer means a wake-up is already pending: nothing is lost.
        let _ = (&self.tx).write(&[1]);
    }
}

impl Backend for UringBackend {
    fn name(&self) -> &'static str {
        "uring"
    }

    fn waker(&self) -> Result<Arc<dyn Wake>, BackendError> {
        Ok(Arc::new(SocketWake::new()?))
    }

    fn run_worker(&self, setup: WorkerSetup) -> Result<(), BackendError> {
        let waker: Arc<dyn std::any::Any + Send + Sync> = setup.waker.clone();
        let waker = waker
            .downcast::<SocketWake>()
            .map_err(|_| BackendError::WrongWaker)?;
        let rx = waker.take_rx().ok_or(BackendError::WrongWaker)?;
        worker::run(setup, rx)
    }
}
