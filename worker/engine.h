/*
 * engine: the worker's job loop.  It claims jobs from the Redis queue (never
 * more than QUEUE_CONCURRENCY in flight), runs each through the configured
 * provider (libcurl multi for openai/azure, a small thread pool for offline),
 * renews leases while calls run, and records every outcome with the job's
 * attempt token (complete / retry / fail) so a late or duplicate result can
 * never overwrite a newer one.  See engine.c for the threads.
 * All functions are called from main only.
 */
#ifndef WORKER_ENGINE_H
#define WORKER_ENGINE_H

#include <stddef.h>

struct worker;
struct engine;

/* Starts the engine threads.  0 or -errno with err set. */
int engine_start(struct worker *w, struct engine **ret, char *err, size_t errlen);
/* SIGTERM: claim nothing more; jobs in flight keep running. */
void engine_stop_claiming(struct engine *e);
/* Jobs in flight now. */
long engine_inflight(struct engine *e);
/* Drain deadline passed: cancel what is still running and hand those jobs
 * back to waiting at once (attempt not spent).  Returns how many. */
long engine_release_all(struct engine *e);
/* Join every thread and free.  NULL-safe. */
void engine_free(struct engine *e);

#endif
