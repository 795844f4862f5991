//! A TCP fault proxy for tests over a network that `netem` cannot shape (this kernel has no
//! `netem` qdisc): it adds latency, holds back a fraction of segments, stalls streams and
//! resets connections, each with a seeded RNG so a failing run can be replayed.
//!
//! Every accepted connection gets a connection to the target and two pumps (one per
//! direction). A pump reads what arrived, stamps it with the time it may leave (now + the
//! one-way delay, plus `hold` for the chunks chosen to be held back), and a writer thread
//! sends each chunk at its time, in order, as TCP would deliver a stream whose segment was
//! retransmitted. Stalls pause a direction; resets close both sockets with `SO_LINGER` 0,
//! so both ends see a connection reset.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// What the proxy does to traffic.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Added to each direction (20 ms RTT = 10 ms here).
    pub one_way_delay: Duration,
    /// Fraction (0-1) of chunks held back by `hold`.
    pub hold_fraction: f64,
    /// How long a held-back chunk (and what follows it) waits.
    pub hold: Duration,
    /// Fraction (0-1) of chunks after which the direction stalls for `stall`.
    pub stall_fraction: f64,
    /// Length of a stall.
    pub stall: Duration,
    /// Fraction (0-1) of connections reset after a random number of chunks (1-`reset_within`).
    pub reset_fraction: f64,
    /// Resets happen within this many chunks of either direction.
    pub reset_within: u64,
    /// RNG seed.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            one_way_delay: Duration::ZERO,
            hold_fraction: 0.0,
            hold: Duration::from_millis(200),
            stall_fraction: 0.0,
            stall: Duration::from_millis(500),
            reset_fraction: 0.0,
            reset_within: 200,
            seed: 1,
        }
    }
}

/// Counters of what the proxy did.
#[derive(Debug, Default)]
pub struct FaultStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Bytes forwarded (both directions).
    pub bytes: AtomicU64,
    /// Chunks held back.
    pub held: AtomicU64,
    /// Stalls.
    pub stalls: AtomicU64,
    /// Connections reset.
    pub resets: AtomicU64,
}

/// Runs a proxy from `listener` to `target` until the process ends.
pub fn serve(listener: &TcpListener, target: SocketAddr, faults: &Faults, stats: &Arc<FaultStats>) {
    let mut rng = ChaCha20Rng::seed_from_u64(faults.seed);
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let seed = rng.next_u64();
        let (faults, stats) = (faults.clone(), stats.clone());
        std::thread::spawn(move || {
            if let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) {
                proxy(client, server, &faults, seed, &stats);
            }
        });
    }
}

fn chance(rng: &mut ChaCha20Rng, fraction: f64) -> bool {
    (rng.next_u64() as f64 / u64::MAX as f64) < fraction
}

/// Proxies one connection.
fn proxy(a: TcpStream, b: TcpStream, faults: &Faults, seed: u64, stats: &Arc<FaultStats>) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let reset_at = chance(&mut rng, faults.reset_fraction)
        .then(|| 1 + rng.next_u64() % faults.reset_within.max(1));
    let dead = Arc::new(AtomicBool::new(false));
    let chunks = Arc::new(AtomicU64::new(0));
    let pumps: Vec<_> = [
        (a.try_clone(), b.try_clone()),
        (b.try_clone(), a.try_clone()),
    ]
    .into_iter()
    .enumerate()
    .filter_map(|(i, (from, to))| Some((i, from.ok()?, to.ok()?)))
    .map(|(i, from, to)| {
        let ctx = Pump {
            faults: faults.clone(),
            rng: ChaCha20Rng::seed_from_u64(seed ^ (i as u64 + 1)),
            stats: stats.clone(),
            dead: dead.clone(),
            chunks: chunks.clone(),
            reset_at,
        };
        std::thread::spawn(move || ctx.run(from, to))
    })
    .collect();
    for p in pumps {
        let _ = p.join();
    }
    if dead.load(Ordering::Relaxed) {
        for s in [&a, &b] {
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
    }
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}

