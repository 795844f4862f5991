//! Bounded mailboxes between workers, for deliveries and ACKs whose circuits live on another
//! worker (a home circuit is wherever its node's connection was accepted).
//!
//! Each worker has one bounded `crossbeam` queue and a [`Wake`] its backend provides (a tokio
//! `Notify`, an eventfd for io_uring). When a queue is full the sender falls back: a delivery
//! goes to the offline queue (decided before the sender is answered), an ACK is dropped and
//! counted (the sender retries end to end), and a credit waits in the sending worker's tally
//! of pending credits (`core::pending`) until the queue has room, so none is lost.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::core::CircKey;
use crate::directory::CircLoc;
use crate::directory::budget::Reservation;

/// How many messages a worker's mailbox holds by default (`limits.mailbox_cap`), and the most
/// a worker takes from its mailbox in one go.
pub const MAILBOX_CAP: usize = 4096;

/// Something one worker asks another to do with one of its circuits.
#[derive(Debug)]
#[non_exhaustive]
pub enum CrossMsg {
    /// Deliver a message on the home circuit `circ` of its recipient.
    Deliver {
        /// The home circuit.
        circ: CircKey,
        /// The message.
        delivery: Delivery,
        /// The sender's circuit, whose credit for the message comes back with
        /// [`CrossMsg::Credit`] once the home circuit's window takes it (or it is refused).
        from: CircLoc,
        /// The message's bytes, reserved in the home's buffer budget before the sender was
        /// answered DELIVERED (given back if the message never reaches the circuit).
        reserved: Reservation,
    },
    /// Give the sender's circuit `circ` back the credit of one or more messages.
    Credit {
        /// The sender's circuit.
        circ: CircKey,
        /// The cells those messages took (`frag::cells_for` of each length, summed).
        cells: u32,
    },
    /// Send an end-to-end ACK back on the sender's circuit `circ`.
    Ack {
        /// The sender's circuit.
        circ: CircKey,
        /// The message.
        message_id: [u8; 16],
        /// The proof of receipt.
        ack_token: [u8; 16],
    },
}

/// A message on its way to a home circuit, on this worker or another.
#[derive(Debug)]
pub struct Delivery {
    /// The node whose home circuit should take it (checked: the circuit may have been
    /// replaced).
    pub recipient: [u8; 32],
    /// The sender's message id.
    pub message_id: [u8; 16],
    /// The envelope.
    pub envelope: Vec<u8>,
}

/// Wakes a worker's event loop from another thread.
pub trait Wake: std::any::Any + Send + Sync + std::fmt::Debug {
    /// Makes the worker look at its mailbox (and at the shutdown flag) soon.
    fn wake(&self);
}

/// The sending side of every worker's mailbox.
#[derive(Debug, Clone)]
pub struct Postman {
    boxes: Arc<[Slot]>,
}

/// One worker's mailbox sender and waker.
#[derive(Debug)]
struct Slot {
    tx: Sender<CrossMsg>,
    waker: Arc<dyn Wake>,
}

impl Postman {
    /// Wires `boxes[i]` to worker `i`.
    pub fn new(boxes: Vec<(Sender<CrossMsg>, Arc<dyn Wake>)>) -> Self {
        let boxes: Vec<Slot> = boxes
            .into_iter()
            .map(|(tx, waker)| Slot { tx, waker })
            .collect();
        Self {
            boxes: boxes.into(),
        }
    }

    /// Posts `msg` to `worker`.
    ///
    /// # Errors
    /// Gives the message back when the mailbox is full or the worker is gone.
    pub fn post(&self, worker: usize, msg: CrossMsg) -> Result<(), CrossMsg> {
        let Some(slot) = self.boxes.get(worker) else {
            return Err(msg);
        };
        match slot.tx.try_send(msg) {
            Ok(()) => {
                slot.waker.wake();
                Ok(())
            }
            Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => Err(m),
        }
    }

    /// Wakes every worker (after the shutdown flag was set).
    pub fn wake_all(&self) {
        for slot in self.boxes.iter() {
            slot.waker.wake();
        }
    }
}

/// A new mailbox of `cap` messages (at least one): the sender goes into the [`Postman`], the
/// receiver to the worker.
pub fn mailbox(cap: usize) -> (Sender<CrossMsg>, Receiver<CrossMsg>) {
    crossbeam_channel::bounded(cap.max(1))
}
