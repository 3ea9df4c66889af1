//! The bytes of a replication stream (PROTOCOL.md §7.3), plus FerroMQ's handshake.
//!
//! A FerroMQ master keeps one stream per shard, so a connection first says which shard it
//! follows: the slave sends a [`Hello`] (shard index and the shard count it runs with), the
//! master answers with a [`Welcome`] (accepted, with the master shard's written log end, or
//! refused with a reason). The slave then names where its log could continue (resume points,
//! see [`encode_resume_points`]) and the master says which one its log agrees with. After that
//! the stream is Java's: the slave sends 8-byte offset
//! reports, the master sends units `{offset i64, size i32, bytes}`; all big-endian. Offsets
//! are the shard's *local* commit-log offsets (segment file names), which both ends share byte
//! for byte; client-visible offsets travel inside the records.

use std::fmt;

use ferromq_store::ResumePoint;
use ferromq_store::commitlog::MARKER_LEN;

/// First bytes of a [`Hello`] and of a [`Welcome`]: "FMQR".
pub const MAGIC: [u8; 4] = *b"FMQR";
/// Version of the handshake and stream this build speaks.
pub const VERSION: u16 = 1;
/// Bytes of an encoded [`Hello`].
pub const HELLO_LEN: usize = 12;
/// Bytes of a [`Welcome`] before its reason text.
pub const WELCOME_HEAD_LEN: usize = 16;
/// Longest reason a [`Welcome`] carries.
pub const MAX_REASON_BYTES: usize = 1024;
/// Bytes of a slave's offset report.
pub const REPORT_LEN: usize = 8;
/// Bytes of a unit header (`offset i64`, `size i32`).
pub const UNIT_HEADER_LEN: usize = 12;

/// What a slave's shard says when it connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub version: u16,
    /// The shard index the connection follows.
    pub shard: u16,
    /// How many shards the slave runs (must equal the master's).
    pub shard_count: u16,
}

impl Hello {
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.version.to_be_bytes());
        b[6..8].copy_from_slice(&self.shard.to_be_bytes());
        b[8..10].copy_from_slice(&self.shard_count.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8; HELLO_LEN]) -> Result<Hello, String> {
        if b[..4] != MAGIC {
            return Err(format!("not a FerroMQ replication handshake (first bytes {:02x?})", &b[..4]));
        }
        Ok(Hello {
            version: u16::from_be_bytes([b[4], b[5]]),
            shard: u16::from_be_bytes([b[6], b[7]]),
            shard_count: u16::from_be_bytes([b[8], b[9]]),
        })
    }

    /// Why a master with `shard_count` shards refuses this hello, if it does.
    pub fn refusal(&self, shard_count: u16) -> Option<String> {
        if self.version != VERSION {
            return Some(format!("replication protocol version {} is not {VERSION}, which this master speaks", self.version));
        }
        if self.shard_count != shard_count {
            return Some(format!(
                "the slave runs {} shards and the master {shard_count}: shard i of a slave follows shard i of its master, so both must set the same `shards`",
                self.shard_count
            ));
        }
        if self.shard >= shard_count {
            return Some(format!("there is no shard {} (the master has {shard_count})", self.shard));
        }
        None
    }
}

/// The master's answer to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Welcome {
    /// Followed by the stream; `written` is the master shard's written log end.
    Accepted { written: u64 },
    Refused { reason: String },
}

