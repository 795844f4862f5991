//! [`TimingJitterConfig`]: a random delay before each send, so send times stop matching
//! compose times.

use std::time::Duration;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use super::sampling::{duration_from_secs, exponential, unit_interval};

/// The shape of the jitter delay.
///
/// Serialized as `"uniform"` or `"exponential"`. The reference treats any other string as
/// uniform; here an unknown name is a deserialization error, so a typo cannot silently change
/// the distribution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JitterDistribution {
    /// Uniform over `[min, max]`.
    #[default]
    Uniform,
    /// `min` plus an exponential with mean `(max - min) / 2`, capped at `max`.
    Exponential,
}

/// Random per-message delay (the reference's `TimingJitterConfig`).
///
/// The serde form has the reference's field names; missing fields take the defaults below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimingJitterConfig {
    /// Whether messages are delayed at all. Default `false`.
    pub enabled: bool,
    /// Smallest delay in milliseconds. Default 0.
    pub min_delay_ms: u64,
    /// Largest delay in milliseconds. Default 500.
    pub max_delay_ms: u64,
    /// How delays are spread between the two. Default uniform.
    pub distribution: JitterDistribution,
}

impl TimingJitterConfig {
    /// The reference defaults: disabled, 0 to 500 ms, uniform.
    pub const DEFAULT: Self = Self {
        enabled: false,
        min_delay_ms: 0,
        max_delay_ms: 500,
        distribution: JitterDistribution::Uniform,
    };

    /// Draws the delay to wait before the next send; zero when jitter is disabled.
    ///
    /// Uniform gives `U(min, max)` ms. Exponential gives `min + Exp(mean = (max - min) / 2)`
    /// ms, capped at `max`. The result is always in `[min, max]`. When `min == max` both give
    /// exactly `min` (the reference divides by zero there, weakness W35), and a `max` below
    /// `min` is read as `min`.
    pub fn jitter_delay(&self, rng: &mut (impl CryptoRngCore + ?Sized)) -> Duration {
        if !self.enabled {
            return Duration::ZERO;
        }
        let max_delay_ms = self.max_delay_ms.max(self.min_delay_ms);
        let span_ms = (max_delay_ms - self.min_delay_ms) as f64;
        let offset_ms = match self.distribution {
            JitterDistribution::Uniform => span_ms * unit_interval(rng),
            JitterDistribution::Exponential => exponential(rng, span_ms / 2.0).min(span_ms),
        };
        // Whole milliseconds stay integers, so `min` is exact; the cap absorbs float rounding.
        Duration::from_millis(self.min_delay_ms)
            .saturating_add(duration_from_secs(offset_ms / 1000.0))
            .min(Duration::from_millis(max_delay_ms))
    }
}

