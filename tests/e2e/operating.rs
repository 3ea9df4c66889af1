//! Operating FerroMQ (issue 11): the README's "Deploying on dedicated hosts" commands run
//! against the shipped `tuning/conf/2m-2s-sync` files, Java's fast ("VIP") port, and the
//! producer table that GET_PRODUCER_CONNECTION_LIST reports, and the Prometheus endpoints of
//! the broker and the name server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_tests::{BrokerProcess, ServerProcess, TempDir, binary, free_port, harness_args, on_compio, start_namesrv};

const TIMEOUT: Duration = Duration::from_secs(10);

fn conf(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning/conf").join(file)
}

/// Sends `body` to queue 0 of `topic` (auto-created through TBW102) until the broker answers
/// SEND_OK: a SYNC_MASTER answers SLAVE_NOT_AVAILABLE until its slave has connected.
async fn send_until_ok(client: &Client, topic: &str, body: &[u8]) -> RemotingCommand {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let request = ferromq_tests::send_v2_request("deploy_producer", topic, 4, 0, "TAGS\u{1}T\u{2}", body.to_vec());
        let response = client.invoke(request, TIMEOUT).await.expect("SEND_MESSAGE_V2");
        if response.code == response_code::SUCCESS {
            return response;
        }
        assert!(Instant::now() < deadline, "no SEND_OK within 20 s; last answer {} {:?}", response.code, response.remark);
        compio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The record at `offset` of queue 0 of `topic` on the broker behind `client`, waiting for it
/// (a send is acknowledged before its consume-queue entry is dispatched).
async fn pull_at(client: &Client, topic: &str, offset: u64) -> Vec<u8> {
    let bodies = ferromq_tests::pull_bodies(client, "deploy_consumer", topic, 0, offset, 1, Duration::from_secs(5)).await;
    bodies.into_iter().next().expect("a record")
}

fn queue_offset(sent: &RemotingCommand) -> u64 {
    sent.ext("queueOffset").and_then(|o| o.parse().ok()).unwrap_or_else(|| panic!("no queueOffset in {sent:?}"))
}

/// The README's "Deploying on dedicated hosts": `mqnamesrv -c tuning/conf/namesrv.properties`,
/// then `mqbroker -c tuning/conf/2m-2s-sync/<broker>.properties` for the two masters and then
/// the two slaves, with the shipped files as they are except (so that tests can run side by
/// side, and without a `store/` in the working tree): each process's ports are free ones
/// (`--listen`, `--set listenPort=`, `--set haListenPort=`, `namesrvAddr` to match), each
/// store is in a temporary folder (`storePathRootDir`, `storePathCommitLog`), and the test
/// harness's settings (64 MiB segments, disk-usage limits that ignore this machine's disk, the
/// fast port off). Every broker registers with the name server, a SYNC_MASTER of each group
/// acknowledges a send (which it does only once its slave has stored it), and the message is
/// consumable from its master.
#[test]
fn a_2m_2s_sync_cluster_runs_from_the_shipped_files() {
    let namesrv_conf = conf("namesrv.properties");
    let (namesrv, _namesrv_dir) = start_namesrv(&["-c", namesrv_conf.to_str().expect("utf-8 path")], &[]).unwrap();
    let ns = namesrv.addr.to_string();
    let stores = TempDir::new("2m2s-sync");
    let start = |name: &str| -> (ServerProcess, SocketAddr) {
        let file = conf(&format!("2m-2s-sync/{name}.properties"));
        let root = stores.path().join(name);
        let port = free_port();
        let mut command = Command::new(binary("mqbroker"));
        command.arg("-c").arg(&file).args(harness_args());
        for setting in [
            format!("namesrvAddr={ns}"),
            format!("listenPort={port}"),
            format!("storePathRootDir={}", root.display()),
            format!("storePathCommitLog={}", root.join("commitlog").display()),
            "brokerIP1=127.0.0.1".to_owned(),
        ] {
            command.args(["--set", &setting]);
        }
        let process = ServerProcess::start(command, "The broker[").unwrap_or_else(|e| panic!("mqbroker -c {}: {e}", file.display()));
        let addr = process.addr;
        (process, SocketAddr::from(([127, 0, 0, 1], addr.port())))
    };
    let began = Instant::now();
    // Masters first, then their slaves, as the README says.
    let brokers: Vec<(&str, (ServerProcess, SocketAddr))> =
        ["broker-a", "broker-b", "broker-a-s", "broker-b-s"].into_iter().map(|name| (name, start(name))).collect();

    on_compio(move || async move {
        // All four are registered: the cluster info lists every broker's address.
        let client = Client::connect(namesrv.addr, TIMEOUT).await.expect("connect to the name server");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let info = client.invoke(RemotingCommand::request(request_code::GET_BROKER_CLUSTER_INFO), TIMEOUT).await.expect("GET_BROKER_CLUSTER_INFO");
            let text = String::from_utf8_lossy(&info.body).into_owned();
            let missing: Vec<&str> =
                brokers.iter().filter(|(_, (_, addr))| !text.contains(&format!("\"{addr}\""))).map(|(name, _)| *name).collect();
            if info.code == response_code::SUCCESS && missing.is_empty() {
                assert!(text.contains("DefaultCluster") && text.contains("broker-a") && text.contains("broker-b"), "{text}");
                break;
            }
            assert!(Instant::now() < deadline, "not registered after 15 s: {missing:?}; cluster info {text}");
            compio::time::sleep(Duration::from_millis(100)).await;
        }

        // Each group's SYNC_MASTER acknowledges a send (once its slave has stored it: the
        // replication tests check the slave's copy byte by byte) and serves it.
        for master in [0, 1] {
            let (name, (_, master_addr)) = &brokers[master];
            let body = format!("deployed through {name}").into_bytes();
            let master = Client::connect(*master_addr, TIMEOUT).await.expect("connect to the master");
            // Sends refused with SLAVE_NOT_AVAILABLE before the slave connected are stored on
            // the master all the same (as Java): the acknowledged one is at its queueOffset.
            let sent = send_until_ok(&master, "DeployTopic", &body).await;
            assert_eq!(sent.ext("queueId"), Some("0"), "{sent:?}");
            assert_eq!(pull_at(&master, "DeployTopic", queue_offset(&sent)).await, body, "{name}");
        }
    });
    println!("2m-2s-sync cluster up, replicated and consumed in {:?}", began.elapsed());
}

