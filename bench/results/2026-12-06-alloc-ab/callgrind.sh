#!/bin/bash
# Instructions and allocations per send, counted rather than timed (this VM's clock-based CPU
# figures swing by a fifth between runs): the broker under callgrind (epoll: valgrind does not
# run io_uring), a warm-up of 2,000 sends, counters zeroed, exactly COUNT sends (4 x 64 in
# flight, 1 KiB, 64 topics x 8 queues), then a dump. Per-time work (checkpoints,
# flushes) inside the window is counted too, and the window is long under valgrind: an upper
# bound for both builds alike.  Usage: callgrind.sh BIN OUT [COUNT]
set -euo pipefail
BIN=$1; OUT=$2; COUNT=${3:-10000}
mkdir -p "$OUT"
S=$(mktemp -d /tmp/fmq-cg-XXXX)
FERROMQ_IO_BACKEND=epoll valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
    "$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 2> "$OUT/broker.log" &
VG=$!
for _ in $(seq 1 120); do ss -ltn | grep -q ":23911 " && break; sleep 1; done
common=(--broker 127.0.0.1:23911 --connections 4 --in-flight 64 --topics 64 --queues 8 --warmup-ms 0)
"$BIN/ferromq-bench" produce "${common[@]}" --count 2000 > "$OUT/warmup.txt" 2>&1
callgrind_control -z "$VG" > /dev/null 2>&1
"$BIN/ferromq-bench" produce "${common[@]}" --no-create-topic --count "$COUNT" > "$OUT/produce.txt" 2>&1
callgrind_control -d "$VG" > /dev/null 2>&1
kill "$VG"; wait "$VG" || true; rm -rf "$S"
ir=$(grep -h "^totals:" "$OUT"/callgrind.out.1 | awk '{print $2}')
echo "sends $COUNT, instructions $ir, per send $((ir / COUNT))" | tee "$OUT/summary.txt"
