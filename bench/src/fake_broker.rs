//! An in-process fake broker for the tests of the broker modes: it serves SEND_MESSAGE_V2,
//! SEND_BATCH_MESSAGE (decoding the client batch layout), PULL_MESSAGE (bodies of real
//! records, encoded with `ferromq_store::record`), GET_MAX_OFFSET and UPDATE_AND_CREATE_TOPIC
//! (counted) from memory, per (topic, queue). Not a broker: no flush, no long polling beyond a
//! short sleep.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ferromq_net::RemotingCommand;
use ferromq_net::codes::{request_code as rc, response_code as code};
use ferromq_net::conn::{Connection, RequestHandler, Response};
use ferromq_net::server::{ServerLimits, bind, serve};
use ferromq_store::record::{MessageInput, Properties, StoreAssigned, encode_record};
use ferromq_store::types::{ClientPhysicalOffset, QueueId};

use crate::broker::decode_batch;

/// Encoded records, oldest first.
type Records = Vec<Vec<u8>>;

#[derive(Default)]
struct FakeBroker {
    /// Records per (topic, queue).
    queues: RefCell<HashMap<(String, usize), Records>>,
    next_physical: RefCell<i64>,
    topics_created: Cell<u64>,
}

impl FakeBroker {
    fn queue_len(&self, topic: &str, q: usize) -> u64 {
        self.queues.borrow().get(&(topic.to_owned(), q)).map_or(0, |v| v.len() as u64)
    }

    fn append(&self, topic: &str, q: usize, body: Vec<u8>, props: &[u8]) -> u64 {
        let mut queues = self.queues.borrow_mut();
        let queue = queues.entry((topic.to_owned(), q)).or_default();
        let msg = MessageInput::simple(topic, QueueId(q as u32), body, &Properties::decode(props));
        let mut out = Vec::new();
        let physical = *self.next_physical.borrow();
        let assigned = StoreAssigned {
            queue_offset: queue.len() as u64,
            physical_offset: ClientPhysicalOffset(physical),
            store_timestamp_ms: 0,
        };
        let len = encode_record(&msg, assigned, &mut out).unwrap();
        *self.next_physical.borrow_mut() += len as i64;
        queue.push(out);
        assigned.queue_offset
    }
}

