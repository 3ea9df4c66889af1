#!/bin/bash
# Usage: [BACKEND=epoll] syscalls.sh BIN OUT  (BIN: a directory with mqbroker and ferromq-bench)
# The broker under 4 x 64 closed-loop 1 KiB sends (ASYNC_FLUSH defaults, 2 shards); a 2-s perf
# trace of its socket, epoll, pwrite and eventfd system calls: counts and the sizes recvfrom returned.

BIN=$1; OUT=$2; mkdir -p $OUT
S=$(mktemp -d /tmp/fmq-rs-XXXX)
$BIN/mqbroker --set storePathRootDir="$S/store" --set listenPort=23911 --set embeddedNamesrvPort=23876 \
    --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 --set io.backend=${BACKEND:-epoll} 2> "$S/broker.log" &
PID=$!
sleep 2
$BIN/ferromq-bench produce --broker 127.0.0.1:23911 --connections 4 --in-flight 64 --duration-secs 6 --warmup-ms 1000 --pid $PID > $OUT/produce.txt 2>&1 &
P=$!
sleep 3
perf record -q -e syscalls:sys_exit_recvfrom -e syscalls:sys_exit_sendmsg -e syscalls:sys_exit_sendto -e syscalls:sys_exit_epoll_pwait -e syscalls:sys_exit_epoll_ctl -e syscalls:sys_exit_pwrite64 -e syscalls:sys_exit_write -p $PID -o $OUT/sys.data -- sleep 2 2>/dev/null
wait $P
kill $PID; wait $PID; rm -rf $S
perf script -i $OUT/sys.data 2>/dev/null | awk '{for(i=1;i<=NF;i++) if($i ~ /^syscalls:/){ev=$i}; print ev, $NF}' > $OUT/rets.txt
python3 - $OUT <<'PY'
import sys,collections
out=sys.argv[1]
c=collections.Counter(); sizes=[]
for l in open(out+'/rets.txt'):
    ev,ret=l.split()[0],l.split()[-1]
    c[ev]+=1
    if 'recvfrom' in ev:
        try: sizes.append(int(ret,16) if ret.startswith('0x') else int(ret))
        except: pass
print(c)
import statistics
pos=[s for s in sizes if s>0 and s<1<<40]
print('recv n',len(sizes),'positive',len(pos),'mean',statistics.mean(pos) if pos else 0)
h=collections.Counter(min(s//1024,16) for s in pos)
print(sorted(h.items()))
PY
grep -E "^produce:|^cpu:" $OUT/produce.txt
