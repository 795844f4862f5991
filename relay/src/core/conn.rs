//! One connection: its link handshake, then its established [`Channel`], and its buffers.
//!
//! Input is opened and peeled where it lies when the backend lends its receive buffer
//! (`Relay::handle_input_mut`); only a partial cell waits in `inbuf` (and the whole input
//! until the handshake completes, which looks at the whole buffer). Output is sealed cells appended
//! to `outbuf`, which the backend takes whole. Both are bounded: `inbuf` holds at most one
//! read plus a partial cell (a handshake longer than [`MAX_HANDSHAKE_BYTES`] is refused),
//! `outbuf` and the scheduler together at most the link's send cap
//! (`Limits::send_policy`, checked by the caller before a RELAY cell is queued).

use std::net::IpAddr;
use std::time::Instant;

use bytes::BytesMut;
use ournet_proto::cell::{CELL_LEN, CellCmd, CellHeader, CircId};
use ournet_proto::keys::{EncryptionPublicKey, IdentityPublicKey};
use ournet_proto::link::LinkError;
use ournet_proto::link::channel::Channel;
use ournet_proto::link::{Established, HANDSHAKE_TIMEOUT, LinkInitiator, LinkResponder};
use ournet_proto::link_msg::LinkMsg;
use rand_core::{CryptoRng, RngCore};

use super::CircKey;
use super::sched::LinkSched;

/// The longest first flight a responder waits for: preamble, length and the largest Noise
/// message the handshake allows. More bytes without a completed handshake is garbage.
pub(super) const MAX_HANDSHAKE_BYTES: usize = 8 + 2 + 1024;

/// An established link.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) channel: Channel,
    /// The link's channel binding, for HOME_AUTH on circuits created over it.
    pub(super) binding: [u8; 32],
}

/// Where a connection is in its life.
#[derive(Debug)]
pub(super) enum ConnState {
    /// Outbound: waiting for TCP to connect.
    Connecting {
        expected: IdentityPublicKey,
        link_key: EncryptionPublicKey,
    },
    /// Inbound: waiting for the initiator's first flight.
    Responding(LinkResponder),
    /// Outbound: our first flight is sent, waiting for the answer.
    Initiating(Box<LinkInitiator>),
    /// Cells flow.
    Open(Box<Link>),
}

/// A CREATE waiting for an outbound link to open.
#[derive(Debug)]
pub(super) struct PendingCreate {
    pub(super) circ_id: CircId,
    pub(super) htype: u16,
    pub(super) hdata: Vec<u8>,
}

/// Why a cell could not be queued on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QueueError {
    /// The link is not established (or closing).
    NotOpen,
    /// Link crypto refused (sequence exhausted).
    Crypto,
}

/// One connection.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) state: ConnState,
    /// The peer's address for per-IP accounting (inbound only). Never logged.
    pub(super) peer_ip: Option<IpAddr>,
    /// Whether we opened it (we are the link initiator: our circuit ids have the high bit).
    pub(super) initiator: bool,
    pub(super) inbuf: BytesMut,
    pub(super) outbuf: BytesMut,
    pub(super) flush_queued: bool,
    pub(super) closing: bool,
    /// Handshake (or connect) deadline, until the link is open.
    pub(super) deadline: Option<Instant>,
    pub(super) circuits: usize,
    pub(super) next_circ_id: u32,
    pub(super) pending: Vec<PendingCreate>,
    /// Circuits waiting for room in `outbuf` to originate cells.
    pub(super) blocked: Vec<CircKey>,
    /// The peer proved a relay identity (IK link, either direction). Back pressure never
    /// pauses such a link: two relays pausing each other's reads would deadlock.
    pub(super) relay_peer: bool,
    /// Reading is paused by back pressure ([`super::Action::PauseRead`]).
    pub(super) read_paused: bool,
    /// Circuits' cells waiting while the link is congested (QoS-weighted).
    pub(super) sched: LinkSched,
    /// The peer's proven identity (relay links), for its QoS tier.
    pub(super) peer_identity: Option<[u8; 32]>,
    /// When the link handshake completed.
    pub(super) opened_at: Option<Instant>,
}

impl Conn {
    /// An accepted connection, waiting for the initiator's handshake.
    pub(super) fn accepted(rng: &mut (impl RngCore + CryptoRng), now: Instant, ip: IpAddr) -> Self {
        Self::new(
            ConnState::Responding(LinkResponder::new(rng, now)),
            Some(ip),
            false,
            now,
        )
    }

