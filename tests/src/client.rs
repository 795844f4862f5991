//! A minimal blocking test client: one link, one circuit, driven by `ournet-proto`.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use ournet_proto::cell::{BODY_LEN, CELL_LEN, CellCmd, CellHeader, CircId, HEADER_LEN};
use ournet_proto::circuit::{ClientCircuit, ClientEvent, PathHop};
use ournet_proto::envelope::{AckToken, OpenedMessage, decrypt_message, encrypt_message_with_ack};
use ournet_proto::keys::{
    EncryptionKeypair, EncryptionPublicKey, IdentityKeypair, IdentityPublicKey,
};
use ournet_proto::link::LinkInitiator;
use ournet_proto::link::channel::{Channel, InCell};
use ournet_proto::link_msg::{DestroyReason, LinkMsg};
use ournet_proto::relay_msg::DeliveryStatus;
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};

/// How long a read may block before the test fails (turns a hang into a failure).
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh RNG from the OS.
pub fn rng() -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    ChaCha20Rng::from_seed(seed)
}

/// Connects to `addr` from the source address `from` (127.0.0.x lets tests act as
/// different peers for per-IP limits).
pub fn tcp_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.bind(&SocketAddr::new(from, 0).into())?;
    s.connect(&addr.into())?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// What ended a wait for cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEnd {
    /// The relay destroyed the circuit.
    Destroyed(DestroyReason),
    /// The connection closed.
    Closed,
    /// The circuit failed at the client.
    Circuit(String),
}

/// An established client link.
#[derive(Debug)]
pub struct Link {
    stream: TcpStream,
    channel: Channel,
    inbuf: BytesMut,
    /// The link's channel binding (for HOME_AUTH).
    pub binding: [u8; 32],
}

impl Link {
    /// Connects to `hop` from 127.0.0.1 and completes the NK handshake.
    pub fn connect(hop: &PathHop) -> Self {
        Self::connect_from([127, 0, 0, 1].into(), hop)
    }

    /// Connects to `hop` from `from` and completes the NK handshake.
    pub fn connect_from(from: IpAddr, hop: &PathHop) -> Self {
        let mut stream = tcp_from(from, hop.addr).unwrap();
        let mut out = Vec::new();
        let now = Instant::now();
        let mut init =
            LinkInitiator::start(&mut rng(), now, None, hop.identity, hop.link_key, &mut out)
                .unwrap();
        stream.write_all(&out).unwrap();
        let mut inbuf = BytesMut::new();
        let (used, est) = loop {
            read_more(&mut stream, &mut inbuf).unwrap();
            if let Some(done) = init.handle_input(&inbuf).unwrap() {
                break done;
            }
        };
        inbuf.advance(used);
        Self {
            stream,
            channel: Channel::new(est.crypto, now),
            inbuf,
            binding: est.channel_binding,
        }
    }

    /// Sends a link message on `circ_id`.
    pub fn send_msg(&mut self, circ_id: CircId, msg: &LinkMsg<'_>) {
        let cell = self
            .channel
            .encode_msg(Instant::now(), Some(circ_id), msg)
            .unwrap();
        self.stream.write_all(&cell).unwrap();
    }

    /// Sends a RELAY body on `circ_id`.
    pub fn send_relay(&mut self, circ_id: CircId, body: &[u8]) {
        let mut cell = [0u8; CELL_LEN];
        cell[HEADER_LEN..].copy_from_slice(body);
        let header = CellHeader {
            circ_id: Some(circ_id),
            cmd: CellCmd::RELAY,
        };
        self.channel
            .encode(Instant::now(), header, &mut cell)
            .unwrap();
        self.stream.write_all(&cell).unwrap();
    }

    /// The next non-padding cell, or why none came.
    pub fn recv(&mut self) -> Result<InCell, LinkEnd> {
        loop {
            match self.channel.decode(Instant::now(), &mut self.inbuf) {
                Ok(Some(cell)) if cell.header.cmd == CellCmd::PADDING => {}
                Ok(Some(cell)) => return Ok(cell),
                Ok(None) => read_more(&mut self.stream, &mut self.inbuf)?,
                Err(e) => return Err(LinkEnd::Circuit(e.to_string())),
            }
        }
    }
}

fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<(), LinkEnd> {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk) {
        Ok(0) | Err(_) => Err(LinkEnd::Closed),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}

/// A circuit over its own link to the first hop.
#[derive(Debug)]
pub struct Circ {
    /// The link to the first hop.
    pub link: Link,
    /// The circuit id on that link.
    pub id: CircId,
    /// The proto state machine.
    pub circ: ClientCircuit,
    rng: ChaCha20Rng,
    /// Events seen and not yet taken.
    pub events: Vec<ClientEvent>,
}

impl Circ {
    /// Builds a circuit through `path` (first hop reached from 127.0.0.1).
    pub fn build(path: Vec<PathHop>) -> Result<Self, LinkEnd> {
        let link = Link::connect(&path[0]);
        Self::build_on(link, path)
    }

