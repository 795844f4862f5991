//! Our end-to-end envelope: what a sender seals for a recipient, carried opaquely by relays.
//!
//! Relays see only the outer layer: a version byte, a fresh ephemeral X25519 key and AEAD
//! ciphertext. The sender's identity and signature are inside (sign-then-encrypt), so no relay
//! learns who is talking to the recipient.
//!
//! ```text
//! envelope (what relays carry):
//! +---------+---------------------+--------------------------------------------+
//! | version | ephemeral X25519 E  | AES-256-GCM(k, n, inner, aad = version‖E)  |
//! |  0x01   |        32           |            len(inner) + 16 (tag)           |
//! +---------+---------------------+--------------------------------------------+
//!
//! k (32) ‖ n (12) = HKDF-SHA256(ikm  = X25519(e, R),
//!                               salt = E ‖ R,
//!                               info = "ournet-e2e-v1")
//!
//! inner (the plaintext):
//! +-----------------+-----------+------------+-----------+-------------------+
//! | sender Ed25519  | signature | message_id | timestamp |      content      |
//! |       32        |    64     |     16     | u64 BE, 8 | rest (any bytes)  |
//! +-----------------+-----------+------------+-----------+-------------------+
//!
//! signature = Ed25519(sender, "ournet-e2e-sig-v1" ‖ R ‖ E ‖ message_id ‖ timestamp
//!                             ‖ SHA-256(content))
//! ```
//!
//! `R` is the recipient's X25519 public key and `e`/`E` a key pair made for this message only.
//! Why each part is there:
//!
//! * **The sender is authenticated** (W16): [`decrypt_message`] returns the sender key that
//!   the signature verified under, never a self-asserted id.
//! * **The signature names the recipient and the ephemeral key**, so a recipient cannot
//!   re-encrypt a message it got to someone else and have it pass as sent to them
//!   (surreptitious forwarding), and cannot move the inner part under another outer layer.
//! * **Message id and timestamp are signed** (W15), so the recipient can de-duplicate and
//!   refuse stale messages; that policy is the caller's, since this module reads no clock.
//! * **Content is any bytes** (W6): nothing here decodes it.
//! * The KDF salt binds `E` and `R`, and the AEAD's associated data covers the version byte
//!   and `E`, so changing any outer byte fails decryption.
//!
//! This comment is the envelope's specification until PROTOCOL.md has an "End-to-end envelope"
//! section. The reference's JSON envelope (spec §3.3), kept for interop only, is
//! [`crate::reference::encrypt_message_reference`].
#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ct::CtArray;
use crate::keys::{
    EncryptionKeypair, EncryptionPublicKey, IdentityKeypair, IdentityPublicKey, Signature,
    SignatureOk,
};

/// The only envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 0x01;

/// The largest content an envelope may carry (16 MiB). Bigger messages are refused on both
/// ends, so a peer cannot make us hold more than this per envelope.
pub const MAX_CONTENT_LEN: usize = 16 * 1024 * 1024;

/// Bytes an envelope adds to its content: header 33, inner fields 120, tag 16.
pub const ENVELOPE_OVERHEAD: usize = HEADER_LEN + INNER_FIXED_LEN + TAG_LEN;

/// The largest envelope [`decrypt_message`] accepts.
pub const MAX_ENVELOPE_LEN: usize = ENVELOPE_OVERHEAD + MAX_CONTENT_LEN;

/// Version byte and ephemeral key.
const HEADER_LEN: usize = 1 + 32;
/// Sender key, signature, message id and timestamp.
const INNER_FIXED_LEN: usize = 32 + 64 + 16 + 8;
/// AES-GCM tag.
const TAG_LEN: usize = 16;
/// HKDF `info` for the envelope key and nonce.
const KDF_INFO: &[u8] = b"ournet-e2e-v1";
/// Domain separation for the sender's signature, so it can never be valid in another context.
const SIG_DOMAIN: &[u8] = b"ournet-e2e-sig-v1";

