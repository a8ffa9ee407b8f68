/*
 * Fleet-wide throttles, breakers and budget with real processes: a private
 * redis-server, the fake OpenAI provider (which records every arrival), the
 * real gateway and up to three real workers (QUEUE_CONCURRENCY=20 each), so
 * that every limit is shared by separate processes exactly as in production.
 * What is asserted is what the provider and the users see:
 *
 *   throttle     no two arrivals at the provider closer than the RPM
 *                interval allows (GCRA without burst: k intervals between
 *                the first and the (k+1)th arrival, minus the jitter between
 *                admission and arrival), hence no 60 s window above RPM;
 *                never more than OPENAI_MAX_CONCURRENT in flight; every job
 *                completes
 *   leases       a worker killed while holding slots: they come back when
 *                their lease (PROVIDER_TIMEOUT_MS + margin) runs out, not
 *                before, and the fleet carries on
 *   breaker      500s open it for every instance (no arrival more than 1 s
 *                after it opened, until it half-opens); exactly
 *                CB_HALF_OPEN_PROBES probes while half-open; recovery closes
 *                it and every job completes; 4xx, malformed and unusable 200
 *                answers never open it
 *   budget       many concurrent jobs near the monthly limit: spend never
 *                exceeds it (reservations bound the calls in flight), spend
 *                equals the token usage of the completed jobs at the price
 *                table, the kill-switch trips, submissions get 429, queued
 *                jobs wait (not fail) and run once an operator raises the
 *                limit; BUDGET_FALLBACK_PROVIDER=offline runs them offline;
 *                insufficient_quota trips the switch
 *
 * Times are scaled down through configuration (RPM 120, CB_OPEN_MS 3000,
 * leases of 8 s).  Waits poll against deadlines; the two "nothing happens"
 * checks watch for a bounded window, which is the only way to see an absence.
 */
#include <curl/curl.h>

#include "tests/integration/check-pipeline.h"

#define POLL_MS 20

/* ------------------------------------------------------------ helpers */

static struct json_object *admin_get(struct pl_world *w, const char *path)
{
    long st;
    struct json_object *o = pl_get_json(w->gw_base, path, NULL, &st);
    ck_assert_msg(st == 200, "%s: %ld %s", path, st, json_object_to_json_string(o));
    return o;
}

static void admin_post(struct pl_world *w, const char *path, const char *json)
{
    struct fx_http_resp r;
    ck_assert_int_eq(fx_http_post_json(pl_url(w->gw_base, path), json, NULL, &r), 0);
    ck_assert_msg(r.status == 200, "%s %s -> %ld %s", path, json, r.status, r.body);
    fx_http_resp_done(&r);
}

static char *breaker_state(struct pl_world *w, int64_t *opened, int64_t *next_retry)
{
    struct json_object *o = admin_get(w, "/api/circuit-breakers/status");
    char *s = strdup(pl_jstr(o, "circuitBreakers.openai.state"));
    struct json_object *v = pl_jp(o, "circuitBreakers.openai.openedAt");
    if (opened)
        *opened = v ? json_object_get_int64(v) : 0;
    v = pl_jp(o, "circuitBreakers.openai.nextRetryAt");
    if (next_retry)
        *next_retry = v ? json_object_get_int64(v) : 0;
    json_object_put(o);
    return s;
}

/* Submit n new jobs; ids[i] (caller frees). */
static void submit_n(struct pl_world *w, int n, const char *tag, char **ids)
{
    for (int i = 0; i < n; i++) {
        char t[64];
        snprintf(t, sizeof(t), "%s-%d", tag, i);
        struct json_object *o = pl_submit_new(w, PL_FLASHCARDS, t);
        ids[i] = strdup(pl_jstr(o, "jobId"));
        json_object_put(o);
    }
}

static void wait_completed(struct pl_world *w, char **ids, int n, int timeout_ms)
{
    for (int i = 0; i < n; i++)
        json_object_put(pl_wait_state(w, ids[i], "completed", timeout_ms));
}

static void free_ids(char **ids, int n)
{
    for (int i = 0; i < n; i++)
        free(ids[i]);
}

