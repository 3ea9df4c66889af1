#!/bin/bash
# Timed A/B of catch-up consume: per build and round, a fresh broker (BACKEND), a backlog of
# 400,000 1 KiB sends (4 x 16 in flight, 8 queues), then READS catch-up reads from offset 0
# (one 32-record pull in flight per queue, a new consumer group each), each with the broker's
# CPU per record (/proc/PID/stat, all threads) and, from builds that report it, its block
# cache's reads per pull and bytes read per body byte. Alternates BEFORE and AFTER.
# Usage: BACKEND=epoll|io_uring ab-catchup.sh BEFORE AFTER ROUNDS [READS]
set -euo pipefail
A=$1; Bn=$2; ROUNDS=$3; READS=${4:-3}; BACKEND=${BACKEND:-epoll}
for r in $(seq 1 "$ROUNDS"); do
  for bin in "$A" "$Bn"; do
    S=$(mktemp -d /tmp/fmq-abc-XXXX)
    FERROMQ_IO_BACKEND=$BACKEND "$bin/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23931 --set embeddedNamesrvPort=23896 \
      --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 2> "$S/broker.log" &
    P=$!
    for _ in $(seq 1 100); do grep -q "boot success. serializeType=JSON local_addr=0.0.0.0:23931" "$S/broker.log" && break; sleep 0.1; done
    "$bin/ferromq-bench" produce --broker 127.0.0.1:23931 --connections 4 --in-flight 16 --count 400000 > /dev/null 2>&1
    for i in $(seq 1 "$READS"); do
      out=$("$bin/ferromq-bench" consume --catch-up --broker 127.0.0.1:23931 --consumer-group g$i --duration-secs 60 --pid $P 2>&1)
      echo "$BACKEND round $r $(basename "$bin") read $i: $(echo "$out" | grep -o 'consume-catch-up: [0-9]* msg/s') $(echo "$out" | grep -o 'broker [0-9.]* µs/msg') $(echo "$out" | grep -o 'generator [0-9.]* µs/msg') $(echo "$out" | grep -o 'p50 [0-9]*' | head -1) $(echo "$out" | grep -o '([0-9.]* per pull), [0-9.]* bytes read per body byte' | tr -d '(),')"
    done
    kill $P; wait $P || true; rm -rf "$S"
  done
done
