//! A node's **recipient address** (PROTOCOL.md §7.6): who it is, how to encrypt to it, and
//! which home relays deliver to it, signed by the node.
//!
//! Senders reach a node through its home relays (§7.4): they build a circuit whose last hop is
//! one of them. The address carries everything that circuit needs (each home relay's identity,
//! onion key, link key and endpoint) so a sender needs no further lookup, and it is signed by
//! the node's identity key so whoever relays it (a chat app, a seed directory) cannot swap in
//! its own relays or encryption key. It expires: a node republishes when its homes change.
//!
//! Text form: `ournet1:` followed by the binary form in unpadded base64url, so apps can share
//! it as one string. Binary form (big-endian):
//!
//! ```text
//! version u8 = 1 | identity[32] | encryption_key[32] | issued_at u64 | expires_at u64
//!   | home_count u8 (1..=MAX_HOMES) | home* | signature[64]
//! home = identity[32] | onion_key[32] | link_key[32] | addr_type u8 (4 or 6) | addr[4|16] | port u16
//! signature = Ed25519(identity, "ournet-address-v1" | every byte before the signature)
//! ```
#![deny(clippy::indexing_slicing, clippy::panic)]

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::circuit::PathHop;
use crate::codec::{DecodeError, Reader, Writer};
use crate::keys::{EncryptionPublicKey, IdentityKeypair, IdentityPublicKey, Signature};

/// The text prefix (and version) of an address.
pub const ADDRESS_PREFIX: &str = "ournet1:";
/// The binary version byte.
const VERSION: u8 = 1;
/// Domain separation for the signature.
const SIG_CONTEXT: &[u8] = b"ournet-address-v1";
/// Most home relays an address lists (the node client keeps at most this many homes).
pub const MAX_HOMES: usize = 8;
/// Longest text form accepted (bounds the work before any parsing).
pub const MAX_ADDRESS_TEXT: usize = 2048;

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Not `ournet1:` + base64url, or too long.
    #[error("not an ournet1 address: {0}")]
    Format(&'static str),
    /// The binary form did not decode.
    #[error("malformed address: {0}")]
    Decode(#[from] DecodeError),
    /// The signature does not verify against the address's identity.
    #[error("address signature does not verify")]
    BadSignature,
    /// `now` is past `expires_at`, or the validity window is inverted.
    #[error("address expired or not yet valid")]
    Expired,
}

/// A node's signed recipient address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddress {
    /// The node's Ed25519 identity: senders check the envelope's signer against it.
    pub identity: IdentityPublicKey,
    /// The node's X25519 key for end-to-end envelopes.
    pub encryption_key: EncryptionPublicKey,
    /// Home relays, most preferred first.
    pub homes: Vec<PathHop>,
    /// Unix seconds when signed.
    pub issued_at: u64,
    /// Unix seconds after which senders must not use it.
    pub expires_at: u64,
    signature: Signature,
}

impl NodeAddress {
    /// Signs a new address for `identity`.
    ///
    /// # Errors
    /// [`AddressError::Format`] for no homes or more than [`MAX_HOMES`];
    /// [`AddressError::Expired`] if `expires_at <= issued_at`.
    pub fn sign(
        identity: &IdentityKeypair,
        encryption_key: EncryptionPublicKey,
        homes: Vec<PathHop>,
        issued_at: u64,
        expires_at: u64,
    ) -> Result<Self, AddressError> {
        if homes.is_empty() || homes.len() > MAX_HOMES {
            return Err(AddressError::Format(
                "an address lists 1 to MAX_HOMES homes",
            ));
        }
        if expires_at <= issued_at {
            return Err(AddressError::Expired);
        }
        let mut addr = Self {
            identity: identity.public(),
            encryption_key,
            homes,
            issued_at,
            expires_at,
            signature: Signature([0; 64]),
        };
        addr.signature = identity.sign(&addr.signed_message());
        Ok(addr)
    }

    /// Parses the text form and verifies the signature and validity at `now` (unix seconds).
    ///
    /// # Errors
    /// [`AddressError`]; never panics on any input.
    pub fn parse(text: &str, now: u64) -> Result<Self, AddressError> {
        let addr = Self::parse_unchecked_time(text)?;
        addr.check_time(now)?;
        Ok(addr)
    }

