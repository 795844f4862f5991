//! The client's view of a circuit (PROTOCOL.md §6.2, §7).
//!
//! [`ClientCircuit::build`] starts with the first hop: the adapter sends the returned
//! handshake in a CREATE on its link to that relay and passes the CREATED data to
//! [`ClientCircuit::handle_created`]. The circuit then extends itself hop by hop through
//! EXTEND relay cells, which come out of [`ClientCircuit::poll_forward`] like every other
//! cell. Backward cells go to [`ClientCircuit::handle_backward`]; what they mean comes out of
//! [`ClientCircuit::poll_event`]. The build has a deadline ([`ClientCircuit::poll_timeout`]).
//!
//! `poll_forward` writes control cells first (EXTEND, SENDME, ACK, PING, HOME_AUTH), then
//! message cells while the flow-control window is open, then nothing: padding is the caller's
//! choice ([`ClientCircuit::send_padding`]), made by the privacy policy.

use std::collections::VecDeque;
use std::time::Instant;

use rand_core::{CryptoRng, RngCore};

use super::queues::{Inbox, Outbox, Received};
use super::{CIRCUIT_BUILD_TIMEOUT, CircuitError, PathHop, home_auth_message};
use crate::address::NodeAddress;
use crate::cell::{MAX_HOPS, TAG_AREA_LEN};
use crate::handshake::{ClientHandshake, HANDSHAKE_TYPE_NTOR_V1, RelayReply};
use crate::keys::IdentityKeypair;
use crate::onion::ClientCircuitCrypto;
use crate::relay_msg::{DeliveryStatus, Extend, RelayMsg};

/// What a circuit tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Every hop is built; messages can flow.
    Built,
    /// A message arrived (on a home circuit).
    Message {
        /// The sender's message id.
        message_id: [u8; 16],
        /// The end-to-end envelope.
        envelope: Vec<u8>,
    },
    /// The recipient acknowledged a message.
    Ack {
        /// The message.
        message_id: [u8; 16],
        /// The proof of receipt, to compare with the envelope's token.
        ack_token: [u8; 16],
    },
    /// The last hop's word on a message.
    DeliveryStatus {
        /// The message.
        message_id: [u8; 16],
        /// What happened.
        status: DeliveryStatus,
    },
    /// The home relay accepted this node; `queued` messages follow.
    HomeAuthed {
        /// Count of queued messages.
        queued: u32,
    },
    /// Answer to [`ClientCircuit::send_ping`].
    Pong(u64),
    /// The last hop's answer instead of DELIVERY_STATUS: the recipient moved and the message
    /// was not kept. `address` is the binary form, not yet verified: the sender takes it
    /// only if `NodeAddress::replaces` the address it holds.
    Moved {
        /// The message.
        message_id: [u8; 16],
        /// The recipient's new address (binary form).
        address: Vec<u8>,
    },
}

#[derive(Debug)]
enum State {
    /// Waiting for CREATED or EXTENDED from hop `crypto.hop_count()`.
    Building(Box<ClientHandshake>),
    Open,
    Closed,
}

/// A circuit as its client sees it.
#[derive(Debug)]
pub struct ClientCircuit {
    path: Vec<PathHop>,
    crypto: ClientCircuitCrypto,
    state: State,
    deadline: Option<Instant>,
    outbox: Outbox,
    inbox: Inbox,
    events: VecDeque<ClientEvent>,
}

impl ClientCircuit {
    /// Starts building `path` (1 to [`MAX_HOPS`] relays). Returns the circuit and the handshake
    /// data for the CREATE to the first hop.
    ///
    /// # Errors
    /// [`CircuitError::Protocol`] for an empty or too long path.
    pub fn build(
        rng: &mut (impl RngCore + CryptoRng),
        now: Instant,
        path: Vec<PathHop>,
    ) -> Result<(Self, u16, Vec<u8>), CircuitError> {
        let first = match path.first() {
            Some(first) if path.len() <= MAX_HOPS => first,
            _ => {
                return Err(CircuitError::Protocol(
                    "path must have 1 to MAX_HOPS relays",
                ));
            }
        };
        let (hs, hello) = ClientHandshake::start(rng, first.identity, first.onion_key);
        let mut hdata = Vec::new();
        hello.encode(&mut hdata);
        let circuit = Self {
            path,
            crypto: ClientCircuitCrypto::new(),
            state: State::Building(Box::new(hs)),
            deadline: Some(now + CIRCUIT_BUILD_TIMEOUT),
            outbox: Outbox::default(),
            inbox: Inbox::default(),
            events: VecDeque::new(),
        };
        Ok((circuit, HANDSHAKE_TYPE_NTOR_V1, hdata))
    }

