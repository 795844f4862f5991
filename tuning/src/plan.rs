//! What `ournet-tune apply` would change: a pure function from a snapshot to file writes.
//!
//! Every change is a file and the text to write into it: the sysctl drop-in (kept across
//! reboots), the live `/proc/sys` values, `/proc/irq/N/smp_affinity_list` and the RPS/XPS masks.
//! Paths are relative to the root [`crate::apply::execute`] is given, so tests apply a plan to
//! a scratch tree. The values come from the judge's own tables ([`crate::judge::sysctl_fixes`],
//! [`crate::judge::irq_targets`]), so `apply` writes exactly what `check` asks for.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::judge::{cpu_list, irq_targets, mask_cpus, rps_target, sysctl_fixes, xps_targets};
use crate::read::sysctl_path;
use crate::snapshot::HostSnapshot;

/// The drop-in `apply` writes, relative to the root.
pub const SYSCTL_DROPIN: &str = "etc/sysctl.d/60-ournet-relay.conf";

/// One file write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The file, relative to the root (`proc/irq/38/smp_affinity_list`).
    pub path: String,
    /// What it holds now (`None`: the file does not exist yet).
    pub current: Option<String>,
    /// What will be written.
    pub new: String,
    /// Why.
    pub why: String,
}

/// Everything `apply` would do, and what it leaves to the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// File writes, in order (drop-in first).
    pub changes: Vec<Change>,
    /// Things `apply` does not do, said once.
    pub notes: Vec<String>,
}

/// The plan for `snap`. `dropin` is the current content of [`SYSCTL_DROPIN`], if any: its
/// settings are kept and the new ones merged in, so a second `apply` never forgets the first.
pub fn plan(snap: &HostSnapshot, dropin: Option<&str>) -> Plan {
    let mut out = Plan::default();
    sysctls(snap, dropin, &mut out);
    if snap.worker_cpus().is_empty() {
        out.notes.push(
            "IRQ affinity, RPS and XPS follow pinned workers: give --relay-config of a relay \
             with pin_cores = true to set them"
                .to_owned(),
        );
    } else {
        steering(snap, &mut out);
        out.notes.push(
            "IRQ affinity, RPS and XPS do not survive a reboot or a driver reload: run \
             `ournet-tune apply` at boot (deploy/ournet-tune.service)"
                .to_owned(),
        );
        if snap.irqbalance_running {
            out.notes.push(
                "irqbalance runs and will move the IRQs back: systemctl disable --now irqbalance"
                    .to_owned(),
            );
        }
    }
    out
}

fn sysctls(snap: &HostSnapshot, dropin: Option<&str>, out: &mut Plan) {
    let fixes = sysctl_fixes(snap);
    if fixes.is_empty() {
        return;
    }
    let mut merged: BTreeMap<String, String> = dropin.map(parse_dropin).unwrap_or_default();
    for f in &fixes {
        merged.insert(f.key.to_owned(), f.value.clone());
    }
    let mut text = String::from(
        "# Written by `ournet-tune apply`: kernel settings for an our-network relay.\n\
         # `ournet-tune check` explains each one. A later apply merges into this file.\n",
    );
    for (k, v) in &merged {
        text.push_str(&format!("{k} = {v}\n"));
    }
    out.changes.push(Change {
        path: SYSCTL_DROPIN.to_owned(),
        current: dropin.map(str::to_owned),
        new: text,
        why: "keeps the settings below across reboots (sysctl --system reads it)".to_owned(),
    });
    for f in fixes {
        out.changes.push(Change {
            path: sysctl_path(f.key),
            current: snap
                .sysctls
                .get(f.key)
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" ")),
            new: f.value,
            why: format!("{}: live value", f.key),
        });
    }
}

fn steering(snap: &HostSnapshot, out: &mut Plan) {
    for nic in &snap.nics {
        for (irq, cpu) in irq_targets(snap, nic) {
            let current = nic.irqs.iter().find(|i| i.number == irq);
            if current.is_some_and(|i| i.affinity == [cpu]) {
                continue;
            }
            out.changes.push(Change {
                path: format!("proc/irq/{irq}/smp_affinity_list"),
                current: current.map(|i| cpu_list(&i.affinity)),
                new: cpu.to_string(),
                why: format!("{} queue IRQ onto its worker's core", nic.name),
            });
        }
        if let Some(mask) = rps_target(snap, nic) {
            for q in &nic.rx_queues {
                push_mask(
                    out,
                    &nic.name,
                    &q.name,
                    "rps_cpus",
                    q.cpus_mask.as_deref(),
                    &mask,
                );
            }
        }
        for (name, mask) in xps_targets(snap, nic) {
            let current = nic.tx_queues.iter().find(|q| q.name == name);
            let current = current.and_then(|q| q.cpus_mask.as_deref());
            push_mask(out, &nic.name, &name, "xps_cpus", current, &mask);
        }
    }
}

fn push_mask(out: &mut Plan, nic: &str, queue: &str, file: &str, now: Option<&str>, mask: &str) {
    if now.is_some_and(|m| mask_cpus(m) == mask_cpus(mask)) {
        return;
    }
    out.changes.push(Change {
        path: format!("sys/class/net/{nic}/queues/{queue}/{file}"),
        current: now.map(str::to_owned),
        new: mask.to_owned(),
        why: format!("{nic} {queue}: steer to the workers' cores"),
    });
}

/// `key = value` lines of a sysctl.d file (comments and malformed lines skipped).
fn parse_dropin(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}
