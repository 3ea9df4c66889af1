#!/usr/bin/env bash
# Timed A/B of two builds (each a directory with mqbroker): broker CPU per message, ASYNC_FLUSH,
# 1 KiB, single sends at 4 x 64 on epoll and io_uring, batches of 16 at 4 x 16 requests (epoll)
# and one send in flight (epoll); old and new alternate per round. The generator is OLD's
# ferromq-bench. Usage: ab.sh OLD_DIR NEW_DIR [ROUNDS]
set -euo pipefail
old=${1:?}; new=${2:?}; rounds=${3:-3}
store=${TMPDIR:-/tmp}/ferromq-abr-store; log=${TMPDIR:-/tmp}/ferromq-abr-broker.log
. "$(dirname "$0")/../../ab_common.sh"
run() { # label dir backend produce-args...
    local label=$1 dir=$2 backend=$3; shift 3
    FERROMQ_IO_BACKEND=$backend ab_start_broker "$dir/mqbroker" "$store" "$log" 21911 29877 --set flushDiskType=ASYNC_FLUSH
    local out
    out=$("$old/ferromq-bench" produce --broker 127.0.0.1:21911 --pid "$AB_BROKER_PID" --duration-secs 8 "$@" 2>&1)
    echo "$label: $(ab_summary "$out")"
    ab_stop_broker
}
for round in $(seq 1 "$rounds"); do
    for arm in old new; do
        dir=$old; [[ $arm == new ]] && dir=$new
        run "round $round $arm single epoll   " "$dir" epoll --connections 4 --in-flight 64
        run "round $round $arm single io_uring" "$dir" io_uring --connections 4 --in-flight 64
        run "round $round $arm batch16 epoll  " "$dir" epoll --connections 4 --in-flight 16 --batch 16
        run "round $round $arm 1x1 epoll      " "$dir" epoll --connections 1 --in-flight 1
    done
done
rm -rf "$store"
