//! [`ResponseFrame`]: a response encoded straight into its frame, without building a
//! [`RemotingCommand`](super::RemotingCommand) first.
//!
//! A `RemotingCommand` is built first (its `ExtFields` formatted and copied), then walked to
//! encode it. Hot responses (SEND_MESSAGE's six fields,
//! pull's five) are written here directly into the one output buffer, in exactly the bytes
//! [`encode_frame`](super::encode_frame) writes for the equivalent command (a property test
//! checks this): keys in fastjson's order, every value a JSON string, `extFields` always an
//! object, the remark omitted when empty, JSON header, JAVA, FerroMQ's version ordinal.
//!
//! Owns no state beyond the buffer being written; pure, like the rest of the codec.

use std::fmt::{self, Display, Write as _};

use bytes::Bytes;

use super::{FERROMQ_VERSION_ORDINAL, HEADER_LENGTH_WORD_BYTES, LENGTH_PREFIX_BYTES, MAX_ENCODABLE_HEADER_BYTES, WireError};
use crate::codes::FLAG_RESPONSE;

/// Bytes reserved up front by [`ResponseFrame::new`]: the fixed keys take ~110 bytes, a send
/// response's six fields ~150 more, so typical responses never grow the buffer.
pub const RESPONSE_FRAME_DEFAULT_CAPACITY_BYTES: usize = 384;

/// A response being written directly into its frame (length prefix, header-length word, JSON
/// header, body).
///
/// ```
/// use ferromq_net::WireLimits;
/// use ferromq_net::codec::{ResponseFrame, decode_frame};
/// let frame = ResponseFrame::new(0, 42, None).ext("queueId", 3).ext("queueOffset", 17).finish(b"").unwrap();
/// let (response, _) = decode_frame(&frame, &WireLimits::default()).unwrap().unwrap();
/// assert_eq!((response.opaque, response.is_response(), response.ext("queueOffset")), (42, true, Some("17")));
/// ```
///
/// Ext fields must be added in fastjson's key order: ascending by the keys' bytes, each key
/// once (what iterating a `BTreeMap<String, _>` gives). The order is checked by a debug
/// assertion; in release builds a wrong order still yields a valid header, only not the byte
/// sequence the Java broker would write.
#[derive(Debug)]
pub struct ResponseFrame<'a> {
    /// A `Vec` rather than a `BytesMut`: its appends inline, and it becomes the frame's
    /// `Bytes` without a copy.
    out: Vec<u8>,
    /// Written after the ext fields (keys are in alphabetical order).
    opaque: i32,
    remark: Option<&'a str>,
    /// Whether an ext field has been written (a comma goes before the next one).
    has_ext: bool,
    /// The previous key, to check the order in debug builds.
    #[cfg(debug_assertions)]
    last_key: Option<&'a str>,
}

