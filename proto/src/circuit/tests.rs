//! In-memory network tests: a client, relays and links wired together with no sockets, a
//! simulated clock, and hooks to tamper with cells on the wire.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, reason = "test code")]

use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::cell::{BODY_LEN, CELL_LEN, CellCmd, CellHeader, CircId, HEADER_LEN};
use crate::envelope::{decrypt_message, encrypt_message_with_ack};
use crate::keys::{EncryptionKeypair, IdentityKeypair};
use crate::link::LinkCrypto;
use crate::link_msg::DestroyReason;
use crate::relay_msg::DeliveryStatus;
use crate::test_util::t0;

/// A relay's long-term keys.
struct RelayKeys {
    id: IdentityKeypair,
    onion: EncryptionKeypair,
    link: EncryptionKeypair,
    port: u16,
}

impl RelayKeys {
    fn new(rng: &mut ChaCha20Rng, port: u16) -> Self {
        Self {
            id: IdentityKeypair::generate(rng),
            onion: EncryptionKeypair::generate(rng),
            link: EncryptionKeypair::generate(rng),
            port,
        }
    }

    fn hop(&self) -> PathHop {
        PathHop {
            identity: self.id.public(),
            onion_key: self.onion.public(),
            link_key: self.link.public(),
            addr: ([127, 0, 0, 1], self.port).into(),
        }
    }
}

/// One circuit through a chain of relays: link `i` joins node `i` (the client is node 0) and
/// relay `i`.
struct Chain<'k> {
    rng: ChaCha20Rng,
    keys: Vec<&'k RelayKeys>,
    client: ClientCircuit,
    relays: Vec<Option<RelayCircuit>>,
    links: Vec<(LinkCrypto, LinkCrypto)>,
    bindings: Vec<[u8; 32]>,
    wire_lengths: Vec<usize>,
    tamper: Option<(usize, usize)>,
    relay_events: Vec<(usize, RelayEvent)>,
    destroyed: Vec<(usize, CircuitError)>,
    /// Relay index that no EXTEND can reach (a dead relay).
    unreachable: Option<usize>,
}

impl<'k> Chain<'k> {
    fn build(seed: u64, keys: Vec<&'k RelayKeys>, now: Instant) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let path = keys.iter().map(|k| k.hop()).collect();
        let (client, htype, hdata) = ClientCircuit::build(&mut rng, now, path).unwrap();
        let n = keys.len();
        let links = (0..n)
            .map(|i| {
                let (a, b) = ([i as u8; 32], [i as u8 ^ 0xff; 32]);
                (
                    LinkCrypto::from_split(&a, &b),
                    LinkCrypto::from_split(&b, &a),
                )
            })
            .collect();
        let bindings = (0..n).map(|i| [i as u8 + 100; 32]).collect();
        let mut chain = Self {
            rng,
            keys,
            client,
            relays: (0..n).map(|_| None).collect(),
            links,
            bindings,
            wire_lengths: Vec::new(),
            tamper: None,
            relay_events: Vec::new(),
            destroyed: Vec::new(),
            unreachable: None,
        };
        let created = chain.create_at(0, htype, &hdata);
        chain
            .client
            .handle_created(&mut chain.rng, &created)
            .unwrap();
        chain
    }

    /// Sends CREATE over link `i` and returns the CREATED data, as the wire carries them.
    fn create_at(&mut self, i: usize, htype: u16, hdata: &[u8]) -> Vec<u8> {
        let k = self.keys[i];
        self.transit_link_msg(i, CellCmd::CREATE);
        let (circuit, created) = RelayCircuit::accept_create(
            &mut self.rng,
            &k.id.public(),
            &[&k.onion],
            htype,
            hdata,
            self.bindings[i],
        )
        .unwrap();
        self.relays[i] = Some(circuit);
        self.transit_link_msg(i, CellCmd::CREATED);
        created
    }

    /// Runs a link-sealed cell of `cmd` across link `i`, recording its wire length.
    fn transit_link_msg(&mut self, i: usize, cmd: CellCmd) {
        let mut cell = [0u8; CELL_LEN];
        let header = CellHeader {
            circ_id: CircId::new(7),
            cmd,
        };
        let (a, b) = &mut self.links[i];
        if cmd == CellCmd::CREATED {
            b.seal(header, &mut cell).unwrap();
            assert_eq!(a.open(&mut cell).unwrap(), header);
        } else {
            a.seal(header, &mut cell).unwrap();
            assert_eq!(b.open(&mut cell).unwrap(), header);
        }
        self.wire_lengths.push(cell.len());
    }

