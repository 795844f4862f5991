//! The client library against a real network (issue 6, "Tests"): a seed and five relay
//! processes registered by PoW, and nodes (`ournet_client::NodeClient`, in this process) that
//! take their relays from the seed's verified `/discover` list.
//!
//! * 1,000 messages of mixed sizes (1 B to 1 MiB) both ways: each arrives intact, once, from
//!   the authenticated sender, and each send ends ACKed.
//! * A relay (a home of the recipient) SIGKILLed mid-run: every message still arrives exactly
//!   once and is ACKed.
//! * A recipient offline during the send: its homes queue the messages; a node with another
//!   key homed on the same relays gets none of them; the recipient, back online with its
//!   state file, receives each once and the sender gets the ACKs.
//!
//! * PARANOID: a tap in front of every relay records the paranoid node's links: one frame
//!   size (whole cells) and the same constant cell rate whether the app is idle or sending.
//!
//! * Nodes and relays on different hosts (network namespaces), every link through a fault
//!   proxy (20 ms RTT, held-back segments, stalls): messages both ways arrive once, ACKed.
//!
//! Relays alternate between the backends under test (`ournet_tests::relay::backends`). No
//! assertion is about time: the timeouts only turn a hang into a failure.
#![allow(clippy::unwrap_used, clippy::print_stderr, reason = "test code")]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ournet_client::directory::{RelayInfo, StaticDirectory};
use ournet_client::{
    MessageId, NodeClient, NodeConfig, ReceivedMessage, SendOptions, SendOutcome, Timeouts,
    create_node_client,
};
use ournet_proto::address::NodeAddress;
use ournet_proto::cell::CELL_LEN;
use ournet_proto::circuit::PathHop;
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair, IdentityPublicKey};
use ournet_proto::privacy::{PrivacyLevel, TrafficAnalysisMitigationConfig};
use ournet_tests::client::rng;
use ournet_tests::netns::SplitNet;
use ournet_tests::network::{RELAY_CONFIG, TestNet};
use ournet_tests::relay::backends;
use ournet_tests::tap::Tap;
use rand_core::RngCore;
use tokio::task::JoinSet;

/// Turns a hang into a failure; nothing asserts how long anything took.
const WAIT: Duration = Duration::from_secs(900);

#[test]
fn a_thousand_messages_of_mixed_sizes_arrive_intact_once_with_acks() {
    let net = TestNet::start_mixed(5, &backends());
    runtime().block_on(async {
        let dir = directory(&net, None);
        let (alice, bob) = (
            start_node(dir.clone(), &Keys::random(), 2, None).await,
            start_node(dir, &Keys::random(), 2, None).await,
        );
        let sizes = |i: usize| match i {
            0 | 333 | 666 | 999 => 1 << 20,
            _ => [1, 2, 100, 925, 926, 1_000, 4_096, 10_000, 65_536, 100_000][i % 10],
        };
        let all: Vec<Vec<u8>> = (0..1_000).map(|i| content(i, sizes(i))).collect();
        let (to_bob, to_alice): (Vec<_>, Vec<_>) =
            all.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
        let to_bob: Vec<Vec<u8>> = to_bob.into_iter().map(|(_, c)| c).collect();
        let to_alice: Vec<Vec<u8>> = to_alice.into_iter().map(|(_, c)| c).collect();
        swap(&alice, &bob, &to_bob, &to_alice, 16).await;
        assert_eq!(bob.get_stats().received, 500);
        assert_eq!(alice.get_stats().received, 500);
        eprintln!("alice {:?}\nbob {:?}", alice.get_stats(), bob.get_stats());
        alice.stop().await;
        bob.stop().await;
    });
}

