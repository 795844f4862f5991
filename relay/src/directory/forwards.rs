//! Forwarding addresses: where a node that left this relay said it went (PROTOCOL.md §7.4,
//! FORWARD_TO and MOVED).
//!
//! A node rotating its homes sends FORWARD_TO with its new signed address on its old home
//! circuit before that circuit drains. Once the circuit is gone, a message for the node is
//! answered MOVED with that address instead of being queued, so the sender reaches the new
//! homes without asking a seed whom it writes to. The message is not kept: the sender
//! resends it, so exactly-once holds by there being one copy.
//!
//! One address per node, the newest `issued_at` winning; each lives until the earlier of
//! its own expiry and the offline queue's `max_age` (a node away longer than a queued
//! message would wait is not forwarded for either). At most `max_nodes` (the offline queue's
//! node cap) are kept; past it a new node's address is refused, none is evicted. A node that
//! authenticates here again drops its forwarding address (`Directory::register_home`).
//! Time is an argument: `now` for lifetimes, `unix_now` (seconds) for the address's own
//! validity.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ournet_proto::address::NodeAddress;

/// Why a forwarding address was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardRefused {
    /// The address is of another node than the home circuit's.
    #[error("the address names another node")]
    OtherNode,
    /// The address is expired or not yet valid.
    #[error("the address is expired or not yet valid")]
    Expired,
    /// A live address of the node issued at the same time or later is kept already.
    #[error("an address at least as new is kept")]
    Stale,
    /// The count cap is reached and this node has no address here.
    #[error("too many forwarding addresses")]
    Full,
}

/// One node's forwarding address.
#[derive(Debug)]
struct Forward {
    /// Binary form, as MOVED carries it.
    address: Vec<u8>,
    issued_at: u64,
    until: Instant,
}

/// Every forwarding address of a relay.
#[derive(Debug)]
pub struct Forwards {
    max: usize,
    max_age: Duration,
    by_node: HashMap<[u8; 32], Forward>,
}

impl Forwards {
    /// An empty store of at most `max` addresses, each kept at most `max_age`.
    pub fn new(max: usize, max_age: Duration) -> Self {
        Self {
            max,
            max_age,
            by_node: HashMap::new(),
        }
    }

    /// Keeps `address` as the forwarding address of `node` (the identity its home circuit
    /// authenticated; the address's signature was verified by `proto`).
    ///
    /// # Errors
    /// [`ForwardRefused`]: another node's, invalid at `unix_now`, not newer than the one
    /// kept, or the store is full.
    pub fn insert(
        &mut self,
        now: Instant,
        unix_now: u64,
        node: [u8; 32],
        address: &NodeAddress,
    ) -> Result<(), ForwardRefused> {
        if address.identity.to_bytes() != node {
            return Err(ForwardRefused::OtherNode);
        }
        if address.check_time(unix_now).is_err() {
            return Err(ForwardRefused::Expired);
        }
        match self.by_node.get(&node) {
            Some(f) if f.until > now && f.issued_at >= address.issued_at => {
                return Err(ForwardRefused::Stale);
            }
            Some(_) => {}
            None if self.by_node.len() >= self.max => {
                self.expire(now);
                if self.by_node.len() >= self.max {
                    return Err(ForwardRefused::Full);
                }
            }
            None => {}
        }
        let valid = Duration::from_secs(address.expires_at.saturating_sub(unix_now));
        let forward = Forward {
            address: address.to_bytes(),
            issued_at: address.issued_at,
            until: now + valid.min(self.max_age),
        };
        self.by_node.insert(node, forward);
        Ok(())
    }

    /// The live forwarding address of `node` (binary form), if any.
    pub fn get(&self, now: Instant, node: &[u8; 32]) -> Option<&[u8]> {
        self.by_node
            .get(node)
            .filter(|f| f.until > now)
            .map(|f| f.address.as_slice())
    }

    /// Forgets the forwarding address of `node` (it is home here again).
    pub fn remove(&mut self, node: &[u8; 32]) {
        self.by_node.remove(node);
    }

    /// Drops every address past its lifetime.
    pub fn expire(&mut self, now: Instant) {
        self.by_node.retain(|_, f| f.until > now);
    }

