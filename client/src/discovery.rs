//! The discovery client (spec §2.2, §5.10): relays from seeds, verified, cached, diverse.
//!
//! Where the reference trusts whatever a seed says, this client:
//!
//! * uses an answer only if its list signature verifies under a **pinned** seed key and its
//!   signed timestamp is fresh (no replayed old lists), and each router only if both its
//!   descriptor signatures verify (W1); failures are dropped and counted in
//!   [`DiscoveryStats`];
//! * asks a seed whenever the cache holds fewer eligible relays than asked for (W34), and
//!   applies `exclude` itself (W22) and /16 + ASN diversity (W21, [`select_diverse_routers`]);
//! * verifies revocations exactly as the seed does (`ournet_proto::revocation`), from a list
//!   file or a seed's `GET /revocations`, and never asks a revoked seed (W14);
//! * bounds what it keeps: the cache is the last verified answer, learned seeds and
//!   revocations have caps (W26).
//!
//! It also publishes and looks up signed recipient addresses (`POST /address`,
//! `GET /address/{identity}`), which a seed stores but cannot forge: an address is signed by
//! its node ([`ournet_proto::address`]).
//!
//! Seeds are asked through a [`SeedTransport`] ([`HttpTransport`] by default), so tests run
//! every rule on canned answers.

mod address;
pub mod health;
pub mod http;
pub mod revocations;
pub mod seeds;
pub mod select;
pub mod verify;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ournet_proto::address::{AddressError, NodeAddress};
use ournet_proto::keys::IdentityPublicKey;
use ournet_proto::revocation::RevocationRules;
use serde_json::{Value, json};

pub use health::SeedHealth;
pub use http::{HttpTransport, SeedAnswer, SeedRequest, SeedTransport, TransportError};
pub use revocations::Revocations;
pub use select::{Subnet, select_diverse_routers};

use crate::directory::{DirectoryError, Preferences, RelayDirectory, RelayInfo};
use seeds::{SeedEntry, SeedList};
use verify::{Freshness, VerifiedAnswer, verify_answer};

/// Most routers one `/discover` request asks for (the seed's clamp).
const MAX_REQUEST: usize = 20;

/// A seed the operator trusts: where it is and the key its answers must be signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedSeed {
    /// Base URL (`http://host:port`); a trailing `/` is dropped.
    pub url: String,
    /// The seed's Ed25519 key (its `seed_key`; by default its `seed_id` is this key's hex).
    pub key: IdentityPublicKey,
}

/// Configuration of [`create_discovery_client`].
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// Seeds and their pinned keys. Seeds named in answers (`other_seeds`) are also asked,
    /// but their answers must verify under one of these keys.
    pub seeds: Vec<PinnedSeed>,
    /// How long a verified answer serves requests it can satisfy (reference: 6 h).
    pub cache_ttl: Duration,
    /// Whole-request timeout per seed (reference: 10 s).
    pub request_timeout: Duration,
    /// Oldest (or furthest in the future) signed answer `timestamp` accepted, so a replayed
    /// old list is refused. Covers the seed's answer cache and clock skew. Default 10 min.
    pub max_answer_age: Duration,
    /// Order seeds within a group by health score (reference: on).
    pub order_seeds_by_health: bool,
    /// Ask seeds named in `other_seeds` after the pinned ones.
    pub learn_other_seeds: bool,
    /// Authority keys (hex) trusted to revoke any seed (a seed may always revoke itself).
    pub revocation_authorities: Vec<String>,
    /// Oldest revocation accepted (the seed's default: 30 days).
    pub revocation_max_age: Duration,
    /// How often `GET /revocations` is asked of the seed that answered; `None`: never.
    pub revocation_refresh: Option<Duration>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            seeds: Vec::new(),
            cache_ttl: Duration::from_secs(21_600),
            request_timeout: Duration::from_secs(10),
            max_answer_age: Duration::from_secs(600),
            order_seeds_by_health: true,
            learn_other_seeds: true,
            revocation_authorities: Vec::new(),
            revocation_max_age: Duration::from_secs(2_592_000),
            revocation_refresh: Some(Duration::from_secs(3600)),
        }
    }
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// No seed is configured, or every one is revoked.
    #[error("no seeds configured or all revoked")]
    NoSeeds,
    /// Every seed failed or answered with nothing usable; the last error.
    #[error("could not get a verified answer from any seed: {0}")]
    AllSeedsFailed(String),
    /// Seeds answered, but with fewer eligible relays than needed.
    #[error("only {got} relays known, {wanted} needed")]
    TooFew {
        /// How many were available.
        got: usize,
        /// How many were asked for.
        wanted: usize,
    },
    /// A configured URL cannot be used.
    #[error(transparent)]
    BadUrl(#[from] TransportError),
    /// An address to publish is invalid (for example already expired).
    #[error(transparent)]
    Address(#[from] AddressError),
}

/// Counters (spec §5.10 "Stats keys").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    /// `discover_routers` calls.
    pub queries: u64,
    /// Calls answered from the cache.
    pub cache_hits: u64,
    /// Seed requests that failed (network, status, timeout) or whose list did not verify.
    pub seed_failures: u64,
    /// Lists and router entries refused for a bad or unpinned signature.
    pub signature_failures: u64,
    /// Seed answers that verified.
    pub seed_successes: u64,
    /// Times a revoked seed was skipped.
    pub revoked_seeds_skipped: u64,
}

