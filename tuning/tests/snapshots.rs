//! The judge and the apply plan on recorded hosts (`tests/snapshots/`):
//! * `this-host.json`: this project's 2-vCPU build VM, recorded with
//!   `ournet-tune snapshot --relay-config deploy/config/relay.toml`;
//! * `tuned-server.json`: hand-made, a 16-core server with a 25 Gbit/s mlx5 NIC set up as
//!   OPERATORS.md says (one queue and IRQ per pinned worker, sysctls applied);
//! * `badly-tuned.json`: hand-made, everything off (kernel 5.10, io_uring forbidden, 1024
//!   descriptors, 32 unpinned workers on 8 CPUs, IRQs all on CPU 0, irqbalance running).
#![allow(clippy::unwrap_used, reason = "test code")]

use std::path::{Path, PathBuf};
use std::process::Command;

use ournet_tune::judge::{Finding, Severity, anything_important, judge};
use ournet_tune::plan::{SYSCTL_DROPIN, plan};
use ournet_tune::snapshot::HostSnapshot;

fn snapshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/snapshots/{name}.json"))
}

fn load(name: &str) -> HostSnapshot {
    let text = std::fs::read_to_string(snapshot_path(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn finding<'a>(findings: &'a [Finding], setting: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.setting == setting)
        .unwrap_or_else(|| panic!("no finding {setting}: {findings:#?}"))
}

fn severity(findings: &[Finding], setting: &str) -> Severity {
    finding(findings, setting).severity
}

#[test]
fn snapshots_round_trip_through_json() {
    for name in ["this-host", "tuned-server", "badly-tuned"] {
        let snap = load(name);
        let again: HostSnapshot =
            serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();
        assert_eq!(snap, again, "{name}");
    }
}

#[test]
fn this_host_is_judged_as_it_is() {
    let f = judge(&load("this-host"));
    // 6.18 with io_uring allowed: the relay's fast backend works here.
    assert_eq!(severity(&f, "kernel"), Severity::Ok);
    assert_eq!(severity(&f, "io_uring"), Severity::Ok);
    // No relay ran when it was recorded: the shell's 20000 descriptors are advice, not a
    // verdict on a service (which gets its unit's LimitNOFILE).
    let nofile = finding(&f, "open files (RLIMIT_NOFILE)");
    assert_eq!(nofile.severity, Severity::Advice);
    assert_eq!(nofile.current, "soft 20000 / hard 20000");
    // 8 MiB memlock does not bind on 6.18 (memcg accounting).
    assert_eq!(
        severity(&f, "locked memory (RLIMIT_MEMLOCK)"),
        Severity::Info
    );
    assert_eq!(severity(&f, "net.core.somaxconn"), Severity::Ok);
    assert_eq!(
        severity(&f, "net.core.netdev_max_backlog"),
        Severity::Advice
    );
    assert_eq!(
        severity(&f, "net.ipv4.tcp_congestion_control"),
        Severity::Ok
    );
    assert_eq!(severity(&f, "net.core.default_qdisc"), Severity::Advice);
    // A VM: no cpufreq; two vCPUs, one queue of virtio_net.
    assert_eq!(severity(&f, "cpu frequency governor"), Severity::Info);
    assert_eq!(severity(&f, "relay workers"), Severity::Ok);
    assert_eq!(finding(&f, "relay pinning").current, "pinned to cpus 0-1");
    let irq = finding(&f, "irq affinity eth0");
    assert_eq!(
        (irq.current.as_str(), irq.wanted.as_str()),
        ("38->0-1 39->0-1", "38->0 39->0")
    );
    assert_eq!(severity(&f, "rps eth0"), Severity::Advice);
    assert!(!anything_important(&f));
}

#[test]
fn a_tuned_server_has_nothing_to_fix_and_apply_would_change_nothing() {
    let snap = load("tuned-server");
    let f = judge(&snap);
    let off: Vec<&Finding> = f.iter().filter(|x| x.severity > Severity::Info).collect();
    assert!(off.is_empty(), "{off:#?}");
    assert!(!anything_important(&f));
    // Every queue IRQ already sits on its worker's core, so the wanted layout is the current.
    let irq = finding(&f, "irq affinity enp65s0f0np0");
    assert_eq!(irq.current, irq.wanted);
    assert_eq!(severity(&f, "rps enp65s0f0np0"), Severity::Ok);
    let p = plan(&snap, None);
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
}

#[test]
fn a_badly_tuned_server_fails_on_what_matters() {
    let f = judge(&load("badly-tuned"));
    for setting in [
        "kernel",
        "io_uring",
        "open files (RLIMIT_NOFILE)",
        "locked memory (RLIMIT_MEMLOCK)",
        "net.core.somaxconn",
        "relay workers",
    ] {
        assert_eq!(severity(&f, setting), Severity::Important, "{setting}");
    }
    for setting in [
        "net.core.netdev_max_backlog",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_congestion_control",
        "cpu frequency governor",
        "relay pinning",
    ] {
        assert_eq!(severity(&f, setting), Severity::Advice, "{setting}");
    }
    assert_eq!(
        finding(&f, "relay workers").fix,
        "workers = 8 (or 0) in /etc/ournet/relay.toml"
    );
    assert!(
        finding(&f, "net.ipv4.tcp_congestion_control")
            .fix
            .starts_with("modprobe tcp_bbr")
    );
    // Unpinned workers: the IRQ spread is only a suggestion, and apply leaves IRQs alone.
    assert_eq!(severity(&f, "irq affinity eno1"), Severity::Info);
    assert!(anything_important(&f));
    let p = plan(&load("badly-tuned"), None);
    assert!(p.changes.iter().all(|c| !c.path.starts_with("proc/irq")));
    assert!(p.notes.iter().any(|n| n.contains("pin_cores = true")));
}

#[test]
fn pinned_workers_get_their_queue_irqs_rps_and_xps_and_the_drop_in_merges() {
    let mut snap = load("badly-tuned");
    let relay = snap.relay.as_mut().unwrap();
    relay.workers = 8;
    relay.pin_cores = true;
    let f = judge(&snap);
    assert_eq!(severity(&f, "relay workers"), Severity::Ok);
    assert_eq!(severity(&f, "irq affinity eno1"), Severity::Advice);
    assert_eq!(severity(&f, "irqbalance"), Severity::Advice);
    // NIC on node 1 (CPUs 4-7); workers on 0-7.
    assert_eq!(severity(&f, "NUMA"), Severity::Advice);

    let old = "# mine\nvm.swappiness = 10\nnet.core.somaxconn = 512\n";
    let p = plan(&snap, Some(old));
    let dropin = p.changes.iter().find(|c| c.path == SYSCTL_DROPIN).unwrap();
    assert!(
        dropin.new.contains("vm.swappiness = 10\n"),
        "{}",
        dropin.new
    );
    assert!(dropin.new.contains("net.core.somaxconn = 1024\n"));
    assert!(
        dropin
            .new
            .contains("net.ipv4.tcp_rmem = 4096 131072 16777216\n")
    );
    let write = |path: &str| {
        p.changes
            .iter()
            .find(|c| c.path == path)
            .map(|c| c.new.clone())
    };
    // eno1-TxRx-q on worker q's core; four queues for eight workers: RPS over all eight.
    for q in 0..4u32 {
        assert_eq!(
            write(&format!("proc/irq/{}/smp_affinity_list", 40 + q)),
            (q != 0).then(|| q.to_string()),
            "irq of queue {q} (queue 0 is already on CPU 0)"
        );
        assert_eq!(
            write(&format!("sys/class/net/eno1/queues/rx-{q}/rps_cpus")).as_deref(),
            Some("ff")
        );
    }
    assert_eq!(
        write("sys/class/net/eno1/queues/tx-1/xps_cpus").as_deref(),
        Some("22"),
        "tx-1 used by CPUs 1 and 5"
    );
    assert_eq!(
        write("proc/sys/net/core/somaxconn").as_deref(),
        Some("1024")
    );
    assert!(p.notes.iter().any(|n| n.contains("irqbalance")));
}

#[test]
fn apply_writes_the_plan_under_its_root() {
    let mut snap = load("badly-tuned");
    snap.relay.as_mut().unwrap().pin_cores = true;
    snap.relay.as_mut().unwrap().workers = 8;
    let p = plan(&snap, None);
    let root = std::env::temp_dir().join(format!("ournet-tune-apply-{}", std::process::id()));
    // A scratch tree with the /proc and /sys files the plan writes (they exist on a host).
    for c in p.changes.iter().filter(|c| !c.path.starts_with("etc/")) {
        let path = root.join(&c.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "old").unwrap();
    }
    let outcomes = ournet_tune::apply::execute(&p, &root);
    assert!(outcomes.iter().all(|o| o.result.is_ok()));
    for c in &p.changes {
        assert_eq!(std::fs::read_to_string(root.join(&c.path)).unwrap(), c.new);
    }
    assert!(root.join(SYSCTL_DROPIN).is_file());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_cli_exit_status_says_whether_anything_important_is_off() {
    let bin = env!("CARGO_BIN_EXE_ournet-tune");
    let run = |args: &[&str]| Command::new(bin).args(args).output().unwrap();
    let bad = snapshot_path("badly-tuned");
    let out = run(&["check", "--snapshot", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("IMPORTANT relay workers"), "{table}");
    let tuned = snapshot_path("tuned-server");
    let out = run(&["check", "--json", "--snapshot", tuned.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["important"], false);
    assert!(v["findings"].as_array().unwrap().len() > 20);
    // This host, for real: JSON that agrees with the exit status.
    let out = run(&["check", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let important = v["important"].as_bool().unwrap();
    assert_eq!(out.status.code(), Some(i32::from(important)));
    // A dry run prints its plan and ends so; it never writes.
    let out = run(&["apply", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .ends_with("dry run: nothing changed\n")
    );
}
