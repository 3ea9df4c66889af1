//! TLS end to end (README "TLS"): `rocketmq-client-rust` 1.0.0 producers and push consumers
//! over TLS against a real `mqbroker` (its embedded name server takes the broker's TLS), plain
//! clients refused by an enforcing broker and served beside TLS ones by a permissive one, and a
//! broker registering with an enforcing `mqnamesrv` over TLS (`tls.enable`). Certificates:
//! tests/fixtures/tls (a test CA and a server certificate for 127.0.0.1).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_net::tls::{ClientTlsFiles, TlsConnector};
use ferromq_tests::{BrokerProcess, TempDir, on_compio, start_namesrv};
use rocketmq_client_rust::prelude::ClientConfig;
use rocketmq_client_rust::{
    ClientResult, ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, DefaultMQProducer,
    DefaultMQPushConsumer, MQPushConsumer, MessageListenerConcurrently, TelemetryHandle,
};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_runtime::RuntimeOwner;

const TIMEOUT: Duration = Duration::from_secs(10);

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls").join(name).display().to_string()
}

/// The broker's server TLS settings in `mode`.
fn server_tls(mode: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("tls.server.mode", mode.to_owned()),
        ("tls.server.certPath", fixture("server.pem")),
        ("tls.server.keyPath", fixture("server.key")),
    ]
}

