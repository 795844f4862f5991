//! The deployment kit (`deploy/`) is checked by the tools that will read it: systemd's own
//! verifier for the units, the relay's and the seed's config types for the example configs,
//! `haproxy -c` for the balancer, and the relay's and seed's sources for the metric names the
//! alert rules use. `scripts/deps` installs systemd (for `systemd-analyze`) and haproxy; a
//! missing tool fails the test rather than skipping it.
#![allow(clippy::unwrap_used, reason = "test code")]

use std::path::{Path, PathBuf};
use std::process::Command;

use ournet_relay::config::Config as RelayConfig;
use ournet_seed::config::SeedConfig;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn deploy(rel: &str) -> PathBuf {
    repo().join("deploy").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ournet-deploy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The value of `key=` in a unit file (the first one).
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .to_owned()
}

const UNITS: [&str; 3] = [
    "ournet-relay.service",
    "ournet-seed.service",
    "ournet-tune.service",
];

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    // `systemd-analyze verify` runs without a running systemd (it loads the unit files and
    // checks them offline), but it fails a unit whose ExecStart binary does not exist. The
    // units name /usr/local/bin/ournet-*, which a test machine does not have, so the test
    // copies them into a scratch directory with ExecStart pointing at stand-in executables
    // there (copies of `true`); every other line is verified exactly as shipped.
    let dir = scratch("units");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let truth = ["/usr/bin/true", "/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    for name in ["ournet-relay", "ournet-seed", "ournet-tune"] {
        std::fs::copy(truth, bin.join(name)).unwrap();
    }
    for unit in UNITS {
        let text = read(&deploy(&format!("systemd/{unit}")));
        assert!(text.contains("ExecStart=/usr/local/bin/"), "{unit}");
        let text = text.replace("/usr/local/bin/", &format!("{}/", bin.display()));
        std::fs::write(dir.join(unit), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(UNITS)
        .current_dir(&dir)
        .output()
        .expect("systemd-analyze (Debian's systemd package): run scripts/deps");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on unknown keys and bad values and only warns: any output is a failure.
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn systemd_verify_catches_a_misspelt_hardening_key() {
    // The check above means something only if verify reports such mistakes offline.
    let dir = scratch("typo");
    let text = "[Service]\nExecStart=/bin/true\nProtectSytem=strict\n";
    std::fs::write(dir.join("typo.service"), text).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "typo.service"])
        .current_dir(&dir)
        .output()
        .expect("systemd-analyze (Debian's systemd package): run scripts/deps");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ProtectSytem"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_relay_config_loads_with_the_relay_type_and_matches_its_unit() {
    let path = deploy("config/relay.toml");
    let config = RelayConfig::from_file(&path).unwrap();
    assert!(config.pin_cores);
    assert!(
        config.advertise.is_some(),
        "a wildcard listen with seeds needs it"
    );
    assert!(!config.seeds.is_empty());
    assert!(!config.limits.extend_to_private);
    // ournet-tune reads the same file the same way.
    let view = ournet_tune::relay_config::read(&path).unwrap();
    assert_eq!(view.workers, config.workers);
    assert_eq!(view.pin_cores, config.pin_cores);
    assert_eq!(view.max_connections, config.limits.max_connections as u64);

    let unit = read(&deploy("systemd/ournet-relay.service"));
    let data_dir = config.data_dir.to_str().unwrap();
    assert_eq!(unit_value(&unit, "ReadWritePaths"), data_dir);
    assert_eq!(
        format!("/var/lib/{}", unit_value(&unit, "StateDirectory")),
        data_dir
    );
    assert!(unit_value(&unit, "ExecStart").ends_with("--config /etc/ournet/relay.toml"));
    assert!(config.drain_timeout_secs < parse_secs(&unit_value(&unit, "TimeoutStopSec")));
    // The unit's descriptors cover what `ournet-tune check` wants for this config.
    let nofile: u64 = unit_value(&unit, "LimitNOFILE").parse().unwrap();
    assert!(nofile >= 2 * config.limits.max_connections as u64 + 1024);
}

#[test]
fn the_seed_configs_load_with_the_seed_type_and_match_its_unit() {
    let seed = SeedConfig::from_toml(&read(&deploy("config/seed.toml"))).unwrap();
    assert!(seed.database_url.is_none());
    assert_eq!(seed.peer_seeds.len(), 1);
    assert!(seed.metrics_listen.ip().is_loopback());
    let replica = SeedConfig::from_toml(&read(&deploy("config/seed-replica.toml"))).unwrap();
    assert!(
        replica
            .database_url
            .as_deref()
            .unwrap()
            .starts_with("postgres://")
    );
    assert!(replica.trust_forwarded_for, "behind the balancer");

    let unit = read(&deploy("systemd/ournet-seed.service"));
    for config in [&seed, &replica] {
        assert_eq!(
            unit_value(&unit, "ReadWritePaths"),
            config.data_dir.to_str().unwrap()
        );
    }
    // HAProxy sends traffic to the replicas' listen port and checks the route the seed serves.
    let haproxy = read(&deploy("haproxy/haproxy.cfg"));
    assert!(haproxy.contains(&format!("server seed-a {}", replica.listen)));
    assert!(haproxy.contains("option httpchk GET /health"));
    assert!(haproxy.contains("option forwardfor"));
}

#[test]
fn the_haproxy_config_is_valid() {
    // Debian installs it in /usr/sbin, which a non-root PATH often lacks.
    let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("haproxy");
    let out = Command::new(haproxy)
        .args(["-c", "-f"])
        .arg(deploy("haproxy/haproxy.cfg"))
        .output()
        .expect("haproxy (Debian's haproxy package): run scripts/deps");
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("WARNING"), "{text}");
}

#[test]
fn alert_rules_and_scrape_ports_match_what_relay_and_seed_export() {
    let mut sources = String::new();
    for dir in ["relay/src", "seed/src"] {
        collect_rs(&repo().join(dir), &mut sources);
    }
    let rules = read(&deploy("prometheus/ournet-alerts.yml"));
    let names = metric_names(&rules);
    assert!(names.len() >= 8, "{names:?}");
    for name in &names {
        assert!(
            sources.contains(&format!("\"{name}")) || sources.contains(&format!("{name} ")),
            "alert rule uses {name}, which neither relay/src nor seed/src exports"
        );
    }
    let scrape = read(&deploy("prometheus/prometheus.yml"));
    let relay = RelayConfig::from_file(&deploy("config/relay.toml")).unwrap();
    let seed = SeedConfig::from_toml(&read(&deploy("config/seed.toml"))).unwrap();
    assert!(scrape.contains(&format!("\"{}\"", relay.control)));
    assert!(scrape.contains(&format!("\"{}\"", seed.metrics_listen)));
    assert!(scrape.contains("ournet-alerts.yml"));
}

/// Every `ournet_...` identifier in `text`.
fn metric_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("ournet_"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

fn collect_rs(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&read(&path));
        }
    }
}

/// `60`, `60s` or `1min` as seconds.
fn parse_secs(v: &str) -> u64 {
    if let Some(m) = v.strip_suffix("min") {
        return m.parse::<u64>().unwrap() * 60;
    }
    v.trim_end_matches('s').parse().unwrap()
}
