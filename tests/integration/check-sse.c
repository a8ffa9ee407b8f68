/*
 * Live job events over Server-Sent Events, end to end: the real gateway(s)
 * and worker(s) against a private redis-server, and streams read by a raw
 * socket client (check-sse-client.h) whose parser follows the WHATWG
 * event-stream rules, so every assertion is about what an EventSource sees.
 *
 * Jobs are either run by the real worker (AI_PROVIDER=offline) or driven by
 * the test itself through the queue API (common/queue.h: claim, progress,
 * fail, complete), the same Lua scripts the worker uses; the driver decides
 * when each event happens, so reconnects, restarts and slow readers are
 * exercised at exact points of a job's life without sleeping.
 *
 * Every test starts its own redis-server and processes on free ports and
 * stops them at the end; stopping asserts the gateway still runs, exits 0 on
 * SIGTERM and logged no sanitizer report.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/clock.h"
#include "common/crypto.h"
#include "common/queue.h"
#include "common/redisx.h"
#include "gateway/jwt.h"
#include "tests/integration/check-sse-client.h"
#include "tests/support/fixture.h"

#define FLASHCARDS "/api/ai/generate-flashcards"
#define JWT_SECRET "ssetest-jwt-secret-0123456789abcdef"
#define ERROR_TEXT "The \"provider\" timed out \\ \xc3\xa9t\xc3\xa9 <b>"   /* quotes, backslash, UTF-8 */
#define ENV_MAX 48
#define GW_MAX 2
#define WK_MAX 2
#define HELD_MAX 256
#define WAIT_MS 20000          /* generous deadline for anything that should be quick */
#define RESULT "{\"success\":true,\"flashcards\":[{\"front\":\"Hund\",\"back\":\"dog\",\"topic\":\"Animals\"," \
               "\"difficulty\":\"beginner\",\"example\":\"Der Hund schlaeft.\"}],\"tokenUsage\":0," \
               "\"provider\":\"offline\",\"model\":\"ssetest\"}"

/* ------------------------------------------------------------ environment */

struct held {
    char id[JOB_ID_MAX + 1];
    char token[JOB_TOKEN_MAX + 1];
    int attempt;
    bool live;                 /* claimed, not yet reported */
};

struct env {
    struct fx_redis rs;
    struct fx_proc gw[GW_MAX];
    int gwport[GW_MAX];
    struct fx_proc wk[WK_MAX];
    int wkport[WK_MAX];
    struct redisx *rx;         /* the driver's connection */
    struct queue *q;
    struct held held[HELD_MAX];
    size_t nheld;
    unsigned seq;              /* unique contents */
};

static void env_put(const char **env, size_t *n, const char *kv)
{
    size_t klen = strcspn(kv, "=");
    for (size_t i = 0; i < *n; i++)
        if (strncmp(env[i], kv, klen) == 0 && env[i][klen] == '=') {
            env[i] = kv;
            return;
        }
    ck_assert_uint_lt(*n, ENV_MAX);
    env[(*n)++] = kv;
}

static void env_start(struct env *e, bool appendonly)
{
    memset(e, 0, sizeof(*e));
    e->rs.pid = -1;
    for (int i = 0; i < GW_MAX; i++)
        e->gw[i].pid = -1;
    for (int i = 0; i < WK_MAX; i++)
        e->wk[i].pid = -1;
    ck_assert_int_eq(fx_redis_start(&e->rs, appendonly), 0);
    struct redis_target t = {
        .host = "127.0.0.1", .port = e->rs.port, .connect_timeout_ms = 2000,
        .command_timeout_ms = 5000, .retry_max_ms = 100,
    };
    e->rx = redisx_new(&t);
    ck_assert_ptr_nonnull(e->rx);
    /* events_max high: the slow-client test emits thousands and must find them all in history */
    struct queue_limits lim = {
        .max_attempts = 3, .backoff_ms = 1, .lease_ms = 600000, .deadline_ms = 3600000,
        .ttl_s = 86400, .events_max = 100000, .max_waiting = 100000, .heartbeat_ms = 1000,
    };
    e->q = queue_new(e->rx, &lim);
    ck_assert_ptr_nonnull(e->q);
}

/* Gateway i with the suite's defaults, then `extra` ("K=V", NULL-ended). */
static void gw_start(struct env *e, int i, const char *const *extra)
{
    static char public_kv[4096], inst_kv[GW_MAX][64];
    const char *env[ENV_MAX + 1];
    size_t n = 0;
    char *pub = fixture_source_path("public");
    ck_assert_ptr_nonnull(pub);
    snprintf(public_kv, sizeof(public_kv), "PUBLIC_DIR=%s", pub);
    free(pub);
    snprintf(inst_kv[i], sizeof(inst_kv[i]), "INSTANCE_ID=ssetest-gw-%d", i);
    env_put(env, &n, public_kv);
    env_put(env, &n, inst_kv[i]);
    env_put(env, &n, "HTTP_THREADS=2");
    env_put(env, &n, "REDIS_RETRY_MAX_MS=200");
    env_put(env, &n, "REDIS_COMMAND_TIMEOUT_MS=2000");
    env_put(env, &n, "REDIS_CONNECT_TIMEOUT_MS=1000");
    env_put(env, &n, "SHUTDOWN_GRACE_MS=5000");
    env_put(env, &n, "RATE_LIMIT_IP_PER_MIN=100000000");
    env_put(env, &n, "RATE_LIMIT_AI_PER_MIN=1000000");
    env_put(env, &n, "SSE_HEARTBEAT_MS=60000");   /* tests that want heartbeats ask */
    env_put(env, &n, "LOG_LEVEL=info");
    for (size_t k = 0; extra && extra[k]; k++)
        env_put(env, &n, extra[k]);
    env[n] = NULL;
    ck_assert_int_eq(fx_gateway_start(&e->gw[i], e->rs.url, env, &e->gwport[i]), 0);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ready", e->gwport[i]);
    ck_assert_int_eq(fx_proc_wait_http(&e->gw[i], url, 0), 0);
}

static void wk_start(struct env *e, int i)
{
    static char inst_kv[WK_MAX][64];
    snprintf(inst_kv[i], sizeof(inst_kv[i]), "INSTANCE_ID=ssetest-wk-%d", i);
    const char *env[] = { "AI_PROVIDER=offline", inst_kv[i], "QUEUE_CONCURRENCY=8", "REDIS_RETRY_MAX_MS=200",
                          "WORKER_HEARTBEAT_MS=1000", "LOG_LEVEL=info", NULL };
    ck_assert_int_eq(fx_worker_start(&e->wk[i], e->rs.url, env, &e->wkport[i]), 0);
}

static void assert_log_clean(struct fx_proc *p)
{
    char *log = fx_proc_log(p);
    ck_assert_ptr_nonnull(log);
    bool bad = strstr(log, "AddressSanitizer") || strstr(log, "LeakSanitizer") ||
               strstr(log, "runtime error:") || strstr(log, "ThreadSanitizer");
    if (bad)
        fx_proc_print_log(p);
    ck_assert_msg(!bad, "sanitizer report in the %s log", p->name);
    free(log);
}

/* The process must still run; SIGTERM must end it with status 0 and a clean log. */
static void proc_stop(struct fx_proc *p)
{
    if (p->pid < 0)
        return;
    ck_assert_msg(fx_proc_running(p), "%s is not running any more (crashed?)", p->name);
    ck_assert_int_eq(fx_proc_stop(p, 0), 0);
    assert_log_clean(p);
    fx_proc_done(p);
    p->pid = -1;
}

static void env_stop(struct env *e)
{
    for (int i = 0; i < WK_MAX; i++)
        proc_stop(&e->wk[i]);
    for (int i = 0; i < GW_MAX; i++)
        proc_stop(&e->gw[i]);
    queue_free(e->q);
    redisx_free(e->rx);
    fx_redis_done(&e->rs);
}

static const char *gw_url(const struct env *e, int i, const char *path)
{
    static char buf[8][4096];
    static unsigned k;
    char *b = buf[k++ % 8];
    int n = snprintf(b, sizeof(buf[0]), "http://127.0.0.1:%d%s", e->gwport[i], path);
    ck_assert(n > 0 && (size_t)n < sizeof(buf[0]));
    return b;
}

