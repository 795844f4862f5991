//! [`ContributionScore`]: a peer's five contribution dimensions and their weighted average.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    ContributionDimension, DEFAULT_DIMENSION_WEIGHTS, NEW_USER_MINIMUM_SCORE, clamp_unit, round_to,
};

/// Number of contribution dimensions.
const DIMENSIONS: usize = ContributionDimension::ALL.len();

/// A peer's contribution, one value in `[0, 1]` per [`ContributionDimension`].
///
/// A new score starts at [`NEW_USER_MINIMUM_SCORE`] on every dimension. [`Self::overall`] is
/// the weighted average, floored at the same minimum.
///
/// The serde form is the reference's `to_dict`: `{node_id, overall, dimensions, weights,
/// created_at, updated_at}`, with `overall`, dimensions and weights rounded to 4 decimal
/// places. `overall` is ignored on input. Missing dimensions read as the minimum and an empty
/// or missing `weights` as [`DEFAULT_DIMENSION_WEIGHTS`], as in `from_dict`; out-of-range
/// dimensions are clamped. The timestamps are required on input: the reference fills them
/// from the clock, which this crate does not read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "ScoreRecord", from = "ScoreRecord")]
pub struct ContributionScore {
    /// The peer this score belongs to.
    pub node_id: String,
    /// Dimension values, indexed by [`ContributionDimension::index`]; each in `[0, 1]`.
    dimensions: [f64; DIMENSIONS],
    /// Dimension weights, indexed the same way; each finite and `>= 0`.
    weights: [f64; DIMENSIONS],
    /// When the score was created (Unix seconds).
    pub created_at: f64,
    /// When a dimension last changed (Unix seconds).
    pub updated_at: f64,
}

impl ContributionScore {
    /// A new score with every dimension at the minimum and the default weights.
    pub fn new(node_id: impl Into<String>, now: f64) -> Self {
        Self::with_weights(node_id, &DEFAULT_DIMENSION_WEIGHTS, now)
    }

    /// A new score with custom weights; a dimension left out of `weights` does not count.
    ///
    /// A negative or non-finite weight counts as 0 (the reference would let it skew or poison
    /// the average). With no positive weight at all, [`Self::overall`] is the minimum.
    pub fn with_weights(
        node_id: impl Into<String>,
        weights: &[(ContributionDimension, f64)],
        now: f64,
    ) -> Self {
        let mut score = Self {
            node_id: node_id.into(),
            dimensions: [NEW_USER_MINIMUM_SCORE; DIMENSIONS],
            weights: [0.0; DIMENSIONS],
            created_at: now,
            updated_at: now,
        };
        for &(dim, weight) in weights {
            score.weights[dim.index()] = sanitize_weight(weight);
        }
        score
    }

    /// The weighted average of the dimensions, in `[NEW_USER_MINIMUM_SCORE, 1]`.
    ///
    /// `Σ dim·w / Σ w`, floored at [`NEW_USER_MINIMUM_SCORE`], and exactly the minimum when
    /// `Σ w = 0`. With the default weights, dimensions `(1, .5, .5, 0, 0)` give 0.45.
    pub fn overall(&self) -> f64 {
        let weight_sum: f64 = self.weights.iter().sum();
        if weight_sum <= 0.0 {
            return NEW_USER_MINIMUM_SCORE;
        }
        let total: f64 = self
            .dimensions
            .iter()
            .zip(&self.weights)
            .map(|(value, weight)| value * weight)
            .sum();
        (total / weight_sum).max(NEW_USER_MINIMUM_SCORE)
    }

    /// The current value of one dimension, in `[0, 1]`.
    pub fn dimension(&self, dim: ContributionDimension) -> f64 {
        self.dimensions[dim.index()]
    }

    /// The weight of one dimension in [`Self::overall`].
    pub fn weight(&self, dim: ContributionDimension) -> f64 {
        self.weights[dim.index()]
    }

