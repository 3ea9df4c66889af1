#!/usr/bin/env bash
# Runs one of the deployment layouts of tuning/conf/ on this host, for trying it out: one
# mqnamesrv and the layout's brokers, each with its own ports and store under one base
# directory. See tuning/conf/README.md.
#
#   tuning/cluster.sh start LAYOUT [--base-dir DIR] [--port-offset N] [--toml] [--set KEY=VALUE]...
#   tuning/cluster.sh stop   [--base-dir DIR] [--timeout SECONDS]
#   tuning/cluster.sh status [--base-dir DIR]
#   tuning/cluster.sh layouts
#
# The brokers run the layout's files as they are (`mqbroker -c FILE`); only the store
# (storePathRootDir, storePathCommitLog) is moved to DIR/store/<broker>, and with
# --port-offset N every port (name server, listenPort, haListenPort) is shifted by N, all
# through mqbroker's `--set KEY=VALUE` overrides; `--set` passes further overrides to every
# broker. Logs: DIR/logs/<process>.log; pids: DIR/pids/<process>.pid.
#
# Binaries: $FERROMQ_BIN_DIR if set, else target/release, else target/debug (of
# $CARGO_TARGET_DIR or the repository's target/), else `cargo build --release -p ferromq-core
# -p ferromq-namesrv` first.
#
# Masters start before their slaves; a slave learns its master from the name server and
# follows it (repl/: its log, topics, groups and offsets).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$SCRIPT_DIR")"
readonly SCRIPT_DIR REPO_DIR
readonly CONF_DIR="$SCRIPT_DIR/conf"
readonly NAMESRV_PORT=9876
readonly BOOT_TIMEOUT_S="${FERROMQ_BOOT_TIMEOUT_S:-120}"

base_dir="${FERROMQ_CLUSTER_DIR:-${TMPDIR:-/tmp}/ferromq-cluster}"
bin_dir=""
signalled_total=0

usage() {
    cat <<USAGE
usage: tuning/cluster.sh start LAYOUT [--base-dir DIR] [--port-offset N] [--toml] [--set KEY=VALUE]...
       tuning/cluster.sh stop   [--base-dir DIR] [--timeout SECONDS]
       tuning/cluster.sh status [--base-dir DIR]
       tuning/cluster.sh layouts
layouts: $(layout_list)
DIR: \$FERROMQ_CLUSTER_DIR, else \${TMPDIR:-/tmp}/ferromq-cluster (now $base_dir)
USAGE
    exit "${1:-2}"
}

die() {
    echo "cluster.sh: $*" >&2
    exit 2
}

layouts() {
    local dir
    for dir in "$CONF_DIR"/*/; do
        basename "$dir"
    done
}

layout_list() {
    layouts | paste -sd ' ' -
}

# The value of KEY in a properties file (the plain `key=value` lines of tuning/conf).
prop() {
    sed -n "s/^[[:space:]]*$2[[:space:]]*=[[:space:]]*//p" "$1" | tail -n 1
}

