//! [`MixNetworkConfig`]: variable-length send paths and Loopix-style loop cover traffic.
//!
//! With mixing on, every send circuit gets its own length, drawn uniformly from
//! `min_hops..=max_hops` ([`MixNetworkConfig::draw_hops`]), so neither the recipient's home
//! nor an observer of a path can assume the usual three hops. The last hop is still one of the
//! recipient's homes: in our design the Loopix *provider* is the recipient's home relay, so
//! there is no separate provider to name (a non-null `provider_url` fails validation).
//!
//! Invariants:
//!
//! * A path is never longer than the onion format carries: [`MAX_MIX_HOPS`] is the tag-slot
//!   count of the RELAY body (PROTOCOL.md §5, `cell::MAX_HOPS`), and never shorter than
//!   [`MIN_PATH_HOPS`], the ordinary path, so turning mixing on never weakens a send.
//! * Every function is total: a config that fails [`MixNetworkConfig::validate`] is read
//!   clamped into `MIN_PATH_HOPS..=MAX_MIX_HOPS`, never a panic.
//! * The draw takes the caller's CSPRNG (sans-IO).
//!
//! Loop cover traffic (the `loop_cover_traffic` flag) is in [`super::loops`].

use std::ops::RangeInclusive;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use super::PrivacyConfigError;
use super::sampling::uniform_index;
use crate::cell::MAX_HOPS;

/// The ordinary send path (two relays, then a home of the recipient), and the shortest a mix
/// path may be or fall back to.
pub const MIN_PATH_HOPS: usize = 3;

/// The longest path the onion format carries: one tag slot per hop (PROTOCOL.md §5).
pub const MAX_MIX_HOPS: usize = MAX_HOPS;

/// Mix-network routing (the reference's `MixNetworkConfig`, seed-spec §2.6).
///
/// The reference defines these fields and nothing reads them (weakness W36). Here, when
/// `enabled`, each send circuit's length is drawn from `min_hops..=max_hops`, every message
/// gets a fresh circuit, and with `loop_cover_traffic` the node sends loop messages to itself
/// (see [`super::loops`]). The presets leave it off; turn it on with
/// `config.mix_network.enabled = true` on a [`super::TrafficAnalysisMitigationConfig`].
///
/// The serde form has the reference's field names; missing fields take the defaults below.
/// The reference's `to_dict` leaves out `loop_cover_traffic` (so it never survives a round
/// trip); this one writes it, which the reference's `from_dict` ignores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MixNetworkConfig {
    /// Whether sends take variable-length mix paths. Default `false`.
    pub enabled: bool,
    /// The reference's mix entry point. Must be `null`: a node's providers are its home
    /// relays, so a URL here would be silently ignored; [`Self::validate`] rejects it instead.
    pub provider_url: Option<String>,
    /// Fewest hops of a mix path, at least [`MIN_PATH_HOPS`]. Default 3.
    pub min_hops: u32,
    /// Most hops of a mix path, at most [`MAX_MIX_HOPS`]. Default 5.
    pub max_hops: u32,
    /// Whether the node sends loop cover messages to itself while mixing. Default `true`.
    pub loop_cover_traffic: bool,
}

impl MixNetworkConfig {
    /// The reference defaults: disabled, no provider, 3 to 5 hops, loop cover traffic on.
    pub const DEFAULT: Self = Self {
        enabled: false,
        provider_url: None,
        min_hops: 3,
        max_hops: 5,
        loop_cover_traffic: true,
    };

    /// Whether loop messages are sent: mixing and `loop_cover_traffic` both on.
    pub fn sends_loops(&self) -> bool {
        self.enabled && self.loop_cover_traffic
    }

    /// The hop counts a send path is drawn from: `min_hops..=max_hops` clamped into
    /// `MIN_PATH_HOPS..=MAX_MIX_HOPS` (an inverted range reads as its maximum); exactly
    /// [`MIN_PATH_HOPS`] when mixing is off.
    pub fn hop_range(&self) -> RangeInclusive<usize> {
        if !self.enabled {
            return MIN_PATH_HOPS..=MIN_PATH_HOPS;
        }
        let clamp = |h: u32| {
            usize::try_from(h).map_or(MAX_MIX_HOPS, |h| h.clamp(MIN_PATH_HOPS, MAX_MIX_HOPS))
        };
        let max = clamp(self.max_hops);
        clamp(self.min_hops).min(max)..=max
    }

    /// The length of one send circuit, uniform over [`Self::hop_range`].
    pub fn draw_hops(&self, rng: &mut (impl CryptoRngCore + ?Sized)) -> usize {
        let range = self.hop_range();
        let (lo, hi) = (*range.start(), *range.end());
        lo + uniform_index(rng, hi - lo + 1)
    }

    /// Checks the hop range and the provider.
    ///
    /// # Errors
    ///
    /// [`PrivacyConfigError::MixHops`] for `min_hops > max_hops`,
    /// [`PrivacyConfigError::MixHopsAboveOnionLimit`] for `max_hops` above [`MAX_MIX_HOPS`],
    /// [`PrivacyConfigError::MixHopsBelowPath`] for `min_hops` below [`MIN_PATH_HOPS`], and
    /// [`PrivacyConfigError::MixProvider`] for a `provider_url`.
    pub fn validate(&self) -> Result<(), PrivacyConfigError> {
        let (min_hops, max_hops) = (self.min_hops, self.max_hops);
        if min_hops > max_hops {
            return Err(PrivacyConfigError::MixHops { min_hops, max_hops });
        }
        if usize::try_from(max_hops).map_or(true, |h| h > MAX_MIX_HOPS) {
            return Err(PrivacyConfigError::MixHopsAboveOnionLimit { max_hops });
        }
        if usize::try_from(min_hops).is_ok_and(|h| h < MIN_PATH_HOPS) {
            return Err(PrivacyConfigError::MixHopsBelowPath { min_hops });
        }
        if self.provider_url.is_some() {
            return Err(PrivacyConfigError::MixProvider);
        }
        Ok(())
    }
}

