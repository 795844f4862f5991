//! How the discovery client talks to seeds: the [`SeedTransport`] seam and its HTTP/1.1
//! implementation over hyper's connection-level client (one request per connection, a body
//! cap, a whole-request timeout). It is the one seed HTTP client: the relay's seed session
//! speaks through it too.
//!
//! Tests put a canned transport behind the seam, so every verification and fallback rule runs
//! without a socket.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;

/// Largest answer body read from a seed (a 20-router `/discover` answer is about 40 KiB).
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// One HTTP request to a seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path and query under the seed's base URL, starting with `/`.
    pub path: String,
    /// The body (JSON or address text); empty for `GET`.
    pub body: Vec<u8>,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
}

impl SeedRequest {
    /// A `GET` of `path` (no body).
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: "GET",
            path: path.into(),
            body: Vec::new(),
            content_type: "application/json",
        }
    }

    /// A `POST` of `body` (of type `content_type`) to `path`.
    pub fn post(path: impl Into<String>, body: Vec<u8>, content_type: &'static str) -> Self {
        Self {
            method: "POST",
            path: path.into(),
            body,
            content_type,
        }
    }
}

/// A seed's answer: the status and the raw body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The body, at most [`MAX_ANSWER_BYTES`].
    pub body: Vec<u8>,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The URL is not one this client can speak to.
    #[error("bad seed URL {url:?}: {why}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Connection, protocol or body error (or a body over the cap).
    #[error("network: {0}")]
    Network(String),
    /// The whole exchange took longer than the request timeout.
    #[error("timeout")]
    Timeout,
}

/// Moves one request to a seed and back. The discovery client makes every protocol decision;
/// a transport only moves bytes.
#[async_trait]
pub trait SeedTransport: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `req` to the seed at `url` and reads its answer within `timeout`.
    async fn call(
        &self,
        url: &str,
        req: SeedRequest,
        timeout: Duration,
    ) -> Result<SeedAnswer, TransportError>;
}

/// The real transport: plain HTTP/1.1 over TCP.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpTransport;

#[async_trait]
impl SeedTransport for HttpTransport {
    async fn call(
        &self,
        url: &str,
        req: SeedRequest,
        timeout: Duration,
    ) -> Result<SeedAnswer, TransportError> {
        let url = SeedUrl::parse(url)?;
        tokio::time::timeout(timeout, exchange(&url, req))
            .await
            .map_err(|_| TransportError::Timeout)?
    }
}

/// A seed's base URL: `http://host[:port][/base]`; a bare `host:port` means `http://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedUrl {
    host: String,
    port: u16,
    base: String,
}

impl SeedUrl {
    /// Parses a seed URL.
    ///
    /// # Errors
    /// [`TransportError::BadUrl`] for another scheme (no TLS stack yet: answers are signed,
    /// so TLS would add confidentiality, not authenticity), a missing host or a query.
    pub fn parse(url: &str) -> Result<Self, TransportError> {
        let bad = |why| TransportError::BadUrl {
            url: url.to_owned(),
            why,
        };
        let full = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        let uri: hyper::Uri = full.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// is supported"));
        }
        if uri.query().is_some() {
            return Err(bad("a query is not allowed"));
        }
        let host = uri.host().filter(|h| !h.is_empty()).ok_or(bad("no host"))?;
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: uri.port_u16().unwrap_or(80),
            base: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for SeedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.base)
    }
}

async fn exchange(url: &SeedUrl, req: SeedRequest) -> Result<SeedAnswer, TransportError> {
    let net = |e: &dyn std::fmt::Display| TransportError::Network(e.to_string());
    let request = Request::builder()
        .method(req.method)
        .uri(format!("{}{}", url.base, req.path))
        .header(HOST, url.authority())
        .header(CONTENT_TYPE, req.content_type)
        .body(Full::new(Bytes::from(req.body)))
        .map_err(|e| net(&e))?;
    let stream = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| net(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| net(&e))?;
    // The connection ends when `sender` is dropped (or with the timeout that drops it).
    let driver = tokio::spawn(conn);
    let resp = sender.send_request(request).await.map_err(|e| net(&e))?;
    let status = resp.status().as_u16();
    let collected = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| net(&*e))?;
    drop(sender);
    driver.abort();
    Ok(SeedAnswer {
        status,
        body: collected.to_bytes().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_urls_parse_and_refuse_what_the_client_cannot_speak() {
        let u = SeedUrl::parse("http://127.0.0.1:8470/").unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:8470");
        let u = SeedUrl::parse("[::1]:1/api/").unwrap();
        assert_eq!(u.to_string(), "http://[::1]:1/api");
        for bad in [
            "https://seed.example",
            "ftp://x",
            "http://x/?a=1",
            "http://",
            "",
        ] {
            assert!(SeedUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
