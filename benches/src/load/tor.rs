//! The same workloads through a private Tor network (`../shared/tor-net`): runs its
//! `bench.sh` on a network that `setup.sh` started in a directory, and reads its JSON.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Tor's figures for the workloads we compare.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct TorResult {
    /// Tor's version.
    pub(crate) version: Option<String>,
    /// One circuit (one stream) download, MB/s.
    pub(crate) bulk_1_mbps: f64,
    /// 16 circuits (one stream each, SOCKS isolation), MB/s.
    pub(crate) bulk_16_mbps: f64,
    /// Payload bytes per relay CPU-second, one circuit (mean CPU of guard, middle, exit).
    pub(crate) bulk_1_per_relay_cpu_s: f64,
    /// Payload bytes per relay CPU-second, 16 circuits.
    pub(crate) bulk_16_per_relay_cpu_s: f64,
    /// 100-byte echo through the circuit to the sink and back.
    pub(crate) echo_p50_ms: f64,
    /// 99th percentile.
    pub(crate) echo_p99_ms: f64,
    /// The whole `bench.sh` JSON document.
    pub(crate) raw: Value,
}

/// Where to find the scripts.
pub(crate) fn default_scripts() -> PathBuf {
    PathBuf::from("/work/shared/tor-net")
}

/// Runs `bench.sh` against the network in `dir`.
pub(crate) fn run(
    scripts: &Path,
    dir: &Path,
    warmup: Duration,
    duration: Duration,
    pings: usize,
) -> anyhow::Result<TorResult> {
    let out = dir.join("ournet-bench-tor.json");
    let _ = std::fs::remove_file(&out);
    let status = Command::new(scripts.join("bench.sh"))
        .arg(dir)
        .arg(&out)
        .env("DURATION", duration.as_secs().max(1).to_string())
        .env("WARMUP", warmup.as_secs().to_string())
        .env("PINGS", pings.to_string())
        .env("MSG_SIZE", "100")
        .env("ISOLATED", "1")
        .status()
        .context("running tor-net bench.sh")?;
    if !status.success() {
        bail!("tor-net bench.sh failed: {status}");
    }
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    parse(doc)
}

/// Reads the figures out of a `tor-net-bench/1` document.
pub(crate) fn parse(doc: Value) -> anyhow::Result<TorResult> {
    let relays: Vec<String> = doc["network"]["circuit_path"]
        .as_array()
        .context("circuit_path")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let res = &doc["results"];
    let num = |v: &Value, what: &str| v.as_f64().with_context(|| format!("tor result {what}"));
    let per_cpu = |name: &str| -> anyhow::Result<f64> {
        let r = &res[name];
        let cpu: f64 = relays
            .iter()
            .map(|n| r["cpu_s"][n].as_f64().unwrap_or(f64::NAN))
            .sum::<f64>()
            / relays.len().max(1) as f64;
        Ok(num(&r["bytes"], name)? / cpu)
    };
    Ok(TorResult {
        version: doc["tor_version"].as_str().map(str::to_owned),
        bulk_1_mbps: num(&res["bulk_1"]["MBps"], "bulk_1")?,
        bulk_16_mbps: num(&res["bulk_16_iso"]["MBps"], "bulk_16_iso")?,
        bulk_1_per_relay_cpu_s: per_cpu("bulk_1")?,
        bulk_16_per_relay_cpu_s: per_cpu("bulk_16_iso")?,
        echo_p50_ms: num(&res["latency"]["p50_ms"], "latency")?,
        echo_p99_ms: num(&res["latency"]["p99_ms"], "latency")?,
        raw: doc,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::parse;

    #[test]
    fn reads_tor_net_bench_json() {
        let run = |bytes: u64, mbps: f64| {
            serde_json::json!({
                "bytes": bytes, "MBps": mbps,
                "cpu_s": {"guard1": 1.0, "middle1": 2.0, "exit1": 3.0, "client": 9.0}
            })
        };
        let doc = serde_json::json!({
            "schema": "tor-net-bench/1",
            "tor_version": "0.4.9.11",
            "network": {"circuit_path": ["guard1", "middle1", "exit1"]},
            "results": {
                "bulk_1": run(60_000_000, 6.0),
                "bulk_16_iso": run(240_000_000, 24.0),
                "latency": {"p50_ms": 8.5, "p99_ms": 55.0}
            }
        });
        let t = parse(doc).unwrap();
        assert_eq!(t.bulk_1_mbps, 6.0);
        assert_eq!(t.bulk_16_mbps, 24.0);
        // The mean CPU of the three relays (2 s), not the client's.
        assert_eq!(t.bulk_1_per_relay_cpu_s, 30_000_000.0);
        assert_eq!(t.bulk_16_per_relay_cpu_s, 120_000_000.0);
        assert_eq!((t.echo_p50_ms, t.echo_p99_ms), (8.5, 55.0));
    }
}