    /// Carries a RELAY body across link `i` in direction `forward`, through real link crypto.
    fn transit(&mut self, i: usize, forward: bool, body: &mut [u8]) {
        let mut cell = [0u8; CELL_LEN];
        cell[HEADER_LEN..].copy_from_slice(body);
        let header = CellHeader {
            circ_id: CircId::new(7),
            cmd: CellCmd::RELAY,
        };
        let (a, b) = &mut self.links[i];
        let (tx, rx) = if forward { (a, b) } else { (b, a) };
        tx.seal(header, &mut cell).unwrap();
        self.wire_lengths.push(cell.len());
        if forward && self.tamper.is_some_and(|(link, _)| link == i) {
            let (_, byte) = self.tamper.take().unwrap();
            cell[HEADER_LEN + byte] ^= 0x01;
        }
        assert_eq!(rx.open(&mut cell).unwrap(), header);
        body.copy_from_slice(&cell[HEADER_LEN..]);
    }

    fn forward_from(&mut self, mut i: usize, body: &mut [u8]) {
        loop {
            self.transit(i, true, body);
            let relay = self.relays[i].as_mut().unwrap();
            match relay.handle_forward(body) {
                ForwardAction::Forward => i += 1,
                ForwardAction::Consumed => return self.take_events(i),
                ForwardAction::Destroy(e) => return self.destroyed.push((i, e)),
            }
        }
    }

    fn backward_from(&mut self, i: usize, body: &mut [u8]) {
        self.transit(i, false, body);
        for j in (0..i).rev() {
            self.relays[j]
                .as_mut()
                .unwrap()
                .handle_backward(body)
                .unwrap();
            self.transit(j, false, body);
        }
        self.client.handle_backward(&mut self.rng, body).unwrap();
    }

    fn take_events(&mut self, i: usize) {
        while let Some(ev) = self.relays[i].as_mut().unwrap().poll_event() {
            if let RelayEvent::Extend {
                htype,
                hdata,
                identity,
                ..
            } = &ev
            {
                assert_eq!(*identity, self.keys[i + 1].id.public());
                if self.unreachable == Some(i + 1) {
                    let e = self.relays[i].as_mut().unwrap().extend_failed();
                    self.destroyed.push((i, e));
                    continue;
                }
                let created = self.create_at(i + 1, *htype, hdata);
                self.relays[i]
                    .as_mut()
                    .unwrap()
                    .handle_created(&created)
                    .unwrap();
            } else {
                self.relay_events.push((i, ev));
            }
        }
    }