impl Default for MixNetworkConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The path length to build when `available` relays (besides the home) can be used and
/// `drawn` hops were asked for: `drawn` when the network has enough relays, else the longest
/// path of at least [`MIN_PATH_HOPS`] it can make; `None` when not even that.
pub fn fit_hops(drawn: usize, available: usize) -> Option<usize> {
    let longest = available.saturating_add(1).min(drawn);
    (longest >= MIN_PATH_HOPS).then_some(longest)
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::privacy::{PRIVACY_PARANOID, PrivacyLevel, TrafficAnalysisMitigationConfig};

    fn mix(min_hops: u32, max_hops: u32) -> MixNetworkConfig {
        MixNetworkConfig {
            enabled: true,
            min_hops,
            max_hops,
            ..MixNetworkConfig::DEFAULT
        }
    }

    #[test]
    fn the_onion_limit_is_the_tag_slot_count() {
        assert_eq!(MAX_MIX_HOPS, 5);
        assert_eq!(MIN_PATH_HOPS, 3);
    }

    #[test]
    fn draws_stay_in_range_and_cover_it() {
        let mut rng = ChaCha20Rng::seed_from_u64(36);
        let config = mix(3, 5);
        let mut seen = [0u32; MAX_MIX_HOPS + 1];
        for _ in 0..3_000 {
            seen[config.draw_hops(&mut rng)] += 1;
        }
        assert_eq!(seen[..3], [0, 0, 0]);
        assert!(
            seen[3..].iter().all(|&n| (850..1150).contains(&n)),
            "{seen:?}"
        );
        let four_five = mix(4, 5);
        let draws: Vec<usize> = (0..200).map(|_| four_five.draw_hops(&mut rng)).collect();
        assert!(draws.iter().all(|h| (4..=5).contains(h)));
        assert!(draws.contains(&4) && draws.contains(&5));
        assert_eq!(mix(5, 5).draw_hops(&mut rng), 5);
    }

    #[test]
    fn off_means_the_ordinary_path() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let off = MixNetworkConfig {
            enabled: false,
            ..mix(5, 5)
        };
        assert_eq!(off.hop_range(), 3..=3);
        assert_eq!(off.draw_hops(&mut rng), 3);
        assert!(!off.sends_loops());
        assert!(mix(3, 5).sends_loops());
    }

    #[test]
    fn invalid_ranges_are_read_clamped() {
        assert_eq!(mix(1, 9).hop_range(), 3..=5);
        assert_eq!(mix(5, 4).hop_range(), 4..=4);
        assert_eq!(mix(0, 0).hop_range(), 3..=3);
        assert_eq!(mix(u32::MAX, u32::MAX).hop_range(), 5..=5);
    }

    #[test]
    fn validation_rejects_what_the_onion_cannot_carry() {
        assert_eq!(mix(3, 5).validate(), Ok(()));
        assert_eq!(mix(4, 4).validate(), Ok(()));
        assert_eq!(
            mix(3, 6).validate(),
            Err(PrivacyConfigError::MixHopsAboveOnionLimit { max_hops: 6 })
        );
        assert_eq!(
            mix(5, 4).validate(),
            Err(PrivacyConfigError::MixHops {
                min_hops: 5,
                max_hops: 4
            })
        );
        assert_eq!(
            mix(2, 5).validate(),
            Err(PrivacyConfigError::MixHopsBelowPath { min_hops: 2 })
        );
        let provider = MixNetworkConfig {
            provider_url: Some("http://mix.example".into()),
            ..mix(3, 5)
        };
        assert_eq!(provider.validate(), Err(PrivacyConfigError::MixProvider));
        let message = PrivacyConfigError::MixHopsAboveOnionLimit { max_hops: 6 }.to_string();
        assert!(message.contains("onion format carries"), "{message}");
    }

    #[test]
    fn the_whole_config_validates_its_mix_section() {
        let mut config = PRIVACY_PARANOID;
        assert_eq!(config.validate(), Ok(()));
        config.mix_network = mix(3, 8);
        assert_eq!(
            config.validate(),
            Err(PrivacyConfigError::MixHopsAboveOnionLimit { max_hops: 8 })
        );
        for level in PrivacyLevel::ALL {
            let preset = TrafficAnalysisMitigationConfig::from_privacy_level(level);
            assert!(
                !preset.mix_network.enabled,
                "{level}: mixing is off in presets"
            );
            assert_eq!(preset.validate(), Ok(()));
        }
    }

    #[test]
    fn dict_form_keeps_the_reference_fields() {
        let json = serde_json::to_value(mix(4, 5)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "enabled": true,
                "provider_url": null,
                "min_hops": 4,
                "max_hops": 5,
                "loop_cover_traffic": true
            })
        );
        let back: MixNetworkConfig =
            serde_json::from_str(r#"{"enabled": true, "provider_url": null}"#).unwrap();
        assert_eq!(back, mix(3, 5));
    }

    #[test]
    fn a_short_network_falls_back_to_the_longest_path_of_three_or_more() {
        assert_eq!(fit_hops(5, 4), Some(5));
        assert_eq!(fit_hops(5, 10), Some(5));
        assert_eq!(fit_hops(5, 3), Some(4));
        assert_eq!(fit_hops(5, 2), Some(3));
        assert_eq!(fit_hops(5, 1), None);
        assert_eq!(fit_hops(3, 2), Some(3));
        assert_eq!(fit_hops(3, 0), None);
    }
}
