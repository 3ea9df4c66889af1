//! The remoting codec (PROTOCOL.md §1.2–1.5): frames in, [`RemotingCommand`]s out, and back.
//!
//! Pure functions over bytes: nothing here does I/O or awaits. A frame is
//!
//! ```text
//! | length: i32 | header-length word: i32 | header: H bytes | body: B bytes |
//!   length = 4 + H + B (excludes itself); word = serialize type << 24 | H
//! ```
//!
//! Limits come first: [`frame_length`] checks the length prefix against
//! [`WireLimits::max_frame_bytes`] before a caller reads or allocates the rest, and the header
//! length is checked against [`WireLimits::max_header_bytes`] before the header is parsed.
//! Every malformed input is a [`WireError`], never a panic.
//!
//! Responses on hot paths can skip the `RemotingCommand` and be written straight into their
//! frame with [`ResponseFrame`], byte for byte what [`encode_frame`] writes.

mod binary;
mod command;
mod fields;
mod json;
mod response;

use bytes::{BufMut, Bytes, BytesMut};

pub use command::{FERROMQ_VERSION_NAME, FERROMQ_VERSION_ORDINAL, Language, RemotingCommand, SerializeType};
pub use fields::ExtFields;
pub use response::{RESPONSE_FRAME_DEFAULT_CAPACITY_BYTES, ResponseFrame};

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;
/// Bytes of the header-length word that follows the length prefix.
pub const HEADER_LENGTH_WORD_BYTES: usize = 4;
/// The header length is the low 24 bits of its word.
pub const MAX_ENCODABLE_HEADER_BYTES: usize = 0x00FF_FFFF;
/// The Java decoder's default `maxFrameLength` (16 MiB); batch sends approach 4 MiB bodies.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// Headers carry routing keys and message properties, never payloads; 4 MiB is far above any
/// real header and still bounds what a bad peer can make us parse.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 4 * 1024 * 1024;

/// Size limits applied while decoding, checked before anything of that size is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireLimits {
    /// Largest accepted value of the length prefix (header-length word + header + body).
    pub max_frame_bytes: usize,
    /// Largest accepted header.
    pub max_header_bytes: usize,
}

