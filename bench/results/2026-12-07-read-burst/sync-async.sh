#!/usr/bin/env bash
# SYNC_FLUSH ÷ ASYNC_FLUSH at 4 x 64 single 1-KiB sends, of two builds (directories with
# mqbroker), on BACKENDS (default epoll); arms alternate per round; the generator is OLD's.
# Usage: [BACKENDS="epoll io_uring"] sync-async.sh OLD_DIR NEW_DIR [ROUNDS]
set -euo pipefail
old=${1:?}; new=${2:?}; rounds=${3:-2}
store=${TMPDIR:-/tmp}/ferromq-absa-store; log=${TMPDIR:-/tmp}/ferromq-absa-broker.log
. "$(dirname "$0")/../../ab_common.sh"
for round in $(seq 1 "$rounds"); do
    for backend in ${BACKENDS:-epoll}; do
        for arm in old new; do
            dir=$old; [[ $arm == new ]] && dir=$new
            for flush in ASYNC_FLUSH SYNC_FLUSH; do
                FERROMQ_IO_BACKEND=$backend ab_start_broker "$dir/mqbroker" "$store" "$log" 21911 29877 --set flushDiskType=$flush
                out=$("$old/ferromq-bench" produce --broker 127.0.0.1:21911 --pid "$AB_BROKER_PID" --duration-secs 8 --connections 4 --in-flight 64 2>&1)
                echo "round $round $backend $arm $flush: $(ab_summary "$out")"
                ab_stop_broker
            done
        done
    done
done
rm -rf "$store"
