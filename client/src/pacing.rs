//! How a privacy level shows on the wire (spec §5.19, PROTOCOL.md §9): the part the link
//! driver applies to cells ([`Pacing`]). The part applied to messages (batching, jitter) is
//! in `node::batch`. The decisions themselves (intervals, delays, batch order) are
//! `proto::privacy`'s pure functions; this module only picks which ones apply.

use std::time::Duration;

use ournet_proto::privacy::TrafficAnalysisMitigationConfig;

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

#[cfg(test)]
mod tests {
    use ournet_proto::privacy::{PRIVACY_LOW, PRIVACY_MEDIUM, PRIVACY_PARANOID};

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
}
