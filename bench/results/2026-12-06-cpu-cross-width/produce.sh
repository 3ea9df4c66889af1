#!/bin/bash
# produce A/B: one broker per variant (FERROMQ_EXP_URING), 4x64 and 1x1 points, 8 queues
set -euo pipefail
BIN=$1; OUT=$2; shift 2
mkdir -p "$OUT"
for round in ${ROUNDS:-1 2}; do
for v in ${VARS:-none coop,flag}; do
S=$(mktemp -d /tmp/fmq-p-XXXX)
FERROMQ_EXP_URING=$v "$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 "$@" 2> "$S/broker.log" &
PID=$!
sleep 2
"$BIN/ferromq-bench" produce --broker 127.0.0.1:23911 --connections 4 --in-flight 64 --duration-secs 6 --warmup-ms 1000 --pid $PID > "$OUT/r$round-$v-4x64.txt" 2>&1
"$BIN/ferromq-bench" produce --broker 127.0.0.1:23911 --connections 1 --in-flight 1 --duration-secs 5 --warmup-ms 1000 --pid $PID > "$OUT/r$round-$v-1x1.txt" 2>&1
kill $PID; wait $PID || true; rm -rf "$S"
for p in 4x64 1x1; do echo "r$round $v $p: $(grep -E '^produce:|^cpu:|^latency' $OUT/r$round-$v-$p.txt | sed -E 's/produce: ([0-9]+) msg.s.*/\1 msg\/s/; s/latency us: (p50 [0-9]+).*/\1/; s/cpu: (broker [0-9.]+ µs.msg).*(generator [0-9.]+ µs.msg).*/\1 \2/' | tr '\n' ' ')"; done
done
done
