/*
 * Job endpoints (jobs.c) and the per-thread queue handle other resources
 * (events, admin) reuse.
 */
#ifndef GATEWAY_JOBS_H
#define GATEWAY_JOBS_H

struct config;
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

void routes_jobs(struct router *rt);

#endif
