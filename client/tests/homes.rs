//! Home rotation and a clean stop, against real relay processes (epoll backend).
//!
//! Rotation is make-before-break: a sender holding the address published before a rotation
//! still reaches the node through the draining old home, a sender with the new address
//! through the new one, every message arrives once, and the old home's circuit and link close
//! after the drain. A sender holding the old address after the drain is answered MOVED by
//! the old home (the node's FORWARD_TO) and follows without a directory lookup; after a
//! failover (the old home dead) it still looks the node up. `stop()` with sends in flight
//! destroys every circuit and closes every link (the relays' gauges fall to zero, the
//! process holds no socket to them), leaves no task behind, and the interrupted sends
//! resume after a restart.
#![allow(clippy::unwrap_used, reason = "test code")]

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ournet_client::directory::{DirectoryError, Preferences, RelayDirectory, RelayInfo};
use ournet_client::{
    MessageId, NodeClient, NodeConfig, SendOptions, SendOutcome, create_node_client,
};
use ournet_proto::address::NodeAddress;
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair, IdentityPublicKey};
use ournet_tests::relay::RelayProc;

mod support;
use support::{
    keys, node_config, receive_each_once, relay_info, relays, state_path, test_timeouts, until,
    within,
};

/// A directory a test can take relays out of (as a seed stops listing one), and that keeps
/// what a node published and answers lookups from it, as a seed's address book does.
#[derive(Debug, Default)]
struct Seedlike {
    relays: Mutex<Vec<RelayInfo>>,
    published: Arc<Mutex<Vec<NodeAddress>>>,
    /// Address lookups asked of this directory (each tells a seed whom the asker writes to).
    lookups: AtomicUsize,
}

impl Seedlike {
    fn new(relays: &[&RelayProc]) -> Arc<Self> {
        Self::with_book(relays, Arc::default())
    }

    /// Lists `relays` and shares `other`'s address book (two nodes on one seed).
    fn sharing_book(relays: &[&RelayProc], other: &Self) -> Arc<Self> {
        Self::with_book(relays, other.published.clone())
    }

    fn with_book(relays: &[&RelayProc], published: Arc<Mutex<Vec<NodeAddress>>>) -> Arc<Self> {
        let list = relays.iter().map(|r| relay_info(r)).collect();
        Arc::new(Self {
            relays: Mutex::new(list),
            published,
            lookups: AtomicUsize::new(0),
        })
    }

    /// The last address published, as a sender's lookup finds it.
    fn lookup(&self) -> Option<NodeAddress> {
        self.published.lock().unwrap().last().cloned()
    }

    /// How many lookups senders asked of this directory.
    fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    fn unlist(&self, router_id: &str) {
        self.relays
            .lock()
            .unwrap()
            .retain(|r| r.router_id != router_id);
    }
}

#[async_trait]
impl RelayDirectory for Seedlike {
    async fn relays(
        &self,
        count: usize,
        prefs: &Preferences,
    ) -> Result<Vec<RelayInfo>, DirectoryError> {
        Ok(self
            .relays
            .lock()
            .unwrap()
            .iter()
            .filter(|r| !prefs.exclude.contains(&r.router_id))
            .take(count)
            .cloned()
            .collect())
    }

    async fn publish(&self, address: &NodeAddress) -> Result<(), DirectoryError> {
        self.published.lock().unwrap().push(address.clone());
        Ok(())
    }

    async fn lookup_address(
        &self,
        identity: &IdentityPublicKey,
    ) -> Result<Option<NodeAddress>, DirectoryError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let book = self.published.lock().unwrap();
        Ok(book.iter().rev().find(|a| a.identity == *identity).cloned())
    }
}

fn config(
    identity: &[u8; 32],
    encryption: &[u8; 32],
    dir: Arc<dyn RelayDirectory>,
    homes: usize,
) -> NodeConfig {
    let mut c = node_config(&(*identity, *encryption), dir, homes);
    c.timeouts = test_timeouts();
    c
}

