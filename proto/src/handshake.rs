//! The circuit handshake: one-way authenticated X25519 in the style of Tor's ntor
//! (PROTOCOL.md §6.2).
//!
//! The client knows the relay's Ed25519 identity `ID` and its X25519 onion key `B` from the
//! relay's signed descriptor. It sends an ephemeral `X`; the relay answers with an ephemeral
//! `Y` and `AUTH`, a MAC over the transcript keyed by material only the holder of `b` can
//! compute. So:
//!
//! * **relay authentication** (the reference's W17): `X25519(x, B)` enters the key seed and
//!   `ID` and `B` enter every hash, so only the relay whose descriptor the client trusts can
//!   produce a valid `AUTH`;
//! * **forward secrecy**: `X25519(x, Y)` enters the key seed, and `x` and `y` die with the
//!   handshake, so a later theft of `b` does not reveal past circuit keys;
//! * small-order points are refused (an all-zero shared secret fails the handshake).
//!
//! ```text
//! secret_input = X25519(y,X) | X25519(b,X) | ID | B | X | Y | PROTOID      (relay)
//!              = X25519(x,Y) | X25519(x,B) | ID | B | X | Y | PROTOID      (client)
//! key_seed     = HMAC-SHA256(PROTOID | ":key_extract", secret_input)
//! verify       = HMAC-SHA256(PROTOID | ":verify", secret_input)
//! AUTH         = HMAC-SHA256(PROTOID | ":mac", verify | ID | B | Y | X | PROTOID | "Server")
//! hop keys     = HKDF-SHA256(salt = PROTOID | ":key_expand", ikm = key_seed, L = 128)
//! ```

use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ct::CtArray;
use crate::keys::{EncryptionKeypair, EncryptionPublicKey, IdentityPublicKey};
use crate::onion::{HOP_KEY_MATERIAL_LEN, HopKeys};

/// Protocol identifier mixed into every hash; changes with any incompatible revision.
pub const PROTOID: &[u8] = b"ournet-ntor-x25519-sha256-v1";
/// Wire identifier of this handshake in CREATE and EXTEND (PROTOCOL.md §6.1).
pub const HANDSHAKE_TYPE_NTOR_V1: u16 = 0x0001;
/// Bytes of a client handshake message: `ID | B | X`.
pub const CLIENT_MSG_LEN: usize = 96;
/// Bytes of a relay reply: `Y | AUTH`.
pub const RELAY_MSG_LEN: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The message did not parse.
    #[error("malformed handshake message: {0}")]
    Malformed(#[from] DecodeError),
    /// The client named another relay identity.
    #[error("handshake is for another relay identity")]
    WrongIdentity,
    /// The client named an onion key this relay does not hold (rotated out, or never ours).
    #[error("unknown onion key")]
    UnknownOnionKey,
    /// A peer sent a small-order point: the shared secret was all zero.
    #[error("peer sent a small-order key")]
    SmallOrderKey,
    /// The relay's AUTH did not verify: not the relay the client meant, or tampering.
    #[error("relay authentication failed")]
    BadAuth,
}

/// The client's first message: which relay and onion key it means, and its ephemeral key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The relay's identity (`ID`).
    pub relay_id: [u8; 32],
    /// The relay's onion key (`B`).
    pub onion_key: EncryptionPublicKey,
    /// The client's ephemeral key (`X`).
    pub client_key: EncryptionPublicKey,
}

impl ClientHello {
    /// Parses exactly [`CLIENT_MSG_LEN`] bytes.
    ///
    /// # Errors
    /// [`DecodeError`] on a short or long message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let relay_id = r.take_array("relay id")?;
        let onion_key = EncryptionPublicKey(r.take_array("onion key")?);
        let client_key = EncryptionPublicKey(r.take_array("client key")?);
        r.finish()?;
        Ok(Self {
            relay_id,
            onion_key,
            client_key,
        })
    }

    /// Appends the wire form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        Writer::new(out)
            .put(&self.relay_id)
            .put(&self.onion_key.0)
            .put(&self.client_key.0);
    }
}

/// The relay's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayReply {
    /// The relay's ephemeral key (`Y`).
    pub relay_key: EncryptionPublicKey,
    /// The authenticator.
    pub auth: CtArray<32>,
}

impl RelayReply {
    /// Parses exactly [`RELAY_MSG_LEN`] bytes.
    ///
    /// # Errors
    /// [`DecodeError`] on a short or long message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let relay_key = EncryptionPublicKey(r.take_array("relay key")?);
        let auth = CtArray::new(r.take_array("auth")?);
        r.finish()?;
        Ok(Self { relay_key, auth })
    }

    /// Appends the wire form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        Writer::new(out)
            .put(&self.relay_key.0)
            .put(self.auth.expose());
    }
}

/// A client handshake in flight. Single use: [`ClientHandshake::finish`] consumes it, and its
/// ephemeral secret is zeroized on drop.
#[derive(Debug)]
pub struct ClientHandshake {
    ephemeral: EncryptionKeypair,
    relay_id: IdentityPublicKey,
    onion_key: EncryptionPublicKey,
}

