#![allow(clippy::unwrap_used, reason = "test code")]
//! The HTTP API in-process (`app(state)` + `oneshot`), on a simulated clock.

#[path = "support/harness.rs"]
mod harness;

use axum::http::StatusCode;
use harness::{T0, harness, harness_with, router, test_config, unlimited_config};
use ournet_proto::descriptor::{SignedDescriptor, verify_router_list};
use ournet_proto::keys::IdentityKeypair;
use ournet_proto::pow;
use ournet_seed::policy::asn::AsnTable;
use serde_json::{Value, json};

#[tokio::test]
async fn register_then_discover_serves_verifiable_descriptor_and_signed_list() {
    let h = harness().await;
    let r = router(1, "10.1.0.1:8471");
    let (st, v) = h.register(&r, "10.1.0.1").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["action"], "registered");
    assert_eq!(v["initial_reputation"], 0.5);
    let answer = h.discover(5).await;
    let entry = &answer["routers"][0];
    assert_eq!(entry["router_id"], r.router_id());
    assert_eq!(entry["registered_at"], T0);
    SignedDescriptor::from_json(entry)
        .unwrap()
        .verify()
        .unwrap();
    let seed = IdentityKeypair::from_secret_bytes(&[42u8; 32]).public();
    let _ok = verify_router_list(answer.as_object().unwrap(), &seed).unwrap();
    assert!(entry.get("proof_of_work").is_none() && entry.get("source_ip").is_none());
}

#[tokio::test]
async fn challenges_are_single_use_expiring_and_seed_issued() {
    let h = harness().await;
    let r = router(2, "10.2.0.1:8471");
    let (c, d) = h.challenge("10.2.0.1").await;
    let body = Value::Object(r.register_body(&c, d, h.now(), 1 << 24).unwrap());
    let (st, _) = h.post("/register", &body, "10.2.0.1").await;
    assert_eq!(st, StatusCode::OK);
    // Same challenge for another router: spent.
    let r2 = router(3, "10.3.0.1:8471");
    let body2 = Value::Object(r2.register_body(&c, d, h.now(), 1 << 24).unwrap());
    let (st, v) = h.post("/register", &body2, "10.3.0.1").await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("challenge_reused"))
    );
    // A router-chosen challenge (the reference's way) is refused.
    let body3 = Value::Object(r2.register_body("00112233", 4, h.now(), 1 << 24).unwrap());
    let (st, v) = h.post("/register", &body3, "10.4.0.1").await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_challenge"))
    );
    // An expired one too.
    let (c, d) = h.challenge("10.5.0.1").await;
    h.clock.advance(601.0);
    let body4 = Value::Object(r2.register_body(&c, d, h.now(), 1 << 24).unwrap());
    let (_, v) = h.post("/register", &body4, "10.5.0.1").await;
    assert_eq!(
        (v["reason"].as_str(), v["detail"].as_str()),
        (Some("invalid_challenge"), Some("expired"))
    );
}

#[tokio::test]
async fn registration_refusals_have_reference_reasons() {
    let h = harness().await;
    let r = router(4, "10.6.0.1:8471");
    let (c, d) = h.challenge("10.6.0.1").await;
    let good = r.register_body(&c, d, h.now(), 1 << 24).unwrap();
    let mut bad_sig = good.clone();
    bad_sig.insert("avg_latency_ms".into(), json!(5));
    let (st, v) = h
        .post("/register", &Value::Object(bad_sig), "10.6.0.1")
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_signature"))
    );
    let rid = r.router_id();
    let failing = (0u64..)
        .find(|n| pow::leading_zero_bits(&pow::pow_hash(&c, *n, &rid)) < d)
        .unwrap();
    let mut weak = good.clone();
    weak["proof_of_work"]["nonce"] = json!(failing);
    let (_, v) = h
        .post("/register", &Value::Object(r.signed(weak)), "10.6.0.1")
        .await;
    assert_eq!(
        (v["reason"].as_str(), v["required_difficulty"].as_u64()),
        (Some("insufficient_pow"), Some(4))
    );
    let mut no_id = good.clone();
    no_id.remove("router_id");
    let (_, v) = h.post("/register", &Value::Object(no_id), "10.6.0.1").await;
    assert_eq!(v["reason"], "missing_router_id");
    let mut no_eps = good.clone();
    no_eps.insert("endpoints".into(), json!([]));
    let (_, v) = h
        .post("/register", &Value::Object(no_eps), "10.6.0.1")
        .await;
    assert_eq!(v["reason"], "missing_endpoints");
    let mut old = good;
    old.insert("timestamp".into(), json!(T0 - 3600.0));
    let (_, v) = h
        .post("/register", &Value::Object(r.signed(old)), "10.6.0.1")
        .await;
    assert_eq!(v["reason"], "stale_timestamp");
}

