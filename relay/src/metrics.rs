//! Counters each worker keeps and the control plane renders as Prometheus text.
//!
//! Every counter belongs to one worker and is written only by it (relaxed atomics on a
//! cache line nobody else writes, so no contention on the per-cell path); `/metrics` reads
//! them from another thread. Nothing here names a peer.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why something was dropped or refused; one counter per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropKind {
    /// A link handshake failed (garbage, wrong key, bad certificate).
    LinkHandshake,
    /// A link handshake did not finish in time (slowloris).
    HandshakeTimeout,
    /// A cell header or sealed body failed link authentication: the link closed.
    LinkForged,
    /// A link broke the cell protocol (unknown command, bad circuit id side): the link closed.
    LinkProtocol,
    /// A link was silent past the idle timeout.
    LinkIdle,
    /// An onion tag failed (tampering, replay, reorder): the circuit was destroyed.
    OnionIntegrity,
    /// A circuit broke the relay-message protocol or flow control: destroyed.
    CircuitProtocol,
    /// A circuit handshake (CREATE) failed.
    CreateFailed,
    /// A cell named a circuit this link does not have.
    UnknownCircuit,
    /// A connection was refused (global or per-IP cap).
    ConnRefused,
    /// A CREATE was refused by the per-IP rate limit.
    RateLimited,
    /// A CREATE was refused by a circuit cap, or a cell did not fit a link's queue.
    ResourceLimit,
    /// A circuit was destroyed to bring the worker under its memory cap.
    MemoryShed,
    /// An extension failed (connect, link handshake or the next hop refused).
    ExtendFailed,
    /// A message for an offline node did not fit the offline queue.
    OfflineRefused,
    /// A worker mailbox was full.
    MailboxFull,
    /// A message for an online node was refused: its home circuit held its buffer cap.
    HomeFull,
}

impl DropKind {
    /// Every reason, in the order of the counters.
    pub const ALL: [Self; 17] = [
        Self::LinkHandshake,
        Self::HandshakeTimeout,
        Self::LinkForged,
        Self::LinkProtocol,
        Self::LinkIdle,
        Self::OnionIntegrity,
        Self::CircuitProtocol,
        Self::CreateFailed,
        Self::UnknownCircuit,
        Self::ConnRefused,
        Self::RateLimited,
        Self::ResourceLimit,
        Self::MemoryShed,
        Self::ExtendFailed,
        Self::OfflineRefused,
        Self::MailboxFull,
        Self::HomeFull,
    ];

    /// The Prometheus label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LinkHandshake => "link_handshake",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::LinkForged => "link_forged",
            Self::LinkProtocol => "link_protocol",
            Self::LinkIdle => "link_idle",
            Self::OnionIntegrity => "onion_integrity",
            Self::CircuitProtocol => "circuit_protocol",
            Self::CreateFailed => "create_failed",
            Self::UnknownCircuit => "unknown_circuit",
            Self::ConnRefused => "conn_refused",
            Self::RateLimited => "rate_limited",
            Self::ResourceLimit => "resource_limit",
            Self::MemoryShed => "memory_shed",
            Self::ExtendFailed => "extend_failed",
            Self::OfflineRefused => "offline_refused",
            Self::MailboxFull => "mailbox_full",
            Self::HomeFull => "home_full",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// One worker's counters and gauges.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    /// Cells received on established links.
    pub cells_in: AtomicU64,
    /// Cells queued for sending.
    pub cells_out: AtomicU64,
    /// Open connections (gauge).
    pub connections: AtomicU64,
    /// Open circuits (gauge).
    pub circuits: AtomicU64,
    /// Circuits created in total.
    pub circuits_created: AtomicU64,
    /// Link handshakes completed.
    pub handshakes: AtomicU64,
    /// Messages delivered to a home circuit.
    pub delivered: AtomicU64,
    /// Messages queued for an offline node.
    pub queued_offline: AtomicU64,
    /// Messages answered MOVED (the node left a forwarding address; not kept).
    pub moved: AtomicU64,
    /// Bytes waiting in link send queues (gauge).
    pub out_queue_bytes: AtomicU64,
    /// Bytes buffered by circuits (gauge).
    pub circuit_bytes: AtomicU64,
    /// Whether back pressure is on (gauge, 0 or 1; PROTOCOL.md §8).
    pub back_pressure: AtomicU64,
    /// Load in percent (gauge; PROTOCOL.md §8).
    pub load_pct: AtomicU64,
    /// Client links whose reading back pressure has paused (gauge).
    pub paused_links: AtomicU64,
    /// Whether the worker thread is running (gauge, 0 or 1): heartbeats measure uptime by it.
    pub alive: AtomicU64,
    /// Credits for another worker's circuits that its full mailbox could not take at once
    /// (they wait in the pending tally; none is dropped).
    pub credits_deferred: AtomicU64,
    /// Circuits on other workers owed credits still waiting for mailbox room (gauge).
    pub pending_credits: AtomicU64,
    drops: [AtomicU64; DropKind::ALL.len()],
}

