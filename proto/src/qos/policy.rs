//! [`QoSPolicy`]: the load-adaptive curve from contribution score to priority and tier.

use serde::{Deserialize, Serialize};

use super::{PriorityTier, clamp_unit};

/// How contribution scores become priorities and tiers, depending on load.
///
/// ```text
/// steepness(L)   = min_steepness + (max_steepness - min_steepness) · clamp(L, 0, 1)²
/// priority(s, L) = min_service_floor + clamp(s, 0, 1)^steepness(L) · (1 - min_service_floor)
/// ```
///
/// At zero load the curve is linear (everyone roughly equal); at full load it is steep and
/// heavy contributors are strongly preferred. With the defaults, steepness is 1 at load 0,
/// 1.75 at load 0.5 (the reference's docstring claims 2.0; its code, and ours, give 1.75) and 4
/// at load 1.
///
/// The serde form is the reference's `to_dict`; on input, missing fields take their defaults
/// and unknown fields are ignored, as in `from_dict`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QoSPolicy {
    /// The priority of a zero score: every peer gets at least this share. In `[0, 1]`.
    pub min_service_floor: f64,
    /// Curve exponent at full load.
    pub max_steepness: f64,
    /// Curve exponent at zero load; 1 is linear.
    pub min_steepness: f64,
    /// Seconds after first sight during which a peer is tier [`PriorityTier::Normal`]
    /// whatever its score.
    pub new_user_grace_period: f64,
    /// Lowest score of tier [`PriorityTier::High`] (inclusive).
    pub high_tier_threshold: f64,
    /// Lowest score of tier [`PriorityTier::Normal`] (inclusive).
    pub normal_tier_threshold: f64,
    /// Lowest score of tier [`PriorityTier::Low`] (inclusive); below it is
    /// [`PriorityTier::Minimum`].
    pub low_tier_threshold: f64,
}

impl QoSPolicy {
    /// The reference defaults: floor 0.1, steepness 1 to 4, one hour of grace, and tier
    /// thresholds 0.7, 0.3 and 0.1.
    pub const DEFAULT: Self = Self {
        min_service_floor: 0.1,
        max_steepness: 4.0,
        min_steepness: 1.0,
        new_user_grace_period: 3600.0,
        high_tier_threshold: 0.7,
        normal_tier_threshold: 0.3,
        low_tier_threshold: 0.1,
    };

    /// The curve exponent at `load_factor` (clamped to `[0, 1]`, NaN counting as 0).
    pub fn compute_steepness(&self, load_factor: f64) -> f64 {
        let load = clamp_unit(load_factor);
        self.min_steepness + (self.max_steepness - self.min_steepness) * load * load
    }

    /// A peer's priority in `[min_service_floor, 1]` from its score and the current load.
    ///
    /// The score is clamped to `[0, 1]` (NaN counting as 0). A perfect score has priority 1 at
    /// any load and a zero score has the floor; with the defaults, `priority(0.5, 0) = 0.55`.
    pub fn compute_priority(&self, score: f64, load_factor: f64) -> f64 {
        let base = self.min_service_floor;
        base + clamp_unit(score).powf(self.compute_steepness(load_factor)) * (1.0 - base)
    }

    /// The tier for `score`; a peer in its grace period (`is_new_user`) is always
    /// [`PriorityTier::Normal`].
    ///
    /// Lower bounds are inclusive: with the defaults, 0.7 is high, 0.3 normal, 0.1 low and
    /// anything below 0.1 (or NaN) minimum. [`PriorityTier::Critical`] is never assigned from a
    /// score; it is for the relay's own protocol traffic.
    pub fn assign_tier(&self, score: f64, is_new_user: bool) -> PriorityTier {
        if is_new_user {
            PriorityTier::Normal
        } else if score >= self.high_tier_threshold {
            PriorityTier::High
        } else if score >= self.normal_tier_threshold {
            PriorityTier::Normal
        } else if score >= self.low_tier_threshold {
            PriorityTier::Low
        } else {
            PriorityTier::Minimum
        }
    }

