//! Fixed-size link cells: the only unit that crosses a link after the handshake.
//!
//! Every cell on every link is [`CELL_LEN`] bytes, whatever its command and however many hops
//! it has crossed (PROTOCOL.md §4). A cell is a 16-byte enciphered header block followed by a
//! body:
//!
//! ```text
//!  0                16                                              CELL_LEN
//!  +----------------+------------------------------------------------+
//!  | header block   | body (BODY_LEN)                                |
//!  | (AES-256 PRP)  |  RELAY:     tag area (TAG_AREA_LEN) | payload  |
//!  |                |  otherwise: link-sealed message | GCM tag      |
//!  +----------------+------------------------------------------------+
//!
//!  header block plaintext:
//!  0        4     5          8                       16
//!  | circ id | cmd | 0 0 0    | link sequence number  |
//! ```
//!
//! The header block is enciphered with AES-256 (a pseudorandom permutation) under the link's
//! header key (see [`crate::link`]). The 11 bytes of redundancy (three zero bytes and the
//! implicit link sequence number) authenticate it: a modified block deciphers to random bytes
//! that match with probability 2^-88. This is encode-then-encipher; it costs one AES block per
//! cell instead of a full AEAD call (~10 ns against ~100 ns, benches/README.md).
#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::num::NonZeroU32;

/// Bytes in every cell on the wire. Chosen by measurement: PROTOCOL.md §4.1 and
/// benches/README.md ("Cell size") compare 512, 1024 and 2048.
pub const CELL_LEN: usize = 1024;
/// Bytes of the enciphered header block.
pub const HEADER_LEN: usize = 16;
/// Bytes of a cell body.
pub const BODY_LEN: usize = CELL_LEN - HEADER_LEN;
/// Bytes of one hop tag (an AES-GCM tag).
pub const TAG_LEN: usize = 16;
/// The most hops a circuit can have; also the number of slots in the tag area, which has this
/// size on every circuit so that no hop learns the path length.
pub const MAX_HOPS: usize = 5;
/// Bytes of the tag area at the front of a RELAY body.
pub const TAG_AREA_LEN: usize = MAX_HOPS * TAG_LEN;
/// Bytes of onion payload in a RELAY body: what the endpoint decrypts.
pub const PAYLOAD_LEN: usize = BODY_LEN - TAG_AREA_LEN;
/// Bytes of plaintext in a link-sealed (non-RELAY) body.
pub const LINK_MSG_LEN: usize = BODY_LEN - TAG_LEN;

/// A circuit id, unique per link and direction of creation. Zero is reserved for link-level
/// cells (padding), which is why this type cannot hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CircId(NonZeroU32);

impl CircId {
    /// Wraps a non-zero id; `None` for zero.
    pub fn new(id: u32) -> Option<Self> {
        NonZeroU32::new(id).map(Self)
    }

    /// The wire value.
    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// Whether the link initiator allocated this id. Initiators use ids with the high bit set,
    /// responders ids with it clear, so the two ends never pick the same id.
    pub fn is_initiator_id(self) -> bool {
        self.get() & 0x8000_0000 != 0
    }
}

/// A cell command: an open newtype, so that an unknown command is a value the link can reject
/// with a clear error rather than a parse failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CellCmd(pub u8);

impl CellCmd {
    /// Link-level padding (circuit id 0). Dropped by the link peer.
    pub const PADDING: Self = Self(0x00);
    /// Create a circuit hop: carries the client's handshake message.
    pub const CREATE: Self = Self(0x01);
    /// Answer to CREATE: carries the relay's handshake reply.
    pub const CREATED: Self = Self(0x02);
    /// An onion cell travelling along a circuit (either direction).
    pub const RELAY: Self = Self(0x03);
    /// Tear down a circuit, with a reason byte.
    pub const DESTROY: Self = Self(0x04);

    /// Whether the body of this command is an onion body (tag area and payload) rather than a
    /// link-sealed message.
    pub fn is_onion(self) -> bool {
        self == Self::RELAY
    }

