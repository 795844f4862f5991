//! Fuzzes message reassembly: `frag::Reassembler::handle_begin` and `handle_data` on any
//! sequence of BEGIN and DATA messages decoded from fuzzed payloads, and a `frag::Fragmenter`
//! to `Reassembler` round trip of fuzzed messages.
//!
//! Invariants: nothing panics; a declared length over `MAX_MESSAGE_LEN` is refused before
//! anything is kept; the bytes held never exceed the declared length; a message completes
//! exactly when its declared length has arrived, with the id, recipient and bytes sent; a BEGIN
//! during a message, DATA without one, and an overrun are refused as documented; every
//! fragmenter payload decodes, and the message comes back whole in `cells_for(len)` cells.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ournet_proto::cell::PAYLOAD_LEN;
use ournet_proto::frag::{
    BEGIN_CHUNK, DATA_CHUNK, FragError, Fragmenter, MAX_MESSAGE_LEN, Reassembler, cells_for,
};
use ournet_proto::relay_msg::{Begin, RelayMsg};
use ournet_proto_fuzz::Input;

const MAX_STEPS: usize = 256;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    if input.byte() & 1 == 0 {
        sequence(&mut input);
    } else {
        round_trip(&mut input);
    }
});

/// The message in progress, as this harness expects the reassembler to hold it.
struct Partial {
    total: usize,
    held: Vec<u8>,
    id: [u8; 16],
    to: [u8; 32],
}

/// Any sequence of BEGIN and DATA, checked against the model.
fn sequence(input: &mut Input<'_>) {
    let mut r = Reassembler::new();
    let mut model: Option<Partial> = None;
    for _ in 0..MAX_STEPS {
        if input.remaining() == 0 {
            break;
        }
        let op = input.byte();
        let len = usize::from(input.u16()) % (DATA_CHUNK + 1);
        let chunk = input.take(len);
        if op & 1 == 0 {
            let total = match op >> 1 {
                0 => MAX_MESSAGE_LEN as u32 + u32::from(input.byte()),
                1 => u32::MAX,
                _ => u32::from(input.u16()) * u32::from(input.byte() % 4 + 1),
            };
            let begin = Begin {
                message_id: [op; 16],
                total_len: total,
                recipient: [!op; 32],
                chunk,
            };
            let result = r.handle_begin(&begin);
            let total = total as usize;
            match (&model, result) {
                (Some(_), Err(FragError::BeginInProgress)) => {}
                (None, Err(FragError::TooLong(t))) => {
                    assert!(total > MAX_MESSAGE_LEN && t == total as u64)
                }
                (None, Err(FragError::Overrun)) => assert!(chunk.len() > total),
                (None, Ok(Some(m))) => {
                    assert!(chunk.len() == total && m.data == chunk);
                    assert_eq!((m.message_id, m.recipient), ([op; 16], [!op; 32]));
                }
                (None, Ok(None)) => {
                    assert!(chunk.len() < total && total <= MAX_MESSAGE_LEN);
                    model = Some(Partial {
                        total,
                        held: chunk.to_vec(),
                        id: [op; 16],
                        to: [!op; 32],
                    });
                }
                (m, other) => panic!("BEGIN in state {:?}: {other:?}", m.is_some()),
            }
        } else {
            let result = r.handle_data(chunk);
            match (model.take(), result) {
                (None, Err(FragError::DataWithoutBegin)) => {}
                (Some(p), Err(FragError::Overrun)) => assert!(p.held.len() + chunk.len() > p.total),
                (Some(mut p), Ok(done)) => {
                    p.held.extend_from_slice(chunk);
                    match done {
                        Some(m) => {
                            assert_eq!(p.held.len(), p.total);
                            assert_eq!((m.data, m.message_id, m.recipient), (p.held, p.id, p.to));
                        }
                        None => {
                            assert!(p.held.len() < p.total);
                            model = Some(p);
                        }
                    }
                }
                (m, other) => panic!("DATA in state {:?}: {other:?}", m.is_some()),
            }
        }
        let held = model.as_ref().map_or(0, |p| p.held.len());
        assert_eq!(r.buffered(), held);
    }
}

fn round_trip(input: &mut Input<'_>) {
    let message_id: [u8; 16] = input.array();
    let recipient: [u8; 32] = input.array();
    // Lengths around the chunk edges, and whatever the input holds.
    let len = match input.byte() % 4 {
        0 => BEGIN_CHUNK + usize::from(input.byte()) - 128,
        1 => BEGIN_CHUNK + DATA_CHUNK * usize::from(input.byte() % 4) + usize::from(input.byte()),
        _ => usize::from(input.u16()) % (8 * PAYLOAD_LEN),
    };
    let mut message = input.rest().to_vec();
    message.resize(len, 0xee);
    let mut f = Fragmenter::new(message_id, recipient, message.clone()).unwrap();
    let mut r = Reassembler::new();
    let mut payload = [0u8; PAYLOAD_LEN];
    let mut cells = 0;
    let mut done = None;
    assert_eq!(f.remaining_cells(), cells_for(len));
    while f.write_next(&mut payload).unwrap() {
        cells += 1;
        assert!(done.is_none(), "a cell after the message completed");
        done = match RelayMsg::decode(&payload).expect("fragmenter payloads decode") {
            RelayMsg::Begin(b) => r.handle_begin(&b).unwrap(),
            RelayMsg::Data(d) => r.handle_data(d).unwrap(),
            other => panic!("fragmenter wrote {other:?}"),
        };
    }
    assert!(f.is_done());
    assert_eq!(cells, cells_for(len));
    let m = done.expect("the message completed");
    assert_eq!(
        (m.message_id, m.recipient, m.data),
        (message_id, recipient, message)
    );
}