impl ClientHandshake {
    /// Starts a handshake with the relay `relay_id` whose descriptor lists `onion_key`.
    pub fn start(
        rng: &mut (impl RngCore + CryptoRng),
        relay_id: IdentityPublicKey,
        onion_key: EncryptionPublicKey,
    ) -> (Self, ClientHello) {
        let ephemeral = EncryptionKeypair::generate(rng);
        let hello = ClientHello {
            relay_id: relay_id.to_bytes(),
            onion_key,
            client_key: ephemeral.public(),
        };
        (
            Self {
                ephemeral,
                relay_id,
                onion_key,
            },
            hello,
        )
    }

    /// Checks the relay's reply and derives the hop keys.
    ///
    /// # Errors
    /// [`HandshakeError::BadAuth`] or [`HandshakeError::SmallOrderKey`].
    pub fn finish(self, reply: &RelayReply) -> Result<HopKeys, HandshakeError> {
        let xy = self.ephemeral.diffie_hellman(&reply.relay_key);
        let xb = self.ephemeral.diffie_hellman(&self.onion_key);
        let (Some(xy), Some(xb)) = (xy, xb) else {
            return Err(HandshakeError::SmallOrderKey);
        };
        let t = Transcript {
            id: self.relay_id.to_bytes(),
            b: self.onion_key,
            x: self.ephemeral.public(),
            y: reply.relay_key,
        };
        let (auth, km) = t.derive(xy.as_bytes(), xb.as_bytes());
        if auth != reply.auth {
            return Err(HandshakeError::BadAuth);
        }
        Ok(HopKeys::from_key_material(&km))
    }
}

/// The relay's side: answers a [`ClientHello`] with a [`RelayReply`] and the hop keys.
/// `onion_keys` are the onion keys the relay currently accepts (the current one and, during a
/// rotation, the previous one).
///
/// # Errors
/// [`HandshakeError::WrongIdentity`], [`HandshakeError::UnknownOnionKey`],
/// [`HandshakeError::SmallOrderKey`].
pub fn relay_handshake(
    rng: &mut (impl RngCore + CryptoRng),
    identity: &IdentityPublicKey,
    onion_keys: &[&EncryptionKeypair],
    hello: &ClientHello,
) -> Result<(RelayReply, HopKeys), HandshakeError> {
    if hello.relay_id != identity.to_bytes() {
        return Err(HandshakeError::WrongIdentity);
    }
    let onion = onion_keys
        .iter()
        .find(|k| k.public() == hello.onion_key)
        .ok_or(HandshakeError::UnknownOnionKey)?;
    let ephemeral = EncryptionKeypair::generate(rng);
    let yx = ephemeral.diffie_hellman(&hello.client_key);
    let bx = onion.diffie_hellman(&hello.client_key);
    let (Some(yx), Some(bx)) = (yx, bx) else {
        return Err(HandshakeError::SmallOrderKey);
    };
    let t = Transcript {
        id: hello.relay_id,
        b: hello.onion_key,
        x: hello.client_key,
        y: ephemeral.public(),
    };
    let (auth, km) = t.derive(yx.as_bytes(), bx.as_bytes());
    Ok((
        RelayReply {
            relay_key: ephemeral.public(),
            auth,
        },
        HopKeys::from_key_material(&km),
    ))
}

/// The public values both sides hash.
struct Transcript {
    id: [u8; 32],
    b: EncryptionPublicKey,
    x: EncryptionPublicKey,
    y: EncryptionPublicKey,
}

impl Transcript {
    /// `AUTH` and the hop key material from the two shared secrets.
    fn derive(
        &self,
        ephemeral_dh: &[u8; 32],
        static_dh: &[u8; 32],
    ) -> (CtArray<32>, Zeroizing<[u8; HOP_KEY_MATERIAL_LEN]>) {
        let mut secret_input = Zeroizing::new(Vec::with_capacity(32 * 6 + PROTOID.len()));
        for part in [
            ephemeral_dh,
            static_dh,
            &self.id,
            &self.b.0,
            &self.x.0,
            &self.y.0,
        ] {
            secret_input.extend_from_slice(part);
        }
        secret_input.extend_from_slice(PROTOID);
        let key_seed = Zeroizing::new(hmac(&[PROTOID, b":key_extract"], &[&secret_input]));
        let verify = Zeroizing::new(hmac(&[PROTOID, b":verify"], &[&secret_input]));
        let auth = hmac(
            &[PROTOID, b":mac"],
            &[
                &*verify, &self.id, &self.b.0, &self.y.0, &self.x.0, PROTOID, b"Server",
            ],
        );
        let mut km = Zeroizing::new([0u8; HOP_KEY_MATERIAL_LEN]);
        let salt = [PROTOID, b":key_expand"].concat();
        hkdf::Hkdf::<Sha256>::new(Some(&salt), &*key_seed)
            .expand(b"ournet hop keys", &mut *km)
            .expect("128 bytes is within HKDF-SHA256's 8160-byte limit");
        (CtArray::new(auth), km)
    }
}

