//! Credits owed to circuits on other workers that could not be posted yet.
//!
//! A credit crosses workers as [`CrossMsg::Credit`](crate::cross::CrossMsg::Credit). When the
//! other worker's mailbox is full, dropping it would leave the sender's circuit short of that
//! message's cells for good (its window never reopens by them). Instead the worker keeps one
//! tally of cells per circuit owed, adds every later credit for that circuit to it, and posts
//! the whole tally as one message when the mailbox has room: at the next credit for the same
//! circuit, or at the retry tick (`Relay::handle_timeout`). Memory is one counter per circuit
//! owed, freed as soon as its tally is posted; a tally for a circuit that has closed in the
//! meantime is posted too and ignored there, so nothing waits for a circuit that is gone.

use std::collections::hash_map::Entry;

use super::FastMap;
use crate::directory::CircLoc;

/// Cells owed per circuit on another worker, not yet posted.
#[derive(Debug, Default)]
pub(super) struct PendingCredits {
    owed: FastMap<CircLoc, u32>,
}

impl PendingCredits {
    /// Adds `cells` to what `to` is owed.
    pub(super) fn add(&mut self, to: CircLoc, cells: u32) {
        if cells == 0 {
            return;
        }
        let owed = self.owed.entry(to).or_default();
        *owed = owed.saturating_add(cells);
    }

    /// Takes what `to` is owed (0 if nothing), to post it with a new credit in one message.
    pub(super) fn take(&mut self, to: CircLoc) -> u32 {
        match self.owed.entry(to) {
            Entry::Occupied(e) => e.remove(),
            Entry::Vacant(_) => 0,
        }
    }

    /// Offers every tally to `post`, one call per circuit; keeps those `post` refused (their
    /// mailbox is still full). Returns how many were posted.
    pub(super) fn flush(&mut self, mut post: impl FnMut(CircLoc, u32) -> bool) -> usize {
        let before = self.owed.len();
        self.owed.retain(|to, cells| !post(*to, *cells));
        before - self.owed.len()
    }

    /// Circuits owed a credit.
    pub(super) fn len(&self) -> usize {
        self.owed.len()
    }

    /// Whether nothing is owed.
    pub(super) fn is_empty(&self) -> bool {
        self.owed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::CircKey;

    fn loc(worker: usize, circ: u64) -> CircLoc {
        CircLoc {
            worker,
            circ: CircKey(circ),
        }
    }

    #[test]
    fn credits_for_one_circuit_coalesce_into_one_tally() {
        let mut p = PendingCredits::default();
        p.add(loc(1, 7), 9);
        p.add(loc(1, 7), 9);
        p.add(loc(1, 8), 2);
        p.add(loc(1, 9), 0);
        assert_eq!(p.len(), 2, "one counter per circuit owed, none for nothing");
        assert_eq!(p.take(loc(1, 7)), 18);
        assert_eq!(p.take(loc(1, 7)), 0, "taken once");
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn a_refused_flush_keeps_every_cell_and_a_later_one_posts_each_circuit_once() {
        let mut p = PendingCredits::default();
        for circ in 1..=3 {
            p.add(loc(1, circ), 10);
            p.add(loc(1, circ), u32::try_from(circ).unwrap());
        }
        // The mailbox is still full: nothing posted, nothing lost.
        assert_eq!(p.flush(|_, _| false), 0);
        assert_eq!(p.len(), 3);
        // Room for one message only.
        let mut room = 1;
        let mut posted = Vec::new();
        let n = p.flush(|to, cells| {
            if room == 0 {
                return false;
            }
            room -= 1;
            posted.push((to, cells));
            true
        });
        assert_eq!(n, 1);
        assert_eq!(p.len(), 2);
        // Room for all: every circuit gets exactly what it was owed, in one message each.
        p.flush(|to, cells| {
            posted.push((to, cells));
            true
        });
        assert!(p.is_empty(), "freed once posted");
        posted.sort_by_key(|(to, _)| to.circ.0);
        let want: Vec<_> = (1..=3)
            .map(|c| (loc(1, c), 10 + u32::try_from(c).unwrap()))
            .collect();
        assert_eq!(posted, want);
    }
}
