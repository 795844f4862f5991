//! Network interfaces: queues, RPS/XPS masks and the IRQs of their queues.
//!
//! A physical NIC has `/sys/class/net/IF/device`; its interrupts are listed as
//! `msi_irqs/` of the PCI function, which for virtio-net is the parent of the `virtioN` device.
//! Names come from `/proc/interrupts`; only queue interrupts are kept (names with `input`,
//! `output`, `rx`, `tx`, `comp` or `TxRx`), not config or async-event lines.

use std::fs;
use std::path::Path;

use super::{Root, parse_cpu_list, read_trimmed};
use crate::snapshot::{Irq, Nic, Queue};

/// Every interface that has a physical device.
pub(super) fn read_all(root: &Root) -> Vec<Nic> {
    let Ok(dir) = fs::read_dir(root.path("sys/class/net")) else {
        return Vec::new();
    };
    let names = irq_names(&root.text("proc/interrupts").unwrap_or_default());
    let mut nics: Vec<Nic> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|name| read_nic(root, &name, &names))
        .collect();
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    nics
}

fn read_nic(root: &Root, name: &str, names: &[(u32, String)]) -> Option<Nic> {
    let base = root.path(&format!("sys/class/net/{name}"));
    let device = fs::canonicalize(base.join("device")).ok()?;
    if device.components().any(|c| c.as_os_str() == "virtual") {
        return None;
    }
    let driver = fs::read_link(device.join("driver"))
        .ok()
        .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()));
    let speed_mbps = read_trimmed(&base.join("speed")).and_then(|s| s.parse().ok());
    let numa_node = [device.join("numa_node"), device.join("../numa_node")]
        .iter()
        .find_map(|p| read_trimmed(p)?.parse::<i64>().ok())
        .and_then(|n| u32::try_from(n).ok());
    Some(Nic {
        name: name.to_owned(),
        driver,
        speed_mbps,
        numa_node,
        rx_queues: queues(&base, "rx-", "rps_cpus"),
        tx_queues: queues(&base, "tx-", "xps_cpus"),
        irqs: device_irqs(root, &device, names),
    })
}

fn queues(base: &Path, prefix: &str, mask_file: &str) -> Vec<Queue> {
    let Ok(dir) = fs::read_dir(base.join("queues")) else {
        return Vec::new();
    };
    let mut qs: Vec<(u32, Queue)> = dir
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix(prefix)?.parse().ok()?;
            let cpus_mask = read_trimmed(&e.path().join(mask_file));
            Some((n, Queue { name, cpus_mask }))
        })
        .collect();
    qs.sort_by_key(|(n, _)| *n);
    qs.into_iter().map(|(_, q)| q).collect()
}

/// The queue IRQs of the device (or of its parent PCI function, for virtio).
fn device_irqs(root: &Root, device: &Path, names: &[(u32, String)]) -> Vec<Irq> {
    let numbers = [device.join("msi_irqs"), device.join("../msi_irqs")]
        .iter()
        .find_map(|p| fs::read_dir(p).ok())
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok()?.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut irqs: Vec<Irq> = numbers
        .into_iter()
        .filter_map(|n| {
            let name = names.iter().find(|(m, _)| *m == n)?.1.clone();
            is_queue_irq(&name).then(|| Irq {
                number: n,
                affinity: root
                    .text(&format!("proc/irq/{n}/smp_affinity_list"))
                    .map(|t| parse_cpu_list(&t))
                    .unwrap_or_default(),
                name,
            })
        })
        .collect();
    irqs.sort_by_key(|i| i.number);
    irqs
}

fn is_queue_irq(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["input", "output", "rx", "tx", "comp"]
        .iter()
        .any(|k| lower.contains(k))
}

/// `(number, name)` for each numbered row of `/proc/interrupts` (the name is the last field).
pub(crate) fn irq_names(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .filter_map(|l| {
            let (num, rest) = l.trim_start().split_once(':')?;
            let n = num.parse().ok()?;
            Some((n, rest.split_whitespace().last()?.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupt_rows_give_numbers_and_names_and_queue_lines_are_told_apart() {
        let text = "           CPU0       CPU1\n\
                     37:          0          0 PCI-MSIX-0000:00:03.0   0-edge      virtio2-config\n\
                     38:          0       2904 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\n\
                    NMI:          0          0   Non-maskable interrupts\n";
        let names = irq_names(text);
        assert_eq!(
            names,
            [
                (37, "virtio2-config".to_owned()),
                (38, "virtio2-input.0".to_owned())
            ]
        );
        assert!(is_queue_irq("virtio2-input.0"));
        assert!(is_queue_irq("mlx5_comp3@pci:0000:81:00.0"));
        assert!(is_queue_irq("eth0-TxRx-5"));
        assert!(!is_queue_irq("virtio2-config"));
        assert!(!is_queue_irq("mlx5_async0@pci:0000:81:00.0"));
    }
}
