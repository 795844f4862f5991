//! Relay messages: the plaintext of an onion payload, seen only by the circuit's endpoints
//! (PROTOCOL.md §7).
//!
//! ```text
//!  0     1          3                      PAYLOAD_LEN
//!  | cmd | len u16  | body[len] | zeros ... |
//! ```
//!
//! Padding (DROP) cells are RELAY cells like any other, so no relay but the endpoint can tell
//! them from data. Bodies:
//!
//! ```text
//! BEGIN            message_id[16] | total_len u32 | recipient[32] | first chunk
//! DATA             chunk
//! ACK              message_id[16] | ack_token[16]
//! DROP             anything (ignored)
//! EXTEND           addr_type u8 | addr (4 or 16) | port u16 | identity[32] | link_key[32]
//!                  | htype u16 | hlen u16 | hdata
//! EXTENDED         hlen u16 | hdata
//! SENDME           (empty)
//! HOME_AUTH        identity[32] | signature[64]
//! HOME_AUTHED      queued u32
//! DELIVERY_STATUS  message_id[16] | status u8
//! PING, PONG       nonce u64
//! FORWARD_TO       address (binary form, `address.rs`)
//! MOVED            message_id[16] | address (binary form)
//! ```
//!
//! FORWARD_TO and MOVED carry a node address as bytes: the endpoint that acts on one parses
//! and verifies it (`NodeAddress::from_bytes`), so decoding a relay message stays cheap and
//! never checks a signature. An address that does not fit one cell (7 or more IPv6 homes) is
//! simply not sent.
#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::cell::PAYLOAD_LEN;
use crate::codec::{DecodeError, EncodeError, Reader, Writer};
use crate::link_msg::{MAX_HANDSHAKE_DATA, expect_zero_tail};

/// Bytes of the relay message header (command and length).
pub const RELAY_HEADER_LEN: usize = 3;
/// Most body bytes a relay message carries.
pub const MAX_RELAY_BODY: usize = PAYLOAD_LEN - RELAY_HEADER_LEN;
/// Bytes of a BEGIN body before its first chunk.
pub const BEGIN_HEADER_LEN: usize = 16 + 4 + 32;
/// Fewest bytes of an address's binary form (one IPv4 home), so FORWARD_TO and MOVED refuse
/// bodies that cannot be one: version, identity, encryption key, two times, home count, one
/// home, signature.
pub const MIN_ADDRESS_LEN: usize = 1 + 32 + 32 + 8 + 8 + 1 + (32 * 3 + 1 + 4 + 2) + 64;
/// Most bytes of an address's binary form in FORWARD_TO or MOVED: what MOVED has room for
/// after its message id, so an address the old home accepted always fits its answer. Up to
/// six homes fit whatever their address family; a node with a longer address does not send
/// FORWARD_TO (its senders fall back to a directory lookup).
pub const MAX_MOVED_ADDRESS: usize = MAX_RELAY_BODY - 16;

/// A relay command: open newtype, unknown values are kept and refused by the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelayCmd(pub u8);

impl RelayCmd {
    /// A continuation chunk of the current message.
    pub const DATA: Self = Self(0x01);
    /// The first chunk of a message, with its id, length and recipient.
    pub const BEGIN: Self = Self(0x02);
    /// End-to-end acknowledgement of a message.
    pub const ACK: Self = Self(0x03);
    /// Padding or cover: the endpoint discards it.
    pub const DROP: Self = Self(0x04);
    /// Ask the last hop to extend the circuit.
    pub const EXTEND: Self = Self(0x05);
    /// The new hop's handshake reply.
    pub const EXTENDED: Self = Self(0x06);
    /// Flow-control window increment.
    pub const SENDME: Self = Self(0x07);
    /// A node proves its identity to its home relay.
    pub const HOME_AUTH: Self = Self(0x08);
    /// The home relay accepted the node.
    pub const HOME_AUTHED: Self = Self(0x09);
    /// The home relay's word on a message: delivered, queued or refused.
    pub const DELIVERY_STATUS: Self = Self(0x0a);
    /// Latency probe.
    pub const PING: Self = Self(0x0b);
    /// Answer to a probe, echoing its nonce.
    pub const PONG: Self = Self(0x0c);
    /// A home node tells its (old) home relay the address it moved to (PROTOCOL.md §7.4).
    pub const FORWARD_TO: Self = Self(0x0d);
    /// The old home relay's answer to a sender, instead of DELIVERY_STATUS: the recipient
    /// moved, here is the address it left (PROTOCOL.md §7.4).
    pub const MOVED: Self = Self(0x0e);
}

