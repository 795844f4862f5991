//! Seed revocations (spec §5.8): acceptance rules shared by `/revoke_seed`, gossip import and
//! the operator's revocation list file.
//!
//! Stricter than the reference (W13): a revocation must be signed by the revoked seed itself
//! or a configured authority, may not be dated in the future beyond the timestamp window, and
//! a stored revocation can be made to take effect earlier but never later, whoever signs the
//! newer one. A list file must be signed by a trusted authority when it names one.

use std::path::Path;

use ournet_proto::canonical_json;
use ournet_proto::keys::{IdentityPublicKey, Signature};
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
    let str_of = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let seed_id = str_of("seed_id");
    if seed_id.is_empty() {
        return Err("missing_seed_id".into());
    }
    if str_of("revocation_id").is_empty() {
        return Err("missing_revocation_id".into());
    }
    let now = s.now();
    let ts = o.get("timestamp").and_then(Value::as_f64).unwrap_or(0.0);
    if now - ts > cfg.seed_revocation_max_age_seconds {
        #[expect(clippy::cast_possible_truncation, reason = "display only")]
        return Err(format!("revocation_too_old:age={}s", (now - ts) as i64));
    }
    if ts > now + cfg.timestamp_window_seconds {
        return Err("future_timestamp".into());
    }
    let issuer = str_of("issuer_id");
    if str_of("signature").is_empty() {
        return Err("missing_signature".into());
    }
    if issuer.is_empty() {
        return Err("missing_issuer_id".into());
    }
    if issuer != seed_id && !cfg.seed_revocation_trusted_authorities.contains(&issuer) {
        return Err("untrusted_issuer".into());
    }
    let eff = o
        .get("effective_at")
        .and_then(Value::as_f64)
        .filter(|e| *e > 0.0)
        .unwrap_or(ts);
    let signable = json!({
        "type": o.get("type").and_then(Value::as_str).unwrap_or("seed_revocation"),
        "revocation_id": str_of("revocation_id"),
        "seed_id": seed_id,
        "reason": o.get("reason").cloned().unwrap_or(Value::Null),
        "reason_detail": o.get("reason_detail").cloned().unwrap_or(Value::Null),
        "timestamp": o.get("timestamp").cloned().unwrap_or(Value::Null),
        "effective_at": o.get("effective_at").cloned().unwrap_or(Value::Null),
        "issuer_id": issuer,
    });
    let bad = |what: &str| format!("invalid_signature:{what}");
    let key =
        IdentityPublicKey::from_hex(&issuer).map_err(|_| bad("invalid_key_or_signature_format"))?;
    let sig = Signature::from_hex(&str_of("signature"))
        .map_err(|_| bad("invalid_key_or_signature_format"))?;
    let msg = canonical_json::to_compact(&signable).map_err(|_| bad("verification_error"))?;
    let _ok = key
        .verify(msg.as_bytes(), &sig)
        .map_err(|_| bad("signature_verification_failed"))?;
    let mut rec = signable;
    rec["effective_at"] = json!(eff);
    rec["signature"] = json!(str_of("signature"));
    Ok(rec)
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
    let authority = list
        .get("authority_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    if authority.is_empty() {
        return Ok(());
    }
    if !s
        .0
        .cfg
        .seed_revocation_trusted_authorities
        .iter()
        .any(|a| a == authority)
    {
        return Err("untrusted_authority".into());
    }
    let signable = json!({
        "version": list.get("version").cloned().unwrap_or(json!(1)),
        "generated_at": list.get("generated_at").cloned().unwrap_or(Value::Null),
        "revocations": list.get("revocations").cloned().unwrap_or(json!([])),
        "authority_id": authority,
    });
    let sig = list.get("signature").and_then(Value::as_str).unwrap_or("");
    let sig = Signature::from_hex(sig).map_err(|_| "bad_signature_format".to_owned())?;
    let key = IdentityPublicKey::from_hex(authority).map_err(|_| "bad_authority_key".to_owned())?;
    let msg = canonical_json::to_compact(&signable).map_err(|e| e.to_string())?;
    key.verify(msg.as_bytes(), &sig)
        .map(|_| ())
        .map_err(|_| "signature_verification_failed".to_owned())
}
