//! `/challenge`, `/register` and `/heartbeat`: a router's life at the seed (spec §4.1, §6.1).
//!
//! Registration differs from the reference where it is insecure: the body must carry a signed
//! descriptor (W1), a fresh timestamp (W15) and a PoW over a seed-issued, unexpired, unspent
//! challenge (W15); an update keeps health and reputation (W32) and must be newer than the
//! stored descriptor. Heartbeats must be signed, fresh and newer than the last one (W10, W15);
//! endpoints change only through a newly signed descriptor, which is probed (W10).

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ournet_proto::descriptor::{SignedDescriptor, VerifiedDescriptor};
use ournet_proto::pow::{self, FreshChallenge, PowError};
use rand_core::OsRng;
use serde_json::{Map, Value, json};

use super::{ClientIp, counted, fresh_timestamp, object, required_str, verify_body};
use crate::error::AppError;
use crate::policy::{self, RegStats};
use crate::probe::ProbeTarget;
use crate::record::{Health, RouterRecord};
use crate::state::AppState;
use crate::store::{
    NewRegistration, RegEvent, RegisterOutcome, StoreError, UPDATE_ATTEMPTS, Version, backoff,
};

pub(super) async fn challenge(State(s): State<AppState>, ip: Extension<ClientIp>) -> Response {
    let r = challenge_inner(&s, ip.0.0.to_string()).await;
    counted(&s, r)
}

async fn challenge_inner(s: &AppState, ip: String) -> Result<Response, AppError> {
    let stats = reg_stats(s, &ip).await?;
    let c =
        s.0.challenge_key
            .issue(s.now(), s.0.cfg.pow_challenge_ttl_seconds, &mut OsRng);
    Ok(Json(json!({
        "challenge": c.token,
        "expires_at": c.expires_at,
        "difficulty": policy::required_difficulty(&s.0.cfg, &stats),
        "seed_id": s.seed_id(),
    }))
    .into_response())
}

async fn reg_stats(s: &AppState, ip: &str) -> Result<RegStats, AppError> {
    let cfg = &s.0.cfg;
    let since = s.now() - cfg.rate_limit_window_seconds;
    // Counting past the larger limit changes no decision.
    let cap = if cfg.rate_limit_enabled {
        cfg.rate_limit_max_per_ip.max(cfg.rate_limit_max_per_subnet)
    } else {
        0
    };
    let subnet = policy::subnet_key(ip);
    let mut stats = s.0.store.reg_stats(ip, &subnet, since, cap).await?;
    stats.recent_successes = s.counters().await?.1;
    Ok(stats)
}

pub(super) async fn register(
    State(s): State<AppState>,
    ip: Extension<ClientIp>,
    body: Bytes,
) -> Response {
    let r = register_inner(&s, ip.0.0.to_string(), &body).await;
    counted(&s, r)
}

fn rejected(reason: &str) -> AppError {
    AppError::bad("rejected", reason)
}

async fn register_inner(s: &AppState, ip: String, body: &Bytes) -> Result<Response, AppError> {
    let o = object(body, "rejected")?;
    let router_id = required_str(&o, "router_id", "rejected", "missing_router_id")?.to_owned();
    match o.get("endpoints") {
        Some(Value::Array(a)) if !a.is_empty() => {}
        _ => return Err(rejected("missing_endpoints")),
    }
    let desc = SignedDescriptor::from_json(&Value::Object(o.clone()))
        .map_err(|e| rejected("invalid_descriptor").field("detail", e.to_string()))?;
    let ts = fresh_timestamp(s, &o, "rejected")?;
    let Some((old, version)) = s.0.store.router_versioned(&router_id).await? else {
        let stats = admit_new(s, &ip, &desc).await?;
        let (verified, challenge) =
            verify_registration(s, &o, &router_id, desc, &ip, &stats).await?;
        return register_new(s, &ip, verified, ts, challenge).await;
    };
    let verified = check_signatures(s, &o, &router_id, desc)?;
    update(s, old, version, verified, ts).await
}