    /// Parses and verifies the signature, without looking at the clock (for stores that
    /// check expiry themselves).
    ///
    /// # Errors
    /// [`AddressError`] except `Expired`.
    pub fn parse_unchecked_time(text: &str) -> Result<Self, AddressError> {
        let text = text.trim();
        if text.len() > MAX_ADDRESS_TEXT {
            return Err(AddressError::Format("too long"));
        }
        let b64 = text
            .strip_prefix(ADDRESS_PREFIX)
            .ok_or(AddressError::Format("missing the ournet1: prefix"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| AddressError::Format("not base64url"))?;
        Self::from_bytes(&bytes)
    }

    /// Decodes the binary form and verifies its signature.
    ///
    /// # Errors
    /// [`AddressError`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AddressError> {
        let mut r = Reader::new(bytes);
        if r.take_u8("version")? != VERSION {
            return Err(DecodeError::Invalid("address version").into());
        }
        let identity = IdentityPublicKey::from_bytes(&r.take_array("identity")?)
            .map_err(|_| DecodeError::Invalid("identity key"))?;
        let encryption_key = EncryptionPublicKey(r.take_array("encryption key")?);
        let issued_at = r.take_u64("issued_at")?;
        let expires_at = r.take_u64("expires_at")?;
        let count = usize::from(r.take_u8("home count")?);
        if count == 0 || count > MAX_HOMES {
            return Err(DecodeError::Invalid("home count").into());
        }
        let mut homes = Vec::with_capacity(count);
        for _ in 0..count {
            homes.push(read_home(&mut r)?);
        }
        let signature = Signature(r.take_array("signature")?);
        r.finish()?;
        let addr = Self {
            identity,
            encryption_key,
            homes,
            issued_at,
            expires_at,
            signature,
        };
        addr.verify()?;
        Ok(addr)
    }

    /// Checks the validity window at `now` (unix seconds).
    ///
    /// # Errors
    /// [`AddressError::Expired`].
    pub fn check_time(&self, now: u64) -> Result<(), AddressError> {
        // A little clock skew is tolerated on issue time, none on expiry.
        if now >= self.expires_at || self.issued_at > now.saturating_add(300) {
            return Err(AddressError::Expired);
        }
        Ok(())
    }

    /// Verifies the signature over the fields as they are now. An address from [`Self::sign`]
    /// or [`Self::from_bytes`] verifies; one whose public fields were edited since does not.
    ///
    /// # Errors
    /// [`AddressError::BadSignature`].
    pub fn verify(&self) -> Result<(), AddressError> {
        let _verified = self
            .identity
            .verify(&self.signed_message(), &self.signature)
            .map_err(|_| AddressError::BadSignature)?;
        Ok(())
    }

    /// Whether a sender holding `held` should move to this address (the node's homes moved:
    /// rotation, failover): it verifies, is valid at `now` (unix seconds), belongs to `held`'s
    /// identity, was issued later, and lists other homes. Whoever serves addresses (a seed)
    /// can hide a newer one or offer an older one, but never make a sender take one that
    /// fails this.
    #[must_use]
    pub fn replaces(&self, held: &Self, now: u64) -> bool {
        let same_homes = self.homes.len() == held.homes.len()
            && self.homes.iter().all(|h| held.homes.contains(h));
        self.identity == held.identity
            && self.issued_at > held.issued_at
            && !same_homes
            && self.check_time(now).is_ok()
            && self.verify().is_ok()
    }

    /// The binary form.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.signed_body();
        out.extend_from_slice(&self.signature.0);
        out
    }

    fn signed_body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(90 + self.homes.len() * 115 + 64);
        let mut w = Writer::new(&mut out);
        w.put_u8(VERSION)
            .put(&self.identity.to_bytes())
            .put(&self.encryption_key.0)
            .put_u64(self.issued_at)
            .put_u64(self.expires_at)
            // At most MAX_HOMES by construction (sign and from_bytes check it).
            .put_u8(u8::try_from(self.homes.len()).unwrap_or(u8::MAX));
        for home in &self.homes {
            write_home(&mut w, home);
        }
        out
    }

    fn signed_message(&self) -> Vec<u8> {
        let mut msg = SIG_CONTEXT.to_vec();
        msg.extend_from_slice(&self.signed_body());
        msg
    }
}

impl std::fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{ADDRESS_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.to_bytes())
        )
    }
}

fn write_home(w: &mut Writer<'_>, home: &PathHop) {
    w.put(&home.identity.to_bytes())
        .put(&home.onion_key.0)
        .put(&home.link_key.0);
    match home.addr.ip() {
        IpAddr::V4(ip) => w.put_u8(4).put(&ip.octets()),
        IpAddr::V6(ip) => w.put_u8(6).put(&ip.octets()),
    };
    w.put_u16(home.addr.port());
}

fn read_home(r: &mut Reader<'_>) -> Result<PathHop, AddressError> {
    let identity = IdentityPublicKey::from_bytes(&r.take_array("home identity")?)
        .map_err(|_| DecodeError::Invalid("home identity key"))?;
    let onion_key = EncryptionPublicKey(r.take_array("home onion key")?);
    let link_key = EncryptionPublicKey(r.take_array("home link key")?);
    let ip: IpAddr = match r.take_u8("home address type")? {
        4 => (r.take_array::<4>("home IPv4 address")?).into(),
        6 => (r.take_array::<16>("home IPv6 address")?).into(),
        _ => return Err(DecodeError::Invalid("home address type").into()),
    };
    let port = r.take_u16("home port")?;
    Ok(PathHop {
        identity,
        onion_key,
        link_key,
        addr: SocketAddr::new(ip, port),
    })
}

