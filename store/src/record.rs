//! The RocketMQ stored record (PROTOCOL.md §5): encoding on append, decoding of single records
//! and of pull bodies, the properties string, BODYCRC, Java `String.hashCode`, and message ids.
//!
//! A pull body is a concatenation of records copied verbatim from the commit log, so the decoder
//! here is shared by the store's recovery scan, tools, tests and the bench. All integers are
//! big-endian (Java `ByteBuffer` default). Decoding never panics: malformed bytes yield a
//! [`RecordError`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;

use crate::types::{ClientPhysicalOffset, QueueId};

/// MAGICCODE of a V1 record (1-byte topic length).
pub const MAGIC_V1: u32 = 0xDAA3_20A7;
/// MAGICCODE of a V2 record (2-byte topic length; written only for topics longer than 127 bytes).
pub const MAGIC_V2: u32 = 0xDAA3_20AB;
/// Magic of the end-of-file blank filler in a commit-log segment.
pub const BLANK_MAGIC: u32 = 0xCBD4_3194;
/// Size of the blank filler: `int32 remaining`, `int32 BLANK_MAGIC`.
pub const BLANK_LEN: usize = 8;

// Fixed-position header fields (identical for every variant up to BORNHOST).
pub const TOTALSIZE_POS: usize = 0;
pub const MAGIC_POS: usize = TOTALSIZE_POS + 4;
pub const BODYCRC_POS: usize = MAGIC_POS + 4;
pub const QUEUEID_POS: usize = BODYCRC_POS + 4;
pub const FLAG_POS: usize = QUEUEID_POS + 4;
pub const QUEUEOFFSET_POS: usize = FLAG_POS + 4;
pub const PHYSICALOFFSET_POS: usize = QUEUEOFFSET_POS + 8;
pub const SYSFLAG_POS: usize = PHYSICALOFFSET_POS + 8;
pub const BORNTIMESTAMP_POS: usize = SYSFLAG_POS + 4;
pub const BORNHOST_POS: usize = BORNTIMESTAMP_POS + 8;
const _: () = assert!(QUEUEOFFSET_POS == 20 && PHYSICALOFFSET_POS == 28 && SYSFLAG_POS == 36);
const _: () = assert!(BORNHOST_POS == 48);

/// Host field sizes: IPv4 address + int32 port, or IPv6 address + int32 port.
pub const HOST_V4_LEN: usize = 4 + 4;
pub const HOST_V6_LEN: usize = 16 + 4;
/// STORETIMESTAMP position when the born host is IPv4 (the "fixed" position tools use).
pub const STORETIMESTAMP_POS_V4: usize = BORNHOST_POS + HOST_V4_LEN;
const _: () = assert!(STORETIMESTAMP_POS_V4 == 56);

/// Bytes of a V1 record that are not body, topic or properties, with IPv4 hosts:
/// the 88 bytes up to BODY plus TOPICLENGTH (1) and PROPERTIESLENGTH (2).
pub const V1_FIXED_LEN_V4: usize = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + HOST_V4_LEN + 8 + HOST_V4_LEN + 4 + 8 + 4 + 1 + 2;
const _: () = assert!(V1_FIXED_LEN_V4 == 91);

/// Largest properties string (int16 length field).
pub const MAX_PROPERTIES_LEN: usize = i16::MAX as usize;
/// Longest topic that still fits in a V1 record's 1-byte length (Java's
/// `autoMessageVersionOnTopicLen` switches to V2 above it).
pub const MAX_V1_TOPIC_LEN: usize = 127;

/// SysFlag bits (§5.3).
pub mod sysflag {
    pub const COMPRESSED: i32 = 0x1;
    pub const MULTI_TAGS: i32 = 0x2;
    pub const TRANSACTION_MASK: i32 = 0xC;
    pub const TRANSACTION_NOT_TYPE: i32 = 0x0;
    pub const TRANSACTION_PREPARED: i32 = 0x4;
    pub const TRANSACTION_COMMIT: i32 = 0x8;
    pub const TRANSACTION_ROLLBACK: i32 = 0xC;
    pub const BORNHOST_V6: i32 = 0x10;
    pub const STOREHOST_V6: i32 = 0x20;
}

/// Property names the store itself reads (§5.4).
pub mod prop {
    pub const KEYS: &str = "KEYS";
    pub const TAGS: &str = "TAGS";
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    pub const WAIT: &str = "WAIT";
}
/// Separator between a property name and its value (char 1).
pub const NAME_VALUE_SEPARATOR: u8 = 1;
/// Terminator of each property (char 2).
pub const PROPERTY_SEPARATOR: u8 = 2;

