#![allow(clippy::unwrap_used, reason = "test code")]
//! `POST /address` and `GET /address/{identity}` in-process, on a simulated clock.

#[path = "support/harness.rs"]
mod harness;

use axum::http::StatusCode;
use harness::{H, T0, harness, harness_with, test_config};
use ournet_proto::address::NodeAddress;
use ournet_proto::circuit::PathHop;
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_seed::config::SeedConfig;
use ournet_seed::policy::asn::AsnTable;

const NOW: u64 = T0 as u64;

fn node(n: u8) -> IdentityKeypair {
    IdentityKeypair::from_secret_bytes(&[n; 32])
}

fn address(n: u8, issued_at: u64, expires_at: u64) -> NodeAddress {
    let home = PathHop {
        identity: node(200).public(),
        onion_key: EncryptionKeypair::from_secret_bytes(&[201; 32]).public(),
        link_key: EncryptionKeypair::from_secret_bytes(&[202; 32]).public(),
        addr: "192.0.2.1:9001".parse().unwrap(),
    };
    let enc = EncryptionKeypair::from_secret_bytes(&[n.wrapping_add(50); 32]).public();
    NodeAddress::sign(&node(n), enc, vec![home], issued_at, expires_at).unwrap()
}

async fn publish(h: &H, text: &str) -> (StatusCode, serde_json::Value) {
    h.raw("POST", "/address", text.as_bytes().to_vec(), "127.0.0.1")
        .await
}

async fn lookup(h: &H, n: u8) -> (StatusCode, serde_json::Value) {
    let path = format!("/address/{}", node(n).public().to_hex());
    h.raw("GET", &path, Vec::new(), "127.0.0.1").await
}

#[tokio::test]
async fn a_signed_address_is_stored_served_and_replaced_only_by_a_newer_one() {
    let h = harness().await;
    let first = address(1, NOW, NOW + 3600);
    let (st, v) = publish(&h, &first.to_string()).await;
    assert_eq!(
        (st, v["action"].as_str()),
        (StatusCode::OK, Some("stored")),
        "{v}"
    );
    let (st, v) = lookup(&h, 1).await;
    assert_eq!(st, StatusCode::OK);
    let served = NodeAddress::parse(v["address"].as_str().unwrap(), NOW).unwrap();
    assert_eq!(served, first);
    let (st, v) = publish(&h, &first.to_string()).await;
    assert_eq!(
        (st, v["action"].as_str()),
        (StatusCode::OK, Some("unchanged"))
    );
    // An older (or equally old) different address does not replace the stored one.
    let older = address(1, NOW - 10, NOW + 7200);
    let (st, v) = publish(&h, &older.to_string()).await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("stale_address"))
    );
    h.clock.advance(5.0);
    let newer = address(1, NOW + 5, NOW + 7200);
    assert_eq!(publish(&h, &newer.to_string()).await.0, StatusCode::OK);
    let (_, v) = lookup(&h, 1).await;
    assert_eq!(v["address"].as_str(), Some(newer.to_string().as_str()));
}

#[tokio::test]
async fn unknown_expired_and_malformed_lookups() {
    let h = harness().await;
    assert_eq!(lookup(&h, 2).await.0, StatusCode::NOT_FOUND);
    let a = address(2, NOW, NOW + 60);
    assert_eq!(publish(&h, &a.to_string()).await.0, StatusCode::OK);
    assert_eq!(lookup(&h, 2).await.0, StatusCode::OK);
    h.clock.advance(60.0);
    let (st, v) = lookup(&h, 2).await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (st, v) = h.raw("GET", "/address/zz", Vec::new(), "127.0.0.1").await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_identity"))
    );
}

