#!/usr/bin/env bash
# Where the broker's CPU goes in the width produce windows (issue 14): one suite run (broker
# b7a54c7 in $BINS/part, generator of this commit in $NEW), 40-s windows, 64 and 10,000 topics
# × 8 queues, with a system-wide `perf record -F 499` of 20 s started at each window's first
# second (watch.py reads the suite's progress lines). Reports: `perf report --sort comm,sym`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bins=${BINS:-/work/bench-bin}
new=${NEW:-/work/main/target/release}
log=${LOG:-/tmp/width-profile.log}
: > "$log"
python3 "$here/watch.py" "$log" "${PERF_DIR:-/tmp}" &
"$new/ferromq-bench" suite --bin-dir "$bins/part" --flush async --backends epoll --concurrency 256 --duration-secs 40 \
  --affinity-concurrency 0 --set diskMaxUsedSpaceRatio=95 --set diskSpaceCleanForciblyRatio=98 --set diskSpaceWarningLevelRatio=99 \
  --width --width-topics 64,10000 --out "$here/suite" > "$log" 2>&1
wait
