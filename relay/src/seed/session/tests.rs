//! A [`Session`] against a scripted seed (axum on loopback): the seed first asks for less PoW
//! than it then requires, and forgets the relay at the second heartbeat.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use ournet_proto::canonical_json;
use ournet_proto::descriptor::SignedDescriptor;
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair, IdentityPublicKey, Signature};
use ournet_proto::pow;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};

use super::super::request::Plan;
use super::super::{SeedMetrics, SeedUrl};
use super::Session;
use crate::config::Config;
use crate::core::RelayContext;
use crate::cross::Postman;
use crate::directory::Directory;
use crate::keys::RelayKeys;
use crate::metrics::WorkerMetrics;

/// The difficulty the scripted seed issues, and the one it then requires.
const ISSUED: u32 = 2;
const REQUIRED: u32 = 6;

#[derive(Debug, Default)]
struct Script {
    /// Difficulty of every `/register` body, in order.
    register_difficulties: Vec<u32>,
    /// Every heartbeat body whose signature checked.
    heartbeats: Vec<Value>,
}

type Shared = Arc<Mutex<Script>>;

/// Checks the body signature the way the seed does (spec §3.2).
fn signed_by_router(body: &Value) -> bool {
    let mut o = body.as_object().cloned().unwrap_or_default();
    let sig = o
        .remove("signature")
        .and_then(|s| Signature::from_hex(s.as_str()?).ok());
    let key = body["router_id"]
        .as_str()
        .and_then(|k| IdentityPublicKey::from_hex(k).ok());
    let msg = canonical_json::to_compact(&Value::Object(o)).unwrap();
    matches!((key, sig), (Some(k), Some(s)) if k.verify(msg.as_bytes(), &s).is_ok())
}

async fn challenge() -> Json<Value> {
    Json(json!({"challenge": "c1-test", "difficulty": ISSUED, "expires_at": 0.0}))
}

async fn register(State(s): State<Shared>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    assert!(signed_by_router(&body), "register body signature");
    let d = SignedDescriptor::from_json(&body)
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!(d.body().endpoints, vec!["127.0.0.9:9001".to_owned()]);
    let proof = &body["proof_of_work"];
    s.lock()
        .unwrap()
        .register_difficulties
        .push(proof["difficulty"].as_u64().unwrap() as u32);
    let nonce = proof["nonce"].as_u64().unwrap();
    let id = body["router_id"].as_str().unwrap();
    if pow::verify("c1-test", nonce, id, REQUIRED).is_err() {
        let answer = json!({"status": "rejected", "reason": "insufficient_pow",
            "required_difficulty": REQUIRED});
        return (StatusCode::BAD_REQUEST, Json(answer));
    }
    (
        StatusCode::OK,
        Json(json!({"status": "accepted", "action": "registered"})),
    )
}

async fn heartbeat(State(s): State<Shared>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    assert!(signed_by_router(&body), "heartbeat signature");
    let mut s = s.lock().unwrap();
    s.heartbeats.push(body);
    if s.heartbeats.len() != 2 {
        (
            StatusCode::OK,
            Json(json!({"status": "ok", "next_heartbeat_in": 1.0})),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"status": "error", "reason": "not_registered"})),
        )
    }
}

fn context() -> Arc<RelayContext> {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let identity = IdentityKeypair::generate(&mut rng);
    let link_key = EncryptionKeypair::generate(&mut rng);
    let onion = EncryptionKeypair::generate(&mut rng);
    let config = Config::default();
    let metrics: Vec<_> = (0..2).map(|_| Arc::new(WorkerMetrics::default())).collect();
    // One worker of two runs: uptime is measured as half.
    crate::metrics::set(&metrics[0].alive, 1);
    Arc::new(RelayContext {
        keys: RelayKeys::new(identity, onion, link_key),
        directory: Directory::new(&config),
        postman: Postman::new(Vec::new()),
        metrics,
        shutdown: AtomicBool::new(false),
        config,
    })
}

#[tokio::test]
async fn resolves_at_the_required_difficulty_heartbeats_and_registers_again_when_forgotten() {
    let script = Shared::default();
    let app = Router::new()
        .route("/challenge", get(challenge))
        .route("/register", post(register))
        .route("/heartbeat", post(heartbeat))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = SeedUrl::parse(&listener.local_addr().unwrap().to_string()).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let ctx = context();
    let plan = Arc::new(Plan {
        ctx: ctx.clone(),
        endpoint: "127.0.0.9:9001".parse().unwrap(),
        registered_at: 1_700_000_000.0,
        started: Instant::now(),
    });
    let metrics = Arc::new(SeedMetrics::default());
    let task = tokio::spawn(Session::new(url, plan, metrics.clone()).run());
    // The deadline only turns a hang into a failure.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.heartbeats.load(Ordering::Relaxed) < 2 {
        assert!(
            Instant::now() < deadline,
            "no heartbeat after registering again: {metrics:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ctx.shutdown.store(true, Ordering::Relaxed);
    task.await.unwrap();

    let s = script.lock().unwrap();
    assert_eq!(
        s.register_difficulties,
        [ISSUED, REQUIRED, ISSUED, REQUIRED]
    );
    assert_eq!(
        metrics.pow_difficulty.load(Ordering::Relaxed),
        u64::from(REQUIRED)
    );
    assert_eq!(metrics.registrations.load(Ordering::Relaxed), 2);
    assert_eq!(metrics.heartbeats.load(Ordering::Relaxed), 2);
    assert_eq!(metrics.heartbeat_failures.load(Ordering::Relaxed), 1);
    let hb = &s.heartbeats[0];
    assert!(
        // Durations round to nanoseconds.
        (hb["uptime_pct"].as_f64().unwrap() - 50.0).abs() < 1e-3,
        "{hb}"
    );
    assert_eq!(hb["load_pct"], 0.0);
    assert!(hb["timestamp"].as_f64() < s.heartbeats[1]["timestamp"].as_f64());
}
