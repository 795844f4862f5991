//! The link handshake (PROTOCOL.md §3.2): Noise with the `snow` crate, driven sans-IO.
//!
//! ```text
//! initiator -> responder:  "OURNET" | version u8 = 1 | kind u8 | len u16 | Noise msg 1
//! responder -> initiator:  len u16 | Noise msg 2
//! ```
//!
//! `kind` 1 is a client (`Noise_NK_25519_AESGCM_SHA256`: the client has no static key and
//! learns nothing of value about itself to the relay); kind 2 is a relay
//! (`Noise_IK_25519_AESGCM_SHA256`: the initiator's static key travels encrypted in message 1).
//! Message 1's payload lists the link versions the initiator speaks and, for a relay, its
//! identity certificate; message 2's payload holds the chosen version and the responder's
//! certificate. A certificate is the Ed25519 identity key and its signature over
//! `"ournet-link-cert-v1" | link static X25519 key`, which binds the Noise key to the identity
//! the seed lists. The Noise prologue binds the preamble, so a downgrade of `kind` or
//! `version` fails the handshake.
//!
//! Noise was chosen over a handshake of our own because its patterns are analysed, `snow` is
//! sans-IO and maintained, and `dangerously_get_raw_split` hands us the two transport keys
//! for our own cell framing ([`super::crypto`]). Randomness is an argument: the caller's RNG
//! seeds a ChaCha20 RNG that `snow` uses for the ephemeral key.

use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{Builder, HandshakeState};

use super::crypto::LinkCrypto;
use crate::codec::{DecodeError, Reader, Writer};
use crate::keys::{
    EncryptionKeypair, EncryptionPublicKey, IdentityKeypair, IdentityPublicKey, Signature,
};

/// The link protocol version this code speaks.
pub const LINK_VERSION: u16 = 1;
/// How long a handshake may take before the adapter must drop the connection.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const MAGIC: &[u8; 6] = b"OURNET";
const PREAMBLE_LEN: usize = 8;
const PREAMBLE_VERSION: u8 = 1;
const MAX_MSG: usize = 1024;
const MAX_VERSIONS: usize = 16;
const CERT_DOMAIN: &[u8] = b"ournet-link-cert-v1";

/// Who is initiating: decides the Noise pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkKind {
    /// An anonymous client (Noise NK).
    Client,
    /// A relay that proves its identity (Noise IK).
    Relay,
}

impl LinkKind {
    fn wire(self) -> u8 {
        match self {
            Self::Client => 1,
            Self::Relay => 2,
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            Self::Client => "Noise_NK_25519_AESGCM_SHA256",
            Self::Relay => "Noise_IK_25519_AESGCM_SHA256",
        }
    }
}

/// Why a link handshake failed. The connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkHandshakeError {
    /// The first bytes are not our preamble.
    #[error("not an our-network link (bad preamble)")]
    BadPreamble,
    /// The peer's preamble names a kind or preamble version we do not speak.
    #[error("unsupported link kind or preamble version")]
    Unsupported,
    /// A handshake message is longer than the protocol allows.
    #[error("handshake message of {0} bytes is too long")]
    TooLong(usize),
    /// Noise rejected a message: wrong key, tampering, or garbage.
    #[error("noise handshake failed")]
    Noise,
    /// A payload did not parse.
    #[error("malformed handshake payload: {0}")]
    Malformed(#[from] DecodeError),
    /// A certificate's signature did not verify, or it is not the identity we expected.
    #[error("peer certificate invalid or for another identity")]
    BadCertificate,
    /// No link version in common.
    #[error("no common link version")]
    NoCommonVersion,
}

impl From<snow::Error> for LinkHandshakeError {
    fn from(_: snow::Error) -> Self {
        Self::Noise
    }
}

/// A relay's long-term link identity: its Ed25519 identity, its X25519 link key, and the
/// certificate binding them.
pub struct LinkIdentity {
    identity: IdentityKeypair,
    link_key: EncryptionKeypair,
    cert: Signature,
}

