//! Long-term keys: Ed25519 identities and X25519 encryption keys.
//!
//! Secret halves live in types that zeroize on drop, have no `Clone`, `Serialize` or derived
//! `Debug`, and never compare with `==`. Public halves are plain values with a hex form, because
//! the seed's JSON API and the reference package carry keys as 64 lowercase hex characters
//! (spec §3.1). A passed signature check returns a [`SignatureOk`] token that only this module
//! can build, so code that needs a verified input can ask for the token by type.
//!
//! Implements PROTOCOL.md §2 ("Keys and identities").

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// Errors from decoding or checking keys and signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The bytes are not a valid Ed25519 public key (not a curve point).
    #[error("invalid Ed25519 public key")]
    InvalidIdentityKey,
    /// A hex string had the wrong length or a non-hex character.
    #[error("invalid hex encoding of a {what}")]
    BadHex {
        /// What the hex was meant to hold.
        what: &'static str,
    },
    /// The signature does not verify under the key.
    #[error("signature verification failed")]
    BadSignature,
}

/// Proof that a signature verified. Only [`IdentityPublicKey::verify`] makes one.
#[derive(Debug)]
#[must_use]
pub struct SignatureOk(());

/// An Ed25519 identity key pair: a relay's, a node's or a seed's long-term identity.
pub struct IdentityKeypair {
    signing: SigningKey,
}

impl IdentityKeypair {
    /// Makes a fresh identity from `rng`.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        Self {
            signing: SigningKey::generate(rng),
        }
    }

    /// Rebuilds an identity from its 32-byte secret seed (as stored on disk).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// The 32-byte secret seed, for persistence. Zeroized when dropped.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The public half.
    pub fn public(&self) -> IdentityPublicKey {
        IdentityPublicKey(self.signing.verifying_key())
    }

    /// Signs `msg` (pure Ed25519, RFC 8032).
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.signing.sign(msg).to_bytes())
    }
}

impl std::fmt::Debug for IdentityKeypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdentityKeypair {{ public: {} }}", self.public())
    }
}

/// An Ed25519 public key, checked to be a valid curve point.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityPublicKey(VerifyingKey);

impl IdentityPublicKey {
    /// Decodes 32 bytes.
    ///
    /// # Errors
    /// [`KeyError::InvalidIdentityKey`] if the bytes are not a curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| KeyError::InvalidIdentityKey)
    }

    /// Decodes 64 hex characters (either case).
    ///
    /// # Errors
    /// [`KeyError::BadHex`] or [`KeyError::InvalidIdentityKey`].
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        Self::from_bytes(&hex32(s, "Ed25519 public key")?)
    }

    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Lowercase hex, the form used as router id and node id (spec §3.1).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// Verifies `sig` over `msg`. Uses `verify_strict`, which rejects small-order keys and
    /// non-canonical signatures, so a signature has one valid encoding (no malleability).
    ///
    /// # Errors
    /// [`KeyError::BadSignature`].
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<SignatureOk, KeyError> {
        let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
        self.0
            .verify_strict(msg, &sig)
            .map(|()| SignatureOk(()))
            .map_err(|_| KeyError::BadSignature)
    }
}

impl std::fmt::Display for IdentityPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdentityPublicKey({})", self.to_hex())
    }
}

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// Decodes 128 hex characters.
    ///
    /// # Errors
    /// [`KeyError::BadHex`].
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let mut out = [0u8; 64];
        hex::decode_to_slice(s, &mut out).map_err(|_| KeyError::BadHex { what: "signature" })?;
        Ok(Self(out))
    }

    /// Lowercase hex (128 characters), the JSON form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", self.to_hex())
    }
}

/// An X25519 key pair for end-to-end encryption or a relay's circuit-handshake (onion) key.
pub struct EncryptionKeypair {
    secret: x25519_dalek::StaticSecret,
    public: EncryptionPublicKey,
}

