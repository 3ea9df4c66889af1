//! REGISTER_BROKER body decoding (PROTOCOL.md §2.6 code 103): the `RegisterBrokerBody` JSON of
//! 4.x and 5.x brokers (and the bare `TopicConfigSerializeWrapper` of pre-3.0.11 ones), the
//! zlib-compressed form of `compressedRegister=true`, the `bodyCrc32` check, plus the
//! `TopicConfig` and `DataVersion` values they carry (§4.4, §4.6).
//!
//! Owns no state. Decoders are bounded and total: garbage input yields a `RouteError`, never a
//! panic. Encoders (`to_json`, `to_compressed`) exist for tests, size measurements and for the
//! FerroMQ broker's own registration.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;

use crate::fastjson::{
    null_as_default, parse_tolerant, parse_tolerant_object, write_key,
};
use crate::error::RouteError;

pub use ferromq_net::wire::{DEFAULT_QUEUE_NUMS, DataVersion, TopicConfig};

/// PERM_READ | PERM_WRITE (§8.2).
pub const DEFAULT_TOPIC_PERM: i32 = ferromq_net::wire::PERM_READ | ferromq_net::wire::PERM_WRITE;
/// Java `TopicFilterType.SINGLE_TAG`.
pub const DEFAULT_TOPIC_FILTER_TYPE: &str = ferromq_net::wire::SINGLE_TAG;

/// Parses a DataVersion body (QUERY_DATA_VERSION request). Missing fields are 0.
pub fn parse_data_version(body: &[u8]) -> Result<DataVersion, RouteError> {
    parse_tolerant_object(body).map_err(|e| RouteError::MalformedBody(format!("DataVersion: {e}")))
}

/// Parses the compressed-body text form. Java splits on single spaces and needs at least
/// five fields; a sixth (5.x attributes JSON) is ignored here. Since the text carries no
/// `topicSysFlag`, compressed registrations always yield sysFlag 0, as in Java.
fn decode_topic_text(text: &str) -> Result<TopicConfig, RouteError> {
    let bad = || RouteError::MalformedBody(format!("compressed topic config {text:?}"));
    let mut fields = text.splitn(6, ' ');
    let mut next = || fields.next().ok_or_else(bad);
    let name = next()?;
    let read = next()?.parse::<i32>().map_err(|_| bad())?;
    let write = next()?.parse::<i32>().map_err(|_| bad())?;
    let perm = next()?.parse::<i32>().map_err(|_| bad())?;
    let filter = next()?;
    if name.is_empty() || filter.is_empty() {
        return Err(bad());
    }
    Ok(TopicConfig {
        topic_name: name.to_owned(),
        read_queue_nums: read,
        write_queue_nums: write,
        perm,
        topic_filter_type: filter.to_owned(),
        topic_sys_flag: 0,
        order: false,
        attributes: BTreeMap::new(),
    })
}

/// Decoded REGISTER_BROKER body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterBrokerBody {
    pub data_version: DataVersion,
    /// The broker's topic table, full or partial (5.x registers changed topics incrementally).
    pub topics: Vec<TopicConfig>,
    /// Legacy filter servers; always empty in practice.
    pub filter_server_list: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTopicConfig {
    #[serde(default, deserialize_with = "null_as_default")]
    topic_name: Option<String>,
    #[serde(default = "default_queue_nums")]
    read_queue_nums: i32,
    #[serde(default = "default_queue_nums")]
    write_queue_nums: i32,
    #[serde(default = "default_perm")]
    perm: i32,
    #[serde(default, deserialize_with = "null_as_default")]
    topic_filter_type: Option<String>,
    #[serde(default)]
    topic_sys_flag: i32,
    #[serde(default)]
    order: bool,
}

fn default_queue_nums() -> i32 {
    DEFAULT_QUEUE_NUMS
}

