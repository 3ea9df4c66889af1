#!/bin/bash
# Metrics on ÷ off (bench/RESULTS.md, 2026-12-03): the same release mqbroker started fresh with
# metricsExporterType=DISABLE and =PROM, alternating, ROUNDS times; each run produces 1 KiB
# messages at 4 connections × 64 in flight for DUR seconds, then consumes the backlog (catch-up)
# for DUR seconds. With PROM a scraper GETs /metrics every second during both windows
# (SCRAPE_INTERVAL, default 1 s; Prometheus scrapes every 15 s by default). The broker's CPU per
# message comes from its process CPU clock (--pid). Raw JSON per run beside this script.
set -euo pipefail
BIN=${BIN:-target/release}
OUT=${OUT:-bench/results/2026-12-03-metrics}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-8}
SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-1}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
run() {
    local mode=$1 round=$2
    local dir port nport mport
    pid=""; scraper=""
    dir=$(mktemp -d /tmp/ferromq-metrics-bench.XXXXXX)
    port=$(free_port); nport=$(free_port); mport=$(free_port)
    local metrics=(--set metricsExporterType=DISABLE)
    [ "$mode" = on ] && metrics=(--set metricsExporterType=PROM --set metricsPromExporterPort="$mport")
    "$BIN/mqbroker" --set storePathRootDir="$dir" --set listenPort="$port" --set embeddedNamesrvPort="$nport" \
        --set brokerIP1=127.0.0.1 --set haListenPort="$(free_port)" --set fastListenPortEnable=false --set diskMaxUsedSpaceRatio=95 \
        --set diskSpaceCleanForciblyRatio=98 --set diskSpaceWarningLevelRatio=99 "${metrics[@]}" 2> "$OUT/broker-$mode-$round.log" &
    pid=$!
    trap 'kill ${pid:-} ${scraper:-} 2>/dev/null || true' EXIT
    # The broker's own line (the embedded name server logs a "boot success" first).
    for _ in $(seq 100); do grep -q "The broker\[.*boot success" "$OUT/broker-$mode-$round.log" && break; sleep 0.1; done
    if [ "$mode" = on ]; then
        ( while sleep "$SCRAPE_INTERVAL"; do curl -s -o /dev/null "http://127.0.0.1:$mport/metrics" || true; done ) &
        scraper=$!
    fi
    "$BIN/ferromq-bench" produce --broker "127.0.0.1:$port" --connections 4 --in-flight 64 --message-bytes 1024 \
        --duration-secs "$DUR" --pid "$pid" --json "$OUT/produce-$mode-$round.json" > "$OUT/produce-$mode-$round.txt"
    "$BIN/ferromq-bench" consume --broker "127.0.0.1:$port" --catch-up --duration-secs "$DUR" --pid "$pid" \
        --json "$OUT/consume-$mode-$round.json" > "$OUT/consume-$mode-$round.txt"
    [ -n "$scraper" ] && kill "$scraper"
    [ "$mode" = on ] && curl -s "http://127.0.0.1:$mport/metrics" > "$OUT/scrape-$round.txt"
    kill -TERM "$pid"; wait "$pid" || true
    rm -rf "$dir"
}
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then run off "$round"; run on "$round"; else run on "$round"; run off "$round"; fi
done
