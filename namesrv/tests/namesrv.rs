//! The name server over real loopback sockets, driven by our RPC client playing brokers,
//! clients and admin tools. Runs on the backend chosen by `FERROMQ_IO_BACKEND`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferromq_namesrv::register_body::{DataVersion, RegisterBrokerBody, TopicConfig};
use ferromq_namesrv::{NamesrvConfig, NamesrvHandle};
use ferromq_net::RemotingCommand;
use ferromq_net::backend::runtime_from_env;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code as rc, response_code};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(10);

struct TestNamesrv {
    handle: Option<NamesrvHandle>,
    dir: PathGuard,
}

struct PathGuard(std::path::PathBuf);
impl Drop for PathGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start_with(tweak: impl FnOnce(&mut NamesrvConfig)) -> TestNamesrv {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ferromq-namesrv-test-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut config = NamesrvConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        kv_config_path: dir.join("kvConfig.json"),
        ..NamesrvConfig::default()
    };
    tweak(&mut config);
    TestNamesrv { handle: Some(ferromq_namesrv::start(config).expect("name server starts")), dir: PathGuard(dir) }
}

impl TestNamesrv {
    fn addr(&self) -> SocketAddr {
        self.handle.as_ref().unwrap().local_addr()
    }
}

fn run<F: std::future::Future<Output = ()>>(test: F) {
    let (runtime, _) = runtime_from_env().unwrap();
    runtime.block_on(test);
}

fn topics(names: &[&str], queues: i32) -> Vec<TopicConfig> {
    names
        .iter()
        .map(|n| TopicConfig { read_queue_nums: queues, write_queue_nums: queues, ..TopicConfig::new(*n) })
        .collect()
}

fn register_request(cluster: &str, name: &str, addr: &str, id: u64, topics: Vec<TopicConfig>) -> RemotingCommand {
    let body = RegisterBrokerBody {
        data_version: DataVersion { counter: 1, state_version: 0, timestamp: 1_700_000_000_000 },
        topics,
        filter_server_list: vec![],
    };
    RemotingCommand::request(rc::REGISTER_BROKER)
        .with_ext("brokerName", name)
        .with_ext("brokerAddr", addr)
        .with_ext("clusterName", cluster)
        .with_ext("haServerAddr", addr.replace(":10911", ":10912"))
        .with_ext("brokerId", id)
        .with_body(body.to_json())
}

async fn call(client: &Client, request: RemotingCommand) -> RemotingCommand {
    client.invoke(request, TIMEOUT).await.expect("response")
}

