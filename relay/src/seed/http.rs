//! A small HTTP/1.1 client for the seed API: one request per connection, over hyper's
//! connection-level client, JSON in and out, a body cap and a whole-request timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::SeedError;

/// Largest answer body read from a seed (a `/discover` answer is far smaller).
const MAX_ANSWER_BYTES: usize = 1 << 20;

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
    /// [`SeedError::BadUrl`] for another scheme (no TLS stack in the relay yet), a missing
    /// host, a query or fragment.
    pub fn parse(url: &str) -> Result<Self, SeedError> {
        let bad = |why| SeedError::BadUrl {
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

/// A seed's answer: the status and the JSON body (`Null` when it is not JSON).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Answer {
    /// The HTTP status.
    pub(super) status: u16,
    /// The body.
    pub(super) body: Value,
}

impl Answer {
    /// The answer's `reason` string, or `"-"`.
    pub(super) fn reason(&self) -> &str {
        self.body
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("-")
    }

    /// The answer as a refusal error.
    pub(super) fn refused(&self) -> SeedError {
        SeedError::Refused {
            status: self.status,
            reason: self.reason().to_owned(),
        }
    }
}

/// Sends `method path` with an optional JSON body and reads the answer.
///
/// # Errors
/// [`SeedError::Network`] for connection, protocol or body errors, [`SeedError::Timeout`]
/// when the whole exchange takes longer than `timeout`.
pub(super) async fn call(
    url: &SeedUrl,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<Answer, SeedError> {
    tokio::time::timeout(timeout, exchange(url, method, path, body))
        .await
        .map_err(|_| SeedError::Timeout)?
}

async fn exchange(
    url: &SeedUrl,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Answer, SeedError> {
    let net = |e: &dyn std::fmt::Display| SeedError::Network(e.to_string());
    let bytes = match body {
        Some(v) => serde_json::to_vec(v).map_err(|e| net(&e))?,
        None => Vec::new(),
    };
    let req = Request::builder()
        .method(method)
        .uri(format!("{}{path}", url.base))
        .header(HOST, url.authority())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|e| net(&e))?;
    let stream = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| net(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| net(&e))?;
    // The connection ends when `sender` is dropped (or with the timeout that drops it).
    let driver = tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| net(&e))?;
    let status = resp.status().as_u16();
    let collected = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| net(&*e))?;
    drop(sender);
    driver.abort();
    let body = serde_json::from_slice(&collected.to_bytes()).unwrap_or(Value::Null);
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_urls_parse_and_refuse_what_the_client_cannot_speak() {
        let u = SeedUrl::parse("http://127.0.0.1:8470").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.base.as_str()),
            ("127.0.0.1", 8470, "")
        );
        assert_eq!(u.to_string(), "http://127.0.0.1:8470");
        let u = SeedUrl::parse("seed.example:1/api/").unwrap();
        assert_eq!((u.port, u.base.as_str()), (1, "/api"));
        let u = SeedUrl::parse("http://[::1]:8470").unwrap();
        assert_eq!(
            (u.host.as_str(), u.authority()),
            ("::1", "[::1]:8470".into())
        );
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