impl LinkIdentity {
    /// Signs the certificate for `link_key` with `identity`.
    pub fn new(identity: IdentityKeypair, link_key: EncryptionKeypair) -> Self {
        let cert = identity.sign(&cert_message(&link_key.public()));
        Self {
            identity,
            link_key,
            cert,
        }
    }

    /// The Ed25519 identity.
    pub fn identity(&self) -> IdentityPublicKey {
        self.identity.public()
    }

    /// The X25519 link key that descriptors publish.
    pub fn link_public(&self) -> EncryptionPublicKey {
        self.link_key.public()
    }

    fn write_cert(&self, w: &mut Writer<'_>) {
        w.put(&self.identity.public().to_bytes()).put(&self.cert.0);
    }
}

impl std::fmt::Debug for LinkIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkIdentity({})", self.identity())
    }
}

/// A completed handshake.
#[derive(Debug)]
pub struct Established {
    /// Per-cell protection for the link.
    pub crypto: LinkCrypto,
    /// The peer's authenticated identity: always set for a relay peer, `None` for a client.
    pub peer_identity: Option<IdentityPublicKey>,
    /// The Noise handshake hash: unique to this link, for channel binding (a home node signs
    /// it to prove its identity key, PROTOCOL.md §7.4).
    pub channel_binding: [u8; 32],
    /// The negotiated link version.
    pub version: u16,
}

/// The initiating side of a link handshake.
pub struct LinkInitiator {
    hs: HandshakeState,
    expected: IdentityPublicKey,
    deadline: Instant,
}

impl LinkInitiator {
    /// Starts a handshake to the relay `relay` whose descriptor lists `relay_link_key`, as an
    /// anonymous client (`own = None`) or as a relay. Appends the first flight to `out`.
    ///
    /// # Errors
    /// [`LinkHandshakeError::Noise`] if `snow` refuses the parameters (a bug).
    pub fn start(
        rng: &mut (impl RngCore + CryptoRng),
        now: Instant,
        own: Option<&LinkIdentity>,
        relay: IdentityPublicKey,
        relay_link_key: EncryptionPublicKey,
        out: &mut Vec<u8>,
    ) -> Result<Self, LinkHandshakeError> {
        let kind = if own.is_some() {
            LinkKind::Relay
        } else {
            LinkKind::Client
        };
        let preamble = preamble(kind);
        let secret = own.map(|o| o.link_key.secret_bytes());
        let mut builder = builder(rng, kind)?
            .prologue(&preamble)
            .remote_public_key(&relay_link_key.0);
        if let Some(secret) = secret.as_ref() {
            builder = builder.local_private_key(&secret[..]);
        }
        let mut hs = builder.build_initiator()?;
        let mut payload = Vec::new();
        let mut w = Writer::new(&mut payload);
        w.put_u8(1).put_u16(LINK_VERSION);
        if let Some(own) = own {
            own.write_cert(&mut w);
        }
        out.extend_from_slice(&preamble);
        write_frame(&mut hs, &payload, out)?;
        Ok(Self {
            hs,
            expected: relay,
            deadline: now + HANDSHAKE_TIMEOUT,
        })
    }

    /// When the adapter must give up on this handshake.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    /// Feeds the bytes received so far. `Ok(None)`: need more. `Ok(Some((n, link)))`: done,
    /// the first `n` bytes were the handshake and the rest are cells.
    ///
    /// # Errors
    /// Any [`LinkHandshakeError`]: close the connection.
    pub fn handle_input(
        &mut self,
        input: &[u8],
    ) -> Result<Option<(usize, Established)>, LinkHandshakeError> {
        let Some((used, msg)) = read_frame(input)? else {
            return Ok(None);
        };
        let mut payload = vec![0u8; MAX_MSG];
        let n = self.hs.read_message(msg, &mut payload)?;
        let mut r = Reader::new(payload.get(..n).unwrap_or_default());
        let version = r.take_u16("version")?;
        let cert_id = read_cert(&mut r, self.hs.get_remote_static())?;
        r.finish()?;
        if cert_id != self.expected {
            return Err(LinkHandshakeError::BadCertificate);
        }
        if version != LINK_VERSION {
            return Err(LinkHandshakeError::NoCommonVersion);
        }
        let established = finish(&mut self.hs, true, Some(cert_id), version);
        Ok(Some((used, established)))
    }
}

