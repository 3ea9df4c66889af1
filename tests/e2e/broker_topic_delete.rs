//! DELETE_TOPIC_IN_BROKER (215) against a real `mqbroker` with two shards (the topic's queues
//! live on both): a topic deleted and created again under the same name starts empty — max
//! offset 0, pulls find nothing, a query by key finds none of the old messages, the consumer
//! offsets are gone — and its new sends start at queue offset 0; the same holds after a clean
//! restart and after kill -9, and when the topic is created again only after a restart (by
//! auto-create on send).

use std::time::Duration;

use ferromq_net::RemotingCommand;
use ferromq_net::backend::runtime_from_env;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_tests::BrokerProcess;

const TOPIC: &str = "DeleteMeTopic";
const QUEUES: u32 = 4;
const GROUP: &str = "delete_me_group";
const OLD_MESSAGES: u32 = 40;
const TIMEOUT: Duration = Duration::from_secs(20);

fn send(queue_id: u32, body: &str, key: &str) -> RemotingCommand {
    ferromq_tests::send_v2_request("delete_me_producer", TOPIC, QUEUES, queue_id, &format!("KEYS\u{1}{key}\u{2}"), body.as_bytes().to_vec())
}

fn queue_request(code: i32, queue_id: u32) -> RemotingCommand {
    RemotingCommand::request(code).with_ext("topic", TOPIC).with_ext("queueId", queue_id)
}

fn pull(queue_id: u32, queue_offset: u64) -> RemotingCommand {
    ferromq_tests::pull_request(GROUP, TOPIC, queue_id, queue_offset)
}

fn create_topic() -> RemotingCommand {
    ferromq_tests::create_topic_request(TOPIC, QUEUES)
}

async fn call(client: &Client, request: RemotingCommand) -> RemotingCommand {
    client.invoke(request, TIMEOUT).await.expect("the broker answers")
}

async fn send_ok(client: &Client, queue_id: u32, body: &str, key: &str) -> u64 {
    // A send racing the deletion's durability step may be told SYSTEM_BUSY; none does here, but
    // a retry is what a client would do.
    for _ in 0..50 {
        let response = call(client, send(queue_id, body, key)).await;
        if response.code == response_code::SYSTEM_BUSY {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        assert_eq!(response.code, response_code::SUCCESS, "send {body}: {response:?}");
        return response.ext("queueOffset").and_then(|v| v.parse().ok()).expect("queueOffset");
    }
    panic!("send {body}: SYSTEM_BUSY for a second");
}

async fn offset_of(client: &Client, code: i32, queue_id: u32) -> u64 {
    let response = call(client, queue_request(code, queue_id)).await;
    assert_eq!(response.code, response_code::SUCCESS, "{response:?}");
    response.ext("offset").and_then(|v| v.parse().ok()).expect("offset")
}

/// Bodies a pull from 0 returns (empty when it finds nothing).
async fn pulled(client: &Client, queue_id: u32) -> Vec<String> {
    let response = call(client, pull(queue_id, 0)).await;
    if response.code != response_code::SUCCESS {
        assert!(
            [response_code::PULL_NOT_FOUND, response_code::PULL_OFFSET_MOVED, response_code::PULL_RETRY_IMMEDIATELY].contains(&response.code),
            "q{queue_id}: {response:?}"
        );
        return Vec::new();
    }
    let records = ferromq_store::record::decode_body_strict(&response.body).expect("a decodable body");
    records.into_iter().map(|r| String::from_utf8(r.body.to_vec()).unwrap()).collect()
}

/// Bodies QUERY_MESSAGE finds for `key` (empty on QUERY_NOT_FOUND).
async fn queried(client: &Client, key: &str) -> Vec<String> {
    let request = RemotingCommand::request(request_code::QUERY_MESSAGE)
        .with_ext("topic", TOPIC)
        .with_ext("key", key)
        .with_ext("maxNum", 64)
        .with_ext("beginTimestamp", 0)
        .with_ext("endTimestamp", i64::MAX);
    let response = call(client, request).await;
    if response.code == response_code::QUERY_NOT_FOUND {
        return Vec::new();
    }
    assert_eq!(response.code, response_code::SUCCESS, "{response:?}");
    let records = ferromq_store::record::decode_body_strict(&response.body).expect("a decodable body");
    records.into_iter().map(|r| String::from_utf8(r.body.to_vec()).unwrap()).collect()
}

async fn committed_offset(client: &Client, queue_id: u32) -> Option<i64> {
    let request = RemotingCommand::request(request_code::QUERY_CONSUMER_OFFSET)
        .with_ext("consumerGroup", GROUP)
        .with_ext("topic", TOPIC)
        .with_ext("queueId", queue_id)
        .with_ext("setZeroIfNotFound", false);
    let response = call(client, request).await;
    match response.code {
        response_code::QUERY_NOT_FOUND => None,
        response_code::SUCCESS => response.ext("offset").and_then(|v| v.parse().ok()),
        _ => panic!("{response:?}"),
    }
}

/// Sends the old incarnation's messages and commits a consumer offset on every queue.
async fn fill_old(client: &Client) {
    assert_eq!(call(client, create_topic()).await.code, response_code::SUCCESS);
    for i in 0..OLD_MESSAGES {
        let queue_id = i % QUEUES;
        assert_eq!(send_ok(client, queue_id, &format!("old-{i}"), "oldkey").await, u64::from(i / QUEUES));
    }
    for queue_id in 0..QUEUES {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while offset_of(client, request_code::GET_MAX_OFFSET, queue_id).await < u64::from(OLD_MESSAGES / QUEUES) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(offset_of(client, request_code::GET_MAX_OFFSET, queue_id).await, u64::from(OLD_MESSAGES / QUEUES));
        let commit = RemotingCommand::request(request_code::UPDATE_CONSUMER_OFFSET)
            .with_ext("consumerGroup", GROUP)
            .with_ext("topic", TOPIC)
            .with_ext("queueId", queue_id)
            .with_ext("commitOffset", 5);
        assert_eq!(call(client, commit).await.code, response_code::SUCCESS);
        assert_eq!(committed_offset(client, queue_id).await, Some(5));
    }
    assert_eq!(queried(client, "oldkey").await.len(), OLD_MESSAGES as usize);
}

async fn delete(client: &Client) {
    let request = RemotingCommand::request(request_code::DELETE_TOPIC_IN_BROKER).with_ext("topic", TOPIC);
    let response = call(client, request).await;
    assert_eq!(response.code, response_code::SUCCESS, "{response:?}");
}

/// Nothing of the old incarnation: every queue empty, no old message by key, no offsets.
async fn assert_no_old(client: &Client, new_per_queue: u64, when: &str) {
    for queue_id in 0..QUEUES {
        assert_eq!(offset_of(client, request_code::GET_MIN_OFFSET, queue_id).await, 0, "{when}: q{queue_id} min");
        // A send is answered once durable; its consume-queue entry follows within moments.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut max = offset_of(client, request_code::GET_MAX_OFFSET, queue_id).await;
        while max < new_per_queue && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            max = offset_of(client, request_code::GET_MAX_OFFSET, queue_id).await;
        }
        assert_eq!(max, new_per_queue, "{when}: q{queue_id} max");
        let bodies = pulled(client, queue_id).await;
        assert!(bodies.iter().all(|b| b.starts_with("new-")), "{when}: q{queue_id} serves old records: {bodies:?}");
        assert_eq!(bodies.len() as u64, new_per_queue, "{when}: q{queue_id}: {bodies:?}");
        assert_eq!(committed_offset(client, queue_id).await, None, "{when}: q{queue_id} kept its consumer offset");
    }
    assert_eq!(queried(client, "oldkey").await, Vec::<String>::new(), "{when}: a query by key finds old messages");
}

