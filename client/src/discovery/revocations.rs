//! The client's revocation set (W14): seed ids whose revocation verified under
//! [`ournet_proto::revocation`]'s rules (the seed's own), from a list file or a seed's
//! `GET /revocations`, applied to seed selection once effective.
//!
//! Unlike the reference, a revocation is verified before it counts, it names a seed the way
//! seeds name themselves (its id, by default the hex of its key) and the client maps that to
//! the seed's URLs and pinned key, and a revocation can be made earlier but never postponed
//! (W13's rule on the seed, kept here too).

use std::collections::HashMap;

use ournet_proto::revocation::{self, RevocationRules};
use serde_json::{Map, Value};

/// Most revoked seed ids kept (a hostile seed cannot grow the set without bound; every entry
/// must still be signed by the revoked seed or a trusted authority).
pub const MAX_REVOCATIONS: usize = 4096;

/// Verified revocations: seed id → when it takes effect (unix seconds).
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    effective_at: HashMap<String, f64>,
}

impl Revocations {
    /// Whether `seed_id` is revoked at `now`.
    #[must_use]
    pub fn is_revoked(&self, seed_id: &str, now: f64) -> bool {
        self.effective_at.get(seed_id).is_some_and(|t| *t <= now)
    }

    /// Seed ids revoked at `now`, sorted.
    #[must_use]
    pub fn revoked(&self, now: f64) -> Vec<String> {
        let mut ids: Vec<String> = self
            .effective_at
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// How many revocations are held (effective or not yet).
    #[must_use]
    pub fn len(&self) -> usize {
        self.effective_at.len()
    }

    /// Whether none are held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.effective_at.is_empty()
    }

    /// Applies a revocation list: a file (`{version, generated_at, revocations, authority_id,
    /// signature}`, whose list signature must verify when it names an authority) or a seed's
    /// `GET /revocations` answer (`{revocations: [...]}`, unsigned as a list: each
    /// revocation carries its own signature). Returns (accepted, errors) in the seed's error
    /// vocabulary.
    pub fn apply_list(
        &mut self,
        list: &Map<String, Value>,
        rules: &RevocationRules<'_>,
    ) -> (usize, Vec<String>) {
        if let Err(e) = revocation::check_list_signature(list, rules.trusted_authorities) {
            return (0, vec![format!("list_signature_invalid:{e}")]);
        }
        let items = list
            .get("revocations")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut accepted = 0;
        let mut errors = Vec::new();
        for item in items.iter().filter_map(Value::as_object) {
            match revocation::check_revocation(item, rules) {
                Ok(v) if self.insert(v.seed_id(), v.effective_at()) => accepted += 1,
                Ok(v) => errors.push(format!("revocation_error:{}:too_many", v.seed_id())),
                Err(reason) => {
                    let id = item.get("seed_id").and_then(Value::as_str).unwrap_or("");
                    errors.push(format!("revocation_error:{id}:{reason}"));
                }
            }
        }
        (accepted, errors)
    }

    /// Adds or moves earlier; `false` only when full.
    fn insert(&mut self, seed_id: &str, effective_at: f64) -> bool {
        if let Some(t) = self.effective_at.get_mut(seed_id) {
            *t = t.min(effective_at);
            return true;
        }
        if self.effective_at.len() >= MAX_REVOCATIONS {
            return false;
        }
        self.effective_at.insert(seed_id.to_owned(), effective_at);
        true
    }
}
