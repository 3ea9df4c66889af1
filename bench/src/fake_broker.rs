//! An in-process fake broker for the tests of the broker modes: it serves SEND_MESSAGE_V2,
//! SEND_BATCH_MESSAGE (decoding the client batch layout), PULL_MESSAGE (bodies of real
//! records, encoded with `ferromq_store::record`), GET_MAX_OFFSET and UPDATE_AND_CREATE_TOPIC
//! from memory. Not a broker: no flush, no long polling beyond a short sleep.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ferromq_net::RemotingCommand;
use ferromq_net::codes::{request_code as rc, response_code as code};
use ferromq_net::conn::{Connection, RequestHandler, Response};
use ferromq_net::server::{ServerLimits, bind, serve};
use ferromq_store::record::{MessageInput, Properties, StoreAssigned, encode_record};
use ferromq_store::types::ClientPhysicalOffset;

use crate::broker::decode_batch;

#[derive(Default)]
struct FakeBroker {
    /// Encoded records per queue.
    queues: RefCell<Vec<Vec<Vec<u8>>>>,
    next_physical: RefCell<i64>,
}

impl FakeBroker {
    fn queue_len(&self, q: usize) -> u64 {
        self.queues.borrow().get(q).map_or(0, |v| v.len() as u64)
    }

    fn append(&self, topic: &str, q: usize, body: Vec<u8>, props: &[u8]) -> u64 {
        let mut queues = self.queues.borrow_mut();
        if queues.len() <= q {
            queues.resize(q + 1, Vec::new());
        }
        let msg = MessageInput::simple(topic, q as u32, body, &Properties::decode(props));
        let mut out = Vec::new();
        let physical = *self.next_physical.borrow();
        let assigned = StoreAssigned {
            queue_offset: queues[q].len() as u64,
            physical_offset: ClientPhysicalOffset(physical),
            store_timestamp_ms: 0,
        };
        let len = encode_record(&msg, assigned, &mut out).unwrap();
        *self.next_physical.borrow_mut() += len as i64;
        queues[q].push(out);
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
            rc::GET_MAX_OFFSET => request.success_response().with_ext("offset", self.queue_len(int("queueId") as usize)),
            rc::UPDATE_AND_CREATE_TOPIC => request.success_response(),
            rc::PULL_MESSAGE => {
                let q = int("queueId") as usize;
                let offset = int("queueOffset") as u64;
                let max = int("maxMsgNums") as u64;
                let len = self.queue_len(q);
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
                    let body: Vec<u8> = self.queues.borrow()[q][offset as usize..end as usize].concat();
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
            no_create_topic: false,
            send_mode: "sync".into(),
            batch: 1,
            open_loop: false,
            rate: None,
            affinity: "any".into(),
            pid: None,
            producer_group: "g".into(),
            io_backend: "auto".into(),
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
        let mut args = ProduceArgs { producer: producer(addr, "T"), duration_secs: 1, count: Some(200), warmup_ms: 0, json: None };
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
                consumer_io_backend: "auto".into(),
            },
            catch_up: true,
            tail: false,
            duration_secs: 10,
            json: None,
        };
        let c = run_consume(&consume).unwrap();
        // A fixed count may overshoot by at most one send per lane.
        assert!(get(&c, &["messages"]) >= stored, "{c}");
        assert_eq!(get(&c, &["messages"]), get(&c, &["backlog"]));
        assert_eq!(get(&c, &["gaps"]), 0.0);
        let bodies = get(&c, &["body_mib_per_s"]) * 1_048_576.0 * get(&c, &["duration_s"]) / 100.0;
        assert!((bodies - get(&c, &["messages"])).abs() < 0.01, "{c}");
    }

    #[test]
    fn e2e_measures_send_to_receive_latency() {
        let addr = start_fake();
        let args = E2eArgs {
            producer: ProducerArgs { in_flight: 1, ..producer(addr, "E") },
            consumer_connections: 1,
            pull_batch: 32,
            suspend_ms: 50,
            duration_secs: 1,
            warmup_ms: 100,
            json: None,
        };
        let s = run_e2e(&args).unwrap();
        assert!(get(&s, &["consumer", "e2e_latency_us", "count"]) > 0.0, "{s}");
        assert_eq!(get(&s, &["consumer", "gaps"]), 0.0);
    }
}
