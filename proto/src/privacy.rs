//! Traffic-analysis mitigations: privacy levels and the timing policies behind them.
//!
//! Encryption hides what a client says, not when it speaks or how much. An observer of the
//! client's link can match send times and sizes against the recipient's. The mitigations
//! break that link at a cost in latency and bandwidth:
//!
//! * **batching** ([`BatchingConfig`]): hold messages and release them together, shuffled;
//! * **jitter** ([`TimingJitterConfig`]): a random delay before each send;
//! * **constant rate** ([`ConstantRateConfig`]): one fixed-size message per time slot, padding
//!   when there is nothing to send;
//! * **cover traffic** ([`CoverTrafficConfig`]): dummy messages while idle;
//! * **mix network** ([`MixNetworkConfig`]): variable-length send paths (3 to 5 hops, one
//!   fresh circuit per message) and Loopix-style loop cover traffic ([`loops`]); off in every
//!   preset, turned on with `config.mix_network.enabled = true`.
//!
//! A [`PrivacyLevel`] names a preset of all of them ([`TrafficAnalysisMitigationConfig`]),
//! [`get_recommended_config`] picks one from three requirements, and
//! [`TrafficAnalysisMitigationConfig::estimate_latency_overhead`] says what it costs. A client
//! event loop drives the timing through pure helpers that return deadlines or delays:
//! [`ConstantRateConfig::next_send_deadline`], [`BatchingConfig::flush_deadline`],
//! [`TimingJitterConfig::jitter_delay`] and [`CoverTrafficConfig::next_interval`].
//!
//! Invariants:
//!
//! * Presets are values: the `PRIVACY_*` constants and every function return a fresh config,
//!   so changing one can never change another (the reference hands out shared mutable
//!   singletons, weakness W35).
//! * Every function is total: bad numbers (inverted bounds, zero or NaN rates) are read in a
//!   documented way and never panic; [`TrafficAnalysisMitigationConfig::validate`] reports them.
//! * Randomness comes from the caller's CSPRNG and time from the caller's `now`; no interval a
//!   client loop waits on is shorter than [`MIN_SEND_INTERVAL`].
//!
//! Implements seed-spec §2.6, §5.19 and §5.20, with the fixes of weaknesses W35 and W36.
//!
//! [`BatchingConfig`]: crate::privacy::BatchingConfig
//! [`TimingJitterConfig`]: crate::privacy::TimingJitterConfig
//! [`ConstantRateConfig`]: crate::privacy::ConstantRateConfig
//! [`CoverTrafficConfig`]: crate::privacy::CoverTrafficConfig
//! [`MixNetworkConfig`]: crate::privacy::MixNetworkConfig
//! [`PrivacyLevel`]: crate::privacy::PrivacyLevel
//! [`TrafficAnalysisMitigationConfig`]: crate::privacy::TrafficAnalysisMitigationConfig
//! [`get_recommended_config`]: crate::privacy::get_recommended_config
//! [`TrafficAnalysisMitigationConfig::estimate_latency_overhead`]: crate::privacy::TrafficAnalysisMitigationConfig::estimate_latency_overhead
//! [`TrafficAnalysisMitigationConfig::validate`]: crate::privacy::TrafficAnalysisMitigationConfig::validate
//! [`MIN_SEND_INTERVAL`]: crate::privacy::MIN_SEND_INTERVAL
//! [`MixNetworkConfig::draw_hops`]: crate::privacy::MixNetworkConfig::draw_hops
//! [`LoopCoverConfig::next_interval`]: crate::privacy::LoopCoverConfig::next_interval
//! [`LoopTracker`]: crate::privacy::LoopTracker
//! [`loops`]: crate::privacy::loops
//! [`ConstantRateConfig::next_send_deadline`]: crate::privacy::ConstantRateConfig::next_send_deadline
//! [`BatchingConfig::flush_deadline`]: crate::privacy::BatchingConfig::flush_deadline
//! [`TimingJitterConfig::jitter_delay`]: crate::privacy::TimingJitterConfig::jitter_delay
//! [`CoverTrafficConfig::next_interval`]: crate::privacy::CoverTrafficConfig::next_interval

mod batching;
mod constant_rate;
mod cover;
mod jitter;
pub mod loops;
mod mix;
mod sampling;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::batching::BatchingConfig;
pub use self::constant_rate::{ConstantRateConfig, MAX_CELL_INTERVAL};
pub use self::cover::CoverTrafficConfig;
pub use self::jitter::{JitterDistribution, TimingJitterConfig};
pub use self::loops::{LoopCoverConfig, LoopKey, LoopTracker};
pub use self::mix::{MAX_MIX_HOPS, MIN_PATH_HOPS, MixNetworkConfig, fit_hops};