impl Welcome {
    pub fn encode(&self) -> Vec<u8> {
        let (status, offset, reason) = match self {
            Welcome::Accepted { written } => (0u16, *written, ""),
            Welcome::Refused { reason } => (1u16, 0, reason.as_str()),
        };
        let reason = truncate(reason, MAX_REASON_BYTES);
        let mut b = Vec::with_capacity(WELCOME_HEAD_LEN + reason.len());
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&status.to_be_bytes());
        b.extend_from_slice(&(reason.len() as u16).to_be_bytes());
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend_from_slice(reason.as_bytes());
        b
    }

    /// Decodes the fixed head: the status, the reason's length and the offset.
    pub fn decode_head(b: &[u8; WELCOME_HEAD_LEN]) -> Result<(u16, usize, u64), String> {
        if b[..4] != MAGIC {
            return Err("the master did not answer the replication handshake (is haMasterAddress a FerroMQ master's HA port?)".into());
        }
        let status = u16::from_be_bytes([b[4], b[5]]);
        let reason_len = usize::from(u16::from_be_bytes([b[6], b[7]]));
        if reason_len > MAX_REASON_BYTES {
            return Err(format!("handshake answer with a {reason_len}-byte reason"));
        }
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&b[8..16]);
        Ok((status, reason_len, u64::from_be_bytes(offset)))
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A unit header: the offset of the first byte that follows and how many follow (0: a
/// heartbeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitHeader {
    pub offset: u64,
    pub size: u32,
}

impl UnitHeader {
    pub fn encode(&self) -> [u8; UNIT_HEADER_LEN] {
        let mut b = [0u8; UNIT_HEADER_LEN];
        b[..8].copy_from_slice(&(self.offset as i64).to_be_bytes());
        b[8..].copy_from_slice(&(self.size as i32).to_be_bytes());
        b
    }

    /// Decodes a header; a negative offset or size is a broken stream.
    pub fn decode(b: &[u8]) -> Result<UnitHeader, String> {
        let (Some(o), Some(s)) = (b.get(..8), b.get(8..12)) else { return Err("short unit header".into()) };
        let offset = i64::from_be_bytes(o.try_into().map_err(|_| "short unit header")?);
        let size = i32::from_be_bytes(s.try_into().map_err(|_| "short unit header")?);
        match (u64::try_from(offset), u32::try_from(size)) {
            (Ok(offset), Ok(size)) => Ok(UnitHeader { offset, size }),
            _ => Err(format!("unit header with offset {offset} and size {size}")),
        }
    }
}

/// Most resume points a slave sends after the handshake.
pub const MAX_RESUME_POINTS: usize = 64;
/// Bytes of one encoded resume point: `end u64 | has_marker u8 | marker [24]`.
pub const RESUME_POINT_LEN: usize = 8 + 1 + MARKER_LEN;
/// The master's answer when no resume point matches its log.
const NO_AGREEMENT: u64 = u64::MAX;

/// After the handshake the slave names where its log could continue from the master's
/// ([`ferromq_store::Store::replica_resume_points`]): `count u16`, then the points, newest
/// first. The master answers with the end of the first one its log agrees with (8 bytes;
/// all ones: none) — so that two logs of which one is no longer than the other but which
/// differ (a master that lost an unsynced tail and then wrote more than it lost) are told
/// apart, which Java's length-only protocol cannot.
pub fn encode_resume_points(points: &[ResumePoint]) -> Vec<u8> {
    let points = points.get(..points.len().min(MAX_RESUME_POINTS)).unwrap_or_default();
    let mut b = Vec::with_capacity(2 + points.len() * RESUME_POINT_LEN);
    b.extend_from_slice(&(points.len() as u16).to_be_bytes());
    for p in points {
        b.extend_from_slice(&p.end.to_be_bytes());
        b.push(u8::from(p.marker.is_some()));
        b.extend_from_slice(&p.marker.unwrap_or([0u8; MARKER_LEN]));
    }
    b
}

/// The number of points that follow a count; more than [`MAX_RESUME_POINTS`] is a broken
/// stream.
pub fn decode_resume_count(b: [u8; 2]) -> Result<usize, String> {
    let n = usize::from(u16::from_be_bytes(b));
    if n > MAX_RESUME_POINTS { Err(format!("{n} resume points (at most {MAX_RESUME_POINTS})")) } else { Ok(n) }
}

