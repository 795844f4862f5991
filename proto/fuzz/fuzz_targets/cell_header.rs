//! Fuzzes `cell::CellHeader::from_block` on any 16-byte block and any sequence number.
//!
//! Invariants: it never panics; it accepts a block exactly when bytes 5..8 are zero and bytes
//! 8..16 are `seq` (big-endian), and then `to_block(seq)` gives the same 16 bytes back; and
//! any header `to_block` writes parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ournet_proto::cell::{CellHeader, HEADER_LEN};
use ournet_proto_fuzz::Input;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let block: [u8; HEADER_LEN] = input.array();
    // Mode bit 0: take the sequence number from the block itself, so the accepting path is
    // reached as often as the refusing one.
    let seq = if mode & 1 == 0 {
        input.u64()
    } else {
        u64::from_be_bytes(block[8..].try_into().unwrap())
    };
    let redundancy_ok = block[5..8] == [0, 0, 0] && block[8..] == seq.to_be_bytes();
    match CellHeader::from_block(&block, seq) {
        Ok(header) => {
            assert!(redundancy_ok, "accepted a block with bad redundancy");
            assert_eq!(
                header.to_block(seq),
                block,
                "accepted block is not canonical"
            );
            assert_eq!(header.cmd.0, block[4]);
            assert_eq!(
                header.circ_id.map_or(0, |c| c.get()).to_be_bytes(),
                block[..4]
            );
        }
        Err(_) => assert!(!redundancy_ok, "refused a well-formed block"),
    }
    let h = CellHeader {
        circ_id: ournet_proto::cell::CircId::new(u32::from_be_bytes(
            block[..4].try_into().unwrap(),
        )),
        cmd: ournet_proto::cell::CellCmd(block[4]),
    };
    assert_eq!(CellHeader::from_block(&h.to_block(seq), seq), Ok(h));
});