#[test]
fn a_relay_killed_mid_run_loses_no_message_and_duplicates_none() {
    let mut net = TestNet::start_mixed(5, &backends());
    runtime().block_on(async {
        let dir = directory(&net, None);
        let (alice, bob) = (
            start_node(dir.clone(), &Keys::random(), 2, None).await,
            start_node(dir, &Keys::random(), 3, None).await,
        );
        let msgs: Vec<Vec<u8>> = (0..150)
            .map(|i| content(i, [1, 925, 5_000, 40_000][i % 4]))
            .collect();
        let bob_gets = tokio::spawn(collect(bob.clone(), msgs.len()));
        let sending = {
            let (alice, to, msgs) = (alice.clone(), bob.address().unwrap(), msgs.clone());
            tokio::spawn(async move { send_all(&alice, &to, &msgs, 8).await })
        };
        wait_until("a fifth of the messages ACKed", || {
            alice.get_stats().acked >= 30
        })
        .await;
        let victim = bob.homes()[0].router_id.clone();
        assert!(net.kill(&victim), "the victim was running");
        eprintln!("SIGKILLed relay {victim}, a home of the recipient");
        let sent = sending.await.unwrap();
        check_exactly_once(&sent, &msgs, alice.identity(), &bob_gets.await.unwrap());
        let stats = bob.get_stats();
        assert_eq!(stats.received, 150, "{stats:?}");
        eprintln!("alice {:?}\nbob {stats:?}", alice.get_stats());
        alice.stop().await;
        bob.stop().await;
    });
}

#[test]
fn queued_messages_reach_their_recipient_when_it_comes_online_and_no_other_key_takes_them() {
    let net = TestNet::start_mixed(5, &backends());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("bob.state");
    runtime().block_on(async {
        let bob_keys = Keys::random();
        let bob_relays: Vec<String> = net.hops[..2].iter().map(|(id, _)| id.clone()).collect();
        let bob_dir = directory(&net, Some(&bob_relays));
        let bob = start_node(bob_dir.clone(), &bob_keys, 2, Some(state.clone())).await;
        let bob_address = bob.address().unwrap();
        bob.stop().await;
        drop(bob);

        // Eve homes on Bob's relays with her own key while his messages wait there.
        let eve = start_node(bob_dir.clone(), &Keys::random(), 2, None).await;
        let alice = start_node(directory(&net, None), &Keys::random(), 2, None).await;
        let msgs: Vec<Vec<u8>> = (0..6)
            .map(|i| content(i, [1, 925, 70_000][i % 3]))
            .collect();
        let mut ids = Vec::new();
        for m in &msgs {
            ids.push(
                alice
                    .send_message(&bob_address, m, SendOptions::default())
                    .await
                    .unwrap(),
            );
        }
        wait_until("every message queued at Bob's homes", || {
            alice.get_stats().queued >= 6
        })
        .await;
        assert_eq!(alice.get_stats().acked, 0, "nobody could ACK for Bob");

        let bob = start_node(bob_dir, &bob_keys, 2, Some(state.clone())).await;
        let got = collect(bob.clone(), msgs.len()).await;
        let mut outcomes = Vec::new();
        for id in &ids {
            outcomes.push((*id, alice.wait_outcome(*id).await.unwrap()));
        }
        check_exactly_once(&outcomes, &msgs, alice.identity(), &got);
        let eve_stats = eve.get_stats();
        assert_eq!(eve_stats.received, 0, "Eve took nothing: {eve_stats:?}");
        assert_eq!(bob.get_stats().received, 6);
        for n in [alice, bob, eve] {
            n.stop().await;
        }
    });
}

