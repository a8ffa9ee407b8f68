/*
 * The worker process context, built by main() and shared read-only (except
 * the atomics) by the engine threads and the health server.
 */
#ifndef WORKER_WORKER_H
#define WORKER_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/redisx.h"

struct config;
struct engine;

struct worker_stats {
    atomic_long processed;         /* jobs that reached a final state here */
    atomic_long succeeded;
    atomic_long failed;            /* final failures */
    atomic_long retried;           /* attempts that ended in a retry */
    atomic_long current;           /* jobs in flight now */
    atomic_long peak;              /* highest `current` seen */
};

struct worker {
    const struct config *cfg;
    struct redis_target redis;
    char instance_id[128];
    int64_t started_ms;
    atomic_bool stopping;          /* SIGTERM: claim nothing more */
    atomic_bool redis_ok;          /* last Redis call of the engine succeeded */
    struct worker_stats stats;
    struct engine *engine;
};

#endif
