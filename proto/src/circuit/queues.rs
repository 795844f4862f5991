//! The per-direction queues both ends of a circuit share: what an endpoint sends ([`Outbox`])
//! and what it receives ([`Inbox`]). One place for the caps, the window and reassembly.

use std::collections::VecDeque;

use super::{CircuitError, MAX_CONTROL_QUEUE, MAX_QUEUED_BYTES};
use crate::cell::PAYLOAD_LEN;
use crate::flow::{RecvWindow, SendWindow};
use crate::frag::{Fragmenter, Reassembled, Reassembler};
use crate::relay_msg::{Begin, RelayMsg};

/// Cells an endpoint originates: control messages first, then message data under the window.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    control: VecDeque<Box<[u8; PAYLOAD_LEN]>>,
    messages: VecDeque<Fragmenter>,
    bytes: usize,
    window: SendWindow,
}

impl Outbox {
    /// Queues a control message, encoded now.
    pub(crate) fn queue_control(&mut self, msg: &RelayMsg<'_>) -> Result<(), CircuitError> {
        if self.control.len() >= MAX_CONTROL_QUEUE {
            return Err(CircuitError::QueueFull);
        }
        let mut payload = Box::new([0u8; PAYLOAD_LEN]);
        msg.encode(&mut payload[..])
            .map_err(|_| CircuitError::Protocol("encode"))?;
        self.control.push_back(payload);
        Ok(())
    }

    /// Queues a whole message, cut into cells lazily.
    pub(crate) fn queue_message(
        &mut self,
        message_id: [u8; 16],
        recipient: [u8; 32],
        data: Vec<u8>,
    ) -> Result<(), CircuitError> {
        if self.bytes + data.len() > MAX_QUEUED_BYTES {
            return Err(CircuitError::QueueFull);
        }
        let frag = Fragmenter::new(message_id, recipient, data)?;
        self.bytes += frag.message_len();
        self.messages.push_back(frag);
        Ok(())
    }

    /// Writes the next payload: a control message, or (if `messages_allowed` and the window
    /// is open) the next message cell. Returns `false` when nothing is ready.
    pub(crate) fn write_next(
        &mut self,
        payload: &mut [u8],
        messages_allowed: bool,
    ) -> Result<bool, CircuitError> {
        let out = payload
            .get_mut(..PAYLOAD_LEN)
            .ok_or(CircuitError::Protocol("short payload"))?;
        if let Some(control) = self.control.pop_front() {
            out.copy_from_slice(&*control);
            return Ok(true);
        }
        if !messages_allowed || !self.window.can_send() {
            return Ok(false);
        }
        let Some(frag) = self.messages.front_mut() else {
            return Ok(false);
        };
        if !frag
            .write_next(out)
            .map_err(|_| CircuitError::Protocol("encode"))?
        {
            return Ok(false);
        }
        let _sent = self.window.on_send();
        if frag.is_done()
            && let Some(done) = self.messages.pop_front()
        {
            self.bytes = self.bytes.saturating_sub(done.message_len());
        }
        Ok(true)
    }

    /// Takes a SENDME from the other endpoint.
    pub(crate) fn on_sendme(&mut self) -> Result<(), CircuitError> {
        Ok(self.window.on_sendme()?)
    }

    /// Whether control messages are waiting.
    pub(crate) fn control_pending(&self) -> bool {
        !self.control.is_empty()
    }

    /// Bytes held (queued messages and control payloads).
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.bytes + self.control.len() * PAYLOAD_LEN
    }

    /// Bytes of queued messages.
    pub(crate) fn message_bytes(&self) -> usize {
        self.bytes
    }

    /// Cells the window still allows.
    pub(crate) fn window(&self) -> u32 {
        self.window.available()
    }
}

/// Message cells an endpoint receives: counted against the window, then reassembled.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    window: RecvWindow,
    reassembler: Reassembler,
}

/// What one received message cell produced.
pub(crate) struct Received {
    /// A message completed with this cell.
    pub(crate) message: Option<Reassembled>,
    /// The window wants a SENDME sent back now.
    pub(crate) sendme_due: bool,
}

impl Inbox {
    /// Takes a BEGIN.
    pub(crate) fn begin(&mut self, begin: &Begin<'_>) -> Result<Received, CircuitError> {
        let sendme_due = self.window.on_receive()?;
        Ok(Received {
            message: self.reassembler.handle_begin(begin)?,
            sendme_due,
        })
    }

    /// Takes a DATA chunk.
    pub(crate) fn data(&mut self, chunk: &[u8]) -> Result<Received, CircuitError> {
        let sendme_due = self.window.on_receive()?;
        Ok(Received {
            message: self.reassembler.handle_data(chunk)?,
            sendme_due,
        })
    }

    /// Bytes held by reassembly.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.reassembler.buffered()
    }
}
