//! The shared store: PostgreSQL, for several seed replicas behind one load balancer.
//!
//! One `tokio_postgres::Client` pipelines the queries of all tasks. Every check-then-insert is
//! a single `INSERT … ON CONFLICT DO NOTHING`, so replicas cannot both win a race (W29).
//! Multi-table writes (a registration, a router replacement with its host index) are one
//! statement with data-modifying CTEs, so they are atomic without a client-side transaction
//! (which the shared pipelined client could not hold). A router's read-modify-write is
//! optimistic: the record carries a version and the write is
//! `UPDATE … WHERE version = $expected`; under READ COMMITTED a concurrent writer waits for
//! the row lock, re-checks the version and matches no row, so the loser re-reads and
//! re-applies its change instead of overwriting the winner's.

use async_trait::async_trait;
use serde_json::Value;
use tokio_postgres::{Client, NoTls};

use super::{
    EventSummary, NewRegistration, PruneBefore, PutAddress, RegEvent, RegisterOutcome, ReportEntry,
    ReportSummary, Store, StoreError, StoredAddress, Version, reg_count_limit,
};
use crate::policy::RegStats;
use crate::record::RouterRecord;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS routers (router_id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS router_hosts (host TEXT NOT NULL, router_id TEXT NOT NULL,
    PRIMARY KEY (host, router_id));
CREATE INDEX IF NOT EXISTS router_hosts_id ON router_hosts (router_id);
CREATE TABLE IF NOT EXISTS reg_events (ip TEXT NOT NULL, subnet TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL, success BOOLEAN NOT NULL);
CREATE INDEX IF NOT EXISTS reg_events_ip ON reg_events (ip, ts);
CREATE INDEX IF NOT EXISTS reg_events_ip_success ON reg_events (ip, success, ts);
CREATE INDEX IF NOT EXISTS reg_events_subnet ON reg_events (subnet, ts);
CREATE INDEX IF NOT EXISTS reg_events_ts ON reg_events (ts);
CREATE TABLE IF NOT EXISTS ip_counts (ip TEXT PRIMARY KEY, count BIGINT NOT NULL,
    last DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS spent_challenges (id TEXT PRIMARY KEY,
    expires_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS reports (router_id TEXT NOT NULL, reporter_id TEXT NOT NULL,
    report_id TEXT NOT NULL, severity DOUBLE PRECISION NOT NULL,
    received_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (router_id, reporter_id));
CREATE TABLE IF NOT EXISTS flags (router_id TEXT PRIMARY KEY, flagged_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS revocations (seed_id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS addresses (identity TEXT PRIMARY KEY, address TEXT NOT NULL,
    issued_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS addresses_by_issue ON addresses (issued_at);
ALTER TABLE routers ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
";

/// Inserts an address for a known identity or while under the cap; replaces only a strictly
/// older one.
const PUT_ADDRESS: &str = "
INSERT INTO addresses (identity, address, issued_at, expires_at)
SELECT $1, $2, $3, $4
WHERE EXISTS (SELECT 1 FROM addresses WHERE identity = $1)
   OR (SELECT COUNT(*) FROM addresses) < $5
ON CONFLICT (identity) DO UPDATE SET address = EXCLUDED.address,
    issued_at = EXCLUDED.issued_at, expires_at = EXCLUDED.expires_at
WHERE EXCLUDED.issued_at > addresses.issued_at";

/// Inserts a router and its host index unless the id exists; returns the number inserted.
const INSERT_ROUTER: &str = "
WITH r AS (INSERT INTO routers (router_id, record, version) VALUES ($1, $2, 0)
           ON CONFLICT DO NOTHING RETURNING router_id),
     h AS (INSERT INTO router_hosts (host, router_id)
           SELECT x, r.router_id FROM r, unnest($3::text[]) AS x ON CONFLICT DO NOTHING)
SELECT COUNT(*) FROM r";

/// Replaces a router at version `$3` and rewrites its host index, in one statement.
const REPLACE_ROUTER: &str = "
WITH u AS (UPDATE routers SET record = $2, version = version + 1
           WHERE router_id = $1 AND version = $3 RETURNING router_id),
     d AS (DELETE FROM router_hosts WHERE router_id IN (SELECT router_id FROM u)
           AND NOT (host = ANY($4::text[]))),
     h AS (INSERT INTO router_hosts (host, router_id)
           SELECT x, u.router_id FROM u, unnest($4::text[]) AS x ON CONFLICT DO NOTHING)
SELECT COUNT(*) FROM u";

/// A whole registration (see `Store::register_router`) in one statement. `$4` is the challenge
/// id to spend, or NULL if the caller spent it already.
const REGISTER: &str = "
WITH ch AS (INSERT INTO spent_challenges (id, expires_at)
            SELECT $4::text, $5::double precision WHERE $4::text IS NOT NULL
            ON CONFLICT DO NOTHING RETURNING id),
     ok AS (SELECT 1 AS one WHERE $4::text IS NULL OR EXISTS (SELECT 1 FROM ch)),
     r AS (INSERT INTO routers (router_id, record, version) SELECT $1, $2, 0 FROM ok
           ON CONFLICT DO NOTHING RETURNING router_id),
     h AS (INSERT INTO router_hosts (host, router_id)
           SELECT x, r.router_id FROM r, unnest($3::text[]) AS x ON CONFLICT DO NOTHING),
     ev AS (INSERT INTO reg_events (ip, subnet, ts, success)
            SELECT $6::text, $7::text, $8::double precision, TRUE FROM r
            UNION ALL SELECT $6, $7, $8, FALSE WHERE NOT EXISTS (SELECT 1 FROM ok)),
     ic AS (INSERT INTO ip_counts (ip, count, last) SELECT $6, 1, $8 FROM r
            ON CONFLICT (ip) DO UPDATE SET count = ip_counts.count + 1, last = excluded.last)
SELECT EXISTS (SELECT 1 FROM ok), EXISTS (SELECT 1 FROM r)";

/// PostgreSQL-backed [`Store`].
#[derive(Debug)]
pub struct PgStore {
    client: Client,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) and creates the schema if needed. Replicas starting
    /// together may race on `CREATE … IF NOT EXISTS`; a failed first attempt is retried once.
    ///
    /// # Errors
    /// Connection or schema errors.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::error!(error = %e, "postgres connection ended");
            }
        });
        if client.batch_execute(SCHEMA).await.is_err() {
            client.batch_execute(SCHEMA).await?;
        }
        Ok(Self { client })
    }
}

fn decode(text: &str) -> Result<RouterRecord, StoreError> {
    Ok(serde_json::from_str(text)?)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl Store for PgStore {
    async fn meta_get_or_insert(&self, key: &str, init: &[u8]) -> Result<Vec<u8>, StoreError> {
        let c = &self.client;
        c.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&key, &init],
        )
        .await?;
        Ok(
            c.query_one("SELECT value FROM meta WHERE key = $1", &[&key])
                .await?
                .get(0),
        )
    }

    async fn router_versioned(
        &self,
        id: &str,
    ) -> Result<Option<(RouterRecord, Version)>, StoreError> {
        let row = self
            .client
            .query_opt(
                "SELECT record, version FROM routers WHERE router_id = $1",
                &[&id],
            )
            .await?;
        row.map(|r| Ok((decode(r.get(0))?, r.get(1)))).transpose()
    }

    async fn insert_router(&self, rec: &RouterRecord) -> Result<bool, StoreError> {
        let text = serde_json::to_string(rec)?;
        let row = self
            .client
            .query_one(INSERT_ROUTER, &[&rec.router_id, &text, &rec.hosts()])
            .await?;
        Ok(row.get::<_, i64>(0) == 1)
    }

    async fn replace_router(
        &self,
        rec: &RouterRecord,
        expected: Version,
    ) -> Result<bool, StoreError> {
        let text = serde_json::to_string(rec)?;
        let row = self
            .client
            .query_one(
                REPLACE_ROUTER,
                &[&rec.router_id, &text, &expected, &rec.hosts()],
            )
            .await?;
        Ok(row.get::<_, i64>(0) == 1)
    }

    async fn register_router(
        &self,
        reg: &NewRegistration<'_>,
    ) -> Result<RegisterOutcome, StoreError> {
        let rec = reg.record;
        let text = serde_json::to_string(rec)?;
        let (ch, exp) = reg.challenge.unzip();
        let ev = reg.event;
        let row = self
            .client
            .query_one(
                REGISTER,
                &[
                    &rec.router_id,
                    &text,
                    &rec.hosts(),
                    &ch,
                    &exp,
                    &ev.ip,
                    &ev.subnet,
                    &ev.ts,
                ],
            )
            .await?;
        Ok(match (row.get::<_, bool>(0), row.get::<_, bool>(1)) {
            (false, _) => RegisterOutcome::ChallengeReused,
            (true, false) => RegisterOutcome::AlreadyRegistered,
            (true, true) => RegisterOutcome::Registered,
        })
    }

    async fn remove_router(&self, id: &str) -> Result<(), StoreError> {
        for sql in [
            "DELETE FROM routers WHERE router_id = $1",
            "DELETE FROM router_hosts WHERE router_id = $1",
            "DELETE FROM reports WHERE router_id = $1",
            "DELETE FROM flags WHERE router_id = $1",
        ] {
            self.client.execute(sql, &[&id]).await?;
        }
        Ok(())
    }

    async fn routers(&self) -> Result<Vec<RouterRecord>, StoreError> {
        let rows = self.client.query("SELECT record FROM routers", &[]).await?;
        rows.iter().map(|r| decode(r.get(0))).collect()
    }

    async fn router_count(&self) -> Result<u64, StoreError> {
        let row = self
            .client
            .query_one("SELECT COUNT(*) FROM routers", &[])
            .await?;
        Ok(count(row.get(0)))
    }

    async fn routers_on_hosts(&self, hosts: &[String]) -> Result<Vec<RouterRecord>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT r.router_id, r.record FROM router_hosts h
                 JOIN routers r ON r.router_id = h.router_id WHERE h.host = ANY($1)",
                &[&hosts],
            )
            .await?;
        rows.iter().map(|r| decode(r.get(1))).collect()
    }

    async fn spend_challenge(&self, id: &str, expires_at: f64) -> Result<bool, StoreError> {
        let n = self
            .client
            .execute(
                "INSERT INTO spent_challenges (id, expires_at) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
                &[&id, &expires_at],
            )
            .await?;
        Ok(n == 1)
    }

    async fn add_reg_event(&self, ev: &RegEvent) -> Result<(), StoreError> {
        let c = &self.client;
        c.execute(
            "INSERT INTO reg_events (ip, subnet, ts, success) VALUES ($1, $2, $3, $4)",
            &[&ev.ip, &ev.subnet, &ev.ts, &ev.success],
        )
        .await?;
        if ev.success {
            c.execute(
                "INSERT INTO ip_counts (ip, count, last) VALUES ($1, 1, $2)
                 ON CONFLICT (ip) DO UPDATE SET count = ip_counts.count + 1, last = excluded.last",
                &[&ev.ip, &ev.ts],
            )
            .await?;
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
        let cap = reg_count_limit(cap);
        let row = self
            .client
            .query_one(
                "SELECT
                   (SELECT COUNT(*) FROM (SELECT 1 FROM reg_events
                      WHERE ip = $1 AND ts >= $3 LIMIT $4) AS a),
                   (SELECT MAX(ts) FROM reg_events WHERE ip = $1 AND ts >= $3 AND success),
                   (SELECT COUNT(*) FROM (SELECT 1 FROM reg_events
                      WHERE subnet = $2 AND ts >= $3 LIMIT $4) AS b),
                   (SELECT count FROM ip_counts WHERE ip = $1)",
                &[&ip, &subnet, &since, &cap],
            )
            .await?;
        Ok(RegStats {
            ip_events: count(row.get(0)),
            last_success_from_ip: row.get(1),
            subnet_events: count(row.get(2)),
            recent_successes: 0,
            ip_successes_total: row.get::<_, Option<i64>>(3).map_or(0, count),
        })
    }

    async fn successes_since(&self, since: f64) -> Result<u64, StoreError> {
        let row = self
            .client
            .query_one(
                "SELECT COUNT(*) FROM reg_events WHERE success AND ts >= $1",
                &[&since],
            )
            .await?;
        Ok(count(row.get(0)))
    }

    async fn event_summary(&self, since: f64) -> Result<EventSummary, StoreError> {
        let row = self
            .client
            .query_one(
                "SELECT COUNT(*), COUNT(DISTINCT ip), COUNT(DISTINCT subnet) FROM reg_events
                 WHERE ts >= $1",
                &[&since],
            )
            .await?;
        Ok(EventSummary {
            total: count(row.get(0)),
            unique_ips: count(row.get(1)),
            unique_subnets: count(row.get(2)),
        })
    }

    async fn put_report(
        &self,
        report: &ReportEntry,
        since: f64,
        max: usize,
    ) -> Result<ReportSummary, StoreError> {
        let c = &self.client;
        c.execute(
            "INSERT INTO reports (router_id, reporter_id, report_id, severity, received_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (router_id, reporter_id) DO UPDATE SET
             report_id = excluded.report_id, severity = excluded.severity,
             received_at = excluded.received_at",
            &[
                &report.router_id,
                &report.reporter_id,
                &report.report_id,
                &report.severity,
                &report.received_at,
            ],
        )
        .await?;
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        c.execute(
            "DELETE FROM reports WHERE router_id = $1 AND (received_at < $2 OR reporter_id NOT IN
             (SELECT reporter_id FROM reports WHERE router_id = $1
              ORDER BY received_at DESC LIMIT $3))",
            &[&report.router_id, &since, &max],
        )
        .await?;
        let row = c
            .query_one(
                "SELECT COUNT(*), AVG(severity) FROM reports WHERE router_id = $1",
                &[&report.router_id],
            )
            .await?;
        Ok(ReportSummary {
            reporters: usize::try_from(row.get::<_, i64>(0)).unwrap_or(0),
            mean_severity: row.get::<_, Option<f64>>(1).unwrap_or(0.0),
        })
    }

    async fn flag_router(&self, id: &str, now: f64) -> Result<bool, StoreError> {
        let n = self
            .client
            .execute(
                "INSERT INTO flags (router_id, flagged_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&id, &now],
            )
            .await?;
        Ok(n == 1)
    }

    async fn flagged(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .client
            .query("SELECT router_id FROM flags ORDER BY router_id", &[])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn reported_router_count(&self) -> Result<u64, StoreError> {
        let row = self
            .client
            .query_one("SELECT COUNT(DISTINCT router_id) FROM reports", &[])
            .await?;
        Ok(count(row.get(0)))
    }

    async fn revocation(&self, seed_id: &str) -> Result<Option<Value>, StoreError> {
        let row = self
            .client
            .query_opt(
                "SELECT record FROM revocations WHERE seed_id = $1",
                &[&seed_id],
            )
            .await?;
        Ok(row.map(|r| serde_json::from_str(r.get(0))).transpose()?)
    }

    async fn put_revocation(&self, seed_id: &str, record: &Value) -> Result<(), StoreError> {
        let text = serde_json::to_string(record)?;
        self.client
            .execute(
                "INSERT INTO revocations (seed_id, record) VALUES ($1, $2)
                 ON CONFLICT (seed_id) DO UPDATE SET record = excluded.record",
                &[&seed_id, &text],
            )
            .await?;
        Ok(())
    }

    async fn revocations(&self) -> Result<Vec<Value>, StoreError> {
        let rows = self
            .client
            .query("SELECT record FROM revocations ORDER BY seed_id", &[])
            .await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(r.get(0))?))
            .collect()
    }

    async fn put_address(&self, a: &StoredAddress, max: u64) -> Result<PutAddress, StoreError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let changed = self
            .client
            .execute(
                PUT_ADDRESS,
                &[&a.identity, &a.text, &a.issued_at, &a.expires_at, &max],
            )
            .await?;
        if changed > 0 {
            return Ok(PutAddress::Stored);
        }
        let stored = self
            .client
            .query_opt(
                "SELECT address FROM addresses WHERE identity = $1",
                &[&a.identity],
            )
            .await?;
        let stored: Option<String> = stored.map(|r| r.get(0));
        Ok(super::not_stored(stored.as_deref(), &a.text))
    }

    async fn address(&self, identity: &str) -> Result<Option<StoredAddress>, StoreError> {
        let row = self
            .client
            .query_opt(
                "SELECT identity, address, issued_at, expires_at FROM addresses
                 WHERE identity = $1",
                &[&identity],
            )
            .await?;
        Ok(row.as_ref().map(address_row))
    }

    async fn fresh_addresses(
        &self,
        now: i64,
        limit: u64,
    ) -> Result<Vec<StoredAddress>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client
            .query(
                "SELECT identity, address, issued_at, expires_at FROM addresses
                 WHERE expires_at > $1 ORDER BY issued_at DESC, identity LIMIT $2",
                &[&now, &limit],
            )
            .await?;
        Ok(rows.iter().map(address_row).collect())
    }

    async fn prune(&self, before: &PruneBefore) -> Result<(), StoreError> {
        let c = &self.client;
        c.execute("DELETE FROM reg_events WHERE ts < $1", &[&before.events])
            .await?;
        c.execute(
            "DELETE FROM reports WHERE received_at < $1",
            &[&before.reports],
        )
        .await?;
        c.execute(
            "DELETE FROM spent_challenges WHERE expires_at < $1",
            &[&before.challenges],
        )
        .await?;
        c.execute(
            "DELETE FROM ip_counts WHERE last < $1",
            &[&before.ip_counts],
        )
        .await?;
        c.execute(
            "DELETE FROM addresses WHERE expires_at < $1",
            &[&before.addresses],
        )
        .await?;
        Ok(())
    }
}

/// An `addresses` row (identity, address, issued_at, expires_at).
fn address_row(r: &tokio_postgres::Row) -> StoredAddress {
    StoredAddress {
        identity: r.get(0),
        text: r.get(1),
        issued_at: r.get(2),
        expires_at: r.get(3),
    }
}
