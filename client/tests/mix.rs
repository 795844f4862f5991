//! Mixing (W36) against real relay processes (epoll backend): 4- and 5-hop circuits deliver
//! messages exactly once with verified ACKs, loop cover messages come back, are counted and
//! never reach `recv()`, loops are not journalled and stop with the node, a network too small
//! for the drawn length falls back to a shorter path, and late loops count as lost.
//!
//! The first test prints the send-to-ACK latency of pooled 3-hop circuits (mixing off), fresh
//! 3-hop mix circuits and fresh 4-5-hop mix circuits, side by side from one run; it asserts
//! nothing about them (speed is never a test).
#![allow(clippy::unwrap_used, reason = "test code")]
#![allow(
    clippy::print_stdout,
    reason = "the first test prints its latency figures"
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ournet_client::directory::StaticDirectory;
use ournet_client::{
    ClientError, MessageId, NodeClient, NodeConfig, SendOptions, SendOutcome, create_node_client,
};
use ournet_proto::address::NodeAddress;
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_proto::privacy::{
    LoopCoverConfig, MixNetworkConfig, PRIVACY_LOW, PrivacyConfigError, PrivacyLevel,
    TrafficAnalysisMitigationConfig,
};
use ournet_tests::client::rng;
use ournet_tests::relay::RelayProc;

mod support;
use support::{HANG, relay_info, relays, state_path, until, within};

/// Messages per latency variant.
const SENDS: usize = 10;
/// Most rounds of [`SENDS`] mix messages sent until both path lengths of 4..=5 were drawn.
const MIX_ROUNDS: usize = 5;

fn directory(relays: &[RelayProc]) -> Arc<StaticDirectory> {
    let list = relays.iter().map(relay_info).collect();
    Arc::new(StaticDirectory(list))
}

/// LOW with mixing on over `min_hops..=max_hops`.
fn mixing(min_hops: u32, max_hops: u32, loops: bool) -> TrafficAnalysisMitigationConfig {
    let mut c = PRIVACY_LOW;
    c.mix_network = MixNetworkConfig {
        enabled: true,
        min_hops,
        max_hops,
        loop_cover_traffic: loops,
        ..MixNetworkConfig::DEFAULT
    };
    c
}

fn config(dir: Arc<StaticDirectory>, homes: usize) -> NodeConfig {
    let mut r = rng();
    let mut c = NodeConfig::new(
        IdentityKeypair::generate(&mut r),
        EncryptionKeypair::generate(&mut r),
        dir,
    );
    c.target_connections = homes;
    c.min_connections = 1;
    c.loop_cover = LoopCoverConfig {
        mean_interval: Duration::from_millis(300),
        return_timeout: HANG,
        ..LoopCoverConfig::DEFAULT
    };
    c
}

async fn started(config: NodeConfig) -> NodeClient {
    let node = create_node_client(config).unwrap();
    within("start", node.start()).await.unwrap();
    node
}

/// Sends [`SENDS`] messages one after the other, each to its ACK; returns their ids and the
/// latencies in milliseconds, sorted.
async fn send_acked(from: &NodeClient, to: &NodeAddress, tag: &str) -> (Vec<MessageId>, Vec<f64>) {
    let mut ids = Vec::new();
    let mut ms = Vec::new();
    for i in 0..SENDS {
        let content = format!("{tag} {i}");
        let id = from
            .send_message(to, content.as_bytes(), SendOptions::default())
            .await
            .unwrap();
        match within("outcome", from.wait_outcome(id)).await.unwrap() {
            SendOutcome::Acked { latency, .. } => ms.push(latency.as_secs_f64() * 1e3),
            other => panic!("{tag} {i}: {other:?}"),
        }
        ids.push(id);
    }
    ms.sort_by(f64::total_cmp);
    (ids, ms)
}

