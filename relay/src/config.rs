//! The relay's configuration: a TOML file, overridden by command-line flags.
//!
//! ```toml
//! listen = "0.0.0.0:9001"          # the link listener (all workers share it: SO_REUSEPORT)
//! control = "127.0.0.1:9101"       # /health and /metrics; loopback by default
//! data_dir = "/var/lib/ournet-relay"
//! workers = 0                      # 0: one per core
//! backend = "auto"                 # auto | uring | epoll
//! pin_cores = true
//! drain_timeout_secs = 30
//! seeds = ["http://seed.example:8470"]   # register here (empty: no registration)
//! advertise = "203.0.113.7:9001"   # the published endpoint; default: `listen` if specific
//!
//! [seed]                           # see `SeedSettings`
//! heartbeat_secs = 300
//!
//! [limits]                         # see `Limits`
//! circuit_rate_per_sec = 3
//! circuit_burst = 90
//!
//! [offline]                        # see `OfflineLimits`
//! messages_per_node = 1000
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Which data-plane backend to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// io_uring if it can be set up, else epoll.
    Auto,
    /// io_uring only (fails if the kernel or a sandbox forbids it).
    Uring,
    /// tokio on epoll.
    Epoll,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where links are accepted.
    pub listen: SocketAddr,
    /// Where `/health` and `/metrics` are served.
    pub control: SocketAddr,
    /// Where keys live (created mode 0700, key files 0600).
    pub data_dir: PathBuf,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// The data-plane backend.
    pub backend: BackendChoice,
    /// Pin worker `i` to core `i`.
    pub pin_cores: bool,
    /// How long SIGTERM waits for circuits to end before destroying them.
    pub drain_timeout_secs: u64,
    /// Per-peer and per-relay caps.
    pub limits: Limits,
    /// Caps of the offline queue (PROTOCOL.md §7.4, spec §7.2, W26).
    pub offline: OfflineLimits,
    /// Seed URLs (`http://host:port`) to register with and heartbeat to; empty: none.
    pub seeds: Vec<String>,
    /// The link endpoint published in the descriptor. `None`: [`Config::listen`] when that is a
    /// specific IP (a relay must never publish `0.0.0.0`, W31). Port 0: the bound port.
    pub advertise: Option<SocketAddr>,
    /// Registration and heartbeat timing.
    pub seed: SeedSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9001)),
            control: SocketAddr::from(([127, 0, 0, 1], 9101)),
            data_dir: PathBuf::from("ournet-relay-data"),
            workers: 0,
            backend: BackendChoice::Auto,
            pin_cores: true,
            drain_timeout_secs: 30,
            limits: Limits::default(),
            offline: OfflineLimits::default(),
            seeds: Vec::new(),
            advertise: None,
            seed: SeedSettings::default(),
        }
    }
}

/// How the relay talks to its seeds (`crate::seed`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedSettings {
    /// Seconds between heartbeats until a seed states its own interval (`next_heartbeat_in`).
    pub heartbeat_secs: u64,
    /// Seconds one HTTP request to a seed may take, connection included.
    pub request_timeout_secs: u64,
    /// First retry delay after a failure, in seconds (doubled per failure, with jitter).
    pub backoff_min_secs: u64,
    /// Longest retry delay, in seconds.
    pub backoff_max_secs: u64,
    /// Nonces tried per PoW solution before giving up (and retrying after a backoff).
    pub max_pow_attempts: u64,
    /// Highest difficulty the relay agrees to solve; a seed asking more is refused.
    pub max_pow_difficulty: u32,
}

impl Default for SeedSettings {
    fn default() -> Self {
        Self {
            heartbeat_secs: 300,
            request_timeout_secs: 10,
            backoff_min_secs: 1,
            backoff_max_secs: 300,
            max_pow_attempts: 1 << 32,
            max_pow_difficulty: 32,
        }
    }
}