/// Why a record could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("buffer too short: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("unknown magic code {0:#010x}")]
    BadMagic(u32),
    #[error("TOTALSIZE {total} disagrees with the field lengths ({computed})")]
    SizeMismatch { total: usize, computed: usize },
    #[error("negative or oversized length field {0}")]
    BadLength(i64),
    #[error("BODYCRC mismatch: stored {stored:#x}, computed {computed:#x}")]
    BodyCrc { stored: u32, computed: u32 },
    #[error("topic is empty, not UTF-8, or longer than 32767 bytes")]
    BadTopic,
    #[error("properties string is {0} bytes, above the 32767-byte limit")]
    PropertiesTooLong(usize),
    #[error("this is the end-of-file blank filler, not a record")]
    Blank,
}

/// Java `String.hashCode` over UTF-16 code units (Appendix A).
pub fn java_string_hash(s: &str) -> i32 {
    java_string_hash_continued(0, s)
}

/// Java's `hashCode` of a concatenation, continued over `s` from the hash `h` of what precedes
/// it: `java_string_hash_continued(java_string_hash(a), b) == java_string_hash(a + b)`.
pub fn java_string_hash_continued(mut h: i32, s: &str) -> i32 {
    // ASCII (topics, keys, ids: nearly always) is its own UTF-16, without decoding.
    if s.is_ascii() {
        for byte in s.bytes() {
            h = h.wrapping_mul(31).wrapping_add(i32::from(byte));
        }
        return h;
    }
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    h
}

/// The index's hash of a Java `hashCode`: its absolute value, 0 when that overflows.
pub fn index_hash(java_hash: i32) -> u32 {
    if java_hash == i32::MIN { 0 } else { java_hash.unsigned_abs() }
}

/// An index key's share of the index hash of `topic#key`, kept without the key: a send's
/// summary is read before the topic its record is stored under is final (a delayed or half
/// message moves to a system topic), and a copy of each key was two allocations per message
/// (callgrind 2026-12-07). Java's `hashCode` is a polynomial, hash(a + b) = hash(a) · 31^|b| +
/// hash(b) (wrapping; |b| in UTF-16 units), so `#key`'s hash and 31^|#key| are enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexKeyHash {
    suffix_hash: i32,
    suffix_weight: i32,
}

impl IndexKeyHash {
    pub fn of(key: &str) -> IndexKeyHash {
        // `#key` in UTF-16 units (ASCII, nearly always, is its own UTF-16). A key lies inside a
        // properties string (at most 32 KiB), so the count fits u32.
        let units = 1 + if key.is_ascii() { key.len() } else { key.encode_utf16().count() };
        IndexKeyHash {
            suffix_hash: java_string_hash_continued(java_string_hash("#"), key),
            suffix_weight: 31i32.wrapping_pow(units as u32),
        }
    }

    /// The index hash of `topic#key` ([`crate::index::key_hash`]).
    pub fn under(self, topic: &str) -> u32 {
        self.under_topic_hash(java_string_hash(topic))
    }

    /// [`IndexKeyHash::under`] a topic whose Java hash is known (an append hashes its topic
    /// once for all its keys).
    pub fn under_topic_hash(self, topic_hash: i32) -> u32 {
        index_hash(topic_hash.wrapping_mul(self.suffix_weight).wrapping_add(self.suffix_hash))
    }
}

/// The consume-queue tags code of a `TAGS` value (0 when there is no tag).
pub fn tags_code(tags: Option<&str>) -> i64 {
    match tags {
        Some(t) if !t.is_empty() => i64::from(java_string_hash(t)),
        _ => 0,
    }
}

/// RocketMQ's CRC32': `CRC32(body) & 0x7FFFFFFF`.
pub fn body_crc(body: &[u8]) -> u32 {
    crc32fast::hash(body) & 0x7FFF_FFFF
}

/// A parsed properties string. Keeps insertion order; on duplicate keys the later one wins on
/// lookup, as in Java's `HashMap` fill.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    pub entries: Vec<(String, String)>,
}

