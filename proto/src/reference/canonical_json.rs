//! Python's `json.dumps(value, sort_keys=True)`, byte for byte, for the reference's signatures.
//!
//! The reference signs JSON text, not bytes, so a verifier must re-create the exact text the
//! signer's Python produced (spec §3.2): keys sorted by code point, `ensure_ascii` escaping
//! (`\"`, `\\`, `\b \f \n \r \t`, everything else outside printable ASCII as lowercase
//! `\uXXXX`, astral characters as surrogate pairs), and one of two separator styles. Floats are
//! written as Python's `repr` does.

use serde_json::Value;

use super::ReferenceError;

/// Which separators Python was told to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonStyle {
    /// Python's default, `", "` and `": "`: the E2E envelope and discovery entries sign this.
    Spaced,
    /// `separators=(",", ":")`: registrations, heartbeats and revocations sign this.
    Compact,
}

/// Serializes `value` as Python's `json.dumps(value, sort_keys=True)` would in `style`.
/// One implementation serves the whole crate: this delegates to [`crate::canonical_json`].
///
/// # Errors
/// [`ReferenceError::UnsupportedJsonNumber`] for a NaN or infinite number.
pub fn canonical_json(value: &Value, style: JsonStyle) -> Result<String, ReferenceError> {
    let style = match style {
        JsonStyle::Spaced => crate::canonical_json::Style::Spaced,
        JsonStyle::Compact => crate::canonical_json::Style::Compact,
    };
    crate::canonical_json::to_string(value, style)
        .map_err(|_| ReferenceError::UnsupportedJsonNumber)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sorts_and_escapes_like_python() {
        let v = json!({"b": [1, true, null], "a": "\"\u{7f}é🧅"});
        assert_eq!(
            canonical_json(&v, JsonStyle::Spaced).unwrap(),
            r#"{"a": "\"\u007f\u00e9\ud83e\uddc5", "b": [1, true, null]}"#
        );
        assert_eq!(
            canonical_json(&v, JsonStyle::Compact).unwrap(),
            r#"{"a":"\"\u007f\u00e9\ud83e\uddc5","b":[1,true,null]}"#
        );
        assert_eq!(
            canonical_json(&json!([1.5]), JsonStyle::Compact).unwrap(),
            "[1.5]"
        );
    }
}
