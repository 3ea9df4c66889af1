#!/bin/bash
# Tuning evidence: each run is one suite invocation; they run back to back.
B=./target-bench/release/ferromq-bench
C="--rss-connections 0 --duration-secs 4 --bound-ms 500"
$B suite $C --flush sync --backends io_uring,epoll --concurrency 1,16,64 --shards 1 --out bench/results/2026-11-21/tuning/sync-shards1
$B suite $C --flush async --backends io_uring --concurrency 1,16,64 --config tuning/default.toml --out bench/results/2026-11-21/tuning/async-default
$B suite $C --flush async --backends io_uring --concurrency 1,16,64 --config tuning/throughput.toml --out bench/results/2026-11-21/tuning/async-throughput
$B suite $C --flush async --backends io_uring --concurrency 1,16,64 --config tuning/low-latency.toml --out bench/results/2026-11-21/tuning/async-lowlatency
$B suite $C --flush sync --backends io_uring --concurrency 16,64,256 --max-connections 8 --config tuning/durable.toml --out bench/results/2026-11-21/tuning/sync-durable
