//! `POST /discover`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ournet_proto::descriptor;
use serde_json::{Map, Value, json};

use super::counted;
use crate::error::AppError;
use crate::policy::{self, Candidate, Preferences};
use crate::record::RouterRecord;
use crate::state::{AppState, Snapshot};

/// Most routers one answer holds (the reference's clamp).
const MAX_COUNT: i64 = 20;

pub(super) async fn discover(State(s): State<AppState>, body: Bytes) -> Response {
    let r = discover_inner(&s, &body).await;
    counted(&s, r)
}

async fn discover_inner(s: &AppState, body: &Bytes) -> Result<Response, AppError> {
    let snap = s.snapshot().await?;
    if let Some(answer) = snap.cached_body(body) {
        return Ok(json_bytes(answer));
    }
    let answer = answer(s, &snap, body)?;
    snap.remember_body(body, &answer);
    Ok(json_bytes(answer))
}

/// The signed answer to one request body, from the snapshot's per-question cache or computed
/// and cached there.
fn answer(s: &AppState, snap: &Snapshot, body: &Bytes) -> Result<Bytes, AppError> {
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
    let key = (count, prefs);
    if let Some(answer) = snap.cached(&key) {
        return Ok(answer);
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
        chosen.iter().map(|r| served_with_asn(s, r)).collect(),
    );
    answer.insert("other_seeds".into(), json!(s.0.cfg.known_seeds));
    descriptor::sign_router_list(&s.0.seed_key, &mut answer)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let bytes =
        Bytes::from(serde_json::to_vec(&answer).map_err(|e| AppError::Internal(e.to_string()))?);
    snap.remember(key, bytes.clone());
    Ok(bytes)
}

/// The entry as served, plus the `asn` the seed maps its first endpoint to (when its table
/// knows it), so clients can spread paths across autonomous systems (W21). It sits outside
/// the router's signature but under the seed's list signature.
fn served_with_asn(s: &AppState, r: &RouterRecord) -> Value {
    let mut v = r.served();
    let eps = r.endpoints();
    let host = eps.first().map_or("", |e| policy::split_endpoint(e).0);
    if let (Some(asn), Value::Object(m)) = (s.0.asns.lookup(host), &mut v) {
        m.insert("asn".into(), asn.into());
    }
    v
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
