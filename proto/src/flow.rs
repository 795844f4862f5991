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

/// Cells a sender may have in flight on one circuit before it needs a SENDME.
pub const CIRCUIT_WINDOW: u32 = 1000;
/// Cells one SENDME acknowledges.
pub const SENDME_INCREMENT: u32 = 100;

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
#[derive(Debug, Clone)]
pub struct RecvWindow {
    window: u32,
    since_sendme: u32,
}

impl Default for RecvWindow {
    fn default() -> Self {
        Self {
            window: CIRCUIT_WINDOW,
            since_sendme: 0,
        }
    }
}

impl RecvWindow {
    /// Records a received cell that counts against the window (data-bearing relay cells).
    /// Returns whether a SENDME is now due.
    ///
    /// # Errors
    /// [`FlowError::WindowExceeded`].
    pub fn on_receive(&mut self) -> Result<bool, FlowError> {
        self.window = self
            .window
            .checked_sub(1)
            .ok_or(FlowError::WindowExceeded)?;
        self.since_sendme += 1;
        if self.since_sendme >= SENDME_INCREMENT {
            self.since_sendme = 0;
            self.window += SENDME_INCREMENT;
            return Ok(true);
        }
        Ok(false)
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
    fn back_pressure_has_hysteresis() {
        let mut bp = BackPressure::default();
        assert_eq!(bp.update(79.9), None);
        assert_eq!(bp.update(80.0), Some(true));
        assert_eq!(bp.update(70.0), None, "between thresholds nothing changes");
        assert_eq!(bp.update(60.0), Some(false));
        assert_eq!(bp.update(70.0), None);
    }
}
