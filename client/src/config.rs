//! What a node is started with ([`NodeConfig`]) and what each send may ask ([`SendOptions`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_proto::privacy::{
    CoverTrafficConfig, LoopCoverConfig, PrivacyLevel, TrafficAnalysisMitigationConfig,
};

use crate::directory::RelayDirectory;

/// How strictly relays are spread over networks (W21, W22).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Diversity {
    /// Never two homes, or two hops of a path, in the same IPv4 /16 (IPv6 /32) or the same
    /// known ASN: fewer homes, or a failed path, rather than a relaxed rule.
    #[default]
    Strict,
    /// Prefer distinct networks, but fill up from the same ones when the directory has no
    /// other (a test network on one host).
    Prefer,
}

/// Timeouts of a node. Every one only turns a hang into an error or a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect plus link handshake.
    pub connect: Duration,
    /// Waiting for DELIVERY_STATUS after a message was queued on its circuit.
    pub delivery: Duration,
    /// Waiting for the end-to-end ACK after DELIVERED.
    pub ack: Duration,
    /// Waiting for the end-to-end ACK after QUEUED (recipient offline): the circuit is kept
    /// open this long so the ACK can come back when the recipient comes online.
    pub queued_ack: Duration,
    /// Time between health PINGs on each home circuit.
    pub ping_interval: Duration,
    /// A home that has not answered a PING in this long is dead.
    pub ping_timeout: Duration,
    /// How long a failed relay is not chosen again as a home.
    pub home_cooldown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            delivery: Duration::from_secs(30),
            ack: Duration::from_secs(30),
            queued_ack: Duration::from_secs(600),
            ping_interval: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(30),
            home_cooldown: Duration::from_secs(60),
        }
    }
}

/// Replacing healthy homes on a schedule (spec §5.11), so no relay stays a node's home long
/// enough to profile it.
///
/// Unlike the reference, the clock starts when the node starts (W37: its first maintenance
/// tick rotated at once), and a rotation is make-before-break: the new home is authenticated
/// and the re-signed address published before the old home starts draining, and the old home
/// keeps delivering for [`Rotation::drain_grace`] before its circuit and link close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotation {
    /// Whether homes are rotated at all (failover replaces dead homes either way).
    pub enabled: bool,
    /// The oldest home is rotated once the last rotation (or the start) is this old (spec
    /// `rotation_interval`, 3600 s).
    pub interval: Duration,
    /// A home this old is rotated whatever the interval says (spec `rotation_max_age`, 7200 s).
    pub max_age: Duration,
    /// How long a rotated-out home keeps its circuit: senders holding the old address still
    /// reach the node through it, and the relay delivers what it queued for the node. Then
    /// its circuit closes, and its link too unless a send circuit still uses it.
    pub drain_grace: Duration,
}

impl Default for Rotation {
    /// The reference's schedule, with a ten-minute drain (as long as a sender waits for the
    /// ACK of a queued message by default, [`Timeouts::queued_ack`]).
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(3600),
            max_age: Duration::from_secs(7200),
            drain_grace: Duration::from_secs(600),
        }
    }
}

/// Everything [`crate::create_node_client`] needs.
#[derive(Debug)]
pub struct NodeConfig {
    /// The node's Ed25519 identity: signs envelopes, HOME_AUTH and the node's address.
    pub identity: IdentityKeypair,
    /// The node's X25519 key: senders seal envelopes to it.
    pub encryption: EncryptionKeypair,
    /// Where relays come from.
    pub directory: Arc<dyn RelayDirectory>,
    /// Home relays to keep (the reference's default 5; at most
    /// [`ournet_proto::address::MAX_HOMES`]).
    pub target_connections: usize,
    /// Fewest homes `start` accepts (default 2).
    pub min_connections: usize,
    /// How strictly homes and paths are spread over networks.
    pub diversity: Diversity,
    /// The privacy level at start ([`crate::NodeClient::set_privacy_level`] changes it).
    pub privacy_level: PrivacyLevel,
    /// Overrides the preset of `privacy_level` (for example a faster constant rate, or
    /// mixing: `mix_network.enabled = true` gives 3- to 5-hop send paths, a fresh circuit per
    /// message and loop cover traffic). It must pass `validate()`.
    pub privacy_config: Option<TrafficAnalysisMitigationConfig>,
    /// Cover traffic while idle (spec §5.20): DROP cells on home circuits.
    pub cover: CoverTrafficConfig,
    /// Loop cover traffic while the privacy config's `mix_network` is enabled with
    /// `loop_cover_traffic`: the mean interval (default 10 s), the return timeout, the loss
    /// ratio that raises an alarm (logged at warn; a blamed home is left, a blamed first hop
    /// avoided) and the least time between two such reactions (default 10 min).
    pub loop_cover: LoopCoverConfig,
    /// The one state file (W23); `None` keeps state in memory only.
    pub state_path: Option<PathBuf>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// How often the maintenance task checks the homes: tops them up to the target and
    /// rotates one when due (spec: every 60 s). A lost home is replaced at once, not at the
    /// next check.
    pub maintenance_interval: Duration,
    /// Home rotation.
    pub rotation: Rotation,
    /// Attempts after the first before a send fails (W5: bounded).
    pub max_retries: u32,
    /// How long the node's signed address stays valid.
    pub address_ttl: Duration,
    /// Messages the app has not taken yet before the node stops reading from its homes.
    pub receive_queue: usize,
    /// Sends in flight (each holds its envelope in memory and in the state file) before
    /// `send_message` refuses with [`crate::ClientError::Busy`].
    pub max_pending: usize,
}

impl NodeConfig {
    /// A config with the reference defaults: 5 homes, at least 2, LOW privacy, strict
    /// diversity, no state file, 3 retries, 4096 sends in flight, maintenance every minute
    /// and the reference's rotation schedule.
    pub fn new(
        identity: IdentityKeypair,
        encryption: EncryptionKeypair,
        directory: Arc<dyn RelayDirectory>,
    ) -> Self {
        Self {
            identity,
            encryption,
            directory,
            target_connections: 5,
            min_connections: 2,
            diversity: Diversity::Strict,
            privacy_level: PrivacyLevel::Low,
            privacy_config: None,
            cover: CoverTrafficConfig::DEFAULT,
            loop_cover: LoopCoverConfig::DEFAULT,
            state_path: None,
            timeouts: Timeouts::default(),
            maintenance_interval: Duration::from_secs(60),
            rotation: Rotation::default(),
            max_retries: 3,
            address_ttl: Duration::from_secs(24 * 3600),
            receive_queue: 1024,
            max_pending: 4096,
        }
    }
}

/// Options of one send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendOptions {
    /// Overrides [`NodeConfig::max_retries`] for this message.
    pub max_retries: Option<u32>,
}

impl SendOptions {
    /// These options with at most `n` retries after the first attempt.
    #[must_use]
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }
}
