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
//! raises a [`LossAlarm`] once the recent loss ratio reaches a threshold. Each outcome keeps
//! its [`LoopRoute`] (home and first hop), so the alarm names the relay that explains the
//! losses, if one does, and the action the node takes: leave that home or avoid that first
//! hop, at most once per [`LoopCoverConfig::reaction_gap`], after which the window starts
//! afresh ([`attribution`]).
//!
//! Loops in flight when the node stops are saved with its state and awaited again after the
//! restart ([`LoopTracker::take_outstanding`], [`LoopTracker::restore`]), so a loop its home
//! queued while it was away counts as returned ([`LoopCounts::returned_after_restart`]).
//!
//! Sans-IO: [`LoopTracker`] takes `now` as an argument, hands alarms out through
//! [`LoopTracker::poll_alarm`] and says when it next needs to run
//! ([`LoopTracker::poll_timeout`]); [`LoopCoverConfig::next_interval`] takes the RNG.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use self::attribution::decide;
pub use self::attribution::{
    AlarmAction, LoopOutcome, LoopRoute, MIN_SUSPECT_OUTCOMES, Suspect, SuspectRole,
};
use super::MIN_SEND_INTERVAL;
use super::sampling::{duration_from_secs, exponential, uniform_index};
use crate::ct::CtArray;
use crate::keys::IdentityKeypair;

pub mod attribution;

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
    /// Least time between two reactions to alarms ([`AlarmAction`]): one attack moves the
    /// node off one relay, not through every relay in turn. Default 10 min.
    pub reaction_gap: Duration,
}

impl LoopCoverConfig {
    /// Defaults: a loop every 10 s on average, lost after 60 s, alarm at 25 % of the last
    /// [`LOSS_WINDOW`] outcomes once 8 are known, at most one reaction per 10 minutes.
    pub const DEFAULT: Self = Self {
        mean_interval: Duration::from_secs(10),
        return_timeout: Duration::from_secs(60),
        warn_loss_ratio: 0.25,
        min_outcomes: 8,
        reaction_gap: Duration::from_secs(600),
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
    /// Loops that came back in time (restored ones included).
    pub returned: u64,
    /// Loops not back within the timeout (or pushed out past [`MAX_OUTSTANDING_LOOPS`], or
    /// written off with the relay an alarm blamed).
    pub lost: u64,
    /// Loops in flight at the last stop, awaited again since ([`LoopTracker::restore`]).
    pub restored: u64,
    /// Restored loops that came back (also in `returned`).
    pub returned_after_restart: u64,
    /// Alarms raised.
    pub alarms: u64,
    /// Alarms the node reacted to ([`AlarmAction::reacts`]).
    pub reactions: u64,
}

/// Raised once when the recent loss ratio reaches the threshold (again only after it fell
/// below, or after a reaction started a fresh window): the Loopix signal of an active attack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossAlarm {
    /// Lost loops among the recent outcomes.
    pub lost: usize,
    /// Recent outcomes counted.
    pub outcomes: usize,
    /// The relay the window blames, if one.
    pub suspect: Option<Suspect>,
    /// What the node does about it.
    pub action: AlarmAction,
}

/// What a returning loop was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopReturn {
    /// Awaited, and back in time.
    Returned,
    /// Awaited since a restart (sent before it), and back in time.
    ReturnedAfterRestart,
    /// Not awaited: already counted lost, a second copy, or from before a restart that did
    /// not save it (a crash).
    Stale,
}

/// A loop in flight, as saved across a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedLoop {
    /// Its message id.
    pub id: [u8; 16],
    /// Where it went.
    pub route: LoopRoute,
}

/// A loop in flight.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    saved: SavedLoop,
    /// When it was sent, or restored.
    since: Instant,
    restored: bool,
}

