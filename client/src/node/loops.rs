//! Loop cover traffic (Loopix): while the privacy config's `mix_network` is enabled with
//! `loop_cover_traffic`, the node sends messages to its own address at exponential intervals
//! and counts the ones that come back (`proto::privacy::loops` holds the policy).
//!
//! A loop is an ordinary send on the wire: an envelope sealed to the node's own key, a mix
//! circuit of drawn length to one of its homes, the batching and jitter of real sends, and the
//! ACK flow back, with the length of one of the node's recent real messages. Its content
//! starts with the node's [`LoopToken`](ournet_proto::privacy::loops::LoopToken) for the
//! message id, so the receive path recognises it ([`is_own_loop`]), counts it and ACKs
//! it, but never hands it to the app and never records it in the de-duplication window. Loops
//! are not journalled as pending sends (they are cover, not messages), have no outcome and no
//! retry, and stop with the node's other tasks at `stop()`.
//!
//! Each loop is sent with its route (the home it goes to, the first hop of its circuit), so
//! `proto`'s tracker can blame a relay when loops go missing. The node acts on the alarm as
//! `proto` decides ([`AlarmAction`]): a blamed home goes into the cooldown at once (no loop
//! or path uses it) and the maintenance task replaces it with the make-before-break rotation
//! (`super::rotation::leave_blamed`); a blamed first hop goes into the cooldown. Either way
//! the tracker starts a fresh window, and reacts again only after
//! [`LoopCoverConfig::reaction_gap`], so one attack moves the node once, not in a storm.
//!
//! Loops in flight at `stop()` are saved in the node's state (one state, W23, written
//! atomically with the rest) and awaited again at the next `start()`, before any home is
//! authenticated, so a loop a home queued while the node was away counts as returned
//! (`loops_returned_after_restart`); a crash loses that list, and such loops are then only
//! recognised (never handed to the app) and ACKed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ournet_proto::envelope::{OpenedMessage, encrypt_message_with_ack};
use ournet_proto::keys::IdentityKeypair;
use ournet_proto::privacy::loops::{
    AlarmAction, LoopCounts, LoopReturn, LoopRoute, LoopSizes, LossAlarm, SavedLoop,
};
use ournet_proto::privacy::{LoopCoverConfig, LoopKey, LoopTracker};
use tokio::sync::Notify;

use super::send::{self, Job};
use super::{Inner, MessageId, unix_now};
use crate::rng::{fresh_rng, random_bytes};
use crate::stats::{Counters, NodeStats};

/// The node's loop key and the loops in flight.
#[derive(Debug)]
pub(super) struct Loops {
    key: LoopKey,
    tracker: Mutex<LoopTracker>,
    sizes: Mutex<LoopSizes>,
    /// Wakes the scheduler when a loop is sent, so its return deadline is watched at once.
    sent: Notify,
    /// A home an alarm blamed, for the maintenance task to replace.
    leave: Mutex<Option<[u8; 32]>>,
}

impl Loops {
    /// Loops for the node with `identity`.
    pub(super) fn new(identity: &IdentityKeypair, config: LoopCoverConfig) -> Self {
        Self {
            key: LoopKey::derive(identity),
            tracker: Mutex::new(LoopTracker::new(config)),
            sizes: Mutex::new(LoopSizes::default()),
            sent: Notify::new(),
            leave: Mutex::new(None),
        }
    }

    /// Copies the loop totals into `stats`.
    pub(super) fn fill(&self, stats: &mut NodeStats) {
        let LoopCounts {
            sent,
            returned,
            lost,
            restored,
            returned_after_restart,
            alarms,
            reactions: _,
        } = self.lock().counts();
        stats.loops_sent = sent;
        stats.loops_returned = returned;
        stats.loops_lost = lost;
        stats.loops_restored = restored;
        stats.loops_returned_after_restart = returned_after_restart;
        stats.loop_alarms = alarms;
    }

    /// Notes the length of a real message, for the lengths of later loops.
    pub(super) fn note_size(&self, len: usize) {
        self.sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(len);
    }

    /// Takes the loops in flight, to save (the node is stopping).
    pub(super) fn take_outstanding(&self) -> Vec<SavedLoop> {
        self.lock().take_outstanding()
    }

    /// Awaits `saved` (loops in flight at the last stop) again, from now.
    pub(super) fn restore(&self, saved: Vec<SavedLoop>) {
        self.lock().restore(saved, Instant::now());
    }

