//! NIC queues, IRQ affinity, RPS and XPS against the relay's (pinned) workers.
//!
//! The wanted layout: queue `q`'s interrupts on worker CPU `q mod workers`, so the core that
//! runs a worker also takes the softirq work of the packets RSS steers to its queue. When the
//! NIC has fewer receive queues than workers, RPS spreads the rest in software. The same
//! targets serve `apply` ([`irq_targets`], [`rps_target`], [`xps_targets`]).

use super::{Finding, Severity, cpu_list, cpu_mask, mask_cpus};
use crate::snapshot::{HostSnapshot, Irq, Nic};

pub(super) fn judge(snap: &HostSnapshot, out: &mut Vec<Finding>) {
    for nic in &snap.nics {
        out.push(queues(snap, nic));
        out.push(irq_affinity(snap, nic));
        out.push(rps(snap, nic));
        out.push(xps(snap, nic));
    }
    if snap.irqbalance_running && !snap.nics.is_empty() {
        let pinned = !snap.worker_cpus().is_empty();
        out.push(Finding::new(
            "irqbalance",
            "running",
            "stopped (when IRQs follow pinned workers)",
            if pinned {
                Severity::Advice
            } else {
                Severity::Info
            },
            "irqbalance moves queue IRQs away from the workers' cores within seconds",
            "systemctl disable --now irqbalance",
        ));
    }
}

/// The CPUs NIC work should go to: the pinned workers' CPUs, else every online CPU.
pub(crate) fn targets(snap: &HostSnapshot) -> Vec<u32> {
    let workers = snap.worker_cpus();
    if workers.is_empty() {
        snap.cpu.online.clone()
    } else {
        workers
    }
}

/// `(irq, cpu)` for each queue IRQ: queue `q` (the number ending its name, else its order)
/// on `targets[q mod len]`, so `input.0` and `output.0` share a core.
pub fn irq_targets(snap: &HostSnapshot, nic: &Nic) -> Vec<(u32, u32)> {
    let cpus = targets(snap);
    if cpus.is_empty() {
        return Vec::new();
    }
    nic.irqs
        .iter()
        .enumerate()
        .filter_map(|(i, irq)| {
            let q = queue_index(irq).unwrap_or(i);
            Some((irq.number, *cpus.get(q % cpus.len())?))
        })
        .collect()
}

/// The RPS mask for every receive queue, when the NIC has fewer queues than target CPUs.
pub fn rps_target(snap: &HostSnapshot, nic: &Nic) -> Option<String> {
    let cpus = targets(snap);
    (nic.rx_queues.len() < cpus.len()).then(|| cpu_mask(&cpus))
}

/// `(queue name, mask)`: transmit queue `k` used by CPU `targets[k mod len]`, when there are
/// several transmit queues with an XPS file.
pub fn xps_targets(snap: &HostSnapshot, nic: &Nic) -> Vec<(String, String)> {
    let cpus = targets(snap);
    if nic.tx_queues.len() < 2 || cpus.is_empty() {
        return Vec::new();
    }
    let mut by_queue: Vec<Vec<u32>> = vec![Vec::new(); nic.tx_queues.len()];
    for (i, cpu) in cpus.iter().enumerate() {
        if let Some(q) = by_queue.get_mut(i % nic.tx_queues.len()) {
            q.push(*cpu);
        }
    }
    nic.tx_queues
        .iter()
        .zip(by_queue)
        .filter(|(q, cpus)| q.cpus_mask.is_some() && !cpus.is_empty())
        .map(|(q, cpus)| (q.name.clone(), cpu_mask(&cpus)))
        .collect()
}

