//! Prometheus text metrics, served on their own (loopback by default) listen address.
//!
//! Counters are atomics or small maps keyed by static reason strings (bounded by the set of
//! reasons in the code); gauges (routers by health state, the PoW difficulty a new IP faces
//! now, registrations in the last hour) are computed at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::HealthStatus;
use crate::state::AppState;
use crate::store::StoreError;

/// Upper bounds (seconds) of the request-latency histogram buckets.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Bucket counts, total count and sum of one route's latencies.
type Histogram = ([u64; BUCKETS.len()], u64, f64);

/// The seed's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    registrations: AtomicU64,
    heartbeats: AtomicU64,
    rejections: Mutex<BTreeMap<String, u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
}

impl Metrics {
    /// Counts a new registration.
    pub fn registered(&self) {
        self.registrations.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an accepted heartbeat.
    pub fn heartbeat(&self) {
        self.heartbeats.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a rejection by its reason string.
    pub fn rejected(&self, reason: &str) {
        if let Ok(mut m) = self.rejections.lock()
            && (m.len() < 256 || m.contains_key(reason))
        {
            *m.entry(reason.to_owned()).or_default() += 1;
        }
    }

    /// Records one request's latency under its route.
    pub fn observe(&self, route: &'static str, seconds: f64) {
        if let Ok(mut m) = self.latency.lock() {
            let (buckets, count, sum) = m.entry(route).or_default();
            for (b, le) in buckets.iter_mut().zip(BUCKETS) {
                if seconds <= le {
                    *b += 1;
                }
            }
            *count += 1;
            *sum += seconds;
        }
    }
}

/// Renders all metrics in the Prometheus text format.
///
/// # Errors
/// Storage errors while counting routers.
pub async fn render(state: &AppState) -> Result<String, StoreError> {
    let s = &state.0;
    let m = &s.metrics;
    let mut out = String::new();
    let _ = writeln!(out, "# TYPE ournet_seed_registrations_total counter");
    let _ = writeln!(
        out,
        "ournet_seed_registrations_total {}",
        m.registrations.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# TYPE ournet_seed_heartbeats_total counter");
    let _ = writeln!(
        out,
        "ournet_seed_heartbeats_total {}",
        m.heartbeats.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# TYPE ournet_seed_rejections_total counter");
    if let Ok(r) = m.rejections.lock() {
        for (reason, n) in r.iter() {
            let _ = writeln!(
                out,
                "ournet_seed_rejections_total{{reason=\"{reason}\"}} {n}"
            );
        }
    }
    let hourly = s.store.successes_since(state.now() - 3600.0).await?;
    let fresh_ip = crate::policy::RegStats {
        recent_successes: hourly,
        ..crate::policy::RegStats::default()
    };
    let _ = writeln!(out, "# TYPE ournet_seed_pow_difficulty gauge");
    let _ = writeln!(
        out,
        "ournet_seed_pow_difficulty {}",
        crate::policy::required_difficulty(&s.cfg, &fresh_ip)
    );
    let _ = writeln!(out, "# TYPE ournet_seed_registrations_last_hour gauge");
    let _ = writeln!(out, "ournet_seed_registrations_last_hour {hourly}");
    render_routers(state, &mut out).await?;
    render_latency(m, &mut out);
    Ok(out)
}

async fn render_routers(state: &AppState, out: &mut String) -> Result<(), StoreError> {
    let mut by: BTreeMap<&'static str, u64> = BTreeMap::new();
    for st in [
        HealthStatus::Healthy,
        HealthStatus::Warning,
        HealthStatus::Degraded,
        HealthStatus::Unhealthy,
    ] {
        by.insert(st.as_str(), 0);
    }
    by.insert("registered", 0);
    for r in state.0.store.routers().await? {
        let k = r
            .monitor
            .as_ref()
            .map_or("registered", |m| m.status.as_str());
        *by.entry(k).or_default() += 1;
    }
    let _ = writeln!(out, "# TYPE ournet_seed_routers gauge");
    for (k, n) in by {
        let _ = writeln!(out, "ournet_seed_routers{{state=\"{k}\"}} {n}");
    }
    Ok(())
}

fn render_latency(m: &Metrics, out: &mut String) {
    let _ = writeln!(out, "# TYPE ournet_seed_request_seconds histogram");
    let Ok(l) = m.latency.lock() else {
        return;
    };
    for (route, (buckets, count, sum)) in l.iter() {
        for (n, le) in buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "ournet_seed_request_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "ournet_seed_request_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "ournet_seed_request_seconds_sum{{route=\"{route}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "ournet_seed_request_seconds_count{{route=\"{route}\"}} {count}"
        );
    }
}
