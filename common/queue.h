/*
 * The reliable job queue in Redis (design, key layout and every script's
 * contract: docs/queue.md).
 *
 * At-least-once delivery with exactly-once effects: a claimed job holds a
 * lease (deadline in Redis time) and a random attempt token; the worker
 * renews the lease while it works; a worker that dies loses the lease and
 * the next claim puts the job back to waiting with the token invalidated.
 * Completion, failure, progress and release are accepted only with the
 * current token, so a late or duplicate report changes nothing (-ESTALE).
 * Every state change is one Lua script that also appends the job's event
 * (per-job seq 1, 2, 3...) to its history and publishes it on
 * QUEUE_CHANNEL_JOB_PREFIX<id> and QUEUE_CHANNEL_USER_PREFIX<user>.
 *
 * Threads: a struct queue borrows one struct redisx and, like it, is used by
 * one thread at a time (gateway: one per pool thread over redisx_thread();
 * worker: one per thread that talks to Redis).  Creating one is cheap.
 *
 * Errors: functions return 0 (or a count) or -errno:
 *   -EIO / -EAGAIN / -ETIMEDOUT Redis unreachable (from redisx), -ESTALE the
 *   token is not the job's current attempt, -ENOENT no such job, -EBUSY queue
 *   full, -EPERM budget kill-switch on, -EINVAL bad argument, -EPROTO an
 *   unexpected reply (queue_last_error() has the text), -ENOMEM.
 */
#ifndef COMMON_QUEUE_H
#define COMMON_QUEUE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/job.h"

struct config;
struct redisx;

#define QUEUE_NAME            "ai-jobs"
/* Every key of the queue starts with this; the {hash tag} keeps them in one
 * Redis Cluster slot, so one script may touch any of them. */
#define QUEUE_KEY_PREFIX      "fg:{" QUEUE_NAME "}:"
/* Exists while the budget kill-switch is on (set by the budget module):
 * enqueue answers -EPERM, claims with QUEUE_CLAIM_PAID hand out nothing. */
#define QUEUE_KILLSWITCH_KEY  QUEUE_KEY_PREFIX "budget:killswitch"
/* Pub/sub channels carrying job events (job_event text). */
#define QUEUE_CHANNEL_JOB_PREFIX  QUEUE_KEY_PREFIX "ch:job:"
#define QUEUE_CHANNEL_USER_PREFIX QUEUE_KEY_PREFIX "ch:user:"

#define QUEUE_CLAIM_MAX        256       /* jobs per queue_claim call */
#define QUEUE_IDEM_KEY_MAX     255       /* longest Idempotency-Key (bytes) */
#define QUEUE_ERROR_MAX        1024      /* error messages are cut to this (bytes) */
#define QUEUE_RESULT_MAX       (32u << 20)  /* largest result JSON accepted */
#define QUEUE_NOTIFY_MAX       1024      /* wake-up tokens kept in the notify list */
#define QUEUE_FINISHED_KEEP    100000    /* default cap of the completed/failed stats sets */
#define QUEUE_MAINT_BATCH      100       /* promotions / lease expiries per claim */
#define QUEUE_BACKOFF_CAP_MS   300000    /* default cap of one retry backoff */
#define QUEUE_WORKER_FORGET_MS 3600000   /* workers unseen this long leave the workers set */

struct queue_limits {
    int max_attempts;            /* JOB_ATTEMPTS */
    long long backoff_ms;        /* JOB_BACKOFF_MS: base of the full-jitter backoff */
    long long backoff_cap_ms;    /* 0: QUEUE_BACKOFF_CAP_MS */
    long long lease_ms;          /* JOB_LEASE_MS */
    long long deadline_ms;       /* JOB_DEADLINE_MS, from submission */
    long long ttl_s;             /* IDEMPOTENCY_TTL: records, results, mappings */
    long long events_max;        /* JOB_EVENTS_MAX */
    long long max_waiting;       /* QUEUE_MAX_WAITING: waiting + delayed */
    long long finished_keep;     /* 0: QUEUE_FINISHED_KEEP */
    long long heartbeat_ms;      /* WORKER_HEARTBEAT_MS (liveness window = 3x) */
};

