source /tmp/fb/run.sh
date -u
df -h / | tail -1
start_broker s1 SYNC_FLUSH 1
prod t1-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500
stop_broker
start_broker s2 SYNC_FLUSH 2
prod t2-owner-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500 --affinity owner --pid $BPID
prod t2-cross-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500 --affinity cross --pid $BPID
prod t2-any-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500
prod t2-owner-1x1 --connections 1 --in-flight 1 --duration-secs 4 --warmup-ms 300 --affinity owner --pid $BPID
prod t2-cross-1x1 --connections 1 --in-flight 1 --duration-secs 4 --warmup-ms 300 --affinity cross --pid $BPID
stop_broker
start_broker a2 ASYNC_FLUSH 2
prod ta2-owner-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500 --affinity owner --pid $BPID
prod ta2-cross-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500 --affinity cross --pid $BPID
stop_broker
date -u
