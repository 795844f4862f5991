//! Canonical JSON: the exact bytes that seeds, routers and the reference package sign.
//!
//! The reference signs `json.dumps(obj, sort_keys=True)` in two styles (spec §3.2 and the
//! conventions at the top of the spec):
//!
//! * **compact**, separators `,` and `:` (registration bodies, heartbeats, reports,
//!   revocations, and every signature of ours);
//! * **spaced**, separators `, ` and `: ` (Python's default; the discovery-entry signature the
//!   reference `DiscoveryClient` checks, spec W1).
//!
//! Both sort object keys by code point, escape every non-ASCII character as `\uXXXX` (lowercase
//! hex, surrogate pairs above U+FFFF: Python's `ensure_ascii`), and print floats as Python's
//! `repr` does (shortest round-trip digits, fixed notation for decimal exponents in `-4..16`,
//! otherwise `1e-05` / `1.5e+16`; an integral float keeps `.0`). Integers print as integers, so
//! `100` and `100.0` stay different, as they are in Python.
//!
//! Invariant: the output for a given [`serde_json::Value`] is a pure function of it; NaN and the
//! infinities (which Python would print as the non-JSON `NaN`/`Infinity`) are refused.

use std::fmt::Write as _;

use serde_json::Value;

/// Errors from canonical serialization.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    /// A float was NaN or infinite; it has no JSON form.
    #[error("non-finite number has no canonical JSON form")]
    NonFinite,
}

/// Which separators to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `,` and `:`: `json.dumps(v, sort_keys=True, separators=(",", ":"))`.
    Compact,
    /// `, ` and `: `: `json.dumps(v, sort_keys=True)`.
    Spaced,
}

/// Compact canonical JSON of `v` (sorted keys, `,`/`:`).
///
/// # Errors
/// [`CanonicalError::NonFinite`] for a NaN or infinite float.
pub fn to_compact(v: &Value) -> Result<String, CanonicalError> {
    to_string(v, Style::Compact)
}

/// Spaced canonical JSON of `v` (sorted keys, `, `/`: `), Python's default `json.dumps`.
///
/// # Errors
/// [`CanonicalError::NonFinite`] for a NaN or infinite float.
pub fn to_spaced(v: &Value) -> Result<String, CanonicalError> {
    to_string(v, Style::Spaced)
}

/// Canonical JSON of `v` in `style`.
///
/// # Errors
/// [`CanonicalError::NonFinite`] for a NaN or infinite float.
pub fn to_string(v: &Value, style: Style) -> Result<String, CanonicalError> {
    let mut out = String::new();
    write_value(&mut out, v, style)?;
    Ok(out)
}

/// Python's `repr(float)` of `f`: shortest round-trip digits, fixed notation when the decimal
/// exponent is in `-4..16`, else scientific with a signed two-digit-minimum exponent.
///
/// # Errors
/// [`CanonicalError::NonFinite`] for NaN and the infinities.
pub fn python_float_repr(f: f64) -> Result<String, CanonicalError> {
    if !f.is_finite() {
        return Err(CanonicalError::NonFinite);
    }
    if f == 0.0 {
        return Ok(if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned());
    }
    // Rust's `{:e}` prints the shortest round-trip digits: `d[.ddd]e<exp>`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').ok_or(CanonicalError::NonFinite)?;
    let exp: i32 = exp.parse().map_err(|_| CanonicalError::NonFinite)?;
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if f.is_sign_negative() {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        out.push_str(&fixed_notation(&digits, exp));
    } else {
        out.push_str(&scientific_notation(&digits, exp));
    }
    Ok(out)
}

fn fixed_notation(digits: &str, exp: i32) -> String {
    let n = digits.len();
    if exp < 0 {
        let zeros = usize::try_from(-exp - 1).unwrap_or(0);
        return format!("0.{}{digits}", "0".repeat(zeros));
    }
    let int_len = usize::try_from(exp).unwrap_or(0) + 1;
    if int_len >= n {
        format!("{digits}{}.0", "0".repeat(int_len - n))
    } else {
        let (int_part, frac) = digits.split_at(int_len);
        format!("{int_part}.{frac}")
    }
}

