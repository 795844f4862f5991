//! The per-link scheduler: weighted fair queueing between circuits when a link is congested,
//! so QoS tiers decide who is served first (spec §5.18; W35: the reference only computed them).
//!
//! While a link keeps up, cells are sealed straight into its output buffer and this queue is
//! idle (no copy, no allocation). Once the output buffer passes [`CONGESTED_BYTES`], each
//! circuit's cells wait in the circuit's own queue, *before* link sealing (the link header's
//! implicit sequence number fixes a cell's place on the wire at sealing time), and the link
//! is refilled by deficit round robin: each turn a circuit may send `weight` cells, its
//! weight being [`ournet_proto::qos::QoSPolicy::scheduler_weight`] of its tier. Every tier's
//! weight is at least 1, so no circuit starves.
//!
//! Bounds: a circuit may queue at most [`MAX_CELLS_PER_CIRCUIT`] cells (its flow-control
//! window and the SENDMEs in flight: more means it ignores flow control); the caller checks
//! the link's byte cap (`ournet_proto::flow::SendQueuePolicy`) before pushing, and sheds the
//! heaviest circuit past it. Cell
//! buffers are recycled, so a congested link allocates only while its queue grows.

use std::collections::VecDeque;

use ournet_proto::cell::{CELL_LEN, CircId};
use ournet_proto::flow::CIRCUIT_QUEUE_CELLS;

use super::{CircKey, FastMap};

/// Output bytes past which a link is congested and cells go through the scheduler.
pub(super) const CONGESTED_BYTES: usize = 256 * 1024;
/// Most cells one circuit may have queued on one link.
pub(super) const MAX_CELLS_PER_CIRCUIT: usize = CIRCUIT_QUEUE_CELLS;
/// Most cells a circuit's own messages (deliveries, EXTENDED, ...) keep waiting in the
/// scheduler; the rest wait in the circuit until the link drains. More than one refill
/// ([`CONGESTED_BYTES`]) so a backlogged circuit always has cells for its full share.
pub(super) const ORIGIN_BURST_CELLS: usize = 512;
/// Recycled cell buffers kept per link.
const MAX_SPARE: usize = 256;

type CellBuf = Box<[u8; CELL_LEN]>;

/// Why a cell was not queued: the circuit has more cells queued than flow control allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CircuitFull;

#[derive(Debug)]
struct CircQueue {
    circ_id: CircId,
    weight: u32,
    deficit: u32,
    cells: VecDeque<CellBuf>,
}

/// One link's circuit queues.
#[derive(Debug, Default)]
pub(super) struct LinkSched {
    queues: FastMap<CircKey, CircQueue>,
    /// Circuits with cells, in round-robin order.
    ring: VecDeque<CircKey>,
    cells: usize,
    spare: Vec<CellBuf>,
}

impl LinkSched {
    /// Whether no cell waits.
    pub(super) fn is_idle(&self) -> bool {
        self.cells == 0
    }

    /// Bytes waiting.
    pub(super) fn queued_bytes(&self) -> usize {
        self.cells * CELL_LEN
    }

    /// Queues a copy of `cell` (onion-processed, not yet link-sealed) for circuit `key`,
    /// which goes out as `circ_id` with `weight` (at least 1) cells per round.
    pub(super) fn push(
        &mut self,
        key: CircKey,
        circ_id: CircId,
        weight: u32,
        cell: &[u8; CELL_LEN],
    ) -> Result<(), CircuitFull> {
        let q = self.queues.entry(key).or_insert_with(|| CircQueue {
            circ_id,
            weight: weight.max(1),
            deficit: 0,
            cells: VecDeque::new(),
        });
        if q.cells.len() >= MAX_CELLS_PER_CIRCUIT {
            return Err(CircuitFull);
        }
        let mut buf = self.spare.pop().unwrap_or_else(|| Box::new([0; CELL_LEN]));
        buf.copy_from_slice(cell);
        if q.cells.is_empty() {
            self.ring.push_back(key);
        }
        q.cells.push_back(buf);
        self.cells += 1;
        Ok(())
    }