    /// The home the last alarm blamed, if the maintenance task has not replaced it yet.
    pub(super) fn take_leave(&self) -> Option<[u8; 32]> {
        self.leave.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Asks the maintenance task to replace `home` (again, if it could not yet).
    pub(super) fn ask_leave(&self, home: [u8; 32]) {
        *self.leave.lock().unwrap_or_else(|p| p.into_inner()) = Some(home);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LoopTracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether `opened` is one of this node's loops: signed by the node itself and carrying its
/// loop token. If so it is counted as returned (or ignored as stale).
pub(super) fn is_own_loop(inner: &Inner, opened: &OpenedMessage) -> bool {
    let id = opened.message_id();
    if *opened.sender() != inner.identity.public()
        || !inner.loops.key.is_loop(&id, opened.content())
    {
        return false;
    }
    match inner.loops.lock().on_return(&id, Instant::now()) {
        LoopReturn::Returned => {}
        LoopReturn::ReturnedAfterRestart => tracing::debug!("a loop from before a restart"),
        LoopReturn::Stale => tracing::debug!("a stale loop came back"),
    }
    react(inner);
    true
}

/// Sends loops on `proto`'s schedule while mixing is on, and counts the lost ones. Runs until
/// the node stops (its task is aborted then).
pub(super) async fn run(inner: Arc<Inner>) {
    let mut rng = fresh_rng();
    let config = inner.settings.loop_cover;
    let mut next_send = Instant::now() + config.next_interval(&mut rng);
    loop {
        let expiry = inner.loops.lock().poll_timeout();
        let wake = expiry.map_or(next_send, |e| e.min(next_send));
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {}
            () = inner.loops.sent.notified() => {}
        }
        let now = Instant::now();
        inner.loops.lock().handle_timeout(now);
        react(&inner);
        if now >= next_send {
            next_send = now + config.next_interval(&mut rng);
            if inner.privacy_config().mix_network.sends_loops() {
                inner.spawn(send_loop(inner.clone()));
            }
        }
    }
}

/// One loop: sealed to the node's own address, sent like a real message, one attempt.
async fn send_loop(inner: Arc<Inner>) {
    let Some(me) = inner
        .address
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    else {
        return;
    };
    let id = MessageId(random_bytes());
    let mut rng = fresh_rng();
    let len = inner
        .loops
        .sizes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .draw(&mut rng);
    let content = inner.loops.key.content(&id.0, len);
    let sealed = encrypt_message_with_ack(
        &mut rng,
        &inner.identity,
        &me.encryption_key,
        id.0,
        unix_now(),
        &content,
    );
    let (envelope, ack) = match sealed {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("sealing a loop: {e}");
            return;
        }
    };
    super::batch::wait_turn(&inner).await;
    let cooling = super::home::cooling_down(&inner);
    let turn = u32::from(random_bytes::<1>()[0]) + 1;
    let Some(home) = send::pick_home(&me.homes, turn, &cooling).cloned() else {
        return;
    };
    let mut job = Job::cover(id, me, envelope, ack);
    let sc = match send::circuit_for(&inner, &job, &home).await {
        Ok(sc) => sc,
        Err(why) => {
            // Never on the wire, so not a loss: the relays had no chance to drop it.
            tracing::debug!("loop not sent, no circuit: {why}");
            return;
        }
    };
    let route = LoopRoute {
        home: home.identity.to_bytes(),
        first_hop: sc.first_hop(),
    };
    inner.loops.lock().on_sent(id.0, route, Instant::now());
    inner.loops.sent.notify_one();
    react(&inner);
    // The loop's fate shows on the receive side; the ACK flow only has to look ordinary.
    let _ = send::attempt_on(&inner, &mut job, &home, &sc).await;
}

/// Logs the alarm the tracker raised, if any, and carries out its action.
fn react(inner: &Inner) {
    let Some(alarm) = inner.loops.lock().poll_alarm() else {
        return;
    };
    warn(&alarm, inner.settings.loop_cover.return_timeout);
    match alarm.action {
        AlarmAction::LeaveHome(home) => {
            super::home::cool_down(inner, &hex::encode(home));
            inner.loops.ask_leave(home);
            inner.homes_changed.notify_one();
        }
        AlarmAction::AvoidFirstHop(hop) => {
            super::home::cool_down(inner, &hex::encode(hop));
            Counters::bump(&inner.counters.loop_alarm_avoided_hops);
        }
        _ => {}
    }
}

fn warn(alarm: &LossAlarm, timeout: Duration) {
    let what = match alarm.action {
        AlarmAction::LeaveHome(_) => "leaving the home they were sent to, which lost them",
        AlarmAction::AvoidFirstHop(_) => "avoiding the first hop that lost them",
        AlarmAction::Hold => "one relay lost them, but the node reacted too recently",
        AlarmAction::Unattributed => "no single relay explains the losses",
        _ => "no reaction",
    };
    tracing::warn!(
        "{} of the last {} loop messages did not come back within {:?}: relays may be \
         dropping this node's traffic (an n-1 or blocking attack); {what}",
        alarm.lost,
        alarm.outcomes,
        timeout
    );
}