/* ------------------------------------------------------------ JSON */

static struct json_object *jparse(const char *text)
{
    struct json_object *o = json_tokener_parse(text);
    ck_assert_msg(o != NULL, "not JSON: %.300s", text);
    return o;
}

static const char *jstr(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static bool jint(struct json_object *o, const char *key, long long *ret)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return false;
    *ret = json_object_get_int64(v);
    return true;
}

/* "2024-01-02T03:04:05.678Z" */
static bool iso_ok(const char *s)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (!s || strlen(s) != sizeof(pat) - 1)
        return false;
    for (size_t i = 0; pat[i]; i++)
        if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
            return false;
    return true;
}

static void assert_error_body(const struct fx_http_resp *r, long status, const char *code)
{
    ck_assert_msg(r->status == status, "status %ld, want %ld; body %.300s", r->status, status, r->body);
    struct json_object *o = jparse(r->body);
    const char *c = jstr(o, "code");
    ck_assert_msg(c && strcmp(c, code) == 0, "code %s, want %s (%s)", c ? c : "(none)", code, r->body);
    struct json_object *s;
    ck_assert(json_object_object_get_ex(o, "success", &s) && !json_object_get_boolean(s));
    json_object_put(o);
}

/* ------------------------------------------------------------ jobs */

/* Submit a flashcards job on gateway g as `user` (user-id header, or a Bearer
 * JWT when bearer is set).  job_id gets the id, events_url (may be NULL) the
 * eventsUrl path. */
static void submit(struct env *e, int g, const char *user, const char *bearer, char *job_id, char *events_url)
{
    char body[512], h1[256];
    snprintf(body, sizeof(body),
             "{\"content\":\"Der Hund schlaeft im Garten. Die Katze spielt mit dem Ball. Run %d-%u.\","
             "\"subject\":\"German\",\"topic\":\"Animals\",\"nativeLanguage\":\"English\"}", (int)getpid(), ++e->seq);
    if (bearer)
        snprintf(h1, sizeof(h1), "Authorization: Bearer %s", bearer);
    else
        snprintf(h1, sizeof(h1), "user-id: %s", user);
    const char *hdrs[] = { h1, NULL };
    struct fx_http_resp r;
    ck_assert_int_eq(fx_http_post_json(gw_url(e, g, FLASHCARDS), body, hdrs, &r), 0);
    ck_assert_msg(r.status == 202, "submit: %ld %s", r.status, r.body);
    struct json_object *o = jparse(r.body);
    const char *id = jstr(o, "jobId"), *ev = jstr(o, "eventsUrl");
    ck_assert_ptr_nonnull(id);
    ck_assert_ptr_nonnull(ev);
    ck_assert_uint_le(strlen(id), JOB_ID_MAX);
    strcpy(job_id, id);
    ck_assert_msg(strncmp(ev, "/api/job-events?jobId=", 22) == 0 && strstr(ev, "token="), "eventsUrl %s", ev);
    if (events_url)
        snprintf(events_url, 1024, "%s", ev);
    json_object_put(o);
    fx_http_resp_done(&r);
}

static struct held *held_find(struct env *e, const char *id)
{
    for (size_t i = 0; i < e->nheld; i++)
        if (strcmp(e->held[i].id, id) == 0)
            return &e->held[i];
    return NULL;
}

/* Claim waiting jobs until `id` is held (an attempt starts: event `active`). */
static struct held *drv_claim(struct env *e, const char *id)
{
    long long deadline = sc_now_ms() + WAIT_MS;
    for (;;) {
        struct queue_job jobs[16];
        int n = queue_claim(e->q, 16, 0, jobs);
        for (int i = 0; i < n; i++) {
            struct held *h = held_find(e, jobs[i].id);
            if (!h) {
                ck_assert_uint_lt(e->nheld, HELD_MAX);
                h = &e->held[e->nheld++];
            }
            memcpy(h->id, jobs[i].id, sizeof(h->id));
            memcpy(h->token, jobs[i].token, sizeof(h->token));
            h->attempt = jobs[i].attempt;
            h->live = true;
            queue_job_done(&jobs[i]);
        }
        struct held *h = held_find(e, id);
        if (h && h->live)
            return h;
        ck_assert_msg(sc_now_ms() < deadline, "could not claim job %s (last claim: %d)", id, n);
        if (n <= 0)
            queue_wait(e->q, 200);
    }
}

