//! Criterion micro-benchmarks: the remoting codec, the stored-record encoding, the
//! consume-queue lookup of a pull, and the ACL check of a signed send. The bodies live in
//! `ferromq_bench::micro`, whose tests run each of them a few times inside `cargo test`.
//!
//! ```sh
//! cargo bench -p ferromq-bench --bench micro              # everything
//! cargo bench -p ferromq-bench --bench micro -- codec     # one group
//! ```

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferromq_bench::micro::{self, AclFixture, CodecFixture, PullFixture, RecordFixture};

fn codec(c: &mut Criterion) {
    let f = CodecFixture::new().expect("codec fixture");
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_send_message_v2", |b| {
        b.iter(|| micro::decode(black_box(&f.send_frame), &f.limits).expect("decode"))
    });
    group.bench_function("encode_send_message_v2", |b| {
        let mut out = BytesMut::with_capacity(f.send_frame.len());
        b.iter(|| micro::encode(black_box(&f.send_request), &mut out).expect("encode"))
    });
    group.bench_function("decode_route_response", |b| {
        b.iter(|| micro::decode(black_box(&f.route_frame), &f.limits).expect("decode"))
    });
    group.bench_function("encode_route_response", |b| {
        let mut out = BytesMut::with_capacity(f.route_frame.len());
        b.iter(|| micro::encode(black_box(&f.route_response), &mut out).expect("encode"))
    });
    group.finish();
}

fn record(c: &mut Criterion) {
    let f = RecordFixture::new().expect("record fixture");
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Bytes(f.encoded.len() as u64));
    group.bench_function("encode_1KiB", |b| {
        let mut out = Vec::with_capacity(f.encoded.len());
        b.iter(|| micro::encode_record(black_box(&f), &mut out).expect("encode"))
    });
    group.bench_function("decode_1KiB_with_crc", |b| {
        b.iter(|| micro::decode_record(black_box(&f.encoded)).map(|v| v.total_size).expect("decode"))
    });
    group.finish();
}

fn consume_queue(c: &mut Criterion) {
    let f = PullFixture::new(4, 4096).expect("pull fixture");
    let mut group = c.benchmark_group("consume_queue");
    group.throughput(Throughput::Elements(u64::from(micro::PULL_MESSAGES)));
    group.bench_function("get_message_32_in_memory", |b| b.iter_custom(|iters| f.pull_many(iters).expect("pull")));
    group.finish();
}

fn acl(c: &mut Criterion) {
    let f = AclFixture::new().expect("acl fixture");
    let mut group = c.benchmark_group("acl");
    group.throughput(Throughput::Elements(1));
    group.bench_function("authorize_signed_send_1KiB", |b| b.iter(|| micro::acl_authorize(black_box(&f)).expect("passes")));
    group.bench_function("sign_send_1KiB", |b| b.iter(|| micro::acl_sign(black_box(&f))));
    group.finish();
}

criterion_group!(benches, codec, record, consume_queue, acl);
criterion_main!(benches);
