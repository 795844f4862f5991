//! Starting a seed process for tests: `ournet-seed` on 127.0.0.1 port 0 with the embedded
//! store, its address read from the `listening on …` line, killed on drop.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ournet_bench::localnet::net::verify_discover;
use ournet_proto::circuit::PathHop;
use ournet_proto::keys::IdentityPublicKey;
use serde_json::Value;

/// How long the seed may take to print its address before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A seed configuration for local test networks: low PoW difficulty (rising per registration
/// from one IP, so relays on one host meet the adaptive path), endpoint probes on (the seed
/// completes a link handshake with each registering relay's published keys), no caching of
/// `/discover` and no registration rate limit.
pub const TEST_SEED_CONFIG: &str = "
pow_difficulty_base = 4
pow_difficulty_second = 6
pow_difficulty_third_plus = 8
probe_endpoints = true
discover_cache_seconds = 0.0
rate_limit_enabled = false
";

/// The seed binary, built once per test process with the cargo that runs the tests.
pub fn seed_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| crate::relay::build_bin("ournet-seed"))
        .clone()
}

/// A seed process; killed on drop.
#[derive(Debug)]
pub struct SeedProc {
    child: Child,
    /// `host:port` of the API.
    pub addr: String,
    data_dir: PathBuf,
}

impl SeedProc {
    /// Starts a seed with `config` (TOML) and waits for its address.
    pub fn start(config: &str) -> Self {
        Self::launch(Command::new(seed_bin()), config, "127.0.0.1:0")
    }

    /// As [`SeedProc::start`], inside the network namespace `ns`, listening on `listen`.
    pub fn start_in(ns: &crate::netns::Netns, config: &str, listen: &str) -> Self {
        Self::launch(ns.command(seed_bin()), config, listen)
    }

    fn launch(mut cmd: Command, config: &str, listen: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let data_dir =
            std::env::temp_dir().join(format!("ournet-e2e-seed-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).unwrap();
        let config_file = data_dir.join("seed.toml");
        std::fs::write(&config_file, config).unwrap();
        let mut child = cmd
            .arg("--config")
            .arg(&config_file)
            .args(["--listen", listen, "--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir.join("data"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start seed");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { return };
                if let Some(a) = line.strip_prefix("listening on ") {
                    let _ = tx.send(a.to_owned());
                    break;
                }
            }
            // Keep draining so the seed never writes into a closed pipe.
            lines.for_each(drop);
        });
        let addr = rx.recv_timeout(READY_TIMEOUT).expect("seed address line");
        Self {
            child,
            addr,
            data_dir,
        }
    }

    /// The URL relays take with `--seed-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The seed's public key, read from its data directory (as an operator hands it to the
    /// clients that pin it, out of band).
    pub fn public_key(&self) -> IdentityPublicKey {
        let bytes = std::fs::read(self.data_dir.join("data").join("seed_key")).unwrap();
        let secret: [u8; 32] = bytes.as_slice().try_into().unwrap();
        ournet_proto::keys::IdentityKeypair::from_secret_bytes(&secret).public()
    }

    /// One request; returns the status and the JSON body (`Null` if not JSON).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        )
        .unwrap();
        s.write_all(&body).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// `POST /discover` for up to `count` routers: the whole signed answer.
    pub fn discover(&self, count: u32) -> Value {
        let (status, v) = self.call(
            "POST",
            "/discover",
            Some(&serde_json::json!({"requested_count": count})),
        );
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Polls `/discover` until it lists every relay of `ids` (hex identities) with verified
    /// signatures, and returns the listed hops by router id. Fails the test after `timeout`.
    pub fn wait_listed(&self, ids: &[String], timeout: Duration) -> HashMap<String, PathHop> {
        let deadline = Instant::now() + timeout;
        loop {
            let hops = verified_hops(&self.discover(64));
            if ids.iter().all(|id| hops.contains_key(id)) {
                return hops;
            }
            assert!(
                Instant::now() < deadline,
                "relays never all listed by /discover"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for SeedProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The relays of a `/discover` answer whose list signature (against the answer's own seed
/// key) and two descriptor signatures verify, as path hops by router id. The checks are
/// `localnet`'s ([`verify_discover`]); a failed one fails the test.
pub fn verified_hops(answer: &Value) -> HashMap<String, PathHop> {
    let (_key, bodies) = verify_discover(answer, None).expect("a /discover answer that verifies");
    bodies
        .into_iter()
        .map(|body| {
            let hop = PathHop {
                identity: body.router_id,
                onion_key: body.onion_key,
                link_key: body.link_key,
                addr: body.endpoints[0].parse().unwrap(),
            };
            (body.router_id.to_hex(), hop)
        })
        .collect()
}
