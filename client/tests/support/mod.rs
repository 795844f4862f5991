//! What the client's integration tests share: real relay processes, their directory entries,
//! hang bounds and scratch state files. Each test file uses part of it.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ournet_client::directory::{RelayDirectory, RelayInfo};
use ournet_client::{NodeConfig, Timeouts};
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_tests::client::rng;
use ournet_tests::relay::RelayProc;

/// Turns a hang into a failure; never a speed check (the machine may be loaded).
pub(crate) const HANG: Duration = Duration::from_secs(180);

/// `f`, or a panic naming `what` if it has not finished within [`HANG`].
pub(crate) async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("hung: {what}"))
}

/// Polls `cond` every 50 ms until it holds (bounded by [`HANG`]).
pub(crate) async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// `n` relays (epoll backend), each in its own /16 of 127/8 so strict diversity can be met.
pub(crate) fn relays(first_net: u8, n: u8) -> Vec<RelayProc> {
    (0..n)
        .map(|i| RelayProc::start_on("epoll", &format!("127.{}.0.1:0", first_net + i), &[]))
        .collect()
}

/// The directory entry of a relay process, with no region, ASN or load.
pub(crate) fn relay_info(r: &RelayProc) -> RelayInfo {
    RelayInfo {
        router_id: r.info.identity.to_hex(),
        hop: r.info.hop(),
        region: None,
        asn: None,
        load: None,
    }
}

/// A state file in a fresh directory, removed when the returned guard drops.
pub(crate) fn state_path(name: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::Builder::new()
        .prefix(&format!("ournet-client-{name}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
    let path = d.path().join("node.state");
    (d, path)
}

/// Takes `ids.len()` messages from `node` and checks they are exactly `ids`, each once, all
/// from `sender`.
pub(crate) async fn receive_each_once(
    node: &ournet_client::NodeClient,
    sender: ournet_proto::keys::IdentityPublicKey,
    ids: &[ournet_client::MessageId],
) {
    let mut seen = std::collections::HashSet::new();
    for _ in ids {
        let m = within("a message", node.recv())
            .await
            .unwrap_or_else(|| panic!("the node's receive queue closed"));
        assert_eq!(m.sender, sender);
        assert!(seen.insert(m.message_id), "delivered once");
    }
    assert_eq!(seen, ids.iter().copied().collect());
}

/// Fresh secret keys of a node: (identity, encryption). Kept as bytes so a test can sign
/// the node's address or restart it under the same keys.
pub(crate) fn keys() -> ([u8; 32], [u8; 32]) {
    let mut r = rng();
    (
        *IdentityKeypair::generate(&mut r).secret_bytes(),
        *EncryptionKeypair::generate(&mut r).secret_bytes(),
    )
}

/// A node with these keys on `dir`, aiming for `homes` homes and content with one.
pub(crate) fn node_config(
    (identity, encryption): &([u8; 32], [u8; 32]),
    dir: Arc<dyn RelayDirectory>,
    homes: usize,
) -> NodeConfig {
    let mut c = NodeConfig::new(
        IdentityKeypair::from_secret_bytes(identity),
        EncryptionKeypair::from_secret_bytes(encryption),
        dir,
    );
    c.target_connections = homes;
    c.min_connections = 1;
    c
}

/// Timeouts for tests that wait on outcomes: 20 s for delivery and for the ACK, 60 s for
/// the ACK of a queued message (generous on a loaded machine, short against [`HANG`]).
pub(crate) fn test_timeouts() -> Timeouts {
    Timeouts {
        delivery: Duration::from_secs(20),
        ack: Duration::from_secs(20),
        queued_ack: Duration::from_secs(60),
        ..Timeouts::default()
    }
}