/// Caps that keep one peer (or all of them) from taking the relay's memory or CPU.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Open connections, all workers together.
    pub max_connections: usize,
    /// Open inbound connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Circuit creations per second one IP address earns (Tor's default: 3).
    pub circuit_rate_per_sec: f64,
    /// Circuit creations one IP address may burst (Tor's default: 90).
    pub circuit_burst: f64,
    /// Circuits on one link.
    pub max_circuits_per_conn: usize,
    /// Circuits per worker.
    pub max_circuits_per_worker: usize,
    /// Bytes any link may queue for sending beyond its circuits' windows: a link's cap is
    /// this plus a flow-control window per circuit on it
    /// (`ournet_proto::flow::SendQueuePolicy`), up to `worker_send_bytes`. Past its cap the
    /// link's heaviest circuit is destroyed.
    pub conn_out_bytes: usize,
    /// Bytes all links of one worker may queue for sending together (and the most one link
    /// may queue).
    pub worker_send_bytes: usize,
    /// Bytes buffered by the circuits of one worker; past it the heaviest are destroyed first.
    pub worker_memory_bytes: usize,
    /// ACK routes remembered (message id to sender circuit), all workers together.
    pub max_ack_routes: usize,
    /// CREATEs queued on a relay link that is still connecting.
    pub max_pending_creates: usize,
    /// Messages each worker's mailbox holds (deliveries, ACKs and credits from the other
    /// workers). A full mailbox sends a delivery to the offline queue, drops an ACK (the
    /// sender retries) and keeps a credit pending until there is room.
    pub mailbox_cap: usize,
    /// Whether EXTEND may name a loopback, private, link-local or otherwise non-global
    /// address. Off by default: a client must not make a relay connect into its own network.
    /// Local test networks turn it on.
    pub extend_to_private: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
            max_connections_per_ip: 64,
            circuit_rate_per_sec: 3.0,
            circuit_burst: 90.0,
            max_circuits_per_conn: 4096,
            max_circuits_per_worker: 200_000,
            conn_out_bytes: 4 << 20,
            worker_send_bytes: 256 << 20,
            worker_memory_bytes: 512 << 20,
            max_ack_routes: 100_000,
            max_pending_creates: 1024,
            mailbox_cap: crate::cross::MAILBOX_CAP,
            extend_to_private: false,
        }
    }
}

impl Limits {
    /// The send-queue caps of links and of the worker, from `conn_out_bytes` and
    /// `worker_send_bytes`.
    pub fn send_policy(&self) -> ournet_proto::flow::SendQueuePolicy {
        ournet_proto::flow::SendQueuePolicy {
            link_floor: self.conn_out_bytes,
            worker_cap: self.worker_send_bytes,
        }
    }

    /// Bytes one worker's send queues may hold before its queue load reads 100 %
    /// (`ournet_proto::flow::load_pct`): sixteen full links.
    pub fn worker_queue_budget(&self) -> usize {
        self.conn_out_bytes.saturating_mul(16)
    }
}

/// Caps of the offline queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfflineLimits {
    /// Messages kept per node (the reference's 1000; the oldest goes when full).
    pub messages_per_node: usize,
    /// Bytes kept per node (the oldest go when full).
    pub bytes_per_node: usize,
    /// How long a message is kept, in seconds (the reference's 3600).
    pub max_age_secs: u64,
    /// Nodes with a queue; a message for one more is refused.
    pub max_nodes: usize,
    /// Bytes in all queues; a message past it is refused.
    pub max_bytes: usize,
}

impl OfflineLimits {
    /// [`OfflineLimits::max_age_secs`] as a duration.
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_secs)
    }
}

impl Default for OfflineLimits {
    fn default() -> Self {
        Self {
            messages_per_node: 1000,
            bytes_per_node: 16 << 20,
            max_age_secs: 3600,
            max_nodes: 10_000,
            max_bytes: 256 << 20,
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error.
        source: toml::de::Error,
    },
}

impl Config {
    /// Reads a TOML file; missing fields take their defaults.
    ///
    /// # Errors
    /// [`ConfigError`] when the file cannot be read or parsed.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// The number of workers to start: [`Config::workers`], or one per core.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_file_keeps_the_defaults() {
        let c: Config = toml::from_str(
            "listen = \"127.0.0.1:0\"\nbackend = \"epoll\"\n[limits]\ncircuit_burst = 5.0\n",
        )
        .unwrap();
        assert_eq!(c.backend, BackendChoice::Epoll);
        assert_eq!(c.limits.circuit_burst, 5.0);
        assert_eq!(c.limits.circuit_rate_per_sec, 3.0);
        assert_eq!(c.offline.messages_per_node, 1000);
        assert!(toml::from_str::<Config>("nonsense = 1").is_err());
    }
}