impl std::fmt::Debug for LinkInitiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkInitiator(to {})", self.expected)
    }
}

/// The responding side of a link handshake (a relay accepting a connection).
pub struct LinkResponder {
    seed: [u8; 32],
    deadline: Instant,
}

impl LinkResponder {
    /// Prepares to answer a handshake that arrives on a fresh connection.
    pub fn new(rng: &mut (impl RngCore + CryptoRng), now: Instant) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Self {
            seed,
            deadline: now + HANDSHAKE_TIMEOUT,
        }
    }

    /// When the adapter must give up on this handshake.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    /// Feeds the bytes received so far. On completion appends the reply to `out` and returns
    /// how many input bytes the handshake used.
    ///
    /// # Errors
    /// Any [`LinkHandshakeError`]: close the connection.
    pub fn handle_input(
        &mut self,
        own: &LinkIdentity,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<(usize, Established)>, LinkHandshakeError> {
        let Some(preamble) = input.first_chunk::<PREAMBLE_LEN>() else {
            return Ok(None);
        };
        let kind = parse_preamble(preamble)?;
        let Some((used, msg)) = read_frame(input.get(PREAMBLE_LEN..).unwrap_or_default())? else {
            return Ok(None);
        };
        let secret = own.link_key.secret_bytes();
        let mut rng = ChaCha20Rng::from_seed(self.seed);
        let mut hs = builder(&mut rng, kind)?
            .prologue(preamble)
            .local_private_key(&secret[..])
            .build_responder()?;
        let mut payload = vec![0u8; MAX_MSG];
        let n = hs.read_message(msg, &mut payload)?;
        let mut r = Reader::new(payload.get(..n).unwrap_or_default());
        let version = choose_version(&mut r)?;
        let peer = match kind {
            LinkKind::Relay => Some(read_cert(&mut r, hs.get_remote_static())?),
            LinkKind::Client => None,
        };
        r.finish()?;
        let mut reply = Vec::new();
        let mut w = Writer::new(&mut reply);
        w.put_u16(version);
        own.write_cert(&mut w);
        write_frame(&mut hs, &reply, out)?;
        Ok(Some((
            PREAMBLE_LEN + used,
            finish(&mut hs, false, peer, version),
        )))
    }
}

impl std::fmt::Debug for LinkResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkResponder(..)")
    }
}

fn finish(
    hs: &mut HandshakeState,
    initiator: bool,
    peer_identity: Option<IdentityPublicKey>,
    version: u16,
) -> Established {
    let mut channel_binding = [0u8; 32];
    channel_binding.copy_from_slice(hs.get_handshake_hash().get(..32).unwrap_or(&[0; 32]));
    let (i2r, r2i) = hs.dangerously_get_raw_split();
    let (i2r, r2i) = (zeroize::Zeroizing::new(i2r), zeroize::Zeroizing::new(r2i));
    let crypto = if initiator {
        LinkCrypto::from_split(&i2r, &r2i)
    } else {
        LinkCrypto::from_split(&r2i, &i2r)
    };
    Established {
        crypto,
        peer_identity,
        channel_binding,
        version,
    }
}

fn choose_version(r: &mut Reader<'_>) -> Result<u16, LinkHandshakeError> {
    let count = usize::from(r.take_u8("version count")?);
    if count > MAX_VERSIONS {
        return Err(DecodeError::TooLong {
            what: "version list",
            got: count,
            max: MAX_VERSIONS,
        }
        .into());
    }
    let mut best = None;
    for _ in 0..count {
        let v = r.take_u16("version")?;
        if v == LINK_VERSION {
            best = Some(v);
        }
    }
    best.ok_or(LinkHandshakeError::NoCommonVersion)
}

