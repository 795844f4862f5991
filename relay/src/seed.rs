//! Registration with seeds and signed heartbeats (PROTOCOL.md §11; seed API: spec §4.1, §6.1).
//!
//! For each configured seed URL the control thread runs one task ([`spawn`]):
//!
//! ```text
//!  GET /challenge ─► solve PoW (blocking pool) ─► POST /register ──accepted──► heartbeats
//!        ▲                ▲                            │                          │
//!        │                └── insufficient_pow: re-solve at required_difficulty   │
//!        └──────────── network error or refusal: backoff ◄─── not_registered ─────┘
//! ```
//!
//! The relay publishes one [`ournet_proto::descriptor::SignedDescriptor`] with its identity,
//! onion and link keys and its *advertised* endpoint, never the wildcard bind address (W31).
//! Unlike the reference router it adapts to the difficulty the seed answers with (W31) and
//! reports measured load and uptime (W31): see [`load`]. The PoW runs on tokio's blocking
//! pool of the control runtime, so no data-plane worker ever stalls, and a seed that is down
//! only shows in the log and `/metrics`: the data plane does not depend on it.
//!
//! What this module does not do: speak HTTPS (no TLS stack in the relay yet), or publish a new
//! descriptor when the onion key rotates (keys do not rotate yet).

mod http;
pub mod load;
mod request;
mod session;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ournet_proto::descriptor::DescriptorError;

use crate::core::RelayContext;

pub use http::SeedUrl;

