source /tmp/fb/run.sh
date -u
start_broker sync1b SYNC_FLUSH 1
$B rss --broker 127.0.0.1:20911 --pid $BPID --connections 1000 --send heartbeat --json $R/rss-hb.json 2>/dev/null
$B rss --broker 127.0.0.1:20911 --pid $BPID --connections 1000 --send none --json $R/rss-none-after-hb.json 2>/dev/null
prod sync1b-4x16 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500
echo "### e2e"; $B e2e --broker 127.0.0.1:20911 --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 500 --json $R/e2e-sync1.json 2>$R/e2e-sync1.progress
echo "### e2e single producer"; $B e2e --broker 127.0.0.1:20911 --connections 1 --in-flight 1 --duration-secs 5 --warmup-ms 500 --json $R/e2e-1x1-sync1.json 2>/dev/null
echo "### e2e open loop 2000/s"; $B e2e --broker 127.0.0.1:20911 --connections 2 --in-flight 1024 --open-loop --rate 2000 --duration-secs 5 --warmup-ms 500 --json $R/e2e-open-sync1.json 2>/dev/null
echo "### tail + producer"
$B consume --tail --broker 127.0.0.1:20911 --duration-secs 6 --json $R/tail-sync1.json 2>$R/tail-sync1.progress > $R/tail-sync1.out &
CP=$!; sleep 0.5
prod sync1b-withtail --connections 4 --in-flight 16 --duration-secs 5 --warmup-ms 300
wait $CP; cat $R/tail-sync1.out
echo "### tail + oneway producer"
$B consume --tail --broker 127.0.0.1:20911 --duration-secs 6 --json $R/tail-oneway.json 2>/dev/null > $R/tail-oneway.out &
CP=$!; sleep 0.5
prod sync1b-oneway-withtail --connections 4 --send-mode oneway --duration-secs 5 --warmup-ms 300
wait $CP; cat $R/tail-oneway.out
echo "### catch-up"; $B consume --catch-up --broker 127.0.0.1:20911 --duration-secs 10 --json $R/catchup-sync1.json 2>/dev/null
stop_broker
date -u
