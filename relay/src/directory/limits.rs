//! Per-IP admission: connection counts and a token bucket for circuit creations.
//!
//! The bucket follows Tor's defaults (3 CREATEs per second, burst 90; configurable). IPv6
//! peers are keyed by their /64, since one host usually holds a whole /64 (W27). State exists
//! only for addresses with an open connection, so the map is bounded by the connection cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// A token bucket on the simulated clock.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(now: Instant, burst: f64) -> Self {
        Self {
            tokens: burst,
            last: now,
        }
    }

    /// Refills at `rate` per second up to `burst`, then takes one token if there is one.
    pub fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        false
    }
}

#[derive(Debug)]
struct IpState {
    conns: usize,
    bucket: TokenBucket,
}

/// Per-IP connection counts and CREATE buckets.
#[derive(Debug)]
pub struct IpLimits {
    per_ip: usize,
    rate: f64,
    burst: f64,
    ips: HashMap<IpAddr, IpState>,
}

impl IpLimits {
    /// No connections yet.
    pub fn new(per_ip: usize, rate: f64, burst: f64) -> Self {
        Self {
            per_ip,
            rate,
            burst,
            ips: HashMap::new(),
        }
    }

    /// Admits one more connection from `ip` if it has fewer than the cap.
    pub fn admit(&mut self, now: Instant, ip: IpAddr) -> bool {
        let burst = self.burst;
        let state = self.ips.entry(key(ip)).or_insert_with(|| IpState {
            conns: 0,
            bucket: TokenBucket::full(now, burst),
        });
        if state.conns >= self.per_ip {
            return false;
        }
        state.conns += 1;
        true
    }

    /// A connection from `ip` closed. The state stays while its bucket refills, so closing
    /// and reopening does not reset the rate limit; [`IpLimits::sweep`] removes it later.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(state) = self.ips.get_mut(&key(ip)) {
            state.conns = state.conns.saturating_sub(1);
        }
    }

    /// Whether `ip` may create one more circuit now.
    pub fn allow_create(&mut self, now: Instant, ip: IpAddr) -> bool {
        let (rate, burst) = (self.rate, self.burst);
        self.ips
            .get_mut(&key(ip))
            .is_some_and(|s| s.bucket.take(now, rate, burst))
    }

    /// Forgets addresses with no connection whose bucket has refilled.
    pub fn sweep(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.ips.retain(|_, s| {
            let refill = now.saturating_duration_since(s.bucket.last).as_secs_f64() * rate;
            s.conns > 0 || s.bucket.tokens + refill < burst
        });
    }

    /// Addresses tracked.
    pub fn len(&self) -> usize {
        self.ips.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }
}

fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let now = Instant::now();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let mut l = IpLimits::new(2, 3.0, 90.0);
        assert!(l.admit(now, ip) && l.admit(now, ip));
        assert!(!l.admit(now, ip), "per-IP connection cap");
        assert_eq!((0..200).filter(|_| l.allow_create(now, ip)).count(), 90);
        let later = now + Duration::from_secs(1);
        assert_eq!((0..10).filter(|_| l.allow_create(later, ip)).count(), 3);
        l.release(ip);
        l.release(ip);
        l.sweep(later);
        assert_eq!(l.len(), 1, "kept until the bucket refills");
        l.sweep(later + Duration::from_secs(31));
        assert!(l.is_empty());
    }

    #[test]
    fn ipv6_peers_share_their_slash_64() {
        let now = Instant::now();
        let mut l = IpLimits::new(1, 3.0, 90.0);
        assert!(l.admit(now, "2001:db8::1".parse().unwrap()));
        assert!(!l.admit(now, "2001:db8::2".parse().unwrap()));
        assert!(l.admit(now, "2001:db8:0:1::1".parse().unwrap()));
    }
}
