//! The seed's decisions as pure functions: PoW difficulty, registration rate limits,
//! reputation, correlation, health states and router selection (spec §5.1-§5.6).
//!
//! Nothing here does IO or reads a clock: `now` is always an argument, so tests drive a
//! simulated clock. Differences from the reference are marked with the weakness they fix.

pub mod asn;
pub mod continent;

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use crate::config::SeedConfig;
use crate::record::{HealthStatus, Monitor, Reputation, RouterRecord};
use asn::AsnTable;

/// Counts the rate limiter and the difficulty rule need, read from storage (§5.1, §5.2).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RegStats {
    /// Registration attempts from this IP in the window (successes and failures).
    pub ip_events: u64,
    /// Attempts from this /24 in the window.
    pub subnet_events: u64,
    /// Last successful registration from this IP, if any in the window.
    pub last_success_from_ip: Option<f64>,
    /// Successful new registrations from this IP ever (retained per `ip_count` retention).
    pub ip_successes_total: u64,
    /// Successful registrations from all IPs in the last hour.
    pub recent_successes: u64,
}

/// Splits `host:port`; IPv6 hosts may be bracketed. A missing or bad port is `None`.
pub fn split_endpoint(e: &str) -> (&str, Option<u16>) {
    match e.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') || h.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse().ok(),
        ),
        _ => (e, None),
    }
}

/// The rate-limit subnet: `a.b.c.0/24` for dotted IPv4, otherwise the IPv6 /48 (the reference
/// used the whole IPv6 address, W27).
pub fn subnet_key(ip: &str) -> String {
    if let Ok(v4) = ip.parse::<std::net::Ipv4Addr>() {
        let o = v4.octets();
        return format!("{}.{}.{}.0/24", o[0], o[1], o[2]);
    }
    if let Ok(v6) = ip.parse::<std::net::Ipv6Addr>() {
        let s = v6.segments();
        return format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]);
    }
    ip.to_owned()
}

/// The /16 of a dotted IPv4 host, for one-router-per-/16 selection; `None` for anything else.
pub fn slash16(host: &str) -> Option<[u8; 2]> {
    host.parse::<std::net::Ipv4Addr>().ok().map(|ip| {
        let o = ip.octets();
        [o[0], o[1]]
    })
}

/// Required PoW difficulty for a new registration from an IP (§5.1).
pub fn required_difficulty(cfg: &SeedConfig, stats: &RegStats) -> u32 {
    let base = match stats.ip_successes_total {
        0 => cfg.pow_difficulty_base,
        1 => cfg.pow_difficulty_second,
        _ => cfg.pow_difficulty_third_plus,
    };
    #[expect(
        clippy::cast_precision_loss,
        reason = "hourly counts are far below 2^53"
    )]
    let rate = stats.recent_successes as f64;
    let threshold = cfg.adaptive_pow_threshold_per_hour;
    if !cfg.adaptive_pow_enabled || threshold <= 0.0 || rate <= threshold {
        return base;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "floor of a small positive value, capped below"
    )]
    let extra = (rate / threshold * cfg.adaptive_pow_difficulty_step)
        .floor()
        .min(256.0) as u32;
    (base + extra).min(cfg.adaptive_pow_max_difficulty.max(base))
}

/// The rate-limit check of §5.2; `Err` carries the reference's detail string.
///
/// # Errors
/// `cooldown_active:retry_after=Ns`, `ip_limit_exceeded:max=N/hour` or
/// `subnet_limit_exceeded:max=N/hour`.
pub fn rate_limit(cfg: &SeedConfig, stats: &RegStats, now: f64) -> Result<(), String> {
    if !cfg.rate_limit_enabled {
        return Ok(());
    }
    if let Some(last) = stats.last_success_from_ip {
        let left = cfg.rate_limit_cooldown_seconds - (now - last);
        if left > 0.0 {
            #[expect(clippy::cast_possible_truncation, reason = "bounded by the cooldown")]
            let secs = left as i64;
            return Err(format!("cooldown_active:retry_after={secs}s"));
        }
    }
    if stats.ip_events >= cfg.rate_limit_max_per_ip {
        return Err(format!(
            "ip_limit_exceeded:max={}/hour",
            cfg.rate_limit_max_per_ip
        ));
    }
    if stats.subnet_events >= cfg.rate_limit_max_per_subnet {
        return Err(format!(
            "subnet_limit_exceeded:max={}/hour",
            cfg.rate_limit_max_per_subnet
        ));
    }
    Ok(())
}

/// Endpoint similarity of §5.4 (average pair score; may exceed 1.0).
pub fn endpoint_similarity(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let mut total = 0.0;
    for e1 in a {
        for e2 in b {
            total += pair_similarity(e1, e2);
        }
    }
    #[expect(clippy::cast_precision_loss, reason = "at most 64 pairs")]
    let pairs = (a.len() * b.len()) as f64;
    total / pairs
}

