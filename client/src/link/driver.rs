//! The task that drives one link: socket bytes in and out, [`Channel`] framing and keepalive,
//! and every [`ClientCircuit`] whose first hop is this link's relay.
//!
//! One loop waits on whichever comes first: bytes from the relay, room in the socket for the
//! sealed cells waiting in `outbuf`, a command from the client, room in an owner's event queue
//! (when one was full), or the next deadline (the channel's keepalive and idle timers, circuit
//! build timeouts, the constant-rate tick). Cells are sealed in the order they go out, because
//! link protection numbers them.
//!
//! Policies when full: past [`MAX_OUTBUF`] bytes waiting for the socket no cell is taken from
//! the circuits (they keep their own bounded queues); while any owner's event queue is full
//! the driver stops reading from the socket, so a slow app slows its relay down (TCP back
//! pressure) instead of growing memory.
//!
//! Ending: when the client closes the link (or drops every handle) the driver destroys every
//! circuit still open, writes the DESTROY cells (bounded by [`CLOSE_FLUSH`]) and only then
//! closes the socket, so the relays free the circuits at once rather than whenever they notice
//! the link is gone. A link that failed just tells every circuit's owner.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use ournet_proto::cell::{BODY_LEN, CELL_LEN, CellCmd, CellHeader, CircId, HEADER_LEN};
use ournet_proto::circuit::ClientCircuit;
use ournet_proto::link::channel::{Channel, InCell, TimeoutAction};
use ournet_proto::link_msg::{DestroyReason, LinkMsg};
use rand_chacha::ChaCha20Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::{CircEvent, CircOp, LinkCmd};
use crate::pacing::Pacing;
use crate::rng::fresh_rng;

/// Most sealed bytes waiting for the socket before the driver stops taking cells.
pub(crate) const MAX_OUTBUF: usize = 64 * CELL_LEN;
/// Most received bytes held before they are opened (reading pauses past it).
const MAX_INBUF: usize = 256 * CELL_LEN;
/// Most circuits one link carries for this client.
const MAX_CIRCUITS: usize = 1024;
/// Longest a closing link waits for the socket to take its DESTROY cells.
pub(crate) const CLOSE_FLUSH: Duration = Duration::from_secs(5);

/// Why the driver loop ended.
#[derive(Debug)]
enum End {
    /// The client is done with the link: say goodbye (DESTROY every circuit) first.
    Closed(&'static str),
    /// The link failed: nothing more can be sent.
    Failed(String),
}

/// A link cell waiting to be sealed.
#[derive(Debug)]
enum Ctl {
    Create {
        id: CircId,
        htype: u16,
        hdata: Vec<u8>,
    },
    Destroy {
        id: CircId,
        reason: DestroyReason,
    },
}

#[derive(Debug)]
struct Circ {
    circ: ClientCircuit,
    events: mpsc::Sender<CircEvent>,
}

/// The state of one link's driver.
#[derive(Debug)]
pub(crate) struct Driver {
    channel: Channel,
    inbuf: BytesMut,
    outbuf: BytesMut,
    circuits: HashMap<CircId, Circ>,
    order: VecDeque<CircId>,
    ctl: VecDeque<Ctl>,
    pending: VecDeque<(mpsc::Sender<CircEvent>, CircEvent)>,
    next_id: u32,
    rng: ChaCha20Rng,
    binding: [u8; 32],
    pacing: Pacing,
    last_tick: Instant,
}

impl Driver {
    /// A driver for an established `channel`; `inbuf` holds bytes read past the handshake.
    pub(crate) fn new(
        channel: Channel,
        inbuf: BytesMut,
        binding: [u8; 32],
        pacing: Pacing,
    ) -> Self {
        Self {
            channel,
            inbuf,
            outbuf: BytesMut::with_capacity(MAX_OUTBUF),
            circuits: HashMap::new(),
            order: VecDeque::new(),
            ctl: VecDeque::new(),
            pending: VecDeque::new(),
            next_id: 0x8000_0001,
            rng: fresh_rng(),
            binding,
            pacing,
            last_tick: Instant::now(),
        }
    }

    /// Runs until the link fails or every handle is dropped; then tells every circuit.
    pub(crate) async fn run(
        mut self,
        stream: TcpStream,
        mut cmds: mpsc::Receiver<LinkCmd>,
        closed: Arc<AtomicBool>,
    ) {
        let (mut rd, mut wr) = stream.into_split();
        let end = self.run_loop(&mut rd, &mut wr, &mut cmds).await;
        closed.store(true, Ordering::Release);
        let (why, goodbye) = match end {
            End::Closed(why) => (why.to_owned(), true),
            End::Failed(why) => (why, false),
        };
        tracing::debug!("link closed: {why}");
        self.destroy_all(&why, goodbye);
        if goodbye {
            let flushed = tokio::time::timeout(CLOSE_FLUSH, self.flush(&mut wr)).await;
            if !matches!(flushed, Ok(Ok(()))) {
                tracing::debug!("closing link: DESTROY cells not all written");
            }
        }
        let _ = wr.shutdown().await;
    }

