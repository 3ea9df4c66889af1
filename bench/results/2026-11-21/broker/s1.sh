source /tmp/fb/run.sh
date -u
echo "### probe"; $B probe --fsync-count 300 --write-mib 64 --batch-bytes 4096,65536,262144 --batch-ms 500 --rtt-count 3000 --sendfile-mib 64 --json $R/probe.json
start_broker sync1 SYNC_FLUSH 1
prod sync1-1x1 --connections 1 --in-flight 1 --duration-secs 5 --warmup-ms 500
prod sync1-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500
prod sync1-16x16 --connections 16 --in-flight 16 --duration-secs 5 --warmup-ms 500
prod sync1-batch16 --connections 4 --in-flight 4 --batch 16 --duration-secs 5 --warmup-ms 500
prod sync1-oneway --connections 4 --send-mode oneway --duration-secs 5 --warmup-ms 500
prod sync1-open5k --connections 4 --in-flight 1024 --open-loop --rate 5000 --duration-secs 5 --warmup-ms 500
echo "### e2e"; $B e2e --broker 127.0.0.1:20911 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500 --json $R/e2e-sync1.json 2>$R/e2e-sync1.progress
echo "### e2e open loop 2000/s"; $B e2e --broker 127.0.0.1:20911 --connections 2 --in-flight 1024 --open-loop --rate 2000 --duration-secs 5 --warmup-ms 500 --json $R/e2e-open-sync1.json 2>$R/e2e-open-sync1.progress
echo "### catch-up"; $B consume --catch-up --broker 127.0.0.1:20911 --duration-secs 10 --json $R/catchup-sync1.json 2>$R/catchup-sync1.progress
echo "### catch-up batch 256"; $B consume --catch-up --pull-batch 256 --broker 127.0.0.1:20911 --duration-secs 10 --json $R/catchup256-sync1.json 2>$R/catchup256.progress
echo "### tail + producer"
$B consume --tail --broker 127.0.0.1:20911 --duration-secs 6 --json $R/tail-sync1.json 2>$R/tail-sync1.progress > $R/tail-sync1.out &
CP=$!; sleep 0.5
prod sync1-withtail --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 300
wait $CP; cat $R/tail-sync1.out
echo "### rss"; $B rss --broker 127.0.0.1:20911 --pid $BPID --connections 1000 --send none --json $R/rss-none.json 2>/dev/null
$B rss --broker 127.0.0.1:20911 --pid $BPID --connections 1000 --send heartbeat --json $R/rss-hb.json 2>/dev/null
stop_broker
start_broker async1 ASYNC_FLUSH 1
prod async1-1x1 --connections 1 --in-flight 1 --duration-secs 5 --warmup-ms 500
prod async1-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500
prod async1-16x16 --connections 16 --in-flight 16 --duration-secs 5 --warmup-ms 500
echo "### catch-up async"; $B consume --catch-up --broker 127.0.0.1:20911 --duration-secs 10 --json $R/catchup-async1.json 2>/dev/null
stop_broker
date -u
