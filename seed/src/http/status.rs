//! `GET /status` (spec §4.1): the reference's fields and sub-objects, so tools written
//! against the reference keep working.
//!
//! Where our seed works differently the field keeps its name and says what ours counts:
//! `correlation.tracked_routers` counts routers with heartbeat-monitor state,
//! `endpoint_patterns` routers in the endpoint index (every router), and `correlation_groups`
//! is always 0, because collisions are refused at registration instead of grouped (W20).
//! `peering.peer_states` covers our outbound exchanges with configured peers.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::counted;
use crate::config::SeedConfig;
use crate::error::AppError;
use crate::record::{HealthStatus, RouterRecord};
use crate::state::AppState;

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
    let flagged = s.0.store.flagged().await?;
    let per_hour = s.counters().await?.1;
    let body = json!({
        "seed_id": s.seed_id(),
        "status": "running",
        "timestamp": now,
        "routers": {"total": routers.len(), "healthy": healthy},
        "health_monitor": health_monitor(&routers),
        "sybil_resistance": {
            "rate_limiter": rate_limiter(s, per_hour).await?,
            "reputation": reputation_stats(cfg.reputation_min_score_for_discovery, &routers),
            "correlation": {
                "tracked_routers": routers.iter().filter(|r| r.monitor.is_some()).count(),
                "endpoint_patterns": routers.len(),
                "correlation_groups": 0,
            },
            "adaptive_pow": {
                "enabled": cfg.adaptive_pow_enabled,
                "threshold_per_hour": cfg.adaptive_pow_threshold_per_hour,
                "current_rate": per_hour,
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
        "revocations": revocations(s, now).await?,
        "known_seeds": cfg.known_seeds.len(),
        "peering": peering(s, cfg),
    });
    Ok(axum::Json(body).into_response())
}

fn health_monitor(routers: &[RouterRecord]) -> Map<String, Value> {
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
    let total = routers.iter().filter(|r| r.monitor.is_some()).count();
    by.insert("total".into(), total.into());
    by
}

async fn rate_limiter(s: &AppState, per_hour: u64) -> Result<Value, AppError> {
    let window = s.0.cfg.rate_limit_window_seconds;
    let ev = s.0.store.event_summary(s.now() - window).await?;
    Ok(json!({
        "total_events": ev.total,
        "unique_ips": ev.unique_ips,
        "unique_subnets": ev.unique_subnets,
        "registrations_per_hour": per_hour,
        "window_seconds": window,
    }))
}

async fn revocations(s: &AppState, now: f64) -> Result<Value, AppError> {
    let cfg = &s.0.cfg;
    let all = s.0.store.revocations().await?;
    let revoked: Vec<&str> = all
        .iter()
        .filter(|r| r["effective_at"].as_f64().is_some_and(|t| t <= now))
        .filter_map(|r| r["seed_id"].as_str())
        .collect();
    Ok(json!({
        "enabled": cfg.seed_revocation_enabled,
        "total_revocations": all.len(),
        "effective_revocations": revoked.len(),
        "revocation_list_path": cfg.seed_revocation_list_path,
        "revoked_seeds": revoked,
    }))
}

fn peering(s: &AppState, cfg: &SeedConfig) -> Value {
    let states: Map<String, Value> = s
        .peer_states()
        .into_iter()
        .map(|(url, st)| {
            let v = json!({
                "successful": st.successful,
                "failed": st.failed,
                "last_success": st.last_success,
                "last_error": st.last_error,
            });
            (url, v)
        })
        .collect();
    json!({
        "peer_count": cfg.peer_seeds.len(),
        "gossip_enabled": cfg.gossip_enabled,
        "gossip_interval_seconds": cfg.gossip_interval_seconds,
        "peer_states": states,
    })
}

/// The reference's reputation summary; only the four zeros when there are no routers.
fn reputation_stats(threshold: f64, routers: &[RouterRecord]) -> Value {
    let scores: Vec<f64> = routers.iter().map(|r| r.reputation.score).collect();
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
        "flagged": routers.iter().filter(|r| !r.reputation.flags.is_empty()).count(),
    })
}
