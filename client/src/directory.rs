//! Where a node client gets relays from: the seam between discovery and circuits.
//!
//! [`crate::discovery`]'s `DiscoveryClient` is the real [`RelayDirectory`] (verified seed
//! lists); [`StaticDirectory`] serves a fixed list (tests, private networks). Path selection
//! and home selection take relays only through this trait, so they can be tested without a
//! seed.

use async_trait::async_trait;
use ournet_proto::address::NodeAddress;
use ournet_proto::circuit::PathHop;
use ournet_proto::keys::IdentityPublicKey;

/// A relay as a client needs it: how to reach it and what to judge diversity by.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayInfo {
    /// The seed's router id: the hex of the relay's identity key (`proto::descriptor`).
    pub router_id: String,
    /// Identity, onion key, link key and link endpoint: enough to build a circuit through it.
    pub hop: PathHop,
    /// The region the relay declared, if any.
    pub region: Option<String>,
    /// The autonomous system the seed mapped its address to, if known.
    pub asn: Option<u32>,
    /// The relay's load as last reported (0-1), if known.
    pub load: Option<f64>,
}

/// What callers may ask of a directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preferences {
    /// Prefer relays declaring this region.
    pub region: Option<String>,
    /// Never return these router ids.
    pub exclude: Vec<String>,
}

/// Why a directory could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// No seed answered with a list that verified.
    #[error("no seed answered with a verified list: {0}")]
    Unavailable(String),
    /// Fewer relays are known than the caller needs.
    #[error("only {got} relays known, {wanted} needed")]
    TooFew {
        /// How many were available.
        got: usize,
        /// How many were asked for.
        wanted: usize,
    },
}

/// A source of relays.
#[async_trait]
pub trait RelayDirectory: Send + Sync + std::fmt::Debug + 'static {
    /// Up to `count` relays, diverse by /16 and ASN where the directory can tell; an error
    /// rather than a silent shortfall when none can be had.
    async fn relays(
        &self,
        count: usize,
        prefs: &Preferences,
    ) -> Result<Vec<RelayInfo>, DirectoryError>;

    /// Publishes a node's newly signed address where senders look addresses up; a node calls
    /// it whenever its homes change (start, failover, rotation). The default does nothing: a
    /// fixed list has nowhere to publish, and the app shares the address itself.
    ///
    /// # Errors
    /// [`DirectoryError::Unavailable`] when nowhere took it.
    async fn publish(&self, address: &NodeAddress) -> Result<(), DirectoryError> {
        let _ = address;
        Ok(())
    }

    /// The address `identity` published last, where senders look addresses up, so that a
    /// sender whose message was queued at a home the node has left can follow it (the node
    /// client checks the answer with `NodeAddress::replaces` before using it: a directory is
    /// not trusted to verify). The default knows none: `Ok(None)`, and sends behave as
    /// without lookups.
    ///
    /// # Errors
    /// [`DirectoryError::Unavailable`] when nowhere gave an answer.
    async fn lookup_address(
        &self,
        identity: &IdentityPublicKey,
    ) -> Result<Option<NodeAddress>, DirectoryError> {
        let _ = identity;
        Ok(None)
    }
}

/// A fixed list of relays.
#[derive(Debug, Clone, Default)]
pub struct StaticDirectory(pub Vec<RelayInfo>);

#[async_trait]
impl RelayDirectory for StaticDirectory {
    async fn relays(
        &self,
        count: usize,
        prefs: &Preferences,
    ) -> Result<Vec<RelayInfo>, DirectoryError> {
        let out: Vec<RelayInfo> = self
            .0
            .iter()
            .filter(|r| !prefs.exclude.contains(&r.router_id))
            .take(count)
            .cloned()
            .collect();
        if out.is_empty() && count > 0 {
            return Err(DirectoryError::TooFew {
                got: 0,
                wanted: count,
            });
        }
        Ok(out)
    }
}
