//! The HTTP API (spec §4.1, §4.2, plus `/address` for recipient addresses): the reference's paths, field names, status codes and
//! reason strings, strict where the reference is insecure.
//!
//! Every request passes the same layers: a body-size limit (413), a per-IP token bucket (429
//! `request_rate_limited`, W27), a whole-request timeout (408, slow clients included), and a
//! latency metric. Bodies are parsed by hand so that non-JSON, non-objects, wrong types and
//! out-of-range values get a 400 with a `reason`, never a 500 (W25).

mod address;
mod discover;
mod gossip;
mod reports;
mod routers;
mod status;

pub(crate) use gossip::gossip_loop;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ournet_proto::canonical_json;
use ournet_proto::keys::{IdentityPublicKey, Signature, SignatureOk};
use serde_json::{Map, Value, json};
use tower_http::timeout::TimeoutLayer;

use crate::error::AppError;
use crate::state::AppState;

/// The client address a handler sees (the TCP peer, or the forwarded address if configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The public API router. Tests drive it with `tower::ServiceExt::oneshot`; a request without
/// `ConnectInfo` counts as coming from 0.0.0.0.
pub fn app(state: AppState) -> Router {
    let cfg = &state.0.cfg;
    let timeout = Duration::from_secs_f64(cfg.request_timeout_seconds.max(0.001));
    Router::new()
        .route("/discover", post(discover::discover))
        .route("/register", post(routers::register))
        .route("/heartbeat", post(routers::heartbeat))
        .route(
            "/challenge",
            get(routers::challenge).post(routers::challenge),
        )
        .route("/report_misbehavior", post(reports::report_misbehavior))
        .route("/revoke_seed", post(reports::revoke_seed))
        .route("/revocations", get(reports::revocations))
        .route("/gossip/exchange", post(gossip::exchange))
        .route("/address", post(address::publish))
        .route("/address/{identity}", get(address::lookup))
        .route("/status", get(status::status))
        .route("/health", get(health))
        .layer(middleware::from_fn_with_state(state.clone(), admit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .with_state(state)
}

/// The metrics router, for the separate metrics listener.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(s): State<AppState>) -> Result<String, AppError> {
    Ok(crate::metrics::render(&s).await?)
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn admit(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let ip = if s.0.cfg.trust_forwarded_for {
        forwarded_for(&req).unwrap_or(peer)
    } else {
        peer
    };
    if !s.admit(ip) {
        s.0.metrics.rejected("request_rate_limited");
        return AppError::with(
            StatusCode::TOO_MANY_REQUESTS,
            "rejected",
            "request_rate_limited",
        )
        .into_response();
    }
    req.extensions_mut().insert(ClientIp(ip));
    let route = route_name(req.uri().path());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    s.0.metrics.observe(route, started.elapsed().as_secs_f64());
    resp
}

fn forwarded_for(req: &Request<Body>) -> Option<IpAddr> {
    let h = req.headers().get("x-forwarded-for")?.to_str().ok()?;
    h.rsplit(',').next()?.trim().parse().ok()
}

fn route_name(path: &str) -> &'static str {
    match path {
        "/discover" => "discover",
        "/register" => "register",
        "/heartbeat" => "heartbeat",
        "/challenge" => "challenge",
        "/report_misbehavior" => "report_misbehavior",
        "/revoke_seed" => "revoke_seed",
        "/revocations" => "revocations",
        "/gossip/exchange" => "gossip",
        "/status" => "status",
        "/health" => "health",
        "/address" => "address",
        p if p.starts_with("/address/") => "address_lookup",
        _ => "other",
    }
}

/// Parses a body that must be a JSON object. `status_word` is the reference's `status` value
/// for this endpoint's errors (`rejected` or `error`).
fn object(body: &Bytes, status_word: &str) -> Result<Map<String, Value>, AppError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(AppError::bad(status_word, "invalid_json")
            .field("detail", "body must be a JSON object")),
        Err(e) => Err(AppError::bad(status_word, "invalid_json").field("detail", e.to_string())),
    }
}

/// A non-empty string field, or the given `missing_*` reason.
fn required_str<'a>(
    o: &'a Map<String, Value>,
    k: &str,
    status_word: &str,
    reason: &str,
) -> Result<&'a str, AppError> {
    match o.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        None | Some(Value::Null) => Err(AppError::bad(status_word, reason)),
        Some(Value::String(_)) => Err(AppError::bad(status_word, reason)),
        Some(_) => Err(AppError::bad(status_word, "invalid_field").field("detail", k)),
    }
}

/// A signed timestamp within `timestamp_window_seconds` of now (W15).
fn fresh_timestamp(
    s: &AppState,
    o: &Map<String, Value>,
    status_word: &str,
) -> Result<f64, AppError> {
    let ts = match o.get("timestamp") {
        None | Some(Value::Null) => return Err(AppError::bad(status_word, "missing_timestamp")),
        Some(v) => v.as_f64().filter(|t| t.is_finite()).ok_or_else(|| {
            AppError::bad(status_word, "invalid_field").field("detail", "timestamp")
        })?,
    };
    if (ts - s.now()).abs() > s.0.cfg.timestamp_window_seconds {
        return Err(AppError::bad(status_word, "stale_timestamp"));
    }
    Ok(ts)
}

/// Verifies `signature` over the compact canonical JSON of the body without `signature`
/// (spec §3.2), under the hex key `signer`.
fn verify_body(
    o: &Map<String, Value>,
    signer: &str,
    status_word: &str,
) -> Result<SignatureOk, AppError> {
    let invalid = || AppError::bad(status_word, "invalid_signature");
    let sig = match o.get("signature") {
        Some(Value::String(s)) if !s.is_empty() => Signature::from_hex(s).map_err(|_| invalid())?,
        _ => return Err(AppError::bad(status_word, "missing_signature")),
    };
    let key = IdentityPublicKey::from_hex(signer).map_err(|_| invalid())?;
    let mut unsigned = o.clone();
    unsigned.remove("signature");
    let msg = canonical_json::to_compact(&Value::Object(unsigned)).map_err(|_| invalid())?;
    key.verify(msg.as_bytes(), &sig).map_err(|_| invalid())
}

/// Signs `o` the way [`verify_body`] checks (used for our outbound gossip).
fn sign_body(s: &AppState, o: &mut Map<String, Value>) {
    o.remove("signature");
    let msg = canonical_json::to_compact(&Value::Object(o.clone())).unwrap_or_default();
    let sig = s.0.seed_key.sign(msg.as_bytes());
    o.insert("signature".into(), sig.to_hex().into());
}

/// Wraps a handler result so rejections are counted by reason.
fn counted(s: &AppState, r: Result<Response, AppError>) -> Response {
    match r {
        Ok(resp) => resp,
        Err(e) => {
            s.0.metrics.rejected(e.reason());
            e.into_response()
        }
    }
}
