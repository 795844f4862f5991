//! Following a recipient whose homes moved (spec §5.11-§5.13: rotation and failover re-sign
//! and publish the node's address).
//!
//! A sender holding an address from before the move reaches a home the recipient has left.
//! Without a forwarding address (below) that relay answers QUEUED once the drain ends, and
//! the message would wait there for a recipient that never comes back. So when an attempt
//! is queued, or every home of the address is cooling down, [`super::send`] asks the
//! directory for the recipient's current address and moves the send to it if
//! `NodeAddress::replaces` accepts it (signature, identity, validity, a later issue time and
//! other homes: the directory is not trusted).
//!
//! A recipient that rotated its homes usually tells its old home where it went
//! (FORWARD_TO), and that relay answers MOVED with the new address instead of queuing:
//! [`Addresses::learn`] takes it (under the same `replaces` checks) with no lookup at all.
//! The directory is asked only when no MOVED came (failover: the old home is dead).
//!
//! The newest address seen per recipient is remembered ([`MAX_REMEMBERED`] recipients, the
//! least recently used forgotten first), so later sends to the old address go straight to
//! the new homes. Lookups are rate-limited per recipient ([`LOOKUP_GAP`]) and run one at a
//! time, so a burst of sends to one offline recipient costs one lookup, not one each: every
//! lookup also tells the directory whom this node writes to.
//!
//! Exactly-once holds across a move: the copy left queued at the old home carries the same
//! signed (sender, message id) as the one delivered through the new homes, so if the
//! recipient ever returns to the old home it ACKs that copy and drops it as a duplicate
//! (`crate::dedup`, which remembers pairs longer than a relay keeps a queued message).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ournet_proto::address::NodeAddress;

use crate::directory::RelayDirectory;

/// Most recipients whose newest address is remembered.
pub(super) const MAX_REMEMBERED: usize = 1024;
/// Shortest time between two directory lookups of one recipient.
pub(super) const LOOKUP_GAP: Duration = Duration::from_secs(5);

/// The newest address seen per recipient, and when each was last looked up.
#[derive(Debug, Default)]
pub(super) struct Addresses {
    known: Mutex<HashMap<[u8; 32], Known>>,
    /// Held across a lookup: concurrent sends to one recipient wait for its answer.
    lookup: tokio::sync::Mutex<()>,
}

/// What is remembered of one recipient.
#[derive(Debug)]
struct Known {
    /// The newest verified address found, if a lookup found one newer than a send held.
    address: Option<NodeAddress>,
    /// The last lookup, answered or not.
    looked_up: Option<Instant>,
    /// Last read or written (the least recently used goes first).
    used: Instant,
}

impl Addresses {
    /// The remembered address that replaces `held` (at `now`, unix seconds), if any. Asks
    /// no one.
    pub(super) fn remembered(&self, held: &NodeAddress, now: u64) -> Option<NodeAddress> {
        let mut known = self.lock();
        let k = known.get_mut(&held.identity.to_bytes())?;
        k.used = Instant::now();
        k.address
            .as_ref()
            .filter(|a| a.replaces(held, now))
            .cloned()
    }