    /// Sets one dimension, clamped to `[0, 1]` (NaN counts as 0), and stamps `updated_at`.
    pub fn set_dimension(&mut self, dim: ContributionDimension, value: f64, now: f64) {
        self.dimensions[dim.index()] = clamp_unit(value);
        self.updated_at = now;
    }

    /// Every dimension with its value, in [`ContributionDimension::ALL`] order.
    pub fn dimensions(&self) -> impl Iterator<Item = (ContributionDimension, f64)> + '_ {
        ContributionDimension::ALL
            .into_iter()
            .map(|dim| (dim, self.dimension(dim)))
    }
}

/// The reference's dict form of a [`ContributionScore`].
#[derive(Serialize, Deserialize)]
struct ScoreRecord {
    /// See [`ContributionScore::node_id`].
    node_id: String,
    /// [`ContributionScore::overall`], rounded; written for readers, ignored on input.
    #[serde(default, skip_deserializing)]
    overall: f64,
    /// Dimension values by name; missing ones read as the minimum.
    #[serde(default)]
    dimensions: BTreeMap<ContributionDimension, f64>,
    /// Weights by name; an empty map reads as the defaults.
    #[serde(default)]
    weights: BTreeMap<ContributionDimension, f64>,
    /// See [`ContributionScore::created_at`].
    created_at: f64,
    /// See [`ContributionScore::updated_at`].
    updated_at: f64,
}

impl From<ContributionScore> for ScoreRecord {
    fn from(score: ContributionScore) -> Self {
        let rounded = |values: [f64; DIMENSIONS]| {
            ContributionDimension::ALL
                .into_iter()
                .map(|dim| (dim, round_to(values[dim.index()], 4)))
                .collect()
        };
        Self {
            overall: round_to(score.overall(), 4),
            dimensions: rounded(score.dimensions),
            weights: rounded(score.weights),
            node_id: score.node_id,
            created_at: score.created_at,
            updated_at: score.updated_at,
        }
    }
}

impl From<ScoreRecord> for ContributionScore {
    fn from(record: ScoreRecord) -> Self {
        let mut score = if record.weights.is_empty() {
            Self::new(record.node_id, record.created_at)
        } else {
            let weights: Vec<_> = record.weights.into_iter().collect();
            Self::with_weights(record.node_id, &weights, record.created_at)
        };
        for (dim, value) in record.dimensions {
            score.dimensions[dim.index()] = clamp_unit(value);
        }
        score.updated_at = record.updated_at;
        score
    }
}