fn default_perm() -> i32 {
    DEFAULT_TOPIC_PERM
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawWrapper {
    #[serde(default, deserialize_with = "null_as_default")]
    data_version: DataVersion,
    #[serde(default, deserialize_with = "null_as_default")]
    topic_config_table: BTreeMap<String, Option<RawTopicConfig>>,
}

/// Both body shapes in one struct: 4.x/5.x `{"filterServerList":..,"topicConfigSerializeWrapper":
/// {..}}` and the pre-3.0.11 bare wrapper `{"dataVersion":..,"topicConfigTable":..}`. 5.x static
/// topic fields (`topicQueueMappingInfoMap`, ...) are ignored; they contain fastjson's unquoted
/// `Map<Integer, _>` keys, which `parse_tolerant` handles.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRegisterBody {
    #[serde(default, deserialize_with = "null_as_default")]
    filter_server_list: Vec<String>,
    #[serde(default)]
    topic_config_serialize_wrapper: Option<RawWrapper>,
    #[serde(default)]
    data_version: Option<DataVersion>,
    #[serde(default)]
    topic_config_table: Option<BTreeMap<String, Option<RawTopicConfig>>>,
}

impl RegisterBrokerBody {
    /// Parses the uncompressed JSON body. Tolerant: unknown fields are ignored, missing ones get
    /// Java's defaults, `null` counts as missing, a topic entry without `topicName` takes its map
    /// key, unquoted integer keys are accepted. An empty body is an error; a request without a
    /// body should use `RegisterBrokerBody::default()` (Java zeroes the DataVersion then).
    pub fn parse_json(body: &[u8]) -> Result<Self, RouteError> {
        let raw: RawRegisterBody = parse_tolerant_object(body)
            .map_err(|e| RouteError::MalformedBody(format!("RegisterBrokerBody: {e}")))?;
        let wrapper = match raw.topic_config_serialize_wrapper {
            Some(w) => w,
            None => RawWrapper {
                data_version: raw.data_version.unwrap_or_default(),
                topic_config_table: raw.topic_config_table.unwrap_or_default(),
            },
        };
        let topics = wrapper
            .topic_config_table
            .into_iter()
            .filter_map(|(key, tc)| {
                let tc = tc?;
                Some(TopicConfig {
                    topic_name: tc.topic_name.filter(|n| !n.is_empty()).unwrap_or(key),
                    read_queue_nums: tc.read_queue_nums,
                    write_queue_nums: tc.write_queue_nums,
                    perm: tc.perm,
                    topic_filter_type: tc
                        .topic_filter_type
                        .unwrap_or_else(|| DEFAULT_TOPIC_FILTER_TYPE.to_owned()),
                    topic_sys_flag: tc.topic_sys_flag,
                    order: tc.order,
                    attributes: BTreeMap::new(),
                })
            })
            .collect();
        Ok(RegisterBrokerBody {
            data_version: wrapper.data_version,
            topics,
            filter_server_list: raw.filter_server_list,
        })
    }

    /// Parses the `compressed=true` body: a zlib stream holding
    /// `i32 len, DataVersion JSON; i32 topicCount; topicCount × (i32 len, TopicConfig text);
    /// i32 len, filterServerList JSON` and, from 5.0 brokers, `i32 count; count × (i32 len,
    /// TopicQueueMappingInfo JSON)` (skipped). All integers big-endian (Java `ByteBuffer`).
    ///
    /// Decompression stops with `BodyTooLarge` once more than `max_decompressed_bytes` come out,
    /// so a small zip bomb costs at most that much memory. Every length is checked against the
    /// bytes actually present. Trailing bytes are ignored, as in Java.
    pub fn parse_compressed(
        body: &[u8],
        max_decompressed_bytes: usize,
    ) -> Result<Self, RouteError> {
        let plain = inflate_bounded(body, max_decompressed_bytes)?;
        let mut cur = Cursor {
            buf: &plain,
            pos: 0,
        };

        let dv_bytes = cur.len_prefixed("dataVersion")?;
        let data_version = parse_data_version(dv_bytes)?;

        let topic_count = cur.count("topic count")?;
        // Each entry takes at least 4 bytes, so the count is bounded by the data; still cap the
        // pre-allocation so a lying count cannot reserve much.
        let mut topics = Vec::with_capacity(topic_count.min(cur.remaining() / 4).min(65_536));
        for _ in 0..topic_count {
            let text_bytes = cur.len_prefixed("topic config")?;
            let text = std::str::from_utf8(text_bytes)
                .map_err(|_| RouteError::MalformedBody("topic config is not UTF-8".into()))?;
            topics.push(decode_topic_text(text)?);
        }

        let filter_bytes = cur.len_prefixed("filterServerList")?;
        // Java logs and ignores a bad filter list; so do we.
        let filter_server_list: Vec<String> = parse_tolerant::<Option<Vec<String>>>(filter_bytes)
            .ok()
            .flatten()
            .unwrap_or_default();

        // 4.x brokers stop here; 5.x ones append the static-topic mapping section.
        if cur.remaining() > 0 {
            let mapping_count = cur.count("topic queue mapping count")?;
            for _ in 0..mapping_count {
                cur.len_prefixed("topic queue mapping")?;
            }
        }

        Ok(RegisterBrokerBody {
            data_version,
            topics,
            filter_server_list,
        })
    }

