/*
 * Fleet-wide request metrics and the operators' alerts (metrics.c):
 * GET /api/metrics/alerts (JSON, the dashboard's source) and GET /metrics
 * (Prometheus text exposition 0.0.4), both admin.
 *
 * Every gateway counts its finished requests in memory (striped atomics, no
 * Redis on the request path) and a flusher thread adds them once per
 * METRICS_FLUSH_MS to per-minute buckets and cumulative totals in Redis that
 * the whole fleet shares, together with the gateway's SSE figures.  The
 * endpoints read those, so every gateway answers with the same fleet-wide
 * numbers; Redis down is a 503 REDIS_UNAVAILABLE, never a 200 that hides it.
 * Key layout, what each figure and alert means: docs/operations.md.
 */
#ifndef GATEWAY_METRICS_H
#define GATEWAY_METRICS_H

#include <stdint.h>

struct gw;
struct req;
struct router;
struct metrics;

/* Main thread, from app_init: the counters, and gw->on_request_done set to
 * metrics_record.  gw->hub must exist.  NULL on ENOMEM. */
struct metrics *metrics_new(struct gw *gw);
/* Main thread, once the daemon listens: starts the flusher thread.  0 or -errno. */
int metrics_start(struct metrics *m);
/* Main thread, after the daemon stopped (no request can finish any more):
 * stops the flusher after a last flush (the counts not yet in Redis are sent
 * once more) and removes this gateway's live record (its SSE figures leave
 * the fleet's sums at once).  NULL-safe; idempotent. */
void metrics_stop(struct metrics *m);
void metrics_free(struct metrics *m);      /* NULL-safe; stops first */

/* The on_request_done hook: count one finished request.  Any pool thread;
 * lock-free.  Health probes are counted apart from requests; a request that
 * was never answered (status 0) is not counted; an SSE stream's lifetime is
 * not a response time (its latency is not recorded). */
void metrics_record(struct gw *gw, struct req *r, int64_t dur_us);

/* GET /api/metrics/alerts, GET /metrics (admin). */
void routes_metrics(struct router *rt);

#endif
