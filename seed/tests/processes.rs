#![allow(clippy::unwrap_used, reason = "test code")]
//! The real binary: restart without loss on the embedded store, and two replicas sharing one
//! PostgreSQL database.

#[path = "support/pg.rs"]
mod pg;
#[path = "support/process.rs"]
mod process;

use process::{SeedProcess, router, temp_dir};

#[tokio::test]
async fn embedded_store_survives_restart_and_keeps_its_key() {
    let dir = temp_dir("restart");
    let a = SeedProcess::start(&dir, &[]);
    let r = router(1, "192.0.2.10:8471");
    let (c, d) = a.challenge().await;
    let (st, v) = a.register_with(&r, &c, d).await;
    assert_eq!(st, 200, "{v}");
    let (_, first) = a.call("POST", "/discover", None).await;
    assert!(a.terminate().success(), "clean exit on SIGTERM");
    let key_file = dir.join("seed_key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let b = SeedProcess::start(&dir, &[]);
    assert_eq!(b.discovered_ids().await, vec![r.router_id()]);
    let (_, second) = b.call("POST", "/discover", None).await;
    assert_eq!(
        first["seed_key"], second["seed_key"],
        "same seed key after restart"
    );
    // The challenge spent before the restart stays spent.
    let (st, v) = b.register_with(&router(2, "192.0.2.11:8471"), &c, d).await;
    assert_eq!((st, v["reason"].as_str()), (400, Some("challenge_reused")));
    drop(b);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn two_replicas_share_registrations_and_challenge_use_through_postgres() {
    let cluster = pg::PgCluster::start("replicas");
    let url = cluster.create_db("seed");
    let (da, db) = (temp_dir("replica-a"), temp_dir("replica-b"));
    let a = SeedProcess::start(&da, &["--database-url", &url]);
    let b = SeedProcess::start(&db, &["--database-url", &url]);
    let r = router(3, "192.0.2.20:8471");
    let (c, d) = a.challenge().await;
    let (st, v) = a.register_with(&r, &c, d).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        b.discovered_ids().await,
        vec![r.router_id()],
        "registered at A, discovered at B"
    );
    let (st, v) = b.register_with(&router(4, "192.0.2.21:8471"), &c, d).await;
    assert_eq!(
        (st, v["reason"].as_str()),
        (400, Some("challenge_reused")),
        "spent at A, refused at B"
    );
    let (c2, d2) = b.challenge().await;
    let (st, v) = a
        .register_with(&router(5, "198.51.100.22:8471"), &c2, d2)
        .await;
    assert_eq!(st, 200, "a challenge issued by B is valid at A: {v}");
    let (st, v) = a
        .register_with(&router(6, "192.0.2.23:8471"), &c2, d2)
        .await;
    assert_eq!((st, v["reason"].as_str()), (400, Some("challenge_reused")));
    assert_eq!(a.discovered_ids().await.len(), 2);
    drop((a, b));
    for d in [da, db] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = temp_dir("slowloris");
    let seed = SeedProcess::start_with(&dir, &[], "request_timeout_seconds = 1.0");
    let mut s = tokio::net::TcpStream::connect(&seed.addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // The test timeout only turns a hang into a failure; nothing asserts how long it took.
    let read = tokio::time::timeout(std::time::Duration::from_secs(60), s.read_to_end(&mut buf))
        .await
        .expect("the seed kept a half-sent request open");
    assert!(read.is_ok() || buf.is_empty());
    let (st, v) = seed.call("GET", "/health", None).await;
    assert_eq!(
        (st, v["status"].as_str()),
        (200, Some("ok")),
        "other clients are still served"
    );
    drop(seed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn peers_gossip_signed_routers_and_node_addresses_to_each_other() {
    use ournet_proto::keys::IdentityKeypair;
    let (da, db) = (temp_dir("gossip-a"), temp_dir("gossip-b"));
    std::fs::write(da.join("seed_key"), [11u8; 32]).unwrap();
    std::fs::write(db.join("seed_key"), [12u8; 32]).unwrap();
    let key_a = IdentityKeypair::from_secret_bytes(&[11u8; 32])
        .public()
        .to_hex();
    let key_b = IdentityKeypair::from_secret_bytes(&[12u8; 32])
        .public()
        .to_hex();
    // B starts first with A as a peer at a placeholder; A knows B's real address.
    let b = SeedProcess::start_with(
        &db,
        &[],
        &format!(
            "gossip_interval_seconds = 1.0\n[[peer_seeds]]\nurl = \"127.0.0.1:9\"\nkey = \"{key_a}\"\n"
        ),
    );
    let a = SeedProcess::start_with(
        &da,
        &[],
        &format!(
            "gossip_interval_seconds = 1.0\n[[peer_seeds]]\nurl = \"http://{}\"\nkey = \"{key_b}\"\n",
            b.addr
        ),
    );
    let r = router(7, "192.0.2.70:8471");
    let (c, d) = a.challenge().await;
    assert_eq!(a.register_with(&r, &c, d).await.0, 200);
    // Poll until A's gossip loop has pushed the router to B. The timeout only turns a hang
    // into a failure; nothing asserts how long it took.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while b.discovered_ids().await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "router never reached B by gossip"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(b.discovered_ids().await, vec![r.router_id()]);

    // A node address published only to B reaches A too (in B's answer to A's exchange).
    let node = IdentityKeypair::from_secret_bytes(&[13u8; 32]);
    let secs = process::now() as u64;
    let home = ournet_proto::circuit::PathHop {
        identity: IdentityKeypair::from_secret_bytes(&[14u8; 32]).public(),
        onion_key: ournet_proto::keys::EncryptionKeypair::from_secret_bytes(&[15; 32]).public(),
        link_key: ournet_proto::keys::EncryptionKeypair::from_secret_bytes(&[16; 32]).public(),
        addr: "192.0.2.71:8471".parse().unwrap(),
    };
    let enc = ournet_proto::keys::EncryptionKeypair::from_secret_bytes(&[17; 32]).public();
    let addr = ournet_proto::address::NodeAddress::sign(&node, enc, vec![home], secs, secs + 600)
        .unwrap()
        .to_string();
    let timeout = std::time::Duration::from_secs(30);
    let (st, _) =
        ournet_seed::probe::request(&b.addr, "POST", "/address", Some(addr.as_bytes()), timeout)
            .await
            .unwrap();
    assert_eq!(st, 200);
    let path = format!("/address/{}", node.public().to_hex());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (st, v) = a.call("GET", &path, None).await;
        if st == 200 {
            assert_eq!(v["address"].as_str(), Some(addr.as_str()));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the address never reached A by gossip"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    drop((a, b));
    for d in [da, db] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
