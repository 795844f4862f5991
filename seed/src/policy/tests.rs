use serde_json::Map;

use super::*;
use crate::record::Health;

fn cfg() -> SeedConfig {
    SeedConfig::default()
}

fn record(id: &str, endpoint: &str) -> RouterRecord {
    let mut descriptor = Map::new();
    descriptor.insert("endpoints".into(), serde_json::json!([endpoint]));
    RouterRecord {
        router_id: id.into(),
        descriptor,
        source_ip: "10.0.0.1".into(),
        health: Health::new_router(1000.0),
        monitor: None,
        reputation: new_reputation(&cfg(), 1000.0),
        last_signed_ts: 0.0,
    }
}

#[test]
fn difficulty_follows_ip_history_and_adapts_to_load() {
    let c = cfg();
    let mut s = RegStats::default();
    assert_eq!(required_difficulty(&c, &s), 16);
    s.ip_successes_total = 1;
    assert_eq!(required_difficulty(&c, &s), 20);
    s.ip_successes_total = 7;
    assert_eq!(required_difficulty(&c, &s), 24);
    s.ip_successes_total = 0;
    s.recent_successes = 150;
    assert_eq!(required_difficulty(&c, &s), 16 + 3, "floor(1.5 * 2)");
    s.recent_successes = 10_000;
    assert_eq!(required_difficulty(&c, &s), 28, "capped");
}

#[test]
fn rate_limit_order_and_strings() {
    let c = cfg();
    let mut s = RegStats {
        last_success_from_ip: Some(900.0),
        ..RegStats::default()
    };
    assert_eq!(
        rate_limit(&c, &s, 1000.0),
        Err("cooldown_active:retry_after=200s".into())
    );
    s.last_success_from_ip = None;
    s.ip_events = 5;
    assert_eq!(
        rate_limit(&c, &s, 1000.0),
        Err("ip_limit_exceeded:max=5/hour".into())
    );
    s.ip_events = 0;
    s.subnet_events = 10;
    assert_eq!(
        rate_limit(&c, &s, 1000.0),
        Err("subnet_limit_exceeded:max=10/hour".into())
    );
    s.subnet_events = 9;
    assert_eq!(rate_limit(&c, &s, 1000.0), Ok(()));
}

#[test]
fn subnets_and_endpoints() {
    assert_eq!(subnet_key("192.0.2.77"), "192.0.2.0/24");
    assert_eq!(subnet_key("2001:db8:1:2::5"), "2001:db8:1::/48");
    assert_eq!(
        split_endpoint("[2001:db8::1]:8471"),
        ("2001:db8::1", Some(8471))
    );
    assert_eq!(split_endpoint("host:x"), ("host", None));
    assert_eq!(slash16("10.1.2.3"), Some([10, 1]));
    assert_eq!(slash16("example.org"), None);
}

#[test]
fn endpoint_similarity_matches_reference_examples() {
    let s = |a: &str, b: &str| endpoint_similarity(&[a.to_owned()], &[b.to_owned()]);
    assert!((s("1.2.3.4:8471", "1.2.3.4:8472") - 1.2).abs() < 1e-9);
    assert!((s("1.2.3.4:8471", "1.2.3.9:9000") - 0.7).abs() < 1e-9);
    assert!((s("1.2.3.4:8471", "1.2.9.9:8475") - 0.5).abs() < 1e-9);
    assert!(s("1.2.3.4:1", "5.6.7.8:9000") < 1e-9);
    assert!(collides(&["1.2.3.4:8471".into()], &["1.2.3.4:8480".into()]));
    assert!(!collides(
        &["1.2.3.4:8471".into()],
        &["1.2.3.5:8471".into()]
    ));
}

#[test]
fn uniform_heartbeats_are_not_a_burst_w20() {
    let c = cfg();
    // 100 routers spread over 300 s: about 20 fall within ±30 s, the reference flags that.
    assert!(!heartbeat_burst(&c, 20, 100));
    // 80 of 100 inside one minute is a burst.
    assert!(heartbeat_burst(&c, 80, 100));
    assert!(!heartbeat_burst(&c, 4, 4), "below the minimum count");
}

