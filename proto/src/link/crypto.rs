//! Per-cell link protection (PROTOCOL.md §3.3).
//!
//! Each direction has its own header key, body key and sequence number, derived from the
//! Noise split. The header block is enciphered with AES-256 as a block cipher: its plaintext
//! carries the implicit sequence number and three zero bytes, so deciphering a modified,
//! replayed or reordered block yields a mismatch (forgery chance 2^-88) and the link closes.
//! Non-RELAY bodies are sealed with AES-256-GCM under the body key with the same sequence
//! number as nonce.
#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::cell::{CELL_LEN, CellHeader, HEADER_LEN, LINK_MSG_LEN, TAG_LEN};

/// Why a link must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// A header block failed authentication: tampering, replay, reordering or a wrong key.
    #[error("cell header failed authentication")]
    ForgedHeader,
    /// A link-sealed body failed authentication.
    #[error("cell body failed authentication")]
    ForgedBody,
    /// The sequence number space is exhausted (2^64 cells; never in practice).
    #[error("link sequence exhausted")]
    SequenceExhausted,
}

/// One direction's keys and counter.
struct Direction {
    header: aes::Aes256,
    body: LessSafeKey,
    seq: u64,
}

impl Direction {
    fn from_split(split: &[u8; 32]) -> Self {
        let hk = hkdf::Hkdf::<Sha256>::new(None, split);
        let mut header = Zeroizing::new([0u8; 32]);
        let mut body = Zeroizing::new([0u8; 32]);
        hk.expand(b"ournet link header key", &mut *header)
            .expect("32 bytes fit HKDF");
        hk.expand(b"ournet link body key", &mut *body)
            .expect("32 bytes fit HKDF");
        let body = UnboundKey::new(&AES_256_GCM, &*body).expect("AES-256 key is 32 bytes");
        Self {
            header: aes::Aes256::new((&*header).into()),
            body: LessSafeKey::new(body),
            seq: 0,
        }
    }

    fn advance(&mut self) -> Result<u64, LinkError> {
        let seq = self.seq;
        self.seq = seq.checked_add(1).ok_or(LinkError::SequenceExhausted)?;
        Ok(seq)
    }
}

/// The send and receive state of an established link.
pub struct LinkCrypto {
    send: Direction,
    recv: Direction,
}

impl LinkCrypto {
    /// Builds both directions from the Noise split keys (`(send, recv)` from this end's view).
    pub fn from_split(send: &[u8; 32], recv: &[u8; 32]) -> Self {
        Self {
            send: Direction::from_split(send),
            recv: Direction::from_split(recv),
        }
    }

    /// Protects `cell` in place for sending. For a non-RELAY command the caller has put the
    /// message in `cell[HEADER_LEN..HEADER_LEN + LINK_MSG_LEN]`; this seals it and writes the
    /// tag after it. A RELAY body is left as it is (it is an onion body).
    ///
    /// # Errors
    /// [`LinkError::SequenceExhausted`].
    pub fn seal(&mut self, header: CellHeader, cell: &mut [u8; CELL_LEN]) -> Result<(), LinkError> {
        let seq = self.send.advance()?;
        if !header.cmd.is_onion() {
            self.seal_body(header, seq, cell)?;
        }
        let mut block = aes::Block::from(header.to_block(seq));
        self.send.header.encrypt_block(&mut block);
        if let Some(head) = cell.first_chunk_mut::<HEADER_LEN>() {
            head.copy_from_slice(&block);
        }
        Ok(())
    }

    /// Seals a batch of cells for sending, enciphering all header blocks in one AES call.
    /// `headers[i]` goes with `cells[i]`; see [`LinkCrypto::seal`] for the body contract.
    ///
    /// # Errors
    /// [`LinkError::SequenceExhausted`]; cells before the failure are sealed.
    pub fn seal_batch(
        &mut self,
        headers: &[CellHeader],
        cells: &mut [[u8; CELL_LEN]],
    ) -> Result<(), LinkError> {
        const CHUNK: usize = 32;
        for (hchunk, cchunk) in headers.chunks(CHUNK).zip(cells.chunks_mut(CHUNK)) {
            let mut blocks = [aes::Block::default(); CHUNK];
            for ((header, cell), block) in hchunk.iter().zip(cchunk.iter_mut()).zip(&mut blocks) {
                let seq = self.send.advance()?;
                if !header.cmd.is_onion() {
                    self.seal_body(*header, seq, cell)?;
                }
                *block = aes::Block::from(header.to_block(seq));
            }
            let blocks = blocks
                .get_mut(..hchunk.len().min(cchunk.len()))
                .unwrap_or_default();
            self.send.header.encrypt_blocks(blocks);
            for (block, cell) in blocks.iter().zip(cchunk.iter_mut()) {
                if let Some(head) = cell.first_chunk_mut::<HEADER_LEN>() {
                    head.copy_from_slice(block);
                }
            }
        }
        Ok(())
    }

