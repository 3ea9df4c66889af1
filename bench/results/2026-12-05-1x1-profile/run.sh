#!/bin/bash
# Where the broker's CPU goes per send today, at one send in flight and at 4 × 64: closed-loop
# produce (1 KiB, 8 queues, ASYNC_FLUSH, 2 shards, io_uring) against a release broker, with the
# affinities owner / cross / any, then perf (cpu-clock, frame-pointer call graphs: kernel stacks
# resolve, the broker's own frames mostly do not) during a 9 s owner-affinity run.
# Usage: [C=conns F=in_flight AFFS="owner cross any"] run.sh BIN OUT [--set KEY=VALUE ...]
#   1x1/:  run.sh /work/bench-bin/now OUT          (AFFS= for the perf run alone)
#   4x64/: C=4 F=64 AFFS=any run.sh /work/bench-bin/now OUT
# callers.txt: perf report -i OUT/perf.data --no-children --stdio -G --percent-limit 2
set -euo pipefail
BIN=$1; OUT=$2; shift 2
mkdir -p "$OUT"
S=$(mktemp -d /tmp/fmq-p11-XXXX)
"$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 "$@" \
    2> "$S/broker.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; cp $S/perf.data $OUT/ 2>/dev/null; rm -rf "$S"' EXIT
sleep 2
for aff in ${AFFS-owner cross any}; do
"$BIN/ferromq-bench" produce --broker 127.0.0.1:23911 --connections ${C:-1} --in-flight ${F:-1} \
    --duration-secs 5 --warmup-ms 1000 --pid "$PID" --affinity $aff > "$OUT/produce-$aff.txt" 2>&1
done
"$BIN/ferromq-bench" produce --broker 127.0.0.1:23911 --connections ${C:-1} --in-flight ${F:-1} \
    --duration-secs 9 --warmup-ms 1000 --pid "$PID" --affinity ${PERF_AFFINITY:-owner} > "$OUT/produce-perf.txt" 2>&1 &
P=$!
sleep 3
perf record -q -F ${HZ:-999} -e cpu-clock ${CG:--g} -p "$PID" -o "$S/perf.data" -- sleep 5 2>/dev/null
wait $P
perf report -q -i "$S/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null > "$OUT/threads.txt"
perf report -q -i "$S/perf.data" --no-children --sort dso,symbol --stdio -g none --percent-limit 0.5 2>/dev/null | cut -c1-200 > "$OUT/symbols.txt"
perf report -q -i "$S/perf.data" --children --sort symbol --stdio -g none --percent-limit 1.5 2>/dev/null | cut -c1-170 > "$OUT/inclusive.txt"