    /// Forgets every circuit and tells its owner; with `goodbye`, queues a DESTROY for each
    /// circuit whose CREATE went out (one whose CREATE is still queued is simply never sent).
    fn destroy_all(&mut self, why: &str, goodbye: bool) {
        let unsent: HashSet<CircId> = self
            .ctl
            .iter()
            .filter_map(|c| match c {
                Ctl::Create { id, .. } => Some(*id),
                Ctl::Destroy { .. } => None,
            })
            .collect();
        self.ctl
            .retain(|c| goodbye && matches!(c, Ctl::Destroy { id, .. } if !unsent.contains(id)));
        self.order.clear();
        for (id, c) in self.circuits.drain() {
            let _ = c
                .events
                .try_send(CircEvent::Closed(format!("link closed: {why}")));
            if goodbye && !unsent.contains(&id) {
                self.ctl.push_back(Ctl::Destroy {
                    id,
                    reason: DestroyReason::NONE,
                });
            }
        }
    }

    /// Seals the queued link cells (whatever the pacing: the link is closing) and writes
    /// everything waiting for the socket.
    async fn flush(&mut self, wr: &mut OwnedWriteHalf) -> Result<(), String> {
        // No circuit is left, so emit_one only seals link cells.
        while self.emit_one(Instant::now())? {}
        wr.write_all(&self.outbuf)
            .await
            .map_err(|e| e.to_string())?;
        self.outbuf.clear();
        wr.flush().await.map_err(|e| e.to_string())
    }

    async fn run_loop(
        &mut self,
        rd: &mut OwnedReadHalf,
        wr: &mut OwnedWriteHalf,
        cmds: &mut mpsc::Receiver<LinkCmd>,
    ) -> End {
        loop {
            if let Err(e) = self.fill_immediate(Instant::now()) {
                return End::Failed(e);
            }
            let deadline = self.next_deadline();
            let reserve = self
                .pending
                .front()
                .map(|(tx, _)| tx.clone().reserve_owned());
            let can_read = self.pending.is_empty() && self.inbuf.len() < MAX_INBUF;
            tokio::select! {
                r = rd.read_buf(&mut self.inbuf), if can_read => match r {
                    Ok(0) => return End::Failed("closed by the relay".into()),
                    Err(e) => return End::Failed(e.to_string()),
                    Ok(_) => {
                        if let Err(e) = self.on_input(Instant::now()) {
                            return End::Failed(e);
                        }
                    }
                },
                w = wr.write(&self.outbuf), if !self.outbuf.is_empty() => match w {
                    Ok(0) => return End::Failed("socket closed".into()),
                    Err(e) => return End::Failed(e.to_string()),
                    Ok(n) => self.outbuf.advance(n),
                },
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => {
                        if let Some(end) = self.on_cmd(cmd) {
                            return end;
                        }
                    }
                    None => return End::Closed("no more users"),
                },
                permit = async { reserve.expect("branch enabled only with a pending event").await },
                    if !self.pending.is_empty() => {
                    let (_, ev) = self.pending.pop_front().expect("checked non-empty above");
                    if let Ok(permit) = permit {
                        permit.send(ev);
                    }
                    self.retry_pending();
                }
                () = tokio::time::sleep_until(deadline.into()) => {
                    if let Err(e) = self.on_timer(Instant::now()) {
                        return End::Failed(e);
                    }
                }
            }
        }
    }

    /// Opens and dispatches every complete cell received.
    fn on_input(&mut self, now: Instant) -> Result<(), String> {
        let mut cells = Vec::new();
        let result = self.channel.decode_batch(now, &mut self.inbuf, &mut cells);
        for cell in cells {
            self.on_cell(cell);
        }
        result.map(|_| ()).map_err(|e| format!("link: {e}"))
    }

