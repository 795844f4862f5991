//! What the seed stores about a router, and the entry it serves from it.
//!
//! The signed descriptor (`ournet_proto::descriptor`) is kept as the JSON object the router
//! sent and served unchanged (W1). Everything the seed itself observes (liveness, load from
//! signed heartbeats, health-monitor state, reputation) lives beside it and is served in the
//! unsigned `health` object.

use ournet_proto::keys::{EncryptionPublicKey, IdentityPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Heartbeat-miss states of spec §5.5, plus `Removed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Heartbeats on time.
    Healthy,
    /// One interval missed; still served.
    Warning,
    /// Two missed; hidden.
    Degraded,
    /// Three to five missed; hidden.
    Unhealthy,
    /// Six or more missed; deleted.
    Removed,
}

impl HealthStatus {
    /// The lowercase name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Warning => "warning",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
            Self::Removed => "removed",
        }
    }
}

/// Liveness and load as last reported in a signed heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Last registration, heartbeat or gossip refresh (wall-clock seconds).
    pub last_seen: f64,
    /// Reported uptime percentage.
    pub uptime_pct: f64,
    /// Reported average latency.
    pub avg_latency_ms: f64,
    /// Reported load percentage.
    pub load_pct: f64,
    /// Reported active connections.
    pub active_connections: f64,
    /// Reported connection capacity.
    pub max_connections: f64,
    /// Reported queue depth.
    pub queue_depth: f64,
    /// Reported relay rate.
    pub messages_per_sec: f64,
    /// Status string from load and uptime (`healthy`, `warning`, `degraded`).
    pub status: String,
}

impl Health {
    /// The health of a router first seen at `last_seen`, before any heartbeat reports load:
    /// full uptime, no load, `healthy`.
    pub fn new_router(last_seen: f64) -> Self {
        Self {
            last_seen,
            uptime_pct: 100.0,
            avg_latency_ms: 0.0,
            load_pct: 0.0,
            active_connections: 0.0,
            max_connections: 0.0,
            queue_depth: 0.0,
            messages_per_sec: 0.0,
            status: "healthy".into(),
        }
    }
}

/// Health-monitor state (§5.5); created at the first heartbeat or gossip merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monitor {
    /// Current state.
    pub status: HealthStatus,
    /// Heartbeat intervals missed.
    pub missed: u32,
    /// Last heartbeat (wall-clock seconds).
    pub last_heartbeat: f64,
    /// Start of the recovery ramp, if one is running.
    pub recovery_time: Option<f64>,
    /// Probe warnings: `probe_timeout`, `probe_failed`, `high_latency` (§5.5). Probing never
    /// changes the status; a heartbeat clears the first two.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Last active probe (wall-clock seconds).
    #[serde(default)]
    pub last_probe: Option<f64>,
    /// Latency of the last successful probe.
    #[serde(default)]
    pub probe_latency_ms: Option<f64>,
}

/// Reputation (§5.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reputation {
    /// Score in `0..=1`.
    pub score: f64,
    /// Heartbeats counted.
    pub heartbeat_count: u64,
    /// Missed heartbeats counted.
    pub missed: u64,
    /// Penalty reasons, each at most once.
    pub flags: Vec<String>,
    /// When the seed first accepted the router (for the heartbeat bonus ramp).
    pub since: f64,
}

/// One registry entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterRecord {
    /// Hex Ed25519 key.
    pub router_id: String,
    /// The signed descriptor's JSON object, as verified.
    pub descriptor: Map<String, Value>,
    /// Who registered it: the client IP, or `gossip:<peer seed id>`.
    pub source_ip: String,
    /// Observed liveness and load.
    pub health: Health,
    /// Health-monitor state.
    pub monitor: Option<Monitor>,
    /// Reputation.
    pub reputation: Reputation,
    /// Newest signed timestamp accepted from this router (registration or heartbeat), so an
    /// old signed message cannot be replayed.
    pub last_signed_ts: f64,
}

impl RouterRecord {
    /// The descriptor's endpoints.
    pub fn endpoints(&self) -> Vec<String> {
        self.str_list("endpoints")
    }

    /// The identity and link key the descriptor publishes, for a link-handshake probe.
    pub fn link_keys(&self) -> Option<(IdentityPublicKey, EncryptionPublicKey)> {
        let hex = |k: &str| self.descriptor.get(k).and_then(Value::as_str);
        let identity = IdentityPublicKey::from_hex(hex("router_id")?).ok()?;
        let link_key = EncryptionPublicKey::from_hex(hex("link_key")?).ok()?;
        Some((identity, link_key))
    }

    /// The descriptor's feature tags.
    pub fn features(&self) -> Vec<String> {
        self.str_list("features")
    }

    /// The descriptor's legacy region tags.
    pub fn regions(&self) -> Vec<String> {
        self.str_list("regions")
    }

    /// The descriptor's country code.
    pub fn region(&self) -> Option<&str> {
        self.descriptor.get("region").and_then(Value::as_str)
    }

    /// The descriptor's `published_at`.
    pub fn published_at(&self) -> f64 {
        self.num("published_at")
    }

    /// The descriptor's `registered_at`.
    pub fn registered_at(&self) -> f64 {
        self.num("registered_at")
    }

    /// Hosts of all endpoints (the part before the last `:`), for the collision index.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .endpoints()
            .iter()
            .map(|e| crate::policy::split_endpoint(e).0.to_owned())
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// The entry served by `/discover` and gossip: the descriptor plus the seed's `health`.
    pub fn served(&self) -> Value {
        let mut m = self.descriptor.clone();
        let h = &self.health;
        m.insert(
            "health".into(),
            json!({
                "last_seen": h.last_seen,
                "uptime_pct": h.uptime_pct,
                "avg_latency_ms": h.avg_latency_ms,
                "status": h.status,
                "load_pct": h.load_pct,
                "active_connections": h.active_connections,
                "queue_depth": h.queue_depth,
                "messages_per_sec": h.messages_per_sec,
            }),
        );
        Value::Object(m)
    }

    fn str_list(&self, k: &str) -> Vec<String> {
        self.descriptor
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn num(&self, k: &str) -> f64 {
        self.descriptor
            .get(k)
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    }
}
