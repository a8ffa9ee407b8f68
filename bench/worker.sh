#!/usr/bin/env bash
# Worker benchmark: end-to-end job throughput of one worker process against
# the fake provider, from a preloaded queue to every job completed, and how
# many provider calls one process holds in flight.
#
# Starts a private redis-server, the gateway (idle: its RSS is reported), the
# fake provider (tests/support/fake-provider) and, for each case, a fresh
# worker from a release build (build-pipeline-rel/, --buildtype=release).
# For each case: FLUSHALL, set the fake's answer delay, preload N jobs with
# bench/load-jobs.c (queue_enqueue, the gateway's own enqueue script), start
# the worker (AI_PROVIDER=openai to the fake, fleet-wide limits lifted), and
# poll Redis until completed + failed = N.  Prints jobs/s (from the worker's
# start, and between the first and the last completion), the worker's
# peakConcurrency (its /health), the fake's maxInFlight, and the RSS (now and
# peak) of the worker, gateway, redis-server and fake provider.
#
# Reference in the same run: the fake provider alone under wrk (50
# connections, the same kind of request, 0 ms): a worker cannot complete
# jobs faster than its provider answers.
#
#   BENCH_CASES        "delay_ms:concurrency:jobs ..." (default
#                      "0:200:20000 0:20:20000 50:200:20000 2000:500:1500")
#   BENCH_BUILD_DIR    release build directory (default build-pipeline-rel)
#   BENCH_APPENDONLY   redis-server --appendonly (default no)
#   BENCH_TIMEOUT_S    give up on a case after this long (default 300)
#   BENCH_PERF         set to a directory: `perf record -g -p <worker>` for each
#                      case into <dir>/perf-<case>.data (starts just after the
#                      worker answers /health)
#
# Goals (issue 3): >= 3000 jobs/s at 0 ms; at 2 s provider latency 500 jobs
# in flight in one process with its RSS under ~64 MB.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FG_ROOT=$root
FG_PROG=worker.sh
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

read -r -a cases <<<"${BENCH_CASES:-0:200:20000 0:20:20000 50:200:20000 2000:500:1500}"
bdir=${BENCH_BUILD_DIR:-build-pipeline-rel}
aof=${BENCH_APPENDONLY:-no}
timeout_s=${BENCH_TIMEOUT_S:-300}
perf_dir=${BENCH_PERF:-}

for tool in wrk redis-server redis-cli curl ss; do
    command -v "$tool" >/dev/null || fg_die "$tool not found: run scripts/setup.sh"
done
nofile=$(ulimit -Hn)
[[ $nofile == unlimited ]] && nofile=$(cat /proc/sys/fs/nr_open)
ulimit -n "$nofile"
fg_init ''

fg_build "$bdir" "gateway/flashgate-gateway worker/flashgate-worker tests/support/fake-provider \
bench/load-jobs" --buildtype=release
load_jobs=$root/$bdir/bench/load-jobs

fg_start_redis "$FG_TMP/redis" "$aof"
gport=$(fg_free_port '')
fg_start_gateway "$root/$bdir/gateway/flashgate-gateway" "$gport" "$FG_TMP/gateway.log" \
    REDIS_URL="$FG_REDIS_URL" LISTEN_ADDRESS=127.0.0.1 LOG_LEVEL=warn PUBLIC_DIR="$root/public"

fport=$(fg_free_port '')
fg_spawn fake-provider "$FG_TMP/fake.log" "$root/$bdir/tests/support/fake-provider" --port "$fport"
FAKE_PID=$FG_LAST_PID
fake=http://127.0.0.1:$fport
fg_wait_http "$fake/_fake/health" 30 "$FAKE_PID" || { cat "$FG_TMP/fake.log" >&2; exit 1; }

rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo '?'; }
hwm_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo '?'; }
json_num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
rcli() { redis-cli -p "$FG_REDIS_PORT" "$@"; }
now_ms() { date +%s%3N; }
fake_ctl() { curl -fsS --noproxy '*' -o /dev/null -H 'Content-Type: application/json' -d "$2" "$fake/_fake/$1"; }

fg_log "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), release build in $bdir"
# Reference: the provider alone.
fg_log "reference: wrk -t2 -c50 -d5s against the fake provider (0 ms)"
fake_ctl default '{"action":"ok"}'
wrk -t2 -c50 -d5s -s "$root/bench/fake-provider-post.lua" "$fake/v1/chat/completions" >"$FG_TMP/wrk-fake.txt"
ref_rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$FG_TMP/wrk-fake.txt")

