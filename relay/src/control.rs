//! The control plane: `/health` (JSON) and `/metrics` (Prometheus text) on a separate
//! address, loopback by default. Served by axum on the main thread's runtime, away from the
//! workers. It reports counts, never peers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::core::RelayContext;
use crate::metrics;

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct ControlState {
    /// The relay's shared state.
    pub ctx: Arc<RelayContext>,
    /// The backend's name.
    pub backend: &'static str,
    /// The seed tasks' counters.
    pub seed: Arc<crate::seed::SeedMetrics>,
}

/// The control router.
pub fn app(state: ControlState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn health(axum::extract::State(s): axum::extract::State<ControlState>) -> impl IntoResponse {
    let stats = s.ctx.directory.stats();
    let sum =
        |f: fn(&metrics::WorkerMetrics) -> u64| s.ctx.metrics.iter().map(|m| f(m)).sum::<u64>();
    let body = serde_json::json!({
        "status": if s.ctx.shutdown.load(Ordering::Relaxed) { "draining" } else { "ok" },
        "backend": s.backend,
        "workers": s.ctx.metrics.len(),
        "connections": stats.connections,
        "circuits": sum(|m| m.circuits.load(Ordering::Relaxed)),
        "homes": stats.homes,
        "offline_messages": stats.offline_messages,
        "back_pressure": sum(|m| m.back_pressure.load(Ordering::Relaxed)) > 0,
        "seeds_registered": s.seed.registered.load(Ordering::Relaxed),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn metrics_text(
    axum::extract::State(s): axum::extract::State<ControlState>,
) -> impl IntoResponse {
    let stats = s.ctx.directory.stats();
    let seed = s.seed.rows();
    let global = [
        ("ournet_offline_nodes", "gauge", stats.offline_nodes as u64),
        (
            "ournet_offline_messages",
            "gauge",
            stats.offline_messages as u64,
        ),
        ("ournet_offline_bytes", "gauge", stats.offline_bytes as u64),
        ("ournet_homes", "gauge", stats.homes as u64),
        ("ournet_ack_routes", "gauge", stats.ack_routes as u64),
        (
            "ournet_forwarding_addresses",
            "gauge",
            stats.forwards as u64,
        ),
    ];
    let all: Vec<(&str, &str, u64)> = global.into_iter().chain(seed).collect();
    let text = metrics::render(&s.ctx.metrics, &all);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
