#!/bin/bash
# The width and cross-shard targets again on one build (issue 14), epoll, alternating:
# ROUNDS x (produce to 64 topics, to 10,000 topics; 4 x 64, 20-s windows after a 2-s warm-up)
# and ROUNDS x (4 x 16, owner-shard then other-shard affinity, 5-s windows) on one broker.
# Usage: targets.sh BIN OUT [ROUNDS]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$1; OUT=$2; ROUNDS=${3:-2}
WIDTH="$HERE/../2026-12-06-cpu-cross-width/width.sh"
mkdir -p "$OUT"
for r in $(seq 1 "$ROUNDS"); do
    for t in 64 10000; do
        bash "$WIDTH" "$BIN" "$t" "$OUT/width-$t-$r" > /dev/null
        echo "width $t round $r: $(grep -E '^produce:' "$OUT/width-$t-$r/produce.txt" | cut -c1-60) | $(grep -E '^cpu:' "$OUT/width-$t-$r/produce.txt" | cut -c1-90)"
    done
done
S=$(mktemp -d /tmp/fmq-x-XXXX)
FERROMQ_IO_BACKEND=epoll "$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 2> "$OUT/cross-broker.log" &
PID=$!
sleep 2
for r in $(seq 1 $((ROUNDS + 1))); do
    for a in owner cross; do
        "$BIN/ferromq-bench" produce --broker 127.0.0.1:23911 --connections 4 --in-flight 16 --duration-secs 5 --affinity $a --pid $PID > "$OUT/x-$a-$r.txt" 2>&1
        echo "cross-shard $a round $r: $(grep -E '^produce:' "$OUT/x-$a-$r.txt" | cut -c1-40) | $(grep -E '^cpu:' "$OUT/x-$a-$r.txt" | cut -c1-60)"
    done
done
kill $PID; wait $PID || true; rm -rf "$S"