    /// Addresses held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.by_node.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use ournet_proto::circuit::PathHop;
    use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    const UNIX: u64 = 1_000_000;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(5)
    }

    /// A one-home address of `id`, valid `ttl` seconds from `issued_at` (also used by the
    /// directory's routing tests).
    pub(in crate::directory) fn address(
        id: &IdentityKeypair,
        issued_at: u64,
        ttl: u64,
    ) -> NodeAddress {
        let mut rng = rng();
        let hop = PathHop {
            identity: IdentityKeypair::generate(&mut rng).public(),
            onion_key: EncryptionKeypair::generate(&mut rng).public(),
            link_key: EncryptionKeypair::generate(&mut rng).public(),
            addr: ([127, 0, 0, 1], 9001).into(),
        };
        let enc = EncryptionKeypair::generate(&mut rng).public();
        NodeAddress::sign(id, enc, vec![hop], issued_at, issued_at + ttl).unwrap()
    }

    fn node(seed: u64) -> (IdentityKeypair, [u8; 32]) {
        let id = IdentityKeypair::generate(&mut ChaCha20Rng::seed_from_u64(seed));
        let key = id.public().to_bytes();
        (id, key)
    }

    #[test]
    fn only_the_nodes_own_valid_and_newest_address_is_kept() {
        let now = Instant::now();
        let mut f = Forwards::new(10, Duration::from_secs(3600));
        let (bob, key) = node(1);
        let (carol, _) = node(2);
        let foreign = address(&carol, UNIX, 600);
        assert_eq!(
            f.insert(now, UNIX, key, &foreign),
            Err(ForwardRefused::OtherNode)
        );
        let expired = address(&bob, UNIX - 700, 600);
        assert_eq!(
            f.insert(now, UNIX, key, &expired),
            Err(ForwardRefused::Expired)
        );
        let first = address(&bob, UNIX, 600);
        f.insert(now, UNIX, key, &first).unwrap();
        assert_eq!(f.get(now, &key), Some(first.to_bytes().as_slice()));
        let older = address(&bob, UNIX - 10, 600);
        assert_eq!(f.insert(now, UNIX, key, &older), Err(ForwardRefused::Stale));
        let newer = address(&bob, UNIX + 5, 600);
        f.insert(now, UNIX, key, &newer).unwrap();
        assert_eq!(f.get(now, &key), Some(newer.to_bytes().as_slice()));
        assert_eq!(f.len(), 1, "one per node");
        f.remove(&key);
        assert_eq!(f.get(now, &key), None);
        assert!(f.is_empty());
    }

    #[test]
    fn an_address_lives_until_its_expiry_or_the_queue_age_whichever_is_first() {
        let now = Instant::now();
        let mut f = Forwards::new(10, Duration::from_secs(3600));
        let (bob, bob_key) = node(1);
        let (carol, carol_key) = node(2);
        f.insert(now, UNIX, bob_key, &address(&bob, UNIX, 600))
            .unwrap();
        f.insert(now, UNIX, carol_key, &address(&carol, UNIX, 86_400))
            .unwrap();
        let t = |s| now + Duration::from_secs(s);
        assert!(f.get(t(599), &bob_key).is_some());
        assert!(f.get(t(600), &bob_key).is_none(), "the address expired");
        assert!(f.get(t(3599), &carol_key).is_some());
        assert!(f.get(t(3600), &carol_key).is_none(), "the queue's max age");
        f.expire(t(700));
        assert_eq!(f.len(), 1);
        f.expire(t(3600));
        assert!(f.is_empty());
        // An expired entry no longer blocks an older address (a node's clock went back).
        f.insert(now, UNIX, bob_key, &address(&bob, UNIX, 600))
            .unwrap();
        f.insert(t(601), UNIX + 601, bob_key, &address(&bob, UNIX - 1, 3600))
            .unwrap();
    }

    #[test]
    fn the_count_is_capped_and_nothing_is_evicted_for_a_newcomer() {
        let now = Instant::now();
        let mut f = Forwards::new(2, Duration::from_secs(3600));
        let nodes: Vec<_> = (10..13).map(node).collect();
        for (id, key) in &nodes[..2] {
            f.insert(now, UNIX, *key, &address(id, UNIX, 600)).unwrap();
        }
        let (id, key) = &nodes[2];
        assert_eq!(
            f.insert(now, UNIX, *key, &address(id, UNIX, 600)),
            Err(ForwardRefused::Full)
        );
        // A node already held may still update its address.
        let (id0, key0) = &nodes[0];
        f.insert(now, UNIX, *key0, &address(id0, UNIX + 1, 600))
            .unwrap();
        // Once the others expire there is room again (and they are swept to make it).
        let later = now + Duration::from_secs(601);
        f.insert(later, UNIX + 601, *key, &address(id, UNIX + 601, 600))
            .unwrap();
        assert_eq!(f.len(), 1);
        assert!(f.get(later, key).is_some());
    }
}
