//! JSON headers, serialize type 0 (PROTOCOL.md §1.4, Appendix Q).
//!
//! Decoding is lenient in exactly the ways real clients need: `extFields` values may be
//! strings, numbers or booleans (all kept as their text), `null` values are absent, the map
//! itself may be missing or `null`, `remark` may be `""`, `language` may be a name or a number,
//! and unknown keys (`serializeTypeCurrentRPC`, …) are ignored. Encoding is strict: every
//! `extFields` value is a JSON string, `extFields` is always an object (never `null`), null
//! fields are omitted, and keys are sorted as fastjson sorts them.

use std::fmt::{self, Write as _};

use bytes::{BufMut, BytesMut};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{ExtFields, Language, RemotingCommand, SerializeType, WireError};

pub(super) fn decode_header(header: &[u8]) -> Result<RemotingCommand, WireError> {
    // JSON text is UTF-8: checked once for the whole header, so that the parser does not check
    // each string again (per-string checks were 5 % of a send's instructions, callgrind
    // 2026-12-06). Invalid UTF-8 was refused before too, by the parser.
    let text = std::str::from_utf8(header).map_err(|e| WireError::Json(format!("the header is not UTF-8: {e}")))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    // The header's length bounds the text of its fields: one allocation for all of them.
    let parsed = de::Deserializer::deserialize_map(&mut deserializer, HeaderVisitor { text_bytes: header.len() })
        .and_then(|parsed| deserializer.end().map(|()| parsed))
        .map_err(|e| WireError::Json(e.to_string()))?;
    let code = parsed.code.ok_or_else(|| WireError::Json("missing \"code\"".into()))?;
    Ok(RemotingCommand {
        code,
        language: parsed.language.unwrap_or(Language::Java),
        version: parsed.version.unwrap_or(0),
        opaque: parsed.opaque.unwrap_or(0),
        flag: parsed.flag.unwrap_or(0),
        remark: parsed.remark.filter(|r| !r.is_empty()),
        ext_fields: parsed.ext_fields,
        body: bytes::Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

pub(super) fn encode_header(command: &RemotingCommand, out: &mut BytesMut) {
    // Keys in fastjson's alphabetical order. Writing into memory cannot fail, so the results
    // of the writes in `put_int` and `put_string` carry no information.
    out.put_slice(b"{\"code\":");
    put_int(out, command.code);
    out.put_slice(b",\"extFields\":{");
    for (i, (key, value)) in command.ext_fields.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        put_string(out, key);
        out.put_u8(b':');
        put_string(out, value);
    }
    out.put_slice(b"},\"flag\":");
    put_int(out, command.flag);
    out.put_slice(b",\"language\":");
    put_string(out, command.language.name());
    out.put_slice(b",\"opaque\":");
    put_int(out, command.opaque);
    if let Some(remark) = command.remark.as_deref().filter(|r| !r.is_empty()) {
        out.put_slice(b",\"remark\":");
        put_string(out, remark);
    }
    out.put_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    put_int(out, command.version);
    out.put_u8(b'}');
}

fn put_int(out: &mut BytesMut, value: i32) {
    let _ = write!(out, "{value}");
}

fn put_string(out: &mut BytesMut, value: &str) {
    // serde_json escapes quotes, backslashes and control characters (\u0001, \u0002 in
    // property strings, §1.4 rule 5) exactly as a JSON parser expects.
    let _ = serde_json::to_writer(out.writer(), value);
}

/// The header fields FerroMQ reads; everything else is skipped.
#[derive(Default)]
struct JsonHeader {
    code: Option<i32>,
    language: Option<Language>,
    version: Option<i32>,
    opaque: Option<i32>,
    flag: Option<i32>,
    remark: Option<String>,
    ext_fields: ExtFields,
}

struct HeaderVisitor {
    /// Room to reserve for the ext fields' text.
    text_bytes: usize,
}

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = JsonHeader;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a remoting command header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonHeader, A::Error> {
        let mut header = JsonHeader::default();
        // Keys, numbers and the language are read without allocating: every request carries
        // them, and owned copies were a quarter of a send's allocations (heaptrack 2026-12-06).
        while let Some(key) = map.next_key::<HeaderKey>()? {
            match key {
                HeaderKey::Code => header.code = map.next_value_seed(Int32 { field: "code" })?,
                HeaderKey::Language => header.language = map.next_value::<LanguageField>()?.0,
                HeaderKey::Version => header.version = map.next_value_seed(Int32 { field: "version" })?,
                HeaderKey::Opaque => header.opaque = map.next_value_seed(Int32 { field: "opaque" })?,
                HeaderKey::Flag => header.flag = map.next_value_seed(Int32 { field: "flag" })?,
                HeaderKey::Remark => header.remark = map.next_value::<Scalar>()?.0,
                HeaderKey::ExtFields => header.ext_fields = map.next_value_seed(ExtFieldsSeed { text_bytes: self.text_bytes })?,
                HeaderKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(header)
    }
}

/// A top-level header key, matched on the frame's text (no owned copy).
enum HeaderKey {
    Code,
    Language,
    Version,
    Opaque,
    Flag,
    Remark,
    ExtFields,
    Other,
}

impl<'de> de::Deserialize<'de> for HeaderKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<HeaderKey, D::Error> {
        deserializer.deserialize_identifier(HeaderKeyVisitor)
    }
}

struct HeaderKeyVisitor;

impl Visitor<'_> for HeaderKeyVisitor {
    type Value = HeaderKey;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a header field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<HeaderKey, E> {
        Ok(match v {
            "code" => HeaderKey::Code,
            "language" => HeaderKey::Language,
            "version" => HeaderKey::Version,
            "opaque" => HeaderKey::Opaque,
            "flag" => HeaderKey::Flag,
            "remark" => HeaderKey::Remark,
            "extFields" => HeaderKey::ExtFields,
            _ => HeaderKey::Other,
        })
    }
}

/// A 32-bit integer field (`None` for `null`): a JSON number, or a string holding one, as
/// fastjson accepts. Anything else, or a value out of range, is an error naming the field.
struct Int32 {
    field: &'static str,
}

impl Int32 {
    fn invalid<E: de::Error>(&self, text: impl fmt::Debug) -> E {
        E::custom(format!("\"{}\" is not a 32-bit integer: {text:?}", self.field))
    }
}

impl<'de> de::DeserializeSeed<'de> for Int32 {
    type Value = Option<i32>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<i32>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for Int32 {
    type Value = Option<i32>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "\"{}\" as a 32-bit integer", self.field)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<i32>, E> {
        i32::try_from(v).map(Some).map_err(|_| self.invalid(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<i32>, E> {
        i32::try_from(v).map(Some).map_err(|_| self.invalid(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<i32>, E> {
        // As before: the number's text read as an integer, so `1.0` (text `1`) is 1.
        self.visit_str(&v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<i32>, E> {
        Err(self.invalid(v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<i32>, E> {
        v.trim().parse::<i32>().map(Some).map_err(|_| self.invalid(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<i32>, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<i32>, E> {
        Ok(None)
    }
}

/// `language`: a name or a LanguageCode byte, as a string or a number (`None` for `null`).
struct LanguageField(Option<Language>);

impl<'de> de::Deserialize<'de> for LanguageField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<LanguageField, D::Error> {
        deserializer.deserialize_any(LanguageVisitor)
    }
}

struct LanguageVisitor;

impl Visitor<'_> for LanguageVisitor {
    type Value = LanguageField;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a language name or code")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<LanguageField, E> {
        Ok(LanguageField(Some(Language::from_name(v))))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<LanguageField, E> {
        self.visit_str(itoa::Buffer::new().format(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<LanguageField, E> {
        self.visit_str(itoa::Buffer::new().format(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<LanguageField, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<LanguageField, E> {
        self.visit_str(if v { "true" } else { "false" })
    }
    fn visit_unit<E: de::Error>(self) -> Result<LanguageField, E> {
        Ok(LanguageField(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<LanguageField, E> {
        Ok(LanguageField(None))
    }
}

/// A JSON scalar kept as its text (`None` for `null`): strings as they are, numbers in
/// decimal, booleans as `true`/`false`, which is what Java's `toString()` gives.
struct Scalar(Option<String>);

impl<'de> de::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number, boolean or null")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar(Some(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }
}

/// `extFields`: an object of scalars, or `null`/absent for none. Keys and values are written
/// straight into the [`ExtFields`] text (strings without escapes are copied from the frame once;
/// numbers and booleans are written as their text), so a header costs two allocations however
/// many fields it has.
struct ExtFieldsSeed {
    text_bytes: usize,
}

impl<'de> de::DeserializeSeed<'de> for ExtFieldsSeed {
    type Value = ExtFields;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<ExtFields, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ExtFieldsSeed {
    type Value = ExtFields;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an extFields object or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<ExtFields, E> {
        Ok(ExtFields::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<ExtFields, E> {
        Ok(ExtFields::new())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ExtFields, A::Error> {
        let mut fields = ExtFields::with_capacity(map.size_hint().unwrap_or(16), self.text_bytes);
        loop {
            let mut done = false;
            fields.push_with(|text| {
                let start = text.len();
                if map.next_key_seed(AppendText { text: &mut *text })?.is_none() {
                    done = true;
                    return Ok((0, false));
                }
                let key_len = text.len() - start;
                let value = map.next_value_seed(AppendText { text: &mut *text })?;
                Ok((key_len, !value))
            })?;
            if done {
                break;
            }
        }
        Ok(fields)
    }
}

/// Appends a JSON scalar's text to `text`; deserializes to `true` when the scalar was `null`
/// (nothing appended).
struct AppendText<'t> {
    text: &'t mut String,
}

impl<'de> de::DeserializeSeed<'de> for AppendText<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AppendText<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number, boolean or null")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        self.text.push_str(v);
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.text.push_str(itoa::Buffer::new().format(v));
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.text.push_str(itoa::Buffer::new().format(v));
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        let _ = write!(self.text, "{v}");
        Ok(false)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.text.push_str(if v { "true" } else { "false" });
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(true)
    }
}
