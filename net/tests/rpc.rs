//! Connections, server and client over real loopback sockets, on the backend chosen by
//! `FERROMQ_IO_BACKEND`: pipelining with out-of-order responses, one-way requests,
//! server-initiated requests, timeouts, and bad input that must not disturb other connections.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use ferromq_net::backend::runtime_from_env;
use ferromq_net::client::Client;
use ferromq_net::codes::response_code;
use ferromq_net::conn::{ConnLimits, Connection, RequestHandler, Response, RpcError};
use ferromq_net::server::{self, ServerLimits};
use ferromq_net::codec::ResponseFrame;
use ferromq_net::{RemotingCommand, WireLimits};

const SLOW: i32 = 1;
const FAST: i32 = 2;
const ONEWAY_LOG: i32 = 3;
const CALL_BACK: i32 = 4;
const NEVER: i32 = 5;
/// Answers with a body sent from a file: ext `path`, `offset`, `len` (the segment), repeated
/// `times` times in one body, each `stride` bytes after the previous one (default 0: the same
/// segment each time), in reverse order with ext `reverse`.
const FILE: i32 = 6;
/// Answers with a frame encoded directly (`ResponseFrame`): ext `who` = `frame`, the request's
/// body echoed.
const FRAME: i32 = 7;
/// Answers with a body of [`BIG_BODY_BYTES`], after a yield (as a handler that asks another
/// thread would); its answer "may be large" (`may_answer_large`). Counted in `big_served`.
const BIG: i32 = 8;
const BIG_BODY_BYTES: usize = 256 * 1024;
/// Answers after one second (longer than the idle timeout of the idle test).
const HOLD: i32 = 9;

/// A server handler: SLOW answers after 200 ms (other requests overtake it),
/// FAST answers at once, ONEWAY_LOG records its body, CALL_BACK asks the client a question on
/// the same connection and returns the client's answer, NEVER never answers.
#[derive(Default)]
struct TestHandler {
    oneway_bodies: RefCell<Vec<Bytes>>,
    big_served: std::cell::Cell<usize>,
}

impl RequestHandler for TestHandler {
    async fn handle(&self, conn: &Connection, request: RemotingCommand) -> Option<Response> {
        let response = match request.code {
            SLOW => {
                compio::time::sleep(Duration::from_millis(200)).await;
                Some(request.success_response().with_ext("who", "slow"))
            }
            FAST => Some(request.success_response().with_ext("who", "fast").with_body(request.body.clone())),
            ONEWAY_LOG => {
                if request.ext("slow").is_some() {
                    compio::time::sleep(Duration::from_millis(20)).await;
                }
                self.oneway_bodies.borrow_mut().push(request.body.clone());
                Some(request.success_response())
            }
            CALL_BACK => {
                let answer = conn.invoke(RemotingCommand::request(77), Duration::from_secs(5)).await;
                Some(match answer {
                    Ok(a) => request
                        .success_response()
                        .with_ext("clientSaid", a.ext("answer").unwrap_or("-"))
                        .with_ext("clientCode", a.code),
                    Err(e) => request.error_response(response_code::SYSTEM_ERROR, e.to_string()),
                })
            }
            NEVER => None,
            HOLD => {
                compio::time::sleep(Duration::from_secs(1)).await;
                Some(request.success_response())
            }
            BIG => {
                compio::time::sleep(Duration::from_millis(1)).await;
                self.big_served.set(self.big_served.get() + 1);
                Some(request.success_response().with_body(vec![7u8; BIG_BODY_BYTES]))
            }
            FRAME => {
                let frame = ResponseFrame::new(0, request.opaque, None).ext("who", "frame").finish(&request.body).unwrap();
                return Some(Response::Frame(frame));
            }
            FILE => {
                let file = std::fs::File::open(request.ext("path").unwrap()).unwrap();
                let file = std::sync::Arc::new(file);
                let offset: u64 = request.ext("offset").unwrap().parse().unwrap();
                let len: u32 = request.ext("len").unwrap().parse().unwrap();
                let times: usize = request.ext("times").unwrap().parse().unwrap();
                let stride: u64 = request.ext("stride").map_or(0, |s| s.parse().unwrap());
                // The test files never change: all of a file is settled (copied bodies go
                // through the block cache; `net::conn`'s own tests cover the other way too).
                let settled_end = file.metadata().unwrap().len();
                let mut segments: Vec<_> = (0..times as u64)
                    .map(|i| ferromq_net::conn::FileSegment { file: file.clone(), offset: offset + i * stride, len, settled_end })
                    .collect();
                if request.ext("reverse").is_some() {
                    segments.reverse();
                }
                let response = request.success_response().with_ext("zeroCopy", true);
                return Some(Response::FileBody(response, segments));
            }
            _ => Some(ferromq_net::conn::not_supported(&request)),
        };
        response.map(Into::into)
    }