    /// An address that replaces `held`: the remembered one, else what `directory` answers
    /// (unless this recipient was looked up within [`LOOKUP_GAP`]). An answer that does not
    /// replace `held` (older, the same homes, expired, another identity's, or not signed
    /// by its node) is ignored.
    pub(super) async fn newer(
        &self,
        directory: &dyn RelayDirectory,
        held: &NodeAddress,
        now: u64,
    ) -> Option<NodeAddress> {
        let _turn = self.lookup.lock().await;
        if let Some(a) = self.remembered(held, now) {
            return Some(a);
        }
        let key = held.identity.to_bytes();
        if !self.claim_lookup(key) {
            return None;
        }
        let found = match directory.lookup_address(&held.identity).await {
            Ok(Some(a)) => a,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!("looking up a recipient's address: {e}");
                return None;
            }
        };
        let learned = self.learn(held, found, now);
        if learned.is_none() {
            tracing::debug!("the directory's address for a recipient is not newer: ignored");
        }
        learned
    }

    /// Takes `found` (looked up, or handed back in MOVED by a recipient's old home) if it
    /// replaces `held` (at `now`, unix seconds: verified, the same node, later, other
    /// homes), and remembers it for later sends unless a newer one is remembered already.
    /// Asks no one.
    pub(super) fn learn(
        &self,
        held: &NodeAddress,
        found: NodeAddress,
        now: u64,
    ) -> Option<NodeAddress> {
        if !found.replaces(held, now) {
            return None;
        }
        let mut known = self.lock();
        let k = entry(&mut known, held.identity.to_bytes(), Instant::now());
        if k.address.as_ref().is_none_or(|a| found.replaces(a, now)) {
            k.address = Some(found.clone());
        }
        Some(found)
    }

    /// Records a lookup of `key` now, unless one was made within [`LOOKUP_GAP`] (then
    /// `false`). Makes room for a new recipient by forgetting the least recently used.
    fn claim_lookup(&self, key: [u8; 32]) -> bool {
        let now = Instant::now();
        let mut known = self.lock();
        let k = entry(&mut known, key, now);
        if k.looked_up
            .is_some_and(|t| now.duration_since(t) < LOOKUP_GAP)
        {
            return false;
        }
        k.looked_up = Some(now);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Known>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The record of `key`, used `now`; a new one forgets the least recently used recipient
/// when [`MAX_REMEMBERED`] are known.
fn entry(known: &mut HashMap<[u8; 32], Known>, key: [u8; 32], now: Instant) -> &mut Known {
    if !known.contains_key(&key) && known.len() >= MAX_REMEMBERED {
        let oldest = known.iter().min_by_key(|(_, k)| k.used).map(|(id, _)| *id);
        if let Some(id) = oldest {
            known.remove(&id);
        }
    }
    let k = known.entry(key).or_insert(Known {
        address: None,
        looked_up: None,
        used: now,
    });
    k.used = now;
    k
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use ournet_proto::circuit::PathHop;
    use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};

    use super::*;
    use crate::directory::{DirectoryError, Preferences, RelayInfo};
    use crate::rng::fresh_rng;

    /// A directory that answers every lookup with one fixed address.
    #[derive(Debug)]
    struct Answers(Option<NodeAddress>);

    #[async_trait]
    impl RelayDirectory for Answers {
        async fn relays(
            &self,
            _: usize,
            _: &Preferences,
        ) -> Result<Vec<RelayInfo>, DirectoryError> {
            Ok(Vec::new())
        }

        async fn lookup_address(
            &self,
            _: &ournet_proto::keys::IdentityPublicKey,
        ) -> Result<Option<NodeAddress>, DirectoryError> {
            Ok(self.0.clone())
        }
    }

    fn hop(port: u16) -> PathHop {
        let mut rng = fresh_rng();
        PathHop {
            identity: IdentityKeypair::generate(&mut rng).public(),
            onion_key: EncryptionKeypair::generate(&mut rng).public(),
            link_key: EncryptionKeypair::generate(&mut rng).public(),
            addr: ([127, 0, 0, 1], port).into(),
        }
    }

    fn address(id: &IdentityKeypair, port: u16, issued_at: u64) -> NodeAddress {
        let enc = EncryptionKeypair::generate(&mut fresh_rng()).public();
        NodeAddress::sign(id, enc, vec![hop(port)], issued_at, issued_at + 3600).unwrap()
    }

    const NOW: u64 = 1_000_000;

    #[tokio::test]
    async fn a_newer_address_is_followed_and_remembered() {
        let id = IdentityKeypair::generate(&mut fresh_rng());
        let held = address(&id, 1, NOW - 100);
        let moved = address(&id, 2, NOW - 10);
        let a = Addresses::default();
        assert_eq!(a.remembered(&held, NOW), None);
        let dir = Answers(Some(moved.clone()));
        assert_eq!(a.newer(&dir, &held, NOW).await, Some(moved.clone()));
        assert_eq!(a.remembered(&held, NOW), Some(moved.clone()));
        // Later sends to the old address find it without asking (inside the lookup gap).
        assert_eq!(
            a.newer(&Answers(None), &held, NOW).await,
            Some(moved.clone())
        );
        // The remembered address does not replace itself.
        assert_eq!(a.remembered(&moved, NOW), None);
    }

    #[tokio::test]
    async fn an_older_or_foreign_or_same_homes_address_is_ignored() {
        let id = IdentityKeypair::generate(&mut fresh_rng());
        let held = address(&id, 1, NOW - 10);
        let older = address(&id, 2, NOW - 100);
        let stranger = IdentityKeypair::generate(&mut fresh_rng());
        let foreign = address(&stranger, 3, NOW - 5);
        let same_homes = NodeAddress::sign(
            &id,
            held.encryption_key,
            held.homes.clone(),
            NOW - 5,
            NOW + 3600,
        )
        .unwrap();
        let mut edited = address(&id, 4, NOW - 5);
        edited.homes = vec![hop(5)];
        for answer in [older, foreign, same_homes, edited] {
            let a = Addresses::default();
            assert_eq!(a.newer(&Answers(Some(answer)), &held, NOW).await, None);
            assert_eq!(a.remembered(&held, NOW), None, "nothing remembered");
        }
        // A directory without lookups (the default, as StaticDirectory): nothing changes.
        let a = Addresses::default();
        let fixed = crate::directory::StaticDirectory::default();
        assert_eq!(a.newer(&fixed, &held, NOW).await, None);
    }

    #[test]
    fn a_moved_address_is_learned_only_if_it_replaces_the_held_one() {
        let id = IdentityKeypair::generate(&mut fresh_rng());
        let held = address(&id, 1, NOW - 100);
        let moved = address(&id, 2, NOW - 10);
        let a = Addresses::default();
        let stranger = IdentityKeypair::generate(&mut fresh_rng());
        let mut edited = address(&id, 4, NOW - 5);
        edited.homes = vec![hop(5)];
        for bad in [
            address(&id, 3, NOW - 200),
            address(&stranger, 3, NOW - 5),
            edited,
        ] {
            assert_eq!(a.learn(&held, bad, NOW), None);
        }
        assert_eq!(a.remembered(&held, NOW), None);
        assert_eq!(a.learn(&held, moved.clone(), NOW), Some(moved.clone()));
        assert_eq!(a.remembered(&held, NOW), Some(moved.clone()));
        // An older MOVED (from another old home) does not displace the newer one.
        let between = address(&id, 6, NOW - 50);
        assert_eq!(a.learn(&held, between.clone(), NOW), Some(between));
        assert_eq!(a.remembered(&held, NOW), Some(moved));
    }

    #[tokio::test]
    async fn lookups_of_one_recipient_are_spaced_and_the_map_is_bounded() {
        let id = IdentityKeypair::generate(&mut fresh_rng());
        let held = address(&id, 1, NOW - 100);
        let a = Addresses::default();
        assert_eq!(a.newer(&Answers(None), &held, NOW).await, None);
        // Published meanwhile, but asked again within the gap: not asked.
        let moved = Answers(Some(address(&id, 2, NOW - 10)));
        assert_eq!(a.newer(&moved, &held, NOW).await, None);
        for i in 0..MAX_REMEMBERED as u32 + 10 {
            let mut key = [0; 32];
            key[..4].copy_from_slice(&i.to_be_bytes());
            assert!(a.claim_lookup(key));
        }
        assert_eq!(a.lock().len(), MAX_REMEMBERED);
        assert!(
            !a.lock().contains_key(&id.public().to_bytes()),
            "the least recently used went first"
        );
    }
}
