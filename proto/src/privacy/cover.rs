//! [`CoverTrafficConfig`]: dummy messages sent while a client is idle, so silence does not
//! reveal that the user is away.

use std::time::Duration;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use super::MIN_SEND_INTERVAL;
use super::sampling::{duration_from_secs, exponential};

/// Idle cover traffic (the reference's `CoverTrafficConfig`, seed-spec §5.20).
///
/// The reference defines this configuration but nothing consumes it (weakness W36); the client
/// drives it through [`Self::next_interval`]. The serde form has the reference's field names;
/// missing fields take the defaults below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CoverTrafficConfig {
    /// Whether cover messages are sent at all. Default `false`.
    pub enabled: bool,
    /// Mean cover rate while idle. Default 2 per minute.
    pub rate_per_minute: f64,
    /// Seconds without real traffic after which the client counts as idle. Default 30.
    pub idle_threshold_seconds: f64,
    /// Whether cover messages are padded like real ones. Default `true`.
    pub pad_messages: bool,
    /// Peers to address cover messages to; empty means any. Default empty.
    pub target_peers: Vec<String>,
    /// Whether intervals are drawn at random (exponential) rather than fixed. Default `true`.
    pub randomize_timing: bool,
    /// Shortest random interval, in seconds. Default 15.
    pub min_interval_seconds: f64,
    /// Longest random interval, in seconds. Default 60.
    pub max_interval_seconds: f64,
}

impl CoverTrafficConfig {
    /// The reference defaults: disabled, 2 a minute after 30 s idle, padded, any peer,
    /// randomized between 15 and 60 s.
    pub const DEFAULT: Self = Self {
        enabled: false,
        rate_per_minute: 2.0,
        idle_threshold_seconds: 30.0,
        pad_messages: true,
        target_peers: Vec::new(),
        randomize_timing: true,
        min_interval_seconds: 15.0,
        max_interval_seconds: 60.0,
    };

    /// Time until the next cover message (the reference's `get_next_interval`); `None` (the
    /// reference's infinity) when cover traffic is disabled.
    ///
    /// The base interval is `60 / rate_per_minute` seconds (60 s when the rate is not a
    /// positive finite number). With `randomize_timing` the interval is an exponential draw
    /// with that mean, clamped to `[min_interval_seconds, max_interval_seconds]` (the minimum
    /// wins if the two are inverted); otherwise it is the base. Never less than
    /// [`MIN_SEND_INTERVAL`].
    pub fn next_interval(&self, rng: &mut (impl CryptoRngCore + ?Sized)) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        let base = if self.rate_per_minute.is_finite() && self.rate_per_minute > 0.0 {
            60.0 / self.rate_per_minute
        } else {
            60.0
        };
        let secs = if self.randomize_timing {
            exponential(rng, base)
                .min(self.max_interval_seconds)
                .max(self.min_interval_seconds)
        } else {
            base
        };
        Some(duration_from_secs(secs).max(MIN_SEND_INTERVAL))
    }
}

impl Default for CoverTrafficConfig {
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

    fn enabled() -> CoverTrafficConfig {
        CoverTrafficConfig {
            enabled: true,
            ..CoverTrafficConfig::default()
        }
    }

    #[test]
    fn defaults_are_the_reference_values() {
        let c = CoverTrafficConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.rate_per_minute, 2.0);
        assert_eq!(c.idle_threshold_seconds, 30.0);
        assert!(c.pad_messages);
        assert!(c.target_peers.is_empty());
        assert!(c.randomize_timing);
        assert_eq!(c.min_interval_seconds, 15.0);
        assert_eq!(c.max_interval_seconds, 60.0);
    }

    #[test]
    fn disabled_is_never() {
        assert_eq!(
            CoverTrafficConfig::default().next_interval(&mut FixedRng(0)),
            None
        );
    }

    #[test]
    fn fixed_timing_uses_the_base_interval() {
        let c = CoverTrafficConfig {
            randomize_timing: false,
            ..enabled()
        };
        assert_eq!(
            c.next_interval(&mut FixedRng(0)),
            Some(Duration::from_secs(30))
        );
        for rate in [0.0, -1.0, f64::NAN] {
            let c = CoverTrafficConfig {
                rate_per_minute: rate,
                ..c.clone()
            };
            assert_eq!(
                c.next_interval(&mut FixedRng(0)),
                Some(Duration::from_secs(60))
            );
        }
    }

    #[test]
    fn random_timing_exact_draws() {
        let c = enabled();
        // U = 0: Exp gives 0, clamped up to the 15 s minimum.
        assert_eq!(
            c.next_interval(&mut FixedRng(0)),
            Some(Duration::from_secs(15))
        );
        // U = 0.5: the median, 30 · ln 2 ≈ 20.79 s.
        let median = c.next_interval(&mut FixedRng(1 << 63)).unwrap();
        assert!((median.as_secs_f64() - 30.0 * std::f64::consts::LN_2).abs() < 1e-6);
        // The far tail is clamped down to the 60 s maximum.
        assert_eq!(
            c.next_interval(&mut FixedRng(u64::MAX)),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn random_draws_stay_within_bounds() {
        let c = enabled();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for _ in 0..2_000 {
            let interval = c.next_interval(&mut rng).unwrap();
            assert!(interval >= Duration::from_secs(15) && interval <= Duration::from_secs(60));
        }
    }

    #[test]
    fn inverted_bounds_give_the_minimum() {
        let c = CoverTrafficConfig {
            min_interval_seconds: 40.0,
            max_interval_seconds: 20.0,
            ..enabled()
        };
        assert_eq!(
            c.next_interval(&mut FixedRng(1 << 63)),
            Some(Duration::from_secs(40))
        );
    }

    #[test]
    fn zero_bounds_cannot_make_the_loop_spin() {
        let c = CoverTrafficConfig {
            min_interval_seconds: 0.0,
            max_interval_seconds: 0.0,
            ..enabled()
        };
        assert_eq!(
            c.next_interval(&mut FixedRng(1 << 63)),
            Some(MIN_SEND_INTERVAL)
        );
    }

    #[test]
    fn serde_uses_the_reference_names() {
        let value = serde_json::to_value(CoverTrafficConfig::default()).unwrap();
        let expected = serde_json::json!({
            "enabled": false,
            "rate_per_minute": 2.0,
            "idle_threshold_seconds": 30.0,
            "pad_messages": true,
            "target_peers": [],
            "randomize_timing": true,
            "min_interval_seconds": 15.0,
            "max_interval_seconds": 60.0,
        });
        assert_eq!(value, expected);
        let back: CoverTrafficConfig =
            serde_json::from_str(r#"{"enabled": true, "target_peers": ["a"]}"#).unwrap();
        assert_eq!(
            back,
            CoverTrafficConfig {
                target_peers: vec!["a".to_owned()],
                ..enabled()
            }
        );
    }
}