/// A weight that counts: finite and positive, else 0.
fn sanitize_weight(weight: f64) -> f64 {
    if weight.is_finite() && weight > 0.0 {
        weight
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qos::MAX_CONTRIBUTION_SCORE;

    use ContributionDimension::*;

    const T0: f64 = 1_706_789_012.5;

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-12,
            "expected {expected}, got {actual}"
        );
    }

    fn score_with(values: [f64; 5]) -> ContributionScore {
        let mut score = ContributionScore::new("node", T0);
        for (dim, value) in ContributionDimension::ALL.into_iter().zip(values) {
            score.set_dimension(dim, value, T0);
        }
        score
    }

    #[test]
    fn new_score_starts_every_dimension_at_the_minimum() {
        let score = ContributionScore::new("node", T0);
        for (_, value) in score.dimensions() {
            assert_eq!(value, NEW_USER_MINIMUM_SCORE);
        }
        for (dim, weight) in DEFAULT_DIMENSION_WEIGHTS {
            assert_eq!(score.weight(dim), weight);
        }
        assert_eq!(score.created_at, T0);
        assert_eq!(score.updated_at, T0);
        assert_close(score.overall(), NEW_USER_MINIMUM_SCORE);
    }

    #[test]
    fn overall_spec_example_is_0_45() {
        assert_close(score_with([1.0, 0.5, 0.5, 0.0, 0.0]).overall(), 0.45);
    }

    #[test]
    fn overall_is_the_weighted_average() {
        // 0.25·0.8 + 0.2·0.6 + 0.2·0.4 + 0.15·0.2 + 0.2·1.0 = 0.63
        assert_close(score_with([0.8, 0.6, 0.4, 0.2, 1.0]).overall(), 0.63);
    }

    #[test]
    fn overall_of_a_full_contributor_is_the_maximum() {
        assert_close(score_with([1.0; 5]).overall(), MAX_CONTRIBUTION_SCORE);
    }

    #[test]
    fn overall_is_floored_at_the_minimum() {
        assert_eq!(score_with([0.0; 5]).overall(), NEW_USER_MINIMUM_SCORE);
        // 0.25·0.2 = 0.05 < 0.1
        assert_eq!(
            score_with([0.2, 0.0, 0.0, 0.0, 0.0]).overall(),
            NEW_USER_MINIMUM_SCORE
        );
    }

    #[test]
    fn overall_with_zero_weights_is_the_minimum() {
        let weights = ContributionDimension::ALL.map(|d| (d, 0.0));
        let mut score = ContributionScore::with_weights("node", &weights, T0);
        score.set_dimension(RoutingCapacity, 1.0, T0);
        assert_eq!(score.overall(), NEW_USER_MINIMUM_SCORE);
        let empty = ContributionScore::with_weights("node", &[], T0);
        assert_eq!(empty.overall(), NEW_USER_MINIMUM_SCORE);
    }

    #[test]
    fn custom_weights_select_dimensions() {
        let mut score = ContributionScore::with_weights("node", &[(RoutingCapacity, 1.0)], T0);
        score.set_dimension(RoutingCapacity, 0.9, T0);
        score.set_dimension(BeliefQuality, 0.1, T0);
        assert_close(score.overall(), 0.9);
        assert_eq!(score.weight(BeliefQuality), 0.0);
    }

    #[test]
    fn unnormalized_weights_are_normalized() {
        let weights = [(RoutingCapacity, 3.0), (TrustReceived, 1.0)];
        let mut score = ContributionScore::with_weights("node", &weights, T0);
        score.set_dimension(RoutingCapacity, 1.0, T0);
        score.set_dimension(TrustReceived, 0.2, T0);
        // (3·1 + 1·0.2) / 4 = 0.8
        assert_close(score.overall(), 0.8);
    }

    #[test]
    fn bad_weights_count_as_zero() {
        let weights = [
            (RoutingCapacity, 1.0),
            (UptimeReliability, -5.0),
            (BeliefQuality, f64::NAN),
            (ResourceSharing, f64::INFINITY),
        ];
        let mut score = ContributionScore::with_weights("node", &weights, T0);
        score.set_dimension(RoutingCapacity, 0.7, T0);
        assert_eq!(score.weight(UptimeReliability), 0.0);
        assert_eq!(score.weight(BeliefQuality), 0.0);
        assert_eq!(score.weight(ResourceSharing), 0.0);
        assert_close(score.overall(), 0.7);
    }

    #[test]
    fn set_dimension_clamps_and_stamps() {
        let mut score = ContributionScore::new("node", T0);
        score.set_dimension(RoutingCapacity, 2.0, T0 + 1.0);
        assert_eq!(score.dimension(RoutingCapacity), 1.0);
        assert_eq!(score.updated_at, T0 + 1.0);
        assert_eq!(score.created_at, T0);
        score.set_dimension(RoutingCapacity, -0.5, T0 + 2.0);
        assert_eq!(score.dimension(RoutingCapacity), 0.0);
        score.set_dimension(RoutingCapacity, 0.42, T0 + 3.0);
        assert_eq!(score.dimension(RoutingCapacity), 0.42);
        assert_eq!(score.updated_at, T0 + 3.0);
    }

    #[test]
    fn nan_dimension_earns_nothing() {
        let mut score = ContributionScore::new("node", T0);
        score.set_dimension(TrustReceived, f64::NAN, T0);
        assert_eq!(score.dimension(TrustReceived), 0.0);
        assert!(score.overall().is_finite());
    }

    #[test]
    fn serializes_to_the_reference_dict() {
        let mut score = ContributionScore::new("node-abc", T0);
        score.set_dimension(RoutingCapacity, 0.8, T0 + 5.0);
        score.set_dimension(BeliefQuality, 1.0 / 3.0, T0 + 5.0);
        let value = serde_json::to_value(&score).unwrap();
        // 0.25·0.8 + 0.2·0.1 + 0.2·(1/3) + 0.15·0.1 + 0.2·0.1 = 0.321666…
        let expected = serde_json::json!({
            "node_id": "node-abc",
            "overall": 0.3217,
            "dimensions": {
                "routing_capacity": 0.8,
                "uptime_reliability": 0.1,
                "belief_quality": 0.3333,
                "resource_sharing": 0.1,
                "trust_received": 0.1,
            },
            "weights": {
                "routing_capacity": 0.25,
                "uptime_reliability": 0.2,
                "belief_quality": 0.2,
                "resource_sharing": 0.15,
                "trust_received": 0.2,
            },
            "created_at": T0,
            "updated_at": T0 + 5.0,
        });
        assert_eq!(value, expected);
    }

    #[test]
    fn round_trips_through_json() {
        let mut score = ContributionScore::with_weights(
            "node-abc",
            &[(RoutingCapacity, 0.5), (UptimeReliability, 0.5)],
            T0,
        );
        score.set_dimension(RoutingCapacity, 0.8, T0 + 1.0);
        score.set_dimension(ResourceSharing, 0.6, T0 + 2.0);
        let json = serde_json::to_string(&score).unwrap();
        let back: ContributionScore = serde_json::from_str(&json).unwrap();
        assert_eq!(back, score);
        assert_close(back.overall(), 0.45);
    }

    #[test]
    fn from_dict_fills_missing_dimensions_and_default_weights() {
        let back: ContributionScore = serde_json::from_value(serde_json::json!({
            "node_id": "n",
            "dimensions": {"trust_received": 0.9},
            "weights": {},
            "created_at": T0,
            "updated_at": T0 + 1.0,
        }))
        .unwrap();
        assert_eq!(back.dimension(TrustReceived), 0.9);
        assert_eq!(back.dimension(RoutingCapacity), NEW_USER_MINIMUM_SCORE);
        for (dim, weight) in DEFAULT_DIMENSION_WEIGHTS {
            assert_eq!(back.weight(dim), weight);
        }
        assert_eq!(back.created_at, T0);
        assert_eq!(back.updated_at, T0 + 1.0);
    }

    #[test]
    fn from_dict_clamps_and_ignores_overall() {
        let back: ContributionScore = serde_json::from_value(serde_json::json!({
            "node_id": "n",
            "overall": 0.99,
            "dimensions": {"routing_capacity": 1.5, "uptime_reliability": -1.0},
            "created_at": T0,
            "updated_at": T0,
        }))
        .unwrap();
        assert_eq!(back.dimension(RoutingCapacity), 1.0);
        assert_eq!(back.dimension(UptimeReliability), 0.0);
        // 0.25 + 0 + 0.2·0.1 + 0.15·0.1 + 0.2·0.1 = 0.305
        assert_close(back.overall(), 0.305);
    }

    #[test]
    fn from_dict_rejects_unknown_dimensions_and_missing_fields() {
        let unknown = serde_json::json!({
            "node_id": "n", "dimensions": {"bandwidth": 1.0},
            "created_at": T0, "updated_at": T0,
        });
        assert!(serde_json::from_value::<ContributionScore>(unknown).is_err());
        let no_time = serde_json::json!({"node_id": "n"});
        assert!(serde_json::from_value::<ContributionScore>(no_time).is_err());
        let no_id = serde_json::json!({"created_at": T0, "updated_at": T0});
        assert!(serde_json::from_value::<ContributionScore>(no_id).is_err());
    }
}