impl Properties {
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `key` (replacing an earlier value).
    pub fn insert(&mut self, key: &str, value: &str) {
        self.entries.retain(|(k, _)| k != key);
        self.entries.push((key.to_owned(), value.to_owned()));
    }
    /// Value of `key` (the last occurrence wins).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    /// Encodes as `key \u0001 value \u0002` for each entry (the Java writer's form).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.entries {
            out.extend_from_slice(k.as_bytes());
            out.push(NAME_VALUE_SEPARATOR);
            out.extend_from_slice(v.as_bytes());
            out.push(PROPERTY_SEPARATOR);
        }
        out
    }
    /// Decodes like Java's `string2messageProperties`: split on `\u0002`, then at the first
    /// `\u0001`; pieces with an empty name or value are skipped; a trailing piece without a
    /// terminator is still parsed. Invalid UTF-8 is replaced (Java decodes leniently too).
    pub fn decode(bytes: &[u8]) -> Self {
        let mut entries = Vec::new();
        for piece in bytes.split(|b| *b == PROPERTY_SEPARATOR) {
            let Some(sep) = piece.iter().position(|b| *b == NAME_VALUE_SEPARATOR) else {
                continue;
            };
            let (k, v) = piece.split_at(sep);
            let v = v.get(1..).unwrap_or_default();
            if k.is_empty() || v.is_empty() {
                continue;
            }
            entries.push((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        }
        Properties { entries }
    }
}

/// The (name, value) pairs of an encoded properties string, in order, without allocating:
/// split like [`Properties::decode`] (pieces with an empty name or value, or without a
/// separator, are skipped); pieces that are not UTF-8 are skipped too.
pub fn property_pairs(encoded: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    // The usual string is UTF-8 as a whole: checked once, and split as text (its separators
    // are ASCII, so every piece is UTF-8 too). A check per name and per value cost a message of
    // a batch ~540 instructions (callgrind 2026-12-07). Anything else is split as bytes, piece
    // by piece, as before: one bad piece does not hide the others.
    let (text, bytes) = match std::str::from_utf8(encoded) {
        Ok(text) => (text, &[][..]),
        Err(_) => ("", encoded),
    };
    // The separators are found as bytes: `str::split(char)` and `split_once(char)` searched
    // through core's char searcher, ~120 instructions per search on 20-byte pieces, a tenth of
    // a batched message's instructions (callgrind 2026-12-07). Cutting a UTF-8 text at an
    // ASCII byte leaves UTF-8 on both sides, so `get` never refuses a cut here.
    let mut rest = text;
    let text_pairs = std::iter::from_fn(move || {
        while !rest.is_empty() {
            let end = memchr::memchr(PROPERTY_SEPARATOR, rest.as_bytes()).unwrap_or(rest.len());
            let piece = rest.get(..end).unwrap_or_default();
            rest = rest.get(end + 1..).unwrap_or_default();
            let Some(sep) = memchr::memchr(NAME_VALUE_SEPARATOR, piece.as_bytes()) else { continue };
            let (k, v) = (piece.get(..sep).unwrap_or_default(), piece.get(sep + 1..).unwrap_or_default());
            if !k.is_empty() && !v.is_empty() {
                return Some((k, v));
            }
        }
        None
    });
    let byte_pairs = bytes.split(|b| *b == PROPERTY_SEPARATOR).filter_map(|piece| {
        let sep = piece.iter().position(|b| *b == NAME_VALUE_SEPARATOR)?;
        let (k, v) = piece.split_at(sep);
        let v = v.get(1..)?;
        if k.is_empty() || v.is_empty() {
            return None;
        }
        Some((std::str::from_utf8(k).ok()?, std::str::from_utf8(v).ok()?))
    });
    text_pairs.chain(byte_pairs)
}

/// What the store needs from a message's properties, found in one pass over the encoded
/// string (the broker builds it while it reads the properties for its own checks, so that a
/// send parses them once). Later duplicates win, as with [`Properties::get`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertySummary {
    /// The consume-queue tags code: Java hash of `TAGS`, 0 without tags.
    pub tags_code: i64,
    /// `WAIT=false`: acknowledge once written, even under SYNC_FLUSH.
    pub no_wait: bool,
    /// What the index stores: the `KEYS` elements, then `UNIQ_KEY`, as their share of the
    /// index hash (the topic's is added at append).
    pub index_keys: smallvec::SmallVec<[IndexKeyHash; 2]>,
}

impl PropertySummary {
    /// Scans an encoded properties string.
    pub fn scan(encoded: &[u8]) -> PropertySummary {
        let (mut tags, mut wait, mut keys, mut uniq) = (None, None, None, None);
        for (name, value) in property_pairs(encoded) {
            match name {
                prop::TAGS => tags = Some(value),
                prop::WAIT => wait = Some(value),
                prop::KEYS => keys = Some(value),
                prop::UNIQ_KEY => uniq = Some(value),
                _ => {}
            }
        }
        PropertySummary::of(tags, wait, keys, uniq)
    }

    /// The summary of the given property values.
    pub fn of(tags: Option<&str>, wait: Option<&str>, keys: Option<&str>, uniq_key: Option<&str>) -> PropertySummary {
        let keys = keys.into_iter().flat_map(|k| k.split(' ')).filter(|s| !s.is_empty());
        let index_keys = keys.chain(uniq_key).map(IndexKeyHash::of).collect();
        PropertySummary { tags_code: tags_code(tags), no_wait: wait == Some("false"), index_keys }
    }
}

/// What a producer hands the store for one message. The store fills in QUEUEOFFSET,
/// PHYSICALOFFSET, STORETIMESTAMP and BODYCRC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInput {
    /// Shared by the messages of a batch: a `String` each was an allocation per message.
    pub topic: Arc<str>,
    pub queue_id: QueueId,
    pub flag: i32,
    /// Shared with the request it arrived in: the store copies it once, into its write batch.
    pub body: Bytes,
    /// Encoded properties string (see [`Properties::encode`]).
    pub properties: Vec<u8>,
    /// What the store needs from `properties`, when the caller has already scanned them; it
    /// must describe `properties` exactly. `None`: the store scans them.
    pub summary: Option<PropertySummary>,
    pub sys_flag: i32,
    pub born_timestamp_ms: i64,
    pub born_host: SocketAddr,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
}

