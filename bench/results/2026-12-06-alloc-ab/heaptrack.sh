#!/bin/bash
# Allocations per send: the broker under heaptrack (epoll) for a 10-s produce load, 4 x 64 in
# flight, 1 KiB, 64 topics x 8 queues; then
#   heaptrack_print -f OUT/ht.zst --flamegraph-cost-type allocations -F OUT/stacks.txt
#   python3 allocs.py OUT/stacks.txt 2 40
# which groups the allocations by their two innermost FerroMQ frames. Sends are counted by
# offsetMsgId's single allocation (one per send).  Usage: heaptrack.sh BIN OUT [topics]
set -euo pipefail
BIN=$1; OUT=$2; T=${3:-64}
mkdir -p "$OUT"
S=$(mktemp -d /tmp/fmq-h-XXXX)
FERROMQ_IO_BACKEND=epoll heaptrack -o "$OUT/ht" "$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 > "$OUT/broker.log" 2>&1 &
sleep 4
PID=$(pgrep -f "^$BIN/mqbroker --set storePathRootDir=$S" | head -1)
"$BIN/ferromq-bench" produce --broker 127.0.0.1:23911 --connections ${C:-4} --in-flight ${F:-64} --topics $T --queues 8 --duration-secs ${D:-10} --warmup-ms 2000 --pid $PID > "$OUT/produce.txt" 2>&1
kill $PID; while kill -0 $PID 2>/dev/null; do sleep 0.5; done; sleep 1; rm -rf "$S"
grep -E "^produce:|^cpu:" "$OUT/produce.txt" | cut -c1-200
