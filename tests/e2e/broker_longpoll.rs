//! Long polling over the wire: a pull held on a caught-up queue is answered as soon as a
//! message for that queue becomes visible, not when its suspension ends; and a held pull that
//! sees nothing is answered PULL_NOT_FOUND when the suspension ends.

use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::backend::runtime_from_env;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_tests::BrokerProcess;

const TOPIC: &str = "LongPollTopic";

fn pull(queue_offset: u64, suspend_ms: u64) -> RemotingCommand {
    RemotingCommand::request(request_code::PULL_MESSAGE)
        .with_ext("consumerGroup", "long_poll_group")
        .with_ext("topic", TOPIC)
        .with_ext("queueId", 0)
        .with_ext("queueOffset", queue_offset)
        .with_ext("maxMsgNums", 32)
        // suspend (2) | subscription in the header (4)
        .with_ext("sysFlag", 6)
        .with_ext("commitOffset", 0)
        .with_ext("suspendTimeoutMillis", suspend_ms)
        .with_ext("subscription", "*")
        .with_ext("subVersion", 0)
}

fn send(body: &str) -> RemotingCommand {
    RemotingCommand::request(request_code::SEND_MESSAGE_V2)
        .with_ext("a", "long_poll_producer")
        .with_ext("b", TOPIC)
        .with_ext("c", "TBW102")
        .with_ext("d", 4)
        .with_ext("e", 0)
        .with_ext("f", 0)
        .with_ext("g", 0)
        .with_ext("h", 0)
        .with_ext("i", "TAGS\u{1}T\u{2}")
        .with_body(body.as_bytes().to_vec())
}

#[test]
fn held_pulls_wake_on_arrival_and_time_out_otherwise() {
    for flush in ["SYNC_FLUSH", "ASYNC_FLUSH"] {
        let broker = BrokerProcess::start(&[("flushDiskType", flush), ("shards", "2")]).unwrap();
        let (runtime, _) = runtime_from_env().unwrap();
        runtime.block_on(async {
            let client = Client::connect(broker.process.addr, Duration::from_secs(5)).await.unwrap();
            let create = RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC)
                .with_ext("topic", TOPIC)
                .with_ext("readQueueNums", 1)
                .with_ext("writeQueueNums", 1)
                .with_ext("perm", 6);
            assert_eq!(client.invoke(create, Duration::from_secs(5)).await.unwrap().code, 0);

            // Nothing arrives: the held pull ends at its suspension with PULL_NOT_FOUND.
            let started = Instant::now();
            let empty = client.invoke(pull(0, 500), Duration::from_secs(10)).await.unwrap();
            assert_eq!(empty.code, response_code::PULL_NOT_FOUND, "{empty:?}");
            assert!(started.elapsed() >= Duration::from_millis(450), "answered before its suspension ended");

            // A message arrives 300 ms into a 10 s suspension: the pull returns with it at once.
            let started = Instant::now();
            let held = client.invoke(pull(0, 10_000), Duration::from_secs(20));
            let producer = async {
                compio::time::sleep(Duration::from_millis(300)).await;
                client.invoke(send("arrived"), Duration::from_secs(5)).await.unwrap()
            };
            let (held, sent) = futures_util::join!(held, producer);
            assert_eq!(sent.code, 0, "{sent:?}");
            let held = held.unwrap();
            let waited = started.elapsed();
            assert_eq!(held.code, response_code::SUCCESS, "{flush}: {held:?}");
            assert!(waited < Duration::from_secs(3), "{flush}: the held pull waited {waited:?} after the message arrived");
            let records = ferromq_store::record::decode_body_strict(&held.body).unwrap();
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].body, b"arrived");
            assert_eq!(held.ext("nextBeginOffset"), Some("1"));
        });
    }
}
