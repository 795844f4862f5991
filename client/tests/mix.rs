//! Mixing (W36) against real relay processes (epoll backend): 4- and 5-hop circuits deliver
//! messages exactly once with verified ACKs, loop cover messages come back, are counted and
//! never reach `recv()`, loops are not journalled and stop with the node, a network too small
//! for the drawn length falls back to a shorter path, and late loops count as lost.
//!
//! Loop-loss alarms: a home that stops handing the node its messages (the test plays the
//! attacker by HOME_AUTHing a twin of the node at that home with the node's own key, so the
//! relay delivers the node's traffic to the twin, while the node's own home circuit stays up
//! and answers PINGs) is left once, by rotation, and messages then arrive exactly once. A
//! loop sent before a restart and handed back after it (the twin holds it and replays it) is
//! counted as returned after the restart.
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
use ournet_proto::circuit::{ClientEvent, PathHop};
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_proto::privacy::{
    LoopCoverConfig, MixNetworkConfig, PRIVACY_LOW, PrivacyConfigError, PrivacyLevel,
    TrafficAnalysisMitigationConfig,
};
use ournet_proto::relay_msg::DeliveryStatus;
use ournet_tests::client::{Circ, Link};
use ournet_tests::relay::RelayProc;

mod support;
use support::{
    HANG, keys, node_config, receive_each_once, relay_info, relays, state_path, until, within,
};

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
    let mut c = node_config(&keys(), dir, homes);
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

/// A captured delivery: the relay's message id and the sealed envelope.
type Captured = ([u8; 16], Vec<u8>);

/// The hop of the relay with router id `router_id`.
fn hop_of(rs: &[RelayProc], router_id: &str) -> PathHop {
    rs.iter()
        .find(|r| r.info.identity.to_hex() == router_id)
        .unwrap()
        .info
        .hop()
}

/// A copy of `id` (the test needs the node's key for the twin; keys are not `Clone`).
fn copy(id: &IdentityKeypair) -> IdentityKeypair {
    IdentityKeypair::from_secret_bytes(&id.secret_bytes())
}