    /// The uncompressed JSON a 5.x Java broker sends (fastjson, keys sorted, topics sorted by
    /// name, empty static-topic maps).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.topics.len() * 160);
        out.extend_from_slice(b"{\"filterServerList\":");
        crate::fastjson::write_str_array(&mut out, &self.filter_server_list, false);
        out.extend_from_slice(b",\"topicConfigSerializeWrapper\":{\"dataVersion\":");
        self.data_version.write_json(&mut out);
        out.extend_from_slice(b",\"mappingDataVersion\":");
        DataVersion::default().write_json(&mut out);
        out.extend_from_slice(b",\"topicConfigTable\":{");
        let mut sorted: Vec<&TopicConfig> = self.topics.iter().collect();
        sorted.sort_by(|a, b| a.topic_name.cmp(&b.topic_name));
        for (i, tc) in sorted.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_key(&mut out, &tc.topic_name);
            tc.write_json(&mut out);
        }
        out.extend_from_slice(
            b"},\"topicQueueMappingDetailMap\":{},\"topicQueueMappingInfoMap\":{}}}",
        );
        out
    }

    /// The compressed form a 5.x Java broker sends (best compression, zlib-wrapped, with an
    /// empty static-topic mapping section).
    pub fn to_compressed(&self) -> Vec<u8> {
        use flate2::{Compression, write::ZlibEncoder};
        use std::io::Write;

        let mut plain = Vec::with_capacity(64 + self.topics.len() * 40);
        let put_bytes = |plain: &mut Vec<u8>, bytes: &[u8]| {
            let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
            plain.extend_from_slice(&len.to_be_bytes());
            plain.extend_from_slice(bytes);
        };
        put_bytes(&mut plain, &self.data_version.to_json());
        let count = i32::try_from(self.topics.len()).unwrap_or(i32::MAX);
        plain.extend_from_slice(&count.to_be_bytes());
        for tc in &self.topics {
            put_bytes(&mut plain, tc.encode_text().as_bytes());
        }
        let mut filters = Vec::new();
        crate::fastjson::write_str_array(&mut filters, &self.filter_server_list, false);
        put_bytes(&mut plain, &filters);
        plain.extend_from_slice(&0i32.to_be_bytes());

        let mut enc = ZlibEncoder::new(Vec::new(), Compression::best());
        // Writing into a Vec cannot fail; an error would leave an empty (invalid) body.
        if enc.write_all(&plain).is_err() {
            return Vec::new();
        }
        enc.finish().unwrap_or_default()
    }
}