impl RequestHandler for FakeBroker {
    async fn handle(&self, _conn: &Connection, request: RemotingCommand) -> Option<Response> {
        let int = |k: &str| request.ext(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        let response = match request.code {
            rc::SEND_MESSAGE_V2 | rc::SEND_BATCH_MESSAGE => {
                let topic = request.ext("b").unwrap_or_default().to_owned();
                let q = int("e").max(0) as usize;
                let first = if request.code == rc::SEND_BATCH_MESSAGE {
                    let entries = decode_batch(&request.body).unwrap();
                    assert_eq!(request.ext("m"), Some("true"));
                    entries.into_iter().map(|(_, b, p)| self.append(&topic, q, b, &p)).min().unwrap()
                } else {
                    self.append(&topic, q, request.body.to_vec(), request.ext("i").unwrap_or_default().as_bytes())
                };
                RemotingCommand::response(code::SUCCESS, request.opaque, None).with_ext("queueId", q).with_ext("queueOffset", first)
            }
            rc::GET_MAX_OFFSET => request.success_response().with_ext("offset", self.queue_len(request.ext("topic").unwrap_or_default(), int("queueId") as usize)),
            rc::UPDATE_AND_CREATE_TOPIC => {
                self.topics_created.set(self.topics_created.get() + 1);
                request.success_response()
            }
            // Answers with how many topics were created so far (tests read it).
            rc::GET_ALL_TOPIC_CONFIG => request.success_response().with_ext("created", self.topics_created.get()),
            rc::PULL_MESSAGE => {
                let topic = request.ext("topic").unwrap_or_default().to_owned();
                let q = int("queueId") as usize;
                let offset = int("queueOffset") as u64;
                let max = int("maxMsgNums") as u64;
                let len = self.queue_len(&topic, q);
                if offset >= len {
                    if int("sysFlag") & 2 != 0 {
                        compio::time::sleep(Duration::from_millis(5)).await;
                    }
                    RemotingCommand::response(code::PULL_NOT_FOUND, request.opaque, None)
                        .with_ext("nextBeginOffset", offset)
                        .with_ext("maxOffset", len)
                        .with_ext("minOffset", 0)
                } else {
                    let end = (offset + max).min(len);
                    let body: Vec<u8> = self.queues.borrow()[&(topic, q)][offset as usize..end as usize].concat();
                    RemotingCommand::response(code::SUCCESS, request.opaque, None)
                        .with_ext("nextBeginOffset", end)
                        .with_ext("maxOffset", len)
                        .with_ext("minOffset", 0)
                        .with_body(body)
                }
            }
            _ => request.error_response(code::REQUEST_CODE_NOT_SUPPORTED, "fake"),
        };
        Some(response.into())
    }
}

/// Starts a fake broker on a thread of its own (lives until the test process ends).
fn start_fake() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = compio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let _ = serve(listener, Rc::new(FakeBroker::default()), ServerLimits::default(), std::future::pending()).await;
        });
    });
    rx.recv().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consume::{ConsumeArgs, ConsumerArgs, E2eArgs, run_consume, run_e2e};
    use crate::produce::{ProduceArgs, ProducerArgs, run_produce};

    fn producer(addr: SocketAddr, topic: &str) -> ProducerArgs {
        ProducerArgs {
            broker: addr,
            connections: 2,
            in_flight: 4,
            threads: 1,
            message_bytes: 100,
            topic: topic.into(),
            queues: 4,
            topics: 1,
            no_create_topic: false,
            send_mode: "sync".into(),
            batch: 1,
            open_loop: false,
            rate: None,
            affinity: "any".into(),
            pid: None,
            producer_group: "g".into(),
            io_backend: "auto".into(),
            access_key: None,
            secret_key: None,
            tls: false,
        }
    }

    fn get(v: &serde_json::Value, path: &[&str]) -> f64 {
        let mut v = v;
        for p in path {
            v = &v[p];
        }
        v.as_f64().unwrap()
    }

    #[test]
    fn produce_then_catch_up_against_a_fake_broker() {
        let addr = start_fake();
        // Single sends, then batches of 4, then an open-loop run: 200 + 200 + 100 messages.
        let mut args = ProduceArgs { producer: producer(addr, "T"), duration_secs: 1.0, count: Some(200), warmup_ms: 0, json: None, slave_pid: None };
        let s = run_produce(&args).unwrap();
        assert!(get(&s, &["messages_acked"]) >= 200.0);
        assert_eq!(get(&s, &["messages_stored_by_max_offset"]), get(&s, &["messages_acked"]));
        args.producer.batch = 4;
        let s = run_produce(&args).unwrap();
        assert_eq!(get(&s, &["messages_stored_by_max_offset"]), get(&s, &["messages_acked"]));
        args.producer.batch = 1;
        args.producer.open_loop = true;
        args.producer.rate = Some(2000.0);
        args.count = Some(100);
        let s = run_produce(&args).unwrap();
        assert!(get(&s, &["latency_us", "count"]) >= 100.0);
        let stored: f64 = 200.0 + 200.0 + 100.0;

        let consume = ConsumeArgs {
            consumer: ConsumerArgs {
                broker: addr,
                topic: "T".into(),
                queues: 4,
                consumer_connections: 2,
                pull_batch: 7,
                suspend_ms: 100,
                consumer_group: "c".into(),
                subscription: "*".into(),
                expression_type: "TAG".into(),
                consumer_io_backend: "auto".into(),
                consumer_tls: false,
            },
            catch_up: true,
            tail: false,
            duration_secs: 10.0,
            pid: Some(std::process::id()),
            json: None,
        };
        let c = run_consume(&consume).unwrap();
        // A fixed count may overshoot by at most one send per lane.
        assert!(get(&c, &["messages"]) >= stored, "{c}");
        assert_eq!(get(&c, &["messages"]), get(&c, &["backlog"]));
        assert_eq!(get(&c, &["gaps"]), 0.0);
        let bodies = get(&c, &["body_mib_per_s"]) * 1_048_576.0 * get(&c, &["duration_s"]) / 100.0;
        assert!((bodies - get(&c, &["messages"])).abs() < 0.01, "{c}");
        // The "broker" is this process: its CPU per record is measured, and so is the consumer's.
        assert_eq!(get(&c, &["cpu", "messages"]), get(&c, &["messages"]));
        assert!(get(&c, &["cpu", "broker_us_per_message"]) > 0.0, "{c}");
        assert!(get(&c, &["cpu", "generator_us_per_message"]) > 0.0, "{c}");
    }

    #[test]
    fn sends_spread_over_many_topics_reach_every_queue_and_report_cpu() {
        let addr = start_fake();
        let backend = crate::broker::resolve_backend("auto").unwrap();
        let producer = ProducerArgs { topics: 5, queues: 3, pid: Some(std::process::id()), ..producer(addr, "Many") };
        // 15 pairs, 2 connections starting half-way apart, one lane each: 30 sends cover every
        // pair exactly twice.
        let args = ProduceArgs { producer: ProducerArgs { in_flight: 1, ..producer.clone() }, duration_secs: 1.0, count: Some(30), warmup_ms: 0, json: None, slave_pid: None };
        let s = run_produce(&args).unwrap();
        assert_eq!(get(&s, &["messages_acked"]), 30.0, "{s}");
        assert!(s["messages_stored_by_max_offset"].is_null(), "not read with several topics: {s}");
        assert_eq!(get(&s, &["cpu", "messages"]), 30.0);
        assert!(get(&s, &["cpu", "broker_cpu_s"]) > 0.0 && get(&s, &["cpu", "generator_cpu_s"]) > 0.0, "{s}");
        let names = crate::produce::topic_names(&producer);
        assert_eq!(names, ["Many-0", "Many-1", "Many-2", "Many-3", "Many-4"]);
        for name in &names {
            let offsets = crate::produce::topic_offsets(addr, name, 3, backend).unwrap();
            assert!(offsets.iter().all(|n| *n >= 1), "{name}: {offsets:?}");
        }
        // Creation went through UPDATE_AND_CREATE_TOPIC, one per topic.
        let (runtime, _) = ferromq_net::backend::build_runtime(backend).unwrap();
        let created = runtime.block_on(async {
            let client = ferromq_net::client::Client::connect(addr, crate::broker::CONNECT_TIMEOUT).await.unwrap();
            let r = client.invoke(RemotingCommand::request(rc::GET_ALL_TOPIC_CONFIG), crate::broker::REQUEST_TIMEOUT).await.unwrap();
            r.ext("created").unwrap().parse::<u64>().unwrap()
        });
        assert_eq!(created, 5);
        let failures = crate::produce::pipelined(addr, backend, 7, 3, |_| RemotingCommand::request(9_999)).unwrap();
        assert_eq!(failures.values().sum::<u64>(), 7, "{failures:?}");
        assert!(failures.keys().next().unwrap().starts_with("REQUEST_CODE_NOT_SUPPORTED"), "{failures:?}");
    }

    #[test]
    fn send_pairs_put_topics_first() {
        assert_eq!(crate::produce::send_pairs(2, 2), [(0, 0), (1, 0), (0, 1), (1, 1)]);
    }

    #[test]
    fn e2e_measures_send_to_receive_latency() {
        let addr = start_fake();
        let args = E2eArgs {
            producer: ProducerArgs { in_flight: 1, ..producer(addr, "E") },
            consumer_connections: 1,
            pull_batch: 32,
            suspend_ms: 50,
            duration_secs: 1.0,
            warmup_ms: 100,
            json: None,
        };
        let s = run_e2e(&args).unwrap();
        assert!(get(&s, &["consumer", "e2e_latency_us", "count"]) > 0.0, "{s}");
        assert_eq!(get(&s, &["consumer", "gaps"]), 0.0);
    }
}