impl EncryptionKeypair {
    /// Makes a fresh key pair from `rng`.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        Self::from_secret_bytes(&random_array(rng))
    }

    /// Rebuilds a key pair from its 32-byte secret (as stored on disk). Clamping is applied by
    /// X25519 itself, so any 32 bytes are a valid secret.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        let secret = x25519_dalek::StaticSecret::from(*secret);
        let public = EncryptionPublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        Self { secret, public }
    }

    /// The 32-byte secret, for persistence. Zeroized when dropped.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// The public half.
    pub fn public(&self) -> EncryptionPublicKey {
        self.public
    }

    /// X25519 with a peer's public key. Returns `None` when the result is all zero (the peer
    /// sent a small-order point), which every handshake must treat as failure.
    pub fn diffie_hellman(&self, peer: &EncryptionPublicKey) -> Option<SharedSecret> {
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
        shared
            .was_contributory()
            .then(|| SharedSecret(Zeroizing::new(shared.to_bytes())))
    }
}

impl std::fmt::Debug for EncryptionKeypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptionKeypair {{ public: {:?} }}", self.public)
    }
}

/// An X25519 public key (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncryptionPublicKey(pub [u8; 32]);

impl EncryptionPublicKey {
    /// Decodes 64 hex characters.
    ///
    /// # Errors
    /// [`KeyError::BadHex`].
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        hex32(s, "X25519 public key").map(Self)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for EncryptionPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptionPublicKey({})", self.to_hex())
    }
}

/// The output of an X25519 exchange. Zeroized on drop; only KDFs should read it.
pub struct SharedSecret(Zeroizing<[u8; 32]>);

impl SharedSecret {
    /// The raw secret, to feed a KDF.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// Makes an Ed25519 identity key pair (the reference's `generate_identity_keypair()`; the RNG is
/// an argument here).
pub fn generate_identity_keypair(rng: &mut (impl RngCore + CryptoRng)) -> IdentityKeypair {
    IdentityKeypair::generate(rng)
}

/// Makes an X25519 encryption key pair (the reference's `generate_encryption_keypair()`).
pub fn generate_encryption_keypair(rng: &mut (impl RngCore + CryptoRng)) -> EncryptionKeypair {
    EncryptionKeypair::generate(rng)
}

/// Fills a fresh array from `rng`.
pub(crate) fn random_array<const N: usize>(rng: &mut (impl RngCore + CryptoRng)) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill_bytes(&mut out);
    out
}

fn hex32(s: &str, what: &'static str) -> Result<[u8; 32], KeyError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| KeyError::BadHex { what })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn sign_verify_and_reject() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let id = generate_identity_keypair(&mut rng);
        let sig = id.sign(b"hello");
        assert!(id.public().verify(b"hello", &sig).is_ok());
        assert_eq!(
            id.public().verify(b"hellO", &sig).unwrap_err(),
            KeyError::BadSignature
        );
        let other = generate_identity_keypair(&mut rng);
        assert!(other.public().verify(b"hello", &sig).is_err());
    }

    #[test]
    fn hex_round_trips_and_rejects() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let id = generate_identity_keypair(&mut rng);
        let hex = id.public().to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(IdentityPublicKey::from_hex(&hex).unwrap(), id.public());
        assert_eq!(
            IdentityPublicKey::from_hex(hex.get(..62).unwrap()).unwrap_err(),
            KeyError::BadHex {
                what: "Ed25519 public key"
            }
        );
        let restored = IdentityKeypair::from_secret_bytes(&id.secret_bytes());
        assert_eq!(restored.public(), id.public());
        let sig = id.sign(b"m");
        assert_eq!(Signature::from_hex(&sig.to_hex()).unwrap(), sig);
    }

    #[test]
    fn x25519_agrees_and_rejects_small_order() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let a = generate_encryption_keypair(&mut rng);
        let b = generate_encryption_keypair(&mut rng);
        let ab = a.diffie_hellman(&b.public()).unwrap();
        let ba = b.diffie_hellman(&a.public()).unwrap();
        assert_eq!(ab.as_bytes(), ba.as_bytes());
        assert!(a.diffie_hellman(&EncryptionPublicKey([0u8; 32])).is_none());
        let restored = EncryptionKeypair::from_secret_bytes(&a.secret_bytes());
        assert_eq!(restored.public(), a.public());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let id = generate_identity_keypair(&mut rng);
        let secret_hex = hex::encode(*id.secret_bytes());
        assert!(!format!("{id:?}").contains(&secret_hex));
        let enc = generate_encryption_keypair(&mut rng);
        let secret_hex = hex::encode(*enc.secret_bytes());
        assert!(!format!("{enc:?}").contains(&secret_hex));
    }
}
