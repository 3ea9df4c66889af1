#!/bin/bash
# Produce runs, plain and TLS alternating, against an epoll broker (tls.server.mode=permissive);
# prints the broker's read- and write-type system calls per acknowledged send (/proc/PID/io).
root=$(cd "$(dirname "$0")/../../.." && pwd); certs=$root/tests/fixtures/tls; store=/tmp/sysc-store
for mode in plain tls plain tls; do
rm -rf $store; mkdir -p $store
FERROMQ_IO_BACKEND=epoll $root/target/release/mqbroker --set storePathRootDir=$store --set listenPort=21951 --set embeddedNamesrvPort=29917 --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 --set diskMaxUsedSpaceRatio=95 --set mappedFileSizeCommitLog=67108864 --set flushDiskType=ASYNC_FLUSH --set tls.server.mode=permissive --set tls.server.certPath=$certs/server.pem --set tls.server.keyPath=$certs/server.key > /tmp/sysc.log 2>&1 &
pid=$!; sleep 1.5
a=$(awk '/syscr|syscw/{print $2}' /proc/$pid/io | paste -sd' ')
flag=(); [ $mode = tls ] && flag=(--tls)
out=$($root/target/release/ferromq-bench produce --broker 127.0.0.1:21951 --pid $pid --connections 4 --in-flight 64 --duration-secs 6 "${flag[@]}" 2>&1)
b=$(awk '/syscr|syscw/{print $2}' /proc/$pid/io | paste -sd' ')
n=$(grep -oE '^produce: [0-9]+' <<<"$out" | awk '{print $2*6}')
echo "$mode: $(grep -oE '^produce: [0-9]+ msg/s' <<<"$out") $(grep -oE 'broker [0-9.]+ µs/msg' <<<"$out") syscr/msg $(echo $a $b $n | awk '{printf "%.3f", ($3-$1)/$5}') syscw/msg $(echo $a $b $n | awk '{printf "%.3f", ($4-$2)/$5}')"
kill $pid; wait $pid
done
