//! Kernel network sysctls a relay on a saturated link wants.
//!
//! One table ([`RULES`]) serves both the judge and `apply`'s drop-in ([`sysctl_fixes`]), so a
//! value the checker asks for is the value `apply` writes. Rules only raise limits (or pick a
//! scheduler): a host already above a wanted value is left alone.

use super::{Finding, Severity};
use crate::snapshot::HostSnapshot;

/// A value `apply` writes: a sysctl and its new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlFix {
    /// Dotted name.
    pub key: &'static str,
    /// The value to write, as `sysctl` takes it.
    pub value: String,
}

/// What a rule wants.
enum Want {
    /// The (first) field is at least this.
    AtLeast(u64),
    /// The (first) field is at most this.
    AtMost(u64),
    /// The third field (`tcp_rmem`'s max) is at least this; the first two stay.
    MaxFieldAtLeast(u64),
    /// The value is this word.
    Is(&'static str),
    /// A `low high` port range with at least this many ports.
    PortSpan(u64),
}

struct Rule {
    key: &'static str,
    want: Want,
    severity: Severity,
    why: &'static str,
}

const MIB16: u64 = 16 << 20;

const RULES: &[Rule] = &[
    Rule {
        key: "net.core.somaxconn",
        want: Want::AtLeast(1024),
        severity: Severity::Important,
        why: "caps the relay's listen backlog (it asks 1024): below it, bursts of new links \
              lose their SYNs and wait a retransmit",
    },
    Rule {
        key: "net.ipv4.tcp_max_syn_backlog",
        want: Want::AtLeast(4096),
        severity: Severity::Advice,
        why: "half-open links kept during a connection burst (a relay restart brings every \
              client back at once)",
    },
    Rule {
        key: "net.core.netdev_max_backlog",
        want: Want::AtLeast(16384),
        severity: Severity::Advice,
        why: "packets queued per CPU before the stack takes them; 1000 drops bursts at 10 Gbit/s",
    },
    Rule {
        key: "net.core.rmem_max",
        want: Want::AtLeast(MIB16),
        severity: Severity::Advice,
        why: "ceiling of SO_RCVBUF: 16 MiB covers a 1 Gbit/s link 100 ms away",
    },
    Rule {
        key: "net.core.wmem_max",
        want: Want::AtLeast(MIB16),
        severity: Severity::Advice,
        why: "ceiling of SO_SNDBUF: 16 MiB covers a 1 Gbit/s link 100 ms away",
    },
    Rule {
        key: "net.ipv4.tcp_rmem",
        want: Want::MaxFieldAtLeast(MIB16),
        severity: Severity::Advice,
        why: "receive autotuning ceiling: a relay-to-relay link's window must hold its \
              bandwidth-delay product (1 Gbit/s x 100 ms = 12.5 MB)",
    },
    Rule {
        key: "net.ipv4.tcp_wmem",
        want: Want::MaxFieldAtLeast(MIB16),
        severity: Severity::Advice,
        why: "send autotuning ceiling, same bandwidth-delay product as tcp_rmem",
    },
    Rule {
        key: "net.ipv4.tcp_notsent_lowat",
        want: Want::AtMost(131_072),
        severity: Severity::Advice,
        why: "keeps unsent cells in the relay, where its QoS scheduler orders circuits, \
              instead of megabytes of them in the kernel's socket queue ahead of every circuit",
    },
    Rule {
        key: "net.ipv4.tcp_slow_start_after_idle",
        want: Want::Is("0"),
        severity: Severity::Advice,
        why: "a link idle for one RTO restarts at a small window; relay links are bursty and \
              long-lived",
    },
    Rule {
        key: "net.ipv4.tcp_congestion_control",
        want: Want::Is("bbr"),
        severity: Severity::Advice,
        why: "BBR keeps throughput on long, lossy paths where CUBIC backs off (needs the \
              tcp_bbr module)",
    },
    Rule {
        key: "net.core.default_qdisc",
        want: Want::Is("fq"),
        severity: Severity::Advice,
        why: "fair queueing with pacing across the relay's many links (and what BBR was built on)",
    },
    Rule {
        key: "net.ipv4.ip_local_port_range",
        want: Want::PortSpan(28_000),
        severity: Severity::Advice,
        why: "source ports for the relay's outbound links to other relays",
    },
];

/// Judges each rule's sysctl, plus busy polling (info only).
pub(super) fn judge(snap: &HostSnapshot, out: &mut Vec<Finding>) {
    for rule in RULES {
        out.push(judge_rule(snap, rule));
    }
    let busy = ["net.core.busy_poll", "net.core.busy_read"]
        .iter()
        .map(|k| format!("{k}={}", snap.sysctls.get(*k).map_or("?", String::as_str)))
        .collect::<Vec<_>>()
        .join(" ");
    out.push(Finding::new(
        "busy polling",
        busy,
        "0 (the relay's loops do not busy-poll sockets)",
        Severity::Info,
        "busy_poll/busy_read spin a core per blocking read or poll for latency; the io_uring \
         backend never blocks in poll(2), so they do not help it and only burn CPU under epoll",
        "",
    ));
}

/// The sysctls `apply` writes: each rule the host does not meet, with the value it wants.
pub fn sysctl_fixes(snap: &HostSnapshot) -> Vec<SysctlFix> {
    RULES
        .iter()
        .filter_map(|rule| {
            let current = snap.sysctls.get(rule.key)?;
            let value = fixed_value(rule, current)?;
            Some(SysctlFix {
                key: rule.key,
                value,
            })
        })
        .collect()
}

fn judge_rule(snap: &HostSnapshot, rule: &Rule) -> Finding {
    let Some(current) = snap.sysctls.get(rule.key) else {
        return Finding::new(
            rule.key,
            "absent",
            wanted_text(&rule.want),
            Severity::Info,
            format!("{} (this kernel does not expose it)", rule.why),
            "",
        );
    };
    let (severity, fix) = match fixed_value(rule, current) {
        None => (Severity::Ok, String::new()),
        Some(v) => (rule.severity, fix_command(rule.key, &v)),
    };
    Finding::new(
        rule.key,
        current.split_whitespace().collect::<Vec<_>>().join(" "),
        wanted_text(&rule.want),
        severity,
        rule.why,
        fix,
    )
}

fn fix_command(key: &str, value: &str) -> String {
    let extra = match key {
        "net.ipv4.tcp_congestion_control" => "modprobe tcp_bbr && ",
        _ => "",
    };
    format!("{extra}sysctl -w {key}=\"{value}\"  (kept by: ournet-tune apply)")
}

fn wanted_text(want: &Want) -> String {
    match want {
        Want::AtLeast(n) => format!(">= {n}"),
        Want::AtMost(n) => format!("<= {n}"),
        Want::MaxFieldAtLeast(n) => format!("max >= {n}"),
        Want::Is(w) => (*w).to_owned(),
        Want::PortSpan(n) => format!(">= {n} ports"),
    }
}

/// `None` when `current` already meets the rule, else the value to write.
fn fixed_value(rule: &Rule, current: &str) -> Option<String> {
    let fields: Vec<u64> = current
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    match rule.want {
        Want::AtLeast(n) => (fields.first().copied()? < n).then(|| n.to_string()),
        Want::AtMost(n) => (fields.first().copied()? > n).then(|| n.to_string()),
        Want::MaxFieldAtLeast(n) => match fields.as_slice() {
            [min, def, max] if *max < n => Some(format!("{min} {def} {n}")),
            _ => None,
        },
        Want::Is(word) => (current.trim() != word).then(|| word.to_owned()),
        Want::PortSpan(n) => match fields.as_slice() {
            [low, high] if high.saturating_sub(*low) < n => Some("10000 65000".to_owned()),
            _ => None,
        },
    }
}
