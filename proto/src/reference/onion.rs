//! Reference onion layers: `create_onion` / `peel_onion` (spec §3.4).
//!
//! ```text
//! layer:      | nonce (12) | AES-256-GCM(key, nonce, plaintext) | tag (16) |
//! plaintext:  | flag (1) | next hop id (64, NUL-padded UTF-8) | inner (n) |
//!               0x01 = forward to the id, 0x00 = exit (id all zero)
//! ```
//!
//! Each layer adds exactly [`ONION_LAYER_OVERHEAD`] = 93 bytes, so a relay can tell its hop
//! position from the size it sees (W8). Only for interop: our circuits use fixed-size cells.
#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use rand_core::{CryptoRng, RngCore};

use super::gcm::{self, SEAL_OVERHEAD};
use super::{HopKey, ReferenceError};
use crate::codec::Reader;

/// Bytes one onion layer adds: nonce 12, flag 1, next-hop id 64, tag 16.
pub const ONION_LAYER_OVERHEAD: usize = SEAL_OVERHEAD + ROUTING_HEADER_LEN;

/// The size of the next-hop id field. Router ids (64 hex characters) fill it exactly.
pub const MAX_HOP_ID_LEN: usize = 64;

/// Flag byte plus id field.
const ROUTING_HEADER_LEN: usize = 1 + MAX_HOP_ID_LEN;
/// Flag: the layer names a next hop.
const FLAG_FORWARD: u8 = 0x01;
/// Flag: this hop is the exit.
const FLAG_EXIT: u8 = 0x00;

/// One peeled layer: what to pass on, and to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeeledLayer {
    /// The next layer, or the final payload when `next_hop` is `None`.
    pub inner: Vec<u8>,
    /// The router to forward `inner` to; `None` at the exit.
    pub next_hop: Option<String>,
}

/// Encrypts one layer around `content`, naming `next_hop` (or none for the exit).
///
/// # Errors
/// [`ReferenceError::InvalidHopId`] if `next_hop` is empty, over [`MAX_HOP_ID_LEN`] bytes or
/// holds a NUL byte. The reference silently truncates a long id and treats `""` as the exit,
/// which would misroute; we refuse instead.
pub fn encrypt_onion_layer(
    rng: &mut (impl RngCore + CryptoRng),
    content: &[u8],
    key: &HopKey,
    next_hop: Option<&str>,
) -> Result<Vec<u8>, ReferenceError> {
    let header = routing_header(next_hop)?;
    Ok(gcm::seal_parts(rng, key, &[&header, content]))
}

/// Peels one layer with this hop's key.
///
/// # Errors
/// [`ReferenceError::Decode`] if the layer or its plaintext is too short,
/// [`ReferenceError::Decrypt`] if the key is wrong or the layer was modified, and
/// [`ReferenceError::MalformedHeader`] for a routing header the reference never writes (a flag
/// other than 0 or 1, an exit layer with a non-zero id, an empty, NUL-holding or non-UTF-8
/// id). The reference reads any flag but `0x01` as "exit" and ignores the rest.
pub fn decrypt_onion_layer(layer: &[u8], key: &HopKey) -> Result<PeeledLayer, ReferenceError> {
    let mut plain = gcm::open(key, layer)?;
    let mut r = Reader::new(&plain);
    let flag = r.take_u8("onion flag")?;
    let id = r.take_array::<MAX_HOP_ID_LEN>("next hop id")?;
    let next_hop = match flag {
        FLAG_FORWARD => Some(parse_hop_id(&id)?),
        FLAG_EXIT if id == [0; MAX_HOP_ID_LEN] => None,
        FLAG_EXIT => return Err(ReferenceError::MalformedHeader("exit layer names a hop")),
        _ => return Err(ReferenceError::MalformedHeader("flag byte is not 0 or 1")),
    };
    plain.drain(..ROUTING_HEADER_LEN);
    Ok(PeeledLayer {
        inner: plain,
        next_hop,
    })
}

/// Wraps `content` for a path: hop `i` peels with `hop_keys[i]` and learns `hop_ids[i + 1]`;
/// the last hop learns no next hop and gets `content`. `hop_ids[0]` is where the caller sends
/// the onion, so it is not inside. With no hops, returns `content` unchanged (as the
/// reference does).
///
/// # Errors
/// [`ReferenceError::LengthMismatch`] if the lists differ in length;
/// [`ReferenceError::InvalidHopId`] as in [`encrypt_onion_layer`].
pub fn create_onion(
    rng: &mut (impl RngCore + CryptoRng),
    content: &[u8],
    hop_keys: &[HopKey],
    hop_ids: &[impl AsRef<str>],
) -> Result<Vec<u8>, ReferenceError> {
    if hop_keys.len() != hop_ids.len() {
        return Err(ReferenceError::LengthMismatch {
            keys: hop_keys.len(),
            ids: hop_ids.len(),
        });
    }
    let mut onion = content.to_vec();
    let mut next_hop: Option<&str> = None;
    for (key, id) in hop_keys.iter().zip(hop_ids).rev() {
        onion = encrypt_onion_layer(rng, &onion, key, next_hop)?;
        next_hop = Some(id.as_ref());
    }
    Ok(onion)
}

/// What a relay does with an onion: [`decrypt_onion_layer`] under the reference's other name.
///
/// # Errors
/// As [`decrypt_onion_layer`].
pub fn peel_onion(onion: &[u8], key: &HopKey) -> Result<PeeledLayer, ReferenceError> {
    decrypt_onion_layer(onion, key)
}