    /// The number of quanta a weighted fair queue (deficit round robin) gives `tier` per round.
    ///
    /// The reference defines [`TIER_WEIGHTS`](super::TIER_WEIGHTS) (10, 4, 2, 1, 0.5) but never
    /// feeds them to any queue (weakness W35). A relay's scheduler counts whole cells, so it
    /// needs integers: these are the reference weights times two, 20, 8, 4, 2 and 1. Doubling
    /// keeps the ratios exact (critical gets 20 times the minimum tier's share, high twice
    /// normal) and is the smallest factor that keeps [`PriorityTier::Minimum`] at one quantum
    /// rather than rounding it to zero. That is the no-starvation promise of the service floor:
    /// every non-empty queue sends at least one cell per round, however loaded the relay is.
    ///
    /// A relay sizes a quantum (for example one cell, or 512 bytes) and, each round, lets a
    /// tier's queue send up to `scheduler_weight(tier)` quanta. Load changes priorities and
    /// tiers, not these weights, so they can be cached per queue.
    pub fn scheduler_weight(&self, tier: PriorityTier) -> u32 {
        match tier {
            PriorityTier::Critical => 20,
            PriorityTier::High => 8,
            PriorityTier::Normal => 4,
            PriorityTier::Low => 2,
            PriorityTier::Minimum => 1,
        }
    }
}

