//! Onion cell crypto with per-hop integrity (PROTOCOL.md §5).
//!
//! A RELAY body is a tag area of [`MAX_HOPS`] 16-byte slots followed by the payload. Every
//! circuit uses all slots, whatever its length, so no hop learns its position or the path
//! length from the cell.
//!
//! **Forward** (client to exit). Hop *i* holds an AES-256-GCM key and a mask key. It reads the
//! first slot as its tag and opens the payload with AAD = the other `MAX_HOPS - 1` slots exactly
//! as they arrived, so a bit flipped anywhere in the body (payload, its own tag, or a later
//! hop's slot) fails at this hop: the tagging attack dies at the first honest hop. It then
//! shifts the tag area left by one slot, appends a zero slot and XORs the whole area with a
//! keystream block set `S_i = AES(mask_i, seq || j)`, so the bytes the next hop sees are
//! unlinkable to the ones this hop saw. The client knows every `S_i`, so it can predict the
//! filler slots each hop will see and compute every tag over them, innermost hop first: the
//! Sphinx header construction with GCM tags as per-hop MACs.
//!
//! **Backward** (toward the client). Each hop seals the payload with its backward key, masks
//! the first `MAX_HOPS - 1` slots with its backward keystream, shifts them right and puts its
//! tag in slot 0. The client opens every layer in path order. Only the client can check
//! backward integrity, and it does: any modification fails at the client, which destroys the
//! circuit. Only the last hop originates backward cells (PROTOCOL.md §6), so the client always
//! opens all hops.
//!
//! **Replay and reorder.** GCM nonces and keystream inputs are implicit per-hop, per-direction
//! counters, never sent. A replayed, dropped, re-inserted or reordered cell is opened under
//! the wrong counter and fails. After any integrity failure the circuit must be destroyed:
//! counters no longer agree.
#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use aes::cipher::{BlockEncrypt, KeyInit};
use rand_core::{CryptoRng, RngCore};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use zeroize::Zeroizing;

use crate::cell::{MAX_HOPS, TAG_AREA_LEN, TAG_LEN};

/// Bytes of key material one hop needs: forward and backward GCM keys, forward and backward
/// mask keys.
pub const HOP_KEY_MATERIAL_LEN: usize = 128;

/// Why a body was refused or could not be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OnionError {
    /// A hop tag did not verify: the cell was modified, replayed, reordered or is for another
    /// circuit. The circuit must be destroyed.
    #[error("onion integrity check failed")]
    Integrity,
    /// The body is not longer than the tag area (a local misuse).
    #[error("body of {0} bytes is too short for the tag area")]
    BodyTooShort(usize),
    /// The circuit has no hops, or already has [`MAX_HOPS`].
    #[error("circuit has {0} hops; 1..={max} allowed", max = MAX_HOPS)]
    HopCount(usize),
    /// A counter reached its end; the circuit must be replaced (2^64 cells: never in practice).
    #[error("cell counter exhausted")]
    CounterExhausted,
}

/// The four keys of one hop, derived by the circuit handshake.
pub struct HopKeys {
    fwd: LessSafeKey,
    bwd: LessSafeKey,
    fwd_mask: aes::Aes256,
    bwd_mask: aes::Aes256,
}

impl HopKeys {
    /// Splits 128 bytes of handshake output: forward GCM key, backward GCM key, forward mask
    /// key, backward mask key, 32 bytes each and in that order.
    pub fn from_key_material(km: &Zeroizing<[u8; HOP_KEY_MATERIAL_LEN]>) -> Self {
        let [fwd, bwd, fwd_mask, bwd_mask] = split4(km);
        Self {
            fwd: gcm_key(fwd),
            bwd: gcm_key(bwd),
            fwd_mask: aes::Aes256::new(fwd_mask.into()),
            bwd_mask: aes::Aes256::new(bwd_mask.into()),
        }
    }
}

impl std::fmt::Debug for HopKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HopKeys(..)")
    }
}

/// A relay's crypto state for one circuit: its own hop's keys and counters.
#[derive(Debug)]
pub struct RelayHopCrypto {
    keys: HopKeys,
    fwd_seq: u64,
    bwd_seq: u64,
}

impl RelayHopCrypto {
    /// Starts both counters at zero.
    pub fn new(keys: HopKeys) -> Self {
        Self {
            keys,
            fwd_seq: 0,
            bwd_seq: 0,
        }
    }

