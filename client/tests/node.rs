//! The node client against real relay processes (epoll backend): messages between two nodes
//! through 3 hops with verified ACKs, delivery to a node that was offline, exactly-once
//! delivery of a duplicated message, and a restart that resumes a pending send.
#![allow(clippy::unwrap_used, reason = "test code")]

use std::sync::Arc;
use std::time::Duration;

use ournet_client::directory::StaticDirectory;
use ournet_client::{
    NodeClient, NodeConfig, ReceivedMessage, SendOptions, SendOutcome, create_node_client,
};
use ournet_proto::address::NodeAddress;
use ournet_proto::circuit::ClientEvent;
use ournet_proto::envelope::{AckToken, encrypt_message_with_ack};
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_tests::client::{Circ, rng};
use ournet_tests::relay::RelayProc;

mod support;
use support::{keys, node_config, relay_info, relays, state_path, test_timeouts, within};

fn directory(relays: &[&RelayProc]) -> Arc<StaticDirectory> {
    Arc::new(StaticDirectory(
        relays.iter().map(|r| relay_info(r)).collect(),
    ))
}

struct Keys {
    identity: [u8; 32],
    encryption: [u8; 32],
}

impl Keys {
    fn new() -> Self {
        let (identity, encryption) = keys();
        Self {
            identity,
            encryption,
        }
    }

    fn config(&self, dir: Arc<StaticDirectory>, homes: usize) -> NodeConfig {
        let mut c = node_config(&(self.identity, self.encryption), dir, homes);
        c.timeouts = test_timeouts();
        c
    }

    /// An address for this node listing `home`, signed without the node running.
    fn address_at(&self, home: &RelayProc) -> NodeAddress {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        NodeAddress::sign(
            &IdentityKeypair::from_secret_bytes(&self.identity),
            EncryptionKeypair::from_secret_bytes(&self.encryption).public(),
            vec![home.info.hop()],
            now - 1,
            now + 3600,
        )
        .unwrap()
    }
}

async fn started(config: NodeConfig) -> NodeClient {
    let node = create_node_client(config).unwrap();
    within("start", node.start()).await.unwrap();
    node
}

