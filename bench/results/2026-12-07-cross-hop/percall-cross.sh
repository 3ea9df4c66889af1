#!/bin/bash
# Cross-shard hop, counted per send (issue 14 target "cross-shard penalty <= 10 %"): one broker,
# ROUNDS x (--affinity owner, --affinity cross), COUNT sends each after a warm-up, perf stat on
# the broker: CPU (task-clock, all threads), syscalls (with futex, read, write, epoll_wait
# tracepoints), context switches. CONN x INF in flight (default 4 x 16, as targets.sh), 1 KiB.
# Usage: [BACKEND=epoll|io_uring] [CONN=4 INF=16] percall-cross.sh BIN OUT [COUNT] [ROUNDS]
set -euo pipefail
BIN=$1; OUT=$2; COUNT=${3:-100000}; ROUNDS=${4:-2}; BACKEND=${BACKEND:-epoll}; CONN=${CONN:-4}; INF=${INF:-16}
mkdir -p "$OUT"
S=$(mktemp -d /tmp/fmq-xc-XXXX)
FERROMQ_IO_BACKEND=$BACKEND "$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 ${BROKER_ARGS:-} 2> "$OUT/broker.log" &
B=$!
for _ in $(seq 1 60); do ss -ltn | grep -q ":23911 " && break; sleep 0.5; done
common=(--broker 127.0.0.1:23911 --connections $CONN --in-flight $INF --pid $B)
"$BIN/ferromq-bench" produce "${common[@]}" --count 20000 --affinity owner > "$OUT/warmup.txt" 2>&1
for r in $(seq 1 "$ROUNDS"); do
    for a in owner cross; do
        O="$OUT/$a-$r"; mkdir -p "$O"
        perf stat -e task-clock,raw_syscalls:sys_enter,context-switches,syscalls:sys_enter_futex,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_io_uring_enter -p $B -o "$O/perf.txt" &
        P=$!
        sleep 0.3
        "$BIN/ferromq-bench" produce "${common[@]}" --count "$COUNT" --affinity $a > "$O/produce.txt" 2>&1
        kill -INT $P; wait $P || true
        awk -v n=$COUNT '/task-clock/ {gsub(",","",$1); printf "cpu/send %.1f us", $1*1000/n}
            /sys_enter|context-switches/ {gsub(",","",$1); sub("syscalls:sys_enter_","",$2); sub("raw_syscalls:sys_enter","syscalls",$2); printf ", %s %.3f", $2, $1/n}' "$O/perf.txt" > "$O/summary.txt"
        echo "round $r $a: $(cat "$O/summary.txt") | $(grep -E '^produce:' "$O/produce.txt" | cut -c1-40)"
    done
done
kill $B; wait $B || true; rm -rf "$S"