fn pair_similarity(e1: &str, e2: &str) -> f64 {
    let (h1, p1) = split_endpoint(e1);
    let (h2, p2) = split_endpoint(e2);
    let mut s = 0.0;
    if h1 == h2 {
        s += 1.0;
    } else if let (Ok(a), Ok(b)) = (
        h1.parse::<std::net::Ipv4Addr>(),
        h2.parse::<std::net::Ipv4Addr>(),
    ) {
        let (a, b) = (a.octets(), b.octets());
        if a[..3] == b[..3] {
            s += 0.7;
        } else if a[..2] == b[..2] {
            s += 0.3;
        }
    }
    if p1.unwrap_or(8471).abs_diff(p2.unwrap_or(8471)) <= 10 {
        s += 0.2;
    }
    s
}

/// Whether a new router's endpoints collide with an existing router's (§5.4: ≥ 0.95 refuses).
/// Only routers that share a host can reach 0.95, so callers pass just those (this keeps
/// registration cost flat as the registry grows).
pub fn collides(new: &[String], existing: &[String]) -> bool {
    endpoint_similarity(new, existing) >= 0.95
}

/// Heartbeat-burst check replacing §5.4's count (W20). The reference flags a router when ≥ 5
/// other routers heartbeat within ±30 s, which every honest network of about 25 routers on
/// 300 s intervals does. Here a burst must also exceed three times what uniformly spread
/// heartbeats give (`in_interval × 2·window / interval`), and it only warns: timing alone never
/// costs reputation.
pub fn heartbeat_burst(cfg: &SeedConfig, in_window: u64, in_interval: u64) -> bool {
    #[expect(clippy::cast_precision_loss, reason = "counts are far below 2^53")]
    let (w, n) = (in_window as f64, in_interval as f64);
    let interval = cfg.heartbeat_interval_seconds.max(1.0);
    let expected = n * 2.0 * cfg.correlation_heartbeat_window_seconds / interval;
    #[expect(clippy::cast_precision_loss, reason = "small config value")]
    let min = cfg.correlation_min_suspicious_events as f64;
    w >= min && w > 3.0 * expected + min
}

/// Health status string from load and uptime (§5.5).
pub fn status_string(load_pct: f64, uptime_pct: f64) -> &'static str {
    if load_pct > 90.0 || uptime_pct < 95.0 {
        "degraded"
    } else if load_pct > 70.0 || uptime_pct < 99.0 {
        "warning"
    } else {
        "healthy"
    }
}

/// State for a number of missed intervals (§5.5).
pub fn status_for_missed(missed: u32) -> HealthStatus {
    match missed {
        0 => HealthStatus::Healthy,
        1 => HealthStatus::Warning,
        2 => HealthStatus::Degraded,
        3..=5 => HealthStatus::Unhealthy,
        _ => HealthStatus::Removed,
    }
}

/// A fresh reputation (§5.3).
pub fn new_reputation(cfg: &SeedConfig, now: f64) -> Reputation {
    Reputation {
        score: cfg.reputation_initial_score,
        heartbeat_count: 0,
        missed: 0,
        flags: Vec::new(),
        since: now,
    }
}

/// Heartbeat effect on reputation (§5.3).
pub fn reputation_heartbeat(cfg: &SeedConfig, rep: &mut Reputation, now: f64) {
    let max = cfg.reputation_max_score;
    rep.score = (rep.score + cfg.reputation_boost_per_heartbeat).min(max);
    let period = cfg.reputation_decay_period_hours.max(f64::MIN_POSITIVE);
    let hours = ((now - rep.since) / 3600.0).max(0.0);
    rep.score += (max - rep.score) * (hours / period).min(1.0) * 0.01;
    rep.heartbeat_count += 1;
}

/// Applies a penalty once per reason (the reference re-applied it on every heartbeat, W20).
pub fn penalize_once(rep: &mut Reputation, penalty: f64, reason: &str) {
    if !rep.flags.iter().any(|f| f == reason) {
        rep.score = (rep.score - penalty).max(0.0);
        rep.flags.push(reason.to_owned());
    }
}

/// Trust factor used in scoring (§5.3).
pub fn trust_factor(cfg: &SeedConfig, rep: &Reputation) -> f64 {
    if cfg.reputation_enabled {
        rep.score
    } else {
        1.0
    }
}

/// What a periodic health check did to a router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickOutcome {
    /// Nothing changed.
    Unchanged,
    /// The record changed; store it.
    Changed,
    /// Delete the router.
    Remove,
}