/// What the home relay did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryStatus(pub u8);

impl DeliveryStatus {
    /// Handed to the online recipient.
    pub const DELIVERED: Self = Self(0);
    /// Queued for an offline recipient.
    pub const QUEUED: Self = Self(1);
    /// Refused: queue full, too large, or not a node of this relay.
    pub const REFUSED: Self = Self(2);
}

/// The first chunk of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begin<'a> {
    /// The message id (random, chosen by the sender; also the end-to-end ACK key).
    pub message_id: [u8; 16],
    /// Length of the whole message (the end-to-end envelope), all chunks together.
    pub total_len: u32,
    /// The recipient's identity key.
    pub recipient: [u8; 32],
    /// The first chunk.
    pub chunk: &'a [u8],
}

/// An EXTEND request: where the next hop is and the handshake for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extend<'a> {
    /// The next relay's address.
    pub addr: SocketAddr,
    /// Its identity key.
    pub identity: [u8; 32],
    /// Its link key (for the Noise IK link handshake).
    pub link_key: [u8; 32],
    /// Handshake type.
    pub htype: u16,
    /// The client's handshake message for the next hop.
    pub hdata: &'a [u8],
}

/// A decoded relay message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayMsg<'a> {
    /// First chunk of a message.
    Begin(Begin<'a>),
    /// Continuation chunk.
    Data(&'a [u8]),
    /// End-to-end acknowledgement.
    Ack {
        /// The acknowledged message.
        message_id: [u8; 16],
        /// Proof of receipt, derived from the envelope (only the recipient can make it).
        ack_token: [u8; 16],
    },
    /// Padding or cover.
    Drop,
    /// Extend the circuit.
    Extend(Extend<'a>),
    /// The extension's reply.
    Extended {
        /// The new hop's handshake reply.
        hdata: &'a [u8],
    },
    /// Window increment.
    Sendme,
    /// Identity proof of a home node.
    HomeAuth {
        /// The node's identity key.
        identity: [u8; 32],
        /// Signature over the link's channel binding (PROTOCOL.md §7.4).
        signature: [u8; 64],
    },
    /// Home registration accepted; `queued` messages follow.
    HomeAuthed {
        /// How many queued messages the relay will now deliver.
        queued: u32,
    },
    /// The home relay's word on a message.
    DeliveryStatus {
        /// The message.
        message_id: [u8; 16],
        /// What happened.
        status: DeliveryStatus,
    },
    /// Latency probe.
    Ping(u64),
    /// Probe answer.
    Pong(u64),
    /// The node's new address, for its old home relay to hand to senders.
    ForwardTo {
        /// The signed address, binary form (not yet verified).
        address: &'a [u8],
    },
    /// The recipient moved: the message was not kept; resend it to this address.
    Moved {
        /// The message that was not kept.
        message_id: [u8; 16],
        /// The recipient's signed address, binary form (not yet verified).
        address: &'a [u8],
    },
}

impl<'a> RelayMsg<'a> {
    /// Parses a whole onion payload.
    ///
    /// # Errors
    /// [`DecodeError`]: unknown command, bad length, malformed body or non-zero padding.
    pub fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let cmd = RelayCmd(r.take_u8("relay command")?);
        let body = r.take_u16_prefixed(MAX_RELAY_BODY, "relay body")?;
        expect_zero_tail(r)?;
        let mut b = Reader::new(body);
        let msg = match cmd {
            RelayCmd::BEGIN => Self::Begin(Begin {
                message_id: b.take_array("message id")?,
                total_len: b.take_u32("total length")?,
                recipient: b.take_array("recipient")?,
                chunk: b.take_rest(),
            }),
            RelayCmd::DATA => Self::Data(b.take_rest()),
            RelayCmd::ACK => Self::Ack {
                message_id: b.take_array("message id")?,
                ack_token: b.take_array("ack token")?,
            },
            RelayCmd::DROP => {
                b.take_rest();
                Self::Drop
            }
            RelayCmd::EXTEND => Self::Extend(decode_extend(&mut b)?),
            RelayCmd::EXTENDED => Self::Extended {
                hdata: b.take_u16_prefixed(MAX_HANDSHAKE_DATA, "hdata")?,
            },
            RelayCmd::SENDME => Self::Sendme,
            RelayCmd::HOME_AUTH => Self::HomeAuth {
                identity: b.take_array("identity")?,
                signature: b.take_array("signature")?,
            },
            RelayCmd::HOME_AUTHED => Self::HomeAuthed {
                queued: b.take_u32("queued")?,
            },
            RelayCmd::DELIVERY_STATUS => Self::DeliveryStatus {
                message_id: b.take_array("message id")?,
                status: DeliveryStatus(b.take_u8("status")?),
            },
            RelayCmd::PING => Self::Ping(b.take_u64("nonce")?),
            RelayCmd::PONG => Self::Pong(b.take_u64("nonce")?),
            RelayCmd::FORWARD_TO => Self::ForwardTo {
                address: take_address(&mut b)?,
            },
            RelayCmd::MOVED => Self::Moved {
                message_id: b.take_array("message id")?,
                address: take_address(&mut b)?,
            },
            _ => return Err(DecodeError::Invalid("relay command")),
        };
        b.finish()?;
        Ok(msg)
    }

    /// The command of this message.
    pub fn cmd(&self) -> RelayCmd {
        match self {
            Self::Begin(_) => RelayCmd::BEGIN,
            Self::Data(_) => RelayCmd::DATA,
            Self::Ack { .. } => RelayCmd::ACK,
            Self::Drop => RelayCmd::DROP,
            Self::Extend(_) => RelayCmd::EXTEND,
            Self::Extended { .. } => RelayCmd::EXTENDED,
            Self::Sendme => RelayCmd::SENDME,
            Self::HomeAuth { .. } => RelayCmd::HOME_AUTH,
            Self::HomeAuthed { .. } => RelayCmd::HOME_AUTHED,
            Self::DeliveryStatus { .. } => RelayCmd::DELIVERY_STATUS,
            Self::Ping(_) => RelayCmd::PING,
            Self::Pong(_) => RelayCmd::PONG,
            Self::ForwardTo { .. } => RelayCmd::FORWARD_TO,
            Self::Moved { .. } => RelayCmd::MOVED,
        }
    }

    /// Writes the message as a whole onion payload into `out`, zero-filling the rest.
    ///
    /// # Errors
    /// [`EncodeError::TooLong`] if the body does not fit one cell.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), EncodeError> {
        let mut body = Vec::with_capacity(MAX_RELAY_BODY);
        self.encode_body(&mut Writer::new(&mut body))?;
        if body.len() > MAX_RELAY_BODY || out.len() < RELAY_HEADER_LEN + body.len() {
            return Err(EncodeError::TooLong {
                what: "relay body",
                len: body.len(),
                max: MAX_RELAY_BODY,
            });
        }
        let mut msg = Vec::with_capacity(RELAY_HEADER_LEN + body.len());
        Writer::new(&mut msg)
            .put_u8(self.cmd().0)
            .put_u16_prefixed(&body, "relay body")?;
        out.fill(0);
        if let Some(dst) = out.get_mut(..msg.len()) {
            dst.copy_from_slice(&msg);
        }
        Ok(())
    }

    fn encode_body(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            Self::Begin(b) => {
                w.put(&b.message_id)
                    .put_u32(b.total_len)
                    .put(&b.recipient)
                    .put(b.chunk);
            }
            Self::Data(chunk) => {
                w.put(chunk);
            }
            Self::Ack {
                message_id,
                ack_token,
            } => {
                w.put(message_id).put(ack_token);
            }
            Self::Drop | Self::Sendme => {}
            Self::Extend(e) => encode_extend(e, w)?,
            Self::Extended { hdata } => {
                w.put_u16_prefixed(hdata, "hdata")?;
            }
            Self::HomeAuth {
                identity,
                signature,
            } => {
                w.put(identity).put(signature);
            }
            Self::HomeAuthed { queued } => {
                w.put_u32(*queued);
            }
            Self::DeliveryStatus { message_id, status } => {
                w.put(message_id).put_u8(status.0);
            }
            Self::Ping(n) | Self::Pong(n) => {
                w.put_u64(*n);
            }
            Self::ForwardTo { address } => {
                w.put(address);
            }
            Self::Moved {
                message_id,
                address,
            } => {
                w.put(message_id).put(address);
            }
        }
        Ok(())
    }
}

