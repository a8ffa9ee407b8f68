#!/usr/bin/env bash
# SSE benchmark: the gateway's job event streams beside nginx with the nchan
# module, same machine, same load generator (../shared/tools/sse-bench), same
# event source (bench/sse-publish.c), in one invocation.
#
# Scenarios (BENCH_SCENARIOS, default "a b c1 c2"):
#   a   BENCH_STREAMS (10,000) streams on one job / channel, one event a second
#   b   BENCH_STREAMS streams on as many jobs / channels, 1,000 events a second
#       spread over them (round robin: each stream gets one every 10 s)
#   c1  one server process holding BENCH_ONE_PROC_STREAMS (19,900: the
#       gateway's HTTP_MAX_CONNECTIONS under the 20,000 open-file cap) streams
#       on 1,000 jobs, a trickle of 20 events a second
#   c2  BENCH_MAX_STREAMS (50,000) streams on one machine: BENCH_PROCS (3)
#       gateway processes sharing the port (HTTP_REUSEPORT=true), each with its
#       own bus; nginx with as many workers (listen ... reuseport); 20 ev/s
#
# Gateway side: the events are real job events.  sse-publish creates the job
# records (docs/queue.md layout) and emits each event as common/lua emit()
# does (next seq, history append, PUBLISH on the job's channel), with a
# wall-clock microsecond stamp `ts_us` in its data; sse-bench reads it
# (--ts-field ts_us) and reports delivery latency.  nchan side: the same
# data POSTed to its publisher location; streams are its EventSource
# subscriber location.
#
# For each run: connect success, p50/p99 delivery latency, events delivered,
# and server RSS per open stream (sse-bench: VmRSS and RssAnon of the server
# processes, start to end, divided by the streams open at the end).
#
#   BENCH_SCENARIOS       which runs (default "a b c1 c2")
#   BENCH_TARGETS         "gateway nchan" (default both)
#   BENCH_HOLD_S          seconds of publishing per run (default 30)
#   BENCH_CONN_RATE       new streams per second while ramping (default 2000)
#   BENCH_STREAMS, BENCH_ONE_PROC_STREAMS, BENCH_MAX_STREAMS, BENCH_PROCS
#   BENCH_GATEWAY_ENV     extra K=V for the gateway (e.g. HTTP_CONN_MEMORY_BYTES=6144)
#   BENCH_BUILD_DIR       release build (default build-bench; configured if missing)
#   SSE_BENCH             sse-bench binary (default ../shared/tools/sse-bench/sse-bench,
#                         built with make when missing)
#
# Goals (issue 4): at 10,000 streams p99 delivery under 50 ms; at most 12 KB
# of RSS per idle stream.  On a 2-core machine sse-bench, Redis, the
# publisher and the server share the CPUs: compare the two servers, run by
# run, more than the absolute figures.  Results: docs/benchmarks.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FG_ROOT=$root
FG_PROG=sse.sh
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

read -r -a scenarios <<<"${BENCH_SCENARIOS:-a b c1 c2}"
read -r -a targets <<<"${BENCH_TARGETS:-gateway nchan}"
read -r -a gw_extra <<<"${BENCH_GATEWAY_ENV:-}"
hold=${BENCH_HOLD_S:-30}
conn_rate=${BENCH_CONN_RATE:-2000}
streams=${BENCH_STREAMS:-10000}
one_proc=${BENCH_ONE_PROC_STREAMS:-19900}
max_streams=${BENCH_MAX_STREAMS:-50000}
procs=${BENCH_PROCS:-3}
bdir=${BENCH_BUILD_DIR:-build-bench}
sse_bench=${SSE_BENCH:-$(cd "$root/.." && pwd)/shared/tools/sse-bench/sse-bench}

for tool in redis-server redis-cli nginx curl ss jq make; do
    command -v "$tool" >/dev/null || fg_die "$tool not found: run scripts/setup.sh"
done
nchan_so=/usr/lib/nginx/modules/ngx_nchan_module.so
[[ -f $nchan_so ]] || fg_die "$nchan_so not found: apt-get install libnginx-mod-nchan"
for v in hold conn_rate streams one_proc max_streams procs; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || fg_die "$v must be a positive integer"
done
if [[ ! -x $sse_bench ]]; then
    make -C "$(dirname "$sse_bench")" >/dev/null || fg_die "cannot build $sse_bench"
fi

nofile=$(ulimit -Hn)
[[ $nofile == unlimited ]] && nofile=$(cat /proc/sys/fs/nr_open)
ulimit -n "$nofile"
fg_init ''
fg_build "$bdir" "gateway/flashgate-gateway bench/sse-publish" --buildtype=release -Dtests=false
gateway_bin=$root/$bdir/gateway/flashgate-gateway
publish=$root/$bdir/bench/sse-publish
fg_start_redis "$FG_TMP/redis" no

