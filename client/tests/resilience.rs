//! The node client when relays die and under PARANOID pacing, against real relay processes.
#![allow(clippy::unwrap_used, reason = "test code")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ournet_client::directory::{DirectoryError, Preferences, RelayDirectory, RelayInfo};
use ournet_client::{NodeClient, NodeConfig, SendOptions, SendOutcome, create_node_client};
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_proto::privacy::{CoverTrafficConfig, PRIVACY_PARANOID};
use ournet_tests::client::rng;
use ournet_tests::relay::RelayProc;

mod support;
use support::{keys, node_config, relay_info, relays, within};

/// A directory the test can drop relays from, as a seed stops listing a dead relay.
#[derive(Debug, Default)]
struct LiveDirectory(Mutex<Vec<RelayInfo>>);

#[async_trait]
impl RelayDirectory for LiveDirectory {
    async fn relays(
        &self,
        count: usize,
        prefs: &Preferences,
    ) -> Result<Vec<RelayInfo>, DirectoryError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|r| !prefs.exclude.contains(&r.router_id))
            .take(count)
            .cloned()
            .collect())
    }
}

fn directory(relays: &[RelayProc]) -> Arc<LiveDirectory> {
    let list = relays.iter().map(relay_info).collect();
    Arc::new(LiveDirectory(Mutex::new(list)))
}

fn config(dir: Arc<LiveDirectory>, homes: usize) -> NodeConfig {
    let mut c = node_config(&keys(), dir, homes);
    c.max_retries = 6;
    c.timeouts.home_cooldown = Duration::from_secs(600);
    c
}

