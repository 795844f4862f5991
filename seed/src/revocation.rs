//! Seed revocations (spec §5.8): acceptance rules shared by `/revoke_seed`, gossip import and
//! the operator's revocation list file.
//!
//! Stricter than the reference (W13): a revocation must be signed by the revoked seed itself
//! or a configured authority, may not be dated in the future beyond the timestamp window, and
//! a stored revocation can be made to take effect earlier but never later, whoever signs the
//! newer one. A list file must be signed by a trusted authority when it names one. The
//! signature rules themselves live in `ournet_proto::revocation`, shared with the discovery
//! client.

use std::path::Path;

use ournet_proto::revocation::{self, RevocationRules, VerifiedRevocation};
use serde_json::{Map, Value, json};

use crate::error::AppError;
use crate::state::AppState;

/// The acceptance rules of §5.8 with our fixes; `Ok(Err(reason))` is a refusal, `Ok(Ok(r))`
/// the record now stored for that seed. Shared with gossip import.
pub async fn add_revocation(
    s: &AppState,
    o: &Map<String, Value>,
    source: &str,
) -> Result<Result<Value, String>, AppError> {
    let mut rec = match check_revocation(s, o) {
        Ok(r) => r,
        Err(reason) => return Ok(Err(reason)),
    };
    let seed_id = rec["seed_id"].as_str().unwrap_or_default().to_owned();
    if let Some(old) = s.0.store.revocation(&seed_id).await? {
        let old_eff = old["effective_at"].as_f64().unwrap_or(f64::INFINITY);
        let new_eff = rec["effective_at"].as_f64().unwrap_or(f64::INFINITY);
        if old["revocation_id"] == rec["revocation_id"] || new_eff >= old_eff {
            return Ok(Ok(old));
        }
    }
    rec["received_at"] = json!(s.now());
    rec["source"] = json!(source);
    s.0.store.put_revocation(&seed_id, &rec).await?;
    Ok(Ok(rec))
}

fn check_revocation(s: &AppState, o: &Map<String, Value>) -> Result<Value, String> {
    let cfg = &s.0.cfg;
    let rules = RevocationRules {
        now: s.now(),
        max_age_seconds: cfg.seed_revocation_max_age_seconds,
        future_window_seconds: cfg.timestamp_window_seconds,
        trusted_authorities: &cfg.seed_revocation_trusted_authorities,
    };
    revocation::check_revocation(o, &rules).map(VerifiedRevocation::into_record)
}

/// Loads a revocation list file (`SeedRevocationList`: `{version, generated_at, revocations,
/// authority_id, signature}`), checks its signature when `authority_id` is set, and adds each
/// revocation with source `file`. Returns (accepted count, error strings) in the reference's
/// error vocabulary (`file_not_found:`, `invalid_json:`, `list_signature_invalid:`,
/// `revocation_error:<seed_id>:<reason>`).
///
/// # Errors
/// Storage errors only; file problems are reported in the error list.
pub async fn load_list_file(s: &AppState, path: &Path) -> Result<(usize, Vec<String>), AppError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Ok((0, vec![format!("file_not_found:{e}")])),
    };
    let list: Map<String, Value> = match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Ok((0, vec!["invalid_json:not an object".into()])),
        Err(e) => return Ok((0, vec![format!("invalid_json:{e}")])),
    };
    if let Err(e) = check_list_signature(s, &list) {
        return Ok((0, vec![format!("list_signature_invalid:{e}")]));
    }
    let mut accepted = 0;
    let mut errors = Vec::new();
    let items = list
        .get("revocations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for item in items.iter().filter_map(Value::as_object) {
        match add_revocation(s, item, "file").await? {
            Ok(_) => accepted += 1,
            Err(reason) => {
                let id = item.get("seed_id").and_then(Value::as_str).unwrap_or("");
                errors.push(format!("revocation_error:{id}:{reason}"));
            }
        }
    }
    Ok((accepted, errors))
}

fn check_list_signature(s: &AppState, list: &Map<String, Value>) -> Result<(), String> {
    revocation::check_list_signature(list, &s.0.cfg.seed_revocation_trusted_authorities)
}
