source /tmp/fb/run.sh
date -u
start_broker s1 SYNC_FLUSH 1
( perf stat -e task-clock,context-switches -p $BPID -- sleep 4 2> $R/perf-s1.txt ) & PP=$!
prod s1-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500
wait $PP; grep -E "task-clock|context|elapsed" $R/perf-s1.txt
stop_broker
start_broker s2 SYNC_FLUSH 2
prod s2-any-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500
prod s2-owner-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500 --affinity owner --pid $BPID
prod s2-cross-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500 --affinity cross --pid $BPID
prod s2-owner-1x1 --connections 1 --in-flight 1 --duration-secs 4 --warmup-ms 300 --affinity owner --pid $BPID
prod s2-cross-1x1 --connections 1 --in-flight 1 --duration-secs 4 --warmup-ms 300 --affinity cross --pid $BPID
stop_broker
start_broker a2 ASYNC_FLUSH 2
prod a2-owner-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500 --affinity owner --pid $BPID
prod a2-cross-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500 --affinity cross --pid $BPID
stop_broker
start_broker e1 SYNC_FLUSH 1 FERROMQ_IO_BACKEND=epoll
prod e1-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500
prod e1-1x1 --connections 1 --in-flight 1 --duration-secs 4 --warmup-ms 300
stop_broker
start_broker u1 SYNC_FLUSH 1
prod u1-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500
prod u1-1x1 --connections 1 --in-flight 1 --duration-secs 4 --warmup-ms 300
stop_broker
date -u
