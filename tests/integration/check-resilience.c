/*
 * The fleet-wide gates (common/gates.h and its Lua scripts) against a real
 * redis-server: the decisions every worker and gateway instance share.
 * Each test starts its own redis-server; gates are driven through the C API
 * exactly as worker/resilience.c and gateway/resilience.c drive them, with
 * small limits and short times so that every transition happens within a
 * test.  Waits poll the gate (or Redis) against a deadline; nothing sleeps
 * for readiness.  The process-level behaviour (several workers, the fake
 * provider, the gateways) is check-resilience-fleet.c.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "common/clock.h"
#include "common/gates.h"
#include "common/job.h"
#include "common/queue.h"
#include "common/redisx.h"
#include "tests/support/fixture.h"
#include "worker/provider.h"
#include "worker/resilience.h"

#define P QUEUE_KEY_PREFIX
#define WAIT_MS 10000
#define BIG 1000000000LL

struct env {
    struct fx_redis rs;
    struct redisx *rx;
    redisContext *c;
};

static void env_start(struct env *e)
{
    memset(e, 0, sizeof(*e));
    ck_assert_int_eq(fx_redis_start(&e->rs, false), 0);
    struct redis_target t = {
        .host = "127.0.0.1", .port = e->rs.port, .connect_timeout_ms = 2000,
        .command_timeout_ms = 5000, .retry_max_ms = 200,
    };
    e->rx = redisx_new(&t);
    ck_assert_ptr_nonnull(e->rx);
    e->c = fx_redis_connect(&e->rs);
    ck_assert_ptr_nonnull(e->c);
}

static void env_done(struct env *e)
{
    redisFree(e->c);
    redisx_free(e->rx);
    fx_redis_done(&e->rs);
}

/* Limits that admit everything unless a test narrows one. */
static struct gates_call_cfg open_cfg(void)
{
    return (struct gates_call_cfg){
        .rpm = 6000000, .tpm = 0, .max_concurrent = 10000, .lease_ms = 30000, .monthly_limit = BIG,
        .cb = { .threshold = 1000, .rate_pct = 100, .window_calls = 1000, .min_calls = 1000,
                .open_ms = 300, .probes = 2 },
    };
}

static struct gates_acquire_result acquire(struct env *e, const struct gates_call_cfg *cfg, long long tokens,
                                           long long cost, struct gates_ticket *t)
{
    struct gates_acquire_result r;
    ck_assert_int_eq(gates_acquire(e->rx, GATES_OPENAI, cfg, tokens, cost, t, &r), 0);
    return r;
}

static void must_admit(struct env *e, const struct gates_call_cfg *cfg, long long tokens, long long cost,
                       struct gates_ticket *t)
{
    struct gates_acquire_result r = acquire(e, cfg, tokens, cost, t);
    ck_assert_msg(r.admitted, "refused: %s, wait %lld ms", gates_wait_reason_name(r.reason), r.wait_ms);
}

static struct gates_acquire_result must_wait(struct env *e, const struct gates_call_cfg *cfg, long long tokens,
                                             long long cost, enum gates_wait_reason why)
{
    struct gates_ticket t;
    struct gates_acquire_result r = acquire(e, cfg, tokens, cost, &t);
    ck_assert_msg(!r.admitted, "admitted, expected a wait for %s", gates_wait_reason_name(why));
    ck_assert_msg(r.reason == why, "waits for %s, expected %s", gates_wait_reason_name(r.reason),
                  gates_wait_reason_name(why));
    ck_assert_int_gt(r.wait_ms, 0);
    return r;
}

/* Poll until the gate admits a call (deadline WAIT_MS); returns how long it took. */
static int64_t admit_eventually(struct env *e, const struct gates_call_cfg *cfg, long long tokens, long long cost,
                                struct gates_ticket *t)
{
    int64_t t0 = clock_mono_ms();
    for (;;) {
        struct gates_acquire_result r = acquire(e, cfg, tokens, cost, t);
        if (r.admitted)
            return clock_mono_ms() - t0;
        ck_assert_msg(clock_mono_ms() - t0 < WAIT_MS, "never admitted (last: %s)", gates_wait_reason_name(r.reason));
        clock_sleep_ms(5);
    }
}

static void settle(struct env *e, const struct gates_call_cfg *cfg, const struct gates_ticket *t,
                   enum gates_result res, long long tokens, long long cost)
{
    struct gates_settle_args a = { .result = res, .tokens = tokens, .cost = cost };
    ck_assert_int_eq(gates_settle(e->rx, cfg, t, &a, NULL), 0);
}

static struct gates_breaker breaker(struct env *e, const struct gates_call_cfg *cfg)
{
    struct gates_breaker b;
    ck_assert_int_eq(gates_breaker_status(e->rx, GATES_OPENAI, &cfg->cb, cfg->monthly_limit, &b), 0);
    return b;
}

static struct gates_budget budget(struct env *e, long long configured)
{
    struct gates_budget b;
    ck_assert_int_eq(gates_budget_status(e->rx, configured, 300, &b), 0);
    return b;
}