    /// Checks and removes this hop's layer from a forward body, in place. On success the body
    /// is what the next hop expects (or, at the last hop, the tag area is filler and the
    /// payload is plaintext).
    ///
    /// # Errors
    /// [`OnionError::Integrity`]: drop the cell and destroy the circuit. The counter does not
    /// advance, so nothing an attacker sends can move it.
    pub fn peel_forward(&mut self, body: &mut [u8]) -> Result<(), OnionError> {
        let (area, payload) = split_body(body)?;
        let (tag, rest) = area.split_at(TAG_LEN);
        let tag = Tag::try_from(tag).map_err(|_| OnionError::Integrity)?;
        let nonce = nonce(self.fwd_seq);
        self.keys
            .fwd
            .open_in_place_separate_tag(nonce, Aad::from(rest), tag, payload, 0..)
            .map_err(|_| OnionError::Integrity)?;
        let mask = keystream(&self.keys.fwd_mask, self.fwd_seq);
        shift_left_and_mask(area, &mask);
        self.fwd_seq = next(self.fwd_seq)?;
        Ok(())
    }

    /// Adds this hop's layer to a backward body, in place. At the last hop, the caller puts
    /// the plaintext in the payload and zeros in the tag area first (the mask makes them
    /// indistinguishable from a relayed cell's slots).
    ///
    /// # Errors
    /// [`OnionError::CounterExhausted`].
    pub fn seal_backward(&mut self, body: &mut [u8]) -> Result<(), OnionError> {
        let (area, payload) = split_body(body)?;
        let tag = self
            .keys
            .bwd
            .seal_in_place_separate_tag(nonce(self.bwd_seq), Aad::empty(), payload)
            .map_err(|_| OnionError::CounterExhausted)?;
        let mask = keystream(&self.keys.bwd_mask, self.bwd_seq);
        shift_right_and_mask(area, &mask, tag.as_ref());
        self.bwd_seq = next(self.bwd_seq)?;
        Ok(())
    }

    /// Peels a run of forward bodies of this circuit, as a completion batch delivers them.
    /// Stops at the first failure; returns how many were peeled.
    ///
    /// # Errors
    /// The first failure, with the count of bodies peeled before it.
    pub fn peel_forward_batch<B: AsMut<[u8]>>(
        &mut self,
        bodies: &mut [B],
    ) -> Result<usize, (usize, OnionError)> {
        for (done, body) in bodies.iter_mut().enumerate() {
            self.peel_forward(body.as_mut()).map_err(|e| (done, e))?;
        }
        Ok(bodies.len())
    }

    /// Seals a run of backward bodies of this circuit.
    ///
    /// # Errors
    /// The first failure, with the count of bodies sealed before it.
    pub fn seal_backward_batch<B: AsMut<[u8]>>(
        &mut self,
        bodies: &mut [B],
    ) -> Result<usize, (usize, OnionError)> {
        for (done, body) in bodies.iter_mut().enumerate() {
            self.seal_backward(body.as_mut()).map_err(|e| (done, e))?;
        }
        Ok(bodies.len())
    }
}

/// One hop as the client sees it.
#[derive(Debug)]
struct ClientHop {
    keys: HopKeys,
    fwd_seq: u64,
    bwd_seq: u64,
}

/// The client's crypto state for a whole circuit: one entry per hop, in path order.
#[derive(Debug, Default)]
pub struct ClientCircuitCrypto {
    hops: Vec<ClientHop>,
}

impl ClientCircuitCrypto {
    /// A circuit with no hops yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a hop after a completed handshake with it.
    ///
    /// # Errors
    /// [`OnionError::HopCount`] when the circuit already has [`MAX_HOPS`] hops.
    pub fn push_hop(&mut self, keys: HopKeys) -> Result<(), OnionError> {
        if self.hops.len() >= MAX_HOPS {
            return Err(OnionError::HopCount(self.hops.len() + 1));
        }
        self.hops.push(ClientHop {
            keys,
            fwd_seq: 0,
            bwd_seq: 0,
        });
        Ok(())
    }

    /// Number of hops.
    pub fn hop_count(&self) -> usize {
        self.hops.len()
    }

