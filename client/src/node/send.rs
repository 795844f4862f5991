//! Sending (spec §5.14, PROTOCOL.md §7.2-§7.3): seal once, save as pending, then attempts
//! over fresh 3-hop circuits to the recipient's homes until an ACK verifies, with a bounded
//! number of retries (W5).
//!
//! Every attempt resends the same envelope, so the recipient recognises a copy (and ACKs it
//! again) and the ACK token stays the one saved. Attempt `n` goes to home `n mod homes`, with
//! the other hops freshly chosen from the directory, so a dead relay is routed around.
//!
//! With mixing on (`mix_network.enabled`), each circuit's length is drawn by `proto`
//! (3 to 5 hops) and every attempt builds its own circuit, closed after it: a pooled circuit
//! would let the recipient's home link the messages on it. Loop cover messages
//! (`super::loops`) use the same attempts, minus the journal and the outcome.
//!
//! A recipient whose homes moved (rotation, failover) is followed (`super::follow`): when a
//! home answers QUEUED or every home of the address is cooling down, a newer address of the
//! recipient from the directory (or remembered from an earlier send) takes the place of the
//! one the send holds, and the next attempt goes to its homes, within the same retry budget.
//! A home the recipient left answers MOVED instead (its FORWARD_TO, PROTOCOL.md §7.4): the
//! message was not kept there, and the address it carries is taken like a looked-up one
//! (`follow::Addresses::learn`), with no lookup and no backoff; one that does not replace
//! the held address fails the attempt.
//! A send waiting queued keeps looking (from 5 s apart, backing off to 80 s), so a recipient
//! that comes online at other homes gets it there instead of after `Timeouts::queued_ack`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ournet_proto::address::NodeAddress;
use ournet_proto::circuit::{ClientEvent, PathHop};
use ournet_proto::envelope::{AckToken, encrypt_message_with_ack};
use ournet_proto::relay_msg::DeliveryStatus;

use super::pool::{self, SendCircuit};
use super::{Inner, MessageId, SendOutcome, shuffled, unix_now};
use crate::config::SendOptions;
use crate::directory::Preferences;
use crate::diversity::path_to;
use crate::error::ClientError;
use crate::link::{CircEvent, CircOp};
use crate::rng::{fresh_rng, random_bytes};
use crate::state::{PendingSend, from_hex};
use crate::stats::Counters;

/// Relays asked of the directory for the first two hops.
const PATH_CANDIDATES: usize = 64;
/// Circuit builds one attempt may make when a relay of the path turns out to be unreachable.
const BUILDS_PER_ATTEMPT: usize = 2;
/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest gap between two lookups of a recipient while a send waits queued at its home
/// (the first gap is `follow::LOOKUP_GAP`, doubling up to this).
const MAX_REFOLLOW_GAP: Duration = Duration::from_secs(80);

/// A send in flight.
#[derive(Debug)]
pub(super) struct Job {
    id: MessageId,
    to: NodeAddress,
    envelope: Vec<u8>,
    token: AckToken,
    attempts: u32,
    max_retries: u32,
    started: Instant,
    delivered: bool,
    /// A loop cover message: not counted as delivered or queued.
    cover: bool,
}

impl Job {
    /// A loop message's single attempt (no retries: a loop that does not come back is the
    /// signal being measured).
    pub(super) fn cover(
        id: MessageId,
        to: NodeAddress,
        envelope: Vec<u8>,
        token: AckToken,
    ) -> Self {
        Self {
            id,
            to,
            envelope,
            token,
            attempts: 1,
            max_retries: 0,
            started: Instant::now(),
            delivered: false,
            cover: true,
        }
    }
}

/// How one attempt ended.
#[derive(Debug)]
pub(super) enum Attempt {
    Acked,
    QueuedNoAck,
    /// The home queued it, or answered MOVED, and the recipient has a newer address: try
    /// its homes.
    Moved(Box<NodeAddress>),
    /// The home answered REFUSED (its buffer for the recipient or its offline queue was
    /// full, decided before it answered): retried after the usual short backoff, like a
    /// failure, but the circuit is sound and stays pooled.
    Refused(String),
    Failed(String),
}