/* The limits from configuration (the defaults above for the 0 ones). */
void queue_limits_from_config(const struct config *c, struct queue_limits *ret);

struct queue;

/* r is borrowed and must outlive the queue; *lim is copied.  NULL on ENOMEM
 * or nonsensical limits (non-positive attempts, lease, ttl...). */
struct queue *queue_new(struct redisx *r, const struct queue_limits *lim);
void queue_free(struct queue *q);                       /* NULL-safe */
/* Text of the last unexpected Redis error reply ("" if none); valid until the next call. */
const char *queue_last_error(const struct queue *q);

/* ------------------------------------------------------------ gateway side */

/* Client rate limits checked by the enqueue script itself (the gateway's
 * per-address and per-user limits, same buckets as gates_rate_take with
 * kinds "ip" and "ai"), so a submission costs one round trip. */
struct queue_admission {
    const char *ip;              /* client address (bucket rl:ip:<ip>); NULL/"": not limited */
    long long ip_limit;          /* requests per window, > 0 when ip is set */
    const char *user_key;        /* user's rate-limit id (bucket rl:ai:<id>); NULL/"": not limited */
    long long user_limit;        /* submissions per window, > 0 when user_key is set */
    long long window_ms;         /* > 0 */
};
#define QUEUE_CLIENT_ID_MAX 256  /* longest ip / user_key (GATES_CLIENT_ID_MAX) */

/* One bucket as the script left it (limit: as passed; checked false: the
 * script did not reach it, the other fields are 0). */
struct queue_rate {
    bool checked;
    long long limit;
    long long remaining;         /* after this request */
    long long reset_ms;          /* until the full limit is available again */
    long long retry_ms;          /* refused: until one more request is allowed */
};

/* Refusals of queue_enqueue_admit (the figures are in ret->ip / ret->user). */
#define QUEUE_RATE_IP    (-EADDRNOTAVAIL)   /* per-address limit reached */
#define QUEUE_RATE_USER  (-EDQUOT)          /* per-user limit reached */

struct queue_enqueue_result {
    struct queue_rate ip, user;  /* filled whenever the script ran (0, -EPERM, -EBUSY, QUEUE_RATE_*) */
    char job_id[JOB_ID_MAX + 1];
    bool existing;               /* idempotent hit: the original job, nothing created */
    enum job_state state;        /* the job's state now (new jobs: JOB_WAITING) */
    int64_t created_ms;
    int64_t finished_ms;         /* existing completed job: when (cachedAt), else 0 */
    char *result_json;           /* owned; existing completed job's result, else NULL */
};

/*
 * Submit a job for user, or find the one this request already made.  The
 * idempotency hash (job_idem_hash over user, type and the canonical params)
 * and, when idem_key is non-NULL, the client's Idempotency-Key scoped to the
 * user, both map to the job for IDEMPOTENCY_TTL; a mapping whose job record
 * is gone or failed counts as absent.  Check and enqueue are one atomic step,
 * so concurrent duplicates create one job.  Returns 0 with *ret filled (free
 * with queue_enqueue_result_done), -EPERM kill-switch, -EBUSY queue full,
 * -EINVAL (empty/over-long user or key, no content), -EIO...
 */
int queue_enqueue(struct queue *q, const char *user, const struct job_params *p,
                  const char *idem_key, struct queue_enqueue_result *ret);
/*
 * queue_enqueue with the client limits in the same script (adm NULL: none).
 * Order: per-address take (QUEUE_RATE_IP), idempotency lookup (a hit answers
 * the original job and does not spend the user's quota), per-user take
 * (QUEUE_RATE_USER), kill-switch (-EPERM), queue depth (-EBUSY), enqueue.
 * *ret is always initialised (free with queue_enqueue_result_done); its ip
 * and user figures are set whenever the script ran.  -EIO...: Redis
 * unreachable (no limit could be checked).
 */
