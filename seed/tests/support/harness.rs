//! In-process harness: the seed's `app` on a simulated clock and an in-memory store.
#![allow(dead_code, reason = "shared by several test crates")]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_seed::client::RouterIdentity;
use ournet_seed::clock::ManualClock;
use ournet_seed::config::SeedConfig;
use ournet_seed::policy::asn::AsnTable;
use ournet_seed::probe::FixedProber;
use ournet_seed::store::Store;
use ournet_seed::store::sqlite::SqliteStore;
use ournet_seed::{AppState, app};
use serde_json::{Value, json};
use tower::ServiceExt;

pub(crate) const T0: f64 = 1_800_000_000.0;

pub(crate) struct H {
    pub(crate) state: AppState,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) app: Router,
}

pub(crate) fn test_config() -> SeedConfig {
    SeedConfig {
        pow_difficulty_base: 4,
        pow_difficulty_second: 5,
        pow_difficulty_third_plus: 6,
        requests_per_second_per_ip: 1000.0,
        request_burst_per_ip: 1000.0,
        discover_cache_seconds: 0.0,
        ..SeedConfig::default()
    }
}

/// [`test_config`] with the registration rate limit off, for tests that register many
/// routers from neighbouring addresses.
pub(crate) fn unlimited_config() -> SeedConfig {
    SeedConfig {
        rate_limit_enabled: false,
        ..test_config()
    }
}

pub(crate) async fn harness_with(cfg: SeedConfig, asns: AsnTable) -> H {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let clock = Arc::new(ManualClock::new(T0));
    let key = IdentityKeypair::from_secret_bytes(&[42u8; 32]);
    let state = AppState::new(
        cfg,
        store,
        key,
        clock.clone(),
        Arc::new(FixedProber(true)),
        asns,
    )
    .await
    .unwrap();
    let app = app(state.clone());
    H { state, clock, app }
}

pub(crate) async fn harness() -> H {
    harness_with(test_config(), AsnTable::default()).await
}

pub(crate) fn router(n: u8, endpoint: &str) -> RouterIdentity {
    let mut capacity = serde_json::Map::new();
    capacity.insert("max_connections".into(), json!(100));
    capacity.insert("bandwidth_mbps".into(), json!(100.0));
    RouterIdentity {
        identity: IdentityKeypair::from_secret_bytes(&[n; 32]),
        endpoints: vec![endpoint.to_owned()],
        capacity,
        region: Some("DE".into()),
        onion_key: EncryptionKeypair::from_secret_bytes(&[n.wrapping_add(100); 32]).public(),
        link_key: EncryptionKeypair::from_secret_bytes(&[n.wrapping_add(200); 32]).public(),
        registered_at: T0,
    }
}

impl H {
    pub(crate) fn now(&self) -> f64 {
        self.state.now()
    }

    pub(crate) async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        ip: &str,
    ) -> (StatusCode, Value) {
        let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v)
    }

    pub(crate) async fn post(&self, path: &str, body: &Value, ip: &str) -> (StatusCode, Value) {
        self.raw("POST", path, serde_json::to_vec(body).unwrap(), ip)
            .await
    }

    pub(crate) async fn challenge(&self, ip: &str) -> (String, u32) {
        let (st, c) = self.raw("GET", "/challenge", Vec::new(), ip).await;
        assert_eq!(st, StatusCode::OK, "{c}");
        (
            c["challenge"].as_str().unwrap().to_owned(),
            c["difficulty"].as_u64().unwrap() as u32,
        )
    }

    pub(crate) async fn register(&self, r: &RouterIdentity, ip: &str) -> (StatusCode, Value) {
        let (c, d) = self.challenge(ip).await;
        let body = r.register_body(&c, d, self.now(), 1 << 24).unwrap();
        self.post("/register", &Value::Object(body), ip).await
    }

    pub(crate) async fn heartbeat(&self, r: &RouterIdentity) -> (StatusCode, Value) {
        let m = json!({"load_pct": 10.0, "uptime_pct": 99.9})
            .as_object()
            .cloned()
            .unwrap();
        let body = r.heartbeat_body(self.now(), &m);
        self.post("/heartbeat", &Value::Object(body), "127.0.0.1")
            .await
    }

    pub(crate) async fn discover(&self, count: u32) -> Value {
        let (st, v) = self
            .post("/discover", &json!({"requested_count": count}), "127.0.0.1")
            .await;
        assert_eq!(st, StatusCode::OK);
        v
    }

    pub(crate) async fn discovered_ids(&self, count: u32) -> Vec<String> {
        let v = self.discover(count).await;
        v["routers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["router_id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The stored record of router `id` (it must exist).
    pub(crate) async fn state_router(&self, id: &str) -> ournet_seed::record::RouterRecord {
        self.state.store().router(id).await.unwrap().unwrap()
    }
}
