//! [`BatchingConfig`]: hold outgoing messages and release them together, shuffled, so an
//! observer cannot tell when each one was composed.

use std::time::{Duration, Instant};

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use super::sampling::uniform_index;

/// Message batching (the reference's `BatchingConfig`).
///
/// A client appends each outgoing message to the batch and sends the whole batch when it
/// reaches `max_batch_size` or when the flush deadline passes, whichever comes first, in an
/// order from [`Self::order_batch`]. The serde form has the reference's field names; missing
/// fields take the defaults below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchingConfig {
    /// Whether messages are batched at all. Default `false`.
    pub enabled: bool,
    /// Kept for compatibility: the reference documents it as "send no fewer than this unless
    /// the interval passes" but never uses it, and neither does this crate. Default 2.
    pub min_batch_size: usize,
    /// A batch this long is flushed at once. Default 8.
    pub max_batch_size: usize,
    /// Time between periodic flushes, in milliseconds. Default 2000.
    pub batch_interval_ms: u64,
    /// Whether a flushed batch is shuffled. Default `true`.
    pub randomize_order: bool,
}

impl BatchingConfig {
    /// The reference defaults: disabled, 2 to 8 messages, every 2 s, shuffled.
    pub const DEFAULT: Self = Self {
        enabled: false,
        min_batch_size: 2,
        max_batch_size: 8,
        batch_interval_ms: 2000,
        randomize_order: true,
    };

    /// The flush period (the reference's `get_effective_interval`, there in seconds).
    pub fn effective_interval(&self) -> Duration {
        Duration::from_millis(self.batch_interval_ms)
    }

    /// When the next periodic flush is due, given the previous one; `None` when batching is
    /// disabled or the deadline is beyond what [`Instant`] can represent.
    ///
    /// Flushes run on a fixed period whether or not the batch is empty, as in the reference,
    /// so the flush times themselves say nothing about traffic.
    pub fn flush_deadline(&self, last_flush: Instant) -> Option<Instant> {
        if !self.enabled {
            return None;
        }
        last_flush.checked_add(self.effective_interval())
    }

    /// Whether a batch of `len` messages should be flushed now, before its deadline.
    pub fn is_full(&self, len: usize) -> bool {
        self.enabled && len >= self.max_batch_size
    }

    /// Puts a batch in sending order: a uniform shuffle (Fisher–Yates) drawn from `rng` if
    /// `randomize_order` is set, otherwise left as composed.
    pub fn order_batch<T>(&self, batch: &mut [T], rng: &mut (impl CryptoRngCore + ?Sized)) {
        if !self.randomize_order {
            return;
        }
        for i in (1..batch.len()).rev() {
            batch.swap(i, uniform_index(rng, i + 1));
        }
    }
}

impl Default for BatchingConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::test_util::t0 as base_instant;

    fn enabled() -> BatchingConfig {
        BatchingConfig {
            enabled: true,
            ..BatchingConfig::default()
        }
    }

    #[test]
    fn defaults_are_the_reference_values() {
        let c = BatchingConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.min_batch_size, 2);
        assert_eq!(c.max_batch_size, 8);
        assert_eq!(c.batch_interval_ms, 2000);
        assert!(c.randomize_order);
        assert_eq!(c.effective_interval(), Duration::from_secs(2));
    }

    #[test]
    fn flush_deadline_is_one_interval_after_the_last_flush() {
        let t0 = base_instant();
        assert_eq!(
            enabled().flush_deadline(t0),
            Some(t0 + Duration::from_secs(2))
        );
        assert_eq!(BatchingConfig::default().flush_deadline(t0), None);
    }

    #[test]
    fn full_at_max_batch_size() {
        let c = enabled();
        assert!(!c.is_full(7));
        assert!(c.is_full(8));
        assert!(c.is_full(9));
        assert!(!BatchingConfig::default().is_full(100));
    }

    #[test]
    fn order_batch_shuffles_into_a_permutation() {
        let c = enabled();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let original: Vec<u32> = (0..16).collect();
        let mut batch = original.clone();
        c.order_batch(&mut batch, &mut rng);
        assert_ne!(batch, original);
        let mut sorted = batch.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, original);
    }

    #[test]
    fn order_batch_is_uniform_over_small_permutations() {
        let c = enabled();
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..6_000 {
            let mut batch = ['a', 'b', 'c'];
            c.order_batch(&mut batch, &mut rng);
            *counts.entry(batch).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 6);
        assert!(
            counts.values().all(|&n| (850..1150).contains(&n)),
            "{counts:?}"
        );
    }

    #[test]
    fn order_batch_keeps_order_when_not_randomized() {
        let c = BatchingConfig {
            randomize_order: false,
            ..enabled()
        };
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut batch = [1, 2, 3, 4, 5];
        c.order_batch(&mut batch, &mut rng);
        assert_eq!(batch, [1, 2, 3, 4, 5]);
        let mut empty: [u8; 0] = [];
        enabled().order_batch(&mut empty, &mut rng);
    }
}
