//! One seed's task: register (challenge, PoW, signed descriptor), then heartbeat at the
//! seed's interval, and start over when the seed forgets the relay. Failures back off and are
//! counted; nothing here touches the data plane.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::Value;

use super::http::{self, Answer, SeedUrl};
use super::load::{Backoff, LoadSampler, Snapshot};
use super::request::{Plan, unix_now};
use super::{SeedError, SeedMetrics};

/// How often one registration may raise the difficulty before the relay backs off: a seed
/// that keeps raising it is not converging.
const MAX_RESOLVES: usize = 4;

/// Bounds on a seed-stated heartbeat interval.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// The registration and heartbeat loop for one seed.
#[derive(Debug)]
pub(super) struct Session {
    url: SeedUrl,
    plan: Arc<Plan>,
    metrics: Arc<SeedMetrics>,
    backoff: Backoff,
    rng: ChaCha20Rng,
    interval: Duration,
    timeout: Duration,
    last_ts: f64,
}

impl Session {
    /// A session that has not registered yet.
    pub(super) fn new(url: SeedUrl, plan: Arc<Plan>, metrics: Arc<SeedMetrics>) -> Self {
        let s = &plan.ctx.config.seed;
        Self {
            url,
            backoff: Backoff::new(
                Duration::from_secs(s.backoff_min_secs),
                Duration::from_secs(s.backoff_max_secs),
            ),
            rng: ChaCha20Rng::from_seed(crate::server::os_seed()),
            interval: Duration::from_secs(s.heartbeat_secs).clamp(MIN_INTERVAL, MAX_INTERVAL),
            timeout: Duration::from_secs(s.request_timeout_secs.max(1)),
            plan,
            metrics,
            last_ts: 0.0,
        }
    }

    /// Runs until the relay shuts down. The backoff is reset only by an accepted heartbeat,
    /// so a seed that accepts registrations and then forgets them is not hammered with PoW.
    pub(super) async fn run(mut self) {
        while !self.cancelled() {
            match self.register().await {
                Ok(()) => {
                    self.metrics.registrations.fetch_add(1, Ordering::Relaxed);
                    self.metrics.registered.fetch_add(1, Ordering::Relaxed);
                    self.heartbeats().await;
                    self.metrics.registered.fetch_sub(1, Ordering::Relaxed);
                }
                Err(SeedError::Cancelled) => return,
                Err(e) => {
                    let m = &self.metrics.registration_failures;
                    m.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(seed = %self.url, error = %e, "registration failed");
                }
            }
            if !self.cancelled() {
                tokio::time::sleep(self.backoff.next_delay(&mut self.rng)).await;
            }
        }
    }

    fn cancelled(&self) -> bool {
        self.plan.ctx.shutdown.load(Ordering::Relaxed)
    }

    /// A signed timestamp later than every earlier one (the seed refuses replays).
    fn timestamp(&mut self) -> f64 {
        let t = unix_now().max(self.last_ts + 0.001);
        self.last_ts = t;
        t
    }

    async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, SeedError> {
        http::call(&self.url, method, path, body, self.timeout).await
    }