/// Why an envelope could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Malformed framing from the network: too short to hold the fixed fields, or longer than
    /// [`MAX_ENVELOPE_LEN`].
    #[error("malformed envelope: {0}")]
    Decode(#[from] DecodeError),
    /// The version byte is one this build does not speak.
    #[error("unsupported envelope version {0:#04x}")]
    UnsupportedVersion(u8),
    /// Local misuse: the content to seal is longer than [`MAX_CONTENT_LEN`].
    #[error("content of {len} bytes exceeds the maximum {max}")]
    ContentTooLong {
        /// The content length given.
        len: usize,
        /// [`MAX_CONTENT_LEN`].
        max: usize,
    },
    /// X25519 gave an all-zero secret: the recipient key (when sealing) or the ephemeral key
    /// (when opening) is a small-order point.
    #[error("X25519 with a small-order public key")]
    WeakKey,
    /// The AEAD refused to open: sealed for another recipient, or modified on the way.
    #[error("decryption failed (not for this recipient, or modified)")]
    Decrypt,
    /// The sender identity inside is not a valid Ed25519 public key.
    #[error("invalid sender identity key")]
    InvalidSenderKey,
    /// The sender's signature does not verify: forged, or made for another recipient or
    /// another outer layer.
    #[error("sender signature does not verify")]
    BadSignature,
}

/// An opened envelope. Only [`decrypt_message`] makes one, after the signature verified, so
/// holding one is proof that [`OpenedMessage::sender`] sent this content to us.
pub struct OpenedMessage {
    /// The signature check that let this value exist.
    _verified: SignatureOk,
    sender: IdentityPublicKey,
    message_id: [u8; 16],
    timestamp: u64,
    content: Vec<u8>,
    ack_token: AckToken,
}

impl OpenedMessage {
    /// The token to put in the end-to-end ACK: proof, to the sender, that this recipient
    /// opened the envelope.
    pub fn ack_token(&self) -> &AckToken {
        &self.ack_token
    }

    /// The sender's identity key, authenticated by its signature.
    pub fn sender(&self) -> &IdentityPublicKey {
        &self.sender
    }

    /// The sender's message id, for de-duplication.
    pub fn message_id(&self) -> [u8; 16] {
        self.message_id
    }

    /// The sender's timestamp (seconds since the Unix epoch, as the sender's clock said).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The content.
    pub fn content(&self) -> &[u8] {
        &self.content
    }

    /// Takes the content out.
    pub fn into_content(self) -> Vec<u8> {
        self.content
    }
}

impl std::fmt::Debug for OpenedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedMessage")
            .field("sender", &self.sender)
            .field("message_id", &hex::encode(self.message_id))
            .field("timestamp", &self.timestamp)
            .field("content_len", &self.content.len())
            .finish()
    }
}

/// Seals `content` from `sender` to `recipient`, with a fresh ephemeral key from `rng`.
///
/// `message_id` and `timestamp` are signed with the content, so the recipient can trust them
/// for de-duplication and freshness checks.
///
/// # Errors
/// [`EnvelopeError::ContentTooLong`] over [`MAX_CONTENT_LEN`]; [`EnvelopeError::WeakKey`] if
/// `recipient` is a small-order point.
pub fn encrypt_message(
    rng: &mut (impl RngCore + CryptoRng),
    sender: &IdentityKeypair,
    recipient: &EncryptionPublicKey,
    message_id: [u8; 16],
    timestamp: u64,
    content: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    encrypt_message_with_ack(rng, sender, recipient, message_id, timestamp, content)
        .map(|(env, _)| env)
}

/// Like [`encrypt_message`], and also returns the [`AckToken`] that only the recipient can
/// compute from this envelope: the sender keeps it and accepts an end-to-end ACK only if it
/// carries this token (PROTOCOL.md §7.3).
///
/// # Errors
/// As [`encrypt_message`].
pub fn encrypt_message_with_ack(
    rng: &mut (impl RngCore + CryptoRng),
    sender: &IdentityKeypair,
    recipient: &EncryptionPublicKey,
    message_id: [u8; 16],
    timestamp: u64,
    content: &[u8],
) -> Result<(Vec<u8>, AckToken), EnvelopeError> {
    if content.len() > MAX_CONTENT_LEN {
        return Err(EnvelopeError::ContentTooLong {
            len: content.len(),
            max: MAX_CONTENT_LEN,
        });
    }
    let ephemeral = EncryptionKeypair::generate(rng);
    let signed = signed_message(
        recipient,
        &ephemeral.public(),
        &message_id,
        timestamp,
        content,
    );
    let inner = InnerFields {
        sender: sender.public(),
        signature: sender.sign(&signed),
        message_id,
        timestamp,
    };
    seal(&ephemeral, recipient, &inner, content)
}

