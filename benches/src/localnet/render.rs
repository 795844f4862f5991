//! The live report as text: a full-screen redraw each second on a terminal (plain ANSI: home
//! the cursor, clear, draw), or one line per second when stdout is a pipe or a file; and the
//! summary at the end.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::report::{Latency, Row, Summary};

/// ANSI: cursor home, clear the screen.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// The full-screen form of `row`.
pub fn screen(row: &Row, title: &str) -> String {
    let mut s = String::from(CLEAR);
    let _ = writeln!(
        s,
        "{title}   t={:.0}s   (Ctrl-C stops and prints a summary)\n",
        row.t
    );
    let _ = writeln!(
        s,
        "messages  {:>9.1} msg/s   {:>8.3} MB/s   sent {:>9.1}/s",
        row.msgs_per_s, row.mb_per_s, row.sent_per_s
    );
    let _ = writeln!(s, "ACK       {}", latency(&row.ack_latency));
    let _ = writeln!(s, "one-way   {}", latency(&row.one_way_latency));
    let _ = writeln!(s, "totals    {}\n", row.totals);
    let _ = writeln!(
        s,
        "{:<9} {:>4} {:>10} {:>10} {:>8} {:>6} {:>7} {:>8}",
        "relay", "up", "cells in/s", "out/s", "circuits", "conns", "CPU %", "RSS MiB"
    );
    for r in &row.relays {
        let _ = writeln!(
            s,
            "{:<9} {:>4} {:>10.0} {:>10.0} {:>8} {:>6} {:>7.1} {:>8.1}",
            r.proc.name,
            up(r.proc.up),
            r.cells_in_per_s,
            r.cells_out_per_s,
            r.circuits,
            r.connections,
            r.proc.cpu_pct,
            r.proc.rss_mib
        );
    }
    let _ = writeln!(
        s,
        "\n{:<9} {:>4} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8}",
        "node", "up", "sent", "received", "acked", "failed", "CPU %", "RSS MiB"
    );
    for n in &row.nodes {
        let _ = writeln!(
            s,
            "{:<9} {:>4} {:>9} {:>9} {:>9} {:>7} {:>7.1} {:>8.1}",
            n.proc.name,
            up(n.proc.up),
            n.counters.sent,
            n.counters.received,
            n.counters.acked,
            n.counters.failed,
            n.proc.cpu_pct,
            n.proc.rss_mib
        );
    }
    let seed = &row.seed;
    let _ = writeln!(
        s,
        "{:<9} {:>4} {:>47.1} {:>8.1}\n",
        "seed",
        up(seed.up),
        seed.cpu_pct,
        seed.rss_mib
    );
    let _ = writeln!(s, "drops     {}", drops(&row.drops, ","));
    s
}

/// The one-line form of `row`.
pub fn line(row: &Row) -> String {
    let cells: f64 = row.relays.iter().map(|r| r.cells_in_per_s).sum();
    let circuits: u64 = row.relays.iter().map(|r| r.circuits).sum();
    let up = row.relays.iter().filter(|r| r.proc.up).count();
    format!(
        "t={:.0}s msgs/s={:.1} MB/s={:.3} ack_p50={:.1}ms ack_p99={:.1}ms oneway_p50={:.1}ms \
         oneway_p99={:.1}ms acked={}/{} failed={} relays_up={up}/{} relay_cells_in/s={cells:.0} \
         circuits={circuits} drops={}",
        row.t,
        row.msgs_per_s,
        row.mb_per_s,
        row.ack_latency.p50_ms,
        row.ack_latency.p99_ms,
        row.one_way_latency.p50_ms,
        row.one_way_latency.p99_ms,
        row.totals.acked,
        row.totals.sent,
        row.totals.failed,
        row.relays.len(),
        drops(&row.drops, ",")
    )
}

