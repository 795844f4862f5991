//! [`ConstantRateConfig`]: send on a fixed schedule, padding every message to one size and
//! sending padding when there is nothing real, so the wire shows the same pattern whatever the
//! user does.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::MIN_SEND_INTERVAL;
use super::sampling::duration_from_secs;
use crate::cell::CELL_LEN;

/// The longest gap [`ConstantRateConfig::cell_interval`] gives between two cells: an eighth
/// of the circuit build timeout, so the cells of a 3-hop build (and their waits for a slot)
/// fit in it with room to spare.
pub const MAX_CELL_INTERVAL: Duration = Duration::from_millis(1250);

/// Constant-rate sending (the reference's `ConstantRateConfig`).
///
/// The serde form has the reference's field names; missing fields take the defaults below.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConstantRateConfig {
    /// Whether sends follow the fixed schedule. Default `false`.
    pub enabled: bool,
    /// Target rate; the schedule has one slot every `60 / messages_per_minute` seconds.
    /// Default 10.
    pub messages_per_minute: f64,
    /// Size in bytes every message (real or padding) is padded to. Default 4096.
    pub pad_to_size: usize,
    /// Kept for compatibility: documented by the reference as "allow bursting above the rate
    /// for queued messages", but its sender never bursts, and neither does
    /// [`Self::next_send_deadline`]. Default `true`.
    pub allow_burst: bool,
    /// Kept for compatibility with `allow_burst`; unused. Default 5.
    pub max_burst_size: u32,
}

impl ConstantRateConfig {
    /// The reference defaults: disabled, 10 messages a minute, 4096-byte padding, bursts
    /// allowed up to 5.
    pub const DEFAULT: Self = Self {
        enabled: false,
        messages_per_minute: 10.0,
        pad_to_size: 4096,
        allow_burst: true,
        max_burst_size: 5,
    };

    /// Time between two slots (the reference's `get_send_interval`, there in seconds).
    ///
    /// `60 / messages_per_minute` seconds, or 60 s when the rate is not a positive finite
    /// number, and never less than [`MIN_SEND_INTERVAL`].
    pub fn send_interval(&self) -> Duration {
        duration_from_secs(self.send_interval_secs())
    }

    /// The pacing step for a client event loop: when the next constant-rate send is due.
    ///
    /// `last_send` is the instant of the previous constant-rate send; before the first one,
    /// pass the instant the schedule started (the first send is then due one interval later,
    /// as in the reference, whose sender sleeps before its first send). Returns
    /// `last_send + send_interval()`, but never earlier than `now`: a deadline already passed
    /// (the loop stalled) is due at once. Returns `None` when constant-rate sending is disabled
    /// or the deadline is beyond what [`Instant`] can represent.
    ///
    /// The loop waits until the deadline (as its `poll_timeout`), then sends the oldest queued
    /// message or, if there is none, a padding message; either is padded to `pad_to_size`
    /// bytes. It then records that send's `now` as `last_send` and asks again. Because the
    /// deadline is anchored on the actual send, two sends are never closer than one interval:
    /// a stalled loop sends once when it wakes and resumes the rhythm from there, with no
    /// catch-up burst for an observer to see. Timer lateness stretches the period slightly
    /// instead.
    pub fn next_send_deadline(&self, last_send: Instant, now: Instant) -> Option<Instant> {
        if !self.enabled {
            return None;
        }
        let due = last_send.checked_add(self.send_interval())?;
        Some(due.max(now))
    }

    /// Time between two cells on a link sending at this constant rate, or `None` when
    /// constant-rate sending is disabled.
    ///
    /// A link carries fixed-size cells, so the schedule is kept at the cell level: one slot of
    /// `pad_to_size` bytes every [`Self::send_interval`] is `ceil(pad_to_size / CELL_LEN)`
    /// cells, spread evenly across the interval (a burst per slot would show slot boundaries).
    /// Capped at [`MAX_CELL_INTERVAL`]: a 3-hop build needs three cells, each waiting for its
    /// slot, inside [`CIRCUIT_BUILD_TIMEOUT`](crate::circuit::CIRCUIT_BUILD_TIMEOUT), so a
    /// slower rate would make every circuit time out. Never below [`MIN_SEND_INTERVAL`].
    pub fn cell_interval(&self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        let cells = self.pad_to_size.div_ceil(CELL_LEN).max(1);
        let per_cell = self.send_interval_secs() / cells as f64;
        Some(duration_from_secs(per_cell).clamp(MIN_SEND_INTERVAL, MAX_CELL_INTERVAL))
    }

    /// [`Self::send_interval`] in seconds, for the latency estimate.
    pub(super) fn send_interval_secs(&self) -> f64 {
        let secs = if self.messages_per_minute.is_finite() && self.messages_per_minute > 0.0 {
            60.0 / self.messages_per_minute
        } else {
            60.0
        };
        secs.max(MIN_SEND_INTERVAL.as_secs_f64())
    }
}

