//! Storage: one trait, two backends.
//!
//! * [`sqlite::SqliteStore`], the default: an embedded SQLite file in the data directory that
//!   survives restart.
//! * [`postgres::PgStore`] (`--database-url postgres://…`): several replicas share
//!   registrations, rate-limit events, spent PoW challenges, reputation (inside the router
//!   record), reports and revocations.
//!
//! Every "is it new?" question that guards an insert is answered by the insert itself
//! (`INSERT … ON CONFLICT DO NOTHING` and the affected-row count), so two concurrent requests,
//! even on two replicas, cannot both win (W29). Every table is bounded: routers by
//! `max_routers`, events by the rate window, spent challenges by their expiry, per-IP counts
//! by a retention period, reports per router by a cap (W26); [`Store::prune`] enforces the
//! time bounds and the seed calls it from its health loop.
//!
//! The same test suite (`seed/tests/store_suite.rs`) runs against both backends.

pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use serde_json::Value;

use crate::policy::RegStats;
use crate::record::RouterRecord;

/// How long per-IP registration counts are kept after the IP's last registration (30 days).
pub const IP_COUNT_RETENTION_SECONDS: f64 = 30.0 * 86_400.0;

/// Per-IP and per-subnet event counts saturate at the caller's cap (at most this): they are
/// only compared with small limits, and a bounded count keeps each check cheap however many
/// events an address has.
pub const REG_COUNT_CAP: u64 = 1000;

/// A storage failure. Details go to the log; clients see a bare 500.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A stored JSON document did not decode.
    #[error("stored record: {0}")]
    Decode(#[from] serde_json::Error),
    /// The SQLite connection lock was poisoned by a panic elsewhere.
    #[error("store lock poisoned")]
    Poisoned,
    /// A read-modify-write of one router lost the race to other writers
    /// [`UPDATE_ATTEMPTS`] times in a row.
    #[error("router {0} kept changing under a read-modify-write")]
    Contention(String),
}

/// A router record's version: every write bumps it, so a read-modify-write can tell that
/// another task or replica wrote in between (optimistic concurrency, see
/// [`Store::replace_router`]).
pub type Version = i64;

/// How often [`update_router`] (and the handlers' own read-modify-write loops) re-read and
/// retry after losing a race before giving up with [`StoreError::Contention`].
pub const UPDATE_ATTEMPTS: usize = 32;

/// Reads router `id`, lets `f` change it, and writes it back only if nobody wrote in between;
/// otherwise re-reads and runs `f` again. `f` returns whether there is anything to write.
/// Returns the record as it now stands, or `None` if there is no such router.
///
/// # Errors
/// Storage errors, or [`StoreError::Contention`] after [`UPDATE_ATTEMPTS`] lost races.
pub async fn update_router(
    store: &dyn Store,
    id: &str,
    mut f: impl FnMut(&mut RouterRecord) -> bool + Send,
) -> Result<Option<RouterRecord>, StoreError> {
    for attempt in 0..UPDATE_ATTEMPTS {
        let Some((mut rec, version)) = store.router_versioned(id).await? else {
            return Ok(None);
        };
        if !f(&mut rec) || store.replace_router(&rec, version).await? {
            return Ok(Some(rec));
        }
        backoff(attempt).await;
    }
    Err(StoreError::Contention(id.to_owned()))
}

/// Waits before retry `attempt` of a lost read-modify-write: a random time up to
/// 2^min(attempt, 6) ms, so writers that keep colliding spread out.
pub async fn backoff(attempt: usize) {
    use rand_core::{OsRng, RngCore as _};
    let max_us = 1000u64 << attempt.min(6);
    let us = OsRng.next_u64() % max_us;
    tokio::time::sleep(std::time::Duration::from_micros(us)).await;
}

/// Why an address upsert changed nothing, from the address now stored (shared by backends).
fn not_stored(stored: Option<&str>, text: &str) -> PutAddress {
    match stored {
        Some(t) if t == text => PutAddress::Unchanged,
        Some(_) => PutAddress::NotNewer,
        None => PutAddress::Full,
    }
}