/// Rate limits and endpoint collision for a router the seed does not know (§5.2, §5.4).
/// Returns the IP's registration stats, which also set its PoW difficulty.
async fn admit_new(s: &AppState, ip: &str, desc: &SignedDescriptor) -> Result<RegStats, AppError> {
    let cfg = &s.0.cfg;
    if s.counters().await?.0 >= cfg.max_routers {
        return Err(AppError::with(
            StatusCode::SERVICE_UNAVAILABLE,
            "rejected",
            "registry_full",
        ));
    }
    let stats = reg_stats(s, ip).await?;
    let mut verdict = policy::rate_limit(cfg, &stats, s.now());
    if verdict.is_ok() && collides_with_other(s, &desc.body.endpoints, "").await? {
        verdict = Err(COLLISION.into());
    }
    match verdict {
        Ok(()) => Ok(stats),
        Err(detail) => {
            record_event(s, ip, false).await?;
            Err(
                AppError::with(StatusCode::TOO_MANY_REQUESTS, "rejected", "rate_limited")
                    .field("detail", detail),
            )
        }
    }
}

const COLLISION: &str = "endpoint_collision:nearly_identical_endpoints_exist";

/// Whether `endpoints` nearly equal another router's (§5.4). Only routers sharing a host can
/// reach the threshold, so the host index answers without a registry scan.
async fn collides_with_other(
    s: &AppState,
    endpoints: &[String],
    except: &str,
) -> Result<bool, AppError> {
    if !s.0.cfg.correlation_detection_enabled {
        return Ok(false);
    }
    let hosts: Vec<String> = endpoints
        .iter()
        .map(|e| policy::split_endpoint(e).0.to_owned())
        .collect();
    let near = s.0.store.routers_on_hosts(&hosts).await?;
    Ok(near
        .iter()
        .any(|r| r.router_id != except && policy::collides(endpoints, &r.endpoints())))
}

/// A move to new endpoints: refused onto another router's endpoints, then probed (W10).
async fn check_move(
    s: &AppState,
    v: &VerifiedDescriptor,
    status_word: &str,
) -> Result<(), AppError> {
    let id = v.body().router_id.to_hex();
    if collides_with_other(s, &v.body().endpoints, &id).await? {
        return Err(AppError::bad(status_word, "endpoint_collision"));
    }
    probe_first(s, v)
        .await
        .map_err(|_| AppError::bad(status_word, "unreachable"))
}

async fn record_event(s: &AppState, ip: &str, success: bool) -> Result<(), AppError> {
    let ev = RegEvent {
        ip: ip.to_owned(),
        subnet: policy::subnet_key(ip),
        ts: s.now(),
        success,
    };
    Ok(s.0.store.add_reg_event(&ev).await?)
}

/// Body signature, descriptor signatures, and the PoW over a fresh seed challenge (returned
/// for the registration to spend). Failures count as failed registration events (§5.2).
async fn verify_registration(
    s: &AppState,
    o: &Map<String, Value>,
    router_id: &str,
    desc: SignedDescriptor,
    ip: &str,
    stats: &RegStats,
) -> Result<(VerifiedDescriptor, Option<FreshChallenge>), AppError> {
    let checked = check_signatures(s, o, router_id, desc)
        .and_then(|v| Ok((v, check_pow(s, o, router_id, stats)?)));
    if checked.is_err() {
        record_event(s, ip, false).await?;
    }
    checked
}

fn check_signatures(
    s: &AppState,
    o: &Map<String, Value>,
    router_id: &str,
    desc: SignedDescriptor,
) -> Result<VerifiedDescriptor, AppError> {
    if s.0.cfg.verify_signatures {
        let _body_ok = verify_body(o, router_id, "rejected")?;
    }
    desc.verify()
        .map_err(|e| rejected("invalid_signature").field("detail", e.to_string()))
}

