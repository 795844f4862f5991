//! Reading the host: the one place that touches `/proc`, `/sys` and io_uring.
//!
//! Everything here only reads (the io_uring probe sets up a ring and drops it). A file that is
//! missing or unreadable becomes an absent value in the [`HostSnapshot`]; nothing here
//! decides whether a value is good (that is [`crate::judge`]). The root of the file system is
//! a parameter so the reader itself can be pointed at a copied tree.

mod nic;
mod uring;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::snapshot::{CpuState, HostSnapshot, Limit, NumaNode, ProcessLimits, RelaySettings};

/// The sysctls [`crate::judge`] has an opinion on (read even when it has none on this host,
/// so a snapshot shows them).
pub const SYSCTLS: &[&str] = &[
    "net.core.somaxconn",
    "net.core.netdev_max_backlog",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.core.default_qdisc",
    "net.core.busy_poll",
    "net.core.busy_read",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_congestion_control",
    "net.ipv4.tcp_available_congestion_control",
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
    "net.ipv4.ip_local_port_range",
    "fs.file-max",
    "fs.nr_open",
    "kernel.io_uring_disabled",
];

/// Where the host's files are: `/` on a real host.
#[derive(Debug, Clone)]
pub struct Root(PathBuf);

impl Root {
    /// The real host.
    pub fn host() -> Self {
        Self(PathBuf::from("/"))
    }

    /// `rel` (written without a leading `/`) under this root.
    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// The trimmed content of a file, or `None`.
    fn text(&self, rel: &str) -> Option<String> {
        read_trimmed(&self.path(rel))
    }
}

/// Reads everything [`HostSnapshot`] holds. `relay` is the relay's settings when the caller
/// has a relay config (see [`crate::relay_config`]).
pub fn read_host(root: &Root, relay: Option<RelaySettings>) -> HostSnapshot {
    let sysctls = SYSCTLS
        .iter()
        .filter_map(|k| Some(((*k).to_owned(), root.text(&sysctl_path(k))?)))
        .collect();
    HostSnapshot {
        kernel_release: root.text("proc/sys/kernel/osrelease"),
        io_uring: uring::read(root),
        limits: read_limits(root),
        sysctls,
        cpu: read_cpu(root),
        nics: nic::read_all(root),
        irqbalance_running: find_process(root, "irqbalance").is_some(),
        relay,
    }
}

/// `net.core.somaxconn` to `proc/sys/net/core/somaxconn`.
pub fn sysctl_path(key: &str) -> String {
    format!("proc/sys/{}", key.replace('.', "/"))
}

/// The limits of a running `ournet-relay` (what matters), else of this process.
fn read_limits(root: &Root) -> ProcessLimits {
    let (source, file) = match find_process(root, "ournet-relay") {
        Some(pid) => (
            format!("ournet-relay (pid {pid})"),
            format!("proc/{pid}/limits"),
        ),
        None => (
            "this shell (no ournet-relay running)".to_owned(),
            "proc/self/limits".to_owned(),
        ),
    };
    let text = root.text(&file).unwrap_or_default();
    ProcessLimits {
        source,
        nofile: parse_limit(&text, "Max open files"),
        memlock: parse_limit(&text, "Max locked memory"),
    }
}

/// One row of `/proc/PID/limits`: `Max open files  1024  524288  files`.
pub(crate) fn parse_limit(text: &str, row: &str) -> Option<Limit> {
    let rest = text.lines().find_map(|l| l.strip_prefix(row))?;
    let mut fields = rest.split_whitespace();
    let value = |f: Option<&str>| -> Option<Option<u64>> {
        match f? {
            "unlimited" => Some(None),
            n => n.parse().ok().map(Some),
        }
    };
    Some(Limit {
        soft: value(fields.next())?,
        hard: value(fields.next())?,
    })
}

fn read_cpu(root: &Root) -> CpuState {
    let online = root
        .text("sys/devices/system/cpu/online")
        .map(|t| parse_cpu_list(&t))
        .unwrap_or_default();
    let governors = online
        .iter()
        .filter_map(|c| {
            let g = root.text(&format!(
                "sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor"
            ))?;
            Some((*c, g))
        })
        .collect::<BTreeMap<_, _>>();
    let smt_active = root
        .text("sys/devices/system/cpu/smt/active")
        .map(|t| t == "1");
    CpuState {
        online,
        governors,
        smt_active,
        numa_nodes: read_numa(root),
    }
}

fn read_numa(root: &Root) -> Vec<NumaNode> {
    let Ok(dir) = fs::read_dir(root.path("sys/devices/system/node")) else {
        return Vec::new();
    };
    let mut nodes: Vec<NumaNode> = dir
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_prefix("node")?.parse().ok()?;
            let cpus = read_trimmed(&e.path().join("cpulist"))?;
            Some(NumaNode {
                id,
                cpus: parse_cpu_list(&cpus),
            })
        })
        .collect();
    nodes.sort_by_key(|n| n.id);
    nodes
}

/// The pid of a process whose `comm` is `name`, if one runs.
fn find_process(root: &Root, name: &str) -> Option<u32> {
    let dir = fs::read_dir(root.path("proc")).ok()?;
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok()?.parse::<u32>().ok())
        .find(|pid| root.text(&format!("proc/{pid}/comm")).as_deref() == Some(name))
}

/// `0-3,8,10-11` to `[0, 1, 2, 3, 8, 10, 11]`; malformed parts are skipped, and a range
/// is capped at 4096 CPUs so a corrupt file cannot make a huge list.
pub fn parse_cpu_list(text: &str) -> Vec<u32> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) else {
            continue;
        };
        cpus.extend((a..=b.min(a.saturating_add(4095))).take(4096));
    }
    cpus.sort_unstable();
    cpus.dedup();
    cpus
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_and_limit_rows_parse() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("x,2"), [2]);
        assert_eq!(parse_cpu_list(""), Vec::<u32>::new());
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n\
                      Max locked memory         unlimited            unlimited            bytes\n";
        assert_eq!(
            parse_limit(limits, "Max open files"),
            Some(Limit {
                soft: Some(1024),
                hard: Some(524_288)
            })
        );
        assert_eq!(
            parse_limit(limits, "Max locked memory"),
            Some(Limit {
                soft: None,
                hard: None
            })
        );
        assert_eq!(parse_limit(limits, "Max processes"), None);
    }

    #[test]
    fn reading_this_host_finds_its_cpus_and_kernel() {
        let snap = read_host(&Root::host(), None);
        assert!(!snap.cpu.online.is_empty());
        assert!(snap.kernel_release.is_some());
        assert!(snap.sysctls.contains_key("net.core.somaxconn"));
    }
}
