//! EXTEND: open (or reuse) a relay link to the next hop and send CREATE on it
//! (PROTOCOL.md §6.3).
//!
//! Links to other relays are Noise IK, and the link handshake checks the identity the EXTEND
//! named (`LinkInitiator` refuses another). One link per peer identity per worker is reused
//! by every circuit through it, including links that peer opened to us. A CREATE for a link
//! still connecting waits in that connection's pending list (bounded); if the link fails,
//! every circuit waiting on it is destroyed with reason CONNECT_FAILED.

use std::net::SocketAddr;
use std::time::Instant;

use ournet_proto::keys::{EncryptionPublicKey, IdentityPublicKey};
use ournet_proto::link_msg::{DestroyReason, LinkMsg};

use super::conn::{Conn, PendingCreate};
use super::{Action, CircKey, ConnId, Relay};
use crate::metrics::{self, DropKind};

/// An EXTEND request from a circuit's last hop.
#[derive(Debug)]
pub(super) struct ExtendReq {
    pub(super) addr: SocketAddr,
    pub(super) identity: IdentityPublicKey,
    pub(super) link_key: EncryptionPublicKey,
    pub(super) htype: u16,
    pub(super) hdata: Vec<u8>,
}

impl Relay {
    /// Carries out an EXTEND of circuit `key`.
    pub(super) fn on_extend(&mut self, now: Instant, key: CircKey, req: ExtendReq) {
        let own = self.ctx.keys.identity.public();
        let private_ok = self.ctx.config.limits.extend_to_private;
        if self.draining.is_some() || req.identity == own || !(private_ok || is_global(&req.addr)) {
            return self.extend_failed(now, key);
        }
        let Some(conn_id) = self.relay_link(now, &req) else {
            return self.extend_failed(now, key);
        };
        let Some(circ_id) = self.allocate_id(conn_id) else {
            return self.extend_failed(now, key);
        };
        let limit = self.ctx.config.limits.max_pending_creates;
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return self.extend_failed(now, key);
        };
        if conn.link().is_none() && conn.pending.len() >= limit {
            return self.extend_failed(now, key);
        }
        conn.circuits += 1;
        self.circuits.set_next(key, (conn_id, circ_id));
        let create = PendingCreate {
            circ_id,
            htype: req.htype,
            hdata: req.hdata,
        };
        if let Some(conn) = self.conns.get_mut(&conn_id) {
            conn.pending.push(create);
        }
        self.send_pending_creates(now, conn_id);
    }

    /// Sends the CREATEs waiting on `id`, if its link is open.
    pub(super) fn send_pending_creates(&mut self, now: Instant, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.link().is_none() || conn.pending.is_empty() {
            return;
        }
        for p in std::mem::take(&mut conn.pending) {
            let msg = LinkMsg::Create {
                htype: p.htype,
                hdata: &p.hdata,
            };
            if conn.queue_msg(now, p.circ_id, &msg).is_ok() {
                metrics::add(&self.metrics.cells_out, 1);
            }
        }
        self.want_flush(id);
    }

    /// A usable link to `req.identity`: an existing one, or a new outbound connection.
    fn relay_link(&mut self, now: Instant, req: &ExtendReq) -> Option<ConnId> {
        let peer = req.identity.to_bytes();
        if let Some(id) = self.relay_links.get(&peer)
            && self.conns.get(id).is_some_and(|c| !c.closing)
        {
            return Some(*id);
        }
        if !self.ctx.directory.admit(now, None) {
            self.metrics.count_drop(DropKind::ConnRefused);
            return None;
        }
        let id = self.new_conn_id();
        self.conns
            .insert(id, Conn::outbound(now, req.identity, req.link_key));
        metrics::add(&self.metrics.connections, 1);
        self.relay_links.insert(peer, id);
        self.actions.push_back(Action::Connect {
            conn: id,
            addr: req.addr,
        });
        Some(id)
    }

    /// An unused circuit id of our half of link `id`'s id space.
    fn allocate_id(&mut self, id: ConnId) -> Option<ournet_proto::cell::CircId> {
        let conn = self.conns.get_mut(&id)?;
        for _ in 0..64 {
            let circ_id = conn.next_own_id()?;
            if !self.circuits.leg_in_use((id, circ_id)) {
                return Some(circ_id);
            }
        }
        None
    }

    fn extend_failed(&mut self, now: Instant, key: CircKey) {
        self.metrics.count_drop(DropKind::ExtendFailed);
        if let Some(circ) = self.circuits.get_mut(key) {
            let _e = circ.hop.extend_failed();
        }
        self.destroy_circuit(now, key, DestroyReason::CONNECT_FAILED, None);
    }
}

/// Whether `addr` is a public unicast address (no loopback, private, link-local, shared,
/// documentation, multicast or unspecified address, and no port 0).
pub(super) fn is_global(addr: &SocketAddr) -> bool {
    if addr.port() == 0 {
        return false;
    }
    match addr.ip() {
        std::net::IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_broadcast()
                || ip.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || a >= 240)
        }
        std::net::IpAddr::V6(ip) => {
            let first = ip.segments()[0];
            match ip.to_ipv4_mapped() {
                Some(v4) => is_global(&SocketAddr::new(v4.into(), addr.port())),
                None => {
                    !(ip.is_loopback()
                        || ip.is_unspecified()
                        || ip.is_multicast()
                        || (first & 0xfe00) == 0xfc00
                        || (first & 0xffc0) == 0xfe80
                        || first == 0x2001 && ip.segments()[1] == 0x0db8)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_global_unicast_addresses_are_extend_targets() {
        for bad in [
            "127.0.0.1:9001",
            "10.1.2.3:9001",
            "192.168.0.1:9001",
            "169.254.1.1:9001",
            "100.64.0.1:9001",
            "0.0.0.0:9001",
            "8.8.8.8:0",
            "[::1]:9001",
            "[fd00::1]:9001",
            "[fe80::1]:9001",
            "[::ffff:127.0.0.1]:9001",
        ] {
            assert!(!is_global(&bad.parse().unwrap()), "{bad}");
        }
        for good in ["8.8.8.8:9001", "[2606:4700::1]:443"] {
            assert!(is_global(&good.parse().unwrap()), "{good}");
        }
    }
}