/// Seals, saves and starts a send.
pub(super) async fn send_message(
    inner: &Arc<Inner>,
    to: &NodeAddress,
    content: &[u8],
    options: SendOptions,
) -> Result<MessageId, ClientError> {
    if !inner.is_running() {
        return Err(ClientError::NotRunning);
    }
    if inner.store.pending_count() >= inner.settings.max_pending {
        return Err(ClientError::Busy);
    }
    let now = unix_now();
    to.check_time(now)?;
    inner.loops.note_size(content.len());
    let id = MessageId(random_bytes());
    let (envelope, token) = encrypt_message_with_ack(
        &mut fresh_rng(),
        &inner.identity,
        &to.encryption_key,
        id.0,
        now,
        content,
    )?;
    let max_retries = options.max_retries.unwrap_or(inner.settings.max_retries);
    let pending = PendingSend {
        id: id.to_string(),
        recipient: hex::encode(to.to_bytes()),
        envelope: hex::encode(&envelope),
        ack_token: hex::encode(token.to_bytes()),
        attempts: 0,
        max_retries,
    };
    inner.store.put_pending(pending);
    inner.store.flush().await?;
    inner.register_outcome(id);
    Counters::bump(&inner.counters.sent);
    inner.touch();
    let job = Job {
        id,
        to: to.clone(),
        envelope,
        token,
        attempts: 0,
        max_retries,
        started: Instant::now(),
        delivered: false,
        cover: false,
    };
    inner.spawn(run(inner.clone(), job));
    Ok(id)
}

/// Restarts a send saved by an earlier run. A record that no longer parses is dropped.
pub(super) fn resume(inner: &Arc<Inner>, p: PendingSend) {
    let job = (|| -> Result<Job, String> {
        let id = MessageId(from_hex(&p.id).map_err(|e| e.to_string())?);
        let addr = hex::decode(&p.recipient).map_err(|e| e.to_string())?;
        let to = NodeAddress::from_bytes(&addr).map_err(|e| e.to_string())?;
        Ok(Job {
            id,
            to,
            envelope: hex::decode(&p.envelope).map_err(|e| e.to_string())?,
            token: AckToken::from_bytes(from_hex(&p.ack_token).map_err(|e| e.to_string())?),
            attempts: p.attempts,
            max_retries: p.max_retries,
            started: Instant::now(),
            delivered: false,
            cover: false,
        })
    })();
    match job {
        Ok(job) => {
            inner.register_outcome(job.id);
            inner.spawn(run(inner.clone(), job));
        }
        Err(e) => {
            tracing::warn!("dropping an unreadable pending send {}: {e}", p.id);
            inner.store.remove_pending(&p.id);
        }
    }
}

/// Runs a send to its outcome.
async fn run(inner: Arc<Inner>, mut job: Job) {
    super::batch::wait_turn(&inner).await;
    if let Some(to) = inner.recipients.remembered(&job.to, unix_now()) {
        move_to(&inner, &mut job, to);
    }
    // No pause before an attempt to a recipient's new homes: nothing failed.
    let mut pause = true;
    let outcome = loop {
        if job.attempts > job.max_retries {
            break SendOutcome::Failed {
                reason: "out of retries".into(),
                attempts: job.attempts,
            };
        }
        if job.attempts > 0 {
            Counters::bump(&inner.counters.retries);
            if pause {
                let backoff = Duration::from_millis(250 << job.attempts.min(5)).min(MAX_BACKOFF);
                tokio::time::sleep(backoff).await;
            }
        }
        pause = true;
        job.attempts += 1;
        save_attempts(&inner, &job);
        let cooling = super::home::cooling_down(&inner);
        let Some(home) = pick_home(&job.to.homes, job.attempts, &cooling).cloned() else {
            break SendOutcome::Failed {
                reason: "the recipient's address lists no home".into(),
                attempts: job.attempts,
            };
        };
        match attempt(&inner, &mut job, &home).await {
            Attempt::Acked => {
                let latency = job.started.elapsed();
                Counters::bump(&inner.counters.acked);
                inner.counters.record_latency(latency);
                break SendOutcome::Acked {
                    latency,
                    attempts: job.attempts,
                };
            }
            Attempt::QueuedNoAck => {
                break SendOutcome::Queued {
                    attempts: job.attempts,
                };
            }
            Attempt::Moved(to) => {
                move_to(&inner, &mut job, *to);
                pause = false;
            }
            Attempt::Failed(reason) | Attempt::Refused(reason)
                if job.attempts > job.max_retries =>
            {
                break SendOutcome::Failed {
                    reason,
                    attempts: job.attempts,
                };
            }
            Attempt::Failed(reason) | Attempt::Refused(reason) => {
                tracing::debug!("send {} attempt {} failed: {reason}", job.id, job.attempts);
                let cooling = super::home::cooling_down(&inner);
                let all_cooling = job
                    .to
                    .homes
                    .iter()
                    .all(|h| cooling.contains(&h.identity.to_hex()));
                if all_cooling && let Some(to) = follow(&inner, &job).await {
                    move_to(&inner, &mut job, to);
                    pause = false;
                }
            }
        }
    };
    if matches!(outcome, SendOutcome::Failed { .. }) {
        Counters::bump(&inner.counters.failed);
    }
    inner.store.remove_pending(&job.id.to_string());
    if let Err(e) = inner.store.flush().await {
        tracing::warn!("saving state after send {}: {e}", job.id);
    }
    inner.finish_outcome(job.id, outcome);
}

