#!/bin/bash
# Context switches per send, per broker thread, at C x F closed-loop produce.
# Usage: [C=1 F=1 AFF=any BACKEND=epoll] ctx.sh BINDIR BENCHDIR   (BINDIR holds mqbroker, BENCHDIR ferromq-bench)
set -euo pipefail
BIN=$1; BB=$2
S=$(mktemp -d /tmp/fmq-ctx-XXXX)
"$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 ${BACKEND:+--set io.backend=$BACKEND} \
    2> "$S/broker.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$S"' EXIT
sleep 2
snap() { for t in /proc/$PID/task/*; do echo "$(basename $t) $(cat $t/comm | tr ' ' _) $(grep -E '^(voluntary|nonvoluntary)_ctxt' $t/status | awk '{s+=$2} END {print s}') $(awk '{print $14+$15}' $t/stat)"; done | sort -n; }
"$BB/ferromq-bench" produce --broker 127.0.0.1:23911 --connections ${C:-1} --in-flight ${F:-1} \
    --duration-secs 6 --warmup-ms 1000 --pid "$PID" --affinity ${AFF:-any} > "$S/produce.txt" 2>&1 &
P=$!
sleep 2; snap > "$S/a"; T0=$(date +%s.%N); sleep 4; snap > "$S/b"; T1=$(date +%s.%N)
wait $P
grep -E "msg/s|per send|sends/s" "$S/produce.txt" | head -5
RATE=$(grep -oE "[0-9.]+ msg/s" "$S/produce.txt" | head -1 | awk '{print $1}')
echo "window $(echo "$T1 - $T0" | bc) s, rate $RATE"
join <(awk '{print $1, $2, $3, $4}' "$S/a") <(awk '{print $1, $3, $4}' "$S/b") | awk -v r="$RATE" -v w="$(echo "$T1 - $T0" | bc)" '{cs=$5-$3; ticks=$6-$4; if (cs>0 || ticks>0) printf "%-8s %-18s ctxsw/send %.3f  cpu_ticks %d\n", $1, $2, cs/(r*w), ticks}'
