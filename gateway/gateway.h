/*
 * The gateway-wide context, built by main() before the daemon starts and
 * read-only afterwards (except the atomics).  Resource modules reach shared
 * pieces through it; each one registers its routes with a routes_*() function.
 */
#ifndef GATEWAY_GATEWAY_H
#define GATEWAY_GATEWAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/redisx.h"
#include "gateway/cidr.h"

struct config;
struct router;
struct hub;
struct bus;
struct pgpool;
struct metrics;
struct req;

struct gw {
    const struct config *cfg;
    struct router *router;
    struct redis_target redis;
    struct cidr_list admin_cidrs;
    int public_fd;                 /* PUBLIC_DIR, or -1 */
    char instance_id[128];
    int64_t started_ms;            /* wall clock */
    int pid;                       /* getpid() at start (a syscall per call in glibc 2.36) */
    atomic_bool draining;          /* SIGTERM seen: /ready 503, no new streams */
    atomic_long inflight;          /* requests between start and completion */
    struct hub *hub;               /* SSE hub (events.c) */
    struct bus *bus;               /* Redis subscriber thread */
    struct pgpool *pg;             /* profile database (NULL without DATABASE_URL) */
    struct metrics *metrics;
    /* Called on the pool thread when a request ends (metrics); may be NULL. */
    void (*on_request_done)(struct gw *gw, struct req *r, int64_t dur_us);
    /* Per-client-address API limit, run by server.c before every routed handler
     * except health, static files, SSE reconnects and ROUTE_ADMIT_IN_HANDLER
     * routes (job submissions: both client limits run inside the enqueue
     * script, resilience_enqueue_*); NULL = no limit.  0 admitted, else the
     * 429 is queued and its result is in *reply_result. */
    int (*admit_request)(struct req *r, int *reply_result);
};

/* Route registration, one per resource file. */
void routes_health(struct router *rt);
void routes_static(struct router *rt);
void routes_events(struct router *rt);

#endif
