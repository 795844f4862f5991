//! Home relays (spec §5.11-§5.13, PROTOCOL.md §7.4): choosing them with network diversity
//! (W21, W22), the one-hop HOME_AUTH circuit to each, health by real PING round trips (W7),
//! failover with a cooldown, the maintenance task (top-up, rotation through
//! [`super::rotation`]) and cover cells while idle (spec §5.20).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ournet_proto::circuit::ClientEvent;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Inner, recv, rotation, shuffled};
use crate::directory::{Preferences, RelayInfo};
use crate::diversity::{Occupied, pick_diverse};
use crate::error::ClientError;
use crate::link::{CircEvent, CircOp, CircuitHandle};
use crate::stats::Counters;

/// Relays asked of the directory when homes are missing.
const CANDIDATES: usize = 64;

/// One home relay and its authenticated circuit.
#[derive(Debug)]
pub(super) struct Home {
    /// The relay.
    pub(super) relay: RelayInfo,
    /// The HOME_AUTHed one-hop circuit.
    pub(super) circ: CircuitHandle,
    /// The last PING round trip.
    pub(super) rtt: Arc<Mutex<Option<Duration>>>,
    /// When it became a home (rotation replaces the oldest).
    pub(super) since: Instant,
}

/// Brings the homes up to the target, choosing new ones with network diversity, and
/// re-signs and publishes the address if they changed. Returns how many homes there are.
pub(super) async fn ensure_homes(inner: &Arc<Inner>) -> usize {
    let have = inner.lock_homes().len();
    let want = inner.settings.target.saturating_sub(have);
    if want == 0 {
        return have;
    }
    let picks = choose(inner, want, None).await;
    let mut set = JoinSet::new();
    for relay in picks {
        let inner = inner.clone();
        set.spawn(async move {
            let r = connect_home(&inner, &relay).await;
            (relay, r)
        });
    }
    let mut added = false;
    while let Some(joined) = set.join_next().await {
        let Ok((relay, result)) = joined else {
            continue;
        };
        match result {
            Ok((circ, events)) => {
                add_home(inner, relay, circ, events);
                added = true;
            }
            Err(e) => {
                tracing::warn!("home {} failed: {e}", relay.hop.addr);
                cool_down(inner, &relay.router_id);
            }
        }
    }
    if added {
        inner.readdress().await;
    }
    inner.lock_homes().len()
}

/// The one place new homes are chosen, for failover and rotation alike: up to `want` relays
/// from the directory that are not a home, a draining home or cooling down (W22: filtered
/// here too, whatever the directory does with the exclude list), and whose networks clash
/// with no home that stays (W21). `leaving` is the home a rotation replaces: its network
/// may be reused.
pub(super) async fn choose(
    inner: &Arc<Inner>,
    want: usize,
    leaving: Option<&str>,
) -> Vec<RelayInfo> {
    let (mut occupied, mut exclude) = {
        let homes = inner.lock_homes();
        let mut occ = Occupied::default();
        for h in homes
            .iter()
            .filter(|h| Some(h.relay.router_id.as_str()) != leaving)
        {
            occ.take(&h.relay.hop, h.relay.asn);
        }
        let ids: Vec<String> = homes.iter().map(|h| h.relay.router_id.clone()).collect();
        (occ, ids)
    };
    exclude.extend(
        inner
            .lock_draining()
            .iter()
            .map(|h| h.relay.router_id.clone()),
    );
    exclude.extend(cooling_down(inner));
    let prefs = Preferences {
        region: None,
        exclude,
    };
    let mut candidates = match inner.directory.relays(CANDIDATES, &prefs).await {
        Ok(c) => shuffled(c),
        Err(e) => {
            tracing::warn!("no home candidates: {e}");
            return Vec::new();
        }
    };
    candidates.retain(|c| !prefs.exclude.contains(&c.router_id));
    pick_diverse(&candidates, want, &mut occupied, inner.settings.diversity)
}

