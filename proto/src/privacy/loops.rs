//! Loop cover traffic (Loopix, Piotrowska et al. 2017, §4.2): while mixing, a node sends
//! messages to its own address through ordinary mix paths and counts how many come back.
//!
//! A loop is an ordinary envelope, sealed to the node itself, on an ordinary circuit with the
//! ordinary ACK flow; no relay can tell it from a real message. Its content starts with a
//! [`LoopToken`], an HMAC of the message id under a key derived from the node's identity
//! secret ([`LoopKey`]), so only the node can make one and it recognises its own loops even
//! after a restart or past the return timeout: a loop never reaches the app. The rest of the
//! content is padding to the length of one of the node's recent real messages
//! ([`LoopSizes`]), so a loop takes as many cells as the node's real traffic does.
//!
//! Loops that do not come back within [`LoopCoverConfig::return_timeout`] are lost. Honest
//! relays lose few; a rising loss rate means someone drops or delays this node's traffic (an
//! n-1 attack isolates a target by blocking everyone else's messages), so [`LoopTracker`]
//! raises a [`LossAlarm`] once the recent loss ratio reaches a threshold.
//!
//! Sans-IO: [`LoopTracker`] takes `now` as an argument and says when it next needs to run
//! ([`LoopTracker::poll_timeout`]); [`LoopCoverConfig::next_interval`] takes the RNG.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::MIN_SEND_INTERVAL;
use super::sampling::{duration_from_secs, exponential, uniform_index};
use crate::ct::CtArray;
use crate::keys::IdentityKeypair;

/// Length of a loop message's content.
pub const LOOP_TOKEN_LEN: usize = 32;

/// Outcomes the loss ratio is computed over (the most recent ones).
pub const LOSS_WINDOW: usize = 32;

/// Most loops awaiting return; sending one more counts the oldest as lost.
pub const MAX_OUTSTANDING_LOOPS: usize = 1024;

/// Recent real message lengths a loop's length is drawn from.
pub const SIZE_SAMPLES: usize = 64;

/// The longest loop content: loops copy the sizes of real messages, but never cost more than
/// this many bytes each.
pub const MAX_LOOP_LEN: usize = 64 * 1024;

/// HKDF info for the loop key.
const LOOP_KEY_INFO: &[u8] = b"ournet loop-cover key v1";

/// How a node sends loops and judges their losses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopCoverConfig {
    /// Mean time between two loops; intervals are exponential (a Poisson process, so loop
    /// times say nothing about real traffic). Default 10 s.
    pub mean_interval: Duration,
    /// A loop not back within this long is lost. Default 60 s (it must cover batching,
    /// jitter and the ACK round trip of the slowest privacy level in use).
    pub return_timeout: Duration,
    /// Loss ratio over the last [`LOSS_WINDOW`] outcomes that raises a [`LossAlarm`].
    /// Default 0.25.
    pub warn_loss_ratio: f64,
    /// Outcomes needed before any alarm, so one early loss is not a 100 % rate. Default 8.
    pub min_outcomes: usize,
}

impl LoopCoverConfig {
    /// Defaults: a loop every 10 s on average, lost after 60 s, alarm at 25 % of the last
    /// [`LOSS_WINDOW`] outcomes once 8 are known.
    pub const DEFAULT: Self = Self {
        mean_interval: Duration::from_secs(10),
        return_timeout: Duration::from_secs(60),
        warn_loss_ratio: 0.25,
        min_outcomes: 8,
    };

    /// Time until the next loop: an exponential draw with mean `mean_interval`, never less
    /// than [`MIN_SEND_INTERVAL`].
    pub fn next_interval(&self, rng: &mut (impl CryptoRngCore + ?Sized)) -> Duration {
        let secs = exponential(rng, self.mean_interval.as_secs_f64());
        duration_from_secs(secs).max(MIN_SEND_INTERVAL)
    }
}

impl Default for LoopCoverConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The node's key for loop tokens, derived from its identity secret.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct LoopKey([u8; 32]);

impl LoopKey {
    /// Derives the key with HKDF-SHA256 from `identity`'s secret, so it survives restarts
    /// (a loop queued at a home while the node was away is still recognised).
    pub fn derive(identity: &IdentityKeypair) -> Self {
        let secret = identity.secret_bytes();
        let mut key = Self([0u8; 32]);
        Hkdf::<Sha256>::new(None, &secret[..])
            .expand(LOOP_KEY_INFO, &mut key.0)
            .expect("32 bytes is within HKDF-SHA256's 8160-byte output limit");
        key
    }

