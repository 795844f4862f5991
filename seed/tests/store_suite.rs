#![allow(clippy::unwrap_used, reason = "test code")]
//! One storage test suite, run against every backend: SQLite in memory, SQLite on disk
//! (reopened, to show nothing is lost), and a throwaway PostgreSQL cluster.

#[path = "support/pg.rs"]
mod pg;

use std::sync::Arc;

use ournet_seed::record::{Health, RouterRecord};
use ournet_seed::store::postgres::PgStore;
use ournet_seed::store::sqlite::SqliteStore;
use ournet_seed::store::{
    NewRegistration, PruneBefore, PutAddress, RegEvent, RegisterOutcome, ReportEntry, Store,
    StoredAddress, update_router,
};
use serde_json::json;

fn record(id: &str, endpoint: &str) -> RouterRecord {
    let descriptor = json!({"endpoints": [endpoint], "published_at": 1.0});
    RouterRecord {
        router_id: id.into(),
        descriptor: descriptor.as_object().cloned().unwrap(),
        source_ip: "192.0.2.1".into(),
        health: Health::new_router(100.0),
        monitor: None,
        reputation: ournet_seed::policy::new_reputation(&Default::default(), 100.0),
        last_signed_ts: 0.0,
    }
}

async fn suite(s: Arc<dyn Store>) {
    routers(&s).await;
    races(&s).await;
    events(&s).await;
    reports_flags_revocations(&s).await;
    registrations(&s).await;
    addresses(&s).await;
}

/// `put_address`: newest per identity, a cap on identities, pruning by expiry.
async fn addresses(s: &Arc<dyn Store>) {
    let a = |id: &str, text: &str, issued_at: i64, expires_at: i64| StoredAddress {
        identity: id.into(),
        text: text.into(),
        issued_at,
        expires_at,
    };
    assert_eq!(
        s.put_address(&a("n1", "t1", 10, 100), 2).await.unwrap(),
        PutAddress::Stored
    );
    assert_eq!(
        s.put_address(&a("n1", "t1", 10, 100), 2).await.unwrap(),
        PutAddress::Unchanged
    );
    assert_eq!(
        s.put_address(&a("n1", "t0", 9, 100), 2).await.unwrap(),
        PutAddress::NotNewer
    );
    assert_eq!(
        s.put_address(&a("n1", "t2", 11, 50), 2).await.unwrap(),
        PutAddress::Stored
    );
    assert_eq!(s.address("n1").await.unwrap(), Some(a("n1", "t2", 11, 50)));
    assert_eq!(
        s.put_address(&a("n2", "u", 1, 200), 2).await.unwrap(),
        PutAddress::Stored
    );
    assert_eq!(
        s.put_address(&a("n3", "v", 1, 200), 2).await.unwrap(),
        PutAddress::Full
    );
    assert_eq!(
        s.put_address(&a("n2", "u2", 2, 200), 2).await.unwrap(),
        PutAddress::Stored
    );
    assert_eq!(s.address("n3").await.unwrap(), None);
    // What gossip sends: unexpired, the most recently issued first, at most `limit`.
    let fresh = s.fresh_addresses(40, 10).await.unwrap();
    assert_eq!(fresh, vec![a("n1", "t2", 11, 50), a("n2", "u2", 2, 200)]);
    assert_eq!(
        s.fresh_addresses(40, 1).await.unwrap(),
        vec![a("n1", "t2", 11, 50)]
    );
    assert_eq!(
        s.fresh_addresses(50, 10).await.unwrap(),
        vec![a("n2", "u2", 2, 200)]
    );
    let before = PruneBefore {
        events: 0.0,
        reports: 0.0,
        challenges: 0.0,
        ip_counts: 0.0,
        addresses: 60,
    };
    s.prune(&before).await.unwrap();
    assert_eq!(s.address("n1").await.unwrap(), None, "expired at 50");
    assert!(s.address("n2").await.unwrap().is_some());
}

