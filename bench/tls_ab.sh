#!/usr/bin/env bash
# TLS ÷ plain in one sitting (issue 12): broker CPU per message and throughput of one mqbroker
# build with `tls.server.mode=permissive` (TLS and plain clients on one port): a plain client, a
# TLS client with kernel TLS (`tlsKernelOffload=true`, the default) and one with TLS in user
# space (`tlsKernelOffload=false`) alternating per round, so the machine's drift hits all alike.
#
#   [PRODUCE_SECS=8] bench/tls_ab.sh [MQBROKER] [ROUNDS] [IN_FLIGHT]
#
# Each run: a fresh store under $TMPDIR, 2 shards, ASYNC_FLUSH, then
#   1. `ferromq-bench produce`, 4 connections x IN_FLIGHT (default 64), 1 KiB, PRODUCE_SECS, and
#   2. `ferromq-bench consume --catch-up` of that whole backlog (8 queues, 32 per pull, one pull
#      in flight per queue, 2 connections),
# both reading the broker's CPU clock (--pid), both over TLS (--tls / --consumer-tls) or both
# plain. On a plain connection and on a kernel TLS one a pull's body goes out with sendfile; on a
# user-space TLS one it is read into memory and encrypted (net/src/ktls.rs, net/src/tls.rs), so
# the consume figures compare zero-copy with the copy path. Where the kernel has no TLS, the
# kernel arm runs in user space too: the broker's log line says which (printed per run). The
# certificate is the test fixture's (tests/fixtures/tls/server.pem, ECDSA P-256); rustls picks
# TLS 1.3 with AES-256-GCM. tests/ktls-vm/run.sh runs this script in a guest with kernel TLS.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
broker=${1:-$root/target/release/mqbroker}
rounds=${2:-3}
in_flight=${3:-64}
bench=$root/target/release/ferromq-bench
tmp=${TMPDIR:-/tmp}
store=$tmp/ferromq-tls-ab-store
log=$tmp/ferromq-tls-ab-broker.log
certs=$root/tests/fixtures/tls
. "$root/bench/ab_common.sh"

run() { # label tls(plain|kernel|user)
    local produce_tls=() consume_tls=() offload=true
    if [ "$2" != plain ]; then
        produce_tls=(--tls)
        consume_tls=(--consumer-tls)
    fi
    [ "$2" = user ] && offload=false
    ab_start_broker "$broker" "$store" "$log" 21931 29897 --set flushDiskType=ASYNC_FLUSH \
        --set tls.server.mode=permissive --set tls.server.certPath="$certs/server.pem" --set tls.server.keyPath="$certs/server.key" \
        --set tlsKernelOffload="$offload"
    [ "$2" != plain ] && echo "$1: $(grep -o 'TLS on the listeners.*' "$log" | head -1 | cut -c1-150)"
    local out
    out=$("$bench" produce --broker 127.0.0.1:21931 --pid "$AB_BROKER_PID" --connections 4 --in-flight "$in_flight" --duration-secs "${PRODUCE_SECS:-8}" "${produce_tls[@]}" 2>&1) || {
        echo "$1: the produce bench failed: $out"
        tail -5 "$log"
    }
    echo "$1: $(ab_summary "$out")"
    out=$("$bench" consume --catch-up --broker 127.0.0.1:21931 --pid "$AB_BROKER_PID" --consumer-connections 2 --duration-secs 60 "${consume_tls[@]}" 2>&1) || {
        echo "$1: the consume bench failed: $out"
        tail -5 "$log"
    }
    echo "$1: $(ab_summary "$out")"
    ab_stop_broker
}

for round in $(seq 1 "$rounds"); do
    run "round $round plain     " plain
    run "round $round tls kernel" kernel
    run "round $round tls user  " user
done
rm -rf "$store"
