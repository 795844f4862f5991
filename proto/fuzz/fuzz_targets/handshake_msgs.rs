//! Fuzzes the circuit handshake messages: `handshake::ClientHello::decode` and
//! `handshake::RelayReply::decode` on arbitrary bytes, and `handshake::relay_handshake` with a
//! fixed relay identity and onion keys on fuzzed ClientHello bytes; then a real client
//! handshake finished on a possibly modified reply.
//!
//! Invariants: nothing panics; a decoded message re-encodes to its input; the relay refuses a
//! hello for another identity or onion key and accepts any other (small-order keys give an
//! error, not a panic); an unmodified reply finishes the client's handshake with keys that
//! match the relay's, and a reply with any byte changed is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ournet_proto::cell::{PAYLOAD_LEN, TAG_AREA_LEN};
use ournet_proto::handshake::{
    CLIENT_MSG_LEN, ClientHandshake, ClientHello, HandshakeError, RELAY_MSG_LEN, RelayReply,
    relay_handshake,
};
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_proto::onion::{ClientCircuitCrypto, HopKeys, RelayHopCrypto};
use ournet_proto_fuzz::{Input, encryption_key, identity, rng};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct Relay {
    identity: IdentityKeypair,
    current: EncryptionKeypair,
    previous: EncryptionKeypair,
}

fuzz_target!(|data: &[u8]| {
    let relay = Relay {
        identity: identity(1),
        current: encryption_key(1),
        previous: encryption_key(2),
    };
    let mut input = Input::new(data);
    let mode = input.byte();
    match mode % 3 {
        0 => decode_both(input.rest()),
        1 => relay_side(&relay, mode, &mut input),
        _ => full_handshake(&relay, &mut input),
    }
});

fn decode_both(bytes: &[u8]) {
    if let Ok(hello) = ClientHello::decode(bytes) {
        let mut out = Vec::new();
        hello.encode(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(out.len(), CLIENT_MSG_LEN);
    }
    if let Ok(reply) = RelayReply::decode(bytes) {
        let mut out = Vec::new();
        reply.encode(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(out.len(), RELAY_MSG_LEN);
    }
}

/// The relay answers fuzzed hello bytes. Mode bits choose whether the input is cut to the hello
/// length and the identity and onion key fields overwritten with the right ones, so that the
/// fuzzer reaches the key agreement with its own client key.
fn relay_side(relay: &Relay, mode: u8, input: &mut Input<'_>) {
    let seed = input.u64();
    let mut bytes = input.rest().to_vec();
    if mode & 0x80 != 0 {
        bytes.resize(CLIENT_MSG_LEN, 0);
    }
    if bytes.len() >= CLIENT_MSG_LEN {
        if mode & 0x10 != 0 {
            bytes[..32].copy_from_slice(&relay.identity.public().to_bytes());
        }
        match (mode >> 5) & 3 {
            1 => bytes[32..64].copy_from_slice(&relay.current.public().0),
            2 => bytes[32..64].copy_from_slice(&relay.previous.public().0),
            _ => {}
        }
    }
    let Ok(hello) = ClientHello::decode(&bytes) else {
        return;
    };
    let keys = [&relay.current, &relay.previous];
    let result = relay_handshake(&mut rng(seed), &relay.identity.public(), &keys, &hello);
    let right_id = hello.relay_id == relay.identity.public().to_bytes();
    let known_key = keys.iter().any(|k| k.public() == hello.onion_key);
    match result {
        Ok((reply, _)) => {
            assert!(right_id && known_key, "accepted a hello for someone else");
            let mut out = Vec::new();
            reply.encode(&mut out);
            assert_eq!(RelayReply::decode(&out), Ok(reply));
        }
        Err(HandshakeError::WrongIdentity) => assert!(!right_id),
        Err(HandshakeError::UnknownOnionKey) => assert!(right_id && !known_key),
        Err(HandshakeError::SmallOrderKey) => assert!(right_id && known_key),
        Err(e) => panic!("unexpected relay error {e:?}"),
    }
}

/// A real client and relay; the reply may be modified at one byte before the client sees it.
fn full_handshake(relay: &Relay, input: &mut Input<'_>) {
    let client_seed: [u8; 32] = input.array();
    let relay_seed = input.u64();
    let flip_at = input.byte();
    let flip = input.byte();
    let use_previous = input.byte() & 1 == 1;
    let onion = if use_previous {
        &relay.previous
    } else {
        &relay.current
    };
    let (client, hello) = ClientHandshake::start(
        &mut ChaCha20Rng::from_seed(client_seed),
        relay.identity.public(),
        onion.public(),
    );
    let mut hello_bytes = Vec::new();
    hello.encode(&mut hello_bytes);
    let hello = ClientHello::decode(&hello_bytes).expect("our own hello decodes");
    let keys = [&relay.current, &relay.previous];
    let (reply, relay_keys) = relay_handshake(
        &mut rng(relay_seed),
        &relay.identity.public(),
        &keys,
        &hello,
    )
    .expect("the relay accepts a real client");
    let mut reply_bytes = Vec::new();
    reply.encode(&mut reply_bytes);
    let pos = usize::from(flip_at) % RELAY_MSG_LEN;
    reply_bytes[pos] ^= flip;
    let reply = RelayReply::decode(&reply_bytes).expect("64 bytes decode");
    match client.finish(&reply) {
        Ok(client_keys) => {
            assert_eq!(flip, 0, "the client accepted a modified reply");
            assert_keys_match(client_keys, relay_keys);
        }
        Err(e) => assert_ne!(flip, 0, "the client refused the real reply: {e:?}"),
    }
}

/// A cell sealed with the client's keys peels with the relay's.
fn assert_keys_match(client_keys: HopKeys, relay_keys: HopKeys) {
    let mut client = ClientCircuitCrypto::new();
    client.push_hop(client_keys).unwrap();
    let mut relay = RelayHopCrypto::new(relay_keys);
    let mut body = vec![0u8; TAG_AREA_LEN + PAYLOAD_LEN];
    body[TAG_AREA_LEN..].fill(0x42);
    client.seal_forward(&mut body, &mut rng(0)).unwrap();
    relay
        .peel_forward(&mut body)
        .expect("client and relay keys agree");
    assert!(body[TAG_AREA_LEN..].iter().all(|&b| b == 0x42));
}
