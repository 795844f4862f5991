//! `POST /gossip/exchange`: authenticated seed-to-seed exchange (spec §4.2, §5.9, W11, W32).
//!
//! The body must be signed (compact canonical JSON without `signature`) by a configured peer
//! seed, whose `seed_id` is its key, with a fresh timestamp. Each router entry is merged only
//! if its own descriptor signatures verify; a known router's descriptor is replaced only by a
//! newer `published_at`, `last_seen` is capped at now (no future wins), and a merge refreshes
//! the health state so gossiped routers do not flap (W32). Node addresses ride along, each
//! checked as if the node had published it here, so a node that moved its homes can be found
//! at every seed, not only those it published to. The answer is our own signed batch.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ournet_proto::descriptor::SignedDescriptor;
use serde_json::{Map, Value, json};

use super::{address, counted, fresh_timestamp, object, sign_body, verify_body};
use crate::error::AppError;
use crate::policy;
use crate::record::{Health, RouterRecord};
use crate::revocation::add_revocation;
use crate::state::AppState;
use crate::store::{PutAddress, update_router};

/// Most routers accepted from one exchange.
const MAX_MERGE: usize = 1000;

pub(super) async fn exchange(State(s): State<AppState>, body: Bytes) -> Response {
    let r = exchange_inner(&s, &body).await;
    counted(&s, r)
}

async fn exchange_inner(s: &AppState, body: &Bytes) -> Result<Response, AppError> {
    let o = object(body, "error")?;
    let peer = o.get("seed_id").and_then(Value::as_str).unwrap_or_default();
    if !s.0.cfg.peer_seeds.iter().any(|p| p.key == peer) {
        return Err(AppError::with(
            StatusCode::FORBIDDEN,
            "error",
            "unknown_peer",
        ));
    }
    let _sig_ok = verify_body(&o, peer, "error")?;
    fresh_timestamp(s, &o, "error")?;
    let mut merged = 0;
    if let Some(Value::Array(routers)) = o.get("routers") {
        for entry in routers.iter().take(MAX_MERGE) {
            if merge_router(s, peer, entry).await? {
                merged += 1;
            }
        }
    }
    if let (true, Some(Value::Array(revs))) =
        (s.0.cfg.seed_revocation_gossip_enabled, o.get("revocations"))
    {
        for r in revs.iter().take(MAX_MERGE).filter_map(Value::as_object) {
            let _ = add_revocation(s, r, "gossip").await?;
        }
    }
    if let Some(Value::Array(addresses)) = o.get("addresses") {
        merge_addresses(s, addresses).await?;
    }
    if merged > 0 {
        s.invalidate();
    }
    Ok(Json(Value::Object(outbound_batch(s).await?)).into_response())
}

/// Merges gossiped node addresses through the same checks as `POST /address` (the node's own
/// signature, expiry, our lifetime cap; newest `issued_at` wins), so a peer can neither forge
/// nor roll back an address. Entries that fail are skipped; a full store ends the merge.
async fn merge_addresses(s: &AppState, addresses: &[Value]) -> Result<(), AppError> {
    for text in addresses.iter().take(MAX_MERGE).filter_map(Value::as_str) {
        match address::store_address(s, text).await {
            Ok((_, PutAddress::Full)) => break,
            Ok(_) => {}
            Err(AppError::Internal(e)) => return Err(AppError::Internal(e)),
            Err(e) => tracing::debug!(reason = e.reason(), "gossiped address skipped"),
        }
    }
    Ok(())
}

/// Merges one gossiped entry; `true` if it added or replaced a router.
async fn merge_router(s: &AppState, peer: &str, entry: &Value) -> Result<bool, AppError> {
    let cfg = &s.0.cfg;
    let now = s.now();
    let Ok(v) = SignedDescriptor::from_json(entry).and_then(SignedDescriptor::verify) else {
        return Ok(false);
    };
    let last_seen = entry["health"]["last_seen"]
        .as_f64()
        .unwrap_or(0.0)
        .min(now);
    if now - last_seen > cfg.gossip_max_router_age_seconds {
        return Ok(false);
    }
    let id = v.body().router_id.to_hex();
    let descriptor = v
        .descriptor()
        .to_json()
        .map_err(|e| AppError::Internal(e.to_string()))?;
    match s.0.store.router_versioned(&id).await? {
        None => {
            if s.0.store.router_count().await? >= cfg.max_routers {
                return Ok(false);
            }
            let mut rec = RouterRecord {
                router_id: id,
                descriptor,
                source_ip: format!("gossip:{peer}"),
                health: gossip_health(entry, last_seen),
                monitor: None,
                reputation: policy::new_reputation(cfg, now),
                last_signed_ts: 0.0,
            };
            policy::monitor_heartbeat(&mut rec.monitor, last_seen);
            Ok(s.0.store.insert_router(&rec).await?)
        }
        Some(_) => {
            let mut newer = false;
            update_router(s.0.store.as_ref(), &id, |rec| {
                newer = v.body().published_at > rec.published_at()
                    && v.body().registered_at == rec.registered_at();
                if newer {
                    rec.descriptor.clone_from(&descriptor);
                }
                let fresher = last_seen > rec.health.last_seen;
                if fresher {
                    rec.health.last_seen = last_seen;
                    policy::monitor_heartbeat(&mut rec.monitor, last_seen);
                }
                newer || fresher
            })
            .await?;
            Ok(newer)
        }
    }
}

