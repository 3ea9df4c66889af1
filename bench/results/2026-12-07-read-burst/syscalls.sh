#!/bin/bash
# System calls per send: the broker under 4 x 64 closed-loop 1 KiB sends (ASYNC_FLUSH defaults,
# 2 shards); a 2-s perf trace of its socket, epoll, pwrite and eventfd (write) system calls.
# Prints the count of each, and the sizes recvfrom returned (how many, how many succeeded, their
# mean, and a histogram in KiB buckets, 16 = 16 KiB or more). Per send: divide by the produce
# rate x 2 s.
# Usage: [BACKEND=epoll] syscalls.sh BIN OUT  (BIN: a directory with mqbroker and ferromq-bench)
set -euo pipefail
BIN=$1; OUT=$2; mkdir -p "$OUT"
S=$(mktemp -d /tmp/fmq-rs-XXXX)
"$BIN/mqbroker" --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 \
    --set io.backend="${BACKEND:-epoll}" 2> "$S/broker.log" &
PID=$!
sleep 2
"$BIN/ferromq-bench" produce --broker 127.0.0.1:23911 --connections 4 --in-flight 64 --duration-secs 6 \
    --warmup-ms 1000 --pid $PID > "$OUT/produce.txt" 2>&1 &
P=$!
sleep 3
perf record -q -e syscalls:sys_exit_recvfrom -e syscalls:sys_exit_sendmsg -e syscalls:sys_exit_sendto \
    -e syscalls:sys_exit_epoll_pwait -e syscalls:sys_exit_epoll_ctl -e syscalls:sys_exit_pwrite64 \
    -e syscalls:sys_exit_write -p $PID -o "$OUT/sys.data" -- sleep 2 2>/dev/null
wait $P
kill $PID; wait $PID || true; rm -rf "$S"
perf script -i "$OUT/sys.data" 2>/dev/null | awk '{for(i=1;i<=NF;i++) if($i ~ /^syscalls:/){ev=$i}; print ev, $NF}' > "$OUT/rets.txt"
python3 - "$OUT" <<'PY'
import collections, statistics, sys
out = sys.argv[1]
counts = collections.Counter()
sizes = []
for line in open(out + '/rets.txt'):
    event, ret = line.split()[0], line.split()[-1]
    counts[event] += 1
    if 'recvfrom' in event:
        try:
            sizes.append(int(ret, 16) if ret.startswith('0x') else int(ret))
        except ValueError:
            pass
print(counts)
read = [s for s in sizes if 0 < s < 1 << 40]  # negative returns (EAGAIN) print as huge hex
print('recv n', len(sizes), 'positive', len(read), 'mean', statistics.mean(read) if read else 0)
print(sorted(collections.Counter(min(s // 1024, 16) for s in read).items()))
PY
grep -E "^produce:|^cpu:" "$OUT/produce.txt"
