//! Message fragmentation and reassembly over a circuit (PROTOCOL.md §7.2).
//!
//! A message (an end-to-end envelope) travels as one BEGIN cell, carrying its id, total
//! length, recipient and first chunk, followed by DATA cells. Circuits deliver cells in order
//! and every hop checks integrity, so reassembly is concatenation: no offsets, no reordering
//! buffer. One message is in flight per circuit direction at a time.
//!
//! Memory: the total length comes from the peer, so it is checked against a maximum before
//! anything is kept, and the buffer grows only with the bytes that actually arrive.
#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use crate::cell::PAYLOAD_LEN;
use crate::codec::EncodeError;
use crate::envelope::MAX_ENVELOPE_LEN;
use crate::relay_msg::{BEGIN_HEADER_LEN, Begin, MAX_RELAY_BODY, RelayMsg};

/// The largest message a circuit carries: one end-to-end envelope of maximum content.
pub const MAX_MESSAGE_LEN: usize = MAX_ENVELOPE_LEN;
/// Bytes of message in a BEGIN cell.
pub const BEGIN_CHUNK: usize = MAX_RELAY_BODY - BEGIN_HEADER_LEN;
/// Bytes of message in a DATA cell.
pub const DATA_CHUNK: usize = MAX_RELAY_BODY;

/// Why a fragment was refused. A peer that causes one is violating the protocol: destroy the
/// circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FragError {
    /// The declared length exceeds the maximum.
    #[error("message of {0} bytes exceeds the maximum")]
    TooLong(u64),
    /// A BEGIN arrived while a message was still incomplete.
    #[error("BEGIN while a message is in progress")]
    BeginInProgress,
    /// DATA arrived with no message in progress.
    #[error("DATA without BEGIN")]
    DataWithoutBegin,
    /// A chunk ran past the declared length.
    #[error("chunk overruns the declared length")]
    Overrun,
}

/// How many cells a message of `len` bytes takes.
pub fn cells_for(len: usize) -> usize {
    1 + len.saturating_sub(BEGIN_CHUNK).div_ceil(DATA_CHUNK)
}

/// Cuts one message into relay payloads, lazily: each call writes the next cell's payload.
#[derive(Debug, Clone)]
pub struct Fragmenter {
    message_id: [u8; 16],
    recipient: [u8; 32],
    data: Vec<u8>,
    offset: usize,
    began: bool,
}

impl Fragmenter {
    /// Prepares `data` for sending.
    ///
    /// # Errors
    /// [`FragError::TooLong`] over [`MAX_MESSAGE_LEN`].
    pub fn new(
        message_id: [u8; 16],
        recipient: [u8; 32],
        data: Vec<u8>,
    ) -> Result<Self, FragError> {
        if data.len() > MAX_MESSAGE_LEN {
            return Err(FragError::TooLong(data.len() as u64));
        }
        Ok(Self {
            message_id,
            recipient,
            data,
            offset: 0,
            began: false,
        })
    }

    /// The message id.
    pub fn message_id(&self) -> [u8; 16] {
        self.message_id
    }

    /// Bytes of the whole message.
    pub fn message_len(&self) -> usize {
        self.data.len()
    }

    /// Whether every cell has been written.
    pub fn is_done(&self) -> bool {
        self.began && self.offset >= self.data.len()
    }

    /// Cells still to write.
    pub fn remaining_cells(&self) -> usize {
        if self.began {
            (self.data.len() - self.offset).div_ceil(DATA_CHUNK)
        } else {
            cells_for(self.data.len())
        }
    }

    /// Writes the next payload into `out` ([`PAYLOAD_LEN`] bytes). Returns `false` when done.
    ///
    /// # Errors
    /// [`EncodeError`] if `out` is shorter than a payload (local misuse).
    pub fn write_next(&mut self, out: &mut [u8]) -> Result<bool, EncodeError> {
        if self.is_done() {
            return Ok(false);
        }
        let chunk_len = if self.began { DATA_CHUNK } else { BEGIN_CHUNK };
        let end = (self.offset + chunk_len).min(self.data.len());
        let chunk = self.data.get(self.offset..end).unwrap_or_default();
        let msg = if self.began {
            RelayMsg::Data(chunk)
        } else {
            RelayMsg::Begin(Begin {
                message_id: self.message_id,
                total_len: u32::try_from(self.data.len()).unwrap_or(u32::MAX),
                recipient: self.recipient,
                chunk,
            })
        };
        msg.encode(out.get_mut(..PAYLOAD_LEN).unwrap_or_default())?;
        self.began = true;
        self.offset = end;
        Ok(true)
    }
}

/// A complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    /// The sender's message id.
    pub message_id: [u8; 16],
    /// The recipient named in BEGIN.
    pub recipient: [u8; 32],
    /// The message bytes.
    pub data: Vec<u8>,
}