/// Two free ports `p - 2` and `p` (Java's fast port and listenPort), checked by binding both.
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let port = free_port();
        if port > 1026 && std::net::TcpListener::bind(("127.0.0.1", port - 2)).is_ok() {
            return port;
        }
    }
    panic!("no pair of free ports p - 2, p");
}

/// Java clients up to 4.4.0 send to `listenPort - 2` by default: the broker serves the whole
/// protocol there (send, pull, admin), to the same store, and logs the address at start.
#[test]
fn the_fast_port_listen_port_minus_2_serves_the_protocol() {
    let port = free_port_pair();
    let port_setting = port.to_string();
    let broker = BrokerProcess::start(&[("listenPort", port_setting.as_str()), ("fastListenPortEnable", "true")]).unwrap();
    let fast = SocketAddr::from(([127, 0, 0, 1], port - 2));
    assert!(broker.process.log().iter().any(|l| l.contains(&format!("fast_addr=0.0.0.0:{}", port - 2))), "the boot line names the fast port");
    let main = SocketAddr::from(([127, 0, 0, 1], port));
    on_compio(move || async move {
        let vip = Client::connect(fast, TIMEOUT).await.expect("connect to listenPort - 2");
        let created = vip.invoke(ferromq_tests::create_topic_request("VipTopic", 4), TIMEOUT).await.expect("UPDATE_AND_CREATE_TOPIC");
        assert_eq!(created.code, response_code::SUCCESS, "{:?}", created.remark);
        let sent = send_until_ok(&vip, "VipTopic", b"through the VIP channel").await;
        assert_eq!(queue_offset(&sent), 0, "{sent:?}");
        assert_eq!(pull_at(&vip, "VipTopic", 0).await, b"through the VIP channel");
        // One broker behind both ports.
        let main = Client::connect(main, TIMEOUT).await.expect("connect to listenPort");
        assert_eq!(pull_at(&main, "VipTopic", 0).await, b"through the VIP channel");
    });
    drop(broker);

    // Off, the port is not opened.
    let port = free_port_pair();
    let port_setting = port.to_string();
    let _broker = BrokerProcess::start(&[("listenPort", port_setting.as_str()), ("fastListenPortEnable", "false")]).unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port - 2)).is_err(), "fastListenPortEnable=false opens no fast port");
}

