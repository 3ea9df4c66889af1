#!/usr/bin/env bash
# How long a 10,000-topic broker takes to stop after a 40-s produce window (issue 14): the
# build whose final checkpoint writes and syncs one file after another ($BINS/part, b7a54c7)
# and the one that keeps up to 32 in flight once close begins ($BINS/close, this commit; the
# checkpoint in progress speeds up too; r1-final-checkpoint-only: an earlier build where only
# close's own final checkpoint did, while close first waited for a serial one), each
# `cargo build --release -p ferromq-core -p ferromq-namesrv -p ferromq-bench`, alternating,
# one sitting. The suite logs "stopped: broker in N s" (SIGTERM to exit; it kills at 60 s).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT_ROOT:-$here}
bins=${BINS:-/work/bench-bin}
rounds=${ROUNDS:-1}
common=(--flush async --backends epoll --concurrency 256 --duration-secs 40 --affinity-concurrency 0
        --set diskMaxUsedSpaceRatio=95 --set diskSpaceCleanForciblyRatio=98 --set diskSpaceWarningLevelRatio=99
        --width --width-topics 64,10000)
for r in $(seq 1 "$rounds"); do
  for build in ${BUILDS:-close part}; do
    "$bins/close/ferromq-bench" suite --bin-dir "$bins/$build" "${common[@]}" --out "$out/r$r-$build" 2>&1 | tee "$out/r$r-$build.log" | grep -E "^\[suite\] (stopped|width)|did not stop" || true
  done
done
