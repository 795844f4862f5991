//! Seed health (spec §5.10 "Seed health score"): successes, failures and latency per seed,
//! and the score that orders seeds within a group.
//!
//! Time comes in as an argument (`now`, unix seconds), so ordering is tested without a clock.

/// What the client has seen of one seed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeedHealth {
    /// Answers that verified.
    pub success_count: u64,
    /// Errors, timeouts, refusals and answers that did not verify.
    pub failure_count: u64,
    /// When the last success was (unix seconds).
    pub last_success: Option<f64>,
    /// When the last failure was (unix seconds).
    pub last_failure: Option<f64>,
    /// Latency of the last success.
    pub last_latency_ms: Option<f64>,
    /// Sum of success latencies (for the mean).
    pub total_latency_ms: f64,
    /// The last failure, for the report.
    pub last_error: Option<String>,
}

/// Seconds after which a success no longer lifts a score (and a last-successful seed loses
/// its first place): 24 h, as the reference.
pub const SUCCESS_MEMORY_SECONDS: f64 = 86_400.0;

impl SeedHealth {
    /// Records a success that took `latency_ms`.
    pub fn success(&mut self, now: f64, latency_ms: f64) {
        self.success_count += 1;
        self.last_success = Some(now);
        self.last_latency_ms = Some(latency_ms);
        self.total_latency_ms += latency_ms;
    }

    /// Records a failure.
    pub fn failure(&mut self, now: f64, error: String) {
        self.failure_count += 1;
        self.last_failure = Some(now);
        self.last_error = Some(error);
    }

    /// Successes over attempts; 1.0 with no data.
    #[must_use]
    pub fn success_rate(&self) -> f64 {
        let total = self.success_count + self.failure_count;
        if total == 0 {
            1.0
        } else {
            self.success_count as f64 / total as f64
        }
    }

    /// The §5.10 score: success rate × 0.6 + latency term × 0.3 (0.15 with no success) +
    /// recency of the last success × 0.1.
    #[must_use]
    pub fn score(&self, now: f64) -> f64 {
        let latency = if self.success_count > 0 {
            let avg = self.total_latency_ms / self.success_count as f64;
            (1.0 - avg / 5000.0).max(0.0) * 0.3
        } else {
            0.15
        };
        let recency = self.last_success.map_or(0.0, |t| {
            (1.0 - (now - t) / SUCCESS_MEMORY_SECONDS).max(0.0) * 0.1
        });
        self.success_rate() * 0.6 + latency + recency
    }

    /// Whether a last-successful seed keeps first place (§5.10 step 1).
    #[must_use]
    pub fn still_first(&self, now: f64) -> bool {
        self.success_rate() > 0.5
            && self
                .last_success
                .is_none_or(|t| now - t <= SUCCESS_MEMORY_SECONDS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_follows_the_reference_formula() {
        let fresh = SeedHealth::default();
        assert!((fresh.score(0.0) - 0.75).abs() < 1e-9, "0.6 + 0.15");
        let mut h = SeedHealth::default();
        h.success(100.0, 500.0);
        assert!((h.score(100.0) - (0.6 + 0.27 + 0.1)).abs() < 1e-9);
        h.failure(200.0, "timeout".into());
        assert!(h.score(200.0) < 0.97 && h.success_rate() == 0.5);
        assert!(!h.still_first(200.0), "a 50 % seed loses first place");
    }
}