/// The home for attempt `attempt` (from 1): home `attempt - 1` in turn, skipping homes this
/// node saw unreachable recently (`cooling`), so a recipient's address that still lists a
/// dead home does not cost every send a failed attempt and a backoff. When every home is
/// cooling down, the turn's home is tried anyway: the address is all there is.
pub(super) fn pick_home<'a>(
    homes: &'a [PathHop],
    attempt: u32,
    cooling: &[String],
) -> Option<&'a PathHop> {
    let n = homes.len();
    let start = (attempt as usize).saturating_sub(1) % n.max(1);
    let turn = (0..n).map(|i| (start + i) % n);
    let alive = turn.clone().find(|&i| {
        homes
            .get(i)
            .is_some_and(|h| !cooling.contains(&h.identity.to_hex()))
    });
    homes.get(alive.unwrap_or(start))
}

/// The recipient's newer address, if the send may still make an attempt to it (a cover
/// message never moves: it goes to this node's own address).
async fn follow(inner: &Inner, job: &Job) -> Option<NodeAddress> {
    if job.cover || job.attempts > job.max_retries {
        return None;
    }
    inner
        .recipients
        .newer(inner.directory.as_ref(), &job.to, unix_now())
        .await
}

/// Moves the send to `to`, a newer address of its recipient (saved with the next attempt).
fn move_to(inner: &Inner, job: &mut Job, to: NodeAddress) {
    tracing::debug!("send {} follows its recipient to new homes", job.id);
    Counters::bump(&inner.counters.readdressed);
    job.to = to;
}

fn save_attempts(inner: &Inner, job: &Job) {
    inner.store.put_pending(PendingSend {
        id: job.id.to_string(),
        recipient: hex::encode(job.to.to_bytes()),
        envelope: hex::encode(&job.envelope),
        ack_token: hex::encode(job.token.to_bytes()),
        attempts: job.attempts,
        max_retries: job.max_retries,
    });
}

/// One attempt: the pooled circuit to `home` (first attempts only) or a fresh one, the
/// message, then DELIVERY_STATUS and the ACK.
async fn attempt(inner: &Arc<Inner>, job: &mut Job, home: &PathHop) -> Attempt {
    match circuit_for(inner, job, home).await {
        Ok(sc) => attempt_on(inner, job, home, &sc).await,
        Err(why) => Attempt::Failed(why),
    }
}

/// The circuit for an attempt to `home`: the pooled one for a first attempt, else a fresh one
/// that joins the pool. With mixing on, always a fresh one of its own, closed once the
/// attempt is done.
pub(super) async fn circuit_for(
    inner: &Arc<Inner>,
    job: &Job,
    home: &PathHop,
) -> Result<SendCircuit, String> {
    let key = (home.identity.to_bytes(), job.to.identity.to_bytes());
    let mixing = inner.privacy_config().mix_network.enabled;
    if job.attempts == 1
        && !mixing
        && let Some(sc) = pool::pooled(inner, key)
    {
        return Ok(sc);
    }
    let sc = fresh_circuit(inner, home).await?;
    if mixing {
        sc.one_shot();
    } else {
        pool::put(inner, key, sc.clone());
    }
    Ok(sc)
}

/// Sends the job's message on `sc` and waits for DELIVERY_STATUS and the ACK.
pub(super) async fn attempt_on(
    inner: &Arc<Inner>,
    job: &mut Job,
    home: &PathHop,
    sc: &SendCircuit,
) -> Attempt {
    let mut events = sc.register(job.id.0);
    let op = CircOp::Message {
        message_id: job.id.0,
        recipient: job.to.identity.to_bytes(),
        envelope: job.envelope.clone(),
    };
    let result = match sc.circuit().op(op).await {
        Ok(()) => await_ack(inner, job, &mut events).await,
        Err(e) => Attempt::Failed(e.to_string()),
    };
    sc.forget(job.id.0);
    if matches!(result, Attempt::Failed(_)) {
        let key = (home.identity.to_bytes(), job.to.identity.to_bytes());
        pool::evict(inner, key, sc);
    }
    result
}

