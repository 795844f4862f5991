//! The last hop's events: extensions, message delivery to home circuits or the offline
//! queue, end-to-end ACK routing, and home registration (PROTOCOL.md §7.3, §7.4).
//!
//! A delivered message is answered with DELIVERY_STATUS on the sender's circuit: DELIVERED
//! once it is queued on the recipient's home circuit (here or handed to the worker that holds
//! it), QUEUED when the recipient is offline, REFUSED when the offline queue or the home
//! buffer (`HOME_BUFFER_BYTES`) is full. The home buffer's cap is decided before answering,
//! by reserving the message's bytes in the home's shared budget (`directory::budget`), so a
//! message answered DELIVERED is never refused by the worker that holds the home circuit.
//! The sender's circuit is remembered for the ACK,
//! which only the recipient's own home circuit can take back, and is owed the message's
//! flow-control credit until the home circuit's window takes it (`credit.rs`).
//!
//! A node that moved (FORWARD_TO on its home circuit, kept by `directory::forwards`) and
//! whose home circuit here is gone is not queued for: the sender hears MOVED with the node's
//! new address instead of DELIVERY_STATUS, and the message is dropped here (the sender
//! resends it to the new homes). While the home circuit is up (the node's drain), messages
//! are delivered as before.

use std::time::{Duration, Instant};

use ournet_proto::address::NodeAddress;
use ournet_proto::circuit::RelayEvent;
use ournet_proto::relay_msg::DeliveryStatus;

use super::circuits::Credit;
use super::extend::ExtendReq;
use super::{CircKey, Relay};
use crate::cross::{CrossMsg, Delivery};
use crate::directory::budget::Reservation;
use crate::directory::qos::PeerKind;
use crate::directory::{CircLoc, Route};
use crate::metrics::{self, DropKind};

impl Relay {
    /// Acts on everything circuit `key` produced, then sends what it originates.
    pub(super) fn drive_circuit(&mut self, now: Instant, key: CircKey) {
        while let Some(event) = self.circuits.get_mut(key).and_then(|c| c.hop.poll_event()) {
            self.on_event(now, key, event);
        }
        self.flush_backward(now, key);
    }

    fn on_event(&mut self, now: Instant, key: CircKey, event: RelayEvent) {
        match event {
            RelayEvent::Extend {
                addr,
                identity,
                link_key,
                htype,
                hdata,
            } => {
                let req = ExtendReq {
                    addr,
                    identity,
                    link_key,
                    htype,
                    hdata,
                };
                self.on_extend(now, key, req);
            }
            RelayEvent::Deliver {
                recipient,
                message_id,
                envelope,
            } => {
                let d = Delivery {
                    recipient,
                    message_id,
                    envelope,
                };
                self.on_deliver(now, key, d);
            }
            RelayEvent::Ack {
                message_id,
                ack_token,
            } => self.on_ack(now, key, message_id, ack_token),
            RelayEvent::HomeRegistered { identity } => self.on_home(now, key, identity.to_bytes()),
            RelayEvent::ForwardTo { address } => self.on_forward_to(now, key, &address),
        }
    }

    /// Keeps the new address of the node whose home circuit `key` is (`proto` checked the
    /// signature and that it is the circuit's node).
    fn on_forward_to(&mut self, now: Instant, key: CircKey, address: &NodeAddress) {
        let Some(node) = self
            .circuits
            .get_mut(key)
            .and_then(|c| c.hop.home_identity())
        else {
            return;
        };
        if let Err(e) = self
            .ctx
            .directory
            .set_forward(now, node.to_bytes(), address)
        {
            tracing::debug!("a forwarding address was not kept: {e}");
        }
    }

