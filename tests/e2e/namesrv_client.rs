//! Acceptance of the name server with a client nobody here wrote: `rocketmq-client-rust`
//! 1.0.0 from crates.io resolves routes and cluster info from a real `mqnamesrv` process, to
//! which a fake broker (our client, speaking REGISTER_BROKER) registered its topics.

use std::time::{Duration, Instant};

use ferromq_tests::{FakeBroker, FakeTopic, register_broker_request, start_namesrv};
use rocketmq_client_rust::{
    ClientRuntime, ClientRuntimeConfig, DefaultMQAdminExt, DefaultMQProducer, RouteAdmin, TelemetryHandle, TopicAdmin,
};
use rocketmq_runtime::RuntimeOwner;

const BROKER_ADDR: &str = "127.0.0.1:10911";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_party_client_resolves_routes_and_sees_expiry() {
    // Short expiry so that the route disappears within the test once registrations stop.
    let (namesrv, _dir) = start_namesrv(&["--broker-expiry-ms", "1500", "--scan-interval-ms", "100"], &[]).unwrap();
    let topics = vec![
        FakeTopic { name: "TopicTest".into(), read_queues: 4, write_queues: 4 },
        FakeTopic { name: "Orders".into(), read_queues: 8, write_queues: 2 },
    ];
    let broker = FakeBroker::start(
        namesrv.addr,
        register_broker_request("DefaultCluster", "broker-a", BROKER_ADDR, &topics),
        Duration::from_millis(200),
    );
    broker.wait_registered().unwrap();

    let owner = RuntimeOwner::new().expect("client runtime owner");
    let runtime = ClientRuntime::try_new(
        owner.root_context().component("e2e"),
        ClientRuntimeConfig::default(),
        TelemetryHandle::default(),
    )
    .expect("client runtime");
    let mut admin = DefaultMQAdminExt::new(runtime.clone());
    admin.set_namesrv_addr(namesrv.addr.to_string().as_str());
    admin.start().await.expect("admin start");

    // The route: queue data and the broker's address.
    for topic in &topics {
        let route = TopicAdmin::examine_topic_route_info(&admin, topic.name.as_str().into())
            .await
            .expect("route request")
            .unwrap_or_else(|| panic!("{} has no route", topic.name));
        assert_eq!(route.queue_datas.len(), 1);
        let queues = &route.queue_datas[0];
        assert_eq!(queues.broker_name.to_string(), "broker-a");
        assert_eq!(queues.read_queue_nums, topic.read_queues);
        assert_eq!(queues.write_queue_nums, topic.write_queues);
        assert_eq!(queues.perm, 6);
        assert_eq!(route.broker_datas.len(), 1);
        let broker_data = &route.broker_datas[0];
        assert_eq!(broker_data.cluster().to_string(), "DefaultCluster");
        assert_eq!(broker_data.broker_addrs().get(&0).map(|a| a.to_string()).as_deref(), Some(BROKER_ADDR));
    }

    // A producer derives its publish queues from the same route.
    let mut producer = DefaultMQProducer::builder(runtime.clone())
        .producer_group("e2e_route_probe")
        .name_server_addr(namesrv.addr.to_string().as_str())
        .build();
    producer.start().await.expect("producer start");
    let queues = producer.fetch_publish_message_queues("TopicTest").await.expect("publish queues");
    assert_eq!(queues.len(), 4);

    // Cluster info lists the broker.
    let info = RouteAdmin::examine_broker_cluster_info(&admin).await.expect("cluster info");
    let clusters = info.cluster_addr_table.expect("clusterAddrTable");
    let members: Vec<String> = clusters.get("DefaultCluster").expect("DefaultCluster").iter().map(|b| b.to_string()).collect();
    assert_eq!(members, ["broker-a"]);
    let brokers = info.broker_addr_table.expect("brokerAddrTable");
    let broker_a = brokers.get("broker-a").expect("broker-a");
    assert_eq!(broker_a.broker_addrs().get(&0).map(|a| a.to_string()).as_deref(), Some(BROKER_ADDR));

    // Unknown topics: TOPIC_NOT_EXIST, which this client reports as "no route".
    let missing = TopicAdmin::examine_topic_route_info(&admin, "NoSuchTopic".into()).await.expect("request");
    assert!(missing.is_none());

    // Registrations stop (the connection stays open): the route expires.
    broker.stop_registering();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let route = TopicAdmin::examine_topic_route_info(&admin, "TopicTest".into()).await.expect("request");
        if route.is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "route still served after registrations stopped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let info = RouteAdmin::examine_broker_cluster_info(&admin).await.expect("cluster info");
    assert!(info.broker_addr_table.unwrap_or_default().is_empty(), "expired broker still listed");

    producer.shutdown().await;
    admin.shutdown().await;
    let _ = runtime.shutdown().await;
    let _ = owner.shutdown_tasks().await;
    let _ = owner.shutdown_background();
    drop(broker);
}