    /// Wraps a plaintext payload (already in `body` after the tag area) for every hop, and
    /// fills the tag area. `rng` fills the slots the path does not use, so that the last hop
    /// cannot count them.
    ///
    /// # Errors
    /// [`OnionError::HopCount`] for a circuit without hops, [`OnionError::BodyTooShort`].
    pub fn seal_forward(
        &mut self,
        body: &mut [u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), OnionError> {
        let n = self.hops.len();
        if n == 0 {
            return Err(OnionError::HopCount(0));
        }
        let (area, payload) = split_body(body)?;
        let masks: Vec<[u8; TAG_AREA_LEN]> = self
            .hops
            .iter()
            .map(|h| keystream(&h.keys.fwd_mask, h.fwd_seq))
            .collect();
        let mut a = last_hop_area(&masks, rng);
        for (i, hop) in self.hops.iter().enumerate().rev() {
            let (tag_slot, rest) = a.split_at_mut(TAG_LEN);
            let tag = hop
                .keys
                .fwd
                .seal_in_place_separate_tag(nonce(hop.fwd_seq), Aad::from(&*rest), payload)
                .map_err(|_| OnionError::CounterExhausted)?;
            tag_slot.copy_from_slice(tag.as_ref());
            if let Some(prev_mask) = i.checked_sub(1).and_then(|p| masks.get(p)) {
                a = unshift(&a, prev_mask);
            }
        }
        area.copy_from_slice(&a);
        for hop in &mut self.hops {
            hop.fwd_seq = next(hop.fwd_seq)?;
        }
        Ok(())
    }

    /// Opens every hop's backward layer, in place; on success the payload is the last hop's
    /// plaintext. Also checks that the unused tag slots are the zeros the last hop put there,
    /// so every modification that reaches the client is detected (a slot that a hop drops
    /// reaches nobody).
    ///
    /// # Errors
    /// [`OnionError::Integrity`]: destroy the circuit. [`OnionError::HopCount`] for a circuit
    /// without hops (no layer would authenticate the body), [`OnionError::BodyTooShort`].
    pub fn open_backward(&mut self, body: &mut [u8]) -> Result<(), OnionError> {
        if self.hops.is_empty() {
            return Err(OnionError::HopCount(0));
        }
        let (area, payload) = split_body(body)?;
        for hop in &mut self.hops {
            let tag = area
                .first_chunk::<TAG_LEN>()
                .copied()
                .ok_or(OnionError::Integrity)?;
            hop.keys
                .bwd
                .open_in_place_separate_tag(
                    nonce(hop.bwd_seq),
                    Aad::empty(),
                    Tag::from(tag),
                    payload,
                    0..,
                )
                .map_err(|_| OnionError::Integrity)?;
            let mask = keystream(&hop.keys.bwd_mask, hop.bwd_seq);
            unshift_backward(area, &mask);
            hop.bwd_seq = next(hop.bwd_seq)?;
        }
        // The last hop originated the area as zeros. With every layer removed, the first
        // MAX_HOPS - n slots are those zeros again (the other n were dropped one per hop and
        // reached nobody), so a non-zero byte there was modified on the way.
        let recoverable = (MAX_HOPS - self.hops.len()) * TAG_LEN;
        if area
            .get(..recoverable)
            .is_some_and(|slots| slots.iter().any(|&b| b != 0))
        {
            return Err(OnionError::Integrity);
        }
        Ok(())
    }
}

/// The tag area as it reaches the last hop, minus its tag: random slots for the hops the path
/// does not have, then the filler the earlier hops' masks will have produced.
fn last_hop_area(
    masks: &[[u8; TAG_AREA_LEN]],
    rng: &mut (impl RngCore + CryptoRng),
) -> [u8; TAG_AREA_LEN] {
    let n = masks.len();
    let mut a = [0u8; TAG_AREA_LEN];
    let filler = filler(masks.get(..n.saturating_sub(1)).unwrap_or(&[]));
    let filler_start = TAG_AREA_LEN - (n - 1) * TAG_LEN;
    if let Some(random) = a.get_mut(TAG_LEN..filler_start) {
        rng.fill_bytes(random);
    }
    if let (Some(dst), Some(src)) = (a.get_mut(filler_start..), filler.get(..(n - 1) * TAG_LEN)) {
        dst.copy_from_slice(src);
    }
    a
}

/// Sphinx filler: the slots that hops `0..masks.len()` append, as the next hop sees them.
/// `phi_{i+1} = (phi_i || 0^16) XOR mask_i[last i+1 slots]`.
fn filler(masks: &[[u8; TAG_AREA_LEN]]) -> [u8; TAG_AREA_LEN] {
    let mut phi = [0u8; TAG_AREA_LEN];
    for (i, mask) in masks.iter().enumerate() {
        let len = (i + 1) * TAG_LEN;
        if let (Some(dst), Some(src)) = (phi.get_mut(..len), mask.get(TAG_AREA_LEN - len..)) {
            xor(dst, src);
        }
    }
    phi
}

/// Given the area a hop receives, the area the previous hop received (its slot 0 left zero
/// for that hop's tag): `prev[1..] = a[..K-1] XOR prev_mask[..K-1]`.
fn unshift(a: &[u8; TAG_AREA_LEN], prev_mask: &[u8; TAG_AREA_LEN]) -> [u8; TAG_AREA_LEN] {
    let mut prev = [0u8; TAG_AREA_LEN];
    let keep = TAG_AREA_LEN - TAG_LEN;
    if let (Some(dst), Some(src), Some(m)) = (
        prev.get_mut(TAG_LEN..),
        a.get(..keep),
        prev_mask.get(..keep),
    ) {
        dst.copy_from_slice(src);
        xor(dst, m);
    }
    prev
}

fn shift_left_and_mask(area: &mut [u8], mask: &[u8; TAG_AREA_LEN]) {
    area.copy_within(TAG_LEN.., 0);
    if let Some(last) = area.get_mut(TAG_AREA_LEN - TAG_LEN..) {
        last.fill(0);
    }
    xor(area, mask);
}

/// Inverse of [`shift_right_and_mask`] without the tag: `in[..K-1] = out[1..] XOR
/// mask[..K-1]`. The slot the hop dropped is lost; it comes back as zero.
fn unshift_backward(area: &mut [u8], mask: &[u8; TAG_AREA_LEN]) {
    let keep = TAG_AREA_LEN - TAG_LEN;
    area.copy_within(TAG_LEN.., 0);
    if let (Some(dst), Some(m)) = (area.get_mut(..keep), mask.get(..keep)) {
        xor(dst, m);
    }
    if let Some(last) = area.get_mut(keep..) {
        last.fill(0);
    }
}

fn shift_right_and_mask(area: &mut [u8], mask: &[u8; TAG_AREA_LEN], tag: &[u8]) {
    let keep = TAG_AREA_LEN - TAG_LEN;
    area.copy_within(..keep, TAG_LEN);
    if let (Some(dst), Some(m)) = (area.get_mut(TAG_LEN..), mask.get(..keep)) {
        xor(dst, m);
    }
    if let Some(first) = area.get_mut(..TAG_LEN) {
        first.copy_from_slice(tag);
    }
}

/// `MAX_HOPS` AES blocks: `AES(key, seq || j)` for slot j.
fn keystream(key: &aes::Aes256, seq: u64) -> [u8; TAG_AREA_LEN] {
    let mut blocks = [aes::Block::default(); MAX_HOPS];
    for (j, block) in (0u64..).zip(blocks.iter_mut()) {
        let (hi, lo) = block.split_at_mut(8);
        hi.copy_from_slice(&seq.to_be_bytes());
        lo.copy_from_slice(&j.to_be_bytes());
    }
    key.encrypt_blocks(&mut blocks);
    let mut out = [0u8; TAG_AREA_LEN];
    for (dst, block) in out.chunks_exact_mut(TAG_LEN).zip(blocks.iter()) {
        dst.copy_from_slice(block);
    }
    out
}

fn split_body(body: &mut [u8]) -> Result<(&mut [u8], &mut [u8]), OnionError> {
    let len = body.len();
    match body.split_at_mut_checked(TAG_AREA_LEN) {
        Some((area, payload)) if !payload.is_empty() => Ok((area, payload)),
        _ => Err(OnionError::BodyTooShort(len)),
    }
}

fn xor(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

fn nonce(seq: u64) -> Nonce {
    let mut n = [0u8; 12];
    if let Some(tail) = n.last_chunk_mut::<8>() {
        *tail = seq.to_be_bytes();
    }
    Nonce::assume_unique_for_key(n)
}

fn next(seq: u64) -> Result<u64, OnionError> {
    seq.checked_add(1).ok_or(OnionError::CounterExhausted)
}

fn gcm_key(bytes: &[u8; 32]) -> LessSafeKey {
    // A 32-byte key is always valid for AES-256-GCM; `UnboundKey::new` only fails on length.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("AES-256 key is 32 bytes"))
}

fn split4(km: &[u8; HOP_KEY_MATERIAL_LEN]) -> [&[u8; 32]; 4] {
    let (a, rest) = km.split_first_chunk::<32>().expect("128 = 4 * 32");
    let (b, rest) = rest.split_first_chunk::<32>().expect("128 = 4 * 32");
    let (c, d) = rest.split_first_chunk::<32>().expect("128 = 4 * 32");
    let d = d.first_chunk::<32>().expect("128 = 4 * 32");
    [a, b, c, d]
}

#[cfg(test)]
#[path = "onion_tests.rs"]
mod tests;