    fn on_cell(&mut self, mut cell: InCell) {
        let Some(id) = cell.header.circ_id else {
            return; // link padding
        };
        let Some(c) = self.circuits.get_mut(&id) else {
            return; // a late cell for a circuit we already closed
        };
        let result = match cell.header.cmd {
            CellCmd::RELAY => c.circ.handle_backward(&mut self.rng, cell.body_mut()),
            CellCmd::CREATED => match cell.link_msg() {
                Ok(LinkMsg::Created { hdata }) => c.circ.handle_created(&mut self.rng, hdata),
                _ => Err(ournet_proto::circuit::CircuitError::Protocol("bad CREATED")),
            },
            CellCmd::DESTROY => {
                let reason = match cell.link_msg() {
                    Ok(LinkMsg::Destroy(r)) => r.0,
                    _ => DestroyReason::PROTOCOL.0,
                };
                // Name the relay the path could not reach, so the node routes around it.
                if let Some(hop) = c.circ.blame_destroy(DestroyReason(reason)) {
                    let tx = c.events.clone();
                    self.deliver(tx, CircEvent::Unreachable(hop));
                }
                self.remove(
                    id,
                    format!("destroyed by the relay (reason {reason})"),
                    false,
                );
                return;
            }
            _ => Err(ournet_proto::circuit::CircuitError::Protocol(
                "unexpected cell",
            )),
        };
        self.drain_events(id);
        if let Err(e) = result {
            self.remove(id, e.to_string(), true);
        }
    }

    /// Carries out one command; `Some` when it ends the link.
    fn on_cmd(&mut self, cmd: LinkCmd) -> Option<End> {
        match cmd {
            LinkCmd::Open {
                path,
                events,
                reply,
            } => {
                let _ = reply.send(self.open(path, events));
            }
            LinkCmd::Circ(id, op) => self.on_op(id, op),
            LinkCmd::SetPacing(p) => {
                self.pacing = p;
                self.last_tick = Instant::now();
            }
            LinkCmd::Close => return Some(End::Closed("closed by the client")),
            LinkCmd::CloseIfIdle if self.circuits.is_empty() => {
                return Some(End::Closed("idle, closed by the client"));
            }
            LinkCmd::CloseIfIdle => {}
        }
        None
    }

    fn open(
        &mut self,
        path: Vec<ournet_proto::circuit::PathHop>,
        events: mpsc::Sender<CircEvent>,
    ) -> Result<CircId, crate::ClientError> {
        if self.circuits.len() >= MAX_CIRCUITS {
            return Err(crate::ClientError::Circuit(
                "too many circuits on one link".into(),
            ));
        }
        let (circ, htype, hdata) = ClientCircuit::build(&mut self.rng, Instant::now(), path)
            .map_err(|e| crate::ClientError::Circuit(e.to_string()))?;
        let id = self.alloc_id();
        self.circuits.insert(id, Circ { circ, events });
        self.order.push_back(id);
        self.ctl.push_back(Ctl::Create { id, htype, hdata });
        Ok(id)
    }

    fn alloc_id(&mut self) -> CircId {
        loop {
            let raw = self.next_id;
            self.next_id = self.next_id.wrapping_add(1) | 0x8000_0000;
            if let Some(id) = CircId::new(raw)
                && !self.circuits.contains_key(&id)
            {
                return id;
            }
        }
    }

    fn on_op(&mut self, id: CircId, op: CircOp) {
        let Some(c) = self.circuits.get_mut(&id) else {
            return; // closed already; its owner got (or will get) Closed
        };
        let result = match op {
            CircOp::Message {
                message_id,
                recipient,
                envelope,
            } => c.circ.send_message(message_id, recipient, envelope),
            CircOp::Ack {
                message_id,
                ack_token,
            } => c.circ.send_ack(message_id, ack_token),
            CircOp::Ping(n) => c.circ.send_ping(n),
            CircOp::Padding => c.circ.send_padding(),
            CircOp::HomeAuth(identity) => c.circ.home_auth(&identity, &self.binding),
            CircOp::ForwardTo(address) => c.circ.send_forward_to(&address).map(|sent| {
                if !sent {
                    tracing::debug!("the new address does not fit FORWARD_TO: not sent");
                }
            }),
            CircOp::Close => {
                self.remove(id, "closed by its owner".into(), true);
                return;
            }
        };
        if let Err(e) = result {
            self.remove(id, e.to_string(), true);
        }
    }

    /// Forgets circuit `id`, tells its owner why, and (if `destroy`) sends DESTROY.
    fn remove(&mut self, id: CircId, why: String, destroy: bool) {
        if let Some(c) = self.circuits.remove(&id) {
            self.order.retain(|o| *o != id);
            self.deliver(c.events, CircEvent::Closed(why));
            if destroy {
                self.ctl.push_back(Ctl::Destroy {
                    id,
                    reason: DestroyReason::NONE,
                });
            }
        }
    }

    /// Hands circuit `id`'s new events to its owner.
    fn drain_events(&mut self, id: CircId) {
        let Some(c) = self.circuits.get_mut(&id) else {
            return;
        };
        let tx = c.events.clone();
        let mut evs = Vec::new();
        while let Some(ev) = c.circ.poll_event() {
            evs.push(ev);
        }
        for ev in evs {
            self.deliver(tx.clone(), CircEvent::Proto(ev));
        }
    }

