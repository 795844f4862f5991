//! Outbound HTTP: endpoint probes (`GET /health` must answer 200) and gossip posts.
//!
//! A deliberately small HTTP/1.0 client over a TCP stream (one request per connection, body
//! read to EOF with a cap), so the seed needs no HTTP client stack. Everything runs under a
//! timeout.

use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::policy::ProbeResult;

/// Largest response body read from a peer.
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// Checks that a router endpoint is reachable.
#[async_trait]
pub trait Prober: Send + Sync + std::fmt::Debug + 'static {
    /// `GET http://<endpoint>/health`: 200 within the timeout is reachable.
    async fn probe_detail(&self, endpoint: &str) -> ProbeResult;

    /// `true` if the endpoint is reachable.
    async fn probe(&self, endpoint: &str) -> bool {
        matches!(self.probe_detail(endpoint).await, ProbeResult::Reachable(_))
    }
}

/// The real prober.
#[derive(Debug, Clone, Copy)]
pub struct HttpProber {
    /// Per-probe timeout.
    pub timeout: Duration,
}

#[async_trait]
impl Prober for HttpProber {
    async fn probe_detail(&self, endpoint: &str) -> ProbeResult {
        let started = std::time::Instant::now();
        match request(endpoint, "GET", "/health", None, self.timeout).await {
            Ok((200, _)) => ProbeResult::Reachable(started.elapsed().as_secs_f64() * 1000.0),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => ProbeResult::Timeout,
            _ => ProbeResult::Failed,
        }
    }
}

/// A prober that answers the same for every endpoint (tests, or `probe_endpoints = false`).
#[derive(Debug, Clone, Copy)]
pub struct FixedProber(pub bool);

#[async_trait]
impl Prober for FixedProber {
    async fn probe_detail(&self, _endpoint: &str) -> ProbeResult {
        if self.0 {
            ProbeResult::Reachable(1.0)
        } else {
            ProbeResult::Failed
        }
    }
}

/// One HTTP/1.0 request to `host:port`; returns the status code and body.
///
/// # Errors
/// IO errors, a timeout, or an unparsable status line (as `io::ErrorKind::InvalidData`).
pub async fn request(
    endpoint: &str,
    method: &str,
    path: &str,
    json_body: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<(u16, Vec<u8>)> {
    let fut = async {
        let mut s = TcpStream::connect(endpoint).await?;
        let body = json_body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: {endpoint}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut buf = Vec::new();
        s.take(MAX_RESPONSE_BYTES).read_to_end(&mut buf).await?;
        parse_response(&buf)
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

fn parse_response(buf: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let bad = || std::io::Error::from(std::io::ErrorKind::InvalidData);
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let (head, rest) = buf.split_at(split);
    let line = head.split(|b| *b == b'\n').next().ok_or_else(bad)?;
    let status = std::str::from_utf8(line)
        .ok()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, rest.get(4..).unwrap_or_default().to_vec()))
}
