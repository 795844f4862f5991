//! The kernel, io_uring and the process limits the relay runs under.

use super::{Finding, Severity};
use crate::snapshot::{HostSnapshot, Limit, UringProbe};

/// The io_uring backend needs multishot receive and `EXT_ARG` (relay/README.md).
const URING_KERNEL: (u32, u32) = (6, 0);
/// Since 5.12 io_uring rings are charged to the memory cgroup, not `RLIMIT_MEMLOCK`.
const MEMCG_KERNEL: (u32, u32) = (5, 12);
/// What the unit sets (`deploy/ournet-relay.service`): room for fixed buffers later.
const MEMLOCK_WANTED: u64 = 64 << 20;
/// The floor of the file-descriptor limit, whatever the relay's connection cap.
const NOFILE_FLOOR: u64 = 65_536;

pub(super) fn judge(snap: &HostSnapshot, out: &mut Vec<Finding>) {
    out.push(kernel(snap));
    out.push(io_uring(snap));
    out.push(nofile(snap));
    out.push(memlock(snap));
}

/// `6.1.0-18-amd64` to `(6, 1)`.
pub(crate) fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn kernel(snap: &HostSnapshot) -> Finding {
    let release = snap.kernel_release.as_deref().unwrap_or("unknown");
    let version = kernel_version(release);
    let (severity, fix) = match version {
        Some(v) if v >= URING_KERNEL => (Severity::Ok, ""),
        Some(_) => (
            Severity::Important,
            "upgrade the kernel (Debian 12 ships 6.1); until then run --backend epoll",
        ),
        None => (Severity::Info, ""),
    };
    Finding::new(
        "kernel",
        release,
        ">= 6.0",
        severity,
        "the io_uring backend needs multishot receive, provided buffers and EXT_ARG (6.0)",
        fix,
    )
}

fn io_uring(snap: &HostSnapshot) -> Finding {
    let state = &snap.io_uring;
    let disabled = state.disabled_sysctl.unwrap_or(0);
    let sysctl = state
        .disabled_sysctl
        .map_or("absent (before 6.6)".to_owned(), |d| d.to_string());
    let current = match &state.probe {
        Some(UringProbe::Ok {
            ext_arg,
            multishot_recv,
        }) => format!(
            "ring set up (ext_arg {}, 6.0 opcodes {}), io_uring_disabled={sysctl}",
            yes(*ext_arg),
            yes(*multishot_recv)
        ),
        Some(UringProbe::Failed { error }) => {
            format!("ring setup failed: {error}, io_uring_disabled={sysctl}")
        }
        None => "not probed (not Linux)".to_owned(),
    };
    let usable = matches!(
        state.probe,
        Some(UringProbe::Ok {
            ext_arg: true,
            multishot_recv: true
        })
    );
    let epoll = snap.relay.as_ref().is_some_and(|r| r.backend == "epoll");
    let (severity, why, fix) = if usable {
        (
            Severity::Ok,
            "the relay's fast backend; this probe ran as this user, so a sandbox (seccomp, \
             SystemCallFilter) around the relay can still forbid it",
            String::new(),
        )
    } else if epoll {
        (
            Severity::Info,
            "the relay config chooses the epoll backend, so io_uring is not needed",
            String::new(),
        )
    } else {
        (
            Severity::Important,
            "without it `--backend auto` falls back to epoll (slower) and `uring` refuses to \
             start",
            uring_fix(disabled),
        )
    };
    Finding::new("io_uring", current, "usable", severity, why, fix)
}

fn uring_fix(disabled: u32) -> String {
    match disabled {
        0 => "a kernel >= 6.0 without a seccomp filter on io_uring_setup (containers: allow it)"
            .to_owned(),
        _ => {
            "sysctl -w kernel.io_uring_disabled=0  (or 1 with kernel.io_uring_group = the relay's \
              group)"
                .to_owned()
        }
    }
}

fn nofile(snap: &HostSnapshot) -> Finding {
    let conns = snap.relay.as_ref().map_or(20_000, |r| r.max_connections);
    // Each inbound link is one descriptor and may open an outbound leg: two per connection,
    // plus listeners, rings and the control plane.
    let wanted = conns
        .saturating_mul(2)
        .saturating_add(1024)
        .max(NOFILE_FLOOR);
    let limits = &snap.limits;
    let running = limits.source.starts_with("ournet-relay");
    let (current, severity) = match limits.nofile {
        Some(l) if l.soft.is_none_or(|s| s >= wanted) => (show(l), Severity::Ok),
        Some(l) if running => (show(l), Severity::Important),
        Some(l) => (show(l), Severity::Advice),
        None => ("unknown".to_owned(), Severity::Info),
    };
    let why = format!(
        "{} links need two descriptors each at worst; at the limit accept fails and new links \
         are refused. Read from {}{}.",
        conns,
        limits.source,
        if running {
            ""
        } else {
            "; a service gets its unit's LimitNOFILE instead"
        }
    );
    let fix = match severity {
        Severity::Ok | Severity::Info => String::new(),
        _ => "LimitNOFILE=1048576 in the unit (deploy/systemd/ournet-relay.service); by hand: \
              ulimit -n 1048576"
            .to_owned(),
    };
    Finding::new(
        "open files (RLIMIT_NOFILE)",
        current,
        format!(">= {wanted}"),
        severity,
        why,
        fix,
    )
}

fn memlock(snap: &HostSnapshot) -> Finding {
    let version = snap.kernel_release.as_deref().and_then(kernel_version);
    let charged_to_memlock = version.is_some_and(|v| v < MEMCG_KERNEL);
    let current = snap.limits.memlock.map_or("unknown".to_owned(), show);
    let enough = snap
        .limits
        .memlock
        .is_some_and(|l| l.soft.is_none_or(|s| s >= MEMLOCK_WANTED));
    let (severity, why) = match (enough, charged_to_memlock) {
        (true, _) => (
            Severity::Ok,
            "room for io_uring rings and future fixed buffers",
        ),
        (false, true) => (
            Severity::Important,
            "before 5.12 every io_uring ring is charged to RLIMIT_MEMLOCK: workers fail to set \
             up their rings",
        ),
        (false, false) => (
            Severity::Info,
            "since 5.12 rings are charged to the memory cgroup and the relay registers no fixed \
             buffers yet, so this limit does not bind today; the unit sets 64 MiB for when it \
             does",
        ),
    };
    let fix = match severity {
        Severity::Important => "LimitMEMLOCK=64M in the unit; by hand: ulimit -l 65536",
        _ => "",
    };
    Finding::new(
        "locked memory (RLIMIT_MEMLOCK)",
        current,
        format!(">= {MEMLOCK_WANTED}"),
        severity,
        why,
        fix,
    )
}

fn show(l: Limit) -> String {
    let v = |x: Option<u64>| x.map_or("unlimited".to_owned(), |n| n.to_string());
    format!("soft {} / hard {}", v(l.soft), v(l.hard))
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(kernel_version("6.18.44-fc-v1147"), Some((6, 18)));
        assert_eq!(kernel_version("5.10.0-28-amd64"), Some((5, 10)));
        assert_eq!(kernel_version("6.1"), Some((6, 1)));
        assert_eq!(kernel_version("garbage"), None);
    }
}
