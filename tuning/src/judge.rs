//! Judging a host: a pure function from a [`HostSnapshot`] to [`Finding`]s.
//!
//! Nothing here reads the host or changes it, so every rule is tested on recorded snapshots
//! (`tuning/tests/snapshots/`). Each finding states the current value, the wanted one, why the
//! relay cares and the command that fixes it. [`Severity::Important`] is reserved for what
//! costs a relay most of its speed or makes it fail under load (io_uring unavailable, too few
//! file descriptors, more workers than cores, a listen backlog below the relay's); the rest is
//! advice measured on saturated links, and info.

mod cpu;
mod kernel;
mod nic;
mod sysctl;

use serde::Serialize;

use crate::snapshot::HostSnapshot;

pub use nic::{irq_targets, rps_target, xps_targets};
pub use sysctl::{SysctlFix, sysctl_fixes};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// As wanted.
    Ok,
    /// Worth knowing; nothing to change (or nothing this host lets us see).
    Info,
    /// Changing it helps a relay on a busy link.
    Advice,
    /// Off in a way that costs most of the relay's speed or fails it under load: makes
    /// `ournet-tune check` exit non-zero.
    Important,
}

/// One judged setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was looked at (`net.core.somaxconn`, `irq affinity eth0`, `relay workers`).
    pub setting: String,
    /// Its value on this host.
    pub current: String,
    /// What a relay wants.
    pub wanted: String,
    /// How much it matters.
    pub severity: Severity,
    /// Why the relay cares.
    pub why: String,
    /// The command (or unit line) that fixes it; empty when nothing is to be done.
    pub fix: String,
}

impl Finding {
    /// A finding; `fix` may be empty.
    fn new(
        setting: impl Into<String>,
        current: impl Into<String>,
        wanted: impl Into<String>,
        severity: Severity,
        why: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            setting: setting.into(),
            current: current.into(),
            wanted: wanted.into(),
            severity,
            why: why.into(),
            fix: fix.into(),
        }
    }
}

/// Judges everything in `snap`, in a stable order: kernel and io_uring, limits, sysctls,
/// CPUs, the relay's workers and pinning, then each NIC.
pub fn judge(snap: &HostSnapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    kernel::judge(snap, &mut out);
    sysctl::judge(snap, &mut out);
    cpu::judge(snap, &mut out);
    nic::judge(snap, &mut out);
    out
}

/// Whether any finding is [`Severity::Important`]: the exit status of `check`.
pub fn anything_important(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Important)
}

/// `[0, 1, 2, 5]` as `0-2,5` (the kernel's CPU list format).
pub fn cpu_list(cpus: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(&start) = cpus.get(i) {
        let mut end = start;
        while cpus.get(i + 1) == Some(&(end + 1)) {
            end += 1;
            i += 1;
        }
        parts.push(if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(",")
    }
}

/// CPUs as a sysfs hex mask (`rps_cpus`, `xps_cpus`): 32-bit groups, comma-separated,
/// most significant first, e.g. CPUs 0 and 33 as `00000002,00000001`.
pub fn cpu_mask(cpus: &[u32]) -> String {
    let groups = cpus.iter().map(|c| c / 32 + 1).max().unwrap_or(1);
    let mut words = vec![0u32; groups as usize];
    for c in cpus {
        if let Some(w) = words.get_mut((c / 32) as usize) {
            *w |= 1 << (c % 32);
        }
    }
    let mut parts: Vec<String> = words.iter().rev().map(|w| format!("{w:08x}")).collect();
    if let Some(first) = parts.first_mut() {
        let trimmed = first.trim_start_matches('0');
        *first = if trimmed.is_empty() { "0" } else { trimmed }.to_owned();
    }
    parts.join(",")
}

/// A sysfs hex mask back to CPUs (the inverse of [`cpu_mask`]; bad digits count as 0).
pub fn mask_cpus(mask: &str) -> Vec<u32> {
    let hex: String = mask.chars().filter(|c| *c != ',').collect();
    let mut cpus = Vec::new();
    for (i, ch) in hex.chars().rev().enumerate() {
        let nibble = ch.to_digit(16).unwrap_or(0);
        for bit in 0..4 {
            if nibble & (1 << bit) != 0 {
                cpus.extend(u32::try_from(i * 4 + bit).ok());
            }
        }
    }
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_and_masks_round_trip() {
        assert_eq!(cpu_list(&[0, 1, 2, 5]), "0-2,5");
        assert_eq!(cpu_list(&[]), "none");
        assert_eq!(cpu_mask(&[0, 1]), "3");
        assert_eq!(cpu_mask(&[0, 33]), "2,00000001");
        assert_eq!(cpu_mask(&[]), "0");
        assert_eq!(mask_cpus("2,00000001"), [0, 33]);
        assert_eq!(mask_cpus("0"), Vec::<u32>::new());
        assert_eq!(mask_cpus("ff"), (0..8).collect::<Vec<_>>());
    }
}