impl Default for ConstantRateConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::t0 as base_instant;

    fn paranoid() -> ConstantRateConfig {
        ConstantRateConfig {
            enabled: true,
            messages_per_minute: 4.0,
            allow_burst: false,
            ..ConstantRateConfig::default()
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn defaults_are_the_reference_values() {
        let c = ConstantRateConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.messages_per_minute, 10.0);
        assert_eq!(c.pad_to_size, 4096);
        assert!(c.allow_burst);
        assert_eq!(c.max_burst_size, 5);
        assert_eq!(c.send_interval(), secs(6));
    }

    #[test]
    fn send_interval_from_rate() {
        assert_eq!(paranoid().send_interval(), secs(15));
        let half = ConstantRateConfig {
            messages_per_minute: 0.5,
            ..paranoid()
        };
        assert_eq!(half.send_interval(), secs(120));
    }

    #[test]
    fn bad_rates_fall_back_to_a_minute() {
        for rate in [0.0, -4.0, f64::NAN, f64::INFINITY] {
            let c = ConstantRateConfig {
                messages_per_minute: rate,
                ..paranoid()
            };
            assert_eq!(c.send_interval(), secs(60), "rate {rate}");
        }
    }

    #[test]
    fn absurd_rates_are_floored_so_the_loop_cannot_spin() {
        let c = ConstantRateConfig {
            messages_per_minute: 1e12,
            ..paranoid()
        };
        assert_eq!(c.send_interval(), MIN_SEND_INTERVAL);
    }

    #[test]
    fn first_send_is_one_interval_after_start() {
        let start = base_instant();
        assert_eq!(
            paranoid().next_send_deadline(start, start),
            Some(start + secs(15))
        );
    }

    #[test]
    fn deadline_is_stable_while_waiting() {
        let start = base_instant();
        let c = paranoid();
        for waited in [0, 1, 7, 14, 15] {
            assert_eq!(
                c.next_send_deadline(start, start + secs(waited)),
                Some(start + secs(15))
            );
        }
    }

    #[test]
    fn a_steady_loop_sends_every_interval() {
        let c = paranoid();
        let start = base_instant();
        let mut last_send = start;
        let mut sends = Vec::new();
        for _ in 0..4 {
            let due = c.next_send_deadline(last_send, last_send).unwrap();
            sends.push(due - start);
            last_send = due;
        }
        assert_eq!(sends, [secs(15), secs(30), secs(45), secs(60)]);
    }

    #[test]
    fn a_stalled_loop_sends_once_then_resumes_without_a_burst() {
        let c = paranoid();
        let start = base_instant();
        // Woken 100 s late: the missed slots are not replayed.
        let woke = start + secs(100);
        assert_eq!(c.next_send_deadline(start, woke), Some(woke));
        assert_eq!(c.next_send_deadline(woke, woke), Some(woke + secs(15)));
    }

    #[test]
    fn late_timer_stretches_the_period() {
        let c = paranoid();
        let start = base_instant();
        let sent = start + secs(15) + Duration::from_millis(3);
        assert_eq!(
            c.next_send_deadline(sent, sent),
            Some(start + secs(30) + Duration::from_millis(3))
        );
    }

    #[test]
    fn cell_interval_spreads_a_slot_over_its_cells_and_is_capped() {
        let fast = ConstantRateConfig {
            messages_per_minute: 600.0,
            ..paranoid()
        };
        // 100 ms per 4096-byte slot = 4 cells of 1024 bytes: 25 ms each.
        assert_eq!(fast.cell_interval(), Some(Duration::from_millis(25)));
        // The preset (4 a minute) would be 3.75 s a cell: capped so circuits can be built.
        assert_eq!(paranoid().cell_interval(), Some(MAX_CELL_INTERVAL));
        let off = ConstantRateConfig::DEFAULT;
        assert_eq!(off.cell_interval(), None);
        let zero_pad = ConstantRateConfig {
            pad_to_size: 0,
            messages_per_minute: 60_000.0,
            ..paranoid()
        };
        assert_eq!(zero_pad.cell_interval(), Some(MIN_SEND_INTERVAL));
        assert!(
            MAX_CELL_INTERVAL * 8 <= crate::circuit::CIRCUIT_BUILD_TIMEOUT,
            "three paced cells fit a build"
        );
    }

    #[test]
    fn disabled_has_no_deadline() {
        let start = base_instant();
        assert_eq!(
            ConstantRateConfig::default().next_send_deadline(start, start),
            None
        );
    }

    #[test]
    fn unrepresentable_deadline_is_none() {
        let c = ConstantRateConfig {
            messages_per_minute: 1e-300,
            ..paranoid()
        };
        assert_eq!(c.send_interval(), Duration::MAX);
        let start = base_instant();
        assert_eq!(c.next_send_deadline(start, start), None);
    }
}
