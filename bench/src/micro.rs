//! Bodies of the criterion micro-benchmarks (`benches/micro.rs`), kept in the library so that
//! `cargo test` runs each of them a few times and checks its result: a benchmark that no longer
//! compiles or measures the wrong thing fails the suite instead of rotting.
//!
//! - codec: decode and encode of a typical SEND_MESSAGE_V2 request frame (JSON header with the
//!   Java client's single-letter keys, 1 KiB body) and of a GET_ROUTEINFO_BY_TOPIC response
//!   frame (route JSON body), with `ferromq_net::codec`.
//! - record: `ferromq_store::record::encode_record` and `decode_record` (with BODYCRC check) of
//!   a 1 KiB message with a Java producer's properties.
//! - consume queue: `Store::get_message` of 32 messages from a filled queue of an in-memory
//!   store (`MemStorage`): the lookup cost without disk I/O.
//! - acl: what `aclEnable=true` adds to a send (`ferromq_net::acl`): `AclRules::authorize` of
//!   the codec fixture's SEND_MESSAGE_V2, signed (HmacSHA1 over its 15 extFields and 1 KiB
//!   body), against a file of [`ACL_FILLER_ACCOUNTS`] accounts plus the producer's; and the
//!   client's `Credentials::sign` of the same request.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use compio::runtime::Runtime;
use ferromq_net::codec::{self, WireLimits};
use ferromq_net::codes::request_code;
use ferromq_net::RemotingCommand;
use ferromq_store::io::mem::MemStorage;
use ferromq_store::record::{self, MessageInput, Properties, RecordView, StoreAssigned};
use ferromq_store::{ClientPhysicalOffset, FlushMode, PullResult, QueueId, QueueOffset, Store, StoreConfig, TagFilter};

/// Body size of the codec and record fixtures.
pub const FIXTURE_BODY_BYTES: usize = 1024;
/// Topic of the fixtures.
pub const FIXTURE_TOPIC: &str = "TopicTest";
/// Messages per pull in the consume-queue benchmark.
pub const PULL_MESSAGES: u32 = 32;

/// Properties as the Java producer sets them on a keyed, tagged message.
fn java_producer_properties() -> Properties {
    let mut properties = Properties::new();
    properties.insert("KEYS", "OrderID188");
    properties.insert("UNIQ_KEY", "7F0000010E6A18B4AAC27B6F4B6A0000");
    properties.insert("WAIT", "true");
    properties.insert("TAGS", "TagA");
    properties
}

/// Frames and commands of the codec benchmarks.
#[derive(Debug, Clone)]
pub struct CodecFixture {
    pub limits: WireLimits,
    pub send_request: RemotingCommand,
    pub send_frame: Bytes,
    pub route_response: RemotingCommand,
    pub route_frame: Bytes,
}

impl CodecFixture {
    pub fn new() -> Result<CodecFixture, String> {
        let properties = String::from_utf8(java_producer_properties().encode()).map_err(|e| e.to_string())?;
        let send_request = RemotingCommand::request(request_code::SEND_MESSAGE_V2)
            .with_ext("a", "please_rename_unique_group_name")
            .with_ext("b", FIXTURE_TOPIC)
            .with_ext("c", "TBW102")
            .with_ext("d", 4)
            .with_ext("e", 3)
            .with_ext("f", 0)
            .with_ext("g", 1_712_345_678_901i64)
            .with_ext("h", 0)
            .with_ext("i", properties)
            .with_ext("j", 0)
            .with_ext("k", false)
            .with_ext("l", 16)
            .with_ext("m", false)
            .with_ext("n", "broker-a")
            .with_body(vec![b'x'; FIXTURE_BODY_BYTES]);
        let route_body = serde_json::json!({
            "brokerDatas": [
                {"brokerAddrs": {"0": "192.168.0.11:10911", "1": "192.168.0.12:10911"},
                 "brokerName": "broker-a", "cluster": "DefaultCluster", "enableActingMaster": false},
                {"brokerAddrs": {"0": "192.168.0.21:10911", "1": "192.168.0.22:10911"},
                 "brokerName": "broker-b", "cluster": "DefaultCluster", "enableActingMaster": false}
            ],
            "filterServerTable": {},
            "queueDatas": [
                {"brokerName": "broker-a", "perm": 6, "readQueueNums": 8, "topicSysFlag": 0, "writeQueueNums": 8},
                {"brokerName": "broker-b", "perm": 6, "readQueueNums": 8, "topicSysFlag": 0, "writeQueueNums": 8}
            ]
        });
        let route_body = serde_json::to_vec(&route_body).map_err(|e| e.to_string())?;
        let route_response = RemotingCommand::response(0, 42, None).with_body(route_body);
        let send_frame = codec::encode_to_bytes(&send_request).map_err(|e| e.to_string())?;
        let route_frame = codec::encode_to_bytes(&route_response).map_err(|e| e.to_string())?;
        Ok(CodecFixture { limits: WireLimits::default(), send_request, send_frame, route_response, route_frame })
    }
}

