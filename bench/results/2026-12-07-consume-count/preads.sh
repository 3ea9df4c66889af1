#!/bin/bash
# preadv2 calls of the broker (epoll) during one catch-up read of 400,000 1 KiB records
# (12,500 pulls of 32), after a first unmeasured read; and its CPU per record.
# Usage: preads.sh BIN
set -euo pipefail
B=$1; S=$(mktemp -d /tmp/fmq-pr-XXXX)
FERROMQ_IO_BACKEND=epoll $B/mqbroker --set storePathRootDir="$S/store" --set listenPort=23941 --set embeddedNamesrvPort=23906 --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 2> "$S/broker.log" &
P=$!
for _ in $(seq 1 100); do grep -q "boot success. serializeType=JSON local_addr=0.0.0.0:23941" "$S/broker.log" && break; sleep 0.1; done
$B/ferromq-bench produce --broker 127.0.0.1:23941 --connections 4 --in-flight 16 --count 400000 > /dev/null
$B/ferromq-bench consume --catch-up --broker 127.0.0.1:23941 --consumer-group g0 --duration-secs 60 > /dev/null
perf stat -e syscalls:sys_enter_preadv2 -p $P -o "$S/stat.txt" -- sleep 2 2>/dev/null & sleep 0.2
$B/ferromq-bench consume --catch-up --broker 127.0.0.1:23941 --consumer-group g1 --duration-secs 60 --pid $P | grep -E "catch-up:|cpu:" | cut -c1-110
wait %2 || true
echo "preadv2 per pull: $(awk '/sys_enter_preadv2/ {print $1 / 12500}' "$S/stat.txt")"
kill $P; wait $P || true; rm -rf "$S"
