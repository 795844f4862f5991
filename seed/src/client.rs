//! Router-side builders for the signed requests this seed accepts: registration (descriptor,
//! PoW over a seed challenge, timestamp, body signature), heartbeat and misbehavior report.
//!
//! Pure: time is an argument, and the PoW search is bounded. The relay, the load generator and
//! the tests use these, so there is one definition of what a valid request looks like.

use ournet_proto::canonical_json;
use ournet_proto::descriptor::{DescriptorBody, DescriptorError, SignedDescriptor};
use ournet_proto::keys::{EncryptionPublicKey, IdentityKeypair};
use ournet_proto::pow::{self, PowError};
use serde_json::{Map, Value, json};

/// Errors while building a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The descriptor could not be signed.
    #[error(transparent)]
    Descriptor(#[from] DescriptorError),
    /// No PoW solution within the attempt bound.
    #[error(transparent)]
    Pow(#[from] PowError),
}

/// A router identity and the descriptor fields it publishes.
#[derive(Debug)]
pub struct RouterIdentity {
    /// The identity key.
    pub identity: IdentityKeypair,
    /// Endpoints (`host:port`).
    pub endpoints: Vec<String>,
    /// Signed capacity.
    pub capacity: Map<String, Value>,
    /// Country code.
    pub region: Option<String>,
    /// Circuit handshake key.
    pub onion_key: EncryptionPublicKey,
    /// Link key.
    pub link_key: EncryptionPublicKey,
    /// Chosen at first registration and kept.
    pub registered_at: f64,
}

impl RouterIdentity {
    /// The router id (hex key).
    pub fn router_id(&self) -> String {
        self.identity.public().to_hex()
    }

    /// A descriptor published at `published_at`.
    ///
    /// # Errors
    /// [`BuildError::Descriptor`] for non-finite floats.
    pub fn descriptor(&self, published_at: f64) -> Result<SignedDescriptor, BuildError> {
        let body = DescriptorBody {
            router_id: self.identity.public(),
            endpoints: self.endpoints.clone(),
            capacity: self.capacity.clone(),
            regions: Vec::new(),
            features: vec!["circuits".into()],
            registered_at: self.registered_at,
            region: self.region.clone(),
            coordinates: None,
            onion_key: self.onion_key,
            link_key: self.link_key,
            published_at,
        };
        Ok(body.sign(&self.identity)?)
    }

    /// A `/register` body: descriptor fields, PoW over `challenge` at `difficulty`, timestamp
    /// `now`, and the body signature.
    ///
    /// # Errors
    /// [`BuildError::Pow`] if no nonce is found within `max_attempts`.
    pub fn register_body(
        &self,
        challenge: &str,
        difficulty: u32,
        now: f64,
        max_attempts: u64,
    ) -> Result<Map<String, Value>, BuildError> {
        let mut o = self.descriptor(now)?.to_json()?;
        let nonce = pow::solve(challenge, &self.router_id(), difficulty, max_attempts)?;
        o.insert(
            "proof_of_work".into(),
            json!({"challenge": challenge, "nonce": nonce, "difficulty": difficulty}),
        );
        o.insert("timestamp".into(), json!(now));
        Ok(self.signed(o))
    }

    /// A signed `/heartbeat` body with the given metrics, timestamp `now`.
    pub fn heartbeat_body(&self, now: f64, metrics: &Map<String, Value>) -> Map<String, Value> {
        let mut o = metrics.clone();
        o.insert("router_id".into(), self.router_id().into());
        o.insert("timestamp".into(), json!(now));
        self.signed(o)
    }

    /// A signed `/report_misbehavior` body about `router_id`.
    pub fn report_body(&self, router_id: &str, severity: f64, now: f64) -> Map<String, Value> {
        let o = json!({
            "type": "misbehavior_report",
            "report_id": format!("r-{}-{now}", self.router_id().chars().take(8).collect::<String>()),
            "reporter_id": self.router_id(),
            "router_id": router_id,
            "misbehavior_type": "message_drop",
            "evidence": [],
            "metrics": null,
            "severity": severity,
            "timestamp": now,
        });
        self.signed(o.as_object().cloned().unwrap_or_default())
    }

    /// Adds `signature` over the compact canonical JSON of `o` (spec §3.2).
    pub fn signed(&self, mut o: Map<String, Value>) -> Map<String, Value> {
        o.remove("signature");
        let msg = canonical_json::to_compact(&Value::Object(o.clone())).unwrap_or_default();
        o.insert(
            "signature".into(),
            self.identity.sign(msg.as_bytes()).to_hex().into(),
        );
        o
    }
}
