//! Outbound connections: endpoint probes (a real link handshake with the router's published
//! keys) and gossip posts over HTTP.
//!
//! A deliberately small HTTP/1.0 client over a TCP stream (one request per connection, body
//! read to EOF with a cap), so the seed needs no HTTP client stack. Everything runs under a
//! timeout.

use std::io::ErrorKind;
use std::time::Duration;

use ournet_proto::keys::{EncryptionPublicKey, IdentityPublicKey};
use ournet_proto::link::LinkInitiator;
use rand_core::OsRng;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::policy::ProbeResult;

/// Largest response body read from a peer.
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// What a probe checks: an endpoint, and the keys the router published for it.
#[derive(Debug, Clone, Copy)]
pub struct ProbeTarget<'a> {
    /// `host:port` of the router's link listener.
    pub endpoint: &'a str,
    /// The router's identity and link key from its signed descriptor. With them the probe
    /// completes a real link handshake, so a reachable answer proves the endpoint is served
    /// by the holder of the router's keys; without them it only checks that TCP connects.
    pub keys: Option<(IdentityPublicKey, EncryptionPublicKey)>,
}

/// Checks that a router endpoint is reachable.
#[async_trait]
pub trait Prober: Send + Sync + std::fmt::Debug + 'static {
    /// Probes `target`: reachable with the round-trip time, failed, or timed out.
    async fn probe_detail(&self, target: ProbeTarget<'_>) -> ProbeResult;

    /// `true` if the endpoint is reachable.
    async fn probe(&self, target: ProbeTarget<'_>) -> bool {
        matches!(self.probe_detail(target).await, ProbeResult::Reachable(_))
    }
}

/// The real prober: the relay's link handshake (PROTOCOL.md §3.2), client side.
///
/// The reference sends `GET /health` to the router endpoint (spec §5.5), but a relay's
/// endpoint speaks the link protocol, not HTTP: that probe could only fail against a real
/// relay, or pass against an HTTP server that holds none of the router's keys. A Noise NK
/// handshake to the published identity and link key succeeds only at the real router.
#[derive(Debug, Clone, Copy)]
pub struct LinkProber {
    /// Per-probe timeout.
    pub timeout: Duration,
}

#[async_trait]
impl Prober for LinkProber {
    async fn probe_detail(&self, target: ProbeTarget<'_>) -> ProbeResult {
        let started = std::time::Instant::now();
        let fut = async {
            let mut s = TcpStream::connect(target.endpoint).await?;
            match target.keys {
                Some((identity, link_key)) => link_handshake(&mut s, identity, link_key).await,
                None => Ok(()),
            }
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(())) => ProbeResult::Reachable(started.elapsed().as_secs_f64() * 1000.0),
            Ok(Err(_)) => ProbeResult::Failed,
            Err(_) => ProbeResult::Timeout,
        }
    }
}

/// Runs the client side of the link handshake on `s`; `Ok` once the relay proved its keys.
async fn link_handshake(
    s: &mut TcpStream,
    identity: IdentityPublicKey,
    link_key: EncryptionPublicKey,
) -> std::io::Result<()> {
    let invalid =
        |e: &dyn std::fmt::Display| std::io::Error::new(ErrorKind::InvalidData, e.to_string());
    let now = std::time::Instant::now();
    let mut out = Vec::new();
    let mut init = LinkInitiator::start(&mut OsRng, now, None, identity, link_key, &mut out)
        .map_err(|e| invalid(&e))?;
    s.write_all(&out).await?;
    let mut inbuf = Vec::new();
    let mut chunk = [0u8; 2048];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        inbuf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if inbuf.len() > MAX_HANDSHAKE_REPLY {
            return Err(invalid(&"handshake reply too long"));
        }
        if init
            .handle_input(&inbuf)
            .map_err(|e| invalid(&e))?
            .is_some()
        {
            return Ok(());
        }
    }
}

/// The longest link-handshake reply a probe reads.
const MAX_HANDSHAKE_REPLY: usize = 4096;

/// A prober that answers the same for every endpoint (tests, or `probe_endpoints = false`).
#[derive(Debug, Clone, Copy)]
pub struct FixedProber(pub bool);

#[async_trait]
impl Prober for FixedProber {
    async fn probe_detail(&self, _target: ProbeTarget<'_>) -> ProbeResult {
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
        .map_err(|_| std::io::Error::from(ErrorKind::TimedOut))?
}

fn parse_response(buf: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let bad = || std::io::Error::from(ErrorKind::InvalidData);
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

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    fn keys() -> (IdentityPublicKey, EncryptionPublicKey) {
        let mut rng = OsRng;
        (
            ournet_proto::keys::IdentityKeypair::generate(&mut rng).public(),
            ournet_proto::keys::EncryptionKeypair::generate(&mut rng).public(),
        )
    }

    /// A listener that answers every connection with an HTTP 200, as the reference's probe
    /// wanted: it must not pass for a router, because it holds none of the router's keys.
    async fn http_impostor() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nok").await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn an_http_server_without_the_keys_is_not_a_reachable_router() {
        let prober = LinkProber {
            timeout: Duration::from_secs(5),
        };
        let endpoint = http_impostor().await;
        let with_keys = ProbeTarget {
            endpoint: &endpoint,
            keys: Some(keys()),
        };
        assert_eq!(prober.probe_detail(with_keys).await, ProbeResult::Failed);
        let tcp_only = ProbeTarget {
            endpoint: &endpoint,
            keys: None,
        };
        assert!(
            prober.probe(tcp_only).await,
            "without keys, TCP connect is the test"
        );
    }

    #[tokio::test]
    async fn a_closed_port_fails() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = l.local_addr().expect("addr").to_string();
        drop(l);
        let prober = LinkProber {
            timeout: Duration::from_secs(5),
        };
        let target = ProbeTarget {
            endpoint: &endpoint,
            keys: Some(keys()),
        };
        assert_eq!(prober.probe_detail(target).await, ProbeResult::Failed);
    }
}
