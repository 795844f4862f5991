//! The per-worker relay core: links and circuits of one worker, driven poll-style.
//!
//! A backend feeds it what the OS reports and carries out what it asks:
//!
//! ```text
//!  backend ──handle_accept / handle_connected / handle_connect_failed──►  Relay
//!          ──handle_input(conn, bytes) / handle_writable / handle_closed──►
//!          ──handle_timeout(now) at poll_timeout() / handle_cross(msg)────►
//!          ◄──poll_action(): Flush(conn) | Connect{conn, addr} | Close(conn)
//!          ◄──take_output(conn): the bytes to write
//! ```
//!
//! Contract: every [`ConnId`] the core hands out (from [`Relay::handle_accept`] or in
//! [`Action::Connect`]) ends with exactly one [`Relay::handle_closed`] or
//! [`Relay::handle_connect_failed`] from the backend. [`Action::Close`] means "write what
//! [`Relay::take_output`] still gives, close the socket, then call `handle_closed`".
//!
//! The core makes no protocol decision: link handshakes, cell crypto, circuit handshakes,
//! onion layers, relay messages and flow control are `ournet-proto`'s. It routes: (link,
//! circuit id) to circuit, EXTEND to an outbound relay link, messages to home circuits or the
//! offline queue, ACKs back to their sender circuit, DESTROY both ways. All of its state is
//! owned by one worker thread (`!Send` use, no locks); what workers share is in
//! [`crate::directory`] and crosses over [`crate::cross`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ournet_proto::cell::CELL_LEN;
use ournet_proto::flow::BackPressure;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::config::Config;
use crate::cross::{CrossMsg, Postman};
use crate::directory::{CircLoc, Directory};
use crate::keys::RelayKeys;
use crate::metrics::{self, DropKind, WorkerMetrics};

mod cells;
mod circuits;
mod conn;
mod credit;
mod extend;
mod home;
mod lifecycle;
mod pending;
mod pressure;
mod sched;
mod sweep;
#[cfg(test)]
mod tests;

use circuits::Circuits;
use conn::Conn;

/// The hash map of the per-cell path (links, circuits by leg, scheduler queues). Keyed by
/// `ahash` with random per-process keys: circuit ids are chosen by peers, so the hash must
/// stay keyed against aimed collisions, but SipHash (std's default) cost about a tenth of
/// a middle relay's CPU under bulk load in `perf` (several lookups per cell).
type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;
/// The set of the same kind.
type FastSet<K> = std::collections::HashSet<K, ahash::RandomState>;

/// How often [`Relay::handle_timeout`] sweeps timers (handshake deadlines, keepalives, idle
/// links, caps). The protocol's timers are 10 s and longer, so a second of slack is fine.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How long a closing connection may take to send what it still has queued.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// An opaque handle to one connection of one worker. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// An opaque handle to one circuit of one worker. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CircKey(pub u64);

/// What the core asks of its backend.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// `conn` has bytes to send: call [`Relay::take_output`] when the socket can take them.
    Flush(ConnId),
    /// Open a TCP connection for `conn`; then [`Relay::handle_connected`] or
    /// [`Relay::handle_connect_failed`].
    Connect {
        /// The new connection's handle.
        conn: ConnId,
        /// Where to connect.
        addr: SocketAddr,
    },
    /// Send what is left, close the socket, then call [`Relay::handle_closed`].
    Close(ConnId),
    /// A closing connection did not drain within [`CLOSE_GRACE`] (its peer does not read):
    /// close the socket now, dropping what is unsent, then call [`Relay::handle_closed`].
    Abort(ConnId),
    /// Back pressure: stop reading from this client link (the kernel's receive window then
    /// slows its sender). Bytes already in flight may still arrive and are handled.
    PauseRead(ConnId),
    /// Back pressure released: read from this link again.
    ResumeRead(ConnId),
}