#[tokio::test]
async fn bad_input_is_400_or_413_never_500() {
    let h = harness().await;
    let (st, v) = h
        .raw("POST", "/register", b"not json".to_vec(), "10.7.0.1")
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let (st, v) = h.post("/register", &json!([1, 2]), "10.7.0.1").await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let (st, v) = h
        .post("/register", &json!({"router_id": 5}), "10.7.0.1")
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_field"))
    );
    let (st, v) = h
        .post("/discover", &json!({"requested_count": "x"}), "10.7.0.1")
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_requested_count"))
    );
    let (st, v) = h
        .post("/discover", &json!({"preferences": 3}), "10.7.0.1")
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_preferences"))
    );
    let (st, _) = h
        .raw("POST", "/discover", b"garbage".to_vec(), "10.7.0.1")
        .await;
    assert_eq!(
        st,
        StatusCode::OK,
        "non-JSON discover counts as {{}} like the reference"
    );
    let (st, _) = h
        .post("/discover", &json!({"requested_count": 1000}), "10.7.0.1")
        .await;
    assert_eq!(st, StatusCode::OK);
    let big = vec![b' '; 70 * 1024];
    let (st, _) = h.raw("POST", "/register", big, "10.7.0.1").await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    let (st, v) = h
        .post("/heartbeat", &json!({"router_id": "ab"}), "10.7.0.1")
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_registered"))
    );
    let (st, _) = h.raw("GET", "/discover", Vec::new(), "10.7.0.1").await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn heartbeats_must_be_signed_fresh_and_new() {
    let h = harness().await;
    let r = router(5, "10.8.0.1:8471");
    assert_eq!(h.register(&r, "10.8.0.1").await.0, StatusCode::OK);
    h.clock.advance(10.0);
    let (st, v) = h.heartbeat(&r).await;
    assert_eq!(
        (st, v["health_status"].as_str()),
        (StatusCode::OK, Some("healthy")),
        "{v}"
    );
    let unsigned = json!({"router_id": r.router_id(), "timestamp": h.now() + 1.0});
    let (_, v) = h.post("/heartbeat", &unsigned, "10.8.0.1").await;
    assert_eq!(v["reason"], "missing_signature");
    let m = json!({"load_pct": 1}).as_object().cloned().unwrap();
    let replay = r.heartbeat_body(h.now(), &m);
    let (_, v) = h
        .post("/heartbeat", &Value::Object(replay), "10.8.0.1")
        .await;
    assert_eq!(v["reason"], "replayed_request");
    h.clock.advance(1.0);
    let mut hijack = m.clone();
    hijack.insert("endpoints".into(), json!(["203.0.113.9:8471"]));
    let (_, v) = h
        .post(
            "/heartbeat",
            &Value::Object(r.heartbeat_body(h.now(), &hijack)),
            "10.8.0.1",
        )
        .await;
    assert_eq!(v["reason"], "endpoints_require_descriptor");
    let bad = json!({"load_pct": "high"}).as_object().cloned().unwrap();
    let (st, v) = h
        .post(
            "/heartbeat",
            &Value::Object(r.heartbeat_body(h.now(), &bad)),
            "10.8.0.1",
        )
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_metric"))
    );
    let load = json!({"load_pct": 95.0}).as_object().cloned().unwrap();
    let (_, v) = h
        .post(
            "/heartbeat",
            &Value::Object(r.heartbeat_body(h.now(), &load)),
            "10.8.0.1",
        )
        .await;
    assert_eq!(v["health_status"], "degraded");
}