async fn next(node: &NodeClient) -> ReceivedMessage {
    within("a message", node.recv()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_messages_through_three_hops_with_acks() {
    let rs = relays(11, 5);
    let all: Vec<&RelayProc> = rs.iter().collect();
    let (a_keys, b_keys) = (Keys::new(), Keys::new());
    let alice = started(a_keys.config(directory(&all), 2)).await;
    let bob = started(b_keys.config(directory(&all), 2)).await;
    assert_eq!(alice.homes().len(), 2);
    let bob_addr = bob.address().unwrap();
    let text = bob_addr.to_string();
    let parsed = NodeAddress::parse_unchecked_time(&text).unwrap();
    assert_eq!(parsed, bob_addr, "the address survives its text form");

    let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let id = alice
        .send_message(&parsed, &binary, SendOptions::default())
        .await
        .unwrap();
    let got = next(&bob).await;
    assert_eq!(got.sender, alice.identity(), "sender authenticated");
    assert_eq!(got.content, binary);
    assert_eq!(got.message_id, id);
    let outcome = within("outcome", alice.wait_outcome(id)).await.unwrap();
    assert!(
        matches!(outcome, SendOutcome::Acked { attempts: 1, .. }),
        "{outcome:?}"
    );

    let reply = bob
        .send_message(&alice.address().unwrap(), b"", SendOptions::default())
        .await
        .unwrap();
    let got = next(&alice).await;
    assert_eq!(got.sender, bob.identity());
    assert!(got.content.is_empty(), "empty content is content too");
    let outcome = within("outcome", bob.wait_outcome(reply)).await.unwrap();
    assert!(matches!(outcome, SendOutcome::Acked { .. }), "{outcome:?}");

    // A burst to one node shares circuits; each message arrives once and is ACKed.
    let mut ids = Vec::new();
    for i in 0..20u32 {
        let content = vec![i as u8; (i as usize * 997) % 40_000];
        ids.push(
            alice
                .send_message(&bob_addr, &content, SendOptions::default())
                .await
                .unwrap(),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let m = next(&bob).await;
        assert_eq!(
            m.content.len(),
            (m.content.first().copied().unwrap_or(0) as usize * 997) % 40_000
        );
        assert!(seen.insert(m.message_id), "delivered once");
    }
    for id in ids {
        let o = within("outcome", alice.wait_outcome(id)).await.unwrap();
        assert!(matches!(o, SendOutcome::Acked { .. }), "{o:?}");
    }

    let (a, b) = (alice.get_stats(), bob.get_stats());
    assert_eq!((a.sent, a.delivered, a.acked, a.failed), (21, 21, 21, 0));
    assert_eq!((b.received, b.duplicates, b.rejected), (21, 0, 0));
    assert_eq!(alice.take_latencies().len(), 21);
    assert_eq!(alice.pending_sends(), 0);
    alice.stop().await;
    bob.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_an_offline_node_arrives_when_it_comes_online() {
    let rs = relays(21, 3);
    let all: Vec<&RelayProc> = rs.iter().collect();
    let (a_keys, b_keys) = (Keys::new(), Keys::new());
    let home = &rs[2];
    let bob_addr = b_keys.address_at(home);
    let mut a_cfg = a_keys.config(directory(&all[..2]), 1);
    a_cfg.max_pending = 1;
    let alice = started(a_cfg).await;
    let id = alice
        .send_message(&bob_addr, b"while you were away", SendOptions::default())
        .await
        .unwrap();
    within("queued", async {
        while alice.get_stats().queued == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    let busy = alice
        .send_message(&bob_addr, b"one too many", SendOptions::default())
        .await;
    assert!(
        matches!(busy, Err(ournet_client::ClientError::Busy)),
        "{busy:?}"
    );

    let bob = started(b_keys.config(directory(&[home]), 1)).await;
    let got = next(&bob).await;
    assert_eq!(got.content, b"while you were away");
    assert_eq!(got.sender, alice.identity());
    let outcome = within("outcome", alice.wait_outcome(id)).await.unwrap();
    assert!(matches!(outcome, SendOutcome::Acked { .. }), "{outcome:?}");
    alice.stop().await;
    bob.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_is_acked_again_but_delivered_once() {
    let rs = relays(31, 3);
    let all: Vec<&RelayProc> = rs.iter().collect();
    let b_keys = Keys::new();
    let bob = started(b_keys.config(directory(&all[2..]), 1)).await;
    let bob_addr = bob.address().unwrap();

    // A raw sender resends one envelope over two circuits, as a retry after a lost ACK does.
    let path: Vec<_> = rs.iter().map(|r| r.info.hop()).collect();
    let to = bob_addr.identity.to_bytes();
    let enc = bob_addr.encryption_key;
    let acks = tokio::task::spawn_blocking(move || {
        let mut r = rng();
        let alice = IdentityKeypair::generate(&mut r);
        let (envelope, token) =
            encrypt_message_with_ack(&mut r, &alice, &enc, [5; 16], 1, b"once").unwrap();
        let mut tokens = Vec::new();
        for _ in 0..2 {
            let mut c = Circ::build(path.clone()).unwrap();
            c.circ.send_message([5; 16], to, envelope.clone()).unwrap();
            let ClientEvent::Ack { ack_token, .. } = c
                .wait_for(|e| matches!(e, ClientEvent::Ack { .. }))
                .unwrap()
            else {
                unreachable!()
            };
            tokens.push(AckToken::from_bytes(ack_token) == token);
        }
        tokens
    });
    let got = next(&bob).await;
    assert_eq!(got.content, b"once");
    assert_eq!(within("acks", acks).await.unwrap(), vec![true, true]);
    let s = bob.get_stats();
    assert_eq!((s.received, s.duplicates), (1, 1));
    let nothing = tokio::time::timeout(Duration::from_millis(200), bob.recv()).await;
    assert!(nothing.is_err(), "the copy was not handed over");
    bob.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_resumes_its_pending_send() {
    let rs = relays(41, 3);
    let all: Vec<&RelayProc> = rs.iter().collect();
    let (a_keys, b_keys) = (Keys::new(), Keys::new());
    let home = &rs[2];
    let bob_addr = b_keys.address_at(home);
    let (_dir, path) = state_path("resume");

    let alice = started({
        let mut c = a_keys.config(directory(&all[..2]), 1);
        c.state_path = Some(path.clone());
        c
    })
    .await;
    let id = alice
        .send_message(&bob_addr, b"survives a restart", SendOptions::default())
        .await
        .unwrap();
    alice.stop().await;
    drop(alice);

    let mut c = a_keys.config(directory(&all[..2]), 1);
    c.state_path = Some(path.clone());
    let alice = create_node_client(c).unwrap();
    assert_eq!(alice.pending_sends(), 1, "the send was saved");
    within("start", alice.start()).await.unwrap();
    let bob = started(b_keys.config(directory(&[home]), 1)).await;
    let got = next(&bob).await;
    assert_eq!(got.content, b"survives a restart");
    let outcome = within("outcome", alice.wait_outcome(id)).await.unwrap();
    assert!(matches!(outcome, SendOutcome::Acked { .. }), "{outcome:?}");
    let nothing = tokio::time::timeout(Duration::from_millis(500), bob.recv()).await;
    assert!(nothing.is_err(), "delivered once");
    assert_eq!(alice.pending_sends(), 0);
    alice.stop().await;
    bob.stop().await;

    // Another identity cannot open the file; garbage is a clear error, not a panic.
    let other = Keys::new().config(directory(&all), 1);
    let mut other = other;
    other.state_path = Some(path.clone());
    assert!(create_node_client(other).is_err());
    std::fs::write(&path, b"not a state file").unwrap();
    let mut c = a_keys.config(directory(&all), 1);
    c.state_path = Some(path);
    let err = create_node_client(c).unwrap_err();
    assert!(err.to_string().contains("state"), "{err}");
}

/// Two recipients homed at the same relay get a circuit each: a home relay holds each
/// message's credit until its own recipient takes it (PROTOCOL.md §8), so a shared circuit
/// would be held back by the slower recipient (and would show the relay one sender writing to
/// both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_at_one_home_relay_get_a_send_circuit_each() {
    let rs = relays(41, 4);
    let all: Vec<&RelayProc> = rs.iter().collect();
    let (a_keys, b_keys, c_keys) = (Keys::new(), Keys::new(), Keys::new());
    let alice = started(a_keys.config(directory(&all), 1)).await;
    let bob = started(b_keys.config(directory(&all[..1]), 1)).await;
    let carol = started(c_keys.config(directory(&all[..1]), 1)).await;
    let (bob_addr, carol_addr) = (bob.address().unwrap(), carol.address().unwrap());
    assert_eq!(bob_addr.homes, carol_addr.homes, "one home relay");
    // One at a time, so each send finds the pool as the last one left it.
    for (to, node) in [(&bob_addr, &bob), (&carol_addr, &carol)].repeat(2) {
        let id = alice
            .send_message(to, b"hello", SendOptions::default())
            .await
            .unwrap();
        assert_eq!(next(node).await.message_id, id);
        let o = within("outcome", alice.wait_outcome(id)).await.unwrap();
        assert!(matches!(o, SendOutcome::Acked { attempts: 1, .. }), "{o:?}");
    }
    let s = alice.get_stats();
    assert_eq!(s.paths_by_hops[3], 2, "one circuit per recipient: {s:?}");
    alice.stop().await;
    bob.stop().await;
    carol.stop().await;
}
