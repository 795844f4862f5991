//! The signed router descriptor: one document a router signs and every seed serves unchanged.
//!
//! The reference has no such document (spec W1): the seed serves the router's *registration*
//! signature, but the reference `DiscoveryClient` checks it against a different object, so every
//! genuine router fails verification. Here the router signs once, the seed relays the result
//! byte-for-byte in meaning, and two signatures travel with it:
//!
//! * `router_signature`: Ed25519 over the **spaced** canonical JSON of exactly
//!   `{router_id, endpoints, capacity, regions, features, registered_at}` (spec §3.2, last row
//!   but one). This is what the reference client's default `verify_signatures=True` path
//!   checks; it ignores every other field of the entry. The router, not the seed, picks
//!   `registered_at`, and the seed keeps it.
//! * `descriptor_signature`: Ed25519 over `"ournet-router-descriptor-v1\n"` followed by the
//!   **compact** canonical JSON of every descriptor field below except the two signatures,
//!   with `region` and `coordinates` always present (`null` when unset, although the JSON
//!   form omits them then, as the reference does). It covers the relay's X25519 `onion_key`
//!   (circuit handshake) and `link_key` (link Noise static key), `published_at`, `region` and
//!   `coordinates`, which the reference signature leaves open to substitution.
//!
//! ```text
//! { "router_id": hex32, "endpoints": ["host:port", ..], "capacity": {..}, "regions": [..],
//!   "features": [..], "registered_at": float, "region": "US" | null,
//!   "coordinates": [lat, lon] | null, "onion_key": hex32, "link_key": hex32,
//!   "published_at": float, "router_signature": hex64, "descriptor_signature": hex64 }
//! ```
//!
//! `capacity` is what the router signed; a load change is published as a new descriptor (a new
//! `published_at`), never edited by the seed. The seed's own view of liveness and load travels
//! beside it in the entry's unsigned `health` object.
//!
//! The seed also signs each `/discover` answer as a whole ([`sign_router_list`]), so a client
//! can pin seed keys. Parsing never panics and bounds every list and string.
#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use serde_json::{Map, Value, json};

use crate::canonical_json::{self, CanonicalError};
use crate::keys::{EncryptionPublicKey, IdentityKeypair, IdentityPublicKey, KeyError, Signature};

/// Domain label prefixed to the full-descriptor signature input.
pub const DESCRIPTOR_LABEL: &str = "ournet-router-descriptor-v1\n";
/// Domain label prefixed to the seed's `/discover` list signature input.
pub const ROUTER_LIST_LABEL: &str = "ournet-router-list-v1\n";
/// Most endpoints a descriptor may list.
pub const MAX_ENDPOINTS: usize = 8;
/// Most entries in `regions`, `features` or `capacity`.
pub const MAX_LIST_ITEMS: usize = 32;
/// Longest endpoint, region, feature or capacity string, in bytes.
pub const MAX_STRING_LEN: usize = 255;

