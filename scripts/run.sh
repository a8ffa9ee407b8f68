#!/usr/bin/env bash
# Runs the whole flashgate system on this machine:
#   scripts/setup.sh (installs what is missing), builds build/ with meson,
#   starts a private redis-server (append-only) unless REDIS_URL is set,
#   a private PostgreSQL with database "flashgate" (db/schema.sql applied when
#   it is created) unless DATABASE_URL is set, then the gateway and the worker.
# The worker uses the offline provider unless an AI key (OPENAI_API_KEY or the
# AZURE_OPENAI_* variables) or AI_PROVIDER is set.  Any other variable from
# docs/configuration.md passes through to both programs.
#
# State lives under .run/ (Redis data, PostgreSQL data, logs) and survives
# restarts; `rm -rf .run` starts afresh.  Ctrl-C or SIGTERM stops everything.
# Ports: PORT (default 3001, else a free one), WORKER_HEALTH_PORT (3002, else
# free); Redis and PostgreSQL get free loopback ports.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FG_ROOT=$root
FG_PROG=run.sh
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

"$root/scripts/setup.sh"
build_dir=${FLASHGATE_BUILD_DIR:-build}   # relative to the repository
fg_build "$build_dir" "gateway/flashgate-gateway worker/flashgate-worker"

gateway_bin=$root/$build_dir/gateway/flashgate-gateway
worker_bin=$root/$build_dir/worker/flashgate-worker
for b in "$gateway_bin" "$worker_bin"; do
    [[ -x $b ]] || fg_die "$b was not built (is its main.c in the tree?)"
done

state=$root/.run
mkdir -p "$state"
fg_init "$state"

# One run at a time per checkout: the state directories are not shareable.
exec 9>"$state/run.lock"
flock -n 9 || fg_die "another scripts/run.sh is running in $root"

if [[ -z ${REDIS_URL:-} ]]; then
    fg_start_redis "$state/redis" yes
    export REDIS_URL=$FG_REDIS_URL
    fg_log "redis-server on 127.0.0.1:$FG_REDIS_PORT (data in .run/redis)"
fi
if [[ -z ${DATABASE_URL:-} ]]; then
    fg_start_pg "$state/pg"
    export DATABASE_URL=$FG_DATABASE_URL
    fg_log "PostgreSQL on 127.0.0.1:$FG_PG_PORT (data in $FG_PG_DATA)"
fi

port=$(fg_free_port "${PORT:-3001}")
[[ -z ${PORT:-} || $port == "$PORT" ]] || fg_die "PORT=$PORT is in use"
worker_port=$(fg_free_port "${WORKER_HEALTH_PORT:-3002}")
[[ -z ${WORKER_HEALTH_PORT:-} || $worker_port == "$WORKER_HEALTH_PORT" ]] ||
    fg_die "WORKER_HEALTH_PORT=$WORKER_HEALTH_PORT is in use"
export PUBLIC_DIR=${PUBLIC_DIR:-$root/public}

# Their JSON-lines logs go to this terminal.
fg_start_gateway "$gateway_bin" "$port" - LISTEN_ADDRESS="${LISTEN_ADDRESS:-127.0.0.1}"
fg_start_worker "$worker_bin" "$worker_port" -

cat >&2 <<MSG

flashgate is running (Ctrl-C stops it):
  SSE demo        http://127.0.0.1:$port/sse-example.html
  monitoring      http://127.0.0.1:$port/monitoring.html
  health          http://127.0.0.1:$port/api/health
  worker health   http://127.0.0.1:$worker_port/health

MSG

# Until Ctrl-C/SIGTERM (the trap stops everything) or until a process dies.
set +e
wait -n "${FG_PIDS[@]}"
rc=$?
set -e
for i in "${!FG_PIDS[@]}"; do
    if ! fg_alive "${FG_PIDS[i]}"; then
        fg_log "${FG_NAMES[i]} exited (status $rc); stopping the rest"
    fi
done
exit "$((rc == 0 ? 1 : rc))"