/// The shortest interval a constant-rate or cover-traffic schedule ever asks a loop to wait.
///
/// A zero interval (from an absurd rate) would make the client send as fast as it can; 1 ms
/// caps that at 1000 messages a second.
pub const MIN_SEND_INTERVAL: Duration = Duration::from_millis(1);

/// A named preset of mitigations, from fastest to most private.
///
/// Serialized as `"low"`, `"medium"`, `"high"` or `"paranoid"`; any other name is an error,
/// as in the reference. Ordered by strength, so `level >= PrivacyLevel::High` reads naturally.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PrivacyLevel {
    /// No mitigation: best latency, no protection.
    #[default]
    Low,
    /// Small shuffled batches every 2 s and 0–500 ms of uniform jitter.
    Medium,
    /// Larger batches every 5 s and 100–2000 ms of exponential jitter.
    High,
    /// Large batches every 15 s, 500–5000 ms of exponential jitter, and constant-rate sending
    /// of 4 padded messages a minute.
    Paranoid,
}

impl PrivacyLevel {
    /// Every level, weakest first.
    pub const ALL: [Self; 4] = [Self::Low, Self::Medium, Self::High, Self::Paranoid];

    /// The reference's string name, which is also the serde form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Paranoid => "paranoid",
        }
    }
}

impl fmt::Display for PrivacyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every traffic-analysis mitigation setting of a client, usually one [`PrivacyLevel`]'s preset.
///
/// The serde form is the reference's `to_dict`/`from_dict`: `{privacy_level, batching, jitter,
/// constant_rate, mix_network, adaptive, metrics_enabled}`, nested objects with the field
/// names of each config. Missing keys take the defaults (those of [`PRIVACY_LOW`]); an
/// unknown privacy level or jitter distribution is an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrafficAnalysisMitigationConfig {
    /// The level this config was built from; informational once fields are changed.
    pub privacy_level: PrivacyLevel,
    /// Message batching.
    pub batching: BatchingConfig,
    /// Per-message random delay.
    pub jitter: TimingJitterConfig,
    /// Fixed-schedule sending.
    pub constant_rate: ConstantRateConfig,
    /// Mix-network routing and loop cover traffic (off in every preset).
    pub mix_network: MixNetworkConfig,
    /// Reserved: adjust settings to network conditions (no behaviour). Default `false`.
    pub adaptive: bool,
    /// Whether the client keeps timing metrics. Default `true`.
    pub metrics_enabled: bool,
}

/// The LOW preset: no mitigation (also the default config).
pub const PRIVACY_LOW: TrafficAnalysisMitigationConfig =
    TrafficAnalysisMitigationConfig::from_privacy_level(PrivacyLevel::Low);
/// The MEDIUM preset: batches of 2–4 every 2 s, 0–500 ms uniform jitter.
pub const PRIVACY_MEDIUM: TrafficAnalysisMitigationConfig =
    TrafficAnalysisMitigationConfig::from_privacy_level(PrivacyLevel::Medium);
/// The HIGH preset: batches of 4–8 every 5 s, 100–2000 ms exponential jitter.
pub const PRIVACY_HIGH: TrafficAnalysisMitigationConfig =
    TrafficAnalysisMitigationConfig::from_privacy_level(PrivacyLevel::High);
/// The PARANOID preset: batches of 8–16 every 15 s, 500–5000 ms exponential jitter, constant
/// rate of 4 messages a minute padded to 4096 bytes.
pub const PRIVACY_PARANOID: TrafficAnalysisMitigationConfig =
    TrafficAnalysisMitigationConfig::from_privacy_level(PrivacyLevel::Paranoid);

impl TrafficAnalysisMitigationConfig {
    /// A fresh copy of `level`'s preset (seed-spec §5.19):
    ///
    /// | level    | batching (min/max/interval ms) | jitter (ms)       | constant rate     |
    /// |----------|--------------------------------|-------------------|-------------------|
    /// | low      | off                            | off               | off               |
    /// | medium   | 2 / 4 / 2000, shuffled         | 0–500 uniform     | off               |
    /// | high     | 4 / 8 / 5000, shuffled         | 100–2000 exp.     | off (6/min set)   |
    /// | paranoid | 8 / 16 / 15000, shuffled       | 500–5000 exp.     | 4/min, no burst   |
    ///
    /// The mix network is off at every level (as in the reference); set
    /// `mix_network.enabled = true` on the result to turn it on.
    pub const fn from_privacy_level(level: PrivacyLevel) -> Self {
        let (batching, jitter, constant_rate) = match level {
            PrivacyLevel::Low => (
                BatchingConfig::DEFAULT,
                TimingJitterConfig::DEFAULT,
                ConstantRateConfig::DEFAULT,
            ),
            PrivacyLevel::Medium => (
                batches(2, 4, 2000),
                jitter(0, 500, JitterDistribution::Uniform),
                ConstantRateConfig::DEFAULT,
            ),
            PrivacyLevel::High => (
                batches(4, 8, 5000),
                jitter(100, 2000, JitterDistribution::Exponential),
                ConstantRateConfig {
                    messages_per_minute: 6.0,
                    ..ConstantRateConfig::DEFAULT
                },
            ),
            PrivacyLevel::Paranoid => (
                batches(8, 16, 15_000),
                jitter(500, 5000, JitterDistribution::Exponential),
                ConstantRateConfig {
                    enabled: true,
                    messages_per_minute: 4.0,
                    pad_to_size: 4096,
                    allow_burst: false,
                    max_burst_size: ConstantRateConfig::DEFAULT.max_burst_size,
                },
            ),
        };
        Self {
            privacy_level: level,
            batching,
            jitter,
            constant_rate,
            mix_network: MixNetworkConfig::DEFAULT,
            adaptive: false,
            metrics_enabled: true,
        }
    }

