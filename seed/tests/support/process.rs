//! Real `ournet-seed` processes for e2e tests: started on 127.0.0.1 port 0, the bound address
//! read from the ready line on stdout, terminated with SIGTERM, killed on drop.
#![allow(dead_code, reason = "shared by several test crates")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};
use ournet_seed::client::RouterIdentity;
use serde_json::{Value, json};

pub(crate) const TEST_CONFIG: &str = "
pow_difficulty_base = 4
pow_difficulty_second = 4
pow_difficulty_third_plus = 4
probe_endpoints = false
discover_cache_seconds = 0.0
rate_limit_enabled = false
";

pub(crate) struct SeedProcess {
    child: Child,
    pub(crate) addr: String,
    /// The config file written next to the data directory; removed on drop.
    config: PathBuf,
}

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ournet-seed-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl SeedProcess {
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_with(data_dir, extra, "")
    }

    pub(crate) fn start_with(data_dir: &Path, extra: &[&str], more_config: &str) -> Self {
        let config = data_dir.with_extension("toml");
        std::fs::write(&config, format!("{TEST_CONFIG}\n{more_config}")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ournet-seed"))
            .arg("--config")
            .arg(&config)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("seed exited before it was ready")
                .unwrap();
            if let Some(a) = line.strip_prefix("listening on ") {
                break a.to_owned();
            }
        };
        // Keep draining stdout so the child never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            addr,
            config,
        }
    }

    /// SIGTERM, then wait for the exit.
    pub(crate) fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap()
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        let (st, resp) = ournet_seed::probe::request(
            &self.addr,
            method,
            path,
            bytes.as_deref(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        (st, serde_json::from_slice(&resp).unwrap_or(Value::Null))
    }

    pub(crate) async fn challenge(&self) -> (String, u32) {
        let (st, c) = self.call("GET", "/challenge", None).await;
        assert_eq!(st, 200, "{c}");
        (
            c["challenge"].as_str().unwrap().to_owned(),
            c["difficulty"].as_u64().unwrap() as u32,
        )
    }

    pub(crate) async fn register_with(&self, r: &RouterIdentity, c: &str, d: u32) -> (u16, Value) {
        let body = r.register_body(c, d, now(), 1 << 24).unwrap();
        self.call("POST", "/register", Some(&Value::Object(body)))
            .await
    }

    pub(crate) async fn discovered_ids(&self) -> Vec<String> {
        let (st, v) = self
            .call("POST", "/discover", Some(&json!({"requested_count": 20})))
            .await;
        assert_eq!(st, 200);
        v["routers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["router_id"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for SeedProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

pub(crate) fn router(n: u8, endpoint: &str) -> RouterIdentity {
    RouterIdentity {
        identity: IdentityKeypair::from_secret_bytes(&[n; 32]),
        endpoints: vec![endpoint.to_owned()],
        capacity: json!({"max_connections": 100})
            .as_object()
            .cloned()
            .unwrap(),
        region: None,
        onion_key: EncryptionKeypair::from_secret_bytes(&[n ^ 0x55; 32]).public(),
        link_key: EncryptionKeypair::from_secret_bytes(&[n ^ 0xaa; 32]).public(),
        registered_at: now().floor(),
    }
}