#[tokio::test]
async fn new_descriptor_moves_endpoints_and_update_keeps_health() {
    let h = harness().await;
    let mut r = router(6, "10.9.0.1:8471");
    assert_eq!(h.register(&r, "10.9.0.1").await.0, StatusCode::OK);
    h.clock.advance(5.0);
    h.heartbeat(&r).await;
    r.endpoints = vec!["10.9.0.2:9000".into()];
    h.clock.advance(5.0);
    let mut o = r.descriptor(h.now()).unwrap().to_json().unwrap();
    o.insert("timestamp".into(), json!(h.now()));
    let (st, v) = h
        .post("/register", &Value::Object(r.signed(o)), "10.9.0.1")
        .await;
    assert_eq!(
        (st, v["action"].as_str()),
        (StatusCode::OK, Some("updated")),
        "{v}"
    );
    let rec = h.state_router(&r.router_id()).await;
    assert_eq!(rec.endpoints(), vec!["10.9.0.2:9000".to_owned()]);
    assert!(
        rec.monitor.is_some() && rec.reputation.heartbeat_count == 1,
        "update kept state (W32)"
    );
    let other = router(16, "10.90.0.1:8471");
    assert_eq!(h.register(&other, "10.90.0.1").await.0, StatusCode::OK);
    r.endpoints = vec!["10.90.0.1:8472".into()];
    h.clock.advance(1.0);
    let mut onto = r.descriptor(h.now()).unwrap().to_json().unwrap();
    onto.insert("timestamp".into(), json!(h.now()));
    let (_, v) = h
        .post("/register", &Value::Object(r.signed(onto)), "10.9.0.1")
        .await;
    assert_eq!(
        v["reason"], "endpoint_collision",
        "cannot move onto another router"
    );
    let mut stale = r.descriptor(h.now() - 100.0).unwrap().to_json().unwrap();
    h.clock.advance(1.0);
    stale.insert("timestamp".into(), json!(h.now()));
    let (_, v) = h
        .post("/register", &Value::Object(r.signed(stale)), "10.9.0.1")
        .await;
    assert_eq!(v["reason"], "stale_descriptor");
}

#[tokio::test]
async fn registration_rate_limits_per_ip() {
    let h = harness().await;
    assert_eq!(
        h.register(&router(7, "10.10.0.1:8471"), "10.10.0.1")
            .await
            .0,
        StatusCode::OK
    );
    let (st, v) = h.register(&router(8, "10.11.0.1:8471"), "10.10.0.1").await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("cooldown_active:retry_after=")
    );
    h.clock.advance(301.0);
    let (c, d) = h.challenge("10.10.0.1").await;
    assert_eq!(
        d, 5,
        "second router from one IP needs pow_difficulty_second"
    );
    let body = router(8, "10.11.0.1:8471")
        .register_body(&c, d, h.now(), 1 << 24)
        .unwrap();
    assert_eq!(
        h.post("/register", &Value::Object(body), "10.10.0.1")
            .await
            .0,
        StatusCode::OK
    );
    let (st, v) = h.register(&router(9, "10.10.0.1:8471"), "10.12.0.1").await;
    assert_eq!(
        (st, v["detail"].as_str()),
        (
            StatusCode::TOO_MANY_REQUESTS,
            Some("endpoint_collision:nearly_identical_endpoints_exist")
        )
    );
}

#[tokio::test]
async fn health_state_machine_hides_recovers_and_removes() {
    let h = harness().await;
    let r = router(10, "10.13.0.1:8471");
    h.register(&r, "10.13.0.1").await;
    h.clock.advance(1.0);
    h.heartbeat(&r).await;
    h.clock.advance(301.0);
    h.state.health_check().await.unwrap();
    assert_eq!(
        h.discovered_ids(5).await.len(),
        1,
        "warning is still served"
    );
    h.clock.advance(300.0);
    h.state.health_check().await.unwrap();
    assert!(h.discovered_ids(5).await.is_empty(), "degraded is hidden");
    h.heartbeat(&r).await;
    let rec = h.state_router(&r.router_id()).await;
    assert_eq!(
        rec.monitor.as_ref().unwrap().recovery_time,
        Some(h.now()),
        "recovery ramp starts"
    );
    assert_eq!(h.discovered_ids(5).await.len(), 1);
    h.clock.advance(1801.0);
    h.state.health_check().await.unwrap();
    let (_, v) = h.heartbeat(&r).await;
    assert_eq!(
        v["reason"], "not_registered",
        "removed after six missed intervals"
    );
}