    fn seal_body(
        &mut self,
        header: CellHeader,
        seq: u64,
        cell: &mut [u8; CELL_LEN],
    ) -> Result<(), LinkError> {
        let (_, body) = cell.split_at_mut(HEADER_LEN);
        let (msg, tag_out) = body.split_at_mut(LINK_MSG_LEN);
        let tag = self
            .send
            .body
            .seal_in_place_separate_tag(nonce(seq), Aad::from(&header.to_block(seq)), msg)
            .map_err(|_| LinkError::SequenceExhausted)?;
        tag_out.copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Checks and decrypts a received cell in place, returning its header. A non-RELAY body is
    /// opened: its message is then at `cell[HEADER_LEN..HEADER_LEN + LINK_MSG_LEN]`.
    ///
    /// # Errors
    /// [`LinkError::ForgedHeader`] or [`LinkError::ForgedBody`]: close the link.
    pub fn open(&mut self, cell: &mut [u8; CELL_LEN]) -> Result<CellHeader, LinkError> {
        let (head, _) = cell.split_at_mut(HEADER_LEN);
        let mut block = aes::Block::clone_from_slice(head);
        self.recv.header.decrypt_block(&mut block);
        self.finish_open(block.into(), cell)
    }

    /// Opens a batch of received cells, deciphering all header blocks in one AES call (the
    /// pipelined AES-NI path). Stops at the first bad cell: the link must close then.
    ///
    /// # Errors
    /// The first failure, with the number of cells opened before it; `headers` holds theirs.
    pub fn open_batch(
        &mut self,
        cells: &mut [[u8; CELL_LEN]],
        headers: &mut Vec<CellHeader>,
    ) -> Result<(), (usize, LinkError)> {
        const CHUNK: usize = 32;
        let mut done = 0;
        for chunk in cells.chunks_mut(CHUNK) {
            let mut blocks = [aes::Block::default(); CHUNK];
            for (block, cell) in blocks.iter_mut().zip(chunk.iter()) {
                block.copy_from_slice(cell.first_chunk::<HEADER_LEN>().map_or(&[0; 16], |h| h));
            }
            let blocks = blocks.get_mut(..chunk.len()).unwrap_or_default();
            self.recv.header.decrypt_blocks(blocks);
            for (block, cell) in blocks.iter().zip(chunk.iter_mut()) {
                let header = self
                    .finish_open((*block).into(), cell)
                    .map_err(|e| (done, e))?;
                headers.push(header);
                done += 1;
            }
        }
        Ok(())
    }

    fn finish_open(
        &mut self,
        block: [u8; HEADER_LEN],
        cell: &mut [u8; CELL_LEN],
    ) -> Result<CellHeader, LinkError> {
        let seq = self.recv.seq;
        let header = CellHeader::from_block(&block, seq).map_err(|_| LinkError::ForgedHeader)?;
        if !header.cmd.is_onion() {
            let (_, body) = cell.split_at_mut(HEADER_LEN);
            let (msg, tag) = body.split_at_mut(LINK_MSG_LEN);
            let tag = Tag::try_from(&*tag).map_err(|_| LinkError::ForgedBody)?;
            self.recv
                .body
                .open_in_place_separate_tag(nonce(seq), Aad::from(&block), tag, msg, 0..)
                .map_err(|_| LinkError::ForgedBody)?;
        }
        self.recv.advance()?;
        Ok(header)
    }
}

impl std::fmt::Debug for LinkCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkCrypto")
            .field("send_seq", &self.send.seq)
            .field("recv_seq", &self.recv.seq)
            .finish_non_exhaustive()
    }
}

fn nonce(seq: u64) -> Nonce {
    let mut n = [0u8; 12];
    if let Some(tail) = n.last_chunk_mut::<8>() {
        *tail = seq.to_be_bytes();
    }
    Nonce::assume_unique_for_key(n)
}

