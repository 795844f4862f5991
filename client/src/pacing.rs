//! How a privacy level shows on the wire (spec §5.19, PROTOCOL.md §9): the part the link
//! driver applies to cells ([`Pacing`]) and the part the sender applies to messages
//! ([`MessageDelay`]). The decisions themselves (intervals, delays, batch order) are
//! `proto::privacy`'s pure functions; this module only picks which ones apply.

use std::time::{Duration, Instant};

use ournet_proto::privacy::TrafficAnalysisMitigationConfig;
use rand_core::CryptoRngCore;

/// How a link sends cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pacing {
    /// As soon as they are ready (LOW, MEDIUM, HIGH).
    Immediate,
    /// Exactly one cell every `cell_interval`, real or padding, whatever the app does
    /// (PARANOID).
    ConstantRate {
        /// From [`ournet_proto::privacy::ConstantRateConfig::cell_interval`].
        cell_interval: Duration,
    },
}

impl Pacing {
    /// The pacing `config` asks for.
    pub(crate) fn for_config(config: &TrafficAnalysisMitigationConfig) -> Self {
        match config.constant_rate.cell_interval() {
            Some(cell_interval) => Self::ConstantRate { cell_interval },
            None => Self::Immediate,
        }
    }
}

/// The message-level part of a privacy level: batching and jitter before a message is handed
/// to its circuit.
#[derive(Debug, Clone)]
pub(crate) struct MessageDelay {
    config: TrafficAnalysisMitigationConfig,
}

impl MessageDelay {
    /// The delays of `config`.
    pub(crate) fn new(config: TrafficAnalysisMitigationConfig) -> Self {
        Self { config }
    }

    /// When a message composed at `now` may leave: at the next batch flush (a fixed period
    /// anchored at `epoch`, so flush times say nothing about traffic), then after its own
    /// jitter. `now` itself when neither is enabled.
    pub(crate) fn release_at(
        &self,
        epoch: Instant,
        now: Instant,
        rng: &mut (impl CryptoRngCore + ?Sized),
    ) -> Instant {
        let batched = match self.config.batching.flush_deadline(epoch) {
            Some(first) => next_period_boundary(epoch, first - epoch, now).max(first),
            None => now,
        };
        batched + self.config.jitter.jitter_delay(rng)
    }
}

/// The first `epoch + k * period` (k ≥ 1) at or after `now`.
fn next_period_boundary(epoch: Instant, period: Duration, now: Instant) -> Instant {
    if period.is_zero() || now <= epoch {
        return epoch + period;
    }
    let elapsed = (now - epoch).as_nanos();
    let p = period.as_nanos();
    let k = elapsed.div_ceil(p).max(1);
    let nanos = u64::try_from(k.saturating_mul(p)).unwrap_or(u64::MAX);
    epoch + Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use ournet_proto::privacy::{PRIVACY_LOW, PRIVACY_MEDIUM, PRIVACY_PARANOID};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn only_paranoid_paces_cells() {
        assert_eq!(Pacing::for_config(&PRIVACY_LOW), Pacing::Immediate);
        assert_eq!(Pacing::for_config(&PRIVACY_MEDIUM), Pacing::Immediate);
        assert!(matches!(
            Pacing::for_config(&PRIVACY_PARANOID),
            Pacing::ConstantRate { .. }
        ));
    }

    #[test]
    fn low_releases_at_once_and_medium_waits_for_the_batch_then_jitters() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let epoch = Instant::now();
        let now = epoch + Duration::from_millis(2500);
        assert_eq!(
            MessageDelay::new(PRIVACY_LOW).release_at(epoch, now, &mut rng),
            now
        );
        let medium = MessageDelay::new(PRIVACY_MEDIUM);
        for _ in 0..100 {
            let at = medium.release_at(epoch, now, &mut rng);
            // Flushes every 2 s: the next one after 2.5 s is at 4 s, plus 0-500 ms jitter.
            assert!(at >= epoch + Duration::from_secs(4), "{at:?}");
            assert!(at <= epoch + Duration::from_millis(4500), "{at:?}");
        }
    }

    #[test]
    fn period_boundaries() {
        let e = Instant::now();
        let p = Duration::from_secs(2);
        assert_eq!(next_period_boundary(e, p, e), e + p);
        assert_eq!(next_period_boundary(e, p, e + p), e + p);
        assert_eq!(
            next_period_boundary(e, p, e + p + Duration::from_nanos(1)),
            e + 2 * p
        );
        assert_eq!(next_period_boundary(e, Duration::ZERO, e + p), e);
    }
}