results=()
run_case() {
    local delay=$1 conc=$2 n=$3 name=$1ms-c$2
    rcli flushall >/dev/null
    fake_ctl reset '{}'
    fake_ctl default "{\"action\":\"ok\",\"delayMs\":$delay}"
    local loaded
    loaded=$(REDIS_URL=$FG_REDIS_URL QUEUE_MAX_WAITING=100000000 "$load_jobs" "$n" 4)
    fg_log "case $name: $loaded"

    local wport t0 t1 done_n=0 failed_n=0 deadline
    wport=$(fg_free_port '')
    local wenv=(REDIS_URL="$FG_REDIS_URL" LOG_LEVEL=warn INSTANCE_ID="bench-$name"
        AI_PROVIDER=openai OPENAI_API_KEY=sk-bench OPENAI_BASE_URL="$fake/v1"
        QUEUE_CONCURRENCY="$conc" QUEUE_MAX_WAITING=100000000
        OPENAI_RATE_LIMIT_RPM=10000000 OPENAI_TPM=0 OPENAI_MAX_CONCURRENT=100000
        CB_FAILURE_THRESHOLD=1000 BUDGET_MONTHLY_LIMIT_USD=1000000000
        PROVIDER_TIMEOUT_MS=60000 JOB_LEASE_MS=30000)
    t0=$(now_ms)
    fg_start_worker "$root/$bdir/worker/flashgate-worker" "$wport" "$FG_TMP/worker-$name.log" "${wenv[@]}"
    local wpid=$FG_WORKER_PID perf_pid=
    if [[ -n $perf_dir ]]; then
        mkdir -p "$perf_dir"
        perf record -g -p "$wpid" -o "$perf_dir/perf-$name.data" >"$FG_TMP/perf-$name.log" 2>&1 &
        perf_pid=$!
    fi
    deadline=$((SECONDS + timeout_s))
    while :; do
        done_n=$(rcli zcard 'fg:{ai-jobs}:completed')
        failed_n=$(rcli zcard 'fg:{ai-jobs}:failed')
        ((done_n + failed_n >= n)) && break
        ((SECONDS < deadline)) || { tail -n 20 "$FG_TMP/worker-$name.log" >&2; fg_die "case $name: $done_n of $n done after ${timeout_s}s"; }
        fg_alive "$FG_WORKER_PID" || { tail -n 20 "$FG_TMP/worker-$name.log" >&2; fg_die "case $name: the worker died"; }
        sleep 0.05
    done
    t1=$(now_ms)
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
    fi
    local first last health fstats
    first=$(rcli zrange 'fg:{ai-jobs}:completed' 0 0 withscores | sed -n 2p)
    last=$(rcli zrange 'fg:{ai-jobs}:completed' -1 -1 withscores | sed -n 2p)
    health=$(curl -fsS --noproxy '*' "http://127.0.0.1:$wport/health")
    fstats=$(curl -fsS --noproxy '*' "$fake/_fake/stats?arrivals=0")
    local peak max_inflight wrss whwm
    peak=$(json_num peakConcurrency <<<"$health")
    max_inflight=$(json_num maxInFlight <<<"$fstats")
    wrss=$(rss_mb "$wpid")
    whwm=$(hwm_mb "$wpid")
    results+=("$(awk -v name="$name" -v n="$n" -v ok="$done_n" -v bad="$failed_n" -v ms=$((t1 - t0)) \
        -v first="${first:-0}" -v last="${last:-0}" -v peak="$peak" -v mif="$max_inflight" \
        -v wrss="$wrss" -v whwm="$whwm" -v grss="$(rss_mb "$FG_GATEWAY_PID")" \
        -v rrss="$(rss_mb "$FG_REDIS_PID")" -v frss="$(rss_mb "$FAKE_PID")" 'BEGIN {
        w = last - first
        printf "%-12s %7d %7d %5d %9.0f %9.0f %6d %6d %8s/%-7s %8s %8s %8s",
            name, n, ok, bad, (ms > 0 ? ok * 1000 / ms : 0), (w > 0 ? (ok - 1) * 1000 / w : 0),
            peak, mif, wrss, whwm, grss, rrss, frss }')")
    fg_stop_pid "$FG_WORKER_PID" worker
}

for c in "${cases[@]}"; do
    IFS=: read -r d k n <<<"$c"
    [[ $d =~ ^[0-9]+$ && $k =~ ^[0-9]+$ && $n =~ ^[0-9]+$ ]] || fg_die "bad case '$c' (delay_ms:concurrency:jobs)"
    run_case "$d" "$k" "$n"
done

echo
echo "load average (1/5/15 min) at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "reference: the fake provider alone, wrk -c50, 0 ms: $ref_rps req/s"
printf '%-12s %7s %7s %5s %9s %9s %6s %6s %16s %8s %8s %8s\n' case jobs done fail 'jobs/s' 'jobs/s*' \
    peak fakeMx 'worker MB/peak' 'gw MB' 'redis MB' 'fake MB'
for r in "${results[@]}"; do
    echo "$r"
done
echo "jobs/s: from the worker's start to the last completion; jobs/s*: between the first and the last"
echo "completion (Redis time); peak: the worker's peakConcurrency; fakeMx: the fake's maxInFlight."
