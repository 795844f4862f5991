//! The embedded store: one SQLite file (WAL mode) in the data directory.
//!
//! Statements are short and indexed, so they run inline under one connection lock that is
//! never held across an `.await`.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{PruneBefore, REG_COUNT_CAP, RegEvent, ReportEntry, ReportSummary, Store, StoreError};
use crate::policy::RegStats;
use crate::record::RouterRecord;

const SCHEMA: &str = "
PRAGMA locking_mode = EXCLUSIVE;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS routers (router_id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS router_hosts (host TEXT NOT NULL, router_id TEXT NOT NULL,
    PRIMARY KEY (host, router_id));
CREATE INDEX IF NOT EXISTS router_hosts_id ON router_hosts (router_id);
CREATE TABLE IF NOT EXISTS reg_events (ip TEXT NOT NULL, subnet TEXT NOT NULL,
    ts REAL NOT NULL, success INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS reg_events_ip ON reg_events (ip, ts);
CREATE INDEX IF NOT EXISTS reg_events_ip_success ON reg_events (ip, success, ts);
CREATE INDEX IF NOT EXISTS reg_events_subnet ON reg_events (subnet, ts);
CREATE INDEX IF NOT EXISTS reg_events_ts ON reg_events (ts);
CREATE TABLE IF NOT EXISTS ip_counts (ip TEXT PRIMARY KEY, count INTEGER NOT NULL,
    last REAL NOT NULL);
CREATE TABLE IF NOT EXISTS spent_challenges (id TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS reports (router_id TEXT NOT NULL, reporter_id TEXT NOT NULL,
    report_id TEXT NOT NULL, severity REAL NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (router_id, reporter_id));
CREATE TABLE IF NOT EXISTS flags (router_id TEXT PRIMARY KEY, flagged_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS revocations (seed_id TEXT PRIMARY KEY, record TEXT NOT NULL);
";

/// SQLite-backed [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
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
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn db(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }
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
    for h in rec.hosts() {
        exec(
            c,
            "INSERT OR IGNORE INTO router_hosts (host, router_id) VALUES (?1, ?2)",
            params![h, rec.router_id],
        )?;
    }
    Ok(())
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

    async fn router(&self, id: &str) -> Result<Option<RouterRecord>, StoreError> {
        let c = self.db()?;
        let text: Option<String> = c
            .query_row(
                "SELECT record FROM routers WHERE router_id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        text.map(|t| decode(&t)).transpose()
    }

    async fn insert_router(&self, rec: &RouterRecord) -> Result<bool, StoreError> {
        let c = self.db()?;
        let n = exec(
            &c,
            "INSERT INTO routers (router_id, record) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![rec.router_id, serde_json::to_string(rec)?],
        )?;
        if n == 1 {
            write_hosts(&c, rec)?;
        }
        Ok(n == 1)
    }

    async fn put_router(&self, rec: &RouterRecord) -> Result<(), StoreError> {
        let c = self.db()?;
        exec(
            &c,
            "INSERT INTO routers (router_id, record) VALUES (?1, ?2)
             ON CONFLICT (router_id) DO UPDATE SET record = excluded.record",
            params![rec.router_id, serde_json::to_string(rec)?],
        )?;
        write_hosts(&c, rec)
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
        let c = self.db()?;
        let mut st = c.prepare_cached("SELECT record FROM routers")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|t| decode(&t?)).collect()
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
        let c = self.db()?;
        exec(
            &c,
            "INSERT INTO reg_events (ip, subnet, ts, success) VALUES (?1, ?2, ?3, ?4)",
            params![ev.ip, ev.subnet, ev.ts, ev.success],
        )?;
        if ev.success {
            exec(
                &c,
                "INSERT INTO ip_counts (ip, count, last) VALUES (?1, 1, ?2)
                 ON CONFLICT (ip) DO UPDATE SET count = count + 1, last = excluded.last",
                params![ev.ip, ev.ts],
            )?;
        }
        Ok(())
    }

    async fn reg_stats(
        &self,
        ip: &str,
        subnet: &str,
        since: f64,
        cap: u64,
    ) -> Result<RegStats, StoreError> {
        let cap = i64::try_from(cap.min(REG_COUNT_CAP)).unwrap_or(0);
        let c = self.db()?;
        let ip_events: u64 = query_row(
            &c,
            "SELECT COUNT(*) FROM (SELECT 1 FROM reg_events WHERE ip = ?1 AND ts >= ?2 LIMIT ?3)",
            params![ip, since, cap],
            |r| r.get(0),
        )?;
        let last: Option<f64> = query_row(
            &c,
            "SELECT MAX(ts) FROM reg_events WHERE ip = ?1 AND success AND ts >= ?2",
            params![ip, since],
            |r| r.get(0),
        )?;
        let subnet_events: u64 = query_row(
            &c,
            "SELECT COUNT(*) FROM (SELECT 1 FROM reg_events WHERE subnet = ?1 AND ts >= ?2
             LIMIT ?3)",
            params![subnet, since, cap],
            |r| r.get(0),
        )?;
        let total: Option<u64> = c
            .query_row("SELECT count FROM ip_counts WHERE ip = ?1", [ip], |r| {
                r.get(0)
            })
            .optional()?;
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

    async fn prune(&self, before: &PruneBefore) -> Result<(), StoreError> {
        let c = self.db()?;
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
        Ok(())
    }
}
