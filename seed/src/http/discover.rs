//! `POST /discover` and `GET /status`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ournet_proto::descriptor;
use serde_json::{Map, Value, json};

use super::counted;
use crate::error::AppError;
use crate::policy::{self, Candidate, Preferences};
use crate::record::HealthStatus;
use crate::state::AppState;

/// Most routers one answer holds (the reference's clamp).
const MAX_COUNT: i64 = 20;

pub(super) async fn discover(State(s): State<AppState>, body: Bytes) -> Response {
    let r = discover_inner(&s, &body).await;
    counted(&s, r)
}

async fn discover_inner(s: &AppState, body: &Bytes) -> Result<Response, AppError> {
    // The reference treats a non-JSON body as `{}`; a JSON non-object is refused (W25).
    let req = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Err(AppError::bad("error", "invalid_json")
                .field("detail", "body must be a JSON object"));
        }
        Err(_) => Map::new(),
    };
    let count = match req.get("requested_count") {
        None | Some(Value::Null) => 5,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| AppError::bad("error", "invalid_requested_count"))?
            .clamp(1, MAX_COUNT),
    };
    let prefs = preferences(req.get("preferences"))?;
    let count = usize::try_from(count).unwrap_or(5);
    let snap = s.snapshot().await?;
    let key = (count, prefs);
    if let Some(answer) = snap.cached(&key) {
        return Ok(json_bytes(answer));
    }
    let candidates: Vec<Candidate<'_>> = snap
        .records
        .iter()
        .zip(&snap.base)
        .map(|(record, (base, trust))| Candidate {
            record,
            base: *base,
            trust: *trust,
        })
        .collect();
    let chosen = policy::select(&s.0.cfg, &candidates, &key.1, count, &s.0.asns);
    let mut answer = Map::new();
    answer.insert("seed_id".into(), s.seed_id().into());
    answer.insert("seed_key".into(), s.0.seed_key.public().to_hex().into());
    answer.insert("timestamp".into(), snap.at.into());
    answer.insert(
        "routers".into(),
        chosen.iter().map(|r| r.served()).collect(),
    );
    answer.insert("other_seeds".into(), json!(s.0.cfg.known_seeds));
    descriptor::sign_router_list(&s.0.seed_key, &mut answer)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let bytes =
        Bytes::from(serde_json::to_vec(&answer).map_err(|e| AppError::Internal(e.to_string()))?);
    snap.remember(key, bytes.clone());
    Ok(json_bytes(bytes))
}

fn json_bytes(b: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], b).into_response()
}

fn preferences(v: Option<&Value>) -> Result<Preferences, AppError> {
    let bad = || AppError::bad("error", "invalid_preferences");
    let p = match v {
        None | Some(Value::Null) => return Ok(Preferences::default()),
        Some(Value::Object(p)) => p,
        Some(_) => return Err(bad()),
    };
    let region = ["preferred_region", "region"]
        .iter()
        .find_map(|k| p.get(*k).and_then(Value::as_str))
        .filter(|r| r.len() <= 8 && !r.eq_ignore_ascii_case("any"))
        .map(str::to_ascii_uppercase);
    let mut features: Vec<String> = match p.get("features") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.len() <= 32 => a
            .iter()
            .map(|f| {
                f.as_str()
                    .filter(|f| f.len() <= 64)
                    .map(str::to_owned)
                    .ok_or_else(bad)
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
    };
    features.sort();
    features.dedup();
    let mut exclude: Vec<String> = match p.get("exclude") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.len() <= 64 => a
            .iter()
            .map(|f| {
                f.as_str()
                    .filter(|f| f.len() <= 128)
                    .map(str::to_owned)
                    .ok_or_else(bad)
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
    };
    exclude.sort();
    exclude.dedup();
    Ok(Preferences {
        region,
        features,
        exclude,
    })
}

pub(super) async fn status(State(s): State<AppState>) -> Response {
    let r = status_inner(&s).await;
    counted(&s, r)
}

async fn status_inner(s: &AppState) -> Result<Response, AppError> {
    let cfg = &s.0.cfg;
    let now = s.now();
    let routers = s.0.store.routers().await?;
    let healthy = routers
        .iter()
        .filter(|r| {
            r.health.uptime_pct >= cfg.min_uptime_pct
                && now - r.health.last_seen <= cfg.max_stale_seconds
        })
        .count();
    let mut by = Map::new();
    for st in [
        HealthStatus::Healthy,
        HealthStatus::Warning,
        HealthStatus::Degraded,
        HealthStatus::Unhealthy,
        HealthStatus::Removed,
    ] {
        let n = routers
            .iter()
            .filter(|r| r.monitor.as_ref().is_some_and(|m| m.status == st));
        by.insert(st.as_str().into(), n.count().into());
    }
    by.insert(
        "total".into(),
        routers
            .iter()
            .filter(|r| r.monitor.is_some())
            .count()
            .into(),
    );
    let flagged = s.0.store.flagged().await?;
    let scores: Vec<f64> = routers.iter().map(|r| r.reputation.score).collect();
    let body = json!({
        "seed_id": s.seed_id(),
        "status": "running",
        "timestamp": now,
        "routers": {"total": routers.len(), "healthy": healthy},
        "health_monitor": by,
        "sybil_resistance": {
            "reputation": reputation_stats(cfg.reputation_min_score_for_discovery, &scores),
            "adaptive_pow": {
                "enabled": cfg.adaptive_pow_enabled,
                "threshold_per_hour": cfg.adaptive_pow_threshold_per_hour,
            },
        },
        "misbehavior": {
            "enabled": cfg.misbehavior_reports_enabled,
            "routers_with_reports": s.0.store.reported_router_count().await?,
            "flagged_routers": flagged.len(),
            "flagged_router_ids": flagged,
            "config": {
                "min_reports_to_flag": cfg.misbehavior_min_reports_to_flag,
                "report_window_seconds": cfg.misbehavior_report_window_seconds,
                "flag_severity_threshold": cfg.misbehavior_flag_severity_threshold,
            },
        },
        "known_seeds": cfg.known_seeds.len(),
        "peering": {
            "peer_count": cfg.peer_seeds.len(),
            "gossip_enabled": cfg.gossip_enabled,
            "gossip_interval_seconds": cfg.gossip_interval_seconds,
        },
    });
    Ok(axum::Json(body).into_response())
}

fn reputation_stats(threshold: f64, scores: &[f64]) -> Value {
    if scores.is_empty() {
        return json!({"total_routers": 0, "avg_score": 0.0, "min_score": 0.0, "max_score": 0.0});
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "router counts are far below 2^53"
    )]
    let avg = scores.iter().sum::<f64>() / scores.len() as f64;
    json!({
        "total_routers": scores.len(),
        "avg_score": avg,
        "min_score": scores.iter().copied().fold(f64::INFINITY, f64::min),
        "max_score": scores.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "below_threshold": scores.iter().filter(|x| **x < threshold).count(),
    })
}
