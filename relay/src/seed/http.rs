//! The relay's side of the seed API: JSON requests and answers over the one seed HTTP client,
//! `ournet_client::discovery::http` (one request per connection, a body cap, a whole-request
//! timeout), which the discovery client uses too.

use std::time::Duration;

use ournet_client::discovery::http::{HttpTransport, SeedRequest, SeedTransport, TransportError};
use serde_json::Value;

use super::SeedError;

pub use ournet_client::discovery::http::SeedUrl;

impl From<TransportError> for SeedError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::BadUrl { url, why } => Self::BadUrl { url, why },
            TransportError::Timeout => Self::Timeout,
            TransportError::Network(why) => Self::Network(why),
            other => Self::Network(other.to_string()),
        }
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
    method: &'static str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<Answer, SeedError> {
    let body = match body {
        Some(v) => serde_json::to_vec(v).map_err(|e| SeedError::Network(e.to_string()))?,
        None => Vec::new(),
    };
    let req = SeedRequest {
        method,
        path: path.to_owned(),
        body,
        content_type: "application/json",
    };
    let answer = HttpTransport.call(&url.to_string(), req, timeout).await?;
    Ok(Answer {
        status: answer.status,
        body: serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
    })
}