    fn may_answer_large(&self, request: &RemotingCommand) -> bool {
        request.code == BIG
    }
}

/// The client's handler for the server's CALL_BACK question.
struct Answerer;
impl RequestHandler for Answerer {
    async fn handle(&self, _conn: &Connection, request: RemotingCommand) -> Option<Response> {
        Some(request.success_response().with_ext("answer", format!("code {}", request.code)).into())
    }
}

fn start_server(limits: ServerLimits) -> (SocketAddr, Rc<TestHandler>) {
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Rc::new(TestHandler::default());
    compio::runtime::spawn(server::serve(listener, handler.clone(), limits, std::future::pending())).detach();
    (addr, handler)
}

fn run<F: std::future::Future<Output = ()>>(test: F) {
    let (runtime, _backend) = runtime_from_env().expect("runtime");
    runtime.block_on(test);
}

#[test]
fn pipelined_responses_arrive_in_any_order() {
    run(async {
        let (addr, _) = start_server(ServerLimits::default());
        let client = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        let slow = client.invoke(RemotingCommand::request(SLOW), Duration::from_secs(5));
        let fast = async {
            let response = client
                .invoke(RemotingCommand::request(FAST).with_body(&b"ping"[..]), Duration::from_secs(5))
                .await
                .unwrap();
            // The fast answer overtakes the slow one on the same connection.
            (response, std::time::Instant::now())
        };
        let (slow, (fast, fast_at)) = futures_util::join!(slow, fast);
        let slow_at = std::time::Instant::now();
        assert_eq!(fast.ext("who"), Some("fast"));
        assert_eq!(&fast.body[..], b"ping");
        assert_eq!(slow.unwrap().ext("who"), Some("slow"));
        assert!(fast_at <= slow_at);
        // Many pipelined requests, each matched to its own response.
        let many = (0..200).map(|i| {
            let client = client.clone();
            async move {
                let r = client
                    .invoke(RemotingCommand::request(FAST).with_body(format!("{i}").into_bytes()), Duration::from_secs(5))
                    .await
                    .unwrap();
                assert_eq!(r.body, Bytes::from(format!("{i}")));
            }
        });
        futures_util::future::join_all(many).await;
    });
}

