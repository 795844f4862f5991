//! Network namespaces for tests where nodes and relays sit on different hosts.
//!
//! [`Netns::new`] makes a namespace (`ip netns add`) with loopback up and deletes it on drop;
//! [`veth`] joins two namespaces with a veth pair; [`Netns::command`] runs a program inside a
//! namespace (`ip netns exec`). Needs root and iproute2 (`scripts/deps` installs it);
//! [`available`] says whether this host allows it, so a test can say plainly why it cannot
//! run instead of passing silently.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name.
    pub name: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether namespaces can be made here (root, iproute2, a kernel that allows it).
///
/// # Errors
/// Why not.
pub fn available() -> Result<(), String> {
    let probe = format!("ournet-probe-{}", std::process::id());
    ip(&["netns", "add", &probe])?;
    ip(&["netns", "del", &probe])
}

impl Netns {
    /// Makes namespace `ournet-<pid>-<tag>` with `lo` up.
    ///
    /// # Errors
    /// What `ip` said.
    pub fn new(tag: &str) -> Result<Self, String> {
        let name = format!("ournet-{}-{tag}", std::process::id());
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs `ip ARGS` inside the namespace.
    ///
    /// # Errors
    /// What `ip` said.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Moves the calling thread into the namespace: sockets it opens from now on live there,
    /// so one test thread can act as a host on that network (setns(2) is per thread).
    ///
    /// # Errors
    /// The OS error.
    pub fn enter_current_thread(&self) -> std::io::Result<()> {
        let file = std::fs::File::open(format!("/var/run/netns/{}", self.name))?;
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )?;
        Ok(())
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Joins `a` and `b` with a veth pair; `a_addrs` and `b_addrs` are CIDR addresses for each end
/// (the first of each is the primary). Routes follow from the prefixes.
///
/// # Errors
/// What `ip` said.
pub fn veth(a: &Netns, a_addrs: &[&str], b: &Netns, b_addrs: &[&str]) -> Result<(), String> {
    let pid = std::process::id() % 100_000;
    let (va, vb) = (format!("oa{pid}"), format!("ob{pid}"));
    ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
    ip(&["link", "set", &va, "netns", &a.name])?;
    ip(&["link", "set", &vb, "netns", &b.name])?;
    for (ns, dev, addrs) in [(a, &va, a_addrs), (b, &vb, b_addrs)] {
        for addr in addrs {
            ns.ip(&["addr", "add", addr, "dev", dev])?;
        }
        ns.ip(&["link", "set", dev, "up"])?;
    }
    Ok(())
}

/// The fault proxy (`ournet-fault-proxy`) as a process in a namespace; killed on drop. Its
/// last counters line is kept.
#[derive(Debug)]
pub struct ProxyProc {
    child: Child,
    last: Arc<Mutex<Value>>,
}

impl ProxyProc {
    /// Starts the proxy binary `bin` in `ns` with `LISTEN=TARGET` maps, 10 ms each way, 1 %
    /// of segments held back 200 ms and 0.2 % stalls of 300 ms; waits for `ready`.
    pub fn start(ns: &Netns, bin: &str, maps: &[String]) -> Self {
        let mut child = ns
            .command(bin)
            .args(maps)
            .args(["--delay-ms", "10", "--hold-pct", "1", "--hold-ms", "200"])
            .args(["--stall-pct", "0.2", "--stall-ms", "300", "--seed", "7"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready");
        let last = Arc::new(Mutex::new(Value::Null));
        let (stderr, keep) = (child.stderr.take().unwrap(), last.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    *keep.lock().unwrap() = v;
                }
            }
        });
        Self { child, last }
    }

    /// A counter of the proxy's last stats line (`connections`, `held`, `stalls`, ...).
    pub fn counter(&self, name: &str) -> u64 {
        self.last.lock().unwrap()[name].as_u64().unwrap_or(0)
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Relays in a [`SplitNet`].
pub const SPLIT_RELAYS: usize = 5;
/// The seed's address on the relay host.
pub const SPLIT_SEED_ADDR: &str = "10.1.0.1:8470";
/// The node host's address.
pub const SPLIT_NODE_IP: [u8; 4] = [10, 200, 0, 1];

/// Two hosts: a relay host (a seed, [`SPLIT_RELAYS`] relays and a fault proxy in front of
/// each) and a node host, joined by a veth pair. Relay `i` listens on `10.1.0.1:9101+i` and
/// advertises its proxy, `10.(i+2).0.1:9001`, so every link to it crosses the proxy.
#[derive(Debug)]
pub struct SplitNet {
    /// Where tests run their nodes ([`Netns::enter_current_thread`]).
    pub node_host: Netns,
    /// The relays (dropped before the namespaces).
    pub relays: Vec<crate::relay::RelayProc>,
    /// The seed.
    pub seed: crate::seed::SeedProc,
    /// The proxies.
    pub proxy: ProxyProc,
    /// The relays' router ids, in start order.
    pub ids: Vec<String>,
    /// Last, so it is deleted after its processes are gone.
    pub relay_host: Netns,
}

impl SplitNet {
    /// Builds the two hosts and starts everything; `proxy_bin` is the fault proxy's path,
    /// `extra` more relay flags.
    ///
    /// # Panics
    /// When namespaces cannot be made here (says why) or a process does not start.
    pub fn start(proxy_bin: &str, extra: &[&str]) -> Self {
        if let Err(why) = available() {
            panic!("network namespaces are needed (run as root with iproute2): {why}");
        }
        let relay_host = Netns::new("relays").unwrap();
        let node_host = Netns::new("nodes").unwrap();
        // One address per proxy, each in its own /16 so the seed serves every relay.
        let addrs: Vec<String> = (1..=SPLIT_RELAYS + 1)
            .map(|i| format!("10.{i}.0.1/8"))
            .collect();
        let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
        veth(&relay_host, &addrs, &node_host, &["10.200.0.1/8"]).unwrap();
        let maps: Vec<String> = (0..SPLIT_RELAYS)
            .map(|i| format!("{}={}", Self::advertised(i), Self::listen(i)))
            .collect();
        let proxy = ProxyProc::start(&relay_host, proxy_bin, &maps);
        let seed = crate::seed::SeedProc::start_in(
            &relay_host,
            crate::seed::TEST_SEED_CONFIG,
            SPLIT_SEED_ADDR,
        );
        let seed_url = format!("http://{SPLIT_SEED_ADDR}");
        let kinds = crate::relay::backends();
        let relays: Vec<_> = (0..SPLIT_RELAYS)
            .map(|i| {
                let adv = Self::advertised(i);
                let mut args = vec!["--seed-url", &seed_url, "--advertise-addr", &adv];
                args.extend_from_slice(extra);
                let backend = &kinds[i % kinds.len()];
                crate::relay::RelayProc::start_in(&relay_host, backend, &Self::listen(i), &args)
            })
            .collect();
        let ids = relays.iter().map(|r| r.info.identity.to_hex()).collect();
        Self {
            node_host,
            relays,
            seed,
            proxy,
            ids,
            relay_host,
        }
    }

    /// Where relay `i` listens.
    pub fn listen(i: usize) -> String {
        format!("10.1.0.1:{}", 9101 + i)
    }

    /// What relay `i` advertises: its proxy.
    pub fn advertised(i: usize) -> String {
        format!("10.{}.0.1:9001", i + 2)
    }
}