fn hmac(key_parts: &[&[u8]], msg_parts: &[&[u8]]) -> [u8; 32] {
    let key = Zeroizing::new(key_parts.concat());
    let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes keys of any length");
    for part in msg_parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::cell::{BODY_LEN, TAG_AREA_LEN};
    use crate::keys::IdentityKeypair;
    use crate::onion::{ClientCircuitCrypto, RelayHopCrypto};

    struct Relay {
        id: IdentityKeypair,
        onion: EncryptionKeypair,
    }

    fn relay(seed: u64) -> Relay {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        Relay {
            id: IdentityKeypair::generate(&mut rng),
            onion: EncryptionKeypair::generate(&mut rng),
        }
    }

    /// Runs a full handshake and checks both ends got the same keys by moving a cell.
    #[test]
    fn handshake_agrees_on_keys() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let r = relay(2);
        let (client, hello) = ClientHandshake::start(&mut rng, r.id.public(), r.onion.public());
        let mut wire = Vec::new();
        hello.encode(&mut wire);
        assert_eq!(wire.len(), CLIENT_MSG_LEN);
        let hello = ClientHello::decode(&wire).unwrap();
        let (reply, relay_keys) =
            relay_handshake(&mut rng, &r.id.public(), &[&r.onion], &hello).unwrap();
        let mut wire = Vec::new();
        reply.encode(&mut wire);
        assert_eq!(wire.len(), RELAY_MSG_LEN);
        let client_keys = client.finish(&RelayReply::decode(&wire).unwrap()).unwrap();

        let mut c = ClientCircuitCrypto::new();
        c.push_hop(client_keys).unwrap();
        let mut relay = RelayHopCrypto::new(relay_keys);
        let mut body = vec![0u8; BODY_LEN];
        body[TAG_AREA_LEN..].fill(0x42);
        c.seal_forward(&mut body, &mut rng).unwrap();
        relay.peel_forward(&mut body).unwrap();
        assert!(body[TAG_AREA_LEN..].iter().all(|&b| b == 0x42));
    }

    #[test]
    fn an_impostor_without_the_onion_key_cannot_authenticate() {
        // W17: a man in the middle who answers with its own ephemeral key and its own onion
        // key, but claims the real relay's identity, is caught by the client.
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let real = relay(4);
        let fake = relay(5);
        let (client, hello) =
            ClientHandshake::start(&mut rng, real.id.public(), real.onion.public());
        let forged = ClientHello {
            onion_key: fake.onion.public(),
            ..hello
        };
        let (reply, _) =
            relay_handshake(&mut rng, &real.id.public(), &[&fake.onion], &forged).unwrap();
        assert_eq!(client.finish(&reply).unwrap_err(), HandshakeError::BadAuth);
    }

    #[test]
    fn relay_refuses_other_identities_keys_and_small_order_points() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let r = relay(7);
        let other = relay(8);
        let (_, hello) = ClientHandshake::start(&mut rng, other.id.public(), r.onion.public());
        assert_eq!(
            relay_handshake(&mut rng, &r.id.public(), &[&r.onion], &hello).unwrap_err(),
            HandshakeError::WrongIdentity
        );
        let (_, hello) = ClientHandshake::start(&mut rng, r.id.public(), other.onion.public());
        assert_eq!(
            relay_handshake(&mut rng, &r.id.public(), &[&r.onion], &hello).unwrap_err(),
            HandshakeError::UnknownOnionKey
        );
        let (_, hello) = ClientHandshake::start(&mut rng, r.id.public(), r.onion.public());
        let zero = ClientHello {
            client_key: EncryptionPublicKey([0; 32]),
            ..hello
        };
        assert_eq!(
            relay_handshake(&mut rng, &r.id.public(), &[&r.onion], &zero).unwrap_err(),
            HandshakeError::SmallOrderKey
        );
    }

    #[test]
    fn tampered_reply_fails_and_codecs_reject_bad_lengths() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let r = relay(10);
        let (client, hello) = ClientHandshake::start(&mut rng, r.id.public(), r.onion.public());
        let (reply, _) = relay_handshake(&mut rng, &r.id.public(), &[&r.onion], &hello).unwrap();
        let mut auth = *reply.auth.expose();
        auth[0] ^= 1;
        let bad = RelayReply {
            auth: CtArray::new(auth),
            ..reply
        };
        assert_eq!(client.finish(&bad).unwrap_err(), HandshakeError::BadAuth);
        assert!(ClientHello::decode(&[0u8; CLIENT_MSG_LEN - 1]).is_err());
        assert!(ClientHello::decode(&[0u8; CLIENT_MSG_LEN + 1]).is_err());
        assert!(RelayReply::decode(&[0u8; RELAY_MSG_LEN + 1]).is_err());
    }

    #[test]
    fn onion_key_rotation_accepts_the_previous_key() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let r = relay(12);
        let new_key = EncryptionKeypair::generate(&mut rng);
        let (client, hello) = ClientHandshake::start(&mut rng, r.id.public(), r.onion.public());
        let (reply, _) =
            relay_handshake(&mut rng, &r.id.public(), &[&new_key, &r.onion], &hello).unwrap();
        assert!(client.finish(&reply).is_ok());
    }
}
