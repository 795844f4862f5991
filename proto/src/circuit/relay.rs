//! A relay's view of one circuit: its own hop (PROTOCOL.md §6.3, §7).
//!
//! Forward cells (from the previous hop) go to [`RelayCircuit::handle_forward`], which peels
//! this hop's layer and answers [`ForwardAction::Forward`] (send the body to the next hop) or
//! consumes it when this relay is the last hop. Backward cells from the next hop go to
//! [`RelayCircuit::handle_backward`]. Cells this relay originates (EXTENDED, SENDME, PONG,
//! ACK, delivery status, delivered messages) come out of [`RelayCircuit::poll_backward`];
//! events for the adapter (extend, deliver, route an ACK, home registration) come out of
//! [`RelayCircuit::poll_event`].
//!
//! Only the last hop originates backward cells, because the client opens every hop's layer of
//! each backward cell. So once the circuit is extended past this relay, it originates nothing,
//! and EXTENDED is the last cell it ever originates. Call `poll_backward` until it returns
//! `false` before relaying backward cells from the next hop, so EXTENDED goes out first.

use std::collections::VecDeque;

use rand_core::{CryptoRng, RngCore};

use super::queues::{Inbox, Outbox, Received};
use super::{CircuitError, Refused, home_auth_message};
use crate::address::NodeAddress;
use crate::cell::TAG_AREA_LEN;
use crate::handshake::{ClientHello, HANDSHAKE_TYPE_NTOR_V1, relay_handshake};
use crate::keys::{EncryptionKeypair, EncryptionPublicKey, IdentityPublicKey, Signature};
use crate::onion::RelayHopCrypto;
use crate::relay_msg::{DeliveryStatus, Extend, RelayMsg};

/// What to do with a forward cell after [`RelayCircuit::handle_forward`].
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum ForwardAction {
    /// The body is peeled: send it to the next hop.
    Forward,
    /// This relay was the endpoint and consumed it (see `poll_event` and `poll_backward`).
    Consumed,
    /// Drop the cell and destroy the circuit in both directions.
    Destroy(CircuitError),
}

/// Something the adapter must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// Connect (or reuse a link) to this relay, send CREATE with `hdata`, and pass the answer to
    /// [`RelayCircuit::handle_created`] (or call [`RelayCircuit::extend_failed`]).
    Extend {
        /// Address of the next relay.
        addr: std::net::SocketAddr,
        /// Its identity, to check in the link handshake.
        identity: IdentityPublicKey,
        /// Its link key.
        link_key: EncryptionPublicKey,
        /// Handshake type for CREATE.
        htype: u16,
        /// Handshake data for CREATE.
        hdata: Vec<u8>,
    },
    /// A complete message for `recipient`: deliver it on the recipient's home circuit or queue
    /// it, then answer with [`RelayCircuit::send_status`].
    Deliver {
        /// The recipient's identity.
        recipient: [u8; 32],
        /// The sender's message id.
        message_id: [u8; 16],
        /// The end-to-end envelope.
        envelope: Vec<u8>,
    },
    /// A home node acknowledged a message: route it to the sender's circuit with
    /// [`RelayCircuit::send_ack`].
    Ack {
        /// The acknowledged message.
        message_id: [u8; 16],
        /// The proof of receipt.
        ack_token: [u8; 16],
    },
    /// A node proved its identity on this circuit: it is now the node's home circuit.
    HomeRegistered {
        /// The node's identity.
        identity: IdentityPublicKey,
    },
    /// The home node of this circuit moved: `address` (its signature verified, its identity
    /// the circuit's home identity; its validity not checked, that takes the wall clock) is
    /// where senders should go once this circuit is gone (PROTOCOL.md §7.4).
    ForwardTo {
        /// The node's new address.
        address: Box<NodeAddress>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    None,
    Extending,
    Connected,
}

/// One hop of a circuit at a relay.
#[derive(Debug)]
pub struct RelayCircuit {
    crypto: RelayHopCrypto,
    next: Next,
    channel_binding: [u8; 32],
    inbox: Inbox,
    outbox: Outbox,
    events: VecDeque<RelayEvent>,
    home: Option<IdentityPublicKey>,
    /// Whether FORWARD_TO came already: a node sends one as its home circuit starts to
    /// drain, so a second is refused (each costs a signature check).
    forwarded: bool,
}

