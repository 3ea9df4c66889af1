#!/bin/bash
# Request tasks boxed before spawning and the write batch sized for its commit marker, before
# and after (issue 14: send CPU): ROUNDS x (BEFORE, AFTER) alternating, a fresh broker and
# store each, 4 x 64 sends of 1 KiB to 64 topics x 8 queues, a 2-s warm-up then a 10-s window,
# the broker's CPU per send from the generator's --pid report. BACKEND: epoll or io_uring.
# Usage: BACKEND=epoll ab.sh BEFORE AFTER [ROUNDS]   ($BEFORE/{mqbroker,ferromq-bench})
set -euo pipefail
BEFORE=$1; AFTER=$2; ROUNDS=${3:-3}; BACKEND=${BACKEND:-epoll}
for r in $(seq 1 "$ROUNDS"); do
    for arm in before after; do
        BIN=$BEFORE; [ $arm = after ] && BIN=$AFTER
        S=$(mktemp -d /tmp/fmq-sb-XXXX)
        FERROMQ_IO_BACKEND=$BACKEND "$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
            --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 2> /dev/null &
        B=$!
        for _ in $(seq 1 60); do ss -ltn | grep -q ":23911 " && break; sleep 0.5; done
        out=$("$BIN/ferromq-bench" produce --broker 127.0.0.1:23911 --connections 4 --in-flight 64 --topics 64 --queues 8 \
            --warmup-ms 2000 --duration-secs 10 --pid $B 2>&1)
        echo "$BACKEND round $r $arm: $(grep -E '^produce:' <<< "$out" | cut -c1-40) | $(grep -E '^cpu:' <<< "$out" | cut -c1-110)"
        kill $B; wait $B || true; rm -rf "$S"
    done
done
