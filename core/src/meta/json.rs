//! JSON helpers for the broker's metadata and client bodies: thin wrappers over the shared
//! fastjson writers of `ferromq_net::fastjson` (broker bodies keep non-ASCII text raw, as
//! fastjson's default mode does), and lenient accessors over `serde_json::Value` that accept
//! what third-party clients send (numbers as strings, booleans as strings, nulls; Appendix Q).
//!
//! Owns no state. Everything here is total: no panics on any input.

use ferromq_net::fastjson;

pub(crate) use ferromq_net::fastjson::{
    lenient_bool, lenient_i32, lenient_i64, lenient_str_map, lenient_string, parse_object_tolerant, write_bool, write_key, write_num,
};
pub(crate) use ferromq_store::record::java_string_hash;

/// Appends `s` as a JSON string literal, non-ASCII kept as UTF-8.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    fastjson::write_str(out, s, false);
}

/// Appends a JSON array of strings.
pub(crate) fn write_str_array<'a>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'a String>) {
    fastjson::write_str_array(out, items, false);
}

/// Appends a `Map<String,String>` as a JSON object, in the map's order.
pub(crate) fn write_str_map<'a>(out: &mut Vec<u8>, items: impl IntoIterator<Item = (&'a String, &'a String)>) {
    fastjson::write_str_map(out, items, false);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::Value;

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
