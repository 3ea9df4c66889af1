//! fastjson-compatible JSON helpers for the broker's metadata and client bodies: the string and
//! number writers used by the hand-written encoders (fastjson key order, unquoted integer keys
//! where Java writes them), the tolerant-reader pre-pass that quotes fastjson's bare integer
//! object keys (PROTOCOL.md §4.1 point 3), and lenient accessors over `serde_json::Value` that
//! accept what third-party clients send (numbers as strings, booleans as strings, nulls;
//! Appendix Q).
//!
//! Owns no state. Everything here is total: no panics on any input.
//!
//! The writers and the key-quoting pass mirror `ferromq_namesrv::fastjson` (whose writers are
//! crate-private); they are repeated here so that `core`'s metadata does not reach into the name
//! server's internals.

use std::borrow::Cow;

use serde_json::Value;

/// Appends `s` as a JSON string literal (with the quotes), escaping exactly what serde_json
/// escapes, so the output equals `serde_json::to_string(s)` byte for byte.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0C}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => push_u_escape(out, c as u16),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

fn push_u_escape(out: &mut Vec<u8>, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12u16, 8, 4, 0] {
        let nibble = usize::from((unit >> shift) & 0xF);
        // `nibble` is at most 15, so `get` always succeeds; the fallback is unreachable.
        out.push(HEX.get(nibble).copied().unwrap_or(b'0'));
    }
}

/// Appends `"name":` (no leading comma).
pub(crate) fn write_key(out: &mut Vec<u8>, name: &str) {
    write_str(out, name);
    out.push(b':');
}

/// Appends a number (or anything `Display` that is valid JSON) in decimal.
pub(crate) fn write_num(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    out.extend_from_slice(n.to_string().as_bytes());
}

/// Appends `true` or `false`.
pub(crate) fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// Appends a JSON array of strings.
pub(crate) fn write_str_array<'a>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'a String>) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, item);
    }
    out.push(b']');
}

/// Appends a `Map<String,String>` as a JSON object (keys in the map's order; callers pass a
/// `BTreeMap`, which is fastjson's sorted order).
pub(crate) fn write_str_map<'a>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = (&'a String, &'a String)>,
) {
    out.push(b'{');
    for (i, (k, v)) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(out, k);
        write_str(out, v);
    }
    out.push(b'}');
}

/// Rewrites bare integer object keys (`{0:"a",-1:"b"}`) into quoted keys (`{"0":"a","-1":"b"}`)
/// and leaves everything else untouched, including the contents of strings.
///
/// A token is treated as a key when it follows `{` or `,` (after optional whitespace), consists
/// of an optional `-` and ASCII digits, and is followed (after optional whitespace) by `:`.
/// Inside arrays a number after `,` is followed by `,` or `]`, never `:`, so array elements are
/// not touched. Returns the input borrowed when nothing needed quoting. Never fails: malformed
/// input comes out as malformed and serde_json reports it.
pub fn quote_bare_int_keys(input: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut escaped = false;
    // True right after `{` or `,` outside strings (whitespace does not reset it).
    let mut key_position = false;
    let mut i = 0usize;
    while let Some(&byte) = input.get(i) {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            if let Some(o) = out.as_mut() {
                o.push(byte);
            }
            i += 1;
            continue;
        }
        if key_position && (byte == b'-' || byte.is_ascii_digit()) {
            let start = i;
            let mut end = i + 1;
            while input.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            let mut after = end;
            while input.get(after).is_some_and(u8::is_ascii_whitespace) {
                after += 1;
            }
            let token = input.get(start..end).unwrap_or_default();
            let is_int = token.iter().any(u8::is_ascii_digit);
            if is_int && input.get(after) == Some(&b':') {
                let o = out.get_or_insert_with(|| {
                    let mut v = Vec::with_capacity(input.len() + 64);
                    v.extend_from_slice(input.get(..start).unwrap_or_default());
                    v
                });
                o.push(b'"');
                o.extend_from_slice(token);
                o.push(b'"');
                key_position = false;
                i = end;
                continue;
            }
        }
        match byte {
            b'"' => {
                in_string = true;
                key_position = false;
            }
            b'{' | b',' => key_position = true,
            b if b.is_ascii_whitespace() => {}
            _ => key_position = false,
        }
        if let Some(o) = out.as_mut() {
            o.push(byte);
        }
        i += 1;
    }
    match out {
        Some(v) => Cow::Owned(v),
        None => Cow::Borrowed(input),
    }
}