const _: () = assert!(LINK_MSG_LEN + TAG_LEN + HEADER_LEN == CELL_LEN);

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        clippy::cast_possible_truncation,
        reason = "test code"
    )]

    use super::*;
    use crate::cell::{CellCmd, CircId};

    fn pair() -> (LinkCrypto, LinkCrypto) {
        (
            LinkCrypto::from_split(&[1; 32], &[2; 32]),
            LinkCrypto::from_split(&[2; 32], &[1; 32]),
        )
    }

    fn relay_header(id: u32) -> CellHeader {
        CellHeader {
            circ_id: CircId::new(id),
            cmd: CellCmd::RELAY,
        }
    }

    #[test]
    fn relay_and_sealed_cells_round_trip() {
        let (mut a, mut b) = pair();
        let mut cell = [7u8; CELL_LEN];
        a.seal(relay_header(5), &mut cell).unwrap();
        assert_eq!(
            &cell[HEADER_LEN..],
            &[7u8; CELL_LEN - HEADER_LEN][..],
            "onion body untouched"
        );
        assert_eq!(b.open(&mut cell).unwrap(), relay_header(5));

        let create = CellHeader {
            circ_id: CircId::new(6),
            cmd: CellCmd::CREATE,
        };
        let mut cell = [0u8; CELL_LEN];
        cell[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(b"ping");
        a.seal(create, &mut cell).unwrap();
        assert_ne!(
            &cell[HEADER_LEN..HEADER_LEN + 4],
            b"ping",
            "sealed body is encrypted"
        );
        assert_eq!(b.open(&mut cell).unwrap(), create);
        assert_eq!(&cell[HEADER_LEN..HEADER_LEN + 4], b"ping");
    }

    #[test]
    fn any_header_bit_flip_replay_or_reorder_closes_the_link() {
        for bit in 0..HEADER_LEN * 8 {
            let (mut a, mut b) = pair();
            let mut cell = [0u8; CELL_LEN];
            a.seal(relay_header(9), &mut cell).unwrap();
            cell[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(b.open(&mut cell), Err(LinkError::ForgedHeader), "bit {bit}");
        }
        // A failed open does not advance the sequence, so the same receiver can show both.
        let (mut a, mut b) = pair();
        let mut c0 = [0u8; CELL_LEN];
        let mut c1 = [0u8; CELL_LEN];
        a.seal(relay_header(1), &mut c0).unwrap();
        a.seal(relay_header(1), &mut c1).unwrap();
        assert_eq!(
            b.open(&mut c1.clone()),
            Err(LinkError::ForgedHeader),
            "reordered"
        );
        b.open(&mut c0.clone()).unwrap();
        assert_eq!(b.open(&mut c0), Err(LinkError::ForgedHeader), "replayed");
        b.open(&mut c1).unwrap();
    }

    #[test]
    fn sealed_body_tampering_is_caught() {
        let (mut a, mut b) = pair();
        let destroy = CellHeader {
            circ_id: CircId::new(3),
            cmd: CellCmd::DESTROY,
        };
        let mut cell = [0u8; CELL_LEN];
        a.seal(destroy, &mut cell).unwrap();
        cell[CELL_LEN - 1] ^= 1;
        assert_eq!(b.open(&mut cell), Err(LinkError::ForgedBody));
    }

    #[test]
    fn batch_seal_matches_single_seals() {
        let (mut a, mut b) = pair();
        let (mut c, _) = pair();
        let headers: Vec<CellHeader> = (1..=40u32)
            .map(|i| CellHeader {
                circ_id: CircId::new(i),
                cmd: if i % 7 == 0 {
                    CellCmd::DESTROY
                } else {
                    CellCmd::RELAY
                },
            })
            .collect();
        let mut batch = vec![[3u8; CELL_LEN]; 40];
        a.seal_batch(&headers, &mut batch).unwrap();
        for (h, cell) in headers.iter().zip(&batch) {
            let mut single = [3u8; CELL_LEN];
            c.seal(*h, &mut single).unwrap();
            assert_eq!(&single[..], &cell[..]);
            assert_eq!(b.open(&mut cell.clone()).unwrap(), *h);
        }
    }

    #[test]
    fn batch_open_matches_single_opens() {
        let (mut a, mut b) = pair();
        let mut cells = vec![[0u8; CELL_LEN]; 70];
        for (i, cell) in cells.iter_mut().enumerate() {
            let cmd = if i % 5 == 0 {
                CellCmd::PADDING
            } else {
                CellCmd::RELAY
            };
            let circ_id = if i % 5 == 0 {
                None
            } else {
                CircId::new(i as u32)
            };
            a.seal(CellHeader { circ_id, cmd }, cell).unwrap();
        }
        cells[50][3] ^= 1;
        let mut headers = Vec::new();
        assert_eq!(
            b.open_batch(&mut cells, &mut headers),
            Err((50, LinkError::ForgedHeader))
        );
        assert_eq!(headers.len(), 50);
        assert_eq!(headers[7], relay_header(7));
        assert_eq!(
            headers[10],
            CellHeader {
                circ_id: None,
                cmd: CellCmd::PADDING
            }
        );
    }
}