    /// Whether this command is one the protocol defines.
    pub fn is_known(self) -> bool {
        self.0 <= Self::DESTROY.0
    }
}

/// The decoded header block of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellHeader {
    /// `None` for link-level cells.
    pub circ_id: Option<CircId>,
    /// The command.
    pub cmd: CellCmd,
}

impl CellHeader {
    /// Lays the header out as the 16-byte plaintext block with the link sequence number `seq`.
    pub fn to_block(self, seq: u64) -> [u8; HEADER_LEN] {
        let mut block = [0u8; HEADER_LEN];
        let id = self.circ_id.map_or(0, CircId::get);
        let (head, tail) = block.split_at_mut(8);
        head.copy_from_slice(&[0, 0, 0, 0, self.cmd.0, 0, 0, 0]);
        if let Some(id_bytes) = head.first_chunk_mut::<4>() {
            *id_bytes = id.to_be_bytes();
        }
        tail.copy_from_slice(&seq.to_be_bytes());
        block
    }

    /// Parses a deciphered header block, checking the redundancy against the expected
    /// sequence number `seq`.
    ///
    /// # Errors
    /// [`HeaderError::Forged`] when the redundancy does not match: the block was modified,
    /// replayed, reordered or enciphered under another key.
    pub fn from_block(block: &[u8; HEADER_LEN], seq: u64) -> Result<Self, HeaderError> {
        let [a, b, c, d, cmd, z0, z1, z2, s @ ..] = *block;
        if [z0, z1, z2] != [0, 0, 0] || u64::from_be_bytes(s) != seq {
            return Err(HeaderError::Forged);
        }
        let circ_id = CircId::new(u32::from_be_bytes([a, b, c, d]));
        Ok(Self {
            circ_id,
            cmd: CellCmd(cmd),
        })
    }
}

/// Why a header block was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The block's redundancy did not check: tampering, replay, reordering or a wrong key.
    /// The link must be closed.
    #[error("cell header failed authentication (tampered, replayed or reordered)")]
    Forged,
}

/// Why a cell was dropped; the relay counts drops by this reason for its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DropReason {
    /// A header failed authentication.
    #[error("forged header")]
    ForgedHeader,
    /// A hop tag failed: the cell was modified in flight (tagging), replayed or reordered.
    #[error("onion integrity failure")]
    Integrity,
    /// The cell named a circuit this link does not have.
    #[error("unknown circuit")]
    UnknownCircuit,
    /// The cell's command is not defined or not allowed in this state.
    #[error("unexpected command")]
    UnexpectedCommand,
    /// A queue was full.
    #[error("queue full")]
    QueueFull,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_constants_add_up() {
        assert_eq!(HEADER_LEN + TAG_AREA_LEN + PAYLOAD_LEN, CELL_LEN);
        assert_eq!(HEADER_LEN + LINK_MSG_LEN + TAG_LEN, CELL_LEN);
    }

    #[test]
    fn header_round_trips_and_checks_sequence() {
        let h = CellHeader {
            circ_id: CircId::new(0x8000_0007),
            cmd: CellCmd::RELAY,
        };
        let block = h.to_block(42);
        assert_eq!(CellHeader::from_block(&block, 42), Ok(h));
        assert_eq!(CellHeader::from_block(&block, 43), Err(HeaderError::Forged));
        let mut bad = block;
        bad[6] = 1;
        assert_eq!(CellHeader::from_block(&bad, 42), Err(HeaderError::Forged));
        let pad = CellHeader {
            circ_id: None,
            cmd: CellCmd::PADDING,
        };
        assert_eq!(CellHeader::from_block(&pad.to_block(0), 0), Ok(pad));
    }

    #[test]
    fn circ_id_sides() {
        assert!(CircId::new(0).is_none());
        assert!(CircId::new(0x8000_0001).unwrap().is_initiator_id());
        assert!(!CircId::new(1).unwrap().is_initiator_id());
    }
}