/// What all workers of one relay process share, read-only or behind their own locks.
#[derive(Debug)]
pub struct RelayContext {
    /// The relay's keys.
    pub keys: RelayKeys,
    /// The configuration.
    pub config: Config,
    /// Homes, offline queue, ACK routes, per-IP limits.
    pub directory: Directory,
    /// Mailboxes of every worker.
    pub postman: Postman,
    /// Every worker's counters, by worker index.
    pub metrics: Vec<Arc<WorkerMetrics>>,
    /// Set on SIGTERM: workers drain.
    pub shutdown: AtomicBool,
}

/// One worker's links and circuits.
#[derive(Debug)]
pub struct Relay {
    ctx: Arc<RelayContext>,
    worker: usize,
    metrics: Arc<WorkerMetrics>,
    rng: ChaCha20Rng,
    conns: FastMap<ConnId, Conn>,
    next_conn: u64,
    circuits: Circuits,
    relay_links: HashMap<[u8; 32], ConnId>,
    actions: VecDeque<Action>,
    /// Bytes queued for sending on all links (output buffers and schedulers): counted per
    /// RELAY cell on the hot path, recounted exactly at every sweep (control cells are not
    /// counted in between). The worker cap of `Limits::send_policy` applies to it.
    send_queued: usize,
    /// Headers of the cells of one read, opened together (reused so a batch allocates
    /// nothing new).
    in_headers: Vec<ournet_proto::cell::CellHeader>,
    next_sweep: Instant,
    /// Credits owed to circuits of other workers whose mailbox was full (`credit.rs`).
    pending_credits: pending::PendingCredits,
    /// When to try posting `pending_credits` again.
    credit_retry: Option<Instant>,
    back_pressure: BackPressure,
    draining: Option<Instant>,
    finished: bool,
}

impl Relay {
    /// A worker core with no connections. `seed` seeds its RNG (draw it from the OS).
    pub fn new(ctx: Arc<RelayContext>, worker: usize, seed: [u8; 32], now: Instant) -> Self {
        let metrics = ctx.metrics.get(worker).cloned().unwrap_or_default();
        Self {
            ctx,
            worker,
            metrics,
            rng: ChaCha20Rng::from_seed(seed),
            conns: FastMap::default(),
            next_conn: 1,
            circuits: Circuits::default(),
            relay_links: HashMap::new(),
            actions: VecDeque::new(),
            send_queued: 0,
            in_headers: Vec::new(),
            next_sweep: now + SWEEP_INTERVAL,
            pending_credits: pending::PendingCredits::default(),
            credit_retry: None,
            back_pressure: BackPressure::default(),
            draining: None,
            finished: false,
        }
    }

    /// A connection was accepted from `peer`. `None`: refused (caps or draining); close it.
    pub fn handle_accept(&mut self, now: Instant, peer: IpAddr) -> Option<ConnId> {
        if self.draining.is_some() || !self.ctx.directory.admit(now, Some(peer)) {
            self.metrics.count_drop(DropKind::ConnRefused);
            return None;
        }
        let id = self.new_conn_id();
        let conn = Conn::accepted(&mut self.rng, now, peer);
        self.conns.insert(id, conn);
        metrics::add(&self.metrics.connections, 1);
        Some(id)
    }

    /// The TCP connection asked for by [`Action::Connect`] is up. `false`: it is no longer
    /// wanted; close it and call [`Relay::handle_closed`].
    pub fn handle_connected(&mut self, now: Instant, id: ConnId) -> bool {
        self.start_initiator(now, id)
    }

    /// The TCP connection asked for by [`Action::Connect`] failed.
    pub fn handle_connect_failed(&mut self, now: Instant, id: ConnId) {
        self.metrics.count_drop(DropKind::ExtendFailed);
        self.remove_conn(now, id);
    }