    /// Moves cells until nothing moves.
    fn pump(&mut self) {
        let mut body = vec![0u8; BODY_LEN];
        loop {
            let mut moved = false;
            while self.client.poll_forward(&mut self.rng, &mut body).unwrap() {
                moved = true;
                self.forward_from(0, &mut body);
            }
            for i in (0..self.relays.len()).rev() {
                while let Some(r) = self.relays[i].as_mut() {
                    if !r.poll_backward(&mut body).unwrap() {
                        break;
                    }
                    moved = true;
                    self.backward_from(i, &mut body);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn client_events(&mut self) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }
}

fn relays(n: usize) -> Vec<RelayKeys> {
    let mut rng = ChaCha20Rng::seed_from_u64(1000 + n as u64);
    (0..n)
        .map(|i| RelayKeys::new(&mut rng, 9000 + i as u16))
        .collect()
}

#[test]
fn circuits_of_every_length_build_with_one_cell_size_on_every_link() {
    for n in 1..=crate::cell::MAX_HOPS {
        let keys = relays(n);
        let mut chain = Chain::build(1, keys.iter().collect(), t0());
        chain.pump();
        assert!(chain.client.is_open(), "{n} hops");
        assert_eq!(chain.client_events(), vec![ClientEvent::Built]);
        assert!(chain.wire_lengths.iter().all(|&l| l == CELL_LEN));
        assert!(chain.destroyed.is_empty());
    }
}

#[test]
fn a_two_mebibyte_message_crosses_three_hops_under_flow_control() {
    let keys = relays(3);
    let mut chain = Chain::build(2, keys.iter().collect(), t0());
    chain.pump();
    let data: Vec<u8> = (0..2 << 20).map(|i: u32| (i % 253) as u8).collect();
    chain
        .client
        .send_message([5; 16], [6; 32], data.clone())
        .unwrap();
    chain.pump();
    let delivered: Vec<_> = chain.relay_events.drain(..).collect();
    assert_eq!(
        delivered,
        vec![(
            2,
            RelayEvent::Deliver {
                recipient: [6; 32],
                message_id: [5; 16],
                envelope: data
            }
        )]
    );
    // 2 MiB is 2,267 cells, more than the 1,000-cell window: it only arrived because the exit's
    // SENDMEs reopened the window.
    assert!(chain.client.send_window() > 0);
    assert!(chain.wire_lengths.iter().all(|&l| l == CELL_LEN));
}

#[test]
fn message_to_a_home_node_is_delivered_and_acknowledged_end_to_end() {
    let keys = relays(3);
    let now = t0();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let alice = IdentityKeypair::generate(&mut rng);
    let bob = IdentityKeypair::generate(&mut rng);
    let bob_enc = EncryptionKeypair::generate(&mut rng);

    // Bob's home circuit: one hop to relay 2, proven with his identity key.
    let mut home = Chain::build(4, vec![&keys[2]], now);
    home.pump();
    let binding = home.bindings[0];
    home.client.home_auth(&bob, &binding).unwrap();
    home.pump();
    let registered = home.relay_events.remove(0);
    assert_eq!(
        registered,
        (
            0,
            RelayEvent::HomeRegistered {
                identity: bob.public()
            }
        )
    );
    home.relays[0]
        .as_mut()
        .unwrap()
        .send_home_authed(0)
        .unwrap();
    home.pump();
    assert!(
        home.client_events()
            .contains(&ClientEvent::HomeAuthed { queued: 0 })
    );

    let home_relay = home.relays[0].as_mut().unwrap();
    assert_eq!(home_relay.pending_backward_cells(), 0);

    // Alice's circuit ends at Bob's home relay.
    let mut sender = Chain::build(5, keys.iter().collect(), now);
    sender.pump();
    let (envelope, token) =
        encrypt_message_with_ack(&mut rng, &alice, &bob_enc.public(), [9; 16], 1, b"hi bob")
            .unwrap();
    sender
        .client
        .send_message([9; 16], bob.public().to_bytes(), envelope)
        .unwrap();
    sender.pump();
    let (
        _,
        RelayEvent::Deliver {
            recipient,
            message_id,
            envelope,
        },
    ) = sender.relay_events.remove(0)
    else {
        panic!("expected a delivery")
    };
    assert_eq!(recipient, bob.public().to_bytes());

    // The home relay (the adapter's job) hands it to Bob's home circuit and tells Alice.
    let home_relay = home.relays[0].as_mut().unwrap();
    let len = envelope.len();
    home_relay.deliver(message_id, envelope).unwrap();
    assert_eq!(
        home_relay.pending_backward_cells(),
        crate::frag::cells_for(len)
    );
    sender.relays[2]
        .as_mut()
        .unwrap()
        .send_status(message_id, DeliveryStatus::DELIVERED)
        .unwrap();
    home.pump();
    sender.pump();
    let Some(ClientEvent::Message {
        message_id,
        envelope,
    }) = home
        .client_events()
        .into_iter()
        .find(|e| matches!(e, ClientEvent::Message { .. }))
    else {
        panic!("Bob got no message")
    };
    let opened = decrypt_message(&bob_enc, &envelope).unwrap();
    assert_eq!(opened.content(), b"hi bob");
    assert_eq!(opened.sender(), &alice.public());

    // Bob acknowledges; the home relay routes the ACK to Alice's circuit.
    home.client
        .send_ack(message_id, opened.ack_token().to_bytes())
        .unwrap();
    home.pump();
    let (
        _,
        RelayEvent::Ack {
            message_id,
            ack_token,
        },
    ) = home.relay_events.remove(0)
    else {
        panic!("expected an ACK at the home relay")
    };
    sender.relays[2]
        .as_mut()
        .unwrap()
        .send_ack(message_id, ack_token)
        .unwrap();
    sender.pump();
    let events = sender.client_events();
    assert!(events.contains(&ClientEvent::DeliveryStatus {
        message_id: [9; 16],
        status: DeliveryStatus::DELIVERED
    }));
    let Some(ClientEvent::Ack { ack_token, .. }) = events
        .into_iter()
        .find(|e| matches!(e, ClientEvent::Ack { .. }))
    else {
        panic!("Alice got no ACK")
    };
    assert_eq!(
        crate::envelope::AckToken::from_bytes(ack_token),
        token,
        "proof of receipt"
    );
}

#[test]
fn a_bit_flipped_on_a_link_destroys_the_circuit_at_the_next_hop() {
    let keys = relays(3);
    let mut chain = Chain::build(6, keys.iter().collect(), t0());
    chain.pump();
    chain.tamper = Some((1, 500));
    chain
        .client
        .send_message([1; 16], [2; 32], vec![3; 100])
        .unwrap();
    chain.pump();
    assert_eq!(chain.destroyed, vec![(1, CircuitError::Integrity)]);
    assert_eq!(
        CircuitError::Integrity.destroy_reason(),
        DestroyReason::INTEGRITY
    );
    assert!(chain.relay_events.is_empty(), "nothing reached the exit");
}

#[test]
fn padding_is_consumed_silently_by_the_last_hop_only() {
    let keys = relays(3);
    let mut chain = Chain::build(7, keys.iter().collect(), t0());
    chain.pump();
    let before = chain.wire_lengths.len();
    for _ in 0..10 {
        chain.client.send_padding().unwrap();
    }
    chain.pump();
    assert_eq!(
        chain.wire_lengths.len() - before,
        30,
        "10 cells x 3 links, all forwarded"
    );
    assert!(chain.relay_events.is_empty() && chain.destroyed.is_empty());
}

#[test]
fn ping_measures_a_round_trip_to_the_last_hop() {
    let keys = relays(2);
    let mut chain = Chain::build(8, keys.iter().collect(), t0());
    chain.pump();
    chain.client_events();
    chain.client.send_ping(77).unwrap();
    chain.pump();
    assert_eq!(chain.client_events(), vec![ClientEvent::Pong(77)]);
}

#[test]
fn a_build_that_stalls_times_out_on_the_simulated_clock() {
    let keys = relays(2);
    let now = t0();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let path = keys.iter().map(|k| k.hop()).collect();
    let (mut client, _, _) = ClientCircuit::build(&mut rng, now, path).unwrap();
    let deadline = client.poll_timeout().unwrap();
    assert_eq!(deadline, now + CIRCUIT_BUILD_TIMEOUT);
    client.handle_timeout(now + Duration::from_secs(9)).unwrap();
    assert_eq!(client.handle_timeout(deadline), Err(CircuitError::Timeout));
    assert_eq!(
        client.send_message([0; 16], [0; 32], vec![]),
        Err(CircuitError::Closed)
    );
}

#[test]
fn home_auth_over_another_link_or_with_another_key_is_refused() {
    let keys = relays(1);
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let bob = IdentityKeypair::generate(&mut rng);
    let mut home = Chain::build(11, vec![&keys[0]], t0());
    home.pump();
    // Signed over a channel binding of some other link: a replayed proof.
    home.client.home_auth(&bob, &[0xee; 32]).unwrap();
    home.pump();
    assert!(matches!(
        home.destroyed.as_slice(),
        [(0, CircuitError::Protocol(_))]
    ));
    assert!(home.relay_events.is_empty());
}

#[test]
fn deliver_needs_a_home_circuit_and_only_the_last_hop_originates() {
    let keys = relays(2);
    let mut chain = Chain::build(12, keys.iter().collect(), t0());
    chain.pump();
    let exit = chain.relays[1].as_mut().unwrap();
    let refused = exit.deliver([0; 16], vec![1]).unwrap_err();
    assert!(matches!(refused.error, CircuitError::Protocol(_)));
    assert_eq!(refused.envelope, vec![1], "a refused message comes back");
    let middle = chain.relays[0].as_mut().unwrap();
    assert!(middle.has_next());
    assert!(matches!(
        middle.send_ack([0; 16], [0; 16]),
        Err(CircuitError::Protocol(_))
    ));
}

#[test]
fn a_failed_extend_blames_the_relay_after_the_last_hop_that_answered() {
    let keys = relays(3);
    for dead in 1..3 {
        let mut chain = Chain::build(20 + dead as u64, keys.iter().collect(), t0());
        chain.unreachable = Some(dead);
        chain.pump();
        assert!(!chain.client.is_open());
        // Relay `dead - 1` answered and reported; relay `dead` is the one to avoid.
        assert_eq!(chain.destroyed.len(), 1);
        assert_eq!(chain.destroyed[0].0, dead - 1);
        assert_eq!(chain.client.hops_built(), dead);
        assert_eq!(
            chain.client.blame_destroy(DestroyReason::CONNECT_FAILED),
            Some(dead)
        );
        // Other reasons say nothing about which relay is at fault.
        for other in [
            DestroyReason::NONE,
            DestroyReason::PROTOCOL,
            DestroyReason::RESOURCE_LIMIT,
            DestroyReason::TIMEOUT,
            DestroyReason::SHUTDOWN,
        ] {
            assert_eq!(chain.client.blame_destroy(other), None);
        }
    }
}

#[test]
fn connect_failed_names_nobody_before_the_first_hop_answers_or_after_the_build() {
    let cf = DestroyReason::CONNECT_FAILED;
    assert_eq!(blame_destroy(3, 0, cf), None);
    assert_eq!(blame_destroy(3, 1, cf), Some(1));
    assert_eq!(blame_destroy(3, 2, cf), Some(2));
    assert_eq!(blame_destroy(3, 3, cf), None);
    assert_eq!(blame_destroy(1, 1, cf), None);
    let keys = relays(3);
    let mut chain = Chain::build(30, keys.iter().collect(), t0());
    chain.pump();
    assert!(chain.client.is_open());
    assert_eq!(chain.client.blame_destroy(cf), None);
}

#[test]
fn forward_to_is_taken_only_from_the_home_node_and_moved_reaches_the_sender() {
    let keys = relays(3);
    let now = t0();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let bob = IdentityKeypair::generate(&mut rng);
    let enc = EncryptionKeypair::generate(&mut rng).public();
    let moved_to =
        crate::address::NodeAddress::sign(&bob, enc, vec![keys[1].hop()], 10, 20).unwrap();

    // Not a home circuit: FORWARD_TO destroys it.
    let mut anon = Chain::build(22, vec![&keys[2]], now);
    anon.pump();
    assert!(anon.client.send_forward_to(&moved_to).unwrap());
    anon.pump();
    assert!(anon.relay_events.is_empty());
    assert_eq!(anon.destroyed.len(), 1, "{:?}", anon.destroyed);

    // A home circuit of another node: an address of Bob's is refused.
    let carol = IdentityKeypair::generate(&mut rng);
    let mut other = Chain::build(23, vec![&keys[2]], now);
    other.pump();
    let binding = other.bindings[0];
    other.client.home_auth(&carol, &binding).unwrap();
    other.pump();
    other.relay_events.clear();
    assert!(other.client.send_forward_to(&moved_to).unwrap());
    other.pump();
    assert!(other.relay_events.is_empty());
    assert_eq!(other.destroyed.len(), 1);

    // Bob's own home circuit: the relay gets the verified address.
    let mut home = Chain::build(24, vec![&keys[2]], now);
    home.pump();
    let binding = home.bindings[0];
    home.client.home_auth(&bob, &binding).unwrap();
    home.pump();
    home.relay_events.clear();
    assert!(home.client.send_forward_to(&moved_to).unwrap());
    home.pump();
    assert_eq!(
        home.relay_events,
        vec![(
            0,
            RelayEvent::ForwardTo {
                address: Box::new(moved_to.clone())
            }
        )]
    );
    assert!(home.destroyed.is_empty());
    // One per home circuit: a second costs the relay no second signature check.
    assert!(home.client.send_forward_to(&moved_to).unwrap());
    home.pump();
    assert_eq!(home.relay_events.len(), 1);
    assert_eq!(home.destroyed.len(), 1);

    // A sender's circuit to that relay hears MOVED with the address's bytes.
    let mut sender = Chain::build(25, keys.iter().collect(), now);
    sender.pump();
    let _built = sender.client_events();
    let bytes = moved_to.to_bytes();
    sender.relays[2]
        .as_mut()
        .unwrap()
        .send_moved([7; 16], &bytes)
        .unwrap();
    sender.pump();
    assert_eq!(
        sender.client_events(),
        vec![ClientEvent::Moved {
            message_id: [7; 16],
            address: bytes
        }]
    );
}