impl MessageInput {
    /// A plain message with default hosts (for tests and tools).
    pub fn simple(topic: &str, queue_id: QueueId, body: impl Into<Bytes>, properties: &Properties) -> Self {
        let host = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 10911);
        MessageInput {
            topic: topic.into(),
            queue_id,
            flag: 0,
            body: body.into(),
            properties: properties.encode(),
            summary: None,
            sys_flag: 0,
            born_timestamp_ms: 0,
            born_host: host,
            store_host: host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        }
    }

    /// The sysflag as stored: host-family bits follow the actual addresses.
    pub fn effective_sys_flag(&self) -> i32 {
        let mut f = self.sys_flag & !(sysflag::BORNHOST_V6 | sysflag::STOREHOST_V6);
        if self.born_host.is_ipv6() {
            f |= sysflag::BORNHOST_V6;
        }
        if self.store_host.is_ipv6() {
            f |= sysflag::STOREHOST_V6;
        }
        f
    }

    /// Whether this message gets a consume-queue entry (PREPARED and ROLLBACK do not).
    pub fn is_dispatched(&self) -> bool {
        is_dispatched_sys_flag(self.sys_flag)
    }

    /// Size of the encoded record in bytes.
    pub fn encoded_len(&self) -> Result<usize, RecordError> {
        check_lengths(&self.topic, &self.properties)?;
        let sf = self.effective_sys_flag();
        Ok(record_len(sf, self.body.len(), self.topic.len(), self.properties.len()))
    }
}

/// Whether a record with this sysflag is dispatched to a consume queue.
pub fn is_dispatched_sys_flag(sys_flag: i32) -> bool {
    let t = sys_flag & sysflag::TRANSACTION_MASK;
    t != sysflag::TRANSACTION_PREPARED && t != sysflag::TRANSACTION_ROLLBACK
}

fn check_lengths(topic: &str, properties: &[u8]) -> Result<(), RecordError> {
    if topic.is_empty() || topic.len() > i16::MAX as usize {
        return Err(RecordError::BadTopic);
    }
    if properties.len() > MAX_PROPERTIES_LEN {
        return Err(RecordError::PropertiesTooLong(properties.len()));
    }
    Ok(())
}

fn host_len(v6: bool) -> usize {
    if v6 { HOST_V6_LEN } else { HOST_V4_LEN }
}

fn topic_len_field(topic_len: usize) -> usize {
    if topic_len > MAX_V1_TOPIC_LEN { 2 } else { 1 }
}

/// Total record size for the given field lengths.
pub fn record_len(sys_flag: i32, body: usize, topic: usize, props: usize) -> usize {
    V1_FIXED_LEN_V4 - 2 * HOST_V4_LEN
        + host_len(sys_flag & sysflag::BORNHOST_V6 != 0)
        + host_len(sys_flag & sysflag::STOREHOST_V6 != 0)
        - 1
        + topic_len_field(topic)
        + body
        + topic
        + props
}

fn put_host(out: &mut Vec<u8>, host: &SocketAddr) {
    match host.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&i32::from(host.port()).to_be_bytes());
}

/// Fields the store assigns at append time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreAssigned {
    pub queue_offset: u64,
    pub physical_offset: ClientPhysicalOffset,
    pub store_timestamp_ms: i64,
}

/// Appends the encoded record for `msg` to `out`; returns its length.
pub fn encode_record(
    msg: &MessageInput,
    assigned: StoreAssigned,
    out: &mut Vec<u8>,
) -> Result<usize, RecordError> {
    let total = msg.encoded_len()?;
    let sf = msg.effective_sys_flag();
    let start = out.len();
    out.reserve(total);
    let magic = if msg.topic.len() > MAX_V1_TOPIC_LEN { MAGIC_V2 } else { MAGIC_V1 };
    // Java stores QUEUEOFFSET 0 for PREPARED/ROLLBACK records.
    let queue_offset = if is_dispatched_sys_flag(sf) { assigned.queue_offset } else { 0 };
    out.extend_from_slice(&(total as i32).to_be_bytes());
    out.extend_from_slice(&magic.to_be_bytes());
    out.extend_from_slice(&body_crc(&msg.body).to_be_bytes());
    out.extend_from_slice(&msg.queue_id.0.to_be_bytes());
    out.extend_from_slice(&msg.flag.to_be_bytes());
    out.extend_from_slice(&queue_offset.to_be_bytes());
    out.extend_from_slice(&assigned.physical_offset.0.to_be_bytes());
    out.extend_from_slice(&sf.to_be_bytes());
    out.extend_from_slice(&msg.born_timestamp_ms.to_be_bytes());
    put_host(out, &msg.born_host);
    out.extend_from_slice(&assigned.store_timestamp_ms.to_be_bytes());
    put_host(out, &msg.store_host);
    out.extend_from_slice(&msg.reconsume_times.to_be_bytes());
    out.extend_from_slice(&msg.prepared_transaction_offset.to_be_bytes());
    out.extend_from_slice(&(msg.body.len() as i32).to_be_bytes());
    out.extend_from_slice(&msg.body);
    if magic == MAGIC_V2 {
        out.extend_from_slice(&(msg.topic.len() as i16).to_be_bytes());
    } else {
        out.push(msg.topic.len() as u8);
    }
    out.extend_from_slice(msg.topic.as_bytes());
    out.extend_from_slice(&(msg.properties.len() as i16).to_be_bytes());
    out.extend_from_slice(&msg.properties);
    assert_eq!(out.len() - start, total, "record_len disagrees with the encoder");
    Ok(total)
}

