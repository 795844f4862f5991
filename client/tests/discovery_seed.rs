#![allow(clippy::unwrap_used, reason = "test code")]
//! The discovery client against a real `ournet-seed` process and three real relays that
//! register with it (PoW, signed descriptors, link-handshake probes): `discover_routers(3)`
//! returns three verified relays, a circuit is built through them, and a node publishes then
//! looks up its signed address. A pinned seed that is down comes first and is skipped. A
//! node client on that discovery client publishes its own address when it starts.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ournet_client::directory::{Preferences, RelayDirectory};
use ournet_client::discovery::{DiscoveryConfig, PinnedSeed, create_discovery_client};
use ournet_client::{NodeConfig, create_node_client};
use ournet_proto::address::NodeAddress;
use ournet_proto::circuit::PathHop;
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_tests::client::{Circ, rng};
use ournet_tests::relay::{RelayProc, backends};
use ournet_tests::seed::{SeedProc, TEST_SEED_CONFIG};

/// Turns a hang into a failure; nothing asserts how long anything took.
const WAIT: Duration = Duration::from_secs(120);

#[test]
fn discovers_three_registered_relays_builds_a_circuit_and_publishes_an_address() {
    let backend = backends().into_iter().next().unwrap();
    let seed = SeedProc::start(TEST_SEED_CONFIG);
    let url = seed.url();
    let relays: Vec<RelayProc> = (1..4)
        .map(|i| RelayProc::start_on(&backend, &format!("127.{i}.0.1:0"), &["--seed-url", &url]))
        .collect();
    // A closed port, pinned first: the client must fall back to the live seed.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_url = format!("http://{}", down.local_addr().unwrap());
    drop(down);
    let cfg = DiscoveryConfig {
        seeds: vec![
            PinnedSeed {
                url: down_url,
                key: IdentityKeypair::generate(&mut rng()).public(),
            },
            PinnedSeed {
                url,
                key: seed.public_key(),
            },
        ],
        cache_ttl: Duration::ZERO,
        request_timeout: Duration::from_secs(30),
        ..DiscoveryConfig::default()
    };
    let client = Arc::new(create_discovery_client(cfg).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();

    let want: Vec<PathHop> = relays.iter().map(|r| r.info.hop()).collect();
    let deadline = Instant::now() + WAIT;
    let found = loop {
        let got = rt.block_on(client.relays(3, &Preferences::default()));
        if let Ok(got) = got
            && got.len() == 3
            && want.iter().all(|h| got.iter().any(|r| r.hop == *h))
        {
            break got;
        }
        assert!(Instant::now() < deadline, "relays never all discoverable");
        std::thread::sleep(Duration::from_millis(200));
    };
    let stats = client.get_stats();
    assert!(
        stats.seed_successes >= 1 && stats.seed_failures >= 1,
        "{stats:?}"
    );
    assert_eq!(stats.signature_failures, 0);
    let report = client.get_seed_health_report();
    assert!(report[1].health.success_count >= 1 && report[0].health.success_count == 0);

    // The discovered hops are enough to build a circuit.
    let path: Vec<PathHop> = found.iter().map(|r| r.hop.clone()).collect();
    Circ::build(path.clone()).unwrap();

    // A node publishes its address (homed on a discovered relay); a sender finds it.
    let mut r = rng();
    let node = IdentityKeypair::generate(&mut r);
    let enc = EncryptionKeypair::generate(&mut r).public();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let addr = NodeAddress::sign(&node, enc, vec![path[2].clone()], now, now + 3600).unwrap();
    assert_eq!(rt.block_on(client.publish_address(&addr)).unwrap(), 1);
    let looked_up = rt.block_on(client.lookup_address(&node.public())).unwrap();
    assert_eq!(looked_up, Some(addr));
    let stranger = IdentityKeypair::generate(&mut r).public();
    assert_eq!(rt.block_on(client.lookup_address(&stranger)).unwrap(), None);

    // A node on this directory publishes the address it signs over its homes.
    let mut c = NodeConfig::new(
        IdentityKeypair::generate(&mut r),
        EncryptionKeypair::generate(&mut r),
        client.clone(),
    );
    c.target_connections = 2;
    c.min_connections = 1;
    let node = create_node_client(c).unwrap();
    rt.block_on(node.start()).unwrap();
    let own = node.address().unwrap();
    let looked_up = rt
        .block_on(client.lookup_address(&node.identity()))
        .unwrap();
    assert_eq!(looked_up, Some(own.clone()));
    // Node clients look recipients up through the directory trait: the same answer.
    let through_trait = rt.block_on(RelayDirectory::lookup_address(
        client.as_ref(),
        &node.identity(),
    ));
    assert_eq!(through_trait.unwrap(), Some(own));
    rt.block_on(node.stop());
}
