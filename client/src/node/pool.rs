//! Send circuits kept open for a while, one per recipient and home relay, so a burst of
//! messages to a node does not build a 3-hop circuit each.
//!
//! The key is the (home relay, recipient) pair, not the home relay alone: a home relay holds
//! each message's flow-control credit until its recipient's home circuit takes it (PROTOCOL.md
//! §8), so one circuit shared by two recipients of the same home would be held back by the
//! slower one; and the home relay would see that one sender writes to both.
//!
//! A dispatcher task per circuit hands DELIVERY_STATUS and ACK events to the send waiting for
//! that message id. Only a first attempt reuses a circuit; a retry always builds a fresh one
//! (other hops), and a failed attempt retires the circuit it used. A circuit is reused for at
//! most [`MAX_CIRCUIT_AGE`]: reuse lets the recipient's home relay see that several messages
//! came on one circuit, so the window is short. A retired circuit closes once no send waits
//! on it, so a message queued for an offline recipient keeps its way back for the ACK.
//! With mixing on nothing is pooled: each mix circuit carries one message
//! ([`SendCircuit::one_shot`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ournet_proto::circuit::ClientEvent;
use tokio::sync::mpsc;

use super::Inner;
use crate::link::{CircEvent, CircuitHandle};

/// Longest time a send circuit takes new messages.
pub(super) const MAX_CIRCUIT_AGE: Duration = Duration::from_secs(60);
/// Most pooled circuits (one per recipient and home relay); past it the oldest is retired.
const MAX_POOLED: usize = 64;
/// Events one message can get (DELIVERY_STATUS or MOVED, ACK, and a repeat of either).
const WAITER_CAP: usize = 8;

type Waiters = Arc<Mutex<HashMap<[u8; 16], mpsc::Sender<CircEvent>>>>;

/// A send circuit shared by the messages to one home.
#[derive(Debug, Clone)]
pub(super) struct SendCircuit {
    circ: CircuitHandle,
    /// The identity key of the path's first hop (loops are blamed on it, `super::loops`).
    first_hop: [u8; 32],
    waiters: Waiters,
    built: Instant,
    alive: Arc<AtomicBool>,
    retired: Arc<AtomicBool>,
}

impl SendCircuit {
    /// Wraps a built circuit whose first hop is `first_hop` and starts its dispatcher.
    pub(super) fn start(
        inner: &Inner,
        circ: CircuitHandle,
        events: mpsc::Receiver<CircEvent>,
        first_hop: [u8; 32],
    ) -> Self {
        let sc = Self {
            circ,
            first_hop,
            waiters: Arc::default(),
            built: Instant::now(),
            alive: Arc::new(AtomicBool::new(true)),
            retired: Arc::new(AtomicBool::new(false)),
        };
        inner.spawn(dispatch(events, sc.waiters.clone(), sc.alive.clone()));
        sc
    }

    /// The identity key of the path's first hop.
    pub(super) fn first_hop(&self) -> [u8; 32] {
        self.first_hop
    }

    /// The circuit.
    pub(super) fn circuit(&self) -> &CircuitHandle {
        &self.circ
    }

    /// Registers message `id`; its events come out of the returned receiver, which ends when
    /// the circuit closes.
    pub(super) fn register(&self, id: [u8; 16]) -> mpsc::Receiver<CircEvent> {
        let (tx, rx) = mpsc::channel(WAITER_CAP);
        if self.alive.load(Ordering::Acquire) {
            lock(&self.waiters).insert(id, tx);
        }
        rx
    }

    /// Stops routing events for `id`; closes a retired circuit nobody waits on any more.
    pub(super) fn forget(&self, id: [u8; 16]) {
        let empty = {
            let mut w = lock(&self.waiters);
            w.remove(&id);
            w.is_empty()
        };
        if empty && self.retired.load(Ordering::Acquire) {
            self.close_soon();
        }
    }

    /// Marks a circuit that is never pooled (a mix path carries one message): it closes once
    /// the first send registered on it is done.
    pub(super) fn one_shot(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Takes no new messages from now on; closes once nobody waits.
    pub(super) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        if lock(&self.waiters).is_empty() {
            self.close_soon();
        }
    }

    fn usable(&self) -> bool {
        self.alive.load(Ordering::Acquire)
            && !self.retired.load(Ordering::Acquire)
            && self.built.elapsed() < MAX_CIRCUIT_AGE
    }

    fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.alive, &other.alive)
    }

    fn close_soon(&self) {
        let circ = self.circ.clone();
        tokio::spawn(async move { circ.close().await });
    }
}

/// What the pool is keyed by: the home relay's identity and the recipient's.
pub(super) type PoolKey = ([u8; 32], [u8; 32]);

/// The pooled circuit to `home` (a home relay and a recipient), if one is usable.
pub(super) fn pooled(inner: &Inner, home: PoolKey) -> Option<SendCircuit> {
    let mut pool = lock(&inner.pool);
    match pool.get(&home) {
        Some(sc) if sc.usable() => Some(sc.clone()),
        Some(_) => {
            if let Some(old) = pool.remove(&home) {
                old.retire();
            }
            None
        }
        None => None,
    }
}

/// Makes `sc` the pooled circuit to `home`, retiring the one it replaces.
pub(super) fn put(inner: &Inner, home: PoolKey, sc: SendCircuit) {
    let mut pool = lock(&inner.pool);
    if pool.len() >= MAX_POOLED && !pool.contains_key(&home) {
        let oldest = pool.iter().min_by_key(|(_, c)| c.built).map(|(k, _)| *k);
        if let Some(old) = oldest.and_then(|k| pool.remove(&k)) {
            old.retire();
        }
    }
    if let Some(old) = pool.insert(home, sc) {
        old.retire();
    }
}

/// Retires `sc` after an attempt on it failed (it may be broken).
pub(super) fn evict(inner: &Inner, home: PoolKey, sc: &SendCircuit) {
    let mut pool = lock(&inner.pool);
    if pool.get(&home).is_some_and(|p| p.same(sc)) {
        pool.remove(&home);
    }
    sc.retire();
}

/// Forgets every pooled circuit (the node is stopping: closing the links destroys them all,
/// those of interrupted sends too).
pub(super) fn clear(inner: &Inner) {
    lock(&inner.pool).clear();
}

async fn dispatch(mut events: mpsc::Receiver<CircEvent>, waiters: Waiters, alive: Arc<AtomicBool>) {
    while let Some(ev) = events.recv().await {
        let id = match &ev {
            CircEvent::Proto(
                ClientEvent::DeliveryStatus { message_id, .. }
                | ClientEvent::Moved { message_id, .. }
                | ClientEvent::Ack { message_id, .. },
            ) => *message_id,
            CircEvent::Proto(_) | CircEvent::Unreachable(_) => continue,
            CircEvent::Closed(_) => break,
        };
        let tx = lock(&waiters).get(&id).cloned();
        if let Some(tx) = tx {
            // A waiter gets a handful of events; more is a misbehaving relay, dropped.
            let _ = tx.try_send(ev);
        }
    }
    alive.store(false, Ordering::Release);
    lock(&waiters).clear();
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
