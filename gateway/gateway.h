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

struct gw {
    const struct config *cfg;
    struct router *router;
    struct redis_target redis;
    struct cidr_list admin_cidrs;
    char instance_id[128];
    int64_t started_ms;            /* wall clock */
    atomic_bool draining;          /* SIGTERM seen: /ready 503, no new streams */
    atomic_long inflight;          /* requests between start and completion */
    struct hub *hub;               /* SSE hub (events.c) */
    struct bus *bus;               /* Redis subscriber thread */
    struct pgpool *pg;             /* profile database (NULL without DATABASE_URL) */
    struct metrics *metrics;
};

/* Route registration, one per resource file. */
void routes_health(struct router *rt);
void routes_static(struct router *rt);

#endif
