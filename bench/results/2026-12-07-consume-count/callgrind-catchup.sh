#!/bin/bash
# Instructions per consumed record in a catch-up read, counted (not timed): a backlog of
# BACKLOG 1 KiB sends (4 x 16 in flight, 8 queues) written by a plain broker, which is stopped;
# the same store opened by the broker under callgrind (epoll); one catch-up read from offset 0
# (8 queues, one 32-record pull in flight per queue) as warm-up with the counters then zeroed,
# a second catch-up read (another consumer group, same records) counted, a dump.
# Usage: callgrind-catchup.sh BIN OUT [BACKLOG]
set -euo pipefail
BIN=$1; OUT=$2; BACKLOG=${3:-100000}
mkdir -p "$OUT"
S=$(mktemp -d /tmp/fmq-cgc-XXXX)
args=(--set storePathRootDir="$S/store" --set listenPort=23921 --set embeddedNamesrvPort=23886
      --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98)
# Ready when the log says so (the store's start-up verification takes minutes under callgrind).
wait_boot() { for _ in $(seq 1 600); do grep -q "boot success. serializeType=JSON local_addr=0.0.0.0:23921" "$1" && return 0; kill -0 "$2" 2>/dev/null || { echo "broker exited: $1"; exit 1; }; sleep 1; done; exit 1; }
FERROMQ_IO_BACKEND=epoll "$BIN/mqbroker" "${args[@]}" 2> "$OUT/broker-fill.log" &
B=$!; wait_boot "$OUT/broker-fill.log" "$B"
"$BIN/ferromq-bench" produce --broker 127.0.0.1:23921 --connections 4 --in-flight 16 --count "$BACKLOG" > "$OUT/fill.txt" 2>&1
kill "$B"; wait "$B" || true
FERROMQ_IO_BACKEND=epoll valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
    "$BIN/mqbroker" "${args[@]}" 2> "$OUT/broker.log" &
VG=$!; wait_boot "$OUT/broker.log" "$VG"
"$BIN/ferromq-bench" consume --catch-up --broker 127.0.0.1:23921 --consumer-group cg-warm --duration-secs 600 > "$OUT/warmup.txt" 2>&1
grep -q "($BACKLOG messages" "$OUT/warmup.txt" || { echo "warm-up did not read the backlog"; exit 1; }
callgrind_control -z "$VG" > /dev/null 2>&1
"$BIN/ferromq-bench" consume --catch-up --broker 127.0.0.1:23921 --consumer-group cg-count --duration-secs 600 > "$OUT/consume.txt" 2>&1
callgrind_control -d "$VG" > /dev/null 2>&1
kill "$VG"; wait "$VG" || true; rm -rf "$S"
ir=$(grep -h "^totals:" "$OUT"/callgrind.out.1 | awk '{print $2}')
echo "catch-up: records $BACKLOG, instructions $ir, per record $((ir / BACKLOG))" | tee "$OUT/summary.txt"