/// The periodic health check of §5.5 for one router. Routers that never heartbeat are
/// removed too once their registration is older than six intervals (W26).
pub fn health_tick(cfg: &SeedConfig, rec: &mut RouterRecord, now: f64) -> TickOutcome {
    let interval = cfg.heartbeat_interval_seconds.max(1.0);
    let last = rec
        .monitor
        .as_ref()
        .map_or(rec.health.last_seen, |m| m.last_heartbeat);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "non-negative, clamped to u16 range"
    )]
    let missed = ((now - last) / interval).floor().clamp(0.0, 65535.0) as u32;
    let Some(m) = rec.monitor.as_mut() else {
        return if missed >= 6 {
            TickOutcome::Remove
        } else {
            TickOutcome::Unchanged
        };
    };
    if missed == m.missed {
        return TickOutcome::Unchanged;
    }
    let newly = missed.saturating_sub(m.missed);
    m.missed = missed;
    m.status = status_for_missed(missed);
    if m.status == HealthStatus::Removed {
        return TickOutcome::Remove;
    }
    for _ in 0..newly {
        rec.reputation.score =
            (rec.reputation.score - cfg.reputation_penalty_missed_heartbeat).max(0.0);
        rec.reputation.missed += 1;
    }
    TickOutcome::Changed
}

/// Heartbeat effect on the monitor state (§5.5).
pub fn monitor_heartbeat(monitor: &mut Option<Monitor>, now: f64) {
    let previous = monitor.as_ref().map(|m| m.status);
    let recovering = matches!(
        previous,
        Some(HealthStatus::Degraded | HealthStatus::Unhealthy)
    );
    let recovery_time = if recovering {
        Some(now)
    } else {
        monitor.as_ref().and_then(|m| m.recovery_time)
    };
    let (mut warnings, last_probe, probe_latency_ms) = monitor
        .take()
        .map(|m| (m.warnings, m.last_probe, m.probe_latency_ms))
        .unwrap_or_default();
    warnings.retain(|w| w != "probe_timeout" && w != "probe_failed");
    *monitor = Some(Monitor {
        status: HealthStatus::Healthy,
        missed: 0,
        last_heartbeat: now,
        recovery_time,
        warnings,
        last_probe,
        probe_latency_ms,
    });
}

/// What an active probe found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProbeResult {
    /// `GET /health` answered 200 after this many milliseconds.
    Reachable(f64),
    /// No answer within the timeout.
    Timeout,
    /// Connection refused, reset, or a non-200 answer (the reference ignored the status, W33).
    Failed,
}

/// Records an active probe on the monitor state (§5.5): latency and `last_probe`, and the
/// warnings `high_latency` (over 1000 ms), `probe_timeout`, `probe_failed`. The status is
/// never changed by a probe.
pub fn apply_probe(monitor: &mut Monitor, result: ProbeResult, now: f64) {
    let w = &mut monitor.warnings;
    let mut set = |name: &str, on: bool| {
        w.retain(|x| x != name);
        if on {
            w.push(name.to_owned());
        }
    };
    match result {
        ProbeResult::Reachable(ms) => {
            monitor.last_probe = Some(now);
            monitor.probe_latency_ms = Some(ms);
            set("probe_timeout", false);
            set("probe_failed", false);
            set("high_latency", ms > 1000.0);
        }
        ProbeResult::Timeout => set("probe_timeout", true),
        ProbeResult::Failed => set("probe_failed", true),
    }
}

/// Whether a router may be served at all (§5.6 step 1).
pub fn discoverable(cfg: &SeedConfig, rec: &RouterRecord, now: f64) -> bool {
    let fresh = rec.health.uptime_pct >= cfg.min_uptime_pct
        && now - rec.health.last_seen <= cfg.max_stale_seconds;
    let monitor_ok = rec
        .monitor
        .as_ref()
        .is_none_or(|m| matches!(m.status, HealthStatus::Healthy | HealthStatus::Warning));
    let reputation_ok =
        !cfg.reputation_enabled || rec.reputation.score >= cfg.reputation_min_score_for_discovery;
    fresh && monitor_ok && reputation_ok
}

/// Caller preferences read from `/discover`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Preferences {
    /// `preferred_region`, else the legacy `region`.
    pub region: Option<String>,
    /// Requested features.
    pub features: Vec<String>,
    /// Router ids the caller does not want (for example the one that just failed; the
    /// reference seed ignored this, W22).
    pub exclude: Vec<String>,
}

