//! The client's errors, split by who is at fault.

use ournet_proto::address::AddressError;
use ournet_proto::envelope::EnvelopeError;
use ournet_proto::privacy::PrivacyConfigError;

use crate::directory::DirectoryError;
use crate::state::StateError;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A relay could not be reached, or its link handshake failed.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The link to a relay closed.
    #[error("link closed")]
    LinkClosed,
    /// A circuit failed to build or was destroyed.
    #[error("circuit failed: {0}")]
    Circuit(String),
    /// A circuit failed to build because the relay at path index `hop` could not be reached
    /// from the one before it (DESTROY with reason connect-failed).
    #[error("circuit failed: hop {hop} of the path is unreachable from the hop before it")]
    Unreachable {
        /// Index of the unreachable relay in the path.
        hop: usize,
    },
    /// Too few relays to build what was asked (homes or a path).
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
    /// Fewer home relays than `min_connections` could be reached.
    #[error("only {got} home relays reachable, {wanted} needed")]
    TooFewHomes {
        /// Homes connected.
        got: usize,
        /// `min_connections`.
        wanted: usize,
    },
    /// Local misuse: content too long, or an invalid recipient key.
    #[error("envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The recipient's address is malformed, badly signed or expired.
    #[error("address: {0}")]
    Address(#[from] AddressError),
    /// The state file could not be read or written.
    #[error("state: {0}")]
    State(#[from] StateError),
    /// The node is not started, or was stopped.
    #[error("node not running")]
    NotRunning,
    /// Local misuse: a configuration value out of range.
    #[error("bad configuration: {0}")]
    Config(&'static str),
    /// Local misuse: the privacy config is incoherent (for example a mix path longer than the
    /// onion format carries, or a mix `provider_url`).
    #[error("privacy config: {0}")]
    Privacy(#[from] PrivacyConfigError),
    /// `max_pending` sends are in flight: wait for some outcomes and send again.
    #[error("too many sends in flight")]
    Busy,
    /// No message with this id is known.
    #[error("unknown message id")]
    UnknownMessage,
}
