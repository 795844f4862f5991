//! Relay processes for the load runs: started here (a release `ournet-relay` on loopback) or
//! given as ready lines, and what `/proc` and `/metrics` say about them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, bail};
use ournet_proto::circuit::PathHop;
use ournet_proto::keys::{EncryptionPublicKey, IdentityPublicKey};

/// How long a relay may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The limits a load run needs lifted: the defaults are Tor's per-IP creation rate, which a
/// single load generator on 127.0.0.1 would hit at once, and per-IP connection and per-link
/// circuit caps. The send caps stay at their defaults: a link's cap grows with the windows
/// of its circuits (`ournet_proto::flow::SendQueuePolicy`), so 16 circuits at full window on
/// one relay-to-relay link fit.
const BENCH_CONFIG: &str = r#"
[limits]
circuit_rate_per_sec = 1000000000.0
circuit_burst = 1000000000.0
max_connections_per_ip = 10000
max_circuits_per_conn = 200000
max_circuits_per_worker = 400000
max_pending_creates = 65536
worker_memory_bytes = 4294967296
extend_to_private = true
"#;

/// How to start relays.
#[derive(Debug, Clone)]
pub(crate) struct Spawn {
    /// The `ournet-relay` binary.
    pub(crate) bin: PathBuf,
    /// `--backend`.
    pub(crate) backend: String,
    /// `--workers`.
    pub(crate) workers: usize,
    /// Pin workers to cores.
    pub(crate) pin: bool,
    /// Where data dirs and the config go.
    pub(crate) dir: PathBuf,
}

/// One relay: how to reach it, and its process when we know it.
#[derive(Debug)]
pub(crate) struct Relay {
    /// As a path hop.
    pub(crate) hop: PathHop,
    /// The control address (for `/metrics`).
    pub(crate) control: Option<SocketAddr>,
    /// Its process id, when known.
    pub(crate) pid: Option<u32>,
    /// The backend its ready line reports.
    pub(crate) backend: String,
    /// Its worker count.
    pub(crate) workers: u64,
    child: Option<Child>,
}

impl Spawn {
    /// Starts one relay and waits for its ready line.
    pub(crate) fn start(&self, n: usize) -> anyhow::Result<Relay> {
        std::fs::create_dir_all(&self.dir)?;
        let config = self.dir.join("bench-relay.toml");
        std::fs::write(&config, BENCH_CONFIG)?;
        let data_dir = self.dir.join(format!("relay-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config").arg(&config);
        cmd.args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"]);
        cmd.args([
            "--workers",
            &self.workers.to_string(),
            "--drain-timeout",
            "1",
        ]);
        cmd.args(["--backend", &self.backend, "--log", "warn"]);
        cmd.arg("--allow-private-extend")
            .arg("--data-dir")
            .arg(&data_dir);
        if !self.pin {
            cmd.arg("--no-pin");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let stdout = child.stdout.take().context("relay stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                bail!("relay {n} printed no ready line");
            }
        };
        let mut relay = Relay::from_ready_line(&line)?;
        relay.pid = Some(child.id());
        relay.child = Some(child);
        Ok(relay)
    }
}

impl Relay {
    /// Parses a relay's ready line (JSON: `listen`, `identity`, `onion_key`, `link_key`,
    /// `control`, and optionally `pid`, which a caller may add for CPU figures).
    pub(crate) fn from_ready_line(line: &str) -> anyhow::Result<Self> {
        let v: serde_json::Value = serde_json::from_str(line).context("ready line JSON")?;
        let s = |k: &str| -> anyhow::Result<&str> {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .with_context(|| format!("ready line without {k}"))
        };
        let hop = PathHop {
            addr: s("listen")?.parse()?,
            identity: IdentityPublicKey::from_hex(s("identity")?)?,
            onion_key: EncryptionPublicKey::from_hex(s("onion_key")?)?,
            link_key: EncryptionPublicKey::from_hex(s("link_key")?)?,
        };
        Ok(Self {
            hop,
            control: s("control").ok().and_then(|c| c.parse().ok()),
            pid: v
                .get("pid")
                .and_then(serde_json::Value::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
            backend: s("backend").unwrap_or("unknown").to_owned(),
            workers: v
                .get("workers")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            child: None,
        })
    }

    /// CPU seconds (user + system) the process has used, if known.
    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        self.pid
            .and_then(|p| cpu_seconds(&format!("/proc/{p}/stat")))
    }

