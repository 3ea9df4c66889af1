#!/bin/bash
# Resident memory of one broker build: idle after start, after 200,000 sends to 64 topics, 5 s
# later, and after 100,000 more to 2,000 topics (VmRSS / VmHWM, kB). Usage: rss.sh BIN GEN_BIN
set -euo pipefail
BIN=$1; GEN=$2
S=$(mktemp -d)
FERROMQ_IO_BACKEND=epoll "$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 2>/dev/null &
B=$!
sleep 1.5
rss() { grep -E "VmRSS|VmHWM" /proc/$B/status | awk '{printf "%s %s  ", $1, $2}'; }
echo "idle: $(rss)"
common=(--broker 127.0.0.1:23911 --connections 4 --in-flight 64 --queues 8 --warmup-ms 0)
"$GEN/ferromq-bench" produce "${common[@]}" --topics 64 --count 200000 > /dev/null 2>&1
echo "after 200k sends, 64 topics: $(rss)"
sleep 5
echo "5 s later: $(rss)"
"$GEN/ferromq-bench" produce "${common[@]}" --topics 2000 --count 100000 > /dev/null 2>&1
echo "after 100k sends, 2000 topics: $(rss)"
kill $B; wait $B || true; rm -rf "$S"