/// Rebuilds messages from BEGIN and DATA cells of one circuit direction.
#[derive(Debug, Default)]
pub struct Reassembler {
    partial: Option<(Reassembled, usize)>,
}

impl Reassembler {
    /// An idle reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held for the message in progress (for memory accounting).
    pub fn buffered(&self) -> usize {
        self.partial.as_ref().map_or(0, |(m, _)| m.data.len())
    }

    /// Takes a BEGIN. Returns the message if it is complete in this one cell.
    ///
    /// # Errors
    /// [`FragError::BeginInProgress`], [`FragError::TooLong`], [`FragError::Overrun`].
    pub fn handle_begin(&mut self, begin: &Begin<'_>) -> Result<Option<Reassembled>, FragError> {
        if self.partial.is_some() {
            return Err(FragError::BeginInProgress);
        }
        let total = usize::try_from(begin.total_len).unwrap_or(usize::MAX);
        if total > MAX_MESSAGE_LEN {
            return Err(FragError::TooLong(u64::from(begin.total_len)));
        }
        let mut data = Vec::with_capacity(total.min(64 * 1024));
        data.extend_from_slice(begin.chunk);
        let msg = Reassembled {
            message_id: begin.message_id,
            recipient: begin.recipient,
            data,
        };
        self.partial = Some((msg, total));
        self.check_progress()
    }

    /// Takes a DATA chunk. Returns the message when it completes.
    ///
    /// # Errors
    /// [`FragError::DataWithoutBegin`], [`FragError::Overrun`].
    pub fn handle_data(&mut self, chunk: &[u8]) -> Result<Option<Reassembled>, FragError> {
        let (msg, _) = self.partial.as_mut().ok_or(FragError::DataWithoutBegin)?;
        msg.data.extend_from_slice(chunk);
        self.check_progress()
    }

    fn check_progress(&mut self) -> Result<Option<Reassembled>, FragError> {
        let Some((msg, total)) = &self.partial else {
            return Ok(None);
        };
        if msg.data.len() > *total {
            self.partial = None;
            return Err(FragError::Overrun);
        }
        if msg.data.len() == *total {
            return Ok(self.partial.take().map(|(m, _)| m));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, clippy::cast_possible_truncation, reason = "test code")]

    use super::*;

    fn deliver(data: Vec<u8>) -> (usize, Reassembled) {
        let mut f = Fragmenter::new([7; 16], [9; 32], data).unwrap();
        let expected = f.remaining_cells();
        let mut r = Reassembler::new();
        let mut cells = 0;
        let mut out = None;
        let mut payload = [0u8; PAYLOAD_LEN];
        while f.write_next(&mut payload).unwrap() {
            cells += 1;
            let done = match RelayMsg::decode(&payload).unwrap() {
                RelayMsg::Begin(b) => r.handle_begin(&b).unwrap(),
                RelayMsg::Data(d) => r.handle_data(d).unwrap(),
                other => panic!("unexpected {other:?}"),
            };
            if let Some(m) = done {
                assert!(out.is_none(), "completed twice");
                out = Some(m);
            }
        }
        assert_eq!(cells, expected);
        (cells, out.expect("message completed"))
    }

    #[test]
    fn messages_of_every_boundary_size_round_trip() {
        for len in [
            0,
            1,
            BEGIN_CHUNK - 1,
            BEGIN_CHUNK,
            BEGIN_CHUNK + 1,
            BEGIN_CHUNK + DATA_CHUNK,
            BEGIN_CHUNK + DATA_CHUNK + 1,
            1 << 20,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let (cells, msg) = deliver(data.clone());
            assert_eq!(cells, cells_for(len), "len {len}");
            assert_eq!(msg.data, data);
            assert_eq!(msg.message_id, [7; 16]);
            assert_eq!(msg.recipient, [9; 32]);
        }
    }

    #[test]
    fn protocol_violations_are_errors() {
        let mut r = Reassembler::new();
        assert_eq!(r.handle_data(b"x"), Err(FragError::DataWithoutBegin));
        let big = Begin {
            message_id: [0; 16],
            total_len: u32::MAX,
            recipient: [0; 32],
            chunk: &[],
        };
        assert!(matches!(r.handle_begin(&big), Err(FragError::TooLong(_))));
        assert_eq!(r.buffered(), 0, "nothing kept for a refused length");
        let two = Begin {
            total_len: 2,
            ..big.clone()
        };
        assert_eq!(r.handle_begin(&two), Ok(None));
        assert_eq!(r.handle_begin(&two), Err(FragError::BeginInProgress));
        assert_eq!(r.handle_data(b"abc"), Err(FragError::Overrun));
        let over = Begin {
            total_len: 1,
            chunk: b"ab",
            ..big
        };
        assert_eq!(r.handle_begin(&over), Err(FragError::Overrun));
        assert!(Fragmenter::new([0; 16], [0; 32], vec![0; MAX_MESSAGE_LEN + 1]).is_err());
    }
}