#[test]
fn paranoid_links_show_one_frame_size_at_a_constant_rate_whatever_the_app_sends() {
    let net = TestNet::start_mixed(5, &backends());
    // The paranoid node reaches every relay through a tap; nobody else knows the taps.
    let taps: Vec<Tap> = net
        .hops
        .iter()
        .enumerate()
        .map(|(i, (_, hop))| {
            let t = Tap::bind(&format!("127.{}.0.2", i + 1));
            t.forward_to(hop.addr);
            t
        })
        .collect();
    let tapped = Arc::new(StaticDirectory(
        directory(&net, None)
            .0
            .iter()
            .zip(&taps)
            .map(|(r, t)| {
                let mut r = r.clone();
                r.hop.addr = t.addr;
                r
            })
            .collect(),
    ));
    // PARANOID with a faster constant rate than its preset's 4 messages a minute (one cell
    // per 1.25 s), so the test moves its messages in seconds: 4-cell slots every 100 ms.
    let mut privacy = TrafficAnalysisMitigationConfig::from_privacy_level(PrivacyLevel::Paranoid);
    privacy.constant_rate.messages_per_minute = 600.0;
    let interval = privacy.constant_rate.cell_interval().unwrap();
    let max_rate = 1.0 / interval.as_secs_f64();
    runtime().block_on(async {
        let bob = start_node(directory(&net, None), &Keys::random(), 2, None).await;
        let mut config = node_config(tapped, &Keys::random(), 5, None);
        config.privacy_config = Some(privacy);
        let paul = create_node_client(config).unwrap();
        paul.start().await.unwrap();
        assert_eq!(paul.privacy_level(), PrivacyLevel::Paranoid);
        // Paul homes on all five relays before sending anything, so the first connection
        // each tap accepted is his home link, and every circuit he builds starts on one.
        let links: Vec<_> = taps.iter().map(|t| t.connections()[0].clone()).collect();
        let idle_from = Instant::now();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let idle_to = Instant::now();
        let msgs: Vec<Vec<u8>> = (0..6)
            .map(|i| content(i, [1, 3_000, 20_000][i % 3]))
            .collect();
        let busy_from = Instant::now();
        let sent = send_all(&paul, &bob.address().unwrap(), &msgs, 6).await;
        let got = collect(bob.clone(), msgs.len()).await;
        let busy_to = Instant::now();
        check_exactly_once(&sent, &msgs, paul.identity(), &got);
        let mut busy_cells = 0;
        for (i, link) in links.iter().enumerate() {
            let log = link.lock().unwrap().clone();
            // The first chunk is the handshake; after it, only whole cells cross the link.
            for (_, n) in log.iter().skip(1) {
                assert_eq!(
                    n % CELL_LEN,
                    0,
                    "link {i}: a {n}-byte chunk is not whole cells"
                );
            }
            let cells = |from: Instant, to: Instant| -> usize {
                let in_window = log.iter().skip(1).filter(|(t, _)| *t >= from && *t < to);
                in_window.map(|(_, n)| n / CELL_LEN).sum()
            };
            let rate =
                |from: Instant, to: Instant| cells(from, to) as f64 / (to - from).as_secs_f64();
            let (idle, busy) = (rate(idle_from, idle_to), rate(busy_from, busy_to));
            busy_cells += cells(busy_from, busy_to);
            eprintln!(
                "link {i}: {idle:.1} cells/s idle, {busy:.1} busy (constant rate {max_rate:.1})"
            );
            // Timer lateness on a loaded machine can only slow the schedule, never speed it,
            // so the upper bound is tight and the lower one loose.
            assert!(
                idle >= 0.3 * max_rate,
                "link {i}: padding keeps an idle link sending"
            );
            assert!(busy >= 0.3 * max_rate, "link {i}");
            assert!(
                busy <= 1.1 * max_rate + 1.0,
                "link {i}: the app's sends raised the rate"
            );
        }
        eprintln!(
            "{busy_cells} cells on Paul's links while he sent {} bytes",
            3 * 23_001
        );
        bob.stop().await;
        paul.stop().await;
    });
}