async fn route(client: &Client, topic: &str, version: i32) -> RemotingCommand {
    let mut request = RemotingCommand::request(rc::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
    request.version = version;
    call(client, request).await
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

#[test]
fn registered_topics_are_routed_in_both_json_flavours() {
    let ns = start_with(|_| {});
    run(async {
        let broker = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        let r = call(&broker, register_request("DefaultCluster", "broker-a", "127.0.0.1:10911", 0, topics(&["TopicTest", "Other"], 4))).await;
        assert_eq!(r.code, 0, "{r:?}");
        let client = Client::connect(ns.addr(), TIMEOUT).await.unwrap();

        // 5.x clients (version >= 401): standard JSON with quoted broker ids.
        let r = route(&client, "TopicTest", 479).await;
        assert_eq!(r.code, 0);
        let text = String::from_utf8(r.body.to_vec()).unwrap();
        assert!(text.contains(r#""brokerAddrs":{"0":"127.0.0.1:10911"}"#), "{text}");
        assert!(text.contains(r#""enableActingMaster":false"#), "{text}");
        let route_json = json(&r.body);
        assert_eq!(route_json["queueDatas"][0]["brokerName"], "broker-a");
        assert_eq!(route_json["queueDatas"][0]["readQueueNums"], 4);
        assert_eq!(route_json["queueDatas"][0]["writeQueueNums"], 4);
        assert_eq!(route_json["queueDatas"][0]["perm"], 6);
        assert_eq!(route_json["brokerDatas"][0]["cluster"], "DefaultCluster");

        // Old clients (version < 401): fastjson form, unquoted numeric keys.
        let r = route(&client, "TopicTest", 317).await;
        let text = String::from_utf8(r.body.to_vec()).unwrap();
        assert!(text.contains(r#""brokerAddrs":{0:"127.0.0.1:10911"}"#), "{text}");
        // ... unless they ask for standard JSON.
        let r = call(
            &client,
            RemotingCommand { version: 317, ..RemotingCommand::request(rc::GET_ROUTEINFO_BY_TOPIC) }
                .with_ext("topic", "TopicTest")
                .with_ext("acceptStandardJsonOnly", true),
        )
        .await;
        assert!(String::from_utf8_lossy(&r.body).contains(r#"{"0":"#));

        let r = route(&client, "NoSuchTopic", 479).await;
        assert_eq!(r.code, response_code::TOPIC_NOT_EXIST);
        assert_eq!(r.remark.as_deref(), Some("No topic route info in name server for the topic: NoSuchTopic"));

        let r = call(&client, RemotingCommand::request(rc::GET_BROKER_CLUSTER_INFO)).await;
        let info = json(&r.body);
        assert_eq!(info["clusterAddrTable"]["DefaultCluster"][0], "broker-a");
        assert_eq!(info["brokerAddrTable"]["broker-a"]["brokerAddrs"]["0"], "127.0.0.1:10911");

        let r = call(&client, RemotingCommand::request(rc::GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).await;
        let list = json(&r.body);
        let mut names: Vec<_> = list["topicList"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect();
        names.sort();
        assert_eq!(names, ["Other", "TopicTest"]);

        let r = call(&client, RemotingCommand::request(12345)).await;
        assert_eq!(r.code, response_code::REQUEST_CODE_NOT_SUPPORTED);
    });
}

#[test]
fn slaves_learn_their_master_and_unregistration_removes_routes() {
    let ns = start_with(|_| {});
    run(async {
        let master = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        let slave = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        let both = topics(&["T1", "T2"], 8);
        // A slave that registers before its master hears of none (§2.6 step 5) ...
        let r = call(&slave, register_request("C", "b", "127.0.0.2:10911", 1, both.clone())).await;
        assert_eq!((r.code, r.ext("masterAddr"), r.ext("haServerAddr")), (0, None, None));
        // ... and of the live master once it registered: its remoting and HA addresses.
        assert_eq!(call(&master, register_request("C", "b", "127.0.0.1:10911", 0, both.clone())).await.code, 0);
        let r = call(&slave, register_request("C", "b", "127.0.0.2:10911", 1, both.clone())).await;
        assert_eq!(r.ext("masterAddr"), Some("127.0.0.1:10911"));
        assert_eq!(r.ext("haServerAddr"), Some("127.0.0.1:10912"));
        let client = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        let r = route(&client, "T1", 479).await;
        assert_eq!(json(&r.body)["brokerDatas"][0]["brokerAddrs"]["1"], "127.0.0.2:10911");

        let unregister = |addr: &str| {
            RemotingCommand::request(rc::UNREGISTER_BROKER)
                .with_ext("brokerName", "b")
                .with_ext("brokerAddr", addr)
                .with_ext("clusterName", "C")
                .with_ext("brokerId", 0)
        };
        assert_eq!(call(&master, unregister("127.0.0.1:10911")).await.code, 0);
        // The slave alone still serves reads, so the route stays with one address.
        let r = route(&client, "T1", 479).await;
        assert_eq!(r.code, 0);
        assert!(json(&r.body)["brokerDatas"][0]["brokerAddrs"].get("0").is_none());
        // The master gone, the slave's next registration names no master: that is how a slave
        // learns its master is down.
        let r = call(&slave, register_request("C", "b", "127.0.0.2:10911", 1, both)).await;
        assert_eq!((r.code, r.ext("masterAddr"), r.ext("haServerAddr")), (0, None, None));
        assert_eq!(call(&slave, unregister("127.0.0.2:10911")).await.code, 0);
        assert_eq!(route(&client, "T1", 479).await.code, response_code::TOPIC_NOT_EXIST);
    });
}

#[test]
fn brokers_expire_and_closed_connections_drop_at_once() {
    let ns = start_with(|c| {
        c.broker_expiry = Duration::from_millis(300);
        c.scan_interval = Duration::from_millis(50);
    });
    run(async {
        let client = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        // Expiry: the broker keeps its connection but stops registering.
        let quiet = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        call(&quiet, register_request("C", "quiet", "127.0.0.1:20911", 0, topics(&["Q1", "Q2"], 2))).await;
        assert_eq!(route(&client, "Q1", 479).await.code, 0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while route(&client, "Q1", 479).await.code == 0 {
            assert!(Instant::now() < deadline, "route did not expire");
            compio::time::sleep(Duration::from_millis(50)).await;
        }
        // Connection close: removal does not wait for the expiry.
        let leaving = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        call(&leaving, register_request("C", "leaving", "127.0.0.1:30911", 0, topics(&["L1", "L2"], 2))).await;
        assert_eq!(route(&client, "L1", 479).await.code, 0);
        leaving.close();
        let deadline = Instant::now() + Duration::from_millis(250);
        while route(&client, "L1", 479).await.code == 0 {
            assert!(Instant::now() < deadline, "route outlived its broker's connection");
            compio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

#[test]
fn kv_config_and_order_topics() {
    let ns = start_with(|c| c.order_message_enable = true);
    run(async {
        let admin = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        let put = RemotingCommand::request(rc::PUT_KV_CONFIG)
            .with_ext("namespace", "ORDER_TOPIC_CONFIG")
            .with_ext("key", "Orders")
            .with_ext("value", "broker-a:4");
        assert_eq!(call(&admin, put).await.code, 0);
        let get = RemotingCommand::request(rc::GET_KV_CONFIG).with_ext("namespace", "ORDER_TOPIC_CONFIG").with_ext("key", "Orders");
        assert_eq!(call(&admin, get.clone()).await.ext("value"), Some("broker-a:4"));
        let list = call(&admin, RemotingCommand::request(rc::GET_KVLIST_BY_NAMESPACE).with_ext("namespace", "ORDER_TOPIC_CONFIG")).await;
        assert_eq!(json(&list.body)["table"]["Orders"], "broker-a:4");

        // Brokers get the order-topic table back when they register; routes carry the conf.
        let r = call(&admin, register_request("C", "broker-a", "127.0.0.1:10911", 0, topics(&["Orders", "Plain"], 4))).await;
        assert_eq!(json(&r.body)["table"]["Orders"], "broker-a:4");
        let r = route(&admin, "Orders", 479).await;
        assert_eq!(json(&r.body)["orderTopicConf"], "broker-a:4");
        assert!(json(&route(&admin, "Plain", 479).await.body).get("orderTopicConf").is_none());

        let delete = RemotingCommand::request(rc::DELETE_KV_CONFIG).with_ext("namespace", "ORDER_TOPIC_CONFIG").with_ext("key", "Orders");
        assert_eq!(call(&admin, delete).await.code, 0);
        assert_eq!(call(&admin, get).await.code, response_code::QUERY_NOT_FOUND);
    });
    // The KV table is persisted where the config says.
    assert!(ns.dir.0.join("kvConfig.json").exists());
}

#[test]
fn admin_codes_delete_topics_and_toggle_write_permission() {
    let ns = start_with(|_| {});
    run(async {
        let c = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        call(&c, register_request("C", "b", "127.0.0.1:10911", 0, topics(&["A", "B", "Z"], 4))).await;
        let wipe = call(&c, RemotingCommand::request(rc::WIPE_WRITE_PERM_OF_BROKER).with_ext("brokerName", "b")).await;
        assert_eq!(wipe.ext("wipeTopicCount"), Some("3"));
        assert_eq!(json(&route(&c, "A", 479).await.body)["queueDatas"][0]["perm"], 4);
        let add = call(&c, RemotingCommand::request(rc::ADD_WRITE_PERM_OF_BROKER).with_ext("brokerName", "b")).await;
        assert_eq!(add.ext("addTopicCount"), Some("3"));
        assert_eq!(json(&route(&c, "A", 479).await.body)["queueDatas"][0]["perm"], 6);
        let del = call(&c, RemotingCommand::request(rc::DELETE_TOPIC_IN_NAMESRV).with_ext("topic", "Z")).await;
        assert_eq!(del.code, 0);
        assert_eq!(route(&c, "Z", 479).await.code, response_code::TOPIC_NOT_EXIST);
        let r = call(&c, RemotingCommand::request(rc::GET_TOPICS_BY_CLUSTER).with_ext("cluster", "C")).await;
        assert_eq!(json(&r.body)["topicList"].as_array().unwrap().len(), 2);
        // Missing mandatory header fields get a clear error, not a panic.
        let r = call(&c, RemotingCommand::request(rc::REGISTER_BROKER)).await;
        assert_eq!(r.code, response_code::SYSTEM_ERROR);
        assert!(r.remark.unwrap().contains("brokerName"));
        let r = call(&c, RemotingCommand::request(rc::REGISTER_BROKER).with_ext("brokerName", "x").with_ext("brokerAddr", "y").with_ext("clusterName", "z").with_ext("brokerId", 0).with_body(&b"{not json"[..])).await;
        assert_eq!(r.code, response_code::SYSTEM_ERROR);
    });
}

#[test]
fn ten_thousand_topics_from_one_broker_are_routed() {
    let ns = start_with(|_| {});
    run(async {
        let names: Vec<String> = (0..10_000).map(|i| format!("topic-{i:05}")).collect();
        let configs: Vec<TopicConfig> = names
            .iter()
            .enumerate()
            .map(|(i, n)| TopicConfig { read_queue_nums: 1 + (i % 16) as i32, write_queue_nums: 1 + (i % 16) as i32, ..TopicConfig::new(n.clone()) })
            .collect();
        let broker = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        let request = register_request("C", "big", "127.0.0.1:10911", 0, configs);
        let body_bytes = request.body.len();
        assert_eq!(call(&broker, request).await.code, 0);
        let client = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        for (i, name) in names.iter().enumerate() {
            let r = route(&client, name, 479).await;
            assert_eq!(r.code, 0, "{name}");
            let route = json(&r.body);
            assert_eq!(route["queueDatas"][0]["writeQueueNums"], 1 + (i % 16) as i64, "{name}");
        }
        eprintln!("10,000-topic registration body: {body_bytes} bytes");
    });
}

/// Near the frame limit: a registration over `max_frame_bytes` closes that broker's connection
/// (as the Java name server does) and nothing already registered is lost; the same topics fit
/// in a compressed registration (`compressed=true`), which is the way past ~100k topics.
#[test]
fn over_limit_registration_is_refused_and_compressed_one_fits() {
    let frame_limit = 256 * 1024;
    let ns = start_with(|c| c.limits.conn.wire.max_frame_bytes = frame_limit);
    run(async {
        let client = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        call(&client, register_request("C", "small", "127.0.0.1:10911", 0, topics(&["Kept1", "Kept2"], 4))).await;
        let names: Vec<String> = (0..3000).map(|i| format!("topic-{i:05}")).collect();
        let many: Vec<TopicConfig> = names.iter().map(|n| TopicConfig::new(n.clone())).collect();
        let request = register_request("C", "huge", "127.0.0.1:40911", 0, many.clone());
        assert!(request.body.len() > frame_limit, "body {} bytes", request.body.len());
        let broker = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        let refused = broker.invoke(request, TIMEOUT).await;
        assert!(refused.is_err(), "over-limit registration answered: {refused:?}");
        assert_eq!(route(&client, "Kept1", 479).await.code, 0);

        let body = RegisterBrokerBody { data_version: DataVersion::default(), topics: many, filter_server_list: vec![] };
        let compressed = body.to_compressed();
        assert!(compressed.len() < frame_limit);
        let broker = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        let request = register_request("C", "huge", "127.0.0.1:40911", 0, vec![])
            .with_ext("compressed", true)
            .with_body(compressed);
        assert_eq!(call(&broker, request).await.code, 0);
        assert_eq!(route(&client, "topic-02999", 479).await.code, 0);
    });
}

#[test]
fn garbage_on_one_connection_does_not_disturb_others() {
    use compio::io::{AsyncRead, AsyncWriteExt};
    let ns = start_with(|_| {});
    run(async {
        let client = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        call(&client, register_request("C", "b", "127.0.0.1:10911", 0, topics(&["T", "U"], 4))).await;
        for garbage in [vec![0xFFu8; 64], b"\x00\x00\x00\x0c\x00\x00\x00\x08{\"code\":".to_vec(), vec![0x7F, 0, 0, 0]] {
            let mut raw = compio::net::TcpStream::connect(ns.addr()).await.unwrap();
            let compio::BufResult(written, _) = raw.write_all(garbage).await;
            written.unwrap();
            let compio::BufResult(read, _) = compio::time::timeout(TIMEOUT, raw.read(Vec::with_capacity(16))).await.unwrap();
            assert!(matches!(read, Ok(0) | Err(_)), "connection left open: {read:?}");
            assert_eq!(route(&client, "T", 479).await.code, 0);
        }
    });
}

#[test]
fn mqnamesrv_refuses_a_negative_interval_naming_the_flag_and_value() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mqnamesrv"))
        .args(["--listen", "127.0.0.1:0", "--scan-interval-ms", "-1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--scan-interval-ms -1") && stderr.contains("scanNotActiveBrokerInterval"), "{stderr}");
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
}

// ---- who may change the routes (aclEnable, changeWhiteRemoteAddresses) ----------------------

const ACL_RULES: &str = "accounts:\n  - accessKey: broker-admin\n    secretKey: broker-admin-secret\n    admin: true\n  - accessKey: producer\n    secretKey: producer-secret\n    defaultTopicPerm: PUB|SUB\n";

fn acl_namesrv(rules: &str) -> (TestNamesrv, PathGuard) {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("ferromq-namesrv-acl-{}-{}", std::process::id(), SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("plain_acl.yml");
    std::fs::write(&file, rules).unwrap();
    let ns = start_with(|c| {
        c.apply("aclEnable", "true").unwrap();
        c.apply("rocketmq.acl.plain.file", file.to_str().unwrap()).unwrap();
    });
    (ns, PathGuard(dir))
}

fn signer(ak: &str, sk: &str) -> Option<ferromq_net::acl::Credentials> {
    Some(ferromq_net::acl::Credentials::new(ak, sk))
}

fn refused_by_acl(r: &RemotingCommand, reason: &str) {
    assert_eq!(r.code, response_code::SYSTEM_ERROR, "{r:?}");
    let remark = r.remark.clone().unwrap_or_default();
    assert!(remark.starts_with("org.apache.rocketmq.acl.common.AclException: ") && remark.contains(reason), "{remark}");
}

#[test]
fn with_acl_on_only_an_admin_accounts_signature_changes_the_name_server() {
    let (ns, _acl) = acl_namesrv(ACL_RULES);
    run(async {
        let unsigned = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        let register = || register_request("C", "broker-a", "127.0.0.1:10911", 0, topics(&["T", "T2"], 4));
        // Unsigned, and signed by an account that is not an admin: refused, the routes unchanged.
        refused_by_acl(&call(&unsigned, register()).await, "No accessKey is configured");
        let producer = Client::connect(ns.addr(), TIMEOUT).await.unwrap().signed_by(signer("producer", "producer-secret"));
        refused_by_acl(&call(&producer, register()).await, "Need admin permission for request code=103");
        let forged = Client::connect(ns.addr(), TIMEOUT).await.unwrap().signed_by(signer("broker-admin", "guessed-secret"));
        refused_by_acl(&call(&forged, register()).await, "Check signature failed");
        assert_eq!(route(&unsigned, "T", 479).await.code, response_code::TOPIC_NOT_EXIST);
        // One-way: nothing answers, nothing changes.
        unsigned.invoke_oneway(register()).await.unwrap();

        // The admin account's signature registers; reads stay open to everyone.
        let broker = Client::connect(ns.addr(), TIMEOUT).await.unwrap().signed_by(signer("broker-admin", "broker-admin-secret"));
        assert_eq!(call(&broker, register()).await.code, 0);
        let routed = route(&unsigned, "T", 479).await;
        assert_eq!(routed.code, 0);
        assert_eq!(json(&routed.body)["brokerDatas"][0]["brokerAddrs"]["0"], "127.0.0.1:10911");
        assert_eq!(call(&unsigned, RemotingCommand::request(rc::GET_BROKER_CLUSTER_INFO)).await.code, 0);
        let get_kv = RemotingCommand::request(rc::GET_KV_CONFIG).with_ext("namespace", "N").with_ext("key", "k");
        assert_eq!(call(&unsigned, get_kv.clone()).await.code, response_code::QUERY_NOT_FOUND);
        assert_eq!(call(&unsigned, RemotingCommand::request(rc::GET_TOPICS_BY_CLUSTER).with_ext("cluster", "C")).await.code, 0);

        // An impostor taking the broker's name, and every other change code, unsigned: refused.
        let impostor = register_request("C", "broker-a", "127.0.0.1:20911", 0, topics(&["T", "T2"], 4));
        refused_by_acl(&call(&unsigned, impostor).await, "No accessKey");
        let changes = [
            RemotingCommand::request(rc::UNREGISTER_BROKER).with_ext("clusterName", "C").with_ext("brokerAddr", "127.0.0.1:10911").with_ext("brokerName", "broker-a"),
            RemotingCommand::request(rc::WIPE_WRITE_PERM_OF_BROKER).with_ext("brokerName", "broker-a"),
            RemotingCommand::request(rc::ADD_WRITE_PERM_OF_BROKER).with_ext("brokerName", "broker-a"),
            RemotingCommand::request(rc::DELETE_TOPIC_IN_NAMESRV).with_ext("topic", "T"),
            RemotingCommand::request(rc::REGISTER_TOPIC_IN_NAMESRV).with_ext("topic", "U").with_body(&b"{}"[..]),
            RemotingCommand::request(rc::PUT_KV_CONFIG).with_ext("namespace", "N").with_ext("key", "k").with_ext("value", "v"),
            RemotingCommand::request(rc::DELETE_KV_CONFIG).with_ext("namespace", "N").with_ext("key", "k"),
            RemotingCommand::request(rc::UPDATE_NAMESRV_CONFIG).with_body(&b"enableTopicList=false\n"[..]),
            RemotingCommand::request(rc::BROKER_HEARTBEAT).with_ext("clusterName", "C").with_ext("brokerAddr", "127.0.0.1:10911"),
            RemotingCommand::request(rc::QUERY_DATA_VERSION).with_ext("clusterName", "C").with_ext("brokerAddr", "127.0.0.1:10911"),
        ];
        for change in changes {
            let code = change.code;
            let r = call(&unsigned, change.clone()).await;
            assert_eq!(r.code, response_code::SYSTEM_ERROR, "code {code}: {r:?}");
            assert!(r.remark.unwrap_or_default().contains("AclException"), "code {code}");
            let r = call(&producer, change).await;
            assert!(r.remark.unwrap_or_default().contains("Need admin permission"), "code {code}");
        }
        let routed = json(&route(&unsigned, "T", 479).await.body);
        assert_eq!(routed["brokerDatas"][0]["brokerAddrs"]["0"], "127.0.0.1:10911", "{routed}");
        assert_eq!(routed["queueDatas"][0]["perm"], 6, "{routed}");
        assert_eq!(call(&unsigned, get_kv).await.code, response_code::QUERY_NOT_FOUND);
        // The admin may use them.
        let wipe = call(&broker, RemotingCommand::request(rc::WIPE_WRITE_PERM_OF_BROKER).with_ext("brokerName", "broker-a")).await;
        assert_eq!(wipe.ext("wipeTopicCount"), Some("2"), "{wipe:?}");
    });
}

#[test]
fn white_listed_addresses_change_without_a_signature_as_java_does() {
    let rules = "globalWhiteRemoteAddresses:\n  - 127.0.0.*\naccounts:\n  - accessKey: broker-admin\n    secretKey: broker-admin-secret\n    admin: true\n";
    let (ns, _acl) = acl_namesrv(rules);
    run(async {
        let unsigned = Client::connect(ns.addr(), TIMEOUT).await.unwrap();
        assert_eq!(call(&unsigned, register_request("C", "b", "127.0.0.1:10911", 0, topics(&["T", "T2"], 4))).await.code, 0);
    });
}

#[test]
fn the_change_allow_list_admits_only_its_addresses_when_acl_is_off() {
    let closed = start_with(|c| c.apply("changeWhiteRemoteAddresses", "10.255.255.1,192.168.7.*").unwrap());
    let open = start_with(|c| c.apply("changeWhiteRemoteAddresses", "10.255.255.1, 127.0.0.1").unwrap());
    run(async {
        let c = Client::connect(closed.addr(), TIMEOUT).await.unwrap();
        let r = call(&c, register_request("C", "b", "127.0.0.1:10911", 0, topics(&["T", "T2"], 4))).await;
        assert_eq!(r.code, response_code::NO_PERMISSION, "{r:?}");
        let remark = r.remark.unwrap_or_default();
        assert!(remark.contains("changeWhiteRemoteAddresses") && remark.contains("127.0.0.1"), "{remark}");
        let r = call(&c, RemotingCommand::request(rc::WIPE_WRITE_PERM_OF_BROKER).with_ext("brokerName", "b")).await;
        assert_eq!(r.code, response_code::NO_PERMISSION);
        assert_eq!(route(&c, "T", 479).await.code, response_code::TOPIC_NOT_EXIST, "reads stay open, nothing registered");
        assert_eq!(call(&c, RemotingCommand::request(rc::GET_BROKER_CLUSTER_INFO)).await.code, 0);

        let c = Client::connect(open.addr(), TIMEOUT).await.unwrap();
        let r = call(&c, register_request("C", "b", "127.0.0.1:10911", 0, topics(&["T", "T2"], 4))).await;
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(route(&c, "T", 479).await.code, 0);
    });
}

#[test]
fn acl_without_a_usable_rules_file_stops_the_start_naming_it() {
    let start = |tweak: &dyn Fn(&mut NamesrvConfig)| {
        let mut config = NamesrvConfig { listen: "127.0.0.1:0".parse().unwrap(), ..NamesrvConfig::default() };
        config.kv_config_path = std::env::temp_dir().join(format!("ferromq-namesrv-acl-start-{}", std::process::id())).join("kvConfig.json");
        tweak(&mut config);
        ferromq_namesrv::start(config).err().map(|e| e.to_string()).unwrap_or_default()
    };
    let err = start(&|c| c.apply("aclEnable", "true").unwrap());
    assert!(err.contains("aclEnable") && err.contains("rocketmq.acl.plain.file"), "{err}");
    let err = start(&|c| {
        c.apply("aclEnable", "true").unwrap();
        c.apply("rocketmq.acl.plain.file", "/nonexistent/plain_acl.yml").unwrap();
    });
    assert!(err.contains("/nonexistent/plain_acl.yml"), "{err}");
}
