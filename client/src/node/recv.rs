//! Receiving on a home circuit: open the envelope (the sender authenticated by its
//! signature, W16), hand it to the app once, make that durable, then ACK.
//!
//! Exactly once: the (sender, signed message id) pair goes into the de-duplication window
//! before the message is handed over, and the window is on disk before the ACK leaves. A
//! sender that gets no ACK retries; the copy is then ACKed again but not handed over twice,
//! even across a restart. An envelope that does not open is dropped without an ACK. The
//! node's own loop cover messages are ACKed and counted, never handed over (`super::loops`).

use std::sync::Arc;

use ournet_proto::envelope::decrypt_message;

use super::{Inner, MessageId, ReceivedMessage, unix_now};
use crate::dedup::SeenKey;
use crate::link::{CircOp, CircuitHandle};
use crate::stats::Counters;

/// Handles one message that arrived on the home circuit `circ`.
pub(super) async fn on_message(
    inner: &Arc<Inner>,
    circ: &CircuitHandle,
    relay_message_id: [u8; 16],
    envelope: &[u8],
) {
    let opened = match decrypt_message(&inner.encryption, envelope) {
        Ok(o) => o,
        Err(e) => {
            tracing::debug!("dropped a message that did not open: {e}");
            Counters::bump(&inner.counters.rejected);
            return;
        }
    };
    if super::loops::is_own_loop(inner, &opened) {
        // Cover: ACKed like any message, but not for the app and not worth a disk write.
        ack(circ, relay_message_id, opened.ack_token().to_bytes()).await;
        return;
    }
    inner.touch();
    let key = SeenKey {
        sender: opened.sender().to_bytes(),
        message_id: opened.message_id(),
    };
    let ack_token = opened.ack_token().to_bytes();
    if inner.store.first_sight(key, unix_now()) {
        let msg = ReceivedMessage {
            sender: *opened.sender(),
            message_id: MessageId(opened.message_id()),
            content: opened.into_content(),
        };
        if inner.incoming_tx.send(msg).await.is_err() {
            return;
        }
        Counters::bump(&inner.counters.received);
    } else {
        Counters::bump(&inner.counters.duplicates);
    }
    if let Err(e) = inner.store.flush().await {
        // Without a durable window an ACK could let a restart deliver it twice: no ACK, so
        // the sender retries and the copy is recognised once the disk works again.
        tracing::warn!("not ACKing: state not saved: {e}");
        return;
    }
    ack(circ, relay_message_id, ack_token).await;
}

/// Sends the end-to-end ACK back on the circuit the message came on.
async fn ack(circ: &CircuitHandle, message_id: [u8; 16], ack_token: [u8; 16]) {
    let _ = circ
        .op(CircOp::Ack {
            message_id,
            ack_token,
        })
        .await;
}