    /// Resident memory in bytes, if known.
    pub(crate) fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// One Prometheus series summed over workers (0 without a control address).
    pub(crate) fn metric(&self, name: &str) -> u64 {
        let Some(control) = self.control else {
            return 0;
        };
        http_get(control, "/metrics")
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}

/// The kernel's clock ticks per second (for `/proc/*/stat` times).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of a `/proc/.../stat` file, in seconds.
pub(crate) fn cpu_seconds(stat_path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// CPU seconds of this whole process (every generator thread).
pub(crate) fn own_cpu_seconds() -> f64 {
    cpu_seconds("/proc/self/stat").unwrap_or(0.0)
}

/// CPU seconds of the calling thread.
pub(crate) fn thread_cpu_seconds() -> f64 {
    cpu_seconds("/proc/thread-self/stat").unwrap_or(0.0)
}

/// The release `ournet-relay` next to this binary, or in `target/release`.
pub(crate) fn default_relay_bin() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("ournet-relay")));
    match beside {
        Some(p) if p.exists() => p,
        _ => Path::new("target/release/ournet-relay").to_owned(),
    }
}

/// Samples of every relay at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// CPU seconds per relay (NaN when unknown).
    pub(crate) cpu: Vec<f64>,
    /// `ournet_cells_in_total` per relay.
    pub(crate) cells_in: Vec<u64>,
    /// `ournet_drops_total` (all reasons) per relay.
    pub(crate) drops: Vec<u64>,
    /// CPU seconds of the load generator process.
    pub(crate) gen_cpu: f64,
    /// When.
    pub(crate) at: std::time::Instant,
}

impl Snapshot {
    /// Takes one.
    pub(crate) fn take(relays: &[&Relay]) -> Self {
        Self {
            cpu: relays
                .iter()
                .map(|r| r.cpu_seconds().unwrap_or(f64::NAN))
                .collect(),
            cells_in: relays
                .iter()
                .map(|r| r.metric("ournet_cells_in_total"))
                .collect(),
            drops: relays
                .iter()
                .map(|r| r.metric("ournet_drops_total"))
                .collect(),
            gen_cpu: own_cpu_seconds(),
            at: std::time::Instant::now(),
        }
    }

    /// What happened between `self` and `later`.
    pub(crate) fn delta(&self, later: &Self) -> Window {
        Window {
            seconds: later.at.duration_since(self.at).as_secs_f64(),
            relay_cpu: later
                .cpu
                .iter()
                .zip(&self.cpu)
                .map(|(b, a)| b - a)
                .collect(),
            relay_cells_in: later
                .cells_in
                .iter()
                .zip(&self.cells_in)
                .map(|(b, a)| b.saturating_sub(*a))
                .collect(),
            relay_drops: later
                .drops
                .iter()
                .zip(&self.drops)
                .map(|(b, a)| b.saturating_sub(*a))
                .collect(),
            gen_cpu: later.gen_cpu - self.gen_cpu,
        }
    }
}

/// A measurement window.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Window {
    /// Wall seconds.
    pub(crate) seconds: f64,
    /// CPU seconds per relay.
    pub(crate) relay_cpu: Vec<f64>,
    /// Cells received per relay (`ournet_cells_in_total`).
    pub(crate) relay_cells_in: Vec<u64>,
    /// Cells or circuits dropped per relay (`ournet_drops_total`, every reason).
    pub(crate) relay_drops: Vec<u64>,
    /// CPU seconds of the generator (all its threads: clients, home nodes).
    pub(crate) gen_cpu: f64,
}

impl Window {
    /// Mean CPU seconds over the relays.
    pub(crate) fn mean_relay_cpu(&self) -> f64 {
        let n = self.relay_cpu.len().max(1) as f64;
        self.relay_cpu.iter().sum::<f64>() / n
    }
}