/// One line of [`DiscoveryClient::get_seed_health_report`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeedHealthReport {
    /// The seed's URL.
    pub url: String,
    /// The id it last gave, if it has answered.
    pub seed_id: Option<String>,
    /// Configured (true) or learned (false).
    pub pinned: bool,
    /// Whether a revocation names it.
    pub revoked: bool,
    /// Its health score (§5.10).
    pub score: f64,
    /// What the client has seen of it.
    pub health: SeedHealth,
}

/// Makes a discovery client that asks seeds over HTTP.
///
/// # Errors
/// [`DiscoveryError::BadUrl`] for a URL the client cannot speak to.
pub fn create_discovery_client(cfg: DiscoveryConfig) -> Result<DiscoveryClient, DiscoveryError> {
    DiscoveryClient::with_transport(cfg, Arc::new(HttpTransport))
}

/// The discovery client; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct DiscoveryClient {
    cfg: DiscoveryConfig,
    transport: Arc<dyn SeedTransport>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    seeds: SeedList,
    cache: Vec<RelayInfo>,
    cache_at: Option<Instant>,
    revocations: Revocations,
    revocations_at: Option<Instant>,
    stats: DiscoveryStats,
}

impl DiscoveryClient {
    /// A client over `transport` (tests pass a canned one).
    ///
    /// # Errors
    /// [`DiscoveryError::BadUrl`] for a URL the client cannot speak to.
    pub fn with_transport(
        cfg: DiscoveryConfig,
        transport: Arc<dyn SeedTransport>,
    ) -> Result<Self, DiscoveryError> {
        let mut seeds = SeedList::default();
        for s in &cfg.seeds {
            let url = s.url.trim_end_matches('/').to_owned();
            http::SeedUrl::parse(&url)?;
            if seeds.get_mut(&url).is_none() {
                seeds.entries.push(SeedEntry {
                    url,
                    key: Some(s.key),
                    seed_id: None,
                    pinned: true,
                    learned_at: 0.0,
                    health: SeedHealth::default(),
                });
            }
        }
        Ok(Self {
            cfg,
            transport,
            state: Mutex::new(State {
                seeds,
                ..State::default()
            }),
        })
    }

    /// Up to `count` verified relays, diverse by /16 and ASN, none in `prefs.exclude`.
    ///
    /// Served from the cache while it is fresh **and** holds at least `count` eligible
    /// relays; otherwise (or with `force_refresh`) seeds are asked in health order until one
    /// gives `count`, and the largest verified answer is used if none does.
    ///
    /// # Errors
    /// [`DiscoveryError::NoSeeds`], [`DiscoveryError::AllSeedsFailed`], or
    /// [`DiscoveryError::TooFew`] when seeds answered with no eligible relay.
    pub async fn discover_routers(
        &self,
        count: usize,
        prefs: &Preferences,
        force_refresh: bool,
    ) -> Result<Vec<RelayInfo>, DiscoveryError> {
        {
            let mut st = self.lock();
            st.stats.queries += 1;
            let fresh = st
                .cache_at
                .is_some_and(|at| at.elapsed() < self.cfg.cache_ttl);
            if fresh && !force_refresh {
                let eligible = select::eligible(&st.cache, prefs);
                if eligible.len() >= count {
                    st.stats.cache_hits += 1;
                    return Ok(select_diverse_routers(&eligible, count, &[], &[]));
                }
            }
        }
        let relays = self.fetch(count, prefs).await?;
        let eligible = select::eligible(&relays, prefs);
        if eligible.is_empty() && count > 0 {
            return Err(DiscoveryError::TooFew {
                got: 0,
                wanted: count,
            });
        }
        Ok(select_diverse_routers(&eligible, count, &[], &[]))
    }

    /// Forgets cached relays (seed health and revocations are kept).
    pub fn clear_cache(&self) {
        let mut st = self.lock();
        st.cache.clear();
        st.cache_at = None;
    }

    /// The relays of the last verified answer.
    pub fn cached_routers(&self) -> Vec<RelayInfo> {
        self.lock().cache.clone()
    }

    /// A copy of the counters.
    pub fn get_stats(&self) -> DiscoveryStats {
        self.lock().stats
    }