# ------------------------------------------------------------------ servers

GW_PIDS=()
# start_gateways N PORT: N processes on PORT (SO_REUSEPORT when N > 1).
start_gateways() {
    local n=$1 port=$2 i reuse=false
    ((n > 1)) && reuse=true
    GW_PIDS=()
    for ((i = 0; i < n; i++)); do
        fg_spawn "gateway-$i" "$FG_TMP/gateway-$port-$i.log" env PORT="$port" REDIS_URL="$FG_REDIS_URL" \
            LISTEN_ADDRESS=127.0.0.1 LOG_LEVEL=warn INSTANCE_ID="bench-gw-$i" PUBLIC_DIR="$root/public" \
            HTTP_REUSEPORT=$reuse RATE_LIMIT_IP_PER_MIN=100000000 "${gw_extra[@]}" "$gateway_bin"
        GW_PIDS+=("$FG_LAST_PID")
    done
    # every process listening (ss counts one socket per process with SO_REUSEPORT), and ready
    fg_wait_until 30 "${GW_PIDS[0]}" "the gateways on port $port" listeners_are "$port" "$n" ||
        { tail -n 20 "$FG_TMP/gateway-$port-"*.log >&2; return 1; }
    fg_wait_http "http://127.0.0.1:$port/ready" 30 "${GW_PIDS[0]}"
}

listeners_are() { [[ $(ss -Hltn "( sport = :$1 )" | wc -l) -ge $2 ]]; }

NGINX_PID=
# start_nchan WORKERS PORT: nginx + nchan with its own configuration.
start_nchan() {
    local workers=$1 port=$2 dir=$FG_TMP/nginx-$port temps="" m
    mkdir -p "$dir/logs" "$dir/tmp"
    for m in client_body proxy fastcgi uwsgi scgi; do
        if [[ $m == client_body ]] || ! nginx -V 2>&1 | grep -q -- "--without-http_${m}_module"; then
            temps+="    ${m}_temp_path $dir/tmp/$m;"$'\n'
        fi
    done
    cat >"$dir/nginx.conf" <<CONF
load_module $nchan_so;
worker_processes $workers;
worker_rlimit_nofile $nofile;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections $((nofile - 40)); }
http {
    access_log off;
    keepalive_requests 100000000;
    nchan_shared_memory_size 512m;
$temps    server {
        listen 127.0.0.1:$port reuseport;
        location = /nchan_stub_status { nchan_stub_status; }
        location ~ ^/sub/(.+)\$ {
            nchan_subscriber eventsource;
            nchan_channel_id \$1;
            nchan_subscriber_first_message newest;
        }
        location ~ ^/pub/(.+)\$ {
            nchan_publisher;
            nchan_channel_id \$1;
            nchan_message_buffer_length 16;
            nchan_message_timeout 5m;
        }
    }
}
CONF
    nginx -t -q -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" ||
        fg_die "nginx rejected its configuration"
    fg_spawn nginx "$dir/logs/stderr.log" \
        nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" -g 'daemon off;'
    NGINX_PID=$FG_LAST_PID
    fg_wait_http "http://127.0.0.1:$port/nchan_stub_status" 15 "$NGINX_PID" ||
        { cat "$dir/logs/error.log" >&2; return 1; }
}

stop_servers() {
    local p
    for p in "${GW_PIDS[@]}"; do fg_stop_pid "$p" gateway; done
    GW_PIDS=()
    [[ -n $NGINX_PID ]] && fg_stop_pid "$NGINX_PID" nginx
    NGINX_PID=
}

established() { ss -Htn state established "( sport = :$1 )" | wc -l; }

# ------------------------------------------------------------------ one run

declare -A R=()   # results: R[<run>/<field>]