/// The rest of a body as an address's binary form: [`MIN_ADDRESS_LEN`] to
/// [`MAX_MOVED_ADDRESS`] bytes (its signature is checked by whoever acts on it).
fn take_address<'a>(b: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
    let address = b.take_rest();
    if address.len() < MIN_ADDRESS_LEN {
        return Err(DecodeError::Invalid("address too short"));
    }
    if address.len() > MAX_MOVED_ADDRESS {
        return Err(DecodeError::Invalid("address too long"));
    }
    Ok(address)
}

fn decode_extend<'a>(b: &mut Reader<'a>) -> Result<Extend<'a>, DecodeError> {
    let ip = match b.take_u8("address type")? {
        4 => IpAddr::V4(Ipv4Addr::from(b.take_array::<4>("ipv4")?)),
        6 => IpAddr::V6(Ipv6Addr::from(b.take_array::<16>("ipv6")?)),
        _ => return Err(DecodeError::Invalid("address type")),
    };
    let port = b.take_u16("port")?;
    Ok(Extend {
        addr: SocketAddr::new(ip, port),
        identity: b.take_array("identity")?,
        link_key: b.take_array("link key")?,
        htype: b.take_u16("htype")?,
        hdata: b.take_u16_prefixed(MAX_HANDSHAKE_DATA, "hdata")?,
    })
}

