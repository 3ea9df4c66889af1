#!/bin/bash
# perf of one produce point: C F OUT [CG]
set -euo pipefail
C=$1; F=$2; OUT=$3
mkdir -p $OUT
S=$(mktemp -d /tmp/fmq-u-XXXX)
FERROMQ_IO_BACKEND=${BK:-epoll} ${BIN:-/work/bench-bin/now}/mqbroker --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 2>$OUT/broker.log & PID=$!
sleep 2
${BIN:-/work/bench-bin/now}/ferromq-bench produce --broker 127.0.0.1:23911 --connections $C --in-flight $F --duration-secs 8 --warmup-ms 1000 --pid $PID > $OUT/produce.txt 2>&1 & P=$!
sleep 3
perf record -q -F 1999 -e cpu-clock ${CG:---call-graph dwarf,8192} -p $PID -o $OUT/perf.data -- sleep 4 2>/dev/null
wait $P; kill $PID; wait $PID || true; rm -rf $S
grep -E "^produce:|^cpu:" $OUT/produce.txt | cut -c1-110
perf report -i $OUT/perf.data --no-children --sort dso --stdio -g none 2>/dev/null | grep -v "^#" | grep -v "^$" | head -8
