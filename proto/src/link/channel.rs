//! An established link as a sans-IO state machine (PROTOCOL.md §3.5): incremental framing of
//! cells out of a byte stream, keepalive padding and the idle timeout.
//!
//! Bytes from the socket go to [`Channel::decode`], which yields one opened cell at a time
//! (`Ok(None)` while a cell is incomplete) and takes exactly [`CELL_LEN`] bytes off the
//! buffer per cell, without copying the body. [`Channel::encode`] seals a cell for sending.
//! Time is an argument: [`Channel::poll_timeout`] says when [`Channel::handle_timeout`] is due,
//! which answers with a keepalive PADDING cell to send or the decision to close an idle link.

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};

use super::{LinkCrypto, LinkError};
use crate::cell::{CELL_LEN, CellCmd, CellHeader, HEADER_LEN, LINK_MSG_LEN};
use crate::link_msg::LinkMsg;

/// Send a PADDING cell when nothing was sent for this long, so that a silent link stays
/// distinguishable from a dead one and NAT state stays up.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// Close a link on which nothing arrived for this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// What a timeout asks of the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeoutAction {
    /// Send this sealed keepalive cell.
    SendKeepalive(Box<[u8; CELL_LEN]>),
    /// The peer has been silent too long: close the link.
    Close,
}

/// A received, opened cell.
#[derive(Debug)]
pub struct InCell {
    /// Its header.
    pub header: CellHeader,
    /// The whole cell; the body starts at [`HEADER_LEN`]. For link-sealed commands the
    /// message is at `HEADER_LEN..HEADER_LEN + LINK_MSG_LEN`.
    pub cell: BytesMut,
}

impl InCell {
    /// The body (an onion body for RELAY cells).
    pub fn body_mut(&mut self) -> &mut [u8] {
        body_of(&mut self.cell[..])
    }

    /// The link message of a non-RELAY cell.
    ///
    /// # Errors
    /// [`crate::codec::DecodeError`] for a RELAY cell or a malformed message.
    pub fn link_msg(&self) -> Result<LinkMsg<'_>, crate::codec::DecodeError> {
        link_msg_of(&self.header, &self.cell[..])
    }
}

impl InCell {
    /// The same cell as an [`OpenedCell`] (the view in-place readers get).
    pub fn opened(&mut self) -> Option<OpenedCell<'_>> {
        let cell = <&mut [u8; CELL_LEN]>::try_from(&mut self.cell[..]).ok()?;
        Some(OpenedCell {
            header: self.header,
            cell,
        })
    }
}

/// A received cell opened where it lies, in a buffer the adapter owns
/// ([`Channel::open_in_place`]): onion layers are then peeled in that buffer too, and the
/// cell is copied only into the next link's output.
#[derive(Debug)]
pub struct OpenedCell<'a> {
    /// Its header.
    pub header: CellHeader,
    /// The whole cell, as [`InCell::cell`].
    pub cell: &'a mut [u8; CELL_LEN],
}

impl OpenedCell<'_> {
    /// The body (an onion body for RELAY cells).
    pub fn body_mut(&mut self) -> &mut [u8] {
        body_of(&mut self.cell[..])
    }

    /// The link message of a non-RELAY cell.
    ///
    /// # Errors
    /// [`crate::codec::DecodeError`] for a RELAY cell or a malformed message.
    pub fn link_msg(&self) -> Result<LinkMsg<'_>, crate::codec::DecodeError> {
        link_msg_of(&self.header, &self.cell[..])
    }
}

/// The body of a whole cell, owned ([`InCell`]) or lent ([`OpenedCell`]).
fn body_of(cell: &mut [u8]) -> &mut [u8] {
    cell.get_mut(HEADER_LEN..).unwrap_or_default()
}

/// The link message of a whole non-RELAY cell, owned or lent.
fn link_msg_of<'a>(
    header: &CellHeader,
    cell: &'a [u8],
) -> Result<LinkMsg<'a>, crate::codec::DecodeError> {
    let msg = cell
        .get(HEADER_LEN..HEADER_LEN + LINK_MSG_LEN)
        .unwrap_or_default();
    LinkMsg::decode(header.cmd, msg)
}

/// An established link.
#[derive(Debug)]
pub struct Channel {
    crypto: LinkCrypto,
    last_sent: Instant,
    last_received: Instant,
}

impl Channel {
    /// Wraps the crypto of a completed handshake.
    pub fn new(crypto: LinkCrypto, now: Instant) -> Self {
        Self {
            crypto,
            last_sent: now,
            last_received: now,
        }
    }

    /// Takes the next complete cell off `buf`, opened. `Ok(None)` until a whole cell is there.
    ///
    /// # Errors
    /// [`LinkError`]: close the link; nothing more can be read from it.
    pub fn decode(
        &mut self,
        now: Instant,
        buf: &mut BytesMut,
    ) -> Result<Option<InCell>, LinkError> {
        if buf.len() < CELL_LEN {
            return Ok(None);
        }
        let mut cell = buf.split_to(CELL_LEN);
        let array: &mut [u8; CELL_LEN] = (&mut cell[..])
            .try_into()
            .map_err(|_| LinkError::ForgedHeader)?;
        let header = self.crypto.open(array)?;
        self.last_received = now;
        Ok(Some(InCell { header, cell }))
    }

