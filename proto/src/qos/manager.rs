//! [`QoSManager`]: per-peer QoS state for a bounded set of peers, recomputed as load changes.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    ContributionDimension, ContributionScore, LoadMetrics, LoadUpdate, PriorityTier, QoSPolicy,
    serialize_round4,
};

/// One peer's QoS state: its score and the priority and tier derived from it.
///
/// The manager keeps `priority_value` and `tier` consistent with the score, the load and the
/// grace period; it hands out only shared references. The serde form is the reference's
/// `to_dict`, with `priority_value` rounded to 4 decimal places.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeQoSState {
    /// The peer's identifier.
    pub node_id: String,
    /// The peer's contribution.
    pub score: ContributionScore,
    /// The peer's tier ([`PriorityTier::Normal`] while in its grace period).
    pub tier: PriorityTier,
    /// The peer's priority at the load of the last recomputation.
    #[serde(serialize_with = "serialize_round4")]
    pub priority_value: f64,
    /// When the manager first saw the peer (Unix seconds).
    pub first_seen: f64,
    /// Whether the peer is still in its new-user grace period.
    pub is_in_grace_period: bool,
    /// Insertion counter: breaks eviction ties between equal `first_seen` times.
    #[serde(skip)]
    seq: u64,
}

/// Number of peers in each tier, zeros included (the reference's `get_tier_summary`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TierSummary {
    /// Peers in [`PriorityTier::Critical`].
    pub critical: usize,
    /// Peers in [`PriorityTier::High`].
    pub high: usize,
    /// Peers in [`PriorityTier::Normal`].
    pub normal: usize,
    /// Peers in [`PriorityTier::Low`].
    pub low: usize,
    /// Peers in [`PriorityTier::Minimum`].
    pub minimum: usize,
}

impl TierSummary {
    /// The count for one tier.
    pub fn get(&self, tier: PriorityTier) -> usize {
        match tier {
            PriorityTier::Critical => self.critical,
            PriorityTier::High => self.high,
            PriorityTier::Normal => self.normal,
            PriorityTier::Low => self.low,
            PriorityTier::Minimum => self.minimum,
        }
    }

    /// The count for one tier, mutably.
    fn get_mut(&mut self, tier: PriorityTier) -> &mut usize {
        match tier {
            PriorityTier::Critical => &mut self.critical,
            PriorityTier::High => &mut self.high,
            PriorityTier::Normal => &mut self.normal,
            PriorityTier::Low => &mut self.low,
            PriorityTier::Minimum => &mut self.minimum,
        }
    }
}

/// A snapshot for monitoring (the reference's `get_status`).
///
/// Serializes as `{policy, load, node_count, tier_summary, current_steepness}`, the steepness
/// rounded to 4 decimal places.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QoSStatus {
    /// The manager's policy.
    pub policy: QoSPolicy,
    /// The current load metrics.
    pub load: LoadMetrics,
    /// Number of tracked peers.
    pub node_count: usize,
    /// Peers per tier.
    pub tier_summary: TierSummary,
    /// The curve exponent at the current load.
    #[serde(serialize_with = "serialize_round4")]
    pub current_steepness: f64,
}

/// Contribution-based QoS for every peer a relay knows, within a fixed memory bound.
///
/// A peer is created on first mention (any lookup by id), with the default score, tier
/// [`PriorityTier::Normal`], the grace flag set and its priority at the current load. Every
/// score update recomputes the peer's grace flag (it ends once the peer is older than
/// `new_user_grace_period`), priority and tier; every load update recomputes all peers.
///
/// At most `max_tracked_nodes` peers are kept. Before a new peer is added to a full manager,
/// the peer with the lowest priority is evicted, and among equals the oldest (smallest
/// `first_seen`, then earliest inserted). The reference evicts the newest among equals,
/// against its own docstring (weakness W35). Eviction scans all peers, O(n) per new peer at
/// capacity; with the default bound that is 10 000 comparisons. A flood of fresh ids can
/// only push out peers no better than a fresh one: contributors rank above and stay.
///
/// Peers are kept in id order (a `BTreeMap`), so iteration is deterministic and needs no
/// hasher seeded from the OS.
#[derive(Debug, Clone)]
pub struct QoSManager {
    /// How scores become priorities and tiers.
    policy: QoSPolicy,
    /// Tracked peers by id.
    nodes: BTreeMap<String, NodeQoSState>,
    /// The relay's load as last reported.
    load: LoadMetrics,
    /// Bound on `nodes.len()`; at least 1.
    max_tracked_nodes: usize,
    /// The `seq` of the next peer added.
    next_seq: u64,
}

