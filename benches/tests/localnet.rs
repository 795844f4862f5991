//! `ournet-bench localnet` as a newcomer runs it (debug binaries, a short duration): it starts
//! the seed, five relays and two nodes, moves messages, exits 0 and writes a summary.
#![allow(clippy::unwrap_used, clippy::print_stderr, reason = "test code")]

use std::process::Command;

#[test]
fn localnet_runs_moves_messages_and_exits_with_a_summary() {
    let json =
        std::env::temp_dir().join(format!("ournet-localnet-test-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_ournet-bench"))
        .args([
            "localnet",
            "--debug",
            "--duration",
            "5",
            "--relays",
            "5",
            "--nodes",
            "2",
        ])
        .args(["--size", "1,1k,64k", "--rate", "5", "--plain", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "localnet failed: {}", out.status);
    assert!(stdout.contains("== localnet summary =="));
    assert!(
        stdout.lines().any(|l| l.starts_with("t=1s ")),
        "one line per second when piped"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let totals = &summary["totals"];
    assert!(totals["received"].as_u64().unwrap() > 0, "{summary}");
    assert!(totals["acked"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(totals["corrupt"], 0, "{summary}");
    assert_eq!(summary["relays"].as_array().unwrap().len(), 5);
    let cells: u64 = summary["relays"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metrics"]["cells_in"].as_u64().unwrap())
        .sum();
    assert!(cells > 0, "the relays carried cells: {summary}");
}
