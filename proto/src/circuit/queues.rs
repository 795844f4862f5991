//! The per-direction queues both ends of a circuit share: what an endpoint sends ([`Outbox`])
//! and what it receives ([`Inbox`]). One place for the caps, the window and reassembly.

use std::collections::VecDeque;

use super::{CircuitError, MAX_CONTROL_QUEUE, MAX_QUEUED_BYTES, Refused};
use crate::cell::PAYLOAD_LEN;
use crate::flow::{RecvWindow, SendWindow};
use crate::frag::{FragError, Fragmenter, MAX_MESSAGE_LEN, Reassembled, Reassembler, cells_for};
use crate::relay_msg::{Begin, RelayMsg};

/// Cells an endpoint originates: control messages first, then message data under the window.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    control: VecDeque<Box<[u8; PAYLOAD_LEN]>>,
    messages: VecDeque<Fragmenter>,
    bytes: usize,
    window: SendWindow,
    /// Messages whose last cell was written since [`Outbox::take_sent`].
    sent: usize,
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

    /// Queues a whole message, cut into cells lazily. On refusal the data comes back.
    pub(crate) fn queue_message(
        &mut self,
        message_id: [u8; 16],
        recipient: [u8; 32],
        data: Vec<u8>,
    ) -> Result<(), Refused> {
        if data.len() > MAX_MESSAGE_LEN {
            let error = CircuitError::Frag(FragError::TooLong(data.len() as u64));
            return Err(Refused {
                error,
                envelope: data,
            });
        }
        if self.bytes + data.len() > MAX_QUEUED_BYTES {
            return Err(Refused {
                error: CircuitError::QueueFull,
                envelope: data,
            });
        }
        let len = data.len();
        let frag = Fragmenter::new(message_id, recipient, data).map_err(|e| Refused {
            error: e.into(),
            envelope: Vec::new(),
        })?;
        self.bytes += len;
        self.messages.push_back(frag);
        Ok(())
    }

    /// Cells `write_next` would produce now (control messages, plus message cells the window
    /// allows when `messages_allowed`), so an adapter can stop before a link's queue fills.
    pub(crate) fn pending_cells(&self, messages_allowed: bool) -> usize {
        let messages = if messages_allowed {
            let queued: usize = self.messages.iter().map(Fragmenter::remaining_cells).sum();
            queued.min(self.window.available() as usize)
        } else {
            0
        };
        self.control.len() + messages
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
            self.sent += 1;
        }
        Ok(true)
    }

    /// How many queued messages were written out in full since the last call, oldest first.
    pub(crate) fn take_sent(&mut self) -> usize {
        std::mem::take(&mut self.sent)
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
    /// Hold the credit of each complete message until [`Inbox::release`] (a relay's last hop,
    /// which passes messages on to a home node: PROTOCOL.md §8).
    hold_messages: bool,
}

/// What one received message cell produced.
pub(crate) struct Received {
    /// A message completed with this cell.
    pub(crate) message: Option<Reassembled>,
    /// The window wants a SENDME sent back now.
    pub(crate) sendme_due: bool,
}

impl Inbox {
    /// An inbox that holds each complete message's credit until it is released.
    pub(crate) fn holding() -> Self {
        Self {
            hold_messages: true,
            ..Self::default()
        }
    }

    /// Takes a BEGIN.
    pub(crate) fn begin(&mut self, begin: &Begin<'_>) -> Result<Received, CircuitError> {
        self.window.record()?;
        let message = self.reassembler.handle_begin(begin)?;
        Ok(self.received(message))
    }

    /// Takes a DATA chunk.
    pub(crate) fn data(&mut self, chunk: &[u8]) -> Result<Received, CircuitError> {
        self.window.record()?;
        let message = self.reassembler.handle_data(chunk)?;
        Ok(self.received(message))
    }

    fn received(&mut self, message: Option<Reassembled>) -> Received {
        if self.hold_messages
            && let Some(m) = &message
        {
            self.window.hold(message_cells(m.data.len()));
        }
        Received {
            message,
            sendme_due: self.window.take_sendme(),
        }
    }

    /// Gives back the credit held for a message of `len` bytes; returns how many SENDMEs are
    /// now due.
    pub(crate) fn release(&mut self, len: usize) -> u32 {
        self.release_cells(message_cells(len))
    }

    /// Gives back the credit held for `cells` cells (several messages' at once); returns how
    /// many SENDMEs are now due.
    pub(crate) fn release_cells(&mut self, cells: u32) -> u32 {
        self.window.release(cells);
        let mut due = 0;
        while self.window.take_sendme() {
            due += 1;
        }
        due
    }

    /// Cells whose credit is held.
    pub(crate) fn held_cells(&self) -> u32 {
        self.window.held()
    }

    /// Bytes held by reassembly.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.reassembler.buffered()
    }
}

/// The cells a message of `len` bytes took (BEGIN and DATA), as a window count.
fn message_cells(len: usize) -> u32 {
    u32::try_from(cells_for(len)).unwrap_or(u32::MAX)
}
