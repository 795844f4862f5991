//! What `localnet` gathers once a second: each node's stats line (read on its stdout thread
//! into a [`NodeFeed`]), each relay's `/metrics`, and every process's CPU and memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use hdrhistogram::Histogram;

use super::procs::ReadySender;
use crate::node::stats::{ReadyLine, StatsLine};

/// Latency histograms hold 1 µs to one hour at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid bounds")
}

/// What a node's stdout thread has seen; shared with the main loop.
#[derive(Debug)]
pub struct NodeFeed {
    /// The newest counters (their sample lists emptied into the windows below).
    pub last: StatsLine,
    /// Send-to-ACK samples since the main loop last took them.
    pub ack_window: Histogram<u64>,
    /// Send-to-receive samples since the main loop last took them.
    pub one_way_window: Histogram<u64>,
    /// Lines that did not parse (a node printing something else).
    pub bad_lines: u64,
}

impl NodeFeed {
    /// A feed, and the callback its stdout thread runs on each line (it hands the `ready`
    /// line's address to `ready`).
    pub fn new(ready: ReadySender) -> (Arc<Mutex<Self>>, impl FnMut(&str) + Send + 'static) {
        let feed = Arc::new(Mutex::new(Self {
            last: StatsLine::default(),
            ack_window: histogram(),
            one_way_window: histogram(),
            bad_lines: 0,
        }));
        let shared = feed.clone();
        let on_line = move |line: &str| {
            if let Ok(r) = serde_json::from_str::<ReadyLine>(line)
                && r.event == "ready"
            {
                ready.send(&r.address);
                return;
            }
            let mut f = shared.lock().unwrap_or_else(PoisonError::into_inner);
            match serde_json::from_str::<StatsLine>(line) {
                Ok(mut s) if s.event == "stats" => {
                    for v in s.ack_us.drain(..) {
                        f.ack_window.saturating_record(v.max(1));
                    }
                    for v in s.one_way_us.drain(..) {
                        f.one_way_window.saturating_record(v.max(1));
                    }
                    f.last = s;
                }
                _ => f.bad_lines += 1,
            }
        };
        (feed, on_line)
    }

    /// The counters and the windows' samples, leaving the windows empty.
    pub fn take(feed: &Mutex<Self>) -> (StatsLine, Histogram<u64>, Histogram<u64>) {
        let mut f = feed.lock().unwrap_or_else(PoisonError::into_inner);
        let ack = std::mem::replace(&mut f.ack_window, histogram());
        let one_way = std::mem::replace(&mut f.one_way_window, histogram());
        (f.last.clone(), ack, one_way)
    }
}

/// The series `localnet` shows of one relay, summed over its workers.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RelayMetrics {
    /// Cells received (counter).
    pub cells_in: u64,
    /// Cells sent (counter).
    pub cells_out: u64,
    /// Open circuits (gauge).
    pub circuits: u64,
    /// Open connections (gauge).
    pub connections: u64,
    /// Messages delivered to home circuits (counter).
    pub delivered: u64,
    /// Messages queued for offline nodes (counter).
    pub queued_offline: u64,
    /// Drops by reason (counters).
    pub drops: BTreeMap<String, u64>,
}

/// Parses the relay's Prometheus text (`name{worker="0",...} value` lines).
pub fn parse_relay_metrics(text: &str) -> RelayMetrics {
    let mut m = RelayMetrics::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<u64>() else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        match name {
            "ournet_cells_in_total" => m.cells_in += v,
            "ournet_cells_out_total" => m.cells_out += v,
            "ournet_circuits" => m.circuits += v,
            "ournet_connections" => m.connections += v,
            "ournet_delivered_total" => m.delivered += v,
            "ournet_queued_offline_total" => m.queued_offline += v,
            "ournet_drops_total" => {
                if let Some(reason) = label(series, "reason") {
                    *m.drops.entry(reason.to_owned()).or_default() += v;
                }
            }
            _ => {}
        }
    }
    m
}

/// The value of `key="value"` in a series' label set.
fn label<'a>(series: &'a str, key: &str) -> Option<&'a str> {
    let labels = series.split_once('{')?.1.strip_suffix('}')?;
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_metrics_sum_over_workers_and_split_drops_by_reason() {
        let text = "# TYPE ournet_cells_in_total counter\n\
            ournet_cells_in_total{worker=\"0\"} 5\n\
            ournet_cells_in_total{worker=\"1\"} 7\n\
            ournet_circuits{worker=\"0\"} 2\n\
            ournet_circuits_created_total{worker=\"0\"} 9\n\
            ournet_drops_total{worker=\"0\",reason=\"onion_integrity\"} 1\n\
            ournet_drops_total{worker=\"1\",reason=\"onion_integrity\"} 2\n\
            ournet_drops_total{worker=\"1\",reason=\"queue_full\"} 0\n";
        let m = parse_relay_metrics(text);
        assert_eq!((m.cells_in, m.circuits), (12, 2));
        assert_eq!(m.drops["onion_integrity"], 3);
        assert_eq!(m.drops["queue_full"], 0);
    }

    #[test]
    fn a_node_feed_keeps_counters_and_windows_samples_until_taken() {
        let (tx, rx) = super::super::procs::ready_channel();
        drop(rx);
        let (feed, mut on_line) = NodeFeed::new(tx);
        on_line(r#"{"event":"stats","sent":3,"acked":2,"ack_us":[100,200]}"#);
        on_line("not json");
        let (last, ack, one_way) = NodeFeed::take(&feed);
        assert_eq!(
            (
                last.counters.sent,
                last.counters.acked,
                ack.len(),
                one_way.len()
            ),
            (3, 2, 2, 0)
        );
        assert_eq!(NodeFeed::take(&feed).1.len(), 0);
        assert_eq!(feed.lock().unwrap().bad_lines, 1);
    }
}
