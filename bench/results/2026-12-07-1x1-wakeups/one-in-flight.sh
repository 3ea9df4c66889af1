#!/bin/bash
# One send in flight (C x F closed-loop produce of 1 KiB to 8 queues, ASYNC_FLUSH, 2 shards)
# against a release broker, then one of:
#   perf: where the broker's CPU goes (perf cpu-clock, frame-pointer call graphs, 4 s; affinity owner by default)
#   ctx:  context switches and CPU ticks per send of each broker thread over a 4-s window
#         (affinity any by default), against the run's mean rate
# Usage: [BACKEND=epoll C=1 F=1 AFF=... EXTRA="--set k=v ..."] one-in-flight.sh perf|ctx BIN OUT
#   BIN: a directory with mqbroker and ferromq-bench.
set -euo pipefail
MODE=$1; BIN=$2; OUT=$3; mkdir -p "$OUT"
S=$(mktemp -d /tmp/fmq-1x1-XXXX)
"$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 ${BACKEND:+--set io.backend=$BACKEND} ${EXTRA:-} \
    2> "$S/broker.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$S"' EXIT
sleep 2
[[ $MODE == perf ]] && aff=${AFF:-owner} || aff=${AFF:-any}
"$BIN/ferromq-bench" produce --broker 127.0.0.1:23911 --connections "${C:-1}" --in-flight "${F:-1}" \
    --duration-secs 8 --warmup-ms 1000 --pid "$PID" --affinity "$aff" > "$OUT/produce.txt" 2>&1 &
P=$!
# Per thread: tid, name, voluntary + involuntary context switches, utime + stime ticks.
snap() { for t in /proc/$PID/task/*; do echo "$(basename "$t") $(tr ' ' _ < "$t/comm") $(grep -E '^(voluntary|nonvoluntary)_ctxt' "$t/status" | awk '{s+=$2} END {print s}') $(awk '{print $14+$15}' "$t/stat")"; done | sort -n; }
sleep 3
case $MODE in
perf)
    perf record -q -F 1999 -e cpu-clock -g -p "$PID" -o "$OUT/perf.data" -- sleep 4 2>/dev/null
    wait $P
    perf report -q -i "$OUT/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null > "$OUT/threads.txt"
    perf report -q -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio -g none --percent-limit 0.7 2>/dev/null | cut -c1-160 > "$OUT/symbols.txt"
    perf report -q -i "$OUT/perf.data" --children --sort symbol --stdio -g none --percent-limit 2 2>/dev/null | cut -c1-160 > "$OUT/inclusive.txt"
    ;;
ctx)
    snap > "$S/a"; T0=$(date +%s.%N); sleep 4; snap > "$S/b"; T1=$(date +%s.%N)
    wait $P
    # The run's mean rate (its final "produce:" line), not one second's.
    RATE=$(grep -oE "^produce: [0-9.]+ msg/s" "$OUT/produce.txt" | awk '{print $2}')
    W=$(echo "$T1 - $T0" | bc)
    { echo "window $W s, mean rate $RATE msg/s"
      join <(awk '{print $1, $2, $3, $4}' "$S/a") <(awk '{print $1, $3, $4}' "$S/b") |
          awk -v r="$RATE" -v w="$W" '{cs=$5-$3; ticks=$6-$4; if (cs>0 || ticks>0) printf "%-8s %-18s ctxsw/send %.3f  cpu_ticks %d\n", $1, $2, cs/(r*w), ticks}'
    } | tee "$OUT/ctx.txt"
    ;;
*) echo "mode: perf or ctx" >&2; exit 2 ;;
esac