impl RelayCircuit {
    /// Answers a CREATE: runs the handshake and returns the circuit and the CREATED data.
    /// `channel_binding` is the previous link's ([`crate::link::Established`]), for HOME_AUTH.
    ///
    /// # Errors
    /// [`CircuitError::Handshake`] or [`CircuitError::Protocol`] for an unknown handshake type.
    pub fn accept_create(
        rng: &mut (impl RngCore + CryptoRng),
        identity: &IdentityPublicKey,
        onion_keys: &[&EncryptionKeypair],
        htype: u16,
        hdata: &[u8],
        channel_binding: [u8; 32],
    ) -> Result<(Self, Vec<u8>), CircuitError> {
        if htype != HANDSHAKE_TYPE_NTOR_V1 {
            return Err(CircuitError::Protocol("unknown handshake type"));
        }
        let hello = ClientHello::decode(hdata).map_err(crate::handshake::HandshakeError::from)?;
        let (reply, keys) = relay_handshake(rng, identity, onion_keys, &hello)?;
        let mut created = Vec::new();
        reply.encode(&mut created);
        let circuit = Self {
            crypto: RelayHopCrypto::new(keys),
            next: Next::None,
            channel_binding,
            inbox: Inbox::holding(),
            outbox: Outbox::default(),
            events: VecDeque::new(),
            home: None,
            forwarded: false,
        };
        Ok((circuit, created))
    }

    /// Handles a forward RELAY body in place.
    pub fn handle_forward(&mut self, body: &mut [u8]) -> ForwardAction {
        if self.crypto.peel_forward(body).is_err() {
            return ForwardAction::Destroy(CircuitError::Integrity);
        }
        match self.next {
            Next::Connected => ForwardAction::Forward,
            Next::Extending => {
                ForwardAction::Destroy(CircuitError::Protocol("cell while extending"))
            }
            Next::None => match self.consume(body.get(TAG_AREA_LEN..).unwrap_or_default()) {
                Ok(()) => ForwardAction::Consumed,
                Err(e) => ForwardAction::Destroy(e),
            },
        }
    }

    /// Adds this hop's layer to a backward body from the next hop, in place.
    ///
    /// # Errors
    /// [`CircuitError::Protocol`] if cells this relay originated are still queued (poll them
    /// first) or there is no next hop.
    pub fn handle_backward(&mut self, body: &mut [u8]) -> Result<(), CircuitError> {
        if self.next != Next::Connected {
            return Err(CircuitError::Protocol("backward cell without a next hop"));
        }
        if self.outbox.control_pending() {
            return Err(CircuitError::Protocol("originated cells still queued"));
        }
        Ok(self.crypto.seal_backward(body)?)
    }

    /// Takes the next hop's CREATED data: answers the client with EXTENDED.
    ///
    /// # Errors
    /// [`CircuitError::Protocol`] if no extension was pending, or [`CircuitError::QueueFull`].
    pub fn handle_created(&mut self, hdata: &[u8]) -> Result<(), CircuitError> {
        if self.next != Next::Extending {
            return Err(CircuitError::Protocol("CREATED without EXTEND"));
        }
        self.queue_control(&RelayMsg::Extended { hdata })?;
        self.next = Next::Connected;
        Ok(())
    }

    /// The extension failed: the circuit must be destroyed.
    pub fn extend_failed(&mut self) -> CircuitError {
        self.next = Next::None;
        CircuitError::Protocol("extend failed")
    }

    /// Tells the sender what happened to a delivered message.
    ///
    /// # Errors
    /// [`CircuitError::QueueFull`], or [`CircuitError::Protocol`] when not the last hop.
    pub fn send_status(
        &mut self,
        message_id: [u8; 16],
        status: DeliveryStatus,
    ) -> Result<(), CircuitError> {
        self.queue_control(&RelayMsg::DeliveryStatus { message_id, status })
    }

    /// Tells the sender that the recipient moved to `address` (the binary form a
    /// [`RelayEvent::ForwardTo`] carried) and that message `message_id` was not kept.
    ///
    /// # Errors
    /// As [`RelayCircuit::send_status`]; [`CircuitError::Protocol`] if `address` does not fit.
    pub fn send_moved(&mut self, message_id: [u8; 16], address: &[u8]) -> Result<(), CircuitError> {
        self.queue_control(&RelayMsg::Moved {
            message_id,
            address,
        })
    }

    /// Routes an end-to-end ACK back to the sender on this circuit.
    ///
    /// # Errors
    /// As [`RelayCircuit::send_status`].
    pub fn send_ack(
        &mut self,
        message_id: [u8; 16],
        ack_token: [u8; 16],
    ) -> Result<(), CircuitError> {
        self.queue_control(&RelayMsg::Ack {
            message_id,
            ack_token,
        })
    }

