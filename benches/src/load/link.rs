//! One client link to a relay, driven by `ournet-proto` over a blocking socket.
//!
//! Cells are sealed straight into one batch buffer (no per-cell allocation) and written with
//! one syscall per batch; reads take up to 64 KiB at once. The socket has a short read
//! timeout so that load loops can notice their stop flag.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::{Buf, BytesMut};
use ournet_proto::cell::{CELL_LEN, CellCmd, CellHeader, CircId, HEADER_LEN};
use ournet_proto::circuit::{ClientCircuit, ClientEvent, PathHop};
use ournet_proto::link::LinkInitiator;
use ournet_proto::link::channel::{Channel, InCell};
use ournet_proto::link_msg::LinkMsg;
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};

/// How long a blocking read waits before the caller gets to check its stop flag.
const POLL: Duration = Duration::from_millis(200);
/// How long setup steps (handshakes, circuit builds) may take.
pub(crate) const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes read per syscall at most.
const READ_CHUNK: usize = 64 * 1024;

/// A fresh RNG seeded from the OS.
pub(crate) fn rng() -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    ChaCha20Rng::from_seed(seed)
}

/// An established client link (NK handshake done).
#[derive(Debug)]
pub(crate) struct Link {
    stream: TcpStream,
    channel: Channel,
    inbuf: BytesMut,
    chunk: Vec<u8>,
    out: Vec<u8>,
    /// The link's channel binding (for HOME_AUTH).
    pub(crate) binding: [u8; 32],
}

impl Link {
    /// Connects to `hop` and completes the link handshake.
    pub(crate) fn connect(hop: &PathHop) -> anyhow::Result<Self> {
        let mut stream = TcpStream::connect_timeout(&hop.addr, SETUP_TIMEOUT)
            .with_context(|| format!("connecting to {}", hop.addr))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(POLL))?;
        let mut out = Vec::new();
        let now = Instant::now();
        let mut init =
            LinkInitiator::start(&mut rng(), now, None, hop.identity, hop.link_key, &mut out)?;
        stream.write_all(&out)?;
        let mut inbuf = BytesMut::with_capacity(2 * READ_CHUNK);
        let mut chunk = vec![0; READ_CHUNK];
        let deadline = now + SETUP_TIMEOUT;
        let (used, est) = loop {
            while !read_into(&mut stream, &mut chunk, &mut inbuf)? {
                if Instant::now() >= deadline {
                    bail!("timed out in the link handshake with {}", hop.addr);
                }
            }
            if let Some(done) = init.handle_input(&inbuf)? {
                break done;
            }
        };
        inbuf.advance(used);
        Ok(Self {
            stream,
            channel: Channel::new(est.crypto, now),
            inbuf,
            chunk,
            out: Vec::with_capacity(64 * CELL_LEN),
            binding: est.channel_binding,
        })
    }

    /// Appends a sealed link-message cell to the batch.
    pub(crate) fn queue_msg(&mut self, id: CircId, msg: &LinkMsg<'_>) -> anyhow::Result<()> {
        let cell = self.channel.encode_msg(Instant::now(), Some(id), msg)?;
        self.out.extend_from_slice(&cell);
        Ok(())
    }

    /// Seals up to `max` forward cells of `circ` straight into the batch; returns how many.
    pub(crate) fn queue_relay(
        &mut self,
        id: CircId,
        circ: &mut ClientCircuit,
        rng: &mut ChaCha20Rng,
        max: usize,
    ) -> anyhow::Result<usize> {
        let header = CellHeader {
            circ_id: Some(id),
            cmd: CellCmd::RELAY,
        };
        let now = Instant::now();
        let mut n = 0;
        while n < max {
            let start = self.out.len();
            self.out.resize(start + CELL_LEN, 0);
            let cell: &mut [u8; CELL_LEN] = self
                .out
                .get_mut(start..)
                .and_then(|c| c.try_into().ok())
                .context("cell slot")?;
            let body = cell.get_mut(HEADER_LEN..).context("cell body")?;
            if !circ.poll_forward(rng, body)? {
                self.out.truncate(start);
                break;
            }
            self.channel.encode(now, header, cell)?;
            n += 1;
        }
        Ok(n)
    }

    /// Writes the batch.
    pub(crate) fn flush(&mut self) -> anyhow::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads once. `Ok(false)` when nothing came within the poll interval.
    pub(crate) fn read_some(&mut self) -> anyhow::Result<bool> {
        read_into(&mut self.stream, &mut self.chunk, &mut self.inbuf)
    }

    fn read_until(&mut self, deadline: Instant) -> anyhow::Result<()> {
        while !self.read_some()? {
            if Instant::now() >= deadline {
                bail!("timed out waiting for the relay");
            }
        }
        Ok(())
    }

    /// The next received non-padding cell already in the buffer.
    pub(crate) fn next_cell(&mut self) -> anyhow::Result<Option<InCell>> {
        loop {
            match self.channel.decode(Instant::now(), &mut self.inbuf)? {
                Some(c) if c.header.cmd == CellCmd::PADDING => {}
                other => return Ok(other),
            }
        }
    }
}

