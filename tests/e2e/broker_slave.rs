//! A master and its slave (issue 9, the control-plane half; PROTOCOL.md §7.5): two `mqbroker`
//! processes under one `brokerName` registered with one external `mqnamesrv`. The slave learns
//! its master from the registration answer, copies the master's topics, subscription groups and
//! consumer offsets (every `slaveSyncIntervalMillis`, 300 ms here), refuses sends with
//! SERVICE_NOT_AVAILABLE, and — beyond Java — hands the offsets committed to it while the
//! master was down back to the master when it returns, where they are larger.
//!
//! The commit-log stream is tested in `broker_replication.rs`. Runs on the backend chosen by
//! `FERROMQ_IO_BACKEND`.

use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::backend::runtime_from_env;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_tests::{BrokerProcess, ServerProcess, start_namesrv};

const TIMEOUT: Duration = Duration::from_secs(10);
const TOPIC: &str = "SlaveSyncTopic";
const GROUP: &str = "slave_sync_group";

/// Prints a process's log if the test panics while it is in scope.
struct PrintLogOnPanic<'a>(&'a ServerProcess, &'static str);

impl Drop for PrintLogOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("======== {} log ========\n{}", self.1, self.0.log().join("\n"));
        }
    }
}

fn query_offset(queue_id: u32) -> RemotingCommand {
    RemotingCommand::request(request_code::QUERY_CONSUMER_OFFSET)
        .with_ext("consumerGroup", GROUP)
        .with_ext("topic", TOPIC)
        .with_ext("queueId", queue_id)
        .with_ext("setZeroIfNotFound", false)
}

fn commit_offset(queue_id: u32, offset: i64) -> RemotingCommand {
    RemotingCommand::request(request_code::UPDATE_CONSUMER_OFFSET)
        .with_ext("consumerGroup", GROUP)
        .with_ext("topic", TOPIC)
        .with_ext("queueId", queue_id)
        .with_ext("commitOffset", offset)
}

async fn call(addr: std::net::SocketAddr, request: RemotingCommand) -> RemotingCommand {
    let client = Client::connect(addr, TIMEOUT).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let response = client.invoke(request, TIMEOUT).await.unwrap_or_else(|e| panic!("invoke on {addr}: {e}"));
    client.close();
    response
}

/// Polls `check` every 100 ms until it holds, for at most `within`.
async fn eventually(within: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        compio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn logged(process: &ServerProcess, needle: &str) -> bool {
    process.log().iter().any(|line| line.contains(needle))
}

#[test]
fn a_slave_copies_its_master_refuses_sends_and_merges_offsets_back() {
    let (namesrv, _namesrv_dir) = start_namesrv(&[], &[]).expect("mqnamesrv");
    let ns = namesrv.addr.to_string();
    let common = [("namesrvAddr", ns.as_str()), ("brokerName", "broker-s"), ("shards", "1")];
    let mut master = BrokerProcess::start(&common).expect("master");
    let mut slave_settings = common.to_vec();
    slave_settings.extend([("brokerId", "1"), ("brokerRole", "SLAVE"), ("slaveSyncIntervalMillis", "300")]);
    let slave = BrokerProcess::start(&slave_settings).expect("slave");
    let _slave_log = PrintLogOnPanic(&slave.process, "slave");
    let (master_addr, slave_addr) = (master.process.addr, slave.process.addr);

    let (runtime, _) = runtime_from_env().unwrap();
    runtime.block_on(async {
        // On the master: a topic, a group and a committed offset.
        let create = RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", TOPIC)
            .with_ext("defaultTopic", "TBW102")
            .with_ext("readQueueNums", 4)
            .with_ext("writeQueueNums", 4)
            .with_ext("perm", 6)
            .with_ext("topicFilterType", "SINGLE_TAG")
            .with_ext("order", false);
        assert_eq!(call(master_addr, create).await.code, response_code::SUCCESS);
        let group = RemotingCommand::request(request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(format!(r#"{{"groupName":"{GROUP}"}}"#).into_bytes());
        assert_eq!(call(master_addr, group).await.code, response_code::SUCCESS);
        assert_eq!(call(master_addr, commit_offset(0, 42)).await.code, response_code::SUCCESS);

        // The slave learns its master from the name server and copies all three.
        eventually(Duration::from_secs(15), "the slave serves the master's topic", async || {
            let all = call(slave_addr, RemotingCommand::request(request_code::GET_ALL_TOPIC_CONFIG)).await;
            all.code == response_code::SUCCESS && String::from_utf8_lossy(&all.body).contains(&format!("\"topicName\":\"{TOPIC}\""))
        })
        .await;
        eventually(Duration::from_secs(15), "the slave answers the master's offset", async || {
            call(slave_addr, query_offset(0)).await.ext("offset") == Some("42")
        })
        .await;
        // A sync reads the master's four tables one after another, so one round can see the
        // offset committed after the group was created but the group table from before it; the
        // next round (slaveSyncIntervalMillis later) copies the group too.
        eventually(Duration::from_secs(15), "the slave serves the master's group", async || {
            let groups = call(slave_addr, RemotingCommand::request(request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG)).await;
            String::from_utf8_lossy(&groups.body).contains(&format!("\"{GROUP}\""))
        })
        .await;
        assert!(logged(&slave.process, &format!("master_addr=127.0.0.1:{}", master_addr.port())), "the slave logs the master it learned");

        // A send to the slave: 14, naming its role.
        let send = RemotingCommand::request(request_code::SEND_MESSAGE_V2)
            .with_ext("a", "slave_producer")
            .with_ext("b", TOPIC)
            .with_ext("c", "TBW102")
            .with_ext("d", 4)
            .with_ext("e", 0)
            .with_ext("f", 0)
            .with_ext("g", 0)
            .with_ext("h", 0)
            .with_body(b"body".to_vec());
        let refused = call(slave_addr, send).await;
        assert_eq!(refused.code, response_code::SERVICE_NOT_AVAILABLE, "{refused:?}");
        assert!(refused.remark.as_deref().unwrap_or("").contains("slave"), "{refused:?}");
    });

    // The master goes down; consumers commit to the slave meanwhile (queue 0 past the master's
    // offset); the slave's sync fails.
    assert!(master.terminate().success());
    runtime.block_on(async {
        assert_eq!(call(slave_addr, commit_offset(0, 50)).await.code, response_code::SUCCESS);
        eventually(Duration::from_secs(10), "the slave notices its master is down", async || {
            logged(&slave.process, "metadata sync with the master failed")
        })
        .await;
    });
    // The master returns (same address): the slave's offset goes back to it.
    master.restart().expect("master restart");
    let _master_log = PrintLogOnPanic(&master.process, "master");
    runtime.block_on(async {
        eventually(Duration::from_secs(15), "the slave's larger offset reaches the master", async || {
            call(master_addr, query_offset(0)).await.ext("offset") == Some("50")
        })
        .await;
        // The slave logs the merge once its copy is applied; it keeps its offset (the master's
        // copy now agrees).
        eventually(Duration::from_secs(5), "the slave logs the merge", async || logged(&slave.process, "were merged back into the master")).await;
        assert_eq!(call(slave_addr, query_offset(0)).await.ext("offset"), Some("50"));
    });
}