/* Run a queue call until Redis answers (the driver may meet a restarting Redis). */
#define DRV(call)                                                              \
    do {                                                                       \
        long long dl_ = sc_now_ms() + WAIT_MS;                                 \
        int rc_;                                                               \
        while ((rc_ = (call)) == -EIO || rc_ == -EAGAIN || rc_ == -ETIMEDOUT) { \
            ck_assert_msg(sc_now_ms() < dl_, "%s: Redis does not answer", #call); \
            poll(NULL, 0, 20);                                                 \
        }                                                                      \
        ck_assert_msg(rc_ == 0, "%s: %d", #call, rc_);                         \
    } while (0)

static void drv_progress(struct env *e, const char *id, int pct)
{
    struct held *h = held_find(e, id);
    ck_assert_ptr_nonnull(h);
    DRV(queue_progress(e->q, id, h->token, pct));
}

static void drv_complete(struct env *e, const char *id)
{
    struct held *h = held_find(e, id);
    ck_assert_ptr_nonnull(h);
    struct job_usage u = { 10, 20 };
    DRV(queue_complete(e->q, id, h->token, RESULT, &u));
    h->live = false;
}

static void drv_fail(struct env *e, const char *id, bool retryable)
{
    struct held *h = held_find(e, id);
    ck_assert_ptr_nonnull(h);
    struct queue_failure f = { .error = ERROR_TEXT, .code = "PROVIDER_TIMEOUT",
                               .retryable = retryable, .spend_attempt = true, .retry_after_ms = retryable ? 1 : 0 };
    struct queue_fail_result fr;
    DRV(queue_fail(e->q, id, h->token, h->attempt, &f, &fr));
    ck_assert(fr.retrying == retryable);
    h->live = false;
}

/* ------------------------------------------------------------ streams */

static void sc_open_ok(struct sc *c, int port, const char *path, const char *const *hdrs)
{
    int rc = sc_open(c, port, path, hdrs, 0);
    ck_assert_msg(rc == 0, "connect: %s", strerror(-rc));
}

/* Open path and expect a 200 event stream whose first event is connected. */
static void stream_open(struct sc *c, int port, const char *path, const char *const *hdrs)
{
    sc_open_ok(c, port, path, hdrs);
    ck_assert_msg(sc_wait(c, sc_pred_type, "connected", WAIT_MS), "no connected event on %s (status %d, head %s)",
                  path, c->status, c->head);
    ck_assert_int_eq(c->status, 200);
    char v[256];
    ck_assert_ptr_nonnull(sc_header(c, "Content-Type", v, sizeof(v)));
    ck_assert_msg(strncmp(v, "text/event-stream", 17) == 0, "Content-Type %s", v);
    ck_assert_ptr_nonnull(sc_header(c, "Cache-Control", v, sizeof(v)));
    ck_assert_str_eq(v, "no-cache");
    ck_assert_ptr_nonnull(sc_header(c, "X-Accel-Buffering", v, sizeof(v)));
    ck_assert_str_eq(v, "no");
    /* retry: comes first, then connected (which carries no id) */
    ck_assert_msg(strncmp(c->body, "retry: ", 7) == 0, "stream starts with %.60s", c->body);
    ck_assert_int_eq(c->p.retries, 1);
    ck_assert_str_eq(c->p.ev[0].type, "connected");
    ck_assert(!c->p.ev[0].had_id);
    ck_assert_str_eq(c->p.ev[0].id, "");
}

static void job_path(char *out, size_t cap, const char *job, const char *extra)
{
    snprintf(out, cap, "/api/job-events?jobId=%s%s", job, extra ? extra : "");
}

/* The job events (with an id) of a stream, in order, into ids[]; returns the count. */
static size_t job_ids(const struct sc *c, long long *ids, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < c->p.nev && n < cap; i++)
        if (c->p.ev[i].had_id)
            ids[n++] = strtoll(c->p.ev[i].id, NULL, 10);
    return n;
}

/* Event i: type, id (0: none), one data line of JSON whose jobId is job and
 * whose timestamp is ISO-8601 with milliseconds.  Returns the data (caller puts). */
static struct json_object *assert_event(const struct sc *c, size_t i, const char *type, long long id, const char *job)
{
    ck_assert_msg(i < c->p.nev, "event %zu missing (%zu events): %.2000s", i, c->p.nev, c->body);
    const struct ssep_event *ev = &c->p.ev[i];
    ck_assert_msg(strcmp(ev->type, type) == 0, "event %zu is %s, want %s: %.2000s", i, ev->type, type, c->body);
    if (id) {
        ck_assert_msg(ev->had_id, "event %zu (%s) has no id", i, type);
        ck_assert_int_eq(strtoll(ev->id, NULL, 10), id);
    } else {
        ck_assert_msg(!ev->had_id, "event %zu (%s) has an id", i, type);
    }
    ck_assert_uint_eq(ev->data_lines, 1);
    struct json_object *o = jparse(ev->data);
    ck_assert(json_object_is_type(o, json_type_object));
    if (job) {
        const char *j = jstr(o, "jobId");
        ck_assert_msg(j && strcmp(j, job) == 0, "%s: jobId %s, want %s", type, j ? j : "(none)", job);
    }
    const char *ts = jstr(o, "timestamp");
    ck_assert_msg(iso_ok(ts), "%s: timestamp %s", type, ts ? ts : "(none)");
    return o;
}

static long get_status(const char *url, const char *const *hdrs, struct fx_http_resp *r)
{
    struct fx_http_req req = { .url = url, .headers = hdrs };
    ck_assert_int_eq(fx_http_do(&req, r), 0);
    return r->status;
}

/* ------------------------------------------------------------ order and content */

/* A job's whole life as the client sees it: connected first (no id, after
 * retry:), then active 1, progress 2, retrying 3, active 4 (attempt 2),
 * progress 5, completed 6, then the stream ends. */
START_TEST(test_order_and_content)
{
    struct env e;
    env_start(&e, false);
    gw_start(&e, 0, NULL);
    char job[JOB_ID_MAX + 1], ev[1024], path[1200];
    submit(&e, 0, "alice", NULL, job, ev);

    struct sc c;
    const char *hdrs[] = { "user-id: alice", NULL };
    stream_open(&c, e.gwport[0], ev, hdrs);
    struct json_object *o = assert_event(&c, 0, "connected", 0, job);
    ck_assert_str_eq(jstr(o, "message"), "Connected to job updates");
    json_object_put(o);

    drv_claim(&e, job);
    drv_progress(&e, job, 40);
    drv_fail(&e, job, true);
    drv_claim(&e, job);
    drv_progress(&e, job, 80);
    drv_complete(&e, job);
    ck_assert_msg(sc_wait(&c, sc_pred_end, NULL, WAIT_MS), "the stream did not end: %s", c.body);
    ck_assert_msg(c.ended, "the stream was cut, not ended (err %d)", c.err);
    ck_assert_uint_eq(c.p.nev, 7);

    long long v;
    o = assert_event(&c, 1, "active", 1, job);
    ck_assert(jint(o, "attempt", &v) && v == 1);
    ck_assert_str_eq(jstr(o, "message"), "Job is now being processed");
    json_object_put(o);
    o = assert_event(&c, 2, "progress", 2, job);
    ck_assert(jint(o, "progress", &v) && v == 40);
    json_object_put(o);
    o = assert_event(&c, 3, "retrying", 3, job);
    ck_assert(jint(o, "attemptsMade", &v) && v == 1);
    ck_assert_str_eq(jstr(o, "error"), ERROR_TEXT);
    ck_assert(iso_ok(jstr(o, "nextAttemptAt")));
    json_object_put(o);
    o = assert_event(&c, 4, "active", 4, job);
    ck_assert(jint(o, "attempt", &v) && v == 2);
    json_object_put(o);
    o = assert_event(&c, 5, "progress", 5, job);
    ck_assert(jint(o, "progress", &v) && v == 80);
    json_object_put(o);
    o = assert_event(&c, 6, "completed", 6, job);
    ck_assert(jint(o, "duration", &v) && v >= 0);
    struct json_object *res, *cards;
    ck_assert(json_object_object_get_ex(o, "result", &res));
    ck_assert(json_object_object_get_ex(res, "flashcards", &cards));
    ck_assert_int_eq(json_object_array_length(cards), 1);
    json_object_put(o);
    sc_close(&c);

    /* the same job from the start, after the fact: the whole history, then the end */
    job_path(path, sizeof(path), job, NULL);
    stream_open(&c, e.gwport[0], path, NULL);
    ck_assert(sc_wait(&c, sc_pred_end, NULL, WAIT_MS));
    ck_assert(c.ended);
    ck_assert_uint_eq(c.p.nev, 7);
    long long ids[16];
    ck_assert_uint_eq(job_ids(&c, ids, 16), 6);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(ids[i], i + 1);
    sc_close(&c);
    env_stop(&e);
}
END_TEST

/* The real worker runs the job; the client follows it from eventsUrl. */
START_TEST(test_real_worker)
{
    struct env e;
    env_start(&e, false);
    gw_start(&e, 0, NULL);
    char job[JOB_ID_MAX + 1], ev[1024];
    submit(&e, 0, "bob", NULL, job, ev);
    struct sc c;
    stream_open(&c, e.gwport[0], ev, NULL);
    wk_start(&e, 0);
    ck_assert_msg(sc_wait(&c, sc_pred_end, NULL, WAIT_MS), "no end: %s", c.body);
    ck_assert(c.ended);
    size_t last = c.p.nev - 1;
    json_object_put(assert_event(&c, 1, "active", 1, job));
    struct json_object *o = assert_event(&c, last, "completed", (long long)last, job);
    struct json_object *res, *cards;
    ck_assert(json_object_object_get_ex(o, "result", &res));
    ck_assert(json_object_object_get_ex(res, "flashcards", &cards));
    ck_assert_int_gt(json_object_array_length(cards), 0);
    ck_assert_str_eq(jstr(res, "provider"), "offline");
    json_object_put(o);
    for (size_t i = 1; i < last; i++)   /* whatever is between is a job event in order */
        json_object_put(assert_event(&c, i, c.p.ev[i].type, (long long)i, job));
    sc_close(&c);
    env_stop(&e);
}
END_TEST

/* ------------------------------------------------------------ late clients, resume, 204 */

START_TEST(test_late_client_and_resume)
{
    struct env e;
    env_start(&e, false);
    gw_start(&e, 0, NULL);
    char job[JOB_ID_MAX + 1], path[1200];
    submit(&e, 0, "carol", NULL, job, NULL);
    drv_claim(&e, job);
    drv_progress(&e, job, 50);

    /* live resume: Last-Event-ID 1 during the job: progress 2 only, then live */
    struct sc c;
    job_path(path, sizeof(path), job, NULL);
    const char *h1[] = { "Last-Event-ID: 1", NULL };
    stream_open(&c, e.gwport[0], path, h1);
    size_t two = 2;
    ck_assert(sc_wait(&c, sc_pred_nev, &two, WAIT_MS));
    json_object_put(assert_event(&c, 1, "progress", 2, job));
    drv_complete(&e, job);
    ck_assert(sc_wait(&c, sc_pred_end, NULL, WAIT_MS));
    ck_assert(c.ended);
    ck_assert_uint_eq(c.p.nev, 3);
    json_object_put(assert_event(&c, 2, "completed", 3, job));
    sc_close(&c);

    /* after completion, no id: connected, the history, completed, end */
    stream_open(&c, e.gwport[0], path, NULL);
    ck_assert(sc_wait(&c, sc_pred_end, NULL, WAIT_MS));
    ck_assert(c.ended);
    ck_assert_uint_eq(c.p.nev, 4);
    json_object_put(assert_event(&c, 1, "active", 1, job));
    json_object_put(assert_event(&c, 3, "completed", 3, job));
    sc_close(&c);

    /* Last-Event-ID header 1: progress and completed only */
    stream_open(&c, e.gwport[0], path, h1);
    ck_assert(sc_wait(&c, sc_pred_end, NULL, WAIT_MS));
    ck_assert_uint_eq(c.p.nev, 3);
    json_object_put(assert_event(&c, 1, "progress", 2, job));
    json_object_put(assert_event(&c, 2, "completed", 3, job));
    sc_close(&c);

    /* lastEventId parameter 2: completed only */
    job_path(path, sizeof(path), job, "&lastEventId=2");
    stream_open(&c, e.gwport[0], path, NULL);
    ck_assert(sc_wait(&c, sc_pred_end, NULL, WAIT_MS));
    ck_assert(c.ended);
    ck_assert_uint_eq(c.p.nev, 2);
    json_object_put(assert_event(&c, 1, "completed", 3, job));
    sc_close(&c);

    /* the final id (header or parameter): 204, which tells EventSource to stop */
    struct fx_http_resp r;
    job_path(path, sizeof(path), job, "&lastEventId=3");
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), NULL, &r), 204);
    ck_assert_uint_eq(r.body_len, 0);
    fx_http_resp_done(&r);
    job_path(path, sizeof(path), job, NULL);
    const char *h3[] = { "Last-Event-ID: 3", NULL };
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), h3, &r), 204);
    fx_http_resp_done(&r);
    /* the header wins over the parameter, like a browser's reconnect after a parameter URL */
    job_path(path, sizeof(path), job, "&lastEventId=1");
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), h3, &r), 204);
    fx_http_resp_done(&r);
    /* not a number: 400 */
    job_path(path, sizeof(path), job, "&lastEventId=abc");
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), NULL, &r), 400);
    assert_error_body(&r, 400, "VALIDATION_ERROR");
    fx_http_resp_done(&r);
    env_stop(&e);
}
END_TEST

