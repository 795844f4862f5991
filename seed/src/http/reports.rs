//! `/report_misbehavior`, `/revoke_seed` and `/revocations` (spec §4.1, §5.7, §5.8).
//!
//! Reports must be signed by a registered router about another registered router, with a
//! fresh timestamp (W12, W26). Revocation rules live in [`crate::revocation`] (W13).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{counted, fresh_timestamp, object, required_str, verify_body};
use crate::error::AppError;
use crate::revocation::add_revocation;
use crate::state::AppState;
use crate::store::ReportEntry;

pub(super) async fn report_misbehavior(State(s): State<AppState>, body: Bytes) -> Response {
    let r = report_inner(&s, &body).await;
    counted(&s, r)
}

async fn report_inner(s: &AppState, body: &Bytes) -> Result<Response, AppError> {
    let cfg = &s.0.cfg;
    if !cfg.misbehavior_reports_enabled {
        return Err(AppError::bad("rejected", "misbehavior_reports_disabled"));
    }
    let o = object(body, "error")?;
    let router_id = required_str(&o, "router_id", "error", "missing_router_id")?;
    let reporter_id = required_str(&o, "reporter_id", "error", "missing_reporter_id")?;
    let _sig_ok = verify_body(&o, reporter_id, "error")?;
    fresh_timestamp(s, &o, "error")?;
    let severity = match o.get("severity") {
        None | Some(Value::Null) => 0.0,
        Some(v) => v
            .as_f64()
            .filter(|x| (0.0..=1.0).contains(x))
            .ok_or_else(|| AppError::bad("error", "invalid_severity"))?,
    };
    if reporter_id == router_id {
        return Err(AppError::bad("error", "self_report"));
    }
    if s.0.store.router(reporter_id).await?.is_none() {
        return Err(AppError::with(
            StatusCode::FORBIDDEN,
            "error",
            "unregistered_reporter",
        ));
    }
    if s.0.store.router(router_id).await?.is_none() {
        return Err(AppError::with(
            StatusCode::NOT_FOUND,
            "error",
            "not_registered",
        ));
    }
    let now = s.now();
    let entry = ReportEntry {
        report_id: o
            .get("report_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(64)
            .collect(),
        router_id: router_id.to_owned(),
        reporter_id: reporter_id.to_owned(),
        severity,
        received_at: now,
    };
    let since = now - cfg.misbehavior_report_window_seconds;
    let summary =
        s.0.store
            .put_report(&entry, since, cfg.misbehavior_max_reports_per_router)
            .await?;
    let mut flagged_now = false;
    if summary.reporters >= cfg.misbehavior_min_reports_to_flag
        && summary.mean_severity >= cfg.misbehavior_flag_severity_threshold
    {
        flagged_now = s.0.store.flag_router(router_id, now).await?;
        s.invalidate();
    }
    Ok(Json(json!({
        "status": "accepted",
        "report_id": entry.report_id,
        "router_id": router_id,
        "reports_for_router": summary.reporters,
        "router_flagged": flagged_now,
    }))
    .into_response())
}

pub(super) async fn revoke_seed(State(s): State<AppState>, body: Bytes) -> Response {
    let r = revoke_inner(&s, &body, "direct").await;
    counted(&s, r)
}

async fn revoke_inner(s: &AppState, body: &Bytes, source: &str) -> Result<Response, AppError> {
    if !s.0.cfg.seed_revocation_enabled {
        return Err(AppError::bad("rejected", "revocation_disabled"));
    }
    let o = object(body, "error")?;
    required_str(&o, "seed_id", "error", "missing_seed_id")?;
    let stored = add_revocation(s, &o, source)
        .await?
        .map_err(|reason| AppError::bad("rejected", &reason))?;
    Ok(Json(json!({
        "status": "accepted",
        "seed_id": stored.get("seed_id"),
        "revocation_id": stored.get("revocation_id"),
        "effective_at": stored.get("effective_at"),
    }))
    .into_response())
}

pub(super) async fn revocations(
    State(s): State<AppState>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let r = revocations_inner(&s, q.get("seed_id").map(String::as_str)).await;
    counted(&s, r)
}

async fn revocations_inner(s: &AppState, seed_id: Option<&str>) -> Result<Response, AppError> {
    if !s.0.cfg.seed_revocation_enabled {
        return Err(AppError::bad("error", "revocation_disabled"));
    }
    if let Some(id) = seed_id {
        let body = match s.0.store.revocation(id).await? {
            Some(r) => json!({"revoked": true, "seed_id": id, "revocation": r}),
            None => json!({"revoked": false, "seed_id": id}),
        };
        return Ok(Json(body).into_response());
    }
    let now = s.now();
    let all = s.0.store.revocations().await?;
    let effective: Vec<&Value> = all
        .iter()
        .filter(|r| r["effective_at"].as_f64().is_some_and(|e| e <= now))
        .collect();
    let ids: Vec<&Value> = effective.iter().map(|r| &r["seed_id"]).collect();
    Ok(Json(json!({
        "total": all.len(),
        "effective": effective.len(),
        "revoked_seed_ids": ids,
        "revocations": all,
    }))
    .into_response())
}
