/*
 * resilience: the worker's side of the fleet-wide gates around every paid
 * provider call (throttles, circuit breaker, budget; state and scripts in
 * common/gates.h, design in docs/operations.md).
 *
 *   before the call  resilience_acquire(): one Redis round trip decides
 *                    "go" (a ticket is held), "wait n ms" (the engine hands
 *                    the job back with queue_release(..., n): it waits in
 *                    delayed without spending an attempt and returns to the
 *                    front), or "run offline" (kill-switch on and
 *                    BUDGET_FALLBACK_PROVIDER=offline)
 *   after the call   resilience_settle(): one round trip releases the slot,
 *                    settles tokens and cost from the reported usage, feeds
 *                    the breaker (provider faults only: 5xx, timeouts,
 *                    connection errors) and trips the kill-switch on
 *                    insufficient_quota
 *
 * Threads: a struct resilience is immutable after resilience_new() (the
 * counters are atomics) and may be used from any thread; each call borrows
 * the calling thread's struct redisx.  A ticket belongs to one slot.
 */
#ifndef WORKER_RESILIENCE_H
#define WORKER_RESILIENCE_H

#include <stdbool.h>

#include "common/gates.h"

struct config;
struct job_params;
struct outcome;
struct redisx;

/* A concurrency lease outlives the longest call (PROVIDER_TIMEOUT_MS) by
 * this much, so only a dead worker's lease ever expires. */
#define RESILIENCE_LEASE_MARGIN_MS 5000
/* Wait after a Redis error in acquire (the job is handed back). */
#define RESILIENCE_ERROR_WAIT_MS 1000

struct resilience_ticket {
    bool held;                    /* acquired and not settled yet */
    bool sent;                    /* the request went out (httpc accepted it) */
    struct gates_ticket t;
    long long est_tokens, est_cost;
};

enum resilience_verdict {
    RESILIENCE_GO = 0,            /* call now; settle the ticket exactly once */
    RESILIENCE_WAIT,              /* hand the job back for *ret_wait_ms */
    RESILIENCE_OFFLINE,           /* kill-switch on: run the offline provider instead */
};

struct resilience_stats {
    long long admitted;
    long long waits[GATES_WAIT_BUDGET + 1];   /* by enum gates_wait_reason */
    long long faults;             /* provider faults reported to the breaker */
    long long errors;             /* Redis errors in acquire/settle */
};

struct resilience;

/* For provider "openai" or "azure" (NULL for anything else, e.g. offline:
 * nothing to gate).  *c must outlive the result. */
struct resilience *resilience_new(const struct config *c, const char *provider);
void resilience_free(struct resilience *rs);                 /* NULL-safe */

/* BUDGET_FALLBACK_PROVIDER=offline: jobs are claimed even while the
 * kill-switch is on, and run offline (so claims must not pass QUEUE_CLAIM_PAID). */
bool resilience_fallback_offline(const struct resilience *rs);

/* Estimate, then acquire.  Returns a verdict (>= 0); on RESILIENCE_GO
 * *ticket is held; on RESILIENCE_WAIT *ret_wait_ms > 0.  A Redis error is
 * RESILIENCE_WAIT with RESILIENCE_ERROR_WAIT_MS (no paid call starts without
 * the gates). */
int resilience_acquire(struct resilience *rs, struct redisx *rx, const struct job_params *p,
                       struct resilience_ticket *ticket, long long *ret_wait_ms);

/* Settle a held ticket (no-op otherwise) and mark it not held.  o: the
 * classified outcome, or NULL when no answer is known (cancelled: charged
 * at the estimate if the request was sent, refunded if it was not).
 * Failures are logged; an unsettled lease expires by itself. */
void resilience_settle(struct resilience *rs, struct redisx *rx, struct resilience_ticket *ticket,
                       const struct outcome *o);

/* Is this outcome a provider fault for the breaker? (5xx, timeout, connection error) */
bool resilience_is_fault(const struct outcome *o);
/* Micro-dollars for these token counts at the configured prices (rounded up). */
long long resilience_cost(const struct resilience *rs, long long prompt_tokens, long long completion_tokens);

void resilience_get_stats(const struct resilience *rs, struct resilience_stats *ret);

#endif