    /// Every known seed with its health, in configuration-then-learned order.
    pub fn get_seed_health_report(&self) -> Vec<SeedHealthReport> {
        let st = self.lock();
        let now = unix_now();
        st.seeds
            .entries
            .iter()
            .map(|e| SeedHealthReport {
                url: e.url.clone(),
                seed_id: e.seed_id.clone(),
                pinned: e.pinned,
                revoked: e.revoked(&st.revocations, now),
                score: e.health.score(now),
                health: e.health.clone(),
            })
            .collect()
    }

    /// Whether `seed_id` (a seed id, a key hex, or a known seed's URL) is revoked now.
    pub fn is_seed_revoked(&self, seed_id: &str) -> bool {
        let st = self.lock();
        let now = unix_now();
        let url = seed_id.trim_end_matches('/');
        st.revocations.is_revoked(seed_id, now)
            || st
                .seeds
                .entries
                .iter()
                .any(|e| e.url == url && e.revoked(&st.revocations, now))
    }

    /// Seed ids revoked now.
    pub fn get_revoked_seeds(&self) -> Vec<String> {
        self.lock().revocations.revoked(unix_now())
    }

    /// Loads a revocation list file and applies every revocation that verifies. Returns
    /// (accepted, errors), errors in the seed's vocabulary (`file_not_found:…`,
    /// `invalid_json:…`, `list_signature_invalid:…`, `revocation_error:<id>:<reason>`).
    pub fn load_revocation_list(&self, path: &Path) -> (usize, Vec<String>) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return (0, vec![format!("file_not_found:{e}")]),
        };
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(list)) => self.apply_revocations(&list),
            Ok(_) => (0, vec!["invalid_json:not an object".into()]),
            Err(e) => (0, vec![format!("invalid_json:{e}")]),
        }
    }

    /// Fetches `GET /revocations` from the seed at `url` and applies every revocation that
    /// verifies (a seed's word alone revokes nothing). Returns (accepted, errors).
    pub async fn fetch_revocations_from_seed(&self, url: &str) -> (usize, Vec<String>) {
        let url = url.trim_end_matches('/');
        let answer = match self.ask(url, SeedRequest::get("/revocations")).await {
            Ok(a) if a.status == 200 => a,
            Ok(a) => return (0, vec![format!("http_error:{}", a.status)]),
            Err(TransportError::Timeout) => return (0, vec!["timeout".into()]),
            Err(e) => return (0, vec![format!("connection_error:{e}")]),
        };
        self.lock().revocations_at = Some(Instant::now());
        match serde_json::from_slice::<Value>(&answer.body) {
            Ok(Value::Object(list)) => self.apply_revocations(&list),
            _ => (0, vec!["invalid_json:not an object".into()]),
        }
    }

    fn apply_revocations(&self, list: &serde_json::Map<String, Value>) -> (usize, Vec<String>) {
        let rules = RevocationRules {
            now: unix_now(),
            max_age_seconds: self.cfg.revocation_max_age.as_secs_f64(),
            future_window_seconds: 300.0,
            trusted_authorities: &self.cfg.revocation_authorities,
        };
        self.lock().revocations.apply_list(list, &rules)
    }

    /// Asks seeds in order for a `/discover` list; the first with `count` eligible relays
    /// wins, else the largest verified one.
    async fn fetch(
        &self,
        count: usize,
        prefs: &Preferences,
    ) -> Result<Vec<RelayInfo>, DiscoveryError> {
        let order = self.seed_order();
        if order.is_empty() {
            return Err(DiscoveryError::NoSeeds);
        }
        let body = json!({
            "protocol_version": "1.0",
            "requested_count": (count + prefs.exclude.len()).clamp(1, MAX_REQUEST),
            "preferences": {"preferred_region": prefs.region, "exclude": prefs.exclude},
        })
        .to_string()
        .into_bytes();
        let mut best: Option<(usize, Vec<RelayInfo>)> = None;
        let mut last_error = String::from("no answer");
        for (url, key) in order {
            let req = SeedRequest::post("/discover", body.clone(), "application/json");
            let started = Instant::now();
            let result = self.ask(&url, req).await;
            let answer = match self.judge(&url, key.as_ref(), result, started) {
                Ok(a) => a,
                Err(e) => {
                    last_error = format!("{url}: {e}");
                    continue;
                }
            };
            self.maybe_refresh_revocations(&url).await;
            let eligible = select::eligible(&answer.relays, prefs).len();
            if eligible >= count {
                return Ok(answer.relays);
            }
            if best.as_ref().is_none_or(|(n, _)| eligible > *n) {
                best = Some((eligible, answer.relays));
            }
        }
        match best {
            Some((_, relays)) => Ok(relays),
            None => Err(DiscoveryError::AllSeedsFailed(last_error)),
        }
    }

    /// Sends one request to the seed at `url` within the configured request timeout.
    async fn ask(&self, url: &str, req: SeedRequest) -> Result<SeedAnswer, TransportError> {
        self.transport
            .call(url, req, self.cfg.request_timeout)
            .await
    }

    fn seed_order(&self) -> Vec<(String, Option<IdentityPublicKey>)> {
        let mut st = self.lock();
        let st = &mut *st;
        let (order, skipped) =
            st.seeds
                .order(&st.revocations, unix_now(), self.cfg.order_seeds_by_health);
        st.stats.revoked_seeds_skipped += skipped as u64;
        order
    }

    /// Records one seed's answer in its health and the stats; a verified answer refreshes
    /// the cache.
    fn judge(
        &self,
        url: &str,
        key: Option<&IdentityPublicKey>,
        result: Result<SeedAnswer, TransportError>,
        started: Instant,
    ) -> Result<VerifiedAnswer, String> {
        let now = unix_now();
        let mut st = self.lock();
        let st = &mut *st;
        let trusted = trusted_keys(&st.seeds.entries, &self.cfg.seeds, &st.revocations, now);
        let fresh = Freshness {
            now,
            max_age: self.cfg.max_answer_age.as_secs_f64(),
        };
        let verdict = match result {
            Err(e) => Err(e.to_string()),
            Ok(a) if a.status != 200 => Err(format!("status {}", a.status)),
            Ok(a) => verify_answer(&a.body, key, &trusted, fresh).map_err(|e| {
                st.stats.signature_failures += 1;
                e.to_string()
            }),
        };
        let verdict = verdict.and_then(|a| {
            if st.revocations.is_revoked(&a.seed_id, now) {
                Err(format!("seed {} is revoked", a.seed_id))
            } else {
                Ok(a)
            }
        });
        let Some(entry) = st.seeds.get_mut(url) else {
            return verdict;
        };
        match &verdict {
            Err(e) => {
                entry.health.failure(now, e.clone());
                st.stats.seed_failures += 1;
            }
            Ok(a) => {
                let latency = started.elapsed().as_secs_f64() * 1000.0;
                entry.health.success(now, latency);
                entry.key = Some(a.seed_key);
                entry.seed_id = Some(a.seed_id.clone());
                st.stats.seed_successes += 1;
                st.stats.signature_failures += a.rejected as u64;
                if self.cfg.learn_other_seeds {
                    st.seeds.learn(&a.other_seeds, now);
                }
                st.seeds.last_successful = Some(url.to_owned());
                st.cache.clone_from(&a.relays);
                st.cache_at = Some(Instant::now());
            }
        }
        verdict
    }

    async fn maybe_refresh_revocations(&self, url: &str) {
        let Some(every) = self.cfg.revocation_refresh else {
            return;
        };
        let due = self
            .lock()
            .revocations_at
            .is_none_or(|at| at.elapsed() >= every);
        if due {
            let (_, errors) = self.fetch_revocations_from_seed(url).await;
            if !errors.is_empty() {
                tracing::debug!(seed = url, ?errors, "revocations refused");
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // State stays consistent across a panic elsewhere: every update is a plain write.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl RelayDirectory for DiscoveryClient {
    async fn relays(
        &self,
        count: usize,
        prefs: &Preferences,
    ) -> Result<Vec<RelayInfo>, DirectoryError> {
        self.discover_routers(count, prefs, false)
            .await
            .map_err(|e| match e {
                DiscoveryError::TooFew { got, wanted } => DirectoryError::TooFew { got, wanted },
                other => DirectoryError::Unavailable(other.to_string()),
            })
    }

    async fn publish(&self, address: &NodeAddress) -> Result<(), DirectoryError> {
        self.publish_address(address)
            .await
            .map(|_| ())
            .map_err(|e| DirectoryError::Unavailable(e.to_string()))
    }

    async fn lookup_address(
        &self,
        identity: &IdentityPublicKey,
    ) -> Result<Option<NodeAddress>, DirectoryError> {
        DiscoveryClient::lookup_address(self, identity)
            .await
            .map_err(|e| DirectoryError::Unavailable(e.to_string()))
    }
}

/// Pinned keys that no effective revocation names (by key hex or by the id the seed gave).
fn trusted_keys(
    entries: &[SeedEntry],
    pinned: &[PinnedSeed],
    revocations: &Revocations,
    now: f64,
) -> Vec<IdentityPublicKey> {
    pinned
        .iter()
        .map(|p| p.key)
        .filter(|k| {
            !revocations.is_revoked(&k.to_hex(), now)
                && !entries
                    .iter()
                    .any(|e| e.key == Some(*k) && e.revoked(revocations, now))
        })
        .collect()
}

/// Wall-clock now in unix seconds (revocations and addresses carry wall-clock times).
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