/// Decodes one whole frame (benchmark body).
pub fn decode(frame: &Bytes, limits: &WireLimits) -> Result<RemotingCommand, String> {
    match codec::decode_frame(frame, limits).map_err(|e| e.to_string())? {
        Some((command, consumed)) if consumed == frame.len() => Ok(command),
        Some((_, consumed)) => Err(format!("decoded {consumed} of {} bytes", frame.len())),
        None => Err("incomplete frame".into()),
    }
}

/// Encodes `command` into `out` (cleared first); returns the frame length (benchmark body).
pub fn encode(command: &RemotingCommand, out: &mut BytesMut) -> Result<usize, String> {
    out.clear();
    codec::encode_frame(command, out).map_err(|e| e.to_string())?;
    Ok(out.len())
}

/// Accounts in the ACL fixture's rules besides the producer's, each with 10 topic and 10 group
/// permissions: the lookup runs against a realistically sized file.
pub const ACL_FILLER_ACCOUNTS: usize = 200;
/// The ACL fixture's producer account.
pub const ACL_PRODUCER: (&str, &str) = ("bench-producer", "bench-producer-secret");

/// Rules and a signed send for the ACL benchmarks.
#[derive(Debug, Clone)]
pub struct AclFixture {
    pub rules: ferromq_net::acl::AclRules,
    pub credentials: ferromq_net::acl::Credentials,
    /// The codec fixture's SEND_MESSAGE_V2, unsigned.
    pub unsigned: RemotingCommand,
    /// The same, signed by [`ACL_PRODUCER`].
    pub signed: RemotingCommand,
}

impl AclFixture {
    pub fn new() -> Result<AclFixture, String> {
        use std::fmt::Write as _;
        let mut yaml = String::from("globalWhiteRemoteAddresses:\n  - 10.10.103.*\naccounts:\n");
        for i in 0..ACL_FILLER_ACCOUNTS {
            let _ = write!(yaml, "  - accessKey: filler-{i:04}\n    secretKey: filler-secret-{i}\n    whiteRemoteAddress: 192.168.{}.*\n", i % 250);
            yaml.push_str("    defaultTopicPerm: DENY\n    defaultGroupPerm: SUB\n    topicPerms:\n");
            for t in 0..10 {
                let _ = writeln!(yaml, "      - topic-{i}-{t}=PUB|SUB");
            }
            yaml.push_str("    groupPerms:\n");
            for g in 0..10 {
                let _ = writeln!(yaml, "      - group-{i}-{g}=SUB");
            }
        }
        let (access_key, secret_key) = ACL_PRODUCER;
        let _ = write!(
            yaml,
            "  - accessKey: {access_key}\n    secretKey: {secret_key}\n    defaultTopicPerm: DENY\n    topicPerms:\n      - {FIXTURE_TOPIC}=PUB\n      - OtherTopic=SUB\n"
        );
        let rules = ferromq_net::acl::AclRules::parse_yaml(&yaml)?;
        let credentials = ferromq_net::acl::Credentials::new(access_key, secret_key);
        let unsigned = CodecFixture::new()?.send_request;
        let mut signed = unsigned.clone();
        credentials.sign(&mut signed);
        Ok(AclFixture { rules, credentials, unsigned, signed })
    }
}

/// The broker's check of the signed send from a peer outside every white list (benchmark
/// body): `Ok` when it passes. SEND_MESSAGE_V2 is not an admin code.
pub fn acl_authorize(fixture: &AclFixture) -> Result<(), String> {
    let peer = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    fixture.rules.authorize(&fixture.signed, peer, |code| code == request_code::UPDATE_AND_CREATE_TOPIC).map(|_| ()).map_err(|d| d.reason)
}

