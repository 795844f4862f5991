//! What was observed on a host: plain values, no judgement.
//!
//! A [`HostSnapshot`] is what [`crate::read::read_host`] returns and what
//! [`crate::judge::judge`] takes. It serializes to JSON (`ournet-tune snapshot`), so the
//! judging is tested on recorded hosts (`tuning/tests/snapshots/`) instead of on the test
//! machine's kernel, which tests cannot change. Every value a host may not expose (a VM has no
//! `cpufreq`, a container may hide `/sys`) is an `Option` or an empty list: absent is a fact
//! to report, not an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything `ournet-tune check` looks at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostSnapshot {
    /// `/proc/sys/kernel/osrelease`, e.g. `6.1.0-18-amd64`.
    pub kernel_release: Option<String>,
    /// io_uring availability.
    pub io_uring: IoUringState,
    /// Resource limits of the relay process if one runs, else of this process.
    pub limits: ProcessLimits,
    /// The sysctls the judge knows, by dotted name (`net.core.somaxconn`), as the kernel
    /// prints them (tabs between fields). A key the kernel lacks is absent.
    pub sysctls: BTreeMap<String, String>,
    /// CPUs, SMT and NUMA.
    pub cpu: CpuState,
    /// Physical network interfaces (loopback and virtual devices such as `ifb`, `veth`,
    /// bridges are left out: they have no queues of their own to tune).
    pub nics: Vec<Nic>,
    /// Whether an `irqbalance` daemon runs (it would overwrite IRQ affinity).
    pub irqbalance_running: bool,
    /// The relay's own settings, when `--relay-config` was given.
    pub relay: Option<RelaySettings>,
}

/// io_uring as the relay would find it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IoUringState {
    /// `/proc/sys/kernel/io_uring_disabled` (6.6+): 0 allowed, 1 only for a group, 2 off.
    pub disabled_sysctl: Option<u32>,
    /// The result of setting up a ring here: `None` when not tried (not Linux).
    pub probe: Option<UringProbe>,
}

/// The result of a real ring setup, with the features the relay needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case", deny_unknown_fields)]
pub enum UringProbe {
    /// A ring was set up.
    Ok {
        /// `IORING_FEAT_EXT_ARG` (5.11): a wait with a timeout in one `io_uring_enter`.
        ext_arg: bool,
        /// Multishot receive (`IORING_RECV_MULTISHOT`, 6.0). A flag cannot be probed, so this
        /// is `IORING_OP_SEND_ZC`, the opcode that came with it in 6.0.
        multishot_recv: bool,
    },
    /// Setting up a ring failed (seccomp, `io_uring_disabled`, an old kernel).
    Failed {
        /// The OS error.
        error: String,
    },
}

/// `RLIMIT_NOFILE` and `RLIMIT_MEMLOCK`, read from `/proc/PID/limits`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessLimits {
    /// Whose limits these are: `ournet-relay (pid 1234)` or `this shell (no ournet-relay running)`.
    pub source: String,
    /// Open files.
    pub nofile: Option<Limit>,
    /// Locked memory, bytes.
    pub memlock: Option<Limit>,
}

/// A soft and hard resource limit; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// The soft limit (what the process gets).
    pub soft: Option<u64>,
    /// The hard limit (how far the process may raise it).
    pub hard: Option<u64>,
}

/// CPU layout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CpuState {
    /// Online CPUs (`/sys/devices/system/cpu/online`).
    pub online: Vec<u32>,
    /// `scaling_governor` per CPU that exposes one (none on most VMs).
    pub governors: BTreeMap<u32, String>,
    /// `/sys/devices/system/cpu/smt/active`.
    pub smt_active: Option<bool>,
    /// NUMA nodes with their CPUs.
    pub numa_nodes: Vec<NumaNode>,
}

/// One NUMA node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumaNode {
    /// Node number.
    pub id: u32,
    /// Its CPUs.
    pub cpus: Vec<u32>,
}

/// One physical network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Nic {
    /// Interface name.
    pub name: String,
    /// Kernel driver (`virtio_net`, `mlx5_core`, ...).
    pub driver: Option<String>,
    /// Link speed in Mbit/s, when the driver reports one.
    pub speed_mbps: Option<u64>,
    /// The NUMA node of the device, when the platform says (`-1` is mapped to `None`).
    pub numa_node: Option<u32>,
    /// Receive queues with their RPS CPU mask (hex, as in sysfs).
    pub rx_queues: Vec<Queue>,
    /// Transmit queues with their XPS CPU mask.
    pub tx_queues: Vec<Queue>,
    /// The device's interrupts that carry packets (queue IRQs; config/control ones left out).
    pub irqs: Vec<Irq>,
}

/// A NIC queue and its steering mask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    /// `rx-0`, `tx-3`, ...
    pub name: String,
    /// `rps_cpus` or `xps_cpus` (hex mask); `None` when the file is missing.
    pub cpus_mask: Option<String>,
}

/// One interrupt line of a NIC queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Irq {
    /// IRQ number.
    pub number: u32,
    /// Its name in `/proc/interrupts` (`virtio2-input.0`, `mlx5_comp3@pci:...`).
    pub name: String,
    /// `/proc/irq/N/smp_affinity_list` as CPUs.
    pub affinity: Vec<u32>,
}

/// The relay settings the checker judges (from the relay's TOML file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    /// The file they came from.
    pub path: String,
    /// `workers` (0: one per core).
    pub workers: usize,
    /// `pin_cores`.
    pub pin_cores: bool,
    /// `backend`: `auto`, `uring` or `epoll`.
    pub backend: String,
    /// `limits.max_connections`: the descriptors the relay may need.
    pub max_connections: u64,
}

impl HostSnapshot {
    /// The relay's worker count on this host: its `workers`, or one per online CPU.
    pub fn relay_workers(&self) -> Option<usize> {
        let relay = self.relay.as_ref()?;
        Some(if relay.workers > 0 {
            relay.workers
        } else {
            self.cpu.online.len().max(1)
        })
    }

    /// The CPUs the relay's workers are pinned to, in worker order: worker `i` on the `i`-th
    /// online CPU, wrapping (as `relay/src/server.rs` pins them). Empty when the relay does
    /// not pin or no relay config was given.
    pub fn worker_cpus(&self) -> Vec<u32> {
        let (Some(relay), Some(n)) = (&self.relay, self.relay_workers()) else {
            return Vec::new();
        };
        if !relay.pin_cores || self.cpu.online.is_empty() {
            return Vec::new();
        }
        let mut cpus: Vec<u32> = (0..n)
            .filter_map(|i| self.cpu.online.get(i % self.cpu.online.len()).copied())
            .collect();
        cpus.sort_unstable();
        cpus.dedup();
        cpus
    }

    /// The sysctl `key` as an integer (its first field), if present and numeric.
    pub fn sysctl_u64(&self, key: &str) -> Option<u64> {
        self.sysctls
            .get(key)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}
