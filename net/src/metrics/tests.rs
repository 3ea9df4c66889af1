use std::borrow::Cow;
use std::time::Duration;

use super::*;
use crate::codec::ResponseFrame;

#[test]
fn histogram_buckets_take_values_up_to_their_bound() {
    let mut h = Histogram::new(RPC_LATENCY_BUCKETS_MS);
    for v in [0.2, 1.0, 1.5, 3000.0, 3000.5] {
        h.observe(v);
    }
    let buckets = h.buckets();
    assert_eq!(buckets.len(), RPC_LATENCY_BUCKETS_MS.len() + 1);
    assert_eq!(buckets[0], (1.0, 2), "0.2 and 1.0 (le is inclusive)");
    assert_eq!(buckets[1], (3.0, 1));
    assert_eq!(buckets[8], (3000.0, 1));
    assert_eq!(buckets[9], (f64::INFINITY, 1));
    assert_eq!((h.count(), h.sum()), (5, 6003.2));
    let mut merged = h.clone();
    merged.merge(&h);
    assert_eq!((merged.count(), merged.buckets()[0]), (10, (1.0, 4)));
}

#[test]
fn the_exposition_is_prometheus_text_with_java_names_and_common_labels() {
    let mut exposition = Exposition::default();
    exposition.push(Family::new("rocketmq_messages_in_total", "Total number of incoming messages").with(
        labels([("topic", Cow::Borrowed("T")), ("is_system", bool_label(false))]),
        Value::Counter(7),
    ));
    exposition.push(Family::new("rocketmq_broker_permission", "Broker permission").with(Labels::new(), Value::Gauge(6)));
    let mut size = Histogram::new(&[1024.0, 4096.0]);
    size.observe(100.0);
    size.observe(5000.0);
    exposition.push(Family::new("rocketmq_message_size", "Incoming messages size").with(Labels::new(), Value::Histogram(size)));
    let text = exposition.encode(labels([("cluster", Cow::Borrowed("C")), ("node_type", Cow::Borrowed("broker"))])).unwrap();
    let expected = [
        "# HELP rocketmq_messages_in_total Total number of incoming messages",
        "# TYPE rocketmq_messages_in_total counter",
        "rocketmq_messages_in_total{cluster=\"C\",node_type=\"broker\",topic=\"T\",is_system=\"false\"} 7",
        "# TYPE rocketmq_broker_permission gauge",
        "rocketmq_broker_permission{cluster=\"C\",node_type=\"broker\"} 6",
        "# TYPE rocketmq_message_size histogram",
        "rocketmq_message_size_bucket{cluster=\"C\",node_type=\"broker\",le=\"1024\"} 1",
        "rocketmq_message_size_bucket{cluster=\"C\",node_type=\"broker\",le=\"4096\"} 1",
        "rocketmq_message_size_bucket{cluster=\"C\",node_type=\"broker\",le=\"+Inf\"} 2",
        "rocketmq_message_size_sum{cluster=\"C\",node_type=\"broker\"} 5100.0",
        "rocketmq_message_size_count{cluster=\"C\",node_type=\"broker\"} 2",
    ];
    let lines: Vec<&str> = text.lines().collect();
    for line in expected {
        assert!(lines.contains(&line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("_total_total"), "{text}");
    let empty = Exposition { families: vec![Family::new("rocketmq_consumer_lag_messages", "lag")] }.encode(Labels::new()).unwrap();
    assert!(!empty.contains("rocketmq_consumer_lag_messages"), "a family without samples is left out: {empty}");
}

#[test]
fn rpc_latency_is_recorded_per_thread_with_java_code_names() {
    // A fresh thread: its table starts empty whatever other tests recorded on theirs.
    let snapshot = std::thread::spawn(|| {
        record_rpc(310, 0, RpcResult::Success, Duration::from_micros(500));
        record_rpc(310, 0, RpcResult::Success, Duration::from_millis(4));
        record_rpc(11, 2, RpcResult::Success, Duration::ZERO);
        record_rpc(77_777, 3, RpcResult::WriteChannelFailed, Duration::from_secs(5));
        rpc_latency_snapshot()
    })
    .join()
    .unwrap();
    assert_eq!(snapshot.series.len(), 3);
    assert_eq!(snapshot.answers_with(2), [(11, 1)].into_iter().collect());
    let mut merged = snapshot.clone();
    merged.merge(&snapshot);
    let key = RpcKey { request_code: 310, response_code: 0, result: RpcResult::Success };
    assert_eq!(merged.series[&key].count(), 4);
    let text = {
        let mut exposition = Exposition::default();
        for family in merged.families() {
            exposition.push(family);
        }
        exposition.encode(Labels::new()).unwrap()
    };
    assert!(text.contains("rocketmq_rpc_latency_bucket{protocol_type=\"remoting\",request_code=\"send_message_v2\",response_code=\"success\",result=\"success\",le=\"1\"} 2"), "{text}");
    assert!(text.contains("rocketmq_rpc_latency_count{protocol_type=\"remoting\",request_code=\"send_message_v2\",response_code=\"success\",result=\"success\"} 4"), "{text}");
    assert!(text.contains("request_code=\"pull_message\",response_code=\"system_busy\""), "{text}");
    assert!(text.contains("request_code=\"77777\",response_code=\"request_code_not_supported\",result=\"write_channel_failed\""), "{text}");
    assert!(text.contains("ferromq_rpc_latency_dropped_total 0"), "{text}");
}

#[test]
fn a_thread_keeps_a_bounded_number_of_rpc_series() {
    let snapshot = std::thread::spawn(|| {
        for code in 0..(MAX_RPC_LATENCY_SERIES_PER_THREAD as i32 + 10) {
            record_rpc(100_000 + code, 3, RpcResult::Success, Duration::ZERO);
        }
        rpc_latency_snapshot()
    })
    .join()
    .unwrap();
    assert_eq!(snapshot.series.len(), MAX_RPC_LATENCY_SERIES_PER_THREAD);
    assert_eq!(snapshot.dropped, 10);
}

#[test]
fn the_response_code_is_read_from_an_encoded_response_frame() {
    for code in [0, 2, 17, 206, -1] {
        let frame = ResponseFrame::new(code, 42, Some("r")).ext_int("queueId", 3).finish(b"body").unwrap();
        assert_eq!(frame_response_code(&frame), Some(code));
    }
    assert_eq!(frame_response_code(b"short"), None);
    assert_eq!(frame_response_code(b"\0\0\0\0\0\0\0\0{\"flag\":1}"), None);
}

#[test]
fn metrics_labels_are_name_value_pairs_and_refused_when_malformed() {
    let reserved = ["cluster", "node_id"];
    assert_eq!(parse_metrics_label("", &reserved).unwrap(), vec![]);
    assert_eq!(
        parse_metrics_label("env:prod, ,dc : eu-1,", &reserved).unwrap(),
        vec![("env".to_owned(), "prod".to_owned()), ("dc".to_owned(), "eu-1".to_owned())]
    );
    for bad in ["env", "a:b:c", "1x:v", "__x:v", "cluster:c", "env:a,env:b", "my-label:v"] {
        assert!(parse_metrics_label(bad, &reserved).is_err(), "{bad}");
    }
}

#[test]
fn code_names_are_javas_constant_names_lower_cased() {
    assert_eq!(request_code_name(10), Some("send_message"));
    assert_eq!(request_code_name(310), Some("send_message_v2"));
    assert_eq!(request_code_name(105), Some("get_routeinfo_by_topic"));
    assert_eq!(request_code_name(-12345), None);
    assert_eq!(response_code_name(0), Some("success"));
    assert_eq!(response_code_name(2), Some("system_busy"));
    assert_eq!(response_code_name(17), Some("topic_not_exist"));
    assert_eq!(code_label(None, 999), "999");
    assert_eq!(version_name(401), Some("v4_9_4"));
    assert_eq!(version_name(413), Some("v5_0_0"));
    assert_eq!(version_name(100_000), Some("higher_version"));
    assert_eq!(version_name(-1), None);
}
