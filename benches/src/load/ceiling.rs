//! The ceiling of one relay core, measured in the same run: what a plain loopback TCP
//! forwarder spends per byte (read from one socket, write to another, nothing else) plus one
//! AES-256-GCM pass (ring) over a cell body. A relay that forwards a cell pays at least this.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ournet_proto::cell::{BODY_LEN, CELL_LEN};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use super::relays::thread_cpu_seconds;

/// The ceiling's parts and the cells per CPU-second they allow.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Ceiling {
    /// Forwarder CPU per byte (read + write on loopback), ns.
    pub(crate) tcp_ns_per_byte: f64,
    /// Bytes the forwarder moved, and its CPU seconds.
    pub(crate) tcp_bytes: u64,
    /// The forwarder thread's CPU seconds.
    pub(crate) tcp_cpu_s: f64,
    /// One ring AES-256-GCM seal of a cell body (1008 bytes), ns of CPU.
    pub(crate) seal_ns_per_cell: f64,
    /// Cells per CPU-second with both: 1e9 / (tcp * 1024 + seal).
    pub(crate) cells_per_cpu_s: f64,
}

/// Measures both parts, `duration` each.
pub(crate) fn measure(duration: Duration) -> anyhow::Result<Ceiling> {
    let (tcp_bytes, tcp_cpu_s) = forwarder(duration)?;
    let seal_ns_per_cell = seal(duration)?;
    let tcp_ns_per_byte = tcp_cpu_s * 1e9 / tcp_bytes.max(1) as f64;
    let cell_ns = tcp_ns_per_byte * CELL_LEN as f64 + seal_ns_per_cell;
    Ok(Ceiling {
        tcp_ns_per_byte,
        tcp_bytes,
        tcp_cpu_s,
        seal_ns_per_cell,
        cells_per_cpu_s: 1e9 / cell_ns,
    })
}

/// A source writes 64 cells per syscall into a forwarder thread, which writes what it reads
/// into a sink. Returns the bytes forwarded and the forwarder thread's CPU seconds.
fn forwarder(duration: Duration) -> anyhow::Result<(u64, f64)> {
    let front = TcpListener::bind("127.0.0.1:0")?;
    let back = TcpListener::bind("127.0.0.1:0")?;
    let (front_addr, back_addr) = (front.local_addr()?, back.local_addr()?);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let stop = &stop;
        let source = s.spawn(move || -> anyhow::Result<()> {
            let mut out = TcpStream::connect(front_addr)?;
            out.set_nodelay(true)?;
            let block = vec![0x3cu8; 64 * CELL_LEN];
            while !stop.load(Ordering::Relaxed) {
                if out.write_all(&block).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let sink = s.spawn(move || -> anyhow::Result<()> {
            let (mut inp, _) = back.accept()?;
            let mut buf = vec![0u8; 64 * 1024];
            while inp.read(&mut buf)? > 0 {}
            Ok(())
        });
        let fwd = s.spawn(move || -> anyhow::Result<(u64, f64)> {
            let (mut inp, _) = front.accept()?;
            let mut out = TcpStream::connect(back_addr)?;
            out.set_nodelay(true)?;
            let mut buf = vec![0u8; 64 * 1024];
            let (t, cpu0) = (Instant::now(), thread_cpu_seconds());
            let mut moved = 0u64;
            while t.elapsed() < duration {
                let n = inp.read(&mut buf)?;
                out.write_all(buf.get(..n).unwrap_or_default())?;
                moved += n as u64;
            }
            let cpu = thread_cpu_seconds() - cpu0;
            stop.store(true, Ordering::Relaxed);
            // Unblock the source: drain what it still writes until it sees the flag.
            inp.set_read_timeout(Some(Duration::from_millis(200)))?;
            while matches!(inp.read(&mut buf), Ok(n) if n > 0) {}
            Ok((moved, cpu))
        });
        let r = fwd
            .join()
            .map_err(|_| anyhow::anyhow!("forwarder panicked"))?;
        stop.store(true, Ordering::Relaxed);
        let _ = source.join();
        let _ = sink.join();
        r
    })
}

/// ns of CPU per ring AES-256-GCM seal of one cell body.
fn seal(duration: Duration) -> anyhow::Result<f64> {
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &[7u8; 32]).map_err(|_| anyhow::anyhow!("ring key"))?,
    );
    let mut body = vec![0u8; BODY_LEN];
    let (t, cpu0) = (Instant::now(), thread_cpu_seconds());
    let mut n = 0u64;
    while t.elapsed() < duration {
        for _ in 0..1000 {
            let mut nonce = [0u8; 12];
            nonce
                .get_mut(4..)
                .context("nonce")?
                .copy_from_slice(&n.to_be_bytes());
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::empty(),
                    &mut body,
                )
                .map_err(|_| anyhow::anyhow!("ring seal"))?;
            let _ = std::hint::black_box(tag);
            n += 1;
        }
    }
    Ok((thread_cpu_seconds() - cpu0) * 1e9 / n.max(1) as f64)
}
