//! `ournet-client`: the library apps link in to be a node of our-network.
//!
//! A node keeps one-hop circuits to several **home relays** that deliver messages to it, and
//! sends through 3-hop circuits whose last hop is a home of the recipient (PROTOCOL.md §7);
//! with mixing on (`mix_network.enabled` in the privacy config), through 3- to 5-hop circuits
//! of random length, one per message, plus loop cover messages the node sends to itself.
//! Messages are end-to-end envelopes (`proto::envelope`): the sender is authenticated, the
//! recipient ACKs with a token only it can compute, senders retry a bounded number of times,
//! and the recipient hands each message to the app exactly once, across restarts.
//!
//! This crate is an IO adapter (STYLE.md §1): it moves bytes between tokio sockets and the
//! sans-IO state machines of `ournet-proto`, and decides no protocol question itself. It does
//! not discover relays: [`directory::RelayDirectory`] is the seam where a directory (a fixed
//! list, or the discovery client) plugs in.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ournet_client::{NodeConfig, SendOptions, create_node_client};
//! use ournet_client::directory::StaticDirectory;
//! use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
//! # async fn example(relays: StaticDirectory, bob: ournet_proto::address::NodeAddress)
//! #     -> Result<(), ournet_client::ClientError> {
//! let mut rng = rand_core::OsRng;
//! let mut config = NodeConfig::new(
//!     IdentityKeypair::generate(&mut rng),
//!     EncryptionKeypair::generate(&mut rng),
//!     Arc::new(relays),
//! );
//! config.state_path = Some("alice.state".into());
//! let alice = create_node_client(config)?;
//! alice.start().await?;
//! println!("my address: {}", alice.address().expect("homes are up"));
//!
//! let id = alice.send_message(&bob, b"hello", SendOptions::default()).await?;
//! println!("{:?}", alice.wait_outcome(id).await?);
//! while let Some(msg) = alice.recv().await {
//!     println!("{} sent {} bytes", msg.sender, msg.content.len());
//! }
//! alice.stop().await;
//! # Ok(()) }
//! ```
//!
//! Relays on one host share an IPv4 /16, and [`Diversity::Strict`] (the default) never puts
//! two of them in one node's homes or in one path: a test network on one machine either binds
//! its relays to distinct /16s of 127/8 (`127.1.0.1`, `127.2.0.1`, ...) or sets
//! [`Diversity::Prefer`].
//!
//! Modules: [`config`] (what a node starts with), [`directory`] (where relays come from),
//! [`stats`] (counters), [`state`] (the state file format); the link driver, home relays,
//! sending and receiving are private.
#![forbid(unsafe_code)]

pub mod config;
mod dedup;
pub mod directory;
pub mod discovery;
mod diversity;
mod error;
mod journal;
mod link;
mod node;
mod pacing;
mod rng;
pub mod state;
pub mod stats;

pub use config::{Diversity, NodeConfig, Rotation, SendOptions, Timeouts};
pub use error::ClientError;
pub use node::{
    HomeStatus, MessageId, NodeClient, ReceivedMessage, SendOutcome, create_node_client,
};
pub use ournet_proto;
pub use stats::NodeStats;