/* The fake's arrival times (wall-clock ms, sorted); returns the count. */
static int fake_arrivals(struct pl_world *w, double *out, int cap)
{
    struct json_object *o = pl_fake_stats(w);
    struct json_object *a = pl_jp(o, "arrivals");
    ck_assert_ptr_nonnull(a);
    int n = (int)json_object_array_length(a);
    ck_assert_int_le(n, cap);
    for (int i = 0; i < n; i++)
        out[i] = (double)json_object_get_int64(pl_jp(json_object_array_get_idx(a, (size_t)i), "t_us")) / 1000.0;
    json_object_put(o);
    for (int i = 1; i < n; i++)              /* insertion sort: they are nearly sorted */
        for (int j = i; j > 0 && out[j] < out[j - 1]; j--) {
            double t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

static int count_between(const double *a, int n, double from, double to)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += a[i] >= from && a[i] < to;
    return k;
}

static long long fake_int(struct pl_world *w, const char *field)
{
    struct json_object *o = pl_get_json(w->fake_base, "/_fake/stats?arrivals=0", NULL, NULL);
    long long v = pl_jint(o, field);
    json_object_put(o);
    return v;
}

static long long worker_processed(struct pl_world *w, int i)
{
    long st;
    struct json_object *o = pl_get_json(w->wk_base[i], "/health", NULL, &st);
    long long v = pl_jint(o, "stats.processed");
    json_object_put(o);
    return v;
}

/* ------------------------------------------------------------ throttle */

#define RPM 120
#define RPM_INTERVAL_MS (60000.0 / RPM)
#define JITTER_MS 250.0          /* admission in Redis -> arrival at the fake */
#define CONC 4
#define THROTTLE_JOBS 24

START_TEST(fleet_throttle)
{
    struct pl_world w;
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    pl_fake_default(&w, "{\"action\":\"ok\",\"delayMs\":2000}");
    const char *extra[] = { "QUEUE_CONCURRENCY=20", "OPENAI_RATE_LIMIT_RPM=120", "OPENAI_MAX_CONCURRENT=4", NULL };
    for (int i = 0; i < PL_WORKERS; i++)
        pl_start_worker(&w, i, extra);
    char *ids[THROTTLE_JOBS];
    submit_n(&w, THROTTLE_JOBS, "thr", ids);
    wait_completed(&w, ids, THROTTLE_JOBS, 60000);

    double a[THROTTLE_JOBS * 2];
    int n = fake_arrivals(&w, a, THROTTLE_JOBS * 2);
    ck_assert_int_eq(n, THROTTLE_JOBS);               /* one call per job: nothing retried */
    /* GCRA without burst: k intervals between any arrival and the k-th after it */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            ck_assert_msg(a[j] - a[i] >= (j - i) * RPM_INTERVAL_MS - JITTER_MS,
                          "arrivals %d and %d are %.1f ms apart (%d intervals of %.0f ms)", i, j, a[j] - a[i],
                          j - i, RPM_INTERVAL_MS);
    /* so no 60 s window holds more than RPM */
    for (int i = 0; i < n; i++)
        ck_assert_int_le(count_between(a, n, a[i], a[i] + 60000), RPM);
    long long maxin = fake_int(&w, "maxInFlight");
    ck_assert_int_le(maxin, CONC);
    ck_assert_int_ge(maxin, CONC - 1);                /* the limit was reached, not idled below */
    int busy = 0;
    for (int i = 0; i < PL_WORKERS; i++)
        busy += worker_processed(&w, i) > 0;
    ck_assert_int_ge(busy, 2);                        /* the limit held across processes */
    free_ids(ids, THROTTLE_JOBS);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ leases */

#define LEASE_MS 8000            /* PROVIDER_TIMEOUT_MS 3000 + RESILIENCE_LEASE_MARGIN_MS */

START_TEST(fleet_killed_worker_slots_return)
{
    struct pl_world w;
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    pl_fake_default(&w, "{\"action\":\"hang\"}");
    const char *extra[] = { "QUEUE_CONCURRENCY=5", "OPENAI_MAX_CONCURRENT=3", "PROVIDER_TIMEOUT_MS=3000",
                            "JOB_LEASE_MS=2000", NULL };
    pl_start_worker(&w, 0, extra);
    char *ids[5];
    submit_n(&w, 3, "held", ids);
    pl_fake_wait_inflight(&w, 3, 20000);
    double a[16];
    ck_assert_int_eq(fake_arrivals(&w, a, 16), 3);
    ck_assert_int_eq(fx_proc_signal(&w.wk[0], SIGKILL), 0);
    ck_assert_int_eq(fx_proc_wait_exit(&w.wk[0], 10000), 128 + SIGKILL);
    fx_proc_done(&w.wk[0]);
    w.wk[0].pid = -1;
    pl_fake_default(&w, "{\"action\":\"ok\"}");

    pl_start_worker(&w, 1, extra);
    submit_n(&w, 2, "after", ids + 3);
    wait_completed(&w, ids, 5, 40000);                /* the killed worker's jobs too */
    double b[32];
    int n = fake_arrivals(&w, b, 32);
    ck_assert_int_ge(n, 3 + 5);
    double first_new = b[3];
    /* the slots were held until the leases ran out ... */
    ck_assert_msg(first_new >= a[0] + LEASE_MS - 500, "a call started %.0f ms after the killed worker's, "
                  "before its leases (%d ms) expired", first_new - a[0], LEASE_MS);
    /* ... and came back then */
    ck_assert_msg(first_new <= a[2] + LEASE_MS + 3000, "slots came back only %.0f ms after they were taken",
                  first_new - a[2]);
    ck_assert_int_le(fake_int(&w, "maxInFlight"), 3);
    free_ids(ids, 5);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ breaker */

#define OPEN_MS 3000
#define PROBES 2
#define PROBE_DELAY_MS 1500
#define BREAKER_JOBS 20

START_TEST(fleet_breaker_opens_and_recovers)
{
    struct pl_world w;
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    pl_fake_default(&w, "{\"action\":\"status\",\"status\":500}");
    const char *extra[] = { "QUEUE_CONCURRENCY=20", "CB_FAILURE_THRESHOLD=5", "CB_OPEN_MS=3000",
                            "CB_HALF_OPEN_PROBES=2", "CB_MIN_CALLS=10", "CB_WINDOW_CALLS=20",
                            "CB_FAILURE_RATE_PCT=50", "JOB_ATTEMPTS=50", "JOB_BACKOFF_MS=20", NULL };
    for (int i = 0; i < PL_WORKERS; i++)
        pl_start_worker(&w, i, extra);
    char *ids[BREAKER_JOBS];
    submit_n(&w, BREAKER_JOBS, "cb", ids);

    int64_t opened = 0, next_retry = 0, deadline = clock_mono_ms() + 20000;
    for (;;) {
        char *s = breaker_state(&w, &opened, &next_retry);
        bool open = strcmp(s, "OPEN") == 0;
        free(s);
        if (open)
            break;
        ck_assert_msg(clock_mono_ms() < deadline, "the breaker never opened");
        clock_sleep_ms(POLL_MS);
    }
    ck_assert_int_eq(next_retry - opened, OPEN_MS);
    /* the provider recovers, slowly: probes take PROBE_DELAY_MS */
    pl_fake_default(&w, "{\"action\":\"ok\",\"delayMs\":1500}");
    ck_assert_int_lt(clock_now_ms(), next_retry - 500);   /* set well before the half-open */

    bool seen_half = false;
    deadline = clock_mono_ms() + 30000;
    for (;;) {
        char *s = breaker_state(&w, NULL, NULL);
        seen_half |= strcmp(s, "HALF_OPEN") == 0;
        bool closed = strcmp(s, "CLOSED") == 0;
        free(s);
        if (closed)
            break;
        ck_assert_msg(clock_mono_ms() < deadline, "the breaker never closed again");
        clock_sleep_ms(POLL_MS);
    }
    ck_assert(seen_half);
    wait_completed(&w, ids, BREAKER_JOBS, 60000);

    double a[4096];
    int n = fake_arrivals(&w, a, 4096);
    /* every instance stopped within a second of the breaker opening */
    int late = count_between(a, n, (double)opened + 1000, (double)next_retry);
    ck_assert_msg(late == 0, "%d calls arrived while the breaker was open", late);
    /* half-open: exactly the probes, and nothing else until they succeeded */
    double p0 = 0;
    for (int i = 0; i < n && !p0; i++)
        if (a[i] >= (double)next_retry)
            p0 = a[i];
    ck_assert(p0 > 0);
    ck_assert_int_eq(count_between(a, n, (double)next_retry, p0 + PROBE_DELAY_MS - 200), PROBES);

    struct json_object *o = admin_get(&w, "/api/circuit-breakers/status");
    ck_assert_str_eq(pl_jstr(o, "circuitBreakers.openai.state"), "CLOSED");
    ck_assert_str_eq(pl_jstr(o, "circuitBreakers.azure.state"), "CLOSED");
    json_object_put(o);
    free_ids(ids, BREAKER_JOBS);
    pl_stop(&w);
}
END_TEST

/* While a breaker is open, jobs wait rather than fail, up to their deadline:
 * then they fail with DEADLINE_EXCEEDED at that deadline, not at the end of
 * a long open period. */
START_TEST(fleet_breaker_open_waits_until_deadline)
{
    struct pl_world w;
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    pl_fake_default(&w, "{\"action\":\"status\",\"status\":502}");
    const char *extra[] = { "CB_FAILURE_THRESHOLD=2", "CB_OPEN_MS=60000", "JOB_ATTEMPTS=20", "JOB_BACKOFF_MS=20",
                            "JOB_DEADLINE_MS=6000", NULL };
    pl_start_worker(&w, 0, extra);
    char *trip[2], *ids[3];
    submit_n(&w, 2, "trip", trip);
    int64_t opened = 0, deadline = clock_mono_ms() + 20000;
    for (;;) {
        char *st = breaker_state(&w, &opened, NULL);
        bool open = strcmp(st, "OPEN") == 0;
        free(st);
        if (open)
            break;
        ck_assert_msg(clock_mono_ms() < deadline, "the breaker never opened");
        clock_sleep_ms(POLL_MS);
    }
    submit_n(&w, 3, "wait", ids);
    for (int i = 0; i < 3; i++) {
        struct json_object *o = pl_wait_state(&w, ids[i], "failed", 20000);
        ck_assert_str_eq(pl_jstr(o, "errorCode"), "DEADLINE_EXCEEDED");
        long long waited = pl_jint(o, "failedAt") - pl_jint(o, "timestamp");
        ck_assert_msg(waited >= 6000 && waited < 9000, "failed %lld ms after submission (deadline 6000)", waited);
        ck_assert_int_eq(pl_jint(o, "attemptsMade"), 0);   /* it waited; it never spent an attempt */
        json_object_put(o);
    }
    double a[256];
    int n = fake_arrivals(&w, a, 256);
    ck_assert_int_eq(count_between(a, n, (double)opened + 1000, 1e18), 0);
    free_ids(trip, 2);
    free_ids(ids, 3);
    pl_stop(&w);
}
END_TEST

/* 4xx answers, malformed bodies and unusable 200s are the provider working:
 * with a breaker that opens on 2 faults, 22 of them change nothing; then
 * three 503s open it (so the test can see an opening). */
START_TEST(fleet_breaker_ignores_client_errors)
{
    struct pl_world w;
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    pl_fake_script(&w, "[{\"action\":\"status\",\"status\":400,\"count\":6},"
                       "{\"action\":\"malformed\",\"count\":6},"
                       "{\"action\":\"bad_content\",\"count\":6},"
                       "{\"action\":\"status\",\"status\":404,\"count\":2},"
                       "{\"action\":\"status\",\"status\":422,\"count\":2}]");
    pl_fake_default(&w, "{\"action\":\"status\",\"status\":503}");
    const char *extra[] = { "QUEUE_CONCURRENCY=20", "CB_FAILURE_THRESHOLD=2", "CB_MIN_CALLS=2",
                            "CB_WINDOW_CALLS=4", "CB_FAILURE_RATE_PCT=50", "JOB_ATTEMPTS=1", NULL };
    pl_start_worker(&w, 0, extra);
    char *ids[22];
    submit_n(&w, 22, "bad", ids);
    for (int i = 0; i < 22; i++)
        json_object_put(pl_wait_state(&w, ids[i], "failed", 30000));
    ck_assert_int_eq(fake_int(&w, "requests"), 22);
    struct json_object *o = admin_get(&w, "/api/circuit-breakers/status");
    ck_assert_str_eq(pl_jstr(o, "circuitBreakers.openai.state"), "CLOSED");
    ck_assert_int_eq(pl_jint(o, "circuitBreakers.openai.failures"), 0);
    ck_assert_int_eq(pl_jint(o, "circuitBreakers.openai.consecutiveFailures"), 0);
    ck_assert_int_eq(pl_jint(o, "circuitBreakers.openai.windowCalls"), 4);
    json_object_put(o);

    char *more[3];
    submit_n(&w, 3, "503", more);
    int64_t deadline = clock_mono_ms() + 20000;
    for (;;) {
        char *s = breaker_state(&w, NULL, NULL);
        bool open = strcmp(s, "OPEN") == 0;
        free(s);
        if (open)
            break;
        ck_assert_msg(clock_mono_ms() < deadline, "503s did not open the breaker");
        clock_sleep_ms(POLL_MS);
    }
    free_ids(ids, 22);
    free_ids(more, 3);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ budget */

#define BUDGET_JOBS 40
#define BUDGET_LIMIT_USD 10.0
#define USD_PER_TOKEN 0.001      /* PRICE_*_PER_1M_USD=1000 */

static double budget_num(struct pl_world *w, const char *field, bool *ks)
{
    struct json_object *o = admin_get(w, "/api/admin/budget/status");
    char path[64];
    snprintf(path, sizeof(path), "budget.%s", field);
    double v = json_object_get_double(pl_jp(o, path));
    if (ks)
        *ks = pl_jbool(o, "budget.killSwitchActive");
    json_object_put(o);
    return v;
}

START_TEST(fleet_budget)
{
    struct pl_world w;
    pl_start_base(&w, "openai", false);
    const char *gx[] = { "BUDGET_MONTHLY_LIMIT_USD=10", NULL };
    pl_start_gateway(&w, gx);
    pl_fake_default(&w, "{\"action\":\"ok\",\"delayMs\":400}");
    const char *extra[] = { "QUEUE_CONCURRENCY=20", "OPENAI_MAX_CONCURRENT=40", "BUDGET_MONTHLY_LIMIT_USD=10",
                            "PRICE_INPUT_PER_1M_USD=1000", "PRICE_OUTPUT_PER_1M_USD=1000",
                            "PROVIDER_MAX_TOKENS=512", NULL };
    for (int i = 0; i < PL_WORKERS; i++)
        pl_start_worker(&w, i, extra);
    char *ids[BUDGET_JOBS];
    submit_n(&w, BUDGET_JOBS, "budget", ids);

    /* the switch trips by itself */
    bool ks = false;
    int64_t deadline = clock_mono_ms() + 40000;
    while (budget_num(&w, "spentThisMonth", &ks), !ks) {
        ck_assert_msg(clock_mono_ms() < deadline, "the kill-switch never tripped");
        clock_sleep_ms(POLL_MS);
    }
    /* let the calls in flight finish */
    deadline = clock_mono_ms() + 20000;
    while (fake_int(&w, "inFlight") > 0 || budget_num(&w, "reservedInFlight", NULL) > 0) {
        ck_assert_msg(clock_mono_ms() < deadline, "calls still in flight");
        clock_sleep_ms(POLL_MS);
    }
    struct json_object *o = admin_get(&w, "/api/admin/budget/status");
    double spent = json_object_get_double(pl_jp(o, "budget.spentThisMonth"));
    ck_assert_str_eq(pl_jstr(o, "budget.killSwitchSource"), "budget");
    ck_assert_ptr_nonnull(strstr(pl_jstr(o, "budget.killSwitchReason"), "Monthly budget limit reached"));
    json_object_put(o);
    ck_assert_msg(spent <= BUDGET_LIMIT_USD, "spent $%.6f of a $10 limit", spent);
    /* it trips when the next call's estimate (< $1.2: prompt + 512 tokens) no longer fits */
    ck_assert_msg(spent > BUDGET_LIMIT_USD - 1.2, "stopped early: spent $%.6f of $10", spent);
    fprintf(stderr, "budget: spent $%.6f in %lld calls\n", spent, fake_int(&w, "requests"));

    /* spend is exactly the usage of the completed jobs at the price table */
    long long tokens = 0;
    int completed = 0;
    for (int i = 0; i < BUDGET_JOBS; i++) {
        long st;
        struct json_object *s = pl_status(&w, ids[i], PL_USER, &st);
        const char *state = pl_jstr(s, "status");
        ck_assert_msg(strcmp(state, "failed") != 0, "job %s failed: %s", ids[i], json_object_to_json_string(s));
        if (strcmp(state, "completed") == 0) {
            completed++;
            tokens += pl_jint(s, "result.tokenUsage");
        } else {
            /* not run: waiting or delayed, or "active" for the moment between a
             * worker's claim and its release on the budget's "wait" (that it
             * made no paid call is checked below: calls == completed) */
            ck_assert_msg(strcmp(state, "waiting") == 0 || strcmp(state, "delayed") == 0 ||
                              strcmp(state, "active") == 0,
                          "job %s is %s", ids[i], state);
        }
        json_object_put(s);
    }
    ck_assert_int_gt(completed, 0);
    ck_assert_int_lt(completed, BUDGET_JOBS);
    ck_assert_msg(spent > tokens * USD_PER_TOKEN - 1e-6 && spent < tokens * USD_PER_TOKEN + 1e-6,
                  "spent $%.6f, usage says $%.6f", spent, tokens * USD_PER_TOKEN);
    long long calls = fake_int(&w, "requests");
    ck_assert_int_eq(calls, completed);               /* every paid call completed a job */

    /* no paid call starts while the switch is on */
    int64_t until = clock_mono_ms() + 1500;
    while (clock_mono_ms() < until) {
        ck_assert_int_eq(fake_int(&w, "requests"), calls);
        clock_sleep_ms(100);
    }
    /* new submissions get the contract's 429 */
    char *b = pl_job_body("after-switch", NULL);
    struct fx_http_resp r;
    ck_assert_int_eq(fx_http_post_json(pl_url(w.gw_base, PL_FLASHCARDS), b,
                                       (const char *[]){ "user-id: " PL_USER, NULL }, &r), 0);
    ck_assert_int_eq(r.status, 429);
    ck_assert_ptr_nonnull(fx_http_header(&r, "Retry-After"));
    struct json_object *e = pl_parse(r.body);
    ck_assert_str_eq(pl_jstr(e, "code"), "BUDGET_LIMIT_EXCEEDED");
    ck_assert_str_eq(pl_jstr(e, "error"), "Service temporarily unavailable due to budget limits");
    json_object_put(e);
    fx_http_resp_done(&r);
    free(b);

    /* an operator raises the limit: the switch lifts and the waiting jobs run */
    struct fx_http_resp sr;
    ck_assert_int_eq(fx_http_post_json(pl_url(w.gw_base, "/api/admin/budget/set-limit"), "{\"limit\":1000}", NULL,
                                       &sr), 0);
    ck_assert_int_eq(sr.status, 200);
    ck_assert_ptr_nonnull(strstr(sr.body, "\"killSwitchCleared\":true"));
    fx_http_resp_done(&sr);
    wait_completed(&w, ids, BUDGET_JOBS, 60000);
    free_ids(ids, BUDGET_JOBS);
    pl_stop(&w);
}
END_TEST

/* The provider says insufficient_quota: that job fails, the kill-switch
 * trips for the fleet (source quota, no expiry: someone must add credit),
 * new submissions get 429; turned off by hand, jobs run again. */
START_TEST(fleet_quota_trips_kill_switch)
{
    struct pl_world w;
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    pl_fake_script(&w, "[{\"action\":\"insufficient_quota\"}]");
    const char *extra[] = { "QUEUE_CONCURRENCY=1", NULL };
    pl_start_worker(&w, 0, extra);
    char *first[1], *ids[3];
    submit_n(&w, 1, "quota", first);
    struct json_object *o = pl_wait_state(&w, first[0], "failed", 20000);
    ck_assert_str_eq(pl_jstr(o, "errorCode"), "INSUFFICIENT_QUOTA");
    json_object_put(o);
    o = admin_get(&w, "/api/admin/budget/status");
    ck_assert(pl_jbool(o, "budget.killSwitchActive"));
    ck_assert_str_eq(pl_jstr(o, "budget.killSwitchSource"), "quota");
    struct json_object *v;
    ck_assert(json_object_object_get_ex(pl_jp(o, "budget"), "killSwitchExpiresAt", &v) && !v);
    json_object_put(o);
    char *b = pl_job_body("refused", NULL);
    ck_assert_int_eq(pl_submit(&w, PL_FLASHCARDS, b, PL_USER, NULL, NULL), 429);
    free(b);
    long long calls = fake_int(&w, "requests");
    ck_assert_int_eq(calls, 1);

    admin_post(&w, "/api/admin/budget/kill-switch", "{\"enabled\":false}");
    submit_n(&w, 3, "after", ids);
    wait_completed(&w, ids, 3, 30000);
    ck_assert_int_eq(fake_int(&w, "requests"), 4);
    free_ids(first, 1);
    free_ids(ids, 3);
    pl_stop(&w);
}
END_TEST

/* Kill-switch on: a worker without a fallback leaves the queued jobs
 * waiting; one with BUDGET_FALLBACK_PROVIDER=offline runs them offline. */
START_TEST(fleet_budget_fallback_offline)
{
    struct pl_world w;
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    char *ids[3];
    submit_n(&w, 3, "fallback", ids);
    admin_post(&w, "/api/admin/budget/kill-switch", "{\"enabled\":true,\"reason\":\"test\"}");

    pl_start_worker(&w, 0, NULL);
    int64_t until = clock_mono_ms() + 1500;
    while (clock_mono_ms() < until) {
        for (int i = 0; i < 3; i++) {
            long st;
            struct json_object *s = pl_status(&w, ids[i], PL_USER, &st);
            ck_assert_str_eq(pl_jstr(s, "status"), "waiting");
            json_object_put(s);
        }
        clock_sleep_ms(100);
    }
    ck_assert_int_eq(fake_int(&w, "requests"), 0);
    pl_stop_worker(&w, 0);

    const char *extra[] = { "BUDGET_FALLBACK_PROVIDER=offline", NULL };
    pl_start_worker(&w, 1, extra);
    for (int i = 0; i < 3; i++) {
        struct json_object *s = pl_wait_state(&w, ids[i], "completed", 30000);
        ck_assert_str_eq(pl_jstr(s, "result.provider"), "offline");
        json_object_put(s);
    }
    ck_assert_int_eq(fake_int(&w, "requests"), 0);
    free_ids(ids, 3);
    pl_stop(&w);
}
END_TEST

static Suite *fleet_suite(void)
{
    Suite *s = suite_create("resilience-fleet");
    TCase *tc = tcase_create("throttle");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fleet_throttle);
    tcase_add_test(tc, fleet_killed_worker_slots_return);
    suite_add_tcase(s, tc);
    tc = tcase_create("breaker");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fleet_breaker_opens_and_recovers);
    tcase_add_test(tc, fleet_breaker_ignores_client_errors);
    tcase_add_test(tc, fleet_breaker_open_waits_until_deadline);
    suite_add_tcase(s, tc);
    tc = tcase_create("budget");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fleet_budget);
    tcase_add_test(tc, fleet_budget_fallback_offline);
    tcase_add_test(tc, fleet_quota_trips_kill_switch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fleet_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