impl QoSManager {
    /// The reference's default bound on tracked peers.
    pub const DEFAULT_MAX_TRACKED_NODES: usize = 10_000;

    /// A manager with no peers and an idle load as of `now`.
    ///
    /// A `max_tracked_nodes` of 0 is treated as 1: the peer being looked up must fit.
    pub fn new(policy: QoSPolicy, max_tracked_nodes: usize, now: f64) -> Self {
        Self {
            policy,
            nodes: BTreeMap::new(),
            load: LoadMetrics::new(now),
            max_tracked_nodes: max_tracked_nodes.max(1),
            next_seq: 0,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &QoSPolicy {
        &self.policy
    }

    /// The load as last reported through [`Self::update_load`].
    pub fn load_metrics(&self) -> &LoadMetrics {
        &self.load
    }

    /// Number of tracked peers.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The bound on tracked peers.
    pub fn max_tracked_nodes(&self) -> usize {
        self.max_tracked_nodes
    }

    /// The peer's state, created with defaults (evicting another peer if full) if unknown.
    pub fn get_or_create_node(&mut self, node_id: &str, now: f64) -> &NodeQoSState {
        self.state_mut(node_id, now)
    }

    /// Sets one contribution dimension of a peer (creating it if unknown) and recomputes it.
    pub fn update_score(
        &mut self,
        node_id: &str,
        dimension: ContributionDimension,
        value: f64,
        now: f64,
    ) -> &NodeQoSState {
        self.update_scores_batch(node_id, [(dimension, value)], now)
    }

    /// Sets several dimensions of a peer (creating it if unknown), then recomputes it once.
    pub fn update_scores_batch(
        &mut self,
        node_id: &str,
        updates: impl IntoIterator<Item = (ContributionDimension, f64)>,
        now: f64,
    ) -> &NodeQoSState {
        let policy = self.policy;
        let load_factor = self.load.load_factor;
        let state = self.state_mut(node_id, now);
        for (dimension, value) in updates {
            state.score.set_dimension(dimension, value, now);
        }
        recompute(&policy, load_factor, state, now);
        state
    }

    /// The peer's priority, in `[min_service_floor, 1]`; an unknown peer is created first.
    pub fn get_priority(&mut self, node_id: &str, now: f64) -> f64 {
        self.state_mut(node_id, now).priority_value
    }

    /// The peer's tier; an unknown peer is created first (and so is in its grace period).
    pub fn get_tier(&mut self, node_id: &str, now: f64) -> PriorityTier {
        self.state_mut(node_id, now).tier
    }

    /// The peer's weighted-fair-queue quanta per round ([`QoSPolicy::scheduler_weight`] of its
    /// tier); an unknown peer is created first.
    pub fn scheduler_weight(&mut self, node_id: &str, now: f64) -> u32 {
        let tier = self.get_tier(node_id, now);
        self.policy.scheduler_weight(tier)
    }

    /// The peer's state, or `None` if it is not tracked. Never creates a peer.
    pub fn get_node_state(&self, node_id: &str) -> Option<&NodeQoSState> {
        self.nodes.get(node_id)
    }

    /// Applies a partial load update, recomputes the load factor and every peer, and returns
    /// the new load factor.
    pub fn update_load(&mut self, update: LoadUpdate, now: f64) -> f64 {
        self.load.apply(update);
        let load_factor = self.load.compute_load_factor(now);
        for state in self.nodes.values_mut() {
            recompute(&self.policy, load_factor, state, now);
        }
        load_factor
    }

    /// Every tracked peer, highest priority first; equal priorities in id order.
    pub fn get_ranked_nodes(&self) -> Vec<&NodeQoSState> {
        let mut ranked: Vec<_> = self.nodes.values().collect();
        ranked.sort_by(|a, b| b.priority_value.total_cmp(&a.priority_value));
        ranked
    }

    /// Number of peers in each tier.
    pub fn get_tier_summary(&self) -> TierSummary {
        let mut summary = TierSummary::default();
        for state in self.nodes.values() {
            *summary.get_mut(state.tier) += 1;
        }
        summary
    }

    /// A monitoring snapshot: policy, load, peer count, tiers and current steepness.
    pub fn get_status(&self) -> QoSStatus {
        QoSStatus {
            policy: self.policy,
            load: self.load,
            node_count: self.nodes.len(),
            tier_summary: self.get_tier_summary(),
            current_steepness: self.policy.compute_steepness(self.load.load_factor),
        }
    }

    /// Stops tracking a peer; `false` if it was not tracked.
    pub fn remove_node(&mut self, node_id: &str) -> bool {
        self.nodes.remove(node_id).is_some()
    }

    /// The peer's state, inserting a fresh one (after an eviction if full) if unknown.
    fn state_mut(&mut self, node_id: &str, now: f64) -> &mut NodeQoSState {
        if !self.nodes.contains_key(node_id) {
            if self.nodes.len() >= self.max_tracked_nodes {
                self.evict_one();
            }
            let score = ContributionScore::new(node_id, now);
            let state = NodeQoSState {
                node_id: node_id.to_owned(),
                tier: PriorityTier::Normal,
                priority_value: self
                    .policy
                    .compute_priority(score.overall(), self.load.load_factor),
                score,
                first_seen: now,
                is_in_grace_period: true,
                seq: self.next_seq,
            };
            self.next_seq += 1;
            self.nodes.insert(node_id.to_owned(), state);
        }
        self.nodes
            .get_mut(node_id)
            .expect("peer present: it was found, or inserted just above")
    }

    /// Removes the lowest-priority peer, the oldest among equals.
    fn evict_one(&mut self) {
        let victim = self
            .nodes
            .values()
            .min_by(|a, b| {
                a.priority_value
                    .total_cmp(&b.priority_value)
                    .then(a.first_seen.total_cmp(&b.first_seen))
                    .then(a.seq.cmp(&b.seq))
            })
            .map(|state| state.node_id.clone());
        if let Some(node_id) = victim {
            self.nodes.remove(&node_id);
        }
    }
}

impl Default for QoSManager {
    /// The reference defaults: [`QoSPolicy::DEFAULT`] and 10 000 peers, created at time 0.
    fn default() -> Self {
        Self::new(QoSPolicy::DEFAULT, Self::DEFAULT_MAX_TRACKED_NODES, 0.0)
    }
}

/// Refreshes a peer's grace flag, priority and tier (the reference's `_recompute_node`).
fn recompute(policy: &QoSPolicy, load_factor: f64, state: &mut NodeQoSState, now: f64) {
    if state.is_in_grace_period && now - state.first_seen > policy.new_user_grace_period {
        state.is_in_grace_period = false;
    }
    let overall = state.score.overall();
    state.priority_value = policy.compute_priority(overall, load_factor);
    state.tier = policy.assign_tier(overall, state.is_in_grace_period);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qos::NEW_USER_MINIMUM_SCORE;

    use ContributionDimension::*;

    const T0: f64 = 1_706_789_012.0;
    const GRACE: f64 = 3600.0;

    fn manager(max: usize) -> QoSManager {
        QoSManager::new(QoSPolicy::default(), max, T0)
    }

    fn all(value: f64) -> [(ContributionDimension, f64); 5] {
        ContributionDimension::ALL.map(|d| (d, value))
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-12,
            "expected {expected}, got {actual}"
        );
    }

    #[test]
    fn new_manager_is_empty_with_defaults() {
        let m = manager(QoSManager::DEFAULT_MAX_TRACKED_NODES);
        assert_eq!(m.node_count(), 0);
        assert_eq!(m.max_tracked_nodes(), 10_000);
        assert_eq!(*m.policy(), QoSPolicy::default());
        assert_eq!(*m.load_metrics(), LoadMetrics::new(T0));
        let d = QoSManager::default();
        assert_eq!(d.max_tracked_nodes(), 10_000);
        assert_eq!(*d.policy(), QoSPolicy::DEFAULT);
    }

    #[test]
    fn custom_policy_is_kept() {
        let policy = QoSPolicy {
            min_service_floor: 0.2,
            ..QoSPolicy::default()
        };
        let mut m = QoSManager::new(policy, 10, T0);
        assert_eq!(m.policy().min_service_floor, 0.2);
        // 0.2 + 0.1 · 0.8
        assert_close(m.get_priority("n", T0), 0.28);
    }

    #[test]
    fn new_node_gets_defaults() {
        let mut m = manager(10);
        let state = m.get_or_create_node("node-1", T0 + 5.0).clone();
        assert_eq!(state.node_id, "node-1");
        assert!(state.is_in_grace_period);
        assert_eq!(state.tier, PriorityTier::Normal);
        assert_eq!(state.first_seen, T0 + 5.0);
        assert_eq!(state.score.created_at, T0 + 5.0);
        assert_close(state.score.overall(), NEW_USER_MINIMUM_SCORE);
        // 0.1 + 0.1 · 0.9 at load 0
        assert_close(state.priority_value, 0.19);
        assert_eq!(m.node_count(), 1);
    }

    #[test]
    fn existing_node_is_returned_unchanged() {
        let mut m = manager(10);
        m.get_or_create_node("node-1", T0);
        let again = m.get_or_create_node("node-1", T0 + 100.0);
        assert_eq!(again.first_seen, T0);
        assert_eq!(m.node_count(), 1);
    }

    #[test]
    fn new_node_priority_uses_current_load() {
        let mut m = manager(10);
        m.update_load(
            LoadUpdate {
                active_connections: Some(100),
                avg_queue_depth: Some(100.0),
                ..LoadUpdate::default()
            },
            T0,
        );
        // steepness 4: 0.1 + 0.1^4 · 0.9
        assert_close(m.get_priority("n", T0), 0.1 + 0.0001 * 0.9);
    }

    #[test]
    fn update_score_sets_one_dimension() {
        let mut m = manager(10);
        let state = m.update_score("node-1", RoutingCapacity, 0.9, T0 + 1.0);
        assert_eq!(state.score.dimension(RoutingCapacity), 0.9);
        assert_eq!(state.score.dimension(TrustReceived), NEW_USER_MINIMUM_SCORE);
        assert_eq!(state.score.updated_at, T0 + 1.0);
    }

    #[test]
    fn update_scores_batch_sets_several_and_recomputes() {
        let mut m = manager(10);
        let state = m.update_scores_batch(
            "node-1",
            [
                (RoutingCapacity, 0.9),
                (UptimeReliability, 0.8),
                (BeliefQuality, 0.7),
            ],
            T0,
        );
        assert_eq!(state.score.dimension(RoutingCapacity), 0.9);
        assert_eq!(state.score.dimension(UptimeReliability), 0.8);
        assert_eq!(state.score.dimension(BeliefQuality), 0.7);
        // overall = 0.225 + 0.16 + 0.14 + 0.015 + 0.02 = 0.56; priority at load 0
        assert_close(state.priority_value, 0.1 + 0.56 * 0.9);
        assert_eq!(state.tier, PriorityTier::Normal);
    }

    #[test]
    fn grace_period_ends_strictly_after_its_length() {
        let mut m = manager(10);
        m.get_or_create_node("n", T0);
        let at_end = m.update_scores_batch("n", all(0.9), T0 + GRACE);
        assert!(at_end.is_in_grace_period);
        assert_eq!(at_end.tier, PriorityTier::Normal);
        let after = m.update_scores_batch("n", all(0.9), T0 + GRACE + 0.5);
        assert!(!after.is_in_grace_period);
        assert_eq!(after.tier, PriorityTier::High);
    }

    #[test]
    fn grace_period_does_not_return() {
        let mut m = manager(10);
        m.get_or_create_node("n", T0);
        m.update_score("n", RoutingCapacity, 0.0, T0 + GRACE + 1.0);
        let back_in_time = m.update_score("n", RoutingCapacity, 0.0, T0);
        assert!(!back_in_time.is_in_grace_period);
        assert_eq!(back_in_time.tier, PriorityTier::Low);
    }

    #[test]
    fn zero_grace_period_expires_on_the_next_later_update() {
        let policy = QoSPolicy {
            new_user_grace_period: 0.0,
            ..QoSPolicy::default()
        };
        let mut m = QoSManager::new(policy, 10, T0);
        assert!(m.get_or_create_node("n", T0).is_in_grace_period);
        assert!(
            m.update_score("n", RoutingCapacity, 0.5, T0)
                .is_in_grace_period
        );
        let state = m.update_score("n", RoutingCapacity, 0.5, T0 + 0.01);
        assert!(!state.is_in_grace_period);
        // overall = 0.125 + 0.02 + 0.02 + 0.015 + 0.02 = 0.2
        assert_eq!(state.tier, PriorityTier::Low);
    }

    #[test]
    fn lookups_create_unknown_nodes() {
        let mut m = manager(10);
        assert_close(m.get_priority("a", T0), 0.19);
        assert_eq!(m.get_tier("b", T0), PriorityTier::Normal);
        assert_eq!(m.node_count(), 2);
    }

    #[test]
    fn get_node_state_never_creates() {
        let mut m = manager(10);
        assert!(m.get_node_state("missing").is_none());
        assert_eq!(m.node_count(), 0);
        m.get_or_create_node("present", T0);
        assert_eq!(m.get_node_state("present").unwrap().node_id, "present");
    }

    #[test]
    fn scheduler_weight_follows_the_tier() {
        let mut m = manager(10);
        assert_eq!(m.scheduler_weight("new", T0), 4);
        m.get_or_create_node("old", T0);
        m.update_scores_batch("old", all(0.9), T0 + GRACE + 1.0);
        assert_eq!(m.scheduler_weight("old", T0 + GRACE + 1.0), 8);
        m.update_scores_batch("old", all(0.0), T0 + GRACE + 2.0);
        assert_eq!(m.scheduler_weight("old", T0 + GRACE + 2.0), 2);
    }

    #[test]
    fn update_load_spec_example_and_recompute() {
        let mut m = manager(10);
        m.update_scores_batch("n", all(0.9), T0);
        assert_close(m.get_priority("n", T0), 0.1 + 0.9 * 0.9);
        let factor = m.update_load(
            LoadUpdate {
                active_connections: Some(50),
                max_connections: Some(100),
                avg_queue_depth: Some(25.0),
                ..LoadUpdate::default()
            },
            T0 + 1.0,
        );
        assert_close(factor, 0.4);
        assert_eq!(m.load_metrics().active_connections, 50);
        assert_eq!(m.load_metrics().updated_at, T0 + 1.0);
        let expected = QoSPolicy::default().compute_priority(0.9, 0.4);
        assert_close(m.get_priority("n", T0 + 1.0), expected);
        assert!(expected < 0.91);
    }

    #[test]
    fn update_load_is_partial() {
        let mut m = manager(10);
        m.update_load(
            LoadUpdate {
                active_connections: Some(50),
                max_connections: Some(200),
                ..LoadUpdate::default()
            },
            T0,
        );
        let factor = m.update_load(
            LoadUpdate {
                avg_queue_depth: Some(30.0),
                ..LoadUpdate::default()
            },
            T0 + 1.0,
        );
        let load = m.load_metrics();
        assert_eq!(load.active_connections, 50);
        assert_eq!(load.max_connections, 200);
        assert_eq!(load.avg_queue_depth, 30.0);
        // 0.6 · 0.25 + 0.4 · 0.3
        assert_close(factor, 0.27);
    }

    #[test]
    fn update_load_ends_expired_grace_periods() {
        let mut m = manager(10);
        m.update_scores_batch("n", all(0.8), T0);
        assert_eq!(m.get_tier("n", T0), PriorityTier::Normal);
        m.update_load(LoadUpdate::default(), T0 + GRACE + 1.0);
        assert_eq!(m.get_tier("n", T0 + GRACE + 1.0), PriorityTier::High);
    }

    #[test]
    fn ranked_nodes_are_by_descending_priority() {
        let mut m = manager(10);
        m.update_scores_batch("low", all(0.1), T0);
        m.update_scores_batch("high", all(0.9), T0);
        m.update_scores_batch("mid", all(0.5), T0);
        m.get_or_create_node("also-low", T0);
        let ids: Vec<_> = m
            .get_ranked_nodes()
            .iter()
            .map(|s| s.node_id.as_str())
            .collect();
        assert_eq!(ids, ["high", "mid", "also-low", "low"]);
    }

    #[test]
    fn tier_summary_counts_every_tier() {
        let mut m = manager(10);
        let later = T0 + GRACE + 1.0;
        for (id, value) in [
            ("h", 0.9),
            ("n", 0.5),
            ("l", 0.15),
            ("m1", 0.0),
            ("m2", 0.0),
        ] {
            m.get_or_create_node(id, T0);
            m.update_scores_batch(id, all(value), later);
        }
        m.get_or_create_node("fresh", later);
        let summary = m.get_tier_summary();
        assert_eq!(
            summary,
            TierSummary {
                critical: 0,
                high: 1,
                normal: 2,
                low: 3,
                minimum: 0,
            }
        );
        assert_eq!(summary.get(PriorityTier::Low), 3);
        assert_eq!(summary.get(PriorityTier::Critical), 0);
    }

    #[test]
    fn minimum_tier_needs_a_threshold_above_the_score_floor() {
        // `overall` is floored at 0.1, the default low threshold, so with the default policy
        // no scored peer is ever below tier low (as in the reference).
        let later = T0 + GRACE + 1.0;
        let mut m = manager(10);
        m.get_or_create_node("n", T0);
        assert_eq!(
            m.update_scores_batch("n", all(0.0), later).tier,
            PriorityTier::Low
        );
        let policy = QoSPolicy {
            low_tier_threshold: 0.2,
            ..QoSPolicy::default()
        };
        let mut m = QoSManager::new(policy, 10, T0);
        m.get_or_create_node("n", T0);
        let state = m.update_scores_batch("n", all(0.0), later);
        assert_eq!(state.tier, PriorityTier::Minimum);
        assert_eq!(m.scheduler_weight("n", later), 1);
    }

    #[test]
    fn status_serializes_to_the_reference_dict() {
        let mut m = manager(10);
        m.get_or_create_node("node-1", T0);
        m.update_load(
            LoadUpdate {
                active_connections: Some(50),
                avg_queue_depth: Some(25.0),
                avg_latency_ms: Some(12.345),
                ..LoadUpdate::default()
            },
            T0 + 1.0,
        );
        let status = m.get_status();
        assert_eq!(status.node_count, 1);
        // 1 + 3 · 0.4²
        assert_close(status.current_steepness, 1.48);
        let value = serde_json::to_value(&status).unwrap();
        let expected = serde_json::json!({
            "policy": serde_json::to_value(QoSPolicy::default()).unwrap(),
            "load": {
                "load_factor": 0.4,
                "avg_queue_depth": 25.0,
                "avg_latency_ms": 12.35,
                "active_connections": 50,
                "max_connections": 100,
                "updated_at": T0 + 1.0,
            },
            "node_count": 1,
            "tier_summary": {"critical": 0, "high": 0, "normal": 1, "low": 0, "minimum": 0},
            "current_steepness": 1.48,
        });
        assert_eq!(value, expected);
    }

    #[test]
    fn node_state_serializes_to_the_reference_dict() {
        let mut m = manager(10);
        let state = m.update_score("n", RoutingCapacity, 0.123_456, T0);
        let value = serde_json::to_value(state).unwrap();
        let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "first_seen",
                "is_in_grace_period",
                "node_id",
                "priority_value",
                "score",
                "tier"
            ]
        );
        assert_eq!(value["tier"], "normal");
        assert_eq!(value["node_id"], "n");
        assert_eq!(value["is_in_grace_period"], true);
        // overall = 0.25 · 0.123456 + 0.075 = 0.105864; priority = 0.1 + 0.9 · overall
        assert_eq!(value["priority_value"], 0.1953);
        assert_eq!(value["score"]["overall"], 0.1059);
    }

    #[test]
    fn remove_node_reports_presence() {
        let mut m = manager(10);
        m.get_or_create_node("n", T0);
        assert!(m.remove_node("n"));
        assert_eq!(m.node_count(), 0);
        assert!(!m.remove_node("n"));
    }

    #[test]
    fn eviction_keeps_high_priority_nodes() {
        let mut m = manager(3);
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            m.get_or_create_node(id, T0 + i as f64);
        }
        m.update_scores_batch("a", all(0.9), T0 + 10.0);
        m.get_or_create_node("d", T0 + 11.0);
        assert_eq!(m.node_count(), 3);
        assert!(m.get_node_state("a").is_some());
        // b and c tie on priority; b is older and goes.
        assert!(m.get_node_state("b").is_none());
        assert!(m.get_node_state("c").is_some());
        assert!(m.get_node_state("d").is_some());
    }

    #[test]
    fn eviction_tie_goes_to_the_oldest_not_the_newest() {
        // W35: the reference would evict "c" (newest) here.
        let mut m = manager(3);
        m.get_or_create_node("c", T0 + 2.0);
        m.get_or_create_node("a", T0);
        m.get_or_create_node("b", T0 + 1.0);
        m.get_or_create_node("d", T0 + 3.0);
        let mut ids: Vec<_> = m
            .get_ranked_nodes()
            .iter()
            .map(|s| s.node_id.clone())
            .collect();
        ids.sort();
        assert_eq!(ids, ["b", "c", "d"]);
    }

    #[test]
    fn eviction_tie_on_first_seen_goes_to_the_first_inserted() {
        let mut m = manager(2);
        m.get_or_create_node("zeta", T0);
        m.get_or_create_node("alpha", T0);
        m.get_or_create_node("new", T0);
        assert!(m.get_node_state("zeta").is_none());
        assert!(m.get_node_state("alpha").is_some());
        assert!(m.get_node_state("new").is_some());
    }

    #[test]
    fn lowest_priority_goes_first_even_if_newer() {
        let mut m = manager(2);
        m.update_scores_batch("old-mid", all(0.5), T0);
        m.update_scores_batch("new-low", all(0.0), T0 + 5.0);
        m.get_or_create_node("newest", T0 + 6.0);
        assert!(m.get_node_state("new-low").is_none());
        assert!(m.get_node_state("old-mid").is_some());
    }

    #[test]
    fn node_count_never_exceeds_the_bound() {
        let mut m = manager(5);
        for i in 0..100 {
            m.get_priority(&format!("peer-{i}"), T0 + f64::from(i));
            assert!(m.node_count() <= 5);
        }
        assert_eq!(m.node_count(), 5);
        // The five most recent survive: every peer ties on priority, so the oldest go.
        for i in 95..100 {
            assert!(m.get_node_state(&format!("peer-{i}")).is_some());
        }
    }

    #[test]
    fn zero_bound_is_treated_as_one() {
        let mut m = manager(0);
        assert_eq!(m.max_tracked_nodes(), 1);
        m.get_or_create_node("a", T0);
        let b = m.get_or_create_node("b", T0 + 1.0);
        assert_eq!(b.node_id, "b");
        assert_eq!(m.node_count(), 1);
    }
}
