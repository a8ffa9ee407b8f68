#!/usr/bin/env bash
# HTTP benchmark: the gateway's GET /health against nginx answering a fixed
# JSON body, same machine, same load generator.
#
# Starts a private redis-server, the gateway from a release build
# (build-bench/, configured with --buildtype=release when missing) and nginx
# with its own configuration under a temp dir (2 worker processes, loopback,
# `return 200 '{"status":"OK"}'`, no access log), then runs
# `wrk -t2 -d<BENCH_SECONDS>s --latency` against each at 50 and 200
# connections and prints req/s, p50, p99 and the gateway/nginx ratios.
# Everything it started is stopped on exit.
#
#   BENCH_SECONDS       seconds per run (default 10)
#   BENCH_CONNECTIONS   connection counts (default "50 200")
#   BENCH_WARMUP        seconds of unrecorded warm-up per target (default 2)
#   BENCH_TARGETS       "gateway nginx" (default both; "nginx" alone needs no gateway)
#
# On a 2-core machine wrk shares the CPUs with the server under test; the
# ratio between the two targets is the figure to compare, not the absolute
# numbers.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FG_ROOT=$root
FG_PROG=http.sh
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

seconds=${BENCH_SECONDS:-10}
warmup=${BENCH_WARMUP:-2}
read -r -a conns <<<"${BENCH_CONNECTIONS:-50 200}"
read -r -a targets <<<"${BENCH_TARGETS:-gateway nginx}"
threads=2

for tool in wrk nginx redis-server curl ss; do
    command -v "$tool" >/dev/null || fg_die "$tool not found: run scripts/setup.sh"
done
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || fg_die "BENCH_SECONDS must be a positive integer"

nofile=$(ulimit -Hn)
[[ $nofile == unlimited ]] && nofile=$(cat /proc/sys/fs/nr_open)
ulimit -n "$nofile"
fg_init ''

declare -A url=()

want() { [[ " ${targets[*]} " == *" $1 "* ]]; }

start_gateway() {
    fg_build build-bench gateway/flashgate-gateway --buildtype=release -Dtests=false
    fg_start_redis "$FG_TMP/redis" no
    local port
    port=$(fg_free_port '')
    fg_start_gateway "$root/build-bench/gateway/flashgate-gateway" "$port" "$FG_TMP/gateway.log" \
        REDIS_URL="$FG_REDIS_URL" LISTEN_ADDRESS=127.0.0.1 LOG_LEVEL=warn \
        PUBLIC_DIR="$root/public"
    url[gateway]=http://127.0.0.1:$port/health
}

start_nginx() {
    local dir=$FG_TMP/nginx port
    port=$(fg_free_port '')
    mkdir -p "$dir/logs" "$dir/tmp"
    # Temp paths for every module compiled in, so nothing touches /var/lib/nginx.
    local temps="" m
    for m in client_body proxy fastcgi uwsgi scgi; do
        if [[ $m == client_body ]] || ! nginx -V 2>&1 | grep -q -- "--without-http_${m}_module"; then
            temps+="    ${m}_temp_path $dir/tmp/$m;"$'\n'
        fi
    done
    cat >"$dir/nginx.conf" <<CONF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
    access_log off;
$temps    server {
        listen 127.0.0.1:$port;
        location / {
            default_type application/json;
            return 200 '{"status":"OK"}';
        }
    }
}
CONF
    nginx -t -q -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" ||
        fg_die "nginx rejected its configuration"
    fg_spawn nginx "$dir/logs/stderr.log" \
        nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" -g 'daemon off;'
    fg_wait_http "http://127.0.0.1:$port/" 15 "$FG_LAST_PID" ||
        { cat "$dir/logs/error.log" >&2; return 1; }
    url[nginx]=http://127.0.0.1:$port/
}

# wrk's latency to milliseconds: "220.00us", "1.20ms", "1.05s", "2.00m".
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

declare -A rps=() p50=() p99=() errs=()

bench() {
    local target=$1 c=$2 out
    out=$FG_TMP/wrk-$target-$c.txt
    if ((warmup > 0)); then
        wrk -t"$threads" -c"$c" -d"${warmup}s" "${url[$target]}" >/dev/null
    fi
    wrk -t"$threads" -c"$c" -d"${seconds}s" --latency "${url[$target]}" >"$out"
    local k=$target/$c
    rps[$k]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p50[$k]=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    p99[$k]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    # Anything but a 2xx, and socket errors, make the figures meaningless: show them.
    errs[$k]=$(awk '/Non-2xx or 3xx responses:/ { n += $NF }
                    /Socket errors:/ { gsub(",", ""); n += $4 + $6 + $8 + $10 }
                    END { print n + 0 }' "$out")
    [[ -n ${rps[$k]} ]] || { cat "$out" >&2; fg_die "could not parse wrk output for $k"; }
}

want gateway && start_gateway
want nginx && start_nginx

for t in "${targets[@]}"; do
    [[ -n ${url[$t]:-} ]] || fg_die "unknown target $t (gateway or nginx)"
    bytes=$(curl -fsS --noproxy '*' "${url[$t]}" | wc -c)
    fg_log "$t: ${url[$t]} ($bytes body bytes)"
done
fg_log "wrk -t$threads -d${seconds}s --latency, connections: ${conns[*]} ($(nproc) CPUs)"

# Interleaved, so drift (thermal, other load) hits both targets alike.
for c in "${conns[@]}"; do
    for t in "${targets[@]}"; do
        bench "$t" "$c"
    done
done

printf '\n%-8s %6s %12s %10s %10s %8s\n' target conns 'req/s' 'p50 ms' 'p99 ms' errors
for c in "${conns[@]}"; do
    for t in "${targets[@]}"; do
        k=$t/$c
        printf '%-8s %6s %12s %10s %10s %8s\n' "$t" "$c" "${rps[$k]}" "${p50[$k]}" "${p99[$k]}" "${errs[$k]}"
    done
done
if want gateway && want nginx; then
    echo
    for c in "${conns[@]}"; do
        awk -v c="$c" -v g="${rps[gateway/$c]}" -v n="${rps[nginx/$c]}" \
            'BEGIN { printf "gateway/nginx req/s at %s connections: %.2f\n", c, (n > 0 ? g / n : 0) }'
        awk -v c="$c" -v g="${p99[gateway/$c]}" -v n="${p99[nginx/$c]}" \
            'BEGIN { printf "gateway/nginx p99   at %s connections: %.2f\n", c, (n > 0 ? g / n : 0) }'
    done
fi