    /// One registration: a fresh challenge, solved at the difficulty the seed asks, raised to
    /// the `required_difficulty` of an `insufficient_pow` answer (the reference never adapts,
    /// W31).
    async fn register(&mut self) -> Result<(), SeedError> {
        let a = self.call("GET", "/challenge", None).await?;
        if a.status != 200 {
            return Err(a.refused());
        }
        let challenge = a.body["challenge"]
            .as_str()
            .ok_or(SeedError::BadAnswer("challenge"))?
            .to_owned();
        let mut difficulty = difficulty_field(&a.body, "difficulty")?;
        for _ in 0..MAX_RESOLVES {
            if difficulty > self.plan.ctx.config.seed.max_pow_difficulty {
                return Err(SeedError::DifficultyTooHigh(difficulty));
            }
            let nonce = self.solve(&challenge, difficulty).await?;
            let now = self.timestamp();
            let body = self
                .plan
                .register_body(&challenge, difficulty, nonce, now)?;
            let a = self.call("POST", "/register", Some(&body)).await?;
            if a.status == 200 {
                self.metrics
                    .pow_difficulty
                    .store(u64::from(difficulty), Ordering::Relaxed);
                let action = a.body["action"].as_str().unwrap_or("-");
                tracing::info!(seed = %self.url, difficulty, action, "registered");
                return Ok(());
            }
            match difficulty_field(&a.body, "required_difficulty") {
                Ok(d) if a.reason() == "insufficient_pow" && d > difficulty => {
                    tracing::info!(seed = %self.url, from = difficulty, to = d, "seed raised the PoW difficulty");
                    difficulty = d;
                }
                _ => return Err(a.refused()),
            }
        }
        Err(SeedError::BadAnswer("difficulty kept rising"))
    }

    /// Solves on the runtime's blocking pool: never on a data-plane worker, never stalling
    /// the control plane's event loop.
    async fn solve(&self, challenge: &str, difficulty: u32) -> Result<u64, SeedError> {
        let plan = self.plan.clone();
        let challenge = challenge.to_owned();
        tokio::task::spawn_blocking(move || plan.solve(&challenge, difficulty))
            .await
            .map_err(|_| SeedError::Cancelled)?
    }

    /// Heartbeats until the seed no longer knows the relay (or shutdown). The first goes out
    /// at once, so the seed has measured figures instead of registration defaults.
    async fn heartbeats(&mut self) {
        let ctx = self.plan.ctx.clone();
        let first = Snapshot::read(&ctx);
        let mut sampler = LoadSampler::new(self.plan.started, Instant::now(), &first);
        let mut wait = Duration::ZERO;
        loop {
            tokio::time::sleep(wait).await;
            if self.cancelled() {
                return;
            }
            match self.heartbeat(&mut sampler).await {
                Ok(()) => {
                    self.metrics.heartbeats.fetch_add(1, Ordering::Relaxed);
                    self.backoff.reset();
                    wait = self.interval;
                }
                Err(e) => {
                    self.metrics
                        .heartbeat_failures
                        .fetch_add(1, Ordering::Relaxed);
                    if matches!(e, SeedError::Refused { status: 404, .. }) {
                        tracing::warn!(seed = %self.url, "seed forgot us: registering again");
                        return;
                    }
                    wait = self.backoff.next_delay(&mut self.rng).min(self.interval);
                    tracing::warn!(seed = %self.url, error = %e, retry_in = ?wait, "heartbeat failed");
                }
            }
        }
    }

    /// One signed heartbeat with the figures measured now; adopts the seed's interval.
    async fn heartbeat(&mut self, sampler: &mut LoadSampler) -> Result<(), SeedError> {
        let ctx = &self.plan.ctx;
        let report = sampler.sample(Instant::now(), &Snapshot::read(ctx), &ctx.config.limits);
        let now = self.timestamp();
        let body = self.plan.heartbeat_body(report.to_json(), now);
        let a = self.call("POST", "/heartbeat", Some(&body)).await?;
        if a.status != 200 {
            return Err(a.refused());
        }
        if let Some(s) = a.body["next_heartbeat_in"]
            .as_f64()
            .filter(|s| s.is_finite())
        {
            self.interval = Duration::from_secs_f64(s.max(0.0)).clamp(MIN_INTERVAL, MAX_INTERVAL);
        }
        Ok(())
    }
}

/// A difficulty field of a seed answer.
fn difficulty_field(body: &Value, field: &'static str) -> Result<u32, SeedError> {
    body[field]
        .as_u64()
        .and_then(|d| u32::try_from(d).ok())
        .ok_or(SeedError::BadAnswer(field))
}

#[cfg(test)]
mod tests;