/// Bursts of pipelined frames of every size, from empty to larger than the biggest read, each
/// arrive whole and answered to their own request while the reader's room grows and shrinks
/// between 1 and 16 KiB (`ConnLimits::read_burst_bytes`): frames straddle read boundaries at
/// every offset.
#[test]
fn pipelined_frames_of_any_size_arrive_whole_as_reads_grow_and_shrink() {
    run(async {
        let mut limits = ServerLimits::default();
        limits.conn.read_buffer_bytes = 1024;
        limits.conn.read_burst_bytes = 16 * 1024;
        let (addr, _) = start_server(limits);
        let client = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        for round in 0..4u32 {
            // Sizes from a small LCG: mostly small, some over the 16-KiB burst.
            let mut x = 0x9e37_79b9u32.wrapping_mul(round + 1);
            let many = (0..300).map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let len = if x.is_multiple_of(7) { (x >> 8) as usize % 40_000 } else { (x >> 8) as usize % 1_500 };
                let body: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
                let client = client.clone();
                async move {
                    let r = client.invoke(RemotingCommand::request(FAST).with_body(body.clone()), Duration::from_secs(10)).await.unwrap();
                    assert_eq!(r.body.len(), body.len(), "request {i}");
                    assert!(r.body == body, "request {i}: body differs");
                }
            });
            futures_util::future::join_all(many).await;
            // A pause: the next burst starts from small reads again.
            compio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn oneway_requests_are_never_answered() {
    run(async {
        let (addr, handler) = start_server(ServerLimits::default());
        let client = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        client.invoke_oneway(RemotingCommand::request(ONEWAY_LOG).with_body(&b"a"[..])).await.unwrap();
        // A following two-way request is answered, proving the one-way one was consumed
        // without a response that could have been mismatched.
        let r = client.invoke(RemotingCommand::request(FAST), Duration::from_secs(5)).await.unwrap();
        assert_eq!(r.code, 0);
        assert_eq!(handler.oneway_bodies.borrow().as_slice(), &[Bytes::from_static(b"a")]);
    });
}

#[test]
fn server_can_call_the_client_on_the_same_connection() {
    run(async {
        let (addr, _) = start_server(ServerLimits::default());
        let client = Client::connect_with(addr, Duration::from_secs(2), Rc::new(Answerer), ConnLimits::default())
            .await
            .unwrap();
        let r = client.invoke(RemotingCommand::request(CALL_BACK), Duration::from_secs(5)).await.unwrap();
        assert_eq!(r.ext("clientSaid"), Some("code 77"));
        // A plain client answers the server's requests REQUEST_CODE_NOT_SUPPORTED.
        let plain = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        let r = plain.invoke(RemotingCommand::request(CALL_BACK), Duration::from_secs(5)).await.unwrap();
        assert_eq!(r.ext("clientSaid"), Some("-"));
        assert_eq!(r.ext("clientCode"), Some("3"), "{r:?}");
    });
}

#[test]
fn unknown_codes_get_not_supported_and_timeouts_fire() {
    run(async {
        let (addr, _) = start_server(ServerLimits::default());
        let client = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        let r = client.invoke(RemotingCommand::request(999), Duration::from_secs(5)).await.unwrap();
        assert_eq!(r.code, response_code::REQUEST_CODE_NOT_SUPPORTED);
        assert_eq!(r.remark.as_deref(), Some(" request type 999 not supported"));
        let e = client.invoke(RemotingCommand::request(NEVER), Duration::from_millis(100)).await;
        assert!(matches!(e, Err(RpcError::Timeout { code: NEVER, .. })), "{e:?}");
        // The connection is still usable after a timeout.
        assert_eq!(client.invoke(RemotingCommand::request(FAST), Duration::from_secs(5)).await.unwrap().code, 0);
    });
}

#[test]
fn pending_request_limit_fails_fast() {
    run(async {
        let (addr, _) = start_server(ServerLimits::default());
        let limits = ConnLimits { max_pending_requests: 2, ..ConnLimits::default() };
        let client = Client::connect_with(addr, Duration::from_secs(2), Rc::new(Answerer), limits).await.unwrap();
        let a = client.invoke(RemotingCommand::request(NEVER), Duration::from_millis(300));
        let b = client.invoke(RemotingCommand::request(NEVER), Duration::from_millis(300));
        let c = async {
            compio::time::sleep(Duration::from_millis(50)).await;
            client.invoke(RemotingCommand::request(FAST), Duration::from_secs(1)).await
        };
        let (_, _, c) = futures_util::join!(a, b, c);
        assert!(matches!(c, Err(RpcError::TooManyPending { limit: 2 })), "{c:?}");
    });
}

/// Writes raw bytes on a fresh socket and reports whether the server closed it.
async fn server_closes_after(addr: SocketAddr, garbage: &[u8]) -> bool {
    use compio::io::{AsyncRead, AsyncWriteExt};
    let mut stream = compio::net::TcpStream::connect(addr).await.unwrap();
    let compio::BufResult(w, _) = stream.write_all(garbage.to_vec()).await;
    w.unwrap();
    let read = compio::time::timeout(Duration::from_secs(5), stream.read(Vec::with_capacity(64))).await;
    matches!(read, Ok(compio::BufResult(Ok(0), _)) | Ok(compio::BufResult(Err(_), _)))
}

#[test]
fn bad_frames_close_only_their_connection() {
    run(async {
        let limits = ServerLimits {
            conn: ConnLimits { wire: WireLimits { max_frame_bytes: 64 * 1024, max_header_bytes: 1024 }, ..ConnLimits::default() },
            ..ServerLimits::default()
        };
        let (addr, _) = start_server(limits);
        let bystander = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        let mut over_limit = (1u32 << 30).to_be_bytes().to_vec();
        over_limit.extend_from_slice(&[0; 16]);
        let cases: Vec<Vec<u8>> = vec![
            over_limit,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            [&12u32.to_be_bytes()[..], &8u32.to_be_bytes(), b"not json"].concat(),
            [&8u32.to_be_bytes()[..], &0x0900_0004u32.to_be_bytes(), b"{}{}"].concat(),
            (-5i32).to_be_bytes().to_vec(),
            [&12u32.to_be_bytes()[..], &(1u32 << 24 | 8).to_be_bytes(), &[0xFF; 8]].concat(),
        ];
        for garbage in &cases {
            assert!(server_closes_after(addr, garbage).await, "not closed after {garbage:?}");
            let r = bystander.invoke(RemotingCommand::request(FAST), Duration::from_secs(5)).await.unwrap();
            assert_eq!(r.code, 0);
        }
    });
}

#[test]
fn connection_limit_refuses_extra_connections() {
    run(async {
        let (addr, _) = start_server(ServerLimits { max_connections: 2, ..ServerLimits::default() });
        let a = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        let b = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        assert_eq!(a.invoke(RemotingCommand::request(FAST), Duration::from_secs(5)).await.unwrap().code, 0);
        assert_eq!(b.invoke(RemotingCommand::request(FAST), Duration::from_secs(5)).await.unwrap().code, 0);
        let c = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        let refused = c.invoke(RemotingCommand::request(FAST), Duration::from_secs(5)).await;
        assert!(matches!(refused, Err(RpcError::Closed)), "{refused:?}");
        // When one closes, a new connection is served again.
        a.close();
        compio::time::sleep(Duration::from_millis(100)).await;
        let d = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        assert_eq!(d.invoke(RemotingCommand::request(FAST), Duration::from_secs(5)).await.unwrap().code, 0);
    });
}

#[test]
fn in_flight_limit_answers_system_busy() {
    run(async {
        let limits = ServerLimits {
            conn: ConnLimits { max_in_flight_requests: 2, ..ConnLimits::default() },
            ..ServerLimits::default()
        };
        let (addr, _) = start_server(limits);
        let client = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        let slow = || client.invoke(RemotingCommand::request(SLOW), Duration::from_secs(5));
        let third = async {
            compio::time::sleep(Duration::from_millis(50)).await;
            client.invoke(RemotingCommand::request(FAST), Duration::from_secs(5)).await.unwrap()
        };
        let (a, b, c) = futures_util::join!(slow(), slow(), third);
        assert_eq!((a.unwrap().code, b.unwrap().code), (0, 0));
        assert_eq!(c.code, response_code::SYSTEM_BUSY);
        assert!(c.remark.unwrap().starts_with("[OVERLOAD]"));
        // Once the slow ones finish, requests are served again.
        assert_eq!(client.invoke(RemotingCommand::request(FAST), Duration::from_secs(5)).await.unwrap().code, 0);
    });
}

/// Zero-copy bodies: segments of a file go out with `sendfile`, interleaved correctly with
/// ordinary frames, including bodies far larger than the socket buffer (the writer waits for
/// writability through the runtime).
#[test]
fn file_bodies_are_sent_with_sendfile() {
    run(async {
        let (addr, _) = start_server(ServerLimits::default());
        let dir = std::env::temp_dir().join(format!("ferromq-sendfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("segment");
        let content: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let client = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        for (offset, len, times) in [(0usize, 10usize, 1usize), (1000, 4096, 3), (7, 3 * 1024 * 1024 - 7, 4)] {
            let request = RemotingCommand::request(FILE)
                .with_ext("path", path.display())
                .with_ext("offset", offset)
                .with_ext("len", len)
                .with_ext("times", times);
            let (file, fast) = futures_util::join!(
                client.invoke(request, Duration::from_secs(20)),
                client.invoke(RemotingCommand::request(FAST).with_body(&b"x"[..]), Duration::from_secs(20))
            );
            let file = file.unwrap();
            assert_eq!(file.ext("zeroCopy"), Some("true"));
            assert_eq!(file.body.len(), len * times);
            for chunk in file.body.chunks(len) {
                assert!(chunk == &content[offset..offset + len], "body differs from the file");
            }
            assert_eq!(&fast.unwrap().body[..], b"x");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// Small fragmented file bodies are copied (one `pread` of a covering span, or one per
/// segment when the gaps are wide) and sent with one `writev`; large ones with `sendfile`.
/// Every layout must deliver exactly the bytes of its segments, in order, also when several
/// copied bodies are coalesced with other frames into one write.
#[test]
fn fragmented_file_bodies_arrive_intact_on_either_path() {
    run(async {
        let (addr, _) = start_server(ServerLimits::default());
        let dir = std::env::temp_dir().join(format!("ferromq-copy-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("segment");
        let content: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let client = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        // (offset, len, times, stride): covering span within 4× the wanted bytes (one pread),
        // wide gaps (one pread per segment), a span past 1 MiB, adjacent segments, segments
        // too large to copy (sendfile), one small segment, offsets going backwards (as when a
        // pull crosses into the next log segment file).
        let layouts = [
            (5usize, 1200usize, 32usize, 4 * 1200usize, false),
            (3, 1200, 32, 3 * 1200 + 17, false),
            (11, 1000, 32, 40_000, false),
            (0, 900, 40, 30_000, false),
            (100, 512, 64, 512, false),
            (1, 40_000, 8, 80_000, false),
            (77, 10, 1, 0, false),
            (9, 1200, 32, 2 * 1200, true),
        ];
        let requests = layouts.iter().map(|&(offset, len, times, stride, reverse)| {
            let mut request = RemotingCommand::request(FILE)
                .with_ext("path", path.display())
                .with_ext("offset", offset)
                .with_ext("len", len)
                .with_ext("times", times)
                .with_ext("stride", stride);
            if reverse {
                request = request.with_ext("reverse", true);
            }
            let client = &client;
            let content = &content;
            async move {
                let response = client.invoke(request, Duration::from_secs(20)).await.unwrap();
                assert_eq!(response.body.len(), len * times);
                for (i, chunk) in response.body.chunks(len).enumerate() {
                    let at = offset + if reverse { times - 1 - i } else { i } * stride;
                    assert!(chunk == &content[at..at + len], "layout {offset}/{len}/{times}/{stride}: segment {i} differs");
                }
            }
        });
        let fast = async {
            for i in 0..20 {
                let body = format!("f{i}");
                let r = client.invoke(RemotingCommand::request(FAST).with_body(body.clone().into_bytes()), Duration::from_secs(20)).await.unwrap();
                assert_eq!(r.body, Bytes::from(body));
            }
        };
        futures_util::join!(futures_util::future::join_all(requests), fast);
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// One-way requests beyond the in-flight limit cannot be answered SYSTEM_BUSY; they are not
/// dropped either: the connection stops reading until a slot frees.
#[test]
fn oneway_requests_beyond_the_limit_wait_instead_of_being_dropped() {
    run(async {
        let limits = ServerLimits {
            conn: ConnLimits { max_in_flight_requests: 2, ..ConnLimits::default() },
            ..ServerLimits::default()
        };
        let (addr, handler) = start_server(limits);
        let client = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        for i in 0..20 {
            let request = RemotingCommand::request(ONEWAY_LOG).with_ext("slow", 1).with_body(format!("{i}").into_bytes());
            client.invoke_oneway(request).await.unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while handler.oneway_bodies.borrow().len() < 20 {
            assert!(std::time::Instant::now() < deadline, "only {} of 20 one-way requests served", handler.oneway_bodies.borrow().len());
            compio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut seen: Vec<u32> = handler.oneway_bodies.borrow().iter().map(|b| std::str::from_utf8(b).unwrap().parse().unwrap()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..20).collect::<Vec<u32>>());
    });
}

/// A handler may answer with an already encoded frame; a one-way request is never answered,
/// whatever kind of response its handler returns (a frame, a file body, a command).
#[test]
fn direct_frames_are_sent_and_oneway_requests_never_answered_by_any_response_kind() {
    use compio::io::{AsyncRead, AsyncWriteExt};
    run(async {
        let (addr, handler) = start_server(ServerLimits::default());
        let client = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        let r = client.invoke(RemotingCommand::request(FRAME).with_body(&b"echo"[..]), Duration::from_secs(5)).await.unwrap();
        assert_eq!((r.code, r.ext("who"), &r.body[..]), (0, Some("frame"), &b"echo"[..]));

        let dir = std::env::temp_dir().join(format!("ferromq-oneway-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("segment");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        // Raw frames, so that a stray response cannot hide in the client's unmatched-response
        // path: one-way FRAME, FILE and ONEWAY_LOG requests, then one two-way FAST request,
        // whose answer must be the first and only frame to come back.
        let mut stream = compio::net::TcpStream::connect(addr).await.unwrap();
        let mut wire = Vec::new();
        let oneways = [
            RemotingCommand::request(FRAME),
            RemotingCommand::request(FILE).with_ext("path", path.display()).with_ext("offset", 0).with_ext("len", 100).with_ext("times", 2),
            RemotingCommand::request(ONEWAY_LOG).with_body(&b"raw"[..]),
        ];
        for (opaque, mut request) in (100..).zip(oneways) {
            request.opaque = opaque;
            request.set_oneway();
            wire.extend_from_slice(&ferromq_net::codec::encode_to_bytes(&request).unwrap());
        }
        let mut fast = RemotingCommand::request(FAST);
        fast.opaque = 200;
        wire.extend_from_slice(&ferromq_net::codec::encode_to_bytes(&fast).unwrap());
        let compio::BufResult(written, _) = stream.write_all(wire).await;
        written.unwrap();
        let mut received = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        while std::time::Instant::now() < deadline {
            match compio::time::timeout(Duration::from_millis(100), stream.read(Vec::with_capacity(4096))).await {
                Ok(compio::BufResult(Ok(n), buf)) if n > 0 => received.extend_from_slice(&buf[..n]),
                Ok(_) => break,
                Err(_) => {}
            }
        }
        let received = Bytes::from(received);
        let (first, used) = ferromq_net::codec::decode_frame(&received, &WireLimits::default()).unwrap().expect("one response");
        assert_eq!((first.opaque, first.is_response()), (200, true));
        assert_eq!(used, received.len(), "more than one frame came back");
        assert!(handler.oneway_bodies.borrow().iter().any(|b| &b[..] == b"raw"));
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// A peer that pipelines requests with large answers and never reads them cannot make the
/// server hold more than the connection's write budget plus a few answers: the server stops
/// serving (and reading) that connection, while other connections are served as usual.
#[test]
fn peer_that_never_reads_stops_being_served() {
    run(async {
        const WRITE_BUDGET_BYTES: usize = 1024 * 1024;
        const REQUESTS: usize = 2_000;
        let limits = ServerLimits {
            conn: ConnLimits { write_queue_bytes: WRITE_BUDGET_BYTES, ..ConnLimits::default() },
            ..ServerLimits::default()
        };
        let (addr, handler) = start_server(limits);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                stream.set_write_timeout(Some(Duration::from_millis(50))).unwrap();
                let mut frames = Vec::new();
                for opaque in 0..REQUESTS as i32 {
                    let mut request = RemotingCommand::request(BIG);
                    request.opaque = opaque;
                    frames.extend_from_slice(&ferromq_net::codec::encode_to_bytes(&request).unwrap());
                }
                let mut unsent = &frames[..];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && !unsent.is_empty() {
                    match stream.write(unsent) {
                        Ok(n) => unsent = &unsent[n..],
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                        Err(e) => panic!("write: {e}"),
                    }
                }
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                frames.len() - unsent.len()
            })
        };
        compio::time::sleep(Duration::from_millis(1500)).await;
        let served = handler.big_served.get();
        // Another connection is served meanwhile.
        let other = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        assert_eq!(other.invoke(RemotingCommand::request(FAST), Duration::from_secs(5)).await.unwrap().code, 0);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = writer.join().unwrap();
        // What the kernel's socket buffers absorb (a few MiB on loopback), the write budget, and
        // the answers in flight: far below the 2,000 the peer asked for.
        let bound = (16 * 1024 * 1024 + WRITE_BUDGET_BYTES) / BIG_BODY_BYTES + ConnLimits::default().max_large_answers_in_flight;
        assert!(served <= bound, "served {served} of {REQUESTS} requests (bound {bound}) for a peer that reads nothing; it wrote {written} bytes");
        assert!(served > 0);
        // The big ones are served in bounded groups; once the peer is gone, nothing is left.
        compio::time::sleep(Duration::from_millis(200)).await;
        assert!(handler.big_served.get() <= bound + ConnLimits::default().max_large_answers_in_flight);
    });
}

/// A frame whose first bytes arrived must be complete within `partial_frame_timeout`; a peer
/// that pipelines without pause (its reads often ending mid-frame) is not affected.
#[test]
fn partial_frame_times_out_and_idle_connection_closes() {
    run(async {
        let limits = ServerLimits {
            conn: ConnLimits {
                partial_frame_timeout: Duration::from_millis(300),
                idle_timeout: Some(Duration::from_millis(600)),
                ..ConnLimits::default()
            },
            ..ServerLimits::default()
        };
        let (addr, _) = start_server(limits);
        // Closed by the server within `within`: the peer reads EOF (or a reset).
        let closed_within = |stream: std::net::TcpStream, within: Duration| {
            std::thread::spawn(move || {
                use std::io::Read;
                let started = std::time::Instant::now();
                let mut stream = stream;
                stream.set_read_timeout(Some(within)).unwrap();
                let mut byte = [0u8; 1];
                let closed = match stream.read(&mut byte) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
                };
                (closed, started.elapsed())
            })
        };
        // Three bytes of a length prefix, then nothing.
        let partial = std::net::TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(&mut &partial, &[0, 0, 0]).unwrap();
        let partial = closed_within(partial, Duration::from_secs(5));
        // Nothing at all: idle.
        let idle = closed_within(std::net::TcpStream::connect(addr).unwrap(), Duration::from_secs(5));
        // A request in flight keeps a connection open past the idle timeout.
        let busy = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        let held = busy.invoke(RemotingCommand::request(HOLD), Duration::from_secs(5));
        // A client that keeps talking is never closed.
        let talker = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        let talk = async {
            for _ in 0..15 {
                assert_eq!(talker.invoke(RemotingCommand::request(FAST), Duration::from_secs(5)).await.unwrap().code, 0);
                compio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let (held, ()) = futures_util::join!(held, talk);
        assert_eq!(held.expect("the busy connection stays open").code, 0);
        assert!(!busy.is_closed() && !talker.is_closed());
        let (partial_closed, partial_after) = partial.join().unwrap();
        assert!(partial_closed && partial_after < Duration::from_secs(2), "partial frame: closed {partial_closed} after {partial_after:?}");
        let (idle_closed, idle_after) = idle.join().unwrap();
        assert!(idle_closed && idle_after >= Duration::from_millis(500), "idle: closed {idle_closed} after {idle_after:?}");
    });
}
