#!/usr/bin/env bash
# Enqueue benchmark: POST /api/ai/generate-flashcards (every request a new
# job: a different user and document each time, bench/enqueue.lua) beside
# GET /health of the same gateway, in the same run, same load generator.
#
# Starts a private redis-server and the gateway from a release build
# (build-pipeline-rel/, configured with --buildtype=release when missing)
# with the per-user, per-address and queue-depth limits lifted, then runs
# `wrk -t2 -c<C> -d<BENCH_SECONDS>s --latency` against /health and the
# enqueue endpoint, interleaved, and prints req/s, p50, p99, the
# enqueue/health ratios and the goals of issue 3 (enqueue >= 0.5x /health
# req/s, p99 < 10 ms at 50 connections).  It checks that every enqueue
# request created a job (queue stats `total` = 2xx answers: no idempotency
# hit, nothing lost) and prints the RSS of the gateway and redis-server.
# No worker runs: the jobs stay in `waiting`.
#
#   BENCH_SECONDS       seconds per measured run (default 10)
#   BENCH_CONNECTIONS   connection counts (default "50")
#   BENCH_WARMUP        seconds of unrecorded warm-up per target (default 2)
#   BENCH_APPENDONLY    redis-server --appendonly (default no; yes = everysec fsync)
#   BENCH_BUILD_DIR     release build directory (default build-pipeline-rel)
#   HTTP_THREADS        gateway pool threads (default 0 = one per CPU)
#   ENQUEUE_USERS, ENQUEUE_CONTENT_BYTES   see bench/enqueue.lua
#
# On a 2-core machine wrk, the gateway and redis-server share the CPUs; the
# ratio between the two endpoints is the figure to compare.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FG_ROOT=$root
FG_PROG=enqueue.sh
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

seconds=${BENCH_SECONDS:-10}
warmup=${BENCH_WARMUP:-2}
read -r -a conns <<<"${BENCH_CONNECTIONS:-50}"
aof=${BENCH_APPENDONLY:-no}
bdir=${BENCH_BUILD_DIR:-build-pipeline-rel}
threads=2

for tool in wrk redis-server redis-cli curl ss; do
    command -v "$tool" >/dev/null || fg_die "$tool not found: run scripts/setup.sh"
done
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || fg_die "BENCH_SECONDS must be a positive integer"

nofile=$(ulimit -Hn)
[[ $nofile == unlimited ]] && nofile=$(cat /proc/sys/fs/nr_open)
ulimit -n "$nofile"
fg_init ''

fg_build "$bdir" "gateway/flashgate-gateway" --buildtype=release
fg_start_redis "$FG_TMP/redis" "$aof"
gport=$(fg_free_port '')
fg_start_gateway "$root/$bdir/gateway/flashgate-gateway" "$gport" "$FG_TMP/gateway.log" \
    REDIS_URL="$FG_REDIS_URL" LISTEN_ADDRESS=127.0.0.1 LOG_LEVEL=warn \
    HTTP_THREADS="${HTTP_THREADS:-0}" PUBLIC_DIR="$root/public" \
    RATE_LIMIT_AI_PER_MIN=1000000 RATE_LIMIT_IP_PER_MIN=100000000 \
    QUEUE_MAX_WAITING=100000000 HTTP_MAX_CONNECTIONS=10000
base=http://127.0.0.1:$gport
declare -A url=([health]=$base/health [enqueue]=$base/api/ai/generate-flashcards)
declare -A script=([health]="" [enqueue]=$root/bench/enqueue.lua)

