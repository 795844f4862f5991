//! Python's `json.dumps(value, sort_keys=True)`, byte for byte, for the reference's signatures.
//!
//! The reference signs JSON text, not bytes, so a verifier must re-create the exact text the
//! signer's Python produced (spec §3.2): keys sorted by code point, `ensure_ascii` escaping
//! (`\"`, `\\`, `\b \f \n \r \t`, everything else outside printable ASCII as lowercase
//! `\uXXXX`, astral characters as surrogate pairs), and one of two separator styles. Floats are
//! refused: Python's float `repr` is a format of its own that no signature here needs.

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

impl JsonStyle {
    fn separators(self) -> (&'static str, &'static str) {
        match self {
            Self::Spaced => (", ", ": "),
            Self::Compact => (",", ":"),
        }
    }
}

/// Serializes `value` as Python's `json.dumps(value, sort_keys=True)` would in `style`.
///
/// # Errors
/// [`ReferenceError::UnsupportedJsonNumber`] if `value` holds a number that is not an integer.
pub fn canonical_json(value: &Value, style: JsonStyle) -> Result<String, ReferenceError> {
    let mut out = String::new();
    write_value(&mut out, value, style.separators())?;
    Ok(out)
}

fn write_value(
    out: &mut String,
    value: &Value,
    (item_sep, key_sep): (&str, &str),
) -> Result<(), ReferenceError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) if n.is_i64() || n.is_u64() => out.push_str(&n.to_string()),
        Value::Number(_) => return Err(ReferenceError::UnsupportedJsonNumber),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                write_value(out, item, (item_sep, key_sep))?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Rust orders `str` by UTF-8 bytes, which is code-point order, as Python sorts.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                write_string(out, key);
                out.push_str(key_sep);
                write_value(out, item, (item_sep, key_sep))?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// A JSON string with Python's `ensure_ascii=True` escaping.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
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
            canonical_json(&json!([1.5]), JsonStyle::Compact).unwrap_err(),
            ReferenceError::UnsupportedJsonNumber
        );
    }
}