#[tokio::test]
async fn forged_expired_oversized_and_long_lived_addresses_are_refused() {
    let h = harness().await;
    let reason = |v: serde_json::Value| v["reason"].as_str().unwrap().to_owned();
    // One bit flipped in the signed bytes: the node's signature no longer verifies.
    let text = address(3, NOW, NOW + 60).to_string();
    let mut bytes = text.into_bytes();
    let i = bytes.len() - 20;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let (st, v) = h.raw("POST", "/address", bytes, "127.0.0.1").await;
    assert_eq!(
        (st, reason(v)),
        (StatusCode::BAD_REQUEST, "invalid_signature".into())
    );
    let expired = address(3, NOW - 100, NOW - 1).to_string();
    assert_eq!(reason(publish(&h, &expired).await.1), "address_expired");
    let (_, v) = publish(&h, &"x".repeat(3000)).await;
    assert_eq!(reason(v), "address_too_long");
    let (_, v) = publish(&h, "ournet1:not-base64!").await;
    assert_eq!(reason(v), "invalid_address");
    let long = address(3, NOW, NOW + 365 * 86_400).to_string();
    assert_eq!(
        reason(publish(&h, &long).await.1),
        "address_lifetime_too_long"
    );
    assert_eq!(
        lookup(&h, 3).await.0,
        StatusCode::NOT_FOUND,
        "nothing was stored"
    );
}

#[tokio::test]
async fn the_address_count_is_bounded() {
    let cfg = SeedConfig {
        max_addresses: 2,
        ..test_config()
    };
    let h = harness_with(cfg, AsnTable::default()).await;
    for n in 1..=2 {
        let a = address(n, NOW, NOW + 60);
        assert_eq!(publish(&h, &a.to_string()).await.0, StatusCode::OK);
    }
    let (st, v) = publish(&h, &address(3, NOW, NOW + 60).to_string()).await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("address_store_full"))
    );
    // A known identity may still republish.
    h.clock.advance(1.0);
    let again = address(1, NOW + 1, NOW + 120);
    assert_eq!(publish(&h, &again.to_string()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn gossip_carries_addresses_and_merges_them_as_if_published_here() {
    // A node that moved its homes publishes to one seed; a sender asking another seed must
    // find the move too. A peer's gossip cannot forge, revive or roll back an address.
    let peer = IdentityKeypair::from_secret_bytes(&[90u8; 32]);
    let cfg = SeedConfig {
        peer_seeds: vec![ournet_seed::config::PeerSeed {
            url: "http://127.0.0.1:1".into(),
            key: peer.public().to_hex(),
        }],
        ..test_config()
    };
    let h = harness_with(cfg, AsnTable::default()).await;
    let kept = address(2, NOW, NOW + 3600);
    assert_eq!(publish(&h, &kept.to_string()).await.0, StatusCode::OK);

    let moved = address(1, NOW, NOW + 3600);
    let rollback = address(2, NOW - 10, NOW + 3600);
    let expired = address(3, NOW - 7200, NOW - 3600);
    let mut body = serde_json::json!({
        "seed_id": peer.public().to_hex(), "timestamp": h.now(), "routers": [],
        "revocations": [],
        "addresses": [moved.to_string(), rollback.to_string(), expired.to_string(),
            "not an address", 7],
    });
    let msg = ournet_proto::canonical_json::to_compact(&body).unwrap();
    body["signature"] = serde_json::json!(peer.sign(msg.as_bytes()).to_hex());
    let (st, answer) = h.post("/gossip/exchange", &body, "127.0.0.1").await;
    assert_eq!(st, StatusCode::OK, "{answer}");

    let (st, v) = lookup(&h, 1).await;
    assert_eq!(st, StatusCode::OK, "the gossiped address is served");
    assert_eq!(v["address"].as_str(), Some(moved.to_string().as_str()));
    let (_, v) = lookup(&h, 2).await;
    assert_eq!(
        v["address"].as_str(),
        Some(kept.to_string().as_str()),
        "an older gossiped address does not roll back"
    );
    assert_eq!(lookup(&h, 3).await.0, StatusCode::NOT_FOUND, "expired");

    // Our answer carries what we hold, the most recently issued first.
    let ours: Vec<&str> = answer["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert_eq!(ours.len(), 2, "{answer}");
    assert!(ours.contains(&moved.to_string().as_str()));
    assert!(ours.contains(&kept.to_string().as_str()));
}
