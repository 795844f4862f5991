//! Contribution-based quality of service: who gets served first when a relay is busy.
//!
//! Every peer a relay serves has a [`ContributionScore`]: five dimensions in `[0, 1]` (routing
//! capacity, uptime, belief quality, resource sharing, trust received) folded into one weighted
//! `overall` value. A [`QoSPolicy`] turns that value and the relay's current load into a
//! *priority* in `[min_service_floor, 1]` and a [`PriorityTier`]. At low load the curve is
//! linear and everyone is treated about equally; as load rises the curve steepens and heavy
//! contributors pull ahead. A [`QoSManager`] keeps that state for a bounded set of peers, and
//! [`QoSPolicy::scheduler_weight`] turns a tier into integer quanta for a weighted fair queue.
//!
//! Invariants:
//!
//! * Every stored dimension value is in `[0, 1]`; NaN counts as 0, so garbage earns no credit.
//! * `overall` is never below [`NEW_USER_MINIMUM_SCORE`] and priority never below the policy's
//!   `min_service_floor`: no peer is starved, and every tier has a non-zero scheduler weight.
//! * The manager never tracks more than `max_tracked_nodes` peers.
//!
//! This crate reads no clock: where the Python reference calls `time.time()`, the functions
//! here take `now: f64` (Unix seconds, wall clock) as an argument.
//!
//! Implements seed-spec §2.5 and §5.18. Unlike the reference (weakness W35), the manager
//! evicts the *oldest* of the lowest-priority peers when full.
//!
//! [`ContributionScore`]: crate::qos::ContributionScore
//! [`QoSPolicy`]: crate::qos::QoSPolicy
//! [`PriorityTier`]: crate::qos::PriorityTier
//! [`QoSManager`]: crate::qos::QoSManager
//! [`QoSPolicy::scheduler_weight`]: crate::qos::QoSPolicy::scheduler_weight
//! [`NEW_USER_MINIMUM_SCORE`]: crate::qos::NEW_USER_MINIMUM_SCORE

mod load;
mod manager;
mod policy;
mod score;

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

pub use self::load::{LoadMetrics, LoadUpdate};
pub use self::manager::{NodeQoSState, QoSManager, QoSStatus, TierSummary};
pub use self::policy::QoSPolicy;
pub use self::score::ContributionScore;

/// One dimension of a peer's contribution to the network.
///
/// Serialized as the reference's string names (`"routing_capacity"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContributionDimension {
    /// Cells relayed for others (`routing_capacity`).
    RoutingCapacity = 0,
    /// Time reachable and answering (`uptime_reliability`).
    UptimeReliability = 1,
    /// Quality of the beliefs the peer shares (`belief_quality`).
    BeliefQuality = 2,
    /// Storage and bandwidth offered to others (`resource_sharing`).
    ResourceSharing = 3,
    /// Trust other peers express in this one (`trust_received`).
    TrustReceived = 4,
}

impl ContributionDimension {
    /// Every dimension, in the reference's declaration order.
    pub const ALL: [Self; 5] = [
        Self::RoutingCapacity,
        Self::UptimeReliability,
        Self::BeliefQuality,
        Self::ResourceSharing,
        Self::TrustReceived,
    ];

    /// The reference's string name, which is also the serde form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RoutingCapacity => "routing_capacity",
            Self::UptimeReliability => "uptime_reliability",
            Self::BeliefQuality => "belief_quality",
            Self::ResourceSharing => "resource_sharing",
            Self::TrustReceived => "trust_received",
        }
    }

    /// Position in [`Self::ALL`], used to index per-dimension arrays.
    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ContributionDimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default weight of each dimension in [`ContributionScore::overall`]; they sum to 1.
pub const DEFAULT_DIMENSION_WEIGHTS: [(ContributionDimension, f64); 5] = [
    (ContributionDimension::RoutingCapacity, 0.25),
    (ContributionDimension::UptimeReliability, 0.20),
    (ContributionDimension::BeliefQuality, 0.20),
    (ContributionDimension::ResourceSharing, 0.15),
    (ContributionDimension::TrustReceived, 0.20),
];

/// The value a new peer starts with on every dimension, and the floor of `overall`.
///
/// New users start here rather than at zero so that they always get some service.
pub const NEW_USER_MINIMUM_SCORE: f64 = 0.1;

/// The highest value a dimension (and so `overall`) can take.
pub const MAX_CONTRIBUTION_SCORE: f64 = 1.0;

/// How a relay treats a peer's traffic, from most to least favoured.
///
/// Serialized as the reference's lowercase names (`"critical"`, ..., `"minimum"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PriorityTier {
    /// Essential protocol traffic; never assigned from a score.
    Critical,
    /// Heavy contributors (score at or above `high_tier_threshold`).
    High,
    /// Average contributors, and every peer still in its grace period.
    Normal,
    /// Light contributors (score at or above `low_tier_threshold`).
    Low,
    /// The service floor: served last, but never blocked.
    Minimum,
}

impl PriorityTier {
    /// Every tier, from most to least favoured.
    pub const ALL: [Self; 5] = [
        Self::Critical,
        Self::High,
        Self::Normal,
        Self::Low,
        Self::Minimum,
    ];

    /// The reference's relative queue weight of this tier (see [`TIER_WEIGHTS`]).
    pub const fn weight(self) -> f64 {
        match self {
            Self::Critical => 10.0,
            Self::High => 4.0,
            Self::Normal => 2.0,
            Self::Low => 1.0,
            Self::Minimum => 0.5,
        }
    }

    /// The reference's string name, which is also the serde form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
            Self::Minimum => "minimum",
        }
    }
}

