//! `ournet-proto`: the sans-IO core of our-network.
//!
//! This crate is the protocol and nothing else: wire formats, fixed-size cells and their
//! codecs, the link and circuit handshakes, the onion cell crypto, the end-to-end envelope,
//! proof of work, and the QoS and privacy policies. It takes bytes, the current time and an RNG
//! as arguments and hands back bytes to send, events and deadlines. It opens no socket, reads
//! no clock, starts no thread and draws no ambient randomness (`proto/clippy.toml` bans them).
//!
//! `relay/`, `client/` and `seed/` are the IO adapters around it. The byte-level protocol is
//! specified in `proto/PROTOCOL.md`; each module names the section it implements.
#![forbid(unsafe_code)]

pub mod cell;
pub mod codec;
pub mod ct;
pub mod handshake;
pub mod keys;
pub mod link;
pub mod link_msg;
pub mod onion;
/// Traffic-analysis mitigations: privacy levels, batching, jitter, constant rate, cover traffic.
pub mod privacy;
/// Contribution-based quality of service: scores, priorities, tiers and scheduler weights.
pub mod qos;
pub mod relay_msg;

pub use keys::{
    EncryptionKeypair, EncryptionPublicKey, IdentityKeypair, IdentityPublicKey, KeyError,
    Signature, generate_encryption_keypair, generate_identity_keypair,
};
