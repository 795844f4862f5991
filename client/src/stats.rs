//! Counters a node keeps about its traffic, cheap to read while it runs: plain atomics, and a
//! bounded ring of recent ACK latencies behind a short lock.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ournet_proto::privacy::MAX_MIX_HOPS;

/// How many recent latency samples are kept.
pub const LATENCY_SAMPLES: usize = 4096;

/// A snapshot of a node's counters ([`crate::NodeClient::get_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Messages accepted by `send_message`.
    pub sent: u64,
    /// Messages a recipient's home relay reported DELIVERED (counted once per message).
    pub delivered: u64,
    /// Messages a recipient's home relay reported QUEUED (recipient offline).
    pub queued: u64,
    /// Messages whose end-to-end ACK verified against the envelope's token.
    pub acked: u64,
    /// Messages that ran out of retries.
    pub failed: u64,
    /// Attempts after the first, over all messages.
    pub retries: u64,
    /// Sends moved to a newer address of their recipient (its homes moved: rotation,
    /// failover): handed back by its old home in MOVED, found in the directory after a home
    /// answered QUEUED or every home was unreachable, or remembered from an earlier send.
    /// A QUEUED that set one off is also in `queued` (a copy waits at the old home; the
    /// recipient drops it as a duplicate if it ever returns there).
    pub readdressed: u64,
    /// MOVED answers taken: the recipient's old home relay handed back the address it
    /// moved to (its FORWARD_TO), verified as replacing the one held, so the send moved
    /// there without asking the directory (also in `readdressed`).
    pub moved: u64,
    /// Messages handed to the app.
    pub received: u64,
    /// Messages received again (a retry or a queued copy) and ACKed but not handed over.
    pub duplicates: u64,
    /// Received envelopes that did not open or verify (dropped).
    pub rejected: u64,
    /// Home circuits currently authenticated.
    pub homes: u64,
    /// Home failovers (a home replaced after it died).
    pub failovers: u64,
    /// Home rotations (a healthy home replaced on schedule, make-before-break).
    pub rotations: u64,
    /// Rotated-out homes still draining (their circuit open for senders of the old address).
    pub draining_homes: u64,
    /// Maintenance checks run since the node was made.
    pub maintenance_runs: u64,
    /// Relays a send's circuit build found unreachable, from the node (first hop) or from
    /// the hop before them (each then cools down for path selection).
    pub unreachable_hops: u64,
    /// Cover (DROP) cells sent.
    pub cover_cells: u64,
    /// Send circuits built, by hop count (index = hops): all 3 unless mixing is on.
    pub paths_by_hops: [u64; MAX_MIX_HOPS + 1],
    /// Mix circuits built shorter than drawn (but at least 3 hops) because the directory had
    /// too few diverse relays for the drawn length.
    pub short_paths: u64,
    /// Loop cover messages put on a circuit (mixing with `loop_cover_traffic`).
    pub loops_sent: u64,
    /// Loop messages that came back within the return timeout (never handed to the app).
    pub loops_returned: u64,
    /// Loop messages not back within the timeout. A rising share of `loops_sent` is the
    /// Loopix sign of relays dropping this node's traffic; the node logs a warning past
    /// `LoopCoverConfig::warn_loss_ratio`. Includes loops written off with a relay an alarm
    /// blamed.
    pub loops_lost: u64,
    /// Loops in flight at the last `stop()`, saved in the state and awaited again since.
    pub loops_restored: u64,
    /// Restored loops that came back after the restart (also in `loops_returned`).
    pub loops_returned_after_restart: u64,
    /// Loop-loss alarms raised (loss ratio past `LoopCoverConfig::warn_loss_ratio`).
    pub loop_alarms: u64,
    /// Homes replaced because an alarm blamed them (also in `rotations`); at most one
    /// reaction per `LoopCoverConfig::reaction_gap`.
    pub loop_alarm_rotations: u64,
    /// First hops put in cooldown because an alarm blamed them.
    pub loop_alarm_avoided_hops: u64,
}

/// The live counters behind [`NodeStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) queued: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) readdressed: AtomicU64,
    pub(crate) moved: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) homes: AtomicU64,
    pub(crate) failovers: AtomicU64,
    pub(crate) rotations: AtomicU64,
    pub(crate) draining_homes: AtomicU64,
    pub(crate) maintenance_runs: AtomicU64,
    pub(crate) unreachable_hops: AtomicU64,
    pub(crate) cover_cells: AtomicU64,
    pub(crate) paths_by_hops: [AtomicU64; MAX_MIX_HOPS + 1],
    pub(crate) short_paths: AtomicU64,
    pub(crate) loop_alarm_rotations: AtomicU64,
    pub(crate) loop_alarm_avoided_hops: AtomicU64,
    latencies: Mutex<VecDeque<Duration>>,
}

impl Counters {
    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a send circuit of `hops` hops.
    pub(crate) fn record_path(&self, hops: usize) {
        if let Some(c) = self.paths_by_hops.get(hops) {
            Self::bump(c);
        }
    }

    /// Records a send-to-ACK latency, dropping the oldest past [`LATENCY_SAMPLES`].
    pub(crate) fn record_latency(&self, d: Duration) {
        let mut ring = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() >= LATENCY_SAMPLES {
            ring.pop_front();
        }
        ring.push_back(d);
    }

    /// Takes the latency samples recorded since the last call.
    pub(crate) fn take_latencies(&self) -> Vec<Duration> {
        let mut ring = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        ring.drain(..).collect()
    }

    /// A snapshot.
    pub(crate) fn snapshot(&self) -> NodeStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NodeStats {
            sent: r(&self.sent),
            delivered: r(&self.delivered),
            queued: r(&self.queued),
            acked: r(&self.acked),
            failed: r(&self.failed),
            retries: r(&self.retries),
            readdressed: r(&self.readdressed),
            moved: r(&self.moved),
            received: r(&self.received),
            duplicates: r(&self.duplicates),
            rejected: r(&self.rejected),
            homes: r(&self.homes),
            failovers: r(&self.failovers),
            rotations: r(&self.rotations),
            draining_homes: r(&self.draining_homes),
            maintenance_runs: r(&self.maintenance_runs),
            unreachable_hops: r(&self.unreachable_hops),
            cover_cells: r(&self.cover_cells),
            paths_by_hops: self.paths_by_hops.each_ref().map(r),
            short_paths: r(&self.short_paths),
            // Filled in from the loop tracker by `NodeClient::get_stats`.
            loops_sent: 0,
            loops_returned: 0,
            loops_lost: 0,
            loops_restored: 0,
            loops_returned_after_restart: 0,
            loop_alarms: 0,
            loop_alarm_rotations: r(&self.loop_alarm_rotations),
            loop_alarm_avoided_hops: r(&self.loop_alarm_avoided_hops),
        }
    }
}
