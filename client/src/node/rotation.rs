//! Home rotation (spec §5.11): a healthy home is replaced on a schedule, so that no relay
//! stays a node's home long enough to learn its traffic pattern.
//!
//! The opposite of the reference's two flaws. Its rotation clock started at 0, so the first
//! maintenance tick rotated at once (W37): ours starts when the node starts. It closed the
//! old home before looking for a new one: ours is make-before-break. In order:
//!
//! 1. the replacement is chosen by [`home::choose`], the same choice failover uses (network
//!    diversity against the homes that stay, cooldowns, no draining relay);
//! 2. its circuit is built and HOME_AUTHed;
//! 3. the old home leaves the homes, and the address is re-signed without it;
//! 4. the new address goes to the old home in FORWARD_TO (PROTOCOL.md §7.4), so once the
//!    drain is over that relay answers senders of the old address with MOVED and the new
//!    address instead of queuing, and they follow without asking a seed (`super::send`);
//! 5. the old home starts draining, and the new address is published: its circuit stays
//!    open and watched (so senders holding the old address, and the old relay's offline
//!    queue, still reach the node) for [`crate::config::Rotation::drain_grace`]; then the
//!    circuit is destroyed and its link closed unless a send circuit still runs on it.
//!
//! The node therefore never has fewer homes than before a rotation (never below
//! `min_connections`). Rotation runs only in the maintenance task, after its top-up, so one
//! runs at a time and never alongside a failover: it is skipped while a lost home waits for
//! its replacement, and a home lost during a rotation keeps the old home (the new one then
//! stands in for the lost one).
//!
//! The same steps replace a home that a loop-loss alarm blamed ([`leave_blamed`], spec
//! §5.19-§5.20: Loopix loops expose a provider that drops the node's traffic), at most once
//! per `LoopCoverConfig::reaction_gap` (`proto` decides).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ournet_proto::address::NodeAddress;

use super::Inner;
use super::home::{self, Home};
use crate::config::Rotation;
use crate::link::CircOp;
use crate::stats::Counters;

/// Rotates one home if [`due`] says so; on success the rotation clock restarts.
pub(super) async fn rotate_if_due(inner: &Arc<Inner>, last_rotation: &mut Instant) {
    let policy = inner.settings.rotation;
    if !policy.enabled || inner.failover_pending.load(Ordering::SeqCst) {
        return;
    }
    let ages: Vec<(String, Instant)> = inner
        .lock_homes()
        .iter()
        .map(|h| (h.relay.router_id.clone(), h.since))
        .collect();
    if ages.len() < inner.settings.min {
        return;
    }
    let Some(i) = due(Instant::now(), *last_rotation, &ages, &policy) else {
        return;
    };
    let Some((old, _)) = ages.get(i) else {
        return;
    };
    match rotate(inner, old).await {
        Ok(()) => {
            *last_rotation = Instant::now();
            Counters::bump(&inner.counters.rotations);
        }
        Err(why) => tracing::debug!("no home rotation this time: {why}"),
    }
}

/// Replaces the home a loop-loss alarm blamed (`super::loops`; already cooling down, so
/// it is chosen again neither as a home nor as a hop), make-before-break like a scheduled
/// rotation. Waits for the next tick while a lost home waits for its replacement; gives up
/// when the blamed relay is no longer a home.
pub(super) async fn leave_blamed(inner: &Arc<Inner>) {
    let Some(blamed) = inner.loops.take_leave() else {
        return;
    };
    if inner.failover_pending.load(Ordering::SeqCst) {
        inner.loops.ask_leave(blamed);
        return;
    }
    let home = inner
        .lock_homes()
        .iter()
        .find(|h| h.relay.hop.identity.to_bytes() == blamed)
        .map(|h| (h.relay.router_id.clone(), h.relay.hop.addr));
    let Some((old, addr)) = home else {
        tracing::debug!("the home lost loops blamed is no longer a home");
        return;
    };
    match rotate(inner, &old).await {
        Ok(()) => {
            tracing::warn!("left home {addr}: it lost this node's loop messages");
            Counters::bump(&inner.counters.rotations);
            Counters::bump(&inner.counters.loop_alarm_rotations);
        }
        Err(why) => tracing::warn!("could not leave home {addr}, which lost loops: {why}"),
    }
}

/// Which home to rotate now (an index into `homes`, each a router id and when it became a
/// home), if any: the oldest, once it is `max_age` old or the last rotation (at first, the
/// start of the node) is `interval` old.
pub(super) fn due(
    now: Instant,
    last_rotation: Instant,
    homes: &[(String, Instant)],
    policy: &Rotation,
) -> Option<usize> {
    let (i, (_, since)) = homes.iter().enumerate().min_by_key(|(_, (_, s))| *s)?;
    let age = now.saturating_duration_since(*since);
    let quiet = now.saturating_duration_since(last_rotation);
    (age >= policy.max_age || quiet >= policy.interval).then_some(i)
}