START_TEST(test_failed_job)
{
    struct env e;
    env_start(&e, false);
    gw_start(&e, 0, NULL);
    char job[JOB_ID_MAX + 1], path[1200];
    submit(&e, 0, "dave", NULL, job, NULL);
    struct sc c;
    job_path(path, sizeof(path), job, NULL);
    stream_open(&c, e.gwport[0], path, NULL);
    drv_claim(&e, job);
    drv_fail(&e, job, false);
    ck_assert(sc_wait(&c, sc_pred_end, NULL, WAIT_MS));
    ck_assert(c.ended);
    ck_assert_uint_eq(c.p.nev, 3);
    struct json_object *o = assert_event(&c, 2, "failed", 2, job);
    ck_assert_str_eq(jstr(o, "code"), "PROVIDER_TIMEOUT");
    long long v;
    ck_assert(jint(o, "attemptsMade", &v) && v == 1);
    json_object_put(o);
    sc_close(&c);
    struct fx_http_resp r;
    job_path(path, sizeof(path), job, "&lastEventId=2");
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), NULL, &r), 204);
    fx_http_resp_done(&r);
    env_stop(&e);
}
END_TEST

START_TEST(test_not_found)
{
    struct env e;
    env_start(&e, false);
    gw_start(&e, 0, NULL);
    char job[JOB_ID_MAX + 1], path[1200];
    submit(&e, 0, "erin", NULL, job, NULL);
    struct fx_http_resp r;

    ck_assert_int_eq(get_status(gw_url(&e, 0, "/api/job-events?jobId=no-such-job"), NULL, &r), 404);
    assert_error_body(&r, 404, "NOT_FOUND");
    fx_http_resp_done(&r);
    ck_assert_int_eq(get_status(gw_url(&e, 0, "/api/job-events?jobId=..%2F..%2Fetc"), NULL, &r), 404);
    fx_http_resp_done(&r);
    ck_assert_int_eq(get_status(gw_url(&e, 0, "/api/job-events"), NULL, &r), 400);
    assert_error_body(&r, 400, "VALIDATION_ERROR");
    fx_http_resp_done(&r);

    /* another user's job: 404, as if it did not exist */
    job_path(path, sizeof(path), job, NULL);
    const char *other[] = { "user-id: mallory", NULL };
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), other, &r), 404);
    assert_error_body(&r, 404, "NOT_FOUND");
    fx_http_resp_done(&r);
    job_path(path, sizeof(path), job, "&userId=mallory");
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), NULL, &r), 404);
    fx_http_resp_done(&r);
    env_stop(&e);
}
END_TEST

/* ------------------------------------------------------------ tokens */

static void sign_user(const char *sub, long long exp_in_s, char *out, size_t cap)
{
    int64_t now = clock_now_ms() / 1000;
    ck_assert_int_gt(jwt_sign_hs256(sub, "", now - 10, now + exp_in_s, JWT_SECRET, strlen(JWT_SECRET), out, cap), 0);
}

/* A job-bound token the way auth.c makes one: HMAC(secret, label) as the key. */
static void sign_job(const char *sub, const char *job, long long exp_in_s, char *out, size_t cap)
{
    uint8_t key[SHA256_LEN];
    static const char label[] = "flashgate/events-token/v1";
    crypto_hmac_sha256(JWT_SECRET, strlen(JWT_SECRET), label, sizeof(label) - 1, key);
    int64_t now = clock_now_ms() / 1000;
    ck_assert_int_gt(jwt_sign_hs256(sub, job, now - 7200, now + exp_in_s, key, sizeof(key), out, cap), 0);
}

START_TEST(test_tokens)
{
    struct env e;
    env_start(&e, false);
    const char *extra[] = { "AUTH_JWT_SECRET=" JWT_SECRET, NULL };
    gw_start(&e, 0, extra);
    char ujwt[1024], vjwt[1024], expired[1024], tok[1024], path[2048];
    sign_user("user-u", 600, ujwt, sizeof(ujwt));
    sign_user("user-v", 600, vjwt, sizeof(vjwt));
    sign_user("user-u", -3600, expired, sizeof(expired));
    char job[JOB_ID_MAX + 1], job2[JOB_ID_MAX + 1], ev[1024], ev2[1024];
    submit(&e, 0, NULL, ujwt, job, ev);
    submit(&e, 0, NULL, ujwt, job2, ev2);

    /* the 202's eventsUrl works as is */
    struct sc c;
    stream_open(&c, e.gwport[0], ev, NULL);
    sc_close(&c);
    /* a user JWT as access_token, for the user's own job */
    snprintf(path, sizeof(path), "/api/job-events?jobId=%s&access_token=%s", job, ujwt);
    stream_open(&c, e.gwport[0], path, NULL);
    sc_close(&c);

    struct fx_http_resp r;
    /* no token at all */
    job_path(path, sizeof(path), job, NULL);
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), NULL, &r), 401);
    assert_error_body(&r, 401, "UNAUTHORIZED");
    fx_http_resp_done(&r);
    /* the user-id header means nothing with a secret set */
    const char *uid[] = { "user-id: user-u", NULL };
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), uid, &r), 401);
    fx_http_resp_done(&r);
    /* garbage, an expired job token, another job's token */
    snprintf(path, sizeof(path), "/api/job-events?jobId=%s&token=not.a.token", job);
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), NULL, &r), 401);
    assert_error_body(&r, 401, "UNAUTHORIZED");
    fx_http_resp_done(&r);
    sign_job("user-u", job, -3600, tok, sizeof(tok));
    snprintf(path, sizeof(path), "/api/job-events?jobId=%s&token=%s", job, tok);
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), NULL, &r), 401);
    fx_http_resp_done(&r);
    sign_job("user-u", job, 600, tok, sizeof(tok));    /* the same, not expired: accepted */
    snprintf(path, sizeof(path), "/api/job-events?jobId=%s&token=%s", job, tok);
    stream_open(&c, e.gwport[0], path, NULL);
    sc_close(&c);
    const char *t2 = strstr(ev2, "token=") + 6;
    snprintf(path, sizeof(path), "/api/job-events?jobId=%s&token=%s", job, t2);
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), NULL, &r), 401);
    fx_http_resp_done(&r);
    /* an expired user JWT; another user's valid JWT (404: the job is not theirs) */
    snprintf(path, sizeof(path), "/api/job-events?jobId=%s&access_token=%s", job, expired);
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), NULL, &r), 401);
    fx_http_resp_done(&r);
    snprintf(path, sizeof(path), "/api/job-events?jobId=%s&access_token=%s", job, vjwt);
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), NULL, &r), 404);
    assert_error_body(&r, 404, "NOT_FOUND");
    fx_http_resp_done(&r);
    /* a job token forged for another user on this job: the job is not theirs */
    sign_job("user-v", job, 600, tok, sizeof(tok));
    snprintf(path, sizeof(path), "/api/job-events?jobId=%s&token=%s", job, tok);
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), NULL, &r), 404);
    fx_http_resp_done(&r);

    /* the user stream: access_token required and checked */
    snprintf(path, sizeof(path), "/api/events?access_token=%s", ujwt);
    stream_open(&c, e.gwport[0], path, NULL);
    struct json_object *o = jparse(c.p.ev[0].data);
    ck_assert_str_eq(jstr(o, "userId"), "user-u");
    json_object_put(o);
    sc_close(&c);
    ck_assert_int_eq(get_status(gw_url(&e, 0, "/api/events"), uid, &r), 401);
    assert_error_body(&r, 401, "UNAUTHORIZED");
    fx_http_resp_done(&r);
    snprintf(path, sizeof(path), "/api/events?access_token=%s", expired);
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), NULL, &r), 401);
    fx_http_resp_done(&r);
    /* a job token is not a user token */
    snprintf(path, sizeof(path), "/api/events?access_token=%s", strstr(ev, "token=") + 6);
    ck_assert_int_eq(get_status(gw_url(&e, 0, path), NULL, &r), 401);
    fx_http_resp_done(&r);
    env_stop(&e);
}
END_TEST

