//! Connection lifecycle: handshakes, the cell read loop, closing and removal.

use std::time::Instant;

use bytes::Buf;
use ournet_proto::cell::CELL_LEN;
use ournet_proto::link::LinkInitiator;
use ournet_proto::link::channel::OpenedCell;
use ournet_proto::link_msg::DestroyReason;

use super::conn::{ConnState, MAX_HANDSHAKE_BYTES};
use super::{Action, ConnId, Relay};
use crate::metrics::{self, DropKind};

/// Where a handshake step left the connection.
enum Step {
    /// Need more bytes.
    Wait,
    /// The link is open; cells may follow in `inbuf`.
    Opened,
    /// Close the connection.
    Fail(DropKind),
}

impl Relay {
    /// Runs the handshake or the cell loop over what `id` has buffered.
    pub(super) fn process_input(&mut self, now: Instant, id: ConnId) {
        match self.handshake_step(now, id) {
            Step::Wait => return,
            Step::Fail(kind) => return self.close_conn(now, id, kind),
            Step::Opened => {}
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        // The buffer leaves the connection while its cells are handled (they borrow it, and
        // handling them needs the whole core); nothing else reads it meanwhile.
        let mut buf = std::mem::take(&mut conn.inbuf);
        let whole = buf.len() / CELL_LEN * CELL_LEN;
        if let Some(cells) = buf.get_mut(..whole) {
            self.handle_cells(now, id, cells.as_chunks_mut::<CELL_LEN>().0);
        }
        buf.advance(whole);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.inbuf = buf;
        }
    }

    /// Opens the whole cells of one read in one batch (one pipelined AES call for all
    /// headers) where they lie, then handles them in order; a cell that closes the link drops
    /// the rest.
    pub(super) fn handle_cells(&mut self, now: Instant, id: ConnId, cells: &mut [[u8; CELL_LEN]]) {
        let mut headers = std::mem::take(&mut self.in_headers);
        headers.clear();
        let result = match self.conns.get_mut(&id) {
            Some(conn) => conn.open_cells(now, cells, &mut headers),
            None => Err(None),
        };
        metrics::add(&self.metrics.cells_in, headers.len() as u64);
        for (header, cell) in headers.drain(..).zip(cells.iter_mut()) {
            if self.conns.get(&id).is_none_or(|c| c.closing) {
                break;
            }
            self.on_cell(now, id, OpenedCell { header, cell });
        }
        self.in_headers = headers;
        if let Err(Some(_)) = result {
            self.close_conn(now, id, DropKind::LinkForged);
        }
    }

    fn handshake_step(&mut self, now: Instant, id: ConnId) -> Step {
        let Some(conn) = self.conns.get_mut(&id) else {
            return Step::Wait;
        };
        let mut reply = Vec::new();
        let result = match &mut conn.state {
            ConnState::Open(_) => return Step::Opened,
            ConnState::Connecting { .. } => return Step::Fail(DropKind::LinkProtocol),
            ConnState::Responding(r) => {
                r.handle_input(&self.ctx.keys.link, &conn.inbuf, &mut reply)
            }
            ConnState::Initiating(i) => i.handle_input(&conn.inbuf),
        };
        match result {
            Ok(None) if conn.inbuf.len() > MAX_HANDSHAKE_BYTES => {
                Step::Fail(DropKind::LinkHandshake)
            }
            Ok(None) => Step::Wait,
            Err(_) => Step::Fail(DropKind::LinkHandshake),
            Ok(Some((used, est))) => {
                conn.inbuf.advance(used);
                conn.outbuf.extend_from_slice(&reply);
                let peer = conn.open(now, est);
                metrics::add(&self.metrics.handshakes, 1);
                if let Some(peer) = peer {
                    self.relay_links.entry(peer.to_bytes()).or_insert(id);
                }
                self.want_flush(id);
                self.send_pending_creates(now, id);
                Step::Opened
            }
        }
    }

    /// Starts the link handshake on a connected outbound connection.
    pub(super) fn start_initiator(&mut self, now: Instant, id: ConnId) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        let ConnState::Connecting { expected, link_key } = &conn.state else {
            return false;
        };
        if conn.closing {
            return false;
        }
        let mut out = Vec::new();
        let own = Some(&self.ctx.keys.link);
        match LinkInitiator::start(&mut self.rng, now, own, *expected, *link_key, &mut out) {
            Ok(init) => {
                conn.state = ConnState::Initiating(Box::new(init));
                conn.outbuf.extend_from_slice(&out);
                self.want_flush(id);
                true
            }
            Err(_) => {
                self.close_conn(now, id, DropKind::ExtendFailed);
                false
            }
        }
    }

    /// Closes `id` for `kind`: its circuits are destroyed now, queued bytes still go out.
    pub(super) fn close_conn(&mut self, now: Instant, id: ConnId, kind: DropKind) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.closing {
            return;
        }
        conn.closing = true;
        conn.deadline = Some(now + super::CLOSE_GRACE);
        conn.inbuf = bytes::BytesMut::new();
        tracing::debug!(worker = self.worker, reason = kind.as_str(), "closing link");
        self.metrics.count_drop(kind);
        self.drop_conn_circuits(now, id);
        self.actions.push_back(Action::Close(id));
    }

    /// Forgets `id` entirely (the socket is gone).
    pub(super) fn remove_conn(&mut self, now: Instant, id: ConnId) {
        self.drop_conn_circuits(now, id);
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        self.ctx.directory.release(conn.peer_ip);
        self.metrics
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn drop_conn_circuits(&mut self, now: Instant, id: ConnId) {
        self.relay_links.retain(|_, c| *c != id);
        for key in self.circuits.on_conn(id) {
            let reason = match self.circuits.get_mut(key) {
                Some(c) if c.next.is_some_and(|(n, _)| n == id) && !c.hop.has_next() => {
                    self.metrics.count_drop(DropKind::ExtendFailed);
                    DestroyReason::CONNECT_FAILED
                }
                _ => DestroyReason::NONE,
            };
            self.destroy_circuit(now, key, reason, Some(id));
        }
    }
}