/// Checks the PoW; returns the challenge to spend (`None` when PoW checking is off).
fn check_pow(
    s: &AppState,
    o: &Map<String, Value>,
    router_id: &str,
    stats: &RegStats,
) -> Result<Option<FreshChallenge>, AppError> {
    let required = policy::required_difficulty(&s.0.cfg, stats);
    if !s.0.cfg.verify_pow {
        return Ok(None);
    }
    let insufficient = || rejected("insufficient_pow").field("required_difficulty", required);
    let proof = o
        .get("proof_of_work")
        .and_then(Value::as_object)
        .ok_or_else(insufficient)?;
    let challenge = proof
        .get("challenge")
        .and_then(Value::as_str)
        .ok_or_else(insufficient)?;
    let nonce = proof
        .get("nonce")
        .and_then(Value::as_u64)
        .ok_or_else(insufficient)?;
    let fresh = s.0.challenge_key.check(challenge, s.now()).map_err(|e| {
        let detail = match e {
            PowError::ExpiredChallenge => "expired",
            _ => "not_issued_by_this_seed",
        };
        rejected("invalid_challenge").field("detail", detail)
    })?;
    let _pow_ok = pow::verify(challenge, nonce, router_id, required).map_err(|_| insufficient())?;
    Ok(Some(fresh))
}

async fn probe_first(s: &AppState, v: &VerifiedDescriptor) -> Result<(), AppError> {
    if !s.0.cfg.probe_endpoints {
        return Ok(());
    }
    let body = v.body();
    let target = ProbeTarget {
        endpoint: body
            .endpoints
            .first()
            .map(String::as_str)
            .unwrap_or_default(),
        keys: Some((body.router_id, body.link_key)),
    };
    if s.0.prober.probe(target).await {
        Ok(())
    } else {
        Err(rejected("unreachable"))
    }
}

fn descriptor_map(v: &VerifiedDescriptor) -> Result<Map<String, Value>, AppError> {
    v.descriptor()
        .to_json()
        .map_err(|e| AppError::Internal(e.to_string()))
}

async fn register_new(
    s: &AppState,
    ip: &str,
    v: VerifiedDescriptor,
    ts: f64,
    challenge: Option<FreshChallenge>,
) -> Result<Response, AppError> {
    let mut unspent = challenge.as_ref().map(|c| (c.id(), c.expires_at()));
    if s.0.cfg.probe_endpoints {
        // Spent before probing, so one PoW cannot make the seed probe again and again.
        if let Some((id, expires_at)) = unspent.take()
            && !s.0.store.spend_challenge(id, expires_at).await?
        {
            record_event(s, ip, false).await?;
            return Err(rejected("challenge_reused"));
        }
        probe_first(s, &v).await?;
    }
    let cfg = &s.0.cfg;
    let now = s.now();
    let rec = new_record(s, ip, &v, ts)?;
    let event = RegEvent {
        ip: ip.to_owned(),
        subnet: policy::subnet_key(ip),
        ts: now,
        success: true,
    };
    let reg = NewRegistration {
        record: &rec,
        challenge: unspent,
        event: &event,
    };
    match s.0.store.register_router(&reg).await? {
        RegisterOutcome::Registered => {}
        RegisterOutcome::ChallengeReused => return Err(rejected("challenge_reused")),
        // Lost a race with a concurrent registration of the same id (W29): no per-IP state
        // is counted twice; the winner's record stands.
        RegisterOutcome::AlreadyRegistered => {
            return Err(AppError::with(
                StatusCode::CONFLICT,
                "rejected",
                "registration_in_progress",
            ));
        }
    }
    s.count_registration();
    s.0.metrics.registered();
    s.invalidate();
    Ok(Json(json!({
        "status": "accepted",
        "action": "registered",
        "router_id": rec.router_id,
        "seed_id": s.seed_id(),
        "initial_reputation": cfg.reputation_initial_score,
        "reputation_decay_hours": cfg.reputation_decay_period_hours,
    }))
    .into_response())
}

fn new_record(
    s: &AppState,
    ip: &str,
    v: &VerifiedDescriptor,
    ts: f64,
) -> Result<RouterRecord, AppError> {
    let now = s.now();
    Ok(RouterRecord {
        router_id: v.body().router_id.to_hex(),
        descriptor: descriptor_map(v)?,
        source_ip: ip.to_owned(),
        health: Health::new_router(now),
        monitor: None,
        reputation: policy::new_reputation(&s.0.cfg, now),
        last_signed_ts: ts,
    })
}

