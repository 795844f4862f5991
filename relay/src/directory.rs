//! What all workers of a relay share: home registrations, the offline queue, forwarding
//! addresses, ACK routes and per-IP admission (PROTOCOL.md §7.3, §7.4).
//!
//! These sit behind one mutex because they are touched once per message, connection or
//! circuit creation (itself an X25519 handshake), never per cell; the per-cell path stays
//! inside one worker. Each operation that must be atomic (look up a home *or* queue the
//! message) is one method, so a node registering on one worker while another worker delivers
//! to it can neither lose nor reorder a message.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::config::Config;
use crate::core::CircKey;

pub mod acks;
pub mod budget;
pub mod forwards;
pub mod limits;
pub mod offline;
pub mod qos;

pub use forwards::ForwardRefused;
pub use offline::{OfflineRefused, Queued};

use budget::{HomeBudget, Reservation};

/// Where a circuit lives: its worker and its handle there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CircLoc {
    /// The worker index.
    pub worker: usize,
    /// The circuit's handle in that worker.
    pub circ: CircKey,
}

/// What to do with a message for a node.
#[derive(Debug)]
#[non_exhaustive]
pub enum Route {
    /// The node is home on this circuit: deliver there. The message's bytes are reserved in
    /// the home's buffer budget, so the sender may be answered DELIVERED.
    Home(CircLoc, Vec<u8>, Reservation),
    /// The node is home, but its home circuit's buffer is full (`HOME_BUFFER_BYTES`): refuse.
    Full,
    /// The node is offline; the message is queued.
    Queued,
    /// The node is offline and the queue refused the message.
    Refused(OfflineRefused),
    /// The node left this relay for the address given (binary form, its FORWARD_TO): the
    /// message is not kept; answer MOVED.
    Moved(Vec<u8>),
}

/// Where a node is home, and its home circuit's buffer budget.
#[derive(Debug)]
struct Home {
    loc: CircLoc,
    budget: Arc<HomeBudget>,
}

#[derive(Debug)]
struct Inner {
    homes: std::collections::HashMap<[u8; 32], Home>,
    offline: offline::OfflineQueue,
    forwards: forwards::Forwards,
    acks: acks::AckRoutes,
    ips: limits::IpLimits,
    qos: qos::QosBook,
    connections: usize,
}

/// The shared directory of one relay process.
#[derive(Debug)]
pub struct Directory {
    inner: Mutex<Inner>,
    max_connections: usize,
}

impl Directory {
    /// An empty directory with the caps of `config`.
    pub fn new(config: &Config) -> Self {
        let l = &config.limits;
        Self {
            inner: Mutex::new(Inner {
                homes: std::collections::HashMap::new(),
                offline: offline::OfflineQueue::new(config.offline.clone()),
                forwards: forwards::Forwards::new(
                    config.offline.max_nodes,
                    config.offline.max_age(),
                ),
                acks: acks::AckRoutes::new(l.max_ack_routes, config.offline.max_age()),
                ips: limits::IpLimits::new(
                    l.max_connections_per_ip,
                    l.circuit_rate_per_sec,
                    l.circuit_burst,
                ),
                qos: qos::QosBook::new(unix_now()),
                connections: 0,
            }),
            max_connections: l.max_connections,
        }
    }

    /// Records how long an authenticated peer has been connected (QoS input).
    pub fn qos_observe(&self, peer: &[u8; 32], kind: qos::PeerKind, age: std::time::Duration) {
        self.lock()
            .qos
            .observe(peer, kind, age.as_secs_f64(), unix_now());
    }

