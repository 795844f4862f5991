//! Fuzzes `relay_msg::RelayMsg::decode` on onion payloads: the input zero-padded or truncated
//! to `PAYLOAD_LEN` (what the endpoint really decodes), and the raw input at its own length.
//!
//! Invariants: it never panics; a decoded message other than DROP (whose body is ignored)
//! re-encodes into a buffer of the input's length to exactly the input bytes (one encoding per
//! message: zero tail, exact body lengths), and `decode(encode(x)) == x` into a full
//! `PAYLOAD_LEN` payload too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ournet_proto::cell::PAYLOAD_LEN;
use ournet_proto::relay_msg::RelayMsg;
use ournet_proto_fuzz::fit;

fuzz_target!(|data: &[u8]| {
    let payload: [u8; PAYLOAD_LEN] = fit(data);
    check(&payload);
    check(data);
});

fn check(payload: &[u8]) {
    let Ok(msg) = RelayMsg::decode(payload) else {
        return;
    };
    let mut same_len = vec![0xa5u8; payload.len()];
    msg.encode(&mut same_len)
        .expect("a decoded message fits its own input");
    // DROP is the one message whose body is ignored (any bytes, any length), so it has many
    // encodings; it carries nothing, and the endpoint discards it.
    if msg != RelayMsg::Drop {
        assert_eq!(same_len, payload, "encoding is not canonical");
    }
    let mut full = [0xa5u8; PAYLOAD_LEN];
    msg.encode(&mut full)
        .expect("a decoded message fits one payload");
    assert_eq!(
        RelayMsg::decode(&full),
        Ok(msg),
        "round trip changed the message"
    );
}
