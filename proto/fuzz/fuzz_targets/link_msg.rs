//! Fuzzes `link_msg::LinkMsg::decode` under every cell command: the command is the first input
//! byte (all 256 values), and the known commands are also tried on every input.
//!
//! Invariants: it never panics; only PADDING, CREATE, CREATED and DESTROY decode; a message
//! that decodes from a `LINK_MSG_LEN` body re-encodes to the same bytes (the encoding is
//! canonical: zero tail, exact lengths), and `decode(encode(x)) == x` for every decoded `x`,
//! whatever the input length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ournet_proto::cell::{CellCmd, LINK_MSG_LEN};
use ournet_proto::link_msg::LinkMsg;
use ournet_proto_fuzz::{Input, fit};

const KNOWN: [CellCmd; 5] = [
    CellCmd::PADDING,
    CellCmd::CREATE,
    CellCmd::CREATED,
    CellCmd::RELAY,
    CellCmd::DESTROY,
];

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let cmd = CellCmd(input.byte());
    let raw = input.rest();
    let body: [u8; LINK_MSG_LEN] = fit(raw);
    check(cmd, &body, true);
    check(cmd, raw, raw.len() <= LINK_MSG_LEN);
    for cmd in KNOWN {
        check(cmd, &body, true);
        check(cmd, raw, raw.len() <= LINK_MSG_LEN);
    }
});

/// Decodes `msg` as `cmd` and checks the round trip. `exact`: `msg` zero-padded to
/// `LINK_MSG_LEN` is what the encoder must write.
fn check(cmd: CellCmd, msg: &[u8], exact: bool) {
    let Ok(decoded) = LinkMsg::decode(cmd, msg) else {
        return;
    };
    assert!(
        matches!(
            cmd,
            CellCmd::PADDING | CellCmd::CREATE | CellCmd::CREATED | CellCmd::DESTROY
        ),
        "decoded a message under command {cmd:?}"
    );
    assert_eq!(decoded.cmd(), cmd);
    let mut out = [0xa5u8; LINK_MSG_LEN];
    decoded.encode(&mut out).expect("a decoded message encodes");
    if exact {
        assert_eq!(out, fit::<LINK_MSG_LEN>(msg), "encoding is not canonical");
    }
    assert_eq!(
        LinkMsg::decode(cmd, &out),
        Ok(decoded),
        "round trip changed the message"
    );
}
