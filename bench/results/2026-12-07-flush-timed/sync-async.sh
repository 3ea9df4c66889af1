#!/bin/bash
# SYNC_FLUSH ÷ ASYNC_FLUSH (timed) at 4 x 64 on one build, alternating: ROUNDS x (epoll, io_uring).
# Usage: sync-async.sh BIN OUT [ROUNDS]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$1; OUT=$2; ROUNDS=${3:-2}
for r in $(seq 1 "$ROUNDS"); do
    for backend in epoll io_uring; do
        BACKEND=$backend "$HERE/percall.sh" "$BIN" "$OUT/async-$backend-$r" 150000 > /dev/null
        BACKEND=$backend BROKER_ARGS="--set flushDiskType=SYNC_FLUSH" "$HERE/percall.sh" "$BIN" "$OUT/sync-$backend-$r" 150000 > /dev/null
    done
done
for f in "$OUT"/*/summary.txt; do
    echo "== $(basename "$(dirname "$f")")"; cat "$f"
done
