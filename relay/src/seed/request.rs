//! The signed requests the relay sends a seed: its descriptor, the `/register` body (descriptor
//! fields, PoW over a seed challenge, timestamp, body signature) and the `/heartbeat` body.
//!
//! The formats are the seed's (`ournet_seed::client` builds the same bodies for tests and the
//! load generator); the relay builds them from `ournet-proto` alone so that it does not link
//! the seed service. Body signatures are Ed25519 over the compact canonical JSON of the body
//! without `signature` (spec §3.2).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ournet_proto::canonical_json;
use ournet_proto::descriptor::{DescriptorBody, SignedDescriptor};
use ournet_proto::pow::{leading_zero_bits, pow_hash};
use serde_json::{Map, Value, json};

use super::SeedError;
use crate::core::RelayContext;

/// Nonces tried between two looks at the shutdown flag.
const POW_CHUNK: u64 = 1 << 16;

/// What every request of this relay is built from.
#[derive(Debug)]
pub(super) struct Plan {
    /// Keys, configuration and the shutdown flag.
    pub(super) ctx: Arc<RelayContext>,
    /// The published link endpoint.
    pub(super) endpoint: SocketAddr,
    /// Kept across registrations and restarts.
    pub(super) registered_at: f64,
    /// When the relay started (uptime is measured from here).
    pub(super) started: std::time::Instant,
}

impl Plan {
    /// The router id: the identity key in hex.
    pub(super) fn router_id(&self) -> String {
        self.ctx.keys.identity.public().to_hex()
    }

    /// The descriptor, published at `now`.
    ///
    /// # Errors
    /// [`SeedError::Descriptor`] for a non-finite time.
    pub(super) fn descriptor(&self, now: f64) -> Result<SignedDescriptor, SeedError> {
        let keys = &self.ctx.keys;
        let limits = &self.ctx.config.limits;
        let capacity = json!({
            "max_connections": limits.max_connections,
            "max_circuits": limits.max_circuits_per_worker.saturating_mul(self.ctx.metrics.len()),
            "workers": self.ctx.metrics.len(),
        });
        let body = DescriptorBody {
            router_id: keys.identity.public(),
            endpoints: vec![self.endpoint.to_string()],
            capacity: capacity.as_object().cloned().unwrap_or_default(),
            regions: Vec::new(),
            features: vec!["circuits".into(), "home".into()],
            registered_at: self.registered_at,
            region: None,
            coordinates: None,
            onion_key: keys.onion.public(),
            link_key: keys.link.link_public(),
            published_at: now,
        };
        Ok(body.sign(&keys.identity)?)
    }

    /// A `/register` body with the PoW `nonce` over `challenge` at `difficulty`.
    ///
    /// # Errors
    /// [`SeedError::Descriptor`] for a non-finite time.
    pub(super) fn register_body(
        &self,
        challenge: &str,
        difficulty: u32,
        nonce: u64,
        now: f64,
    ) -> Result<Value, SeedError> {
        let mut o = self.descriptor(now)?.to_json()?;
        o.insert(
            "proof_of_work".into(),
            json!({"challenge": challenge, "nonce": nonce, "difficulty": difficulty}),
        );
        o.insert("timestamp".into(), json!(now));
        Ok(self.signed(o))
    }

    /// A `/heartbeat` body carrying `metrics`, signed at `now`.
    pub(super) fn heartbeat_body(&self, metrics: Map<String, Value>, now: f64) -> Value {
        let mut o = metrics;
        o.insert("router_id".into(), self.router_id().into());
        o.insert("timestamp".into(), json!(now));
        self.signed(o)
    }

    fn signed(&self, mut o: Map<String, Value>) -> Value {
        o.remove("signature");
        // Canonical JSON refuses only non-finite floats, which no caller puts here.
        let msg = canonical_json::to_compact(&Value::Object(o.clone())).unwrap_or_default();
        let sig = self.ctx.keys.identity.sign(msg.as_bytes());
        o.insert("signature".into(), sig.to_hex().into());
        Value::Object(o)
    }

    /// Searches a nonce for `challenge` at `difficulty` (the seed's PoW, `ournet_proto::pow`),
    /// looking at the shutdown flag between chunks. Blocking: run it off the runtime threads.
    ///
    /// # Errors
    /// [`SeedError::PowExhausted`] past the configured attempt bound, [`SeedError::Cancelled`]
    /// on shutdown.
    pub(super) fn solve(&self, challenge: &str, difficulty: u32) -> Result<u64, SeedError> {
        let max = self.ctx.config.seed.max_pow_attempts;
        let id = self.router_id();
        let mut start = 0u64;
        while start < max {
            if self.ctx.shutdown.load(Ordering::Relaxed) {
                return Err(SeedError::Cancelled);
            }
            let end = start.saturating_add(POW_CHUNK).min(max);
            if let Some(n) = (start..end)
                .find(|n| leading_zero_bits(&pow_hash(challenge, *n, &id)) >= difficulty)
            {
                return Ok(n);
            }
            start = end;
        }
        Err(SeedError::PowExhausted(max))
    }
}

/// Seconds since the Unix epoch (the seeds' signed timestamps and descriptor times).
pub(super) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