#[tokio::test]
async fn synchronized_honest_heartbeats_do_not_drain_reputation_w20() {
    let h = harness_with(unlimited_config(), AsnTable::default()).await;
    let routers: Vec<_> = (0..30u8)
        .map(|i| router(30 + i, &format!("10.{}.0.1:8471", 100 + i)))
        .collect();
    for (i, r) in routers.iter().enumerate() {
        let (st, v) = h.register(r, &format!("10.{}.0.1", 100 + i)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    for _round in 0..10 {
        h.clock.advance(300.0);
        for r in &routers {
            let (st, v) = h.heartbeat(r).await;
            assert_eq!(st, StatusCode::OK, "{v}");
        }
        h.state.health_check().await.unwrap();
    }
    assert_eq!(
        h.discovered_ids(20).await.len(),
        20,
        "all remain discoverable"
    );
    let rec = h.state_router(&routers[0].router_id()).await;
    assert!(
        rec.reputation.score > 0.5,
        "score grew: {}",
        rec.reputation.score
    );
}

fn asn_of_63() -> String {
    router(63, "").router_id()
}

#[tokio::test]
async fn selection_takes_one_router_per_slash16_and_spreads_asns() {
    let asns =
        AsnTable::parse("10.20.0.0/16\t100\n10.21.0.0/16\t100\n10.22.0.0/16\t200\n").unwrap();
    let h = harness_with(unlimited_config(), asns).await;
    for (n, ep) in [
        (60, "10.20.0.1:1000"),
        (61, "10.20.5.1:2000"),
        (62, "10.21.0.1:3000"),
        (63, "10.22.0.1:4000"),
    ] {
        let (st, v) = h.register(&router(n, ep), &format!("10.{}.0.9", n)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let ids = h.discovered_ids(2).await;
    assert_eq!(ids.len(), 2);
    let excluded = router(63, "").router_id();
    let body = json!({"requested_count": 10, "preferences": {"exclude": [excluded]}});
    let (_, v) = h.post("/discover", &body, "127.0.0.1").await;
    let got: Vec<&str> = v["routers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["router_id"].as_str().unwrap())
        .collect();
    assert_eq!(got.len(), 2);
    assert!(
        !got.contains(&excluded.as_str()),
        "exclude preference honoured (W22)"
    );
    let answer = h.discover(10).await;
    for entry in answer["routers"].as_array().unwrap() {
        let want = if entry["router_id"] == asn_of_63() {
            200
        } else {
            100
        };
        assert_eq!(
            entry["asn"], want,
            "the seed serves its ASN mapping, signed"
        );
    }
    let all = h.discovered_ids(10).await;
    assert_eq!(all.len(), 3, "two routers in 10.20/16 give one");
    let first_two: Vec<_> = all.iter().take(2).collect();
    let asn200 = router(63, "").router_id();
    assert!(
        ids.contains(&asn200),
        "first pass spreads ASNs: {first_two:?}"
    );
}

/// `/status` has every sub-object of spec §4.1, so reference tools keep working.
#[tokio::test]
async fn status_has_the_reference_sub_objects() {
    let h = harness().await;
    let a = router(1, "10.1.0.1:8471");
    assert_eq!(h.register(&a, "192.0.2.1").await.0, StatusCode::OK);
    assert_eq!(
        h.register(&router(2, "10.2.0.1:8471"), "192.0.2.2").await.0,
        StatusCode::OK
    );
    h.clock.advance(10.0);
    assert_eq!(h.heartbeat(&a).await.0, StatusCode::OK);
    let (st, v) = h.raw("GET", "/status", Vec::new(), "127.0.0.1").await;
    assert_eq!(st, StatusCode::OK);
    let sy = &v["sybil_resistance"];
    let rl = &sy["rate_limiter"];
    assert_eq!(
        (
            &rl["total_events"],
            &rl["unique_ips"],
            &rl["unique_subnets"]
        ),
        (&json!(2), &json!(2), &json!(1)),
        "{v}"
    );
    assert_eq!(rl["registrations_per_hour"], 2);
    assert!(rl["window_seconds"].is_number());
    assert_eq!(
        sy["correlation"],
        json!({"tracked_routers": 1, "endpoint_patterns": 2, "correlation_groups": 0})
    );
    assert_eq!(sy["adaptive_pow"]["current_rate"], 2);
    assert_eq!(sy["reputation"]["flagged"], 0);
    assert_eq!(v["health_monitor"]["healthy"], 1);
    assert_eq!(v["revocations"]["total_revocations"], 0);
    assert_eq!(v["peering"]["peer_states"], json!({}));
    for k in [
        "seed_id",
        "status",
        "timestamp",
        "routers",
        "misbehavior",
        "known_seeds",
    ] {
        assert!(!v[k].is_null(), "{k} missing in {v}");
    }
}

#[tokio::test]
async fn metrics_count_registrations_and_rejections() {
    let h = harness().await;
    h.register(&router(95, "10.60.0.1:8471"), "10.60.0.1").await;
    h.post("/register", &json!({}), "10.60.0.1").await;
    let text = ournet_seed::metrics::render(&h.state).await.unwrap();
    assert!(text.contains("ournet_seed_registrations_total 1"), "{text}");
    assert!(text.contains("ournet_seed_rejections_total{reason=\"missing_router_id\"} 1"));
    assert!(text.contains("ournet_seed_routers{state=\"registered\"} 1"));
    assert!(text.contains("ournet_seed_pow_difficulty 4"), "{text}");
    assert!(text.contains("ournet_seed_registrations_last_hour 1"));
    assert!(text.contains("ournet_seed_request_seconds_count{route=\"register\"} 2"));
}

#[tokio::test]
async fn per_ip_request_rate_limit_w27() {
    let h = harness_with(
        ournet_seed::config::SeedConfig {
            requests_per_second_per_ip: 1.0,
            request_burst_per_ip: 3.0,
            ..test_config()
        },
        AsnTable::default(),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            h.raw("GET", "/health", Vec::new(), "10.70.0.1").await.0,
            StatusCode::OK
        );
    }
    let (st, v) = h.raw("GET", "/health", Vec::new(), "10.70.0.1").await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("request_rate_limited"))
    );
    assert_eq!(
        h.raw("GET", "/health", Vec::new(), "10.70.0.2").await.0,
        StatusCode::OK
    );
    h.clock.advance(1.0);
    assert_eq!(
        h.raw("GET", "/health", Vec::new(), "10.70.0.1").await.0,
        StatusCode::OK
    );
}

/// Answers cached under the raw body: a repeat is the same signed answer, a differently
/// spelled body with the same question gets the same list, and a bad body is still refused.
#[tokio::test]
async fn discover_answers_repeat_per_body_and_per_question() {
    let h = harness().await;
    for i in 0..3u8 {
        let r = router(20 + i, &format!("10.{}.0.1:8471", 30 + i));
        let ip = format!("198.51.{i}.9");
        assert_eq!(h.register(&r, &ip).await.0, StatusCode::OK);
    }
    let body = br#"{"requested_count":2,"preferences":{}}"#.to_vec();
    let (st, first) = h.raw("POST", "/discover", body.clone(), "127.0.0.1").await;
    assert_eq!(st, StatusCode::OK);
    let (_, again) = h.raw("POST", "/discover", body, "127.0.0.1").await;
    assert_eq!(first, again);
    let spaced = br#"{ "preferences": {}, "requested_count": 2 }"#.to_vec();
    let (_, same) = h.raw("POST", "/discover", spaced, "127.0.0.1").await;
    assert_eq!(first, same);
    assert_eq!(first["routers"].as_array().unwrap().len(), 2);
    let (st, v) = h
        .raw("POST", "/discover", b"[1]".to_vec(), "127.0.0.1")
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
}
