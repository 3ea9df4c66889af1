#!/bin/bash
# Instructions per send, owner-shard against cross-shard, counted (not timed): the broker under
# callgrind (epoll), 4 x 16 in flight, 1 KiB, one topic, every connection's queues on its own
# shard (owner) or on the other one (cross); a 2,000-send warm-up, counters zeroed, COUNT
# sends, a dump. Per-time work in the window (checkpoints, flushes) is counted too.
# Usage: [GEN_FLAGS="--batch 16"] callgrind-cross.sh BIN OUT owner|cross [COUNT]
#   GEN_FLAGS: more flags for the generator (2026-12-07-batch-props: batches of 16).
set -euo pipefail
BIN=$1; OUT=$2; AFF=$3; COUNT=${4:-10000}
mkdir -p "$OUT"
S=$(mktemp -d /tmp/fmq-cgx-XXXX)
FERROMQ_IO_BACKEND=epoll valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
    "$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 2> "$OUT/broker.log" &
VG=$!
for _ in $(seq 1 120); do ss -ltn | grep -q ":23911 " && break; sleep 1; done
# shellcheck disable=SC2206 # GEN_FLAGS is split into words on purpose
common=(--broker 127.0.0.1:23911 --connections 4 --in-flight 16 --pid $VG --affinity $AFF ${GEN_FLAGS:-})
"$BIN/ferromq-bench" produce "${common[@]}" --count 2000 > "$OUT/warmup.txt" 2>&1
callgrind_control -z "$VG" > /dev/null 2>&1
"$BIN/ferromq-bench" produce "${common[@]}" --count "$COUNT" > "$OUT/produce.txt" 2>&1
callgrind_control -d "$VG" > /dev/null 2>&1
kill "$VG"; wait "$VG" || true; rm -rf "$S"
ir=$(grep -h "^totals:" "$OUT"/callgrind.out.1 | awk '{print $2}')
echo "$AFF: sends $COUNT, instructions $ir, per send $((ir / COUNT))" | tee "$OUT/summary.txt"
