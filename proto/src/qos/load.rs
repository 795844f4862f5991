//! [`LoadMetrics`]: how busy a relay is, folded into one load factor in `[0, 1]`.

use serde::Serialize;

use super::{clamp_unit, serialize_round2, serialize_round4};

/// Share of the load factor that comes from connection saturation.
const CONNECTION_LOAD_SHARE: f64 = 0.6;
/// Share of the load factor that comes from queue depth.
const QUEUE_LOAD_SHARE: f64 = 0.4;
/// Average queue depth at which the queue counts as saturated.
const SATURATED_QUEUE_DEPTH: f64 = 100.0;

/// The relay's current load, as its adapter measures it.
///
/// The serde form is the reference's `to_dict`: `load_factor` rounded to 4 decimal places and
/// the two averages to 2.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoadMetrics {
    /// The composite load in `[0, 1]`, as last computed by [`Self::compute_load_factor`].
    #[serde(serialize_with = "serialize_round4")]
    pub load_factor: f64,
    /// Average queue depth (messages) across connections; 100 counts as saturated.
    #[serde(serialize_with = "serialize_round2")]
    pub avg_queue_depth: f64,
    /// Average round-trip latency in milliseconds (reported, not used in the load factor).
    #[serde(serialize_with = "serialize_round2")]
    pub avg_latency_ms: f64,
    /// Open peer connections.
    pub active_connections: u32,
    /// Connection capacity; 0 means connections do not count toward the load.
    pub max_connections: u32,
    /// When the load factor was last computed (Unix seconds).
    pub updated_at: f64,
}

impl LoadMetrics {
    /// An idle relay with the reference defaults (capacity 100, everything else 0), as of `now`.
    pub fn new(now: f64) -> Self {
        Self {
            load_factor: 0.0,
            avg_queue_depth: 0.0,
            avg_latency_ms: 0.0,
            active_connections: 0,
            max_connections: 100,
            updated_at: now,
        }
    }

    /// Recomputes, stores and returns the load factor, stamping `updated_at` with `now`.
    ///
    /// `0.6 · min(1, active/max) + 0.4 · min(1, avg_queue_depth/100)`, clamped to `[0, 1]`;
    /// the connection term is 0 when `max_connections` is 0, and a NaN queue depth counts as 0.
    /// For example 50 of 100 connections and a queue depth of 25 give 0.4.
    pub fn compute_load_factor(&mut self, now: f64) -> f64 {
        let connection_load = if self.max_connections == 0 {
            0.0
        } else {
            clamp_unit(f64::from(self.active_connections) / f64::from(self.max_connections))
        };
        let queue_load = clamp_unit(self.avg_queue_depth / SATURATED_QUEUE_DEPTH);
        self.load_factor =
            clamp_unit(CONNECTION_LOAD_SHARE * connection_load + QUEUE_LOAD_SHARE * queue_load);
        self.updated_at = now;
        self.load_factor
    }

    /// Overwrites the fields that `update` sets and leaves the others alone.
    pub(super) fn apply(&mut self, update: LoadUpdate) {
        if let Some(active) = update.active_connections {
            self.active_connections = active;
        }
        if let Some(max) = update.max_connections {
            self.max_connections = max;
        }
        if let Some(depth) = update.avg_queue_depth {
            self.avg_queue_depth = depth;
        }
        if let Some(latency) = update.avg_latency_ms {
            self.avg_latency_ms = latency;
        }
    }
}

/// A partial update of [`LoadMetrics`] for [`QoSManager::update_load`](super::QoSManager::update_load).
///
/// `None` leaves a field as it was, like the reference's omitted keyword arguments.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadUpdate {
    /// New [`LoadMetrics::active_connections`].
    pub active_connections: Option<u32>,
    /// New [`LoadMetrics::max_connections`].
    pub max_connections: Option<u32>,
    /// New [`LoadMetrics::avg_queue_depth`].
    pub avg_queue_depth: Option<f64>,
    /// New [`LoadMetrics::avg_latency_ms`].
    pub avg_latency_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_706_789_012.0;

    fn load(active: u32, max: u32, depth: f64) -> f64 {
        let mut metrics = LoadMetrics {
            active_connections: active,
            max_connections: max,
            avg_queue_depth: depth,
            ..LoadMetrics::new(T0)
        };
        metrics.compute_load_factor(T0 + 1.0)
    }

    #[test]
    fn defaults_are_the_reference_values() {
        let m = LoadMetrics::new(T0);
        assert_eq!(m.load_factor, 0.0);
        assert_eq!(m.avg_queue_depth, 0.0);
        assert_eq!(m.avg_latency_ms, 0.0);
        assert_eq!(m.active_connections, 0);
        assert_eq!(m.max_connections, 100);
        assert_eq!(m.updated_at, T0);
    }

    #[test]
    fn spec_example_is_0_4() {
        assert!((load(50, 100, 25.0) - 0.4).abs() < 1e-12);
    }

    #[test]
    fn idle_and_saturated() {
        assert_eq!(load(0, 100, 0.0), 0.0);
        assert_eq!(load(100, 100, 100.0), 1.0);
        assert_eq!(load(200, 100, 500.0), 1.0);
        assert_eq!(load(100, 100, 0.0), 0.6);
        assert_eq!(load(0, 100, 100.0), 0.4);
    }

    #[test]
    fn zero_capacity_counts_only_the_queue() {
        assert_eq!(load(10, 0, 0.0), 0.0);
        assert!((load(10, 0, 50.0) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn bad_queue_depth_is_harmless() {
        assert_eq!(load(0, 100, -50.0), 0.0);
        assert_eq!(load(0, 100, f64::NAN), 0.0);
        assert_eq!(load(0, 100, f64::INFINITY), 0.4);
    }

    #[test]
    fn compute_stores_and_stamps() {
        let mut m = LoadMetrics {
            active_connections: 50,
            avg_queue_depth: 25.0,
            ..LoadMetrics::new(T0)
        };
        let factor = m.compute_load_factor(T0 + 9.0);
        assert_eq!(m.load_factor, factor);
        assert_eq!(m.updated_at, T0 + 9.0);
    }

    #[test]
    fn apply_changes_only_the_given_fields() {
        let mut m = LoadMetrics::new(T0);
        m.apply(LoadUpdate {
            active_connections: Some(50),
            max_connections: Some(200),
            ..LoadUpdate::default()
        });
        m.apply(LoadUpdate {
            avg_queue_depth: Some(30.0),
            ..LoadUpdate::default()
        });
        assert_eq!(m.active_connections, 50);
        assert_eq!(m.max_connections, 200);
        assert_eq!(m.avg_queue_depth, 30.0);
        assert_eq!(m.avg_latency_ms, 0.0);
    }

    #[test]
    fn serializes_to_the_reference_dict() {
        let mut m = LoadMetrics {
            active_connections: 33,
            max_connections: 100,
            avg_queue_depth: 12.345_6,
            avg_latency_ms: 87.654_3,
            ..LoadMetrics::new(T0)
        };
        m.compute_load_factor(T0);
        // 0.6 · 0.33 + 0.4 · 0.123456 = 0.2473824
        let expected = serde_json::json!({
            "load_factor": 0.2474,
            "avg_queue_depth": 12.35,
            "avg_latency_ms": 87.65,
            "active_connections": 33,
            "max_connections": 100,
            "updated_at": T0,
        });
        assert_eq!(serde_json::to_value(m).unwrap(), expected);
    }
}
