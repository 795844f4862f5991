#![allow(clippy::unwrap_used, reason = "test code")]
//! The HTTP API's trust paths in-process (`app(state)` + `oneshot`), on a simulated clock:
//! misbehavior reports, revocations and gossip, each of which must be signed by someone the
//! seed trusts.

#[path = "support/harness.rs"]
mod harness;

use axum::http::StatusCode;
use harness::{harness, harness_with, router, test_config, unlimited_config};
use ournet_proto::keys::IdentityKeypair;
use ournet_seed::policy::asn::AsnTable;
use serde_json::{Value, json};

#[tokio::test]
async fn misbehavior_reports_need_registered_signed_reporters() {
    let h = harness_with(unlimited_config(), AsnTable::default()).await;
    let target = router(70, "10.30.0.1:8471");
    h.register(&target, "10.30.0.1").await;
    let outsider = router(71, "10.31.0.1:8471");
    let body = outsider.report_body(&target.router_id(), 0.9, h.now());
    let (st, v) = h
        .post("/report_misbehavior", &Value::Object(body), "10.31.0.1")
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::FORBIDDEN, Some("unregistered_reporter"))
    );
    let mut unsigned = outsider.report_body(&target.router_id(), 0.9, h.now());
    unsigned.remove("signature");
    let (_, v) = h
        .post("/report_misbehavior", &Value::Object(unsigned), "10.31.0.1")
        .await;
    assert_eq!(v["reason"], "missing_signature");
    let mut flagged = Vec::new();
    for n in 0..3u8 {
        let rep = router(72 + n, &format!("10.{}.0.1:8471", 40 + n));
        h.register(&rep, &format!("10.{}.0.1", 40 + n)).await;
        let body = rep.report_body(&target.router_id(), 0.9, h.now());
        let (st, v) = h
            .post("/report_misbehavior", &Value::Object(body), "10.40.0.1")
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        flagged.push(v["router_flagged"].as_bool().unwrap());
    }
    assert_eq!(flagged, vec![false, false, true]);
}

fn revocation(
    issuer: &IdentityKeypair,
    seed_id: &str,
    ts: f64,
    effective_at: f64,
    id: &str,
) -> Value {
    let mut o = json!({
        "type": "seed_revocation", "revocation_id": id, "seed_id": seed_id, "reason": "retired",
        "reason_detail": "", "timestamp": ts, "effective_at": effective_at,
        "issuer_id": issuer.public().to_hex(),
    });
    let msg = ournet_proto::canonical_json::to_compact(&o).unwrap();
    o["signature"] = json!(issuer.sign(msg.as_bytes()).to_hex());
    o
}

