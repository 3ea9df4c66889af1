# What bench/ab.sh, bench/acl_ab.sh and bench/tls_ab.sh share (sourced, not run): starting one
# mqbroker on a fresh store for one measured run, and stopping it.
#
# The broker: a fresh store under $TMPDIR, the machine's shards (2 here), disk thresholds near
# 100 % (a shared disk's usage is not the broker's), 64 MiB commit-log segments, the embedded
# name server, listening on 127.0.0.1.

# ab_start_broker BINARY STORE LOG LISTEN_PORT NAMESRV_PORT [--set key=value ...]
# Starts it in the background, waits (at most 10 s) for its "The broker[" line, and sets
# AB_BROKER_PID.
ab_start_broker() {
    local binary=$1 store=$2 log=$3 port=$4 namesrv_port=$5
    shift 5
    rm -rf "$store" && mkdir -p "$store"
    "$binary" --set storePathRootDir="$store" --set listenPort="$port" --set embeddedNamesrvPort="$namesrv_port" \
        --set brokerIP1=127.0.0.1 --set diskSpaceWarningLevelRatio=99 --set diskSpaceCleanForciblyRatio=98 \
        --set diskMaxUsedSpaceRatio=95 --set mappedFileSizeCommitLog=67108864 "$@" >"$log" 2>&1 &
    AB_BROKER_PID=$!
    for _ in $(seq 1 100); do grep -q "The broker\[" "$log" && break; sleep 0.1; done
}

# ab_stop_broker: SIGTERM to the broker of ab_start_broker, and waits for it to exit.
ab_stop_broker() {
    kill -TERM "$AB_BROKER_PID" && wait "$AB_BROKER_PID" || true
}

# ab_summary OUTPUT: a bench run's result line and its CPU line, on one line.
ab_summary() {
    echo "$(grep -E '^(produce|consume[a-z-]*):' <<<"$1" | head -1 | sed -E 's/; 4 conns.*//') | $(grep -E '^cpu' <<<"$1")"
}