int queue_enqueue_admit(struct queue *q, const char *user, const struct job_params *p,
                        const char *idem_key, const struct queue_admission *adm,
                        struct queue_enqueue_result *ret);
void queue_enqueue_result_done(struct queue_enqueue_result *r);

/* Read a job (GET /api/job-status).  Ownership is the caller's check
 * (ret->user).  0 (free with job_record_done), -ENOENT (unknown, expired or
 * not a possible id), -EPROTO (stored record unreadable), -EIO... */
int queue_get(struct queue *q, const char *job_id, struct job_record *ret);

/* The job's stored events with seq > after_seq, oldest first (the history
 * keeps the newest JOB_EVENTS_MAX).  0 with *ret filled (possibly empty; free
 * with job_event_list_done), -EIO...  Undecodable entries are skipped. */
int queue_events_since(struct queue *q, const char *job_id, long long after_seq,
                       struct job_event_list *ret);

struct queue_stats {
    long long waiting, active, delayed;
    long long completed, failed; /* finished within IDEMPOTENCY_TTL (capped, for stats) */
    long long total;             /* the five above */
    long long completed_total, failed_total;  /* counters since the keys were created */
    long long finished_total;    /* finishes reported by workers (complete or final fail) */
    int64_t last_finish_ms;      /* Redis time of the newest of those, 0 if none */
    long long workers_alive;     /* workers seen within 3 heartbeats */
    long long workers_busy;      /* of those, with jobs in flight */
    bool kill_switch;
    int64_t now_ms;              /* Redis time of the snapshot */
};

/* One consistent snapshot (a read-only script; fine on a replica).  0 or -EIO... */
int queue_stats(struct queue *q, struct queue_stats *ret);

/* ------------------------------------------------------------ worker side */

struct queue_job {
    char id[JOB_ID_MAX + 1];
    char token[JOB_TOKEN_MAX + 1];   /* this attempt's fencing token */
    int attempt;                     /* 1 for the first attempt */
    enum job_type type;
    char user[JOB_USER_MAX + 1];
    char *params_json;               /* owned; decode with job_params_decode */
    int64_t created_ms;
};
void queue_job_done(struct queue_job *j);                /* NULL-safe */

#define QUEUE_CLAIM_PAID 1u  /* the caller would spend money: take nothing while the kill-switch is on */

/*
 * Maintenance, then claim up to n (<= QUEUE_CLAIM_MAX) waiting jobs without
 * blocking: due delayed jobs return to waiting (front), expired leases are
 * taken back (front of waiting, attempt still spent, token invalidated; a job
 * whose last attempt's lease expired fails with LEASE_EXPIRED), jobs past
 * JOB_DEADLINE_MS fail with DEADLINE_EXCEEDED instead of being handed out.
 * Each claimed job gets lease now + JOB_LEASE_MS, a new token, attempt + 1
 * and an `active` event.  n == 0 runs the maintenance only.
 * Returns the number of jobs written to out[0..] (each freed with
 * queue_job_done), or -errno (nothing claimed).
 */
int queue_claim(struct queue *q, int n, unsigned flags, struct queue_job *out);

/*
 * Block until work may be available or timeout_ms passes.  Returns 1 at once
 * if jobs wait or a delayed job / expired lease is due; otherwise drops the
 * stale wake-up tokens and waits on the notify list (BLPOP: enqueues and
 * releases push a token) no longer than until the next delayed job or lease
 * falls due.  1 wake-up (claim now), 0 timed out, -EIO...  A wake-up may
 * find nothing to claim (another worker was faster).  Sets the borrowed
 * redisx's command timeout for the BLPOP and restores the default after.
 */