fn report(what: &str, ms: &[f64]) {
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "ack latency, {what}: n={} p50={:.1} ms p90={:.1} ms max={:.1} ms",
        ms.len(),
        at(0.5),
        at(0.9),
        at(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mix_paths_deliver_once_with_acks_and_loops_come_back_unseen() {
    let rs = relays(71, 6);
    let dir = directory(&rs);
    let (_dir, path) = state_path("alice");
    let mut a = config(dir.clone(), 2);
    a.state_path = Some(path.clone());
    a.privacy_config = Some(mixing(4, 5, false));
    let alice = started(a).await;
    let bob = started(config(dir, 2)).await;
    let to_bob = bob.address().unwrap();

    // 4- and 5-hop circuits, one per message, each message ACKed. Each length is drawn
    // uniformly from 4..=5, so ten sends all draw the same one once in 512 runs: more rounds
    // follow until both were drawn (all five rounds alike: once in 2^49 runs).
    let (mut mix_ids, mut mix_ms) = send_acked(&alice, &to_bob, "mix").await;
    for _ in 1..MIX_ROUNDS {
        let s = alice.get_stats();
        if s.paths_by_hops[4] > 0 && s.paths_by_hops[5] > 0 {
            break;
        }
        let (ids, ms) = send_acked(&alice, &to_bob, "mix").await;
        mix_ids.extend(ids);
        mix_ms.extend(ms);
    }
    mix_ms.sort_by(f64::total_cmp);
    let s = alice.get_stats();
    assert_eq!(s.acked, mix_ids.len() as u64);
    assert!(s.paths_by_hops[4] > 0 && s.paths_by_hops[5] > 0, "{s:?}");
    assert_eq!(
        s.paths_by_hops[..4],
        [0; 4],
        "never shorter than min_hops: {s:?}"
    );
    assert_eq!(
        s.paths_by_hops[4] + s.paths_by_hops[5],
        mix_ids.len() as u64 + s.retries
    );
    assert_eq!(s.short_paths, 0);

    // Fresh 3-hop mix circuits, then the default pooled 3-hop circuits: the baselines.
    alice.set_privacy_config(mixing(3, 3, false)).await.unwrap();
    let (fresh_ids, fresh_ms) = send_acked(&alice, &to_bob, "fresh").await;
    alice.set_privacy_config(PRIVACY_LOW).await.unwrap();
    let (pooled_ids, pooled_ms) = send_acked(&alice, &to_bob, "pooled").await;
    assert!(alice.get_stats().paths_by_hops[3] > SENDS as u64);
    report("3 hops, pooled circuit (mixing off)", &pooled_ms);
    report("3 hops, fresh circuit per message (mix 3..=3)", &fresh_ms);
    report("4-5 hops, fresh circuit per message (mix 4..=5)", &mix_ms);

    // Bob got every message exactly once.
    let total = mix_ids.len() + fresh_ids.len() + pooled_ids.len();
    let mut seen: HashMap<MessageId, usize> = HashMap::new();
    for _ in 0..total {
        let m = within("a message", bob.recv()).await.unwrap();
        assert_eq!(m.sender, alice.identity());
        *seen.entry(m.message_id).or_default() += 1;
    }
    for id in mix_ids.iter().chain(&fresh_ids).chain(&pooled_ids) {
        assert_eq!(seen.get(id), Some(&1), "{id} handed over once");
    }
    assert_eq!(bob.get_stats().received, total as u64);

    // Loops: sent on 4-5-hop circuits, back, counted, never handed to the app.
    alice.set_privacy_config(mixing(4, 5, true)).await.unwrap();
    until("five loops back", || alice.get_stats().loops_returned >= 5).await;
    let s = alice.get_stats();
    assert!(s.loops_sent >= s.loops_returned, "{s:?}");
    assert_eq!(s.loops_lost, 0, "{s:?}");
    assert_eq!(s.received, 0, "a loop is not a received message");
    assert_eq!(s.rejected, 0);
    assert_eq!(s.sent, total as u64, "loops are not sends");
    assert_eq!(alice.pending_sends(), 0, "loops are not journalled");
    let nothing = tokio::time::timeout(Duration::from_secs(1), alice.recv()).await;
    assert!(nothing.is_err(), "recv() yields no loop: {nothing:?}");

    // stop() ends the loops: nothing more is sent.
    alice.stop().await;
    let after_stop = alice.get_stats().loops_sent;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(alice.get_stats().loops_sent, after_stop);
    bob.stop().await;
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_network_shortens_mix_paths_and_late_loops_are_lost_not_delivered() {
    // Four relays: with one of them the home, a 5-hop draw can only get 4 hops.
    let rs = relays(81, 4);
    let mut c = config(directory(&rs), 1);
    c.privacy_config = Some(mixing(3, 5, true));
    // No loop can come back within zero time: each one is counted lost when the loop task
    // next looks (woken as it is sent), unless its return beats that wake-up; so losses
    // pile up whatever the machine's speed (a 1 ms timeout let fast loops win every race).
    c.loop_cover.return_timeout = Duration::ZERO;
    let carol = started(c).await;
    until("short paths and lost loops", || {
        let s = carol.get_stats();
        s.short_paths >= 1 && s.loops_lost >= 4
    })
    .await;
    let s = carol.get_stats();
    assert_eq!(s.paths_by_hops[5], 0, "{s:?}");
    assert!(s.paths_by_hops[4] >= s.short_paths, "{s:?}");
    // A loop can beat the loop task's wake-up; every other one is lost, none surfaces.
    assert!(s.loops_returned + s.loops_lost <= s.loops_sent, "{s:?}");
    assert_eq!(s.received, 0, "late loops are still recognised");
    let nothing = tokio::time::timeout(Duration::from_secs(1), carol.recv()).await;
    assert!(nothing.is_err(), "recv() yields no loop: {nothing:?}");
    carol.stop().await;
}

#[test]
fn a_mix_config_the_onion_cannot_carry_is_refused() {
    let dir = Arc::new(StaticDirectory(Vec::new()));
    let mut c = config(dir.clone(), 1);
    c.privacy_config = Some(mixing(3, 6, true));
    let err = create_node_client(c).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Privacy(PrivacyConfigError::MixHopsAboveOnionLimit { max_hops: 6 })
        ),
        "{err}"
    );
    let mut c = config(dir, 1);
    let mut provider = mixing(3, 5, true);
    provider.mix_network.provider_url = Some("http://provider.example".into());
    c.privacy_config = Some(provider);
    let err = create_node_client(c).unwrap_err();
    assert!(
        err.to_string().contains("home relays are its providers"),
        "{err}"
    );
}

#[tokio::test]
async fn a_mix_config_the_onion_cannot_carry_is_refused_at_run_time_too() {
    let node = create_node_client(config(Arc::new(StaticDirectory(Vec::new())), 1)).unwrap();
    node.set_privacy_level(PrivacyLevel::Paranoid).await;
    let err = node
        .set_privacy_config(mixing(3, 6, true))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Privacy(PrivacyConfigError::MixHopsAboveOnionLimit { max_hops: 6 })
        ),
        "{err}"
    );
    // The refused config is at level LOW: the node keeps PARANOID.
    assert_eq!(
        node.privacy_level(),
        PrivacyLevel::Paranoid,
        "the old config stays"
    );
}