/// Applies a newer descriptor to a known router, keeping health and reputation (W32).
fn apply_descriptor(
    old: &mut RouterRecord,
    v: &VerifiedDescriptor,
    ts: f64,
) -> Result<bool, AppError> {
    if ts <= old.last_signed_ts {
        return Err(rejected("replayed_request"));
    }
    if v.body().registered_at != old.registered_at() {
        return Err(rejected("registered_at_changed"));
    }
    if v.body().published_at <= old.published_at() {
        return Err(rejected("stale_descriptor"));
    }
    let moved = v.body().endpoints != old.endpoints();
    old.descriptor = descriptor_map(v)?;
    old.last_signed_ts = ts;
    Ok(moved)
}

/// Re-reads a router after a lost write race; a router removed meanwhile is `not_registered`.
async fn reread(
    s: &AppState,
    id: &str,
    status_word: &str,
) -> Result<(RouterRecord, Version), AppError> {
    s.0.store.router_versioned(id).await?.ok_or_else(|| {
        AppError::with(StatusCode::NOT_FOUND, status_word, "not_registered")
            .field("hint", "Call /register first")
    })
}

async fn update(
    s: &AppState,
    mut old: RouterRecord,
    mut version: Version,
    v: VerifiedDescriptor,
    ts: f64,
) -> Result<Response, AppError> {
    let id = old.router_id.clone();
    for attempt in 0..UPDATE_ATTEMPTS {
        if apply_descriptor(&mut old, &v, ts)? {
            check_move(s, &v, "rejected").await?;
        }
        if s.0.store.replace_router(&old, version).await? {
            s.invalidate();
            return Ok(Json(json!({
                "status": "accepted",
                "action": "updated",
                "router_id": id,
                "seed_id": s.seed_id(),
            }))
            .into_response());
        }
        backoff(attempt).await;
        (old, version) = reread(s, &id, "rejected").await?;
    }
    Err(StoreError::Contention(id).into())
}

pub(super) async fn heartbeat(State(s): State<AppState>, body: Bytes) -> Response {
    let r = heartbeat_inner(&s, &body).await;
    counted(&s, r)
}

fn err(reason: &str) -> AppError {
    AppError::bad("error", reason)
}

async fn heartbeat_inner(s: &AppState, body: &Bytes) -> Result<Response, AppError> {
    let o = object(body, "error")?;
    let router_id = required_str(&o, "router_id", "error", "missing_router_id")?.to_owned();
    let (mut rec, mut version) = reread(s, &router_id, "error").await?;
    let ts = fresh_timestamp(s, &o, "error")?;
    let _sig_ok = verify_body(&o, &router_id, "error")?;
    if ts <= rec.last_signed_ts {
        return Err(err("replayed_request"));
    }
    let metrics = read_metrics(&o)?;
    if o.contains_key("endpoints") && !o.contains_key("descriptor") {
        return Err(err("endpoints_require_descriptor"));
    }
    let desc = match o.get("descriptor") {
        None => None,
        Some(d) => Some(heartbeat_descriptor(d, &router_id)?),
    };
    // Optimistic read-modify-write: if another task or replica wrote the record since we read
    // it, re-read and re-apply, so neither update is lost.
    for attempt in 0..UPDATE_ATTEMPTS {
        if ts <= rec.last_signed_ts {
            return Err(err("replayed_request"));
        }
        if let Some(v) = &desc
            && apply_descriptor(&mut rec, v, ts)?
        {
            check_move(s, v, "error").await?;
        }
        rec.last_signed_ts = ts;
        apply_heartbeat(s, &mut rec, &metrics);
        if s.0.store.replace_router(&rec, version).await? {
            return Ok(heartbeat_answer(s, &rec));
        }
        backoff(attempt).await;
        (rec, version) = reread(s, &router_id, "error").await?;
    }
    Err(StoreError::Contention(router_id).into())
}

