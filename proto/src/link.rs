//! Links: the encrypted, authenticated connection between two adjacent nodes of a circuit
//! (PROTOCOL.md §3).
//!
//! A link starts with a Noise handshake ([`noise`]): `Noise_NK` when a client connects to a
//! relay (the client stays anonymous and authenticates the relay by its link key from the
//! signed descriptor), `Noise_IK` between relays (both ends authenticated; the initiator's
//! Ed25519 identity certificate travels encrypted). Then both ends exchange fixed-size cells
//! protected by [`LinkCrypto`]: every header block is enciphered and authenticated, and every
//! non-RELAY body is sealed with AES-256-GCM. RELAY bodies are not encrypted again: the onion
//! layer already changes every byte of them at every hop and authenticates them end to end
//! (§5), so a relay makes one full AEAD pass per cell instead of Tor's three (TLS in, relay
//! crypto, TLS out). What a link observer can and cannot learn is PROTOCOL.md §3.4.

pub mod channel;
pub mod crypto;
pub mod noise;

pub use crypto::{LinkCrypto, LinkError};
pub use noise::{
    Established, HANDSHAKE_TIMEOUT, LINK_VERSION, LinkHandshakeError, LinkIdentity, LinkInitiator,
    LinkKind, LinkResponder,
};