/// The loops in flight and the recent outcomes.
///
/// Inputs: [`LoopTracker::on_sent`], [`LoopTracker::on_return`],
/// [`LoopTracker::handle_timeout`] and [`LoopTracker::restore`]; outputs:
/// [`LoopTracker::poll_alarm`] (check after every input) and [`LoopTracker::poll_timeout`].
#[derive(Debug)]
pub struct LoopTracker {
    config: LoopCoverConfig,
    /// Oldest first, at most [`MAX_OUTSTANDING_LOOPS`].
    outstanding: VecDeque<InFlight>,
    /// Recent outcomes, at most [`LOSS_WINDOW`].
    recent: VecDeque<LoopOutcome>,
    alarmed: bool,
    alarm: Option<LossAlarm>,
    last_reaction: Option<Instant>,
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
            alarm: None,
            last_reaction: None,
            counts: LoopCounts::default(),
        }
    }

    /// Records loop `id` sent at `now` along `route`. Past [`MAX_OUTSTANDING_LOOPS`] the
    /// oldest is lost.
    pub fn on_sent(&mut self, id: [u8; 16], route: LoopRoute, now: Instant) {
        self.counts.sent += 1;
        self.push(SavedLoop { id, route }, now, false);
    }

    /// Awaits loops saved at the last stop again, from `now` for a full return timeout
    /// (a home hands a loop it queued while the node was away over at the next HOME_AUTH).
    /// At most [`MAX_OUTSTANDING_LOOPS`] are kept, the newest.
    pub fn restore(&mut self, saved: impl IntoIterator<Item = SavedLoop>, now: Instant) {
        for s in saved {
            self.counts.restored += 1;
            self.push(s, now, true);
        }
    }

    /// Records that loop `id` came back at `now`.
    pub fn on_return(&mut self, id: &[u8; 16], now: Instant) -> LoopReturn {
        let Some(at) = self.outstanding.iter().position(|f| f.saved.id == *id) else {
            return LoopReturn::Stale;
        };
        let Some(f) = self.outstanding.remove(at) else {
            return LoopReturn::Stale;
        };
        self.record(f.saved.route, false, now);
        if f.restored {
            self.counts.returned_after_restart += 1;
            LoopReturn::ReturnedAfterRestart
        } else {
            LoopReturn::Returned
        }
    }

    /// Counts every loop awaited for `return_timeout` or more at `now` as lost.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(f) = self.outstanding.front().copied() {
            if now.saturating_duration_since(f.since) < self.config.return_timeout {
                break;
            }
            self.outstanding.pop_front();
            self.record(f.saved.route, true, now);
        }
    }

    /// The alarm the last inputs raised, once.
    pub fn poll_alarm(&mut self) -> Option<LossAlarm> {
        self.alarm.take()
    }

    /// When the oldest loop in flight times out; `None` when none is.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outstanding
            .front()
            .map(|f| f.since + self.config.return_timeout)
    }

    /// Takes the loops in flight without counting them (the node stops: they are saved for
    /// [`LoopTracker::restore`], and a loss the node caused itself says nothing about the
    /// relays).
    pub fn take_outstanding(&mut self) -> Vec<SavedLoop> {
        self.outstanding.drain(..).map(|f| f.saved).collect()
    }

    /// Totals so far.
    pub fn counts(&self) -> LoopCounts {
        self.counts
    }

    fn push(&mut self, saved: SavedLoop, now: Instant, restored: bool) {
        self.outstanding.push_back(InFlight {
            saved,
            since: now,
            restored,
        });
        while self.outstanding.len() > MAX_OUTSTANDING_LOOPS {
            if let Some(f) = self.outstanding.pop_front() {
                self.record(f.saved.route, true, now);
            }
        }
    }

    /// Adds an outcome to the window and decides whether it raises the alarm.
    fn record(&mut self, route: LoopRoute, lost: bool, now: Instant) {
        if lost {
            self.counts.lost += 1;
        } else {
            self.counts.returned += 1;
        }
        if self.recent.len() >= LOSS_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(LoopOutcome { route, lost });
        let outcomes = self.recent.len();
        let lost = self.recent.iter().filter(|o| o.lost).count();
        let ratio = self.config.warn_loss_ratio;
        let high =
            outcomes >= self.config.min_outcomes.max(1) && lost as f64 >= ratio * outcomes as f64;
        let raise = high && !self.alarmed;
        self.alarmed = high;
        if raise {
            self.raise(lost, outcomes, now);
        }
    }

    /// Blames and decides (the policy in [`attribution`]); a reaction starts a fresh window
    /// and writes off the loops in flight through the suspect, so the losses it already
    /// caused do not raise the alarm again once the node has moved away from it.
    fn raise(&mut self, lost: usize, outcomes: usize, now: Instant) {
        self.counts.alarms += 1;
        let window: Vec<LoopOutcome> = self.recent.iter().copied().collect();
        let suspect = attribution::suspect(&window, self.config.warn_loss_ratio);
        let action = decide(
            suspect.as_ref(),
            self.last_reaction,
            now,
            self.config.reaction_gap,
        );
        if let (true, Some(s)) = (action.reacts(), suspect) {
            self.counts.reactions += 1;
            self.last_reaction = Some(now);
            self.recent.clear();
            self.alarmed = false;
            let before = self.outstanding.len();
            self.outstanding
                .retain(|f| !attribution::through(&f.saved.route, &s.relay, s.role));
            self.counts.lost += (before - self.outstanding.len()) as u64;
        }
        self.alarm = Some(LossAlarm {
            lost,
            outcomes,
            suspect,
            action,
        });
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

    const R: LoopRoute = LoopRoute {
        home: [1; 32],
        first_hop: [2; 32],
    };

    #[test]
    fn loops_return_or_are_lost_after_the_timeout() {
        let t0 = t0();
        let mut t = tracker();
        assert_eq!(t.poll_timeout(), None);
        t.on_sent([1; 16], R, t0);
        t.on_sent([2; 16], R, t0 + SEC);
        assert_eq!(t.poll_timeout(), Some(t0 + 10 * SEC));
        assert_eq!(t.on_return(&[2; 16], t0 + SEC), LoopReturn::Returned);
        assert_eq!(
            t.on_return(&[2; 16], t0 + SEC),
            LoopReturn::Stale,
            "a second copy"
        );
        t.handle_timeout(t0 + 9 * SEC);
        assert_eq!(t.counts().lost, 0);
        t.handle_timeout(t0 + 10 * SEC);
        assert_eq!(
            t.on_return(&[1; 16], t0 + 10 * SEC),
            LoopReturn::Stale,
            "too late"
        );
        assert_eq!(
            t.counts(),
            LoopCounts {
                sent: 2,
                returned: 1,
                lost: 1,
                ..LoopCounts::default()
            }
        );
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(t.poll_alarm(), None);
    }

    #[test]
    fn loops_in_flight_at_a_stop_are_awaited_again_after_the_restart() {
        let t0 = t0();
        let mut t = tracker();
        t.on_sent([1; 16], R, t0);
        t.on_sent([2; 16], R, t0);
        let saved = t.take_outstanding();
        assert_eq!(t.poll_timeout(), None, "taken, not lost");
        assert_eq!(t.counts().lost, 0);
        // A new tracker, as after a restart long after the send: a full timeout from now.
        let later = t0 + 3600 * SEC;
        let mut t = tracker();
        t.restore(saved, later);
        assert_eq!(t.poll_timeout(), Some(later + 10 * SEC));
        assert_eq!(
            t.on_return(&[1; 16], later),
            LoopReturn::ReturnedAfterRestart
        );
        t.handle_timeout(later + 10 * SEC);
        let c = t.counts();
        assert_eq!(
            (c.restored, c.returned, c.returned_after_restart, c.lost),
            (2, 1, 1, 1)
        );
        assert_eq!(c.sent, 0, "sent before the restart");
    }

    #[test]
    fn a_high_loss_ratio_raises_one_alarm_until_it_falls() {
        let t0 = t0();
        let mut t = tracker();
        // Spread over four homes, each with one loss: no suspect, so no reaction.
        let route = |i: u8| LoopRoute {
            home: [i % 4; 32],
            first_hop: [0x10 + i % 4; 32],
        };
        // Three losses: below min_outcomes, no alarm yet.
        for i in 0..3u8 {
            t.on_sent([i; 16], route(i), t0);
        }
        t.handle_timeout(t0 + 10 * SEC);
        assert_eq!(t.poll_alarm(), None);
        t.on_sent([9; 16], route(3), t0 + 11 * SEC);
        t.handle_timeout(t0 + 21 * SEC);
        let alarm = t.poll_alarm().unwrap();
        assert_eq!((alarm.lost, alarm.outcomes), (4, 4));
        assert_eq!(alarm.action, AlarmAction::Unattributed);
        assert_eq!(t.poll_alarm(), None, "handed out once");
        t.on_sent([10; 16], route(0), t0 + 22 * SEC);
        t.handle_timeout(t0 + 32 * SEC);
        assert_eq!(t.poll_alarm(), None, "raised once");
        // Returns bring the ratio under 0.5, then losses raise it again.
        for i in 20..27u8 {
            t.on_sent([i; 16], route(i), t0 + 40 * SEC);
            assert_eq!(t.on_return(&[i; 16], t0 + 40 * SEC), LoopReturn::Returned);
        }
        for i in 30..33u8 {
            t.on_sent([i; 16], route(i), t0 + 50 * SEC);
        }
        t.handle_timeout(t0 + 60 * SEC);
        assert!(t.poll_alarm().is_some());
        assert_eq!(t.counts().alarms, 2);
    }

    #[test]
    fn an_alarm_blaming_a_home_reacts_once_and_starts_a_fresh_window() {
        let t0 = t0();
        let mut t = tracker();
        let bad = LoopRoute {
            home: [0xbb; 32],
            first_hop: [2; 32],
        };
        let good = LoopRoute {
            home: [0x99; 32],
            first_hop: [3; 32],
        };
        for i in 0..4u8 {
            t.on_sent([i; 16], good, t0);
            assert_eq!(t.on_return(&[i; 16], t0), LoopReturn::Returned);
        }
        for i in 10..16u8 {
            t.on_sent([i; 16], bad, t0 + SEC);
        }
        // The bad home's loops time out: the fourth makes 4 of 8 lost, all through it.
        t.handle_timeout(t0 + 11 * SEC);
        let alarm = t.poll_alarm().unwrap();
        assert_eq!(alarm.action, AlarmAction::LeaveHome(bad.home));
        assert_eq!(alarm.suspect.map(|s| (s.lost, s.outcomes)), Some((4, 4)));
        // The other two through the suspect were written off: nothing left to raise it again.
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(t.counts().lost, 6);
        assert_eq!((t.counts().alarms, t.counts().reactions), (1, 1));
        // Within the gap, a new alarm blaming another home only warns.
        for i in 20..30u8 {
            t.on_sent([i; 16], good, t0 + 20 * SEC);
        }
        t.handle_timeout(t0 + 30 * SEC);
        assert_eq!(t.poll_alarm().unwrap().action, AlarmAction::Hold);
        assert_eq!(t.counts().reactions, 1);
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
            t.on_sent(full, R, t0);
        }
        assert_eq!(t.counts().lost, 1);
        assert_eq!(
            t.on_return(&[0u8; 16], t0),
            LoopReturn::Stale,
            "the oldest went"
        );
    }
}
