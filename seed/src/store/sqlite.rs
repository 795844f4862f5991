//! The embedded store: one SQLite file in the data directory.
//!
//! Statements are short, indexed and prepared once (the connection's statement cache), so they
//! run inline under one connection lock that is never held across an `.await`. The two that can
//! take long, a registration's write transaction (its commit may trigger a WAL checkpoint), the
//! full-registry read and pruning, run on tokio's blocking pool when there is more than one
//! worker (see `SqliteStore::blocking`).
//!
//! Each registration commit writes every B-tree page it touches to the WAL, so the schema
//! keeps those few: the small keyed tables are `WITHOUT ROWID` (no separate key index) and the
//! per-IP event count reads the `(ip, success, ts)` index for both `success` values instead of
//! keeping an `(ip, ts)` index too (the last-success lookup says `success = 1` so that it
//! stays an index seek). The WAL keeps SQLite's checkpoint every 1,000 pages: 10,000 gave 8%
//! more registrations per CPU-second but a 37 ms p99 (a checkpoint stalls the one worker of a
//! one-core seed) against 9 ms.
//!
//! The page cache is 64 MiB (SQLite's default is 2 MiB): registrations insert at random keys,
//! so with a registry of 100,000 routers most B-tree leaves they touch would otherwise be
//! read back from the OS on every registration.
//!
//! Durability: WAL journal with `synchronous = NORMAL`. A commit is in the WAL (the OS page
//! cache) when the call returns, so a crash of the seed process loses nothing; the WAL is
//! fsynced only at checkpoints, so a power loss or kernel crash may lose the last transactions
//! before the checkpoint (never corrupting the file). That is acceptable for a seed: routers
//! re-register or heartbeat within minutes, and a lost challenge spend only concerns
//! challenges that were in flight. Operators who need more run PostgreSQL.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{
    EventSummary, NewRegistration, PruneBefore, PutAddress, RegEvent, RegisterOutcome, ReportEntry,
    ReportSummary, Store, StoreError, StoredAddress, Version, reg_count_limit,
};
use crate::policy::RegStats;
use crate::record::RouterRecord;

