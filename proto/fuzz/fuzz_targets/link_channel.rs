//! Fuzzes the framing of an established link: `link::channel::Channel::decode` on a byte
//! stream that the input builds from cells sealed by a real peer (`Channel::encode_msg`,
//! `Channel::encode`, keepalives from `handle_timeout`), raw bytes, and one-byte changes, read
//! in chunks of any size; `InCell::link_msg` on every opened cell.
//!
//! Invariants: nothing panics; `decode` gives `Ok(None)` exactly while fewer than `CELL_LEN`
//! bytes are buffered, and leaves them untouched; every opened cell took exactly `CELL_LEN`
//! bytes; while the stream holds only unmodified sealed cells, each opens in order to the
//! header and message that were sealed; a changed header or sealed body closes the link; the
//! idle timer closes exactly at `IDLE_TIMEOUT` after the last cell received.
#![no_main]

use std::collections::VecDeque;
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ournet_proto::cell::{
    BODY_LEN, CELL_LEN, CellCmd, CellHeader, CircId, HEADER_LEN, LINK_MSG_LEN,
};
use ournet_proto::link::LinkCrypto;
use ournet_proto::link::channel::{Channel, IDLE_TIMEOUT, TimeoutAction};
use ournet_proto::link_msg::{DestroyReason, LinkMsg};
use ournet_proto_fuzz::{Input, fit, t0};

const KEY_A: [u8; 32] = [0xa1; 32];
const KEY_B: [u8; 32] = [0xb2; 32];
const MAX_OPS: usize = 64;

/// The header and plaintext body each cell in the stream must open to, in order; `None` once
/// the stream holds bytes that are not unmodified sealed cells.
type Expected = Option<VecDeque<(CellHeader, Box<[u8; BODY_LEN]>)>>;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mut sender = Channel::new(LinkCrypto::from_split(&KEY_A, &KEY_B), t0());
    let mut receiver = Channel::new(LinkCrypto::from_split(&KEY_B, &KEY_A), t0());
    let mut stream = Vec::new();
    let mut expected: Expected = Some(VecDeque::new());
    let mut buf = BytesMut::new();
    let mut secs = 0u64;
    let mut last_received = 0u64;
    for _ in 0..MAX_OPS {
        if input.remaining() == 0 {
            break;
        }
        secs += u64::from(input.byte() % 8);
        let now = t0() + Duration::from_secs(secs);
        match input.byte() % 6 {
            0 => sealed_msg(&mut sender, &mut input, &mut stream, &mut expected),
            1 => sealed_raw(&mut sender, &mut input, &mut stream, &mut expected),
            2 => {
                let len = usize::from(input.u16()) % (2 * CELL_LEN);
                stream.extend_from_slice(input.take(len));
                expected = None;
            }
            3 => {
                let (pos, flip) = (usize::from(input.u16()), input.byte());
                if let Some(b) = stream.get_mut(pos) {
                    *b ^= flip;
                    if flip != 0 {
                        expected = None;
                    }
                }
            }
            4 => {
                if let Ok(Some(TimeoutAction::SendKeepalive(cell))) = sender.handle_timeout(now) {
                    stream.extend_from_slice(&cell[..]);
                    if let Some(q) = expected.as_mut() {
                        q.push_back((PADDING, Box::new([0; BODY_LEN])));
                    }
                }
                let idle = receiver.handle_timeout(now);
                let due = secs >= last_received + IDLE_TIMEOUT.as_secs();
                assert_eq!(matches!(idle, Ok(Some(TimeoutAction::Close))), due);
            }
            _ => {
                // Deliver the next chunk of the stream to the receiver and read all it can.
                let n = usize::from(input.u16()) % (3 * CELL_LEN);
                let n = n.min(stream.len());
                buf.extend_from_slice(&stream[..n]);
                stream.drain(..n);
                if !read_all(
                    &mut receiver,
                    &mut buf,
                    &mut expected,
                    now,
                    &mut last_received,
                    secs,
                ) {
                    return;
                }
            }
        }
    }
});

