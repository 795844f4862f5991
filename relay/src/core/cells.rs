//! What a cell on an established link does: route it to its circuit, or answer CREATE.
//!
//! The meaning of every cell is decided by `ournet-proto` (`LinkMsg`, `RelayCircuit`); this
//! module looks up the circuit, hands the body over and moves what comes back.

use std::time::Instant;

use ournet_proto::cell::{CELL_LEN, CellCmd, CellHeader, CircId, HEADER_LEN};
use ournet_proto::circuit::{CircuitError, ForwardAction, RelayCircuit};
use ournet_proto::link::channel::OpenedCell;
use ournet_proto::link_msg::{DestroyReason, LinkMsg};

use super::circuits::Dir;
use super::conn::is_circuit_cmd;
use super::sched::{CONGESTED_BYTES, ORIGIN_BURST_CELLS};
use super::{CircKey, ConnId, Relay};
use crate::metrics::{self, DropKind};

impl Relay {
    /// Handles one opened cell from link `id`.
    pub(super) fn on_cell(&mut self, now: Instant, id: ConnId, mut cell: OpenedCell<'_>) {
        let cmd = cell.header.cmd;
        if cmd == CellCmd::PADDING {
            return;
        }
        let Some(circ_id) = cell.header.circ_id.filter(|_| is_circuit_cmd(cmd)) else {
            return self.close_conn(now, id, DropKind::LinkProtocol);
        };
        match cmd {
            CellCmd::CREATE => self.on_create(now, id, circ_id, &cell),
            CellCmd::CREATED => self.on_created(now, id, circ_id, &cell),
            CellCmd::RELAY => self.on_relay(now, id, circ_id, &mut cell),
            _ => self.on_destroy(now, id, circ_id, &cell),
        }
    }

