//! fastjson-compatible JSON helpers shared by the name server's and the broker's bodies: the
//! writers used by the hand-written encoders (routes, cluster info, topic lists, KV tables,
//! topic and group configs, consumer offsets) and the tolerant-reader pre-pass that turns
//! fastjson's unquoted integer object keys (`{0:"a"}`) into standard JSON so serde_json can
//! parse bodies written by Java (PROTOCOL.md §4.1 point 3), and [`object_entries`], which
//! splits a map whose keys are objects (`{{"brokerName":..}:5}`, §4.1 point 3) into entries.
//!
//! Owns no state. Everything here is total: no panics on any input.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Which JSON dialect a name-server body is written in (PROTOCOL.md §4.2, Appendix Q).
///
/// The choice is made per request by the handler; see [`JsonFlavour::for_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonFlavour {
    /// What a 4.x Java name server writes with fastjson defaults: `Map<Long, _>` keys are
    /// unquoted (`{0:"10.0.0.1:10911"}`), `BrokerData` carries no `enableActingMaster`, non-ASCII
    /// text is raw UTF-8. Served to requests with `version < 401` (V4_9_4): one third-party client
    /// parses this form literally and knows no `true`/`false`/`null`.
    Fastjson,
    /// Standard JSON as the Java name server writes it for `version >= 401` or
    /// `acceptStandardJsonOnly=true` (fastjson BrowserCompatible + QuoteFieldNames + MapSortField):
    /// quoted numeric keys (`{"0":"10.0.0.1:10911"}`), `"enableActingMaster":false` included (one
    /// third-party client requires it), non-ASCII escaped as `\uXXXX`.
    Standard,
}

/// First request version (MQVersion ordinal of V4_9_4) answered with standard JSON.
pub const STANDARD_JSON_MIN_VERSION: i32 = 401;

impl JsonFlavour {
    /// The Java name server's rule for GET_ROUTEINFO_BY_TOPIC: standard JSON when the request's
    /// `version >= 401` or its header says `acceptStandardJsonOnly=true`, fastjson otherwise.
    /// FerroMQ applies the same rule to the other bodies with `Map<Long, _>` keys (cluster info,
    /// broker member group), see `route.rs`.
    pub fn for_request(request_version: i32, accept_standard_json_only: bool) -> Self {
        if accept_standard_json_only || request_version >= STANDARD_JSON_MIN_VERSION {
            JsonFlavour::Standard
        } else {
            JsonFlavour::Fastjson
        }
    }

    /// Whether non-ASCII characters are written as `\uXXXX` escapes.
    pub fn ascii_only(self) -> bool {
        matches!(self, JsonFlavour::Standard)
    }
}

/// Appends `s` as a JSON string literal (with the quotes).
///
/// Escapes exactly what serde_json escapes (`"`, `\`, `\b \f \n \r \t`, other control characters
/// as lowercase `\u00xx`), so for `ascii_only = false` the output equals `serde_json::to_string`
/// byte for byte (tested below). With `ascii_only = true` every non-ASCII character is also
/// written as one or two (surrogate pair) `\uxxxx` escapes, like fastjson's BrowserCompatible mode.
/// Hand-written rather than calling serde_json so that it cannot fail and needs no `Result`.
pub fn write_str(out: &mut Vec<u8>, s: &str, ascii_only: bool) {
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
            c if ascii_only && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    push_u_escape(out, *unit);
                }
            }
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
pub fn write_key(out: &mut Vec<u8>, name: &str) {
    write_str(out, name, false);
    out.push(b':');
}

/// Appends a number in decimal.
pub fn write_num(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    out.extend_from_slice(n.to_string().as_bytes());
}

/// Appends a JSON array of strings.
pub fn write_str_array<'a>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = &'a String>,
    ascii_only: bool,
) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, item, ascii_only);
    }
    out.push(b']');
}