const PADDING: CellHeader = CellHeader {
    circ_id: None,
    cmd: CellCmd::PADDING,
};

/// Decodes every whole cell in `buf`. Returns `false` once the link is closed.
fn read_all(
    receiver: &mut Channel,
    buf: &mut BytesMut,
    expected: &mut Expected,
    now: std::time::Instant,
    last_received: &mut u64,
    secs: u64,
) -> bool {
    loop {
        let before = buf.clone();
        match receiver.decode(now, buf) {
            Ok(None) => {
                assert!(
                    before.len() < CELL_LEN,
                    "a whole cell was left in the buffer"
                );
                assert_eq!(*buf, before, "Ok(None) changed the buffer");
                return true;
            }
            Ok(Some(cell)) => {
                assert_eq!(buf.len() + CELL_LEN, before.len());
                assert_eq!(cell.cell.len(), CELL_LEN);
                *last_received = secs;
                let msg = cell.link_msg();
                if cell.header.cmd.is_onion() {
                    assert!(msg.is_err(), "a RELAY cell gave a link message");
                }
                if let Some(q) = expected.as_mut() {
                    let (header, body) = q.pop_front().expect("a cell that was never sealed");
                    assert_eq!(cell.header, header);
                    // A RELAY body passes as it is; a sealed body opens to its message.
                    let end = if header.cmd.is_onion() {
                        BODY_LEN
                    } else {
                        LINK_MSG_LEN
                    };
                    assert_eq!(cell.cell[HEADER_LEN..HEADER_LEN + end], body[..end]);
                }
            }
            Err(_) => {
                assert!(expected.is_none(), "an unmodified stream closed the link");
                return false;
            }
        }
    }
}

/// A link message sealed with `encode_msg`.
fn sealed_msg(
    sender: &mut Channel,
    input: &mut Input<'_>,
    stream: &mut Vec<u8>,
    expected: &mut Expected,
) {
    let circ_id = CircId::new(u32::from(input.u16()));
    let len = usize::from(input.byte());
    let hdata = input.take(len).to_vec();
    let msg = match input.byte() % 4 {
        0 => LinkMsg::Padding,
        1 => LinkMsg::Create {
            htype: input.u16(),
            hdata: &hdata,
        },
        2 => LinkMsg::Created { hdata: &hdata },
        _ => LinkMsg::Destroy(DestroyReason(input.byte())),
    };
    let cell = sender.encode_msg(t0(), circ_id, &msg).unwrap();
    let mut encoded = [0u8; LINK_MSG_LEN];
    msg.encode(&mut encoded).unwrap();
    let mut body = Box::new([0u8; BODY_LEN]);
    body[..LINK_MSG_LEN].copy_from_slice(&encoded);
    stream.extend_from_slice(&cell);
    if let Some(q) = expected.as_mut() {
        let header = CellHeader {
            circ_id,
            cmd: msg.cmd(),
        };
        q.push_back((header, body));
    }
}

/// A cell of any command, with a body from the input, sealed with `encode`.
fn sealed_raw(
    sender: &mut Channel,
    input: &mut Input<'_>,
    stream: &mut Vec<u8>,
    expected: &mut Expected,
) {
    let header = CellHeader {
        circ_id: CircId::new(u32::from(input.u16())),
        cmd: CellCmd(input.byte()),
    };
    let mut cell = [0u8; CELL_LEN];
    let len = usize::from(input.u16()) % BODY_LEN;
    let body = input.take(len);
    cell[HEADER_LEN..HEADER_LEN + body.len()].copy_from_slice(body);
    let plain = Box::new(fit::<BODY_LEN>(body));
    sender.encode(t0(), header, &mut cell).unwrap();
    stream.extend_from_slice(&cell);
    if let Some(q) = expected.as_mut() {
        q.push_back((header, plain));
    }
}
