//! Fuzzes the circuit state machines on what a peer can send once a circuit is up:
//! `circuit::RelayCircuit::handle_forward` at the last hop with relay payloads from a (possibly
//! malicious) client, sealed with the real circuit keys so that they reach `consume`, plus
//! `handle_created`, `handle_backward` and the adapter calls in any order; and
//! `circuit::ClientCircuit::handle_backward` with payloads sealed by the real relay, plus the
//! client's own calls in any order.
//!
//! Invariants: nothing panics; a changed cell destroys the circuit as an integrity failure; a
//! relay forwards exactly when it has a next hop, and refuses cells while extending; once
//! extended it originates nothing more; every cell either side originates opens at the other
//! end and decodes as a relay message; the bytes a relay holds for a circuit stay under its
//! caps.
#![no_main]

use std::net::SocketAddr;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use ournet_proto::cell::{BODY_LEN, PAYLOAD_LEN, TAG_AREA_LEN};
use ournet_proto::circuit::{
    CircuitError, ClientCircuit, ForwardAction, MAX_CONTROL_QUEUE, MAX_QUEUED_BYTES, PathHop,
    RelayCircuit, home_auth_message,
};
use ournet_proto::frag::MAX_MESSAGE_LEN;
use ournet_proto::handshake::{
    ClientHandshake, ClientHello, HANDSHAKE_TYPE_NTOR_V1, RelayReply, relay_handshake,
};
use ournet_proto::onion::{ClientCircuitCrypto, RelayHopCrypto};
use ournet_proto::relay_msg::{DeliveryStatus, MAX_RELAY_BODY, RelayMsg};
use ournet_proto_fuzz::{Input, encryption_key, identity, rng, t0};
use rand_chacha::ChaCha20Rng;

const BINDING: [u8; 32] = [0x5b; 32];
const MAX_OPS: usize = 48;
/// More than any op sequence here can make a side originate.
const MAX_POLLS: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let mut rng = rng(input.u64());
    if mode & 1 == 0 {
        relay_side(&mut rng, &mut input);
    } else {
        client_side(&mut rng, &mut input);
    }
});

/// A relay payload from the input: a command (known or not) and a body, well framed, or the
/// raw input bytes.
fn payload(input: &mut Input<'_>) -> Box<[u8; PAYLOAD_LEN]> {
    let mut p = Box::new([0u8; PAYLOAD_LEN]);
    let kind = input.byte();
    let len = usize::from(input.u16()) % (MAX_RELAY_BODY + 1);
    let body = input.take(len);
    if kind & 0x80 != 0 {
        p[..body.len()].copy_from_slice(body);
    } else {
        p[0] = kind % 14;
        p[1..3].copy_from_slice(&(body.len() as u16).to_be_bytes());
        p[3..3 + body.len()].copy_from_slice(body);
    }
    p
}

fn body_with(payload: &[u8; PAYLOAD_LEN]) -> Vec<u8> {
    let mut body = vec![0u8; BODY_LEN];
    body[TAG_AREA_LEN..].copy_from_slice(payload);
    body
}

fn relay_side(rng: &mut ChaCha20Rng, input: &mut Input<'_>) {
    let relay_id = identity(1);
    let onion = encryption_key(1);
    let (hs, hello) = ClientHandshake::start(rng, relay_id.public(), onion.public());
    let mut hdata = Vec::new();
    hello.encode(&mut hdata);
    let (mut relay, created) = RelayCircuit::accept_create(
        rng,
        &relay_id.public(),
        &[&onion],
        HANDSHAKE_TYPE_NTOR_V1,
        &hdata,
        BINDING,
    )
    .expect("a real CREATE is accepted");
    let keys = hs.finish(&RelayReply::decode(&created).unwrap()).unwrap();
    let mut client = ClientCircuitCrypto::new();
    client.push_hop(keys).unwrap();
    let mut extending = false;
    for _ in 0..MAX_OPS {
        if input.remaining() == 0 {
            return;
        }
        let had_next = relay.has_next();
        match input.byte() % 8 {
            op @ 0..=2 => {
                let p = if op == 2 {
                    home_auth(input)
                } else {
                    payload(input)
                };
                let mut body = body_with(&p);
                client.seal_forward(&mut body, rng).unwrap();
                match relay.handle_forward(&mut body) {
                    ForwardAction::Forward => assert!(had_next),
                    ForwardAction::Consumed => assert!(!had_next && !extending),
                    ForwardAction::Destroy(e) => {
                        assert!(!had_next, "a relay with a next hop refused a cell: {e:?}");
                        assert_ne!(e, CircuitError::Integrity);
                        return;
                    }
                }
            }
            3 => {
                let mut body = body_with(&payload(input));
                client.seal_forward(&mut body, rng).unwrap();
                let pos = usize::from(input.u16()) % BODY_LEN;
                body[pos] ^= input.byte() | 1;
                assert_eq!(
                    relay.handle_forward(&mut body),
                    ForwardAction::Destroy(CircuitError::Integrity)
                );
                return;
            }
            4 => {
                let len = usize::from(input.byte());
                let hdata = input.take(len).to_vec();
                let result = relay.handle_created(&hdata);
                assert_eq!(result.is_ok(), extending);
                extending = false;
            }
            5 => {
                let _ = relay.extend_failed();
                extending = false;
            }
            6 => adapter_call(&mut relay, input),
            _ => {
                let mut body = input.take(BODY_LEN).to_vec();
                body.resize(BODY_LEN, 0);
                let result = relay.handle_backward(&mut body);
                assert_eq!(result.is_ok(), had_next);
            }
        }
        while let Some(event) = relay.poll_event() {
            if matches!(event, ournet_proto::circuit::RelayEvent::Extend { .. }) {
                extending = true;
            }
        }
        drain_backward(&mut relay, &mut client);
        let cap = MAX_MESSAGE_LEN + MAX_QUEUED_BYTES + MAX_CONTROL_QUEUE * PAYLOAD_LEN;
        assert!(relay.buffered_bytes() <= cap);
    }
}