/// `register_router`: one transaction, three outcomes.
async fn registrations(s: &Arc<dyn Store>) {
    let ev = RegEvent {
        ip: "198.51.100.7".into(),
        subnet: "198.51.100.0/24".into(),
        ts: 1000.0,
        success: false,
    };
    let stats = || s.reg_stats("198.51.100.7", "198.51.100.0/24", 0.0, 10);
    let rec = record("reg-1", "203.0.113.1:1");
    let reg = |rec, challenge| NewRegistration {
        record: rec,
        challenge,
        event: &ev,
    };
    let out = s
        .register_router(&reg(&rec, Some(("reg-ch", 2000.0))))
        .await
        .unwrap();
    assert_eq!(out, RegisterOutcome::Registered);
    let st = stats().await.unwrap();
    assert_eq!(
        (st.ip_events, st.ip_successes_total, st.last_success_from_ip),
        (1, 1, Some(1000.0))
    );
    assert_eq!(
        s.routers_on_hosts(&["203.0.113.1".into()])
            .await
            .unwrap()
            .len(),
        1
    );
    let other = record("reg-2", "203.0.113.2:1");
    let out = s
        .register_router(&reg(&other, Some(("reg-ch", 2000.0))))
        .await
        .unwrap();
    assert_eq!(out, RegisterOutcome::ChallengeReused);
    assert!(s.router("reg-2").await.unwrap().is_none());
    let st = stats().await.unwrap();
    assert_eq!(
        (st.ip_events, st.ip_successes_total),
        (2, 1),
        "a reused challenge counts as a failed event"
    );
    let out = s
        .register_router(&reg(&rec, Some(("reg-ch-2", 2000.0))))
        .await
        .unwrap();
    assert_eq!(out, RegisterOutcome::AlreadyRegistered);
    assert!(
        !s.spend_challenge("reg-ch-2", 2000.0).await.unwrap(),
        "the loser's challenge stays spent"
    );
    let out = s.register_router(&reg(&other, None)).await.unwrap();
    assert_eq!(
        out,
        RegisterOutcome::Registered,
        "challenge spent by caller"
    );
    assert_eq!(stats().await.unwrap().ip_successes_total, 2);
    s.remove_router("reg-1").await.unwrap();
    s.remove_router("reg-2").await.unwrap();
}

/// Many concurrent read-modify-writes of one router through two store handles (two replicas
/// on PostgreSQL): every one lands.
async fn concurrent_updates(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    assert!(a.insert_router(&record("hot", "10.7.0.1:1")).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                update_router(s.as_ref(), "hot", |r| {
                    r.reputation.heartbeat_count += 1;
                    true
                })
                .await
                .unwrap()
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rec = b.router("hot").await.unwrap().unwrap();
    assert_eq!(rec.reputation.heartbeat_count, 160, "no update was lost");
    a.remove_router("hot").await.unwrap();
}

async fn routers(s: &Arc<dyn Store>) {
    assert_eq!(s.meta_get_or_insert("k", b"first").await.unwrap(), b"first");
    assert_eq!(
        s.meta_get_or_insert("k", b"second").await.unwrap(),
        b"first"
    );
    assert!(s.insert_router(&record("a", "10.0.0.1:1")).await.unwrap());
    assert!(!s.insert_router(&record("a", "10.0.0.9:1")).await.unwrap());
    let mut b = record("b", "10.0.0.2:1");
    assert!(s.insert_router(&b).await.unwrap());
    let (_, v0) = s.router_versioned("b").await.unwrap().unwrap();
    b.descriptor
        .insert("endpoints".into(), json!(["10.0.0.3:1"]));
    assert!(s.replace_router(&b, v0).await.unwrap());
    assert!(
        !s.replace_router(&b, v0).await.unwrap(),
        "a write against a stale version is refused"
    );
    assert!(
        !s.replace_router(&record("nobody", "10.0.0.4:1"), 0)
            .await
            .unwrap(),
        "replace never inserts"
    );
    assert_eq!(s.router_count().await.unwrap(), 2);
    assert_eq!(
        s.router("b").await.unwrap().unwrap().endpoints(),
        vec!["10.0.0.3:1"]
    );
    assert!(
        s.routers_on_hosts(&["10.0.0.2".into()])
            .await
            .unwrap()
            .is_empty()
    );
    let on = s
        .routers_on_hosts(&["10.0.0.3".into(), "10.0.0.1".into()])
        .await
        .unwrap();
    assert_eq!(on.len(), 2);
    s.remove_router("b").await.unwrap();
    assert!(s.router("b").await.unwrap().is_none());
    assert_eq!(s.routers().await.unwrap().len(), 1);
}

async fn races(s: &Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let won_router = s
                .insert_router(&record("racy", &format!("10.9.0.{i}:1")))
                .await
                .unwrap();
            let won_challenge = s.spend_challenge("chal-1", 500.0).await.unwrap();
            (won_router, won_challenge)
        }));
    }
    let mut wins = (0, 0);
    for t in tasks {
        let (r, c) = t.await.unwrap();
        wins.0 += usize::from(r);
        wins.1 += usize::from(c);
    }
    assert_eq!(wins, (1, 1), "exactly one insert and one spend win (W29)");
}