/// The end-of-run summary as text.
pub fn summary(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "\n== localnet summary ==");
    let _ = writeln!(o, "command   {}", s.meta.command);
    let _ = writeln!(
        o,
        "setup     {} relays ({}), {} nodes, sizes {:?} B, {} msg/s per node, privacy {}, {} build",
        s.meta.relays,
        s.meta.backend,
        s.meta.nodes,
        s.meta.sizes,
        s.meta.rate_per_node,
        s.meta.privacy,
        s.meta.profile
    );
    let _ = writeln!(
        o,
        "traffic   {:.1} s: {:.1} msg/s, {:.3} MB/s received",
        s.traffic_seconds, s.msgs_per_s, s.mb_per_s
    );
    let _ = writeln!(o, "messages  {}", s.totals);
    let _ = writeln!(o, "ACK       {}", latency(&s.ack_latency));
    let _ = writeln!(o, "one-way   {}", latency(&s.one_way_latency));
    for r in &s.relays {
        let _ = writeln!(
            o,
            "{:<9} cells in {} out {}, delivered {}, queued offline {}, CPU {:.1} s, peak RSS {:.1} MiB",
            r.name,
            r.metrics.cells_in,
            r.metrics.cells_out,
            r.metrics.delivered,
            r.metrics.queued_offline,
            r.cpu_s,
            r.peak_rss_mib
        );
    }
    for p in s.nodes.iter().chain(std::iter::once(&s.seed)) {
        let _ = writeln!(
            o,
            "{:<9} CPU {:.1} s, peak RSS {:.1} MiB",
            p.name, p.cpu_s, p.peak_rss_mib
        );
    }
    let _ = writeln!(o, "drops     {}", drops(&s.drops, " "));
    for e in &s.meta.events {
        let _ = writeln!(o, "event     {e}");
    }
    o
}

fn latency(l: &Latency) -> String {
    if l.count == 0 {
        return "no samples".into();
    }
    format!(
        "p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} samples)",
        l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.count
    )
}

/// The nonzero drop counts as `reason=count`, joined by `sep`, or `none`.
fn drops(drops: &BTreeMap<String, u64>, sep: &str) -> String {
    let nonzero: Vec<String> = drops
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if nonzero.is_empty() {
        "none".into()
    } else {
        nonzero.join(sep)
    }
}

fn up(up: bool) -> &'static str {
    if up { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::super::report::{NodeRow, ProcRow, RelayRow};
    use super::*;
    use crate::node::stats::Counters;

    fn row() -> Row {
        let proc = |name: &str, up| ProcRow {
            name: name.into(),
            up,
            cpu_pct: 12.5,
            rss_mib: 20.0,
        };
        Row {
            t: 3.0,
            msgs_per_s: 80.0,
            mb_per_s: 0.082,
            totals: Counters {
                sent: 10,
                acked: 9,
                received: 9,
                ..Counters::default()
            },
            relays: vec![
                RelayRow {
                    proc: proc("relay-1", true),
                    cells_in_per_s: 900.0,
                    circuits: 4,
                    ..RelayRow::default()
                },
                RelayRow {
                    proc: proc("relay-2", false),
                    ..RelayRow::default()
                },
            ],
            nodes: vec![NodeRow {
                proc: proc("node-1", true),
                counters: Counters {
                    sent: 10,
                    ..Counters::default()
                },
            }],
            drops: [
                ("relay:rate_limited".to_owned(), 2),
                ("relay:x".to_owned(), 0),
            ]
            .into(),
            ..Row::default()
        }
    }

    #[test]
    fn the_screen_redraws_and_shows_every_process_and_nonzero_drops() {
        let s = screen(&row(), "title");
        assert!(s.starts_with(CLEAR));
        for want in [
            "relay-1",
            "relay-2",
            "node-1",
            "seed",
            "80.0 msg/s",
            "(90.0%)",
        ] {
            assert!(s.contains(want), "{want} missing from\n{s}");
        }
        assert!(s.contains("drops     relay:rate_limited=2\n"), "{s}");
    }

    #[test]
    fn the_line_form_is_one_line_with_the_relays_up() {
        let l = line(&row());
        assert!(!l.contains('\n'));
        assert!(l.starts_with("t=3s msgs/s=80.0 "), "{l}");
        assert!(
            l.contains("relays_up=1/2") && l.contains("acked=9/10"),
            "{l}"
        );
    }
}
