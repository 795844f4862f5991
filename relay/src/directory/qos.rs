//! Which QoS tier a circuit gets: the relay's contribution book (spec §2.5, §5.18).
//!
//! A relay can score only peers it can authenticate without learning anything a circuit
//! hides: the relays on the other end of its relay links (Noise IK proves their identity)
//! and the nodes whose home it is (HOME_AUTH). What it scores is what it observes itself:
//!
//! * a relay peer carries traffic for others (`routing_capacity` 1.0) and has been linked
//!   for some time (`uptime_reliability`, the link's age over a day);
//! * a home node has been online for some time (`uptime_reliability`, its home circuit's
//!   age over a day).
//!
//! Every other circuit is anonymous by design and gets [`ANONYMOUS_TIER`]. The proto
//! [`QoSManager`] turns scores and load into tiers (new peers get the grace period's Normal
//! tier), and [`QoSPolicy::scheduler_weight`] turns tiers into the link scheduler's weights:
//! under congestion a long-standing relay peer's circuits get up to twice an anonymous
//! circuit's share, and a home node that contributes nothing falls to half of it, but no tier's
//! weight is 0, so nobody starves.
//!
//! [`QoSPolicy::scheduler_weight`]: ournet_proto::qos::QoSPolicy::scheduler_weight

use ournet_proto::qos::{ContributionDimension, PriorityTier, QoSManager, QoSPolicy};

/// Peers tracked at most (the manager evicts the lowest priority, oldest first).
pub const MAX_TRACKED_PEERS: usize = 10_000;
/// The tier of circuits whose originator the relay cannot know.
pub const ANONYMOUS_TIER: PriorityTier = PriorityTier::Normal;
/// Uptime that earns a full `uptime_reliability`.
const FULL_UPTIME_SECS: f64 = 86_400.0;

/// What kind of authenticated peer an observation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// A relay on an IK link.
    Relay,
    /// A node homed here.
    Home,
}

/// The book of authenticated peers' scores.
#[derive(Debug)]
pub struct QosBook {
    manager: QoSManager,
}

impl QosBook {
    /// An empty book; `now` is Unix seconds.
    pub fn new(now: f64) -> Self {
        Self {
            manager: QoSManager::new(QoSPolicy::default(), MAX_TRACKED_PEERS, now),
        }
    }

    /// Records that `peer` has been connected for `age_secs`.
    pub fn observe(&mut self, peer: &[u8; 32], kind: PeerKind, age_secs: f64, now: f64) {
        let uptime = (age_secs / FULL_UPTIME_SECS).clamp(0.0, 1.0);
        let mut updates = vec![(ContributionDimension::UptimeReliability, uptime)];
        if kind == PeerKind::Relay {
            updates.push((ContributionDimension::RoutingCapacity, 1.0));
        }
        self.manager
            .update_scores_batch(&hex::encode(peer), updates, now);
    }

    /// The scheduler weight of circuits from `peer`, or of anonymous circuits for `None`.
    pub fn weight(&mut self, peer: Option<&[u8; 32]>, now: f64) -> u32 {
        match peer {
            Some(p) => self.manager.scheduler_weight(&hex::encode(p), now),
            None => self.manager.policy().scheduler_weight(ANONYMOUS_TIER),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: f64 = 3600.0;

    #[test]
    fn anonymous_circuits_get_the_normal_weight_and_new_peers_the_grace_tier() {
        let mut book = QosBook::new(0.0);
        assert_eq!(book.weight(None, 0.0), 4);
        book.observe(&[1; 32], PeerKind::Home, 0.0, 0.0);
        assert_eq!(book.weight(Some(&[1; 32]), 10.0), 4, "grace period: Normal");
    }

    #[test]
    fn after_the_grace_period_contribution_decides() {
        let mut book = QosBook::new(0.0);
        for p in [1, 2, 3] {
            book.observe(&[p; 32], PeerKind::Home, 0.0, 0.0);
        }
        let t = 2.0 * HOUR;
        book.observe(&[1; 32], PeerKind::Relay, 30.0 * HOUR, t);
        book.observe(&[2; 32], PeerKind::Home, 60.0, t);
        book.observe(&[3; 32], PeerKind::Home, 30.0 * HOUR, t);
        let relay = book.weight(Some(&[1; 32]), t);
        let idle_home = book.weight(Some(&[2; 32]), t);
        let anon = book.weight(None, t);
        assert!(
            relay >= anon,
            "a relay peer is served at least like anyone: {relay}"
        );
        assert!(
            idle_home < anon,
            "a node that gives nothing ranks below: {idle_home}"
        );
        assert!(idle_home >= 1, "but never starves");
    }
}
