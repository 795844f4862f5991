//! Seed revocations (spec §4.1 `/revoke_seed`, §5.8): what a revocation signs, who may sign
//! it, and how a signed revocation list is checked. One rule for the seed (which stores and
//! gossips revocations) and the discovery client (which stops asking a revoked seed, W14).
//!
//! A revocation is a JSON object; its signature is Ed25519 by `issuer_id` over the compact
//! canonical JSON of exactly
//!
//! ```text
//! { "type", "revocation_id", "seed_id", "reason", "reason_detail", "timestamp",
//!   "effective_at", "issuer_id" }
//! ```
//!
//! (absent fields as `null`, `type` defaulting to `"seed_revocation"`). The issuer must be the
//! revoked seed itself (`issuer_id == seed_id`) or a trusted authority. A list file
//! (`{version, generated_at, revocations, authority_id, signature}`) is signed by its
//! authority over `{version, generated_at, revocations, authority_id}`.
//!
//! Refusals are the reference's reason strings (`missing_seed_id`, `untrusted_issuer`,
//! `invalid_signature:signature_verification_failed`, ...), which the seed returns over HTTP.

use serde_json::{Map, Value, json};

use crate::canonical_json;
use crate::keys::{IdentityPublicKey, Signature};

/// What the checker needs to know besides the revocation.
#[derive(Debug, Clone, Copy)]
pub struct RevocationRules<'a> {
    /// Wall-clock now (unix seconds).
    pub now: f64,
    /// Oldest acceptable `timestamp`, as an age in seconds.
    pub max_age_seconds: f64,
    /// How far in the future a `timestamp` may lie (clock skew).
    pub future_window_seconds: f64,
    /// Authority keys (hex) whose revocations are accepted for any seed.
    pub trusted_authorities: &'a [String],
}

/// A revocation whose signature and issuer checked out. Only [`check_revocation`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedRevocation(Value);

impl VerifiedRevocation {
    /// The record: the signed fields, `effective_at` defaulted to `timestamp`, and `signature`.
    pub fn record(&self) -> &Value {
        &self.0
    }

    /// The record, owned.
    pub fn into_record(self) -> Value {
        self.0
    }

    /// The revoked seed's id.
    pub fn seed_id(&self) -> &str {
        self.0["seed_id"].as_str().unwrap_or_default()
    }

    /// When the revocation takes effect (unix seconds).
    pub fn effective_at(&self) -> f64 {
        self.0["effective_at"].as_f64().unwrap_or(f64::INFINITY)
    }
}

/// Checks one revocation (§5.8 steps 1-3, stricter: always signed, no far-future timestamp).
///
/// # Errors
/// The refusal reason string.
pub fn check_revocation(
    o: &Map<String, Value>,
    rules: &RevocationRules<'_>,
) -> Result<VerifiedRevocation, String> {
    let str_of = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let seed_id = str_of("seed_id");
    if seed_id.is_empty() {
        return Err("missing_seed_id".into());
    }
    if str_of("revocation_id").is_empty() {
        return Err("missing_revocation_id".into());
    }
    let ts = o.get("timestamp").and_then(Value::as_f64).unwrap_or(0.0);
    if rules.now - ts > rules.max_age_seconds {
        #[expect(clippy::cast_possible_truncation, reason = "display only")]
        return Err(format!(
            "revocation_too_old:age={}s",
            (rules.now - ts) as i64
        ));
    }
    if ts > rules.now + rules.future_window_seconds {
        return Err("future_timestamp".into());
    }
    let issuer = str_of("issuer_id");
    if str_of("signature").is_empty() {
        return Err("missing_signature".into());
    }
    if issuer.is_empty() {
        return Err("missing_issuer_id".into());
    }
    if issuer != seed_id && !rules.trusted_authorities.contains(&issuer) {
        return Err("untrusted_issuer".into());
    }
    let eff = o
        .get("effective_at")
        .and_then(Value::as_f64)
        .filter(|e| *e > 0.0)
        .unwrap_or(ts);
    let signable = revocation_signable(o);
    verify_hex(&issuer, &str_of("signature"), &signable)
        .map_err(|what| format!("invalid_signature:{what}"))?;
    let mut rec = signable;
    rec["effective_at"] = json!(eff);
    rec["signature"] = json!(str_of("signature"));
    Ok(VerifiedRevocation(rec))
}

/// The object a revocation's signature covers (the issuer signs its compact canonical JSON).
pub fn revocation_signable(o: &Map<String, Value>) -> Value {
    let field = |k: &str| o.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "type": o.get("type").and_then(Value::as_str).unwrap_or("seed_revocation"),
        "revocation_id": field("revocation_id"),
        "seed_id": field("seed_id"),
        "reason": field("reason"),
        "reason_detail": field("reason_detail"),
        "timestamp": field("timestamp"),
        "effective_at": field("effective_at"),
        "issuer_id": field("issuer_id"),
    })
}

