//! Seed configuration: every setting of spec §7.1 with the reference defaults, plus ours.
//!
//! Loaded from a TOML file (`--config`); a missing key takes the default written beside it,
//! and an unknown key is an error so a typo does not silently keep a default. Settings the
//! reference has but which we enforce differently say so in their doc.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// A gossip peer: where to reach it and the Ed25519 key its gossip must be signed with (W11).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PeerSeed {
    /// Base URL, `http://host:port` (a missing scheme means `http://`).
    pub url: String,
    /// The peer's seed key, 64 hex; also its `seed_id`.
    pub key: String,
}

/// All seed tunables. Field names are the reference's `SeedConfig` names (spec §7.1).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedConfig {
    // --- bind and operator surface (ours) ---
    /// HTTP API listen address. Default `0.0.0.0:8470` (reference host and port).
    pub listen: SocketAddr,
    /// Prometheus `/metrics` listen address; loopback by default so it is not public.
    pub metrics_listen: SocketAddr,
    /// Data directory: the embedded database and the seed key live here. Default `./seed-data`.
    pub data_dir: PathBuf,
    /// `postgres://…` to share state between replicas instead of the embedded store.
    pub database_url: Option<String>,
    /// Largest accepted request body in bytes; larger bodies get 413. Default 65536.
    pub max_body_bytes: usize,
    /// A request that takes longer (slow client included) is answered 408, and a request head
    /// not received within it closes the connection. Default 10 s.
    pub request_timeout_seconds: f64,
    /// Most open client connections; more wait in the accept queue. Default 10000.
    pub max_connections: usize,
    /// Requests per second each client IP may make to the API (token bucket). Default 20.
    pub requests_per_second_per_ip: f64,
    /// Token-bucket burst per client IP. Default 40.
    pub request_burst_per_ip: f64,
    /// Use the last `X-Forwarded-For` address as the client IP (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Accepted clock skew for signed timestamps (registration, heartbeat, reports, gossip),
    /// in seconds either side of now. Default 300.
    pub timestamp_window_seconds: f64,
    /// Lifetime of an issued PoW challenge. Default 600 s.
    pub pow_challenge_ttl_seconds: f64,
    /// How long a computed `/discover` candidate list is reused. Replicas see each other's
    /// writes after at most this long. Default 1 s.
    pub discover_cache_seconds: f64,
    /// Most routers kept in the registry; registrations beyond it are refused. Default 100000.
    pub max_routers: u64,
    /// Most recipient addresses kept (`POST /address`); new identities beyond it are refused.
    /// Default 100000.
    pub max_addresses: u64,
    /// Longest validity an address may claim (`expires_at - now`), so one publish cannot pin
    /// a slot for years. Default 30 days.
    pub max_address_lifetime_seconds: f64,
    /// Optional IP-to-ASN table: lines `CIDR<TAB>ASN` (IPv4), `#` comments.
    pub asn_table_path: Option<PathBuf>,

    // --- health (§5.5) ---
    /// Legacy filter: minimum `uptime_pct`. Default 90.
    pub min_uptime_pct: f64,
    /// Legacy filter: maximum seconds since `last_seen`. Default 600.
    pub max_stale_seconds: f64,
    /// Seconds between expected heartbeats (reference fixed value 300).
    pub heartbeat_interval_seconds: f64,
    /// Seconds between health checks (reference fixed value 60).
    pub health_check_interval_seconds: f64,

    // --- scoring (§5.6) ---
    /// Weight of the health term. Default 0.25.
    pub weight_health: f64,
    /// Weight of the load term. Default 0.35.
    pub weight_load: f64,
    /// Weight of the queue term. Default 0.15.
    pub weight_queue: f64,
    /// Weight of the throughput term. Default 0.10.
    pub weight_throughput: f64,
    /// Weight of the region term. Default 0.10.
    pub weight_region: f64,
    /// Weight of the per-router pseudo-random term (a keyed hash, stable across restarts).
    pub weight_random: f64,
    /// Unused by the reference too; kept so reference config files load. Default 0.3.
    pub weight_capacity: f64,
    /// Seconds of the recovery ramp. Default 300.
    pub recovery_ramp_duration: f64,
    /// Score factor at the start of the recovery ramp. Default 0.2.
    pub recovery_initial_weight: f64,

    // --- identity and peers ---
    /// This seed's id. Default: the hex of the seed's public key, so self-signed revocations
    /// work (spec §3.1).
    pub seed_id: Option<String>,
    /// Seed URLs served as `other_seeds`.
    pub known_seeds: Vec<String>,
    /// Gossip peers with their keys.
    pub peer_seeds: Vec<PeerSeed>,

    // --- PoW (§5.1) ---
    /// Difficulty for an IP's first router. Default 16.
    pub pow_difficulty_base: u32,
    /// Difficulty for an IP's second router. Default 20.
    pub pow_difficulty_second: u32,
    /// Difficulty for an IP's third and later routers. Default 24.
    pub pow_difficulty_third_plus: u32,
    /// Verify registration signatures. Default true. Turning it off is for tests only.
    pub verify_signatures: bool,
    /// Verify PoW. Default true.
    pub verify_pow: bool,

    // --- probing ---
    /// Probe a new or moved endpoint: a link handshake with the keys its descriptor publishes
    /// must complete (the reference sent `GET /health`, which a relay does not speak).
    /// Default true.
    pub probe_endpoints: bool,
    /// Probe timeout. Default 5 s.
    pub probe_timeout_seconds: f64,
    /// Seconds between active probe rounds (reference fixed value 900).
    pub probe_interval_seconds: f64,
    /// Routers probed per round (reference fixed value 10).
    pub probe_sample_size: usize,

    // --- gossip (§5.9) ---
    /// Exchange routers with `peer_seeds`. Default true.
    pub gossip_enabled: bool,
    /// Seconds between outbound exchanges. Default 300.
    pub gossip_interval_seconds: f64,
    /// Most routers sent per exchange. Default 20.
    pub gossip_batch_size: usize,
    /// Exchange timeout. Default 10 s.
    pub gossip_timeout_seconds: f64,
    /// Routers not seen for longer are neither sent nor merged. Default 1800.
    pub gossip_max_router_age_seconds: f64,
    /// Most node addresses sent per exchange, the most recently issued first, so a node's
    /// re-signed address reaches every seed within an interval and senders that ask another
    /// seed follow it. 0 sends none (received ones are still merged). Default 200.
    pub gossip_address_batch_size: usize,

    // --- misbehavior (§5.7) ---
    /// Accept reports. Default true.
    pub misbehavior_reports_enabled: bool,
    /// Unique reporters needed to flag. Default 3.
    pub misbehavior_min_reports_to_flag: usize,
    /// Reports older than this are dropped. Default 3600.
    pub misbehavior_report_window_seconds: f64,
    /// Kept for reference config files; reports must always be signed here (W12).
    pub misbehavior_verify_reporter_signature: bool,
    /// Newest reports kept per router. Default 100.
    pub misbehavior_max_reports_per_router: usize,
    /// Mean severity needed to flag. Default 0.5.
    pub misbehavior_flag_severity_threshold: f64,
    /// Score factor for a flagged router (the reference ignores flags). Default 0.5.
    pub misbehavior_flag_score_factor: f64,

    // --- revocation (§5.8) ---
    /// Accept revocations. Default true.
    pub seed_revocation_enabled: bool,
    /// Kept for reference config files; revocations must always be signed here (W13).
    pub seed_revocation_verify_signatures: bool,
    /// A revocation list file loaded at start. Default none.
    pub seed_revocation_list_path: Option<PathBuf>,
    /// Seconds between checks of the list file. Default 3600.
    pub seed_revocation_list_check_interval: f64,
    /// Send and accept revocations by gossip. Default true.
    pub seed_revocation_gossip_enabled: bool,
    /// Revocations older than this are refused. Default 30 days.
    pub seed_revocation_max_age_seconds: f64,
    /// Authority keys (hex) whose revocations are accepted for any seed.
    pub seed_revocation_trusted_authorities: Vec<String>,

    // --- rate limit (§5.2) ---
    /// Registration rate limiting. Default true.
    pub rate_limit_enabled: bool,
    /// Window of counted events. Default 3600.
    pub rate_limit_window_seconds: f64,
    /// Registration attempts per IP per window. Default 5 (counts saturate at 1000).
    pub rate_limit_max_per_ip: u64,
    /// Registration attempts per /24 per window. Default 10 (counts saturate at 1000).
    pub rate_limit_max_per_subnet: u64,
    /// Seconds after a successful registration before the IP may register again. Default 300.
    pub rate_limit_cooldown_seconds: f64,

    // --- reputation (§5.3) ---
    /// Reputation tracking. Default true.
    pub reputation_enabled: bool,
    /// Score of a new router. Default 0.5.
    pub reputation_initial_score: f64,
    /// Hours over which the heartbeat bonus ramps up. Default 24.
    pub reputation_decay_period_hours: f64,
    /// Routers below this score are not served. Default 0.3.
    pub reputation_min_score_for_discovery: f64,
    /// Score gained per heartbeat. Default 0.01.
    pub reputation_boost_per_heartbeat: f64,
    /// Score lost per missed heartbeat. Default 0.05.
    pub reputation_penalty_missed_heartbeat: f64,
    /// Highest score. Default 1.0.
    pub reputation_max_score: f64,

    // --- correlation (§5.4) ---
    /// Correlation detection. Default true.
    pub correlation_detection_enabled: bool,
    /// Window around a heartbeat, seconds. Default 30.
    pub correlation_heartbeat_window_seconds: f64,
    /// Minimum co-occurring heartbeats before a burst can be flagged. Default 5.
    pub correlation_min_suspicious_events: u64,
    /// Endpoint similarity that raises a `similar_endpoints` warning. Default 0.8.
    pub correlation_endpoint_similarity_threshold: f64,
    /// One-time penalty for highly similar endpoints (applied once, not per heartbeat: W20).
    pub correlation_penalty_score: f64,

    // --- adaptive PoW (§5.1) ---
    /// Raise difficulty under registration load. Default true.
    pub adaptive_pow_enabled: bool,
    /// Successful registrations per hour before difficulty rises. Default 100.
    pub adaptive_pow_threshold_per_hour: f64,
    /// Ceiling of the adaptive difficulty. Default 28.
    pub adaptive_pow_max_difficulty: u32,
    /// Bits added per threshold multiple. Default 2.
    pub adaptive_pow_difficulty_step: f64,
}