impl Default for QoSPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qos::TIER_WEIGHTS;

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-12,
            "expected {expected}, got {actual}"
        );
    }

    #[test]
    fn defaults_are_the_reference_values() {
        let p = QoSPolicy::default();
        assert_eq!(p.min_service_floor, 0.1);
        assert_eq!(p.max_steepness, 4.0);
        assert_eq!(p.min_steepness, 1.0);
        assert_eq!(p.new_user_grace_period, 3600.0);
        assert_eq!(p.high_tier_threshold, 0.7);
        assert_eq!(p.normal_tier_threshold, 0.3);
        assert_eq!(p.low_tier_threshold, 0.1);
    }

    #[test]
    fn steepness_spec_values() {
        let p = QoSPolicy::default();
        assert_eq!(p.compute_steepness(0.0), 1.0);
        assert_eq!(p.compute_steepness(0.5), 1.75);
        assert_eq!(p.compute_steepness(1.0), 4.0);
        assert_eq!(p.compute_steepness(0.25), 1.1875);
    }

    #[test]
    fn steepness_clamps_load() {
        let p = QoSPolicy::default();
        assert_eq!(p.compute_steepness(-0.5), 1.0);
        assert_eq!(p.compute_steepness(1.5), 4.0);
        assert_eq!(p.compute_steepness(f64::NAN), 1.0);
    }

    #[test]
    fn steepness_increases_with_load() {
        let p = QoSPolicy::default();
        let values: Vec<f64> = [0.0, 0.25, 0.5, 0.75, 1.0]
            .iter()
            .map(|&l| p.compute_steepness(l))
            .collect();
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
    }

    #[test]
    fn priority_spec_values() {
        let p = QoSPolicy::default();
        assert_close(p.compute_priority(0.5, 0.0), 0.55);
        for load in [0.0, 0.3, 0.5, 1.0] {
            assert_close(p.compute_priority(1.0, load), 1.0);
            assert_close(p.compute_priority(0.0, load), 0.1);
        }
    }

    #[test]
    fn priority_under_load() {
        let p = QoSPolicy::default();
        // 0.1 + 0.5^1.75 · 0.9
        assert_close(p.compute_priority(0.5, 0.5), 0.1 + 0.5f64.powf(1.75) * 0.9);
        assert_close(p.compute_priority(0.5, 1.0), 0.1 + 0.0625 * 0.9);
    }

    #[test]
    fn priority_clamps_score() {
        let p = QoSPolicy::default();
        assert_eq!(p.compute_priority(-0.5, 0.0), p.compute_priority(0.0, 0.0));
        assert_eq!(p.compute_priority(1.5, 0.0), p.compute_priority(1.0, 0.0));
        assert_eq!(p.compute_priority(f64::NAN, 0.7), 0.1);
    }

    #[test]
    fn higher_load_widens_the_gap() {
        let p = QoSPolicy::default();
        let ratio = |load| p.compute_priority(0.8, load) / p.compute_priority(0.2, load);
        assert!(ratio(1.0) > ratio(0.5));
        assert!(ratio(0.5) > ratio(0.0));
    }

    #[test]
    fn tiers_from_scores() {
        let p = QoSPolicy::default();
        assert_eq!(p.assign_tier(0.8, false), PriorityTier::High);
        assert_eq!(p.assign_tier(0.5, false), PriorityTier::Normal);
        assert_eq!(p.assign_tier(0.15, false), PriorityTier::Low);
        assert_eq!(p.assign_tier(0.05, false), PriorityTier::Minimum);
        assert_eq!(p.assign_tier(f64::NAN, false), PriorityTier::Minimum);
    }

    #[test]
    fn tier_boundaries_are_inclusive() {
        let p = QoSPolicy::default();
        assert_eq!(p.assign_tier(0.7, false), PriorityTier::High);
        assert_eq!(p.assign_tier(0.3, false), PriorityTier::Normal);
        assert_eq!(p.assign_tier(0.1, false), PriorityTier::Low);
        assert_eq!(p.assign_tier(0.699_999, false), PriorityTier::Normal);
        assert_eq!(p.assign_tier(0.299_999, false), PriorityTier::Low);
        assert_eq!(p.assign_tier(0.099_999, false), PriorityTier::Minimum);
    }

    #[test]
    fn grace_period_overrides_score() {
        let p = QoSPolicy::default();
        for score in [0.0, 0.05, 0.5, 0.95] {
            assert_eq!(p.assign_tier(score, true), PriorityTier::Normal);
        }
    }

    #[test]
    fn scheduler_weights_are_twice_the_tier_weights() {
        let p = QoSPolicy::default();
        let weights = PriorityTier::ALL.map(|t| p.scheduler_weight(t));
        assert_eq!(weights, [20, 8, 4, 2, 1]);
        for (tier, weight) in TIER_WEIGHTS {
            assert_eq!(f64::from(p.scheduler_weight(tier)), weight * 2.0);
        }
        assert!(weights.iter().all(|&w| w >= 1));
    }

    #[test]
    fn serializes_to_the_reference_dict() {
        let value = serde_json::to_value(QoSPolicy::default()).unwrap();
        let expected = serde_json::json!({
            "min_service_floor": 0.1,
            "max_steepness": 4.0,
            "min_steepness": 1.0,
            "new_user_grace_period": 3600.0,
            "high_tier_threshold": 0.7,
            "normal_tier_threshold": 0.3,
            "low_tier_threshold": 0.1,
        });
        assert_eq!(value, expected);
    }

    #[test]
    fn from_dict_uses_defaults_and_ignores_unknown_keys() {
        let p: QoSPolicy =
            serde_json::from_str(r#"{"min_service_floor": 0.2, "unknown_field": 42}"#).unwrap();
        assert_eq!(
            p,
            QoSPolicy {
                min_service_floor: 0.2,
                ..QoSPolicy::default()
            }
        );
        let custom = QoSPolicy {
            min_service_floor: 0.2,
            max_steepness: 5.0,
            ..QoSPolicy::default()
        };
        let back: QoSPolicy =
            serde_json::from_str(&serde_json::to_string(&custom).unwrap()).unwrap();
        assert_eq!(back, custom);
    }

    #[test]
    fn custom_floor_bounds_priority() {
        let p = QoSPolicy {
            min_service_floor: 0.25,
            ..QoSPolicy::default()
        };
        assert_close(p.compute_priority(0.0, 1.0), 0.25);
        // 0.25 + 0.5 · 0.75
        assert_close(p.compute_priority(0.5, 0.0), 0.625);
    }
}