fn gossip_health(entry: &Value, last_seen: f64) -> Health {
    let num = |k: &str, d: f64, max: f64| {
        entry["health"][k]
            .as_f64()
            .filter(|x| (0.0..=max).contains(x))
            .unwrap_or(d)
    };
    Health {
        last_seen,
        uptime_pct: num("uptime_pct", 100.0, 100.0),
        avg_latency_ms: num("avg_latency_ms", 0.0, 1e9),
        load_pct: num("load_pct", 0.0, 100.0),
        active_connections: num("active_connections", 0.0, 1e9),
        max_connections: 0.0,
        queue_depth: num("queue_depth", 0.0, 1e12),
        messages_per_sec: num("messages_per_sec", 0.0, 1e12),
        status: "healthy".into(),
    }
}

/// Our signed gossip body: fresh, served routers (at most `gossip_batch_size`), revocations,
/// and the most recently issued node addresses (at most `gossip_address_batch_size`).
pub(crate) async fn outbound_batch(s: &AppState) -> Result<Map<String, Value>, AppError> {
    let cfg = &s.0.cfg;
    let now = s.now();
    let mut routers: Vec<Value> =
        s.0.store
            .routers()
            .await?
            .into_iter()
            .filter(|r| {
                now - r.health.last_seen <= cfg.gossip_max_router_age_seconds
                    && policy::discoverable(cfg, r, now)
            })
            .map(|r| r.served())
            .collect();
    routers.truncate(cfg.gossip_batch_size);
    let revocations = if cfg.seed_revocation_gossip_enabled {
        s.0.store.revocations().await?
    } else {
        Vec::new()
    };
    let limit = u64::try_from(cfg.gossip_address_batch_size).unwrap_or(u64::MAX);
    let addresses: Vec<Value> = if limit == 0 {
        Vec::new()
    } else {
        s.0.store
            .fresh_addresses(address::secs(address::unix_now(s)), limit)
            .await?
            .into_iter()
            .map(|a| Value::String(a.text))
            .collect()
    };
    let mut o = Map::new();
    o.insert("seed_id".into(), s.0.seed_key.public().to_hex().into());
    o.insert("timestamp".into(), json!(now));
    o.insert("routers".into(), Value::Array(routers));
    o.insert("revocations".into(), Value::Array(revocations));
    o.insert("addresses".into(), Value::Array(addresses));
    sign_body(s, &mut o);
    Ok(o)
}

/// Every `gossip_interval_seconds` (the first after 5 s, or the interval if shorter), posts our batch to each peer and merges the
/// answer as if it were an inbound exchange. Runs only when gossip is on and peers exist.
pub(crate) async fn gossip_loop(s: AppState) {
    let cfg = s.0.cfg.clone();
    if !cfg.gossip_enabled || cfg.peer_seeds.is_empty() {
        return;
    }
    let period = std::time::Duration::from_secs_f64(cfg.gossip_interval_seconds.max(1.0));
    tokio::time::sleep(period.min(std::time::Duration::from_secs(5))).await;
    let timeout = std::time::Duration::from_secs_f64(cfg.gossip_timeout_seconds.max(0.1));
    loop {
        for peer in &cfg.peer_seeds {
            let result = exchange_with(&s, &peer.url, timeout).await;
            if let Err(e) = &result {
                tracing::warn!(peer = %peer.url, error = %e, "gossip exchange failed");
            }
            s.note_peer_exchange(&peer.url, result.map_err(|e| e.to_string()));
        }
        tokio::time::sleep(period).await;
    }
}

async fn exchange_with(
    s: &AppState,
    url: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let batch = outbound_batch(s)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let body = serde_json::to_vec(&batch)?;
    let (status, answer) =
        crate::probe::request(host, "POST", "/gossip/exchange", Some(&body), timeout).await?;
    anyhow::ensure!(status == 200, "peer answered {status}");
    let r = exchange_inner(s, &Bytes::from(answer)).await;
    r.map(|_| ())
        .map_err(|e| anyhow::anyhow!("peer batch refused: {}", e.reason()))
}
