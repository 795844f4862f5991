//! What the cell size costs: relay crypto per byte of usable payload for 512-, 1024- and
//! 2048-byte cells, and the padding each wastes (issue 3, property 1; PROTOCOL.md §4.1).
//!
//! The onion functions take bodies of any length, so the same code runs at every size. Each
//! iteration is what a relay does to one RELAY cell: decipher and check the link header in,
//! peel its onion layer, encipher the link header out (`LinkCrypto` works on `CELL_LEN`
//! arrays, but for a RELAY cell it only touches the 16-byte header block, whose cost does not
//! depend on the cell size). Throughput is the usable payload of one cell: the cell minus the
//! header block, the tag area and the 3-byte relay header.
//!
//! The padding table is printed before the measurements and copied into benches/README.md.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented `pub fn`"
)]
#![allow(clippy::print_stdout, reason = "the bench prints its padding table")]

#[path = "support/fixtures.rs"]
mod fixtures;

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use ournet_proto::cell::{CELL_LEN, CellCmd, CellHeader, CircId, HEADER_LEN, TAG_AREA_LEN};

use fixtures::{POOL_CELLS, link_pair, relay_with_cells, rng, time_pooled};

/// Cell sizes compared.
const CELL_SIZES: [usize; 3] = [512, 1024, 2048];
/// Message sizes for the padding table: a small request and a 4 KiB page.
const MESSAGES: [usize; 2] = [100, 4096];
/// Bytes of the relay header inside the onion payload (command and length).
const RELAY_HEADER_LEN: usize = 3;

/// Usable payload bytes in one cell of `cell` bytes.
fn usable(cell: usize) -> usize {
    cell - HEADER_LEN - TAG_AREA_LEN - RELAY_HEADER_LEN
}

fn print_padding_table() {
    println!("cell | usable | usable/cell | message | cells | wire bytes | waste");
    for cell in CELL_SIZES {
        for msg in MESSAGES {
            let cells = msg.div_ceil(usable(cell));
            let wire = cells * cell;
            println!(
                "{cell} | {} | {:.1}% | {msg} | {cells} | {wire} | {:.1}%",
                usable(cell),
                100.0 * usable(cell) as f64 / cell as f64,
                100.0 * (wire - msg) as f64 / wire as f64,
            );
        }
    }
}

fn cell_size(c: &mut Criterion) {
    print_padding_table();
    let mut group = c.benchmark_group("cell_size/relay_peel_plus_link_header");
    let mut rng = rng(3);
    let (mut send, mut recv) = link_pair(&mut rng);
    let mut head = [0u8; CELL_LEN];
    let header = CellHeader {
        circ_id: CircId::new(0x8000_0001),
        cmd: CellCmd::RELAY,
    };
    for cell in CELL_SIZES {
        group.throughput(Throughput::Bytes(usable(cell) as u64));
        group.bench_function(BenchmarkId::from_parameter(cell), |b| {
            b.iter_custom(|iters| {
                time_pooled(
                    iters,
                    POOL_CELLS,
                    |k| relay_with_cells(&mut rng, cell - HEADER_LEN, k),
                    |(relay, cells)| {
                        for body in cells {
                            send.seal(header, black_box(&mut head))
                                .expect("sequence far from exhausted");
                            recv.open(black_box(&mut head)).expect("sealed just above");
                            relay.peel_forward(body).expect("cells come in sequence");
                        }
                    },
                )
            });
        });
    }
    group.finish();
}

criterion_group!(benches, cell_size);
criterion_main!(benches);
