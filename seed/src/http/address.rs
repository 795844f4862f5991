//! `POST /address` and `GET /address/{identity_hex}`: a directory of nodes' signed recipient
//! addresses (`ournet_proto::address`, PROTOCOL.md §7.6), where senders find a node's home
//! relays and keys.
//!
//! The seed is a mailbox, not an authority: it stores an address only if the node's own
//! signature verifies and it has not expired, and clients verify it again, so a seed cannot
//! swap keys or relays. Bounds: the body limit and the address's own text cap
//! ([`MAX_ADDRESS_TEXT`]), one address per identity (the newest `issued_at` wins),
//! `max_addresses` identities, at most `max_address_lifetime_seconds` of validity, and the
//! per-IP request rate every endpoint has. Expired addresses are not served and are pruned.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ournet_proto::address::{AddressError, MAX_ADDRESS_TEXT, NodeAddress};
use ournet_proto::keys::IdentityPublicKey;
use serde_json::json;

use super::counted;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{PutAddress, StoredAddress};

pub(super) async fn publish(State(s): State<AppState>, body: Bytes) -> Response {
    let r = publish_inner(&s, &body).await;
    counted(&s, r)
}

pub(super) async fn lookup(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let r = lookup_inner(&s, &id).await;
    counted(&s, r)
}

fn rejected(reason: &str) -> AppError {
    AppError::bad("rejected", reason)
}

async fn publish_inner(s: &AppState, body: &Bytes) -> Result<Response, AppError> {
    let text = std::str::from_utf8(body).map_err(|_| rejected("invalid_address"))?;
    let (addr, put) = store_address(s, text).await?;
    let action = match put {
        PutAddress::Stored => "stored",
        PutAddress::Unchanged => "unchanged",
        PutAddress::NotNewer => return Err(rejected("stale_address")),
        _ => {
            return Err(AppError::with(
                StatusCode::SERVICE_UNAVAILABLE,
                "rejected",
                "address_store_full",
            ));
        }
    };
    Ok(Json(json!({
        "status": "accepted",
        "action": action,
        "identity": addr.identity.to_hex(),
        "expires_at": addr.expires_at,
        "seed_id": s.seed_id(),
    }))
    .into_response())
}

/// Verifies a node's address text (its own signature, expiry, our lifetime cap) and upserts
/// it: the one path for addresses a node publishes and addresses a peer seed gossips.
pub(super) async fn store_address(
    s: &AppState,
    text: &str,
) -> Result<(NodeAddress, PutAddress), AppError> {
    if text.len() > MAX_ADDRESS_TEXT {
        return Err(rejected("address_too_long"));
    }
    let now = unix_now(s);
    let addr = NodeAddress::parse(text, now).map_err(|e| match e {
        AddressError::BadSignature => rejected("invalid_signature"),
        AddressError::Expired => rejected("address_expired"),
        other => rejected("invalid_address").field("detail", other.to_string()),
    })?;
    let lifetime = addr.expires_at.saturating_sub(now);
    #[expect(clippy::cast_precision_loss, reason = "seconds, far below 2^52")]
    if lifetime as f64 > s.0.cfg.max_address_lifetime_seconds {
        return Err(rejected("address_lifetime_too_long"));
    }
    let stored = StoredAddress {
        identity: addr.identity.to_hex(),
        text: addr.to_string(),
        issued_at: secs(addr.issued_at),
        expires_at: secs(addr.expires_at),
    };
    let put =
        s.0.store
            .put_address(&stored, s.0.cfg.max_addresses)
            .await?;
    Ok((addr, put))
}

async fn lookup_inner(s: &AppState, id: &str) -> Result<Response, AppError> {
    let key =
        IdentityPublicKey::from_hex(id).map_err(|_| AppError::bad("error", "invalid_identity"))?;
    let not_found = || AppError::with(StatusCode::NOT_FOUND, "error", "not_found");
    let stored =
        s.0.store
            .address(&key.to_hex())
            .await?
            .ok_or_else(not_found)?;
    if stored.expires_at <= secs(unix_now(s)) {
        return Err(not_found());
    }
    Ok(Json(json!({
        "identity": stored.identity,
        "address": stored.text,
        "issued_at": stored.issued_at,
        "expires_at": stored.expires_at,
    }))
    .into_response())
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "the seed clock is unix seconds, positive and far below u64::MAX"
)]
pub(super) fn unix_now(s: &AppState) -> u64 {
    s.now().max(0.0) as u64
}

/// Unix seconds as the store's integer (addresses past year 292 billion saturate).
pub(super) fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}
