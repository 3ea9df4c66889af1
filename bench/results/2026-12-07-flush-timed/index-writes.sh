#!/bin/bash
# Bytes the broker writes per send (/proc/PID/io: wchar = write syscalls, write_bytes = bytes
# sent to storage) with the index on and off: 4 x 64, 1 KiB, 64 topics x 8 queues, a unique
# key per message (the generator's UNIQ_KEY), 200,000 sends after a 20,000-send warm-up.
# Usage: index-writes.sh BIN
set -euo pipefail
BIN=$1
for index in true false; do
    S=$(mktemp -d /tmp/fmq-ix-XXXX)
    FERROMQ_IO_BACKEND=epoll "$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
        --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 \
        --set messageIndexEnable=$index 2> /dev/null &
    B=$!
    for _ in $(seq 1 60); do ss -ltn | grep -q ":23911 " && break; sleep 0.5; done
    common=(--broker 127.0.0.1:23911 --connections 4 --in-flight 64 --topics 64 --queues 8 --warmup-ms 0)
    "$BIN/ferromq-bench" produce "${common[@]}" --count 20000 > /dev/null 2>&1
    read -r w0 c0 < <(awk '/^write_bytes/{w=$2} /^wchar/{c=$2} END{print w, c}' /proc/$B/io)
    "$BIN/ferromq-bench" produce "${common[@]}" --no-create-topic --count 200000 > /dev/null 2>&1
    sleep 1.5
    read -r w1 c1 < <(awk '/^write_bytes/{w=$2} /^wchar/{c=$2} END{print w, c}' /proc/$B/io)
    echo "messageIndexEnable=$index: write_bytes per send $(( (w1 - w0) / 200000 )), wchar per send $(( (c1 - c0) / 200000 ))"
    kill $B; wait $B || true; rm -rf "$S"
done
