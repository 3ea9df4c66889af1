#!/bin/bash
# Where the baseline broker's CPU goes: perf (software clock sampling, DWARF call graphs) on a
# broker with its defaults (2 shards, ASYNC_FLUSH, io_uring) under the suite's 4 × 64 load and
# under one producer with one send in flight. Run from the repository root after
# `cargo build --release --bins`; BIN = the folder with the broker under test.
set -euo pipefail
BIN=${BIN:-/work/baseline-bin/release}
B=./target/release/ferromq-bench
OUT=bench/results/2026-12-02/perf
S=$(mktemp -d /tmp/fmq-perf-XXXX)
"$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 \
    2> "$S/broker.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$S"' EXIT
sleep 2
for shape in 4x64 1x1; do
    conns=${shape%x*}; inflight=${shape#*x}
    "$B" produce --broker 127.0.0.1:23911 --connections "$conns" --in-flight "$inflight" \
        --duration-secs 9 --warmup-ms 1000 --pid "$PID" > "$OUT/produce-$shape.txt" 2>&1 &
    P=$!
    sleep 3
    perf record -q -F 499 -e cpu-clock --call-graph dwarf,16384 -p "$PID" -o "$S/perf-$shape.data" -- sleep 5
    wait $P
    # Threads; the hottest symbols (self time); the call paths that end in them (hottest
    # symbols first, each with the chains of its callers); inclusive time per function.
    perf report -q -i "$S/perf-$shape.data" --no-children --sort comm --stdio -g none 2>/dev/null > "$OUT/threads-$shape.txt"
    perf report -q -i "$S/perf-$shape.data" --no-children --sort dso,symbol --stdio -g none --percent-limit 0.3 2>/dev/null \
        | cut -c1-200 | sed 's/ *$//' > "$OUT/symbols-$shape.txt"
    perf report -q -i "$S/perf-$shape.data" --no-children --sort symbol --stdio -g callee,1,function,percent \
        --percent-limit 2 --max-stack 24 2>/dev/null | cut -c1-200 | sed 's/ *$//' > "$OUT/callers-$shape.txt"
    perf report -q -i "$S/perf-$shape.data" --children --sort symbol --stdio -g none --percent-limit 2 2>/dev/null \
        | cut -c1-170 | sed 's/ *- *- *$//; s/ *$//' > "$OUT/inclusive-$shape.txt"
done