    fn on_deliver(&mut self, now: Instant, from: CircKey, d: Delivery) {
        let (recipient, message_id, len) = (d.recipient, d.message_id, d.envelope.len());
        let dir = &self.ctx.directory;
        let from_loc = self.loc(from);
        let status = match dir.route(now, recipient, message_id, d.envelope) {
            Route::Moved(address) => {
                return self.answer_moved(now, from, message_id, &address, len);
            }
            Route::Home(loc, envelope, reserved) => {
                dir.add_ack_route(now, recipient, message_id, from_loc);
                let d = Delivery {
                    recipient,
                    message_id,
                    envelope,
                };
                self.deliver_to(now, loc, d, from_loc, reserved)
            }
            Route::Full => {
                self.metrics.count_drop(DropKind::HomeFull);
                DeliveryStatus::REFUSED
            }
            Route::Queued => {
                dir.add_ack_route(now, recipient, message_id, from_loc);
                metrics::add(&self.metrics.queued_offline, 1);
                DeliveryStatus::QUEUED
            }
            _ => {
                self.metrics.count_drop(DropKind::OfflineRefused);
                DeliveryStatus::REFUSED
            }
        };
        let sent = self
            .circuits
            .get_mut(from)
            .map(|c| c.hop.send_status(message_id, status));
        if let Some(Err(e)) = sent {
            return self.circuit_failed(now, from, &e);
        }
        // A message on a home circuit gives its credit back when the circuit's window takes
        // it; any other left this relay's hands (queued or refused) already.
        if status != DeliveryStatus::DELIVERED {
            self.return_credit(now, from_loc, len);
        }
    }

    /// Answers a message for a node that moved with MOVED (its new address) on the sender's
    /// circuit `from`; the message was not kept, so its credit goes back at once.
    fn answer_moved(
        &mut self,
        now: Instant,
        from: CircKey,
        message_id: [u8; 16],
        address: &[u8],
        len: usize,
    ) {
        metrics::add(&self.metrics.moved, 1);
        let sent = self
            .circuits
            .get_mut(from)
            .map(|c| c.hop.send_moved(message_id, address));
        if let Some(Err(e)) = sent {
            return self.circuit_failed(now, from, &e);
        }
        let from_loc = self.loc(from);
        self.return_credit(now, from_loc, len);
    }

    /// Delivers on the home circuit at `loc`, here or on its worker, the message's bytes
    /// already `reserved` in its buffer. DELIVERED means the home circuit (or its worker)
    /// owes `from` the message's credit.
    fn deliver_to(
        &mut self,
        now: Instant,
        loc: CircLoc,
        d: Delivery,
        from: CircLoc,
        reserved: Reservation,
    ) -> DeliveryStatus {
        if loc.worker == self.worker {
            return self.deliver_local(now, loc.circ, d, from, reserved);
        }
        let msg = CrossMsg::Deliver {
            circ: loc.circ,
            delivery: d,
            from,
            reserved,
        };
        match self.ctx.postman.post(loc.worker, msg) {
            Ok(()) => DeliveryStatus::DELIVERED,
            Err(CrossMsg::Deliver { delivery: d, .. }) => {
                self.metrics.count_drop(DropKind::MailboxFull);
                self.queue_offline(now, d.recipient, d.message_id, d.envelope)
            }
            Err(_) => DeliveryStatus::REFUSED,
        }
    }

    /// Queues `d` on home circuit `key` of this worker (its credit owed to `from`; its bytes
    /// `reserved` in the circuit's budget, so the cap was decided already), or offline if the
    /// circuit is gone or no longer the recipient's (the reservation is then given back).
    fn deliver_local(
        &mut self,
        now: Instant,
        key: CircKey,
        d: Delivery,
        from: CircLoc,
        reserved: Reservation,
    ) -> DeliveryStatus {
        let Some(circ) = self
            .circuits
            .get_mut(key)
            .filter(|c| c.hop.home_identity().map(|h| h.to_bytes()) == Some(d.recipient))
        else {
            return self.queue_offline(now, d.recipient, d.message_id, d.envelope);
        };
        let len = d.envelope.len();
        match circ.hop.deliver(d.message_id, d.envelope) {
            Ok(()) => {
                reserved.commit();
                let from = Some(from);
                circ.credits.push_back(Credit { from, len });
                metrics::add(&self.metrics.delivered, 1);
                self.flush_backward(now, key);
                DeliveryStatus::DELIVERED
            }
            // The circuit handed the message back: keep it for the node rather than lose it.
            Err(refused) => self.queue_offline(now, d.recipient, d.message_id, refused.envelope),
        }
    }

