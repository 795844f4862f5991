//! Registration with the seed (PROTOCOL.md §11): the plug-in point, not wired yet.
//!
//! The seed service, its proof of work and the signed descriptor format are being built on
//! another branch. When they land, a `SeedClient` implementation registers the relay's
//! [`Descriptor`] (solving the seed-issued PoW) and sends signed heartbeats with the load the
//! workers publish in [`crate::metrics`]; the server calls it from its control thread. Until
//! then the relay runs with [`NoSeed`], and tests read the descriptor from the ready line.

use std::net::SocketAddr;

use ournet_proto::keys::{EncryptionPublicKey, IdentityPublicKey};

/// What a descriptor must carry for the data path: identity, address, onion key, link key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The Ed25519 identity (router id).
    pub identity: IdentityPublicKey,
    /// Where links are accepted.
    pub addr: SocketAddr,
    /// The X25519 onion key.
    pub onion_key: EncryptionPublicKey,
    /// The X25519 link key.
    pub link_key: EncryptionPublicKey,
}

/// A relay's load as it reports it in heartbeats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadReport {
    /// Open connections.
    pub connections: usize,
    /// Open circuits.
    pub circuits: usize,
    /// Load in percent (PROTOCOL.md §8).
    pub load_pct: f64,
}

/// Why talking to the seed failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// No seed is configured.
    #[error("no seed configured")]
    NotConfigured,
}

/// Registers the relay with seeds and keeps it listed.
pub trait SeedClient: Send {
    /// Registers `descriptor`.
    ///
    /// # Errors
    /// [`SeedError`] when the seed cannot be reached or refuses.
    fn register(&mut self, descriptor: &Descriptor) -> Result<(), SeedError>;

    /// Sends a heartbeat with the current load.
    ///
    /// # Errors
    /// [`SeedError`] when the seed cannot be reached or refuses.
    fn heartbeat(&mut self, load: &LoadReport) -> Result<(), SeedError>;
}

/// No seed: the relay is reachable only by those who read its descriptor elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSeed;

impl SeedClient for NoSeed {
    fn register(&mut self, _descriptor: &Descriptor) -> Result<(), SeedError> {
        Err(SeedError::NotConfigured)
    }

    fn heartbeat(&mut self, _load: &LoadReport) -> Result<(), SeedError> {
        Err(SeedError::NotConfigured)
    }
}
