#!/usr/bin/env bash
# Partial consume-queue checkpoints (flushConsumeQueueLeastPages, issue 14: width): the build
# before them ($BINS/now) and the build with them ($BINS/part), each `cargo build --release
# -p ferromq-core -p ferromq-namesrv -p ferromq-bench`, alternating, one sitting, broker
# defaults (flushIntervalConsumeQueue=1000), 64 and 10,000 topics × 8 queues.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT_ROOT:-$here}
bins=${BINS:-/work/bench-bin}
rounds=${ROUNDS:-2}
common=(--flush async --backends epoll --concurrency 256 --duration-secs 8 --affinity-concurrency 0
        --set diskMaxUsedSpaceRatio=95 --set diskSpaceCleanForciblyRatio=98 --set diskSpaceWarningLevelRatio=99
        --width --width-topics 64,10000)
for r in $( [[ "${LONG:-0}" == 1 ]] || seq 1 "$rounds"); do
  "$bins/now/ferromq-bench" suite --bin-dir "$bins/now" "${common[@]}" --out "$out/r$r-before"
  "$bins/part/ferromq-bench" suite --bin-dir "$bins/part" "${common[@]}" --out "$out/r$r-after"
done
# Long windows (LONG=1): 40 s per point, so that each 10,000-topic window holds thorough
# checkpoints (the memory bound of 524,288 unsynced entries per shard is met every ~17 s at
# 30,000 sends/s per shard); the build with partial checkpoints only.
if [[ "${LONG:-0}" == 1 ]]; then
  long=("${common[@]}")
  long[7]=40
  "$bins/part/ferromq-bench" suite --bin-dir "$bins/part" "${long[@]}" --out "$out/long-after"
fi