#[test]
fn client_nodes_on_another_host_exchange_messages_once_through_a_faulty_20ms_network() {
    let config = std::env::temp_dir().join(format!("ournet-split-{}.toml", std::process::id()));
    std::fs::write(&config, RELAY_CONFIG).unwrap();
    let extra = ["--config", config.to_str().unwrap()];
    let net = SplitNet::start(env!("CARGO_BIN_EXE_ournet-fault-proxy"), &extra);
    std::thread::scope(|s| {
        s.spawn(|| {
            // This thread, and the one-thread runtime on it, is a host on the node network.
            net.node_host.enter_current_thread().unwrap();
            let hops = net.seed.wait_listed(&net.ids, WAIT);
            let dir = relays_dir(net.ids.iter().map(|id| (id.clone(), hops[id].clone())));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(exchange_both_ways(
                dir,
                24,
                &[1, 925, 5_000, 60_000, 300_000],
            ));
        })
        .join()
        .unwrap();
    });
    std::thread::sleep(Duration::from_millis(1100));
    assert!(
        net.proxy.counter("connections") >= 3,
        "links crossed the proxies"
    );
    assert!(net.proxy.counter("held") > 0, "segments were held back");
    let _ = std::fs::remove_file(&config);
}

/// Two nodes on `dir` send each other `n` messages each, sizes taken in turn from `sizes`;
/// every one arrives once, intact, ACKed.
async fn exchange_both_ways(dir: Arc<StaticDirectory>, n: usize, sizes: &[usize]) {
    let (alice, bob) = (
        start_node(dir.clone(), &Keys::random(), 2, None).await,
        start_node(dir, &Keys::random(), 2, None).await,
    );
    let to_bob: Vec<Vec<u8>> = (0..n).map(|i| content(i, sizes[i % sizes.len()])).collect();
    let to_alice: Vec<Vec<u8>> = (0..n)
        .map(|i| content(n + i, sizes[i % sizes.len()]))
        .collect();
    swap(&alice, &bob, &to_bob, &to_alice, 8).await;
    eprintln!("alice {:?}\nbob {:?}", alice.get_stats(), bob.get_stats());
    alice.stop().await;
    bob.stop().await;
}

/// Alice sends `to_bob` while Bob sends `to_alice`, each with at most `window` unfinished;
/// every message arrives once, intact, ACKed.
async fn swap(
    alice: &NodeClient,
    bob: &NodeClient,
    to_bob: &[Vec<u8>],
    to_alice: &[Vec<u8>],
    window: usize,
) {
    let bob_gets = tokio::spawn(collect(bob.clone(), to_bob.len()));
    let alice_gets = tokio::spawn(collect(alice.clone(), to_alice.len()));
    let (a_addr, b_addr) = (alice.address().unwrap(), bob.address().unwrap());
    let (a_sent, b_sent) = tokio::join!(
        send_all(alice, &b_addr, to_bob, window),
        send_all(bob, &a_addr, to_alice, window),
    );
    check_exactly_once(&a_sent, to_bob, alice.identity(), &bob_gets.await.unwrap());
    check_exactly_once(
        &b_sent,
        to_alice,
        bob.identity(),
        &alice_gets.await.unwrap(),
    );
}

/// A node's keys, kept as secret bytes so a test can start the same node twice.
struct Keys {
    identity: [u8; 32],
    encryption: [u8; 32],
}

