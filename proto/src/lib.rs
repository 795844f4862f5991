//! `ournet-proto`: the sans-IO core of our-network.
//!
//! This crate is the protocol and nothing else: wire formats, fixed-size cells and their
//! codecs, the link and circuit handshakes, the onion cell crypto, the end-to-end envelope,
//! and the QoS and privacy policies. It takes bytes, the current time and an RNG as arguments
//! and hands back bytes to send, events and deadlines. It opens no socket, reads no clock,
//! starts no thread and draws no ambient randomness (`proto/clippy.toml` bans them).
//! `relay/`, `client/` and `seed/` are the IO adapters around it.
//!
//! The protocol is specified in `proto/PROTOCOL.md`; each module names the section it
//! implements.
//!
//! | layer | modules |
//! |---|---|
//! | keys and primitives | [`keys`] (identities, encryption keys), [`ct`] (constant-time tags), [`codec`] (the one checked `Reader`/`Writer`) |
//! | discovery (seed) | [`descriptor`] (the signed router descriptor and router list), [`pow`] (registration PoW, seed-issued challenges), [`canonical_json`] (the signed JSON forms) |
//! | links (§3) | [`link`] (Noise handshake, per-cell link crypto, channel state machine), [`link_msg`] (CREATE, CREATED, DESTROY, PADDING) |
//! | cells (§4, §5) | [`cell`] (layout, header, commands), [`onion`] (per-hop-integrity onion layer and its batch API) |
//! | circuits (§6-§8) | [`handshake`] (ntor), [`circuit`] (client and relay state machines), [`relay_msg`] (relay messages), [`frag`] (fragmentation), [`flow`] (windows, back pressure) |
//! | end to end (§10) | [`envelope`] (our binary envelope, ACK tokens) |
//! | policy | [`qos`] (contribution-based QoS, scheduler weights), [`privacy`] (privacy levels, batching, jitter, constant rate, cover, mix paths and loops) |
//! | compatibility | [`reference`](mod@reference) (the Python reference's formats, for interop only) |
#![forbid(unsafe_code)]

pub mod address;
pub mod canonical_json;
pub mod cell;
pub mod circuit;
pub mod codec;
pub mod ct;
pub mod descriptor;
/// Our end-to-end envelope: sign-then-encrypt, bound to the recipient (W6, W15, W16).
pub mod envelope;
pub mod flow;
pub mod frag;
pub mod handshake;
pub mod keys;
pub mod link;
pub mod link_msg;
pub mod onion;
pub mod pow;
/// Traffic-analysis mitigations: privacy levels, batching, jitter, constant rate, cover traffic,
/// mix paths and loop cover traffic.
pub mod privacy;
/// Contribution-based quality of service: scores, priorities, tiers and scheduler weights.
pub mod qos;
/// The Python reference's crypto formats, for interop and cross-checks only (leak hop position).
pub mod reference;
pub mod relay_msg;
pub mod revocation;
#[cfg(test)]
mod test_util;

pub use envelope::{decrypt_message, encrypt_message};
pub use keys::{
    EncryptionKeypair, EncryptionPublicKey, IdentityKeypair, IdentityPublicKey, KeyError,
    Signature, generate_encryption_keypair, generate_identity_keypair,
};
/// The reference onion (spec §3.4). Interop only: it leaks hop position (W8); our circuits use
/// the fixed-size cells of [`onion`].
pub use reference::{create_onion, peel_onion};