fn encode_extend(e: &Extend<'_>, w: &mut Writer<'_>) -> Result<(), EncodeError> {
    match e.addr.ip() {
        IpAddr::V4(ip) => w.put_u8(4).put(&ip.octets()),
        IpAddr::V6(ip) => w.put_u8(6).put(&ip.octets()),
    };
    w.put_u16(e.addr.port())
        .put(&e.identity)
        .put(&e.link_key)
        .put_u16(e.htype);
    w.put_u16_prefixed(e.hdata, "hdata")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, reason = "test code")]

    use super::*;

    fn samples() -> Vec<RelayMsg<'static>> {
        vec![
            RelayMsg::Begin(Begin {
                message_id: [1; 16],
                total_len: 5000,
                recipient: [2; 32],
                chunk: &[3; MAX_RELAY_BODY - BEGIN_HEADER_LEN],
            }),
            RelayMsg::Data(&[4; MAX_RELAY_BODY]),
            RelayMsg::Data(&[]),
            RelayMsg::Ack {
                message_id: [5; 16],
                ack_token: [6; 16],
            },
            RelayMsg::Drop,
            RelayMsg::Extend(Extend {
                addr: "127.0.0.1:9001".parse().unwrap(),
                identity: [7; 32],
                link_key: [8; 32],
                htype: 1,
                hdata: &[9; 96],
            }),
            RelayMsg::Extend(Extend {
                addr: "[::1]:443".parse().unwrap(),
                identity: [7; 32],
                link_key: [8; 32],
                htype: 1,
                hdata: &[],
            }),
            RelayMsg::Extended { hdata: &[10; 64] },
            RelayMsg::Sendme,
            RelayMsg::HomeAuth {
                identity: [11; 32],
                signature: [12; 64],
            },
            RelayMsg::HomeAuthed { queued: 7 },
            RelayMsg::DeliveryStatus {
                message_id: [13; 16],
                status: DeliveryStatus::QUEUED,
            },
            RelayMsg::Ping(42),
            RelayMsg::Pong(43),
            RelayMsg::ForwardTo {
                address: &[14; MIN_ADDRESS_LEN],
            },
            RelayMsg::Moved {
                message_id: [16; 16],
                address: &[17; MIN_ADDRESS_LEN],
            },
        ]
    }

    #[test]
    fn every_message_round_trips_in_a_payload() {
        for msg in samples() {
            let mut payload = [0xaau8; PAYLOAD_LEN];
            msg.encode(&mut payload).unwrap();
            assert_eq!(RelayMsg::decode(&payload).unwrap(), msg);
        }
    }

    #[test]
    fn truncation_trailing_bytes_and_garbage_are_errors() {
        for msg in samples() {
            let mut payload = [0u8; PAYLOAD_LEN];
            msg.encode(&mut payload).unwrap();
            let len = usize::from(u16::from_be_bytes([payload[1], payload[2]]));
            if len > 0 && !matches!(msg, RelayMsg::Data(_) | RelayMsg::Drop | RelayMsg::Begin(_)) {
                // Shorten the declared length by one: the body no longer parses.
                let mut short = payload;
                short[1..3].copy_from_slice(&u16::try_from(len - 1).unwrap().to_be_bytes());
                short[RELAY_HEADER_LEN + len - 1] = 0;
                assert!(RelayMsg::decode(&short).is_err(), "{msg:?}");
            }
            if RELAY_HEADER_LEN + len < PAYLOAD_LEN {
                let mut tail = payload;
                tail[PAYLOAD_LEN - 1] = 1;
                assert!(RelayMsg::decode(&tail).is_err());
            }
        }
        let mut bad = [0u8; PAYLOAD_LEN];
        bad[0] = 0x7f;
        assert_eq!(
            RelayMsg::decode(&bad),
            Err(DecodeError::Invalid("relay command"))
        );
        bad[0] = RelayCmd::DATA.0;
        bad[1] = 0xff;
        assert!(matches!(
            RelayMsg::decode(&bad),
            Err(DecodeError::TooLong { .. })
        ));
        assert!(
            RelayMsg::Data(&[0; MAX_RELAY_BODY + 1])
                .encode(&mut [0; PAYLOAD_LEN])
                .is_err()
        );
    }

    #[test]
    fn forward_to_and_moved_refuse_short_and_oversized_addresses() {
        let mut payload = [0u8; PAYLOAD_LEN];
        // The largest bodies that fit round-trip (six IPv6 homes make 836 address bytes).
        for msg in [
            RelayMsg::ForwardTo {
                address: &[15; MAX_MOVED_ADDRESS],
            },
            RelayMsg::Moved {
                message_id: [16; 16],
                address: &[17; MAX_MOVED_ADDRESS],
            },
        ] {
            msg.encode(&mut payload).unwrap();
            assert_eq!(RelayMsg::decode(&payload).unwrap(), msg);
        }
        // A FORWARD_TO address that MOVED could not carry is refused.
        let long = RelayMsg::ForwardTo {
            address: &[15; MAX_MOVED_ADDRESS + 1],
        };
        long.encode(&mut payload).unwrap();
        assert_eq!(
            RelayMsg::decode(&payload),
            Err(DecodeError::Invalid("address too long"))
        );
        let short = [1u8; MIN_ADDRESS_LEN - 1];
        RelayMsg::Data(&short).encode(&mut payload).unwrap();
        payload[0] = RelayCmd::FORWARD_TO.0;
        assert_eq!(
            RelayMsg::decode(&payload),
            Err(DecodeError::Invalid("address too short"))
        );
        let mut moved = vec![9u8; 16];
        moved.extend_from_slice(&short);
        RelayMsg::Data(&moved).encode(&mut payload).unwrap();
        payload[0] = RelayCmd::MOVED.0;
        assert_eq!(
            RelayMsg::decode(&payload),
            Err(DecodeError::Invalid("address too short"))
        );
        // A MOVED body truncated inside its message id.
        RelayMsg::Data(&[9u8; 15]).encode(&mut payload).unwrap();
        payload[0] = RelayCmd::MOVED.0;
        assert!(RelayMsg::decode(&payload).is_err());
        // An address that does not fit one cell is refused when encoding, never cut.
        let big = [1u8; MAX_RELAY_BODY - 15];
        let too_big = RelayMsg::Moved {
            message_id: [0; 16],
            address: &big,
        };
        assert!(too_big.encode(&mut [0; PAYLOAD_LEN]).is_err());
        let too_big = RelayMsg::ForwardTo {
            address: &[1u8; MAX_RELAY_BODY + 1],
        };
        assert!(too_big.encode(&mut [0; PAYLOAD_LEN]).is_err());
    }
}
