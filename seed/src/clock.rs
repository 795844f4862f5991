//! Wall-clock time as a value the service is given, so tests drive a simulated clock.

use std::sync::Mutex;

/// A source of wall-clock seconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Now, in float seconds (spec conventions).
    fn now(&self) -> f64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<f64>);

impl ManualClock {
    /// Starts at `t`.
    pub fn new(t: f64) -> Self {
        Self(Mutex::new(t))
    }

    /// Moves forward by `secs`.
    pub fn advance(&self, secs: f64) {
        if let Ok(mut t) = self.0.lock() {
            *t += secs;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> f64 {
        self.0.lock().map_or(0.0, |t| *t)
    }
}