impl<'a> ResponseFrame<'a> {
    /// Starts a response with `code` to the request `opaque`, with an optional remark (an empty
    /// remark is omitted, as for a `RemotingCommand`).
    pub fn new(code: i32, opaque: i32, remark: Option<&'a str>) -> ResponseFrame<'a> {
        ResponseFrame::with_capacity(code, opaque, remark, RESPONSE_FRAME_DEFAULT_CAPACITY_BYTES)
    }

    /// Like [`ResponseFrame::new`], reserving `capacity_bytes` for the whole frame: pass the
    /// header estimate plus the body's length so that [`ResponseFrame::finish`] copies the body
    /// without growing the buffer.
    pub fn with_capacity(code: i32, opaque: i32, remark: Option<&'a str>, capacity_bytes: usize) -> ResponseFrame<'a> {
        let mut out = Vec::with_capacity(capacity_bytes);
        // Length prefix and header-length word, patched by `finish`.
        out.extend_from_slice(&[0; LENGTH_PREFIX_BYTES + HEADER_LENGTH_WORD_BYTES]);
        out.extend_from_slice(b"{\"code\":");
        out.extend_from_slice(itoa::Buffer::new().format(code).as_bytes());
        out.extend_from_slice(b",\"extFields\":{");
        ResponseFrame {
            out,
            opaque,
            remark: remark.filter(|r| !r.is_empty()),
            has_ext: false,
            #[cfg(debug_assertions)]
            last_key: None,
        }
    }

    /// Adds the ext field `key` with the text of `value` (written as a JSON string, escaped as
    /// serde_json escapes). Keys must come in ascending byte order (see the type's docs).
    pub fn ext(mut self, key: &'a str, value: impl Display) -> ResponseFrame<'a> {
        #[cfg(debug_assertions)]
        {
            debug_assert!(
                self.last_key.is_none_or(|last| last < key),
                "ext fields out of fastjson's order: {:?} after {:?}",
                key,
                self.last_key
            );
            self.last_key = Some(key);
        }
        self.out.extend_from_slice(if self.has_ext { b",\"" } else { b"\"" });
        self.has_ext = true;
        let _ = Escaped(&mut self.out).write_str(key);
        self.out.extend_from_slice(b"\":\"");
        let _ = write!(Escaped(&mut self.out), "{value}");
        self.out.push(b'"');
        self
    }

    /// [`ResponseFrame::ext`] for a text value, escaped without the formatting machinery.
    pub fn ext_str(mut self, key: &'a str, value: &str) -> ResponseFrame<'a> {
        #[cfg(debug_assertions)]
        {
            debug_assert!(self.last_key.is_none_or(|last| last < key), "ext fields out of fastjson's order: {:?} after {:?}", key, self.last_key);
            self.last_key = Some(key);
        }
        self.out.extend_from_slice(if self.has_ext { b",\"" } else { b"\"" });
        self.has_ext = true;
        let _ = Escaped(&mut self.out).write_str(key);
        self.out.extend_from_slice(b"\":\"");
        let _ = Escaped(&mut self.out).write_str(value);
        self.out.push(b'"');
        self
    }

    /// [`ResponseFrame::ext`] for an integer value, written without the formatting machinery.
    pub fn ext_int(mut self, key: &'a str, value: impl itoa::Integer) -> ResponseFrame<'a> {
        #[cfg(debug_assertions)]
        {
            debug_assert!(self.last_key.is_none_or(|last| last < key), "ext fields out of fastjson's order: {:?} after {:?}", key, self.last_key);
            self.last_key = Some(key);
        }
        self.out.extend_from_slice(if self.has_ext { b",\"" } else { b"\"" });
        self.has_ext = true;
        let _ = Escaped(&mut self.out).write_str(key);
        self.out.extend_from_slice(b"\":\"");
        self.out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self.out.push(b'"');
        self
    }

    /// Ends the header, appends `body` and returns the whole frame, ready for
    /// [`Response::Frame`](crate::conn::Response::Frame). Fails only when the header or the
    /// frame exceeds what the length words can carry.
    pub fn finish(mut self, body: &[u8]) -> Result<Bytes, WireError> {
        let opaque = self.opaque;
        let out = &mut self.out;
        out.extend_from_slice(b"},\"flag\":");
        out.extend_from_slice(itoa::Buffer::new().format(FLAG_RESPONSE).as_bytes());
        out.extend_from_slice(b",\"language\":\"JAVA\",\"opaque\":");
        out.extend_from_slice(itoa::Buffer::new().format(opaque).as_bytes());
        if let Some(remark) = self.remark {
            out.extend_from_slice(b",\"remark\":\"");
            let _ = Escaped(out).write_str(remark);
            out.push(b'"');
        }
        out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
        out.extend_from_slice(itoa::Buffer::new().format(FERROMQ_VERSION_ORDINAL).as_bytes());
        out.push(b'}');
        let prefix_bytes = LENGTH_PREFIX_BYTES + HEADER_LENGTH_WORD_BYTES;
        let header_len = out.len() - prefix_bytes;
        if header_len > MAX_ENCODABLE_HEADER_BYTES {
            return Err(WireError::HeaderTooLarge { length: header_len, limit: MAX_ENCODABLE_HEADER_BYTES });
        }
        let length = HEADER_LENGTH_WORD_BYTES + header_len + body.len();
        let Ok(length) = i32::try_from(length) else {
            return Err(WireError::FrameTooLarge { length, limit: i32::MAX as usize });
        };
        out.extend_from_slice(body);
        // Serialize type JSON (0) in the top byte of the header-length word.
        let words = (u64::from(length as u32) << 32) | header_len as u64;
        if let Some(prefix) = out.get_mut(..prefix_bytes) {
            prefix.copy_from_slice(&words.to_be_bytes());
        }
        Ok(Bytes::from(self.out))
    }
}

/// Writes text as the inside of a JSON string literal, escaping exactly what serde_json
/// escapes: `"`, `\`, `\b \f \n \r \t`, other control characters as lowercase `\u00xx`.
/// Everything else (DEL and non-ASCII included) goes through as UTF-8.
struct Escaped<'b>(&'b mut Vec<u8>);

/// For a byte: 0 if it goes through as it is, else the letter of its short escape, or `u` for
/// a `\u00xx` escape (serde_json's table).
const fn escape_letter(byte: u8) -> u8 {
    match byte {
        0x08 => b'b',
        0x0C => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x00..=0x1F => b'u',
        b'"' => b'"',
        b'\\' => b'\\',
        _ => 0,
    }
}

/// [`escape_letter`] of every byte, looked up instead of matched: the scan for bytes to escape
/// runs over every value of every response (a send's response has about a hundred bytes of
/// them), and the match cost about three times the table's instructions (callgrind 2026-12-06).
// Evaluated at compile time: an index out of range would fail the build, not panic.
#[allow(clippy::indexing_slicing)]
static ESCAPE_LETTERS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = escape_letter(byte as u8);
        byte += 1;
    }
    table
};

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let hex = |nibble: u8| if nibble < 10 { b'0' + nibble } else { b'a' + nibble - 10 };
        let out = &mut *self.0;
        let mut rest = s.as_bytes();
        // Most values need no escape at all: found by a branch-free scan without early exit
        // (which the compiler may vectorize; the table lookup below runs a byte at a time).
        let plain = rest.iter().fold(true, |plain, &b| plain & (b >= 0x20 && b != b'"' && b != b'\\'));
        if plain {
            out.extend_from_slice(rest);
            return Ok(());
        }
        // Copy the longest run that needs no escape, then escape one byte; most values (ids,
        // numbers, names) are one run.
        // A u8 always indexes the 256-entry table: the compiler drops the bounds check.
        let letter = |b: u8| ESCAPE_LETTERS.get(usize::from(b)).copied().unwrap_or(0);
        while let Some(at) = rest.iter().position(|&b| letter(b) != 0) {
            let (plain, escaped) = rest.split_at(at);
            out.extend_from_slice(plain);
            let Some((&byte, after)) = escaped.split_first() else { break };
            match letter(byte) {
                b'u' => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex(byte >> 4), hex(byte & 0xF)]),
                letter => out.extend_from_slice(&[b'\\', letter]),
            }
            rest = after;
        }
        out.extend_from_slice(rest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::codec::{RemotingCommand, encode_to_bytes};

    fn via_command(code: i32, opaque: i32, remark: Option<&str>, ext: &BTreeMap<String, String>, body: &[u8]) -> Bytes {
        let mut command = RemotingCommand::response(code, opaque, remark.map(str::to_owned));
        command.ext_fields = ext.iter().collect();
        command.body = Bytes::copy_from_slice(body);
        encode_to_bytes(&command).unwrap()
    }

    fn direct(code: i32, opaque: i32, remark: Option<&str>, ext: &BTreeMap<String, String>, body: &[u8]) -> Bytes {
        let mut frame = ResponseFrame::new(code, opaque, remark);
        for (key, value) in ext {
            frame = frame.ext(key, value);
        }
        frame.finish(body).unwrap()
    }

    #[test]
    fn a_send_response_matches_the_command_encoding() {
        let msg_id = "0A0000010000A2B1000000000012D687";
        let ext = BTreeMap::from([
            ("MSG_REGION".to_owned(), "DefaultRegion".to_owned()),
            ("TRACE_ON".to_owned(), "true".to_owned()),
            ("msgId".to_owned(), msg_id.to_owned()),
            ("queueId".to_owned(), "3".to_owned()),
            ("queueOffset".to_owned(), "1234567".to_owned()),
            ("transactionId".to_owned(), msg_id.to_owned()),
        ]);
        let direct_frame = ResponseFrame::new(0, 77, None)
            .ext("MSG_REGION", "DefaultRegion")
            .ext("TRACE_ON", true)
            .ext("msgId", msg_id)
            .ext("queueId", 3)
            .ext("queueOffset", 1_234_567u64)
            .ext("transactionId", msg_id)
            .finish(b"")
            .unwrap();
        assert_eq!(direct_frame, via_command(0, 77, None, &ext, b""));
        assert!(direct_frame.len() <= RESPONSE_FRAME_DEFAULT_CAPACITY_BYTES, "{} bytes", direct_frame.len());
    }

    #[test]
    fn no_ext_fields_is_an_empty_object_and_empty_remarks_are_omitted() {
        let frame = ResponseFrame::new(1, -3, Some("")).finish(b"xyz").unwrap();
        assert_eq!(frame, via_command(1, -3, None, &BTreeMap::new(), b"xyz"));
        let text = String::from_utf8_lossy(&frame);
        assert!(text.contains(r#""extFields":{}"#), "{text}");
        assert!(!text.contains("remark"), "{text}");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "out of fastjson's order")]
    fn keys_out_of_order_are_caught_in_debug_builds() {
        let _ = ResponseFrame::new(0, 1, None).ext("queueOffset", 1).ext("queueId", 2);
    }

    fn arb_text() -> impl Strategy<Value = String> {
        // Every character class the escaper treats differently, plus non-ASCII and DEL.
        proptest::string::string_regex("[a-zA-Z0-9_%\\-\\.\u{0}\u{1}\u{2}\u{8}\u{c}\u{1f}\u{7f}\t\r\n \"\\\\é中😀]{0,24}").unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Random ext maps, remarks and bodies encode to the same bytes both ways.
        #[test]
        fn direct_encoding_equals_the_command_encoding(
            code in any::<i32>(),
            opaque in any::<i32>(),
            remark in proptest::option::of(arb_text()),
            ext in proptest::collection::btree_map(arb_text(), arb_text(), 0..8),
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            prop_assert_eq!(direct(code, opaque, remark.as_deref(), &ext, &body), via_command(code, opaque, remark.as_deref(), &ext, &body));
        }
    }
}
