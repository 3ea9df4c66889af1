#!/usr/bin/env bash
# The load generator's heap (issue 14: consume width): the same broker build ($BINS/part,
# b7a54c7) driven by the generator that gives freed heap memory back to the kernel
# ($BINS/part/ferromq-bench) and by the one that keeps it ($NEW/ferromq-bench, glibc mallopt:
# bench/src/main.rs `keep_freed_heap_memory`), alternating, one sitting, broker defaults,
# 8-s produce windows, width: 72 and 600 queues read back (5 reads each), 64 topics.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT_ROOT:-$here}
bins=${BINS:-/work/bench-bin}
new=${NEW:-/work/main/target/release}
rounds=${ROUNDS:-2}
common=(--bin-dir "$bins/part" --flush async --backends epoll --concurrency 256 --duration-secs 8 --affinity-concurrency 0
        --set diskMaxUsedSpaceRatio=95 --set diskSpaceCleanForciblyRatio=98 --set diskSpaceWarningLevelRatio=99
        --width --width-topics 64 --width-reads 5)
for r in $(seq 1 "$rounds"); do
  "$bins/part/ferromq-bench" suite "${common[@]}" --out "$out/r$r-gives-back"
  "$new/ferromq-bench" suite "${common[@]}" --out "$out/r$r-keeps"
done
