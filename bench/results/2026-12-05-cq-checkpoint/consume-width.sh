#!/usr/bin/env bash
# Consume width (600 ÷ 72 queues, same backlog) on epoll and on io_uring, alternating, one
# sitting, same release build as run.sh ($BINS/now): was 0.90–0.96 on io_uring on 2026-12-02 and
# 0.48–0.67 on epoll in run.sh's sitting. Only the width consume runs are of interest here (the
# produce width is run too: --width has no consume-only switch), with 64,2000 topics to keep it short.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT_ROOT:-$here}
bins=${BINS:-/work/bench-bin}
common=(--flush async --concurrency 256 --duration-secs 3 --affinity-concurrency 0 --extra-backends epoll --rss-connections 0
        --set diskMaxUsedSpaceRatio=95 --set diskSpaceCleanForciblyRatio=98 --set diskSpaceWarningLevelRatio=99
        --width --width-topics 64,2000)
for r in 1 2; do
  "$bins/now/ferromq-bench" suite --bin-dir "$bins/now" --backends epoll "${common[@]}" --out "$out/w$r-epoll"
  "$bins/now/ferromq-bench" suite --bin-dir "$bins/now" --backends io_uring "${common[@]}" --out "$out/w$r-io_uring"
done