/// Opens an envelope sealed to `recipient` and checks the sender's signature.
///
/// # Errors
/// [`EnvelopeError::Decode`] for a truncated or oversized envelope,
/// [`EnvelopeError::UnsupportedVersion`], [`EnvelopeError::WeakKey`],
/// [`EnvelopeError::Decrypt`] when it is not for `recipient` or was modified (a trailing byte
/// counts as a modification), [`EnvelopeError::InvalidSenderKey`] and
/// [`EnvelopeError::BadSignature`]. Never panics, whatever the bytes.
pub fn decrypt_message(
    recipient: &EncryptionKeypair,
    envelope: &[u8],
) -> Result<OpenedMessage, EnvelopeError> {
    let (ephemeral, sealed) = parse_outer(envelope)?;
    let shared = recipient
        .diffie_hellman(&ephemeral)
        .ok_or(EnvelopeError::WeakKey)?;
    let (key, nonce) = derive_key(shared.as_bytes(), &ephemeral, &recipient.public());
    let ack_token = derive_ack_token(shared.as_bytes(), &ephemeral, &recipient.public());
    let mut plain = sealed.to_vec();
    let plain_len = key
        .open_in_place(nonce, Aad::from(header_bytes(&ephemeral)), &mut plain)
        .map_err(|_| EnvelopeError::Decrypt)?
        .len();
    plain.truncate(plain_len);

    let inner = parse_inner(&plain)?;
    plain.drain(..INNER_FIXED_LEN);
    let signed = signed_message(
        &recipient.public(),
        &ephemeral,
        &inner.message_id,
        inner.timestamp,
        &plain,
    );
    let verified = inner
        .sender
        .verify(&signed, &inner.signature)
        .map_err(|_| EnvelopeError::BadSignature)?;
    Ok(OpenedMessage {
        _verified: verified,
        sender: inner.sender,
        message_id: inner.message_id,
        timestamp: inner.timestamp,
        content: plain,
        ack_token,
    })
}

/// The fixed fields in front of the content, inside the encryption.
struct InnerFields {
    sender: IdentityPublicKey,
    signature: Signature,
    message_id: [u8; 16],
    timestamp: u64,
}

/// Writes `header ‖ AEAD(inner ‖ content)`. Split from [`encrypt_message`] so tests can seal
/// inner fields that a real sender would never produce.
fn seal(
    ephemeral: &EncryptionKeypair,
    recipient: &EncryptionPublicKey,
    inner: &InnerFields,
    content: &[u8],
) -> Result<(Vec<u8>, AckToken), EnvelopeError> {
    let shared = ephemeral
        .diffie_hellman(recipient)
        .ok_or(EnvelopeError::WeakKey)?;
    let eph_pub = ephemeral.public();
    let (key, nonce) = derive_key(shared.as_bytes(), &eph_pub, recipient);
    let ack = derive_ack_token(shared.as_bytes(), &eph_pub, recipient);
    let header = header_bytes(&eph_pub);

    let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + content.len());
    Writer::new(&mut out)
        .put(&header)
        .put(&inner.sender.to_bytes())
        .put(&inner.signature.0)
        .put(&inner.message_id)
        .put_u64(inner.timestamp)
        .put(content);
    let body = out
        .get_mut(HEADER_LEN..)
        .expect("the header was written just above");
    let tag = key
        .seal_in_place_separate_tag(nonce, Aad::from(header), body)
        // ring fails only past 2^36 bytes; MAX_CONTENT_LEN is far below.
        .expect("content length is checked against MAX_CONTENT_LEN");
    out.extend_from_slice(tag.as_ref());
    Ok((out, ack))
}

/// Splits the outer layer, checking the version and the length bounds before any crypto.
fn parse_outer(envelope: &[u8]) -> Result<(EncryptionPublicKey, &[u8]), EnvelopeError> {
    if envelope.len() > MAX_ENVELOPE_LEN {
        return Err(DecodeError::TooLong {
            what: "envelope",
            got: envelope.len(),
            max: MAX_ENVELOPE_LEN,
        }
        .into());
    }
    let mut r = Reader::new(envelope);
    let version = r.take_u8("envelope version")?;
    if version != ENVELOPE_VERSION {
        return Err(EnvelopeError::UnsupportedVersion(version));
    }
    let ephemeral = EncryptionPublicKey(r.take_array("ephemeral key")?);
    let sealed = r.take_rest();
    let min_sealed = INNER_FIXED_LEN + TAG_LEN;
    if sealed.len() < min_sealed {
        return Err(DecodeError::Truncated {
            what: "sealed body",
            needed: min_sealed - sealed.len(),
        }
        .into());
    }
    Ok((ephemeral, sealed))
}

