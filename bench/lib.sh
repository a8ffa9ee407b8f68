# shellcheck shell=bash
# Output variables (FG_REDIS_URL, FG_DATABASE_URL, ...) are read by the sourcing script.
# shellcheck disable=SC2034
# Helpers shared by bench/*.sh and scripts/run.sh: free ports, private
# redis-server and PostgreSQL, the gateway and worker, readiness polling with
# deadlines (never a fixed sleep), and one cleanup trap that stops everything
# the script started, newest first.
#
# Usage:  source "$root/bench/lib.sh"; fg_init [state-dir]
# fg_init makes $FG_TMP (a private temp dir, or the given state dir) and
# installs the EXIT/INT/TERM trap.  Processes started through fg_spawn (and the
# fg_start_* helpers built on it) are stopped by fg_cleanup: SIGTERM, a grace
# period, then SIGKILL.  PostgreSQL is stopped with `pg_ctl stop -m fast`.

FG_ROOT=${FG_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
FG_PIDS=()          # pids started by fg_spawn, in start order
FG_NAMES=()         # their names, for messages
FG_PG_DATA=         # set by fg_start_pg; stopped by fg_cleanup
FG_TMP=
FG_TMP_OWNED=
FG_REMOVE=()        # extra directories removed by fg_cleanup
FG_STOP_GRACE_S=${FG_STOP_GRACE_S:-15}

fg_log() { printf '%s: %s\n' "${FG_PROG:-${0##*/}}" "$*" >&2; }
fg_die() { fg_log "error: $*"; exit 1; }

# fg_init [state-dir]: temp dir (or the given dir, kept) and the cleanup trap.
fg_init() {
    if [[ -n ${1:-} ]]; then
        FG_TMP=$1
        mkdir -p "$FG_TMP"
    else
        FG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/flashgate.XXXXXX")
        FG_TMP_OWNED=1
        chmod 711 "$FG_TMP"    # user postgres must reach its data dir inside
    fi
    trap fg_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# fg_port_in_use PORT: true when anything on this machine uses the TCP port.
fg_port_in_use() {
    [[ -n $(ss -Htan "( sport = :$1 )" 2>/dev/null) ]]
}

# fg_free_port [preferred]: prints the preferred port if it is free, else a
# free port below the ephemeral range (so outgoing connections never take it).
fg_free_port() {
    local p=${1:-} i
    if [[ -n $p ]] && ! fg_port_in_use "$p"; then
        printf '%s\n' "$p"
        return 0
    fi
    for ((i = 0; i < 200; i++)); do
        p=$((15000 + (RANDOM * 32768 + RANDOM) % 15000))
        if ! fg_port_in_use "$p"; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    fg_die "no free TCP port found"
}

# fg_spawn NAME LOGFILE CMD...: start CMD in the background, output to
# LOGFILE ("-" keeps the terminal); sets FG_LAST_PID and registers it.
fg_spawn() {
    local name=$1 log=$2
    shift 2
    if [[ $log == - ]]; then
        "$@" &
    else
        "$@" >"$log" 2>&1 &
    fi
    FG_LAST_PID=$!
    FG_PIDS+=("$FG_LAST_PID")
    FG_NAMES+=("$name")
}

fg_alive() { kill -0 "$1" 2>/dev/null; }

# fg_wait_until TIMEOUT_S PID WHAT CMD...: poll CMD until it succeeds; fail
# at the deadline or as soon as PID (if not empty) has exited.
fg_wait_until() {
    local timeout=$1 pid=$2 what=$3
    shift 3
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if [[ -n $pid ]] && ! fg_alive "$pid"; then
            fg_log "$what exited before it was ready"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            fg_log "$what not ready after ${timeout}s"
            return 1
        fi
        sleep 0.05
    done
}

fg_http_ok() { curl -fsS --noproxy '*' -o /dev/null --max-time 2 "$1"; }

# fg_wait_http URL TIMEOUT_S [PID]: until URL answers 2xx.
fg_wait_http() { fg_wait_until "$2" "${3:-}" "$1" fg_http_ok "$1"; }

fg_redis_pong() { [[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]; }

# fg_start_redis DIR [appendonly yes|no] [port]: private redis-server on
# loopback; sets FG_REDIS_PORT, FG_REDIS_PID, FG_REDIS_URL.
fg_start_redis() {
    local dir=$1 aof=${2:-no} port=${3:-}
    mkdir -p "$dir"
    [[ -n $port ]] || port=$(fg_free_port '')
    fg_spawn redis-server "$dir/redis.log" \
        redis-server --port "$port" --bind 127.0.0.1 --save '' \
        --appendonly "$aof" --dir "$dir" --daemonize no --protected-mode yes
    FG_REDIS_PID=$FG_LAST_PID
    FG_REDIS_PORT=$port
    FG_REDIS_URL=redis://127.0.0.1:$port
    if ! fg_wait_until 30 "$FG_REDIS_PID" "redis-server on port $port" fg_redis_pong "$port"; then
        tail -n 20 "$dir/redis.log" >&2 || true
        return 1
    fi
}

# PostgreSQL programs live in /usr/lib/postgresql/<major>/bin on Debian.
fg_pg_bindir() {
    local d
    if command -v pg_config >/dev/null; then
        d=$(pg_config --bindir 2>/dev/null || true)
        [[ -x $d/initdb ]] && { printf '%s\n' "$d"; return 0; }
    fi
    local newest
    newest=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
    [[ -x $newest ]] && { dirname "$newest"; return 0; }
    d=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
    [[ -x $d/initdb ]] && { printf '%s\n' "$d"; return 0; }
    fg_die "PostgreSQL server programs (initdb, pg_ctl) not found: run scripts/setup.sh"
}

# fg_as_pg CMD...: PostgreSQL refuses to run as root; run as user postgres then.
fg_as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# fg_pg_dir DIR: prints DIR if the server's user can use it, else a private
# directory under /tmp (a repository under /root is not reachable by postgres).
fg_pg_dir() {
    local dir=$1
    mkdir -p "$dir"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$dir"
        if ! runuser -u postgres -- test -w "$dir"; then
            dir=/tmp/flashgate-pg-$(printf '%s' "$1" | sha256sum | cut -c1-12)
            [[ -n $FG_TMP_OWNED ]] && FG_REMOVE+=("$dir")
            mkdir -p "$dir"
            chown postgres: "$dir"
            chmod 700 "$dir"
        fi
    fi
    printf '%s\n' "$dir"
}

# fg_start_pg DIR [port]: private PostgreSQL (initdb on first use, trust auth
# on loopback only, superuser postgres), database "flashgate" created and
# db/schema.sql applied when the data directory is new.  Sets FG_PG_PORT,
# FG_DATABASE_URL, FG_PG_DATA.
fg_start_pg() {
    local dir port=${2:-} bindir fresh=
    dir=$(fg_pg_dir "$1")
    bindir=$(fg_pg_bindir)
    [[ -n $port ]] || port=$(fg_free_port '')
    local data=$dir/data log=$dir/postgres.log
    if [[ ! -f $data/PG_VERSION ]]; then
        rm -rf "$data"
        fg_as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust \
            --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log" >&2; fg_die "initdb failed"; }
        fresh=1
    fi
    # Started with pg_ctl (it forks the server); fg_cleanup stops it.
    fg_as_pg "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 start \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" >/dev/null ||
        { tail -n 20 "$log" >&2; fg_die "PostgreSQL did not start"; }
    FG_PG_DATA=$data
    FG_PG_BINDIR=$bindir
    FG_PG_PORT=$port
    FG_DATABASE_URL=postgresql://postgres@127.0.0.1:$port/flashgate
    local psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres)
    if [[ -z $("${psql[@]}" -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'flashgate'") ]]; then
        "${psql[@]}" -d postgres -c 'CREATE DATABASE flashgate' >/dev/null
        fresh=1
    fi
    local schema=$FG_ROOT/db/schema.sql
    if [[ -n $fresh && -f $schema ]]; then
        "${psql[@]}" -d flashgate -f "$schema" >/dev/null
        sha256sum <"$schema" >"$dir/schema.sha256"
        fg_log "applied db/schema.sql"
    elif [[ -f $schema ]] && ! sha256sum <"$schema" | cmp -s - "$dir/schema.sha256"; then
        fg_log "note: db/schema.sql changed since this database was made; remove $dir to recreate it"
    fi
}

# fg_build DIR TARGETS [meson-setup-args...]: configure DIR if needed, then
# ninja TARGETS (space-separated paths like gateway/flashgate-gateway; "" = all).
fg_build() {
    local dir=$1 targets
    read -r -a targets <<<"$2"
    shift 2
    if [[ ! -f $FG_ROOT/$dir/build.ninja ]]; then
        meson setup "$FG_ROOT/$dir" "$FG_ROOT" "$@" >/dev/null ||
            fg_die "meson setup $dir failed"
    fi
    ninja -C "$FG_ROOT/$dir" "${targets[@]}" >/dev/null ||
        { ninja -C "$FG_ROOT/$dir" "${targets[@]}"; fg_die "build in $dir failed"; }
}

# fg_start_gateway BIN PORT LOG [K=V...]: sets FG_GATEWAY_PID once /health answers.
fg_start_gateway() {
    local bin=$1 port=$2 log=$3
    shift 3
    [[ -x $bin ]] || fg_die "$bin does not exist"
    fg_spawn gateway "$log" env PORT="$port" "$@" "$bin"
    FG_GATEWAY_PID=$FG_LAST_PID
    fg_wait_http "http://127.0.0.1:$port/health" 30 "$FG_GATEWAY_PID" ||
        { [[ $log != - ]] && tail -n 30 "$log" >&2; return 1; }
}

# fg_start_worker BIN HEALTH_PORT LOG [K=V...]: sets FG_WORKER_PID once /health answers.
fg_start_worker() {
    local bin=$1 port=$2 log=$3
    shift 3
    [[ -x $bin ]] || fg_die "$bin does not exist"
    fg_spawn worker "$log" env WORKER_HEALTH_PORT="$port" "$@" "$bin"
    FG_WORKER_PID=$FG_LAST_PID
    fg_wait_http "http://127.0.0.1:$port/health" 30 "$FG_WORKER_PID" ||
        { [[ $log != - ]] && tail -n 30 "$log" >&2; return 1; }
}

# fg_stop_pid PID NAME: SIGTERM, wait up to FG_STOP_GRACE_S, then SIGKILL.
fg_stop_pid() {
    local pid=$1 name=$2 i
    if fg_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + FG_STOP_GRACE_S))
        while fg_alive "$pid" && ((SECONDS < deadline)); do
            # A zombie child still answers kill -0 until reaped: it is done.
            [[ $(ps -o stat= -p "$pid" 2>/dev/null) == Z* ]] && break
            sleep 0.05
        done
        if fg_alive "$pid" && [[ $(ps -o stat= -p "$pid" 2>/dev/null) != Z* ]]; then
            fg_log "$name (pid $pid) ignored SIGTERM for ${FG_STOP_GRACE_S}s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    # Forget it, so the cleanup trap never signals a reused pid.
    for i in "${!FG_PIDS[@]}"; do
        [[ ${FG_PIDS[i]} == "$pid" ]] && unset 'FG_PIDS[i]' 'FG_NAMES[i]'
    done
    return 0
}

# The trap: everything this script started, newest first.
fg_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local i idx=("${!FG_PIDS[@]}")
    for ((i = ${#idx[@]} - 1; i >= 0; i--)); do
        fg_stop_pid "${FG_PIDS[idx[i]]}" "${FG_NAMES[idx[i]]}"
    done
    FG_PIDS=()
    FG_NAMES=()
    if [[ -n $FG_PG_DATA ]]; then
        fg_as_pg "$FG_PG_BINDIR/pg_ctl" -D "$FG_PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
        FG_PG_DATA=
    fi
    if [[ -n $FG_TMP_OWNED && -n $FG_TMP ]]; then
        rm -rf "$FG_TMP"
    fi
    if ((${#FG_REMOVE[@]})); then
        rm -rf "${FG_REMOVE[@]}"
    fi
    exit "$rc"
}