fn heartbeat_descriptor(d: &Value, router_id: &str) -> Result<VerifiedDescriptor, AppError> {
    let v = SignedDescriptor::from_json(d)
        .and_then(SignedDescriptor::verify)
        .map_err(|e| err("invalid_descriptor").field("detail", e.to_string()))?;
    if v.body().router_id.to_hex() != router_id {
        return Err(err("invalid_descriptor").field("detail", "router_id mismatch"));
    }
    Ok(v)
}

/// The answer to an accepted heartbeat; counts it and checks for bursts (§5.4).
fn heartbeat_answer(s: &AppState, rec: &RouterRecord) -> Response {
    let cfg = &s.0.cfg;
    s.0.metrics.heartbeat();
    let mut resp = json!({
        "status": "ok",
        "health_status": rec.health.status,
        "router_id": rec.router_id,
        "seed_id": s.seed_id(),
        "next_heartbeat_in": cfg.heartbeat_interval_seconds,
        "reputation": (policy::trust_factor(cfg, &rec.reputation) * 1000.0).round() / 1000.0,
    });
    if cfg.correlation_detection_enabled {
        let (in_window, in_interval) = s.note_heartbeat(s.now());
        if policy::heartbeat_burst(cfg, in_window, in_interval) {
            resp["warnings"] = json!(["correlated_heartbeats"]);
        }
    }
    Json(resp).into_response()
}

/// Heartbeat metrics, each optional, each a finite number in its range.
#[derive(Debug, Default)]
struct HbMetrics(Vec<(&'static str, f64)>);

fn read_metrics(o: &Map<String, Value>) -> Result<HbMetrics, AppError> {
    const FIELDS: [(&str, &str, f64); 10] = [
        ("current_connections", "active_connections", 1e9),
        ("active_connections", "active_connections", 1e9),
        ("max_connections", "max_connections", 1e9),
        ("load_pct", "load_pct", 100.0),
        ("current_load_pct", "load_pct", 100.0),
        ("messages_per_sec", "messages_per_sec", 1e12),
        ("queue_depth", "queue_depth", 1e12),
        ("uptime_pct", "uptime_pct", 100.0),
        ("avg_latency_ms", "avg_latency_ms", 1e9),
        ("messages_relayed", "messages_relayed", 1e18),
    ];
    let mut out = HbMetrics::default();
    for (field, target, max) in FIELDS {
        match o.get(field) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let x = v
                    .as_f64()
                    .filter(|x| (0.0..=max).contains(x))
                    .ok_or_else(|| err("invalid_metric").field("detail", field))?;
                if !out.0.iter().any(|(t, _)| *t == target) {
                    out.0.push((target, x));
                }
            }
        }
    }
    Ok(out)
}

/// Effects of an accepted heartbeat on the record (§4.1 heartbeat steps 1-6, §5.3-§5.5).
fn apply_heartbeat(s: &AppState, rec: &mut RouterRecord, m: &HbMetrics) {
    let cfg = &s.0.cfg;
    let now = s.now();
    rec.health.last_seen = now;
    let was_visible = policy::discoverable(cfg, rec, now);
    policy::monitor_heartbeat(&mut rec.monitor, now);
    for (k, v) in &m.0 {
        let h = &mut rec.health;
        match *k {
            "active_connections" => h.active_connections = *v,
            "max_connections" => h.max_connections = *v,
            "load_pct" => h.load_pct = *v,
            "messages_per_sec" => h.messages_per_sec = *v,
            "queue_depth" => h.queue_depth = *v,
            "uptime_pct" => h.uptime_pct = *v,
            "avg_latency_ms" => h.avg_latency_ms = *v,
            _ => {}
        }
    }
    rec.health.status = policy::status_string(rec.health.load_pct, rec.health.uptime_pct).into();
    if cfg.reputation_enabled {
        policy::reputation_heartbeat(cfg, &mut rec.reputation, now);
    }
    if was_visible != policy::discoverable(cfg, rec, now) {
        s.invalidate();
    }
}