/// Reads the fixed inner fields; the content is whatever follows them.
fn parse_inner(plain: &[u8]) -> Result<InnerFields, EnvelopeError> {
    let mut r = Reader::new(plain);
    let sender = IdentityPublicKey::from_bytes(&r.take_array("sender identity")?)
        .map_err(|_| EnvelopeError::InvalidSenderKey)?;
    Ok(InnerFields {
        sender,
        signature: Signature(r.take_array("signature")?),
        message_id: r.take_array("message id")?,
        timestamp: r.take_u64("timestamp")?,
    })
}

/// `version ‖ E`: the envelope header, also the AEAD's associated data.
fn header_bytes(ephemeral: &EncryptionPublicKey) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    let parts = std::iter::once(&ENVELOPE_VERSION).chain(ephemeral.0.iter());
    for (dst, src) in header.iter_mut().zip(parts) {
        *dst = *src;
    }
    header
}

/// Proof of receipt for one envelope: 16 bytes from the envelope's key agreement that only
/// the sender and the recipient can compute. Relays carry it in an ACK but cannot forge it.
/// Compared in constant time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckToken(CtArray<16>);

impl AckToken {
    /// Wraps a token received in an ACK, to compare with the one the sender kept.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(CtArray::new(bytes))
    }

    /// The bytes, to write into an ACK.
    pub fn to_bytes(&self) -> [u8; 16] {
        *self.0.expose()
    }
}

/// HKDF `info` for the ACK token: separate from the key's, so the token reveals nothing of it.
const ACK_INFO: &[u8] = b"ournet-e2e-ack-v1";

fn derive_ack_token(
    shared: &[u8; 32],
    ephemeral: &EncryptionPublicKey,
    recipient: &EncryptionPublicKey,
) -> AckToken {
    let mut salt = [0u8; 64];
    for (dst, src) in salt.iter_mut().zip(ephemeral.0.iter().chain(&recipient.0)) {
        *dst = *src;
    }
    let mut token = [0u8; 16];
    Hkdf::<Sha256>::new(Some(&salt), shared)
        .expand(ACK_INFO, &mut token)
        .expect("16 bytes is within HKDF-SHA256's output limit");
    AckToken::from_bytes(token)
}

/// The AEAD key and nonce. The nonce may be fixed per key because every envelope has a fresh
/// ephemeral key, so no key ever seals twice.
fn derive_key(
    shared: &[u8; 32],
    ephemeral: &EncryptionPublicKey,
    recipient: &EncryptionPublicKey,
) -> (LessSafeKey, Nonce) {
    let mut salt = [0u8; 64];
    for (dst, src) in salt.iter_mut().zip(ephemeral.0.iter().chain(&recipient.0)) {
        *dst = *src;
    }
    let mut okm = Zeroizing::new([0u8; 32 + NONCE_LEN]);
    Hkdf::<Sha256>::new(Some(&salt), shared)
        .expand(KDF_INFO, okm.as_mut())
        .expect("44 bytes is within HKDF-SHA256's 8160-byte output limit");
    let (key, nonce) = okm.split_at(32);
    let key = UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key is valid for AES-256-GCM");
    let nonce = Nonce::try_assume_unique_for_key(nonce).expect("the nonce part is 12 bytes");
    (LessSafeKey::new(key), nonce)
}

/// The bytes the sender signs.
fn signed_message(
    recipient: &EncryptionPublicKey,
    ephemeral: &EncryptionPublicKey,
    message_id: &[u8; 16],
    timestamp: u64,
    content: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIG_DOMAIN.len() + 32 + 32 + 16 + 8 + 32);
    Writer::new(&mut out)
        .put(SIG_DOMAIN)
        .put(&recipient.0)
        .put(&ephemeral.0)
        .put(message_id)
        .put_u64(timestamp)
        .put(&Sha256::digest(content));
    out
}

#[cfg(test)]
mod tests;
