//! A local network for client e2e tests: one seed and N relays on loopback, each relay on its
//! own /16 (`127.(i+1).0.1`: the seed serves one router per /16), registered by real PoW and
//! listed by `/discover`, with the relays' per-IP limits raised because every node of a test
//! connects from 127.0.0.1.

use std::time::Duration;

use ournet_proto::circuit::PathHop;

use crate::relay::RelayProc;
use crate::seed::{SeedProc, TEST_SEED_CONFIG};

/// Relay limits for one host (`localnet`'s): circuit creations and connections per IP raised
/// (Tor's 3 circuits a second per IP would throttle all of a test's nodes as one client).
pub use ournet_bench::localnet::net::RELAY_CONFIG;
/// Where relay `i` listens (`localnet`'s): `127.(i+1).0.1`, port 0, its own /16.
pub use ournet_bench::localnet::net::relay_listen;

/// How long the relays may take to be listed.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(120);

/// A seed and its relays; every process is killed on drop.
#[derive(Debug)]
pub struct TestNet {
    /// The seed.
    pub seed: SeedProc,
    /// The relays, in start order (`None` once killed).
    pub relays: Vec<Option<RelayProc>>,
    /// Each relay's router id (hex identity) and hop as `/discover` listed and signed it.
    pub hops: Vec<(String, PathHop)>,
    config: std::path::PathBuf,
}

impl TestNet {
    /// Starts a seed and `n` relays with `backend`, and waits until `/discover` lists them.
    pub fn start(n: usize, backend: &str) -> Self {
        Self::start_mixed(n, &[backend.to_owned()])
    }

    /// As [`TestNet::start`], relay `i` with backend `kinds[i % kinds.len()]`.
    pub fn start_mixed(n: usize, kinds: &[String]) -> Self {
        let seed = SeedProc::start(TEST_SEED_CONFIG);
        let config = std::env::temp_dir().join(format!(
            "ournet-testnet-{}-{}.toml",
            std::process::id(),
            seed.addr.replace([':', '.'], "-")
        ));
        std::fs::write(&config, RELAY_CONFIG).unwrap();
        let url = seed.url();
        let cfg = config.to_str().unwrap().to_owned();
        let relays: Vec<RelayProc> = (0..n)
            .map(|i| {
                let backend = &kinds[i % kinds.len()];
                RelayProc::start_on(
                    backend,
                    &relay_listen(i),
                    &["--seed-url", &url, "--config", &cfg],
                )
            })
            .collect();
        let ids: Vec<String> = relays.iter().map(|r| r.info.identity.to_hex()).collect();
        let listed = seed.wait_listed(&ids, DISCOVER_TIMEOUT);
        let hops = ids
            .iter()
            .map(|id| (id.clone(), listed[id].clone()))
            .collect();
        Self {
            seed,
            relays: relays.into_iter().map(Some).collect(),
            hops,
            config,
        }
    }

    /// SIGKILLs the relay whose router id is `id`; returns whether one was running.
    pub fn kill(&mut self, id: &str) -> bool {
        let i = self.hops.iter().position(|(r, _)| r == id);
        i.and_then(|i| self.relays.get_mut(i)?.take()).is_some()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}