    /// Sends at once if the owner has room and nothing is waiting before it; else queues it
    /// (which pauses reading until the owner catches up).
    fn deliver(&mut self, tx: mpsc::Sender<CircEvent>, ev: CircEvent) {
        if !self.pending.is_empty() {
            self.pending.push_back((tx, ev));
            return;
        }
        match tx.try_send(ev) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(ev)) => self.pending.push_back((tx, ev)),
        }
    }

    /// After one pending event went out, sends the following ones that fit.
    fn retry_pending(&mut self) {
        while let Some((tx, ev)) = self.pending.pop_front() {
            match tx.try_send(ev) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(ev)) => {
                    self.pending.push_front((tx, ev));
                    return;
                }
            }
        }
    }

    /// In immediate pacing, seals every cell that is ready, up to [`MAX_OUTBUF`].
    fn fill_immediate(&mut self, now: Instant) -> Result<(), String> {
        if self.pacing != Pacing::Immediate {
            return Ok(());
        }
        while self.outbuf.len() < MAX_OUTBUF {
            if !self.emit_one(now)? {
                break;
            }
        }
        Ok(())
    }

    /// Seals the next cell (link cells first, then the circuits in turn) into `outbuf`.
    /// Returns whether there was one.
    fn emit_one(&mut self, now: Instant) -> Result<bool, String> {
        if let Some(ctl) = self.ctl.pop_front() {
            let (id, msg) = match &ctl {
                Ctl::Create { id, htype, hdata } => (
                    *id,
                    LinkMsg::Create {
                        htype: *htype,
                        hdata,
                    },
                ),
                Ctl::Destroy { id, reason } => (*id, LinkMsg::Destroy(*reason)),
            };
            let cell = self
                .channel
                .encode_msg(now, Some(id), &msg)
                .map_err(|e| format!("link: {e}"))?;
            self.outbuf.extend_from_slice(&cell);
            return Ok(true);
        }
        for _ in 0..self.order.len() {
            let Some(id) = self.order.pop_front() else {
                break;
            };
            self.order.push_back(id);
            let mut cell = [0u8; CELL_LEN];
            let Some(c) = self.circuits.get_mut(&id) else {
                continue;
            };
            let body: &mut [u8; BODY_LEN] = (&mut cell[HEADER_LEN..])
                .try_into()
                .expect("CELL_LEN - HEADER_LEN is BODY_LEN");
            match c.circ.poll_forward(&mut self.rng, body) {
                Ok(false) => continue,
                Ok(true) => {
                    let header = CellHeader {
                        circ_id: Some(id),
                        cmd: CellCmd::RELAY,
                    };
                    self.channel
                        .encode(now, header, &mut cell)
                        .map_err(|e| format!("link: {e}"))?;
                    self.outbuf.extend_from_slice(&cell);
                    return Ok(true);
                }
                Err(e) => self.remove(id, e.to_string(), true),
            }
        }
        Ok(false)
    }

    fn next_deadline(&self) -> Instant {
        let mut d = self.channel.poll_timeout();
        for c in self.circuits.values() {
            if let Some(t) = c.circ.poll_timeout() {
                d = d.min(t);
            }
        }
        if let Pacing::ConstantRate { cell_interval } = self.pacing {
            d = d.min(self.last_tick + cell_interval);
        }
        d
    }

    fn on_timer(&mut self, now: Instant) -> Result<(), String> {
        let expired: Vec<CircId> = self
            .circuits
            .iter_mut()
            .filter_map(|(id, c)| c.circ.handle_timeout(now).err().map(|_| *id))
            .collect();
        for id in expired {
            self.remove(id, "circuit build timed out".into(), true);
        }
        if let Pacing::ConstantRate { cell_interval } = self.pacing
            && now >= self.last_tick + cell_interval
        {
            self.last_tick = now;
            // One cell per tick whatever the app does: a real one, or link padding, which
            // a link observer cannot tell apart (PROTOCOL.md §3.4).
            if self.outbuf.len() < MAX_OUTBUF && !self.emit_one(now)? {
                let cell = self
                    .channel
                    .encode_msg(now, None, &LinkMsg::Padding)
                    .map_err(|e| format!("link: {e}"))?;
                self.outbuf.extend_from_slice(&cell);
            }
        }
        match self.channel.handle_timeout(now) {
            Ok(Some(TimeoutAction::SendKeepalive(cell))) => {
                self.outbuf.extend_from_slice(&cell[..]);
                Ok(())
            }
            Ok(Some(TimeoutAction::Close)) => Err("idle timeout".into()),
            Ok(None) => Ok(()),
            Err(e) => Err(format!("link: {e}")),
        }
    }
}
