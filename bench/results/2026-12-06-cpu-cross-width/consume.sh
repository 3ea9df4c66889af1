#!/bin/bash
# catch-up consume profile: produce N records (1 KiB, 8 queues), then catch-up with perf (dwarf)
set -euo pipefail
BIN=$1; OUT=$2; shift 2
mkdir -p "$OUT"
S=$(mktemp -d /tmp/fmq-c-XXXX)
"$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 "$@" \
    2> "$S/broker.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$S"' EXIT
sleep 2
"$BIN/ferromq-bench" produce --broker 127.0.0.1:23911 --connections 4 --in-flight 64 --count ${N:-1500000} --warmup-ms 0 > "$OUT/produce.txt" 2>&1
for i in 1 2; do
"$BIN/ferromq-bench" consume --broker 127.0.0.1:23911 --catch-up --pid $PID --consumer-group g$i > "$OUT/consume-$i.txt" 2>&1
done
if [ -n "${PERF:-}" ]; then
"$BIN/ferromq-bench" consume --broker 127.0.0.1:23911 --catch-up --pid $PID --consumer-group gp > "$OUT/consume-perf.txt" 2>&1 &
P=$!
sleep 1
perf record -q -F 1999 -e cpu-clock ${CG:---call-graph dwarf,16384} -p "$PID" -o "$OUT/perf.data" -- sleep ${PS:-3} 2>/dev/null
wait $P
fi
if [ -n "${CTX:-}" ]; then
  snap() { for t in /proc/$PID/task/*; do echo "$(cat $t/comm) $(grep -E '^(voluntary|nonvoluntary)_ctxt' $t/status | awk '{print $2}' | tr '\n' ' ')"; done | grep shard; }
  snap > "$OUT/ctx-before.txt"
  "$BIN/ferromq-bench" consume --broker 127.0.0.1:23911 --catch-up --pid $PID --consumer-group gc > "$OUT/consume-ctx.txt" 2>&1
  snap > "$OUT/ctx-after.txt"
  paste "$OUT/ctx-before.txt" "$OUT/ctx-after.txt"
fi
