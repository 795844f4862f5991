//! Fuzzes per-cell link protection: `link::LinkCrypto::open` and `open_batch` with fixed keys,
//! on arbitrary cells and on cells a real peer sealed and the input then modified.
//!
//! Invariants: nothing panics; `open` one by one and `open_batch` agree exactly (same headers,
//! same error at the same index, same bytes left in the cells); an unmodified sealed cell opens
//! to its header and message; a change to a header block, or to the sealed body of a non-RELAY
//! cell, is refused (RELAY bodies are the onion layer's to check, so they pass unchanged).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ournet_proto::cell::{CELL_LEN, CellCmd, CellHeader, CircId, HEADER_LEN, LINK_MSG_LEN};
use ournet_proto::link::{LinkCrypto, LinkError};
use ournet_proto_fuzz::{Input, fit};

const KEY_A: [u8; 32] = [0xa1; 32];
const KEY_B: [u8; 32] = [0xb2; 32];
const MAX_CELLS: usize = 40;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let cells = if mode & 1 == 0 {
        raw_cells(&mut input)
    } else {
        sealed_cells(&mut input)
    };
    let (mut one, mut batch) = (receiver(), receiver());
    let mut by_one = cells.iter().map(|(c, _)| *c).collect::<Vec<_>>();
    let mut by_batch = by_one.clone();
    let mut headers_one = Vec::new();
    let mut failure = None;
    for (i, cell) in by_one.iter_mut().enumerate() {
        match one.open(cell) {
            Ok(h) => headers_one.push(h),
            Err(e) => {
                failure = Some((i, e));
                break;
            }
        }
    }
    let mut headers_batch = Vec::new();
    let batch_result = batch.open_batch(&mut by_batch, &mut headers_batch);
    assert_eq!(headers_one, headers_batch);
    assert_eq!(batch_result.err(), failure);
    // Only cells up to the failure are processed; compare those (a failed body may be garbage).
    let done = failure.map_or(cells.len(), |(i, _)| i);
    assert_eq!(by_one[..done], by_batch[..done]);
    for (i, (_, expect)) in cells.iter().enumerate().take(done + 1) {
        let Some(expect) = expect else { continue };
        check_expectation(i, expect, headers_one.get(i), &by_one[i], failure);
    }
});

/// What a sealed cell must do when opened.
enum Expect {
    /// Untouched (or only its RELAY body changed): opens to this header; a non-RELAY message
    /// is these bytes.
    Opens(CellHeader, Box<[u8; CELL_LEN]>),
    /// The header block was changed.
    ForgedHeader,
    /// A non-RELAY sealed body (message or tag) was changed.
    ForgedBody,
}

fn check_expectation(
    i: usize,
    expect: &Expect,
    header: Option<&CellHeader>,
    opened: &[u8; CELL_LEN],
    failure: Option<(usize, LinkError)>,
) {
    match expect {
        Expect::Opens(h, plain) => {
            assert_eq!(header, Some(h), "cell {i} did not open");
            // A RELAY body is passed as it is; a sealed body opens to its message (the tag
            // bytes after it are left as they arrived).
            let end = if h.cmd.is_onion() {
                CELL_LEN
            } else {
                HEADER_LEN + LINK_MSG_LEN
            };
            assert_eq!(
                opened[HEADER_LEN..end],
                plain[HEADER_LEN..end],
                "cell {i} body differs"
            );
        }
        Expect::ForgedHeader => assert_eq!(failure, Some((i, LinkError::ForgedHeader))),
        Expect::ForgedBody => assert_eq!(failure, Some((i, LinkError::ForgedBody))),
    }
}

fn receiver() -> LinkCrypto {
    LinkCrypto::from_split(&KEY_B, &KEY_A)
}

/// Up to `MAX_CELLS` cells cut from the input, the last zero-padded.
fn raw_cells(input: &mut Input<'_>) -> Vec<([u8; CELL_LEN], Option<Expect>)> {
    let mut cells = Vec::new();
    while input.remaining() > 0 && cells.len() < MAX_CELLS {
        cells.push((fit(input.take(CELL_LEN)), None));
    }
    cells
}

/// Cells sealed by the real peer, each possibly modified at one byte. Per cell the input gives
/// a command, a circuit id, a flip position and value, and a short message.
fn sealed_cells(input: &mut Input<'_>) -> Vec<([u8; CELL_LEN], Option<Expect>)> {
    let mut sender = LinkCrypto::from_split(&KEY_A, &KEY_B);
    let mut cells = Vec::new();
    while input.remaining() > 0 && cells.len() < MAX_CELLS {
        let cmd = CellCmd(input.byte());
        let circ_id = CircId::new(u32::from(input.u16()));
        let pos = usize::from(input.u16()) % CELL_LEN;
        let flip = input.byte();
        let len = usize::from(input.byte());
        let header = CellHeader { circ_id, cmd };
        let mut cell = [0u8; CELL_LEN];
        let msg = input.take(len);
        cell[HEADER_LEN..HEADER_LEN + msg.len()].copy_from_slice(msg);
        if cmd.is_onion() {
            cell[CELL_LEN - msg.len()..].copy_from_slice(msg);
        }
        let plain = Box::new(cell);
        sender
            .seal(header, &mut cell)
            .expect("sequence far from exhausted");
        cell[pos] ^= flip;
        let expect = if flip == 0 {
            Expect::Opens(header, plain)
        } else if pos < HEADER_LEN {
            Expect::ForgedHeader
        } else if cmd.is_onion() {
            let mut changed = plain;
            changed[pos] ^= flip;
            Expect::Opens(header, changed)
        } else {
            assert!(pos < HEADER_LEN + LINK_MSG_LEN + 16);
            Expect::ForgedBody
        };
        cells.push((cell, Some(expect)));
    }
    cells
}
