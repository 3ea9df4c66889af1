#!/usr/bin/env bash
# Concurrent checkpoint writes and fdatasyncs (issue 14: width, sustained): the build with
# partial checkpoints written one file after another ($BINS/part, b7a54c7) and the build that
# keeps up to 32 files in flight ($BINS/part2: e6682b5 + concurrent.patch), each `cargo build --release -p ferromq-core
# -p ferromq-namesrv -p ferromq-bench`, alternating, one sitting, broker defaults, 40-s windows
# (each 10,000-topic window holds thorough checkpoints), 64 and 10,000 topics × 8 queues.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT_ROOT:-$here}
bins=${BINS:-/work/bench-bin}
rounds=${ROUNDS:-2}
common=(--flush async --backends epoll --concurrency 256 --duration-secs 40 --affinity-concurrency 0
        --set diskMaxUsedSpaceRatio=95 --set diskSpaceCleanForciblyRatio=98 --set diskSpaceWarningLevelRatio=99
        --width --width-topics 64,10000)
for r in $(seq 1 "$rounds"); do
  "$bins/part/ferromq-bench" suite --bin-dir "$bins/part" "${common[@]}" --out "$out/r$r-serial"
  "$bins/part2/ferromq-bench" suite --bin-dir "$bins/part2" "${common[@]}" --out "$out/r$r-concurrent"
done