    /// An outbound connection to a relay, not yet connected.
    pub(super) fn outbound(
        now: Instant,
        expected: IdentityPublicKey,
        link_key: EncryptionPublicKey,
    ) -> Self {
        let state = ConnState::Connecting { expected, link_key };
        Self::new(state, None, true, now)
    }

    fn new(state: ConnState, peer_ip: Option<IpAddr>, initiator: bool, now: Instant) -> Self {
        Self {
            state,
            peer_ip,
            initiator,
            inbuf: BytesMut::new(),
            outbuf: BytesMut::new(),
            flush_queued: false,
            closing: false,
            deadline: Some(now + HANDSHAKE_TIMEOUT),
            circuits: 0,
            next_circ_id: 0,
            pending: Vec::new(),
            blocked: Vec::new(),
            relay_peer: initiator,
            read_paused: false,
            sched: LinkSched::default(),
            peer_identity: None,
            opened_at: None,
        }
    }

    /// The established link, if any and not closing.
    pub(super) fn link(&mut self) -> Option<&mut Link> {
        match &mut self.state {
            ConnState::Open(link) if !self.closing => Some(link),
            _ => None,
        }
    }

    /// Whether the link handshake is done.
    pub(super) fn link_is_open(&self) -> bool {
        matches!(self.state, ConnState::Open(_))
    }

    /// Opens whole cells where they lie, their headers in one batch
    /// (`Channel::open_in_place`), appending the headers to `headers`. `Err(None)`: not open
    /// (or closing), stop reading; `Err(Some(e))`: the link failed and must close. The cells
    /// before a bad one are opened, their headers in `headers`.
    pub(super) fn open_cells(
        &mut self,
        now: Instant,
        cells: &mut [[u8; CELL_LEN]],
        headers: &mut Vec<CellHeader>,
    ) -> Result<usize, Option<LinkError>> {
        match &mut self.state {
            ConnState::Open(link) if !self.closing => link
                .channel
                .open_in_place(now, cells, headers)
                .map_err(Some),
            _ => Err(None),
        }
    }

    /// Switches to the open state.
    pub(super) fn open(&mut self, now: Instant, est: Established) -> Option<IdentityPublicKey> {
        let peer = est.peer_identity;
        self.state = ConnState::Open(Box::new(Link {
            channel: Channel::new(est.crypto, now),
            binding: est.channel_binding,
        }));
        self.deadline = None;
        self.opened_at = Some(now);
        self.peer_identity = peer.map(|p| p.to_bytes());
        self.relay_peer |= peer.is_some();
        peer
    }

    /// Whether `id` is one the peer may allocate (the other side's half of the id space).
    pub(super) fn is_peer_id(&self, id: CircId) -> bool {
        id.is_initiator_id() != self.initiator
    }

    /// The next id of our half of the space (the caller checks it is unused).
    pub(super) fn next_own_id(&mut self) -> Option<CircId> {
        self.next_circ_id = self.next_circ_id.wrapping_add(1) & 0x7fff_ffff;
        let high = if self.initiator { 0x8000_0000 } else { 0 };
        CircId::new(self.next_circ_id | high)
    }

    /// Seals `cell` under `header` and queues it (the caller has checked the send cap).
    pub(super) fn queue_cell(
        &mut self,
        now: Instant,
        header: CellHeader,
        cell: &mut [u8; CELL_LEN],
    ) -> Result<(), QueueError> {
        let link = self.link().ok_or(QueueError::NotOpen)?;
        link.channel
            .encode(now, header, cell)
            .map_err(|_| QueueError::Crypto)?;
        self.outbuf.extend_from_slice(cell);
        Ok(())
    }

    /// Bytes waiting to be sent: the output buffer and the scheduler's queues.
    pub(super) fn queued_bytes(&self) -> usize {
        self.outbuf.len() + self.sched.queued_bytes()
    }

    /// Queues a link message (CREATE, CREATED, DESTROY). Control cells are not refused for
    /// a full queue: they are few and tear-downs must get through.
    pub(super) fn queue_msg(
        &mut self,
        now: Instant,
        circ_id: CircId,
        msg: &LinkMsg<'_>,
    ) -> Result<(), QueueError> {
        let link = self.link().ok_or(QueueError::NotOpen)?;
        let cell = link
            .channel
            .encode_msg(now, Some(circ_id), msg)
            .map_err(|_| QueueError::Crypto)?;
        self.outbuf.extend_from_slice(&cell);
        Ok(())
    }
}

/// Whether a command is one a circuit-level cell may carry.
pub(super) fn is_circuit_cmd(cmd: CellCmd) -> bool {
    matches!(
        cmd,
        CellCmd::CREATE | CellCmd::CREATED | CellCmd::RELAY | CellCmd::DESTROY
    )
}
