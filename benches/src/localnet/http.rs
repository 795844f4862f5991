//! One-shot HTTP/1.0 requests to the local seed's API and the relays' control planes: small
//! bodies on loopback, one connection per request, so a blocking socket is all it takes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};

/// A request may take this long before it fails.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Larger answers are refused (a `/discover` of a few relays is a few KiB).
const MAX_ANSWER: u64 = 16 << 20;

/// `GET path`; the body of a 200 answer.
///
/// # Errors
/// Connection or IO failure, or a status other than 200.
pub fn get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    request(addr, "GET", path, b"")
}

/// `POST path` with a JSON body; the body of a 200 answer.
///
/// # Errors
/// As [`get`].
pub fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> anyhow::Result<String> {
    request(addr, "POST", path, body.to_string().as_bytes())
}

fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> anyhow::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).with_context(|| format!("{addr}"))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut out = Vec::new();
    s.take(MAX_ANSWER).read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{method} {path}: no HTTP answer"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        bail!("{method} {path}: HTTP {status}: {body}");
    }
    Ok(body.to_owned())
}