    /// Confirms a home registration, announcing how many queued messages follow.
    ///
    /// # Errors
    /// As [`RelayCircuit::send_status`].
    pub fn send_home_authed(&mut self, queued: u32) -> Result<(), CircuitError> {
        self.queue_control(&RelayMsg::HomeAuthed { queued })
    }

    /// Queues a message for the home node on this circuit (BEGIN and DATA cells, under the
    /// flow-control window). A refused message is handed back unchanged.
    ///
    /// # Errors
    /// [`Refused`] with [`CircuitError::Protocol`] if this is not a home circuit,
    /// [`CircuitError::QueueFull`] past [`MAX_QUEUED_BYTES`](super::MAX_QUEUED_BYTES), or
    /// [`CircuitError::Frag`] for an oversized message.
    pub fn deliver(&mut self, message_id: [u8; 16], data: Vec<u8>) -> Result<(), Refused> {
        let Some(home) = self.home else {
            let error = CircuitError::Protocol("deliver on a circuit that is not a home circuit");
            return Err(Refused {
                error,
                envelope: data,
            });
        };
        self.outbox.queue_message(message_id, home.to_bytes(), data)
    }

    /// Gives the sender back the credit of a message of `len` bytes this circuit delivered
    /// (a [`RelayEvent::Deliver`]), queuing the SENDMEs now due. Call it once per delivered
    /// message, when the message has left this relay's hands: taken by the home circuit's
    /// window (see [`RelayCircuit::take_sent`]), queued offline, refused or lost. Until then
    /// the sender's window stays closed for those cells (PROTOCOL.md §8).
    ///
    /// # Errors
    /// [`CircuitError::QueueFull`] when the SENDMEs do not fit the control queue.
    pub fn release_message(&mut self, len: usize) -> Result<(), CircuitError> {
        let due = self.inbox.release(len);
        self.queue_sendmes(due)
    }

    /// As [`RelayCircuit::release_message`] for several messages at once, given as the cells
    /// they took (`frag::cells_for` of each length, summed): credits that crossed between a
    /// relay's threads together.
    ///
    /// # Errors
    /// [`CircuitError::QueueFull`] when the SENDMEs do not fit the control queue.
    pub fn release_cells(&mut self, cells: u32) -> Result<(), CircuitError> {
        let due = self.inbox.release_cells(cells);
        self.queue_sendmes(due)
    }

    fn queue_sendmes(&mut self, due: u32) -> Result<(), CircuitError> {
        for _ in 0..due {
            self.queue_control(&RelayMsg::Sendme)?;
        }
        Ok(())
    }

    /// Cells of delivered messages whose credit is still held.
    pub fn held_cells(&self) -> u32 {
        self.inbox.held_cells()
    }

    /// How many messages queued with [`RelayCircuit::deliver`] had their last cell written by
    /// [`RelayCircuit::poll_backward`] since the last call, in the order they were queued.
    pub fn take_sent(&mut self) -> usize {
        self.outbox.take_sent()
    }

    /// Bytes of messages queued with [`RelayCircuit::deliver`] and not yet written, for the
    /// home buffer cap.
    pub fn queued_message_bytes(&self) -> usize {
        self.outbox.message_bytes()
    }

    /// How many cells [`RelayCircuit::poll_backward`] would write now, so an adapter can stop
    /// before a link's queue fills.
    pub fn pending_backward_cells(&self) -> usize {
        self.outbox.pending_cells(self.next == Next::None)
    }

    /// Writes the next cell this relay originates into `body` (sealed, ready for the previous
    /// hop). Control messages go first, then message data while the window allows.
    ///
    /// # Errors
    /// [`CircuitError`] on a local encoding bug or counter exhaustion.
    pub fn poll_backward(&mut self, body: &mut [u8]) -> Result<bool, CircuitError> {
        let (area, payload) = body
            .split_at_mut_checked(TAG_AREA_LEN)
            .ok_or(CircuitError::Closed)?;
        if !self.outbox.write_next(payload, self.next == Next::None)? {
            return Ok(false);
        }
        area.fill(0);
        self.crypto.seal_backward(body)?;
        Ok(true)
    }

    /// The next event for the adapter.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// The node whose home circuit this is, if any.
    pub fn home_identity(&self) -> Option<IdentityPublicKey> {
        self.home
    }

