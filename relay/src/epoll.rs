//! The epoll backend: tokio on a current-thread runtime per worker.
//!
//! Each worker thread runs a `LocalSet` holding its [`Relay`] core in a `RefCell` (never
//! borrowed across an await), one task per connection, an accept task on the worker's
//! SO_REUSEPORT listener, a timer task and a mailbox task. Connections read with readiness
//! and `try_read` into one worker-wide buffer, so an idle connection holds no read buffer.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::LocalSet;

use crate::backend::{Backend, BackendError, WorkerSetup};
use crate::core::{Action, ConnId, Relay};
use crate::cross::Wake;

mod conn;

/// Bytes read from a socket per `try_read`.
const READ_BUF: usize = 64 * 1024;
/// How long a finished worker waits for its connections to flush before exiting.
const FLUSH_GRACE: Duration = Duration::from_secs(2);

/// The tokio backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct EpollBackend;

/// A worker's waker: a tokio `Notify`, usable from any thread.
#[derive(Debug, Default)]
pub struct NotifyWake(Notify);

impl Wake for NotifyWake {
    fn wake(&self) {
        self.0.notify_one();
    }
}

impl Backend for EpollBackend {
    fn name(&self) -> &'static str {
        "epoll"
    }

    fn waker(&self) -> Result<Arc<dyn Wake>, BackendError> {
        Ok(Arc::new(NotifyWake::default()))
    }

    fn run_worker(&self, setup: WorkerSetup) -> Result<(), BackendError> {
        let waker: Arc<dyn std::any::Any + Send + Sync> = setup.waker.clone();
        let waker = waker
            .downcast::<NotifyWake>()
            .map_err(|_| BackendError::WrongWaker)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let local = LocalSet::new();
        local.block_on(&rt, worker_main(setup, waker))
    }
}

/// Per-connection IO state shared between the core's dispatcher and the connection task.
#[derive(Debug, Default)]
struct ConnIo {
    notify: Notify,
    closing: Cell<bool>,
    abort: Cell<bool>,
    /// Back pressure: do not read.
    paused: Cell<bool>,
}

/// One worker's event-loop state.
struct Worker {
    core: RefCell<Relay>,
    ios: RefCell<HashMap<ConnId, Rc<ConnIo>>>,
    rbuf: RefCell<Vec<u8>>,
    stop_accept: Notify,
    /// The deadline the timer task sleeps to, and its wake-up for an earlier one (the core
    /// sets one when a credit waits for a full mailbox: `Relay::poll_timeout`).
    timer_at: Cell<Instant>,
    timer_reset: Notify,
}

async fn worker_main(setup: WorkerSetup, waker: Arc<NotifyWake>) -> Result<(), BackendError> {
    let listener = TcpListener::from_std(setup.listener)?;
    let seed = crate::server::os_seed();
    let core = Relay::new(setup.ctx, setup.index, seed, Instant::now());
    let w = Rc::new(Worker {
        core: RefCell::new(core),
        ios: RefCell::new(HashMap::new()),
        rbuf: RefCell::new(vec![0u8; READ_BUF]),
        stop_accept: Notify::new(),
        timer_at: Cell::new(Instant::now()),
        timer_reset: Notify::new(),
    });
    tokio::task::spawn_local(accept_loop(w.clone(), listener));
    tokio::task::spawn_local(mailbox_loop(w.clone(), setup.mailbox, waker));
    let _ = setup.started.send(());
    timer_loop(&w).await;
    let grace = tokio::time::Instant::now() + FLUSH_GRACE;
    while !w.ios.borrow().is_empty() && tokio::time::Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn accept_loop(w: Rc<Worker>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = w.stop_accept.notified() => return,
        };
        let Ok((stream, peer)) = accepted else {
            // EMFILE and friends: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let id = w.core.borrow_mut().handle_accept(Instant::now(), peer.ip());
        if let Some(id) = id {
            tokio::task::spawn_local(conn::run(w.clone(), id, stream));
        }
    }
}

async fn timer_loop(w: &Rc<Worker>) {
    loop {
        let deadline = w.core.borrow().poll_timeout();
        w.timer_at.set(deadline);
        tokio::select! {
            () = tokio::time::sleep_until(deadline.into()) => {}
            () = w.timer_reset.notified() => continue,
        }
        w.core.borrow_mut().handle_timeout(Instant::now());
        dispatch(w);
        if w.core.borrow().is_finished() {
            w.stop_accept.notify_one();
            return;
        }
    }
}

async fn mailbox_loop(
    w: Rc<Worker>,
    rx: crossbeam_channel::Receiver<crate::cross::CrossMsg>,
    waker: Arc<NotifyWake>,
) {
    loop {
        waker.0.notified().await;
        for msg in rx.try_iter().take(crate::cross::MAILBOX_CAP) {
            w.core.borrow_mut().handle_cross(Instant::now(), msg);
        }
        dispatch(&w);
        if w.core.borrow().shutdown_requested() {
            w.stop_accept.notify_one();
        }
    }
}

/// Carries out the core's actions.
fn dispatch(w: &Rc<Worker>) {
    loop {
        let action = w.core.borrow_mut().poll_action();
        match action {
            None => {
                if w.core.borrow().poll_timeout() < w.timer_at.get() {
                    w.timer_reset.notify_one();
                }
                return;
            }
            Some(Action::Flush(id)) => {
                if let Some(io) = w.ios.borrow().get(&id) {
                    io.notify.notify_one();
                }
            }
            Some(Action::Close(id)) => {
                if let Some(io) = w.ios.borrow().get(&id) {
                    io.closing.set(true);
                    io.notify.notify_one();
                }
            }
            Some(Action::Abort(id)) => {
                if let Some(io) = w.ios.borrow().get(&id) {
                    io.abort.set(true);
                    io.notify.notify_one();
                }
            }
            Some(Action::Connect { conn, addr }) => {
                tokio::task::spawn_local(conn::connect(w.clone(), conn, addr));
            }
            Some(Action::PauseRead(id) | Action::ResumeRead(id)) => {
                if let Some(io) = w.ios.borrow().get(&id) {
                    io.paused.set(matches!(action, Some(Action::PauseRead(_))));
                    io.notify.notify_one();
                }
            }
        }
    }
}
