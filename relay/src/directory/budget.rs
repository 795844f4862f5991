//! A home circuit's buffer cap (`HOME_BUFFER_BYTES`, PROTOCOL.md §8), decided before the
//! sender is answered.
//!
//! The home circuit lives on one worker, while a message for it may arrive on any. If only
//! the home's worker checked the cap, a message handed across would be answered DELIVERED
//! and then refused there. So the worker that answers reserves the message's bytes here, in
//! the home's shared budget, before it answers: a reservation that fits means DELIVERED, one
//! that does not means REFUSED (the client retries at once, after its short backoff). The
//! home's worker gives the bytes back as the home circuit's window takes each message, or
//! when the circuit closes.
//!
//! A [`Reservation`] travels with its message; if the message never reaches the home
//! circuit (the mailbox was full, the circuit went away) dropping it gives the bytes back, so
//! the budget cannot leak.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ournet_proto::flow::home_buffer_accepts;

/// Message bytes queued for (or reserved on their way to) one home circuit.
#[derive(Debug, Default)]
pub struct HomeBudget {
    queued: AtomicUsize,
}

impl HomeBudget {
    /// Reserves `len` bytes if the home buffer accepts them (`home_buffer_accepts`).
    pub fn try_reserve(self: &Arc<Self>, len: usize) -> Option<Reservation> {
        let fits = |q: usize| home_buffer_accepts(q, len).then(|| q.saturating_add(len));
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, fits)
            .ok()?;
        Some(Reservation {
            budget: Arc::clone(self),
            len,
        })
    }

    /// Counts `len` bytes whatever the cap (messages from the offline queue, which the node
    /// gets all at once when it comes home), so later messages wait for them.
    pub fn add(&self, len: usize) {
        self.queued.fetch_add(len, Ordering::AcqRel);
    }

    /// Gives back `len` bytes: messages the home circuit's window took, or that are gone.
    pub fn release(&self, len: usize) {
        let less = |q: usize| Some(q.saturating_sub(len));
        // The closure never refuses, so this cannot fail.
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, less);
    }

    /// Bytes queued or reserved now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

/// Bytes reserved for one message on its way to a home circuit: given back when dropped,
/// unless [`Reservation::commit`] handed them over to the circuit's own accounting.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<HomeBudget>,
    len: usize,
}

impl Reservation {
    /// The message is on the home circuit: its bytes stay counted until the circuit gives
    /// them back ([`HomeBudget::release`]).
    pub fn commit(mut self) {
        self.len = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.len > 0 {
            self.budget.release(self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use ournet_proto::flow::HOME_BUFFER_BYTES;

    use super::*;

    #[test]
    fn the_cap_is_decided_at_reservation_and_released_bytes_make_room() {
        let b = Arc::new(HomeBudget::default());
        let half = HOME_BUFFER_BYTES / 2;
        b.try_reserve(half).unwrap().commit();
        b.try_reserve(half).unwrap().commit();
        assert_eq!(b.queued(), 2 * half);
        assert!(
            b.try_reserve(1).is_none(),
            "full: refused before anyone answers"
        );
        b.release(half);
        b.try_reserve(half).unwrap().commit();
        assert!(b.queued() <= HOME_BUFFER_BYTES);
    }

    #[test]
    fn an_empty_home_takes_one_message_however_large() {
        let b = Arc::new(HomeBudget::default());
        let big = b.try_reserve(HOME_BUFFER_BYTES * 4).unwrap();
        assert!(b.try_reserve(1).is_none());
        drop(big);
        assert_eq!(b.queued(), 0, "a dropped reservation gives its bytes back");
    }

    #[test]
    fn offline_messages_count_whatever_the_cap_and_release_never_underflows() {
        let b = Arc::new(HomeBudget::default());
        b.add(HOME_BUFFER_BYTES * 2);
        assert!(b.try_reserve(1).is_none(), "waits for the offline backlog");
        b.release(HOME_BUFFER_BYTES * 3);
        assert_eq!(b.queued(), 0);
    }

    #[test]
    fn reservations_from_many_threads_never_pass_the_cap() {
        let b = Arc::new(HomeBudget::default());
        let len = HOME_BUFFER_BYTES / 8;
        let kept: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..8)
                            .filter_map(|_| b.try_reserve(len))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(kept.len(), 8, "exactly the cap's worth, whoever won");
        assert_eq!(b.queued(), 8 * len);
        drop(kept);
        assert_eq!(b.queued(), 0);
    }
}
