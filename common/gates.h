/*
 * Fleet-wide limits in Redis: provider throttles (RPM, TPM, concurrency
 * leases), circuit breakers, the monthly budget with its kill-switch, and the
 * clients' rate limits.  Each operation is one Lua script (common/lua/
 * throttle_*.lua, breaker_*.lua, budget_*.lua, ratelimit.lua), so every
 * change is atomic and timed by Redis itself; every key carries the queue's
 * {ai-jobs} hash tag (one Cluster slot).  Limits travel as arguments on every
 * call: nothing kept in Redis overrides the configuration.  Design, key
 * layout and what each state means for an operator: docs/operations.md.
 *
 * The worker calls gates_acquire() before and gates_settle() after each
 * provider call (worker/resilience.c decides what to pass); the gateway's
 * admin endpoints and client limits use the rest.
 *
 * Threads: functions take a struct redisx, which belongs to one thread at a
 * time; they keep no state of their own (the scripts are initialised once,
 * thread-safely).  Errors: 0 or -errno: -EIO / -EAGAIN / -ETIMEDOUT Redis
 * unreachable, -EPROTO unexpected reply, -EINVAL bad argument.
 */
#ifndef COMMON_GATES_H
#define COMMON_GATES_H

#include <stdbool.h>
#include <stdint.h>

struct config;
struct redisx;

/* Providers with a throttle and a breaker. */
enum gates_provider { GATES_OPENAI = 0, GATES_AZURE, GATES_PROVIDERS };

/* "openai" / "azure". */
const char *gates_provider_name(enum gates_provider p);
/* The provider of that name, or -EINVAL. */
int gates_provider_from_name(const char *name);

#define GATES_LEASE_ID_LEN   17     /* 16 hex chars + NUL */
#define GATES_LEASE_MAX      160    /* a lease as Redis holds it: id and reservation */
#define GATES_REASON_MAX     200    /* kill-switch reason kept (bytes) */
#define GATES_STATE_LEN      10     /* "HALF_OPEN" + NUL */
#define GATES_CLIENT_ID_MAX  256    /* longest user id / address in a rate-limit key */

struct gates_breaker_cfg {
    long long threshold;          /* CB_FAILURE_THRESHOLD: consecutive faults */
    long long rate_pct;           /* CB_FAILURE_RATE_PCT */
    long long window_calls;       /* CB_WINDOW_CALLS */
    long long min_calls;          /* CB_MIN_CALLS */
    long long open_ms;            /* CB_OPEN_MS */
    long long probes;             /* CB_HALF_OPEN_PROBES */
};
void gates_breaker_cfg_from_config(const struct config *c, struct gates_breaker_cfg *ret);

/* ------------------------------------------------------------ worker: per call */

struct gates_call_cfg {
    long long rpm;                /* calls per minute, > 0 */
    long long tpm;                /* tokens per minute, 0: none */
    long long max_concurrent;     /* > 0 */
    long long lease_ms;           /* a call's slot comes back after this unless settled */
    long long monthly_limit;      /* configured, micro-dollars */
    struct gates_breaker_cfg cb;
};

enum gates_wait_reason {
    GATES_WAIT_NONE = 0,
    GATES_WAIT_KILLSWITCH,
    GATES_WAIT_BREAKER_OPEN,
    GATES_WAIT_BREAKER_PROBING,
    GATES_WAIT_CONCURRENCY,
    GATES_WAIT_RPM,
    GATES_WAIT_TPM,
    GATES_WAIT_BUDGET,
};
/* "killswitch", "breaker_open", ... (the script's words). */
const char *gates_wait_reason_name(enum gates_wait_reason r);

/* A call admitted by gates_acquire, to be passed to gates_settle. */
struct gates_ticket {
    char lease[GATES_LEASE_MAX];  /* the lease as acquire made it (settle names it) */
    enum gates_provider provider;
    long long generation;         /* breaker generation at admission */
    bool probe;                   /* a half-open probe */
};

struct gates_acquire_result {
    bool admitted;                /* true: *ticket is filled; settle it exactly once */
    long long wait_ms;            /* !admitted: come back after this long */
    enum gates_wait_reason reason;
};

/*
 * One round trip: breaker, kill-switch, concurrency lease, RPM, TPM
 * reservation of est_tokens, budget reservation of est_cost (micro-dollars).
 * 0 with *ret filled (and *ticket when admitted), or -errno (nothing taken).
 */
int gates_acquire(struct redisx *r, enum gates_provider p, const struct gates_call_cfg *cfg,
                   long long est_tokens, long long est_cost,
                   struct gates_ticket *ticket, struct gates_acquire_result *ret);