/// Parses a body that must be a JSON object, in standard JSON or fastjson's form with unquoted
/// integer keys, into a `serde_json::Value` object map.
pub fn parse_object_tolerant(
    body: &[u8],
) -> Result<serde_json::Map<String, Value>, serde_json::Error> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(<serde_json::Error as serde::de::Error>::custom(
            "expected a JSON object",
        ));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(first_err) => match quote_bare_int_keys(body) {
            Cow::Borrowed(_) => return Err(first_err),
            Cow::Owned(quoted) => serde_json::from_slice(&quoted)?,
        },
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(<serde_json::Error as serde::de::Error>::custom(
            "expected a JSON object",
        )),
    }
}

/// A field read leniently: a JSON number, or a string holding one (`"3"`), as `i64`. `None` for
/// absent, `null`, or anything else (including fractions and out-of-range values).
pub(crate) fn lenient_i64(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// [`lenient_i64`] narrowed to `i32` (out-of-range values are `None`).
pub(crate) fn lenient_i32(v: Option<&Value>) -> Option<i32> {
    lenient_i64(v).and_then(|n| i32::try_from(n).ok())
}

/// A boolean read leniently: `true`/`false`, the strings `"true"`/`"false"` (any case), or the
/// numbers 0/1. `None` for absent, `null` or anything else.
pub(crate) fn lenient_bool(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        _ => None,
    }
}

/// A string read leniently: a JSON string, or a number/bool written as text. `None` for absent,
/// `null`, arrays and objects.
pub(crate) fn lenient_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A `Map<String,String>` read leniently (`attributes`): non-string values are written as text,
/// nulls and nested containers are dropped. Absent or not an object gives an empty map.
pub(crate) fn lenient_str_map(v: Option<&Value>) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    if let Some(Value::Object(map)) = v {
        for (k, v) in map {
            if let Some(s) = lenient_string(Some(v)) {
                out.insert(k.clone(), s);
            }
        }
    }
    out
}

/// Java `String.hashCode` over UTF-16 code units (PROTOCOL.md Appendix A): the tag code stored
/// in consume-queue units and compared against subscription code sets.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn write_str_matches_serde_json() {
        for case in [
            "",
            "plain",
            "q\"b\\s",
            "ctl\u{0}\u{1f}",
            "\n\r\t",
            "é 中 😀",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, case);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(case).unwrap()
            );
        }
    }

    #[test]
    fn quotes_bare_integer_keys_only() {
        let q =
            |s: &str| String::from_utf8(quote_bare_int_keys(s.as_bytes()).into_owned()).unwrap();
        assert_eq!(q(r#"{"a@b":{0:1,12:-3}}"#), r#"{"a@b":{"0":1,"12":-3}}"#);
        assert_eq!(q("[1, 2,3]"), "[1, 2,3]");
        assert_eq!(q(r#"{"a":"{0:1}"}"#), r#"{"a":"{0:1}"}"#);
        // Garbage never panics.
        let alphabet = b"{}[],:-1 \"\\a";
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let _ = quote_bare_int_keys(&[*a, *b, *c]);
                }
            }
        }
    }

    #[test]
    fn parse_object_tolerant_forms() {
        assert!(parse_object_tolerant(br#"{"x":{0:"a"}}"#).is_ok());
        assert!(parse_object_tolerant(br#"{"x":{"0":"a"}}"#).is_ok());
        assert!(parse_object_tolerant(b"[]").is_err());
        assert!(parse_object_tolerant(b"").is_err());
        assert!(parse_object_tolerant(b"{").is_err());
    }

    #[test]
    fn lenient_accessors() {
        let v: Value = serde_json::json!({"a":"12","b":7,"c":"true","d":null,"e":1.5,"f":0});
        assert_eq!(lenient_i64(v.get("a")), Some(12));
        assert_eq!(lenient_i64(v.get("b")), Some(7));
        assert_eq!(lenient_i64(v.get("d")), None);
        assert_eq!(lenient_i64(v.get("e")), None);
        assert_eq!(lenient_bool(v.get("c")), Some(true));
        assert_eq!(lenient_bool(v.get("f")), Some(false));
        assert_eq!(lenient_string(v.get("b")).as_deref(), Some("7"));
        assert_eq!(lenient_i32(Some(&serde_json::json!(1i64 << 40))), None);
    }

    #[test]
    fn java_hash_examples() {
        assert_eq!(java_string_hash("TagA"), 2_598_919);
        assert_eq!(java_string_hash("*"), 42);
        assert_eq!(java_string_hash(""), 0);
        // Overflow wraps like Java.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        // Non-BMP characters hash as two UTF-16 units.
        assert_eq!(java_string_hash("😀"), 0xd83d * 31 + 0xde00);
    }
}
