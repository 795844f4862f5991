//! The infrastructure of a local network: one `ournet-seed` and N `ournet-relay`s on loopback,
//! the relays registered with the seed by real proof of work.
//!
//! The seed serves at most one router per /16 in `/discover`, so relay `i` listens on
//! `127.(i+1).0.1` (all of 127.0.0.0/8 is loopback on Linux). The seed's configuration keeps
//! every check on (PoW, signatures, endpoint probes by link handshake) and only lowers the
//! PoW difficulty and the heartbeat interval, so registration takes seconds and a killed
//! relay leaves `/discover` within `MAX_STALE` seconds.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ournet_proto::descriptor::{DescriptorBody, SignedDescriptor, verify_router_list};
use ournet_proto::keys::IdentityPublicKey;
use serde_json::{Value, json};

use super::http;
use super::procs::{Proc, ready_channel};

/// How long a process may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the relays may take to be listed by `/discover` (PoW, probe, first heartbeat).
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(120);

/// The seed's configuration: every check on, low PoW difficulty (rising per registration from
/// one IP, as the relays all register from 127.0.0.1), a short heartbeat interval and
/// staleness limit (a killed relay is dropped from `/discover` within seconds), no caching of
/// `/discover`, and per-IP limits high enough for relays and nodes sharing one host.
const SEED_CONFIG: &str = "
pow_difficulty_base = 12
pow_difficulty_second = 14
pow_difficulty_third_plus = 16
probe_endpoints = true
discover_cache_seconds = 0.0
rate_limit_enabled = false
requests_per_second_per_ip = 2000.0
request_burst_per_ip = 4000.0
heartbeat_interval_seconds = 5.0
health_check_interval_seconds = 2.0
max_stale_seconds = 15.0
";

/// The relays' configuration: circuit-creation and per-IP connection limits raised, because
/// every node and relay of a local network connects from 127.0.0.1, so the per-IP limits
/// meant for one client (3 circuits a second, Tor's default) would throttle them all as one.
/// The e2e tests' local networks (`ournet-tests`) use it too.
pub const RELAY_CONFIG: &str = "
[limits]
circuit_rate_per_sec = 5000.0
circuit_burst = 20000.0
max_connections_per_ip = 4096
";

/// Where relay `i` listens: `127.(i+1).0.1`, port 0, so each relay has its own /16 (the seed
/// serves at most one router per /16).
pub fn relay_listen(i: usize) -> String {
    format!("127.{}.0.1:0", i + 1)
}

/// A running seed.
#[derive(Debug)]
pub struct Seed {
    /// The process.
    pub proc: Proc,
    /// Its HTTP API.
    pub api: SocketAddr,
}

impl Seed {
    /// Starts `bin` with its data in `dir` and waits for its address.
    ///
    /// # Errors
    /// It did not start or print its address.
    pub fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        let config = dir.join("seed.toml");
        std::fs::write(&config, SEED_CONFIG)?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.join("seed-data"))
            .env("RUST_LOG", "warn");
        let (tx, rx) = ready_channel();
        let mut proc = Proc::spawn("seed", cmd, &dir.join("seed.log"), move |line| {
            if let Some(addr) = line.strip_prefix("listening on ") {
                tx.send(addr);
            }
        })?;
        let api = rx.wait(&mut proc, READY_TIMEOUT)?.parse()?;
        Ok(Self { proc, api })
    }

    /// The URL relays and nodes are given.
    pub fn url(&self) -> String {
        format!("http://{}", self.api)
    }

    /// The identities (hex) of the routers `/discover` lists, checked by [`discover`], and
    /// the seed key the list verified against (hex): the nodes pin it, as we started this
    /// seed ourselves.
    ///
    /// # Errors
    /// The request failed or a signature did not verify.
    pub fn discover(&self, count: usize) -> anyhow::Result<(String, Vec<String>)> {
        let (key, bodies) = discover(self.api, count, None)?;
        let ids = bodies.iter().map(|b| b.router_id.to_hex()).collect();
        Ok((key.to_hex(), ids))
    }
}

/// `POST /discover` for up to `count` routers, checked: the list signature against `pinned`
/// (or, when `None`, against the key the answer names, which is what `localnet` pins for the
/// seed it started itself) and each descriptor's router and descriptor signatures. Returns
/// the key the list verified against and the descriptors.
///
/// # Errors
/// The request failed, a signature did not verify, or the seed is not the pinned one.
pub fn discover(
    api: SocketAddr,
    count: usize,
    pinned: Option<&IdentityPublicKey>,
) -> anyhow::Result<(IdentityPublicKey, Vec<DescriptorBody>)> {
    let body = http::post_json(api, "/discover", &json!({ "requested_count": count }))?;
    verify_discover(&serde_json::from_str(&body)?, pinned)
}