/// Builds a circuit ending at `home` (3 hops, or the length `proto` draws when mixing), its
/// other hops fresh from the directory.
///
/// When the first hop cannot be dialled, or a relay of the path reports that the next hop is
/// unreachable, that hop (not the reporter) goes into the node-wide cooldown and one more
/// path is tried at once, within the same attempt: the dead relay is then excluded, so a send
/// does not spend a retry and a backoff on a relay the node already knows is gone (at most
/// [`BUILDS_PER_ATTEMPT`] builds per attempt, so retries stay bounded, W5).
async fn fresh_circuit(inner: &Arc<Inner>, home: &PathHop) -> Result<SendCircuit, String> {
    let mut last = String::new();
    for _ in 0..BUILDS_PER_ATTEMPT {
        match build_once(inner, home).await {
            Ok(sc) => return Ok(sc),
            Err(BuildError::Unreachable(why)) => last = why,
            Err(BuildError::Other(why)) => return Err(why),
        }
    }
    Err(last)
}

/// Why one circuit build failed.
enum BuildError {
    /// A relay of the path before the home could not be reached (by the node, or from the
    /// hop before it); it is cooling down now, so another path avoids it.
    Unreachable(String),
    /// Anything else.
    Other(String),
}

/// One build of a path to `home` avoiding every relay in cooldown: 3 hops, or with mixing a
/// length drawn in `min_hops..=max_hops` (shorter, down to 3, when the directory has too few
/// diverse relays, counted in `short_paths`).
async fn build_once(inner: &Arc<Inner>, home: &PathHop) -> Result<SendCircuit, BuildError> {
    let drawn = inner
        .privacy_config()
        .mix_network
        .draw_hops(&mut fresh_rng());
    // Relays that just failed (as a home or a hop) sit out their cooldown.
    let mut exclude = super::home::cooling_down(inner);
    exclude.push(home.identity.to_hex());
    let prefs = Preferences {
        region: None,
        exclude,
    };
    let candidates = match inner.directory.relays(PATH_CANDIDATES, &prefs).await {
        Ok(c) => shuffled(c),
        Err(e) => return Err(BuildError::Other(format!("directory: {e}"))),
    };
    let Some(path) = path_to(&candidates, home, inner.settings.diversity, drawn) else {
        return Err(BuildError::Other(
            "no diverse path to the recipient's home".into(),
        ));
    };
    let link = match inner.link_to(&path[0]).await {
        Ok(l) => l,
        Err(e) => {
            Counters::bump(&inner.counters.unreachable_hops);
            super::home::cool_down(inner, &path[0].identity.to_hex());
            return Err(BuildError::Unreachable(e.to_string()));
        }
    };
    match link.open_circuit(path.clone()).await {
        Ok((circ, events)) => {
            inner.counters.record_path(path.len());
            if path.len() < drawn {
                Counters::bump(&inner.counters.short_paths);
            }
            let first_hop = path[0].identity.to_bytes();
            Ok(SendCircuit::start(inner, circ, events, first_hop))
        }
        Err(ClientError::Unreachable { hop }) if hop < path.len() => {
            // Blame the relay the path could not reach, wherever it is: a dead home is as
            // dead a middle hop for every other send of this node.
            let dead = &path[hop];
            tracing::debug!("relay {} unreachable on a path: cooling down", dead.addr);
            Counters::bump(&inner.counters.unreachable_hops);
            super::home::cool_down(inner, &dead.identity.to_hex());
            let why = format!("relay {} unreachable from the hop before it", dead.addr);
            // Another path cannot help when the home itself is the dead one.
            if hop + 1 < path.len() {
                Err(BuildError::Unreachable(why))
            } else {
                Err(BuildError::Other(why))
            }
        }
        Err(e) => Err(BuildError::Other(e.to_string())),
    }
}