#[tokio::test]
async fn revocations_cannot_be_postponed_or_forged_w13() {
    let h = harness().await;
    let seed = IdentityKeypair::from_secret_bytes(&[80u8; 32]);
    let sid = seed.public().to_hex();
    let now = h.now();
    let (st, v) = h
        .post(
            "/revoke_seed",
            &revocation(&seed, &sid, now, now, "a"),
            "127.0.0.1",
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let later = revocation(&seed, &sid, now + 1.0, now + 1e6, "b");
    let (st, v) = h.post("/revoke_seed", &later, "127.0.0.1").await;
    assert_eq!(
        (st, v["revocation_id"].as_str()),
        (StatusCode::OK, Some("a")),
        "stored one stands"
    );
    let other = IdentityKeypair::from_secret_bytes(&[81u8; 32]);
    let (_, v) = h
        .post(
            "/revoke_seed",
            &revocation(&other, &sid, now, now, "c"),
            "127.0.0.1",
        )
        .await;
    assert_eq!(v["reason"], "untrusted_issuer");
    let (_, v) = h
        .post(
            "/revoke_seed",
            &revocation(&seed, &sid, now + 1e5, now, "d"),
            "127.0.0.1",
        )
        .await;
    assert_eq!(v["reason"], "future_timestamp");
    let mut forged = revocation(&seed, &sid, now, now - 10.0, "e");
    forged["reason"] = json!("key_compromise");
    let (_, v) = h.post("/revoke_seed", &forged, "127.0.0.1").await;
    assert_eq!(
        v["reason"],
        "invalid_signature:signature_verification_failed"
    );
    let (st, v) = h.raw("GET", "/revocations", Vec::new(), "127.0.0.1").await;
    assert_eq!(
        (st, v["revoked_seed_ids"][0].as_str()),
        (StatusCode::OK, Some(sid.as_str()))
    );
    let (_, v) = h.raw("GET", "/status", Vec::new(), "127.0.0.1").await;
    let r = &v["revocations"];
    assert_eq!(
        (
            &r["enabled"],
            &r["total_revocations"],
            &r["effective_revocations"]
        ),
        (&json!(true), &json!(1), &json!(1)),
        "{v}"
    );
    assert_eq!(r["revoked_seeds"], json!([sid]));
    assert!(r["revocation_list_path"].is_null());
}

#[tokio::test]
async fn gossip_requires_a_configured_peer_and_rechecks_router_signatures_w11() {
    let peer = IdentityKeypair::from_secret_bytes(&[90u8; 32]);
    let cfg = ournet_seed::config::SeedConfig {
        peer_seeds: vec![ournet_seed::config::PeerSeed {
            url: "http://127.0.0.1:1".into(),
            key: peer.public().to_hex(),
        }],
        ..test_config()
    };
    let h = harness_with(cfg, AsnTable::default()).await;
    let good = router(91, "10.50.0.1:8471");
    let mut good_entry = good.descriptor(h.now()).unwrap().to_json().unwrap();
    good_entry.insert(
        "health".into(),
        json!({"last_seen": h.now() + 1000.0, "uptime_pct": 100.0}),
    );
    let mut forged = router(92, "10.51.0.1:8471")
        .descriptor(h.now())
        .unwrap()
        .to_json()
        .unwrap();
    forged.insert("endpoints".into(), json!(["203.0.113.66:8471"]));
    let body = |signer: &IdentityKeypair| {
        let mut o = json!({
            "seed_id": signer.public().to_hex(), "timestamp": h.now(),
            "routers": [good_entry.clone(), forged.clone()], "revocations": [],
        });
        let msg = ournet_proto::canonical_json::to_compact(&o).unwrap();
        o["signature"] = json!(signer.sign(msg.as_bytes()).to_hex());
        o
    };
    let stranger = IdentityKeypair::from_secret_bytes(&[93u8; 32]);
    let (st, v) = h
        .post("/gossip/exchange", &body(&stranger), "127.0.0.1")
        .await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::FORBIDDEN, Some("unknown_peer"))
    );
    let (st, v) = h.post("/gossip/exchange", &body(&peer), "127.0.0.1").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v["signature"].is_string());
    assert_eq!(
        h.discovered_ids(5).await,
        vec![good.router_id()],
        "forged entry skipped"
    );
    let rec = h.state_router(&good.router_id()).await;
    assert!(rec.health.last_seen <= h.now(), "future last_seen capped");
}

#[tokio::test]
async fn revocation_list_file_needs_a_trusted_authority_signature() {
    let authority = IdentityKeypair::from_secret_bytes(&[85u8; 32]);
    let cfg = ournet_seed::config::SeedConfig {
        seed_revocation_trusted_authorities: vec![authority.public().to_hex()],
        ..test_config()
    };
    let h = harness_with(cfg, AsnTable::default()).await;
    let target = IdentityKeypair::from_secret_bytes(&[86u8; 32])
        .public()
        .to_hex();
    let now = h.now();
    let rev = revocation(&authority, &target, now, now, "auth-1");
    let mut list = json!({
        "version": 1, "generated_at": now, "revocations": [rev],
        "authority_id": authority.public().to_hex(),
    });
    let msg = ournet_proto::canonical_json::to_compact(&list).unwrap();
    list["signature"] = json!(authority.sign(msg.as_bytes()).to_hex());
    let dir = std::env::temp_dir().join(format!("ournet-revlist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("list.json");
    let mut tampered = list.clone();
    tampered["generated_at"] = json!(now + 1.0);
    std::fs::write(&path, serde_json::to_vec(&tampered).unwrap()).unwrap();
    let (n, errors) = ournet_seed::revocation::load_list_file(&h.state, &path)
        .await
        .unwrap();
    assert_eq!(
        (n, errors[0].starts_with("list_signature_invalid:")),
        (0, true),
        "{errors:?}"
    );
    std::fs::write(&path, serde_json::to_vec(&list).unwrap()).unwrap();
    let (n, errors) = ournet_seed::revocation::load_list_file(&h.state, &path)
        .await
        .unwrap();
    assert_eq!((n, errors.len()), (1, 0), "{errors:?}");
    let (_, v) = h
        .raw(
            "GET",
            &format!("/revocations?seed_id={target}"),
            Vec::new(),
            "127.0.0.1",
        )
        .await;
    assert_eq!(
        (v["revoked"].as_bool(), v["revocation"]["source"].as_str()),
        (Some(true), Some("file"))
    );
    let missing = ournet_seed::revocation::load_list_file(&h.state, &dir.join("nope"))
        .await
        .unwrap();
    assert!(missing.1[0].starts_with("file_not_found:"));
    std::fs::remove_dir_all(&dir).unwrap();
}