static long long redis_int(struct env *e, const char *fmt, const char *key)
{
    redisReply *r = redisCommand(e->c, fmt, key);
    ck_assert_ptr_nonnull(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -999;
    freeReplyObject(r);
    return v;
}

/* ------------------------------------------------------------ throttles */

/* RPM is GCRA without burst: one call per 60 s / RPM, the next caller is
 * told exactly how long, and callers refused together get staggered waits. */
START_TEST(rpm_spacing)
{
    struct env e;
    env_start(&e);
    struct gates_call_cfg cfg = open_cfg();
    cfg.rpm = 300;                                    /* one call every 200 ms */
    struct gates_ticket t;
    must_admit(&e, &cfg, 10, 0, &t);
    struct gates_acquire_result w1 = must_wait(&e, &cfg, 10, 0, GATES_WAIT_RPM);
    struct gates_acquire_result w2 = must_wait(&e, &cfg, 10, 0, GATES_WAIT_RPM);
    struct gates_acquire_result w3 = must_wait(&e, &cfg, 10, 0, GATES_WAIT_RPM);
    ck_assert_int_le(w1.wait_ms, 201);                /* ms rounding */
    ck_assert_int_ge(w1.wait_ms, 150);
    /* the second and third waiters are told to come back one slot later each */
    ck_assert_int_ge(w2.wait_ms, w1.wait_ms + 150);
    ck_assert_int_ge(w3.wait_ms, w2.wait_ms + 150);

    /* admissions never come closer than the interval */
    admit_eventually(&e, &cfg, 10, 0, &t);
    int64_t last = clock_mono_ms();
    for (int i = 0; i < 5; i++) {
        admit_eventually(&e, &cfg, 10, 0, &t);
        int64_t now = clock_mono_ms();
        ck_assert_int_ge(now - last, 190);            /* 200 ms, minus timer granularity */
        last = now;
    }
    env_done(&e);
}
END_TEST

/* Concurrency: leases are held until settled; a lease nobody settles (a
 * killed worker) comes back by itself at its expiry, and its budget
 * reservation is charged in full. */
START_TEST(concurrency_leases)
{
    struct env e;
    env_start(&e);
    struct gates_call_cfg cfg = open_cfg();
    cfg.max_concurrent = 2;
    cfg.lease_ms = 600;
    struct gates_ticket a, b, c;
    must_admit(&e, &cfg, 10, 70, &a);
    must_admit(&e, &cfg, 10, 30, &b);
    must_wait(&e, &cfg, 10, 30, GATES_WAIT_CONCURRENCY);
    settle(&e, &cfg, &b, GATES_RESULT_OK, 5, 20);
    must_admit(&e, &cfg, 10, 30, &c);
    must_wait(&e, &cfg, 10, 30, GATES_WAIT_CONCURRENCY);
    struct gates_budget bs = budget(&e, cfg.monthly_limit);
    ck_assert_int_eq(bs.spent, 20);
    ck_assert_int_eq(bs.reserved, 100);

    /* nobody settles a and c: both slots return when their leases expire */
    int64_t took = admit_eventually(&e, &cfg, 10, 0, &b);
    ck_assert_int_ge(took, 400);                      /* not before the lease ran out */
    struct gates_ticket d;
    admit_eventually(&e, &cfg, 10, 0, &d);            /* and so does the second */
    bs = budget(&e, cfg.monthly_limit);
    ck_assert_int_eq(bs.spent, 20 + 70 + 30);         /* charged at the estimate */
    ck_assert_int_eq(bs.reserved, 0);
    /* a late settle of an expired lease changes nothing */
    settle(&e, &cfg, &a, GATES_RESULT_OK, 1, 1);
    ck_assert_int_eq(budget(&e, cfg.monthly_limit).spent, 120);
    env_done(&e);
}
END_TEST

/* TPM: estimates are reserved in a sliding 60 s window and settled to the
 * reported usage. */
START_TEST(tpm_reserve_and_settle)
{
    struct env e;
    env_start(&e);
    struct gates_call_cfg cfg = open_cfg();
    cfg.tpm = 1000;
    struct gates_ticket a, b;
    must_admit(&e, &cfg, 600, 0, &a);
    struct gates_acquire_result w = must_wait(&e, &cfg, 600, 0, GATES_WAIT_TPM);
    ck_assert_int_gt(w.wait_ms, 55000);               /* the window must slide past the first call */
    settle(&e, &cfg, &a, GATES_RESULT_OK, 100, 0);    /* it used 100 of its 600 */
    must_admit(&e, &cfg, 600, 0, &b);                 /* 100 + 600 <= 1000 */
    must_wait(&e, &cfg, 400, 0, GATES_WAIT_TPM);      /* 700 + 400 > 1000 */
    struct gates_throttle th;
    ck_assert_int_eq(gates_throttle_status(e.rx, GATES_OPENAI, &th), 0);
    ck_assert_int_eq(th.tokens_in_window, 700);
    ck_assert_int_eq(th.in_flight, 1);
    /* a call larger than the whole TPM still runs, alone */
    struct env e2;
    env_start(&e2);
    must_admit(&e2, &cfg, 5000, 0, &a);
    must_wait(&e2, &cfg, 1, 0, GATES_WAIT_TPM);
    env_done(&e2);
    env_done(&e);
}
END_TEST

/* ------------------------------------------------------------ breakers */

static void fault_n(struct env *e, const struct gates_call_cfg *cfg, int n)
{
    for (int i = 0; i < n; i++) {
        struct gates_ticket t;
        must_admit(e, cfg, 1, 0, &t);
        settle(e, cfg, &t, GATES_RESULT_FAULT, -1, 0);
    }
}

/* Consecutive faults open the breaker; open, it refuses until CB_OPEN_MS;
 * then exactly CB_HALF_OPEN_PROBES probes pass; all succeed -> CLOSED. */
START_TEST(breaker_cycle)
{
    struct env e;
    env_start(&e);
    struct gates_call_cfg cfg = open_cfg();
    cfg.cb.threshold = 3;
    cfg.cb.open_ms = 400;
    fault_n(&e, &cfg, 2);
    ck_assert_str_eq(breaker(&e, &cfg).state, "CLOSED");
    ck_assert_int_eq(breaker(&e, &cfg).consecutive_failures, 2);
    fault_n(&e, &cfg, 1);
    struct gates_breaker b = breaker(&e, &cfg);
    ck_assert_str_eq(b.state, "OPEN");
    ck_assert_int_eq(b.next_retry_ms - b.opened_at_ms, 400);
    struct gates_acquire_result w = must_wait(&e, &cfg, 1, 0, GATES_WAIT_BREAKER_OPEN);
    ck_assert_int_le(w.wait_ms, 400);

    /* status moves OPEN to HALF_OPEN when its time is up */
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    while (strcmp(breaker(&e, &cfg).state, "OPEN") == 0) {
        ck_assert(clock_mono_ms() < deadline);
        clock_sleep_ms(10);
    }
    ck_assert_str_eq(breaker(&e, &cfg).state, "HALF_OPEN");
    struct gates_ticket p1, p2;
    must_admit(&e, &cfg, 1, 0, &p1);
    must_admit(&e, &cfg, 1, 0, &p2);
    ck_assert(p1.probe && p2.probe);
    must_wait(&e, &cfg, 1, 0, GATES_WAIT_BREAKER_PROBING);   /* only the probes */
    settle(&e, &cfg, &p1, GATES_RESULT_OK, 1, 0);
    must_wait(&e, &cfg, 1, 0, GATES_WAIT_BREAKER_PROBING);
    ck_assert_int_eq(breaker(&e, &cfg).probes_succeeded, 1);
    settle(&e, &cfg, &p2, GATES_RESULT_OK, 1, 0);
    b = breaker(&e, &cfg);
    ck_assert_str_eq(b.state, "CLOSED");
    ck_assert_int_eq(b.window_calls, 0);
    struct gates_ticket t;
    must_admit(&e, &cfg, 1, 0, &t);
    ck_assert(!t.probe);
    env_done(&e);
}
END_TEST

/* A probe fault opens the breaker again (new generation); a probe whose
 * lease expires unsettled (worker killed) counts as lost: OPEN again. */
START_TEST(breaker_probe_fault_and_lost_probe)
{
    struct env e;
    env_start(&e);
    struct gates_call_cfg cfg = open_cfg();
    cfg.cb.threshold = 1;
    cfg.cb.open_ms = 200;
    cfg.lease_ms = 300;
    fault_n(&e, &cfg, 1);
    long long g_open = breaker(&e, &cfg).generation;
    struct gates_ticket p1;
    admit_eventually(&e, &cfg, 1, 0, &p1);
    ck_assert(p1.probe);
    ck_assert_int_eq(p1.generation, g_open + 1);
    settle(&e, &cfg, &p1, GATES_RESULT_FAULT, -1, 0);
    struct gates_breaker b = breaker(&e, &cfg);
    ck_assert_str_eq(b.state, "OPEN");
    ck_assert_int_eq(b.generation, g_open + 2);

    /* the next probe is never settled */
    admit_eventually(&e, &cfg, 1, 0, &p1);
    ck_assert(p1.probe);
    struct gates_ticket p2;
    must_admit(&e, &cfg, 1, 0, &p2);                  /* second probe slot */
    settle(&e, &cfg, &p2, GATES_RESULT_OK, 1, 0);
    ck_assert_str_eq(breaker(&e, &cfg).state, "HALF_OPEN");
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    while (strcmp(breaker(&e, &cfg).state, "HALF_OPEN") == 0) {
        ck_assert(clock_mono_ms() < deadline);
        clock_sleep_ms(10);
    }
    ck_assert_str_eq(breaker(&e, &cfg).state, "OPEN");
    env_done(&e);
}
END_TEST

/* Failure rate over the sliding window, judged from the minimum number of calls. */
START_TEST(breaker_failure_rate)
{
    struct env e;
    env_start(&e);
    struct gates_call_cfg cfg = open_cfg();
    cfg.cb.threshold = 100;
    cfg.cb.rate_pct = 50;
    cfg.cb.window_calls = 6;
    cfg.cb.min_calls = 4;
    enum gates_result seq[] = { GATES_RESULT_FAULT, GATES_RESULT_OK, GATES_RESULT_FAULT };
    for (size_t i = 0; i < 3; i++) {
        struct gates_ticket t;
        must_admit(&e, &cfg, 1, 0, &t);
        settle(&e, &cfg, &t, seq[i], -1, 0);
    }
    ck_assert_str_eq(breaker(&e, &cfg).state, "CLOSED");   /* 2 of 3, below the minimum */
    struct gates_ticket t;
    must_admit(&e, &cfg, 1, 0, &t);
    settle(&e, &cfg, &t, GATES_RESULT_OK, -1, 0);
    ck_assert_str_eq(breaker(&e, &cfg).state, "OPEN");     /* 2 of 4 = 50 % */

    /* the window slides: old faults leave it */
    gates_breaker_reset(e.rx, GATES_OPENAI, NULL);
    /* below 50 % at every step while the window slides over old results */
    enum gates_result seq3[] = { GATES_RESULT_OK, GATES_RESULT_OK, GATES_RESULT_OK, GATES_RESULT_FAULT,
                                 GATES_RESULT_OK, GATES_RESULT_OK, GATES_RESULT_FAULT, GATES_RESULT_OK,
                                 GATES_RESULT_OK };
    for (size_t i = 0; i < sizeof(seq3) / sizeof(seq3[0]); i++) {
        must_admit(&e, &cfg, 1, 0, &t);
        settle(&e, &cfg, &t, seq3[i], -1, 0);
        ck_assert_str_eq(breaker(&e, &cfg).state, "CLOSED");
    }
    struct gates_breaker b = breaker(&e, &cfg);
    ck_assert_int_eq(b.window_calls, 6);
    ck_assert_int_eq(b.window_failures, 2);
    env_done(&e);
}
END_TEST

/* Results of calls admitted under an older generation are ignored: a slow
 * success from before the breaker opened does not close it, a late fault
 * from before an operator's reset does not count. */
START_TEST(breaker_generations)
{
    struct env e;
    env_start(&e);
    struct gates_call_cfg cfg = open_cfg();
    cfg.cb.threshold = 2;
    cfg.cb.open_ms = 60000;
    struct gates_ticket slow, late[2];
    must_admit(&e, &cfg, 1, 0, &slow);
    must_admit(&e, &cfg, 1, 0, &late[0]);
    must_admit(&e, &cfg, 1, 0, &late[1]);
    fault_n(&e, &cfg, 2);
    ck_assert_str_eq(breaker(&e, &cfg).state, "OPEN");
    settle(&e, &cfg, &slow, GATES_RESULT_OK, 1, 0);
    ck_assert_str_eq(breaker(&e, &cfg).state, "OPEN");

    long long gen = 0;
    ck_assert_int_eq(gates_breaker_reset(e.rx, GATES_OPENAI, &gen), 0);
    struct gates_breaker b = breaker(&e, &cfg);
    ck_assert_str_eq(b.state, "CLOSED");
    ck_assert_int_eq(b.generation, gen);
    settle(&e, &cfg, &late[0], GATES_RESULT_FAULT, -1, 0);
    settle(&e, &cfg, &late[1], GATES_RESULT_FAULT, -1, 0);
    b = breaker(&e, &cfg);
    ck_assert_str_eq(b.state, "CLOSED");
    ck_assert_int_eq(b.consecutive_failures, 0);
    /* 'none' (cancelled) is neither a success nor a fault */
    struct gates_ticket t;
    must_admit(&e, &cfg, 1, 0, &t);
    settle(&e, &cfg, &t, GATES_RESULT_NONE, -1, 0);
    ck_assert_int_eq(breaker(&e, &cfg).window_calls, 0);
    env_done(&e);
}
END_TEST

/* Only provider faults count: 5xx, timeouts, connection errors; never a
 * 4xx, a 429, a provider's quota answer, or an unusable 200. */
START_TEST(fault_classification)
{
    struct job_params p = { .type = JOB_TYPE_FLASHCARDS, .content = "Der Hund schlaeft.", .subject = "German",
                            .topic = "Animals" };
    struct { long status; int terr; const char *body; bool fault; } cases[] = {
        { 500, 0, "{\"error\":{\"message\":\"boom\"}}", true },
        { 503, 0, "", true },
        { 0, -ETIMEDOUT, NULL, true },
        { 0, -ECONNREFUSED, NULL, true },
        { 0, -ECONNRESET, NULL, true },
        { 400, 0, "{\"error\":{\"message\":\"bad\",\"type\":\"invalid_request_error\"}}", false },
        { 401, 0, "{\"error\":{\"message\":\"key\"}}", false },
        { 404, 0, "", false },
        { 408, 0, "", false },
        { 429, 0, "{\"error\":{\"message\":\"slow down\",\"type\":\"requests\"}}", false },
        { 429, 0, "{\"error\":{\"message\":\"quota\",\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\"}}", false },
        { 200, 0, "this is not json", false },
        { 200, 0, "{\"choices\":[{\"message\":{\"content\":\"no json here\"}}]}", false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct outcome o = { .retry_after_ms = -1 };
        const char *b = cases[i].body;
        reply_classify(&p, "openai", "gpt-4o-mini", cases[i].terr, cases[i].status, NULL, NULL, b,
                       b ? strlen(b) : 0, &o);
        ck_assert_msg(resilience_is_fault(&o) == cases[i].fault, "case %zu (HTTP %ld, %d): %s -> fault %d",
                      i, cases[i].status, cases[i].terr, o.error_code, resilience_is_fault(&o));
        outcome_done(&o);
    }
}
END_TEST

/* ------------------------------------------------------------ budget */

/* Reservations keep concurrent calls within the month's limit; the switch
 * trips when the next call cannot fit, and is the queue's kill-switch:
 * enqueue refuses, paid claims hand out nothing. */
START_TEST(budget_reserve_and_trip)
{
    struct env e;
    env_start(&e);
    struct gates_call_cfg cfg = open_cfg();
    cfg.monthly_limit = 1000;
    struct gates_ticket t[3];
    for (int i = 0; i < 3; i++)
        must_admit(&e, &cfg, 1, 300, &t[i]);
    must_wait(&e, &cfg, 1, 300, GATES_WAIT_BUDGET);        /* 900 reserved + 300 > 1000 */
    ck_assert_int_eq(budget(&e, 1000).reserved, 900);
    settle(&e, &cfg, &t[0], GATES_RESULT_OK, 10, 250);
    settle(&e, &cfg, &t[1], GATES_RESULT_FAULT, -1, 0);    /* an error answer costs nothing */
    struct gates_ticket t4;
    must_admit(&e, &cfg, 1, 300, &t4);                      /* 250 + 300 + 300 */
    settle(&e, &cfg, &t[2], GATES_RESULT_OK, 10, 300);
    settle(&e, &cfg, &t4, GATES_RESULT_NONE, -1, -1);       /* no answer: charged at the estimate */
    struct gates_budget b = budget(&e, 1000);
    ck_assert_int_eq(b.spent, 850);
    ck_assert_int_eq(b.reserved, 0);
    ck_assert(!b.kill_switch);
    /* 850 + 300 > 1000: this call can never fit this month -> the switch trips */
    must_wait(&e, &cfg, 1, 300, GATES_WAIT_KILLSWITCH);
    b = budget(&e, 1000);
    ck_assert(b.kill_switch);
    ck_assert_str_eq(b.source, "budget");
    ck_assert_ptr_nonnull(strstr(b.reason, "Monthly budget limit reached"));
    ck_assert_int_gt(b.switch_expires_ms, b.now_ms);        /* lifted when the month ends */
    ck_assert_int_le(b.switch_expires_ms - b.now_ms, 31LL * 86400 * 1000);
    ck_assert(b.spent <= b.limit);

    /* it is the queue's switch */
    struct queue_limits ql = { .max_attempts = 3, .backoff_ms = 10, .lease_ms = 30000, .deadline_ms = 600000,
                               .ttl_s = 3600, .events_max = 50, .max_waiting = 100, .heartbeat_ms = 1000 };
    struct queue *q = queue_new(e.rx, &ql);
    ck_assert_ptr_nonnull(q);
    struct job_params p = { .type = JOB_TYPE_FLASHCARDS, .content = "Hallo Welt", .subject = "s", .topic = "t",
                            .native_language = "English", .target_language = "German" };
    struct queue_enqueue_result er;
    memset(&er, 0, sizeof(er));
    ck_assert_int_eq(queue_enqueue(q, "u1", &p, NULL, &er), -EPERM);

    /* an operator raises the limit: the budget's own switch is lifted */
    struct gates_set_limit_result sl;
    ck_assert_int_eq(gates_budget_set_limit(e.rx, 1000, 5000, &sl), 0);
    ck_assert_int_eq(sl.previous, 1000);
    ck_assert(sl.switch_cleared);
    ck_assert(!sl.kill_switch);
    must_admit(&e, &cfg, 1, 300, &t[0]);
    ck_assert_int_eq(queue_enqueue(q, "u1", &p, NULL, &er), 0);
    queue_enqueue_result_done(&er);
    b = budget(&e, 1000);
    ck_assert_int_eq(b.limit, 5000);
    ck_assert(b.limit_overridden);
    /* a restart with another configured limit: the configuration wins again */
    b = budget(&e, 2000);
    ck_assert_int_eq(b.limit, 2000);
    ck_assert(!b.limit_overridden);
    queue_free(q);
    env_done(&e);
}
END_TEST

/* insufficient_quota and an operator both set the switch; an operator's
 * switch is not lifted by a limit change, only by turning it off. */
START_TEST(killswitch_sources)
{
    struct env e;
    env_start(&e);
    struct gates_call_cfg cfg = open_cfg();
    struct gates_ticket t;
    must_admit(&e, &cfg, 1, 5, &t);
    struct gates_settle_args a = { .result = GATES_RESULT_OK, .tokens = 0, .cost = 0, .quota = true };
    struct gates_settle_result sr;
    ck_assert_int_eq(gates_settle(e.rx, &cfg, &t, &a, &sr), 0);
    ck_assert(sr.kill_switch);
    struct gates_budget b = budget(&e, cfg.monthly_limit);
    ck_assert_str_eq(b.source, "quota");
    ck_assert_int_eq(b.switch_expires_ms, 0);
    must_wait(&e, &cfg, 1, 5, GATES_WAIT_KILLSWITCH);
    bool was = false;
    ck_assert_int_eq(gates_killswitch_set(e.rx, false, NULL, NULL, &was), 0);
    ck_assert(was);
    must_admit(&e, &cfg, 1, 5, &t);

    ck_assert_int_eq(gates_killswitch_set(e.rx, true, "Maintenance window", "admin", &was), 0);
    ck_assert(!was);
    b = budget(&e, cfg.monthly_limit);
    ck_assert(b.kill_switch);
    ck_assert_str_eq(b.reason, "Maintenance window");
    ck_assert_str_eq(b.source, "admin");
    struct gates_set_limit_result sl;
    ck_assert_int_eq(gates_budget_set_limit(e.rx, cfg.monthly_limit, BIG * 10, &sl), 0);
    ck_assert(!sl.switch_cleared);
    ck_assert(sl.kill_switch);
    ck_assert_int_eq(redis_int(&e, "EXISTS %s", QUEUE_KILLSWITCH_KEY), 1);
    ck_assert_int_eq(redis_int(&e, "PTTL %s", QUEUE_KILLSWITCH_KEY), -1);
    /* a long reason is cut at a character boundary */
    char longr[400];
    memset(longr, 'a', sizeof(longr));
    memcpy(longr + GATES_REASON_MAX - 1, "\xc3\xa9", 2);
    longr[sizeof(longr) - 1] = 0;
    ck_assert_int_eq(gates_killswitch_set(e.rx, true, longr, "admin", NULL), 0);
    b = budget(&e, cfg.monthly_limit);
    ck_assert_uint_eq(strlen(b.reason), GATES_REASON_MAX - 1);
    env_done(&e);
}
END_TEST

/* Concurrent acquirers on separate connections never overspend: the sum of
 * reservations and spend stays within the limit at every admission. */
START_TEST(budget_concurrent_never_overspends)
{
    struct env e;
    env_start(&e);
    struct gates_call_cfg cfg = open_cfg();
    cfg.monthly_limit = 10000;
    enum { CONNS = 8 };
    struct redisx *rx[CONNS];
    struct redis_target tg = { .host = "127.0.0.1", .port = e.rs.port, .connect_timeout_ms = 2000,
                               .command_timeout_ms = 5000, .retry_max_ms = 200 };
    for (int i = 0; i < CONNS; i++)
        rx[i] = redisx_new(&tg);
    /* interleave acquires over the connections, settle some at full cost */
    struct gates_ticket held[64];
    int nheld = 0, admitted = 0;
    for (int round = 0; round < 200 && nheld < 64; round++) {
        struct gates_acquire_result r;
        struct gates_ticket t;
        ck_assert_int_eq(gates_acquire(rx[round % CONNS], GATES_OPENAI, &cfg, 1, 700, &t, &r), 0);
        if (r.admitted) {
            admitted++;
            held[nheld++] = t;
        }
        if (nheld > 3) {
            struct gates_settle_args a = { .result = GATES_RESULT_OK, .tokens = 1, .cost = 700 };
            ck_assert_int_eq(gates_settle(rx[(round + 3) % CONNS], &cfg, &held[0], &a, NULL), 0);
            memmove(held, held + 1, sizeof(held[0]) * (size_t)--nheld);
        }
        struct gates_budget b = budget(&e, cfg.monthly_limit);
        ck_assert_int_le(b.spent + b.reserved, cfg.monthly_limit);
    }
    for (int i = 0; i < nheld; i++) {
        struct gates_settle_args a = { .result = GATES_RESULT_OK, .tokens = 1, .cost = 700 };
        ck_assert_int_eq(gates_settle(rx[i % CONNS], &cfg, &held[i], &a, NULL), 0);
    }
    ck_assert_int_eq(admitted, 14);                   /* 14 * 700 = 9800 <= 10000 < 15 * 700 */
    must_wait(&e, &cfg, 1, 700, GATES_WAIT_KILLSWITCH);
    struct gates_budget b = budget(&e, cfg.monthly_limit);
    ck_assert(b.kill_switch);
    ck_assert_int_eq(b.spent, 9800);
    for (int i = 0; i < CONNS; i++)
        redisx_free(rx[i]);
    env_done(&e);
}
END_TEST

/* ------------------------------------------------------------ client limits */

START_TEST(client_rate_limit)
{
    struct env e;
    env_start(&e);
    struct gates_rate r;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(gates_rate_take(e.rx, "ai", "alice", 5, 60000, 1, &r), 0);
        ck_assert(r.allowed);
        ck_assert_int_eq(r.remaining, 4 - i);
        ck_assert_int_le(r.reset_ms, 60000);
    }
    ck_assert_int_eq(gates_rate_take(e.rx, "ai", "alice", 5, 60000, 1, &r), 0);
    ck_assert(!r.allowed);
    ck_assert_int_eq(r.remaining, 0);
    ck_assert_int_gt(r.retry_ms, 11000);              /* one request every 12 s */
    ck_assert_int_le(r.retry_ms, 12000);
    /* another user, another kind: their own buckets */
    ck_assert_int_eq(gates_rate_take(e.rx, "ai", "bob", 5, 60000, 1, &r), 0);
    ck_assert(r.allowed);
    ck_assert_int_eq(gates_rate_take(e.rx, "ip", "alice", 5, 60000, 1, &r), 0);
    ck_assert(r.allowed);
    /* looking does not take */
    ck_assert_int_eq(gates_rate_take(e.rx, "ai", "bob", 5, 60000, 0, &r), 0);
    ck_assert_int_eq(r.remaining, 4);
    ck_assert_int_eq(gates_rate_take(e.rx, "ai", "bob", 5, 60000, 0, &r), 0);
    ck_assert_int_eq(r.remaining, 4);
    /* keys expire once full again */
    long long pttl = redis_int(&e, "PTTL %s", P "rl:ai:alice");
    ck_assert_int_gt(pttl, 0);
    ck_assert_int_le(pttl, 60001);
    /* refill: a 100 ms window refills within it */
    for (int i = 0; i < 3; i++)
        gates_rate_take(e.rx, "ip", "fast", 3, 100, 1, &r);
    ck_assert_int_eq(gates_rate_take(e.rx, "ip", "fast", 3, 100, 1, &r), 0);
    ck_assert(!r.allowed);
    int64_t deadline = clock_mono_ms() + WAIT_MS;
    do {
        ck_assert(clock_mono_ms() < deadline);
        clock_sleep_ms(5);
        ck_assert_int_eq(gates_rate_take(e.rx, "ip", "fast", 3, 100, 1, &r), 0);
    } while (!r.allowed);
    ck_assert_int_eq(gates_rate_take(e.rx, "ai", "", 5, 60000, 1, &r), -EINVAL);
    env_done(&e);
}
END_TEST

/* Every key the gates write expires or is bounded by a configured size. */
START_TEST(keys_are_bounded)
{
    struct env e;
    env_start(&e);
    struct gates_call_cfg cfg = open_cfg();
    cfg.tpm = 100000;
    cfg.monthly_limit = 100;
    struct gates_ticket t;
    must_admit(&e, &cfg, 10, 10, &t);
    settle(&e, &cfg, &t, GATES_RESULT_FAULT, 5, 5);
    must_admit(&e, &cfg, 10, 10, &t);                    /* holds a lease */
    struct gates_rate r;
    gates_rate_take(e.rx, "ip", "127.0.0.1", 10, 60000, 1, &r);
    gates_budget_set_limit(e.rx, 100, 200, NULL);
    gates_killswitch_set(e.rx, true, "x", "admin", NULL);
    redisReply *keys = redisCommand(e.c, "KEYS *");
    ck_assert_ptr_nonnull(keys);
    ck_assert_uint_gt(keys->elements, 6);
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        ck_assert_msg(strncmp(k, P, strlen(P)) == 0, "key %s lacks the {ai-jobs} tag", k);
        long long ttl = redis_int(&e, "PTTL %s", k);
        /* without TTL: the leases (<= max concurrent, taken back by the next
         * call or status read) and the operator's kill-switch */
        bool bounded = strstr(k, ":leases") || strcmp(k, QUEUE_KILLSWITCH_KEY) == 0;
        ck_assert_msg(ttl > 0 || bounded, "key %s has no TTL", k);
    }
    freeReplyObject(keys);
    env_done(&e);
}
END_TEST