/* ------------------------------------------------------------ heartbeats, user stream, stats */

START_TEST(test_heartbeats)
{
    struct env e;
    env_start(&e, false);
    const char *extra[] = { "SSE_HEARTBEAT_MS=200", NULL };
    gw_start(&e, 0, extra);
    char job[JOB_ID_MAX + 1], path[1200];
    submit(&e, 0, "frank", NULL, job, NULL);
    drv_claim(&e, job);
    struct sc c;
    job_path(path, sizeof(path), job, NULL);
    stream_open(&c, e.gwport[0], path, NULL);
    size_t want = 5;    /* connected, active, 3 heartbeats */
    ck_assert_msg(sc_wait(&c, sc_pred_nev, &want, WAIT_MS), "heartbeats: %s", c.body);
    json_object_put(assert_event(&c, 1, "active", 1, job));
    for (size_t i = 2; i < want; i++) {
        struct json_object *o = assert_event(&c, i, "heartbeat", 0, job);
        long long n;
        ck_assert(jint(o, "connections", &n) && n == 1);
        ck_assert_str_eq(c.p.ev[i].id, "1");   /* EventSource keeps the last id */
        json_object_put(o);
    }
    /* the stream is still live between heartbeats */
    drv_complete(&e, job);
    ck_assert(sc_wait(&c, sc_pred_end, NULL, WAIT_MS));
    ck_assert_str_eq(c.p.ev[c.p.nev - 1].type, "completed");
    ck_assert_str_eq(c.p.ev[c.p.nev - 1].id, "2");
    sc_close(&c);
    env_stop(&e);
}
END_TEST

START_TEST(test_user_stream)
{
    struct env e;
    env_start(&e, false);
    gw_start(&e, 0, NULL);
    struct sc c;
    const char *hdrs[] = { "user-id: grace", NULL };
    stream_open(&c, e.gwport[0], "/api/events", hdrs);
    struct json_object *o = jparse(c.p.ev[0].data);
    ck_assert_str_eq(jstr(o, "userId"), "grace");
    ck_assert(iso_ok(jstr(o, "timestamp")));
    json_object_put(o);

    char a[JOB_ID_MAX + 1], b[JOB_ID_MAX + 1], x[JOB_ID_MAX + 1];
    submit(&e, 0, "grace", NULL, a, NULL);
    submit(&e, 0, "grace", NULL, b, NULL);
    submit(&e, 0, "heidi", NULL, x, NULL);
    drv_claim(&e, a);
    drv_claim(&e, b);
    drv_claim(&e, x);
    drv_progress(&e, x, 10);
    drv_progress(&e, b, 30);
    drv_complete(&e, a);
    drv_complete(&e, x);
    drv_complete(&e, b);
    size_t want = 6;     /* connected + a: active, completed + b: active, progress, completed */
    ck_assert_msg(sc_wait(&c, sc_pred_nev, &want, WAIT_MS), "user stream: %s", c.body);
    ck_assert(!c.ended && !c.eof);    /* a user stream does not end with a job */
    long long next_a = 1, next_b = 1;
    for (size_t i = 1; i < c.p.nev; i++) {
        o = jparse(c.p.ev[i].data);
        const char *j = jstr(o, "jobId");
        ck_assert_msg(j && (strcmp(j, a) == 0 || strcmp(j, b) == 0), "event of job %s on grace's stream", j);
        long long id = strtoll(c.p.ev[i].id, NULL, 10);
        ck_assert(c.p.ev[i].had_id);
        ck_assert_int_eq(id, strcmp(j, a) == 0 ? next_a++ : next_b++);
        json_object_put(o);
    }
    ck_assert_int_eq(next_a, 3);
    ck_assert_int_eq(next_b, 4);
    /* without an identity in insecure mode: 401 */
    struct fx_http_resp r;
    ck_assert_int_eq(get_status(gw_url(&e, 0, "/api/events"), NULL, &r), 401);
    assert_error_body(&r, 401, "UNAUTHORIZED");
    fx_http_resp_done(&r);
    sc_close(&c);
    env_stop(&e);
}
END_TEST

static long long stats_total(struct env *e, int g, struct json_object **ret)
{
    struct fx_http_resp r;
    ck_assert_int_eq(get_status(gw_url(e, g, "/api/sse/stats"), NULL, &r), 200);
    struct json_object *o = jparse(r.body), *sse;
    fx_http_resp_done(&r);
    ck_assert(json_object_object_get_ex(o, "sse", &sse));
    long long n = -1;
    ck_assert(jint(sse, "totalConnections", &n));
    if (ret)
        *ret = o;
    else
        json_object_put(o);
    return n;
}

static bool wait_stats_total(struct env *e, int g, long long want)
{
    long long deadline = sc_now_ms() + WAIT_MS;
    while (stats_total(e, g, NULL) != want) {
        if (sc_now_ms() > deadline)
            return false;
        poll(NULL, 0, 20);
    }
    return true;
}

START_TEST(test_stats)
{
    struct env e;
    env_start(&e, false);
    /* a client that goes away while its stream is idle (suspended) is noticed
     * when the next heartbeat is written: make that soon */
    const char *extra[] = { "ADMIN_TOKEN=ssetest-admin", "SSE_HEARTBEAT_MS=250", NULL };
    gw_start(&e, 0, extra);
    char a[JOB_ID_MAX + 1], b[JOB_ID_MAX + 1], path[1200];
    submit(&e, 0, "ivan", NULL, a, NULL);
    submit(&e, 0, "ivan", NULL, b, NULL);
    ck_assert_int_eq(stats_total(&e, 0, NULL), 0);
    struct sc c[5];
    job_path(path, sizeof(path), a, NULL);
    for (int i = 0; i < 3; i++)
        stream_open(&c[i], e.gwport[0], path, NULL);
    job_path(path, sizeof(path), b, NULL);
    stream_open(&c[3], e.gwport[0], path, NULL);
    const char *hdrs[] = { "user-id: ivan", NULL };
    stream_open(&c[4], e.gwport[0], "/api/events", hdrs);

    struct json_object *o, *sse, *list;
    ck_assert_int_eq(stats_total(&e, 0, &o), 5);
    ck_assert(json_object_object_get_ex(o, "sse", &sse));
    long long v;
    ck_assert(jint(sse, "activeJobs", &v) && v == 2);
    ck_assert(json_object_object_get_ex(sse, "jobsWithSubscribers", &list));
    ck_assert_int_eq(json_object_array_length(list), 2);
    for (size_t i = 0; i < 2; i++) {
        struct json_object *it = json_object_array_get_idx(list, i);
        const char *j = jstr(it, "jobId");
        ck_assert(jint(it, "subscribers", &v));
        ck_assert_int_eq(v, strcmp(j, a) == 0 ? 3 : 1);
    }
    ck_assert_str_eq(jstr(o, "instance"), "ssetest-gw-0");
    ck_assert(iso_ok(jstr(o, "timestamp")));
    json_object_put(o);

    /* clients leaving are counted out */
    sc_close(&c[0]);
    sc_close(&c[4]);
    ck_assert(wait_stats_total(&e, 0, 3));
    /* a finished job's streams end and leave */
    drv_claim(&e, b);
    drv_complete(&e, b);
    ck_assert(sc_wait(&c[3], sc_pred_end, NULL, WAIT_MS));
    ck_assert(wait_stats_total(&e, 0, 2));
    ck_assert_int_eq(stats_total(&e, 0, &o), 2);
    ck_assert(json_object_object_get_ex(o, "sse", &sse));
    ck_assert(jint(sse, "activeJobs", &v) && v == 1);
    json_object_put(o);
    for (int i = 1; i < 4; i++)
        sc_close(&c[i]);
    ck_assert(wait_stats_total(&e, 0, 0));

    /* admin only: from an address outside ADMIN_ALLOW_CIDRS without the token */
    proc_stop(&e.gw[0]);
    const char *strict[] = { "ADMIN_TOKEN=ssetest-admin", "ADMIN_ALLOW_CIDRS=192.0.2.0/32", NULL };
    gw_start(&e, 0, strict);
    struct fx_http_resp r;
    ck_assert_int_eq(get_status(gw_url(&e, 0, "/api/sse/stats"), NULL, &r), 403);
    fx_http_resp_done(&r);
    const char *auth[] = { "Authorization: Bearer ssetest-admin", NULL };
    ck_assert_int_eq(get_status(gw_url(&e, 0, "/api/sse/stats"), auth, &r), 200);
    fx_http_resp_done(&r);
    env_stop(&e);
}
END_TEST

