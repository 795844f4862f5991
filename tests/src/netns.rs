//! Network namespaces for tests where nodes and relays sit on different hosts.
//!
//! [`Netns::new`] makes a namespace (`ip netns add`) with loopback up and deletes it on drop;
//! [`veth`] joins two namespaces with a veth pair; [`Netns::command`] runs a program inside a
//! namespace (`ip netns exec`). Needs root and iproute2 (`scripts/deps` installs it);
//! [`available`] says whether this host allows it, so a test can say plainly why it cannot
//! run instead of passing silently.

use std::process::{Command, Stdio};

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
