//! ROCKETMQ binary headers, serialize type 1 (PROTOCOL.md §1.5).
//!
//! ```text
//! code i16 | language u8 | version i16 | opaque i32 | flag i32 |
//! remarkLen i32 | remark | extLen i32 | ext entries (keyLen i16, key, valLen i32, val)…
//! ```
//!
//! A zero-length string means null in Java, so empty remarks and values are absent after
//! decoding and are not written when encoding. Every length is checked against the bytes that
//! remain before it is used.

use bytes::{BufMut, BytesMut};

use super::{ExtFields, Language, RemotingCommand, SerializeType, WireError};

/// code + language + version + opaque + flag + remarkLen.
const FIXED_PREFIX_BYTES: usize = 2 + 1 + 2 + 4 + 4 + 4;

pub(super) fn decode_header(header: &[u8]) -> Result<RemotingCommand, WireError> {
    let mut r = Reader { rest: header };
    if header.len() < FIXED_PREFIX_BYTES + 4 {
        return Err(WireError::Binary("header shorter than its 21-byte fixed part"));
    }
    let code = i32::from(r.i16()?);
    let language = Language::from_byte(r.u8()?);
    let version = i32::from(r.i16()?);
    let opaque = r.i32()?;
    let flag = r.i32()?;
    let remark_len = r.len_i32("negative remark length")?;
    let remark = r.string(remark_len, "remark longer than the header")?;
    let ext_len = r.len_i32("negative extFields length")?;
    let mut ext = Reader { rest: r.take(ext_len, "extFields longer than the header")? };
    let mut ext_fields = ExtFields::with_capacity(16, ext.rest.len());
    while !ext.rest.is_empty() {
        let key_len = usize::try_from(ext.i16()?)
            .map_err(|_| WireError::Binary("negative extFields key length"))?;
        let key = ext.take(key_len, "extFields key longer than its map")?;
        let value_len = ext.len_i32("negative extFields value length")?;
        let value = ext.take(value_len, "extFields value longer than its map")?;
        // A zero-length key or value is Java's null: the field is absent.
        if !key.is_empty() && !value.is_empty() {
            ext_fields.insert(&String::from_utf8_lossy(key), &String::from_utf8_lossy(value));
        }
    }
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        body: bytes::Bytes::new(),
        serialize_type: SerializeType::RocketMq,
    })
}

pub(super) fn encode_header(command: &RemotingCommand, out: &mut BytesMut) -> Result<(), WireError> {
    let code = i16::try_from(command.code).map_err(|_| WireError::CodeOutOfRange(command.code))?;
    let version = i16::try_from(command.version)
        .map_err(|_| WireError::Binary("version does not fit in int16"))?;
    out.put_i16(code);
    out.put_u8(command.language.to_byte());
    out.put_i16(version);
    out.put_i32(command.opaque);
    out.put_i32(command.flag);
    let remark = command.remark.as_deref().unwrap_or("");
    out.put_i32(len_i32(remark.len())?);
    out.put_slice(remark.as_bytes());
    let entries = command.ext_fields.iter().filter(|(k, v)| !k.is_empty() && !v.is_empty());
    let mut ext_len = 0usize;
    for (key, value) in entries.clone() {
        if key.len() > i16::MAX as usize {
            return Err(WireError::Binary("extFields key longer than 32767 bytes"));
        }
        ext_len += 2 + key.len() + 4 + value.len();
    }
    out.put_i32(len_i32(ext_len)?);
    for (key, value) in entries {
        out.put_i16(key.len() as i16);
        out.put_slice(key.as_bytes());
        out.put_i32(len_i32(value.len())?);
        out.put_slice(value.as_bytes());
    }
    Ok(())
}

fn len_i32(len: usize) -> Result<i32, WireError> {
    i32::try_from(len).map_err(|_| WireError::Binary("length does not fit in int32"))
}

/// A bounds-checked big-endian cursor over header bytes.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if n > self.rest.len() {
            return Err(WireError::Binary(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let bytes = self.take(N, "header truncated")?;
        bytes.try_into().map_err(|_| WireError::Binary("header truncated"))
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(u8::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Result<i16, WireError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    /// An int32 length that must not be negative.
    fn len_i32(&mut self, what: &'static str) -> Result<usize, WireError> {
        usize::try_from(self.i32()?).map_err(|_| WireError::Binary(what))
    }

    /// `n` bytes of UTF-8 (invalid sequences replaced, as Java's decoder does); `None` if
    /// `n` is 0, because Java reads a zero-length string as null.
    fn string(&mut self, n: usize, what: &'static str) -> Result<Option<String>, WireError> {
        let bytes = self.take(n, what)?;
        Ok((!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes).into_owned()))
    }
}