fn start_broker(settings: &[(&'static str, String)]) -> BrokerProcess {
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    BrokerProcess::start(&settings).unwrap()
}

/// The client's process-wide rustls provider: with ring (ferromq-net) and aws-lc-rs (other
/// dependencies of the client) both compiled in, rustls cannot pick one itself.
fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

struct Client3p {
    owner: RuntimeOwner,
    runtime: Arc<ClientRuntime>,
}

impl Client3p {
    fn new() -> Client3p {
        install_provider();
        let owner = RuntimeOwner::new().expect("runtime owner");
        let runtime = ClientRuntime::try_new(owner.root_context().component("e2e-tls"), ClientRuntimeConfig::default(), TelemetryHandle::default())
            .expect("client runtime");
        Client3p { owner, runtime }
    }

    /// A client configuration; TLS ones verify the broker's certificate against the test CA.
    /// Each gets its own instance name: the client shares one connection pool per name.
    fn config(namesrv: &str, tls: bool, instance: &str) -> ClientConfig {
        let mut config = ClientConfig::default();
        config.set_namesrv_addr(namesrv.into());
        config.set_instance_name(instance.into());
        config.set_use_tls(tls);
        if tls {
            config.set_tls_client_auth_server(true);
            config.set_tls_client_trust_cert_path(fixture("ca.pem"));
        }
        config
    }

    async fn producer(&self, namesrv: &str, tls: bool, group: &str) -> DefaultMQProducer {
        let config = Client3p::config(namesrv, tls, group);
        let mut producer = DefaultMQProducer::builder(self.runtime.clone()).client_config(config).producer_group(group).build();
        producer.start().await.expect("producer start");
        producer
    }

    async fn shutdown(self) {
        let _ = self.runtime.shutdown().await;
        let _ = self.owner.shutdown_tasks().await;
        let _ = self.owner.shutdown_background();
    }
}

fn body_of(i: usize) -> Vec<u8> {
    let sizes = [1usize, 4097, 300_000];
    (0..sizes[i % sizes.len()]).map(|b| (b * 7 + i) as u8).collect()
}

fn message(topic: &str, i: usize) -> Message {
    Message::builder().topic(topic).key(format!("key-{i}").as_str()).body_slice(&body_of(i)).build_unchecked()
}

/// What a consumer saw: key → body.
type Received = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

struct Collect(Received);

impl MessageListenerConcurrently for Collect {
    fn consume_message(&self, messages: &[&MessageExt], _: &ConsumeConcurrentlyContext) -> ClientResult<ConsumeConcurrentlyStatus> {
        let mut seen = self.0.lock().unwrap();
        for message in messages {
            let key = message.keys().and_then(|k| k.first().map(|k| k.to_string())).unwrap_or_default();
            seen.insert(key, message.body().map(|b| b.to_vec()).unwrap_or_default());
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

/// Sends `count` messages with `producer` and has a push consumer over `tls` receive them
/// byte-identical.
async fn round_trip(client: &Client3p, broker: &BrokerProcess, producer: &mut DefaultMQProducer, tls: bool, topic: &str, count: usize) {
    let mut expected = BTreeMap::new();
    for i in 0..count {
        producer.send_with_timeout(message(topic, i), 10_000).await.expect("send").expect("a send result");
        expected.insert(format!("key-{i}"), body_of(i));
    }
    let seen: Received = Default::default();
    let namesrv = broker.namesrv.to_string();
    let group = format!("{topic}_consumer");
    let mut consumer = DefaultMQPushConsumer::builder(client.runtime.clone())
        .client_config(Client3p::config(&namesrv, tls, &group))
        .consumer_group(group.as_str())
        .build();
    consumer.subscribe(topic, "*").await.expect("subscribe");
    consumer.register_message_listener_concurrently(Collect(seen.clone()));
    consumer.start().await.expect("consumer start");
    // Without this the client's first rebalance may come 20 s later, and under load past the
    // deadline below.
    crate::common::route_into_consumer(broker, &mut consumer, topic, Duration::from_secs(20), "the producer sent to it").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} messages; broker log:\n{}",
            seen.lock().unwrap().len(),
            broker.process.log().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(*seen.lock().unwrap(), expected, "every message, byte-identical");
    consumer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcing_serves_tls_clients_and_refuses_plain_ones() {
    let broker = start_broker(&server_tls("enforcing"));
    let namesrv = broker.namesrv.to_string();
    let client = Client3p::new();

    let mut tls = client.producer(&namesrv, true, "tls_producer").await;
    round_trip(&client, &broker, &mut tls, true, "TlsEnforced", 6).await;
    tls.shutdown().await;

    let mut plain = client.producer(&namesrv, false, "plain_producer").await;
    let refused = plain.send_with_timeout(message("TlsEnforced", 0), 3000).await;
    assert!(!matches!(refused, Ok(Some(_))), "a plain producer sent to an enforcing broker: {refused:?}");
    plain.shutdown().await;
    let log = broker.process.log().join("\n");
    assert!(log.contains("plain (non-TLS) connection refused"), "the refusal is logged:\n{log}");
    // tests/ktls-vm/run.sh: the round trip above went through kernel TLS (sendfile included).
    if std::env::var_os("FERROMQ_EXPECT_KTLS").is_some() {
        assert!(log.contains("connections move into kernel TLS"), "kernel TLS expected:\n{log}");
    }
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_serves_plain_and_tls_clients_on_one_port() {
    let broker = start_broker(&server_tls("permissive"));
    let namesrv = broker.namesrv.to_string();
    let client = Client3p::new();
    let mut plain = client.producer(&namesrv, false, "plain_producer").await;
    let mut tls = client.producer(&namesrv, true, "tls_producer").await;
    // Sent by the plain producer, consumed over TLS; then the other way round.
    round_trip(&client, &broker, &mut plain, true, "TlsPermissiveA", 3).await;
    round_trip(&client, &broker, &mut tls, false, "TlsPermissiveB", 3).await;
    plain.shutdown().await;
    tls.shutdown().await;
    client.shutdown().await;
}

/// A broker (`tls.enable`, verifying the name server's certificate) registers with an
/// enforcing `mqnamesrv`; a TLS client of the name server finds it, a plain one is closed.
#[test]
fn a_broker_registers_with_an_enforcing_name_server_over_tls() {
    let dir = TempDir::new("namesrv-tls");
    let conf = dir.path().join("namesrv.properties");
    std::fs::write(
        &conf,
        format!(
            "tls.server.mode=enforcing\ntls.server.certPath={}\ntls.server.keyPath={}\n",
            fixture("server.pem"),
            fixture("server.key")
        ),
    )
    .unwrap();
    let (namesrv, _kv) = start_namesrv(&["-c", conf.to_str().unwrap()], &[]).unwrap();
    let addr = namesrv.addr;
    let broker = start_broker(&[
        ("namesrvAddr", addr.to_string()),
        ("brokerName", "tls-broker".to_owned()),
        ("tls.enable", "true".to_owned()),
        ("tls.client.authServer", "true".to_owned()),
        ("tls.client.trustCertPath", fixture("ca.pem")),
    ]);
    let (registered, plain) = on_compio(move || async move {
        let connector = TlsConnector::from_files(&ClientTlsFiles {
            auth_server: true,
            trust_cert_path: Some(fixture("ca.pem").into()),
            ..ClientTlsFiles::default()
        })
        .unwrap();
        let handler = Rc::new(ferromq_net::conn::NotSupported);
        let client = Client::connect_with_tls(addr, TIMEOUT, handler, Default::default(), Some(&connector)).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let registered = loop {
            let answer = client.invoke(RemotingCommand::request(request_code::GET_BROKER_CLUSTER_INFO), TIMEOUT).await.unwrap();
            let body = String::from_utf8_lossy(&answer.body).into_owned();
            if answer.code == response_code::SUCCESS && body.contains("tls-broker") {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            compio::time::sleep(Duration::from_millis(100)).await;
        };
        let plain = Client::connect(addr, TIMEOUT).await.unwrap();
        let plain = plain.invoke(RemotingCommand::request(request_code::GET_BROKER_CLUSTER_INFO), TIMEOUT).await;
        (registered, plain.map(|a| a.code))
    });
    assert!(registered, "the broker never registered; broker log:\n{}\nname server log:\n{}", broker.process.log().join("\n"), namesrv.log().join("\n"));
    assert!(plain.is_err(), "a plain client of an enforcing name server was answered: {plain:?}");
}