    /// What the enabled mitigations add to a message's latency, in whole milliseconds.
    ///
    /// Integer arithmetic as in the reference: batching adds its interval to the maximum and
    /// half of it to the average; jitter adds its bounds to the minimum and maximum and, to the
    /// average, `(max - min) / 2` (exponential) or `(min + max) / 2` (uniform); constant rate
    /// adds one send interval to the maximum and half of it to the average. The presets give
    /// 0/0/0, 0/2500/1250, 100/7000/3450 and 500/35000/17250 (min/max/avg).
    pub fn estimate_latency_overhead(&self) -> LatencyOverhead {
        let mut overhead = LatencyOverhead {
            privacy_level: self.privacy_level,
            min_delay_ms: 0,
            max_delay_ms: 0,
            avg_delay_ms: 0,
        };
        if self.batching.enabled {
            overhead.add(0, self.batching.batch_interval_ms);
        }
        if self.jitter.enabled {
            let (min, max) = (self.jitter.min_delay_ms, self.jitter.max_delay_ms);
            let avg = match self.jitter.distribution {
                JitterDistribution::Exponential => max.saturating_sub(min) / 2,
                JitterDistribution::Uniform => min.saturating_add(max) / 2,
            };
            overhead.min_delay_ms = overhead.min_delay_ms.saturating_add(min);
            overhead.max_delay_ms = overhead.max_delay_ms.saturating_add(max);
            overhead.avg_delay_ms = overhead.avg_delay_ms.saturating_add(avg);
        }
        if self.constant_rate.enabled {
            // Truncated, as the reference's `int(interval * 1000)`.
            let interval_ms = (self.constant_rate.send_interval_secs() * 1000.0) as u64;
            overhead.add(0, interval_ms);
        }
        overhead
    }

    /// Checks that every section is coherent; the first problem found is returned.
    ///
    /// Nothing requires a valid config (every function reads bad values in a documented way),
    /// but a config loaded from a file should pass this before use.
    ///
    /// # Errors
    ///
    /// The [`PrivacyConfigError`] naming the first incoherent setting, checked in field order.
    pub fn validate(&self) -> Result<(), PrivacyConfigError> {
        let b = &self.batching;
        if b.max_batch_size == 0 || b.min_batch_size > b.max_batch_size {
            return Err(PrivacyConfigError::BatchSize {
                min_batch_size: b.min_batch_size,
                max_batch_size: b.max_batch_size,
            });
        }
        let j = &self.jitter;
        if j.min_delay_ms > j.max_delay_ms {
            return Err(PrivacyConfigError::JitterRange {
                min_delay_ms: j.min_delay_ms,
                max_delay_ms: j.max_delay_ms,
            });
        }
        let rate = self.constant_rate.messages_per_minute;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(PrivacyConfigError::SendRate {
                messages_per_minute: rate,
            });
        }
        self.mix_network.validate()
    }
}

impl Default for TrafficAnalysisMitigationConfig {
    /// The LOW preset, as the reference's no-argument constructor.
    fn default() -> Self {
        PRIVACY_LOW
    }
}

/// The latency a config adds, from [`TrafficAnalysisMitigationConfig::estimate_latency_overhead`].
///
/// The serde form is the reference's dict: `{privacy_level, min_delay_ms, max_delay_ms,
/// avg_delay_ms}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyOverhead {
    /// The config's privacy level.
    pub privacy_level: PrivacyLevel,
    /// Least added delay, in milliseconds.
    pub min_delay_ms: u64,
    /// Worst-case added delay, in milliseconds.
    pub max_delay_ms: u64,
    /// Typical added delay, in milliseconds.
    pub avg_delay_ms: u64,
}

