//! Operating FerroMQ (issue 11): the README's "Deploying on dedicated hosts" commands run
//! against the shipped `tuning/conf/2m-2s-sync` files, Java's fast ("VIP") port, and the
//! producer table that GET_PRODUCER_CONNECTION_LIST reports.

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
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = client.invoke(ferromq_tests::pull_request("deploy_consumer", topic, 0, offset), TIMEOUT).await.expect("PULL_MESSAGE");
        if response.code == response_code::SUCCESS {
            let records = ferromq_store::record::decode_body_strict(&response.body).unwrap_or_else(|(at, e)| panic!("undecodable body at {at}: {e}"));
            let first = records.into_iter().next().expect("a record");
            assert_eq!(first.queue_offset as u64, offset);
            return first.body.to_vec();
        }
        assert!(Instant::now() < deadline, "no record at {topic}:0:{offset}: {} {:?}", response.code, response.remark);
        compio::time::sleep(Duration::from_millis(50)).await;
    }
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
