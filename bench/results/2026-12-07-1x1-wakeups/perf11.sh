#!/bin/bash
# Where the broker's CPU goes at one send in flight: closed-loop produce (1 KiB, 8 queues,
# ASYNC_FLUSH, 2 shards) at affinity owner (AFF=), perf (cpu-clock, frame-pointer call graphs)
# of the broker for 4 s. Usage: [BACKEND=epoll C=1 F=1 AFF=owner] perf11.sh BIN OUT
#   BIN: a directory with mqbroker and ferromq-bench (release).
set -euo pipefail
BIN=$1; OUT=$2; mkdir -p $OUT
S=$(mktemp -d /tmp/fmq-ctx-XXXX)
"$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 ${BACKEND:+--set io.backend=$BACKEND} \
    2> "$S/broker.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$S"' EXIT
sleep 2
"$BIN/ferromq-bench" produce --broker 127.0.0.1:23911 --connections ${C:-1} --in-flight ${F:-1} \
    --duration-secs 8 --warmup-ms 1000 --pid "$PID" --affinity ${AFF:-owner} > "$OUT/produce.txt" 2>&1 &
P=$!
sleep 3
perf record -q -F 1999 -e cpu-clock -g -p "$PID" -o "$OUT/perf.data" -- sleep 4 2>/dev/null
wait $P
perf report -q -i "$OUT/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null > "$OUT/threads.txt"
perf report -q -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio -g none --percent-limit 0.7 2>/dev/null | cut -c1-160 > "$OUT/symbols.txt"
perf report -q -i "$OUT/perf.data" --children --sort symbol --stdio -g none --percent-limit 2 2>/dev/null | cut -c1-160 > "$OUT/inclusive.txt"