    /// The content of the loop with id `message_id`.
    pub fn token(&self, message_id: &[u8; 16]) -> LoopToken {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(message_id);
        LoopToken(CtArray::new(mac.finalize().into_bytes().into()))
    }

    /// Whether a message this node signed, with id `message_id` and `content`, is one of its
    /// loops: `content` starts with the token (constant-time comparison); padding follows.
    pub fn is_loop(&self, message_id: &[u8; 16], content: &[u8]) -> bool {
        content
            .first_chunk::<LOOP_TOKEN_LEN>()
            .is_some_and(|c| LoopToken(CtArray::new(*c)) == self.token(message_id))
    }

    /// The content of loop `message_id`, `len` bytes long (at least the token): the token,
    /// then zeros (the envelope encrypts them).
    pub fn content(&self, message_id: &[u8; 16], len: usize) -> Vec<u8> {
        let mut content = self.token(message_id).expose().to_vec();
        content.resize(len.max(LOOP_TOKEN_LEN), 0);
        content
    }
}

impl std::fmt::Debug for LoopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoopKey(..)")
    }
}

/// A loop message's content: only the node can compute it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopToken(CtArray<LOOP_TOKEN_LEN>);

impl LoopToken {
    /// The bytes to seal as the loop's content.
    pub fn expose(&self) -> &[u8; LOOP_TOKEN_LEN] {
        self.0.expose()
    }
}

/// The lengths of the node's recent real messages, from which each loop's length is drawn, so
/// loops and real messages have the same size distribution on the wire.
#[derive(Debug, Default)]
pub struct LoopSizes {
    recent: VecDeque<usize>,
}

impl LoopSizes {
    /// Notes a real message of `len` content bytes (the oldest note goes past
    /// [`SIZE_SAMPLES`]).
    pub fn record(&mut self, len: usize) {
        if self.recent.len() >= SIZE_SAMPLES {
            self.recent.pop_front();
        }
        self.recent.push_back(len);
    }

    /// A loop's content length: a uniformly drawn recent real length, at least
    /// [`LOOP_TOKEN_LEN`] and at most [`MAX_LOOP_LEN`]; [`LOOP_TOKEN_LEN`] before any.
    pub fn draw(&self, rng: &mut (impl CryptoRngCore + ?Sized)) -> usize {
        let len = self
            .recent
            .get(uniform_index(rng, self.recent.len()))
            .copied()
            .unwrap_or(0);
        len.clamp(LOOP_TOKEN_LEN, MAX_LOOP_LEN)
    }
}

/// Loop totals since the tracker was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopCounts {
    /// Loops put on a circuit.
    pub sent: u64,
    /// Loops that came back in time.
    pub returned: u64,
    /// Loops not back within the timeout (or pushed out past [`MAX_OUTSTANDING_LOOPS`]).
    pub lost: u64,
}

/// Raised once when the recent loss ratio reaches the threshold (again only after it fell
/// below): the Loopix signal of an active attack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossAlarm {
    /// Lost loops among the recent outcomes.
    pub lost: usize,
    /// Recent outcomes counted.
    pub outcomes: usize,
}

/// What a returning loop was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopReturn {
    /// Awaited, and back in time.
    Returned,
    /// Not awaited: already counted lost, a second copy, or from before a restart.
    Stale,
}

/// The loops in flight and the recent outcomes.
#[derive(Debug)]
pub struct LoopTracker {
    config: LoopCoverConfig,
    /// Loop ids with their send time, oldest first.
    outstanding: VecDeque<([u8; 16], Instant)>,
    /// Recent outcomes, `true` = lost, at most [`LOSS_WINDOW`].
    recent: VecDeque<bool>,
    alarmed: bool,
    counts: LoopCounts,
}

impl LoopTracker {
    /// An empty tracker.
    pub fn new(config: LoopCoverConfig) -> Self {
        Self {
            config,
            outstanding: VecDeque::new(),
            recent: VecDeque::with_capacity(LOSS_WINDOW),
            alarmed: false,
            counts: LoopCounts::default(),
        }
    }