    /// Takes every complete cell off `buf` at once and appends them, opened, to `out`. The
    /// header blocks of the whole batch are deciphered in one pipelined AES call
    /// ([`LinkCrypto::open_batch`]); bodies are not copied. Returns how many cells were added.
    ///
    /// # Errors
    /// [`LinkError`] for the first bad cell: close the link. The cells before it are in `out`.
    pub fn decode_batch(
        &mut self,
        now: Instant,
        buf: &mut BytesMut,
        out: &mut Vec<InCell>,
    ) -> Result<usize, LinkError> {
        let n = buf.len() / CELL_LEN;
        if n == 0 {
            return Ok(0);
        }
        let mut batch = buf.split_to(n * CELL_LEN);
        let mut headers = Vec::with_capacity(n);
        let (cells, _) = batch.as_chunks_mut::<CELL_LEN>();
        let result = self.crypto.open_batch(cells, &mut headers);
        let opened = headers.len();
        if opened > 0 {
            self.last_received = now;
        }
        out.extend(headers.into_iter().map(|header| InCell {
            header,
            cell: batch.split_to(CELL_LEN),
        }));
        result.map_err(|(_, e)| e)?;
        Ok(opened)
    }

    /// Opens whole cells where they lie (an adapter's receive buffer), their headers in one
    /// batch as [`Channel::decode_batch`] does, and appends the headers to `headers`: cell
    /// `i` of `cells` has header `headers[start + i]`. Returns how many were opened.
    ///
    /// # Errors
    /// [`LinkError`] for the first bad cell: close the link. The cells before it are opened
    /// and their headers in `headers`.
    pub fn open_in_place(
        &mut self,
        now: Instant,
        cells: &mut [[u8; CELL_LEN]],
        headers: &mut Vec<CellHeader>,
    ) -> Result<usize, LinkError> {
        let before = headers.len();
        let result = self.crypto.open_batch(cells, headers);
        let opened = headers.len() - before;
        if opened > 0 {
            self.last_received = now;
        }
        result.map_err(|(_, e)| e)?;
        Ok(opened)
    }

    /// Seals a cell to send. For non-RELAY commands put the message in
    /// `cell[HEADER_LEN..HEADER_LEN + LINK_MSG_LEN]` first (or use [`Channel::encode_msg`]).
    ///
    /// # Errors
    /// [`LinkError::SequenceExhausted`].
    pub fn encode(
        &mut self,
        now: Instant,
        header: CellHeader,
        cell: &mut [u8; CELL_LEN],
    ) -> Result<(), LinkError> {
        self.crypto.seal(header, cell)?;
        self.last_sent = now;
        Ok(())
    }

    /// Builds and seals a cell carrying a link message.
    ///
    /// # Errors
    /// [`LinkError`] on counter exhaustion; an oversized message is a local bug reported as
    /// [`LinkError::ForgedBody`].
    pub fn encode_msg(
        &mut self,
        now: Instant,
        circ_id: Option<crate::cell::CircId>,
        msg: &LinkMsg<'_>,
    ) -> Result<[u8; CELL_LEN], LinkError> {
        let mut cell = [0u8; CELL_LEN];
        let body = cell
            .get_mut(HEADER_LEN..HEADER_LEN + LINK_MSG_LEN)
            .and_then(|b| <&mut [u8; LINK_MSG_LEN]>::try_from(b).ok())
            .ok_or(LinkError::ForgedBody)?;
        msg.encode(body).map_err(|_| LinkError::ForgedBody)?;
        self.encode(
            now,
            CellHeader {
                circ_id,
                cmd: msg.cmd(),
            },
            &mut cell,
        )?;
        Ok(cell)
    }

    /// When [`Channel::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        (self.last_sent + KEEPALIVE_INTERVAL).min(self.last_received + IDLE_TIMEOUT)
    }

    /// Acts on the timers: close an idle link, or produce a keepalive.
    ///
    /// # Errors
    /// [`LinkError`] on counter exhaustion.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<Option<TimeoutAction>, LinkError> {
        if now >= self.last_received + IDLE_TIMEOUT {
            return Ok(Some(TimeoutAction::Close));
        }
        if now >= self.last_sent + KEEPALIVE_INTERVAL {
            let cell = self.encode_msg(now, None, &LinkMsg::Padding)?;
            return Ok(Some(TimeoutAction::SendKeepalive(Box::new(cell))));
        }
        Ok(None)
    }
}

/// Whether a received cell is link padding, which the adapter drops after counting it.
pub fn is_padding(header: &CellHeader) -> bool {
    header.cmd == CellCmd::PADDING
}