    /// Takes the first hop's CREATED data.
    ///
    /// # Errors
    /// [`CircuitError`]: destroy the circuit.
    pub fn handle_created(
        &mut self,
        rng: &mut (impl RngCore + CryptoRng),
        hdata: &[u8],
    ) -> Result<(), CircuitError> {
        if self.crypto.hop_count() != 0 {
            return Err(CircuitError::Protocol("CREATED after the first hop"));
        }
        self.finish_hop(rng, hdata)
    }

    /// Handles a backward RELAY body (in place).
    ///
    /// # Errors
    /// [`CircuitError`]: destroy the circuit.
    pub fn handle_backward(
        &mut self,
        rng: &mut (impl RngCore + CryptoRng),
        body: &mut [u8],
    ) -> Result<(), CircuitError> {
        if matches!(self.state, State::Closed) || self.crypto.hop_count() == 0 {
            return Err(CircuitError::Closed);
        }
        self.crypto.open_backward(body)?;
        let payload = body.get(TAG_AREA_LEN..).unwrap_or_default();
        match RelayMsg::decode(payload)? {
            RelayMsg::Extended { hdata } => self.finish_hop(rng, hdata)?,
            RelayMsg::Begin(begin) => {
                let received = self.inbox.begin(&begin)?;
                self.received(received)?;
            }
            RelayMsg::Data(chunk) => {
                let received = self.inbox.data(chunk)?;
                self.received(received)?;
            }
            RelayMsg::Sendme => self.outbox.on_sendme()?,
            RelayMsg::Ack {
                message_id,
                ack_token,
            } => {
                self.events.push_back(ClientEvent::Ack {
                    message_id,
                    ack_token,
                });
            }
            RelayMsg::DeliveryStatus { message_id, status } => {
                self.events
                    .push_back(ClientEvent::DeliveryStatus { message_id, status });
            }
            RelayMsg::HomeAuthed { queued } => {
                self.events.push_back(ClientEvent::HomeAuthed { queued });
            }
            RelayMsg::Pong(n) => self.events.push_back(ClientEvent::Pong(n)),
            RelayMsg::Moved {
                message_id,
                address,
            } => self.events.push_back(ClientEvent::Moved {
                message_id,
                address: address.to_vec(),
            }),
            RelayMsg::Drop => {}
            _ => {
                return Err(CircuitError::Protocol(
                    "relay command not accepted by a client",
                ));
            }
        }
        Ok(())
    }

