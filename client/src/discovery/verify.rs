//! Checking a seed's `/discover` answer (spec §4.1, PROTOCOL.md's descriptor rules): the list
//! signature against a pinned seed key, then each router's two descriptor signatures.
//!
//! Nothing in an answer is used before its list signature verifies: the unsigned `health` and
//! `asn` fields are vouched for by the seed's signature over the whole answer, and each
//! router's keys and endpoints by the router's own signatures. An entry that fails is dropped
//! and counted, never trusted.

use std::net::SocketAddr;

use ournet_proto::circuit::PathHop;
use ournet_proto::descriptor::{SignedDescriptor, verify_router_list};
use ournet_proto::keys::IdentityPublicKey;
use serde_json::{Map, Value};

use crate::directory::RelayInfo;

/// Most router entries read from one answer (the seed serves at most 20); the rest are
/// dropped and counted as rejected.
pub const MAX_ROUTERS_PER_ANSWER: usize = 64;
/// Most `other_seeds` URLs taken from one answer.
pub const MAX_OTHER_SEEDS: usize = 16;

/// A `/discover` answer whose list signature verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedAnswer {
    /// The seed's id as it names itself (revocations name seeds by it).
    pub seed_id: String,
    /// The pinned key the list verified under.
    pub seed_key: IdentityPublicKey,
    /// Routers whose descriptors verified and whose first endpoint is an IP address.
    pub relays: Vec<RelayInfo>,
    /// Entries dropped: bad descriptor signature, malformed, or not reachable by IP.
    pub rejected: usize,
    /// Other seeds the answer names (untrusted until their own answers verify).
    pub other_seeds: Vec<String>,
}

/// Why a whole answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// Not a JSON object.
    #[error("answer is not a JSON object")]
    NotJson,
    /// The answer names no seed key, or one that is not pinned (or not the one pinned for
    /// this URL).
    #[error("answer signed by a seed key that is not pinned")]
    UnpinnedKey,
    /// The list signature is missing or does not verify.
    #[error("seed list signature does not verify")]
    BadListSignature,
    /// The signed `timestamp` is missing or further from now than allowed: an old answer
    /// replayed (by the seed's network path or a learned seed) to steer clients to relays
    /// that have since gone or been compromised.
    #[error("seed answer is stale or from the future")]
    Stale,
}

/// When an answer may be used: its signed `timestamp` within `max_age` of `now` (unix
/// seconds, both directions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Freshness {
    /// Wall-clock now (unix seconds).
    pub now: f64,
    /// Largest accepted distance between `timestamp` and `now`, in seconds.
    pub max_age: f64,
}

/// Verifies an answer's list signature under `expected` (the key pinned for this URL) or,
/// for a URL with no key of its own, any key in `trusted`, and its freshness; then verifies
/// every router.
///
/// # Errors
/// [`AnswerError`]; the answer must not be used at all then.
pub fn verify_answer(
    body: &[u8],
    expected: Option<&IdentityPublicKey>,
    trusted: &[IdentityPublicKey],
    fresh: Freshness,
) -> Result<VerifiedAnswer, AnswerError> {
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
        return Err(AnswerError::NotJson);
    };
    let named = answer
        .get("seed_key")
        .and_then(Value::as_str)
        .and_then(|k| IdentityPublicKey::from_hex(k).ok())
        .ok_or(AnswerError::UnpinnedKey)?;
    let pinned = match expected {
        Some(k) => *k == named && trusted.contains(k),
        None => trusted.contains(&named),
    };
    if !pinned {
        return Err(AnswerError::UnpinnedKey);
    }
    let _list_ok =
        verify_router_list(&answer, &named).map_err(|_| AnswerError::BadListSignature)?;
    let ts = answer.get("timestamp").and_then(Value::as_f64);
    if ts.is_none_or(|t| (t - fresh.now).abs() > fresh.max_age) {
        return Err(AnswerError::Stale);
    }
    let (relays, rejected) = verify_routers(&answer);
    Ok(VerifiedAnswer {
        seed_id: answer
            .get("seed_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        seed_key: named,
        relays,
        rejected,
        other_seeds: other_seeds(&answer),
    })
}

fn verify_routers(answer: &Map<String, Value>) -> (Vec<RelayInfo>, usize) {
    let entries = answer
        .get("routers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut relays: Vec<RelayInfo> = Vec::new();
    let mut rejected = entries.len().saturating_sub(MAX_ROUTERS_PER_ANSWER);
    for entry in entries.iter().take(MAX_ROUTERS_PER_ANSWER) {
        match relay_info(entry) {
            Some(r) if !relays.iter().any(|o| o.router_id == r.router_id) => relays.push(r),
            _ => rejected += 1,
        }
    }
    (relays, rejected)
}

/// One entry as a [`RelayInfo`], if both its signatures verify and its first endpoint is an
/// IP address (a [`PathHop`] is dialled by address).
pub fn relay_info(entry: &Value) -> Option<RelayInfo> {
    let verified = SignedDescriptor::from_json(entry)
        .and_then(SignedDescriptor::verify)
        .ok()?;
    let body = verified.body();
    let addr: SocketAddr = body.endpoints.first()?.parse().ok()?;
    let asn = entry
        .get("asn")
        .or_else(|| body.capacity.get("asn"))
        .and_then(Value::as_u64)
        .and_then(|a| u32::try_from(a).ok());
    let load = entry
        .get("health")
        .and_then(|h| h.get("load_pct"))
        .and_then(Value::as_f64)
        .filter(|l| (0.0..=100.0).contains(l))
        .map(|l| l / 100.0);
    Some(RelayInfo {
        router_id: body.router_id.to_hex(),
        hop: PathHop {
            identity: body.router_id,
            onion_key: body.onion_key,
            link_key: body.link_key,
            addr,
        },
        region: body.region.clone(),
        asn,
        load,
    })
}

fn other_seeds(answer: &Map<String, Value>) -> Vec<String> {
    answer
        .get("other_seeds")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|u| u.len() <= 256)
                .map(|u| u.trim_end_matches('/').to_owned())
                .take(MAX_OTHER_SEEDS)
                .collect()
        })
        .unwrap_or_default()
}
