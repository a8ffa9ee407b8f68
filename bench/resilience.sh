#!/usr/bin/env bash
# Resilience overhead benchmark: what the fleet-wide throttle + breaker +
# budget steps add to one provider call (bench/resilience-bench.c), beside
# the same call with the steps turned off, in one run.
#
# Starts a private redis-server and the fake provider (answering at once, so
# the provider's own latency does not hide the overhead), then runs the
# driver with 1 thread and with BENCH_THREADS threads (contention on the
# provider's keys).  Prints p50/p99/max/mean in microseconds for: the call
# with the steps off, the call with them on, acquire + settle alone; and
# the Redis round trips per gated call as counted by Redis (INFO
# commandstats).
#
#   BENCH_CALLS      gated calls per thread (default 20000; as many plain ones)
#   BENCH_THREADS    threads of the second run (default 8)
#   BENCH_BUILD_DIR  release build directory (default build-resilience-rel)
#
# Goal (issue 5): acquire + settle under 0.5 ms at p99, at most 2 round trips.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FG_ROOT=$root
FG_PROG=resilience.sh
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

calls=${BENCH_CALLS:-20000}
threads=${BENCH_THREADS:-8}
bdir=${BENCH_BUILD_DIR:-build-resilience-rel}

for tool in redis-server redis-cli curl ss; do
    command -v "$tool" >/dev/null || fg_die "$tool not found: run scripts/setup.sh"
done
fg_init ''
fg_build "$bdir" "bench/resilience-bench tests/support/fake-provider" --buildtype=release

fg_start_redis "$FG_TMP/redis" no
fport=$(fg_free_port '')
fg_spawn fake-provider "$FG_TMP/fake.log" "$root/$bdir/tests/support/fake-provider" --port "$fport"
FAKE_PID=$FG_LAST_PID
fake=http://127.0.0.1:$fport
fg_wait_http "$fake/_fake/health" 30 "$FAKE_PID" || { cat "$FG_TMP/fake.log" >&2; exit 1; }

printf 'host: %s, %s CPUs; redis %s\n' "$(uname -r)" "$(nproc)" \
    "$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')"
for t in 1 "$threads"; do
    redis-cli -p "$FG_REDIS_PORT" flushall >/dev/null
    "$root/$bdir/bench/resilience-bench" --redis "$FG_REDIS_URL" --provider "$fake" \
        --calls "$calls" --threads "$t"
    echo
done