/// The client's signing of the send (benchmark body): clones the unsigned request and signs it.
pub fn acl_sign(fixture: &AclFixture) -> RemotingCommand {
    let mut request = fixture.unsigned.clone();
    fixture.credentials.sign(&mut request);
    request
}

/// A message and its encoded record for the record benchmarks.
#[derive(Debug, Clone)]
pub struct RecordFixture {
    pub message: MessageInput,
    pub assigned: StoreAssigned,
    pub encoded: Vec<u8>,
}

impl RecordFixture {
    pub fn new() -> Result<RecordFixture, String> {
        let mut message =
            MessageInput::simple(FIXTURE_TOPIC, QueueId(3), vec![b'x'; FIXTURE_BODY_BYTES], &java_producer_properties());
        message.born_timestamp_ms = 1_712_345_678_901;
        let assigned = StoreAssigned {
            queue_offset: 123_456,
            physical_offset: ClientPhysicalOffset(987_654_321),
            store_timestamp_ms: 1_712_345_678_950,
        };
        let mut encoded = Vec::new();
        record::encode_record(&message, assigned, &mut encoded).map_err(|e| e.to_string())?;
        Ok(RecordFixture { message, assigned, encoded })
    }
}

/// Encodes the fixture's record into `out` (cleared first); returns its length (benchmark body).
pub fn encode_record(fixture: &RecordFixture, out: &mut Vec<u8>) -> Result<usize, String> {
    out.clear();
    record::encode_record(&fixture.message, fixture.assigned, out).map_err(|e| e.to_string())
}

/// Decodes the fixture's record, checking BODYCRC as recovery and pulls do (benchmark body).
pub fn decode_record(encoded: &[u8]) -> Result<RecordView<'_>, String> {
    record::decode_record(encoded, true).map_err(|e| e.to_string())
}

/// An in-memory store with `queues` queues of `messages_per_queue` messages each, written in
/// round-robin batches of 8 per queue so that a pull of 32 spans several log ranges.
pub struct PullFixture {
    runtime: Runtime,
    store: Store<MemStorage>,
    messages_per_queue: u64,
}

/// Messages per append while filling the pull fixture.
const FILL_BATCH_MESSAGES: u64 = 8;

impl PullFixture {
    pub fn new(queues: u32, messages_per_queue: u64) -> Result<PullFixture, String> {
        if messages_per_queue < u64::from(PULL_MESSAGES) || queues == 0 {
            return Err(format!("a pull fixture needs at least {PULL_MESSAGES} messages in at least one queue"));
        }
        let runtime = ferromq_store::test_support::runtime().map_err(|e| e.to_string())?;
        // In memory every byte of a file is allocated and every fdatasync copies the file:
        // small segments, no index, and syncs only at close.
        let mut cfg = StoreConfig::new("/bench");
        cfg.segment_size_bytes = 16 << 20;
        cfg.flush_mode = FlushMode::Async;
        cfg.flush_least_bytes = u64::MAX;
        cfg.flush_interval_ms = 3_600_000;
        cfg.checkpoint_interval_ms = 3_600_000;
        cfg.index_enable = false;
        let store = runtime.block_on(async {
            let (store, _) = Store::open(MemStorage::new(), cfg).await.map_err(|e| e.to_string())?;
            let body = vec![b'x'; FIXTURE_BODY_BYTES];
            let properties = java_producer_properties();
            let mut filled = 0;
            while filled < messages_per_queue {
                let n = FILL_BATCH_MESSAGES.min(messages_per_queue - filled);
                for queue_id in 0..queues {
                    let batch = (0..n)
                        .map(|_| MessageInput::simple(FIXTURE_TOPIC, QueueId(queue_id), body.clone(), &properties))
                        .collect();
                    store.append(batch).await.map_err(|e| e.to_string())?;
                }
                filled += n;
            }
            store.wait_dispatched().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(store)
        })?;
        Ok(PullFixture { runtime, store, messages_per_queue })
    }

    /// The queue offset of pull number `op`: spread over the whole queue.
    fn offset(&self, op: u64) -> u64 {
        let positions = self.messages_per_queue - u64::from(PULL_MESSAGES) + 1;
        (op * 7 * u64::from(PULL_MESSAGES) + op) % positions
    }