/// Waits for DELIVERY_STATUS, then for an ACK whose token verifies.
async fn await_ack(
    inner: &Inner,
    job: &mut Job,
    events: &mut tokio::sync::mpsc::Receiver<CircEvent>,
) -> Attempt {
    let t = inner.settings.timeouts;
    let mut deadline = tokio::time::Instant::now() + t.delivery;
    let mut queued = false;
    // While queued: when to ask again where the recipient is, and the gap after that.
    let mut refollow = deadline;
    let mut refollow_gap = super::follow::LOOKUP_GAP;
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            () = tokio::time::sleep_until(deadline) => {
                return if queued {
                    Attempt::QueuedNoAck
                } else {
                    Attempt::Failed("timed out waiting for delivery or ACK".into())
                };
            }
            // The recipient may come online at other homes while this copy waits at the old
            // one: look again now and then (backing off, since each lookup tells the
            // directory whom this node writes to), and follow it there.
            () = tokio::time::sleep_until(refollow), if queued => {
                if let Some(to) = follow(inner, job).await {
                    return Attempt::Moved(Box::new(to));
                }
                refollow_gap = (refollow_gap * 2).min(MAX_REFOLLOW_GAP);
                refollow = tokio::time::Instant::now() + refollow_gap;
                continue;
            }
        };
        match ev {
            Some(CircEvent::Proto(ClientEvent::DeliveryStatus { message_id, status }))
                if message_id == job.id.0 =>
            {
                if status == DeliveryStatus::DELIVERED {
                    if !job.delivered && !job.cover {
                        Counters::bump(&inner.counters.delivered);
                    }
                    job.delivered = true;
                    deadline = tokio::time::Instant::now() + t.ack;
                } else if status == DeliveryStatus::QUEUED {
                    if !queued && !job.cover {
                        Counters::bump(&inner.counters.queued);
                    }
                    queued = true;
                    // The recipient may have left this home for good (its drain is over):
                    // follow it rather than wait for it to come back here.
                    if let Some(to) = follow(inner, job).await {
                        return Attempt::Moved(Box::new(to));
                    }
                    deadline = tokio::time::Instant::now() + t.queued_ack;
                    refollow = tokio::time::Instant::now() + refollow_gap;
                } else {
                    return Attempt::Refused(format!("refused by the home relay ({})", status.0));
                }
            }
            Some(CircEvent::Proto(ClientEvent::Moved {
                message_id,
                address,
            })) if message_id == job.id.0 => return take_moved(inner, job, &address),
            Some(CircEvent::Proto(ClientEvent::Ack {
                message_id,
                ack_token,
            })) if message_id == job.id.0 => {
                // Constant-time comparison in AckToken's PartialEq: a relay cannot forge it.
                if AckToken::from_bytes(ack_token) == job.token {
                    return Attempt::Acked;
                }
                tracing::warn!("an ACK for {} did not verify", job.id);
            }
            Some(CircEvent::Proto(_) | CircEvent::Unreachable(_)) => {}
            Some(CircEvent::Closed(why)) => return Attempt::Failed(why),
            None => return Attempt::Failed("link closed".into()),
        }
    }
}

/// A MOVED answer to `job`: the recipient's old home did not keep the message and hands
/// back the address it moved to. Taken only if it replaces the held one (a relay can
/// withhold an address but not forge one); anything else fails the attempt.
fn take_moved(inner: &Inner, job: &Job, address: &[u8]) -> Attempt {
    if job.cover {
        return Attempt::Failed("MOVED for a loop message".into());
    }
    let learned = NodeAddress::from_bytes(address)
        .ok()
        .and_then(|found| inner.recipients.learn(&job.to, found, unix_now()));
    match learned {
        Some(to) => {
            Counters::bump(&inner.counters.moved);
            Attempt::Moved(Box::new(to))
        }
        None => Attempt::Failed("MOVED with an address that does not replace the held one".into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair};

    use super::*;

    fn homes(n: usize) -> Vec<PathHop> {
        let mut rng = fresh_rng();
        (0..n)
            .map(|i| PathHop {
                identity: IdentityKeypair::generate(&mut rng).public(),
                onion_key: EncryptionKeypair::generate(&mut rng).public(),
                link_key: EncryptionKeypair::generate(&mut rng).public(),
                addr: ([127, 0, 0, 1], 9000 + i as u16).into(),
            })
            .collect()
    }

    #[test]
    fn attempts_take_homes_in_turn_and_skip_those_cooling_down() {
        let h = homes(3);
        let id = |i: usize| h[i].identity;
        assert_eq!(pick_home(&h, 1, &[]).unwrap().identity, id(0));
        assert_eq!(pick_home(&h, 2, &[]).unwrap().identity, id(1));
        assert_eq!(pick_home(&h, 4, &[]).unwrap().identity, id(0));
        let dead = vec![id(0).to_hex()];
        assert_eq!(pick_home(&h, 1, &dead).unwrap().identity, id(1));
        assert_eq!(pick_home(&h, 3, &dead).unwrap().identity, id(2));
        assert_eq!(pick_home(&h, 4, &dead).unwrap().identity, id(1));
        // Every home cooling down: the turn's home is tried anyway.
        let all: Vec<String> = (0..3).map(|i| id(i).to_hex()).collect();
        assert_eq!(pick_home(&h, 2, &all).unwrap().identity, id(1));
        assert!(pick_home(&[], 1, &[]).is_none());
    }
}