#[cfg(test)]
#[expect(
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "tests index known-length buffers"
)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::keys::EncryptionKeypair;

    fn hop(rng: &mut ChaCha20Rng, addr: &str) -> PathHop {
        PathHop {
            identity: IdentityKeypair::generate(rng).public(),
            onion_key: EncryptionKeypair::generate(rng).public(),
            link_key: EncryptionKeypair::generate(rng).public(),
            addr: addr.parse().expect("test address"),
        }
    }

    fn sample() -> (IdentityKeypair, NodeAddress) {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let id = IdentityKeypair::generate(&mut rng);
        let enc = EncryptionKeypair::generate(&mut rng).public();
        let homes = vec![
            hop(&mut rng, "192.0.2.1:9001"),
            hop(&mut rng, "[2001:db8::1]:443"),
        ];
        let addr = NodeAddress::sign(&id, enc, homes, 1000, 5000).expect("sign");
        (id, addr)
    }

    #[test]
    fn text_form_round_trips_and_verifies() {
        let (id, addr) = sample();
        let text = addr.to_string();
        assert!(text.starts_with(ADDRESS_PREFIX));
        let back = NodeAddress::parse(&text, 2000).expect("parse");
        assert_eq!(back, addr);
        assert_eq!(back.identity, id.public());
        assert_eq!(
            back.homes[1].addr,
            "[2001:db8::1]:443".parse().expect("addr")
        );
    }

    #[test]
    fn expiry_is_enforced() {
        let (_, addr) = sample();
        let text = addr.to_string();
        assert_eq!(NodeAddress::parse(&text, 5000), Err(AddressError::Expired));
        assert_eq!(NodeAddress::parse(&text, 600), Err(AddressError::Expired));
        assert!(
            NodeAddress::parse(&text, 701).is_ok(),
            "5 min of issue-time skew"
        );
    }

    #[test]
    fn every_byte_is_covered_by_the_signature() {
        let (_, addr) = sample();
        let bytes = addr.to_bytes();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(
                NodeAddress::from_bytes(&b).is_err(),
                "flip at byte {i} accepted"
            );
        }
    }

    #[test]
    fn malformed_text_is_refused_without_panic() {
        let (_, addr) = sample();
        let text = addr.to_string();
        for cut in 0..text.len() {
            assert!(NodeAddress::parse_unchecked_time(&text[..cut]).is_err());
        }
        assert!(NodeAddress::parse_unchecked_time("ournet1:!!!").is_err());
        assert!(NodeAddress::parse_unchecked_time(&"a".repeat(5000)).is_err());
        assert!(NodeAddress::parse_unchecked_time(&format!("{text}AA")).is_err());
    }

    #[test]
    fn home_count_is_bounded() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let id = IdentityKeypair::generate(&mut rng);
        let enc = EncryptionKeypair::generate(&mut rng).public();
        assert!(NodeAddress::sign(&id, enc, vec![], 1, 2).is_err());
        let many = (0..=MAX_HOMES)
            .map(|_| hop(&mut rng, "192.0.2.1:1"))
            .collect();
        assert!(NodeAddress::sign(&id, enc, many, 1, 2).is_err());
    }

    #[test]
    fn only_a_later_verified_address_of_the_same_node_with_other_homes_replaces() {
        let (id, held) = sample();
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let enc = held.encryption_key;
        let moved = vec![hop(&mut rng, "192.0.2.9:9001")];
        let newer = NodeAddress::sign(&id, enc, moved.clone(), 2000, 6000).expect("sign");
        assert!(newer.replaces(&held, 2500));
        assert!(!held.replaces(&newer, 2500), "older");
        assert!(!newer.replaces(&newer, 2500), "not issued later");
        assert!(!newer.replaces(&held, 6000), "expired");
        let same = NodeAddress::sign(&id, enc, held.homes.clone(), 2000, 6000).expect("sign");
        assert!(
            !same.replaces(&held, 2500),
            "same homes: nothing to move to"
        );
        let other = IdentityKeypair::generate(&mut rng);
        let foreign = NodeAddress::sign(&other, enc, moved, 2000, 6000).expect("sign");
        assert!(!foreign.replaces(&held, 2500), "another node's address");
        let mut edited = newer;
        edited.homes = vec![hop(&mut rng, "198.51.100.1:1")];
        assert_eq!(edited.verify(), Err(AddressError::BadSignature));
        assert!(!edited.replaces(&held, 2500), "homes edited after signing");
    }
}
