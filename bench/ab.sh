#!/usr/bin/env bash
# A/B of two mqbroker builds in one sitting: broker CPU per message and throughput, old and new
# alternating per round, so the machine's drift hits both alike.
#
#   bench/ab.sh OLD_MQBROKER NEW_MQBROKER [ROUNDS] [FLUSH_TYPES]
#
# e.g. build an older commit in a worktree (cargo build --release --bin mqbroker), then
#   bench/ab.sh ../wt-old/target/release/mqbroker target/release/mqbroker 3 "SYNC_FLUSH ASYNC_FLUSH"
# Each run: a fresh store under $TMPDIR, 2 shards (the machine's CPUs), disk thresholds near
# 100 % (a shared disk's usage is not the broker's), then `ferromq-bench produce` with 4
# connections x 16 in flight, 1 KiB messages, 8 s, reading the broker's CPU clock (--pid).
set -euo pipefail
old=${1:?old mqbroker binary}
new=${2:?new mqbroker binary}
rounds=${3:-3}
flush_types=${4:-"SYNC_FLUSH ASYNC_FLUSH"}
bench=$(dirname "$0")/../target/release/ferromq-bench
store=${TMPDIR:-/tmp}/ferromq-ab-store
log=${TMPDIR:-/tmp}/ferromq-ab-broker.log
. "$(dirname "$0")/ab_common.sh"

run() { # label binary flush_type
    ab_start_broker "$2" "$store" "$log" 21911 29877 --set flushDiskType="$3"
    local out
    out=$("$bench" produce --broker 127.0.0.1:21911 --pid "$AB_BROKER_PID" --connections 4 --in-flight 16 --duration-secs 8 2>&1)
    echo "$1 $3: $(ab_summary "$out" | sed -E 's/, generator.*//')"
    ab_stop_broker
}

for round in $(seq 1 "$rounds"); do
    for flush in $flush_types; do
        run "round $round old" "$old" "$flush"
        run "round $round new" "$new" "$flush"
    done
done
rm -rf "$store"
