//! Link messages: the plaintext of link-sealed (non-RELAY) cell bodies (PROTOCOL.md §4.3).
//!
//! ```text
//! CREATE   | htype u16 | hlen u16 | hdata[hlen] | zeros to LINK_MSG_LEN |
//! CREATED  | hlen u16 | hdata[hlen] | zeros |
//! DESTROY  | reason u8 | zeros |
//! PADDING  | zeros |
//! ```
//!
//! The unused tail must be zero: a parser that ignored it would give a covert channel.
#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use crate::cell::{CellCmd, LINK_MSG_LEN};
use crate::codec::{DecodeError, EncodeError, Reader, Writer};

/// Most bytes of handshake data a CREATE or CREATED carries.
pub const MAX_HANDSHAKE_DATA: usize = 512;

/// Why a circuit was destroyed; carried in DESTROY so each side can count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DestroyReason(pub u8);

impl DestroyReason {
    /// No reason given / normal close.
    pub const NONE: Self = Self(0);
    /// A protocol violation (bad message, bad state).
    pub const PROTOCOL: Self = Self(1);
    /// An onion integrity failure (tampering, replay, reorder).
    pub const INTEGRITY: Self = Self(2);
    /// The relay is out of resources (circuit or memory cap).
    pub const RESOURCE_LIMIT: Self = Self(3);
    /// The next hop could not be reached.
    pub const CONNECT_FAILED: Self = Self(4);
    /// The handshake failed.
    pub const HANDSHAKE: Self = Self(5);
    /// The circuit timed out.
    pub const TIMEOUT: Self = Self(6);
    /// The relay is shutting down.
    pub const SHUTDOWN: Self = Self(7);
}

/// A decoded link message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkMsg<'a> {
    /// Create a circuit hop.
    Create {
        /// Handshake type (`handshake::HANDSHAKE_TYPE_NTOR_V1`).
        htype: u16,
        /// The client's handshake message.
        hdata: &'a [u8],
    },
    /// The relay's answer.
    Created {
        /// The relay's handshake reply.
        hdata: &'a [u8],
    },
    /// Tear down the circuit.
    Destroy(DestroyReason),
    /// Link padding: dropped.
    Padding,
}

impl<'a> LinkMsg<'a> {
    /// The cell command that carries this message.
    pub fn cmd(&self) -> CellCmd {
        match self {
            Self::Create { .. } => CellCmd::CREATE,
            Self::Created { .. } => CellCmd::CREATED,
            Self::Destroy(_) => CellCmd::DESTROY,
            Self::Padding => CellCmd::PADDING,
        }
    }

    /// Parses the message of a cell with command `cmd` from its opened body.
    ///
    /// # Errors
    /// [`DecodeError`] for an unknown or RELAY command, a bad length or a non-zero tail.
    pub fn decode(cmd: CellCmd, msg: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(msg);
        let out = match cmd {
            CellCmd::CREATE => {
                let htype = r.take_u16("htype")?;
                Self::Create {
                    htype,
                    hdata: r.take_u16_prefixed(MAX_HANDSHAKE_DATA, "hdata")?,
                }
            }
            CellCmd::CREATED => Self::Created {
                hdata: r.take_u16_prefixed(MAX_HANDSHAKE_DATA, "hdata")?,
            },
            CellCmd::DESTROY => Self::Destroy(DestroyReason(r.take_u8("reason")?)),
            CellCmd::PADDING => Self::Padding,
            _ => return Err(DecodeError::Invalid("link command")),
        };
        expect_zero_tail(r)?;
        Ok(out)
    }

    /// Writes the message into `out` (the [`LINK_MSG_LEN`] bytes of a body), zero-filling the
    /// rest.
    ///
    /// # Errors
    /// [`EncodeError::TooLong`] if handshake data exceeds [`MAX_HANDSHAKE_DATA`].
    pub fn encode(&self, out: &mut [u8; LINK_MSG_LEN]) -> Result<(), EncodeError> {
        let mut buf = Vec::with_capacity(64);
        let mut w = Writer::new(&mut buf);
        match self {
            Self::Create { htype, hdata } => {
                check_len(hdata)?;
                w.put_u16(*htype).put_u16_prefixed(hdata, "hdata")?;
            }
            Self::Created { hdata } => {
                check_len(hdata)?;
                w.put_u16_prefixed(hdata, "hdata")?;
            }
            Self::Destroy(reason) => {
                w.put_u8(reason.0);
            }
            Self::Padding => {}
        }
        out.fill(0);
        let dst = out.get_mut(..buf.len()).ok_or(EncodeError::TooLong {
            what: "link message",
            len: buf.len(),
            max: LINK_MSG_LEN,
        })?;
        dst.copy_from_slice(&buf);
        Ok(())
    }
}

fn check_len(hdata: &[u8]) -> Result<(), EncodeError> {
    if hdata.len() > MAX_HANDSHAKE_DATA {
        return Err(EncodeError::TooLong {
            what: "hdata",
            len: hdata.len(),
            max: MAX_HANDSHAKE_DATA,
        });
    }
    Ok(())
}

/// Ends a padded message: every remaining byte must be zero.
pub(crate) fn expect_zero_tail(mut r: Reader<'_>) -> Result<(), DecodeError> {
    if r.take_rest().iter().any(|&b| b != 0) {
        return Err(DecodeError::Invalid("non-zero padding"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, reason = "test code")]

    use super::*;

    #[test]
    fn every_message_round_trips() {
        let msgs = [
            LinkMsg::Create {
                htype: 1,
                hdata: &[9u8; 96],
            },
            LinkMsg::Created { hdata: &[8u8; 64] },
            LinkMsg::Destroy(DestroyReason::INTEGRITY),
            LinkMsg::Padding,
        ];
        for msg in msgs {
            let mut buf = [0xffu8; LINK_MSG_LEN];
            msg.encode(&mut buf).unwrap();
            assert_eq!(LinkMsg::decode(msg.cmd(), &buf).unwrap(), msg);
        }
    }

    #[test]
    fn bad_messages_are_errors() {
        let mut buf = [0u8; LINK_MSG_LEN];
        LinkMsg::Created { hdata: &[1, 2, 3] }
            .encode(&mut buf)
            .unwrap();
        buf[LINK_MSG_LEN - 1] = 1;
        assert_eq!(
            LinkMsg::decode(CellCmd::CREATED, &buf),
            Err(DecodeError::Invalid("non-zero padding"))
        );
        let mut buf = [0u8; LINK_MSG_LEN];
        buf[2] = 0x02;
        buf[3] = 0x01; // hlen 513
        assert!(matches!(
            LinkMsg::decode(CellCmd::CREATE, &buf),
            Err(DecodeError::TooLong { .. })
        ));
        assert!(LinkMsg::decode(CellCmd::RELAY, &buf).is_err());
        assert!(LinkMsg::decode(CellCmd(0x77), &buf).is_err());
        assert!(LinkMsg::decode(CellCmd::DESTROY, &[]).is_err());
        let big = [0u8; MAX_HANDSHAKE_DATA + 1];
        assert!(
            LinkMsg::Create {
                htype: 1,
                hdata: &big
            }
            .encode(&mut [0; LINK_MSG_LEN])
            .is_err()
        );
    }
}
