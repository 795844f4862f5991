//! `ournet-fault-proxy LISTEN=TARGET... [--delay-ms N] [--hold-pct P] [--hold-ms N]
//! [--stall-pct P] [--stall-ms N] [--reset-pct P] [--reset-within N] [--seed N]`
//!
//! The test harness's fault proxy ([`ournet_tests::fault`]) as a process, so tests can run it
//! inside a network namespace. Prints `ready` on stdout once every listener is bound, and
//! each second a JSON line of counters on stderr.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test tool's output"
)]

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ournet_tests::fault::{FaultStats, Faults, serve};

fn main() {
    let mut faults = Faults::default();
    let mut maps: Vec<(SocketAddr, SocketAddr)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut num = |name: &str| -> f64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match arg.as_str() {
            "--delay-ms" => faults.one_way_delay = ms(num("--delay-ms")),
            "--hold-pct" => faults.hold_fraction = num("--hold-pct") / 100.0,
            "--hold-ms" => faults.hold = ms(num("--hold-ms")),
            "--stall-pct" => faults.stall_fraction = num("--stall-pct") / 100.0,
            "--stall-ms" => faults.stall = ms(num("--stall-ms")),
            "--reset-pct" => faults.reset_fraction = num("--reset-pct") / 100.0,
            "--reset-within" => faults.reset_within = num("--reset-within") as u64,
            "--seed" => faults.seed = num("--seed") as u64,
            map => {
                let (l, t) = map.split_once('=').expect("LISTEN=TARGET");
                maps.push((
                    l.parse().expect("listen address"),
                    t.parse().expect("target"),
                ));
            }
        }
    }
    let stats = Arc::new(FaultStats::default());
    let listeners: Vec<_> = maps
        .iter()
        .map(|(l, t)| (TcpListener::bind(l).expect("bind"), *t))
        .collect();
    for (i, (listener, target)) in listeners.into_iter().enumerate() {
        let mut f = faults.clone();
        f.seed = faults.seed.wrapping_add(i as u64);
        let s = stats.clone();
        std::thread::spawn(move || serve(&listener, target, &f, &s));
    }
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        eprintln!(
            "{{\"connections\":{},\"bytes\":{},\"held\":{},\"stalls\":{},\"resets\":{}}}",
            get(&stats.connections),
            get(&stats.bytes),
            get(&stats.held),
            get(&stats.stalls),
            get(&stats.resets)
        );
    }
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1000.0)
}