fn producer_heartbeat(client_id: &str, group: &str) -> RemotingCommand {
    let body = format!(r#"{{"clientID":"{client_id}","producerDataSet":[{{"groupName":"{group}"}}],"consumerDataSet":[]}}"#);
    RemotingCommand::request(request_code::HEART_BEAT).with_body(body.into_bytes())
}

fn producer_connections(group: &str) -> RemotingCommand {
    RemotingCommand::request(request_code::GET_PRODUCER_CONNECTION_LIST).with_ext("producerGroup", group)
}

/// Waits until GET_PRODUCER_CONNECTION_LIST of `group` answers `code`; returns the body.
async fn await_producer_list(admin: &Client, group: &str, code: i32, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = admin.invoke(producer_connections(group), TIMEOUT).await.expect("GET_PRODUCER_CONNECTION_LIST");
        if response.code == code {
            return format!("{}{}", String::from_utf8_lossy(&response.body), response.remark.unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "{what}: still answered {} {:?}", response.code, String::from_utf8_lossy(&response.body));
        compio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GET_PRODUCER_CONNECTION_LIST (204) lists a producer registered by HEART_BEAT, and no longer
/// once it sent UNREGISTER_CLIENT (35) or its connection closed (Java answers SYSTEM_ERROR
/// "the producer group[…] not exist" for a group with no producer).
#[test]
fn producer_connection_list_drops_unregistered_and_closed_producers() {
    let broker = BrokerProcess::start(&[]).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], broker.process.addr.port()));
    on_compio(move || async move {
        let admin = Client::connect(addr, TIMEOUT).await.expect("connect");
        let missing = admin.invoke(producer_connections("pg"), TIMEOUT).await.expect("list");
        assert_eq!(missing.code, response_code::SYSTEM_ERROR, "{missing:?}");
        assert!(missing.remark.as_deref().unwrap_or("").contains("not exist"), "{missing:?}");

        // Closed connection.
        let producer = Client::connect(addr, TIMEOUT).await.expect("connect");
        let beat = producer.invoke(producer_heartbeat("closing-producer", "pg"), TIMEOUT).await.expect("HEART_BEAT");
        assert_eq!(beat.code, response_code::SUCCESS, "{beat:?}");
        let listed = await_producer_list(&admin, "pg", response_code::SUCCESS, "registered").await;
        assert!(listed.contains("\"clientId\":\"closing-producer\""), "{listed}");
        producer.close();
        drop(producer);
        let gone = await_producer_list(&admin, "pg", response_code::SYSTEM_ERROR, "after its connection closed").await;
        assert!(gone.contains("not exist"), "{gone}");

        // UNREGISTER_CLIENT on a connection that stays open.
        let producer = Client::connect(addr, TIMEOUT).await.expect("connect");
        producer.invoke(producer_heartbeat("leaving-producer", "pg"), TIMEOUT).await.expect("HEART_BEAT");
        let listed = await_producer_list(&admin, "pg", response_code::SUCCESS, "registered").await;
        assert!(listed.contains("\"clientId\":\"leaving-producer\""), "{listed}");
        let unregister = RemotingCommand::request(request_code::UNREGISTER_CLIENT)
            .with_ext("clientID", "leaving-producer")
            .with_ext("producerGroup", "pg");
        let answer = producer.invoke(unregister, TIMEOUT).await.expect("UNREGISTER_CLIENT");
        assert_eq!(answer.code, response_code::SUCCESS, "{answer:?}");
        let gone = await_producer_list(&admin, "pg", response_code::SYSTEM_ERROR, "after UNREGISTER_CLIENT").await;
        assert!(gone.contains("not exist"), "{gone}");
        assert!(!producer.is_closed());
    });
}