/// Why a descriptor was refused. The `reason` strings are stable API (HTTP reasons).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptorError {
    /// A field is missing or has the wrong JSON type.
    #[error("field {0} missing or of the wrong type")]
    BadField(&'static str),
    /// A field is present but out of range (length, count, bounds, format).
    #[error("field {0} out of range")]
    OutOfRange(&'static str),
    /// A key or signature is not valid hex or not a curve point.
    #[error("bad key or signature in {field}: {source}")]
    BadKey {
        /// The field that held it.
        field: &'static str,
        /// What was wrong.
        source: KeyError,
    },
    /// `router_signature` does not verify.
    #[error("router_signature does not verify")]
    BadRouterSignature,
    /// `descriptor_signature` does not verify.
    #[error("descriptor_signature does not verify")]
    BadDescriptorSignature,
    /// A number could not be serialized canonically.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
}

/// The fields a router signs.
#[derive(Debug, Clone, PartialEq)]
pub struct DescriptorBody {
    /// The router's identity key; its hex is the router id.
    pub router_id: IdentityPublicKey,
    /// `host:port` strings, most preferred first.
    pub endpoints: Vec<String>,
    /// Static capacity as signed (for example `max_connections`, `bandwidth_mbps`).
    pub capacity: Map<String, Value>,
    /// Legacy free-form region tags.
    pub regions: Vec<String>,
    /// Feature tags.
    pub features: Vec<String>,
    /// When the router first registered (wall-clock seconds), chosen by the router.
    pub registered_at: f64,
    /// ISO-3166 alpha-2 country code, if the operator set one.
    pub region: Option<String>,
    /// `[latitude, longitude]`, if set.
    pub coordinates: Option<[f64; 2]>,
    /// X25519 key for the circuit handshake.
    pub onion_key: EncryptionPublicKey,
    /// X25519 static key of the link (Noise) layer.
    pub link_key: EncryptionPublicKey,
    /// When this version of the descriptor was made (wall-clock seconds); newer wins.
    pub published_at: f64,
}

impl DescriptorBody {
    /// Signs the body with the router's identity, producing the document the seed serves.
    ///
    /// # Errors
    /// [`DescriptorError::Canonical`] if a float is not finite.
    pub fn sign(self, identity: &IdentityKeypair) -> Result<SignedDescriptor, DescriptorError> {
        let router_signature = identity.sign(self.reference_message()?.as_bytes());
        let descriptor_signature = identity.sign(self.full_message()?.as_bytes());
        Ok(SignedDescriptor {
            body: self,
            router_signature,
            descriptor_signature,
        })
    }

    /// The spaced canonical JSON the reference `DiscoveryClient` verifies.
    ///
    /// # Errors
    /// [`DescriptorError::Canonical`] if a float is not finite.
    pub fn reference_message(&self) -> Result<String, DescriptorError> {
        let v = Value::Object(self.reference_map()?);
        Ok(canonical_json::to_spaced(&v)?)
    }

    /// The labelled compact canonical JSON under `descriptor_signature`.
    ///
    /// # Errors
    /// [`DescriptorError::Canonical`] if a float is not finite.
    pub fn full_message(&self) -> Result<String, DescriptorError> {
        let v = Value::Object(self.to_map()?);
        Ok(format!(
            "{DESCRIPTOR_LABEL}{}",
            canonical_json::to_compact(&v)?
        ))
    }

    /// The fields the reference signs (`router_signature`): the first part of every
    /// descriptor.
    fn reference_map(&self) -> Result<Map<String, Value>, DescriptorError> {
        let v = json!({
            "router_id": self.router_id.to_hex(),
            "endpoints": self.endpoints,
            "capacity": self.capacity,
            "regions": self.regions,
            "features": self.features,
            "registered_at": finite(self.registered_at)?,
        });
        match v {
            Value::Object(m) => Ok(m),
            _ => Err(DescriptorError::BadField("descriptor")),
        }
    }

    /// Every field: the reference's, then ours (the keys are sorted when serialized).
    fn to_map(&self) -> Result<Map<String, Value>, DescriptorError> {
        let coords = match self.coordinates {
            Some([lat, lon]) => json!([finite(lat)?, finite(lon)?]),
            None => Value::Null,
        };
        let mut m = self.reference_map()?;
        m.extend([
            ("region".to_owned(), json!(self.region)),
            ("coordinates".to_owned(), coords),
            ("onion_key".to_owned(), json!(self.onion_key.to_hex())),
            ("link_key".to_owned(), json!(self.link_key.to_hex())),
            ("published_at".to_owned(), json!(finite(self.published_at)?)),
        ]);
        Ok(m)
    }
}

/// A descriptor with its two signatures, not yet checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedDescriptor {
    /// The signed fields.
    pub body: DescriptorBody,
    /// Reference-compatible signature (spaced JSON of six fields).
    pub router_signature: Signature,
    /// Our signature over the whole body.
    pub descriptor_signature: Signature,
}

impl SignedDescriptor {
    /// Parses the JSON form (extra fields are ignored, as the reference client ignores them).
    ///
    /// # Errors
    /// [`DescriptorError::BadField`], [`DescriptorError::OutOfRange`] or
    /// [`DescriptorError::BadKey`].
    pub fn from_json(v: &Value) -> Result<Self, DescriptorError> {
        let o = v
            .as_object()
            .ok_or(DescriptorError::BadField("descriptor"))?;
        let body = DescriptorBody {
            router_id: IdentityPublicKey::from_hex(str_field(o, "router_id")?).map_err(
                |source| DescriptorError::BadKey {
                    field: "router_id",
                    source,
                },
            )?,
            endpoints: endpoints(o)?,
            capacity: capacity(o)?,
            regions: string_list(o, "regions")?,
            features: string_list(o, "features")?,
            registered_at: time_field(o, "registered_at")?,
            region: region(o)?,
            coordinates: coordinates(o)?,
            onion_key: x25519_field(o, "onion_key")?,
            link_key: x25519_field(o, "link_key")?,
            published_at: time_field(o, "published_at")?,
        };
        Ok(Self {
            body,
            router_signature: sig_field(o, "router_signature")?,
            descriptor_signature: sig_field(o, "descriptor_signature")?,
        })
    }