async fn started(config: NodeConfig) -> NodeClient {
    let node = create_node_client(config).unwrap();
    within("start", node.start()).await.unwrap();
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_home_is_replaced_and_sends_retry_over_the_other_home() {
    let mut rs = relays(51, 6);
    let dir = directory(&rs);
    let bob = started(config(dir.clone(), 2)).await;
    let old_addr = bob.address().unwrap();
    let dead = old_addr.homes[0].identity;
    // Alice's own home is never the relay about to die: had it been, her failover would mark
    // it cooling down and her first attempt would skip it, so the test would not see the
    // retry it is about (a race that failed CI once).
    dir.0.lock().unwrap().retain(|r| r.hop.identity != dead);
    let alice = started(config(dir.clone(), 1)).await;
    let i = rs.iter().position(|r| r.info.identity == dead).unwrap();
    drop(rs.remove(i));

    // The old address still lists the dead home first: the first attempt fails and a retry
    // goes to the other home.
    let id = alice
        .send_message(&old_addr, b"around the dead relay", SendOptions::default())
        .await
        .unwrap();
    let got = within("a message", bob.recv()).await.unwrap();
    assert_eq!(got.content, b"around the dead relay");
    let outcome = within("outcome", alice.wait_outcome(id)).await.unwrap();
    let SendOutcome::Acked { attempts, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(attempts >= 2, "{attempts}");
    assert!(alice.get_stats().retries >= 1);

    within("failover", async {
        loop {
            let homes = bob.homes();
            let addr = bob.address().unwrap();
            if homes.len() == 2 && addr.homes.iter().all(|h| h.identity != dead) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(bob.get_stats().failovers >= 1);
    let new_addr = bob.address().unwrap();
    assert_ne!(new_addr, old_addr, "re-signed without the dead home");
    let id = alice
        .send_message(&new_addr, b"new address", SendOptions::default())
        .await
        .unwrap();
    assert_eq!(
        within("a message", bob.recv()).await.unwrap().content,
        b"new address"
    );
    assert!(matches!(
        within("outcome", alice.wait_outcome(id)).await.unwrap(),
        SendOutcome::Acked { .. }
    ));
    assert_eq!(bob.get_stats().received, 2);
    alice.stop().await;
    bob.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paranoid_keeps_sending_cells_while_the_app_is_silent_and_still_delivers() {
    let rs = relays(61, 4);
    let dir = directory(&rs);
    // PARANOID with a fast constant rate (25 ms a cell) and short batches, so the test is
    // quick; the shape (one cell per tick, real or padding) is the preset's.
    let mut paranoid = PRIVACY_PARANOID;
    paranoid.constant_rate.messages_per_minute = 600.0;
    paranoid.batching.batch_interval_ms = 200;
    paranoid.jitter.min_delay_ms = 0;
    paranoid.jitter.max_delay_ms = 100;
    let mut c = config(dir.clone(), 1);
    c.privacy_config = Some(paranoid);
    let alice = started(c).await;
    let home = alice.homes()[0].router_id.clone();
    let home = rs
        .iter()
        .find(|r| r.info.identity.to_hex() == home)
        .unwrap();

    // The app sends nothing; the home relay keeps receiving cells.
    let before = home.metric("ournet_cells_in_total");
    within("constant-rate cells", async {
        while home.metric("ournet_cells_in_total") < before + 40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    let bob = started(config(dir, 1)).await;
    let id = alice
        .send_message(&bob.address().unwrap(), b"paced", SendOptions::default())
        .await
        .unwrap();
    assert_eq!(
        within("a message", bob.recv()).await.unwrap().content,
        b"paced"
    );
    assert!(matches!(
        within("outcome", alice.wait_outcome(id)).await.unwrap(),
        SendOutcome::Acked { .. }
    ));
    assert_eq!(
        alice.privacy_level(),
        ournet_proto::privacy::PrivacyLevel::Paranoid
    );
    alice
        .set_privacy_level(ournet_proto::privacy::PrivacyLevel::Low)
        .await;
    assert_eq!(
        alice.privacy_level(),
        ournet_proto::privacy::PrivacyLevel::Low
    );
    let id = alice
        .send_message(&bob.address().unwrap(), b"at once", SendOptions::default())
        .await
        .unwrap();
    assert_eq!(
        within("a message", bob.recv()).await.unwrap().content,
        b"at once"
    );
    assert!(matches!(
        within("outcome", alice.wait_outcome(id)).await.unwrap(),
        SendOutcome::Acked { .. }
    ));
    alice.stop().await;
    bob.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_node_sends_cover_cells_on_its_homes() {
    let rs = relays(71, 2);
    let mut c = config(directory(&rs), 1);
    c.cover = CoverTrafficConfig {
        enabled: true,
        rate_per_minute: 600.0,
        idle_threshold_seconds: 0.0,
        randomize_timing: false,
        ..CoverTrafficConfig::DEFAULT
    };
    let node = started(c).await;
    let home = node.homes()[0].router_id.clone();
    let home = rs
        .iter()
        .find(|r| r.info.identity.to_hex() == home)
        .unwrap();
    let before = home.metric("ournet_cells_in_total");
    within("cover cells", async {
        while node.get_stats().cover_cells < 5 || home.metric("ournet_cells_in_total") < before + 5
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_to_an_unreachable_node_fails_after_its_bounded_retries() {
    let mut rs = relays(81, 3);
    let dead = rs.pop().unwrap();
    let mut r = rng();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let bob_addr = ournet_proto::address::NodeAddress::sign(
        &IdentityKeypair::generate(&mut r),
        EncryptionKeypair::generate(&mut r).public(),
        vec![dead.info.hop()],
        now - 1,
        now + 3600,
    )
    .unwrap();
    drop(dead);
    let alice = started(config(directory(&rs), 1)).await;
    let id = alice
        .send_message(
            &bob_addr,
            b"nobody home",
            SendOptions::default().with_max_retries(1),
        )
        .await
        .unwrap();
    let outcome = within("outcome", alice.wait_outcome(id)).await.unwrap();
    assert!(
        matches!(outcome, SendOutcome::Failed { attempts: 2, .. }),
        "{outcome:?}"
    );
    let s = alice.get_stats();
    assert_eq!((s.sent, s.failed, s.retries, s.acked), (1, 1, 1, 0));
    // Each attempt's middle relay reported the dead home with DESTROY connect-failed, and the
    // node blamed the home, not the relay that reported it.
    assert_eq!(s.unreachable_hops, 2);
    assert_eq!(alice.pending_sends(), 0, "a failed send is not resumed");
    alice.stop().await;
}
