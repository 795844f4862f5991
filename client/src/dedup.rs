//! The receiver's de-duplication window: which (sender, message id) pairs were already handed
//! to the app, so a retry or a queued copy is ACKed again but delivered once.
//!
//! The window is bounded in entries and in age (oldest first out). Message ids are signed by
//! the sender inside the envelope (W15), so a relay cannot forge a pair to suppress a message.

use std::collections::{HashSet, VecDeque};

/// Default most pairs remembered.
pub(crate) const DEFAULT_CAPACITY: usize = 16_384;
/// Default longest time a pair is remembered (unix seconds): longer than a relay keeps a
/// message queued for an offline node.
pub(crate) const DEFAULT_MAX_AGE_SECS: u64 = 7 * 24 * 3600;

/// One remembered pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SeenKey {
    /// The sender's identity key.
    pub(crate) sender: [u8; 32],
    /// The signed message id.
    pub(crate) message_id: [u8; 16],
}

/// The window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DedupWindow {
    set: HashSet<SeenKey>,
    order: VecDeque<(SeenKey, u64)>,
}

impl DedupWindow {
    /// Records `key` seen at `now` (unix seconds) and expires old entries. Returns `true` if
    /// it is new (hand it to the app), `false` for a duplicate.
    pub(crate) fn insert(&mut self, key: SeenKey, now: u64) -> bool {
        self.expire(now);
        if !self.set.insert(key) {
            return false;
        }
        self.order.push_back((key, now));
        while self.order.len() > DEFAULT_CAPACITY {
            self.pop_oldest();
        }
        true
    }

    /// Entries, oldest first (for the state file).
    pub(crate) fn entries(&self) -> impl Iterator<Item = &(SeenKey, u64)> {
        self.order.iter()
    }

    /// Rebuilds a window from saved entries (oldest first), dropping repeats.
    pub(crate) fn from_entries(entries: impl IntoIterator<Item = (SeenKey, u64)>) -> Self {
        let mut w = Self::default();
        for (k, t) in entries {
            if w.set.insert(k) {
                w.order.push_back((k, t));
            }
        }
        while w.order.len() > DEFAULT_CAPACITY {
            w.pop_oldest();
        }
        w
    }

    fn expire(&mut self, now: u64) {
        while self
            .order
            .front()
            .is_some_and(|(_, t)| now.saturating_sub(*t) > DEFAULT_MAX_AGE_SECS)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((k, _)) = self.order.pop_front() {
            self.set.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: u8, m: u8) -> SeenKey {
        SeenKey {
            sender: [s; 32],
            message_id: [m; 16],
        }
    }

    #[test]
    fn a_pair_is_new_once() {
        let mut w = DedupWindow::default();
        assert!(w.insert(key(1, 1), 10));
        assert!(!w.insert(key(1, 1), 11));
        assert!(
            w.insert(key(2, 1), 11),
            "same id from another sender is another message"
        );
        assert!(w.insert(key(1, 2), 11));
    }

    #[test]
    fn bounded_by_count_and_age() {
        let mut w = DedupWindow::default();
        for i in 0..=DEFAULT_CAPACITY {
            let mut k = key(0, 0);
            k.message_id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            assert!(w.insert(k, 5));
        }
        assert_eq!(w.entries().count(), DEFAULT_CAPACITY);
        assert!(w.insert(key(0, 0), 5), "the oldest was evicted");
        let mut w = DedupWindow::default();
        w.insert(key(9, 9), 0);
        w.insert(key(8, 8), DEFAULT_MAX_AGE_SECS + 1);
        assert_eq!(w.entries().count(), 1, "expired by age");
    }

    #[test]
    fn round_trips_through_entries() {
        let mut w = DedupWindow::default();
        w.insert(key(1, 1), 1);
        w.insert(key(2, 2), 2);
        let back = DedupWindow::from_entries(w.entries().copied());
        assert_eq!(back, w);
    }
}