/// Appends `true` or `false`.
pub fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// Appends a `Map<String,String>` as a JSON object, in the map's order (callers pass a
/// `BTreeMap`: fastjson's sorted order).
pub fn write_str_map<'a>(out: &mut Vec<u8>, items: impl IntoIterator<Item = (&'a String, &'a String)>, ascii_only: bool) {
    out.push(b'{');
    for (i, (key, value)) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key, ascii_only);
        out.push(b':');
        write_str(out, value, ascii_only);
    }
    out.push(b'}');
}

/// Rewrites bare integer object keys (`{0:"a",-1:"b"}`) into quoted keys (`{"0":"a","-1":"b"}`)
/// and leaves everything else untouched, including the contents of strings.
///
/// A token is treated as a key when it follows `{` or `,` (after optional whitespace), consists
/// of an optional `-` and ASCII digits, and is followed (after optional whitespace) by `:`. Inside
/// arrays a number after `,` is followed by `,` or `]`, never `:`, so array elements are not
/// touched. Returns the input borrowed when nothing needed quoting. Never fails: malformed input
/// comes out as malformed and serde_json reports it.
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

/// Parses a JSON body that may be standard JSON or fastjson's default output with unquoted
/// integer keys: tries serde_json directly and, only if that fails, again after
/// [`quote_bare_int_keys`]. The error of the second attempt is returned.
pub fn parse_tolerant<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(first) => {
            let quoted = quote_bare_int_keys(body);
            if let Cow::Borrowed(_) = quoted {
                return Err(first);
            }
            serde_json::from_slice(&quoted)
        }
    }
}

/// [`parse_tolerant`] for bodies that must be a JSON object. serde's derived struct decoding
/// also accepts an array (fields by position), which no RocketMQ body uses; refusing it keeps
/// `[]` from reading as an all-defaults body.
pub fn parse_tolerant_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(<serde_json::Error as serde::de::Error>::custom(
            "expected a JSON object",
        ));
    }
    parse_tolerant(body)
}

/// Parses a body that must be a JSON object, standard or fastjson form, into a
/// `serde_json::Value` object map (for bodies read field by field, leniently).
pub fn parse_object_tolerant(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, serde_json::Error> {
    match parse_tolerant_object::<serde_json::Value>(body)? {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(<serde_json::Error as serde::de::Error>::custom("expected a JSON object")),
    }
}

/// Deserializes a field that may be absent (with `#[serde(default)]`) or `null` into its
/// `Default`, so that `"filterServerList":null` from a non-Java broker does not fail the body.
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    let opt: Option<T> = serde::Deserialize::deserialize(deserializer)?;
    Ok(opt.unwrap_or_default())
}

// ---- Lenient readers over serde_json::Value (what third-party clients and Java files send:
// numbers as strings, booleans as strings, nulls; PROTOCOL.md Appendix Q).