fn queue_index(irq: &Irq) -> Option<usize> {
    let digits: String = irq
        .name
        .split('@')
        .next()?
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

fn queues(snap: &HostSnapshot, nic: &Nic) -> Finding {
    let want = targets(snap).len();
    let rx = nic.rx_queues.len();
    let speed = nic
        .speed_mbps
        .map_or("speed unknown".to_owned(), |s| format!("{s} Mbit/s"));
    let driver = nic.driver.as_deref().unwrap_or("driver unknown");
    let severity = if rx >= want {
        Severity::Ok
    } else {
        Severity::Info
    };
    Finding::new(
        format!("queues {}", nic.name),
        format!("{rx} rx / {} tx ({driver}, {speed})", nic.tx_queues.len()),
        format!(">= {want} rx (one per worker)"),
        severity,
        "RSS hashes each link to one queue; with a queue per worker no core handles another's \
         packets (fewer queues: RPS below spreads them in software)",
        if severity == Severity::Ok {
            String::new()
        } else {
            format!(
                "ethtool -L {} combined {want}  (if the NIC has them)",
                nic.name
            )
        },
    )
}

fn irq_affinity(snap: &HostSnapshot, nic: &Nic) -> Finding {
    let setting = format!("irq affinity {}", nic.name);
    let targets = irq_targets(snap, nic);
    if targets.is_empty() {
        return Finding::new(
            setting,
            "no queue IRQs found",
            "queue IRQs on worker CPUs",
            Severity::Info,
            "the device lists no MSI queue interrupts here",
            "",
        );
    }
    let current = show_irqs(nic.irqs.iter().map(|i| (i.number, cpu_list(&i.affinity))));
    let wanted = show_irqs(targets.iter().map(|(n, c)| (*n, c.to_string())));
    let matches = targets.iter().all(|(n, c)| {
        nic.irqs
            .iter()
            .any(|i| i.number == *n && i.affinity == [*c])
    });
    let pinned = !snap.worker_cpus().is_empty();
    let severity = match (matches, pinned) {
        (true, _) => Severity::Ok,
        (false, true) => Severity::Advice,
        (false, false) => Severity::Info,
    };
    Finding::new(
        setting,
        current,
        wanted,
        severity,
        if pinned {
            "each queue's interrupts on the core of the worker RSS feeds, not on every core"
        } else {
            "spread over all CPUs; with --relay-config and pinned workers, onto the workers' cores"
        },
        if matches {
            String::new()
        } else {
            "ournet-tune apply --relay-config FILE  (see --dry-run)".to_owned()
        },
    )
}

fn rps(snap: &HostSnapshot, nic: &Nic) -> Finding {
    let setting = format!("rps {}", nic.name);
    let current = nic
        .rx_queues
        .iter()
        .map(|q| format!("{}={}", q.name, q.cpus_mask.as_deref().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(" ");
    let Some(mask) = rps_target(snap, nic) else {
        return Finding::new(
            setting,
            current,
            "0 (RSS suffices)",
            Severity::Ok,
            "as many receive queues as target CPUs: hardware spreads the packets",
            "",
        );
    };
    let set = nic.rx_queues.iter().all(|q| {
        q.cpus_mask
            .as_deref()
            .is_some_and(|m| mask_cpus(m) == mask_cpus(&mask))
    });
    Finding::new(
        setting,
        current,
        format!("{mask} on every rx queue"),
        steer_severity(snap, set),
        "fewer receive queues than worker CPUs: without RPS one core does the protocol work \
         of every packet of a queue",
        if set {
            String::new()
        } else {
            "ournet-tune apply --relay-config FILE".to_owned()
        },
    )
}

fn xps(snap: &HostSnapshot, nic: &Nic) -> Finding {
    let setting = format!("xps {}", nic.name);
    let wanted = xps_targets(snap, nic);
    if wanted.is_empty() {
        return Finding::new(
            setting,
            format!("{} tx queue(s)", nic.tx_queues.len()),
            "one tx queue per CPU group",
            Severity::Ok,
            "one transmit queue (or no XPS files): nothing to map",
            "",
        );
    }
    let current = nic
        .tx_queues
        .iter()
        .map(|q| format!("{}={}", q.name, q.cpus_mask.as_deref().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(" ");
    let set = wanted.iter().all(|(name, mask)| {
        nic.tx_queues.iter().any(|q| {
            &q.name == name
                && q.cpus_mask
                    .as_deref()
                    .is_some_and(|m| mask_cpus(m) == mask_cpus(mask))
        })
    });
    Finding::new(
        setting,
        current,
        wanted
            .iter()
            .map(|(n, m)| format!("{n}={m}"))
            .collect::<Vec<_>>()
            .join(" "),
        steer_severity(snap, set),
        "each worker's sends go out on its own transmit queue, with no lock shared between cores",
        if set {
            String::new()
        } else {
            "ournet-tune apply --relay-config FILE".to_owned()
        },
    )
}

/// Ok when set; Advice when the relay's pinned workers say where to steer; else Info (the
/// spread over all CPUs is a suggestion, and `apply` only steers onto pinned workers).
fn steer_severity(snap: &HostSnapshot, set: bool) -> Severity {
    if set {
        Severity::Ok
    } else if snap.worker_cpus().is_empty() {
        Severity::Info
    } else {
        Severity::Advice
    }
}

fn show_irqs(items: impl Iterator<Item = (u32, String)>) -> String {
    items
        .map(|(n, c)| format!("{n}->{c}"))
        .collect::<Vec<_>>()
        .join(" ")
}
