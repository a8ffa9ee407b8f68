/*
 * Job endpoints (jobs.c) and the per-thread queue handle other resources
 * (events, admin) reuse.
 */
#ifndef GATEWAY_JOBS_H
#define GATEWAY_JOBS_H

struct config;
struct json_object;
struct queue_stats;
struct queue;
struct req;
struct router;

/* Once, from main, before the daemon starts. */
void jobs_setup(const struct config *c);
/* This pool thread's queue over redisx_thread() (created on first use). */
struct queue *jobs_queue(void);

/* 503 REDIS_UNAVAILABLE with Retry-After. */
int reply_redis_down(struct req *r);
/* The contract's 404 for a job: {"success":false,"status":"not_found",...}. */
int reply_job_not_found(struct req *r);

/* The queue figures of /api/queue/stats and of the metrics' "queue" block
 * (one builder for both).  New object owned by the caller. */
struct json_object *queue_stats_json(const struct queue_stats *st);

void routes_jobs(struct router *rt);

#endif
