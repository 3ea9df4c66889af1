#!/usr/bin/env bash
# The consume-queue descriptor budget (maxOpenConsumeQueueFiles), before ÷ after, one sitting:
# release builds of a759fd4 (before: every consume-queue file held open) and of the commit that
# adds the budget (after), each in bin/<which>/ (cargo build --release -p ferromq-core
# -p ferromq-namesrv -p ferromq-bench, binaries copied there). A small matrix (ASYNC_FLUSH,
# epoll, 4 × 64) and the width runs; the 10,000-topic point only after (before, it fails for
# lack of descriptors: bench/RESULTS.md, 2026-12-02).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT_ROOT:-$here}
bins=${BINS:-/work/bench-bin}
common=(--flush async --backends epoll --concurrency 256 --duration-secs 5 --affinity-concurrency 0
        --set diskMaxUsedSpaceRatio=95 --set diskSpaceCleanForciblyRatio=98 --set diskSpaceWarningLevelRatio=99)
"$bins/after/ferromq-bench" suite --bin-dir "$bins/before" "${common[@]}" --width --width-topics 64,2000 --out "$out/before"
"$bins/after/ferromq-bench" suite --bin-dir "$bins/after" "${common[@]}" --width --width-topics 64,2000,10000 --out "$out/after"