/// The 65-byte flag-and-id header.
fn routing_header(next_hop: Option<&str>) -> Result<[u8; ROUTING_HEADER_LEN], ReferenceError> {
    let mut header = [0u8; ROUTING_HEADER_LEN];
    let Some(id) = next_hop else {
        return Ok(header);
    };
    if id.is_empty() {
        return Err(ReferenceError::InvalidHopId("empty"));
    }
    if id.len() > MAX_HOP_ID_LEN {
        return Err(ReferenceError::InvalidHopId("longer than 64 bytes"));
    }
    if id.as_bytes().contains(&0) {
        return Err(ReferenceError::InvalidHopId("contains a NUL byte"));
    }
    let (flag, field) = header.split_at_mut(1);
    flag.fill(FLAG_FORWARD);
    for (dst, src) in field.iter_mut().zip(id.as_bytes()) {
        *dst = *src;
    }
    Ok(header)
}

/// Strips the NUL padding and decodes the id.
fn parse_hop_id(field: &[u8; MAX_HOP_ID_LEN]) -> Result<String, ReferenceError> {
    let len = field
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    let id = field.get(..len).unwrap_or_default();
    if id.is_empty() {
        return Err(ReferenceError::MalformedHeader(
            "forward layer with an empty id",
        ));
    }
    if id.contains(&0) {
        return Err(ReferenceError::MalformedHeader(
            "NUL byte inside the next-hop id",
        ));
    }
    String::from_utf8(id.to_vec())
        .map_err(|_| ReferenceError::MalformedHeader("next-hop id is not UTF-8"))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, reason = "test code")]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn keys(n: u8) -> Vec<HopKey> {
        (0..n).map(|i| HopKey::from_bytes([i + 1; 32])).collect()
    }

    #[test]
    fn three_hops_peel_in_order_and_shrink_by_93() {
        let mut rng = ChaCha20Rng::seed_from_u64(20);
        let keys = keys(3);
        let ids = ["r0", "r1", "r2"];
        let onion = create_onion(&mut rng, b"payload", &keys, &ids).unwrap();
        assert_eq!(onion.len(), 7 + 3 * ONION_LAYER_OVERHEAD);
        let p0 = peel_onion(&onion, &keys[0]).unwrap();
        assert_eq!(p0.next_hop.as_deref(), Some("r1"));
        assert_eq!(p0.inner.len(), onion.len() - 93);
        let p1 = peel_onion(&p0.inner, &keys[1]).unwrap();
        assert_eq!(p1.next_hop.as_deref(), Some("r2"));
        let p2 = peel_onion(&p1.inner, &keys[2]).unwrap();
        assert_eq!(p2.next_hop, None);
        assert_eq!(p2.inner, b"payload");
    }

    #[test]
    fn wrong_key_and_tampering_fail() {
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        let keys = keys(2);
        let mut onion = create_onion(&mut rng, b"x", &keys, &["a", "b"]).unwrap();
        assert_eq!(
            peel_onion(&onion, &keys[1]).unwrap_err(),
            ReferenceError::Decrypt
        );
        onion[40] ^= 1;
        assert_eq!(
            peel_onion(&onion, &keys[0]).unwrap_err(),
            ReferenceError::Decrypt
        );
        for len in 0..onion.len() {
            assert!(peel_onion(&onion[..len], &keys[0]).is_err());
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut rng = ChaCha20Rng::seed_from_u64(22);
        let keys = keys(2);
        assert_eq!(
            create_onion(&mut rng, b"", &keys, &["a"]).unwrap_err(),
            ReferenceError::LengthMismatch { keys: 2, ids: 1 }
        );
        let long = "x".repeat(65);
        for bad in ["", long.as_str(), "a\0b"] {
            assert!(matches!(
                create_onion(&mut rng, b"", &keys, &["a", bad]),
                Err(ReferenceError::InvalidHopId(_))
            ));
        }
        let exact = "y".repeat(64);
        let onion = create_onion(&mut rng, b"", &keys, &["a", exact.as_str()]).unwrap();
        let peeled = peel_onion(&onion, &keys[0]).unwrap();
        assert_eq!(peeled.next_hop, Some(exact));
        assert_eq!(
            create_onion(&mut rng, b"c", &[], &[] as &[&str]).unwrap(),
            b"c"
        );
    }

    #[test]
    fn headers_the_reference_never_writes_are_rejected() {
        let mut rng = ChaCha20Rng::seed_from_u64(23);
        let key = HopKey::from_bytes([9; 32]);
        let cases: [(&[u8], &str); 5] = [
            (&[2], "flag byte is not 0 or 1"),
            (&[0, b'a'], "exit layer names a hop"),
            (&[1], "forward layer with an empty id"),
            (&[1, b'a', 0, b'b'], "NUL byte inside the next-hop id"),
            (&[1, 0xff], "next-hop id is not UTF-8"),
        ];
        for (prefix, why) in cases {
            let mut plain = prefix.to_vec();
            plain.resize(ROUTING_HEADER_LEN + 3, 0);
            let layer = gcm::seal(&mut rng, &key, &plain);
            assert_eq!(
                decrypt_onion_layer(&layer, &key).unwrap_err(),
                ReferenceError::MalformedHeader(why)
            );
        }
        let short = gcm::seal(&mut rng, &key, &[0; ROUTING_HEADER_LEN - 1]);
        assert!(matches!(
            decrypt_onion_layer(&short, &key),
            Err(ReferenceError::Decode(_))
        ));
    }
}