fn inflate_bounded(body: &[u8], max_decompressed_bytes: usize) -> Result<Vec<u8>, RouteError> {
    let limit = u64::try_from(max_decompressed_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut plain = Vec::new();
    flate2::read::ZlibDecoder::new(body)
        .take(limit)
        .read_to_end(&mut plain)
        .map_err(|e| RouteError::MalformedBody(format!("compressed body: {e}")))?;
    if plain.len() > max_decompressed_bytes {
        return Err(RouteError::BodyTooLarge {
            limit_bytes: max_decompressed_bytes,
        });
    }
    Ok(plain)
}

/// Bounds-checked reader over the decompressed bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], RouteError> {
        let end = self.pos.checked_add(n);
        let slice = end
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or_else(|| {
                RouteError::MalformedBody(format!("compressed body truncated in {what}"))
            })?;
        self.pos += n;
        Ok(slice)
    }

    /// A big-endian i32 that must be >= 0.
    fn count(&mut self, what: &str) -> Result<usize, RouteError> {
        let bytes: [u8; 4] = self
            .take(4, what)?
            .try_into()
            .map_err(|_| RouteError::MalformedBody(format!("compressed body: {what}")))?;
        let n = i32::from_be_bytes(bytes);
        usize::try_from(n)
            .map_err(|_| RouteError::MalformedBody(format!("compressed body: negative {what}")))
    }

    fn len_prefixed(&mut self, what: &str) -> Result<&'a [u8], RouteError> {
        let len = self.count(what)?;
        self.take(len, what)
    }
}

/// Java `UtilAll.crc32`: CRC-32 (IEEE) of the body masked with 0x7FFFFFFF.
pub fn body_crc32(body: &[u8]) -> u32 {
    crc32fast::hash(body) & 0x7FFF_FFFF
}