/// Keeps the homes at target (at once after a home dies, else every maintenance interval),
/// replaces a home loop losses blamed, rotates one when due, and keeps the address fresh (re-signed past half its lifetime).
pub(super) async fn maintain(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    // W37: the rotation clock starts now, not at 0.
    let mut last_rotation = Instant::now();
    loop {
        let mut wait = inner.settings.maintenance;
        if inner.lock_homes().len() < inner.settings.target {
            // Short of homes: try again sooner (as the PING cadence).
            wait = wait.min(inner.settings.timeouts.ping_interval);
        }
        tokio::select! {
            () = inner.homes_changed.notified() => {}
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        if !inner.is_running() {
            return;
        }
        Counters::bump(&inner.counters.maintenance_runs);
        // Cleared before the top-up: a home lost during it sets it again.
        inner.failover_pending.store(false, Ordering::SeqCst);
        ensure_homes(&inner).await;
        rotation::leave_blamed(&inner).await;
        rotation::rotate_if_due(&inner, &mut last_rotation).await;
        if inner.address_is_stale() {
            inner.readdress().await;
        }
    }
}

/// Sends a DROP cell on a random home at the cover schedule while the node is idle.
pub(super) async fn cover(inner: Arc<Inner>) {
    let mut rng = crate::rng::fresh_rng();
    let cover = inner.settings.cover.clone();
    let idle = Duration::from_secs_f64(cover.idle_threshold_seconds.clamp(0.0, 86_400.0));
    while let Some(wait) = cover.next_interval(&mut rng) {
        tokio::time::sleep(wait).await;
        let last = *inner
            .last_activity
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < idle {
            continue;
        }
        let circ = {
            let homes = inner.lock_homes();
            let n = homes.len();
            if n == 0 {
                continue;
            }
            let i = crate::rng::random_bytes::<1>()[0] as usize % n;
            homes[i].circ.clone()
        };
        if circ.op(CircOp::Padding).await.is_ok() {
            Counters::bump(&inner.counters.cover_cells);
        }
    }
}

/// Connects to `relay`, builds the one-hop circuit and proves the node's identity on it.
pub(super) async fn connect_home(
    inner: &Arc<Inner>,
    relay: &RelayInfo,
) -> Result<(CircuitHandle, mpsc::Receiver<CircEvent>), ClientError> {
    let link = inner.link_to(&relay.hop).await?;
    let (circ, mut events) = link.open_circuit(vec![relay.hop.clone()]).await?;
    circ.op(CircOp::HomeAuth(inner.identity.clone())).await?;
    let timeout = inner.settings.timeouts.connect;
    let authed = tokio::time::timeout(timeout, async {
        while let Some(ev) = events.recv().await {
            match ev {
                CircEvent::Proto(ClientEvent::HomeAuthed { queued }) => return Ok(queued),
                CircEvent::Proto(_) | CircEvent::Unreachable(_) => {}
                CircEvent::Closed(why) => return Err(ClientError::Circuit(why)),
            }
        }
        Err(ClientError::LinkClosed)
    })
    .await;
    match authed {
        Ok(Ok(queued)) => {
            tracing::debug!("home {} authenticated, {queued} queued", relay.hop.addr);
            Ok((circ, events))
        }
        Ok(Err(e)) => {
            circ.close().await;
            Err(e)
        }
        Err(_) => {
            circ.close().await;
            Err(ClientError::Circuit("HOME_AUTH timed out".into()))
        }
    }
}

/// Makes an authenticated circuit a home and starts watching it (it is in the address from
/// the next re-signing).
pub(super) fn add_home(
    inner: &Arc<Inner>,
    relay: RelayInfo,
    circ: CircuitHandle,
    events: mpsc::Receiver<CircEvent>,
) {
    let rtt = Arc::new(Mutex::new(None));
    inner.lock_homes().push(Home {
        relay: relay.clone(),
        circ: circ.clone(),
        rtt: rtt.clone(),
        since: Instant::now(),
    });
    inner.counters.homes.fetch_add(1, Ordering::Relaxed);
    inner.spawn(watch_home(inner.clone(), relay, circ, events, rtt));
}

/// Runs one home: hands its messages on, PINGs it, and replaces it when it dies. A home
/// rotated out keeps being run while it drains; its end is then no failover.
async fn watch_home(
    inner: Arc<Inner>,
    relay: RelayInfo,
    circ: CircuitHandle,
    mut events: mpsc::Receiver<CircEvent>,
    rtt: Arc<Mutex<Option<Duration>>>,
) {
    let t = inner.settings.timeouts;
    let mut shutdown = inner.shutdown.subscribe();
    let mut last_answer = Instant::now();
    let mut sent: Option<(u64, Instant)> = None;
    let mut nonce = 0u64;
    let mut next_ping = tokio::time::Instant::now() + t.ping_interval;
    let why = loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(CircEvent::Proto(ClientEvent::Message { message_id, envelope })) => {
                    recv::on_message(&inner, &circ, message_id, &envelope).await;
                }
                Some(CircEvent::Proto(ClientEvent::Pong(n))) => {
                    if let Some((want, at)) = sent
                        && want == n
                    {
                        *rtt.lock().unwrap_or_else(|p| p.into_inner()) = Some(at.elapsed());
                        last_answer = Instant::now();
                        sent = None;
                    }
                }
                Some(CircEvent::Proto(_) | CircEvent::Unreachable(_)) => {}
                Some(CircEvent::Closed(why)) => break why,
                None => break "link closed".to_owned(),
            },
            () = tokio::time::sleep_until(next_ping) => {
                if last_answer.elapsed() > t.ping_timeout {
                    circ.close().await;
                    break "no PONG within the ping timeout".to_owned();
                }
                nonce = nonce.wrapping_add(1);
                if sent.is_none() {
                    sent = Some((nonce, Instant::now()));
                    let _ = circ.op(CircOp::Ping(nonce)).await;
                }
                next_ping = tokio::time::Instant::now() + t.ping_interval.min(t.ping_timeout);
            }
            _ = shutdown.changed() => return,
        }
    };
    if !inner.is_running() {
        return;
    }
    let was_home = {
        let mut homes = inner.lock_homes();
        let n = homes.len();
        homes.retain(|h| h.relay.router_id != relay.router_id);
        homes.len() != n
    };
    if !was_home {
        // Rotated out: its drain ended, or it died while draining.
        rotation::forget_draining(&inner, &relay.router_id);
        return;
    }
    tracing::warn!("home {} lost: {why}", relay.hop.addr);
    inner.failover_pending.store(true, Ordering::SeqCst);
    inner.counters.homes.fetch_sub(1, Ordering::Relaxed);
    Counters::bump(&inner.counters.failovers);
    cool_down(&inner, &relay.router_id);
    inner.readdress().await;
    inner.homes_changed.notify_one();
}

/// Keeps `router_id` out of homes and paths for the cooldown.
pub(super) fn cool_down(inner: &Inner, router_id: &str) {
    let until = Instant::now() + inner.settings.timeouts.home_cooldown;
    inner
        .cooldown
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(router_id.to_owned(), until);
}

/// Router ids still cooling down after a failure (and forgets the rest): not chosen as a
/// home or a hop until then.
pub(super) fn cooling_down(inner: &Inner) -> Vec<String> {
    let now = Instant::now();
    let mut c = inner.cooldown.lock().unwrap_or_else(|p| p.into_inner());
    c.retain(|_, until| *until > now);
    c.keys().cloned().collect()
}