fn scientific_notation(digits: &str, exp: i32) -> String {
    let (first, rest) = digits.split_at(1.min(digits.len()));
    let sign = if exp < 0 { '-' } else { '+' };
    let mantissa = if rest.is_empty() {
        first.to_owned()
    } else {
        format!("{first}.{rest}")
    };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

fn write_value(out: &mut String, v: &Value, style: Style) -> Result<(), CanonicalError> {
    let (item_sep, key_sep) = match style {
        Style::Compact => (",", ":"),
        Style::Spaced => (", ", ": "),
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                write_value(out, item, style)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                write_string(out, k);
                out.push_str(key_sep);
                write_value(out, item, style)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_number(out: &mut String, n: &serde_json::Number) -> Result<(), CanonicalError> {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else {
        let f = n.as_f64().ok_or(CanonicalError::NonFinite)?;
        out.push_str(&python_float_repr(f)?);
    }
    Ok(())
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            // Python's `ensure_ascii` passes only ' '..='~' through; DEL is escaped too.
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
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
    fn float_repr_matches_python() {
        // Expected strings are Python 3.11 `repr(float(x))`.
        let cases: &[(f64, &str)] = &[
            (1_706_789_012.345, "1706789012.345"),
            (100.0, "100.0"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (9_999_999_999_999_998.0, "9999999999999998.0"),
            (-2.5, "-2.5"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (123_456.789e-20, "1.23456789e-15"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.30000000000000004, "0.30000000000000004"),
        ];
        for (f, want) in cases {
            assert_eq!(python_float_repr(*f).unwrap(), *want, "{f}");
        }
        assert_eq!(python_float_repr(f64::NAN), Err(CanonicalError::NonFinite));
        assert_eq!(
            python_float_repr(f64::INFINITY),
            Err(CanonicalError::NonFinite)
        );
    }

    #[test]
    fn compact_and_spaced_match_python_json_dumps() {
        let v = json!({
            "b": [1, 2.0, "x"],
            "a": {"z": null, "y": true, "é": "ü\u{1F600}\n\"\\\u{1}\u{7f}"},
            "c": [],
            "d": {},
            "e": -3,
        });
        // json.dumps(v, sort_keys=True, separators=(",", ":")) in Python 3.11:
        let compact = concat!(
            r#"{"a":{"y":true,"z":null,"\u00e9":"\u00fc\ud83d\ude00\n\"\\\u0001\u007f"},"#,
            r#""b":[1,2.0,"x"],"c":[],"d":{},"e":-3}"#
        );
        assert_eq!(to_compact(&v).unwrap(), compact);
        let spaced = concat!(
            r#"{"a": {"y": true, "z": null, "\u00e9": "\u00fc\ud83d\ude00\n\"\\\u0001\u007f"}, "#,
            r#""b": [1, 2.0, "x"], "c": [], "d": {}, "e": -3}"#
        );
        assert_eq!(to_spaced(&v).unwrap(), spaced);
    }

    #[test]
    fn parsed_floats_round_trip_exactly() {
        // Needs serde_json's `float_roundtrip`: the default parser can be 1 ULP off, which
        // changes the repr and breaks every signature over a timestamp.
        for i in 0..20_000u32 {
            let f = 1_764_047_712.0 + f64::from(i) * 0.000_123_456_7;
            let text = serde_json::to_string(&f).unwrap();
            let back: f64 = serde_json::from_str(&text).unwrap();
            assert_eq!(back.to_bits(), f.to_bits(), "{text}");
        }
    }

    #[test]
    fn parsed_floats_keep_their_python_form() {
        let v: Value = serde_json::from_str(r#"{"t": 1e2, "u": 1.0, "i": 7}"#).unwrap();
        assert_eq!(to_compact(&v).unwrap(), r#"{"i":7,"t":100.0,"u":1.0}"#);
    }
}