impl Keys {
    fn random() -> Self {
        let mut r = rng();
        let (mut identity, mut encryption) = ([0u8; 32], [0u8; 32]);
        r.fill_bytes(&mut identity);
        r.fill_bytes(&mut encryption);
        Self {
            identity,
            encryption,
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The relays `/discover` listed (only those named in `only`, if given).
fn directory(net: &TestNet, only: Option<&[String]>) -> Arc<StaticDirectory> {
    relays_dir(
        net.hops
            .iter()
            .filter(|(id, _)| only.is_none_or(|o| o.contains(id)))
            .cloned(),
    )
}

/// A fixed directory of these relays.
fn relays_dir(hops: impl Iterator<Item = (String, PathHop)>) -> Arc<StaticDirectory> {
    let relays = hops
        .map(|(router_id, hop)| RelayInfo {
            router_id,
            hop,
            region: None,
            asn: None,
            load: None,
        })
        .collect();
    Arc::new(StaticDirectory(relays))
}

/// Short health and retry timeouts so a dead relay is noticed and routed around quickly;
/// still generous for a loaded machine (they decide retries, not the test's outcome).
fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(15),
        delivery: Duration::from_secs(30),
        ack: Duration::from_secs(30),
        queued_ack: Duration::from_secs(600),
        ping_interval: Duration::from_secs(2),
        ping_timeout: Duration::from_secs(10),
        home_cooldown: Duration::from_secs(30),
    }
}

async fn start_node(
    dir: Arc<StaticDirectory>,
    keys: &Keys,
    homes: usize,
    state: Option<PathBuf>,
) -> NodeClient {
    let node = create_node_client(node_config(dir, keys, homes, state)).unwrap();
    node.start().await.unwrap();
    node
}

fn node_config(
    dir: Arc<StaticDirectory>,
    keys: &Keys,
    homes: usize,
    state: Option<PathBuf>,
) -> NodeConfig {
    let mut c = NodeConfig::new(
        IdentityKeypair::from_secret_bytes(&keys.identity),
        EncryptionKeypair::from_secret_bytes(&keys.encryption),
        dir,
    );
    c.target_connections = homes;
    c.min_connections = homes;
    c.timeouts = timeouts();
    c.max_retries = 10;
    c.state_path = state;
    c
}

/// Content `i` of `len` bytes: distinct per `i` wherever the length allows.
fn content(i: usize, len: usize) -> Vec<u8> {
    let seed = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len as u64)
        .map(|j| (seed.rotate_left((j % 64) as u32) ^ j.wrapping_mul(131)) as u8)
        .collect()
}

/// Sends every content from `from` to `to`, at most `window` unfinished at a time; returns
/// each id (in content order) with its outcome.
async fn send_all(
    from: &NodeClient,
    to: &NodeAddress,
    contents: &[Vec<u8>],
    window: usize,
) -> Vec<(MessageId, SendOutcome)> {
    let mut set = JoinSet::new();
    let mut out = Vec::new();
    for (i, c) in contents.iter().enumerate() {
        while set.len() >= window {
            out.push(set.join_next().await.unwrap().unwrap());
        }
        let id = from
            .send_message(to, c, SendOptions::default())
            .await
            .unwrap();
        let node = from.clone();
        set.spawn(async move {
            let outcome = tokio::time::timeout(WAIT, node.wait_outcome(id)).await;
            (i, id, outcome.expect("an outcome").unwrap())
        });
    }
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out.sort_by_key(|(i, _, _)| *i);
    out.into_iter().map(|(_, id, o)| (id, o)).collect()
}

/// The next `n` messages `node` receives.
async fn collect(node: NodeClient, n: usize) -> Vec<ReceivedMessage> {
    let mut got = Vec::new();
    while got.len() < n {
        let msg = tokio::time::timeout(WAIT, node.recv())
            .await
            .expect("a message within the timeout")
            .expect("the node is running");
        got.push(msg);
    }
    got
}

/// Every send ACKed; every message received once, intact, from `sender`.
fn check_exactly_once(
    sent: &[(MessageId, SendOutcome)],
    contents: &[Vec<u8>],
    sender: IdentityPublicKey,
    got: &[ReceivedMessage],
) {
    assert_eq!(sent.len(), contents.len());
    let mut expected: HashMap<MessageId, &Vec<u8>> = HashMap::new();
    for ((id, outcome), c) in sent.iter().zip(contents) {
        assert!(
            matches!(outcome, SendOutcome::Acked { .. }),
            "message {id} ended {outcome:?}"
        );
        expected.insert(*id, c);
    }
    assert_eq!(got.len(), contents.len());
    for m in got {
        let want = expected
            .remove(&m.message_id)
            .unwrap_or_else(|| panic!("message {} unknown or received twice", m.message_id));
        assert!(
            m.content == *want,
            "message {} arrived altered",
            m.message_id
        );
        assert_eq!(m.sender, sender);
    }
    assert!(expected.is_empty());
}

/// Polls `f` until it holds.
async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
