#!/bin/bash
# Per send, counted over a fixed number of sends (COUNT, after a 20,000-send warm-up): the
# broker's CPU (perf stat task-clock, all threads), its syscalls (EXTRA adds per-syscall
# tracepoints, ",syscalls:sys_enter_fdatasync,..."), context switches and page faults, and the
# whole machine's busy time from /proc/stat (the generator and kernel threads such as jbd2
# included). 1 KiB sends, CONN connections x INF in flight (4 x 64), 64 topics x 8 queues.
# Usage: [BACKEND=epoll|io_uring] [CONN=4 INF=64] [BROKER_ARGS="--set k=v"] percall.sh BIN OUT [COUNT]
set -euo pipefail
BIN=$1; OUT=$2; COUNT=${3:-100000}; BACKEND=${BACKEND:-epoll}; CONN=${CONN:-4}; INF=${INF:-64}
mkdir -p "$OUT"
S=$(mktemp -d /tmp/fmq-sc-XXXX)
FERROMQ_IO_BACKEND=$BACKEND "$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 ${BROKER_ARGS:-} 2> "$OUT/broker.log" &
B=$!
for _ in $(seq 1 60); do ss -ltn | grep -q ":23911 " && break; sleep 0.5; done
common=(--broker 127.0.0.1:23911 --connections $CONN --in-flight $INF --topics 64 --queues 8 --warmup-ms 0)
"$BIN/ferromq-bench" produce "${common[@]}" --count 20000 > "$OUT/warmup.txt" 2>&1
perf stat -e task-clock,raw_syscalls:sys_enter,context-switches,page-faults${EXTRA:-} -p $B -o "$OUT/perf.txt" &
P=$!
sleep 0.3
S0=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
"$BIN/ferromq-bench" produce "${common[@]}" --no-create-topic --count "$COUNT" > "$OUT/produce.txt" 2>&1
S1=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
kill -INT $P; wait $P || true
echo "system busy us per send: $(( (S1 - S0) * 10000 / COUNT ))" > "$OUT/system.txt"
kill $B; wait $B || true; rm -rf "$S"
awk -v n=$COUNT '/task-clock/ {gsub(",","",$1); printf "broker CPU us per send: %.1f\n", $1*1000/n}
    /sys_enter|context-switches|page-faults|sock:|io_uring:/ {gsub(",","",$1); printf "%s per send: %.3f\n", $2, $1/n}' "$OUT/perf.txt" > "$OUT/summary.txt"
cat "$OUT/system.txt" >> "$OUT/summary.txt"
tail -1 "$OUT/produce.txt" >> "$OUT/summary.txt"
cat "$OUT/summary.txt"
