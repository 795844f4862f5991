//! The once-a-second sweep: handshake deadlines (slowloris), keepalives and idle links,
//! the worker's memory cap, gauges and back pressure, and the drain on shutdown.

use std::time::Instant;

use ournet_proto::flow::load_pct;
use ournet_proto::link::channel::TimeoutAction;
use ournet_proto::link_msg::DestroyReason;

use super::{ConnId, Relay};
use crate::directory::qos::PeerKind;
use crate::metrics::{self, DropKind};

impl Relay {
    pub(super) fn sweep(&mut self, now: Instant) {
        if self.shutdown_requested() && self.draining.is_none() {
            let timeout = std::time::Duration::from_secs(self.ctx.config.drain_timeout_secs);
            self.begin_drain(now + timeout);
        }
        self.sweep_conns(now);
        self.observe_relay_peers(now);
        self.enforce_memory_cap(now);
        self.update_gauges();
        if self.worker == 0 {
            self.ctx.directory.sweep(now);
        }
        if let Some(deadline) = self.draining
            && (self.circuits.len() == 0 || now >= deadline)
        {
            self.shutdown_all(now);
        }
    }

    /// Feeds the QoS book how long each relay peer has been linked (see
    /// `directory::qos`); once per sweep per link, never per cell.
    fn observe_relay_peers(&self, now: Instant) {
        for conn in self.conns.values() {
            if let (Some(peer), Some(since)) = (conn.peer_identity, conn.opened_at) {
                let age = now.saturating_duration_since(since);
                self.ctx.directory.qos_observe(&peer, PeerKind::Relay, age);
            }
        }
    }

    fn sweep_conns(&mut self, now: Instant) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            if conn.closing {
                if conn.deadline.is_some_and(|d| now >= d) {
                    conn.deadline = None;
                    self.actions.push_back(super::Action::Abort(id));
                }
                continue;
            }
            if conn.deadline.is_some_and(|d| now >= d) {
                let kind = if conn.initiator {
                    DropKind::ExtendFailed
                } else {
                    DropKind::HandshakeTimeout
                };
                self.close_conn(now, id, kind);
                continue;
            }
            let Some(link) = conn.link() else { continue };
            match link.channel.handle_timeout(now) {
                Ok(None) => {}
                Ok(Some(TimeoutAction::SendKeepalive(cell))) => {
                    conn.outbuf.extend_from_slice(&cell[..]);
                    self.want_flush(id);
                }
                Ok(Some(TimeoutAction::Close)) => self.close_conn(now, id, DropKind::LinkIdle),
                Err(_) => self.close_conn(now, id, DropKind::LinkForged),
            }
        }
    }

    /// Destroys the heaviest circuits until the worker is under its memory cap.
    fn enforce_memory_cap(&mut self, now: Instant) {
        let cap = self.ctx.config.limits.worker_memory_bytes;
        let weights = self.circuits.by_weight();
        let mut total: usize = weights.iter().map(|(b, _)| b).sum();
        metrics::set(&self.metrics.circuit_bytes, total as u64);
        for (bytes, key) in weights {
            if total <= cap {
                break;
            }
            self.metrics.count_drop(DropKind::MemoryShed);
            self.destroy_circuit(now, key, DestroyReason::RESOURCE_LIMIT, None);
            total -= bytes;
        }
    }

    fn update_gauges(&mut self) {
        let out: usize = self
            .conns
            .values()
            .map(super::conn::Conn::queued_bytes)
            .sum();
        self.send_queued = out;
        metrics::set(&self.metrics.out_queue_bytes, out as u64);
        metrics::set(&self.metrics.circuits, self.circuits.len() as u64);
        let limits = &self.ctx.config.limits;
        let load = load_pct(
            self.ctx.directory.stats().connections,
            limits.max_connections,
            out,
            limits.worker_queue_budget(),
        );
        let change = self.back_pressure.update(load);
        self.apply_back_pressure(change);
        metrics::set(&self.metrics.load_pct, load as u64);
        let active = u64::from(self.back_pressure.is_active());
        metrics::set(&self.metrics.back_pressure, active);
    }

    /// Ends the drain: destroys every circuit (shutting down) and closes every link.
    fn shutdown_all(&mut self, now: Instant) {
        for key in self.circuits.keys() {
            self.destroy_circuit(now, key, DestroyReason::SHUTDOWN, None);
        }
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(conn) = self.conns.get_mut(&id)
                && !conn.closing
            {
                conn.closing = true;
                conn.deadline = Some(now + super::CLOSE_GRACE);
                self.actions.push_back(super::Action::Close(id));
            }
        }
        self.finished = true;
    }
}