    /// One pull of 32 from queue 0 (benchmark body, for tests).
    pub fn pull(&self, op: u64) -> Result<PullResult, String> {
        let offset = self.offset(op);
        self.runtime.block_on(async {
            self.store
                .get_message(FIXTURE_TOPIC, QueueId(0), QueueOffset(offset), PULL_MESSAGES, &TagFilter::All)
                .await
                .map_err(|e| e.to_string())
        })
    }

    /// `ops` pulls of 32 in one pass of the runtime; returns their total time (benchmark body).
    pub fn pull_many(&self, ops: u64) -> Result<Duration, String> {
        self.runtime.block_on(async {
            let start = Instant::now();
            for op in 0..ops {
                let offset = self.offset(op);
                let result = self
                    .store
                    .get_message(FIXTURE_TOPIC, QueueId(0), QueueOffset(offset), PULL_MESSAGES, &TagFilter::All)
                    .await
                    .map_err(|e| e.to_string())?;
                std::hint::black_box(&result);
            }
            Ok(start.elapsed())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_bodies_round_trip() {
        let f = CodecFixture::new().unwrap();
        let mut out = BytesMut::new();
        for _ in 0..3 {
            let send = decode(&f.send_frame, &f.limits).unwrap();
            assert_eq!(send.code, request_code::SEND_MESSAGE_V2);
            assert_eq!(send.ext("b"), Some(FIXTURE_TOPIC));
            assert_eq!(send.body.len(), FIXTURE_BODY_BYTES);
            assert_eq!(send, f.send_request);
            assert_eq!(encode(&send, &mut out).unwrap(), f.send_frame.len());
            assert_eq!(&out[..], &f.send_frame[..]);

            let route = decode(&f.route_frame, &f.limits).unwrap();
            assert!(route.is_response());
            assert_eq!(route.body, f.route_response.body);
            assert_eq!(encode(&f.route_response, &mut out).unwrap(), f.route_frame.len());
            assert_eq!(&out[..], &f.route_frame[..]);
        }
    }

    #[test]
    fn record_bodies_round_trip() {
        let f = RecordFixture::new().unwrap();
        let mut out = Vec::new();
        for _ in 0..3 {
            assert_eq!(encode_record(&f, &mut out).unwrap(), f.message.encoded_len().unwrap());
            assert_eq!(out, f.encoded);
            let view = decode_record(&f.encoded).unwrap();
            assert_eq!(view.topic, FIXTURE_TOPIC);
            assert_eq!(view.body, &f.message.body[..]);
            assert_eq!(view.queue_offset, 123_456);
            assert_eq!(view.physical_offset, 987_654_321);
            assert_eq!(view.properties().get("TAGS"), Some("TagA"));
        }
    }

    #[test]
    fn acl_bodies_pass_a_signed_send_and_refuse_an_altered_one() {
        let f = AclFixture::new().unwrap();
        assert_eq!(f.rules.accounts.len(), ACL_FILLER_ACCOUNTS + 1);
        for _ in 0..3 {
            acl_authorize(&f).unwrap();
            assert_eq!(acl_sign(&f), f.signed);
        }
        let mut altered = f.clone();
        altered.signed.ext_fields.insert("b", "OtherTopic");
        assert!(acl_authorize(&altered).unwrap_err().starts_with("Check signature failed"));
        let mut resigned = altered.clone();
        resigned.signed = resigned.unsigned.clone();
        resigned.signed.ext_fields.insert("b", "OtherTopic");
        resigned.credentials.sign(&mut resigned.signed);
        assert_eq!(acl_authorize(&resigned).unwrap_err(), "No default permission for topic=OtherTopic");
    }

    #[test]
    fn pull_bodies_return_32_messages() {
        let f = PullFixture::new(4, 256).unwrap();
        for op in 0..5 {
            let r = f.pull(op).unwrap();
            assert_eq!(r.status, ferromq_store::PullStatus::Found);
            assert_eq!(r.message_count, PULL_MESSAGES);
            assert_eq!(r.next_begin_offset.0, f.offset(op) + u64::from(PULL_MESSAGES));
            // Batches of 8 per queue, interleaved across queues: 4 or 5 ranges per 32 messages.
            assert!((4..=5).contains(&r.ranges.len()), "{:?}", r.ranges);
        }
        assert!(f.pull_many(10).unwrap() > Duration::ZERO);
    }
}