/// Checks the `bodyCrc32` header of REGISTER_BROKER against the raw body (compressed or not, as
/// received). `expected == 0` means "don't check". A mismatch maps to 1 SYSTEM_ERROR
/// `"crc32 not match"` at the handler.
pub fn check_body_crc32(body: &[u8], expected: u32) -> Result<(), RouteError> {
    if expected == 0 {
        return Ok(());
    }
    let actual = body_crc32(body);
    if actual != expected {
        return Err(RouteError::Crc32Mismatch { expected, actual });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn sample_body(n: usize) -> RegisterBrokerBody {
        RegisterBrokerBody {
            data_version: DataVersion {
                counter: 12,
                state_version: 0,
                timestamp: 1_700_000_000_000,
            },
            topics: (1..=n)
                .map(|i| {
                    let mut tc = TopicConfig::new(format!("topic-{i:05}"));
                    tc.read_queue_nums = 8;
                    tc.write_queue_nums = 8;
                    tc
                })
                .collect(),
            filter_server_list: vec![],
        }
    }

    #[test]
    fn parses_java_5x_body() {
        let body = br#"{"filterServerList":[],
          "topicConfigSerializeWrapper":{
            "dataVersion":{"counter":12,"stateVersion":3,"timestamp":1700000000000},
            "topicConfigTable":{
              "TopicTest":{"attributes":{"message.type":"NORMAL"},"order":false,"perm":6,
                "readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest",
                "topicSysFlag":1,"writeQueueNums":4},
              "Bare":{}},
            "topicQueueMappingInfoMap":{"st":{"bname":"b","currIdMap":{0:1,1:2},"epoch":1}},
            "topicQueueMappingDetailMap":{},
            "mappingDataVersion":{"counter":0,"timestamp":0}},
          "somethingNew":[1,2,{"x":null}]}"#;
        let parsed = RegisterBrokerBody::parse_json(body).unwrap();
        assert_eq!(
            parsed.data_version,
            DataVersion {
                counter: 12,
                state_version: 3,
                timestamp: 1_700_000_000_000
            }
        );
        assert_eq!(parsed.topics.len(), 2);
        let bare = &parsed.topics[0];
        assert_eq!(bare, &TopicConfig::new("Bare"));
        let t = &parsed.topics[1];
        assert_eq!(
            (
                t.topic_name.as_str(),
                t.read_queue_nums,
                t.write_queue_nums,
                t.perm,
                t.topic_sys_flag
            ),
            ("TopicTest", 4, 4, 6, 1)
        );
    }

    #[test]
    fn parses_4x_body_and_bare_wrapper_and_nulls() {
        let v4 = br#"{"filterServerList":null,"topicConfigSerializeWrapper":{"dataVersion":{"counter":1,"timestamp":5},"topicConfigTable":{"A":{"perm":2,"topicName":null,"topicSynFlag":9}}}}"#;
        let p = RegisterBrokerBody::parse_json(v4).unwrap();
        assert_eq!(
            p.data_version,
            DataVersion {
                counter: 1,
                state_version: 0,
                timestamp: 5
            }
        );
        assert_eq!(p.topics[0].topic_name, "A");
        assert_eq!(p.topics[0].perm, 2);
        assert!(p.filter_server_list.is_empty());

        let bare = br#"{"dataVersion":{"counter":2},"topicConfigTable":{"B":{"topicName":"B"}}}"#;
        let p = RegisterBrokerBody::parse_json(bare).unwrap();
        assert_eq!(p.data_version.counter, 2);
        assert_eq!(p.topics[0].topic_name, "B");

        let empty = RegisterBrokerBody::parse_json(b"{}").unwrap();
        assert_eq!(empty, RegisterBrokerBody::default());
    }

    #[test]
    fn rejects_malformed_json() {
        for bad in [
            &b""[..],
            b"[",
            b"null",
            b"[]",
            b"{\"topicConfigSerializeWrapper\":5}",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(
                    RegisterBrokerBody::parse_json(bad),
                    Err(RouteError::MalformedBody(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn json_encoding_round_trips() {
        let body = sample_body(3);
        let json = body.to_json();
        assert!(json.starts_with(b"{\"filterServerList\":[],\"topicConfigSerializeWrapper\":{\"dataVersion\":{\"counter\":12,"));
        assert_eq!(RegisterBrokerBody::parse_json(&json).unwrap(), body);
    }

    #[test]
    fn compressed_round_trip() {
        let mut body = sample_body(50);
        body.filter_server_list = vec!["10.0.0.9:30000".into()];
        let compressed = body.to_compressed();
        let parsed = RegisterBrokerBody::parse_compressed(&compressed, 1 << 20).unwrap();
        assert_eq!(parsed, body);
    }

    #[test]
    fn compressed_4x_layout_without_mapping_section_and_attributes_with_spaces() {
        use flate2::{Compression, write::ZlibEncoder};
        use std::io::Write;
        let mut plain = Vec::new();
        let dv = br#"{"counter":7,"timestamp":9}"#;
        plain.extend_from_slice(&(dv.len() as i32).to_be_bytes());
        plain.extend_from_slice(dv);
        plain.extend_from_slice(&2i32.to_be_bytes());
        for t in [
            "T1 4 4 6 SINGLE_TAG",
            "T2 1 2 7 MULTI_TAG {\"a b\":\"c d\"}",
        ] {
            plain.extend_from_slice(&(t.len() as i32).to_be_bytes());
            plain.extend_from_slice(t.as_bytes());
        }
        plain.extend_from_slice(&2i32.to_be_bytes());
        plain.extend_from_slice(b"[]");
        let mut enc = ZlibEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&plain).unwrap();
        let parsed = RegisterBrokerBody::parse_compressed(&enc.finish().unwrap(), 4096).unwrap();
        assert_eq!(parsed.data_version.counter, 7);
        assert_eq!(parsed.topics.len(), 2);
        assert_eq!(parsed.topics[1].topic_name, "T2");
        assert_eq!(parsed.topics[1].perm, 7);
        assert_eq!(parsed.topics[1].topic_filter_type, "MULTI_TAG");
    }

    #[test]
    fn compressed_garbage_is_an_error_not_a_panic() {
        let good = sample_body(20).to_compressed();
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![],
            b"not zlib at all".to_vec(),
            vec![0x78, 0x9c],
            good[..good.len() / 2].to_vec(),
        ];
        // Flip every byte of a valid stream in turn.
        for i in 0..good.len() {
            let mut g = good.clone();
            g[i] ^= 0x5A;
            inputs.push(g);
        }
        // Valid zlib around invalid contents: lying lengths and counts.
        let wrap = |plain: &[u8]| {
            use flate2::{Compression, write::ZlibEncoder};
            use std::io::Write;
            let mut enc = ZlibEncoder::new(Vec::new(), Compression::fast());
            enc.write_all(plain).unwrap();
            enc.finish().unwrap()
        };
        inputs.push(wrap(&i32::MAX.to_be_bytes()));
        inputs.push(wrap(&(-1i32).to_be_bytes()));
        inputs.push(wrap(&[0, 0, 0, 2, b'{', b'}', 0x7f, 0xff, 0xff, 0xff]));
        inputs.push(wrap(&[
            0, 0, 0, 2, b'{', b'}', 0, 0, 0, 1, 0, 0, 0, 3, b'a', b' ', b'b',
        ]));
        for input in &inputs {
            // Only "no panic" matters for flipped bytes; some flips still decode.
            let _ = RegisterBrokerBody::parse_compressed(input, 1 << 20);
        }
        for input in &inputs[..4] {
            assert!(RegisterBrokerBody::parse_compressed(input, 1 << 20).is_err());
        }
        for input in &inputs[inputs.len() - 4..] {
            assert!(RegisterBrokerBody::parse_compressed(input, 1 << 20).is_err());
        }
    }

    #[test]
    fn compressed_size_limit_is_enforced() {
        let compressed = sample_body(1000).to_compressed();
        let plain_len = {
            let mut v = Vec::new();
            flate2::read::ZlibDecoder::new(&compressed[..])
                .read_to_end(&mut v)
                .unwrap();
            v.len()
        };
        assert!(RegisterBrokerBody::parse_compressed(&compressed, plain_len).is_ok());
        assert_eq!(
            RegisterBrokerBody::parse_compressed(&compressed, plain_len - 1),
            Err(RouteError::BodyTooLarge {
                limit_bytes: plain_len - 1
            })
        );
        // A zip bomb: 64 MiB of zeros compresses to ~64 KiB and is cut off at the limit.
        let bomb = {
            use flate2::{Compression, write::ZlibEncoder};
            use std::io::Write;
            let mut enc = ZlibEncoder::new(Vec::new(), Compression::best());
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..64 {
                enc.write_all(&zeros).unwrap();
            }
            enc.finish().unwrap()
        };
        assert!(matches!(
            RegisterBrokerBody::parse_compressed(&bomb, 1 << 20),
            Err(RouteError::BodyTooLarge { .. })
        ));
    }

    #[test]
    fn crc32_check() {
        let body = b"123456789";
        // CRC-32/IEEE of "123456789" is 0xCBF43926; masked with 0x7FFFFFFF.
        assert_eq!(body_crc32(body), 0xCBF4_3926 & 0x7FFF_FFFF);
        assert!(check_body_crc32(body, 0).is_ok());
        assert!(check_body_crc32(body, body_crc32(body)).is_ok());
        assert_eq!(
            check_body_crc32(body, 1),
            Err(RouteError::Crc32Mismatch {
                expected: 1,
                actual: body_crc32(body)
            })
        );
    }

    #[test]
    fn data_version_json() {
        let dv = DataVersion {
            counter: 3,
            state_version: 0,
            timestamp: 1_700_000_000_000,
        };
        assert_eq!(
            dv.to_json(),
            br#"{"counter":3,"stateVersion":0,"timestamp":1700000000000}"#
        );
        assert_eq!(parse_data_version(&dv.to_json()).unwrap(), dv);
        assert!(parse_data_version(b"[]").is_err());
    }

    /// Registration body sizes for realistic topic names, against the 16 MiB frame limit.
    /// Run with `--nocapture` to see the numbers.
    #[test]
    fn registration_body_sizes() {
        const FRAME_LIMIT_BYTES: usize = 16 * 1024 * 1024;
        for n in [10_000usize, 60_000] {
            let body = sample_body(n);
            let json = body.to_json();
            let compressed = body.to_compressed();
            eprintln!(
                "register body for {n} topics: json {} bytes ({:.2} MiB), compressed {} bytes",
                json.len(),
                json.len() as f64 / (1024.0 * 1024.0),
                compressed.len()
            );
            assert!(json.len() < FRAME_LIMIT_BYTES);
            assert_eq!(
                RegisterBrokerBody::parse_json(&json).unwrap().topics.len(),
                n
            );
            let parsed =
                RegisterBrokerBody::parse_compressed(&compressed, FRAME_LIMIT_BYTES).unwrap();
            assert_eq!(parsed.topics.len(), n);
        }
    }
}
