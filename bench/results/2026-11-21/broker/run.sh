#!/bin/bash
# usage: run.sh (env: B bench binary, M broker)
set -u
B=/work/main/target-bench/release/ferromq-bench
M=/work/main/target-bench/release/mqbroker
R=/tmp/fb/r
flushes() { awk '{print $16}' /sys/block/vda/stat; }
start_broker() { # name flush shards [env]
  local name=$1 flush=$2 shards=$3; shift 3
  rm -rf /tmp/fb/store-$name
  env "$@" $M --set storePathRootDir=/tmp/fb/store-$name --set listenPort=20911 --set embeddedNamesrvPort=29876 \
     --set brokerIP1=127.0.0.1 --set flushDiskType=$flush --set shards=$shards --set mappedFileSizeCommitLog=268435456 > $R/broker-$name.log 2>&1 &
  BPID=$!
  for i in $(seq 50); do grep -q "boot success. serializeType=JSON local_addr=0.0.0.0" $R/broker-$name.log && break; sleep 0.1; done
  grep "broker\[" $R/broker-$name.log
}
stop_broker() { kill $BPID; wait $BPID 2>/dev/null; rm -rf /tmp/fb/store-*; }
prod() { # name args...
  local name=$1; shift
  local f0=$(flushes)
  echo "### $name: produce $*"
  $B produce --broker 127.0.0.1:20911 --json $R/$name.json "$@" 2>$R/$name.progress
  echo "disk flushes during run: $(( $(flushes) - f0 ))"
}