int queue_wait(struct queue *q, int timeout_ms);

struct queue_lease_ref {
    const char *id;
    const char *token;
};

/* Extend the leases of n jobs to now + JOB_LEASE_MS (batched internally).
 * ret_held[i] (n entries) is set false for a job no longer held (token
 * superseded, job not active, gone): abandon it.  Returns how many are still
 * held, or -errno. */
int queue_renew(struct queue *q, const struct queue_lease_ref *v, size_t n, bool *ret_held);

/* Record progress 0..100 (clamped) and emit `progress`.  0, -ESTALE, -ENOENT, -EIO... */
int queue_progress(struct queue *q, const char *id, const char *token, int pct);

/* Accept the result (a JSON object; stored and sent compact) of the current
 * attempt: state completed, result kept IDEMPOTENCY_TTL, one `completed`
 * event.  usage may be NULL.  0, -ESTALE (late or duplicate: nothing
 * changed), -ENOENT, -EINVAL (result not a JSON object), -EMSGSIZE (over
 * QUEUE_RESULT_MAX), -EIO... */
int queue_complete(struct queue *q, const char *id, const char *token,
                   const char *result_json, const struct job_usage *usage);

struct queue_failure {
    const char *error;           /* for people (cut to QUEUE_ERROR_MAX) */
    const char *code;            /* machine code, e.g. PROVIDER_TIMEOUT */
    bool retryable;              /* transient: try again if attempts remain */
    bool spend_attempt;          /* false: this attempt does not count (provider 429) */
    long long retry_after_ms;    /* > 0: retry exactly this much later (Retry-After);
                                    0: full-jitter backoff (queue_backoff_ms) */
};

struct queue_fail_result {
    bool retrying;               /* true: delayed until next_attempt_ms; false: failed for good */
    int64_t next_attempt_ms;
    int attempts;                /* attemptsMade after this report */
};

/*
 * Report the current attempt's failure.  Retry (state delayed, event
 * `retrying`) when retryable and either attempts remain or the attempt is
 * not spent, and the retry can start before the deadline; else fail for good
 * (state failed, the job's one `failed` event).  attempt: the claimed
 * attempt number (sizes the backoff).  ret may be NULL.
 * 0, -ESTALE, -ENOENT, -EINVAL, -EIO...
 */
int queue_fail(struct queue *q, const char *id, const char *token, int attempt,
               const struct queue_failure *f, struct queue_fail_result *ret);

/* Full-jitter backoff before attempt + 1: uniform in [0, min(cap, base * 2^(attempt-1))]. */
long long queue_backoff_ms(const struct queue_limits *lim, int attempt);

/*
 * Hand a claimed job back without spending its attempt: delay_ms == 0 puts
 * it at the front of waiting now and wakes a worker (graceful shutdown);
 * delay_ms > 0 parks it in delayed (a fleet-wide gate said "not yet"; it
 * returns to the front when due).  No event.  0, -ESTALE, -ENOENT, -EIO...
 */
int queue_release(struct queue *q, const char *id, const char *token, long long delay_ms);

/* Worker liveness for the "no workers" and "stalled" alerts. */
struct queue_worker_info {
    long long processed, succeeded, failed;
    long long in_flight, peak_in_flight;
    int64_t started_ms;
    const char *provider;        /* "openai" | "azure" | "offline" (NULL: not reported) */
};

/* Record that worker `instance` is alive (kept 3 heartbeats).  0, -EINVAL, -EIO... */
int queue_heartbeat(struct queue *q, const char *instance, const struct queue_worker_info *w);
/* The providers of the workers alive now, distinct and sorted, comma-separated
 * into out ("" when no worker is alive).  0 or -EIO... */
int queue_worker_providers(struct queue *q, char *out, size_t cap);
/* The worker is leaving (graceful shutdown): forget it now. */
int queue_worker_gone(struct queue *q, const char *instance);

#endif
