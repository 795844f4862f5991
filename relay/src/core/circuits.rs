//! The circuit table of one worker: circuits by handle, and handles by (link, circuit id).
//!
//! A circuit has a previous leg (the link and id its CREATE came on) and, once extended, a
//! next leg. A cell on the previous leg's (link, id) travels forward; on the next leg's,
//! backward. Both legs of a circuit are on this worker: a worker opens its own outbound
//! links, so no cell of a circuit crosses threads.

use std::collections::VecDeque;
use std::sync::Arc;

use ournet_proto::cell::{CELL_LEN, CircId};
use ournet_proto::circuit::RelayCircuit;

use super::{CircKey, ConnId, FastMap, FastSet};
use crate::directory::CircLoc;
use crate::directory::budget::HomeBudget;

/// One end of a circuit on a link.
pub(super) type Leg = (ConnId, CircId);

/// A circuit at this relay.
#[derive(Debug)]
pub(super) struct Circ {
    pub(super) hop: RelayCircuit,
    pub(super) prev: Leg,
    pub(super) next: Option<Leg>,
    /// Waiting in the previous link's blocked list.
    pub(super) blocked: bool,
    /// RELAY cells handled lately (halved every sweep): the circuit's share of the traffic,
    /// which back pressure reads to find the heaviest circuits.
    pub(super) recent_cells: u32,
    /// The link scheduler's weight for this circuit's cells (its QoS tier).
    pub(super) weight: u32,
    /// On a home circuit, one entry per message queued with `deliver`, oldest first: whose
    /// credit to give back when the circuit's window takes it (PROTOCOL.md §8).
    pub(super) credits: VecDeque<Credit>,
    /// On a home circuit, its buffer budget (shared with the directory): every message in
    /// `credits` is counted there until the window takes it.
    pub(super) budget: Option<Arc<HomeBudget>>,
}

/// A delivered message's credit, owed to the circuit it came from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Credit {
    /// The sender's circuit (`None`: the message came from the offline queue).
    pub(super) from: Option<CircLoc>,
    /// The message's length.
    pub(super) len: usize,
}

/// Which way a cell on a leg travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    /// From the client's side.
    Forward,
    /// From the next hop.
    Backward,
}

/// All circuits of one worker.
#[derive(Debug, Default)]
pub(super) struct Circuits {
    map: FastMap<CircKey, Circ>,
    by_leg: FastMap<Leg, CircKey>,
    by_conn: FastMap<ConnId, FastSet<CircKey>>,
    next_key: u64,
}

impl Circuits {
    /// Adds a circuit whose CREATE came on `prev`.
    pub(super) fn insert(&mut self, hop: RelayCircuit, prev: Leg, weight: u32) -> CircKey {
        self.next_key += 1;
        let key = CircKey(self.next_key);
        self.map.insert(
            key,
            Circ {
                hop,
                prev,
                next: None,
                blocked: false,
                recent_cells: 0,
                weight,
                credits: VecDeque::new(),
                budget: None,
            },
        );
        self.index(prev, key);
        key
    }

    fn index(&mut self, leg: Leg, key: CircKey) {
        self.by_leg.insert(leg, key);
        self.by_conn.entry(leg.0).or_default().insert(key);
    }

    fn unindex(&mut self, leg: Leg, key: CircKey) {
        self.by_leg.remove(&leg);
        if let Some(set) = self.by_conn.get_mut(&leg.0) {
            set.remove(&key);
            if set.is_empty() {
                self.by_conn.remove(&leg.0);
            }
        }
    }

    /// Sets the next leg of `key`.
    pub(super) fn set_next(&mut self, key: CircKey, next: Leg) {
        if let Some(circ) = self.map.get_mut(&key) {
            circ.next = Some(next);
            self.index(next, key);
        }
    }

    /// The circuit on `leg` and the direction its cells travel.
    pub(super) fn lookup(&self, leg: Leg) -> Option<(CircKey, Dir)> {
        let key = *self.by_leg.get(&leg)?;
        let circ = self.map.get(&key)?;
        let dir = if circ.prev == leg {
            Dir::Forward
        } else {
            Dir::Backward
        };
        Some((key, dir))
    }

    /// Whether `leg` is in use.
    pub(super) fn leg_in_use(&self, leg: Leg) -> bool {
        self.by_leg.contains_key(&leg)
    }

    /// The circuit `key`.
    pub(super) fn get_mut(&mut self, key: CircKey) -> Option<&mut Circ> {
        self.map.get_mut(&key)
    }

    /// Removes `key` and both its legs.
    pub(super) fn remove(&mut self, key: CircKey) -> Option<Circ> {
        let circ = self.map.remove(&key)?;
        self.unindex(circ.prev, key);
        if let Some(next) = circ.next {
            self.unindex(next, key);
        }
        Some(circ)
    }

    /// Handles of every circuit with a leg on `conn`.
    pub(super) fn on_conn(&self, conn: ConnId) -> Vec<CircKey> {
        self.by_conn
            .get(&conn)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Every circuit with the bytes it buffers, heaviest first.
    pub(super) fn by_weight(&self) -> Vec<(usize, CircKey)> {
        let mut all: Vec<_> = self
            .map
            .iter()
            .map(|(key, c)| (c.hop.buffered_bytes(), *key))
            .collect();
        all.sort_unstable_by(|a, b| b.cmp(a));
        all
    }

    /// Every circuit's previous leg and weight (recent cells plus buffered bytes, in bytes),
    /// halving the recent-cell counts: an old burst fades in a few sweeps.
    pub(super) fn weigh_and_decay(&mut self) -> Vec<(ConnId, usize)> {
        self.map
            .values_mut()
            .map(|c| {
                let recent = usize::try_from(c.recent_cells).unwrap_or(usize::MAX);
                c.recent_cells /= 2;
                let w = recent.saturating_mul(CELL_LEN) + c.hop.buffered_bytes();
                (c.prev.0, w)
            })
            .collect()
    }

    /// Every handle.
    pub(super) fn keys(&self) -> Vec<CircKey> {
        self.map.keys().copied().collect()
    }

    /// Open circuits.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}