/// A decoded record borrowing from the buffer it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub total_size: usize,
    pub magic: u32,
    pub body_crc: u32,
    pub queue_id: QueueId,
    pub flag: i32,
    pub queue_offset: i64,
    pub physical_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp_ms: i64,
    pub born_host: SocketAddr,
    pub store_timestamp_ms: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: &'a [u8],
    pub topic: &'a str,
    pub properties: &'a [u8],
}

impl RecordView<'_> {
    pub fn properties(&self) -> Properties {
        Properties::decode(self.properties)
    }
    /// offsetMsgId of this record (§5.6).
    pub fn offset_msg_id(&self) -> String {
        offset_msg_id(&self.store_host, ClientPhysicalOffset(self.physical_offset))
    }
}

/// A bounds-checked big-endian reader over a byte slice.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self.pos.checked_add(n).ok_or(RecordError::BadLength(n as i64))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(RecordError::Truncated { need: end, have: self.buf.len() })?;
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.array::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn host(&mut self, v6: bool) -> Result<SocketAddr, RecordError> {
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))
        };
        let port = self.i32()?;
        Ok(SocketAddr::new(ip, port as u16))
    }
}

/// Reads the TOTALSIZE and MAGICCODE of whatever starts at `buf` (record or blank filler).
pub fn peek_header(buf: &[u8]) -> Result<(i32, u32), RecordError> {
    let mut r = Reader { buf, pos: 0 };
    Ok((r.i32()?, r.u32()?))
}

/// Decodes one record at the start of `buf`. `verify_crc` also checks BODYCRC.
/// Returns [`RecordError::Blank`] for the end-of-file filler.
pub fn decode_record(buf: &[u8], verify_crc: bool) -> Result<RecordView<'_>, RecordError> {
    let (total, magic) = peek_header(buf)?;
    if magic == BLANK_MAGIC {
        return Err(RecordError::Blank);
    }
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return Err(RecordError::BadMagic(magic));
    }
    if total < V1_FIXED_LEN_V4 as i32 {
        return Err(RecordError::BadLength(i64::from(total)));
    }
    let total = total as usize;
    let rec = buf.get(..total).ok_or(RecordError::Truncated { need: total, have: buf.len() })?;
    let mut r = Reader { buf: rec, pos: MAGIC_POS + 4 };
    let body_crc_stored = r.u32()?;
    let queue_id = QueueId(r.u32()?);
    let flag = r.i32()?;
    let queue_offset = r.i64()?;
    let physical_offset = r.i64()?;
    let sys_flag = r.i32()?;
    let born_timestamp_ms = r.i64()?;
    let born_host = r.host(sys_flag & sysflag::BORNHOST_V6 != 0)?;
    let store_timestamp_ms = r.i64()?;
    let store_host = r.host(sys_flag & sysflag::STOREHOST_V6 != 0)?;
    let reconsume_times = r.i32()?;
    let prepared_transaction_offset = r.i64()?;
    let body_len = r.i32()?;
    if body_len < 0 {
        return Err(RecordError::BadLength(i64::from(body_len)));
    }
    let body = r.take(body_len as usize)?;
    let topic_len = if magic == MAGIC_V2 {
        let l = r.i16()?;
        if l < 0 {
            return Err(RecordError::BadLength(i64::from(l)));
        }
        l as usize
    } else {
        usize::from(r.u8()?)
    };
    let topic = std::str::from_utf8(r.take(topic_len)?).map_err(|_| RecordError::BadTopic)?;
    if topic.is_empty() {
        return Err(RecordError::BadTopic);
    }
    let props_len = r.i16()?;
    if props_len < 0 {
        return Err(RecordError::BadLength(i64::from(props_len)));
    }
    let properties = r.take(props_len as usize)?;
    if r.pos != total {
        return Err(RecordError::SizeMismatch { total, computed: r.pos });
    }
    if verify_crc {
        let computed = body_crc(body);
        if computed != body_crc_stored {
            return Err(RecordError::BodyCrc { stored: body_crc_stored, computed });
        }
    }
    Ok(RecordView {
        total_size: total,
        magic,
        body_crc: body_crc_stored,
        queue_id,
        flag,
        queue_offset,
        physical_offset,
        sys_flag,
        born_timestamp_ms,
        born_host,
        store_timestamp_ms,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body,
        topic,
        properties,
    })
}