impl Default for SeedConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8470)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9470)),
            data_dir: PathBuf::from("seed-data"),
            database_url: None,
            max_body_bytes: 64 * 1024,
            request_timeout_seconds: 10.0,
            max_connections: 10_000,
            requests_per_second_per_ip: 20.0,
            request_burst_per_ip: 40.0,
            trust_forwarded_for: false,
            timestamp_window_seconds: 300.0,
            pow_challenge_ttl_seconds: 600.0,
            discover_cache_seconds: 1.0,
            max_routers: 100_000,
            max_addresses: 100_000,
            max_address_lifetime_seconds: 2_592_000.0,
            asn_table_path: None,
            min_uptime_pct: 90.0,
            max_stale_seconds: 600.0,
            heartbeat_interval_seconds: 300.0,
            health_check_interval_seconds: 60.0,
            weight_health: 0.25,
            weight_load: 0.35,
            weight_queue: 0.15,
            weight_throughput: 0.10,
            weight_region: 0.10,
            weight_random: 0.05,
            weight_capacity: 0.3,
            recovery_ramp_duration: 300.0,
            recovery_initial_weight: 0.2,
            seed_id: None,
            known_seeds: Vec::new(),
            peer_seeds: Vec::new(),
            pow_difficulty_base: 16,
            pow_difficulty_second: 20,
            pow_difficulty_third_plus: 24,
            verify_signatures: true,
            verify_pow: true,
            probe_endpoints: true,
            probe_timeout_seconds: 5.0,
            probe_interval_seconds: 900.0,
            probe_sample_size: 10,
            gossip_enabled: true,
            gossip_interval_seconds: 300.0,
            gossip_batch_size: 20,
            gossip_timeout_seconds: 10.0,
            gossip_max_router_age_seconds: 1800.0,
            gossip_address_batch_size: 200,
            misbehavior_reports_enabled: true,
            misbehavior_min_reports_to_flag: 3,
            misbehavior_report_window_seconds: 3600.0,
            misbehavior_verify_reporter_signature: true,
            misbehavior_max_reports_per_router: 100,
            misbehavior_flag_severity_threshold: 0.5,
            misbehavior_flag_score_factor: 0.5,
            seed_revocation_enabled: true,
            seed_revocation_verify_signatures: true,
            seed_revocation_list_path: None,
            seed_revocation_list_check_interval: 3600.0,
            seed_revocation_gossip_enabled: true,
            seed_revocation_max_age_seconds: 2_592_000.0,
            seed_revocation_trusted_authorities: Vec::new(),
            rate_limit_enabled: true,
            rate_limit_window_seconds: 3600.0,
            rate_limit_max_per_ip: 5,
            rate_limit_max_per_subnet: 10,
            rate_limit_cooldown_seconds: 300.0,
            reputation_enabled: true,
            reputation_initial_score: 0.5,
            reputation_decay_period_hours: 24.0,
            reputation_min_score_for_discovery: 0.3,
            reputation_boost_per_heartbeat: 0.01,
            reputation_penalty_missed_heartbeat: 0.05,
            reputation_max_score: 1.0,
            correlation_detection_enabled: true,
            correlation_heartbeat_window_seconds: 30.0,
            correlation_min_suspicious_events: 5,
            correlation_endpoint_similarity_threshold: 0.8,
            correlation_penalty_score: 0.2,
            adaptive_pow_enabled: true,
            adaptive_pow_threshold_per_hour: 100.0,
            adaptive_pow_max_difficulty: 28,
            adaptive_pow_difficulty_step: 2.0,
        }
    }
}

impl SeedConfig {
    /// Parses a TOML document.
    ///
    /// # Errors
    /// The TOML parse error (unknown keys included).
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_lists_valid_keys_with_the_defaults() {
        let example = include_str!("../seed.example.toml");
        let uncommented: String = example
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.split_once(" = ").is_some_and(|(k, v)| {
                    k.chars().all(|c| c.is_ascii_lowercase() || c == '_') && v != "(unset)"
                })
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(uncommented.lines().count() > 70, "{uncommented}");
        let parsed = SeedConfig::from_toml(&uncommented).unwrap();
        let d = SeedConfig::default();
        assert_eq!(format!("{parsed:?}"), format!("{d:?}"));
        assert!(SeedConfig::from_toml("no_such_key = 1").is_err());
    }
}