#[test]
fn status_strings_and_missed_states() {
    assert_eq!(status_string(95.0, 100.0), "degraded");
    assert_eq!(status_string(75.0, 100.0), "warning");
    assert_eq!(status_string(0.0, 99.0), "healthy");
    assert_eq!(status_for_missed(1), HealthStatus::Warning);
    assert_eq!(status_for_missed(4), HealthStatus::Unhealthy);
    assert_eq!(status_for_missed(6), HealthStatus::Removed);
}

#[test]
fn health_tick_penalizes_each_new_miss_once_and_removes_silent_routers() {
    let c = cfg();
    let mut r = record("a", "10.0.0.1:1");
    assert_eq!(
        health_tick(&c, &mut r, 1000.0 + 6.0 * 300.0),
        TickOutcome::Remove,
        "never heartbeat"
    );
    let mut r = record("a", "10.0.0.1:1");
    monitor_heartbeat(&mut r.monitor, 1000.0);
    assert_eq!(
        health_tick(&c, &mut r, 1000.0 + 601.0),
        TickOutcome::Changed
    );
    assert!((r.reputation.score - 0.4).abs() < 1e-9);
    assert_eq!(
        health_tick(&c, &mut r, 1000.0 + 650.0),
        TickOutcome::Unchanged
    );
    monitor_heartbeat(&mut r.monitor, 1700.0);
    assert_eq!(
        r.monitor.as_ref().and_then(|m| m.recovery_time),
        Some(1700.0)
    );
}

#[test]
fn penalties_apply_once_per_reason() {
    let mut rep = new_reputation(&cfg(), 0.0);
    penalize_once(&mut rep, 0.2, "highly_similar_endpoints");
    penalize_once(&mut rep, 0.2, "highly_similar_endpoints");
    assert!((rep.score - 0.3).abs() < 1e-9);
}

#[test]
fn recovery_ramp_scales_the_score() {
    let c = cfg();
    let key = b"k";
    let mut r = record("a", "10.0.0.1:1");
    let full = base_score(&c, &r, 1000.0, key, false);
    monitor_heartbeat(&mut r.monitor, 1000.0);
    r.monitor.as_mut().unwrap().recovery_time = Some(1000.0);
    let random = c.weight_random * stable_random(key, "a");
    let ramp = base_score(&c, &r, 1000.0, key, false);
    assert!(((ramp - random) - 0.2 * (full - random)).abs() < 1e-9);
    assert!((base_score(&c, &r, 1300.0, key, false) - full).abs() < 1e-9);
    assert!(
        base_score(&c, &r, 1300.0, key, true) < full,
        "flagged routers rank lower"
    );
}

#[test]
fn selection_is_deterministic_and_one_per_slash16() {
    let c = cfg();
    let recs = [
        record("a", "10.1.0.1:1"),
        record("b", "10.1.9.9:1"),
        record("c", "10.2.0.1:1"),
    ];
    let cands: Vec<Candidate<'_>> = recs
        .iter()
        .map(|r| Candidate {
            record: r,
            base: 1.0,
            trust: 1.0,
        })
        .collect();
    let got = select(&c, &cands, &Preferences::default(), 5, &AsnTable::default());
    let ids: Vec<&str> = got.iter().map(|r| r.router_id.as_str()).collect();
    assert_eq!(ids, vec!["a", "c"]);
}

#[test]
fn probes_set_warnings_without_touching_status() {
    let mut r = record("a", "10.0.0.1:1");
    monitor_heartbeat(&mut r.monitor, 1000.0);
    let m = r.monitor.as_mut().unwrap();
    apply_probe(m, ProbeResult::Timeout, 1001.0);
    apply_probe(m, ProbeResult::Failed, 1002.0);
    assert_eq!(m.warnings, vec!["probe_timeout", "probe_failed"]);
    assert_eq!(m.status, HealthStatus::Healthy);
    apply_probe(m, ProbeResult::Reachable(1500.0), 1003.0);
    assert_eq!(m.warnings, vec!["high_latency"]);
    assert_eq!(
        (m.last_probe, m.probe_latency_ms),
        (Some(1003.0), Some(1500.0))
    );
    apply_probe(m, ProbeResult::Failed, 1004.0);
    monitor_heartbeat(&mut r.monitor, 1005.0);
    assert_eq!(
        r.monitor.unwrap().warnings,
        vec!["high_latency"],
        "heartbeat clears probe_*"
    );
}