/// Checks a `/discover` answer as [`discover`] does: the list signature against `pinned` (or
/// the key the answer names) and both signatures of each descriptor.
///
/// # Errors
/// A signature did not verify, or the seed is not the pinned one.
pub fn verify_discover(
    answer: &Value,
    pinned: Option<&IdentityPublicKey>,
) -> anyhow::Result<(IdentityPublicKey, Vec<DescriptorBody>)> {
    let named = IdentityPublicKey::from_hex(
        answer["seed_key"]
            .as_str()
            .context("no seed_key in /discover")?,
    )
    .context("seed_key")?;
    let key = match pinned {
        Some(p) if *p != named => bail!("/discover names a seed key other than the pinned one"),
        Some(p) => *p,
        None => named,
    };
    let list = answer.as_object().context("/discover is not an object")?;
    let _verified = verify_router_list(list, &key).context("/discover list signature")?;
    let mut out = Vec::new();
    for entry in answer["routers"].as_array().into_iter().flatten() {
        let verified = SignedDescriptor::from_json(entry)
            .and_then(SignedDescriptor::verify)
            .context("a router descriptor in /discover")?;
        out.push(verified.body().clone());
    }
    Ok((key, out))
}

/// How relays are started.
#[derive(Debug, Clone)]
pub struct RelayOpts {
    /// `epoll`, `uring` or `auto`.
    pub backend: String,
    /// Worker threads per relay.
    pub workers: u32,
}

/// A running relay.
#[derive(Debug)]
pub struct Relay {
    /// The process.
    pub proc: Proc,
    /// Its link address.
    pub listen: SocketAddr,
    /// Its control plane (`/metrics`).
    pub control: SocketAddr,
    /// Its identity (hex), the seed's router id.
    pub identity: String,
    /// The backend it reported.
    pub backend: String,
    /// Killed on purpose (`--kill-relay-at`).
    pub killed: bool,
}

impl Relay {
    /// Starts relay `i` (`127.(i+1).0.1`, port 0) registering with `seed_url`.
    ///
    /// # Errors
    /// It did not start or print its ready line.
    pub fn start(
        bin: &Path,
        dir: &Path,
        i: usize,
        seed_url: &str,
        opts: &RelayOpts,
    ) -> anyhow::Result<Self> {
        let name = format!("relay-{}", i + 1);
        let config = dir.join("relay.toml");
        std::fs::write(&config, RELAY_CONFIG)?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(&config)
            .args(["--listen", &relay_listen(i)])
            .args([
                "--control",
                "127.0.0.1:0",
                "--no-pin",
                "--drain-timeout",
                "1",
            ])
            .args(["--workers", &opts.workers.to_string()])
            .args(["--backend", &opts.backend, "--log", "warn"])
            .args(["--allow-private-extend", "--seed-url", seed_url])
            .arg("--data-dir")
            .arg(dir.join(&name));
        let (tx, rx) = ready_channel();
        let mut proc = Proc::spawn(&name, cmd, &dir.join(format!("{name}.log")), move |line| {
            if line.contains("\"ready\"") {
                tx.send(line);
            }
        })?;
        let v: Value = serde_json::from_str(&rx.wait(&mut proc, READY_TIMEOUT)?)?;
        let field = |k: &str| -> anyhow::Result<String> {
            Ok(v[k]
                .as_str()
                .with_context(|| format!("{name}: no {k} in its ready line"))?
                .to_owned())
        };
        Ok(Self {
            listen: field("listen")?.parse()?,
            control: field("control")?.parse()?,
            identity: field("identity")?,
            backend: field("backend")?,
            killed: false,
            proc,
        })
    }

    /// The relay's Prometheus text, or `None` if it does not answer (killed, stopping).
    pub fn metrics(&self) -> Option<String> {
        if self.killed {
            return None;
        }
        http::get(self.control, "/metrics").ok()
    }
}

/// Waits until `/discover` lists every relay; returns the seed key (hex) to pin.
///
/// # Errors
/// A relay exited, or they were not all listed within the timeout.
pub fn wait_discoverable(
    seed: &Seed,
    relays: &mut [Relay],
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + DISCOVER_TIMEOUT;
    loop {
        let listed = seed.discover(relays.len() * 4);
        if let Ok((key, ids)) = &listed
            && relays.iter().all(|r| ids.contains(&r.identity))
        {
            return Ok(key.clone());
        }
        for r in relays.iter_mut() {
            if let Some(st) = r.proc.exited() {
                bail!("{} exited while registering ({st})", r.proc.name);
            }
        }
        if stop() {
            bail!("interrupted while the relays registered");
        }
        if Instant::now() > deadline {
            bail!(
                "the relays were not all listed by /discover within {DISCOVER_TIMEOUT:?}: {listed:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