/// Replaces home `old_id`, make-before-break (the module doc's steps).
async fn rotate(inner: &Arc<Inner>, old_id: &str) -> Result<(), String> {
    let Some(new) = home::choose(inner, 1, Some(old_id))
        .await
        .into_iter()
        .next()
    else {
        return Err("no relay can replace it".into());
    };
    let (circ, events) = match home::connect_home(inner, &new).await {
        Ok(c) => c,
        Err(e) => {
            home::cool_down(inner, &new.router_id);
            return Err(format!("replacement {} failed: {e}", new.hop.addr));
        }
    };
    tracing::debug!("rotating home {old_id} to {}", new.router_id);
    home::add_home(inner, new, circ, events);
    let old = {
        let mut homes = inner.lock_homes();
        if inner.failover_pending.load(Ordering::SeqCst) {
            None
        } else {
            let i = homes.iter().position(|h| h.relay.router_id == old_id);
            i.map(|i| homes.remove(i))
        }
    };
    let Some(old) = old else {
        // A home was lost meanwhile: the new one stands in for it, the old one stays.
        inner.readdress().await;
        return Err("a home was lost during the rotation: kept the old home".into());
    };
    inner.counters.homes.fetch_sub(1, Ordering::Relaxed);
    let address = inner.resign_address();
    if let Some(address) = &address {
        forward_to(&old, address).await;
    }
    start_drain(inner, old);
    if let Some(address) = &address {
        inner.publish_address(address).await;
    }
    let grace = inner.settings.rotation.drain_grace;
    let id = old_id.to_owned();
    inner.spawn(end_drain(inner.clone(), id, grace));
    Ok(())
}

/// Sends FORWARD_TO with the node's new `address` on the leaving home's circuit, before
/// it drains. A failure only costs senders of the old address a directory lookup.
async fn forward_to(old: &Home, address: &NodeAddress) {
    let op = CircOp::ForwardTo(Box::new(address.clone()));
    if let Err(e) = old.circ.op(op).await {
        tracing::debug!("FORWARD_TO to the leaving home {}: {e}", old.relay.hop.addr);
    }
}

/// Moves `old` to the draining homes: out of the address, still watched and delivering.
fn start_drain(inner: &Inner, old: Home) {
    inner.lock_draining().push(old);
    inner
        .counters
        .draining_homes
        .fetch_add(1, Ordering::Relaxed);
}

/// After `grace`, destroys the drained home's circuit and closes its link if nothing else
/// runs on it (a send circuit through that relay keeps it open).
async fn end_drain(inner: Arc<Inner>, router_id: String, grace: Duration) {
    tokio::time::sleep(grace).await;
    let Some(old) = forget_draining(&inner, &router_id) else {
        return; // died while draining
    };
    tracing::debug!("home {} drained", old.relay.hop.addr);
    old.circ.close().await;
    old.circ.link().close_if_idle().await;
}

/// Takes `router_id` out of the draining homes, if it is there.
pub(super) fn forget_draining(inner: &Inner, router_id: &str) -> Option<Home> {
    let mut draining = inner.lock_draining();
    let i = draining
        .iter()
        .position(|h| h.relay.router_id == router_id)?;
    inner
        .counters
        .draining_homes
        .fetch_sub(1, Ordering::Relaxed);
    Some(draining.remove(i))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, reason = "test code")]

    use super::*;

    fn policy() -> Rotation {
        Rotation {
            enabled: true,
            interval: Duration::from_secs(3600),
            max_age: Duration::from_secs(7200),
            drain_grace: Duration::from_secs(600),
        }
    }

    /// `s` seconds into a made-up timeline (forward from now: an `Instant` cannot go before
    /// the boot of the machine).
    fn at(s: u64) -> Instant {
        Instant::now() + Duration::from_secs(s)
    }

    /// Homes named r0, r1, ... that became homes at the given instants.
    fn homes(since: &[Instant]) -> Vec<(String, Instant)> {
        since
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("r{i}"), *t))
            .collect()
    }

    #[test]
    fn the_first_maintenance_tick_rotates_nothing() {
        // W37: the reference's clock started at 0, so its first tick (60 s) rotated.
        let start = at(10_000);
        let h = homes(&[start, start, start]);
        let first_tick = start + Duration::from_secs(60);
        assert_eq!(due(first_tick, start, &h, &policy()), None);
        let before_interval = start + Duration::from_secs(3599);
        assert_eq!(due(before_interval, start, &h, &policy()), None);
    }

    #[test]
    fn the_oldest_home_rotates_once_the_interval_has_passed() {
        let start = at(10_000);
        let h = homes(&[at(9_990), at(9_970), at(9_980)]);
        let t = start + Duration::from_secs(3600);
        assert_eq!(due(t, start, &h, &policy()), Some(1));
        // Right after a rotation, the clock restarts.
        assert_eq!(due(t, t, &h, &policy()), None);
    }

    #[test]
    fn a_home_past_its_max_age_rotates_whatever_the_interval() {
        let start = at(10_000);
        let h = homes(&[at(3_000), at(9_995)]);
        assert_eq!(due(start, start, &h, &policy()), None);
        let t = at(10_200);
        assert_eq!(due(t, start, &h, &policy()), Some(0));
    }

    #[test]
    fn no_home_nothing_to_rotate() {
        assert_eq!(due(at(99_999), at(0), &[], &policy()), None);
    }
}