    /// Builds a circuit through `path` over an established link to its first hop.
    pub fn build_on(mut link: Link, path: Vec<PathHop>) -> Result<Self, LinkEnd> {
        let mut rng = rng();
        let (circ, htype, hdata) = ClientCircuit::build(&mut rng, Instant::now(), path).unwrap();
        let id = CircId::new(0x8000_0001).unwrap();
        link.send_msg(
            id,
            &LinkMsg::Create {
                htype,
                hdata: &hdata,
            },
        );
        let cell = link.recv()?;
        let created = match cell.link_msg() {
            Ok(LinkMsg::Created { hdata }) => hdata.to_vec(),
            Ok(LinkMsg::Destroy(r)) => return Err(LinkEnd::Destroyed(r)),
            other => return Err(LinkEnd::Circuit(format!("{other:?}"))),
        };
        let mut c = Self {
            link,
            id,
            circ,
            rng,
            events: Vec::new(),
        };
        c.circ
            .handle_created(&mut c.rng, &created)
            .map_err(|e| LinkEnd::Circuit(e.to_string()))?;
        c.wait_for(|e| *e == ClientEvent::Built)?;
        Ok(c)
    }

    /// A home circuit for `who` on the relay `hop`, over `link` (connected to `hop`): built,
    /// then HOME_AUTH proved with the link's channel binding. Returns it and how many queued
    /// messages the relay announced.
    pub fn home(link: Link, hop: PathHop, who: &IdentityKeypair) -> Result<(Self, u32), LinkEnd> {
        let binding = link.binding;
        let mut home = Self::build_on(link, vec![hop])?;
        home.circ.home_auth(who, &binding).unwrap();
        match home.wait_for(|e| matches!(e, ClientEvent::HomeAuthed { .. }))? {
            ClientEvent::HomeAuthed { queued } => Ok((home, queued)),
            other => unreachable!("wait_for gave {other:?}"),
        }
    }

    /// Seals `content` from `from` to `to` (`to_enc` is its encryption key) as message `id`,
    /// sends it to `to`'s home relay and waits for that relay's DELIVERY_STATUS. Returns the
    /// status and the ACK token `to`'s end-to-end ACK must carry.
    pub fn send_sealed(
        &mut self,
        from: &IdentityKeypair,
        to: &IdentityPublicKey,
        to_enc: &EncryptionPublicKey,
        id: [u8; 16],
        content: &[u8],
    ) -> (DeliveryStatus, AckToken) {
        let (envelope, token) =
            encrypt_message_with_ack(&mut self.rng, from, to_enc, id, 1, content).unwrap();
        self.circ.send_message(id, to.to_bytes(), envelope).unwrap();
        let event = self
            .wait_for(|e| matches!(e, ClientEvent::DeliveryStatus { .. }))
            .unwrap();
        let ClientEvent::DeliveryStatus { message_id, status } = event else {
            unreachable!("wait_for gave {event:?}")
        };
        assert_eq!(message_id, id, "the status is for the message sent");
        (status, token)
    }

    /// Waits for the next message on this home circuit and opens it with `key`. Returns its
    /// message id and the opened message.
    pub fn receive_opened(&mut self, key: &EncryptionKeypair) -> ([u8; 16], OpenedMessage) {
        let event = self
            .wait_for(|e| matches!(e, ClientEvent::Message { .. }))
            .unwrap();
        let ClientEvent::Message {
            message_id,
            envelope,
        } = event
        else {
            unreachable!("wait_for gave {event:?}")
        };
        (message_id, decrypt_message(key, &envelope).unwrap())
    }

    /// Sends the end-to-end ACK of `opened` (message `id`) back towards its sender.
    pub fn ack(&mut self, id: [u8; 16], opened: &OpenedMessage) {
        self.circ
            .send_ack(id, opened.ack_token().to_bytes())
            .unwrap();
        self.flush();
    }

    /// Waits for an end-to-end ACK; returns its message id and token.
    pub fn wait_ack(&mut self) -> ([u8; 16], AckToken) {
        let event = self
            .wait_for(|e| matches!(e, ClientEvent::Ack { .. }))
            .unwrap();
        let ClientEvent::Ack {
            message_id,
            ack_token,
        } = event
        else {
            unreachable!("wait_for gave {event:?}")
        };
        (message_id, AckToken::from_bytes(ack_token))
    }

    /// Sends what the circuit has queued.
    pub fn flush(&mut self) {
        let mut body = [0u8; BODY_LEN];
        while self.circ.poll_forward(&mut self.rng, &mut body).unwrap() {
            self.link.send_relay(self.id, &body);
        }
    }

    /// Moves cells until an event matching `pred` arrives; returns it.
    pub fn wait_for(
        &mut self,
        pred: impl Fn(&ClientEvent) -> bool,
    ) -> Result<ClientEvent, LinkEnd> {
        loop {
            self.flush();
            while let Some(ev) = self.circ.poll_event() {
                self.events.push(ev);
            }
            if let Some(i) = self.events.iter().position(&pred) {
                return Ok(self.events.remove(i));
            }
            let mut cell = self.link.recv()?;
            match cell.header.cmd {
                CellCmd::RELAY => self
                    .circ
                    .handle_backward(&mut self.rng, cell.body_mut())
                    .map_err(|e| LinkEnd::Circuit(e.to_string()))?,
                CellCmd::DESTROY => {
                    let reason = match cell.link_msg() {
                        Ok(LinkMsg::Destroy(r)) => r,
                        _ => DestroyReason::PROTOCOL,
                    };
                    return Err(LinkEnd::Destroyed(reason));
                }
                other => return Err(LinkEnd::Circuit(format!("unexpected {other:?}"))),
            }
        }
    }
}
