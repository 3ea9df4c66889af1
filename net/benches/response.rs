//! Encoding a typical SEND_MESSAGE response: through a `RemotingCommand` (what handlers did:
//! build the ext-field map, then encode it) versus written straight into the frame with
//! `ResponseFrame`. Both produce the same bytes (checked here and by the codec's property test).
//!
//! ```sh
//! cargo bench -p ferromq-net --bench response
//! ```

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferromq_net::RemotingCommand;
use ferromq_net::codec::{ResponseFrame, encode_to_bytes};

/// The six ext fields of a send response: region, trace switch, the 32-hex-digit message id
/// (also the transaction id), queue id and offset.
struct SendResult {
    msg_id: String,
    queue_id: i32,
    queue_offset: i64,
}

fn via_command(r: &SendResult, opaque: i32) -> bytes::Bytes {
    let response = RemotingCommand::response(0, opaque, None)
        .with_ext("MSG_REGION", "DefaultRegion")
        .with_ext("TRACE_ON", true)
        .with_ext("msgId", &r.msg_id)
        .with_ext("queueId", r.queue_id)
        .with_ext("queueOffset", r.queue_offset)
        .with_ext("transactionId", &r.msg_id);
    encode_to_bytes(&response).expect("encode")
}

fn direct(r: &SendResult, opaque: i32) -> bytes::Bytes {
    ResponseFrame::new(0, opaque, None)
        .ext("MSG_REGION", "DefaultRegion")
        .ext("TRACE_ON", true)
        .ext("msgId", &r.msg_id)
        .ext("queueId", r.queue_id)
        .ext("queueOffset", r.queue_offset)
        .ext("transactionId", &r.msg_id)
        .finish(b"")
        .expect("encode")
}

fn send_response(c: &mut Criterion) {
    let r = SendResult { msg_id: "0A0000010000A2B1000000000012D687".into(), queue_id: 3, queue_offset: 1_234_567 };
    assert_eq!(via_command(&r, 42), direct(&r, 42), "the two encoders disagree");
    let mut group = c.benchmark_group("send_response");
    group.throughput(Throughput::Elements(1));
    group.bench_function("remoting_command", |b| b.iter(|| via_command(black_box(&r), black_box(42))));
    group.bench_function("response_frame", |b| b.iter(|| direct(black_box(&r), black_box(42))));
    group.finish();
}

criterion_group!(benches, send_response);
criterion_main!(benches);
