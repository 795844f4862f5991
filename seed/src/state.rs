//! The service state shared by all handlers, and the background jobs that act on it.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use ournet_proto::IdentityKeypair;
use ournet_proto::pow::ChallengeKey;
use rand_core::{OsRng, RngCore};

use crate::clock::Clock;
use crate::config::SeedConfig;
use crate::metrics::Metrics;
use crate::policy::asn::AsnTable;
use crate::policy::{self, Preferences, TickOutcome};
use crate::probe::{ProbeTarget, Prober};
use crate::record::RouterRecord;
use crate::store::{IP_COUNT_RETENTION_SECONDS, PruneBefore, Store, StoreError, update_router};

/// Most cached `/discover` answers per snapshot (one per distinct count and preferences).
const MAX_CACHED_ANSWERS: usize = 1024;
/// Longest `/discover` body whose answer is also cached under the body's bytes.
pub(crate) const MAX_RAW_KEY_BYTES: usize = 512;
/// Most client IPs tracked by the request limiter before idle ones are dropped.
const MAX_TRACKED_IPS: usize = 65_536;
/// Most recent heartbeat times kept for burst detection.
const MAX_HEARTBEAT_TIMES: usize = 200_000;

/// Handle to the shared state; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

/// What [`AppState`] holds.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cfg: SeedConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) seed_key: IdentityKeypair,
    pub(crate) seed_id: String,
    pub(crate) challenge_key: ChallengeKey,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) prober: Arc<dyn Prober>,
    pub(crate) asns: AsnTable,
    pub(crate) metrics: Metrics,
    limiter: Mutex<HashMap<IpAddr, (f64, f64)>>,
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    heartbeats: Mutex<VecDeque<f64>>,
    counters: Mutex<Option<Counters>>,
    peers: Mutex<HashMap<String, PeerState>>,
}

/// Outcome counts of our outbound gossip with one configured peer (`/status` `peer_states`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PeerState {
    pub(crate) successful: u64,
    pub(crate) failed: u64,
    pub(crate) last_success: Option<f64>,
    pub(crate) last_error: Option<String>,
}

/// Registry-wide numbers that cost a scan, refreshed at most once a second.
#[derive(Debug, Clone, Copy)]
struct Counters {
    at: f64,
    routers: u64,
    hourly_successes: u64,
}

/// Scored candidates at one moment, and the signed answers computed from them.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) at: f64,
    pub(crate) records: Vec<RouterRecord>,
    pub(crate) base: Vec<(f64, f64)>,
    pub(crate) answers: Mutex<HashMap<(usize, Preferences), Bytes>>,
    /// The same answers keyed by the exact request body (at most [`MAX_RAW_KEY_BYTES`]), so
    /// a repeated question costs a hash lookup and no JSON parsing.
    pub(crate) by_body: Mutex<HashMap<Bytes, Bytes>>,
}

