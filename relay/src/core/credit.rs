//! Home delivery flow control (PROTOCOL.md §8): a message delivered to an online node gives
//! its sender's circuit back its flow-control credit only once the node's home circuit
//! window takes it, so a sender that does not wait for ACKs is paced by the node's reading.
//!
//! The sender's circuit holds the credit of every message it completes
//! ([`RelayCircuit::release_message`](ournet_proto::circuit::RelayCircuit::release_message));
//! the home circuit keeps, per queued message, whose credit it owes (`Circ::credits`), and
//! gives it back as its window takes the message's last cell, or when it closes. A credit
//! owed to a circuit on another worker travels as [`CrossMsg::Credit`]; when that worker's
//! mailbox is full it waits in [`PendingCredits`](super::pending::PendingCredits) and goes
//! with the next credit for the same circuit or at the retry tick, never dropped.
//!
//! The same moment gives the message's bytes back to the home's buffer budget
//! (`directory::budget`), which decided the cap before the sender was answered.

use std::time::{Duration, Instant};

use ournet_proto::frag::cells_for;

use super::{CircKey, Relay};
use crate::cross::CrossMsg;
use crate::directory::CircLoc;
use crate::metrics;

/// How soon a worker tries again to post credits a full mailbox refused.
pub(super) const CREDIT_RETRY: Duration = Duration::from_millis(5);

impl Relay {
    /// Gives the circuit at `to` back the credit of a message of `len` bytes.
    pub(super) fn return_credit(&mut self, now: Instant, to: CircLoc, len: usize) {
        if to.worker == self.worker {
            return self.release_local(now, to.circ, len);
        }
        let cells = u32::try_from(cells_for(len)).unwrap_or(u32::MAX);
        // Whatever was already owed to that circuit goes in the same message.
        let owed = self.pending_credits.take(to);
        let cells = cells.saturating_add(owed);
        let posted = self.post_credit(to, cells);
        if !posted {
            self.pending_credits.add(to, cells);
            metrics::add(&self.metrics.credits_deferred, 1);
            self.credit_retry.get_or_insert(now + CREDIT_RETRY);
        }
        if owed > 0 || !posted {
            let circuits = self.pending_credits.len() as u64;
            metrics::set(&self.metrics.pending_credits, circuits);
        }
    }

    fn post_credit(&self, to: CircLoc, cells: u32) -> bool {
        let msg = CrossMsg::Credit {
            circ: to.circ,
            cells,
        };
        self.ctx.postman.post(to.worker, msg).is_ok()
    }

    /// Posts the credits a full mailbox refused earlier, one message per circuit; what still
    /// does not fit waits for the next tick.
    pub(super) fn flush_pending_credits(&mut self, now: Instant) {
        self.credit_retry = None;
        if self.pending_credits.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending_credits);
        pending.flush(|to, cells| self.post_credit(to, cells));
        self.pending_credits = pending;
        metrics::set(
            &self.metrics.pending_credits,
            self.pending_credits.len() as u64,
        );
        if !self.pending_credits.is_empty() {
            self.credit_retry = Some(now + CREDIT_RETRY);
        }
    }

    /// Gives circuit `key` of this worker back a message's credit and sends the SENDMEs due.
    pub(super) fn release_local(&mut self, now: Instant, key: CircKey, len: usize) {
        let cells = u32::try_from(cells_for(len)).unwrap_or(u32::MAX);
        self.release_cells(now, key, cells);
    }

    /// Gives circuit `key` of this worker back the credit of `cells` cells (one or more
    /// messages) and sends the SENDMEs due.
    pub(super) fn release_cells(&mut self, now: Instant, key: CircKey, cells: u32) {
        let Some(circ) = self.circuits.get_mut(key) else {
            return;
        };
        match circ.hop.release_cells(cells) {
            Ok(()) => self.flush_backward(now, key),
            Err(e) => self.circuit_failed(now, key, &e),
        }
    }

    /// Gives back the credits (and budget bytes) of the messages home circuit `key`
    /// finished writing.
    pub(super) fn return_sent_credits(&mut self, now: Instant, key: CircKey) {
        let Some(circ) = self.circuits.get_mut(key) else {
            return;
        };
        let sent = circ.hop.take_sent();
        if sent == 0 {
            return;
        }
        let done: Vec<_> = circ.credits.drain(..sent.min(circ.credits.len())).collect();
        if let Some(budget) = &circ.budget {
            budget.release(done.iter().map(|c| c.len).sum());
        }
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
