//! Flow control and back-pressure policy (PROTOCOL.md §8).
//!
//! **Circuit windows.** A sender may have at most [`CIRCUIT_WINDOW`] relay cells in flight on
//! a circuit; the receiving endpoint answers every [`SENDME_INCREMENT`] delivered cells with a
//! SENDME, which reopens that many. The receiver also *enforces* the window: a peer that sends
//! more than it was granted is violating the protocol, so a relay never buffers more than a
//! window per circuit direction, whatever the peer does.
//!
//! **Back pressure** (spec §5.16, fixing W30): a relay's load is `0.7 x connection load + 0.3 x
//! queue load`, each term capped at 100 %, evaluated whenever either changes; it switches on
//! at 80 % and off at 60 % (hysteresis).
//!
//! **Send queues** ([`SendQueuePolicy`]): a relay link may queue what the windows of the
//! circuits on it allow to be in flight ([`CIRCUIT_QUEUE_CELLS`] each) plus a floor (sealed
//! cells already on their way out, of circuits that may be gone, and control cells), and
//! never more than the worker's cap for all of its links together. A fixed per-link
//! cap either wastes memory on quiet links or sheds well-behaved circuits on a busy one: 16
//! circuits at full window on one relay-to-relay link need about 17 MB, which a 4 MiB cap
//! refused as soon as the next hop lagged.

use crate::cell::CELL_LEN;

/// Cells a sender may have in flight on one circuit before it needs a SENDME.
pub const CIRCUIT_WINDOW: u32 = 1000;
/// Cells one SENDME acknowledges.
pub const SENDME_INCREMENT: u32 = 100;

/// Cells one circuit may have queued on one link: its window plus room for the SENDMEs and
/// control messages that travel outside the window. A circuit with more queued is ignoring
/// flow control (or its endpoint is originating past its own window).
pub const CIRCUIT_QUEUE_CELLS: usize = CIRCUIT_WINDOW as usize + 64;

/// Message bytes a home circuit may hold queued for its node beyond what the node's window
/// has taken: three windows of DATA payload (about 2.8 MB). Whatever the number of senders,
/// a home relay holds at most this much per online node, and refuses (DELIVERY_STATUS
/// REFUSED) a message that would go past it, unless the queue is empty (so a message larger
/// than the cap still gets through, alone).
pub const HOME_BUFFER_BYTES: usize = 3 * CIRCUIT_WINDOW as usize * crate::frag::DATA_CHUNK;

/// Whether a home circuit holding `queued` message bytes may take a message of `len` more.
pub fn home_buffer_accepts(queued: usize, len: usize) -> bool {
    queued == 0 || queued.saturating_add(len) <= HOME_BUFFER_BYTES
}

/// A flow-control violation by the peer: destroy the circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The peer sent more cells than its window allowed.
    #[error("peer exceeded its flow-control window")]
    WindowExceeded,
    /// The peer sent a SENDME that would open the window past its maximum.
    #[error("unexpected SENDME")]
    UnexpectedSendme,
}

/// The sending side of a circuit's window.
#[derive(Debug, Clone)]
pub struct SendWindow {
    window: u32,
}

impl Default for SendWindow {
    fn default() -> Self {
        Self {
            window: CIRCUIT_WINDOW,
        }
    }
}

impl SendWindow {
    /// Whether one more cell may be sent now.
    pub fn can_send(&self) -> bool {
        self.window > 0
    }

    /// Cells that may be sent now.
    pub fn available(&self) -> u32 {
        self.window
    }

    /// Records a sent cell. Returns `false` (and changes nothing) when the window is closed.
    pub fn on_send(&mut self) -> bool {
        match self.window.checked_sub(1) {
            Some(w) => {
                self.window = w;
                true
            }
            None => false,
        }
    }

    /// Takes a SENDME.
    ///
    /// # Errors
    /// [`FlowError::UnexpectedSendme`] if it would open the window past [`CIRCUIT_WINDOW`].
    pub fn on_sendme(&mut self) -> Result<(), FlowError> {
        let w = self.window + SENDME_INCREMENT;
        if w > CIRCUIT_WINDOW {
            return Err(FlowError::UnexpectedSendme);
        }
        self.window = w;
        Ok(())
    }
}