impl LatencyOverhead {
    /// Adds a wait of up to `max_ms` (`min_ms` at least) with an average of half of `max_ms`.
    fn add(&mut self, min_ms: u64, max_ms: u64) {
        self.min_delay_ms = self.min_delay_ms.saturating_add(min_ms);
        self.max_delay_ms = self.max_delay_ms.saturating_add(max_ms);
        self.avg_delay_ms = self.avg_delay_ms.saturating_add(max_ms / 2);
    }
}

/// An incoherent mitigation setting, from [`TrafficAnalysisMitigationConfig::validate`].
///
/// All of these are local misuse (a bad config file or API call), never a peer's fault.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PrivacyConfigError {
    /// `max_batch_size` is 0, or below `min_batch_size`.
    #[error("batch size range {min_batch_size}..={max_batch_size} is empty")]
    BatchSize {
        /// The configured minimum.
        min_batch_size: usize,
        /// The configured maximum.
        max_batch_size: usize,
    },
    /// The jitter minimum is above the maximum.
    #[error("jitter range {min_delay_ms}..={max_delay_ms} ms is inverted")]
    JitterRange {
        /// The configured minimum.
        min_delay_ms: u64,
        /// The configured maximum.
        max_delay_ms: u64,
    },
    /// The constant-rate rate is zero, negative or not finite.
    #[error("constant rate of {messages_per_minute} messages a minute is not a positive number")]
    SendRate {
        /// The configured rate.
        messages_per_minute: f64,
    },
    /// The mix-network hop minimum is above the maximum.
    #[error("mix hop range {min_hops}..={max_hops} is inverted")]
    MixHops {
        /// The configured minimum.
        min_hops: u32,
        /// The configured maximum.
        max_hops: u32,
    },
    /// The mix-network hop maximum is above what the onion format carries.
    #[error(
        "mix max_hops {max_hops} is above the {limit} hops the onion format carries",
        limit = MAX_MIX_HOPS
    )]
    MixHopsAboveOnionLimit {
        /// The configured maximum.
        max_hops: u32,
    },
    /// The mix-network hop minimum is below the ordinary path, which mixing must not weaken.
    #[error(
        "mix min_hops {min_hops} is below the ordinary {path}-hop path",
        path = MIN_PATH_HOPS
    )]
    MixHopsBelowPath {
        /// The configured minimum.
        min_hops: u32,
    },
    /// A `provider_url` is set: a node's providers are its home relays, so it would be
    /// ignored.
    #[error(
        "mix provider_url is not supported: the node's home relays are its providers; set it \
         to null"
    )]
    MixProvider,
}

/// A fresh config for three requirements (the reference's `get_recommended_config`).
///
/// | `high_security` | `latency_sensitive` | `bandwidth_limited` | result                     |
/// |-----------------|---------------------|---------------------|----------------------------|
/// | yes             | no                  | yes                 | HIGH (constant rate off)   |
/// | yes             | no                  | no                  | PARANOID                   |
/// | yes             | yes                 | any                 | MEDIUM, jitter max 200 ms, batch interval 1000 ms |
/// | no              | yes                 | any                 | LOW                        |
/// | no              | no                  | any                 | MEDIUM                     |
///
/// The reference returns its shared preset objects for PARANOID, LOW and MEDIUM (weakness
/// W35); every result here is a new value. The arguments are booleans: the reference's README
/// passes a `PrivacyLevel` as the first one, which Python reads as `latency_sensitive = true`.
pub fn get_recommended_config(
    latency_sensitive: bool,
    bandwidth_limited: bool,
    high_security: bool,
) -> TrafficAnalysisMitigationConfig {
    match (high_security, latency_sensitive) {
        (true, false) if bandwidth_limited => {
            let mut config = PRIVACY_HIGH;
            config.constant_rate.enabled = false;
            config
        }
        (true, false) => PRIVACY_PARANOID,
        (true, true) => {
            let mut config = PRIVACY_MEDIUM;
            config.jitter.max_delay_ms = 200;
            config.batching.batch_interval_ms = 1000;
            config
        }
        (false, true) => PRIVACY_LOW,
        (false, false) => PRIVACY_MEDIUM,
    }
}

/// An enabled, shuffled batching config (for the presets).
const fn batches(min_batch_size: usize, max_batch_size: usize, interval_ms: u64) -> BatchingConfig {
    BatchingConfig {
        enabled: true,
        min_batch_size,
        max_batch_size,
        batch_interval_ms: interval_ms,
        randomize_order: true,
    }
}

/// An enabled jitter config (for the presets).
const fn jitter(
    min_delay_ms: u64,
    max_delay_ms: u64,
    distribution: JitterDistribution,
) -> TimingJitterConfig {
    TimingJitterConfig {
        enabled: true,
        min_delay_ms,
        max_delay_ms,
        distribution,
    }
}

#[cfg(test)]
mod tests;