/// Reads a certificate and checks it signs `remote_static`, the Noise key the peer proved.
fn read_cert(
    r: &mut Reader<'_>,
    remote_static: Option<&[u8]>,
) -> Result<IdentityPublicKey, LinkHandshakeError> {
    let id = r.take_array::<32>("certificate identity")?;
    let sig = Signature(r.take_array::<64>("certificate signature")?);
    let remote: [u8; 32] = remote_static
        .and_then(|k| k.try_into().ok())
        .ok_or(LinkHandshakeError::BadCertificate)?;
    let id = IdentityPublicKey::from_bytes(&id).map_err(|_| LinkHandshakeError::BadCertificate)?;
    let _ok = id
        .verify(&cert_message(&EncryptionPublicKey(remote)), &sig)
        .map_err(|_| LinkHandshakeError::BadCertificate)?;
    Ok(id)
}

fn cert_message(link_key: &EncryptionPublicKey) -> Vec<u8> {
    [CERT_DOMAIN, &link_key.0].concat()
}

fn preamble(kind: LinkKind) -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    let (magic, rest) = p.split_at_mut(MAGIC.len());
    magic.copy_from_slice(MAGIC);
    rest.copy_from_slice(&[PREAMBLE_VERSION, kind.wire()]);
    p
}

fn parse_preamble(p: &[u8; PREAMBLE_LEN]) -> Result<LinkKind, LinkHandshakeError> {
    let [m0, m1, m2, m3, m4, m5, version, kind] = *p;
    if [m0, m1, m2, m3, m4, m5] != *MAGIC {
        return Err(LinkHandshakeError::BadPreamble);
    }
    match (version, kind) {
        (PREAMBLE_VERSION, 1) => Ok(LinkKind::Client),
        (PREAMBLE_VERSION, 2) => Ok(LinkKind::Relay),
        _ => Err(LinkHandshakeError::Unsupported),
    }
}

fn write_frame(
    hs: &mut HandshakeState,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), LinkHandshakeError> {
    let mut msg = vec![0u8; MAX_MSG];
    let n = hs.write_message(payload, &mut msg)?;
    let msg = msg.get(..n).ok_or(LinkHandshakeError::TooLong(n))?;
    Writer::new(out)
        .put_u16_prefixed(msg, "handshake")
        .map_err(|_| LinkHandshakeError::TooLong(n))?;
    Ok(())
}

fn read_frame(input: &[u8]) -> Result<Option<(usize, &[u8])>, LinkHandshakeError> {
    let Some(len) = input
        .first_chunk::<2>()
        .map(|b| usize::from(u16::from_be_bytes(*b)))
    else {
        return Ok(None);
    };
    if len > MAX_MSG {
        return Err(LinkHandshakeError::TooLong(len));
    }
    Ok(input.get(2..2 + len).map(|msg| (2 + len, msg)))
}

fn builder(
    rng: &mut (impl RngCore + CryptoRng),
    kind: LinkKind,
) -> Result<Builder<'static>, LinkHandshakeError> {
    let params = kind
        .pattern()
        .parse()
        .map_err(|_| LinkHandshakeError::Noise)?;
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    Ok(Builder::with_resolver(
        params,
        Box::new(SeededResolver { seed }),
    ))
}

/// `snow`'s default primitives with our RNG instead of the OS's.
struct SeededResolver {
    seed: [u8; 32],
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRandom(ChaCha20Rng::from_seed(self.seed))))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

struct SeededRandom(ChaCha20Rng);

impl RngCore for SeededRandom {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl CryptoRng for SeededRandom {}
impl Random for SeededRandom {}

#[cfg(test)]
#[path = "noise_tests.rs"]
mod tests;