    fn queue_offline(
        &mut self,
        now: Instant,
        recipient: [u8; 32],
        message_id: [u8; 16],
        envelope: Vec<u8>,
    ) -> DeliveryStatus {
        match self
            .ctx
            .directory
            .queue(now, recipient, message_id, envelope)
        {
            Ok(()) => {
                metrics::add(&self.metrics.queued_offline, 1);
                DeliveryStatus::QUEUED
            }
            Err(_) => {
                self.metrics.count_drop(DropKind::OfflineRefused);
                DeliveryStatus::REFUSED
            }
        }
    }

    fn on_ack(&mut self, now: Instant, home: CircKey, message_id: [u8; 16], ack_token: [u8; 16]) {
        let Some(acker) = self
            .circuits
            .get_mut(home)
            .and_then(|c| c.hop.home_identity())
        else {
            return;
        };
        let dir = &self.ctx.directory;
        let Some(loc) = dir.take_ack_route(now, acker.to_bytes(), message_id) else {
            return;
        };
        if loc.worker == self.worker {
            return self.send_ack_local(now, loc.circ, message_id, ack_token);
        }
        let msg = CrossMsg::Ack {
            circ: loc.circ,
            message_id,
            ack_token,
        };
        if self.ctx.postman.post(loc.worker, msg).is_err() {
            self.metrics.count_drop(DropKind::MailboxFull);
        }
    }

    fn send_ack_local(&mut self, now: Instant, key: CircKey, id: [u8; 16], token: [u8; 16]) {
        let Some(circ) = self.circuits.get_mut(key) else {
            return;
        };
        match circ.hop.send_ack(id, token) {
            Ok(()) => self.flush_backward(now, key),
            Err(e) => self.circuit_failed(now, key, &e),
        }
    }

    fn on_home(&mut self, now: Instant, key: CircKey, identity: [u8; 32]) {
        self.score_home(now, key, &identity);
        let (budget, queued) = self
            .ctx
            .directory
            .register_home(now, identity, self.loc(key));
        let Some(circ) = self.circuits.get_mut(key) else {
            return;
        };
        circ.budget = Some(budget.clone());
        let count = u32::try_from(queued.len()).unwrap_or(u32::MAX);
        if let Err(e) = circ.hop.send_home_authed(count) {
            return self.circuit_failed(now, key, &e);
        }
        let mut refused = Vec::new();
        for q in queued {
            let len = q.envelope.len();
            match circ.hop.deliver(q.message_id, q.envelope) {
                Ok(()) => {
                    budget.add(len);
                    circ.credits.push_back(Credit { from: None, len });
                    metrics::add(&self.metrics.delivered, 1);
                }
                Err(r) => refused.push((q.message_id, r.envelope)),
            }
        }
        // Whatever the circuit could not take goes back to the offline queue, in order.
        for (message_id, envelope) in refused {
            let _status = self.queue_offline(now, identity, message_id, envelope);
        }
    }

    /// Scores a node that just proved its identity (its link's age is its uptime) and gives
    /// its home circuit the weight of its QoS tier.
    fn score_home(&mut self, now: Instant, key: CircKey, identity: &[u8; 32]) {
        let Some(circ) = self.circuits.get_mut(key) else {
            return;
        };
        let since = self.conns.get(&circ.prev.0).and_then(|c| c.opened_at);
        let age = since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        let directory = &self.ctx.directory;
        directory.qos_observe(identity, PeerKind::Home, age);
        circ.weight = directory.qos_weight(Some(identity));
    }

    /// A delivery or ACK another worker handed over.
    pub(super) fn on_cross(&mut self, now: Instant, msg: CrossMsg) {
        match msg {
            CrossMsg::Deliver {
                circ,
                delivery,
                from,
                reserved,
            } => {
                let len = delivery.envelope.len();
                let status = self.deliver_local(now, circ, delivery, from, reserved);
                if status != DeliveryStatus::DELIVERED {
                    self.return_credit(now, from, len);
                }
            }
            CrossMsg::Credit { circ, cells } => self.release_cells(now, circ, cells),
            CrossMsg::Ack {
                circ,
                message_id,
                ack_token,
            } => self.send_ack_local(now, circ, message_id, ack_token),
        }
    }
}
