//! Circuit state machines (PROTOCOL.md §6, §7): the client's view of a whole circuit and a
//! relay's view of its one hop.
//!
//! Both are sans-IO. Cells come in through `handle_*`; cells to send and events come out
//! through `poll_*`, in the order each type's doc states; time is an argument and deadlines
//! come out of `poll_timeout`. The adapter moves sealed bodies between links and calls these;
//! it decides nothing about what a cell means.
//!
//! Every queue here has a cap and a stated policy when full: control messages and queued
//! messages refuse with [`CircuitError::QueueFull`]; a peer that overflows a window or a queue
//! of ours is violating the protocol, and the circuit is destroyed.

use std::net::SocketAddr;
use std::time::Duration;

use crate::codec::DecodeError;
use crate::flow::FlowError;
use crate::frag::FragError;
use crate::handshake::HandshakeError;
use crate::keys::{EncryptionPublicKey, IdentityPublicKey};
use crate::link_msg::DestroyReason;
use crate::onion::OnionError;

pub mod client;
mod queues;
pub mod relay;

pub use client::{ClientCircuit, ClientEvent};
pub use relay::{ForwardAction, RelayCircuit, RelayEvent};

/// How long a client waits for a circuit to be built (the reference's
/// `circuit_build_timeout`).
pub const CIRCUIT_BUILD_TIMEOUT: Duration = Duration::from_secs(10);
/// Most control messages (EXTENDED, SENDME, PONG, ACK...) queued on one circuit direction.
pub const MAX_CONTROL_QUEUE: usize = 64;
/// Most bytes of whole messages queued for sending on one circuit direction.
pub const MAX_QUEUED_BYTES: usize = 32 * 1024 * 1024;

/// A relay on a path, as its signed descriptor gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathHop {
    /// Ed25519 identity.
    pub identity: IdentityPublicKey,
    /// X25519 key for the circuit handshake.
    pub onion_key: EncryptionPublicKey,
    /// X25519 key for the link handshake.
    pub link_key: EncryptionPublicKey,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Why a circuit failed. Every variant ends the circuit; [`CircuitError::destroy_reason`] is
/// what goes in the DESTROY cell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CircuitError {
    /// An onion integrity check failed.
    #[error("onion integrity failure")]
    Integrity,
    /// A relay message did not parse.
    #[error("malformed relay message: {0}")]
    Malformed(#[from] DecodeError),
    /// A message arrived that this state does not accept.
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// A circuit handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The peer broke flow control.
    #[error("flow control: {0}")]
    Flow(#[from] FlowError),
    /// Reassembly failed.
    #[error("reassembly: {0}")]
    Frag(#[from] FragError),
    /// A queue of ours is full (local: the caller should back off).
    #[error("queue full")]
    QueueFull,
    /// The circuit is closed.
    #[error("circuit closed")]
    Closed,
    /// The build did not finish in time.
    #[error("circuit build timed out")]
    Timeout,
}

/// A message a circuit could not take, handed back so the caller loses nothing (it can queue
/// it elsewhere or answer REFUSED).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Why it was refused.
    pub error: CircuitError,
    /// The message, unchanged.
    pub envelope: Vec<u8>,
}

impl CircuitError {
    /// The reason to put in DESTROY.
    pub fn destroy_reason(&self) -> DestroyReason {
        match self {
            Self::Integrity => DestroyReason::INTEGRITY,
            Self::Handshake(_) => DestroyReason::HANDSHAKE,
            Self::QueueFull => DestroyReason::RESOURCE_LIMIT,
            Self::Timeout => DestroyReason::TIMEOUT,
            Self::Closed => DestroyReason::NONE,
            _ => DestroyReason::PROTOCOL,
        }
    }
}

impl From<OnionError> for CircuitError {
    fn from(e: OnionError) -> Self {
        match e {
            OnionError::Integrity => Self::Integrity,
            _ => Self::Protocol("onion layer misuse"),
        }
    }
}

/// The domain string a home node signs with its link's channel binding (PROTOCOL.md §7.4).
pub const HOME_AUTH_DOMAIN: &[u8] = b"ournet-home-auth-v1";

/// The bytes a node signs to prove its identity to its home relay over one link.
pub fn home_auth_message(channel_binding: &[u8; 32]) -> Vec<u8> {
    [HOME_AUTH_DOMAIN, channel_binding].concat()
}

/// Which hop of a circuit's path to blame for a DESTROY that arrived while `hops_built` of
/// its `path_len` hops had answered.
///
/// A relay that cannot reach the next hop of an EXTEND destroys the circuit with
/// [`DestroyReason::CONNECT_FAILED`] (PROTOCOL.md §6): hop `hops_built - 1` answered, so the
/// relay it was asked to reach, index `hops_built`, is the unreachable one, not the hop that
/// reported it. Any other reason, or a DESTROY before the first hop answered or after the
/// build, names nobody: the caller then knows no more than "this circuit failed".
pub fn blame_destroy(path_len: usize, hops_built: usize, reason: DestroyReason) -> Option<usize> {
    (reason == DestroyReason::CONNECT_FAILED && hops_built >= 1 && hops_built < path_len)
        .then_some(hops_built)
}

#[cfg(test)]
mod tests;