/// Checks a revocation list file's own signature. A list without `authority_id` carries no
/// list signature (each revocation is still checked on its own).
///
/// # Errors
/// `untrusted_authority`, `bad_signature_format`, `bad_authority_key`,
/// `signature_verification_failed`.
pub fn check_list_signature(
    list: &Map<String, Value>,
    trusted_authorities: &[String],
) -> Result<(), String> {
    let authority = list
        .get("authority_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    if authority.is_empty() {
        return Ok(());
    }
    if !trusted_authorities.iter().any(|a| a == authority) {
        return Err("untrusted_authority".into());
    }
    let sig = list.get("signature").and_then(Value::as_str).unwrap_or("");
    verify_hex(authority, sig, &list_signable(list)).map_err(|what| match what {
        "invalid_key_or_signature_format" if Signature::from_hex(sig).is_err() => {
            "bad_signature_format".to_owned()
        }
        "invalid_key_or_signature_format" => "bad_authority_key".to_owned(),
        other => other.to_owned(),
    })
}

/// The object a list's signature covers.
pub fn list_signable(list: &Map<String, Value>) -> Value {
    json!({
        "version": list.get("version").cloned().unwrap_or(json!(1)),
        "generated_at": list.get("generated_at").cloned().unwrap_or(Value::Null),
        "revocations": list.get("revocations").cloned().unwrap_or(json!([])),
        "authority_id": list.get("authority_id").cloned().unwrap_or(Value::Null),
    })
}

/// Verifies `sig_hex` by `key_hex` over the compact canonical JSON of `v`; the error names
/// what failed in the reference's words.
fn verify_hex(key_hex: &str, sig_hex: &str, v: &Value) -> Result<(), &'static str> {
    let key =
        IdentityPublicKey::from_hex(key_hex).map_err(|_| "invalid_key_or_signature_format")?;
    let sig = Signature::from_hex(sig_hex).map_err(|_| "invalid_key_or_signature_format")?;
    let msg = canonical_json::to_compact(v).map_err(|_| "verification_error")?;
    key.verify(msg.as_bytes(), &sig)
        .map(|_| ())
        .map_err(|_| "signature_verification_failed")
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::keys::IdentityKeypair;

    fn signed(k: &IdentityKeypair, seed_id: &str, ts: f64) -> Map<String, Value> {
        let mut o = json!({
            "revocation_id": "r1", "seed_id": seed_id, "reason": "key_compromise",
            "timestamp": ts, "issuer_id": k.public().to_hex(),
        });
        let o_map = o.as_object().cloned().unwrap_or_default();
        let msg = canonical_json::to_compact(&revocation_signable(&o_map)).unwrap();
        o["signature"] = json!(k.sign(msg.as_bytes()).to_hex());
        o.as_object().cloned().unwrap_or_default()
    }

    fn rules(trusted: &[String]) -> RevocationRules<'_> {
        RevocationRules {
            now: 1000.0,
            max_age_seconds: 500.0,
            future_window_seconds: 60.0,
            trusted_authorities: trusted,
        }
    }

    #[test]
    fn self_signed_and_authority_signed_revocations_verify() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let seed = IdentityKeypair::generate(&mut rng);
        let auth = IdentityKeypair::generate(&mut rng);
        let id = seed.public().to_hex();
        let v = check_revocation(&signed(&seed, &id, 900.0), &rules(&[])).unwrap();
        assert_eq!((v.seed_id(), v.effective_at()), (id.as_str(), 900.0));
        let by_auth = signed(&auth, &id, 900.0);
        assert_eq!(
            check_revocation(&by_auth, &rules(&[])),
            Err("untrusted_issuer".into())
        );
        assert!(check_revocation(&by_auth, &rules(&[auth.public().to_hex()])).is_ok());
    }

    #[test]
    fn tampered_old_and_future_revocations_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let seed = IdentityKeypair::generate(&mut rng);
        let id = seed.public().to_hex();
        let mut o = signed(&seed, &id, 900.0);
        o.insert("reason".into(), json!("other"));
        assert_eq!(
            check_revocation(&o, &rules(&[])),
            Err("invalid_signature:signature_verification_failed".into())
        );
        let old = signed(&seed, &id, 100.0);
        assert_eq!(
            check_revocation(&old, &rules(&[])),
            Err("revocation_too_old:age=900s".into())
        );
        let future = signed(&seed, &id, 2000.0);
        assert_eq!(
            check_revocation(&future, &rules(&[])),
            Err("future_timestamp".into())
        );
    }

    #[test]
    fn list_signature_needs_a_trusted_authority() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let auth = IdentityKeypair::generate(&mut rng);
        let mut list = json!({"version": 1, "generated_at": 5.0, "revocations": [],
            "authority_id": auth.public().to_hex()})
        .as_object()
        .cloned()
        .unwrap();
        let msg = canonical_json::to_compact(&list_signable(&list)).unwrap();
        list.insert(
            "signature".into(),
            json!(auth.sign(msg.as_bytes()).to_hex()),
        );
        let trusted = [auth.public().to_hex()];
        assert_eq!(check_list_signature(&list, &trusted), Ok(()));
        assert_eq!(
            check_list_signature(&list, &[]),
            Err("untrusted_authority".into())
        );
        list.insert("generated_at".into(), json!(6.0));
        assert_eq!(
            check_list_signature(&list, &trusted),
            Err("signature_verification_failed".into())
        );
    }
}