/// Advances `buf` past `n` bytes (helper for adapters that read into a shared buffer).
pub fn consume(buf: &mut BytesMut, n: usize) {
    buf.advance(n.min(buf.len()));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, reason = "test code")]

    use super::*;
    use crate::cell::CircId;
    use crate::test_util::t0;

    fn pair(now: Instant) -> (Channel, Channel) {
        (
            Channel::new(LinkCrypto::from_split(&[1; 32], &[2; 32]), now),
            Channel::new(LinkCrypto::from_split(&[2; 32], &[1; 32]), now),
        )
    }

    #[test]
    fn cells_are_framed_from_a_byte_stream_in_any_split() {
        let now = t0();
        let (mut a, mut b) = pair(now);
        let mut stream = Vec::new();
        for i in 1..=3u32 {
            let msg = LinkMsg::Destroy(crate::link_msg::DestroyReason(i as u8));
            stream.extend_from_slice(&a.encode_msg(now, CircId::new(i), &msg).unwrap());
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in stream.chunks(333) {
            buf.extend_from_slice(chunk);
            while let Some(cell) = b.decode(now, &mut buf).unwrap() {
                let msg = cell.link_msg().unwrap();
                got.push((
                    cell.header.circ_id.unwrap().get(),
                    msg.clone().cmd(),
                    format!("{msg:?}"),
                ));
            }
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[2].0, 3);
        assert!(buf.is_empty());
    }

    #[test]
    fn batch_decode_matches_single_decodes_and_stops_at_a_bad_cell() {
        let now = t0();
        let (mut a, mut b) = pair(now);
        let mut stream = Vec::new();
        for i in 1..=50u32 {
            let msg = LinkMsg::Destroy(crate::link_msg::DestroyReason(1));
            stream.extend_from_slice(&a.encode_msg(now, CircId::new(i), &msg).unwrap());
        }
        stream[40 * CELL_LEN + 3] ^= 1;
        let mut buf = BytesMut::from(&stream[..]);
        buf.extend_from_slice(&[0u8; 100]);
        let mut out = Vec::new();
        assert_eq!(
            b.decode_batch(now, &mut buf, &mut out),
            Err(LinkError::ForgedHeader)
        );
        assert_eq!(out.len(), 40);
        assert_eq!(out[39].header.circ_id, CircId::new(40));
        assert_eq!(
            out[0].link_msg().unwrap(),
            LinkMsg::Destroy(crate::link_msg::DestroyReason(1))
        );
        assert_eq!(buf.len(), 100, "a partial cell stays in the buffer");
    }

    #[test]
    fn cells_opened_in_place_match_decoded_ones_and_stop_at_a_bad_cell() {
        let now = t0();
        let (mut a, mut b) = pair(now);
        let (_, mut c) = pair(now);
        let mut cells = Vec::new();
        for i in 1..=40u32 {
            let msg = LinkMsg::Destroy(crate::link_msg::DestroyReason(i as u8));
            cells.push(a.encode_msg(now, CircId::new(i), &msg).unwrap());
        }
        let mut stream = BytesMut::from(cells.as_flattened());
        let mut decoded = Vec::new();
        b.decode_batch(now, &mut stream, &mut decoded).unwrap();
        cells[30][5] ^= 1;
        let mut headers = Vec::new();
        assert_eq!(
            c.open_in_place(now, &mut cells, &mut headers),
            Err(LinkError::ForgedHeader)
        );
        assert_eq!(headers.len(), 30);
        for (i, header) in headers.iter().enumerate() {
            let mut view = OpenedCell {
                header: *header,
                cell: &mut cells[i],
            };
            let theirs = decoded[i].opened().unwrap();
            assert_eq!(view.header, theirs.header);
            assert_eq!(view.link_msg().unwrap(), theirs.link_msg().unwrap());
            assert_eq!(view.body_mut().len(), CELL_LEN - HEADER_LEN);
        }
    }

    #[test]
    fn keepalive_and_idle_timeout_follow_the_simulated_clock() {
        let now = t0();
        let (mut a, mut b) = pair(now);
        assert_eq!(a.poll_timeout(), now + KEEPALIVE_INTERVAL);
        assert_eq!(
            a.handle_timeout(now + Duration::from_secs(29)).unwrap(),
            None
        );
        let later = now + KEEPALIVE_INTERVAL;
        let Some(TimeoutAction::SendKeepalive(cell)) = a.handle_timeout(later).unwrap() else {
            panic!("expected a keepalive");
        };
        let mut buf = BytesMut::from(&cell[..]);
        let got = b.decode(later, &mut buf).unwrap().unwrap();
        assert!(is_padding(&got.header));
        assert_eq!(got.link_msg().unwrap(), LinkMsg::Padding);
        // `a` heard nothing since `now`: it closes at the idle timeout.
        assert_eq!(
            a.handle_timeout(now + IDLE_TIMEOUT).unwrap(),
            Some(TimeoutAction::Close)
        );
    }

    #[test]
    fn a_garbage_stream_closes_the_link() {
        let now = t0();
        let (_, mut b) = pair(now);
        let mut buf = BytesMut::from(&[0x5au8; CELL_LEN + 10][..]);
        assert_eq!(
            b.decode(now, &mut buf).unwrap_err(),
            LinkError::ForgedHeader
        );
    }
}