impl AppState {
    /// Builds the state. The PoW challenge key is read from (or first stored in) the store, so
    /// replicas on one database accept each other's challenges.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn new(
        cfg: SeedConfig,
        store: Arc<dyn Store>,
        seed_key: IdentityKeypair,
        clock: Arc<dyn Clock>,
        prober: Arc<dyn Prober>,
        asns: AsnTable,
    ) -> Result<Self, StoreError> {
        let mut fresh = [0u8; 32];
        OsRng.fill_bytes(&mut fresh);
        let stored = store
            .meta_get_or_insert("pow_challenge_key", &fresh)
            .await?;
        let mut key = [0u8; 32];
        if stored.len() == 32 {
            key.copy_from_slice(&stored);
        }
        let seed_id = cfg
            .seed_id
            .clone()
            .unwrap_or_else(|| seed_key.public().to_hex());
        Ok(Self(Arc::new(Inner {
            cfg,
            store,
            seed_key,
            seed_id,
            challenge_key: ChallengeKey::from_bytes(key),
            clock,
            prober,
            asns,
            metrics: Metrics::default(),
            limiter: Mutex::new(HashMap::new()),
            snapshot: Mutex::new(None),
            heartbeats: Mutex::new(VecDeque::new()),
            counters: Mutex::new(None),
            peers: Mutex::new(HashMap::new()),
        })))
    }

    /// This seed's id.
    pub fn seed_id(&self) -> &str {
        &self.0.seed_id
    }

    /// The store (tests and tools read records through it).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// Now, from the configured clock.
    pub fn now(&self) -> f64 {
        self.0.clock.now()
    }

    /// Token-bucket admission for one request from `ip` (W27). Idle entries are dropped when
    /// the table is full, so it stays bounded.
    pub fn admit(&self, ip: IpAddr) -> bool {
        let cfg = &self.0.cfg;
        let now = self.now();
        let Ok(mut map) = self.0.limiter.lock() else {
            return false;
        };
        if map.len() >= MAX_TRACKED_IPS && !map.contains_key(&ip) {
            let idle = cfg.request_burst_per_ip / cfg.requests_per_second_per_ip.max(1e-9);
            map.retain(|_, (_, last)| now - *last < idle);
            if map.len() >= MAX_TRACKED_IPS {
                return false;
            }
        }
        let (tokens, last) = map.entry(ip).or_insert((cfg.request_burst_per_ip, now));
        let refill = (now - *last).max(0.0) * cfg.requests_per_second_per_ip;
        *tokens = (*tokens + refill).min(cfg.request_burst_per_ip);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Records a heartbeat time; returns (heartbeats within the correlation window, heartbeats
    /// within one interval) for burst detection.
    pub(crate) fn note_heartbeat(&self, now: f64) -> (u64, u64) {
        let cfg = &self.0.cfg;
        let Ok(mut q) = self.0.heartbeats.lock() else {
            return (0, 0);
        };
        while q
            .front()
            .is_some_and(|t| now - *t > cfg.heartbeat_interval_seconds)
            || q.len() >= MAX_HEARTBEAT_TIMES
        {
            q.pop_front();
        }
        let w = cfg.correlation_heartbeat_window_seconds;
        let in_window = q.iter().rev().take_while(|t| now - **t <= w).count();
        let in_interval = q.len();
        q.push_back(now);
        (in_window as u64, in_interval as u64)
    }

    /// (router count, successful registrations in the last hour), at most a second old, so
    /// registration cost stays flat as the registry grows. A local registration bumps both.
    pub(crate) async fn counters(&self) -> Result<(u64, u64), StoreError> {
        let now = self.now();
        let cached = self.0.counters.lock().ok().and_then(|c| *c);
        if let Some(c) = cached.filter(|c| (0.0..1.0).contains(&(now - c.at))) {
            return Ok((c.routers, c.hourly_successes));
        }
        let routers = self.0.store.router_count().await?;
        let hourly_successes = self.0.store.successes_since(now - 3600.0).await?;
        if let Ok(mut c) = self.0.counters.lock() {
            *c = Some(Counters {
                at: now,
                routers,
                hourly_successes,
            });
        }
        Ok((routers, hourly_successes))
    }

    /// Records the outcome of one outbound gossip exchange with `url` (a configured peer, so
    /// the table is bounded by the config).
    pub(crate) fn note_peer_exchange(&self, url: &str, result: Result<(), String>) {
        let now = self.now();
        if let Ok(mut m) = self.0.peers.lock() {
            let st = m.entry(url.to_owned()).or_default();
            match result {
                Ok(()) => {
                    st.successful += 1;
                    st.last_success = Some(now);
                }
                Err(e) => {
                    st.failed += 1;
                    st.last_error = Some(e);
                }
            }
        }
    }

    /// Per-peer gossip outcomes so far.
    pub(crate) fn peer_states(&self) -> Vec<(String, PeerState)> {
        let mut v: Vec<_> = self
            .0
            .peers
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Counts a local registration in the cached counters.
    pub(crate) fn count_registration(&self) {
        if let Ok(mut c) = self.0.counters.lock()
            && let Some(c) = c.as_mut()
        {
            c.routers += 1;
            c.hourly_successes += 1;
        }
    }

    /// Drops the cached `/discover` snapshot after a local write.
    pub(crate) fn invalidate(&self) {
        if let Ok(mut s) = self.0.snapshot.lock() {
            *s = None;
        }
    }

    /// The current snapshot, rebuilt from the store when older than `discover_cache_seconds`.
    pub(crate) async fn snapshot(&self) -> Result<Arc<Snapshot>, StoreError> {
        let now = self.now();
        let current = self.0.snapshot.lock().ok().and_then(|s| s.clone());
        if let Some(s) = current.filter(|s| now - s.at < self.0.cfg.discover_cache_seconds) {
            return Ok(s);
        }
        let snap = Arc::new(self.build_snapshot(now).await?);
        if let Ok(mut s) = self.0.snapshot.lock() {
            *s = Some(snap.clone());
        }
        Ok(snap)
    }

    async fn build_snapshot(&self, now: f64) -> Result<Snapshot, StoreError> {
        let cfg = &self.0.cfg;
        let flagged = self.0.store.flagged().await?;
        let key = self.0.seed_key.public().to_bytes();
        let records: Vec<RouterRecord> = self
            .0
            .store
            .routers()
            .await?
            .into_iter()
            .filter(|r| policy::discoverable(cfg, r, now))
            .collect();
        let base = records
            .iter()
            .map(|r| {
                let f = flagged.contains(&r.router_id);
                let b = policy::base_score(cfg, r, now, &key, f);
                (b, 0.5 + 0.5 * policy::trust_factor(cfg, &r.reputation))
            })
            .collect();
        Ok(Snapshot {
            at: now,
            records,
            base,
            answers: Mutex::new(HashMap::new()),
            by_body: Mutex::new(HashMap::new()),
        })
    }

    /// One pass of the health monitor (§5.5) and the storage bounds (W26). The binary runs it
    /// every `health_check_interval_seconds`; tests call it after moving the clock.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn health_check(&self) -> Result<(), StoreError> {
        let cfg = &self.0.cfg;
        let now = self.now();
        for mut rec in self.0.store.routers().await? {
            match policy::health_tick(cfg, &mut rec, now) {
                TickOutcome::Unchanged => {}
                TickOutcome::Changed => self.tick_one(&rec.router_id, now).await?,
                TickOutcome::Remove => self.0.store.remove_router(&rec.router_id).await?,
            }
        }
        self.0
            .store
            .prune(&PruneBefore {
                events: now - cfg.rate_limit_window_seconds.max(3600.0),
                reports: now - cfg.misbehavior_report_window_seconds,
                challenges: now,
                ip_counts: now - IP_COUNT_RETENTION_SECONDS,
                #[expect(clippy::cast_possible_truncation, reason = "unix seconds")]
                addresses: now as i64,
            })
            .await?;
        self.invalidate();
        Ok(())
    }

    /// Applies the health tick to the router as it now stands (a heartbeat may have landed
    /// since the scan), through an optimistic read-modify-write; removes it if it is due.
    async fn tick_one(&self, id: &str, now: f64) -> Result<(), StoreError> {
        let cfg = &self.0.cfg;
        let mut remove = false;
        update_router(self.0.store.as_ref(), id, |rec| {
            match policy::health_tick(cfg, rec, now) {
                TickOutcome::Unchanged => false,
                TickOutcome::Changed => true,
                TickOutcome::Remove => {
                    remove = true;
                    false
                }
            }
        })
        .await?;
        if remove {
            self.0.store.remove_router(id).await?;
        }
        Ok(())
    }
}

impl AppState {
    /// One round of active probing (§5.5): up to `probe_sample` routers chosen at random from
    /// those with a health state; warnings only, the status is never changed.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn probe_round(&self, probe_sample: usize) -> Result<usize, StoreError> {
        let mut routers: Vec<RouterRecord> = self
            .0
            .store
            .routers()
            .await?
            .into_iter()
            .filter(|r| r.monitor.is_some())
            .collect();
        // Partial Fisher-Yates with the OS RNG: the sample is not predictable by routers.
        let n = routers.len();
        for i in 0..n.min(probe_sample) {
            let j = i + usize::try_from(OsRng.next_u64() % (n - i) as u64).unwrap_or(0);
            routers.swap(i, j);
        }
        routers.truncate(probe_sample);
        for mut rec in routers.iter().cloned() {
            let first = rec.endpoints().first().cloned().unwrap_or_default();
            let target = ProbeTarget {
                endpoint: &first,
                keys: rec.link_keys(),
            };
            let result = self.0.prober.probe_detail(target).await;
            let now = self.now();
            if let Some(m) = rec.monitor.as_mut() {
                policy::apply_probe(m, result, now);
            }
            // The record may have changed while the probe ran: write back only the monitor.
            update_router(self.0.store.as_ref(), &rec.router_id, |fresh| {
                fresh.monitor.clone_from(&rec.monitor);
                true
            })
            .await?;
        }
        Ok(routers.len())
    }
}

