//! `ournet-bench load` end to end, small and short: three real relay processes (debug build,
//! epoll backend), every workload, and the JSON report. Asserts that traffic moved and that
//! the report has its fields; no timing is asserted.
#![allow(clippy::unwrap_used, reason = "test code")]

use std::path::PathBuf;
use std::process::Command;

/// Builds the debug `ournet-relay` with the cargo that runs this test.
fn relay_bin() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = ournet_bench::localnet::bins::without_crate_env(&mut Command::new(cargo))
        .args(["build", "-q", "-p", "ournet-relay", "--bin", "ournet-relay"])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success(), "building ournet-relay failed");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    target.join("debug").join("ournet-relay")
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn load_moves_traffic_through_three_relays_and_reports_every_workload() {
    let dir = std::env::temp_dir().join(format!("ournet-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("load.json");
    let out = Command::new(env!("CARGO_BIN_EXE_ournet-bench"))
        .arg("load")
        .arg("--relay-bin")
        .arg(relay_bin())
        .args(["--backend", "epoll", "--workers", "2", "--no-pin"])
        .args(["--duration", "2", "--warmup", "1", "--pings", "20"])
        .args(["--message-bytes", "65536", "--create-links", "2"])
        .args(["--create-in-flight", "4", "--idle-circuits", "300"])
        .args(["--ceiling-secs", "1"])
        .arg("--work-dir")
        .arg(&dir)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("bulk 16 circuits"), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["schema"], "ournet-bench-load/1");
    assert_eq!(r["backend"], "epoll");

    for (run, circuits) in [("bulk_1", 1), ("bulk_16", 16)] {
        let b = &r[run];
        assert_eq!(b["circuits"], circuits, "{run}");
        assert!(
            num(&b["payload_bytes"]) > 0.0,
            "{run}: no payload arrived: {b}"
        );
        assert!(num(&b["home_cells"]) > 0.0, "{run}: {b}");
        assert!(num(&b["payload_mbps"]) > 0.0, "{run}");
        // The home relay reported deliveries (how many were queued or refused is the relay's
        // business under load, reported, not asserted).
        let st = b["statuses"].as_array().unwrap();
        assert_eq!(st.len(), 3);
        assert!(num(&st[0]) > 0.0, "{run}: {b}");
        let cells = b["window"]["relay_cells_in"].as_array().unwrap();
        assert_eq!(cells.len(), 3);
        assert!(
            cells.iter().all(|c| num(c) > 0.0),
            "{run}: a relay saw no cells: {b}"
        );
        assert_eq!(b["window"]["relay_cpu"].as_array().unwrap().len(), 3);
    }
    for echo in ["echo_ping", "echo_home"] {
        let e = &r[echo];
        assert_eq!(e["exchanges"], 20, "{echo}");
        assert!(num(&e["p50_ms"]) > 0.0 && num(&e["p999_ms"]) >= num(&e["p50_ms"]));
    }
    assert!(num(&r["create"]["created"]) > 0.0, "{}", r["create"]);
    assert!(num(&r["create"]["verified"]) > 0.0, "{}", r["create"]);
    assert_eq!(r["idle"]["circuits"], 300, "{}", r["idle"]);
    assert!(num(&r["idle"]["rss_after"]) > 0.0);
    assert!(num(&r["ceiling"]["cells_per_cpu_s"]) > 0.0);
    assert!(num(&r["ceiling"]["seal_ns_per_cell"]) > 0.0);
    assert_eq!(r["fractions"].as_array().unwrap().len(), 2);
    assert!(num(&r["scaling_1"]["bulk_16"]["payload_bytes"]) > 0.0);
    assert_eq!(r["rss_after_bulk"].as_array().unwrap().len(), 3);
    // Without --tor the rows carry our figures and no ratio.
    let rows = r["rows"].as_array().unwrap();
    assert!(rows.len() >= 8, "{rows:?}");
    assert!(rows.iter().all(|row| row["ratio"].is_null()));
    let _ = std::fs::remove_dir_all(&dir);
}