/* ------------------------------------------------------------ shutdown */

START_TEST(test_sigterm)
{
    struct env e;
    env_start(&e, false);
    const char *extra[] = { "SSE_RETRY_MS=1234", NULL };
    gw_start(&e, 0, extra);
    char job[JOB_ID_MAX + 1], path[1200];
    submit(&e, 0, "judy", NULL, job, NULL);
    drv_claim(&e, job);
    struct sc c[2];
    job_path(path, sizeof(path), job, NULL);
    stream_open(&c[0], e.gwport[0], path, NULL);
    const char *hdrs[] = { "user-id: judy", NULL };
    stream_open(&c[1], e.gwport[0], "/api/events", hdrs);
    ck_assert_int_eq(c[0].p.retry_ms, 1234);
    size_t two = 2;
    ck_assert(sc_wait(&c[0], sc_pred_nev, &two, WAIT_MS));   /* active replayed */

    ck_assert_int_eq(fx_proc_signal(&e.gw[0], SIGTERM), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(sc_wait(&c[i], sc_pred_end, NULL, WAIT_MS), "stream %d not ended on SIGTERM", i);
        ck_assert_msg(c[i].ended, "stream %d was cut, not ended", i);
        ck_assert_int_eq(c[i].p.retries, 2);              /* the hint came again at the end */
        ck_assert_int_eq(c[i].p.retry_ms, 1234);
        ck_assert_int_ge(c[i].p.comments, 1);
        sc_close(&c[i]);
    }
    ck_assert_int_eq(fx_proc_wait_exit(&e.gw[0], WAIT_MS), 0);
    assert_log_clean(&e.gw[0]);
    fx_proc_done(&e.gw[0]);
    e.gw[0].pid = -1;
    /* the job goes on; another instance serves the resumed stream from the same id */
    gw_start(&e, 1, NULL);
    drv_complete(&e, job);
    job_path(path, sizeof(path), job, NULL);
    const char *h1[] = { "Last-Event-ID: 1", NULL };
    stream_open(&c[0], e.gwport[1], path, h1);
    ck_assert(sc_wait(&c[0], sc_pred_end, NULL, WAIT_MS));
    ck_assert_uint_eq(c[0].p.nev, 2);
    json_object_put(assert_event(&c[0], 1, "completed", 2, job));
    sc_close(&c[0]);
    env_stop(&e);
}
END_TEST

/* ------------------------------------------------------------ fleet */

/* Two gateways, two workers: a client on one gateway follows a job enqueued
 * on the other, whichever worker runs it. */
START_TEST(test_two_gateways_two_workers)
{
    enum { JOBS = 8 };
    struct env e;
    env_start(&e, false);
    gw_start(&e, 0, NULL);
    gw_start(&e, 1, NULL);
    char job[JOBS][JOB_ID_MAX + 1], ev[1024];
    struct sc c[JOBS], u;
    const char *hdrs[] = { "user-id: kim", NULL };
    stream_open(&u, e.gwport[1], "/api/events", hdrs);
    for (int i = 0; i < JOBS; i++) {
        submit(&e, i % 2, "kim", NULL, job[i], ev);
        stream_open(&c[i], e.gwport[1 - i % 2], ev, NULL);     /* the other gateway */
    }
    wk_start(&e, 0);
    wk_start(&e, 1);
    ck_assert(sc_wait_all(c, JOBS, sc_pred_end, NULL, 60000));
    for (int i = 0; i < JOBS; i++) {
        ck_assert_msg(c[i].ended, "stream %d cut", i);
        size_t last = c[i].p.nev - 1;
        json_object_put(assert_event(&c[i], 1, "active", 1, job[i]));
        json_object_put(assert_event(&c[i], last, "completed", (long long)last, job[i]));
        long long ids[64];
        size_t n = job_ids(&c[i], ids, 64);
        for (size_t k = 0; k < n; k++)
            ck_assert_int_eq(ids[k], (long long)k + 1);
        sc_close(&c[i]);
    }
    /* the user stream on gateway B saw every job complete, each once */
    int completed = 0;
    long long deadline = sc_now_ms() + WAIT_MS;
    while (completed < JOBS && sc_now_ms() < deadline) {
        sc_wait(&u, sc_pred_end, NULL, 200);
        completed = 0;
        for (size_t i = 0; i < u.p.nev; i++)
            completed += strcmp(u.p.ev[i].type, "completed") == 0;
    }
    ck_assert_int_eq(completed, JOBS);
    sc_close(&u);
    env_stop(&e);
}
END_TEST

/* Redis restarts in the middle of a job: the stream (kept open, or resumed
 * with Last-Event-ID when the server closed it) gets every event once, also
 * those published while the gateway's subscriber was away. */
START_TEST(test_redis_restart)
{
    struct env e;
    env_start(&e, true);            /* append-only: the job and its history survive */
    gw_start(&e, 0, NULL);
    char job[JOB_ID_MAX + 1], path[1200];
    submit(&e, 0, "leo", NULL, job, NULL);
    struct sc c;
    job_path(path, sizeof(path), job, NULL);
    stream_open(&c, e.gwport[0], path, NULL);
    drv_claim(&e, job);
    drv_progress(&e, job, 10);
    size_t three = 3;
    ck_assert(sc_wait(&c, sc_pred_nev, &three, WAIT_MS));

    ck_assert_int_eq(fx_redis_stop(&e.rs), 0);
    ck_assert_int_eq(fx_redis_restart(&e.rs), 0);
    /* right away: most likely before the gateway's subscriber is back */
    drv_progress(&e, job, 20);
    drv_progress(&e, job, 30);
    drv_progress(&e, job, 40);
    drv_complete(&e, job);

    long long seen[64];
    size_t nseen = 0;
    int reconnects = 0;
    long long deadline = sc_now_ms() + WAIT_MS;
    for (;;) {
        sc_wait(&c, sc_pred_end, NULL, (int)(deadline - sc_now_ms() > 0 ? deadline - sc_now_ms() : 1));
        nseen += job_ids(&c, seen + nseen, 64 - nseen);
        bool done = nseen && seen[nseen - 1] == 6;
        if (done || sc_now_ms() >= deadline)
            break;
        ck_assert_msg(c.eof || c.ended, "stream stalled after the restart: ids so far %zu, body %s", nseen,
                      c.body);
        /* the server closed the stream: resume like EventSource does */
        char h[64];
        snprintf(h, sizeof(h), "Last-Event-ID: %lld", nseen ? seen[nseen - 1] : 0);
        const char *hdrs[] = { h, NULL };
        sc_close(&c);
        reconnects++;
        stream_open(&c, e.gwport[0], path, hdrs);
    }
    sc_close(&c);
    if (nseen != 6)
        fx_proc_print_log(&e.gw[0]);
    ck_assert_msg(nseen == 6, "%zu ids received (%d reconnects)", nseen, reconnects);
    for (size_t i = 0; i < nseen; i++)
        ck_assert_int_eq(seen[i], (long long)i + 1);
    /* and the gateway is ready again */
    char *url = strdup(gw_url(&e, 0, "/ready"));
    ck_assert_int_eq(fx_proc_wait_http(&e.gw[0], url, 0), 0);
    free(url);
    env_stop(&e);
}
END_TEST