impl Snapshot {
    /// A cached answer, if this snapshot computed one for the same question.
    pub(crate) fn cached(&self, key: &(usize, Preferences)) -> Option<Bytes> {
        self.answers.lock().ok().and_then(|m| m.get(key).cloned())
    }

    /// Caches an answer; the cache is bounded and cleared when full.
    pub(crate) fn remember(&self, key: (usize, Preferences), answer: Bytes) {
        if let Ok(mut m) = self.answers.lock() {
            if m.len() >= MAX_CACHED_ANSWERS {
                m.clear();
            }
            m.insert(key, answer);
        }
    }

    /// The answer given to an identical request body, if any.
    pub(crate) fn cached_body(&self, body: &[u8]) -> Option<Bytes> {
        self.by_body.lock().ok().and_then(|m| m.get(body).cloned())
    }

    /// Caches an answer under its request body (short bodies only); bounded like
    /// [`Snapshot::remember`].
    pub(crate) fn remember_body(&self, body: &Bytes, answer: &Bytes) {
        if body.len() > MAX_RAW_KEY_BYTES {
            return;
        }
        if let Ok(mut m) = self.by_body.lock() {
            if m.len() >= MAX_CACHED_ANSWERS {
                m.clear();
            }
            m.insert(body.clone(), answer.clone());
        }
    }
}
