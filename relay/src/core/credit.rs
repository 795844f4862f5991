//! Home delivery flow control (PROTOCOL.md §8): a message delivered to an online node gives
//! its sender's circuit back its flow-control credit only once the node's home circuit
//! window takes it, so a sender that does not wait for ACKs is paced by the node's reading.
//!
//! The sender's circuit holds the credit of every message it completes
//! ([`RelayCircuit::release_message`](ournet_proto::circuit::RelayCircuit::release_message));
//! the home circuit keeps, per queued message, whose credit it owes (`Circ::credits`), and
//! gives it back as its window takes the message's last cell, or when it closes. A credit
//! owed to a circuit on another worker travels as [`CrossMsg::Credit`].

use std::time::Instant;

use super::{CircKey, Relay};
use crate::cross::CrossMsg;
use crate::directory::CircLoc;
use crate::metrics::DropKind;

impl Relay {
    /// Gives the circuit at `to` back the credit of a message of `len` bytes.
    pub(super) fn return_credit(&mut self, now: Instant, to: CircLoc, len: usize) {
        if to.worker == self.worker {
            return self.release_local(now, to.circ, len);
        }
        let msg = CrossMsg::Credit { circ: to.circ, len };
        if self.ctx.postman.post(to.worker, msg).is_err() {
            self.metrics.count_drop(DropKind::MailboxFull);
        }
    }

    /// Gives circuit `key` of this worker back a message's credit and sends the SENDMEs due.
    pub(super) fn release_local(&mut self, now: Instant, key: CircKey, len: usize) {
        let Some(circ) = self.circuits.get_mut(key) else {
            return;
        };
        match circ.hop.release_message(len) {
            Ok(()) => self.flush_backward(now, key),
            Err(e) => self.circuit_failed(now, key, &e),
        }
    }

    /// Gives back the credits of the messages home circuit `key` finished writing.
    pub(super) fn return_sent_credits(&mut self, now: Instant, key: CircKey) {
        let Some(circ) = self.circuits.get_mut(key) else {
            return;
        };
        let sent = circ.hop.take_sent();
        if sent == 0 {
            return;
        }
        let done: Vec<_> = circ.credits.drain(..sent.min(circ.credits.len())).collect();
        for credit in done {
            if let Some(from) = credit.from {
                self.return_credit(now, from, credit.len);
            }
        }
    }

    /// Gives back every credit a closed home circuit still owed: its messages are gone.
    pub(super) fn return_all_credits(
        &mut self,
        now: Instant,
        credits: Vec<super::circuits::Credit>,
    ) {
        for credit in credits {
            if let Some(from) = credit.from {
                self.return_credit(now, from, credit.len);
            }
        }
    }
}