/// Why talking to a seed failed, or why registration cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// The relay listens on a wildcard address and no `--advertise-addr` names a specific
    /// one: publishing `0.0.0.0` would make it unreachable (W31).
    #[error("listening on {0}: set --advertise-addr to the address peers can reach")]
    NoAdvertiseAddr(SocketAddr),
    /// A seed URL is not `http://host[:port][/base]`.
    #[error("bad seed URL {url:?}: {why}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Connecting, sending or reading failed.
    #[error("seed unreachable: {0}")]
    Network(String),
    /// The seed did not answer within the request timeout.
    #[error("seed request timed out")]
    Timeout,
    /// The seed answered with an error status.
    #[error("seed refused ({status}): {reason}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The `reason` of the answer, or `"-"`.
        reason: String,
    },
    /// The seed's answer lacks a field the relay needs.
    #[error("malformed seed answer: {0}")]
    BadAnswer(&'static str),
    /// The seed asks for more PoW than [`crate::config::SeedSettings::max_pow_difficulty`].
    #[error("seed asks for difficulty {0}, above our limit")]
    DifficultyTooHigh(u32),
    /// No PoW nonce was found within the attempt bound.
    #[error("no PoW solution within {0} attempts")]
    PowExhausted(u64),
    /// The relay is shutting down.
    #[error("shutting down")]
    Cancelled,
    /// The descriptor could not be signed (a non-finite time).
    #[error(transparent)]
    Descriptor(#[from] DescriptorError),
    /// The persisted registration time could not be read or written.
    #[error("{path}: {source}")]
    State {
        /// The file.
        path: std::path::PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
}

/// Counters of the seed tasks, rendered in `/metrics` (all seeds together).
#[derive(Debug, Default)]
pub struct SeedMetrics {
    /// Accepted registrations.
    pub registrations: AtomicU64,
    /// Failed registration attempts (network, refusal, PoW).
    pub registration_failures: AtomicU64,
    /// Accepted heartbeats.
    pub heartbeats: AtomicU64,
    /// Failed heartbeats (network or refusal); the data plane is unaffected.
    pub heartbeat_failures: AtomicU64,
    /// Seeds at which the relay is registered now (gauge).
    pub registered: AtomicU64,
    /// The last PoW difficulty solved (gauge).
    pub pow_difficulty: AtomicU64,
}

impl SeedMetrics {
    /// `(name, type, value)` rows for [`crate::metrics::render`].
    pub fn rows(&self) -> [(&'static str, &'static str, u64); 6] {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (
                "ournet_seed_registrations_total",
                "counter",
                v(&self.registrations),
            ),
            (
                "ournet_seed_registration_failures_total",
                "counter",
                v(&self.registration_failures),
            ),
            (
                "ournet_seed_heartbeats_total",
                "counter",
                v(&self.heartbeats),
            ),
            (
                "ournet_seed_heartbeat_failures_total",
                "counter",
                v(&self.heartbeat_failures),
            ),
            ("ournet_seed_registered", "gauge", v(&self.registered)),
            (
                "ournet_seed_pow_difficulty",
                "gauge",
                v(&self.pow_difficulty),
            ),
        ]
    }
}

/// The endpoint to publish: `advertise` if given, else the bound listen address; either way it
/// must be a specific IP, and port 0 stands for the bound port.
///
/// # Errors
/// [`SeedError::NoAdvertiseAddr`] when the result would be a wildcard address.
pub fn advertised_endpoint(
    advertise: Option<SocketAddr>,
    bound: SocketAddr,
) -> Result<SocketAddr, SeedError> {
    let mut addr = advertise.unwrap_or(bound);
    if addr.ip().is_unspecified() {
        return Err(SeedError::NoAdvertiseAddr(addr));
    }
    if addr.port() == 0 {
        addr.set_port(bound.port());
    }
    Ok(addr)
}

/// Starts one registration task per configured seed on the current tokio runtime (the
/// control thread's); `started` is when the relay started. Returns at once; with no seeds
/// configured it does nothing.
///
/// # Panics
/// Outside a tokio runtime.
///
/// # Errors
/// [`SeedError::BadUrl`] for a malformed seed URL, [`SeedError::State`] when the registration
/// time cannot be persisted in the data directory.
pub fn spawn(
    ctx: &Arc<RelayContext>,
    endpoint: SocketAddr,
    started: std::time::Instant,
    metrics: &Arc<SeedMetrics>,
) -> Result<(), SeedError> {
    if ctx.config.seeds.is_empty() {
        return Ok(());
    }
    let urls = ctx
        .config
        .seeds
        .iter()
        .map(|u| SeedUrl::parse(u).map_err(SeedError::from))
        .collect::<Result<Vec<_>, _>>()?;
    let registered_at = registered_at(&ctx.config.data_dir, request::unix_now())?;
    let plan = Arc::new(request::Plan {
        ctx: ctx.clone(),
        endpoint,
        registered_at,
        started,
    });
    for url in urls {
        tracing::info!(seed = %url, %endpoint, "registering with seed");
        let task = session::Session::new(url, plan.clone(), metrics.clone());
        tokio::spawn(task.run());
    }
    Ok(())
}

/// The `registered_at` the relay signs: chosen at its first registration and kept across
/// restarts (a seed refuses a descriptor whose `registered_at` changed), in the file
/// `registered_at` of the data directory.
fn registered_at(dir: &Path, now: f64) -> Result<f64, SeedError> {
    let path = dir.join("registered_at");
    let err = |source| SeedError::State {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite())
            .ok_or_else(|| err(std::io::Error::other("not a time"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let t = now.floor();
            std::fs::write(&path, format!("{t}\n")).map_err(err)?;
            Ok(t)
        }
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_bind_is_never_published() {
        let any: SocketAddr = "0.0.0.0:9001".parse().unwrap();
        assert!(matches!(
            advertised_endpoint(None, any),
            Err(SeedError::NoAdvertiseAddr(_))
        ));
        let ext: SocketAddr = "203.0.113.7:0".parse().unwrap();
        assert_eq!(
            advertised_endpoint(Some(ext), any).unwrap(),
            "203.0.113.7:9001".parse().unwrap()
        );
        let bound: SocketAddr = "127.0.0.2:4000".parse().unwrap();
        assert_eq!(advertised_endpoint(None, bound).unwrap(), bound);
        let v6any: SocketAddr = "[::]:1".parse().unwrap();
        assert!(advertised_endpoint(Some(v6any), bound).is_err());
    }

    #[test]
    fn registered_at_is_chosen_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("ournet-relay-regat-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let first = registered_at(&dir, 1_700_000_000.7).unwrap();
        assert_eq!(first, 1_700_000_000.0);
        assert_eq!(registered_at(&dir, 1_800_000_000.0).unwrap(), first);
        std::fs::write(dir.join("registered_at"), "nonsense").unwrap();
        assert!(registered_at(&dir, 1.0).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