/// Decodes a pull/query/view body the way the Java client does: record after record, stopping
/// silently at the first one that cannot be decoded. Returns the records and the number of bytes
/// consumed (less than `buf.len()` when it stopped early).
pub fn decode_body(buf: &[u8]) -> (Vec<RecordView<'_>>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(rest) = buf.get(pos..) {
        if rest.is_empty() {
            break;
        }
        match decode_record(rest, false) {
            Ok(r) => {
                pos += r.total_size;
                out.push(r);
            }
            Err(_) => break,
        }
    }
    (out, pos)
}

/// Strict variant of [`decode_body`]: every byte must belong to a valid record (CRC checked).
pub fn decode_body_strict(buf: &[u8]) -> Result<Vec<RecordView<'_>>, (usize, RecordError)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(rest) = buf.get(pos..) {
        if rest.is_empty() {
            break;
        }
        let r = decode_record(rest, true).map_err(|e| (pos, e))?;
        pos += r.total_size;
        out.push(r);
    }
    Ok(out)
}

/// An offsetMsgId: the store host and the physical offset of one record, written (by
/// `Display`) as uppercase hex of store-host IP ‖ port (int32) ‖ physical offset (int64).
/// Kept as its parts, not as text: an append answers one per message, and a `String` each was
/// an allocation per message of a batch (callgrind 2026-12-07).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetMsgId {
    pub store_host: SocketAddr,
    pub offset: ClientPhysicalOffset,
}

impl std::fmt::Display for OffsetMsgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.hex().as_str())
    }
}

/// An offsetMsgId's text, on the stack: 32 hex digits (IPv4 host) or 56 (IPv6).
#[derive(Debug, Clone, Copy)]
pub struct OffsetMsgIdText {
    text: [u8; 56],
    len: usize,
}

