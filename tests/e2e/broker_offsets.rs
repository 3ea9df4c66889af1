//! Commit-log offsets every client can hold (issue 14, item 7): the physical offsets a broker
//! hands out — in offsetMsgIds, in every record's PHYSICALOFFSET — stay below 2^53, so a client
//! that keeps them as IEEE doubles (JavaScript's) sends back exactly what it was given, and
//! VIEW_MESSAGE_BY_ID finds the record on whichever shard holds it. Checked on a fresh store and
//! on a store written before the offsets moved into one global space (a fixture: its shard-1
//! records still carry the old shard-in-the-top-bits offsets, which must stay readable).

use std::collections::BTreeMap;
use std::time::Duration;

use ferromq_net::RemotingCommand;
use ferromq_net::backend::runtime_from_env;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_store::record::{decode_body_strict, decode_offset_msg_id};
use ferromq_tests::{BrokerProcess, TempDir};

const TIMEOUT: Duration = Duration::from_secs(20);
const EXACT_LIMIT: i64 = 1 << 53;

/// Small segments so the shards roll often and take many ranges of the shared space.
const SMALL_STORE: &[(&str, &str)] = &[
    ("shards", "2"),
    ("mappedFileSizeCommitLog", "4096"),
    ("maxMessageSize", "1024"),
    ("mappedFileSizeConsumeQueue", "160"),
    ("maxHashSlotNum", "64"),
    ("maxIndexNum", "256"),
];

fn send(topic: &str, queue_id: u32, body: &[u8]) -> RemotingCommand {
    RemotingCommand::request(request_code::SEND_MESSAGE_V2)
        .with_ext("a", "offsets_producer")
        .with_ext("b", topic)
        .with_ext("c", "TBW102")
        .with_ext("d", 8)
        .with_ext("e", queue_id)
        .with_ext("f", 0)
        .with_ext("g", 0)
        .with_ext("h", 0)
        .with_ext("i", "TAGS\u{1}T\u{2}")
        .with_body(body.to_vec())
}

fn view(offset: i64) -> RemotingCommand {
    RemotingCommand::request(request_code::VIEW_MESSAGE_BY_ID).with_ext("offset", offset)
}

/// What a JavaScript client does with an offset: it holds it as a double.
fn through_a_double(offset: i64) -> i64 {
    (offset as f64) as i64
}

/// Sends `per_queue` messages to each of `queues` queues of `topic` (both shards own some) and
/// returns the physical offset of each, by body.
async fn send_all(client: &Client, topic: &str, queues: u32, per_queue: usize) -> BTreeMap<Vec<u8>, i64> {
    let mut sent = BTreeMap::new();
    for round in 0..per_queue {
        for queue_id in 0..queues {
            let body = format!("{topic}-q{queue_id}-m{round}-{}", "x".repeat(round * 37 % 300)).into_bytes();
            let response = client.invoke(send(topic, queue_id, &body), TIMEOUT).await.unwrap();
            assert_eq!(response.code, response_code::SUCCESS, "{response:?}");
            let msg_id = response.ext("msgId").unwrap();
            let (_, offset) = decode_offset_msg_id(msg_id).unwrap_or_else(|| panic!("bad offsetMsgId {msg_id}"));
            sent.insert(body, offset.0);
        }
    }
    sent
}

/// Views each record by its offset after a trip through a double: the offset must survive it
/// unchanged and name that very record.
async fn view_through_doubles(client: &Client, sent: &BTreeMap<Vec<u8>, i64>) {
    for (body, &offset) in sent {
        assert!((0..EXACT_LIMIT).contains(&offset), "offset {offset:#x} is not below 2^53");
        let held = through_a_double(offset);
        assert_eq!(held, offset, "offset {offset:#x} changed in a double");
        let response = client.invoke(view(held), TIMEOUT).await.unwrap();
        assert_eq!(response.code, response_code::SUCCESS, "view {offset:#x}: {response:?}");
        let records = decode_body_strict(&response.body).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].body, &body[..], "view {offset:#x} returned another record");
        assert_eq!(records[0].physical_offset, offset);
    }
}

#[test]
fn offsets_of_every_shard_survive_a_double_on_a_new_store() {
    let broker = BrokerProcess::start(SMALL_STORE).unwrap();
    let (runtime, _) = runtime_from_env().unwrap();
    runtime.block_on(async {
        let client = Client::connect(broker.process.addr, TIMEOUT).await.unwrap();
        // 8 queues over 2 shards, 4 KiB segments: each shard rolls several times.
        let sent = send_all(&client, "OffsetsTopic", 8, 12).await;
        assert_eq!(sent.len(), 96);
        let distinct: std::collections::BTreeSet<i64> = sent.values().copied().collect();
        assert_eq!(distinct.len(), sent.len(), "two records share an offset");
        view_through_doubles(&client, &sent).await;
        // An offset nothing was written at is an error, not another record.
        let response = client.invoke(view(EXACT_LIMIT - 8), TIMEOUT).await.unwrap();
        assert_eq!(response.code, response_code::SYSTEM_ERROR, "{response:?}");
    });
}

#[test]
fn a_store_written_before_the_change_stays_readable_and_grows_below_2_53() {
    let store = TempDir::new("legacy");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/legacy-store-2shards.tar.gz");
    let status = std::process::Command::new("tar").arg("xzf").arg(&fixture).arg("-C").arg(store.path()).status().unwrap();
    assert!(status.success(), "cannot extract {}", fixture.display());
    let root = store.path().join("store");
    let root_setting = root.display().to_string();
    let mut settings = SMALL_STORE.to_vec();
    settings.push(("storePathRootDir", &root_setting));
    settings.push(("brokerName", "legacy-broker"));
    let broker = BrokerProcess::start_in(store, &settings).unwrap();
    let (runtime, _) = runtime_from_env().unwrap();
    runtime.block_on(async {
        let client = Client::connect(broker.process.addr, TIMEOUT).await.unwrap();
        // The old records: 30 per queue, queues 1 and 3 on shard 1 with offsets above 2^55.
        let mut old_high = 0;
        for queue_id in 0..4u32 {
            let mut queue_offset = 0u64;
            while queue_offset < 30 {
                let pull = ferromq_tests::pull_request("legacy_group", "LegacyTopic", queue_id, queue_offset);
                let response = client.invoke(pull, TIMEOUT).await.unwrap();
                assert_eq!(response.code, response_code::SUCCESS, "q{queue_id}@{queue_offset}: {response:?}");
                for record in decode_body_strict(&response.body).unwrap() {
                    // Readable by the offset its clients were given when it was written.
                    let viewed = client.invoke(view(record.physical_offset), TIMEOUT).await.unwrap();
                    assert_eq!(viewed.code, response_code::SUCCESS, "old record at {:#x}: {viewed:?}", record.physical_offset);
                    assert_eq!(decode_body_strict(&viewed.body).unwrap()[0].body, record.body);
                    if record.physical_offset >= EXACT_LIMIT {
                        old_high += 1;
                    }
                    queue_offset += 1;
                }
            }
        }
        assert_eq!(old_high, 60, "shard 1's old records keep their old (high) offsets");
        // New records on both shards: below 2^53, exact through a double.
        let sent = send_all(&client, "LegacyTopic", 4, 10).await;
        view_through_doubles(&client, &sent).await;
    });
    drop(broker);
}
