//! Starting relay processes for tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use ournet_proto::circuit::PathHop;
use ournet_proto::keys::{EncryptionPublicKey, IdentityPublicKey};

/// How long a relay may take to print its ready line before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The relay binary, built once per test process with the cargo that runs the tests.
pub fn relay_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_bin("ournet-relay")).clone()
}

/// Builds the binary `name` of the package of the same name (debug profile) and returns its
/// path.
pub fn build_bin(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = ournet_bench::localnet::bins::without_crate_env(&mut Command::new(cargo))
        .args(["build", "-q", "-p", name, "--bin", name])
        .current_dir(&root)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building {name} failed");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    target.join("debug").join(name)
}

/// The backends the relay ships; the e2e, hostile and fd-leak tests run under each.
pub const ALL_BACKENDS: &[&str] = &["epoll", "uring"];

/// The backends to test: [`ALL_BACKENDS`], or the comma-separated list in
/// `OURNET_TEST_BACKENDS` (for a host whose sandbox forbids io_uring: `epoll`).
pub fn backends() -> Vec<String> {
    match std::env::var("OURNET_TEST_BACKENDS") {
        Ok(list) => list.split(',').map(|b| b.trim().to_owned()).collect(),
        Err(_) => ALL_BACKENDS.iter().map(|b| (*b).to_owned()).collect(),
    }
}

/// A relay process; killed on drop.
#[derive(Debug)]
pub struct RelayProc {
    child: Child,
    /// The descriptor essentials from the ready line.
    pub info: RelayInfo,
    /// The control address.
    pub control: SocketAddr,
    data_dir: PathBuf,
}

/// What a client needs to reach a relay.
#[derive(Debug, Clone)]
pub struct RelayInfo {
    /// Link address.
    pub addr: SocketAddr,
    /// Identity.
    pub identity: IdentityPublicKey,
    /// Onion key.
    pub onion_key: EncryptionPublicKey,
    /// Link key.
    pub link_key: EncryptionPublicKey,
}

impl RelayInfo {
    /// As a path hop.
    pub fn hop(&self) -> PathHop {
        PathHop {
            identity: self.identity,
            onion_key: self.onion_key,
            link_key: self.link_key,
            addr: self.addr,
        }
    }
}

impl RelayProc {
    /// Starts a relay with `backend` and extra flags, and waits for its ready line.
    pub fn start(backend: &str, extra: &[&str]) -> Self {
        Self::start_bin(&relay_bin(), backend, extra)
    }

    /// As [`RelayProc::start`], listening on `listen` (e.g. `127.2.0.1:0`: relays that
    /// register with one seed need hosts in distinct /16s, or the seed sees colliding
    /// endpoints and serves only one of them).
    pub fn start_on(backend: &str, listen: &str, extra: &[&str]) -> Self {
        Self::start_with(&relay_bin(), backend, listen, extra)
    }

    /// As [`RelayProc::start`], with the binary at `bin`.
    pub fn start_bin(bin: &std::path::Path, backend: &str, extra: &[&str]) -> Self {
        Self::start_with(bin, backend, "127.0.0.1:0", extra)
    }

    /// As [`RelayProc::start_on`], inside the network namespace `ns` (its control address is
    /// then reachable only from inside `ns`).
    pub fn start_in(ns: &crate::netns::Netns, backend: &str, listen: &str, extra: &[&str]) -> Self {
        Self::launch(ns.command(relay_bin()), backend, listen, extra)
    }

    fn start_with(bin: &std::path::Path, backend: &str, listen: &str, extra: &[&str]) -> Self {
        Self::launch(Command::new(bin), backend, listen, extra)
    }

    fn launch(mut cmd: Command, backend: &str, listen: &str, extra: &[&str]) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let data_dir =
            std::env::temp_dir().join(format!("ournet-e2e-{}-{n}-{}", std::process::id(), backend));
        let _ = std::fs::remove_dir_all(&data_dir);
        let mut child = cmd
            .args(["--listen", listen, "--control", "127.0.0.1:0"])
            .args(["--workers", "2", "--no-pin", "--drain-timeout", "1"])
            .args([
                "--backend",
                backend,
                "--log",
                "warn",
                "--allow-private-extend",
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start relay");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(READY_TIMEOUT).expect("relay ready line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("ready JSON");
        assert_eq!(v["event"], "ready");
        assert_eq!(v["backend"], backend);
        let info = RelayInfo {
            addr: v["listen"].as_str().unwrap().parse().unwrap(),
            identity: IdentityPublicKey::from_hex(v["identity"].as_str().unwrap()).unwrap(),
            onion_key: EncryptionPublicKey::from_hex(v["onion_key"].as_str().unwrap()).unwrap(),
            link_key: EncryptionPublicKey::from_hex(v["link_key"].as_str().unwrap()).unwrap(),
        };
        let control = v["control"].as_str().unwrap().parse().unwrap();
        Self {
            child,
            info,
            control,
            data_dir,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB, from `/proc`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Open file descriptors, from `/proc`.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// GETs `path` from the control plane and returns the body.
    pub fn control_get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.control).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }

    /// The value of one Prometheus series summed over workers (`name{...labels` prefix).
    pub fn metric(&self, prefix: &str) -> u64 {
        self.control_get("/metrics")
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Drops counted for `reason`, summed over workers.
    pub fn drops(&self, reason: &str) -> u64 {
        let label = format!("reason=\"{reason}\"");
        self.control_get("/metrics")
            .lines()
            .filter(|l| l.starts_with("ournet_drops_total{") && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // The `kill` command keeps this crate free of unsafe.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