/// A field read leniently: a JSON number, or a string holding one (`"3"`), as `i64`. `None` for
/// absent, `null`, or anything else (including fractions and out-of-range values).
pub fn lenient_i64(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// [`lenient_i64`] narrowed to `i32` (out-of-range values are `None`).
pub fn lenient_i32(v: Option<&Value>) -> Option<i32> {
    lenient_i64(v).and_then(|n| i32::try_from(n).ok())
}

/// A boolean read leniently: `true`/`false`, the strings `"true"`/`"false"` (any case), or the
/// numbers 0/1. `None` for absent, `null` or anything else.
pub fn lenient_bool(v: Option<&Value>) -> Option<bool> {
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
pub fn lenient_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A `Map<String,String>` read leniently (`attributes`): non-string values are written as text,
/// nulls and nested containers are dropped. Absent or not an object gives an empty map.
pub fn lenient_str_map(v: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(map)) = v {
        for (k, v) in map {
            if let Some(s) = lenient_string(Some(v)) {
                out.insert(k.clone(), s);
            }
        }
    }
    out
}

/// One entry of a JSON object as written: (key text, value text).
pub type RawEntry<'a> = (&'a [u8], &'a [u8]);

/// The entries of a JSON object as (key text, value text), in order, where keys may be any
/// JSON value — fastjson writes a map keyed by a bean with the bean as the key
/// (`{{"brokerName":"b","queueId":0,"topic":"t"}:5}`, PROTOCOL.md §4.1 point 3), which no
/// standard parser reads. Values may hold such maps too. The texts are not validated: the
/// caller parses those it uses (a key object and a number are standard JSON). Fails when
/// `body` is not one object, or it ends early.
pub fn object_entries(body: &[u8]) -> Result<Vec<RawEntry<'_>>, serde_json::Error> {
    let malformed = |what: &str| <serde_json::Error as serde::de::Error>::custom(format!("malformed object: {what}"));
    let mut i = skip_ws(body, 0);
    if body.get(i) != Some(&b'{') {
        return Err(malformed("it does not start with '{'"));
    }
    i += 1;
    let mut entries = Vec::new();
    loop {
        i = skip_ws(body, i);
        match body.get(i) {
            Some(b'}') if entries.is_empty() => break,
            Some(_) => {}
            None => return Err(malformed("it ends inside")),
        }
        let key_end = value_end(body, i).ok_or_else(|| malformed("a key ends early"))?;
        let key = body.get(i..key_end).unwrap_or_default();
        i = skip_ws(body, key_end);
        if body.get(i) != Some(&b':') {
            return Err(malformed("no ':' after a key"));
        }
        i = skip_ws(body, i + 1);
        let end = value_end(body, i).ok_or_else(|| malformed("a value ends early"))?;
        let value = body.get(i..end).unwrap_or_default();
        if key.is_empty() || value.is_empty() {
            return Err(malformed("an empty key or value"));
        }
        entries.push((key, value));
        i = skip_ws(body, end);
        match body.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => break,
            _ => return Err(malformed("no ',' or '}' after a value")),
        }
    }
    if skip_ws(body, i + 1) != body.len() {
        return Err(malformed("text after the object"));
    }
    Ok(entries)
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while s.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The end (exclusive) of the value that starts at `start`: a string with its escapes, an
/// object or array by nesting depth (strings inside skipped), a scalar up to the next
/// delimiter. `None` when the text ends first.
fn value_end(s: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    match *s.get(i)? {
        b'"' => string_end(s, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match *s.get(i)? {
                    b'"' => {
                        i = string_end(s, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            while let Some(&b) = s.get(i) {
                if matches!(b, b',' | b':' | b'}' | b']') || b.is_ascii_whitespace() {
                    break;
                }
                i += 1;
            }
            Some(i)
        }
    }
}

/// The end (exclusive) of the string whose opening quote is at `start`.
fn string_end(s: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match *s.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn quoted(s: &str) -> String {
        String::from_utf8(quote_bare_int_keys(s.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn write_str_matches_serde_json() {
        let cases = [
            "",
            "plain",
            "quote\"back\\slash",
            "ctl\u{0}\u{1}\u{1f}\u{7f}",
            "\u{8}\u{c}\n\r\t",
            "non-ascii é 中 😀",
            "slash / and <tag>",
        ];
        for case in cases {
            let mut out = Vec::new();
            write_str(&mut out, case, false);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(case).unwrap(),
                "case {case:?}"
            );
        }
    }

    #[test]
    fn write_str_ascii_only_escapes_utf16_units_and_round_trips() {
        let mut out = Vec::new();
        write_str(&mut out, "é中😀a", true);
        assert_eq!(out, br#""\u00e9\u4e2d\ud83d\ude00a""#);
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "é中😀a");
    }

    #[test]
    fn quotes_bare_integer_keys_only() {
        assert_eq!(quoted(r#"{0:"a",1:"b"}"#), r#"{"0":"a","1":"b"}"#);
        assert_eq!(
            quoted(r#"{ -12 : 3 , 7:[1,2,3]}"#),
            r#"{ "-12" : 3 , "7":[1,2,3]}"#
        );
        assert_eq!(quoted(r#"{"a":{10:{20:1}}}"#), r#"{"a":{"10":{"20":1}}}"#);
        // Array elements and values are left alone.
        assert_eq!(quoted("[1, 2,3]"), "[1, 2,3]");
        assert_eq!(quoted(r#"{"k":1,"j":-2}"#), r#"{"k":1,"j":-2}"#);
        // Text inside strings that looks like a key is left alone, escapes included.
        assert_eq!(
            quoted(r#"{"a":"{0:1}","b\"{1:2":3}"#),
            r#"{"a":"{0:1}","b\"{1:2":3}"#
        );
        assert_eq!(quoted(r#"{"a\\":{5:6}}"#), r#"{"a\\":{"5":6}}"#);
    }

    #[test]
    fn quote_pass_borrows_when_nothing_to_do() {
        let input = br#"{"brokerAddrs":{"0":"a"}}"#;
        assert!(matches!(quote_bare_int_keys(input), Cow::Borrowed(_)));
    }

    #[test]
    fn quote_pass_never_panics_on_garbage() {
        let garbage: [&[u8]; 8] = [
            b"",
            b"{",
            b"{-",
            b"{-:",
            b"{1",
            b"{1 ",
            b",,,{{{-1",
            b"\"\\",
        ];
        for g in garbage {
            let _ = quote_bare_int_keys(g);
        }
        // Every byte sequence of length <= 3 over a small alphabet.
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
    fn parse_tolerant_accepts_both_forms() {
        let fast: BTreeMap<String, BTreeMap<u64, String>> =
            parse_tolerant(br#"{"x":{0:"a",1:"b"}}"#).unwrap();
        let std: BTreeMap<String, BTreeMap<u64, String>> =
            parse_tolerant(br#"{"x":{"0":"a","1":"b"}}"#).unwrap();
        assert_eq!(fast, std);
        assert!(parse_tolerant::<BTreeMap<String, u8>>(b"{not json").is_err());
        assert!(parse_tolerant_object::<BTreeMap<String, u8>>(b" []").is_err());
        assert!(parse_tolerant_object::<BTreeMap<String, u8>>(b" {}").is_ok());
    }

    #[test]
    fn flavour_rule() {
        assert_eq!(JsonFlavour::for_request(400, false), JsonFlavour::Fastjson);
        assert_eq!(JsonFlavour::for_request(317, true), JsonFlavour::Standard);
        assert_eq!(JsonFlavour::for_request(401, false), JsonFlavour::Standard);
        assert_eq!(JsonFlavour::for_request(479, false), JsonFlavour::Standard);
    }

    #[test]
    fn object_entries_reads_fastjson_object_keys() {
        let body = br#"{"messageQueueTable":{{"brokerName":"b","queueId":0,"topic":"t,}"}:5, {"topic":"t","brokerName":"b","queueId":1}:-1},"consumerTable":{}}"#;
        let top = object_entries(body).unwrap();
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].0, br#""messageQueueTable""#);
        assert_eq!(top[1], (&br#""consumerTable""#[..], &b"{}"[..]));
        let table = object_entries(top[0].1).unwrap();
        let keys: Vec<Value> = table.iter().map(|(k, _)| serde_json::from_slice(k).unwrap()).collect();
        assert_eq!(keys[0]["topic"], "t,}");
        assert_eq!(keys[1]["queueId"], 1);
        assert_eq!(table.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![&b"5"[..], &b"-1"[..]]);
        assert!(object_entries(b" { } ").unwrap().is_empty());
        // Malformed: never a panic, always an error.
        for bad in [&b""[..], b"[]", b"{", b"{\"a\"}", b"{\"a\":}", b"{\"a\":1", b"{\"a\":1,}", b"{\"a\":1}x", b"{{\"a\":1}", br#"{"a":"\"}"#] {
            assert!(object_entries(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