/// The part of the score that does not depend on preferences (§5.6 health, load, queue,
/// throughput, recovery, random, trust and our misbehavior factor).
pub fn base_score(
    cfg: &SeedConfig,
    rec: &RouterRecord,
    now: f64,
    key: &[u8],
    flagged: bool,
) -> f64 {
    let h = &rec.health;
    let max = if h.max_connections > 0.0 {
        h.max_connections
    } else {
        100.0
    };
    let conn_load = if h.active_connections > 0.0 {
        h.active_connections / max
    } else {
        h.load_pct / 100.0
    };
    let mps = h.messages_per_sec;
    let throughput = if mps <= 50.0 {
        1.0
    } else if mps <= 100.0 {
        1.0 - (mps - 50.0) / 100.0
    } else {
        0.5
    };
    let mut s = cfg.weight_health * (h.uptime_pct / 100.0)
        + cfg.weight_load * (1.0 - conn_load.clamp(0.0, 1.0))
        + cfg.weight_queue * (1.0 - h.queue_depth / 100.0).max(0.0)
        + cfg.weight_throughput * throughput;
    s *= recovery_factor(cfg, rec, now);
    s += cfg.weight_random * stable_random(key, &rec.router_id);
    if flagged {
        s *= cfg.misbehavior_flag_score_factor;
    }
    s
}

fn recovery_factor(cfg: &SeedConfig, rec: &RouterRecord, now: f64) -> f64 {
    let Some(t) = rec.monitor.as_ref().and_then(|m| m.recovery_time) else {
        return 1.0;
    };
    let elapsed = now - t;
    if elapsed < cfg.recovery_ramp_duration && cfg.recovery_ramp_duration > 0.0 {
        let w = cfg.recovery_initial_weight;
        w + (1.0 - w) * (elapsed.max(0.0) / cfg.recovery_ramp_duration)
    } else {
        1.0
    }
}

/// The random term in `0..1`: a keyed hash of the router id, stable across restarts and
/// replicas (the reference used Python's per-process salted `hash()`, W33).
pub fn stable_random(key: &[u8], router_id: &str) -> f64 {
    let d = Sha256::new()
        .chain_update(key)
        .chain_update(router_id.as_bytes())
        .finalize();
    let v = u16::from_be_bytes([d[0], d[1]]) % 100;
    f64::from(v) / 100.0
}

/// The preference terms (region and features) of §5.6.
pub fn preference_score(cfg: &SeedConfig, rec: &RouterRecord, prefs: &Preferences) -> f64 {
    let mut s = 0.0;
    if let Some(pref) = prefs.region.as_deref() {
        let r = continent::region_score(rec.region(), Some(pref));
        if r > 0.0 {
            s += cfg.weight_region * r;
        } else if rec.regions().iter().any(|x| x == pref) {
            s += 0.25 * cfg.weight_region;
        }
    }
    if !prefs.features.is_empty() {
        let have = rec.features();
        let hits = prefs.features.iter().filter(|f| have.contains(f)).count();
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        let ratio = hits as f64 / prefs.features.len() as f64;
        s += 0.05 * ratio;
    }
    s
}

/// A candidate with its score, ready for [`select`].
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The record.
    pub record: &'a RouterRecord,
    /// The preference-free score (see [`base_score`]).
    pub base: f64,
    /// `0.5 + 0.5 × trust factor`.
    pub trust: f64,
}

/// Orders candidates by final score and picks `count` with one router per /16 (§5.6 step 4)
/// and, in a first pass, one per ASN from the operator's table; a second pass fills with new
/// /16s whatever their ASN. Ties break on router id, so the answer is deterministic.
pub fn select<'a>(
    cfg: &SeedConfig,
    candidates: &[Candidate<'a>],
    prefs: &Preferences,
    count: usize,
    asns: &AsnTable,
) -> Vec<&'a RouterRecord> {
    let mut scored: Vec<(f64, &'a RouterRecord)> = candidates
        .iter()
        .filter(|c| !prefs.exclude.contains(&c.record.router_id))
        .map(|c| {
            (
                (c.base + preference_score(cfg, c.record, prefs)) * c.trust,
                c.record,
            )
        })
        .collect();
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| a.1.router_id.cmp(&b.1.router_id))
    });
    let mut out: Vec<&'a RouterRecord> = Vec::new();
    let mut subnets = HashSet::new();
    let mut seen_asns = HashSet::new();
    for strict_asn in [true, false] {
        for (_, rec) in &scored {
            if out.len() >= count {
                return out;
            }
            if out.iter().any(|r| r.router_id == rec.router_id) {
                continue;
            }
            let eps = rec.endpoints();
            let host = eps.first().map_or("", |e| split_endpoint(e).0);
            let net = slash16(host);
            if net.is_some_and(|n| subnets.contains(&n)) {
                continue;
            }
            let asn = asns.lookup(host);
            if strict_asn && asn.is_some_and(|a| seen_asns.contains(&a)) {
                continue;
            }
            subnets.extend(net);
            seen_asns.extend(asn);
            out.push(rec);
        }
    }
    out
}

#[cfg(test)]
mod tests;