    /// Whether the circuit continues past this relay.
    pub fn has_next(&self) -> bool {
        self.next == Next::Connected
    }

    /// Bytes buffered for this circuit (reassembly and queued messages), for memory caps.
    pub fn buffered_bytes(&self) -> usize {
        self.inbox.buffered_bytes() + self.outbox.buffered_bytes()
    }

    fn queue_control(&mut self, msg: &RelayMsg<'_>) -> Result<(), CircuitError> {
        if self.next == Next::Connected {
            return Err(CircuitError::Protocol("only the last hop originates cells"));
        }
        self.outbox.queue_control(msg)
    }

    /// Handles a relay message addressed to this relay (it is the last hop).
    fn consume(&mut self, payload: &[u8]) -> Result<(), CircuitError> {
        let msg = RelayMsg::decode(payload)?;
        match msg {
            RelayMsg::Begin(begin) => {
                let received = self.inbox.begin(&begin)?;
                self.received(received)?;
            }
            RelayMsg::Data(chunk) => {
                let received = self.inbox.data(chunk)?;
                self.received(received)?;
            }
            RelayMsg::Drop => {}
            RelayMsg::Sendme => self.outbox.on_sendme()?,
            RelayMsg::Ping(n) => self.queue_control(&RelayMsg::Pong(n))?,
            RelayMsg::Extend(extend) => self.start_extend(&extend)?,
            RelayMsg::Ack {
                message_id,
                ack_token,
            } if self.home.is_some() => {
                self.events.push_back(RelayEvent::Ack {
                    message_id,
                    ack_token,
                });
            }
            RelayMsg::HomeAuth {
                identity,
                signature,
            } => self.home_auth(identity, signature)?,
            RelayMsg::ForwardTo { address } => self.forward_to(address)?,
            _ => {
                return Err(CircuitError::Protocol(
                    "relay command not accepted by a relay",
                ));
            }
        }
        Ok(())
    }

    fn received(&mut self, received: Received) -> Result<(), CircuitError> {
        if received.sendme_due {
            self.queue_control(&RelayMsg::Sendme)?;
        }
        if let Some(m) = received.message {
            self.events.push_back(RelayEvent::Deliver {
                recipient: m.recipient,
                message_id: m.message_id,
                envelope: m.data,
            });
        }
        Ok(())
    }

    fn start_extend(&mut self, e: &Extend<'_>) -> Result<(), CircuitError> {
        if self.home.is_some() {
            return Err(CircuitError::Protocol("EXTEND on a home circuit"));
        }
        let identity = IdentityPublicKey::from_bytes(&e.identity)
            .map_err(|_| CircuitError::Protocol("EXTEND names an invalid identity"))?;
        self.next = Next::Extending;
        self.events.push_back(RelayEvent::Extend {
            addr: e.addr,
            identity,
            link_key: EncryptionPublicKey(e.link_key),
            htype: e.htype,
            hdata: e.hdata.to_vec(),
        });
        Ok(())
    }

    /// FORWARD_TO: only the home node itself may name where it moved.
    fn forward_to(&mut self, address: &[u8]) -> Result<(), CircuitError> {
        let Some(home) = self.home else {
            return Err(CircuitError::Protocol(
                "FORWARD_TO on a circuit that is not a home",
            ));
        };
        if self.forwarded {
            return Err(CircuitError::Protocol("second FORWARD_TO"));
        }
        self.forwarded = true;
        let address = NodeAddress::from_bytes(address)
            .map_err(|_| CircuitError::Protocol("FORWARD_TO address does not verify"))?;
        if address.identity != home {
            return Err(CircuitError::Protocol("FORWARD_TO names another node"));
        }
        self.events.push_back(RelayEvent::ForwardTo {
            address: Box::new(address),
        });
        Ok(())
    }

    fn home_auth(&mut self, identity: [u8; 32], signature: [u8; 64]) -> Result<(), CircuitError> {
        if self.home.is_some() {
            return Err(CircuitError::Protocol("second HOME_AUTH"));
        }
        let identity = IdentityPublicKey::from_bytes(&identity)
            .map_err(|_| CircuitError::Protocol("HOME_AUTH with an invalid identity"))?;
        let _ok = identity
            .verify(
                &home_auth_message(&self.channel_binding),
                &Signature(signature),
            )
            .map_err(|_| CircuitError::Protocol("HOME_AUTH signature does not verify"))?;
        self.home = Some(identity);
        self.events
            .push_back(RelayEvent::HomeRegistered { identity });
        Ok(())
    }
}