    fn on_create(&mut self, now: Instant, id: ConnId, circ_id: CircId, cell: &OpenedCell<'_>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if !conn.is_peer_id(circ_id) || self.circuits.leg_in_use((id, circ_id)) {
            return self.close_conn(now, id, DropKind::LinkProtocol);
        }
        let limits = &self.ctx.config.limits;
        let refuse = if self.draining.is_some() {
            Some((DestroyReason::SHUTDOWN, DropKind::ResourceLimit))
        } else if conn.circuits >= limits.max_circuits_per_conn
            || self.circuits.len() >= limits.max_circuits_per_worker
        {
            Some((DestroyReason::RESOURCE_LIMIT, DropKind::ResourceLimit))
        } else if conn
            .peer_ip
            .is_some_and(|ip| !self.ctx.directory.allow_create(now, ip))
        {
            Some((DestroyReason::RESOURCE_LIMIT, DropKind::RateLimited))
        } else {
            None
        };
        if let Some((reason, kind)) = refuse {
            self.metrics.count_drop(kind);
            return self.send_destroy(now, id, circ_id, reason);
        }
        match self.accept_create(id, cell) {
            Ok((hop, created)) => self.created_circuit(now, id, circ_id, hop, &created),
            Err(_) => {
                self.metrics.count_drop(DropKind::CreateFailed);
                self.send_destroy(now, id, circ_id, DestroyReason::HANDSHAKE);
            }
        }
    }

    fn accept_create(
        &mut self,
        id: ConnId,
        cell: &OpenedCell<'_>,
    ) -> Result<(RelayCircuit, Vec<u8>), CircuitError> {
        let binding = match self.conns.get_mut(&id).and_then(|c| c.link()) {
            Some(link) => link.binding,
            None => return Err(CircuitError::Closed),
        };
        let LinkMsg::Create { htype, hdata } = cell.link_msg()? else {
            return Err(CircuitError::Protocol("not a CREATE"));
        };
        let keys = &self.ctx.keys;
        let identity = keys.identity.public();
        RelayCircuit::accept_create(
            &mut self.rng,
            &identity,
            &[&keys.onion],
            htype,
            hdata,
            binding,
        )
    }

    fn created_circuit(
        &mut self,
        now: Instant,
        id: ConnId,
        circ_id: CircId,
        hop: RelayCircuit,
        created: &[u8],
    ) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn
            .queue_msg(now, circ_id, &LinkMsg::Created { hdata: created })
            .is_err()
        {
            return;
        }
        conn.circuits += 1;
        let weight = self.ctx.directory.qos_weight(conn.peer_identity.as_ref());
        self.circuits.insert(hop, (id, circ_id), weight);
        metrics::add(&self.metrics.circuits_created, 1);
        metrics::set(&self.metrics.circuits, self.circuits.len() as u64);
        self.want_flush(id);
    }

    fn on_created(&mut self, now: Instant, id: ConnId, circ_id: CircId, cell: &OpenedCell<'_>) {
        let Some((key, Dir::Backward)) = self.circuits.lookup((id, circ_id)) else {
            self.metrics.count_drop(DropKind::UnknownCircuit);
            return;
        };
        let result = match cell.link_msg() {
            Ok(LinkMsg::Created { hdata }) => match self.circuits.get_mut(key) {
                Some(circ) => circ.hop.handle_created(hdata),
                None => return,
            },
            _ => Err(CircuitError::Protocol("bad CREATED")),
        };
        match result {
            Ok(()) => self.flush_backward(now, key),
            Err(e) => self.circuit_failed(now, key, &e),
        }
    }

    fn on_relay(&mut self, now: Instant, id: ConnId, circ_id: CircId, cell: &mut OpenedCell<'_>) {
        let Some((key, dir)) = self.circuits.lookup((id, circ_id)) else {
            self.metrics.count_drop(DropKind::UnknownCircuit);
            return;
        };
        let Some(circ) = self.circuits.get_mut(key) else {
            return;
        };
        circ.recent_cells = circ.recent_cells.saturating_add(1);
        let body = cell.body_mut();
        let next = match dir {
            Dir::Forward => match circ.hop.handle_forward(body) {
                ForwardAction::Forward => circ.next,
                ForwardAction::Consumed => return self.drive_circuit(now, key),
                ForwardAction::Destroy(e) => return self.circuit_failed(now, key, &e),
            },
            Dir::Backward => match circ.hop.handle_backward(body) {
                Ok(()) => Some(circ.prev),
                Err(e) => return self.circuit_failed(now, key, &e),
            },
        };
        let Some((out, out_id)) = next else {
            return;
        };
        self.send_relay(now, key, out, out_id, cell.cell);
    }

    /// Seals and queues a RELAY cell on `(out, out_id)`: straight into the link's output while
    /// it keeps up, through the QoS scheduler ([`super::sched`]) while it is congested. A cell
    /// past the link's send cap or the worker's (`Limits::send_policy`) sheds the link's
    /// heaviest circuit.
    pub(super) fn send_relay(
        &mut self,
        now: Instant,
        key: CircKey,
        out: ConnId,
        out_id: CircId,
        cell: &mut [u8; CELL_LEN],
    ) {
        let policy = self.ctx.config.limits.send_policy();
        let weight = self.circuits.get_mut(key).map_or(1, |c| c.weight);
        let Some(conn) = self.conns.get_mut(&out) else {
            return;
        };
        if policy
            .admit(
                conn.queued_bytes(),
                conn.circuits,
                self.send_queued,
                CELL_LEN,
            )
            .is_err()
        {
            return self.shed_heaviest(now, out, key, out_id, cell);
        }
        if !conn.sched.is_idle() || conn.outbuf.len() >= CONGESTED_BYTES {
            if conn.sched.push(key, out_id, weight, cell).is_err() {
                self.metrics.count_drop(DropKind::ResourceLimit);
                self.destroy_circuit(now, key, DestroyReason::RESOURCE_LIMIT, None);
            } else {
                self.send_queued += CELL_LEN;
            }
            return;
        }
        let header = CellHeader {
            circ_id: Some(out_id),
            cmd: CellCmd::RELAY,
        };
        match conn.queue_cell(now, header, cell) {
            Ok(()) => {
                self.send_queued += CELL_LEN;
                metrics::add(&self.metrics.cells_out, 1);
                self.want_flush(out);
            }
            Err(_) => self.destroy_circuit(now, key, DestroyReason::NONE, None),
        }
    }

    /// The link `out` (or the worker) is full: destroys the circuit with the most cells
    /// queued on the link, and queues `cell` if its own circuit was not that one and the caps
    /// now admit it.
    fn shed_heaviest(
        &mut self,
        now: Instant,
        out: ConnId,
        key: CircKey,
        out_id: CircId,
        cell: &[u8; CELL_LEN],
    ) {
        let heaviest = self.conns.get(&out).and_then(|c| c.sched.heaviest());
        let victim = heaviest.unwrap_or(key);
        self.metrics.count_drop(DropKind::MemoryShed);
        self.destroy_circuit(now, victim, DestroyReason::RESOURCE_LIMIT, None);
        if victim == key {
            return;
        }
        let policy = self.ctx.config.limits.send_policy();
        let weight = self.circuits.get_mut(key).map_or(1, |c| c.weight);
        let Some(conn) = self.conns.get_mut(&out) else {
            return;
        };
        let admitted = policy
            .admit(
                conn.queued_bytes(),
                conn.circuits,
                self.send_queued,
                CELL_LEN,
            )
            .is_ok();
        if admitted && conn.sched.push(key, out_id, weight, cell).is_ok() {
            self.send_queued += CELL_LEN;
        } else {
            self.destroy_circuit(now, key, DestroyReason::RESOURCE_LIMIT, None);
        }
    }

    /// Moves cells from `id`'s scheduler into its output until the link is congested again
    /// (called when the backend has written everything it had).
    pub(super) fn refill_from_sched(&mut self, now: Instant, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let mut moved = 0u64;
        while conn.outbuf.len() < CONGESTED_BYTES {
            let Some((circ_id, mut buf)) = conn.sched.pop() else {
                break;
            };
            let header = CellHeader {
                circ_id: Some(circ_id),
                cmd: CellCmd::RELAY,
            };
            let sealed = conn.queue_cell(now, header, &mut buf).is_ok();
            conn.sched.recycle(buf);
            if !sealed {
                break;
            }
            moved += 1;
        }
        if moved > 0 {
            metrics::add(&self.metrics.cells_out, moved);
            self.want_flush(id);
        }
    }

    fn on_destroy(&mut self, now: Instant, id: ConnId, circ_id: CircId, cell: &OpenedCell<'_>) {
        let Some((key, _)) = self.circuits.lookup((id, circ_id)) else {
            return;
        };
        let reason = match cell.link_msg() {
            Ok(LinkMsg::Destroy(reason)) => reason,
            _ => DestroyReason::PROTOCOL,
        };
        if let Some(circ) = self.circuits.get_mut(key)
            && circ.next.is_some_and(|n| n == (id, circ_id))
            && !circ.hop.has_next()
        {
            // The next hop refused our CREATE.
            let _e = circ.hop.extend_failed();
            self.metrics.count_drop(DropKind::ExtendFailed);
        }
        self.destroy_circuit(now, key, reason, Some(id));
    }

    /// Counts why a circuit failed and destroys it both ways.
    pub(super) fn circuit_failed(&mut self, now: Instant, key: CircKey, e: &CircuitError) {
        let kind = match e {
            CircuitError::Integrity => DropKind::OnionIntegrity,
            CircuitError::QueueFull => DropKind::ResourceLimit,
            _ => DropKind::CircuitProtocol,
        };
        self.metrics.count_drop(kind);
        self.destroy_circuit(now, key, e.destroy_reason(), None);
    }

    /// Removes `key` and sends DESTROY on each leg except those on link `skip`.
    pub(super) fn destroy_circuit(
        &mut self,
        now: Instant,
        key: CircKey,
        reason: DestroyReason,
        skip: Option<ConnId>,
    ) {
        let Some(circ) = self.circuits.remove(key) else {
            return;
        };
        for (conn_id, circ_id) in [Some(circ.prev), circ.next].into_iter().flatten() {
            if let Some(conn) = self.conns.get_mut(&conn_id) {
                conn.circuits = conn.circuits.saturating_sub(1);
                conn.pending.retain(|p| p.circ_id != circ_id);
                let dropped = conn.sched.remove(key);
                self.send_queued = self.send_queued.saturating_sub(dropped * CELL_LEN);
            }
            if skip != Some(conn_id) {
                self.send_destroy(now, conn_id, circ_id, reason);
            }
        }
        if let Some(home) = circ.hop.home_identity() {
            self.ctx
                .directory
                .unregister_home(home.to_bytes(), self.loc(key));
        }
        metrics::set(&self.metrics.circuits, self.circuits.len() as u64);
        self.return_all_credits(now, circ.credits.into());
    }

    /// Queues DESTROY for `circ_id` on `id`, if that link is open.
    pub(super) fn send_destroy(
        &mut self,
        now: Instant,
        id: ConnId,
        circ_id: CircId,
        reason: DestroyReason,
    ) {
        if let Some(conn) = self.conns.get_mut(&id)
            && conn
                .queue_msg(now, circ_id, &LinkMsg::Destroy(reason))
                .is_ok()
        {
            self.want_flush(id);
        }
    }

    /// Sends the cells `key` originates (EXTENDED, SENDME, PONG, status, ACKs, messages) to
    /// its previous hop while that link has room; otherwise waits for
    /// [`Relay::handle_writable`].
    pub(super) fn flush_backward(&mut self, now: Instant, key: CircKey) {
        self.write_backward(now, key);
        self.return_sent_credits(now, key);
    }

    /// The loop of [`Relay::flush_backward`]: polls `key`'s cells while its link has room.
    fn write_backward(&mut self, now: Instant, key: CircKey) {
        let policy = self.ctx.config.limits.send_policy();
        let mut cell = [0u8; CELL_LEN];
        loop {
            let Some(circ) = self.circuits.get_mut(key) else {
                return;
            };
            let (prev, prev_id) = circ.prev;
            let Some(conn) = self.conns.get_mut(&prev) else {
                return;
            };
            if conn.queued_bytes() >= policy.link_cap(conn.circuits) / 2
                || conn.sched.queued_cells(key) >= ORIGIN_BURST_CELLS
            {
                if !circ.blocked {
                    circ.blocked = true;
                    conn.blocked.push(key);
                }
                return;
            }
            circ.blocked = false;
            let body = cell.get_mut(HEADER_LEN..).unwrap_or_default();
            match circ.hop.poll_backward(body) {
                Ok(true) => self.send_relay(now, key, prev, prev_id, &mut cell),
                Ok(false) => return,
                Err(e) => return self.circuit_failed(now, key, &e),
            }
        }
    }
}