struct Pump {
    faults: Faults,
    rng: ChaCha20Rng,
    stats: Arc<FaultStats>,
    dead: Arc<AtomicBool>,
    chunks: Arc<AtomicU64>,
    reset_at: Option<u64>,
}

impl Pump {
    fn run(mut self, mut from: TcpStream, to: TcpStream) {
        let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
        let writer = {
            let (dead, stats) = (self.dead.clone(), self.stats.clone());
            std::thread::spawn(move || write_at(&rx, to, &dead, &stats))
        };
        let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
        let mut buf = vec![0u8; 64 * 1024];
        let mut not_before = Instant::now();
        while !self.dead.load(Ordering::Relaxed) {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(_) => break,
            };
            let count = self.chunks.fetch_add(1, Ordering::Relaxed) + 1;
            if self.reset_at.is_some_and(|at| count >= at) {
                self.stats.resets.fetch_add(1, Ordering::Relaxed);
                self.dead.store(true, Ordering::Relaxed);
                break;
            }
            let mut at = (Instant::now() + self.faults.one_way_delay).max(not_before);
            if chance(&mut self.rng, self.faults.hold_fraction) {
                self.stats.held.fetch_add(1, Ordering::Relaxed);
                at += self.faults.hold;
            }
            if chance(&mut self.rng, self.faults.stall_fraction) {
                self.stats.stalls.fetch_add(1, Ordering::Relaxed);
                at += self.faults.stall;
            }
            not_before = at;
            if tx
                .send((at, buf.get(..n).unwrap_or_default().to_vec()))
                .is_err()
            {
                break;
            }
        }
        drop(tx);
        let _ = writer.join();
        let _ = from.shutdown(Shutdown::Read);
    }
}

fn write_at(
    rx: &mpsc::Receiver<(Instant, Vec<u8>)>,
    mut to: TcpStream,
    dead: &AtomicBool,
    stats: &FaultStats,
) {
    for (at, chunk) in rx {
        let wait = at.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        if dead.load(Ordering::Relaxed) || to.write_all(&chunk).is_err() {
            dead.store(true, Ordering::Relaxed);
            return;
        }
        stats.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let mut w = s;
                    let _ = std::io::copy(&mut r, &mut w);
                });
            }
        });
        addr
    }

    fn start(faults: Faults) -> (SocketAddr, Arc<FaultStats>) {
        let target = echo_server();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stats = Arc::new(FaultStats::default());
        let s = stats.clone();
        std::thread::spawn(move || serve(&l, target, &faults, &s));
        (addr, stats)
    }

    #[test]
    fn delay_and_holds_keep_the_stream_intact_and_in_order() {
        let faults = Faults {
            one_way_delay: Duration::from_millis(10),
            hold_fraction: 0.2,
            hold: Duration::from_millis(30),
            ..Faults::default()
        };
        let (addr, stats) = start(faults);
        let mut s = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut back = vec![0u8; data.len()];
        let mut r = s.try_clone().unwrap();
        let reader = std::thread::spawn(move || {
            r.read_exact(&mut back).unwrap();
            back
        });
        for chunk in data.chunks(1000) {
            s.write_all(chunk).unwrap();
        }
        assert_eq!(reader.join().unwrap(), data);
        assert!(
            started.elapsed() >= Duration::from_millis(20),
            "the RTT is added"
        );
        assert!(stats.held.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn a_reset_connection_is_seen_as_reset_or_closed_by_the_client() {
        let faults = Faults {
            reset_fraction: 1.0,
            reset_within: 1,
            ..Faults::default()
        };
        let (addr, stats) = start(faults);
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(b"hello");
        let mut buf = [0u8; 16];
        let got = s.read(&mut buf);
        assert!(matches!(got, Ok(0) | Err(_)), "{got:?}");
        assert_eq!(stats.resets.load(Ordering::Relaxed), 1);
    }
}