/// One read from `stream` appended to `buf`; `Ok(false)` when the read timed out.
fn read_into(stream: &mut TcpStream, chunk: &mut [u8], buf: &mut BytesMut) -> anyhow::Result<bool> {
    match stream.read(chunk) {
        Ok(0) => bail!("the relay closed the link"),
        Ok(n) => {
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            Ok(true)
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// A client circuit with its id on the link and its own RNG.
#[derive(Debug)]
pub(crate) struct Circ {
    /// The circuit id on the link.
    pub(crate) id: CircId,
    /// The proto state machine.
    pub(crate) circ: ClientCircuit,
    /// Its RNG (onion sealing needs one).
    pub(crate) rng: ChaCha20Rng,
}

impl Circ {
    /// Builds a circuit through `path` on `link` (blocking until every hop answered).
    pub(crate) fn build(link: &mut Link, id: CircId, path: Vec<PathHop>) -> anyhow::Result<Self> {
        let mut rng = rng();
        let (circ, htype, hdata) = ClientCircuit::build(&mut rng, Instant::now(), path)?;
        link.queue_msg(
            id,
            &LinkMsg::Create {
                htype,
                hdata: &hdata,
            },
        )?;
        link.flush()?;
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let created = loop {
            link.read_until(deadline)?;
            if let Some(cell) = link.next_cell()? {
                match cell.link_msg() {
                    Ok(LinkMsg::Created { hdata }) => break hdata.to_vec(),
                    other => bail!("CREATE answered with {other:?}"),
                }
            }
        };
        let mut c = Self { id, circ, rng };
        c.circ.handle_created(&mut c.rng, &created)?;
        c.wait_for(link, |e| *e == ClientEvent::Built)?;
        Ok(c)
    }

    /// Sends what the circuit has queued (all of it: setup and control traffic only).
    pub(crate) fn flush(&mut self, link: &mut Link) -> anyhow::Result<()> {
        link.queue_relay(self.id, &mut self.circ, &mut self.rng, usize::MAX)?;
        link.flush()
    }

    /// Handles every cell already received on `link` (all for this circuit).
    pub(crate) fn handle_input(&mut self, link: &mut Link) -> anyhow::Result<usize> {
        let mut n = 0;
        while let Some(mut cell) = link.next_cell()? {
            match cell.header.cmd {
                CellCmd::RELAY => self.circ.handle_backward(&mut self.rng, cell.body_mut())?,
                CellCmd::DESTROY => bail!("circuit destroyed: {:?}", cell.link_msg()),
                other => bail!("unexpected {other:?}"),
            }
            n += 1;
        }
        Ok(n)
    }

    /// Moves cells until an event matching `pred` arrives (others are dropped); returns it.
    pub(crate) fn wait_for(
        &mut self,
        link: &mut Link,
        pred: impl Fn(&ClientEvent) -> bool,
    ) -> anyhow::Result<ClientEvent> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            self.flush(link)?;
            while let Some(ev) = self.circ.poll_event() {
                if pred(&ev) {
                    return Ok(ev);
                }
            }
            link.read_until(deadline)?;
            self.handle_input(link)?;
        }
    }
}
