#!/usr/bin/env bash
# ACL on ÷ off in one sitting (issue 12): broker CPU per acknowledged send and throughput of one
# mqbroker build, `aclEnable=false` and `aclEnable=true` alternating per round, so the
# machine's drift hits both alike.
#
#   [SIGN_ALWAYS=1] bench/acl_ab.sh [MQBROKER] [ROUNDS] [IN_FLIGHT] [RATE]
#
# Each run: a fresh store under $TMPDIR, 2 shards, ASYNC_FLUSH, then `ferromq-bench produce`
# with 4 connections x IN_FLIGHT (default 64), 1 KiB messages, 8 s, reading the broker's CPU
# clock (--pid). Closed loop by default (as fast as the broker answers); with RATE, open loop at
# RATE messages/s, so both sides run at the same throughput: on 2 shared cores the broker's CPU
# per message grows as its throughput falls (smaller batches per wake-up), and the signing
# generator takes CPU from the broker, so only equal rates compare the check's own cost.
# With ACL on, the rules file has 50 filler accounts and the bench's account (admin, so that
# it may create BenchTopic, with a per-topic entry so that every send goes through the topic
# lookup too); the bench signs every request (HmacSHA1 over the extFields and
# the 1 KiB body) and the broker checks each one. SIGN_ALWAYS=1 makes the bench sign with ACL
# off too (the broker ignores the extra fields), so the generator's work is the same in both
# arms and a closed-loop difference is the broker's check alone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
broker=${1:-$root/target/release/mqbroker}
rounds=${2:-3}
in_flight=${3:-64}
rate=${4:-}
bench=$root/target/release/ferromq-bench
tmp=${TMPDIR:-/tmp}
store=$tmp/ferromq-acl-ab-store
log=$tmp/ferromq-acl-ab-broker.log
acl=$tmp/ferromq-acl-ab-plain_acl.yml
ak=bench-admin
sk=bench-admin-secret
. "$root/bench/ab_common.sh"

{
    echo "accounts:"
    for i in $(seq 1 50); do
        printf '  - accessKey: filler-%03d\n    secretKey: filler-secret-%d\n    topicPerms:\n      - T%d=PUB\n' "$i" "$i" "$i"
    done
    printf '  - accessKey: %s\n    secretKey: %s\n    admin: true\n    topicPerms:\n      - BenchTopic=PUB\n' "$ak" "$sk"
} >"$acl"

run() { # label acl(true|false)
    local acl_args=() sign_args=() load_args=()
    [ -n "$rate" ] && load_args=(--open-loop --rate "$rate")
    if [ "$2" = true ]; then
        acl_args=(--set aclEnable=true --set rocketmq.acl.plain.file="$acl" --set accessKey=$ak --set secretKey=$sk)
    fi
    if [ "$2" = true ] || [ "${SIGN_ALWAYS:-0}" = 1 ]; then
        sign_args=(--access-key $ak --secret-key $sk)
    fi
    ab_start_broker "$broker" "$store" "$log" 21921 29887 --set flushDiskType=ASYNC_FLUSH "${acl_args[@]}"
    local out
    out=$("$bench" produce --broker 127.0.0.1:21921 --pid "$AB_BROKER_PID" --connections 4 --in-flight "$in_flight" --duration-secs 8 "${load_args[@]}" "${sign_args[@]}" 2>&1) || {
        echo "$1: the bench failed: $out"
        tail -5 "$log"
    }
    echo "$1: $(ab_summary "$out")"
    ab_stop_broker
}

for round in $(seq 1 "$rounds"); do
    run "round $round acl=off" false
    run "round $round acl=on " true
done
if grep -q "ACL refused" "$log"; then
    echo "the last broker refused requests: $(grep -m1 'ACL refused' "$log")"
fi
rm -rf "$store" "$acl"