/* The user stream across a Redis restart: a job it already follows and a
 * job that starts while the gateway's subscriber is away (and goes on after
 * it is back) both arrive whole, each event once, in order.  (A job whose
 * every event falls into the gap is not seen on the user stream: nothing
 * tells it the job exists.  Job streams have no such limit.) */
START_TEST(test_user_stream_redis_restart)
{
    struct env e;
    env_start(&e, true);
    gw_start(&e, 0, NULL);
    char a[JOB_ID_MAX + 1], b[JOB_ID_MAX + 1];
    submit(&e, 0, "olga", NULL, a, NULL);
    struct sc c;
    const char *hdrs[] = { "user-id: olga", NULL };
    stream_open(&c, e.gwport[0], "/api/events", hdrs);
    drv_claim(&e, a);
    size_t two = 2;
    ck_assert(sc_wait(&c, sc_pred_nev, &two, WAIT_MS));
    submit(&e, 0, "olga", NULL, b, NULL);   /* no event of b yet */

    ck_assert_int_eq(fx_redis_stop(&e.rs), 0);
    ck_assert_int_eq(fx_redis_restart(&e.rs), 0);
    /* right away: most likely before the gateway's subscriber is back */
    drv_claim(&e, b);                 /* b's first events: lost by pub/sub if so */
    drv_progress(&e, b, 10);
    drv_progress(&e, a, 50);
    size_t three = 3;                 /* a's progress: the subscriber is back (live or by replay) */
    ck_assert_msg(sc_wait(&c, sc_pred_nev, &three, WAIT_MS), "no event after the restart: %s", c.body);
    drv_progress(&e, b, 20);          /* the first b event this stream sees live */
    drv_complete(&e, a);
    drv_complete(&e, b);

    /* a: active(1) progress(2) completed(3); b: active(1) p(2) p(3) completed(4) */
    size_t want = 1 + 3 + 4;
    sc_wait(&c, sc_pred_nev, &want, WAIT_MS);
    long long next_a = 1, next_b = 1;
    for (size_t i = 1; i < c.p.nev; i++) {
        struct json_object *o = jparse(c.p.ev[i].data);
        const char *j = jstr(o, "jobId");
        ck_assert_ptr_nonnull(j);
        long long id = strtoll(c.p.ev[i].id, NULL, 10);
        ck_assert_msg(id == (strcmp(j, a) == 0 ? next_a : next_b), "event %zu: job %s id %lld (stream: %s)", i,
                      strcmp(j, a) == 0 ? "a" : "b", id, c.body);
        if (strcmp(j, a) == 0)
            next_a++;
        else
            next_b++;
        json_object_put(o);
    }
    ck_assert_msg(next_a == 4 && next_b == 5, "a up to %lld, b up to %lld: %s", next_a - 1, next_b - 1, c.body);
    sc_close(&c);
    env_stop(&e);
}
END_TEST

/* Append a progress event with `pad` bytes of filler to the job's history
 * and publish it, as common/lua/common.lua emit() does (next seq, RPUSH,
 * PUBLISH on the job's and the user's channel): big events fill a client's
 * socket buffers in a few hundred events.  Returns the seq. */
static long long emit_padded(struct env *e, const char *job, const char *user, int pct, size_t pad)
{
    static const char lua[] =
        "local seq = redis.call('HINCRBY', KEYS[1], 'event_seq', 1)\n"
        "local p = '{\"seq\":' .. seq .. ',\"event\":\"progress\",\"jobId\":' .. cjson.encode(ARGV[1]) ..\n"
        "  ',\"userId\":' .. cjson.encode(ARGV[2]) .. ',\"data\":{\"jobId\":' .. cjson.encode(ARGV[1]) ..\n"
        "  ',\"progress\":' .. ARGV[3] .. ',\"pad\":\"' .. string.rep('x', tonumber(ARGV[4])) ..\n"
        "  '\",\"timestamp\":\"' .. ARGV[5] .. '\"}}'\n"
        "redis.call('RPUSH', KEYS[2], p)\n"
        "redis.call('PUBLISH', KEYS[3], p)\n"
        "redis.call('PUBLISH', KEYS[4], p)\n"
        "return seq\n";
    char k1[128], k2[128], k3[128], k4[512], a3[16], a4[24], iso[CLOCK_ISO_LEN];
    snprintf(k1, sizeof(k1), QUEUE_KEY_PREFIX "job:%s", job);
    snprintf(k2, sizeof(k2), QUEUE_KEY_PREFIX "events:%s", job);
    snprintf(k3, sizeof(k3), QUEUE_CHANNEL_JOB_PREFIX "%s", job);
    snprintf(k4, sizeof(k4), QUEUE_CHANNEL_USER_PREFIX "%s", user);
    snprintf(a3, sizeof(a3), "%d", pct);
    snprintf(a4, sizeof(a4), "%zu", pad);
    clock_iso8601(clock_now_ms(), iso);
    const char *argv[] = { "EVAL", lua, "4", k1, k2, k3, k4, job, user, a3, a4, iso };
    redisReply *r = redisx_commandv(e->rx, 12, argv, NULL);
    ck_assert_msg(r && r->type == REDIS_REPLY_INTEGER, "emit: %s", r && r->str ? r->str : "no reply");
    long long seq = r->integer;
    freeReplyObject(r);
    return seq;
}

/* A client that stops reading: past SSE_MAX_QUEUE frames the server closes
 * its stream at once and stays healthy; the client's reconnect catches up
 * from history (a catch-up much longer than SSE_MAX_QUEUE, which must not
 * overflow the new stream), and a reader on the same job meanwhile gets
 * everything live. */
START_TEST(test_slow_client)
{
    enum { PAD = 48 * 1024, MAX_EVENTS = 400 };
    struct env e;
    env_start(&e, false);
    const char *extra[] = { "SSE_MAX_QUEUE=16", NULL };
    gw_start(&e, 0, extra);
    char job[JOB_ID_MAX + 1], path[1200];
    submit(&e, 0, "mia", NULL, job, NULL);
    job_path(path, sizeof(path), job, NULL);
    struct sc slow, fast;
    ck_assert_int_eq(sc_open(&slow, e.gwport[0], path, NULL, 65536), 0);
    ck_assert(sc_wait(&slow, sc_pred_type, "connected", WAIT_MS));
    stream_open(&fast, e.gwport[0], path, NULL);
    drv_claim(&e, job);
    size_t want = 2;
    ck_assert(sc_wait(&fast, sc_pred_nev, &want, WAIT_MS));
    ck_assert_int_eq(stats_total(&e, 0, NULL), 2);

    /* the slow client reads nothing from here on; the fast one keeps up */
    long long emitted = 1;          /* active */
    bool closed = false;
    while (!closed && emitted < MAX_EVENTS) {
        emitted = emit_padded(&e, job, "mia", (int)(emitted % 100), PAD);
        want = (size_t)emitted + 1;
        ck_assert_msg(sc_wait(&fast, sc_pred_nev, &want, WAIT_MS), "the reading client fell behind at %lld",
                      emitted);
        closed = stats_total(&e, 0, NULL) == 1;
    }
    ck_assert_msg(closed, "the server kept a stream that read nothing for %lld events", emitted);
    struct fx_http_resp r;
    ck_assert_int_eq(get_status(gw_url(&e, 0, "/health"), NULL, &r), 200);
    fx_http_resp_done(&r);

    /* what the slow client did get is a gap-free prefix; then the server had closed */
    ck_assert(sc_wait(&slow, sc_pred_end, NULL, WAIT_MS));
    ck_assert_msg(slow.eof && !slow.ended, "the slow stream should have been cut");
    long long ids[2 * MAX_EVENTS];
    size_t n = job_ids(&slow, ids, 2 * MAX_EVENTS);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(ids[i], (long long)i + 1);
    ck_assert_int_lt((long long)n, emitted);
    char h[64];
    snprintf(h, sizeof(h), "Last-Event-ID: %lld", (long long)n);
    const char *hdrs[] = { h, NULL };
    sc_close(&slow);
    stream_open(&slow, e.gwport[0], path, hdrs);
    drv_complete(&e, job);
    emitted++;
    ck_assert(sc_wait(&slow, sc_pred_end, NULL, WAIT_MS));
    ck_assert_msg(slow.ended, "the catch-up stream was cut (%zu events)", slow.p.nev);
    size_t m = job_ids(&slow, ids + n, 2 * MAX_EVENTS - n);
    ck_assert_int_eq((long long)(n + m), emitted);
    for (size_t i = 0; i < n + m; i++)
        ck_assert_int_eq(ids[i], (long long)i + 1);
    /* the reader that kept up got all of it, live */
    ck_assert(sc_wait(&fast, sc_pred_end, NULL, WAIT_MS));
    ck_assert(fast.ended);
    size_t f = job_ids(&fast, ids, 2 * MAX_EVENTS);
    ck_assert_int_eq((long long)f, emitted);
    for (size_t i = 0; i < f; i++)
        ck_assert_int_eq(ids[i], (long long)i + 1);
    sc_close(&slow);
    sc_close(&fast);
    env_stop(&e);
}
END_TEST

