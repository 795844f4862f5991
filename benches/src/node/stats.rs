//! The lines a node process prints on stdout, which `localnet` reads: one `ready` line with
//! the node's address, then one `stats` line per second.
//!
//! ```text
//! {"event":"ready","address":"ournet1:..."}
//! {"event":"stats","uptime_s":1.0,"sent":10,...,"ack_us":[812,...],"one_way_us":[...]}
//! ```
//!
//! Counters are totals since the node started (a lost line loses no count); latency samples
//! are those taken since the previous line, capped at [`MAX_SAMPLES`] per line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most latency samples of each kind in one line (a node past this rate is sampled).
pub const MAX_SAMPLES: usize = 20_000;

/// The first line: the node is up and reachable at `address`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyLine {
    /// Always `"ready"`.
    pub event: String,
    /// The node's signed address (`ournet1:` text form) that senders use.
    pub address: String,
}

/// What `localnet` writes on a node's stdin once every node is ready.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersLine {
    /// The addresses of the other nodes.
    pub peers: Vec<String>,
}

/// A node's figures, printed once a second.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatsLine {
    /// Always `"stats"`.
    pub event: String,
    /// Seconds since the node started.
    pub uptime_s: f64,
    /// The message counters, inline in the line (`"sent":10,"acked":9,...`).
    #[serde(flatten)]
    pub counters: Counters,
    /// Send-to-ACK times (µs) since the previous line.
    pub ack_us: Vec<u64>,
    /// Send-to-receive times (µs, the sender's wall clock in the content) since the previous
    /// line; all nodes run on one host, so one clock.
    pub one_way_us: Vec<u64>,
    /// Sends that failed, by reason.
    pub drops: BTreeMap<String, u64>,
}

/// Message counters: one node's totals since it started (in its [`StatsLine`]), or their sum
/// over nodes (`localnet`'s report). The one definition of what a node counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Messages handed to `send_message`.
    pub sent: u64,
    /// Messages the recipient's end-to-end ACK confirmed.
    pub acked: u64,
    /// Messages that failed after every retry.
    pub failed: u64,
    /// Retries over a fresh circuit.
    pub retries: u64,
    /// Messages received and handed to the app (after dedup).
    pub received: u64,
    /// Copies received again and suppressed by dedup (as the client counts them).
    pub duplicates: u64,
    /// Messages whose content did not match what the sender wrote.
    pub corrupt: u64,
    /// Content bytes sent.
    pub bytes_sent: u64,
    /// Content bytes received.
    pub bytes_received: u64,
}

impl Counters {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Self) {
        self.sent += other.sent;
        self.acked += other.acked;
        self.failed += other.failed;
        self.retries += other.retries;
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.corrupt += other.corrupt;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
    }

    /// ACKed messages as a percentage of those sent (100 when none were sent).
    #[expect(clippy::cast_precision_loss, reason = "message counts fit in f64")]
    pub fn acked_pct(&self) -> f64 {
        if self.sent == 0 {
            100.0
        } else {
            self.acked as f64 * 100.0 / self.sent as f64
        }
    }
}

impl std::fmt::Display for Counters {
    /// The counters as the live screen and the summary show them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {}  acked {} ({:.1}%)  failed {}  retries {}  received {}  duplicates {}  \
             corrupt {}",
            self.sent,
            self.acked,
            self.acked_pct(),
            self.failed,
            self.retries,
            self.received,
            self.duplicates,
            self.corrupt
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stats_line_keeps_its_counters_flat_on_the_wire() {
        let line = StatsLine {
            event: "stats".into(),
            counters: Counters {
                sent: 3,
                bytes_received: 7,
                ..Counters::default()
            },
            ..StatsLine::default()
        };
        let text = serde_json::to_string(&line).unwrap();
        assert!(
            text.contains(r#""sent":3"#) && text.contains(r#""bytes_received":7"#),
            "{text}"
        );
        assert!(!text.contains("counters"), "{text}");
        assert_eq!(serde_json::from_str::<StatsLine>(&text).unwrap(), line);
    }
}
