#!/bin/bash
# A/B of ca09941 ("now") against afac8e1 ("new": fewer allocations and instructions per send):
# produce 4 x 64, 1 KiB, 8 queues per topic, 20-s windows through width.sh of the 06:15
# sitting; ABBA at 64 and at 10,000 topics on epoll, AB at 64 topics on io_uring; then
# instructions per send under callgrind (callgrind.sh), ABAB.
# Binaries: `cargo build --release --locked -p ferromq-core --bin mqbroker` at each commit,
# copied to $BINS/now (ca09941) and $BINS/new (afac8e1); both use ca09941's ferromq-bench.
set -euo pipefail
W=bench/results/2026-12-06-cpu-cross-width/width.sh
OUT=${1:-bench/results/2026-12-06-alloc-ab}
BINS=${BINS:-/work/bench-bin}
"$BINS/now/ferromq-bench" probe --fsync-count 500 --write-mib 128 > "$OUT/probe.txt" 2>&1 || true
for run in now:64:1:epoll new:64:1:epoll new:64:2:epoll now:64:2:epoll \
           now:10000:1:epoll new:10000:1:epoll new:10000:2:epoll now:10000:2:epoll \
           now:64:1:io_uring new:64:1:io_uring; do
    IFS=: read -r bin topics round backend <<< "$run"
    echo "== $(date -u +%H:%M:%S) $bin $topics topics, $backend, round $round"
    BACKEND=$backend bash $W "$BINS/$bin" "$topics" "$OUT/$bin-$topics-$backend-$round"
done
for run in now:1 new:1 now:2 new:2; do
    IFS=: read -r bin round <<< "$run"
    echo "== $(date -u +%H:%M:%S) callgrind $bin round $round"
    bash bench/results/2026-12-06-alloc-ab/callgrind.sh "$BINS/$bin" "$OUT/callgrind-$bin-$round" 10000
done