# run TARGET SCENARIO CONNS TOPICS EVENTS_PER_S GATEWAY_PROCESSES NGINX_WORKERS
run() {
    local target=$1 sc=$2 conns=$3 topics=$4 eps=$5 nproc=$6 port prefix url pids out
    [[ $target == gateway ]] || nproc=$7
    local key=$sc/$target
    port=$(fg_free_port '')
    prefix="b${sc}-$RANDOM-"
    if [[ $target == gateway ]]; then
        redis-cli -p "$FG_REDIS_PORT" flushall >/dev/null
        start_gateways "$nproc" "$port"
        "$publish" redis 127.0.0.1 "$FG_REDIS_PORT" setup "$prefix" "$topics" bench >/dev/null
        url="http://127.0.0.1:$port/api/job-events?jobId=${prefix}%d"
        pids=$(IFS=,; echo "${GW_PIDS[*]}")
    else
        start_nchan "$nproc" "$port"
        url="http://127.0.0.1:$port/sub/${prefix}%d"
        pids="$NGINX_PID+"
    fi
    local nsrc=$(((conns + 4999) / 5000))
    out=$FG_TMP/run-$sc-$target
    fg_log "$key: $conns streams on $topics topic(s), $eps events/s for ${hold}s ($nproc server process(es))"
    fg_spawn sse-bench - sh -c 'exec "$@" >"$0.json" 2>"$0.err"' "$out" "$sse_bench" -c "$conns" \
        -r "$conn_rate" -d $((hold + 25)) -k "$topics" -t 2 --src-ips "127.0.0.1-$nsrc" --ts-field ts_us \
        --server-pid "$pids" --connect-timeout 30 --progress 0 --json "$url"
    local bench_pid=$FG_LAST_PID
    # publish once every stream is established (or its ramp is long over)
    local deadline=$((SECONDS + conns / conn_rate + 60))
    while (($(established "$port") < conns)) && ((SECONDS < deadline)) && fg_alive "$bench_pid"; do
        sleep 0.2
    done
    R[$key/established]=$(established "$port")
    if [[ $target == gateway ]]; then
        "$publish" redis 127.0.0.1 "$FG_REDIS_PORT" emit "$prefix" "$topics" "$eps" "$hold" bench >"$out.pub"
    else
        "$publish" nchan 127.0.0.1 "$port" emit "$prefix" "$topics" "$eps" "$hold" >"$out.pub"
    fi
    wait "$bench_pid" || true
    fg_stop_pid "$bench_pid" sse-bench     # (exited: forget its pid)
    stop_servers
    if ! jq -e . "$out.json" >/dev/null 2>&1; then
        cat "$out.err" >&2
        fg_die "sse-bench gave no summary for $key"
    fi
    local j=$out.json
    R[$key/conns]=$conns
    R[$key/connected]=$(jq '.connected' "$j")
    R[$key/open]=$(jq '.open_at_end' "$j")
    R[$key/failed]=$(jq '.failed.total' "$j")
    R[$key/events]=$(jq '.events.with_ts' "$j")
    R[$key/p50]=$(jq '.latency_ms.p50' "$j")
    R[$key/p99]=$(jq '.latency_ms.p99' "$j")
    R[$key/max]=$(jq '.latency_ms.max' "$j")
    R[$key/rss]=$(jq '.server.vmrss_delta_bytes_per_open_conn' "$j")
    R[$key/anon]=$(jq '.server.rssanon_delta_bytes_per_open_conn' "$j")
    R[$key/sent]=$(awk '{ print $2 }' "$out.pub")
    fg_log "$key: connected ${R[$key/connected]}/$conns, failed ${R[$key/failed]}, events ${R[$key/events]}," \
        "p50 ${R[$key/p50]} ms, p99 ${R[$key/p99]} ms, RSS ${R[$key/rss]} B/stream"
}

# ------------------------------------------------------------------ scenarios

declare -A desc=(
    [a]="$streams streams, 1 topic, 1 ev/s"
    [b]="$streams streams, $streams topics, 1000 ev/s"
    [c1]="$one_proc streams, 1 process, 1000 topics, 20 ev/s"
    [c2]="$max_streams streams, $procs processes, 1000 topics, 20 ev/s"
)
printf 'host: %s, %s CPUs, RLIMIT_NOFILE %s; redis %s; %s; nchan module %s\n' "$(uname -r)" "$(nproc)" "$nofile" \
    "$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')" "$(nginx -v 2>&1 | sed 's/.*: //')" \
    "$(dpkg-query -W -f '${Version}' libnginx-mod-nchan 2>/dev/null || echo '?')"
for sc in "${scenarios[@]}"; do
    [[ -n ${desc[$sc]:-} ]] || fg_die "unknown scenario $sc (a b c1 c2)"
    for t in "${targets[@]}"; do
        case $sc in
            a) run "$t" a "$streams" 1 1 1 "$(nproc)" ;;
            b) run "$t" b "$streams" "$streams" 1000 1 "$(nproc)" ;;
            c1) run "$t" c1 "$one_proc" 1000 20 1 1 ;;
            c2) run "$t" c2 "$max_streams" 1000 20 "$procs" "$procs" ;;
            *) fg_die "unknown scenario $sc" ;;
        esac
    done
done

printf '\n| run | server | streams connected | failed | events delivered | p50 ms | p99 ms | max ms | RSS B/stream | anon B/stream |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for sc in "${scenarios[@]}"; do
    for t in "${targets[@]}"; do
        k=$sc/$t
        printf '| %s (%s) | %s | %s / %s | %s | %s | %s | %s | %s | %s | %s |\n' "$sc" "${desc[$sc]}" "$t" \
            "${R[$k/connected]}" "${R[$k/conns]}" "${R[$k/failed]}" "${R[$k/events]}" "${R[$k/p50]}" \
            "${R[$k/p99]}" "${R[$k/max]}" "${R[$k/rss]}" "${R[$k/anon]}"
    done
done