impl Default for WireLimits {
    fn default() -> WireLimits {
        WireLimits {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// Why bytes are not a valid frame. The connection that produced one is closed, as the Java
/// server does; other connections are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame length {length} is negative or shorter than the header-length word")]
    FrameTooShort { length: i64 },
    #[error("frame length {length} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge { length: usize, limit: usize },
    #[error("header length {length} bytes exceeds the limit of {limit} bytes")]
    HeaderTooLarge { length: usize, limit: usize },
    #[error("header length {header} bytes does not fit in a frame of {frame} bytes")]
    HeaderExceedsFrame { header: usize, frame: usize },
    #[error("unknown header serialize type {0}")]
    UnknownSerializeType(u8),
    #[error("JSON header: {0}")]
    Json(String),
    #[error("binary header: {0}")]
    Binary(&'static str),
    #[error("request code {0} cannot be encoded in a binary header (int16)")]
    CodeOutOfRange(i32),
}

/// The total bytes of the frame whose first bytes are `prefix`, length prefix included, or
/// `None` if fewer than four bytes are there yet. Checked against the limits, so a caller may
/// allocate the returned size.
pub fn frame_length(prefix: &[u8], limits: &WireLimits) -> Result<Option<usize>, WireError> {
    let Some(word) = prefix.first_chunk::<LENGTH_PREFIX_BYTES>() else {
        return Ok(None);
    };
    let length = i32::from_be_bytes(*word);
    if length < HEADER_LENGTH_WORD_BYTES as i32 {
        return Err(WireError::FrameTooShort { length: length.into() });
    }
    let length = length as usize;
    if length > limits.max_frame_bytes {
        return Err(WireError::FrameTooLarge { length, limit: limits.max_frame_bytes });
    }
    Ok(Some(LENGTH_PREFIX_BYTES + length))
}

/// Decodes the first frame in `buf`. Returns the command and the bytes it consumed, or `None`
/// if `buf` does not hold a whole frame yet. The body shares `buf`'s memory (no copy).
pub fn decode_frame(
    buf: &Bytes,
    limits: &WireLimits,
) -> Result<Option<(RemotingCommand, usize)>, WireError> {
    let Some(total) = frame_length(buf, limits)? else {
        return Ok(None);
    };
    if buf.len() < total {
        return Ok(None);
    }
    let command = decode_frame_contents(&buf.slice(LENGTH_PREFIX_BYTES..total), limits)?;
    Ok(Some((command, total)))
}

/// Decodes one frame without its length prefix: the header-length word, header and body.
pub fn decode_frame_contents(
    frame: &Bytes,
    limits: &WireLimits,
) -> Result<RemotingCommand, WireError> {
    let Some(word) = frame.first_chunk::<HEADER_LENGTH_WORD_BYTES>() else {
        return Err(WireError::FrameTooShort { length: frame.len() as i64 });
    };
    let word = u32::from_be_bytes(*word);
    let serialize_byte = (word >> 24) as u8;
    let header_len = (word & 0x00FF_FFFF) as usize;
    if header_len > limits.max_header_bytes {
        return Err(WireError::HeaderTooLarge { length: header_len, limit: limits.max_header_bytes });
    }
    let header_end = HEADER_LENGTH_WORD_BYTES + header_len;
    let Some(header) = frame.get(HEADER_LENGTH_WORD_BYTES..header_end) else {
        return Err(WireError::HeaderExceedsFrame { header: header_len, frame: frame.len() });
    };
    let mut command = match serialize_byte {
        0 => json::decode_header(header)?,
        1 => binary::decode_header(header)?,
        other => return Err(WireError::UnknownSerializeType(other)),
    };
    command.body = frame.slice(header_end..);
    Ok(command)
}

/// Appends the encoded frame of `command` (header in its `serialize_type`, then the body).
pub fn encode_frame(command: &RemotingCommand, out: &mut BytesMut) -> Result<(), WireError> {
    encode_frame_prefix(command, command.body.len(), out)?;
    out.put_slice(&command.body);
    Ok(())
}

/// Appends the length prefix, header-length word and header of `command`, for a body of
/// `body_len` bytes that the caller sends itself (e.g. log ranges sent with `sendfile`).
/// `command.body` is ignored.
pub fn encode_frame_prefix(
    command: &RemotingCommand,
    body_len: usize,
    out: &mut BytesMut,
) -> Result<(), WireError> {
    let start = out.len();
    out.put_u32(0); // length, patched below
    out.put_u32(0); // header-length word, patched below
    let header_start = out.len();
    match command.serialize_type {
        SerializeType::Json => json::encode_header(command, out),
        SerializeType::RocketMq => binary::encode_header(command, out)?,
    }
    let header_len = out.len() - header_start;
    if header_len > MAX_ENCODABLE_HEADER_BYTES {
        out.truncate(start);
        return Err(WireError::HeaderTooLarge {
            length: header_len,
            limit: MAX_ENCODABLE_HEADER_BYTES,
        });
    }
    let length = HEADER_LENGTH_WORD_BYTES + header_len + body_len;
    let Ok(length) = i32::try_from(length) else {
        out.truncate(start);
        return Err(WireError::FrameTooLarge { length, limit: i32::MAX as usize });
    };
    let word = (u32::from(command.serialize_type.to_byte()) << 24) | header_len as u32;
    // Both words at once: the length (high half) then the header-length word.
    let words = (u64::from(length as u32) << 32) | u64::from(word);
    if let Some(prefix) = out.get_mut(start..header_start) {
        prefix.copy_from_slice(&words.to_be_bytes());
    }
    Ok(())
}

/// Encodes `command` into a fresh buffer; convenience for tests and one-off sends.
pub fn encode_to_bytes(command: &RemotingCommand) -> Result<Bytes, WireError> {
    let mut out = BytesMut::with_capacity(256 + command.body.len());
    encode_frame(command, &mut out)?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests;
