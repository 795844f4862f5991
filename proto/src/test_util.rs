//! Helpers shared by this crate's unit tests.

use std::time::Instant;

/// The one base instant a test needs. Tests assert only offsets from it and move time by
/// adding durations (a simulated clock); no elapsed time is ever read.
#[expect(
    clippy::disallowed_methods,
    reason = "tests need a base Instant; no elapsed time is read"
)]
pub(crate) fn t0() -> Instant {
    Instant::now()
}
