#!/bin/bash
# width: store growth per send by directory, 64 vs 10000 topics
set -euo pipefail
BIN=$1; T=$2; OUT=$3; shift 3
mkdir -p "$OUT"
S=$(mktemp -d /tmp/fmq-w-XXXX)
FERROMQ_IO_BACKEND=${BACKEND:-epoll} "$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 "$@" 2> "$OUT/broker.log" &
PID=$!
sleep 2
C0=$(grep -E "^Cached" /proc/meminfo | awk '{print $2}')
"$BIN/ferromq-bench" produce --broker 127.0.0.1:23911 --connections 4 --in-flight 64 --topics $T --queues 8 --duration-secs ${D:-20} --warmup-ms 2000 --pid $PID > "$OUT/produce.txt" 2>&1 &
P=$!
if [ -n "${PERF:-}" ]; then sleep ${PS0:-8}; perf record -q -F 499 -e cpu-clock --call-graph dwarf,8192 -p $PID -o "$OUT/perf.data" -- sleep 5 2>/dev/null; fi
wait $P
C1=$(grep -E "^Cached" /proc/meminfo | awk '{print $2}')
du -sk $S/store/shard-*/* > "$OUT/du.txt"
find $S/store -path "*consume*"  -type f | wc -l >> "$OUT/du.txt"
echo "cached_kib_delta $((C1-C0))" >> "$OUT/du.txt"
kill $PID; wait $PID || true; rm -rf "$S"
grep -E "^produce:|^cpu:" "$OUT/produce.txt" | cut -c1-140; cat "$OUT/du.txt"