/// The SQL `LIMIT` for event counts asked to saturate at `cap` (shared by backends): `cap`,
/// at most [`REG_COUNT_CAP`].
fn reg_count_limit(cap: u64) -> i64 {
    i64::try_from(cap.min(REG_COUNT_CAP)).unwrap_or(0)
}

/// One registration attempt (§5.2).
#[derive(Debug, Clone, PartialEq)]
pub struct RegEvent {
    /// Client IP.
    pub ip: String,
    /// Its rate-limit subnet (see `policy::subnet_key`).
    pub subnet: String,
    /// When.
    pub ts: f64,
    /// Whether it registered a new router.
    pub success: bool,
}

/// A new router's registration, written by [`Store::register_router`] in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct NewRegistration<'a> {
    /// The record to insert.
    pub record: &'a RouterRecord,
    /// The PoW challenge to spend (id, expiry), unless the caller spent it already.
    pub challenge: Option<(&'a str, f64)>,
    /// The registration event (ip, subnet, time); its `success` is set by the outcome.
    pub event: &'a RegEvent,
}

/// What [`Store::register_router`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegisterOutcome {
    /// Challenge spent, router inserted, success event and per-IP count recorded.
    Registered,
    /// The challenge was spent before: nothing inserted, a failed event recorded.
    ChallengeReused,
    /// The challenge was spent but a concurrent registration inserted the id first (W29):
    /// no event recorded, the winner's record stands.
    AlreadyRegistered,
}

/// One stored misbehavior report (§5.7), keyed by (router, reporter).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportEntry {
    /// The report's id.
    pub report_id: String,
    /// The reported router.
    pub router_id: String,
    /// The reporter (a registered router's key hex).
    pub reporter_id: String,
    /// Severity in `0..=1`.
    pub severity: f64,
    /// When the seed received it.
    pub received_at: f64,
}

/// Aggregate of a router's reports in the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportSummary {
    /// Unique reporters.
    pub reporters: usize,
    /// Mean severity.
    pub mean_severity: f64,
}

/// Registration events in the rate window, for `/status` (`sybil_resistance.rate_limiter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventSummary {
    /// Events (successes and failures).
    pub total: u64,
    /// Distinct client IPs.
    pub unique_ips: u64,
    /// Distinct rate-limit subnets.
    pub unique_subnets: u64,
}

/// Time bounds for [`Store::prune`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PruneBefore {
    /// Registration events older than this go.
    pub events: f64,
    /// Reports received before this go.
    pub reports: f64,
    /// Spent challenges that expired before this go.
    pub challenges: f64,
    /// Per-IP counts not updated since this go.
    pub ip_counts: f64,
    /// Recipient addresses that expired before this (unix seconds) go.
    pub addresses: i64,
}

/// A node's published recipient address (`POST /address`), verified before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAddress {
    /// Hex of the node's identity key.
    pub identity: String,
    /// The `ournet1:` text, as the node signed it.
    pub text: String,
    /// Its `issued_at` (unix seconds): a newer one replaces an older one.
    pub issued_at: i64,
    /// Its `expires_at` (unix seconds).
    pub expires_at: i64,
}

/// What [`Store::put_address`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutAddress {
    /// Stored (new identity, or newer than the stored address).
    Stored,
    /// The very same address is already stored.
    Unchanged,
    /// A different address with the same or a later `issued_at` is stored.
    NotNewer,
    /// The store holds `max` addresses and this identity is not among them.
    Full,
}

