//! A link to one relay over tokio TCP: the NK handshake, then a driver task that owns the
//! socket, the [`Channel`] and every circuit whose first hop is that relay.
//!
//! [`connect`] dials and completes [`LinkInitiator`]'s handshake, then spawns the driver
//! ([`driver`]). The returned [`LinkHandle`] is how the rest of the client talks to it: open a
//! circuit, queue messages, ACKs, pings, padding, close. Several circuits share one link, as
//! PROTOCOL.md §6 allows. The driver decides nothing about what a cell means: it hands bytes to
//! `proto` and moves what `proto` hands back (cells, events, deadlines).
//!
//! Every queue is bounded: commands (256), each circuit's events (256, reading from the socket
//! pauses while one is full) and the bytes waiting for the socket (the driver stops asking
//! circuits for cells past [`driver::MAX_OUTBUF`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ournet_proto::address::NodeAddress;
use ournet_proto::cell::CircId;
use ournet_proto::circuit::{ClientEvent, PathHop};
use ournet_proto::keys::IdentityKeypair;
use ournet_proto::link::LinkInitiator;
use ournet_proto::link::channel::Channel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::error::ClientError;
use crate::pacing::Pacing;
use crate::rng::fresh_rng;

pub(crate) mod driver;

/// Capacity of a link's command queue and of each circuit's event queue.
pub(crate) const QUEUE_CAP: usize = 256;

/// What a circuit tells its owner.
#[derive(Debug)]
pub(crate) enum CircEvent {
    /// An event from `proto`'s circuit.
    Proto(ClientEvent),
    /// While building, a relay of the path reported that it could not reach the next one:
    /// path index `.0` is unreachable (`proto::circuit::blame_destroy`). `Closed` follows.
    Unreachable(usize),
    /// The circuit is gone (destroyed, timed out, or its link closed); the reason is for logs.
    Closed(String),
}

/// One operation on an open circuit.
#[derive(Debug)]
pub(crate) enum CircOp {
    /// Queue a message for the last hop.
    Message {
        message_id: [u8; 16],
        recipient: [u8; 32],
        envelope: Vec<u8>,
    },
    /// Queue an end-to-end ACK (home circuits).
    Ack {
        message_id: [u8; 16],
        ack_token: [u8; 16],
    },
    /// Queue a PING.
    Ping(u64),
    /// Queue a DROP cell (cover traffic).
    Padding,
    /// Prove the node's identity to this (one-hop) circuit's relay.
    HomeAuth(Arc<IdentityKeypair>),
    /// Tell this home circuit's relay the node's new address (FORWARD_TO); skipped when it
    /// does not fit one cell.
    ForwardTo(Box<NodeAddress>),
    /// Destroy the circuit.
    Close,
}

/// A command to a link's driver.
#[derive(Debug)]
pub(crate) enum LinkCmd {
    /// Build a circuit through `path` (whose first hop is this link's relay).
    Open {
        path: Vec<PathHop>,
        events: mpsc::Sender<CircEvent>,
        reply: oneshot::Sender<Result<CircId, ClientError>>,
    },
    /// Act on an open circuit.
    Circ(CircId, CircOp),
    /// Change how cells are paced on the wire (privacy level).
    SetPacing(Pacing),
    /// Destroy every circuit (DESTROY cells flushed to the relay), then close the link.
    Close,
    /// As `Close`, but only if no circuit is open (else nothing happens).
    CloseIfIdle,
}

/// The handle to a running link.
#[derive(Debug, Clone)]
pub(crate) struct LinkHandle {
    cmd: mpsc::Sender<LinkCmd>,
    closed: Arc<AtomicBool>,
}

