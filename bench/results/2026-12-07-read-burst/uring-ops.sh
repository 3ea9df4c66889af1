#!/bin/bash
# io_uring operations per send: the broker (io_uring) under 4 x 64 closed-loop 1 KiB sends
# (ASYNC_FLUSH defaults, 2 shards); a 2-s perf trace of io_uring_submit_req (by opcode) and
# io_uring_poll_arm (a socket operation that found nothing ready and waits for readiness).
# Usage: uring-ops.sh BIN OUT  (BIN: a directory with mqbroker and ferromq-bench)
set -euo pipefail
BIN=$1; OUT=$2; mkdir -p "$OUT"
S=$(mktemp -d /tmp/fmq-uo-XXXX)
"$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 --set io.backend=io_uring 2> "$S/broker.log" &
PID=$!
sleep 2
"$BIN/ferromq-bench" produce --broker 127.0.0.1:23911 --connections 4 --in-flight 64 --duration-secs 6 --warmup-ms 1000 --pid $PID > "$OUT/produce.txt" 2>&1 &
P=$!
sleep 3
perf record -q -e io_uring:io_uring_submit_req -e io_uring:io_uring_poll_arm -p $PID -o "$OUT/uring.data" -- sleep 2 2>/dev/null
wait $P
kill $PID; wait $PID || true; rm -rf "$S"
perf script -i "$OUT/uring.data" 2>/dev/null | grep -oE "io_uring_(submit_req|poll_arm).*opcode [A-Z_]+" | sed -E 's/ .* opcode / /' | sort | uniq -c | sort -rn | tee "$OUT/ops.txt"
grep -E "^produce:|^cpu:" "$OUT/produce.txt"