/// Lengths up to one BEGIN plus one DATA cell, so delivering needs two cells.
fn adapter_call(relay: &mut RelayCircuit, input: &mut Input<'_>) {
    let id: [u8; 16] = input.array();
    let _ = match input.byte() % 4 {
        0 => {
            let len = usize::from(input.u16()) % (2 * PAYLOAD_LEN);
            relay.deliver(id, vec![0xd5; len]).map_err(|r| r.error)
        }
        1 => relay.send_status(id, DeliveryStatus(input.byte())),
        2 => relay.send_ack(id, input.array()),
        _ => relay.send_home_authed(u32::from(input.u16())),
    };
}

/// A HOME_AUTH payload signed by a fixed identity, over this link's binding or another.
fn home_auth(input: &mut Input<'_>) -> Box<[u8; PAYLOAD_LEN]> {
    let flags = input.byte();
    let node = identity(2 + (flags & 1));
    let binding = if flags & 2 == 0 { BINDING } else { [0; 32] };
    let msg = RelayMsg::HomeAuth {
        identity: node.public().to_bytes(),
        signature: node.sign(&home_auth_message(&binding)).0,
    };
    let mut p = Box::new([0u8; PAYLOAD_LEN]);
    msg.encode(&mut p[..]).unwrap();
    p
}

/// Every cell the relay originates must open at the client and decode.
fn drain_backward(relay: &mut RelayCircuit, client: &mut ClientCircuitCrypto) {
    for _ in 0..MAX_POLLS {
        let mut body = vec![0u8; BODY_LEN];
        if !relay.poll_backward(&mut body).expect("poll_backward") {
            return;
        }
        assert!(!relay.has_next(), "an extended relay originated a cell");
        client
            .open_backward(&mut body)
            .expect("the relay's own cell opens at the client");
        RelayMsg::decode(&body[TAG_AREA_LEN..]).expect("the relay's own cell decodes");
    }
    panic!("the relay never stopped originating cells");
}

fn client_side(rng: &mut ChaCha20Rng, input: &mut Input<'_>) {
    let relay_id = identity(1);
    let onion = encryption_key(1);
    let hop = PathHop {
        identity: relay_id.public(),
        onion_key: onion.public(),
        link_key: encryption_key(2).public(),
        addr: SocketAddr::from(([127, 0, 0, 1], 9001)),
    };
    let (mut circuit, _, hdata) = ClientCircuit::build(rng, t0(), vec![hop]).unwrap();
    let hello = ClientHello::decode(&hdata).unwrap();
    let (reply, keys) = relay_handshake(rng, &relay_id.public(), &[&onion], &hello).unwrap();
    let mut relay = RelayHopCrypto::new(keys);
    let mut created = Vec::new();
    reply.encode(&mut created);
    circuit.handle_created(rng, &created).unwrap();
    assert!(circuit.is_open());
    for _ in 0..MAX_OPS {
        if input.remaining() == 0 {
            return;
        }
        match input.byte() % 5 {
            op @ 0..=1 => {
                let mut body = body_with(&payload(input));
                relay.seal_backward(&mut body).unwrap();
                if op == 1 {
                    let pos = usize::from(input.u16()) % BODY_LEN;
                    body[pos] ^= input.byte() | 1;
                    let result = circuit.handle_backward(rng, &mut body);
                    assert_eq!(result, Err(CircuitError::Integrity));
                    return;
                }
                if circuit.handle_backward(rng, &mut body).is_err() {
                    return;
                }
            }
            2 => {
                let id: [u8; 16] = input.array();
                let _ = match input.byte() % 5 {
                    0 => {
                        let len = usize::from(input.u16()) % (2 * PAYLOAD_LEN);
                        circuit.send_message(id, [7; 32], vec![0xc1; len])
                    }
                    1 => circuit.send_ack(id, input.array()),
                    2 => circuit.send_ping(input.u64()),
                    3 => circuit.send_padding(),
                    _ => circuit.home_auth(&identity(2), &BINDING),
                };
            }
            3 => {
                let now = t0() + Duration::from_secs(input.u16().into());
                assert_eq!(
                    circuit.handle_timeout(now),
                    Ok(()),
                    "a built circuit timed out"
                );
            }
            _ => {
                // A backward cell from a relay that is not on the circuit: refused.
                let mut body = input.take(BODY_LEN).to_vec();
                body.resize(BODY_LEN, 0);
                match circuit.handle_backward(rng, &mut body) {
                    Err(CircuitError::Integrity) => return,
                    other => panic!("a foreign backward cell: {other:?}"),
                }
            }
        }
        while circuit.poll_event().is_some() {}
        drain_forward(&mut circuit, &mut relay, rng);
    }
}

/// Every cell the client originates must peel at the relay and decode.
fn drain_forward(circuit: &mut ClientCircuit, relay: &mut RelayHopCrypto, rng: &mut ChaCha20Rng) {
    for _ in 0..MAX_POLLS {
        let mut body = vec![0u8; BODY_LEN];
        if !circuit.poll_forward(rng, &mut body).expect("poll_forward") {
            return;
        }
        relay
            .peel_forward(&mut body)
            .expect("the client's own cell peels at the relay");
        RelayMsg::decode(&body[TAG_AREA_LEN..]).expect("the client's own cell decodes");
    }
    panic!("the client never stopped originating cells");
}
