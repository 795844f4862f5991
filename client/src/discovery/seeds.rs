//! The seed list (spec §5.10 "Seed list order"): pinned seeds, seeds learned from answers,
//! their health and revocation state, and the order in which they are asked.

use ournet_proto::keys::IdentityPublicKey;

use super::health::{SUCCESS_MEMORY_SECONDS, SeedHealth};
use super::revocations::Revocations;

/// Most seeds learned from `other_seeds` (pinned seeds are not counted).
pub const MAX_LEARNED_SEEDS: usize = 16;

/// One seed the client knows.
#[derive(Debug, Clone)]
pub struct SeedEntry {
    /// Base URL, without a trailing `/`.
    pub url: String,
    /// The key its answers must verify under: pinned by the operator, or bound at a learned
    /// seed's first verified answer (which must be under some pinned key).
    pub key: Option<IdentityPublicKey>,
    /// The id it gave in its last verified answer.
    pub seed_id: Option<String>,
    /// Configured (true) or learned from an answer (false).
    pub pinned: bool,
    /// When a learned seed was last named by an answer (unix seconds).
    pub learned_at: f64,
    /// What the client has seen of it.
    pub health: SeedHealth,
}

impl SeedEntry {
    /// Whether a revocation names this seed (by its id or its key's hex).
    #[must_use]
    pub fn revoked(&self, revocations: &Revocations, now: f64) -> bool {
        self.seed_id
            .as_deref()
            .is_some_and(|id| revocations.is_revoked(id, now))
            || self
                .key
                .is_some_and(|k| revocations.is_revoked(&k.to_hex(), now))
    }
}

/// All known seeds.
#[derive(Debug, Clone, Default)]
pub struct SeedList {
    /// Pinned seeds first, in configuration order, then learned ones.
    pub entries: Vec<SeedEntry>,
    /// The seed whose answer was last used.
    pub last_successful: Option<String>,
}

impl SeedList {
    /// The seed at `url`.
    pub fn get_mut(&mut self, url: &str) -> Option<&mut SeedEntry> {
        self.entries.iter_mut().find(|e| e.url == url)
    }

    /// Learns seeds named in an answer; refreshes known ones, drops the oldest learned seed
    /// past [`MAX_LEARNED_SEEDS`].
    pub fn learn(&mut self, urls: &[String], now: f64) {
        for url in urls {
            if let Some(e) = self.get_mut(url) {
                e.learned_at = now;
                continue;
            }
            self.entries.push(SeedEntry {
                url: url.clone(),
                key: None,
                seed_id: None,
                pinned: false,
                learned_at: now,
                health: SeedHealth::default(),
            });
        }
        while self.entries.iter().filter(|e| !e.pinned).count() > MAX_LEARNED_SEEDS {
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| !e.pinned)
                .min_by(|a, b| a.1.learned_at.total_cmp(&b.1.learned_at))
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                self.entries.remove(i);
            }
        }
    }

    /// The order to ask seeds in, and how many were skipped as revoked: the last successful
    /// seed (while healthy and recent), then pinned seeds, then learned seeds named within
    /// 24 h; within each group by descending health score when `by_health`. A revoked seed
    /// is never in the list, and a revoked last-successful seed is forgotten.
    pub fn order(
        &mut self,
        revocations: &Revocations,
        now: f64,
        by_health: bool,
    ) -> (Vec<(String, Option<IdentityPublicKey>)>, usize) {
        let mut skipped = 0;
        let mut live: Vec<&SeedEntry> = Vec::new();
        for e in &self.entries {
            if e.revoked(revocations, now) {
                skipped += 1;
            } else if e.pinned || now - e.learned_at <= SUCCESS_MEMORY_SECONDS {
                live.push(e);
            }
        }
        let first = self
            .last_successful
            .as_ref()
            .and_then(|u| live.iter().find(|e| &e.url == u))
            .filter(|e| e.health.still_first(now))
            .map(|e| e.url.clone());
        if first.is_none() {
            self.last_successful = None;
        }
        let mut groups: [Vec<&SeedEntry>; 2] = [Vec::new(), Vec::new()];
        for e in live {
            if Some(&e.url) != first.as_ref() {
                groups[usize::from(!e.pinned)].push(e);
            }
        }
        let mut out = Vec::new();
        if let Some(url) = &first {
            let key = self
                .entries
                .iter()
                .find(|e| &e.url == url)
                .and_then(|e| e.key);
            out.push((url.clone(), key));
        }
        for mut group in groups {
            if by_health {
                group.sort_by(|a, b| b.health.score(now).total_cmp(&a.health.score(now)));
            }
            out.extend(group.into_iter().map(|e| (e.url.clone(), e.key)));
        }
        (out, skipped)
    }
}