# The brokers of a layout, masters (brokerId=0) first so that slaves find them registered.
brokers_of() {
    local layout="$1" file id pass
    for pass in master slave; do
        for file in "$CONF_DIR/$layout"/*.properties; do
            id="$(prop "$file" brokerId)"
            if [[ ($pass == master && $id == 0) || ($pass == slave && $id != 0) ]]; then
                basename "$file" .properties
            fi
        done
    done
}

find_binaries() {
    if [[ -n "${FERROMQ_BIN_DIR:-}" ]]; then
        [[ -x "$FERROMQ_BIN_DIR/mqbroker" && -x "$FERROMQ_BIN_DIR/mqnamesrv" ]] ||
            die "FERROMQ_BIN_DIR=$FERROMQ_BIN_DIR lacks mqbroker or mqnamesrv"
        bin_dir="$FERROMQ_BIN_DIR"
        return
    fi
    local target="${CARGO_TARGET_DIR:-$REPO_DIR/target}" profile
    for profile in release debug; do
        if [[ -x "$target/$profile/mqbroker" && -x "$target/$profile/mqnamesrv" ]]; then
            bin_dir="$target/$profile"
            return
        fi
    done
    echo "no built mqbroker and mqnamesrv under $target: building them (release)"
    (cd "$REPO_DIR" && cargo build --release -p ferromq-core -p ferromq-namesrv)
    bin_dir="$target/release"
    [[ -x "$bin_dir/mqbroker" && -x "$bin_dir/mqnamesrv" ]] || die "the build left no mqbroker and mqnamesrv in $bin_dir"
}

pid_file() {
    echo "$base_dir/pids/$1.pid"
}

binary_of() {
    if [[ "$1" == namesrv ]]; then echo mqnamesrv; else echo mqbroker; fi
}

# Whether PID is a live process: it exists and is not a zombie (an exited child that its
# parent, init here, has not reaped yet).
alive() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ -n "$stat" && "${stat%% *}" != Z ]]
}

# The pid of a process this script started, if it still runs: the pid file's pid, provided
# that process is still the binary it was (a recycled pid is not ours).
running_pid() {
    local name="$1" file pid comm
    file="$(pid_file "$name")"
    [[ -f "$file" ]] || return 1
    pid="$(<"$file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
    [[ "$comm" == "$(binary_of "$name")" ]] || return 1
    alive "$pid" || return 1
    echo "$pid"
}

# The processes of the cluster in DIR, in start order (name server first).
processes() {
    [[ -f "$base_dir/cluster.env" ]] || return 0
    echo namesrv
    # shellcheck disable=SC1091,SC2086 # BROKERS, from cluster.env, is a space-separated list
    (source "$base_dir/cluster.env" && printf '%s\n' $BROKERS)
}

# Waits until NAME's log shows its boot line, or the process exits. 0: booted.
wait_for_boot() {
    local name="$1" pid="$2" line="$3" log="$base_dir/logs/$1.log" waited=0
    while ((waited < BOOT_TIMEOUT_S * 10)); do
        if grep -q -- "$line" "$log" 2>/dev/null; then
            return 0
        fi
        if ! alive "$pid"; then
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "  $name: no \"$line\" in $log after ${BOOT_TIMEOUT_S}s; it is still running (pid $pid)" >&2
    return 1
}

# A port of the layout is taken (another cluster, a broker on its default ports): say how to
# shift them.
address_hint() {
    if grep -q "Address already in use" "$1"; then
        echo "    a port is taken: stop what holds it, or shift every port with --port-offset N" >&2
    fi
}

cmd_start() {
    local layout="" offset=0 format=properties
    local -a extra=()
    while (($#)); do
        case "$1" in
            --base-dir) base_dir="${2:?--base-dir needs a directory}"; shift 2 ;;
            --port-offset) offset="${2:?--port-offset needs a number}"; shift 2 ;;
            --toml) format=toml; shift ;;
            --set) extra+=(--set "${2:?--set needs KEY=VALUE}"); shift 2 ;;
            -h | --help) usage 0 ;;
            -*) die "unknown option $1" ;;
            *) [[ -z "$layout" ]] || die "one layout at a time"; layout="$1"; shift ;;
        esac
    done
    [[ -n "$layout" ]] || die "start needs a layout: $(layout_list)"
    [[ -d "$CONF_DIR/$layout" ]] || die "no layout $layout in $CONF_DIR (have: $(layout_list))"
    if ! [[ "$offset" =~ ^[0-9]{1,5}$ ]] || ((10#$offset > 50000)); then
        die "--port-offset must be a number from 0 to 50000"
    fi
    offset=$((10#$offset))
    local name pid
    for name in $(processes); do
        if pid="$(running_pid "$name")"; then
            die "$name already runs from $base_dir (pid $pid): run '$0 stop --base-dir $base_dir' first"
        fi
    done
    find_binaries
    mkdir -p "$base_dir/logs" "$base_dir/pids" "$base_dir/store" "$base_dir/namesrv"
    base_dir="$(cd "$base_dir" && pwd)"
    rm -f "$base_dir"/pids/*.pid

    local -a brokers
    mapfile -t brokers < <(brokers_of "$layout")
    local ns_port=$((NAMESRV_PORT + offset))
    cat >"$base_dir/cluster.env" <<ENV
LAYOUT=$layout
PORT_OFFSET=$offset
NAMESRV_ADDR=127.0.0.1:$ns_port
BROKERS="${brokers[*]}"
ENV
    echo "layout $layout ($CONF_DIR/$layout, .$format files), binaries from $bin_dir"
    echo "in $base_dir: stores in store/, logs in logs/, pids in pids/"

    local started=0 failed=0
    (cd "$base_dir" && exec nohup "$bin_dir/mqnamesrv" --listen "127.0.0.1:$ns_port" \
        --kv-config-path "$base_dir/namesrv/kvConfig.json" </dev/null >"$base_dir/logs/namesrv.log" 2>&1) &
    pid=$!
    echo "$pid" >"$(pid_file namesrv)"
    if wait_for_boot namesrv "$pid" "The Name Server boot success"; then
        printf '  %-11s pid %-8s name server on 127.0.0.1:%s\n' namesrv "$pid" "$ns_port"
        started=$((started + 1))
    else
        echo "  namesrv     FAILED to start; last lines of $base_dir/logs/namesrv.log:" >&2
        tail -n 5 "$base_dir/logs/namesrv.log" | sed 's/^/    /' >&2
        if ! alive "$pid"; then rm -f "$(pid_file namesrv)"; fi
        address_hint "$base_dir/logs/namesrv.log"
        exit 1
    fi

    local file props role listen ha store log
    local -a args
    for name in "${brokers[@]}"; do
        file="$CONF_DIR/$layout/$name.$format"
        props="$CONF_DIR/$layout/$name.properties"
        role="$(prop "$props" brokerRole)"
        listen=$(($(prop "$props" listenPort) + offset))
        ha=$(($(prop "$props" haListenPort) + offset))
        store="$base_dir/store/$name"
        log="$base_dir/logs/$name.log"
        args=(-c "$file" --set "storePathRootDir=$store" --set "storePathCommitLog=$store/commitlog")
        if ((offset != 0)); then
            args+=(--set "namesrvAddr=127.0.0.1:$ns_port" --set "listenPort=$listen" --set "haListenPort=$ha")
        fi
        args+=("${extra[@]}")
        (cd "$base_dir" && exec nohup "$bin_dir/mqbroker" "${args[@]}" </dev/null >"$log" 2>&1) &
        pid=$!
        echo "$pid" >"$(pid_file "$name")"
        if wait_for_boot "$name" "$pid" "boot success"; then
            printf '  %-11s pid %-8s %s, listenPort %s, haListenPort %s\n' "$name" "$pid" "$role" "$listen" "$ha"
            started=$((started + 1))
        else
            printf '  %-11s FAILED to start; last lines of %s:\n' "$name" "$log" >&2
            tail -n 5 "$log" | sed 's/^/    /' >&2
            if ! alive "$pid"; then rm -f "$(pid_file "$name")"; fi
            address_hint "$log"
            failed=$((failed + 1))
        fi
    done
    echo "$started of $((${#brokers[@]} + 1)) processes running; stop them with: $0 stop --base-dir $base_dir"
    if ((failed > 0)); then
        exit 1
    fi
}

cmd_stop() {
    local timeout=30
    while (($#)); do
        case "$1" in
            --base-dir) base_dir="${2:?--base-dir needs a directory}"; shift 2 ;;
            --timeout) timeout="${2:?--timeout needs seconds}"; shift 2 ;;
            -h | --help) usage 0 ;;
            *) die "unknown argument $1" ;;
        esac
    done
    [[ "$timeout" =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"
    if [[ ! -f "$base_dir/cluster.env" ]]; then
        echo "no cluster in $base_dir"
        return 0
    fi
    # Brokers first, slaves before masters, each unregistering from the name server as it
    # stops; the name server last.
    local -a brokers
    mapfile -t brokers < <(processes | grep -vx namesrv | tac)
    local left=0
    signalled_total=0
    stop_group "$timeout" "${brokers[@]}" || left=1
    stop_group "$timeout" namesrv || left=1
    if ((signalled_total == 0)); then
        echo "nothing running from $base_dir"
    fi
    if ((left > 0)); then
        exit 1
    fi
}

# Sends SIGTERM to each named process that still runs, waits up to TIMEOUT seconds for them
# all, and reports each. 1: some still run.
stop_group() {
    local timeout="$1" name pid entry running left=0 waited=0
    shift
    local -a signalled=()
    for name in "$@"; do
        if pid="$(running_pid "$name")"; then
            kill -TERM "$pid"
            signalled+=("$name:$pid")
        elif [[ -f "$(pid_file "$name")" ]]; then
            printf '  %-11s not running\n' "$name"
            rm -f "$(pid_file "$name")"
        fi
    done
    ((${#signalled[@]} > 0)) || return 0
    signalled_total=$((signalled_total + ${#signalled[@]}))
    while :; do
        running=0
        for entry in "${signalled[@]}"; do
            if alive "${entry#*:}"; then running=$((running + 1)); fi
        done
        ((running > 0 && waited < timeout * 5)) || break
        sleep 0.2
        waited=$((waited + 1))
    done
    for entry in "${signalled[@]}"; do
        name="${entry%%:*}"
        pid="${entry#*:}"
        if alive "$pid"; then
            printf '  %-11s pid %-8s still running %ss after SIGTERM (log %s); kill -9 %s forces it\n' \
                "$name" "$pid" "$timeout" "$base_dir/logs/$name.log" "$pid" >&2
            left=$((left + 1))
        else
            printf '  %-11s pid %-8s stopped\n' "$name" "$pid"
            rm -f "$(pid_file "$name")"
        fi
    done
    ((left == 0))
}

# Writes N as a big-endian int32.
be32() {
    printf '%b' "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))"
    printf '%b' "\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"
}

# Reads a big-endian int32 from fd 3.
read_be32() {
    local -a b
    read -r -a b < <(timeout 5 head -c 4 <&3 | od -An -tu1)
    ((${#b[@]} == 4)) || return 1
    echo $(((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]))
}

# Prints the brokers the name server on 127.0.0.1:PORT lists: GET_BROKER_CLUSTER_INFO (106),
# one request frame with a JSON header, one response frame (PROTOCOL.md §1.2, §4.3).
cluster_info() {
    local port="$1" header len word hlen body entry broker addrs
    header='{"code":106,"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":479}'
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    { be32 $((4 + ${#header})); be32 "${#header}"; printf '%s' "$header"; } >&3
    len="$(read_be32)" || return 1
    word="$(read_be32)" || return 1
    hlen=$((word & 0xFFFFFF))
    timeout 5 head -c "$hlen" <&3 >/dev/null
    body="$(timeout 5 head -c $((len - 4 - hlen)) <&3)"
    exec 3<&-
    # {"brokerAddrTable":{"broker-a":{"brokerAddrs":{"0":"10.0.0.5:10911"},"brokerName":"broker-a",...
    while read -r entry; do
        broker="$(sed -n 's/.*"brokerName":"\([^"]*\)".*/\1/p' <<<"$entry")"
        addrs="$(sed -n 's/^"brokerAddrs":{\([^}]*\)}.*/\1/p' <<<"$entry" | sed 's/"\([0-9]*\)":"\([^"]*\)"/id \1 at \2/g; s/,/, /g')"
        printf '  %-11s %s\n' "$broker" "$addrs"
    done < <(grep -o '"brokerAddrs":{[^}]*},"brokerName":"[^"]*"' <<<"$body")
}

cmd_status() {
    while (($#)); do
        case "$1" in
            --base-dir) base_dir="${2:?--base-dir needs a directory}"; shift 2 ;;
            -h | --help) usage 0 ;;
            *) die "unknown argument $1" ;;
        esac
    done
    if [[ ! -f "$base_dir/cluster.env" ]]; then
        echo "no cluster in $base_dir"
        exit 3
    fi
    local LAYOUT PORT_OFFSET NAMESRV_ADDR BROKERS
    # shellcheck disable=SC1091
    source "$base_dir/cluster.env"
    echo "layout $LAYOUT in $base_dir (port offset $PORT_OFFSET, name server $NAMESRV_ADDR, brokers $BROKERS)"
    local name pid running=0 total=0
    for name in $(processes); do
        total=$((total + 1))
        if pid="$(running_pid "$name")"; then
            printf '  %-11s running  pid %-8s log %s\n' "$name" "$pid" "$base_dir/logs/$name.log"
            running=$((running + 1))
        else
            printf '  %-11s stopped           log %s\n' "$name" "$base_dir/logs/$name.log"
        fi
    done
    if running_pid namesrv >/dev/null; then
        echo "the name server lists (GET_BROKER_CLUSTER_INFO; id 0 = master):"
        cluster_info "${NAMESRV_ADDR##*:}" || echo "  (no answer from $NAMESRV_ADDR)"
    fi
    if ((running < total)); then
        exit 1
    fi
}

main() {
    (($#)) || usage
    local command="$1"
    shift
    case "$command" in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        layouts) layouts ;;
        -h | --help | help) usage 0 ;;
        *) die "unknown command $command (start, stop, status, layouts)" ;;
    esac
}

main "$@"
