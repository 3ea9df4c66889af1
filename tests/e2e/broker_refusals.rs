//! Refusals a real broker gives, each naming what is wrong (issue 10, items 6, 8 and 9): sends
//! into system topics, a send without `queueId`, a pull below the queue's first offset, and
//! start-up refused for a store root that is not a directory or an enum in the wrong case.
//! Runs on the backend chosen by `FERROMQ_IO_BACKEND`.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::backend::runtime_from_env;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_tests::{BrokerProcess, TempDir, binary, free_port, harness_args};

const TIMEOUT: Duration = Duration::from_secs(20);

fn send(topic: &str, queue_id: Option<u32>) -> RemotingCommand {
    let request = RemotingCommand::request(request_code::SEND_MESSAGE_V2)
        .with_ext("a", "refusals_producer")
        .with_ext("b", topic)
        .with_ext("c", "TBW102")
        .with_ext("d", 4)
        .with_ext("f", 0)
        .with_ext("g", 0)
        .with_ext("h", 0)
        .with_body(b"body".to_vec());
    match queue_id {
        Some(queue_id) => request.with_ext("e", queue_id),
        None => request,
    }
}

fn pull(topic: &str, queue_offset: i64) -> RemotingCommand {
    RemotingCommand::request(request_code::PULL_MESSAGE)
        .with_ext("consumerGroup", "refusals_group")
        .with_ext("topic", topic)
        .with_ext("queueId", 0)
        .with_ext("queueOffset", queue_offset)
        .with_ext("maxMsgNums", 32)
        .with_ext("sysFlag", 4 | 2)
        .with_ext("commitOffset", 0)
        .with_ext("suspendTimeoutMillis", 1000)
        .with_ext("subscription", "*")
        .with_ext("subVersion", 0)
}

#[test]
fn system_topics_missing_queue_ids_and_negative_offsets_are_refused() {
    let broker = BrokerProcess::start(&[]).unwrap();
    let (runtime, _) = runtime_from_env().unwrap();
    runtime.block_on(async {
        let client = Client::connect(broker.process.addr, TIMEOUT).await.unwrap();
        for topic in ["SELF_TEST_TOPIC", "OFFSET_MOVED_EVENT", "SCHEDULE_TOPIC_XXXX", "RMQ_SYS_TRANS_HALF_TOPIC"] {
            let response = client.invoke(send(topic, Some(0)), TIMEOUT).await.unwrap();
            assert_eq!(response.code, response_code::NO_PERMISSION, "{topic}: {response:?}");
            assert_eq!(response.remark.as_deref(), Some(format!("Sending message to topic[{topic}] is forbidden.").as_str()));
        }
        let response = client.invoke(send("RefusalTopic", None), TIMEOUT).await.unwrap();
        assert_eq!(response.code, response_code::SYSTEM_ERROR, "{response:?}");
        assert!(response.remark.as_deref().unwrap_or("").contains("queueId"), "{response:?}");
        for _ in 0..2 {
            let response = client.invoke(send("RefusalTopic", Some(0)), TIMEOUT).await.unwrap();
            assert_eq!(response.code, response_code::SUCCESS, "{response:?}");
        }
        // Once both are visible (a long-polling pull from 0 waits for the dispatch) ...
        let found = client.invoke(pull("RefusalTopic", 0), TIMEOUT).await.unwrap();
        assert_eq!(found.code, response_code::SUCCESS, "{found:?}");
        // ... a pull at -1 is answered at once (no long-poll hold), with where the queue starts.
        let started = Instant::now();
        let response = client.invoke(pull("RefusalTopic", -1), TIMEOUT).await.unwrap();
        assert_eq!(response.code, response_code::PULL_OFFSET_MOVED, "{response:?}");
        assert_eq!((response.ext("nextBeginOffset"), response.ext("minOffset"), response.ext("maxOffset")), (Some("0"), Some("0"), Some("2")));
        assert!(started.elapsed() < Duration::from_millis(900), "held for {:?}", started.elapsed());
    });
}

/// Runs `mqbroker` with `sets` (besides free ports and the harness defaults) until it exits;
/// returns its status and stderr.
fn broker_start_refused(sets: &[String]) -> (ExitStatus, String) {
    let mut command = Command::new(binary("mqbroker"));
    command
        .args(["--set", &format!("listenPort={}", free_port()), "--set", &format!("embeddedNamesrvPort={}", free_port())])
        .args(harness_args())
        .args(sets.iter().flat_map(|s| ["--set".to_owned(), s.clone()]))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mqbroker {sets:?} did not stop: {}", reader.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap())
}

#[test]
fn a_store_root_that_is_a_file_stops_the_start_naming_the_key_and_path() {
    let dir = TempDir::new("refusals");
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    for root in [file.clone(), file.join("store")] {
        let (status, stderr) = broker_start_refused(&[format!("storePathRootDir={}", root.display())]);
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&format!("storePathRootDir={}", root.display())), "{stderr}");
        assert!(!stderr.contains("boot success"), "{stderr}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x", "the file is untouched");
}

#[test]
fn an_enum_in_the_wrong_case_stops_the_start_naming_the_key_and_value() {
    let dir = TempDir::new("refusals");
    let root = format!("storePathRootDir={}", dir.path().display());
    for (set, key, value) in [("flushDiskType=sync_flush", "flushDiskType", "sync_flush"), ("brokerRole=async_master", "brokerRole", "async_master")] {
        let (status, stderr) = broker_start_refused(&[root.clone(), set.to_owned()]);
        assert_eq!(status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(key) && stderr.contains(&format!("{value:?}")), "{stderr}");
    }
}