impl fmt::Display for PriorityTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Relative queue weight of each tier, as in the reference: 10, 4, 2, 1 and 0.5.
///
/// The same numbers as [`PriorityTier::weight`]; a scheduler wants the integer form
/// [`QoSPolicy::scheduler_weight`].
pub const TIER_WEIGHTS: [(PriorityTier, f64); 5] = [
    (PriorityTier::Critical, PriorityTier::Critical.weight()),
    (PriorityTier::High, PriorityTier::High.weight()),
    (PriorityTier::Normal, PriorityTier::Normal.weight()),
    (PriorityTier::Low, PriorityTier::Low.weight()),
    (PriorityTier::Minimum, PriorityTier::Minimum.weight()),
];

/// Clamps `x` to `[0, 1]`, counting NaN as 0.
///
/// The reference's `max(0, min(1, x))` turns NaN into 1, which would hand a full score (or a
/// full load) to whoever feeds in garbage.
fn clamp_unit(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

/// Rounds to `places` decimal places, as the reference's `to_dict` does with `round`.
///
/// Ties round away from zero (Python rounds half to even); the two differ only when the binary
/// value is exactly halfway, which the reported figures never rely on.
fn round_to(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// serde helper: writes a float rounded to 4 decimal places (scores and priorities).
fn serialize_round4<S: Serializer>(x: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(round_to(*x, 4))
}

/// serde helper: writes a float rounded to 2 decimal places (load averages).
fn serialize_round2<S: Serializer>(x: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(round_to(*x, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_names_match_the_reference() {
        let names: Vec<String> = ContributionDimension::ALL
            .iter()
            .map(|d| serde_json::to_string(d).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "\"routing_capacity\"",
                "\"uptime_reliability\"",
                "\"belief_quality\"",
                "\"resource_sharing\"",
                "\"trust_received\"",
            ]
        );
        for dim in ContributionDimension::ALL {
            assert_eq!(format!("\"{dim}\""), serde_json::to_string(&dim).unwrap());
            let back: ContributionDimension =
                serde_json::from_str(&format!("\"{}\"", dim.as_str())).unwrap();
            assert_eq!(back, dim);
        }
    }

    #[test]
    fn unknown_dimension_name_is_rejected() {
        assert!(serde_json::from_str::<ContributionDimension>("\"bandwidth\"").is_err());
    }

    #[test]
    fn dimension_index_matches_all_order() {
        for (i, dim) in ContributionDimension::ALL.iter().enumerate() {
            assert_eq!(dim.index(), i);
        }
    }

    #[test]
    fn default_weights_cover_every_dimension_and_sum_to_one() {
        let dims: Vec<_> = DEFAULT_DIMENSION_WEIGHTS.iter().map(|(d, _)| *d).collect();
        assert_eq!(dims, ContributionDimension::ALL);
        let sum: f64 = DEFAULT_DIMENSION_WEIGHTS.iter().map(|(_, w)| w).sum();
        assert!((sum - 1.0).abs() < 1e-12);
        assert_eq!(
            DEFAULT_DIMENSION_WEIGHTS.map(|(_, w)| w),
            [0.25, 0.20, 0.20, 0.15, 0.20]
        );
    }

    #[test]
    fn score_constants() {
        assert_eq!(NEW_USER_MINIMUM_SCORE, 0.1);
        assert_eq!(MAX_CONTRIBUTION_SCORE, 1.0);
    }

    #[test]
    fn tier_names_match_the_reference() {
        let names: Vec<String> = PriorityTier::ALL
            .iter()
            .map(|t| serde_json::to_string(t).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "\"critical\"",
                "\"high\"",
                "\"normal\"",
                "\"low\"",
                "\"minimum\""
            ]
        );
        for tier in PriorityTier::ALL {
            assert_eq!(tier.to_string(), tier.as_str());
            let back: PriorityTier = serde_json::from_str(&format!("\"{tier}\"")).unwrap();
            assert_eq!(back, tier);
        }
    }

    #[test]
    fn tier_weights_are_the_reference_values() {
        assert_eq!(
            TIER_WEIGHTS,
            [
                (PriorityTier::Critical, 10.0),
                (PriorityTier::High, 4.0),
                (PriorityTier::Normal, 2.0),
                (PriorityTier::Low, 1.0),
                (PriorityTier::Minimum, 0.5),
            ]
        );
        for (tier, weight) in TIER_WEIGHTS {
            assert_eq!(tier.weight(), weight);
        }
    }

    #[test]
    fn tier_weights_strictly_decrease_and_stay_positive() {
        for pair in TIER_WEIGHTS.windows(2) {
            assert!(pair[0].1 > pair[1].1, "{pair:?}");
        }
        assert!(PriorityTier::Minimum.weight() > 0.0);
    }

    #[test]
    fn clamp_unit_bounds_and_nan() {
        assert_eq!(clamp_unit(-0.5), 0.0);
        assert_eq!(clamp_unit(0.25), 0.25);
        assert_eq!(clamp_unit(1.5), 1.0);
        assert_eq!(clamp_unit(f64::NAN), 0.0);
        assert_eq!(clamp_unit(f64::INFINITY), 1.0);
        assert_eq!(clamp_unit(f64::NEG_INFINITY), 0.0);
    }

    #[test]
    fn round_to_places() {
        assert_eq!(round_to(0.123_456, 4), 0.1235);
        assert_eq!(round_to(0.123_44, 4), 0.1234);
        assert_eq!(round_to(12.345_6, 2), 12.35);
        assert_eq!(round_to(1.75, 4), 1.75);
    }
}