impl WorkerMetrics {
    /// Adds one to the counter of `kind`.
    pub fn count_drop(&self, kind: DropKind) {
        if let Some(c) = self.drops.get(kind.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counter of `kind`.
    pub fn drops(&self, kind: DropKind) -> u64 {
        self.drops
            .get(kind.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// Adds `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Sets a gauge.
pub fn set(c: &AtomicU64, n: u64) {
    c.store(n, Ordering::Relaxed);
}

/// Picks one series out of a worker's metrics.
type Field = fn(&WorkerMetrics) -> &AtomicU64;

/// Renders every worker's metrics, plus relay-wide gauges, as Prometheus text format 0.0.4.
pub fn render(workers: &[std::sync::Arc<WorkerMetrics>], global: &[(&str, &str, u64)]) -> String {
    let mut out = String::new();
    let series: [(&str, &str, Field); 17] = [
        ("ournet_cells_in_total", "counter", |m| &m.cells_in),
        ("ournet_cells_out_total", "counter", |m| &m.cells_out),
        ("ournet_connections", "gauge", |m| &m.connections),
        ("ournet_circuits", "gauge", |m| &m.circuits),
        ("ournet_circuits_created_total", "counter", |m| {
            &m.circuits_created
        }),
        ("ournet_handshakes_total", "counter", |m| &m.handshakes),
        ("ournet_delivered_total", "counter", |m| &m.delivered),
        ("ournet_queued_offline_total", "counter", |m| {
            &m.queued_offline
        }),
        ("ournet_moved_total", "counter", |m| &m.moved),
        ("ournet_out_queue_bytes", "gauge", |m| &m.out_queue_bytes),
        ("ournet_circuit_bytes", "gauge", |m| &m.circuit_bytes),
        ("ournet_back_pressure", "gauge", |m| &m.back_pressure),
        ("ournet_load_pct", "gauge", |m| &m.load_pct),
        ("ournet_paused_links", "gauge", |m| &m.paused_links),
        ("ournet_worker_alive", "gauge", |m| &m.alive),
        ("ournet_credits_deferred_total", "counter", |m| {
            &m.credits_deferred
        }),
        ("ournet_pending_credits", "gauge", |m| &m.pending_credits),
    ];
    for (name, kind, field) in series {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (i, m) in workers.iter().enumerate() {
            let v = field(m).load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {v}");
        }
    }
    let _ = writeln!(out, "# TYPE ournet_drops_total counter");
    for (i, m) in workers.iter().enumerate() {
        for kind in DropKind::ALL {
            let v = m.drops(kind);
            let reason = kind.as_str();
            let _ = writeln!(
                out,
                "ournet_drops_total{{worker=\"{i}\",reason=\"{reason}\"}} {v}"
            );
        }
    }
    for (name, kind, v) in global {
        let _ = writeln!(out, "# TYPE {name} {kind}\n{name} {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn renders_per_worker_series_and_drop_reasons() {
        let m = Arc::new(WorkerMetrics::default());
        add(&m.cells_in, 3);
        m.count_drop(DropKind::OnionIntegrity);
        let text = render(&[m], &[("ournet_offline_messages", "gauge", 7)]);
        assert!(text.contains("ournet_cells_in_total{worker=\"0\"} 3"));
        assert!(text.contains("ournet_drops_total{worker=\"0\",reason=\"onion_integrity\"} 1"));
        assert!(text.contains("ournet_offline_messages 7"));
    }
}