const SCHEMA: &str = "
PRAGMA locking_mode = EXCLUSIVE;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA cache_size = -65536;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS routers (router_id TEXT PRIMARY KEY, record TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS router_hosts (host TEXT NOT NULL, router_id TEXT NOT NULL,
    PRIMARY KEY (host, router_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS router_hosts_id ON router_hosts (router_id);
CREATE TABLE IF NOT EXISTS reg_events (ip TEXT NOT NULL, subnet TEXT NOT NULL,
    ts REAL NOT NULL, success INTEGER NOT NULL);
DROP INDEX IF EXISTS reg_events_ip;
CREATE INDEX IF NOT EXISTS reg_events_ip_success ON reg_events (ip, success, ts);
CREATE INDEX IF NOT EXISTS reg_events_subnet ON reg_events (subnet, ts);
CREATE INDEX IF NOT EXISTS reg_events_ts ON reg_events (ts);
CREATE TABLE IF NOT EXISTS ip_counts (ip TEXT PRIMARY KEY, count INTEGER NOT NULL,
    last REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spent_challenges (id TEXT PRIMARY KEY, expires_at REAL NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reports (router_id TEXT NOT NULL, reporter_id TEXT NOT NULL,
    report_id TEXT NOT NULL, severity REAL NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (router_id, reporter_id));
CREATE TABLE IF NOT EXISTS flags (router_id TEXT PRIMARY KEY, flagged_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS revocations (seed_id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS addresses (identity TEXT PRIMARY KEY, address TEXT NOT NULL,
    issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS addresses_by_issue ON addresses (issued_at);
";

/// Inserts an address for a known identity or while under the cap; replaces only a strictly
/// older one.
const PUT_ADDRESS: &str = "
INSERT INTO addresses (identity, address, issued_at, expires_at)
SELECT ?1, ?2, ?3, ?4
WHERE EXISTS (SELECT 1 FROM addresses WHERE identity = ?1)
   OR (SELECT COUNT(*) FROM addresses) < ?5
ON CONFLICT (identity) DO UPDATE SET address = excluded.address,
    issued_at = excluded.issued_at, expires_at = excluded.expires_at
WHERE excluded.issued_at > addresses.issued_at";

/// SQLite-backed [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) `seed.sqlite3` in `dir`.
    ///
    /// # Errors
    /// SQLite errors opening the file or creating the schema.
    pub fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        Self::from_conn(Connection::open(dir.join("seed.sqlite3"))?)
    }

    /// An in-memory database, for tests.
    ///
    /// # Errors
    /// SQLite errors creating the schema.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::from_conn(Connection::open_in_memory()?)
    }

    fn from_conn(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(SCHEMA)?;
        add_version_column(&conn)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn db(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Runs `f` on the connection on tokio's blocking pool when the runtime has more than one
    /// worker, so a slow statement (a commit that triggers a WAL checkpoint, a full scan) does
    /// not stall requests the other workers could serve. With one worker (the seed pinned to
    /// one core) or outside a multi-thread runtime it runs inline: there the hop to another
    /// thread only adds two context switches on the same core (measured: about 12% of the
    /// CPU of a registration).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        let run = move || f(&mut *conn.lock().map_err(|_| StoreError::Poisoned)?);
        let offload = tokio::runtime::Handle::try_current().is_ok_and(|h| {
            h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                && h.metrics().num_workers() > 1
        });
        if offload {
            tokio::task::spawn_blocking(run)
                .await
                .unwrap_or(Err(StoreError::Poisoned))
        } else {
            run()
        }
    }
}

/// Stores created before router versions existed get the column (version 0 everywhere).
fn add_version_column(c: &Connection) -> Result<(), StoreError> {
    let has: bool = c.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('routers') WHERE name = 'version'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        c.execute_batch("ALTER TABLE routers ADD COLUMN version INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

/// `execute` through the statement cache: the hot statements are parsed once.
fn exec(c: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(p)
}

/// `query_row` through the statement cache.
fn query_row<T>(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(p, f)
}

fn decode(text: &str) -> Result<RouterRecord, StoreError> {
    Ok(serde_json::from_str(text)?)
}

fn write_hosts(c: &Connection, rec: &RouterRecord) -> Result<(), StoreError> {
    exec(
        c,
        "DELETE FROM router_hosts WHERE router_id = ?1",
        [&rec.router_id],
    )?;
    insert_hosts(c, rec)
}

fn insert_hosts(c: &Connection, rec: &RouterRecord) -> Result<(), StoreError> {
    for h in rec.hosts() {
        exec(
            c,
            "INSERT OR IGNORE INTO router_hosts (host, router_id) VALUES (?1, ?2)",
            params![h, rec.router_id],
        )?;
    }
    Ok(())
}

fn insert_router_row(c: &Connection, rec: &RouterRecord, text: &str) -> Result<bool, StoreError> {
    let n = exec(
        c,
        "INSERT INTO routers (router_id, record, version) VALUES (?1, ?2, 0)
         ON CONFLICT DO NOTHING",
        params![rec.router_id, text],
    )?;
    if n == 1 {
        insert_hosts(c, rec)?;
    }
    Ok(n == 1)
}

fn add_event(c: &Connection, ev: &RegEvent) -> Result<(), StoreError> {
    exec(
        c,
        "INSERT INTO reg_events (ip, subnet, ts, success) VALUES (?1, ?2, ?3, ?4)",
        params![ev.ip, ev.subnet, ev.ts, ev.success],
    )?;
    if ev.success {
        exec(
            c,
            "INSERT INTO ip_counts (ip, count, last) VALUES (?1, 1, ?2)
             ON CONFLICT (ip) DO UPDATE SET count = count + 1, last = excluded.last",
            params![ev.ip, ev.ts],
        )?;
    }
    Ok(())
}

/// The body of [`Store::register_router`], inside the caller's transaction.
fn register_tx(
    c: &Connection,
    rec: &RouterRecord,
    text: &str,
    challenge: Option<(String, f64)>,
    mut event: RegEvent,
) -> Result<RegisterOutcome, StoreError> {
    if let Some((id, expires_at)) = challenge {
        let n = exec(
            c,
            "INSERT INTO spent_challenges (id, expires_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![id, expires_at],
        )?;
        if n == 0 {
            event.success = false;
            add_event(c, &event)?;
            return Ok(RegisterOutcome::ChallengeReused);
        }
    }
    if !insert_router_row(c, rec, text)? {
        return Ok(RegisterOutcome::AlreadyRegistered);
    }
    event.success = true;
    add_event(c, &event)?;
    Ok(RegisterOutcome::Registered)
}

#[async_trait]
impl Store for SqliteStore {
    async fn meta_get_or_insert(&self, key: &str, init: &[u8]) -> Result<Vec<u8>, StoreError> {
        let c = self.db()?;
        exec(
            &c,
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, init],
        )?;
        Ok(query_row(
            &c,
            "SELECT value FROM meta WHERE key = ?1",
            [key],
            |r| r.get(0),
        )?)
    }

    async fn router_versioned(
        &self,
        id: &str,
    ) -> Result<Option<(RouterRecord, Version)>, StoreError> {
        let row: Option<(String, Version)> = {
            let c = self.db()?;
            let mut st =
                c.prepare_cached("SELECT record, version FROM routers WHERE router_id = ?1")?;
            st.query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
        };
        row.map(|(t, v)| Ok((decode(&t)?, v))).transpose()
    }

    async fn insert_router(&self, rec: &RouterRecord) -> Result<bool, StoreError> {
        let text = serde_json::to_string(rec)?;
        let mut c = self.db()?;
        let tx = c.transaction()?;
        let inserted = insert_router_row(&tx, rec, &text)?;
        tx.commit()?;
        Ok(inserted)
    }

    async fn replace_router(
        &self,
        rec: &RouterRecord,
        expected: Version,
    ) -> Result<bool, StoreError> {
        let text = serde_json::to_string(rec)?;
        let mut c = self.db()?;
        let tx = c.transaction()?;
        let n = exec(
            &tx,
            "UPDATE routers SET record = ?2, version = version + 1
             WHERE router_id = ?1 AND version = ?3",
            params![rec.router_id, text, expected],
        )?;
        if n == 1 {
            write_hosts(&tx, rec)?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    async fn register_router(
        &self,
        reg: &NewRegistration<'_>,
    ) -> Result<RegisterOutcome, StoreError> {
        let text = serde_json::to_string(reg.record)?;
        let record = reg.record.clone();
        let challenge = reg.challenge.map(|(id, exp)| (id.to_owned(), exp));
        let event = reg.event.clone();
        self.blocking(move |c| {
            let tx = c.transaction()?;
            let outcome = register_tx(&tx, &record, &text, challenge, event)?;
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn remove_router(&self, id: &str) -> Result<(), StoreError> {
        let c = self.db()?;
        for sql in [
            "DELETE FROM routers WHERE router_id = ?1",
            "DELETE FROM router_hosts WHERE router_id = ?1",
            "DELETE FROM reports WHERE router_id = ?1",
            "DELETE FROM flags WHERE router_id = ?1",
        ] {
            exec(&c, sql, [id])?;
        }
        Ok(())
    }

    async fn routers(&self) -> Result<Vec<RouterRecord>, StoreError> {
        self.blocking(|c| {
            let mut st = c.prepare_cached("SELECT record FROM routers")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|t| decode(&t?)).collect()
        })
        .await
    }

    async fn router_count(&self) -> Result<u64, StoreError> {
        let c = self.db()?;
        Ok(query_row(&c, "SELECT COUNT(*) FROM routers", [], |r| {
            r.get(0)
        })?)
    }

    async fn routers_on_hosts(&self, hosts: &[String]) -> Result<Vec<RouterRecord>, StoreError> {
        let c = self.db()?;
        let mut st = c.prepare_cached(
            "SELECT r.record FROM router_hosts h JOIN routers r ON r.router_id = h.router_id
             WHERE h.host = ?1",
        )?;
        let mut out: Vec<RouterRecord> = Vec::new();
        for h in hosts {
            for t in st.query_map([h], |r| r.get::<_, String>(0))? {
                let rec = decode(&t?)?;
                if !out.iter().any(|o| o.router_id == rec.router_id) {
                    out.push(rec);
                }
            }
        }
        Ok(out)
    }

    async fn spend_challenge(&self, id: &str, expires_at: f64) -> Result<bool, StoreError> {
        let c = self.db()?;
        let n = exec(
            &c,
            "INSERT INTO spent_challenges (id, expires_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![id, expires_at],
        )?;
        Ok(n == 1)
    }

    async fn add_reg_event(&self, ev: &RegEvent) -> Result<(), StoreError> {
        let mut c = self.db()?;
        let tx = c.transaction()?;
        add_event(&tx, ev)?;
        tx.commit()?;
        Ok(())
    }

    async fn reg_stats(
        &self,
        ip: &str,
        subnet: &str,
        since: f64,
        cap: u64,
    ) -> Result<RegStats, StoreError> {
        let cap = reg_count_limit(cap);
        let c = self.db()?;
        let (ip_events, last, subnet_events, total): (u64, Option<f64>, u64, Option<u64>) =
            query_row(
                &c,
                "SELECT
                   (SELECT COUNT(*) FROM (SELECT 1 FROM reg_events
                      WHERE ip = ?1 AND success IN (0, 1) AND ts >= ?3 LIMIT ?4)),
                   (SELECT MAX(ts) FROM reg_events WHERE ip = ?1 AND success = 1 AND ts >= ?3),
                   (SELECT COUNT(*) FROM (SELECT 1 FROM reg_events
                      WHERE subnet = ?2 AND ts >= ?3 LIMIT ?4)),
                   (SELECT count FROM ip_counts WHERE ip = ?1)",
                params![ip, subnet, since, cap],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
        Ok(RegStats {
            ip_events,
            subnet_events,
            last_success_from_ip: last,
            ip_successes_total: total.unwrap_or(0),
            recent_successes: 0,
        })
    }

    async fn successes_since(&self, since: f64) -> Result<u64, StoreError> {
        let c = self.db()?;
        Ok(query_row(
            &c,
            "SELECT COUNT(*) FROM reg_events WHERE success AND ts >= ?1",
            [since],
            |r| r.get(0),
        )?)
    }

    async fn event_summary(&self, since: f64) -> Result<EventSummary, StoreError> {
        let c = self.db()?;
        Ok(query_row(
            &c,
            "SELECT COUNT(*), COUNT(DISTINCT ip), COUNT(DISTINCT subnet) FROM reg_events
             WHERE ts >= ?1",
            [since],
            |r| {
                Ok(EventSummary {
                    total: r.get(0)?,
                    unique_ips: r.get(1)?,
                    unique_subnets: r.get(2)?,
                })
            },
        )?)
    }

    async fn put_report(
        &self,
        report: &ReportEntry,
        since: f64,
        max: usize,
    ) -> Result<ReportSummary, StoreError> {
        let c = self.db()?;
        exec(
            &c,
            "INSERT INTO reports (router_id, reporter_id, report_id, severity, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (router_id, reporter_id) DO UPDATE SET
             report_id = excluded.report_id, severity = excluded.severity,
             received_at = excluded.received_at",
            params![
                report.router_id,
                report.reporter_id,
                report.report_id,
                report.severity,
                report.received_at
            ],
        )?;
        exec(
            &c,
            "DELETE FROM reports WHERE router_id = ?1 AND (received_at < ?2 OR reporter_id NOT IN
             (SELECT reporter_id FROM reports WHERE router_id = ?1
              ORDER BY received_at DESC LIMIT ?3))",
            params![
                report.router_id,
                since,
                i64::try_from(max).unwrap_or(i64::MAX)
            ],
        )?;
        let (n, mean): (usize, Option<f64>) = query_row(
            &c,
            "SELECT COUNT(*), AVG(severity) FROM reports WHERE router_id = ?1",
            [&report.router_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(ReportSummary {
            reporters: n,
            mean_severity: mean.unwrap_or(0.0),
        })
    }

    async fn flag_router(&self, id: &str, now: f64) -> Result<bool, StoreError> {
        let c = self.db()?;
        let n = exec(
            &c,
            "INSERT INTO flags (router_id, flagged_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![id, now],
        )?;
        Ok(n == 1)
    }

    async fn flagged(&self) -> Result<Vec<String>, StoreError> {
        let c = self.db()?;
        let mut st = c.prepare_cached("SELECT router_id FROM flags ORDER BY router_id")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    async fn reported_router_count(&self) -> Result<u64, StoreError> {
        let c = self.db()?;
        Ok(query_row(
            &c,
            "SELECT COUNT(DISTINCT router_id) FROM reports",
            [],
            |r| r.get(0),
        )?)
    }

    async fn revocation(&self, seed_id: &str) -> Result<Option<Value>, StoreError> {
        let c = self.db()?;
        let text: Option<String> = c
            .query_row(
                "SELECT record FROM revocations WHERE seed_id = ?1",
                [seed_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
    }

    async fn put_revocation(&self, seed_id: &str, record: &Value) -> Result<(), StoreError> {
        let c = self.db()?;
        exec(
            &c,
            "INSERT INTO revocations (seed_id, record) VALUES (?1, ?2)
             ON CONFLICT (seed_id) DO UPDATE SET record = excluded.record",
            params![seed_id, serde_json::to_string(record)?],
        )?;
        Ok(())
    }

    async fn revocations(&self) -> Result<Vec<Value>, StoreError> {
        let c = self.db()?;
        let mut st = c.prepare_cached("SELECT record FROM revocations ORDER BY seed_id")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|t| Ok(serde_json::from_str(&t?)?)).collect()
    }

    async fn put_address(&self, a: &StoredAddress, max: u64) -> Result<PutAddress, StoreError> {
        let c = self.db()?;
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let changed = c.prepare_cached(PUT_ADDRESS)?.execute(params![
            a.identity,
            a.text,
            a.issued_at,
            a.expires_at,
            max
        ])?;
        if changed > 0 {
            return Ok(PutAddress::Stored);
        }
        let stored: Option<String> = c
            .query_row(
                "SELECT address FROM addresses WHERE identity = ?1",
                [&a.identity],
                |r| r.get(0),
            )
            .optional()?;
        Ok(super::not_stored(stored.as_deref(), &a.text))
    }

    async fn address(&self, identity: &str) -> Result<Option<StoredAddress>, StoreError> {
        let c = self.db()?;
        Ok(c.query_row(
            "SELECT identity, address, issued_at, expires_at FROM addresses WHERE identity = ?1",
            [identity],
            address_row,
        )
        .optional()?)
    }

    async fn fresh_addresses(
        &self,
        now: i64,
        limit: u64,
    ) -> Result<Vec<StoredAddress>, StoreError> {
        let c = self.db()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut st = c.prepare_cached(
            "SELECT identity, address, issued_at, expires_at FROM addresses
             WHERE expires_at > ?1 ORDER BY issued_at DESC, identity LIMIT ?2",
        )?;
        let rows = st.query_map(params![now, limit], address_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    async fn prune(&self, before: &PruneBefore) -> Result<(), StoreError> {
        let before = *before;
        self.blocking(move |c| prune_tx(c, &before)).await
    }
}

fn prune_tx(c: &mut Connection, before: &PruneBefore) -> Result<(), StoreError> {
    let c = c.transaction()?;
    {
        exec(&c, "DELETE FROM reg_events WHERE ts < ?1", [before.events])?;
        exec(
            &c,
            "DELETE FROM reports WHERE received_at < ?1",
            [before.reports],
        )?;
        exec(
            &c,
            "DELETE FROM spent_challenges WHERE expires_at < ?1",
            [before.challenges],
        )?;
        exec(
            &c,
            "DELETE FROM ip_counts WHERE last < ?1",
            [before.ip_counts],
        )?;
        exec(
            &c,
            "DELETE FROM addresses WHERE expires_at < ?1",
            [before.addresses],
        )?;
    }
    c.commit()?;
    Ok(())
}

/// An `addresses` row (identity, address, issued_at, expires_at).
fn address_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAddress> {
    Ok(StoredAddress {
        identity: r.get(0)?,
        text: r.get(1)?,
        issued_at: r.get(2)?,
        expires_at: r.get(3)?,
    })
}
