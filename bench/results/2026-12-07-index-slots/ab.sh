#!/bin/bash
# Index slot writes, before and after (issue 14 note "the index doubles the bytes written"):
# bytes the broker writes per send (/proc/PID/io: write_bytes = bytes sent to storage, wchar =
# bytes passed to write calls) and the broker's CPU per send (/proc/PID/stat, all threads), with
# the index on and a unique key per message (the generator's UNIQ_KEY): 4 x 64, 1 KiB, 64
# topics x 8 queues, 200,000 sends after a 20,000-send warm-up, ROUNDS x (BEFORE, AFTER)
# alternating on fresh stores, epoll. A probe of the machine first.
# Usage: ab.sh BEFORE AFTER [ROUNDS]
set -euo pipefail
BEFORE=$1; AFTER=$2; ROUNDS=${3:-3}
"$AFTER/ferromq-bench" probe 2>&1 | grep -E "fdatasync|RTT|rtt" | head -4 || true
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
for r in $(seq 1 "$ROUNDS"); do
    for arm in before after; do
        BIN=$BEFORE; [ $arm = after ] && BIN=$AFTER
        S=$(mktemp -d /tmp/fmq-ixs-XXXX)
        FERROMQ_IO_BACKEND=epoll "$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
            --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 2> /dev/null &
        B=$!
        for _ in $(seq 1 60); do ss -ltn | grep -q ":23911 " && break; sleep 0.5; done
        common=(--broker 127.0.0.1:23911 --connections 4 --in-flight 64 --topics 64 --queues 8 --warmup-ms 0)
        "$BIN/ferromq-bench" produce "${common[@]}" --count 20000 > /dev/null 2>&1
        read -r w0 c0 < <(awk '/^write_bytes/{w=$2} /^wchar/{c=$2} END{print w, c}' /proc/$B/io)
        t0=$(ticks $B)
        rate=$("$BIN/ferromq-bench" produce "${common[@]}" --no-create-topic --count 200000 2>&1 | grep -E '^produce:' | cut -c1-60)
        t1=$(ticks $B)
        sleep 1.5
        read -r w1 c1 < <(awk '/^write_bytes/{w=$2} /^wchar/{c=$2} END{print w, c}' /proc/$B/io)
        echo "round $r $arm: write_bytes/send $(( (w1 - w0) / 200000 )), wchar/send $(( (c1 - c0) / 200000 )), broker CPU/send $(( (t1 - t0) * 1000000 / HZ / 200000 )) us | $rate"
        kill $B; wait $B || true; rm -rf "$S"
    done
done