    /// Records loop `id` sent at `now`. Past [`MAX_OUTSTANDING_LOOPS`] the oldest is lost.
    pub fn on_sent(&mut self, id: [u8; 16], now: Instant) -> Option<LossAlarm> {
        self.counts.sent += 1;
        self.outstanding.push_back((id, now));
        let mut alarm = None;
        while self.outstanding.len() > MAX_OUTSTANDING_LOOPS {
            self.outstanding.pop_front();
            alarm = alarm.or(self.record(true));
        }
        alarm
    }

    /// Records that loop `id` came back.
    pub fn on_return(&mut self, id: &[u8; 16]) -> LoopReturn {
        match self.outstanding.iter().position(|(i, _)| i == id) {
            Some(at) => {
                self.outstanding.remove(at);
                self.record(false);
                LoopReturn::Returned
            }
            None => LoopReturn::Stale,
        }
    }

    /// Counts every loop sent more than `return_timeout` before `now` as lost; returns an
    /// alarm if that pushed the loss ratio to the threshold.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<LossAlarm> {
        let mut alarm = None;
        while let Some(&(_, sent)) = self.outstanding.front() {
            if now.saturating_duration_since(sent) < self.config.return_timeout {
                break;
            }
            self.outstanding.pop_front();
            alarm = alarm.or(self.record(true));
        }
        alarm
    }

    /// When the oldest loop in flight times out; `None` when none is.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outstanding
            .front()
            .map(|&(_, sent)| sent + self.config.return_timeout)
    }

    /// Forgets the loops in flight without counting them (the node stopped: their circuits
    /// are gone, and a loss the node caused itself says nothing about the relays).
    pub fn abandon(&mut self) {
        self.outstanding.clear();
    }

    /// Totals so far.
    pub fn counts(&self) -> LoopCounts {
        self.counts
    }

    /// Adds an outcome to the window and decides whether it raises the alarm.
    fn record(&mut self, lost: bool) -> Option<LossAlarm> {
        if lost {
            self.counts.lost += 1;
        } else {
            self.counts.returned += 1;
        }
        if self.recent.len() >= LOSS_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(lost);
        let outcomes = self.recent.len();
        let lost = self.recent.iter().filter(|&&l| l).count();
        let high = outcomes >= self.config.min_outcomes.max(1)
            && lost as f64 >= self.config.warn_loss_ratio * outcomes as f64;
        let raise = high && !self.alarmed;
        self.alarmed = high;
        raise.then_some(LossAlarm { lost, outcomes })
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::privacy::sampling::FixedRng;
    use crate::test_util::t0;

    const SEC: Duration = Duration::from_secs(1);

    fn tracker() -> LoopTracker {
        LoopTracker::new(LoopCoverConfig {
            return_timeout: 10 * SEC,
            warn_loss_ratio: 0.5,
            min_outcomes: 4,
            ..LoopCoverConfig::DEFAULT
        })
    }

    #[test]
    fn intervals_are_exponential_with_the_configured_mean() {
        let config = LoopCoverConfig::DEFAULT;
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let n = 20_000u32;
        let total: Duration = (0..n).map(|_| config.next_interval(&mut rng)).sum();
        let mean = total.as_secs_f64() / f64::from(n);
        assert!((mean - 10.0).abs() < 0.3, "{mean}");
        // The median of an exponential is mean · ln 2.
        let median = config.next_interval(&mut FixedRng(1 << 63));
        assert!((median.as_secs_f64() - 10.0 * std::f64::consts::LN_2).abs() < 1e-6);
        assert_eq!(config.next_interval(&mut FixedRng(0)), MIN_SEND_INTERVAL);
        let zero = LoopCoverConfig {
            mean_interval: Duration::ZERO,
            ..config
        };
        assert_eq!(zero.next_interval(&mut rng), MIN_SEND_INTERVAL);
    }

    #[test]
    fn only_the_node_makes_and_recognises_its_loops() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let me = IdentityKeypair::generate(&mut rng);
        let other = IdentityKeypair::generate(&mut rng);
        let key = LoopKey::derive(&me);
        let id = [7u8; 16];
        let token = key.token(&id);
        assert!(key.is_loop(&id, token.expose()));
        assert!(
            LoopKey::derive(&me).is_loop(&id, token.expose()),
            "stable across restarts"
        );
        assert!(!LoopKey::derive(&other).is_loop(&id, token.expose()));
        assert!(
            !key.is_loop(&[8u8; 16], token.expose()),
            "bound to the message id"
        );
        assert!(!key.is_loop(&id, &token.expose()[..31]));
        assert!(!key.is_loop(&id, b"an app's message to itself......"));
        let padded = key.content(&id, 1000);
        assert_eq!(padded.len(), 1000);
        assert!(key.is_loop(&id, &padded));
        assert_eq!(key.content(&id, 3).len(), LOOP_TOKEN_LEN);
        assert_eq!(format!("{key:?}"), "LoopKey(..)");
    }

    #[test]
    fn loops_return_or_are_lost_after_the_timeout() {
        let t0 = t0();
        let mut t = tracker();
        assert_eq!(t.poll_timeout(), None);
        t.on_sent([1; 16], t0);
        t.on_sent([2; 16], t0 + SEC);
        assert_eq!(t.poll_timeout(), Some(t0 + 10 * SEC));
        assert_eq!(t.on_return(&[2; 16]), LoopReturn::Returned);
        assert_eq!(t.on_return(&[2; 16]), LoopReturn::Stale, "a second copy");
        assert_eq!(t.handle_timeout(t0 + 9 * SEC), None);
        assert_eq!(t.counts().lost, 0);
        t.handle_timeout(t0 + 10 * SEC);
        assert_eq!(t.on_return(&[1; 16]), LoopReturn::Stale, "too late");
        assert_eq!(
            t.counts(),
            LoopCounts {
                sent: 2,
                returned: 1,
                lost: 1
            }
        );
        assert_eq!(t.poll_timeout(), None);
        t.on_sent([3; 16], t0 + 20 * SEC);
        t.abandon();
        assert_eq!(t.handle_timeout(t0 + 40 * SEC), None);
        assert_eq!(t.counts().lost, 1, "an abandoned loop is not lost");
    }

    #[test]
    fn a_high_loss_ratio_raises_one_alarm_until_it_falls() {
        let t0 = t0();
        let mut t = tracker();
        // Three losses: below min_outcomes, no alarm yet.
        for i in 0..3u8 {
            t.on_sent([i; 16], t0);
        }
        assert_eq!(t.handle_timeout(t0 + 10 * SEC), None);
        t.on_sent([9; 16], t0 + 11 * SEC);
        assert_eq!(
            t.handle_timeout(t0 + 21 * SEC),
            Some(LossAlarm {
                lost: 4,
                outcomes: 4
            })
        );
        t.on_sent([10; 16], t0 + 22 * SEC);
        assert_eq!(t.handle_timeout(t0 + 32 * SEC), None, "raised once");
        // Returns bring the ratio under 0.5, then losses raise it again.
        for i in 20..27u8 {
            t.on_sent([i; 16], t0 + 40 * SEC);
            assert_eq!(t.on_return(&[i; 16]), LoopReturn::Returned);
        }
        for i in 30..33u8 {
            t.on_sent([i; 16], t0 + 50 * SEC);
        }
        assert!(t.handle_timeout(t0 + 60 * SEC).is_some());
    }

    #[test]
    fn loop_sizes_follow_real_messages_within_bounds() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let mut sizes = LoopSizes::default();
        assert_eq!(sizes.draw(&mut rng), LOOP_TOKEN_LEN);
        sizes.record(5);
        assert_eq!(sizes.draw(&mut rng), LOOP_TOKEN_LEN);
        sizes.record(1000);
        sizes.record(1 << 20);
        let draws: Vec<usize> = (0..100).map(|_| sizes.draw(&mut rng)).collect();
        assert!(
            draws
                .iter()
                .all(|d| [LOOP_TOKEN_LEN, 1000, MAX_LOOP_LEN].contains(d))
        );
        assert!(draws.contains(&1000) && draws.contains(&MAX_LOOP_LEN));
        for _ in 0..SIZE_SAMPLES {
            sizes.record(700);
        }
        assert_eq!(
            sizes.draw(&mut rng),
            700,
            "only the last {SIZE_SAMPLES} count"
        );
    }

    #[test]
    fn outstanding_loops_are_bounded() {
        let t0 = t0();
        let mut t = tracker();
        for i in 0..=MAX_OUTSTANDING_LOOPS {
            let id = u16::try_from(i).unwrap().to_be_bytes();
            let mut full = [0u8; 16];
            full[..2].copy_from_slice(&id);
            t.on_sent(full, t0);
        }
        assert_eq!(t.counts().lost, 1);
        assert_eq!(
            t.on_return(&[0u8; 16]),
            LoopReturn::Stale,
            "the oldest went"
        );
    }
}