# one request of each, to fail early with a readable message
code=$(curl -sS --noproxy '*' -o "$FG_TMP/probe.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"content":"probe","subject":"s","topic":"t","userId":"probe-user"}' "${url[enqueue]}")
[[ $code == 202 ]] || { cat "$FG_TMP/probe.json" >&2; fg_die "enqueue probe answered $code"; }
fg_http_ok "${url[health]}" || fg_die "/health probe failed"

to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

declare -A rps=() p50=() p99=() errs=() reqs=()
accepted=1            # the probe

run_wrk() {            # target conns seconds out
    local s=()
    [[ -n ${script[$1]} ]] && s=(-s "${script[$1]}")
    wrk -t"$threads" -c"$2" -d"$3s" --latency "${s[@]}" "${url[$1]}" >"$4"
}

# 2xx answers in a wrk report (requests minus non-2xx minus socket-error-free count is not
# available; wrk counts completed responses in "requests in").
wrk_2xx() {
    awk '/ requests in / { n = $1 } /Non-2xx or 3xx responses:/ { bad = $NF } END { print n - bad }' "$1"
}

bench() {
    local target=$1 c=$2 out
    out=$FG_TMP/wrk-$target-$c.txt
    if ((warmup > 0)); then
        run_wrk "$target" "$c" "$warmup" "$FG_TMP/warm-$target-$c.txt"
        [[ $target == enqueue ]] && accepted=$((accepted + $(wrk_2xx "$FG_TMP/warm-$target-$c.txt")))
    fi
    run_wrk "$target" "$c" "$seconds" "$out"
    local k=$target/$c
    [[ $target == enqueue ]] && accepted=$((accepted + $(wrk_2xx "$out")))
    rps[$k]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    reqs[$k]=$(awk '/ requests in / { print $1 }' "$out")
    p50[$k]=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    p99[$k]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    errs[$k]=$(awk '/Non-2xx or 3xx responses:/ { n += $NF }
                    /Socket errors:/ { gsub(",", ""); n += $4 + $6 + $8 + $10 }
                    END { print n + 0 }' "$out")
    [[ -n ${rps[$k]} ]] || { cat "$out" >&2; fg_die "could not parse wrk output for $k"; }
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

fg_log "gateway $base (release, $bdir), redis appendonly=$aof, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
fg_log "wrk -t$threads -d${seconds}s --latency (warm-up ${warmup}s), connections: ${conns[*]}"

for c in "${conns[@]}"; do
    for t in health enqueue; do
        bench "$t" "$c"
    done
done

total=$(curl -fsS --noproxy '*' "$base/api/queue/stats" |
        sed -n 's/.*"total":\([0-9]*\).*/\1/p')
redis_mem=$(redis-cli -p "$FG_REDIS_PORT" info memory | awk -F: '/^used_memory_human:/ { print $2 }' | tr -d '\r')

printf '\n%-26s %6s %10s %10s %10s %10s %8s\n' endpoint conns requests 'req/s' 'p50 ms' 'p99 ms' errors
for c in "${conns[@]}"; do
    for t in health enqueue; do
        k=$t/$c
        name=$([[ $t == health ]] && echo 'GET /health' || echo 'POST generate-flashcards')
        printf '%-26s %6s %10s %10s %10s %10s %8s\n' "$name" "$c" "${reqs[$k]}" "${rps[$k]}" "${p50[$k]}" \
            "${p99[$k]}" "${errs[$k]}"
    done
done
echo
for c in "${conns[@]}"; do
    awk -v c="$c" -v e="${rps[enqueue/$c]}" -v h="${rps[health/$c]}" -v p="${p99[enqueue/$c]}" 'BEGIN {
        r = h > 0 ? e / h : 0
        printf "enqueue/health req/s at %s connections: %.2f  (goal >= 0.50: %s)\n", c, r, (r >= 0.5 ? "met" : "MISSED")
        printf "enqueue p99 at %s connections: %.2f ms  (goal < 10 ms: %s)\n", c, p, (p < 10 ? "met" : "MISSED") }'
done
# wrk stops with up to <conns> requests in flight per run: those jobs exist
# but their answers were not counted.
slack=0
for c in "${conns[@]}"; do slack=$((slack + c * (warmup > 0 ? 2 : 1))); done
extra=$((total - accepted))
if ((extra >= 0 && extra <= slack)); then verdict="ok: every 2xx made a job; $extra more were in flight when wrk stopped"
else verdict="MISMATCH"; fi
echo "jobs in the queue: $total, 2xx enqueue answers: $accepted ($verdict)"
echo "RSS: gateway $(($(rss_kb "$FG_GATEWAY_PID") / 1024)) MB (peak $(($(hwm_kb "$FG_GATEWAY_PID") / 1024)) MB)," \
     "redis-server $(($(rss_kb "$FG_REDIS_PID") / 1024)) MB (used_memory $redis_mem)"
echo "load average (1/5/15 min) at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ $verdict != MISMATCH ]]