/// HOME_AUTHs a twin of `who` at `home`, so the relay hands `who`'s messages to the twin
/// instead of to the node, whose own home circuit stays up. The twin takes up to `keep`
/// messages (never ACKing them) in a thread, which ends once it has them or the relay is
/// quiet for the read timeout. Returns once the twin is registered.
async fn hijack(
    home: PathHop,
    who: IdentityKeypair,
    keep: usize,
) -> tokio::task::JoinHandle<Vec<Captured>> {
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let twin = tokio::task::spawn_blocking(move || {
        let link = Link::connect(&home);
        let (mut circ, _) = Circ::home(link, home, &who).unwrap();
        let _ = ready_tx.send(());
        let mut got = Vec::new();
        while got.len() < keep {
            match circ.wait_for(|e| matches!(e, ClientEvent::Message { .. })) {
                Ok(ClientEvent::Message {
                    message_id,
                    envelope,
                }) => got.push((message_id, envelope)),
                _ => break,
            }
        }
        got
    });
    within("the twin's HOME_AUTH", ready).await.unwrap();
    twin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_that_drops_loops_is_left_once_and_messages_then_arrive_once() {
    let rs = relays(101, 6);
    let dir = directory(&rs);
    let mut a = config(dir.clone(), 1);
    a.privacy_config = Some(mixing(3, 3, true));
    // Short enough for the test to see losses; a slow honest loop lost later on a loaded
    // machine can raise another alarm, but the reaction gap (10 min) holds its reaction.
    a.loop_cover.return_timeout = Duration::from_secs(5);
    let twin_key = copy(&a.identity);
    let alice = started(a).await;
    let home = alice.homes()[0].router_id.clone();
    let twin = hijack(hop_of(&rs, &home), twin_key, usize::MAX).await;

    until("an alarm rotation", || {
        alice.get_stats().loop_alarm_rotations >= 1
    })
    .await;
    let homes: Vec<String> = alice.homes().into_iter().map(|h| h.router_id).collect();
    assert!(
        !homes.contains(&home),
        "left the home that lost the loops: {homes:?}"
    );
    assert_eq!(homes.len(), 1, "make-before-break kept one home");
    let s = alice.get_stats();
    assert!(s.loop_alarms >= 1 && s.rotations >= 1, "{s:?}");
    assert_eq!(s.failovers, 0, "the old home never died: {s:?}");

    // Loops come back through the new home, and messages arrive exactly once.
    let returned = s.loops_returned;
    until("loops back through the new home", || {
        alice.get_stats().loops_returned >= returned + 3
    })
    .await;
    let bob = started(config(dir, 1)).await;
    let to_alice = alice.address().unwrap();
    let mut ids = Vec::new();
    for i in 0..SENDS {
        let id = bob
            .send_message(
                &to_alice,
                format!("m{i}").as_bytes(),
                SendOptions::default(),
            )
            .await
            .unwrap();
        ids.push(id);
    }
    for id in &ids {
        let outcome = within("outcome", bob.wait_outcome(*id)).await.unwrap();
        assert!(matches!(outcome, SendOutcome::Acked { .. }), "{outcome:?}");
    }
    receive_each_once(&alice, bob.identity(), &ids).await;
    let s = alice.get_stats();
    assert_eq!(s.received, SENDS as u64);
    assert_eq!(s.duplicates, 0);
    assert_eq!(s.loop_alarm_rotations, 1, "one attack, one rotation: {s:?}");
    alice.stop().await;
    bob.stop().await;
    drop(rs); // the twin's link closes with its relay
    let taken = within("the twin ends", twin).await.unwrap();
    assert!(!taken.is_empty(), "the twin took the node's loops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_sent_before_a_restart_and_returned_after_it_is_counted() {
    let rs = relays(111, 4);
    let dir = directory(&rs);
    let (_dir, path) = state_path("loop-restart");
    let mut a = config(dir.clone(), 1);
    a.state_path = Some(path.clone());
    a.privacy_config = Some(mixing(3, 3, true));
    let (id_key, enc_key) = (copy(&a.identity), a.encryption.secret_bytes());
    let twin_key = copy(&a.identity);
    let alice = started(a).await;
    let home = alice.homes()[0].router_id.clone();
    // The twin holds the first loop back: it stays in flight (the return timeout is HANG).
    let twin = hijack(hop_of(&rs, &home), twin_key, 1).await;
    let held = within("a loop held by the twin", twin).await.unwrap();
    let [(loop_id, envelope)] = <[Captured; 1]>::try_from(held).unwrap();
    alice.stop().await;
    assert!(alice.get_stats().loops_sent >= 1);

    // Restart from the state file (no new loops: mixing without loop cover).
    let mut b = config(dir, 1);
    b.identity = id_key;
    b.encryption = EncryptionKeypair::from_secret_bytes(&enc_key);
    b.state_path = Some(path.clone());
    b.privacy_config = Some(mixing(3, 3, false));
    let me = b.identity.public();
    let alice = started(b).await;
    assert!(
        alice.get_stats().loops_restored >= 1,
        "the loop in flight was saved"
    );

    // The held loop comes back, through whichever home the restarted node has now.
    let now_home = hop_of(&rs, &alice.homes()[0].router_id);
    let other = rs
        .iter()
        .map(|r| r.info.hop())
        .find(|h| h.identity != now_home.identity)
        .unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let mut c = Circ::build(vec![other, now_home]).unwrap();
        c.circ
            .send_message(loop_id, me.to_bytes(), envelope)
            .unwrap();
        let ev = c
            .wait_for(|e| matches!(e, ClientEvent::DeliveryStatus { .. }))
            .unwrap();
        let ClientEvent::DeliveryStatus { status, .. } = ev else {
            unreachable!("wait_for gave {ev:?}")
        };
        status
    });
    let status = within("the replay's status", status).await.unwrap();
    assert_eq!(status, DeliveryStatus::DELIVERED);
    until("the held loop counted", || {
        alice.get_stats().loops_returned_after_restart >= 1
    })
    .await;
    let s = alice.get_stats();
    assert!(s.loops_returned >= s.loops_returned_after_restart, "{s:?}");
    assert_eq!(s.loops_sent, 0, "no loop sent since the restart: {s:?}");
    assert_eq!(s.received, 0, "a loop never reaches the app");
    alice.stop().await;
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
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