    /// Bytes arrived on `id`.
    pub fn handle_input(&mut self, now: Instant, id: ConnId, data: &[u8]) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.closing {
            return;
        }
        conn.inbuf.extend_from_slice(data);
        self.process_input(now, id);
    }

    /// Bytes arrived on `id` in a buffer the backend lends until this returns (its receive
    /// buffer): whole cells are opened and peeled where they lie, and a peeled cell is copied
    /// once, into the next link's output. Only a partial cell at either end of `data` (and
    /// everything before the link handshake completes) is copied into the link's input
    /// buffer. Same effect as [`Relay::handle_input`], one copy fewer per cell.
    pub fn handle_input_mut(&mut self, now: Instant, id: ConnId, data: &mut [u8]) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.closing || !conn.link_is_open() || conn.inbuf.len() >= CELL_LEN {
            return self.handle_input(now, id, data);
        }
        let mut rest = data;
        if !conn.inbuf.is_empty() {
            let need = (CELL_LEN - conn.inbuf.len()).min(rest.len());
            let (head, tail) = rest.split_at_mut(need);
            conn.inbuf.extend_from_slice(head);
            rest = tail;
            self.process_input(now, id);
        }
        let (cells, tail) = rest.as_chunks_mut::<CELL_LEN>();
        if !cells.is_empty() {
            self.handle_cells(now, id, cells);
        }
        if let Some(conn) = self.conns.get_mut(&id)
            && !conn.closing
        {
            conn.inbuf.extend_from_slice(tail);
        }
    }

    /// The socket of `id` took everything [`Relay::take_output`] gave: circuits that were
    /// waiting for room on it may originate more.
    pub fn handle_writable(&mut self, now: Instant, id: ConnId) {
        self.refill_from_sched(now, id);
        let blocked = match self.conns.get_mut(&id) {
            Some(conn) => std::mem::take(&mut conn.blocked),
            None => return,
        };
        for key in blocked {
            self.flush_backward(now, key);
        }
    }

    /// The socket of `id` is closed (by the peer, an error, or after [`Action::Close`]).
    pub fn handle_closed(&mut self, now: Instant, id: ConnId) {
        self.remove_conn(now, id);
    }

    /// Runs timers: call at [`Relay::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.credit_retry.is_some_and(|t| now >= t) {
            self.flush_pending_credits(now);
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_INTERVAL;
            self.sweep(now);
        }
    }

    /// A message from another worker's [`Postman`].
    pub fn handle_cross(&mut self, now: Instant, msg: CrossMsg) {
        self.on_cross(now, msg);
        if self.credit_retry.is_some_and(|t| now >= t) {
            self.flush_pending_credits(now);
        }
    }

    /// When [`Relay::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        self.credit_retry
            .map_or(self.next_sweep, |t| t.min(self.next_sweep))
    }

    /// The next thing for the backend to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Moves the bytes queued for `id` into `out` (appending).
    pub fn take_output(&mut self, id: ConnId, out: &mut BytesMut) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.flush_queued = false;
            self.send_queued = self.send_queued.saturating_sub(conn.outbuf.len());
            if out.is_empty() {
                std::mem::swap(out, &mut conn.outbuf);
            } else {
                out.extend_from_slice(&conn.outbuf);
                conn.outbuf.clear();
            }
        }
    }

    /// Stops accepting links and circuits; circuits in use may finish until `deadline`, then
    /// every circuit is destroyed (reason: shutting down) and every link closed.
    pub fn begin_drain(&mut self, deadline: Instant) {
        if self.draining.is_none() {
            tracing::info!(worker = self.worker, "draining");
            self.draining = Some(deadline);
        }
    }

    /// Whether a drain has completed: nothing is left but links being closed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether the relay process is shutting down (the flag [`RelayContext::shutdown`]).
    pub fn shutdown_requested(&self) -> bool {
        self.ctx.shutdown.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Open connections of this worker.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Open circuits of this worker.
    pub fn circuit_count(&self) -> usize {
        self.circuits.len()
    }

    fn new_conn_id(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        id
    }

    fn loc(&self, circ: CircKey) -> CircLoc {
        CircLoc {
            worker: self.worker,
            circ,
        }
    }

    fn want_flush(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(&id)
            && !conn.flush_queued
        {
            conn.flush_queued = true;
            self.actions.push_back(Action::Flush(id));
        }
    }
}