    /// Fails the build if its deadline has passed.
    ///
    /// # Errors
    /// [`CircuitError::Timeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), CircuitError> {
        if self.deadline.is_some_and(|d| now >= d) {
            self.state = State::Closed;
            return Err(CircuitError::Timeout);
        }
        Ok(())
    }

    /// The next deadline: the build timeout while building.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Queues a message (an end-to-end envelope) for `recipient`'s home relay, the last hop.
    ///
    /// # Errors
    /// [`CircuitError::QueueFull`] past [`MAX_QUEUED_BYTES`](super::MAX_QUEUED_BYTES); [`CircuitError::Frag`] when too
    /// large; [`CircuitError::Closed`].
    pub fn send_message(
        &mut self,
        message_id: [u8; 16],
        recipient: [u8; 32],
        envelope: Vec<u8>,
    ) -> Result<(), CircuitError> {
        if matches!(self.state, State::Closed) {
            return Err(CircuitError::Closed);
        }
        self.outbox
            .queue_message(message_id, recipient, envelope)
            .map_err(|r| r.error)
    }

    /// Queues an end-to-end ACK (on a home circuit, for the home relay to route).
    ///
    /// # Errors
    /// [`CircuitError::QueueFull`].
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

    /// Queues a latency probe; the answer is [`ClientEvent::Pong`].
    ///
    /// # Errors
    /// [`CircuitError::QueueFull`].
    pub fn send_ping(&mut self, nonce: u64) -> Result<(), CircuitError> {
        self.queue_control(&RelayMsg::Ping(nonce))
    }

    /// Queues a padding (DROP) cell: on the wire it is a RELAY cell like any other.
    ///
    /// # Errors
    /// [`CircuitError::QueueFull`].
    pub fn send_padding(&mut self) -> Result<(), CircuitError> {
        self.queue_control(&RelayMsg::Drop)
    }

    /// Proves `identity` to the (single) relay of this circuit, making it the node's home
    /// circuit. `channel_binding` is the link's ([`crate::link::Established`]).
    ///
    /// # Errors
    /// [`CircuitError::QueueFull`].
    pub fn home_auth(
        &mut self,
        identity: &IdentityKeypair,
        channel_binding: &[u8; 32],
    ) -> Result<(), CircuitError> {
        let signature = identity.sign(&home_auth_message(channel_binding)).0;
        self.queue_control(&RelayMsg::HomeAuth {
            identity: identity.public().to_bytes(),
            signature,
        })
    }

    /// Tells this home circuit's relay the node's new `address`, so it answers senders of
    /// the old one with MOVED once this circuit is gone (PROTOCOL.md §7.4). Returns `false`
    /// (and sends nothing) when the address does not fit
    /// ([`MAX_MOVED_ADDRESS`](crate::relay_msg::MAX_MOVED_ADDRESS)).
    ///
    /// # Errors
    /// [`CircuitError::QueueFull`].
    pub fn send_forward_to(&mut self, address: &NodeAddress) -> Result<bool, CircuitError> {
        let bytes = address.to_bytes();
        if bytes.len() > crate::relay_msg::MAX_MOVED_ADDRESS {
            return Ok(false);
        }
        self.queue_control(&RelayMsg::ForwardTo { address: &bytes })?;
        Ok(true)
    }

    /// Writes the next forward cell into `body`, sealed for every hop. Returns `false` when
    /// there is nothing to send (or the window is closed).
    ///
    /// # Errors
    /// [`CircuitError`] on local misuse (a body of the wrong size) or counter exhaustion.
    pub fn poll_forward(
        &mut self,
        rng: &mut (impl RngCore + CryptoRng),
        body: &mut [u8],
    ) -> Result<bool, CircuitError> {
        if self.crypto.hop_count() == 0 || matches!(self.state, State::Closed) {
            return Ok(false);
        }
        let payload = body.get_mut(TAG_AREA_LEN..).ok_or(CircuitError::Closed)?;
        if !self
            .outbox
            .write_next(payload, matches!(self.state, State::Open))?
        {
            return Ok(false);
        }
        self.crypto.seal_forward(body, rng)?;
        Ok(true)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Whether every hop is built.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// Cells the flow-control window still allows.
    pub fn send_window(&self) -> u32 {
        self.outbox.window()
    }

    /// Bytes of messages queued and not yet written into cells.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.message_bytes()
    }

    /// The relays of this circuit.
    pub fn path(&self) -> &[PathHop] {
        &self.path
    }

    /// Hops that have answered (CREATED or EXTENDED) so far.
    pub fn hops_built(&self) -> usize {
        self.crypto.hop_count()
    }

    /// The index in [`ClientCircuit::path`] of the relay to blame for a DESTROY with
    /// `reason` received now ([`super::blame_destroy`]).
    pub fn blame_destroy(&self, reason: crate::link_msg::DestroyReason) -> Option<usize> {
        super::blame_destroy(self.path.len(), self.hops_built(), reason)
    }

    fn finish_hop(
        &mut self,
        rng: &mut (impl RngCore + CryptoRng),
        hdata: &[u8],
    ) -> Result<(), CircuitError> {
        let State::Building(hs) = std::mem::replace(&mut self.state, State::Closed) else {
            return Err(CircuitError::Protocol("handshake reply while not building"));
        };
        let reply = RelayReply::decode(hdata).map_err(crate::handshake::HandshakeError::from)?;
        self.crypto.push_hop(hs.finish(&reply)?)?;
        let built = self.crypto.hop_count();
        let Some(next) = self.path.get(built) else {
            self.state = State::Open;
            self.deadline = None;
            self.events.push_back(ClientEvent::Built);
            return Ok(());
        };
        let (hs, hello) = ClientHandshake::start(rng, next.identity, next.onion_key);
        let mut hdata = Vec::new();
        hello.encode(&mut hdata);
        let extend = RelayMsg::Extend(Extend {
            addr: next.addr,
            identity: next.identity.to_bytes(),
            link_key: next.link_key.0,
            htype: HANDSHAKE_TYPE_NTOR_V1,
            hdata: &hdata,
        });
        self.queue_control(&extend)?;
        self.state = State::Building(Box::new(hs));
        Ok(())
    }

    fn queue_control(&mut self, msg: &RelayMsg<'_>) -> Result<(), CircuitError> {
        self.outbox.queue_control(msg)
    }

    fn received(&mut self, received: Received) -> Result<(), CircuitError> {
        if received.sendme_due {
            self.queue_control(&RelayMsg::Sendme)?;
        }
        if let Some(m) = received.message {
            self.events.push_back(ClientEvent::Message {
                message_id: m.message_id,
                envelope: m.data,
            });
        }
        Ok(())
    }
}