    /// The next cell by deficit round robin: its circuit id and buffer. Give the buffer back
    /// with [`LinkSched::recycle`].
    pub(super) fn pop(&mut self) -> Option<(CircId, CellBuf)> {
        loop {
            let key = *self.ring.front()?;
            let Some(q) = self.queues.get_mut(&key) else {
                self.ring.pop_front();
                continue;
            };
            if q.deficit == 0 {
                q.deficit = q.weight;
            }
            let Some(cell) = q.cells.pop_front() else {
                self.ring.pop_front();
                self.queues.remove(&key);
                continue;
            };
            q.deficit -= 1;
            let circ_id = q.circ_id;
            self.cells -= 1;
            if q.cells.is_empty() {
                self.ring.pop_front();
                self.queues.remove(&key);
            } else if q.deficit == 0 {
                self.ring.rotate_left(1);
            }
            return Some((circ_id, cell));
        }
    }

    /// Returns a buffer from [`LinkSched::pop`] for reuse.
    pub(super) fn recycle(&mut self, buf: CellBuf) {
        if self.spare.len() < MAX_SPARE {
            self.spare.push(buf);
        }
    }

    /// Drops every cell of `key` (its circuit is gone); returns how many.
    pub(super) fn remove(&mut self, key: CircKey) -> usize {
        let Some(q) = self.queues.remove(&key) else {
            return 0;
        };
        self.ring.retain(|k| *k != key);
        self.cells -= q.cells.len();
        q.cells.len()
    }

    /// Cells queued for `key`.
    pub(super) fn queued_cells(&self, key: CircKey) -> usize {
        self.queues.get(&key).map_or(0, |q| q.cells.len())
    }

    /// The circuit with the most cells queued.
    pub(super) fn heaviest(&self) -> Option<CircKey> {
        self.queues
            .iter()
            .max_by_key(|(_, q)| q.cells.len())
            .map(|(k, _)| *k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> CircId {
        CircId::new(n).unwrap()
    }

    fn cell(tag: u8) -> [u8; CELL_LEN] {
        [tag; CELL_LEN]
    }

    #[test]
    fn shares_follow_the_weights_under_congestion() {
        let mut s = LinkSched::default();
        // Weights of the Critical, Normal and Minimum tiers.
        for (k, w) in [(1u64, 20u32), (2, 4), (3, 1)] {
            for _ in 0..1000 {
                s.push(CircKey(k), id(k as u32), w, &cell(k as u8)).unwrap();
            }
        }
        let mut sent = [0usize; 4];
        for _ in 0..250 {
            let (circ, buf) = s.pop().unwrap();
            assert_eq!(u32::from(buf[0]), circ.get());
            sent[circ.get() as usize] += 1;
            s.recycle(buf);
        }
        // 250 cells = 10 rounds of 25: 200 / 40 / 10.
        assert_eq!(sent[1..], [200, 40, 10]);
    }

    #[test]
    fn nobody_starves_and_order_within_a_circuit_is_kept() {
        let mut s = LinkSched::default();
        for i in 0..10u8 {
            s.push(CircKey(1), id(1), 20, &cell(i)).unwrap();
        }
        s.push(CircKey(2), id(2), 1, &cell(100)).unwrap();
        let order: Vec<u8> = std::iter::from_fn(|| s.pop().map(|(_, b)| b[0])).collect();
        assert_eq!(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100]);
        assert!(s.is_idle());
        for w in [1, 1] {
            s.push(CircKey(1), id(1), w, &cell(1)).unwrap();
            s.push(CircKey(1), id(1), w, &cell(1)).unwrap();
            s.push(CircKey(2), id(2), w, &cell(2)).unwrap();
        }
        let order: Vec<u8> = std::iter::from_fn(|| s.pop().map(|(_, b)| b[0])).collect();
        assert_eq!(order, [1, 2, 1, 2, 1, 1], "weight 1 alternates");
    }

    #[test]
    fn caps_hold_and_removal_forgets_a_circuit() {
        let mut s = LinkSched::default();
        for _ in 0..MAX_CELLS_PER_CIRCUIT {
            s.push(CircKey(1), id(1), 4, &cell(1)).unwrap();
        }
        assert_eq!(s.push(CircKey(1), id(1), 4, &cell(1)), Err(CircuitFull));
        s.push(CircKey(2), id(2), 4, &cell(2)).unwrap();
        assert_eq!(s.heaviest(), Some(CircKey(1)));
        assert_eq!(s.remove(CircKey(1)), MAX_CELLS_PER_CIRCUIT);
        assert_eq!(s.queued_bytes(), CELL_LEN);
        assert_eq!(s.pop().map(|(c, _)| c), Some(id(2)));
        assert!(s.pop().is_none() && s.is_idle());
    }
}
