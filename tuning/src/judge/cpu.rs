//! CPUs against the relay's workers: frequency governor, SMT, NUMA, worker count, pinning.

use super::{Finding, Severity, cpu_list};
use crate::snapshot::HostSnapshot;

pub(super) fn judge(snap: &HostSnapshot, out: &mut Vec<Finding>) {
    out.push(governor(snap));
    out.push(smt(snap));
    out.push(numa(snap));
    out.push(workers(snap));
    out.push(pinning(snap));
}

fn governor(snap: &HostSnapshot) -> Finding {
    let govs = &snap.cpu.governors;
    if govs.is_empty() {
        return Finding::new(
            "cpu frequency governor",
            "not exposed",
            "performance",
            Severity::Info,
            "no cpufreq driver here (usual in a VM: the hypervisor sets the clock)",
            "",
        );
    }
    let slow: Vec<u32> = govs
        .iter()
        .filter(|(_, g)| g.as_str() != "performance")
        .map(|(c, _)| *c)
        .collect();
    let mut kinds: Vec<&str> = govs.values().map(String::as_str).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let current = format!("{} (cpus {})", kinds.join(", "), cpu_list(&slow));
    let (severity, fix) = if slow.is_empty() {
        (Severity::Ok, String::new())
    } else {
        (
            Severity::Advice,
            "cpupower frequency-set -g performance  (or: echo performance | tee \
             /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)"
                .to_owned(),
        )
    };
    Finding::new(
        "cpu frequency governor",
        if slow.is_empty() {
            "performance".to_owned()
        } else {
            current
        },
        "performance",
        severity,
        "a busy-then-idle relay loop is what powersave/schedutil clock down between bursts: \
         cells wait for the core to ramp up",
        fix,
    )
}

fn smt(snap: &HostSnapshot) -> Finding {
    let Some(active) = snap.cpu.smt_active else {
        return Finding::new(
            "SMT (hyper-threading)",
            "unknown",
            "workers = physical cores",
            Severity::Info,
            "the kernel does not say whether sibling threads share cores",
            "",
        );
    };
    let one_per_thread = snap.relay.as_ref().is_some_and(|r| r.workers == 0);
    let (severity, why, fix) = match (active, one_per_thread) {
        (false, _) => (
            Severity::Ok,
            "every CPU is a core of its own (or the VM shows no siblings)",
            "",
        ),
        (true, true) => (
            Severity::Advice,
            "workers = 0 starts one per thread, so two workers share each core's AES units; one \
             per physical core often moves as many cells with less jitter: measure both",
            "workers = <physical cores> in the relay config",
        ),
        (true, false) => (
            Severity::Info,
            "sibling threads share a core: pin workers to distinct cores",
            "",
        ),
    };
    Finding::new(
        "SMT (hyper-threading)",
        if active { "active" } else { "off" },
        "workers = physical cores",
        severity,
        why,
        fix,
    )
}

fn numa(snap: &HostSnapshot) -> Finding {
    let nodes = &snap.cpu.numa_nodes;
    if nodes.len() <= 1 {
        return Finding::new(
            "NUMA",
            format!("{} node(s)", nodes.len().max(1)),
            "workers on the NIC's node",
            Severity::Ok,
            "one memory node: nothing to place",
            "",
        );
    }
    let workers = snap.worker_cpus();
    let nic_node = snap.nics.iter().find_map(|n| n.numa_node);
    let node_cpus = nic_node.and_then(|id| nodes.iter().find(|n| n.id == id));
    let (severity, current) = match node_cpus {
        Some(node) if !workers.is_empty() => {
            let off: Vec<u32> = workers
                .iter()
                .copied()
                .filter(|c| !node.cpus.contains(c))
                .collect();
            let sev = if off.is_empty() {
                Severity::Ok
            } else {
                Severity::Advice
            };
            (
                sev,
                format!(
                    "{} nodes; NIC on node {}; workers off it: {}",
                    nodes.len(),
                    node.id,
                    cpu_list(&off)
                ),
            )
        }
        _ => (
            Severity::Info,
            format!("{} nodes; NIC node or worker CPUs unknown", nodes.len()),
        ),
    };
    let fix = match severity {
        Severity::Advice => {
            "run the relay with CPUAffinity= the NIC's node and workers = its cores"
        }
        _ => "",
    };
    Finding::new(
        "NUMA",
        current,
        "workers on the NIC's node",
        severity,
        "a worker on the far node reads every packet across the interconnect",
        fix,
    )
}

fn workers(snap: &HostSnapshot) -> Finding {
    let cores = snap.cpu.online.len();
    let Some(relay) = &snap.relay else {
        return Finding::new(
            "relay workers",
            "no relay config given",
            format!("<= {cores} (online CPUs)"),
            Severity::Info,
            "pass --relay-config FILE to judge workers and pinning against this host",
            "",
        );
    };
    let n = snap.relay_workers().unwrap_or(1);
    let current = if relay.workers == 0 {
        format!("0 (one per CPU: {n})")
    } else {
        n.to_string()
    };
    let (severity, why, fix) = if n > cores {
        (
            Severity::Important,
            "more workers than CPUs time-share cores: every extra worker adds scheduling \
             latency to all cells, and pinning wraps two workers onto one core",
            format!("workers = {cores} (or 0) in {}", relay.path),
        )
    } else if n < cores {
        (
            Severity::Info,
            "some CPUs run no worker: fine when the host runs other things or for SMT siblings",
            String::new(),
        )
    } else {
        (Severity::Ok, "one worker per CPU", String::new())
    };
    Finding::new(
        "relay workers",
        current,
        format!("<= {cores} (online CPUs)"),
        severity,
        why,
        fix,
    )
}

fn pinning(snap: &HostSnapshot) -> Finding {
    let Some(relay) = &snap.relay else {
        return Finding::new(
            "relay pinning",
            "no relay config given",
            "pin_cores = true",
            Severity::Info,
            "pass --relay-config FILE",
            "",
        );
    };
    let (severity, current, fix) = if relay.pin_cores {
        (
            Severity::Ok,
            format!("pinned to cpus {}", cpu_list(&snap.worker_cpus())),
            String::new(),
        )
    } else {
        (
            Severity::Advice,
            "not pinned".to_owned(),
            format!("pin_cores = true in {}", relay.path),
        )
    };
    Finding::new(
        "relay pinning",
        current,
        "pin_cores = true",
        severity,
        "a pinned worker keeps its links' state in its core's cache, and its NIC queue's \
         IRQ can be sent to the same core (ournet-tune apply)",
        fix,
    )
}