/// The receiving side of a circuit's window.
///
/// A receiver may **hold** credit for cells it took but has not passed on (a home relay holds
/// a message until its home node's window takes it, PROTOCOL.md §8): a SENDME is due only for
/// cells received and not held, so a sender is paced by the slowest reader behind the
/// receiver. Held credit never exceeds what was received, so a SENDME still never opens the
/// sender's window past [`CIRCUIT_WINDOW`].
#[derive(Debug, Clone)]
pub struct RecvWindow {
    window: u32,
    since_sendme: u32,
    held: u32,
}

impl Default for RecvWindow {
    fn default() -> Self {
        Self {
            window: CIRCUIT_WINDOW,
            since_sendme: 0,
            held: 0,
        }
    }
}

impl RecvWindow {
    /// Records a received cell that counts against the window (data-bearing relay cells).
    /// Returns whether a SENDME is now due (at most one: nothing is held on this path).
    ///
    /// # Errors
    /// [`FlowError::WindowExceeded`].
    pub fn on_receive(&mut self) -> Result<bool, FlowError> {
        self.record()?;
        Ok(self.take_sendme())
    }

    /// Records a received cell without deciding on SENDMEs (see [`RecvWindow::take_sendme`]).
    ///
    /// # Errors
    /// [`FlowError::WindowExceeded`].
    pub fn record(&mut self) -> Result<(), FlowError> {
        self.window = self
            .window
            .checked_sub(1)
            .ok_or(FlowError::WindowExceeded)?;
        self.since_sendme += 1;
        Ok(())
    }

    /// Withholds credit for `cells` received cells until [`RecvWindow::release`].
    pub fn hold(&mut self, cells: u32) {
        self.held = self.held.saturating_add(cells);
    }

    /// Gives back credit held for `cells` cells (they were passed on or dropped).
    pub fn release(&mut self, cells: u32) {
        self.held = self.held.saturating_sub(cells);
    }

    /// Cells whose credit is held.
    pub fn held(&self) -> u32 {
        self.held
    }

    /// Whether a SENDME is due now; if so, counts it as sent. Call until `false`.
    pub fn take_sendme(&mut self) -> bool {
        if self.since_sendme.saturating_sub(self.held) < SENDME_INCREMENT {
            return false;
        }
        self.since_sendme -= SENDME_INCREMENT;
        self.window += SENDME_INCREMENT;
        true
    }
}

/// Load thresholds and the current back-pressure state.
#[derive(Debug, Clone)]
pub struct BackPressure {
    /// Load percentage at which back pressure switches on.
    pub threshold_pct: f64,
    /// Load percentage at which it switches off again.
    pub release_pct: f64,
    active: bool,
}

impl Default for BackPressure {
    fn default() -> Self {
        Self {
            threshold_pct: 80.0,
            release_pct: 60.0,
            active: false,
        }
    }
}

impl BackPressure {
    /// Whether back pressure is on.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Re-evaluates with the current load. Returns `Some(new state)` when it changed, so the
    /// adapter tells its peers once per change.
    pub fn update(&mut self, load_pct: f64) -> Option<bool> {
        let next = if self.active {
            load_pct > self.release_pct
        } else {
            load_pct >= self.threshold_pct
        };
        (next != self.active).then(|| {
            self.active = next;
            next
        })
    }
}

/// How much one link, and all links of one worker, may queue for sending (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendQueuePolicy {
    /// Bytes any open link may queue beyond its circuits' windows (and so however few
    /// circuits it carries).
    pub link_floor: usize,
    /// Bytes all links of one worker may queue together; also the most one link may queue.
    pub worker_cap: usize,
}

/// Why a cell may not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendQueueFull {
    /// The link holds what its circuits' windows allow: some circuit on it is over its share.
    #[error("link send queue full")]
    Link,
    /// The worker's links together hold its cap.
    #[error("worker send queues full")]
    Worker,
}