async fn events(s: &Arc<dyn Store>) {
    let ev = |ip: &str, ts: f64, success: bool| RegEvent {
        ip: ip.into(),
        subnet: ournet_seed::policy::subnet_key(ip),
        ts,
        success,
    };
    s.add_reg_event(&ev("192.0.2.1", 10.0, false))
        .await
        .unwrap();
    s.add_reg_event(&ev("192.0.2.1", 20.0, true)).await.unwrap();
    s.add_reg_event(&ev("192.0.2.2", 30.0, true)).await.unwrap();
    let st = s
        .reg_stats("192.0.2.1", "192.0.2.0/24", 0.0, 10)
        .await
        .unwrap();
    assert_eq!((st.ip_events, st.subnet_events), (2, 3));
    assert_eq!(s.successes_since(15.0).await.unwrap(), 2);
    assert_eq!(s.successes_since(25.0).await.unwrap(), 1);
    assert_eq!(
        (st.last_success_from_ip, st.ip_successes_total),
        (Some(20.0), 1)
    );
    let later = s
        .reg_stats("192.0.2.1", "192.0.2.0/24", 25.0, 10)
        .await
        .unwrap();
    assert_eq!(
        (
            later.ip_events,
            later.last_success_from_ip,
            later.ip_successes_total
        ),
        (0, None, 1)
    );
    s.prune(&PruneBefore {
        events: 25.0,
        reports: 0.0,
        challenges: 600.0,
        ip_counts: 25.0,
        addresses: 0,
    })
    .await
    .unwrap();
    let pruned = s
        .reg_stats("192.0.2.2", "192.0.2.0/24", 0.0, 10)
        .await
        .unwrap();
    assert_eq!((pruned.subnet_events, pruned.ip_successes_total), (1, 1));
    assert_eq!(
        s.reg_stats("192.0.2.1", "x", 0.0, 10)
            .await
            .unwrap()
            .ip_successes_total,
        0
    );
    assert!(
        s.spend_challenge("chal-1", 500.0).await.unwrap(),
        "expired spent ids are pruned"
    );
}