/// Lines of `file` once one of them contains `marker` (the log is written by a background
/// thread, a moment after the event).
fn log_lines_once(file: &Path, marker: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(marker) {
            return text.lines().map(str::to_owned).collect();
        }
        assert!(Instant::now() < deadline, "no {marker:?} in {} after 5 s:\n{text}", file.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `mqbroker --log-dir DIR --log-format json` creates DIR (two levels, absent), writes every
/// line there as one JSON object with `timestamp`, `level` and `fields.message` (the boot line
/// with its fields), links `DIR/broker.log` to today's `broker.YYYY-MM-DD.log`, keeps only the boot
/// lines on stderr (which is how the harness still sees it start), and loses nothing logged
/// on the way out of a clean stop.
#[test]
fn broker_logs_json_lines_to_daily_files_under_log_dir() {
    let root = TempDir::new("log-dir");
    let dir = root.path().join("logs/broker-a");
    let mut command = Command::new(binary("mqbroker"));
    command.arg("--log-dir").arg(&dir).args(["--log-format", "json"]).args(harness_args());
    for setting in [
        format!("storePathRootDir={}", root.path().join("store").display()),
        format!("listenPort={}", free_port()),
        format!("embeddedNamesrvPort={}", free_port()),
        "brokerIP1=127.0.0.1".to_owned(),
    ] {
        command.args(["--set", &setting]);
    }
    let mut broker = ServerProcess::start(command, "The broker[").unwrap();
    let stderr = broker.log();
    assert!(stderr.iter().all(|line| line.contains("boot success")), "stderr keeps only the boot lines: {stderr:#?}");

    let link = dir.join("broker.log");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "{} is not a link", link.display());
    let target = std::fs::read_link(&link).unwrap();
    let name = target.file_name().unwrap().to_string_lossy().into_owned();
    let date = name.strip_prefix("broker.").and_then(|rest| rest.strip_suffix(".log")).unwrap_or_else(|| panic!("{name}"));
    assert!(date.len() == 10 && date.chars().all(|c| c.is_ascii_digit() || c == '-'), "not a dated file: {name}");
    assert_eq!(target.parent(), Some(std::fs::canonicalize(&dir).unwrap().as_path()));

    let parse = |lines: &[String]| -> Vec<serde_json::Value> {
        lines
            .iter()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                assert!(value["timestamp"].is_string() && value["fields"]["message"].is_string(), "{line}");
                assert!(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&value["level"].as_str().unwrap_or("")), "{line}");
                value
            })
            .collect()
    };
    let lines = parse(&log_lines_once(&link, "] boot success"));
    let boot = lines.iter().find(|v| v["fields"]["message"].as_str().is_some_and(|m| m.starts_with("The broker[") && m.contains("boot success")));
    let boot = boot.unwrap_or_else(|| panic!("no boot line in {lines:#?}"));
    assert_eq!(boot["level"], "INFO");
    assert_eq!(boot["fields"]["local_addr"].as_str(), Some(broker.addr.to_string().as_str()), "{boot}");

    assert!(broker.terminate().success());
    let lines = parse(&std::fs::read_to_string(&link).unwrap().lines().map(str::to_owned).collect::<Vec<_>>());
    assert!(lines.iter().any(|v| v["fields"]["message"] == "stop signal received"), "the lines logged at exit were lost: {lines:#?}");
}

/// `mqnamesrv` takes the directory from FERROMQ_LOG_DIR too (text lines), and a directory it
/// cannot create stops the start with exit 2 and one line naming it, not a panic.
#[test]
fn namesrv_logs_under_the_env_directory_and_refuses_one_it_cannot_create() {
    let root = TempDir::new("namesrv-log-dir");
    let dir = root.path().join("logs");
    let dir_text = dir.to_str().expect("utf-8 path");
    let (namesrv, _kv) = start_namesrv(&[], &[("FERROMQ_LOG_DIR", dir_text)]).unwrap();
    let lines = log_lines_once(&dir.join("namesrv.log"), "The Name Server boot success");
    let boot = lines.iter().find(|line| line.contains("The Name Server boot success")).unwrap();
    assert!(boot.contains(" INFO ") && boot.contains(&format!("local_addr={}", namesrv.addr)) && !boot.starts_with('{'), "{boot}");
    drop(namesrv);

    let not_a_dir = root.path().join("a-file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let refused = not_a_dir.join("logs");
    let output = Command::new(binary("mqnamesrv")).args(["--listen", "127.0.0.1:0", "--log-dir"]).arg(&refused).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(&format!("mqnamesrv: log directory {}: cannot create it: ", refused.display())), "{stderr}");
}