    /// Checks both signatures against `router_id`.
    ///
    /// # Errors
    /// [`DescriptorError::BadRouterSignature`] or [`DescriptorError::BadDescriptorSignature`].
    pub fn verify(self) -> Result<VerifiedDescriptor, DescriptorError> {
        let key = self.body.router_id;
        let reference = self.body.reference_message()?;
        let _ok = key
            .verify(reference.as_bytes(), &self.router_signature)
            .map_err(|_| DescriptorError::BadRouterSignature)?;
        let full = self.body.full_message()?;
        let _ok = key
            .verify(full.as_bytes(), &self.descriptor_signature)
            .map_err(|_| DescriptorError::BadDescriptorSignature)?;
        Ok(VerifiedDescriptor(self))
    }

    /// The JSON form: every body field plus both signatures. `region` and `coordinates` are
    /// omitted when unset, as the reference's `RouterRecord.to_dict` does.
    ///
    /// # Errors
    /// [`DescriptorError::Canonical`] if a float is not finite.
    pub fn to_json(&self) -> Result<Map<String, Value>, DescriptorError> {
        let mut m = self.body.to_map()?;
        if self.body.region.is_none() {
            m.remove("region");
        }
        if self.body.coordinates.is_none() {
            m.remove("coordinates");
        }
        m.insert(
            "router_signature".into(),
            self.router_signature.to_hex().into(),
        );
        m.insert(
            "descriptor_signature".into(),
            self.descriptor_signature.to_hex().into(),
        );
        Ok(m)
    }
}

/// A descriptor whose two signatures verified. Only [`SignedDescriptor::verify`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedDescriptor(SignedDescriptor);

impl VerifiedDescriptor {
    /// The checked descriptor.
    pub fn descriptor(&self) -> &SignedDescriptor {
        &self.0
    }

    /// The checked fields.
    pub fn body(&self) -> &DescriptorBody {
        &self.0.body
    }
}

/// Proof that a seed's list signature verified. Only [`verify_router_list`] makes one.
#[derive(Debug)]
#[must_use]
pub struct RouterListOk(());

/// The bytes under a `/discover` answer's `seed_signature`: the label, then the compact
/// canonical JSON of the answer object without its `seed_signature` member.
///
/// # Errors
/// [`DescriptorError::Canonical`] if a float is not finite.
pub fn router_list_message(answer: &Map<String, Value>) -> Result<String, DescriptorError> {
    let mut m = answer.clone();
    m.remove("seed_signature");
    let body = canonical_json::to_compact(&Value::Object(m))?;
    Ok(format!("{ROUTER_LIST_LABEL}{body}"))
}

/// Signs a `/discover` answer and inserts `seed_signature`.
///
/// # Errors
/// [`DescriptorError::Canonical`] if a float is not finite.
pub fn sign_router_list(
    seed: &IdentityKeypair,
    answer: &mut Map<String, Value>,
) -> Result<(), DescriptorError> {
    let sig = seed.sign(router_list_message(answer)?.as_bytes());
    answer.insert("seed_signature".into(), sig.to_hex().into());
    Ok(())
}

/// Checks a `/discover` answer against a pinned seed key.
///
/// # Errors
/// [`DescriptorError::BadField`] without a `seed_signature` string, [`DescriptorError::BadKey`]
/// for bad hex, [`DescriptorError::BadDescriptorSignature`] if it does not verify.
pub fn verify_router_list(
    answer: &Map<String, Value>,
    seed: &IdentityPublicKey,
) -> Result<RouterListOk, DescriptorError> {
    let sig = sig_field(answer, "seed_signature")?;
    seed.verify(router_list_message(answer)?.as_bytes(), &sig)
        .map(|_| RouterListOk(()))
        .map_err(|_| DescriptorError::BadDescriptorSignature)
}

fn finite(f: f64) -> Result<f64, CanonicalError> {
    if f.is_finite() {
        Ok(f)
    } else {
        Err(CanonicalError::NonFinite)
    }
}

