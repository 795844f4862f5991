//! The one mapping from seed errors to HTTP responses.
//!
//! Client faults carry their own status and a JSON body with the reference's `status` and a
//! stable `reason` string (plus optional extra fields such as `detail`); internal errors are a
//! bare 500 and their details go only to the log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::store::StoreError;

/// An error answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum AppError {
    /// The client's fault: a status and a JSON body.
    Client {
        /// HTTP status.
        status: StatusCode,
        /// The body (`status`, `reason`, extras).
        body: Map<String, Value>,
    },
    /// Our fault: logged, answered with a bare 500.
    Internal(String),
}

impl AppError {
    /// A 400 `{status, reason}`.
    pub fn bad(status_word: &str, reason: &str) -> Self {
        Self::with(StatusCode::BAD_REQUEST, status_word, reason)
    }

    /// `{status, reason}` with any HTTP status.
    pub fn with(status: StatusCode, status_word: &str, reason: &str) -> Self {
        let body = match json!({"status": status_word, "reason": reason}) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Self::Client { status, body }
    }

    /// Adds a field to a client error's body.
    #[must_use]
    pub fn field(mut self, k: &str, v: impl Into<Value>) -> Self {
        if let Self::Client { body, .. } = &mut self {
            body.insert(k.to_owned(), v.into());
        }
        self
    }

    /// The `reason` string, for metrics.
    pub fn reason(&self) -> &str {
        match self {
            Self::Client { body, .. } => body.get("reason").and_then(Value::as_str).unwrap_or(""),
            Self::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Client { status, body } => (status, Json(Value::Object(body))).into_response(),
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}
