//! ACK routes: which circuit a delivered message came from, so the recipient's ACK can go
//! back on it (PROTOCOL.md §7.3).
//!
//! Keyed by `(recipient, message id)`, and taken only by a home circuit of that recipient,
//! so nobody else can divert an ACK. Bounded: at most `cap` routes, the oldest evicted first,
//! each expiring after `ttl`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::CircLoc;

type RouteKey = ([u8; 32], [u8; 16]);

/// Where ACKs go back.
#[derive(Debug)]
pub struct AckRoutes {
    cap: usize,
    ttl: Duration,
    routes: HashMap<RouteKey, (CircLoc, Instant)>,
    order: VecDeque<(RouteKey, Instant)>,
}

impl AckRoutes {
    /// No routes yet.
    pub fn new(cap: usize, ttl: Duration) -> Self {
        Self {
            cap,
            ttl,
            routes: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Remembers that `message_id` for `recipient` came from `sender`.
    pub fn insert(
        &mut self,
        now: Instant,
        recipient: [u8; 32],
        message_id: [u8; 16],
        sender: CircLoc,
    ) {
        self.expire(now);
        while self.routes.len() >= self.cap.max(1) {
            let Some((key, at)) = self.order.pop_front() else {
                break;
            };
            if self.routes.get(&key).is_some_and(|(_, a)| *a == at) {
                self.routes.remove(&key);
            }
        }
        self.routes.insert((recipient, message_id), (sender, now));
        self.order.push_back(((recipient, message_id), now));
    }

    /// Takes the route of `message_id` if `acker` is its recipient and it has not expired.
    pub fn take(&mut self, now: Instant, acker: [u8; 32], message_id: [u8; 16]) -> Option<CircLoc> {
        let (loc, at) = self.routes.remove(&(acker, message_id))?;
        (now.saturating_duration_since(at) < self.ttl).then_some(loc)
    }

    /// Drops expired routes.
    pub fn expire(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front().copied() {
            if now.saturating_duration_since(at) < self.ttl {
                break;
            }
            self.order.pop_front();
            if self.routes.get(&key).is_some_and(|(_, a)| *a == at) {
                self.routes.remove(&key);
            }
        }
        // Entries re-inserted under the same key leave stale order entries behind; keep the
        // deque bounded anyway.
        if self.order.len() > 2 * self.cap.max(1) {
            let routes = &self.routes;
            self.order
                .retain(|(k, at)| routes.get(k).is_some_and(|(_, a)| a == at));
        }
    }

    /// Routes held.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no route is held.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::CircKey;

    fn loc(n: u64) -> CircLoc {
        CircLoc {
            worker: 0,
            circ: CircKey(n),
        }
    }

    #[test]
    fn only_the_recipient_takes_a_route_and_the_map_is_bounded() {
        let now = Instant::now();
        let mut r = AckRoutes::new(2, Duration::from_secs(10));
        r.insert(now, [1; 32], [1; 16], loc(1));
        assert_eq!(r.take(now, [2; 32], [1; 16]), None, "another node");
        assert_eq!(r.take(now, [1; 32], [1; 16]), Some(loc(1)));
        assert_eq!(r.take(now, [1; 32], [1; 16]), None, "taken once");
        for i in 0..5u8 {
            r.insert(now, [1; 32], [i; 16], loc(u64::from(i)));
        }
        assert_eq!(r.len(), 2);
        assert_eq!(r.take(now, [1; 32], [4; 16]), Some(loc(4)));
        r.expire(now + Duration::from_secs(10));
        assert!(r.is_empty());
    }
}
