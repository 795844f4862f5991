//! A recording TCP tap: forwards connections to a target unchanged and logs, per connection,
//! when each chunk of the upstream direction (connecting side to target) was read and how
//! long it was. Tests use it to see what a client's link looks like on the wire.
//!
//! The target can be set after the tap is bound, so a relay can advertise or be listed at
//! the tap's address before its own port is known.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Chunks kept per connection; past it the log stops growing (a test reads far fewer).
const MAX_CHUNKS: usize = 1 << 20;

/// One tapped connection: the upstream chunks as read, `(when, bytes)`.
pub type ChunkLog = Arc<Mutex<Vec<(Instant, usize)>>>;

/// A tap; its threads live until the test process ends.
#[derive(Debug, Clone)]
pub struct Tap {
    /// Where it listens.
    pub addr: SocketAddr,
    target: Arc<OnceLock<SocketAddr>>,
    conns: Arc<Mutex<Vec<ChunkLog>>>,
}

impl Tap {
    /// Binds on `ip` (port 0) and starts accepting; connections wait for [`Tap::forward_to`].
    pub fn bind(ip: &str) -> Self {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let tap = Self {
            addr: listener.local_addr().unwrap(),
            target: Arc::new(OnceLock::new()),
            conns: Arc::new(Mutex::new(Vec::new())),
        };
        let t = tap.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let log = ChunkLog::default();
                t.conns.lock().unwrap().push(log.clone());
                let target = t.target.clone();
                std::thread::spawn(move || {
                    let target = *target.wait();
                    if let Ok(server) = TcpStream::connect(target) {
                        pipe(client, server, &log);
                    }
                });
            }
        });
        tap
    }

    /// Sets where connections go (once).
    pub fn forward_to(&self, target: SocketAddr) {
        let _ = self.target.set(target);
    }

    /// The upstream logs of the connections accepted so far, in accept order.
    pub fn connections(&self) -> Vec<ChunkLog> {
        self.conns.lock().unwrap().clone()
    }
}

fn pipe(client: TcpStream, server: TcpStream, log: &ChunkLog) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let (mut s_read, mut c_write) = (server, client);
    let down = std::thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match c_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut l = log.lock().unwrap();
            if l.len() < MAX_CHUNKS {
                l.push((Instant::now(), n));
            }
        }
        if s_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = s_write.shutdown(Shutdown::Write);
    let _ = down.join();
}