    /// The link-scheduler weight of a circuit from `peer` (`None`: anonymous).
    pub fn qos_weight(&self, peer: Option<&[u8; 32]>) -> u32 {
        self.lock().qos.weight(peer, unix_now())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave these maps inconsistent in a way that matters more
        // than stopping the relay would.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `loc` the home circuit of `identity` (replacing an older one, and dropping its
    /// forwarding address: it is back) and takes the messages queued for it, oldest first,
    /// with the circuit's buffer budget (the same one again if `loc` registers twice, so
    /// bytes reserved for it stay counted).
    pub fn register_home(
        &self,
        now: Instant,
        identity: [u8; 32],
        loc: CircLoc,
    ) -> (Arc<HomeBudget>, Vec<Queued>) {
        let mut inner = self.lock();
        let budget = match inner.homes.get(&identity) {
            Some(home) if home.loc == loc => Arc::clone(&home.budget),
            _ => Arc::default(),
        };
        let home = Home {
            loc,
            budget: Arc::clone(&budget),
        };
        inner.homes.insert(identity, home);
        inner.forwards.remove(&identity);
        (budget, inner.offline.take(now, &identity))
    }

    /// Forgets the home of `identity` if it is still `loc`.
    pub fn unregister_home(&self, identity: [u8; 32], loc: CircLoc) {
        let mut inner = self.lock();
        if inner.homes.get(&identity).map(|h| h.loc) == Some(loc) {
            inner.homes.remove(&identity);
        }
    }

    /// Finds the home of `recipient` and reserves the message's bytes in its buffer budget;
    /// else, if it left a forwarding address, drops the message for a MOVED answer; else
    /// queues the message for it while it is offline.
    pub fn route(
        &self,
        now: Instant,
        recipient: [u8; 32],
        message_id: [u8; 16],
        envelope: Vec<u8>,
    ) -> Route {
        let mut inner = self.lock();
        if let Some(home) = inner.homes.get(&recipient) {
            return match home.budget.try_reserve(envelope.len()) {
                Some(reserved) => Route::Home(home.loc, envelope, reserved),
                None => Route::Full,
            };
        }
        if let Some(address) = inner.forwards.get(now, &recipient) {
            return Route::Moved(address.to_vec());
        }
        match inner.offline.push(now, recipient, message_id, envelope) {
            Ok(()) => Route::Queued,
            Err(e) => Route::Refused(e),
        }
    }

    /// Queues a message whose home circuit went away (or could not take it).
    ///
    /// # Errors
    /// [`OfflineRefused`] when the queue is full.
    pub fn queue(
        &self,
        now: Instant,
        recipient: [u8; 32],
        message_id: [u8; 16],
        envelope: Vec<u8>,
    ) -> Result<(), OfflineRefused> {
        self.lock()
            .offline
            .push(now, recipient, message_id, envelope)
    }

    /// Keeps `address` as where `node` (authenticated on one of its home circuits here)
    /// moved: see [`forwards`].
    ///
    /// # Errors
    /// [`ForwardRefused`].
    pub fn set_forward(
        &self,
        now: Instant,
        node: [u8; 32],
        address: &ournet_proto::address::NodeAddress,
    ) -> Result<(), ForwardRefused> {
        self.lock().forwards.insert(now, unix_secs(), node, address)
    }

    /// Remembers the circuit a message for `recipient` came from, for its ACK.
    pub fn add_ack_route(&self, now: Instant, recipient: [u8; 32], id: [u8; 16], from: CircLoc) {
        self.lock().acks.insert(now, recipient, id, from);
    }

    /// The circuit to send `acker`'s ACK of `id` back on, once.
    pub fn take_ack_route(&self, now: Instant, acker: [u8; 32], id: [u8; 16]) -> Option<CircLoc> {
        self.lock().acks.take(now, acker, id)
    }

    /// Admits a connection from `ip` (`None`: an outbound one, counted but not per IP).
    pub fn admit(&self, now: Instant, ip: Option<IpAddr>) -> bool {
        let mut inner = self.lock();
        if inner.connections >= self.max_connections {
            return false;
        }
        if let Some(ip) = ip
            && !inner.ips.admit(now, ip)
        {
            return false;
        }
        inner.connections += 1;
        true
    }

    /// A connection admitted with [`Directory::admit`] closed.
    pub fn release(&self, ip: Option<IpAddr>) {
        let mut inner = self.lock();
        inner.connections = inner.connections.saturating_sub(1);
        if let Some(ip) = ip {
            inner.ips.release(ip);
        }
    }

    /// Whether `ip` may create another circuit now (the token bucket).
    pub fn allow_create(&self, now: Instant, ip: IpAddr) -> bool {
        self.lock().ips.allow_create(now, ip)
    }

    /// Drops expired messages, routes and idle per-IP state.
    pub fn sweep(&self, now: Instant) {
        let mut inner = self.lock();
        inner.offline.expire(now);
        inner.forwards.expire(now);
        inner.acks.expire(now);
        inner.ips.sweep(now);
    }

    /// `(queued nodes, queued messages, queued bytes, homes, ack routes, connections)`.
    pub fn stats(&self) -> DirectoryStats {
        let inner = self.lock();
        let (nodes, messages, bytes) = inner.offline.stats();
        DirectoryStats {
            offline_nodes: nodes,
            offline_messages: messages,
            offline_bytes: bytes,
            homes: inner.homes.len(),
            ack_routes: inner.acks.len(),
            forwards: inner.forwards.len(),
            connections: inner.connections,
        }
    }
}

/// A snapshot of the directory's sizes, for `/metrics` and `/health`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirectoryStats {
    /// Nodes with queued messages.
    pub offline_nodes: usize,
    /// Queued messages.
    pub offline_messages: usize,
    /// Queued bytes.
    pub offline_bytes: usize,
    /// Registered home nodes.
    pub homes: usize,
    /// ACK routes held.
    pub ack_routes: usize,
    /// Forwarding addresses held.
    pub forwards: usize,
    /// Open connections.
    pub connections: usize,
}

/// Unix seconds, for the validity of forwarding addresses.
fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds, for the QoS book (the proto QoS manager takes wall-clock time).
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use ournet_proto::address::NodeAddress;
    use ournet_proto::keys::IdentityKeypair;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn moved_address(id: &IdentityKeypair) -> NodeAddress {
        forwards::tests::address(id, unix_secs(), 600)
    }

    #[test]
    fn a_moved_node_is_answered_moved_only_while_not_home_and_until_it_returns() {
        let dir = Directory::new(&Config::default());
        let now = Instant::now();
        let bob = IdentityKeypair::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let key = bob.public().to_bytes();
        let loc = CircLoc {
            worker: 0,
            circ: CircKey(1),
        };
        let _ = dir.register_home(now, key, loc);
        let address = moved_address(&bob);
        dir.set_forward(now, key, &address).unwrap();
        assert_eq!(dir.stats().forwards, 1);
        // Draining: the home circuit is still up, so messages are delivered as before.
        assert!(matches!(
            dir.route(now, key, [1; 16], vec![0; 10]),
            Route::Home(..)
        ));
        // The circuit is gone: MOVED with the address, and nothing is queued.
        dir.unregister_home(key, loc);
        let Route::Moved(bytes) = dir.route(now, key, [2; 16], vec![0; 10]) else {
            panic!("expected MOVED")
        };
        assert_eq!(bytes, address.to_bytes());
        assert_eq!(dir.stats().offline_messages, 0);
        // Bob authenticates here again: his forwarding address is gone.
        let _ = dir.register_home(now, key, loc);
        assert_eq!(dir.stats().forwards, 0);
        dir.unregister_home(key, loc);
        assert!(matches!(
            dir.route(now, key, [3; 16], vec![0; 10]),
            Route::Queued
        ));
    }
}