/// `GET path` on the metrics endpoint at `addr`: (status line, body).
fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, TIMEOUT).unwrap_or_else(|e| panic!("connect to the metrics endpoint {addr}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// A scrape's body (status 200 checked).
fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    body
}

/// The sum of the samples of `series` (e.g. `rocketmq_messages_in_total`, without labels) whose
/// labels include every one of `labels` (`topic="T"`); 0 when there is none.
fn sum_of(text: &str, series: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(series)?.strip_prefix('{')?;
            let (set, value) = rest.rsplit_once("} ")?;
            let names: Vec<&str> = set.split(',').collect();
            labels.iter().all(|l| names.contains(l)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Issue 11's acceptance: with `metricsExporterType=PROM`, a scrape before and after a
/// produce/consume run sees `rocketmq_messages_in_total` move by exactly the messages sent to
/// the topic and `rocketmq_messages_out_total` by exactly those consumed, with RocketMQ 5's
/// labels; other paths are 404.
#[test]
fn the_metrics_endpoint_counts_exactly_the_messages_sent_and_consumed() {
    const TOPIC: &str = "MetricsTopic";
    const GROUP: &str = "metrics_consumer";
    const QUEUES: u32 = 4;
    const MESSAGES: u32 = 25;
    let port = free_port();
    let port_setting = port.to_string();
    // SYNC_FLUSH: every send is fdatasync'ed before its answer, so the flush histograms have
    // observations by the second scrape.
    let settings = [("metricsExporterType", "PROM"), ("metricsPromExporterPort", &port_setting), ("brokerName", "metrics-broker"), ("flushDiskType", "SYNC_FLUSH")];
    let broker = BrokerProcess::start(&settings).unwrap();
    // The host defaults to brokerIP1, which the harness sets to 127.0.0.1.
    let endpoint = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(broker.process.log().iter().any(|l| l.contains(&format!("http://{endpoint}/metrics"))), "the endpoint is logged");
    let before = scrape(endpoint);
    let topic_label = format!("topic=\"{TOPIC}\"");
    let group_label = format!("consumer_group=\"{GROUP}\"");
    let broker_addr = broker.process.addr;
    let consumed = on_compio(move || async move {
        let client = Client::connect(broker_addr, TIMEOUT).await.expect("connect");
        let created = client.invoke(ferromq_tests::create_topic_request(TOPIC, QUEUES), TIMEOUT).await.expect("UPDATE_AND_CREATE_TOPIC");
        assert_eq!(created.code, response_code::SUCCESS, "{:?}", created.remark);
        for i in 0..MESSAGES {
            let request = ferromq_tests::send_v2_request("metrics_producer", TOPIC, QUEUES, i % QUEUES, "TAGS\u{1}T\u{2}", vec![b'm'; 100]);
            let sent = client.invoke(request, TIMEOUT).await.expect("SEND_MESSAGE_V2");
            assert_eq!(sent.code, response_code::SUCCESS, "{:?}", sent.remark);
        }
        // Every queue read from 0 to its end (a send is answered before its entry is
        // dispatched: pull until every message came back).
        let mut next = [0u64; QUEUES as usize];
        let mut consumed = 0u32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while consumed < MESSAGES {
            assert!(Instant::now() < deadline, "consumed {consumed} of {MESSAGES}");
            for queue in 0..QUEUES {
                let at = next[queue as usize];
                let response = client.invoke(ferromq_tests::pull_request(GROUP, TOPIC, queue, at), TIMEOUT).await.expect("PULL_MESSAGE");
                if response.code == response_code::SUCCESS {
                    let records = ferromq_store::record::decode_body_strict(&response.body).unwrap_or_else(|(at, e)| panic!("undecodable body at {at}: {e}"));
                    next[queue as usize] += records.len() as u64;
                    consumed += records.len() as u32;
                }
            }
        }
        // The group commits queue 0 at its start: all of that queue is its lag.
        let commit = RemotingCommand::request(request_code::UPDATE_CONSUMER_OFFSET)
            .with_ext("consumerGroup", GROUP)
            .with_ext("topic", TOPIC)
            .with_ext("queueId", 0)
            .with_ext("commitOffset", 0);
        let committed = client.invoke(commit, TIMEOUT).await.expect("UPDATE_CONSUMER_OFFSET");
        assert_eq!(committed.code, response_code::SUCCESS, "{:?}", committed.remark);
        (consumed, next[0])
    });
    let (consumed, queue_0_messages) = consumed;
    assert_eq!(consumed, MESSAGES);
    let after = scrape(endpoint);
    let delta = |series: &str, labels: &[&str]| sum_of(&after, series, labels) - sum_of(&before, series, labels);
    let common = ["cluster=\"DefaultCluster\"", "node_type=\"broker\"", "node_id=\"metrics-broker\""];
    let sent_labels: Vec<&str> = common.iter().copied().chain([topic_label.as_str(), "message_type=\"normal\"", "is_system=\"false\""]).collect();
    assert_eq!(delta("rocketmq_messages_in_total", &sent_labels), f64::from(MESSAGES), "{after}");
    assert!(delta("rocketmq_throughput_in_total", &sent_labels) >= f64::from(MESSAGES * 100), "{after}");
    assert_eq!(delta("rocketmq_message_size_count", &sent_labels), f64::from(MESSAGES), "{after}");
    let out_labels = [topic_label.as_str(), group_label.as_str(), "is_system=\"false\""];
    assert_eq!(delta("rocketmq_messages_out_total", &out_labels), f64::from(consumed), "{after}");
    assert!(delta("rocketmq_throughput_out_total", &out_labels) >= f64::from(consumed * 100), "{after}");
    let send_rpc = ["protocol_type=\"remoting\"", "request_code=\"send_message_v2\"", "response_code=\"success\""];
    assert_eq!(delta("rocketmq_rpc_latency_count", &send_rpc), f64::from(MESSAGES), "{after}");
    assert!(sum_of(&after, "rocketmq_topic_number", &common) >= 1.0, "{after}");
    assert_eq!(sum_of(&after, "rocketmq_broker_permission", &common), 6.0, "{after}");
    assert!(sum_of(&after, "rocketmq_storage_size", &["storage_type=\"local\""]) > 0.0, "{after}");
    assert!(sum_of(&after, "ferromq_flush_batch_bytes_count", &common) >= 1.0, "{after}");
    assert!(sum_of(&after, "ferromq_fdatasync_seconds_count", &common) >= 1.0, "{after}");
    // The lag of the offsets the group committed (queue 0 at 0: the pulls committed nothing),
    // once the commit has reached the control thread (shards hand commits over in batches).
    let lag_labels = [group_label.as_str(), topic_label.as_str(), "is_retry=\"false\""];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape(endpoint);
        let lag = sum_of(&text, "rocketmq_consumer_lag_messages", &lag_labels);
        if lag == queue_0_messages as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "lag {lag}, expected {queue_0_messages}:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http_get(endpoint, "/").0, "HTTP/1.1 404 Not Found");
}

/// `metricsExporterType` values RocketMQ 5 has and FerroMQ does not implement stop the start
/// with one line naming the key and the value, never accepted and ignored.
#[test]
fn metrics_exporters_ferromq_does_not_implement_are_refused_at_start() {
    for value in ["OTLP_GRPC", "LOG"] {
        let error = BrokerProcess::start(&[("metricsExporterType", value)]).err().expect("must not start");
        assert!(error.lines().any(|l| l.contains("metricsExporterType") && l.contains(value) && l.contains("not implemented")), "{error}");
    }
}

/// The name server's endpoint (`metricsExporterType=PROM` in its properties file) serves
/// `rocketmq_rpc_latency` for the requests it answered.
#[test]
fn the_name_server_metrics_endpoint_answers() {
    let port = free_port();
    let dir = TempDir::new("namesrv-metrics");
    let file = dir.path().join("namesrv.properties");
    std::fs::write(&file, format!("metricsExporterType=PROM\nmetricsPromExporterHost=127.0.0.1\nmetricsPromExporterPort={port}\n")).unwrap();
    let (namesrv, _kv) = start_namesrv(&["-c", file.to_str().unwrap()], &[]).unwrap();
    let endpoint = SocketAddr::from(([127, 0, 0, 1], port));
    let namesrv_addr = namesrv.addr;
    on_compio(move || async move {
        let client = Client::connect(namesrv_addr, TIMEOUT).await.expect("connect");
        for _ in 0..3 {
            let answer = client.invoke(RemotingCommand::request(request_code::GET_BROKER_CLUSTER_INFO), TIMEOUT).await.expect("GET_BROKER_CLUSTER_INFO");
            assert_eq!(answer.code, response_code::SUCCESS);
        }
    });
    let text = scrape(endpoint);
    let labels = ["node_type=\"namesrv\"", "request_code=\"get_broker_cluster_info\"", "response_code=\"success\""];
    assert_eq!(sum_of(&text, "rocketmq_rpc_latency_count", &labels), 3.0, "{text}");
    assert_eq!(http_get(endpoint, "/favicon.ico").0, "HTTP/1.1 404 Not Found");
}