async fn started(config: NodeConfig) -> NodeClient {
    let node = create_node_client(config).unwrap();
    within("start", node.start()).await.unwrap();
    node
}

fn relay_with<'a>(rs: &'a [RelayProc], router_id: &str) -> &'a RelayProc {
    rs.iter()
        .find(|r| r.info.identity.to_hex() == router_id)
        .unwrap()
}

/// Sum of one series over `rs`. Pass `name{` when `name` also starts another series' name
/// (`ournet_circuits` and `ournet_circuits_created_total`).
fn total(rs: &[RelayProc], metric: &str) -> u64 {
    rs.iter().map(|r| r.metric(metric)).sum()
}

/// This process's established TCP connections to `to` (IPv4), read from `/proc`: the
/// sockets among our file descriptors whose peer is `to`.
fn links_to(to: SocketAddr) -> usize {
    let ours: HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() > 9 && f[3] == "01" && ours.contains(f[9]) && peer(f[2]) == Some(to)
        })
        .count()
}

/// `0100007F:1F90` (the kernel's hex, address in memory order) as 127.0.0.1:8080.
fn peer(hex: &str) -> Option<SocketAddr> {
    let (ip, port) = hex.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?.to_le_bytes();
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip), port).into())
}

async fn acked(node: &NodeClient, id: MessageId) {
    let o = within("outcome", node.wait_outcome(id)).await.unwrap();
    assert!(matches!(o, SendOutcome::Acked { .. }), "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn homes_rotate_make_before_break_and_both_addresses_keep_working() {
    // Alice's relays (her home and every first and middle hop) and Bob's three candidate
    // homes are apart, so the only link this process has to Bob's relays is Bob's.
    let a_rs = relays(111, 3);
    let b_rs = relays(114, 3);
    let a_dir = Seedlike::new(&a_rs.iter().collect::<Vec<_>>());
    let b_dir = Seedlike::new(&b_rs.iter().collect::<Vec<_>>());
    let (b_id, b_enc) = keys();
    let mut b_cfg = config(&b_id, &b_enc, b_dir.clone(), 2);
    b_cfg.maintenance_interval = Duration::from_millis(250);
    b_cfg.rotation.interval = Duration::from_secs(3);
    b_cfg.rotation.max_age = Duration::from_secs(3600);
    b_cfg.rotation.drain_grace = Duration::from_secs(30);
    let bob = started(b_cfg).await;
    let old = b_dir.lookup().expect("published at start");
    assert_eq!(Some(&old), bob.address().as_ref());
    assert_eq!(old.homes.len(), 2);

    let (a_id, a_enc) = keys();
    let alice = started(config(&a_id, &a_enc, a_dir, 1)).await;
    // Alice keeps sending with the address she looked up before the rotation.
    let sent = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn({
        let (alice, old, sent, done) = (alice.clone(), old.clone(), sent.clone(), done.clone());
        async move {
            while !done.load(Ordering::Acquire) {
                let id = alice
                    .send_message(&old, b"old address", SendOptions::default())
                    .await
                    .unwrap();
                sent.lock().unwrap().push(id);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });

    until("a rotation", || bob.get_stats().rotations >= 1).await;
    let new = b_dir.lookup().unwrap();
    assert_ne!(new, old, "re-signed and published after the rotation");
    assert_eq!(bob.address().as_ref(), Some(&new));
    assert_eq!(new.homes.len(), 2, "never fewer homes");
    let gone: Vec<_> = old
        .homes
        .iter()
        .filter(|h| !new.homes.contains(h))
        .collect();
    assert_eq!(gone.len(), 1, "one home rotated");
    let gone_id = gone[0].identity.to_hex();
    let gone_relay = relay_with(&b_rs, &gone_id);
    // A seed that stops listing it: the drained home cannot come back as a home.
    b_dir.unlist(&gone_id);
    // Draining: out of the address, still authenticated and linked.
    assert_eq!(bob.get_stats().draining_homes, 1);
    assert_eq!(bob.homes().len(), 2);
    assert_eq!(links_to(gone[0].addr), 1);
    assert_eq!(gone_relay.metric("ournet_homes"), 1);
    let delivered_before = gone_relay.metric("ournet_delivered_total");

    // More with the old address (through the draining home), then with the new one.
    for _ in 0..5 {
        let id = alice
            .send_message(&old, b"old address, draining", SendOptions::default())
            .await
            .unwrap();
        sent.lock().unwrap().push(id);
    }
    done.store(true, Ordering::Release);
    within("sender", sender).await.unwrap();
    for _ in 0..5 {
        let id = alice
            .send_message(&new, b"new address", SendOptions::default())
            .await
            .unwrap();
        sent.lock().unwrap().push(id);
    }
    let sent: Vec<MessageId> = sent.lock().unwrap().clone();
    receive_each_once(&bob, alice.identity(), &sent).await;
    for id in &sent {
        acked(&alice, *id).await;
    }
    let nothing = tokio::time::timeout(Duration::from_millis(500), bob.recv()).await;
    assert!(nothing.is_err(), "nothing delivered twice");
    assert_eq!(bob.get_stats().received, sent.len() as u64);
    assert!(
        gone_relay.metric("ournet_delivered_total") > delivered_before,
        "the draining home delivered messages sent to the old address"
    );

    // After the grace the old home's circuit and link are closed; the node keeps two homes.
    until("the drain to end", || bob.get_stats().draining_homes == 0).await;
    until("the old home's link to close", || {
        links_to(gone[0].addr) == 0
    })
    .await;
    until("the old relay to forget the home", || {
        gone_relay.metric("ournet_homes") == 0
    })
    .await;
    let s = bob.get_stats();
    assert_eq!((s.homes, s.failovers), (2, 0));
    assert!(s.rotations >= 1);
    alice.stop().await;
    bob.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_holding_the_old_address_is_sent_to_the_new_home_by_the_old_one() {
    // Bob has one home and two candidate relays, so his rotation moves his only home; Alice
    // uses the same seed (address book) with relays of her own, and the seed counts her
    // lookups: following Bob must tell it nothing.
    let a_rs = relays(151, 3);
    let b_rs = relays(154, 2);
    let b_dir = Seedlike::new(&b_rs.iter().collect::<Vec<_>>());
    let a_dir = Seedlike::sharing_book(&a_rs.iter().collect::<Vec<_>>(), &b_dir);
    let (b_id, b_enc) = keys();
    let (_state, b_path) = state_path("follow");
    let b_cfg = |dir: Arc<Seedlike>| {
        let mut c = config(&b_id, &b_enc, dir, 1);
        c.state_path = Some(b_path.clone());
        c.maintenance_interval = Duration::from_millis(250);
        c.rotation.interval = Duration::from_secs(2);
        c.rotation.max_age = Duration::from_secs(3600);
        c.rotation.drain_grace = Duration::from_secs(1);
        c
    };
    let bob = started(b_cfg(b_dir.clone())).await;
    let old = b_dir.lookup().expect("published at start");
    assert_eq!(old.homes.len(), 1);
    let old_id = old.homes[0].identity.to_hex();
    let old_home = relay_with(&b_rs, &old_id);

    // Bob rotates; the seed stops listing his old home, so he never comes back to it.
    until("a rotation", || bob.get_stats().rotations >= 1).await;
    b_dir.unlist(&old_id);
    let new = b_dir.lookup().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(new.replaces(&old, now));
    // The drain ends: the old home's circuit and link close and the relay forgets Bob, but
    // keeps the forwarding address he sent it before draining.
    until("the drain to end", || bob.get_stats().draining_homes == 0).await;
    until("the old home's link to close", || {
        links_to(old.homes[0].addr) == 0
    })
    .await;
    until("the old relay to forget the home", || {
        old_home.metric("ournet_homes") == 0
    })
    .await;
    assert_eq!(old_home.metric("ournet_forwarding_addresses"), 1);

    // Alice only has the old address. Five sends at once: the old home answers MOVED with
    // Bob's new address, and Alice resends there without asking the seed.
    let (a_id, a_enc) = keys();
    let alice = started(config(&a_id, &a_enc, a_dir.clone(), 1)).await;
    let mut sent = Vec::new();
    for _ in 0..5 {
        let id = alice
            .send_message(&old, b"to the old address", SendOptions::default())
            .await
            .unwrap();
        sent.push(id);
    }
    for id in &sent {
        acked(&alice, *id).await;
    }
    let s = alice.get_stats();
    assert!(
        (1..=5).contains(&s.moved),
        "{} MOVED answers taken",
        s.moved
    );
    assert_eq!(s.queued, 0, "nothing queued at the old home");
    assert_eq!(old_home.metric("ournet_offline_messages"), 0);
    // At least: an attempt that timed out on a loaded machine before its MOVED came back
    // was answered again when retried.
    assert!(old_home.metric("ournet_moved_total") >= s.moved);
    // Three more with the old address go straight to the new home (remembered).
    for _ in 0..3 {
        let id = alice
            .send_message(&old, b"to the old address, later", SendOptions::default())
            .await
            .unwrap();
        acked(&alice, id).await;
        sent.push(id);
    }
    let t = alice.get_stats();
    assert_eq!(t.readdressed, sent.len() as u64, "every send followed Bob");
    assert_eq!(t.moved, s.moved, "no later send went to the old home");
    assert_eq!((t.acked, t.failed, t.queued), (sent.len() as u64, 0, 0));
    assert_eq!(
        a_dir.lookups(),
        0,
        "the seed never learned whom Alice writes to"
    );

    receive_each_once(&bob, alice.identity(), &sent).await;
    let nothing = tokio::time::timeout(Duration::from_millis(500), bob.recv()).await;
    assert!(nothing.is_err(), "nothing delivered twice");
    assert_eq!(bob.get_stats().received, sent.len() as u64);

    // Exactly once: the old home kept no copy. If Bob returns there, his HOME_AUTH clears
    // the forwarding address and nothing waits for him.
    bob.stop().await;
    drop(bob);
    let back = started(b_cfg(Seedlike::new(&[old_home]))).await;
    until("the old home to take Bob back", || {
        old_home.metric("ournet_homes") == 1
    })
    .await;
    assert_eq!(old_home.metric("ournet_forwarding_addresses"), 0);
    let nothing = tokio::time::timeout(Duration::from_millis(500), back.recv()).await;
    assert!(nothing.is_err(), "a copy was kept at the old home");
    let s = back.get_stats();
    assert_eq!((s.received, s.duplicates), (0, 0));
    alice.stop().await;
    back.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_holding_the_old_address_follows_the_recipient_after_a_failover() {
    // Bob's only home dies and he fails over to his other candidate; Alice's send to the old
    // address finds the home unreachable (cooling down) and follows him.
    let a_rs = relays(161, 3);
    let mut b_rs = relays(164, 2);
    let b_dir = Seedlike::new(&b_rs.iter().collect::<Vec<_>>());
    let a_dir = Seedlike::sharing_book(&a_rs.iter().collect::<Vec<_>>(), &b_dir);
    let (b_id, b_enc) = keys();
    let mut b_cfg = config(&b_id, &b_enc, b_dir.clone(), 1);
    b_cfg.rotation.enabled = false;
    b_cfg.maintenance_interval = Duration::from_millis(250);
    let bob = started(b_cfg).await;
    let old = b_dir.lookup().expect("published at start");
    let dead = old.homes[0].identity;
    let i = b_rs.iter().position(|r| r.info.identity == dead).unwrap();
    drop(b_rs.remove(i));
    b_dir.unlist(&dead.to_hex());
    until("the failover", || {
        b_dir
            .lookup()
            .is_some_and(|a| a.homes.iter().all(|h| h.identity != dead))
    })
    .await;

    let (a_id, a_enc) = keys();
    let alice = started(config(&a_id, &a_enc, a_dir.clone(), 1)).await;
    let first = alice
        .send_message(&old, b"to the dead home", SendOptions::default())
        .await
        .unwrap();
    acked(&alice, first).await;
    let s = alice.get_stats();
    assert_eq!(s.readdressed, 1);
    assert!(s.unreachable_hops >= 1, "the dead home was tried first");
    let second = alice
        .send_message(&old, b"to the dead home, later", SendOptions::default())
        .await
        .unwrap();
    acked(&alice, second).await;
    let t = alice.get_stats();
    assert_eq!(t.readdressed, 2);
    assert_eq!(t.unreachable_hops, s.unreachable_hops, "not tried again");
    // The dead home could not answer MOVED: this case still needs the directory.
    assert_eq!(t.moved, 0);
    assert!(a_dir.lookups() >= 1);
    receive_each_once(&bob, alice.identity(), &[first, second]).await;
    alice.stop().await;
    bob.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_waiting_queued_follows_its_recipient_online_at_other_homes() {
    // Bob is offline; the address Alice holds lists a home he will not come back to. Her send
    // waits queued there; Bob comes online at another relay and publishes; Alice's send looks
    // again while it waits and is delivered there, before its queued-ACK timeout.
    let a_rs = relays(171, 3);
    let b_rs = relays(174, 2);
    let b_dir = Seedlike::new(&[&b_rs[1]]);
    let a_dir = Seedlike::sharing_book(&a_rs.iter().collect::<Vec<_>>(), &b_dir);
    let (b_id, b_enc) = keys();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let old = NodeAddress::sign(
        &IdentityKeypair::from_secret_bytes(&b_id),
        EncryptionKeypair::from_secret_bytes(&b_enc).public(),
        vec![b_rs[0].info.hop()],
        now - 1,
        now + 3600,
    )
    .unwrap();
    let (a_id, a_enc) = keys();
    // A long queued-ACK timeout: looks at 5, 15, 35, 75 and 155 s, so a slow start of Bob's
    // on a loaded machine is still found while the send waits.
    let mut a_cfg = config(&a_id, &a_enc, a_dir, 1);
    a_cfg.timeouts.queued_ack = Duration::from_secs(170);
    let alice = started(a_cfg).await;
    let id = alice
        .send_message(&old, b"wait for me", SendOptions::default())
        .await
        .unwrap();
    until("queued at the old home", || alice.get_stats().queued == 1).await;
    assert_eq!(b_rs[0].metric("ournet_homes"), 0, "nobody at the old home");

    let bob = started(config(&b_id, &b_enc, b_dir.clone(), 1)).await;
    assert!(b_dir.lookup().unwrap().replaces(&old, now + 1));
    // Without the second look the send would end `Queued` at its queued-ACK timeout.
    acked(&alice, id).await;
    assert_eq!(alice.get_stats().readdressed, 1);
    receive_each_once(&bob, alice.identity(), &[id]).await;
    let nothing = tokio::time::timeout(Duration::from_millis(500), bob.recv()).await;
    assert!(nothing.is_err(), "nothing delivered twice");
    alice.stop().await;
    bob.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_maintenance_ticks_rotate_nothing() {
    // W37: the reference rotated on its first tick (its clock started at 0). With an hour's
    // interval, many ticks pass and no home moves.
    let rs = relays(121, 3);
    let dir = Seedlike::new(&rs.iter().collect::<Vec<_>>());
    let (id, enc) = keys();
    let mut c = config(&id, &enc, dir, 2);
    c.maintenance_interval = Duration::from_millis(50);
    let node = started(c).await;
    // Compared by relay: a home's status also carries its RTT, which changes when its first
    // PONG comes back (after `ping_interval`, a time these ticks can take on a loaded machine).
    let relays_of =
        |n: &NodeClient| -> Vec<String> { n.homes().into_iter().map(|h| h.router_id).collect() };
    let homes = relays_of(&node);
    until("maintenance ticks", || {
        node.get_stats().maintenance_runs >= 5
    })
    .await;
    let s = node.get_stats();
    assert_eq!((s.rotations, s.draining_homes), (0, 0));
    assert_eq!(relays_of(&node), homes);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_destroys_every_circuit_and_interrupted_sends_resume_after_a_restart() {
    let rs = relays(131, 3);
    let a_dir = Seedlike::new(&[&rs[0], &rs[1]]);
    let b_dir = Seedlike::new(&[&rs[2]]);
    let (a_id, a_enc) = keys();
    let (b_id, b_enc) = keys();
    // Bob is offline: his home queues the messages and Alice's sends wait for his ACK on
    // their open circuits.
    let bob_addr = {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        NodeAddress::sign(
            &IdentityKeypair::from_secret_bytes(&b_id),
            EncryptionKeypair::from_secret_bytes(&b_enc).public(),
            vec![rs[2].info.hop()],
            now - 1,
            now + 3600,
        )
        .unwrap()
    };
    let (_dir, path) = state_path("stop");
    let a_cfg = || {
        let mut c = config(&a_id, &a_enc, a_dir.clone(), 1);
        c.state_path = Some(path.clone());
        c
    };
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let alice = started(a_cfg()).await;
    let mut ids = Vec::new();
    for i in 0..3u8 {
        let id = alice
            .send_message(&bob_addr, &[i; 100], SendOptions::default())
            .await
            .unwrap();
        ids.push(id);
    }
    until("queued", || alice.get_stats().queued == 3).await;
    // Quiet now (the sends wait for ACKs): the gauge counts each circuit once per relay on it.
    let hops = total(&rs, "ournet_circuits{");
    assert!(hops > 0);
    assert_eq!(total(&rs, "ournet_homes"), 1, "alice's home");
    let cells_before = total(&rs, "ournet_cells_in_total");

    within("stop", alice.stop()).await;
    // Every link is closed by the time stop returns ...
    for r in &rs {
        assert_eq!(links_to(r.info.hop().addr), 0, "a link left open");
    }
    // ... every relay frees every circuit of Alice's ...
    until("relays to free the circuits", || {
        total(&rs, "ournet_circuits{") == 0
    })
    .await;
    assert_eq!(total(&rs, "ournet_homes"), 0);
    // Each circuit was destroyed by a DESTROY, from Alice to its first relay and forwarded
    // hop by hop: one cell in per circuit per relay. A link merely dropped would leave the
    // first relays without theirs.
    let destroys = total(&rs, "ournet_cells_in_total") - cells_before;
    assert!(
        destroys >= hops,
        "{destroys} cells in for {hops} circuit hops: a relay got no DESTROY"
    );
    // ... and no task of hers is left.
    until("tasks to end", || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
            <= tasks_before
    })
    .await;
    assert_eq!(alice.pending_sends(), 3, "interrupted sends stay pending");
    drop(alice);

    let alice = create_node_client(a_cfg()).unwrap();
    assert_eq!(alice.pending_sends(), 3, "saved across the stop");
    within("restart", alice.start()).await.unwrap();
    let bob = started(config(&b_id, &b_enc, b_dir, 1)).await;
    receive_each_once(&bob, alice.identity(), &ids).await;
    for id in &ids {
        acked(&alice, *id).await;
    }
    let nothing = tokio::time::timeout(Duration::from_millis(500), bob.recv()).await;
    assert!(nothing.is_err(), "nothing delivered twice");
    assert_eq!(alice.pending_sends(), 0);
    alice.stop().await;
    bob.stop().await;
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