/// Decodes `count` points.
pub fn decode_resume_points(b: &[u8]) -> Result<Vec<ResumePoint>, String> {
    b.chunks(RESUME_POINT_LEN)
        .map(|c| {
            let (Some(end), Some(flag), Some(marker)) = (c.get(..8), c.get(8), c.get(9..RESUME_POINT_LEN)) else {
                return Err("short resume point".to_owned());
            };
            let end = u64::from_be_bytes(end.try_into().map_err(|_| "short resume point")?);
            let marker: [u8; MARKER_LEN] = marker.try_into().map_err(|_| "short resume point")?;
            match flag {
                0 => Ok(ResumePoint { end, marker: None }),
                1 => Ok(ResumePoint { end, marker: Some(marker) }),
                other => Err(format!("resume point flag {other}")),
            }
        })
        .collect()
}

/// The master's answer: the agreed end, if any.
pub fn encode_agreed(end: Option<u64>) -> [u8; 8] {
    end.unwrap_or(NO_AGREEMENT).to_be_bytes()
}

pub fn decode_agreed(b: [u8; 8]) -> Option<u64> {
    Some(u64::from_be_bytes(b)).filter(|v| *v != NO_AGREEMENT)
}

/// A slave's report: its acknowledged log end.
pub fn encode_report(offset: u64) -> [u8; REPORT_LEN] {
    (offset as i64).to_be_bytes()
}

/// Decodes a report; a negative one is a broken stream.
pub fn decode_report(b: &[u8; REPORT_LEN]) -> Result<u64, String> {
    let v = i64::from_be_bytes(*b);
    u64::try_from(v).map_err(|_| format!("negative offset report {v}"))
}

impl fmt::Display for Hello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {} of {} (protocol {})", self.shard, self.shard_count, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_round_trips_and_mismatches_are_named() {
        let hello = Hello { version: VERSION, shard: 1, shard_count: 2 };
        assert_eq!(Hello::decode(&hello.encode()), Ok(hello));
        assert_eq!(hello.refusal(2), None);
        assert!(hello.refusal(4).is_some_and(|r| r.contains("runs 2 shards and the master 4")));
        assert!(Hello { shard: 2, ..hello }.refusal(2).is_some_and(|r| r.contains("no shard 2")));
        assert!(Hello::decode(&[0u8; HELLO_LEN]).is_err());

        let w = Welcome::Refused { reason: "é".repeat(600) }.encode();
        let head: [u8; WELCOME_HEAD_LEN] = w[..WELCOME_HEAD_LEN].try_into().unwrap();
        let (status, len, _) = Welcome::decode_head(&head).unwrap();
        assert_eq!((status, len), (1, MAX_REASON_BYTES));
        assert!(std::str::from_utf8(&w[WELCOME_HEAD_LEN..]).is_ok(), "cut on a character boundary");
        let ok = Welcome::Accepted { written: 77 }.encode();
        assert_eq!(Welcome::decode_head(&ok[..].try_into().unwrap()), Ok((0, 0, 77)));
    }

    #[test]
    fn units_and_reports_are_javas_big_endian_layout() {
        let h = UnitHeader { offset: 0x0102_0304_0506_0708, size: 32 * 1024 };
        assert_eq!(h.encode(), [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x80, 0]);
        assert_eq!(UnitHeader::decode(&h.encode()), Ok(h));
        assert!(UnitHeader::decode(&[0xff; 12]).is_err());
        assert_eq!(decode_report(&encode_report(1 << 40)), Ok(1 << 40));
        assert!(decode_report(&[0xff; 8]).is_err());
    }

    #[test]
    fn resume_points_round_trip_and_are_bounded() {
        let points = vec![ResumePoint { end: 4096 + 300, marker: Some([7u8; MARKER_LEN]) }, ResumePoint { end: 4096, marker: None }];
        let b = encode_resume_points(&points);
        let n = decode_resume_count([b[0], b[1]]).unwrap();
        assert_eq!(n, 2);
        assert_eq!(decode_resume_points(&b[2..]).unwrap(), points);
        assert!(decode_resume_count(65u16.to_be_bytes()).is_err());
        assert!(decode_resume_points(&[0u8; 10]).is_err());
        assert_eq!(decode_agreed(encode_agreed(Some(99))), Some(99));
        assert_eq!(decode_agreed(encode_agreed(None)), None);
    }
}