impl OffsetMsgIdText {
    pub fn as_str(&self) -> &str {
        // Hex digits only: always UTF-8.
        std::str::from_utf8(self.text.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

impl OffsetMsgId {
    /// The id's text, without the formatting machinery (a batch's response writes 16 of them).
    pub fn hex(&self) -> OffsetMsgIdText {
        let (v4, v6);
        let ip: &[u8] = match self.store_host.ip() {
            IpAddr::V4(ip) => {
                v4 = ip.octets();
                &v4
            }
            IpAddr::V6(ip) => {
                v6 = ip.octets();
                &v6
            }
        };
        let mut text = [0u8; 56];
        let mut len = 0;
        for part in [ip, &i32::from(self.store_host.port()).to_be_bytes(), &self.offset.0.to_be_bytes()] {
            for byte in part {
                // A u8 always indexes the 256-entry table.
                let pair = HEX_UPPER_PAIRS.get(usize::from(*byte)).copied().unwrap_or_default();
                if let Some(slot) = text.get_mut(len..len + 2) {
                    slot.copy_from_slice(&pair);
                }
                len += 2;
            }
        }
        OffsetMsgIdText { text, len }
    }
}

/// The two uppercase hex digits of every byte (an offsetMsgId is written a byte at a time).
// Evaluated at compile time: an index out of range would fail the build, not panic.
#[allow(clippy::indexing_slicing)]
static HEX_UPPER_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut table = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = [HEX[byte >> 4], HEX[byte & 0xF]];
        byte += 1;
    }
    table
};

/// offsetMsgId as text: uppercase hex of store-host IP ‖ port (int32) ‖ physical offset (int64).
pub fn offset_msg_id(store_host: &SocketAddr, offset: ClientPhysicalOffset) -> String {
    OffsetMsgId { store_host: *store_host, offset }.to_string()
}

/// Decodes an offsetMsgId (32 or 56 hex chars) into store host and physical offset.
pub fn decode_offset_msg_id(id: &str) -> Option<(SocketAddr, ClientPhysicalOffset)> {
    if !id.is_ascii() || (id.len() != 32 && id.len() != 56) {
        return None;
    }
    let mut bytes = Vec::with_capacity(id.len() / 2);
    for i in (0..id.len()).step_by(2) {
        bytes.push(u8::from_str_radix(id.get(i..i + 2)?, 16).ok()?);
    }
    let mut r = Reader { buf: &bytes, pos: 0 };
    let host = r.host(bytes.len() == 28).ok()?;
    let off = r.i64().ok()?;
    Some((host, ClientPhysicalOffset(off)))
}

/// A batch sent by SEND_BATCH_MESSAGE is one body holding several messages in the *client*
/// batch layout; the broker unpacks it into [`MessageInput`]s before calling the store. This
/// helper builds the list from (body, properties) pairs for one topic/queue.
pub fn batch_inputs(template: &MessageInput, items: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<MessageInput> {
    items
        .into_iter()
        .map(|(body, properties)| MessageInput { body: body.into(), properties, summary: None, ..template.clone() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(topic: &str, body: &[u8], props: &[(&str, &str)]) -> MessageInput {
        let mut p = Properties::new();
        for (k, v) in props {
            p.insert(k, v);
        }
        MessageInput::simple(topic, QueueId(3), body.to_vec(), &p)
    }

    #[test]
    fn java_hash_matches_reference_values() {
        assert_eq!(java_string_hash("TagA"), 2_598_919);
        assert_eq!(java_string_hash("*"), 42);
        assert_eq!(java_string_hash(""), 0);
        // Non-BMP characters hash as two UTF-16 surrogate units.
        assert_eq!(java_string_hash("😀"), 0xD83D * 31 + 0xDE00);
        assert_eq!(tags_code(None), 0);
    }

    #[test]
    fn body_crc_is_masked_ieee() {
        // CRC32("123456789") = 0xCBF43926; masked drops the top bit.
        assert_eq!(body_crc(b"123456789"), 0xCBF4_3926 & 0x7FFF_FFFF);
    }

    #[test]
    fn v1_ipv4_layout_matches_protocol_table() {
        let m = sample("TopicTest", b"hello", &[("TAGS", "TagA")]);
        let mut out = Vec::new();
        let assigned = StoreAssigned {
            queue_offset: 7,
            physical_offset: ClientPhysicalOffset(1234),
            store_timestamp_ms: 99,
        };
        let n = encode_record(&m, assigned, &mut out).unwrap();
        assert_eq!(n, 91 + 5 + 9 + m.properties.len());
        assert_eq!(&out[4..8], &MAGIC_V1.to_be_bytes());
        assert_eq!(&out[20..28], &7i64.to_be_bytes());
        assert_eq!(&out[28..36], &1234i64.to_be_bytes());
        assert_eq!(&out[56..64], &99i64.to_be_bytes());
        let r = decode_record(&out, true).unwrap();
        assert_eq!(r.body, b"hello");
        assert_eq!(r.topic, "TopicTest");
        assert_eq!(r.properties().get("TAGS"), Some("TagA"));
        assert_eq!(r.store_timestamp_ms, 99);
    }

    #[test]
    fn ipv6_hosts_shift_fields_and_set_flags() {
        let mut m = sample("T", b"x", &[]);
        m.born_host = "[::1]:1234".parse().unwrap();
        let mut out = Vec::new();
        let a = StoreAssigned {
            queue_offset: 0,
            physical_offset: ClientPhysicalOffset(0),
            store_timestamp_ms: 5,
        };
        encode_record(&m, a, &mut out).unwrap();
        let r = decode_record(&out, true).unwrap();
        assert_eq!(r.sys_flag & sysflag::BORNHOST_V6, sysflag::BORNHOST_V6);
        assert_eq!(r.born_host, m.born_host);
        assert_eq!(r.store_timestamp_ms, 5);
        assert_eq!(out.len(), 91 + 12 + 1 + 1);
    }

    #[test]
    fn long_topic_uses_v2_magic() {
        let topic = "%RETRY%".to_owned() + &"g".repeat(130);
        let m = sample(&topic, b"b", &[]);
        let mut out = Vec::new();
        let a = StoreAssigned {
            queue_offset: 0,
            physical_offset: ClientPhysicalOffset(0),
            store_timestamp_ms: 0,
        };
        encode_record(&m, a, &mut out).unwrap();
        let r = decode_record(&out, true).unwrap();
        assert_eq!(r.magic, MAGIC_V2);
        assert_eq!(r.topic, topic);
    }

    #[test]
    fn properties_decode_follows_java_rules() {
        let raw = b"A\x011\x02\x01x\x02B\x01\x02C\x012\x02A\x013";
        let p = Properties::decode(raw);
        assert_eq!(p.get("A"), Some("3"), "later duplicate wins, unterminated tail parsed");
        assert_eq!(p.get("B"), None, "empty value skipped");
        assert_eq!(p.get("C"), Some("2"));
    }

    /// `property_pairs` as it was before it checked the whole string once: every piece split
    /// and checked as bytes.
    fn pairs_piece_by_piece(encoded: &[u8]) -> Vec<(&str, &str)> {
        encoded
            .split(|b| *b == PROPERTY_SEPARATOR)
            .filter_map(|piece| {
                let sep = piece.iter().position(|b| *b == NAME_VALUE_SEPARATOR)?;
                let (k, v) = (&piece[..sep], &piece[sep + 1..]);
                if k.is_empty() || v.is_empty() {
                    return None;
                }
                Some((std::str::from_utf8(k).ok()?, std::str::from_utf8(v).ok()?))
            })
            .collect()
    }

    proptest! {
        /// Read as text when the whole string is UTF-8, as bytes otherwise: the same pairs as
        /// piece by piece, bad pieces (invalid UTF-8, an empty name or value, no separator)
        /// skipped either way.
        #[test]
        fn property_pairs_are_the_valid_pieces(pieces in proptest::collection::vec(proptest::collection::vec(prop_oneof![
            Just(NAME_VALUE_SEPARATOR), Just(PROPERTY_SEPARATOR), Just(b'a'), Just(b'K'), Just(0xC3u8), Just(0xA9u8), Just(0xFFu8),
        ], 0..6), 0..6)) {
            let encoded = pieces.concat();
            prop_assert_eq!(property_pairs(&encoded).collect::<Vec<_>>(), pairs_piece_by_piece(&encoded));
        }
    }

    #[test]
    fn property_pairs_skip_only_the_bad_pieces() {
        let encoded = b"TAGS\x01a\x02bad\x01\xFF\x02KEYS\x01k1 k2\x02\x01v\x02n\x01\x02UNIQ_KEY\x01\xC3\xA9";
        let pairs: Vec<_> = property_pairs(encoded).collect();
        assert_eq!(pairs, [("TAGS", "a"), ("KEYS", "k1 k2"), ("UNIQ_KEY", "é")]);
        let valid = b"TAGS\x01a\x02\x02KEYS\x01k1\x02";
        assert_eq!(property_pairs(valid).collect::<Vec<_>>(), [("TAGS", "a"), ("KEYS", "k1")]);
    }

    #[test]
    fn offset_msg_id_round_trips() {
        let host: SocketAddr = "10.1.2.3:10911".parse().unwrap();
        let id = offset_msg_id(&host, ClientPhysicalOffset(0x1234));
        assert_eq!(id, "0A010203".to_owned() + "00002A9F" + "0000000000001234");
        assert_eq!(decode_offset_msg_id(&id), Some((host, ClientPhysicalOffset(0x1234))));
        let h6: SocketAddr = "[fe80::1]:9".parse().unwrap();
        let id6 = offset_msg_id(&h6, ClientPhysicalOffset(5));
        assert_eq!(id6, "FE800000000000000000000000000001".to_owned() + "00000009" + "0000000000000005");
        assert_eq!(decode_offset_msg_id(&id6), Some((h6, ClientPhysicalOffset(5))));
        assert_eq!(decode_offset_msg_id("zz"), None);
    }

    #[test]
    fn decode_body_stops_at_first_bad_record() {
        let mut out = Vec::new();
        let a = StoreAssigned {
            queue_offset: 0,
            physical_offset: ClientPhysicalOffset(0),
            store_timestamp_ms: 0,
        };
        encode_record(&sample("T", b"one", &[]), a, &mut out).unwrap();
        let first = out.len();
        encode_record(&sample("T", b"two", &[]), a, &mut out).unwrap();
        out.extend_from_slice(&[0xFF; 10]);
        let (recs, used) = decode_body(&out);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].body, b"two");
        assert!(used > first);
        assert!(decode_body_strict(&out).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_record(&bytes, true);
            let _ = decode_body(&bytes);
            let _ = Properties::decode(&bytes);
        }

        #[test]
        fn encode_decode_round_trip(
            body in proptest::collection::vec(any::<u8>(), 0..200),
            topic in "[a-zA-Z0-9_%-]{1,140}",
            tag in "[a-zA-Z]{0,8}",
            qoff in 0u64..1_000_000,
            v6 in any::<bool>(),
        ) {
            let mut p = Properties::new();
            if !tag.is_empty() { p.insert("TAGS", &tag); }
            let mut m = MessageInput::simple(&topic, QueueId(1), body.clone(), &p);
            if v6 { m.store_host = "[::2]:10911".parse().unwrap(); }
            let mut out = Vec::new();
            let a = StoreAssigned { queue_offset: qoff, physical_offset: ClientPhysicalOffset(77), store_timestamp_ms: 1 };
            let n = encode_record(&m, a, &mut out).unwrap();
            prop_assert_eq!(n, out.len());
            let r = decode_record(&out, true).unwrap();
            prop_assert_eq!(r.body, &body[..]);
            prop_assert_eq!(r.topic, topic.as_str());
            prop_assert_eq!(r.queue_offset, qoff as i64);
            prop_assert_eq!(r.store_host, m.store_host);
            // Any strict prefix fails to decode instead of panicking.
            for cut in [0, 3, 8, n / 2, n - 1] {
                prop_assert!(decode_record(&out[..cut], true).is_err());
            }
        }
    }
}