/* Close n streams (calloc'd array, freed) and wait until gateway 0 counts none. */
static void close_all(struct env *e, struct sc *c, int n)
{
    for (int i = 0; i < n; i++)
        sc_close(&c[i]);
    free(c);
    ck_assert(wait_stats_total(e, 0, 0));
}

/* 1,000 concurrent streams (100 jobs x 10) on one gateway; all get their
 * job's events, in order, once, and end with completed. */
START_TEST(test_thousand_streams)
{
    enum { JOBS = 100, PER = 10, N = JOBS * PER };
    struct env e;
    env_start(&e, false);
    gw_start(&e, 0, NULL);
    static char job[JOBS][JOB_ID_MAX + 1];
    char ev[1024];
    struct sc *c = calloc(N, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    for (int j = 0; j < JOBS; j++) {
        submit(&e, 0, "nina", NULL, job[j], ev);
        for (int k = 0; k < PER; k++) {
            int rc = sc_open(&c[j * PER + k], e.gwport[0], ev, NULL, 0);
            ck_assert_msg(rc == 0, "stream %d: %s", j * PER + k, strerror(-rc));
        }
    }
    ck_assert_msg(sc_wait_all(c, N, sc_pred_type, "connected", 60000), "not every stream got connected");
    ck_assert_int_eq(stats_total(&e, 0, NULL), N);
    wk_start(&e, 0);
    ck_assert_msg(sc_wait_all(c, N, sc_pred_end, NULL, 120000), "not every stream ended");
    for (int i = 0; i < N; i++) {
        const struct sc *s = &c[i];
        const char *jb = job[i / PER];
        ck_assert_msg(s->ended && s->status == 200, "stream %d: status %d ended %d", i, s->status, s->ended);
        ck_assert_str_eq(s->p.ev[0].type, "connected");
        ck_assert_msg(strcmp(s->p.ev[s->p.nev - 1].type, "completed") == 0, "stream %d ends with %s", i,
                      s->p.ev[s->p.nev - 1].type);
        long long ids[64];
        size_t n = job_ids(s, ids, 64);
        ck_assert_uint_ge(n, 2);
        for (size_t k = 0; k < n; k++)
            ck_assert_int_eq(ids[k], (long long)k + 1);
        struct json_object *o = jparse(s->p.ev[s->p.nev - 1].data);
        ck_assert_str_eq(jstr(o, "jobId"), jb);
        json_object_put(o);
    }
    close_all(&e, c, N);
    env_stop(&e);
}
END_TEST

/* Hundreds of streams on one job (HTTP/1.1 and HTTP/1.0 clients), on a
 * gateway with four senders (SSE_FANOUT_THREADS): the hub writes each event to idle
 * streams' sockets itself, spread over threads, and queues it for streams
 * that are busy.  Events come both one at a time (every stream idle) and
 * back to back (streams still writing the previous one): every stream gets
 * every event once, in order, framed right (chunks for HTTP/1.1, the raw
 * body ended by the close for HTTP/1.0), and the stream ends after
 * completed. */
START_TEST(test_one_job_fanout)
{
    enum { N11 = 400, N10 = 40, N = N11 + N10, SPACED = 5, BURST = 40 };
    struct env e;
    env_start(&e, false);
    const char *extra[] = { "SSE_FANOUT_THREADS=4", NULL };
    gw_start(&e, 0, extra);
    char job[JOB_ID_MAX + 1], ev[1024];
    submit(&e, 0, "fan", NULL, job, ev);
    struct sc *c = calloc(N, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    for (int i = 0; i < N; i++) {
        int rc = sc_open_version(&c[i], e.gwport[0], ev, NULL, 0, i < N11 ? "HTTP/1.1" : "HTTP/1.0");
        ck_assert_msg(rc == 0, "stream %d: %s", i, strerror(-rc));
    }
    ck_assert_msg(sc_wait_all(c, N, sc_pred_type, "connected", 60000), "not every stream got connected");
    ck_assert_int_eq(stats_total(&e, 0, NULL), N);

    drv_claim(&e, job);                                  /* id 1 */
    size_t want = 2;                                     /* connected + active */
    ck_assert(sc_wait_all(c, N, sc_pred_nev, &want, WAIT_MS));
    for (int k = 1; k <= SPACED; k++) {                  /* ids 2..6, each to idle streams */
        drv_progress(&e, job, k);
        want++;
        ck_assert_msg(sc_wait_all(c, N, sc_pred_nev, &want, WAIT_MS), "progress %d not everywhere", k);
    }
    for (int k = 0; k < BURST; k++)                      /* ids 7..46, back to back */
        drv_progress(&e, job, SPACED + 1 + k);
    drv_complete(&e, job);                               /* id 47 */
    ck_assert_msg(sc_wait_all(c, N, sc_pred_end, NULL, 60000), "not every stream ended");
    const long long last = 1 + SPACED + BURST + 1;
    for (int i = 0; i < N; i++) {
        const struct sc *s = &c[i];
        ck_assert_msg(s->ended && s->status == 200 && !s->err, "stream %d: status %d ended %d err %d", i, s->status,
                      s->ended, s->err);
        ck_assert_msg(s->chunked == (i < N11), "stream %d: chunked %d", i, s->chunked);
        long long ids[64];
        size_t n = job_ids(s, ids, 64);
        ck_assert_msg(n == (size_t)last, "stream %d: %zu events, want %lld", i, n, last);
        for (size_t k = 0; k < n; k++)
            ck_assert_msg(ids[k] == (long long)k + 1, "stream %d: event %zu has id %lld", i, k, ids[k]);
        ck_assert_str_eq(s->p.ev[0].type, "connected");
        ck_assert_str_eq(s->p.ev[s->p.nev - 1].type, "completed");
        for (size_t k = 2; k < s->p.nev - 1; k++)
            ck_assert_str_eq(s->p.ev[k].type, "progress");
    }
    close_all(&e, c, N);
    env_stop(&e);
}
END_TEST

static Suite *sse_suite(void)
{
    Suite *s = suite_create("sse");
    TCase *tc = tcase_create("stream");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_order_and_content);
    tcase_add_test(tc, test_real_worker);
    tcase_add_test(tc, test_late_client_and_resume);
    tcase_add_test(tc, test_failed_job);
    tcase_add_test(tc, test_not_found);
    tcase_add_test(tc, test_tokens);
    tcase_add_test(tc, test_heartbeats);
    tcase_add_test(tc, test_user_stream);
    tcase_add_test(tc, test_stats);
    tcase_add_test(tc, test_sigterm);
    suite_add_tcase(s, tc);
    tc = tcase_create("fleet");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_two_gateways_two_workers);
    tcase_add_test(tc, test_redis_restart);
    tcase_add_test(tc, test_user_stream_redis_restart);
    tcase_add_test(tc, test_slow_client);
    tcase_add_test(tc, test_thousand_streams);
    tcase_add_test(tc, test_one_job_fanout);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sse_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
