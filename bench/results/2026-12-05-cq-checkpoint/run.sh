#!/usr/bin/env bash
# How much of the width cost (10,000 topics × 8 queues, more queue files than descriptors) is the
# consume-queue checkpoint: the same release build (bins in $BINS/now: cargo build --release
# -p ferromq-core -p ferromq-namesrv -p ferromq-bench), run with the default
# flushIntervalConsumeQueue (1000 ms: every dirty consume-queue file reopened and fdatasync'ed
# each second) and with 60000 ms (no checkpoint within a point), alternating, one sitting.
# Only a measurement: 60 s between checkpoints means up to a minute of log replayed after a crash.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT_ROOT:-$here}
bins=${BINS:-/work/bench-bin}
rounds=${ROUNDS:-2}
common=(--flush async --backends epoll --concurrency 256 --duration-secs 8 --affinity-concurrency 0
        --set diskMaxUsedSpaceRatio=95 --set diskSpaceCleanForciblyRatio=98 --set diskSpaceWarningLevelRatio=99
        --width --width-topics 64,10000)
for r in $(seq 1 "$rounds"); do
  "$bins/now/ferromq-bench" suite --bin-dir "$bins/now" "${common[@]}" --out "$out/r$r-cq1000"
  "$bins/now/ferromq-bench" suite --bin-dir "$bins/now" "${common[@]}" --set flushIntervalConsumeQueue=60000 --out "$out/r$r-cq60000"
done
