//! Topics, groups, clusters, brokers, name servers and configuration.

use ferromq_tests::{BrokerProcess, mqadmin};

#[test]
fn topic_list_names_a_created_topic() {
    let broker = BrokerProcess::start(&[]).expect("broker");
    let addr = broker.process.addr;
    let created = ferromq_tests::on_compio(move || async move {
        let client = ferromq_net::client::Client::connect(addr, std::time::Duration::from_secs(5)).await.expect("connect");
        client.invoke(ferromq_tests::create_topic_request("AdminListed", 4), std::time::Duration::from_secs(5)).await.expect("create").code
    });
    assert_eq!(created, 0);
    // Registration reaches the name server within a heartbeat; wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = mqadmin(Some(broker.namesrv), &["topicList"]).ok();
        if out.lines().any(|l| l == "AdminListed") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "AdminListed never listed: {out}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let refused = mqadmin(None, &["topicList"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(refused.stderr.starts_with("mqadmin: topicList: no name server"), "{refused:?}");
    assert_eq!(refused.stderr.lines().count(), 1, "{refused:?}");
}