impl SendQueuePolicy {
    /// The cap of a link carrying `circuits` circuits: [`SendQueuePolicy::link_floor`] plus
    /// their windows' worth of cells, at most [`SendQueuePolicy::worker_cap`] (or the floor
    /// when that is larger).
    ///
    /// The floor is added, not a minimum: a link's output holds sealed cells of circuits
    /// already destroyed, and if those counted against the windows of the circuits left, one
    /// shed circuit would lower the cap under what is queued and shed the next, and so on.
    pub fn link_cap(&self, circuits: usize) -> usize {
        let windows = circuits.saturating_mul(CIRCUIT_QUEUE_CELLS * CELL_LEN);
        let cap = self.worker_cap.max(self.link_floor);
        windows.saturating_add(self.link_floor).min(cap)
    }

    /// Whether `len` more bytes may be queued on a link that holds `link_queued` bytes for
    /// `circuits` circuits, in a worker whose links hold `worker_queued` bytes.
    ///
    /// # Errors
    /// [`SendQueueFull`]: which cap it would pass. The adapter sheds the heaviest circuit of
    /// the link (the one most over its window share) rather than the cell's own.
    pub fn admit(
        &self,
        link_queued: usize,
        circuits: usize,
        worker_queued: usize,
        len: usize,
    ) -> Result<(), SendQueueFull> {
        if link_queued.saturating_add(len) > self.link_cap(circuits) {
            return Err(SendQueueFull::Link);
        }
        if worker_queued.saturating_add(len) > self.worker_cap {
            return Err(SendQueueFull::Worker);
        }
        Ok(())
    }
}

