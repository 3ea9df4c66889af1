#!/bin/bash
# A/B of ASYNC_FLUSH timed (after) against syncing once 4 pages are dirty (before), same
# generator, alternating arms: ROUNDS x (4 x 64 epoll, 4 x 64 io_uring, 1 x 1 epoll).
# Usage: ab.sh BEFORE_BIN AFTER_BIN OUT [ROUNDS]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BEFORE=$1; AFTER=$2; OUT=$3; ROUNDS=${4:-3}
EV=,syscalls:sys_enter_fdatasync,syscalls:sys_enter_futex
mkdir -p "$OUT"; "$BEFORE/ferromq-bench" probe --fsync-count 500 --write-mib 128 > "$OUT/probe.txt" 2>&1 || true
for r in $(seq 1 "$ROUNDS"); do
    for arm in before after; do
        bin=$BEFORE; [ "$arm" = after ] && bin=$AFTER
        EXTRA=$EV BACKEND=epoll "$HERE/percall.sh" "$bin" "$OUT/$arm-64-epoll-$r" 150000 > /dev/null
        EXTRA=$EV BACKEND=io_uring "$HERE/percall.sh" "$bin" "$OUT/$arm-64-io_uring-$r" 150000 > /dev/null
        EXTRA=$EV BACKEND=epoll CONN=1 INF=1 "$HERE/percall.sh" "$bin" "$OUT/$arm-1x1-epoll-$r" 20000 > /dev/null
    done
done
for f in "$OUT"/*/summary.txt; do
    echo "== $(basename "$(dirname "$f")")"; cat "$f"
done