impl Default for TimingJitterConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::privacy::sampling::FixedRng;

    /// `U = 0.5` from [`unit_interval`].
    const HALF: u64 = 1 << 63;

    fn config(min: u64, max: u64, distribution: JitterDistribution) -> TimingJitterConfig {
        TimingJitterConfig {
            enabled: true,
            min_delay_ms: min,
            max_delay_ms: max,
            distribution,
        }
    }

    fn assert_micros(actual: Duration, expected_ms: f64) {
        let actual_ms = actual.as_secs_f64() * 1000.0;
        assert!(
            (actual_ms - expected_ms).abs() < 1e-3,
            "expected {expected_ms} ms, got {actual_ms} ms"
        );
    }

    #[test]
    fn defaults_are_the_reference_values() {
        let c = TimingJitterConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.min_delay_ms, 0);
        assert_eq!(c.max_delay_ms, 500);
        assert_eq!(c.distribution, JitterDistribution::Uniform);
    }

    #[test]
    fn disabled_means_no_delay() {
        let c = TimingJitterConfig {
            enabled: false,
            ..config(100, 2000, JitterDistribution::Exponential)
        };
        assert_eq!(c.jitter_delay(&mut FixedRng(HALF)), Duration::ZERO);
    }

    #[test]
    fn uniform_exact_draws() {
        let c = config(100, 500, JitterDistribution::Uniform);
        assert_eq!(c.jitter_delay(&mut FixedRng(0)), Duration::from_millis(100));
        assert_eq!(
            c.jitter_delay(&mut FixedRng(HALF)),
            Duration::from_millis(300)
        );
        // U just below 1 lands on max once rounded to whole nanoseconds, never above it.
        let top = c.jitter_delay(&mut FixedRng(u64::MAX));
        assert!(top <= Duration::from_millis(500) && top > Duration::from_micros(499_999));
    }

    #[test]
    fn exponential_exact_draws() {
        let c = config(100, 2000, JitterDistribution::Exponential);
        assert_eq!(c.jitter_delay(&mut FixedRng(0)), Duration::from_millis(100));
        // 100 + 950 · ln 2
        assert_micros(
            c.jitter_delay(&mut FixedRng(HALF)),
            100.0 + 950.0 * std::f64::consts::LN_2,
        );
        // The tail is capped at max.
        assert_eq!(
            c.jitter_delay(&mut FixedRng(u64::MAX)),
            Duration::from_millis(2000)
        );
    }

    #[test]
    fn equal_bounds_return_min_for_both_distributions() {
        for distribution in [JitterDistribution::Uniform, JitterDistribution::Exponential] {
            let c = config(250, 250, distribution);
            for word in [0, HALF, u64::MAX] {
                assert_eq!(
                    c.jitter_delay(&mut FixedRng(word)),
                    Duration::from_millis(250)
                );
            }
        }
        let zero = config(0, 0, JitterDistribution::Exponential);
        assert_eq!(zero.jitter_delay(&mut FixedRng(HALF)), Duration::ZERO);
    }

    #[test]
    fn inverted_bounds_read_as_min() {
        for distribution in [JitterDistribution::Uniform, JitterDistribution::Exponential] {
            let c = config(800, 200, distribution);
            assert_eq!(
                c.jitter_delay(&mut FixedRng(HALF)),
                Duration::from_millis(800)
            );
        }
    }

    #[test]
    fn uniform_draws_stay_in_range_with_the_right_mean() {
        let c = config(0, 500, JitterDistribution::Uniform);
        let mut rng = ChaCha20Rng::seed_from_u64(42);
        let draws: Vec<f64> = (0..10_000)
            .map(|_| c.jitter_delay(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        assert!(draws.iter().all(|&d| (0.0..=500.0).contains(&d)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 250.0).abs() < 8.0, "{mean}");
    }

    #[test]
    fn exponential_draws_stay_in_range_with_the_capped_mean() {
        let c = config(100, 2000, JitterDistribution::Exponential);
        let mut rng = ChaCha20Rng::seed_from_u64(42);
        let draws: Vec<f64> = (0..10_000)
            .map(|_| c.jitter_delay(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        assert!(draws.iter().all(|&d| (100.0..=2000.0).contains(&d)));
        // E[min(Exp(m), 2m)] = m · (1 - e^-2) with m = 950.
        let expected = 100.0 + 950.0 * (1.0 - (-2.0f64).exp());
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - expected).abs() < 20.0, "{mean} vs {expected}");
    }

    #[test]
    fn same_seed_same_delays() {
        let c = config(100, 2000, JitterDistribution::Exponential);
        let mut a = ChaCha20Rng::seed_from_u64(9);
        let mut b = ChaCha20Rng::seed_from_u64(9);
        for _ in 0..50 {
            assert_eq!(c.jitter_delay(&mut a), c.jitter_delay(&mut b));
        }
    }

    #[test]
    fn huge_bounds_do_not_panic() {
        let c = config(u64::MAX - 1, u64::MAX, JitterDistribution::Uniform);
        assert!(c.jitter_delay(&mut FixedRng(HALF)) > Duration::from_secs(1 << 50));
    }

    #[test]
    fn distribution_names() {
        assert_eq!(
            serde_json::to_string(&JitterDistribution::Exponential).unwrap(),
            "\"exponential\""
        );
        assert_eq!(
            serde_json::from_str::<JitterDistribution>("\"uniform\"").unwrap(),
            JitterDistribution::Uniform
        );
        assert!(serde_json::from_str::<JitterDistribution>("\"exponental\"").is_err());
    }
}