fn str_field<'a>(o: &'a Map<String, Value>, k: &'static str) -> Result<&'a str, DescriptorError> {
    o.get(k)
        .and_then(Value::as_str)
        .ok_or(DescriptorError::BadField(k))
}

fn time_field(o: &Map<String, Value>, k: &'static str) -> Result<f64, DescriptorError> {
    let f = o
        .get(k)
        .and_then(Value::as_f64)
        .ok_or(DescriptorError::BadField(k))?;
    // Up to year 2286: anything else is a unit error or an attack on arithmetic.
    if f.is_finite() && (0.0..1.0e10).contains(&f) {
        Ok(f)
    } else {
        Err(DescriptorError::OutOfRange(k))
    }
}

fn sig_field(o: &Map<String, Value>, k: &'static str) -> Result<Signature, DescriptorError> {
    Signature::from_hex(str_field(o, k)?)
        .map_err(|source| DescriptorError::BadKey { field: k, source })
}

fn x25519_field(
    o: &Map<String, Value>,
    k: &'static str,
) -> Result<EncryptionPublicKey, DescriptorError> {
    EncryptionPublicKey::from_hex(str_field(o, k)?)
        .map_err(|source| DescriptorError::BadKey { field: k, source })
}

fn bounded_strings(v: &Value, k: &'static str, max: usize) -> Result<Vec<String>, DescriptorError> {
    let items = v.as_array().ok_or(DescriptorError::BadField(k))?;
    if items.len() > max {
        return Err(DescriptorError::OutOfRange(k));
    }
    items
        .iter()
        .map(|i| match i.as_str() {
            Some(s) if s.len() <= MAX_STRING_LEN => Ok(s.to_owned()),
            Some(_) => Err(DescriptorError::OutOfRange(k)),
            None => Err(DescriptorError::BadField(k)),
        })
        .collect()
}

fn string_list(o: &Map<String, Value>, k: &'static str) -> Result<Vec<String>, DescriptorError> {
    match o.get(k) {
        None => Ok(Vec::new()),
        Some(v) => bounded_strings(v, k, MAX_LIST_ITEMS),
    }
}

fn endpoints(o: &Map<String, Value>) -> Result<Vec<String>, DescriptorError> {
    let k = "endpoints";
    let eps = bounded_strings(
        o.get(k).ok_or(DescriptorError::BadField(k))?,
        k,
        MAX_ENDPOINTS,
    )?;
    let well_formed = |e: &String| {
        e.rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0))
    };
    if eps.is_empty() || !eps.iter().all(well_formed) {
        return Err(DescriptorError::OutOfRange(k));
    }
    Ok(eps)
}

fn capacity(o: &Map<String, Value>) -> Result<Map<String, Value>, DescriptorError> {
    let k = "capacity";
    let Some(v) = o.get(k) else {
        return Ok(Map::new());
    };
    let m = v.as_object().ok_or(DescriptorError::BadField(k))?;
    let scalar_ok = |v: &Value| match v {
        Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
        Value::String(s) => s.len() <= MAX_STRING_LEN,
        Value::Bool(_) | Value::Null => true,
        _ => false,
    };
    if m.len() > MAX_LIST_ITEMS || m.iter().any(|(key, v)| key.len() > 64 || !scalar_ok(v)) {
        return Err(DescriptorError::OutOfRange(k));
    }
    Ok(m.clone())
}

fn region(o: &Map<String, Value>) -> Result<Option<String>, DescriptorError> {
    match o.get("region") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() == 2 && s.chars().all(|c| c.is_ascii_alphabetic()) => {
            Ok(Some(s.clone()))
        }
        Some(Value::String(_)) => Err(DescriptorError::OutOfRange("region")),
        Some(_) => Err(DescriptorError::BadField("region")),
    }
}

fn coordinates(o: &Map<String, Value>) -> Result<Option<[f64; 2]>, DescriptorError> {
    let k = "coordinates";
    let items = match o.get(k) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(DescriptorError::BadField(k)),
    };
    let [lat, lon] = items.as_slice() else {
        return Err(DescriptorError::OutOfRange(k));
    };
    let (Some(lat), Some(lon)) = (lat.as_f64(), lon.as_f64()) else {
        return Err(DescriptorError::BadField(k));
    };
    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) {
        Ok(Some([lat, lon]))
    } else {
        Err(DescriptorError::OutOfRange(k))
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, reason = "test code")]
mod tests;