enum gates_result { GATES_RESULT_OK = 0, GATES_RESULT_FAULT, GATES_RESULT_NONE };

struct gates_settle_args {
    enum gates_result result;    /* for the breaker: FAULT only for provider faults */
    long long tokens;             /* reported usage, -1: keep the estimate */
    long long cost;               /* micro-dollars, -1: charge the reservation */
    bool quota;                   /* insufficient_quota: trip the kill-switch */
};

struct gates_settle_result {
    long long spent;              /* this month, micro-dollars */
    bool kill_switch;             /* on after this settle */
    char breaker_state[GATES_STATE_LEN];
};

/* One round trip.  ret may be NULL.  0 or -errno (the lease then expires
 * by itself and its reservation is charged in full). */
int gates_settle(struct redisx *r, const struct gates_call_cfg *cfg, const struct gates_ticket *t,
                  const struct gates_settle_args *a, struct gates_settle_result *ret);

/* ------------------------------------------------------------ breakers */

struct gates_breaker {
    char state[GATES_STATE_LEN]; /* CLOSED | OPEN | HALF_OPEN */
    long long generation;
    long long consecutive_failures;
    long long window_calls, window_failures;
    int64_t opened_at_ms;         /* 0 unless OPEN (or HALF_OPEN after it) */
    int64_t next_retry_ms;        /* when an OPEN breaker lets probes through */
    long long probes_admitted, probes_succeeded;
    long long in_flight;          /* calls holding a concurrency lease */
    int64_t now_ms;
};

/* The real state now (an OPEN breaker whose time is up becomes HALF_OPEN). */
int gates_breaker_status(struct redisx *r, enum gates_provider p, const struct gates_breaker_cfg *cb,
                          long long monthly_limit, struct gates_breaker *ret);
/* Close by hand (new generation).  ret_gen may be NULL. */
int gates_breaker_reset(struct redisx *r, enum gates_provider p, long long *ret_gen);

/* ------------------------------------------------------------ budget */

struct gates_budget {
    bool kill_switch;
    char reason[GATES_REASON_MAX + 1];
    char source[16];              /* admin | budget | quota | "" */
    int64_t since_ms;
    int64_t switch_expires_ms;    /* 0: stays until turned off */
    long long limit;              /* in force, micro-dollars */
    bool limit_overridden;        /* set by an operator, not the configuration */
    long long spent, reserved;    /* this month, micro-dollars */
    long long calls;              /* provider calls admitted this month */
    char month[8];                /* "YYYY-MM" (UTC) */
    int64_t now_ms;
};

int gates_budget_status(struct redisx *r, long long configured_limit, long long cb_open_ms,
                         struct gates_budget *ret);
/* reason may be NULL ("" stored); cut to GATES_REASON_MAX.  ret_was_on may be NULL. */
int gates_killswitch_set(struct redisx *r, bool on, const char *reason, const char *source,
                          bool *ret_was_on);

struct gates_set_limit_result {
    long long previous;           /* the limit in force before */
    bool switch_cleared;          /* the budget's own kill-switch was lifted */
    bool kill_switch;             /* on after the change */
    long long spent;
};
int gates_budget_set_limit(struct redisx *r, long long configured_limit, long long new_limit,
                            struct gates_set_limit_result *ret);

/* ------------------------------------------------------------ client rate limits */

struct gates_rate {
    bool allowed;
    long long limit;
    long long remaining;          /* after this request */
    long long reset_ms;           /* until the full limit is available again */
    long long retry_ms;           /* refused: until one more request is allowed */
};

/*
 * Take (cost 1) or look at (cost 0) one unit of the client's limit: `limit`
 * per window_ms, a bucket of `limit` refilled continuously.  kind names the
 * limit ("ai", "ip"); id the client (1..GATES_CLIENT_ID_MAX bytes, any).
 */
int gates_rate_take(struct redisx *r, const char *kind, const char *id, long long limit,
                     long long window_ms, int cost, struct gates_rate *ret);

/* Throttle state of a provider for operators (no change made). */
struct gates_throttle {
    long long in_flight;          /* concurrency leases held */
    long long tokens_in_window;   /* TPM: tokens of the last 60 s */
    int64_t next_call_ms;         /* RPM: earliest start of the next call (0: now) */
    long long rpm, tpm, max_concurrent;  /* as the workers last passed them (0: unknown) */
    long long avg_call_ms;
    int64_t now_ms;
};
int gates_throttle_status(struct redisx *r, enum gates_provider p, struct gates_throttle *ret);

/* Longest key name the functions build (QUEUE_KEY_PREFIX + kind + name). */
#define GATES_KEY_MAX 400

#endif