impl LinkHandle {
    /// Whether the driver has ended (the link is unusable).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.cmd.is_closed()
    }

    /// Builds a circuit through `path` and waits until it is built or has failed.
    pub(crate) async fn open_circuit(
        &self,
        path: Vec<PathHop>,
    ) -> Result<(CircuitHandle, mpsc::Receiver<CircEvent>), ClientError> {
        let (events_tx, mut events) = mpsc::channel(QUEUE_CAP);
        let (reply, rx) = oneshot::channel();
        self.send(LinkCmd::Open {
            path,
            events: events_tx,
            reply,
        })
        .await?;
        let id = rx.await.map_err(|_| ClientError::LinkClosed)??;
        let circ = CircuitHandle {
            link: self.clone(),
            id,
        };
        match events.recv().await {
            Some(CircEvent::Proto(ClientEvent::Built)) => Ok((circ, events)),
            Some(CircEvent::Unreachable(hop)) => Err(ClientError::Unreachable { hop }),
            Some(CircEvent::Closed(why)) => Err(ClientError::Circuit(why)),
            Some(CircEvent::Proto(other)) => Err(ClientError::Circuit(format!(
                "unexpected {other:?} while building"
            ))),
            None => Err(ClientError::LinkClosed),
        }
    }

    /// Destroys every circuit on the link, flushes the DESTROY cells, closes the socket and
    /// returns once the driver has ended. Returns at once for a link already closed.
    pub(crate) async fn close(&self) {
        if self.send(LinkCmd::Close).await.is_ok() {
            self.cmd.closed().await;
        }
    }

    /// Closes the link if it carries no circuit, without waiting. The driver decides, in
    /// command order: a circuit opened by a command queued before this one keeps it open.
    pub(crate) async fn close_if_idle(&self) {
        let _ = self.send(LinkCmd::CloseIfIdle).await;
    }

    /// Changes the pacing of this link.
    pub(crate) async fn set_pacing(&self, pacing: Pacing) -> Result<(), ClientError> {
        self.send(LinkCmd::SetPacing(pacing)).await
    }

    async fn send(&self, cmd: LinkCmd) -> Result<(), ClientError> {
        self.cmd
            .send(cmd)
            .await
            .map_err(|_| ClientError::LinkClosed)
    }
}

/// An open circuit on a link. Dropping it does not close the circuit: call
/// [`CircuitHandle::close`].
#[derive(Debug, Clone)]
pub(crate) struct CircuitHandle {
    link: LinkHandle,
    id: CircId,
}

impl CircuitHandle {
    /// Queues `op` on this circuit.
    pub(crate) async fn op(&self, op: CircOp) -> Result<(), ClientError> {
        self.link.send(LinkCmd::Circ(self.id, op)).await
    }

    /// Destroys the circuit (best effort: a closed link has destroyed it already).
    pub(crate) async fn close(&self) {
        let _ = self.op(CircOp::Close).await;
    }

    /// The link the circuit runs on.
    pub(crate) fn link(&self) -> &LinkHandle {
        &self.link
    }
}

/// Dials `hop`, completes the link handshake within `timeout` and starts the driver, which
/// keeps the link's channel binding for HOME_AUTH (PROTOCOL.md §7.4).
///
/// # Errors
/// [`ClientError::Connect`] when the relay cannot be reached or the handshake fails (a relay
/// that is not the one its descriptor names fails here).
pub(crate) async fn connect(
    hop: &PathHop,
    timeout: Duration,
    pacing: Pacing,
) -> Result<LinkHandle, ClientError> {
    let fail = |e: String| ClientError::Connect(format!("{}: {e}", hop.addr));
    let (stream, channel, inbuf, binding) = tokio::time::timeout(timeout, handshake(hop))
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(fail)?;
    let (cmd, rx) = mpsc::channel(QUEUE_CAP);
    let closed = Arc::new(AtomicBool::new(false));
    let driver = driver::Driver::new(channel, inbuf, binding, pacing);
    tokio::spawn(driver.run(stream, rx, closed.clone()));
    Ok(LinkHandle { cmd, closed })
}

async fn handshake(hop: &PathHop) -> Result<(TcpStream, Channel, BytesMut, [u8; 32]), String> {
    let mut stream = TcpStream::connect(hop.addr)
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut init = LinkInitiator::start(
        &mut fresh_rng(),
        Instant::now(),
        None,
        hop.identity,
        hop.link_key,
        &mut out,
    )
    .map_err(|e| e.to_string())?;
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let (used, est) = loop {
        if stream
            .read_buf(&mut inbuf)
            .await
            .map_err(|e| e.to_string())?
            == 0
        {
            return Err("closed during the handshake".into());
        }
        if let Some(done) = init.handle_input(&inbuf).map_err(|e| e.to_string())? {
            break done;
        }
    };
    let _ = inbuf.split_to(used);
    let channel = Channel::new(est.crypto, Instant::now());
    Ok((stream, channel, inbuf, est.channel_binding))
}
