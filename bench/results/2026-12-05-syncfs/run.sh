#!/usr/bin/env bash
# An experiment that did not land: the width point (10,000 topics × 8 queues against 64) before
# and after a checkpoint that syncs many consume-queue files with one syncfs(2) instead of one
# fdatasync each (syncfs.patch beside this script, on 6dc99ba). Release builds of b9a871e
# ($BINS/now) and of 6dc99ba + syncfs.patch ($BINS/new), each `cargo build --release -p
# ferromq-core -p ferromq-namesrv -p ferromq-bench`, alternating, one sitting, the same load
# generator (the new build's). Results: bench/RESULTS.md, 2026-12-05 (13:00–13:07 UTC).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT_ROOT:-$here}
bins=${BINS:-/work/bench-bin}
rounds=${ROUNDS:-2}
backend=${BACKEND:-epoll}
common=(--flush async --backends "$backend" --concurrency 256 --duration-secs 8 --affinity-concurrency 0
        --set diskMaxUsedSpaceRatio=95 --set diskSpaceCleanForciblyRatio=98 --set diskSpaceWarningLevelRatio=99
        --width --width-topics 64,10000)
for r in $(seq 1 "$rounds"); do
  for b in now new; do
    "$bins/new/ferromq-bench" suite --bin-dir "$bins/$b" "${common[@]}" --out "$out/r$r-$backend-$b"
  done
done