/* Redis unreachable: every call fails with -errno, nothing crashes. */
START_TEST(redis_down)
{
    struct env e;
    env_start(&e);
    fx_redis_kill(&e.rs);
    struct gates_call_cfg cfg = open_cfg();
    struct gates_ticket t;
    struct gates_acquire_result ar;
    ck_assert_int_lt(gates_acquire(e.rx, GATES_OPENAI, &cfg, 1, 1, &t, &ar), 0);
    struct gates_rate r;
    ck_assert_int_lt(gates_rate_take(e.rx, "ip", "x", 5, 60000, 1, &r), 0);
    struct gates_budget b;
    ck_assert_int_lt(gates_budget_status(e.rx, 100, 100, &b), 0);
    env_done(&e);
}
END_TEST

/* Every script on a one-node cluster owning all slots, where Redis enforces
 * that a script touches only its declared keys' slot (strict mode): the
 * keys computed inside (the month's budget) share the {ai-jobs} tag. */
START_TEST(scripts_keep_to_one_cluster_slot)
{
    char *dir = fixture_mkdtemp("cluster");
    ck_assert_ptr_nonnull(dir);
    int port = fixture_free_port(), bus = fixture_free_port();
    for (int i = 0; bus == port && i < 10; i++)
        bus = fixture_free_port();
    ck_assert(port > 0 && bus > 0 && bus != port);
    char ports[16], buss[16];
    snprintf(ports, sizeof(ports), "%d", port);
    snprintf(buss, sizeof(buss), "%d", bus);
    const char *argv[] = { "redis-server", "--port", ports, "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-port", buss,
                           "--cluster-config-file", "nodes.conf", "--dir", dir, NULL };
    struct fx_proc srv;
    ck_assert_int_eq(fx_proc_start(&srv, "redis-cluster", fixture_bin("REDIS_SERVER", "redis-server"), argv, NULL), 0);
    redisContext *c = NULL;
    int64_t end = clock_mono_ms() + WAIT_MS;
    for (;;) {
        c = redisConnect("127.0.0.1", port);
        redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (ok)
            break;
        if (c)
            redisFree(c);
        ck_assert_msg(fx_proc_running(&srv) && clock_mono_ms() < end, "redis-server (cluster) not ready");
        clock_sleep_ms(10);
    }
    redisReply *r = redisCommand(c, "CLUSTER ADDSLOTSRANGE 0 16383");
    ck_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    for (;;) {
        r = redisCommand(c, "CLUSTER INFO");
        bool ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok");
        freeReplyObject(r);
        if (ok)
            break;
        ck_assert(clock_mono_ms() < end);
        clock_sleep_ms(10);
    }
    /* the check is real */
    r = redisCommand(c, "EVAL %s 1 %s", "#!lua\nreturn redis.call('GET', 'other')", P "x");
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);

    struct redis_target t = { .host = "127.0.0.1", .port = port, .connect_timeout_ms = 2000,
                              .command_timeout_ms = 5000, .retry_max_ms = 200 };
    struct redisx *rx = redisx_new(&t);
    struct gates_call_cfg cfg = open_cfg();
    cfg.tpm = 1000000;
    cfg.monthly_limit = 100000;
    struct gates_ticket tk;
    struct gates_acquire_result ar;
    ck_assert_int_eq(gates_acquire(rx, GATES_OPENAI, &cfg, 10, 10, &tk, &ar), 0);
    ck_assert(ar.admitted);
    struct gates_settle_args sa = { .result = GATES_RESULT_FAULT, .tokens = 5, .cost = 5, .quota = true };
    ck_assert_int_eq(gates_settle(rx, &cfg, &tk, &sa, NULL), 0);
    struct gates_breaker b;
    ck_assert_int_eq(gates_breaker_status(rx, GATES_AZURE, &cfg.cb, cfg.monthly_limit, &b), 0);
    ck_assert_int_eq(gates_breaker_reset(rx, GATES_OPENAI, NULL), 0);
    struct gates_budget bs;
    ck_assert_int_eq(gates_budget_status(rx, cfg.monthly_limit, 300, &bs), 0);
    ck_assert_int_eq(bs.spent, 5);
    ck_assert(bs.kill_switch);
    ck_assert_int_eq(gates_killswitch_set(rx, false, NULL, NULL, NULL), 0);
    ck_assert_int_eq(gates_budget_set_limit(rx, cfg.monthly_limit, 200000, NULL), 0);
    struct gates_rate rl;
    ck_assert_int_eq(gates_rate_take(rx, "ip", "127.0.0.1", 5, 60000, 1, &rl), 0);
    struct gates_throttle th;
    ck_assert_int_eq(gates_throttle_status(rx, GATES_OPENAI, &th), 0);
    redisx_free(rx);
    redisFree(c);
    fx_proc_stop(&srv, 0);
    fx_proc_done(&srv);
    fixture_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *resilience_suite(void)
{
    Suite *s = suite_create("resilience");
    TCase *tc = tcase_create("throttles");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rpm_spacing);
    tcase_add_test(tc, concurrency_leases);
    tcase_add_test(tc, tpm_reserve_and_settle);
    suite_add_tcase(s, tc);
    tc = tcase_create("breakers");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, breaker_cycle);
    tcase_add_test(tc, breaker_probe_fault_and_lost_probe);
    tcase_add_test(tc, breaker_failure_rate);
    tcase_add_test(tc, breaker_generations);
    tcase_add_test(tc, fault_classification);
    suite_add_tcase(s, tc);
    tc = tcase_create("budget");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, budget_reserve_and_trip);
    tcase_add_test(tc, killswitch_sources);
    tcase_add_test(tc, budget_concurrent_never_overspends);
    suite_add_tcase(s, tc);
    tc = tcase_create("clients");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, client_rate_limit);
    tcase_add_test(tc, keys_are_bounded);
    tcase_add_test(tc, redis_down);
    tcase_add_test(tc, scripts_keep_to_one_cluster_slot);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(resilience_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