/// A relay's load in percent: `0.7 x connections/max + 0.3 x queued/max`, each term capped at
/// 100 % and 0 when its maximum is 0.
pub fn load_pct(
    connections: usize,
    max_connections: usize,
    queued: usize,
    max_queued: usize,
) -> f64 {
    fn ratio(n: usize, max: usize) -> f64 {
        if max == 0 {
            0.0
        } else {
            (n as f64 / max as f64).min(1.0)
        }
    }
    100.0 * (0.7 * ratio(connections, max_connections) + 0.3 * ratio(queued, max_queued))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_window_closes_and_reopens() {
        let mut w = SendWindow::default();
        for _ in 0..CIRCUIT_WINDOW {
            assert!(w.on_send());
        }
        assert!(!w.can_send());
        assert!(!w.on_send());
        w.on_sendme().unwrap();
        assert_eq!(w.available(), SENDME_INCREMENT);
        let mut fresh = SendWindow::default();
        assert_eq!(fresh.on_sendme(), Err(FlowError::UnexpectedSendme));
    }

    #[test]
    fn held_credit_delays_sendmes_until_released_and_never_opens_past_the_window() {
        let mut r = RecvWindow::default();
        for _ in 0..CIRCUIT_WINDOW {
            r.record().unwrap();
            r.hold(1);
            assert!(!r.take_sendme(), "every cell is held");
        }
        assert_eq!(
            r.record(),
            Err(FlowError::WindowExceeded),
            "the sender is stalled"
        );
        r.release(250);
        let due = std::iter::from_fn(|| r.take_sendme().then_some(())).count();
        assert_eq!(due, 2, "whole increments only");
        r.release(u32::MAX);
        let due = std::iter::from_fn(|| r.take_sendme().then_some(())).count();
        assert_eq!(due, 8, "never more than was received");
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn the_home_buffer_takes_one_message_alone_or_up_to_its_cap() {
        assert!(
            home_buffer_accepts(0, HOME_BUFFER_BYTES * 4),
            "alone, however large"
        );
        assert!(home_buffer_accepts(1, HOME_BUFFER_BYTES - 1));
        assert!(!home_buffer_accepts(1, HOME_BUFFER_BYTES));
    }

    #[test]
    fn recv_window_emits_sendmes_and_enforces_the_limit() {
        let mut r = RecvWindow::default();
        let sendmes = (0..CIRCUIT_WINDOW)
            .filter(|_| r.on_receive().unwrap())
            .count();
        assert_eq!(sendmes, (CIRCUIT_WINDOW / SENDME_INCREMENT) as usize);
        // A well-behaved sender got those SENDMEs; a sender that ignores the window and keeps
        // sending is cut off once it passes what it was granted.
        let mut greedy = RecvWindow {
            window: 1,
            since_sendme: 0,
            held: 0,
        };
        greedy.on_receive().unwrap();
        assert_eq!(greedy.on_receive(), Err(FlowError::WindowExceeded));
    }

    #[test]
    fn load_matches_the_reference_examples_and_is_capped() {
        assert!((load_pct(50, 100, 0, 1000) - 35.0).abs() < 1e-9);
        assert!((load_pct(0, 100, 500, 1000) - 15.0).abs() < 1e-9);
        assert!((load_pct(80, 100, 600, 1000) - 74.0).abs() < 1e-9);
        assert!(
            (load_pct(500, 100, 1_000_000, 1000) - 100.0).abs() < 1e-9,
            "W30: capped"
        );
        assert_eq!(load_pct(5, 0, 5, 0), 0.0);
    }

    #[test]
    fn a_link_queues_its_circuits_windows_between_the_floor_and_the_worker_cap() {
        let p = SendQueuePolicy {
            link_floor: 4 << 20,
            worker_cap: 256 << 20,
        };
        let window = CIRCUIT_QUEUE_CELLS * CELL_LEN;
        assert_eq!(p.link_cap(0), 4 << 20, "an idle link still gets its floor");
        assert_eq!(p.link_cap(3), (4 << 20) + 3 * window);
        assert_eq!(
            p.link_cap(16),
            (4 << 20) + 16 * window,
            "16 full windows fit: no shedding"
        );
        assert!(p.link_cap(16) > 16 * CIRCUIT_WINDOW as usize * CELL_LEN);
        assert_eq!(p.link_cap(4096), 256 << 20, "bounded by the worker cap");
        assert_eq!(p.link_cap(usize::MAX), 256 << 20, "no overflow");
        // A floor above the worker cap wins (a misconfiguration must not make links useless).
        let odd = SendQueuePolicy {
            link_floor: 8 << 20,
            worker_cap: 1 << 20,
        };
        assert_eq!(odd.link_cap(100), 8 << 20);
    }

    #[test]
    fn admission_names_the_cap_it_would_pass() {
        let p = SendQueuePolicy {
            link_floor: 4 * CELL_LEN,
            worker_cap: 10 * CIRCUIT_QUEUE_CELLS * CELL_LEN,
        };
        assert_eq!(p.admit(3 * CELL_LEN, 0, 0, CELL_LEN), Ok(()));
        assert_eq!(
            p.admit(4 * CELL_LEN, 0, 0, CELL_LEN),
            Err(SendQueueFull::Link)
        );
        let one = CIRCUIT_QUEUE_CELLS * CELL_LEN;
        let floor = 4 * CELL_LEN;
        assert_eq!(p.admit(floor + one - CELL_LEN, 1, 0, CELL_LEN), Ok(()));
        assert_eq!(
            p.admit(floor + one, 1, 0, CELL_LEN),
            Err(SendQueueFull::Link)
        );
        assert_eq!(
            p.admit(0, 2, p.worker_cap, CELL_LEN),
            Err(SendQueueFull::Worker),
            "a link under its own cap still stops at the worker's"
        );
        assert_eq!(
            p.admit(usize::MAX, 1, 0, CELL_LEN),
            Err(SendQueueFull::Link)
        );
    }

    #[test]
    fn back_pressure_has_hysteresis() {
        let mut bp = BackPressure::default();
        assert_eq!(bp.update(79.9), None);
        assert_eq!(bp.update(80.0), Some(true));
        assert_eq!(bp.update(70.0), None, "between thresholds nothing changes");
        assert_eq!(bp.update(60.0), Some(false));
        assert_eq!(bp.update(70.0), None);
    }
}
