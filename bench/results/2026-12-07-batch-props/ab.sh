#!/usr/bin/env bash
# Timed A/B of two builds (each a directory with mqbroker): broker CPU per message, ASYNC_FLUSH,
# epoll, 1 KiB, batches of 16 at 4 x 16 requests in flight (SEND_BATCH_MESSAGE), then single
# sends at 4 x 64; old and new alternate per round. The generator is OLD's ferromq-bench.
# Usage: ab.sh OLD_DIR NEW_DIR [ROUNDS]
set -euo pipefail
old=${1:?}; new=${2:?}; rounds=${3:-3}
store=${TMPDIR:-/tmp}/ferromq-abb-store; log=${TMPDIR:-/tmp}/ferromq-abb-broker.log
. "$(dirname "$0")/../../ab_common.sh"
run() { # label dir produce-args...
    local label=$1 dir=$2; shift 2
    FERROMQ_IO_BACKEND=epoll ab_start_broker "$dir/mqbroker" "$store" "$log" 21911 29877 --set flushDiskType=ASYNC_FLUSH
    local out
    out=$("$old/ferromq-bench" produce --broker 127.0.0.1:21911 --pid "$AB_BROKER_PID" --duration-secs 8 "$@" 2>&1)
    echo "$label: $(ab_summary "$out" | sed -E 's/, generator.*//')"
    ab_stop_broker
}
for round in $(seq 1 "$rounds"); do
    run "round $round old batch16" "$old" --connections 4 --in-flight 16 --batch 16
    run "round $round new batch16" "$new" --connections 4 --in-flight 16 --batch 16
    run "round $round old single " "$old" --connections 4 --in-flight 64
    run "round $round new single " "$new" --connections 4 --in-flight 64
done
rm -rf "$store"