async fn reports_flags_revocations(s: &Arc<dyn Store>) {
    let rep = |reporter: &str, sev: f64, at: f64| ReportEntry {
        report_id: format!("r-{reporter}"),
        router_id: "a".into(),
        reporter_id: reporter.into(),
        severity: sev,
        received_at: at,
    };
    s.put_report(&rep("x", 0.2, 10.0), 0.0, 2).await.unwrap();
    let sum = s.put_report(&rep("x", 0.8, 11.0), 0.0, 2).await.unwrap();
    assert_eq!(sum.reporters, 1, "same reporter replaces");
    s.put_report(&rep("y", 0.4, 12.0), 0.0, 2).await.unwrap();
    let sum = s.put_report(&rep("z", 0.6, 13.0), 0.0, 2).await.unwrap();
    assert_eq!(sum.reporters, 2, "capped at max, newest kept");
    assert!((sum.mean_severity - 0.5).abs() < 1e-9);
    let sum = s.put_report(&rep("w", 1.0, 100.0), 50.0, 10).await.unwrap();
    assert_eq!(sum.reporters, 1, "window drops old reports");
    assert_eq!(s.reported_router_count().await.unwrap(), 1);
    assert!(s.flag_router("a", 1.0).await.unwrap());
    assert!(!s.flag_router("a", 2.0).await.unwrap());
    assert_eq!(s.flagged().await.unwrap(), vec!["a".to_owned()]);
    s.put_revocation("seed-1", &json!({"seed_id": "seed-1", "effective_at": 5.0}))
        .await
        .unwrap();
    s.put_revocation("seed-1", &json!({"seed_id": "seed-1", "effective_at": 4.0}))
        .await
        .unwrap();
    assert_eq!(
        s.revocation("seed-1").await.unwrap().unwrap()["effective_at"],
        4.0
    );
    assert_eq!(s.revocations().await.unwrap().len(), 1);
    assert!(s.revocation("nope").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_memory() {
    let s: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    suite(s.clone()).await;
    concurrent_updates(s.clone(), s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_on_disk_survives_reopen() {
    let dir = std::env::temp_dir().join(format!("ournet-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    suite(Arc::new(SqliteStore::open_dir(&dir).unwrap())).await;
    let reopened = SqliteStore::open_dir(&dir).unwrap();
    assert_eq!(reopened.router_count().await.unwrap(), 2);
    assert_eq!(
        reopened.meta_get_or_insert("k", b"other").await.unwrap(),
        b"first"
    );
    assert!(!reopened.spend_challenge("chal-1", 500.0).await.unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    let cluster = pg::PgCluster::start("suite");
    let url = cluster.create_db("suite");
    suite(Arc::new(PgStore::connect(&url).await.unwrap())).await;
    let second = PgStore::connect(&url).await.unwrap();
    assert_eq!(
        second.router_count().await.unwrap(),
        2,
        "a second connection sees the same state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_updates_through_two_handles_all_land() {
    let cluster = pg::PgCluster::start("rmw");
    let url = cluster.create_db("rmw");
    let a: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.unwrap());
    concurrent_updates(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_from_before_router_versions_opens_and_updates() {
    let dir = std::env::temp_dir().join(format!("ournet-store-old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let old = rusqlite::Connection::open(dir.join("seed.sqlite3")).unwrap();
    old.execute_batch(
        "CREATE TABLE routers (router_id TEXT PRIMARY KEY, record TEXT NOT NULL);
         CREATE TABLE reg_events (ip TEXT NOT NULL, subnet TEXT NOT NULL, ts REAL NOT NULL,
             success INTEGER NOT NULL);
         CREATE INDEX reg_events_ip ON reg_events (ip, ts);",
    )
    .unwrap();
    let text = serde_json::to_string(&record("old", "10.5.0.1:1")).unwrap();
    old.execute("INSERT INTO routers VALUES ('old', ?1)", [text])
        .unwrap();
    drop(old);
    let s = SqliteStore::open_dir(&dir).unwrap();
    let (mut rec, v) = s.router_versioned("old").await.unwrap().unwrap();
    assert_eq!(v, 0);
    rec.health.load_pct = 5.0;
    assert!(s.replace_router(&rec, v).await.unwrap());
    assert_eq!(s.router("old").await.unwrap().unwrap().health.load_pct, 5.0);
    std::fs::remove_dir_all(&dir).unwrap();
}