async fn connect(broker: &BrokerProcess) -> Client {
    Client::connect(broker.process.addr, TIMEOUT).await.expect("connect")
}

#[test]
fn a_deleted_topic_comes_back_empty_before_and_after_restarts() {
    let mut broker = BrokerProcess::start(&[("shards", "2")]).unwrap();
    let (runtime, _) = runtime_from_env().unwrap();
    runtime.block_on(async {
        let client = connect(&broker).await;
        fill_old(&client).await;
        delete(&client).await;
        assert_eq!(call(&client, create_topic()).await.code, response_code::SUCCESS);
        assert_no_old(&client, 0, "re-created").await;
        for queue_id in 0..QUEUES {
            assert_eq!(send_ok(&client, queue_id, &format!("new-{queue_id}"), "newkey").await, 0, "q{queue_id}: new sends start at 0");
        }
        assert_no_old(&client, 1, "after new sends").await;
        assert_eq!(queried(&client, "newkey").await.len(), QUEUES as usize);
    });

    // Clean stop and start.
    assert!(broker.terminate().success());
    broker.restart().unwrap();
    runtime.block_on(async {
        let client = connect(&broker).await;
        assert_no_old(&client, 1, "after a clean restart").await;
        assert_eq!(queried(&client, "newkey").await.len(), QUEUES as usize);
    });

    // kill -9 right after a deletion: recovery replays the log from the last checkpoint and must
    // not dispatch the old records again.
    runtime.block_on(async {
        let client = connect(&broker).await;
        delete(&client).await;
        assert_eq!(call(&client, create_topic()).await.code, response_code::SUCCESS);
        for queue_id in 0..QUEUES {
            assert_eq!(send_ok(&client, queue_id, &format!("new-{queue_id}"), "newkey").await, 0);
        }
    });
    broker.kill_and_restart().unwrap();
    runtime.block_on(async {
        let client = connect(&broker).await;
        assert_no_old(&client, 1, "after kill -9").await;
        for queue_id in 0..QUEUES {
            assert_eq!(send_ok(&client, queue_id, &format!("new-{queue_id}-b"), "newkey").await, 1);
        }
    });
}

#[test]
fn a_topic_deleted_then_restarted_is_auto_created_empty() {
    let mut broker = BrokerProcess::start(&[("shards", "2"), ("autoCreateTopicEnable", "true")]).unwrap();
    let (runtime, _) = runtime_from_env().unwrap();
    runtime.block_on(async {
        let client = connect(&broker).await;
        fill_old(&client).await;
        delete(&client).await;
    });
    broker.kill_and_restart().unwrap();
    runtime.block_on(async {
        let client = connect(&broker).await;
        // Created again by the first send (auto-create), on every queue it names.
        for queue_id in 0..QUEUES {
            assert_eq!(send_ok(&client, queue_id, &format!("new-{queue_id}"), "newkey").await, 0, "q{queue_id}");
        }
        assert_no_old(&client, 1, "auto-created after kill -9").await;
    });
    assert!(broker.terminate().success());
    broker.restart().unwrap();
    runtime.block_on(async {
        let client = connect(&broker).await;
        assert_no_old(&client, 1, "auto-created, after a clean restart").await;
    });
}