/// The seed's persistent state. All methods are safe to call concurrently from many tasks and,
/// for shared backends, many processes.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Returns the stored value for `key`, storing `init` first if there is none. Used for the
    /// PoW challenge key, so replicas on one database share it.
    async fn meta_get_or_insert(&self, key: &str, init: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// One router and its [`Version`].
    async fn router_versioned(
        &self,
        id: &str,
    ) -> Result<Option<(RouterRecord, Version)>, StoreError>;
    /// One router.
    async fn router(&self, id: &str) -> Result<Option<RouterRecord>, StoreError> {
        Ok(self.router_versioned(id).await?.map(|(r, _)| r))
    }
    /// Inserts a router unless its id exists; `true` if this call inserted it.
    async fn insert_router(&self, rec: &RouterRecord) -> Result<bool, StoreError>;
    /// Replaces a router (record and host index together) if its stored version is still
    /// `expected`, bumping the version; `false` if another writer got there first or the
    /// router is gone. Read-modify-write goes through this (or [`update_router`]), so two
    /// tasks or replicas updating one router at once cannot lose an update: the loser
    /// re-reads and re-applies its change.
    async fn replace_router(
        &self,
        rec: &RouterRecord,
        expected: Version,
    ) -> Result<bool, StoreError>;
    /// Registers a new router in one transaction: spends the challenge (if given), inserts the
    /// record and its host index, and records the event and per-IP count. One commit per
    /// registration instead of one per statement.
    async fn register_router(
        &self,
        reg: &NewRegistration<'_>,
    ) -> Result<RegisterOutcome, StoreError>;
    /// Deletes a router and its reports and flag.
    async fn remove_router(&self, id: &str) -> Result<(), StoreError>;
    /// Every router (bounded by `max_routers`).
    async fn routers(&self) -> Result<Vec<RouterRecord>, StoreError>;
    /// Number of routers.
    async fn router_count(&self) -> Result<u64, StoreError>;
    /// Routers with an endpoint on one of `hosts`.
    async fn routers_on_hosts(&self, hosts: &[String]) -> Result<Vec<RouterRecord>, StoreError>;
    /// Marks a challenge spent; `true` if it was not spent before.
    async fn spend_challenge(&self, id: &str, expires_at: f64) -> Result<bool, StoreError>;
    /// Records a registration attempt; a success also bumps the IP's lifetime count.
    async fn add_reg_event(&self, ev: &RegEvent) -> Result<(), StoreError>;
    /// Per-IP and per-subnet counts for rate limiting and difficulty, over events since
    /// `since`, each saturating at `cap` (and [`REG_COUNT_CAP`]); `recent_successes` is left 0
    /// (see [`Store::successes_since`]).
    async fn reg_stats(
        &self,
        ip: &str,
        subnet: &str,
        since: f64,
        cap: u64,
    ) -> Result<RegStats, StoreError>;
    /// Successful registrations from all IPs since `since` (the adaptive-PoW rate). This
    /// scans the window, so the seed caches it for a second instead of asking per request.
    async fn successes_since(&self, since: f64) -> Result<u64, StoreError>;
    /// Counts of registration events since `since` (a window scan; `/status` only).
    async fn event_summary(&self, since: f64) -> Result<EventSummary, StoreError>;
    /// Stores a report (replacing the reporter's earlier one), keeps the newest `max` for the
    /// router, and returns the summary over reports received since `since`.
    async fn put_report(
        &self,
        report: &ReportEntry,
        since: f64,
        max: usize,
    ) -> Result<ReportSummary, StoreError>;
    /// Flags a router; `true` if it was not flagged before.
    async fn flag_router(&self, id: &str, now: f64) -> Result<bool, StoreError>;
    /// Flagged router ids.
    async fn flagged(&self) -> Result<Vec<String>, StoreError>;
    /// Number of routers with reports.
    async fn reported_router_count(&self) -> Result<u64, StoreError>;
    /// The stored revocation of a seed.
    async fn revocation(&self, seed_id: &str) -> Result<Option<Value>, StoreError>;
    /// Inserts or replaces a seed's revocation.
    async fn put_revocation(&self, seed_id: &str, record: &Value) -> Result<(), StoreError>;
    /// All revocations.
    async fn revocations(&self) -> Result<Vec<Value>, StoreError>;
    /// Stores a node's address if its identity has none, or if it is newer than the stored
    /// one; a new identity is refused once `max` addresses are stored (a soft bound: replicas
    /// inserting at once may pass it by a few).
    async fn put_address(&self, a: &StoredAddress, max: u64) -> Result<PutAddress, StoreError>;
    /// The stored address of an identity (expired or not: the caller checks).
    async fn address(&self, identity: &str) -> Result<Option<StoredAddress>, StoreError>;
    /// Up to `limit` addresses that expire after `now`, the most recently issued first
    /// (what a seed gossips to its peers).
    async fn fresh_addresses(&self, now: i64, limit: u64)
    -> Result<Vec<StoredAddress>, StoreError>;
    /// Deletes everything older than the bounds.
    async fn prune(&self, before: &PruneBefore) -> Result<(), StoreError>;
}
