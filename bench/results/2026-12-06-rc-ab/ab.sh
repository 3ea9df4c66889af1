#!/bin/bash
# A/B of d52532f (now) against ca09941 (new: Rc<str> topic names shared with checkpoints):
# produce 4 x 64 to 10,000 topics x 8 queues (ABBA) and to 64 topics (AB), epoll, 20-s windows,
# through width.sh of the 2026-12-06 06:15 sitting.
# The binaries: `cargo build --release --locked -p ferromq-core -p ferromq-bench` at each commit,
# target/release/{mqbroker,ferromq-bench} copied to /work/bench-bin/now (d52532f) and
# /work/bench-bin/new (ca09941).
set -euo pipefail
W=bench/results/2026-12-06-cpu-cross-width/width.sh
OUT=${1:-bench/results/2026-12-06-rc-ab}
for run in now:10000:1 new:10000:1 new:10000:2 now:10000:2 now:64:1 new:64:1; do
    IFS=: read -r bin topics round <<< "$run"
    echo "== $(date -u +%H:%M:%S) $bin $topics topics, round $round"
    bash $W /work/bench-bin/$bin $topics "$OUT/$bin-$topics-$round"
done
