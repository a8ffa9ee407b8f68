/*
 * check-pipeline.h: the world the job-pipeline suites run in, shared by
 * check-pipeline.c (happy paths, idempotency, bad input, job status) and
 * check-pipeline-faults.c (retries, permanent failures, timeouts, a worker
 * killed or stopped mid-job, SIGTERM drain, Redis restarted mid-run).
 *
 * A world is one private redis-server, the fake OpenAI/Azure provider
 * (tests/support/fake-provider.c, --port 0, one API key), the real gateway
 * and up to PL_WORKERS real workers, all on free loopback ports and all
 * started by the test function itself (fixture.h: only the process that
 * starts a child may reap it).  Everything is observed the way a user or an
 * operator sees it: the gateway's HTTP answers, the SSE stream, the worker's
 * /health, the fake's /_fake/stats; Redis is read directly only to count a
 * job's stored events.
 *
 * Waits poll a condition against a deadline (PL_POLL_MS between polls);
 * nothing sleeps for readiness.  Helpers are static inline so each suite
 * includes this header without unused-function warnings.  Not thread-safe
 * (fixture.h): only the 50-submitter test uses threads, with their own curl
 * handles.
 */
#ifndef TESTS_INTEGRATION_CHECK_PIPELINE_H
#define TESTS_INTEGRATION_CHECK_PIPELINE_H

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "common/clock.h"
#include "tests/support/fixture.h"

#define PL_WORKERS      3
#define PL_ENV_MAX      96
#define PL_POLL_MS      20
#define PL_START_MS     30000
#define PL_JOB_MS       30000        /* default wait for a job to reach a state */
#define PL_MAX_EVENTS   256
#define PL_FAKE_KEY     "sk-pipeline-test-key-0123456789"
#define PL_AZURE_DEP    "flash-deploy"
#define PL_AZURE_VER    "2024-06-01"
#define PL_USER         "user-alice"
#define PL_FLASHCARDS   "/api/ai/generate-flashcards"
#define PL_LESSON       "/api/ai/generate-lesson"
#define PL_QKEY(k)      "fg:{ai-jobs}:" k

struct pl_world {
    struct fx_redis rs;
    struct fx_proc fake, gw, wk[PL_WORKERS];
    int fake_port, gw_port, wk_port[PL_WORKERS];
    char fake_base[64], gw_base[64], wk_base[PL_WORKERS][64];
    const char *provider;            /* the workers' AI_PROVIDER */
};

/* ------------------------------------------------------------ small things */

__attribute__((format(printf, 1, 2)))
static inline char *pl_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    return s;
}

/* base + path in one of 16 rotating buffers (valid for a few calls). */
static inline const char *pl_url(const char *base, const char *path)
{
    static char buf[16][4096];
    static unsigned i;
    char *b = buf[i++ % 16];
    snprintf(b, sizeof(buf[0]), "%s%s", base, path);
    return b;
}

/* Set "K=V" in env (overriding an earlier K). */
static inline void pl_env_set(const char **env, size_t *n, const char *kv)
{
    size_t klen = strcspn(kv, "=");
    for (size_t i = 0; i < *n; i++)
        if (strncmp(env[i], kv, klen) == 0 && env[i][klen] == '=') {
            env[i] = kv;
            return;
        }
    ck_assert_uint_lt(*n, PL_ENV_MAX);
    env[(*n)++] = kv;
}

/* ------------------------------------------------------------ JSON */

static inline struct json_object *pl_parse(const char *s)
{
    struct json_object *o = s ? json_tokener_parse(s) : NULL;
    ck_assert_msg(o != NULL, "not JSON: %.400s", s ? s : "(null)");
    return o;
}

/* "a.b.0.c": members and array indices.  Borrowed; NULL if absent. */
static inline struct json_object *pl_jp(struct json_object *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *t = strtok_r(buf, ".", &save); o && t; t = strtok_r(NULL, ".", &save)) {
        if (json_object_is_type(o, json_type_array)) {
            size_t i = strtoul(t, NULL, 10);
            o = i < json_object_array_length(o) ? json_object_array_get_idx(o, i) : NULL;
        } else if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, t, &o)) {
            return NULL;
        }
    }
    return o;
}

static inline bool pl_jhas(struct json_object *o, const char *path)
{
    return pl_jp(o, path) != NULL;
}

static inline const char *pl_jstr(struct json_object *o, const char *path)
{
    struct json_object *v = pl_jp(o, path);
    ck_assert_msg(v && json_object_is_type(v, json_type_string), "%s is not a string in %.400s", path,
                  json_object_to_json_string(o));
    return json_object_get_string(v);
}

static inline long long pl_jint(struct json_object *o, const char *path)
{
    struct json_object *v = pl_jp(o, path);
    ck_assert_msg(v && json_object_is_type(v, json_type_int), "%s is not an integer in %.400s", path,
                  json_object_to_json_string(o));
    return json_object_get_int64(v);
}

static inline bool pl_jbool(struct json_object *o, const char *path)
{
    struct json_object *v = pl_jp(o, path);
    ck_assert_msg(v && json_object_is_type(v, json_type_boolean), "%s is not a boolean in %.400s", path,
                  json_object_to_json_string(o));
    return json_object_get_boolean(v);
}

static inline size_t pl_jlen(struct json_object *o, const char *path)
{
    struct json_object *v = pl_jp(o, path);
    ck_assert_msg(v && json_object_is_type(v, json_type_array), "%s is not an array in %.400s", path,
                  json_object_to_json_string(o));
    return json_object_array_length(v);
}

/* ------------------------------------------------------------ processes */

static inline void pl_init(struct pl_world *w)
{
    memset(w, 0, sizeof(*w));
    w->rs.pid = -1;
    w->fake.pid = -1;
    w->gw.pid = -1;
    for (int i = 0; i < PL_WORKERS; i++)
        w->wk[i].pid = -1;
}

static inline void pl_assert_log_clean(const struct fx_proc *p)
{
    char *log = fx_proc_log(p);
    if (!log)
        return;
    bool bad = strstr(log, "AddressSanitizer") || strstr(log, "LeakSanitizer") ||
               strstr(log, "runtime error:") || strstr(log, "ThreadSanitizer");
    if (bad)
        fx_proc_print_log(p);
    free(log);
    ck_assert_msg(!bad, "sanitizer report in the log of %s", p->name);
}

/* The fake provider with --api-key PL_FAKE_KEY; returns once /_fake/health answers. */
static inline void pl_start_fake(struct pl_world *w)
{
    const char *bin = fixture_bin("FLASHGATE_FAKE_PROVIDER", NULL);
    ck_assert_msg(bin != NULL, "FLASHGATE_FAKE_PROVIDER is not set (run through meson test)");
    const char *argv[] = { bin, "--port", "0", "--api-key", PL_FAKE_KEY, "--threads", "2", NULL };
    ck_assert_int_eq(fx_proc_start(&w->fake, "fake-provider", bin, argv, NULL), 0);
    int port = 0;
    for (int64_t deadline = clock_mono_ms() + PL_START_MS; !port && clock_mono_ms() < deadline;) {
        char *log = fx_proc_log(&w->fake);
        const char *p = log ? strstr(log, "PORT=") : NULL;
        if (p && strchr(p, '\n'))
            port = atoi(p + 5);
        free(log);
        if (!port) {
            ck_assert_msg(fx_proc_running(&w->fake), "fake-provider exited before printing PORT=");
            clock_sleep_ms(5);
        }
    }
    ck_assert_int_gt(port, 0);
    w->fake_port = port;
    snprintf(w->fake_base, sizeof(w->fake_base), "http://127.0.0.1:%d", port);
    ck_assert_int_eq(fx_proc_wait_http(&w->fake, pl_url(w->fake_base, "/_fake/health"), PL_START_MS), 0);
}

/* The gateway over the world's Redis; `extra` ("K=V", NULL-ended) overrides. */
static inline void pl_start_gateway(struct pl_world *w, const char *const *extra)
{
    const char *env[PL_ENV_MAX + 1];
    size_t n = 0;
    pl_env_set(env, &n, "INSTANCE_ID=pl-gateway");
    pl_env_set(env, &n, "HTTP_THREADS=4");
    pl_env_set(env, &n, "RATE_LIMIT_AI_PER_MIN=1000000");
    pl_env_set(env, &n, "RATE_LIMIT_IP_PER_MIN=100000000");
    pl_env_set(env, &n, "REDIS_RETRY_MAX_MS=200");
    pl_env_set(env, &n, "REDIS_CONNECT_TIMEOUT_MS=1000");
    pl_env_set(env, &n, "REDIS_COMMAND_TIMEOUT_MS=2000");
    pl_env_set(env, &n, "SHUTDOWN_GRACE_MS=2000");
    pl_env_set(env, &n, "SSE_HEARTBEAT_MS=5000");
    for (size_t i = 0; extra && extra[i]; i++)
        pl_env_set(env, &n, extra[i]);
    env[n] = NULL;
    ck_assert_int_eq(fx_gateway_start(&w->gw, w->rs.url, env, &w->gw_port), 0);
    snprintf(w->gw_base, sizeof(w->gw_base), "http://127.0.0.1:%d", w->gw_port);
}

/* Worker i with AI_PROVIDER=w->provider pointed at the fake, fleet-wide
 * limits and breakers lifted (not under test here), short backoffs; `extra`
 * overrides. */
static inline void pl_start_worker(struct pl_world *w, int i, const char *const *extra)
{
    static char kv[PL_WORKERS][6][256];
    const char *env[PL_ENV_MAX + 1];
    size_t n = 0;
    ck_assert_int_lt(i, PL_WORKERS);
    snprintf(kv[i][0], sizeof(kv[i][0]), "AI_PROVIDER=%s", w->provider ? w->provider : "openai");
    snprintf(kv[i][1], sizeof(kv[i][1]), "OPENAI_BASE_URL=%s/v1", w->fake_base);
    snprintf(kv[i][2], sizeof(kv[i][2]), "AZURE_OPENAI_ENDPOINT=%s", w->fake_base);
    snprintf(kv[i][3], sizeof(kv[i][3]), "INSTANCE_ID=pl-worker-%d", i);
    pl_env_set(env, &n, kv[i][0]);
    pl_env_set(env, &n, kv[i][3]);
    if (w->fake_port) {
        pl_env_set(env, &n, kv[i][1]);
        pl_env_set(env, &n, "OPENAI_API_KEY=" PL_FAKE_KEY);
        pl_env_set(env, &n, kv[i][2]);
        pl_env_set(env, &n, "AZURE_OPENAI_API_KEY=" PL_FAKE_KEY);
        pl_env_set(env, &n, "AZURE_OPENAI_DEPLOYMENT=" PL_AZURE_DEP);
        pl_env_set(env, &n, "AZURE_OPENAI_API_VERSION=" PL_AZURE_VER);
    }
    pl_env_set(env, &n, "OPENAI_RATE_LIMIT_RPM=1000000");
    pl_env_set(env, &n, "OPENAI_MAX_CONCURRENT=10000");
    pl_env_set(env, &n, "OPENAI_TPM=0");
    pl_env_set(env, &n, "AZURE_RATE_LIMIT_RPM=1000000");
    pl_env_set(env, &n, "AZURE_MAX_CONCURRENT=10000");
    pl_env_set(env, &n, "AZURE_TPM=0");
    pl_env_set(env, &n, "CB_FAILURE_THRESHOLD=1000");
    pl_env_set(env, &n, "CB_FAILURE_RATE_PCT=100");
    pl_env_set(env, &n, "CB_MIN_CALLS=10000");
    pl_env_set(env, &n, "CB_WINDOW_CALLS=10000");
    pl_env_set(env, &n, "BUDGET_MONTHLY_LIMIT_USD=1000000");
    pl_env_set(env, &n, "JOB_BACKOFF_MS=50");
    pl_env_set(env, &n, "JOB_LEASE_MS=5000");
    pl_env_set(env, &n, "WORKER_HEARTBEAT_MS=500");
    pl_env_set(env, &n, "WORKER_DRAIN_SECONDS=10");
    pl_env_set(env, &n, "PROVIDER_TIMEOUT_MS=10000");
    pl_env_set(env, &n, "PROVIDER_CONNECT_TIMEOUT_MS=2000");
    pl_env_set(env, &n, "REDIS_RETRY_MAX_MS=200");
    pl_env_set(env, &n, "REDIS_CONNECT_TIMEOUT_MS=1000");
    pl_env_set(env, &n, "REDIS_COMMAND_TIMEOUT_MS=2000");
    for (size_t k = 0; extra && extra[k]; k++)
        pl_env_set(env, &n, extra[k]);
    env[n] = NULL;
    ck_assert_int_eq(fx_worker_start(&w->wk[i], w->rs.url, env, &w->wk_port[i]), 0);
    snprintf(w->wk_base[i], sizeof(w->wk_base[i]), "http://127.0.0.1:%d", w->wk_port[i]);
}

/* Redis (append-only when asked) and the fake; gateway and workers are
 * started by the test with the environment it needs. */
static inline void pl_start_base(struct pl_world *w, const char *provider, bool appendonly)
{
    pl_init(w);
    w->provider = provider;
    ck_assert_int_eq(fx_redis_start(&w->rs, appendonly), 0);
    pl_start_fake(w);
}

/* SIGTERM must end a running worker with status 0 (it drains). */
static inline void pl_stop_worker(struct pl_world *w, int i)
{
    if (w->wk[i].pid > 0) {
        ck_assert_msg(fx_proc_running(&w->wk[i]), "worker %d is not running any more (crashed?)", i);
        ck_assert_int_eq(fx_proc_stop(&w->wk[i], 0), 0);
    }
    if (w->wk[i].log_path)
        pl_assert_log_clean(&w->wk[i]);
    fx_proc_done(&w->wk[i]);
}

/* Stop everything; the gateway, the workers and the fake must still be
 * running, exit 0 on SIGTERM and have no sanitizer report. */
static inline void pl_stop(struct pl_world *w)
{
    for (int i = 0; i < PL_WORKERS; i++)
        pl_stop_worker(w, i);
    if (w->gw.pid > 0) {
        ck_assert_msg(fx_proc_running(&w->gw), "the gateway is not running any more (crashed?)");
        ck_assert_int_eq(fx_proc_stop(&w->gw, 0), 0);
    }
    if (w->gw.log_path)
        pl_assert_log_clean(&w->gw);
    fx_proc_done(&w->gw);
    if (w->fake.pid > 0) {
        ck_assert_msg(fx_proc_running(&w->fake), "the fake provider is not running any more (crashed?)");
        ck_assert_int_eq(fx_proc_stop(&w->fake, 0), 0);
    }
    fx_proc_done(&w->fake);
    fx_redis_done(&w->rs);
}

/* ------------------------------------------------------------ HTTP */

/* GET base+path with optional headers; the response body parsed (caller puts);
 * *ret_status gets the status. */
static inline struct json_object *pl_get_json(const char *base, const char *path, const char *const *hdrs,
                                              long *ret_status)
{
    struct fx_http_req req = { .url = pl_url(base, path), .headers = hdrs };
    struct fx_http_resp r;
    int rc = fx_http_do(&req, &r);
    ck_assert_msg(rc == 0, "GET %s%s: %d", base, path, rc);
    struct json_object *o = pl_parse(r.body);
    if (ret_status)
        *ret_status = r.status;
    fx_http_resp_done(&r);
    return o;
}

/* POST a JSON body as user `user` (the user-id header of the insecure
 * development mode; NULL: none) with an optional Idempotency-Key.  Returns the
 * status; *ret gets the parsed body (caller puts). */
static inline long pl_submit(struct pl_world *w, const char *path, const char *json, const char *user,
                             const char *idem_key, struct json_object **ret)
{
    char uh[300], ih[300];
    const char *hdrs[3];
    size_t n = 0;
    if (user) {
        snprintf(uh, sizeof uh, "user-id: %s", user);
        hdrs[n++] = uh;
    }
    if (idem_key) {
        snprintf(ih, sizeof ih, "Idempotency-Key: %s", idem_key);
        hdrs[n++] = ih;
    }
    hdrs[n] = NULL;
    struct fx_http_resp r;
    int rc = fx_http_post_json(pl_url(w->gw_base, path), json, hdrs, &r);
    ck_assert_msg(rc == 0, "POST %s: %d", path, rc);
    long st = r.status;
    if (ret)
        *ret = pl_parse(r.body);
    fx_http_resp_done(&r);
    return st;
}

/* A job request body; content made unique by `tag`. */
static inline char *pl_job_body(const char *tag, const char *target_language)
{
    return pl_fmt("{\"content\":\"Die Katze schlaeft auf dem Sofa. Der Hund spielt im Garten mit dem Ball. "
                  "Photosynthesis converts sunlight into chemical energy (%s).\","
                  "\"subject\":\"German\",\"topic\":\"Animals %s\",\"userId\":\"" PL_USER "\","
                  "\"nativeLanguage\":\"English\",\"targetLanguage\":\"%s\"}",
                  tag, tag, target_language ? target_language : "German");
}

/* Submit a new job (202, fromCache false); returns the 202 body (caller puts). */
static inline struct json_object *pl_submit_new(struct pl_world *w, const char *path, const char *tag)
{
    char *body = pl_job_body(tag, NULL);
    struct json_object *o = NULL;
    long st = pl_submit(w, path, body, PL_USER, NULL, &o);
    ck_assert_msg(st == 202, "submit %s: %ld %s", path, st, json_object_to_json_string(o));
    ck_assert(!pl_jbool(o, "fromCache"));
    free(body);
    return o;
}

/* GET /api/job-status/<id> as `user` (NULL: no identity). */
static inline struct json_object *pl_status(struct pl_world *w, const char *id, const char *user, long *ret_status)
{
    char path[256], uh[300];
    const char *hdrs[2] = { NULL, NULL };
    snprintf(path, sizeof path, "/api/job-status/%s", id);
    if (user) {
        snprintf(uh, sizeof uh, "user-id: %s", user);
        hdrs[0] = uh;
    }
    return pl_get_json(w->gw_base, path, hdrs, ret_status);
}

/* Poll job-status until the job's status is `want`; a different final state
 * (completed/failed) fails at once.  Returns the status body (caller puts). */
static inline struct json_object *pl_wait_state(struct pl_world *w, const char *id, const char *want, int timeout_ms)
{
    int64_t deadline = clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : PL_JOB_MS);
    for (;;) {
        long st;
        struct json_object *o = pl_status(w, id, PL_USER, &st);
        ck_assert_msg(st == 200, "job-status %s: %ld %s", id, st, json_object_to_json_string(o));
        const char *s = pl_jstr(o, "status");
        if (strcmp(s, want) == 0)
            return o;
        bool final = strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0;
        ck_assert_msg(!final && clock_mono_ms() < deadline, "job %s: status %s while waiting for %s: %s", id, s,
                      want, json_object_to_json_string(o));
        json_object_put(o);
        clock_sleep_ms(PL_POLL_MS);
    }
}

/* GET /api/queue/stats (admin: loopback) -> "stats" object members. */
static inline long long pl_qstat(struct pl_world *w, const char *field)
{
    long st;
    struct json_object *o = pl_get_json(w->gw_base, "/api/queue/stats", NULL, &st);
    ck_assert_msg(st == 200, "queue stats: %ld %s", st, json_object_to_json_string(o));
    char path[64];
    snprintf(path, sizeof path, "stats.%s", field);
    long long v = pl_jint(o, path);
    json_object_put(o);
    return v;
}

/* ------------------------------------------------------------ fake provider */

static inline void pl_fake_post(struct pl_world *w, const char *path, const char *json)
{
    struct fx_http_resp r;
    ck_assert_int_eq(fx_http_post_json(pl_url(w->fake_base, path), json, NULL, &r), 0);
    ck_assert_msg(r.status == 200, "%s %s -> %ld %s", path, json, r.status, r.body);
    fx_http_resp_done(&r);
}

/* Replace the script (the steps answer the next requests in order, then the default step). */
static inline void pl_fake_script(struct pl_world *w, const char *steps_json_array)
{
    char *b = pl_fmt("{\"steps\":%s}", steps_json_array);
    pl_fake_post(w, "/_fake/script", b);
    free(b);
}

static inline void pl_fake_default(struct pl_world *w, const char *step_json)
{
    pl_fake_post(w, "/_fake/default", step_json);
}

static inline struct json_object *pl_fake_stats(struct pl_world *w)
{
    long st;
    struct json_object *o = pl_get_json(w->fake_base, "/_fake/stats", NULL, &st);
    ck_assert_int_eq(st, 200);
    return o;
}

static inline long long pl_fake_requests(struct pl_world *w)
{
    struct json_object *o = pl_fake_stats(w);
    long long n = pl_jint(o, "requests");
    json_object_put(o);
    return n;
}

/* Poll until the fake holds at least n requests in flight. */
static inline void pl_fake_wait_inflight(struct pl_world *w, long long n, int timeout_ms)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        struct json_object *o = pl_fake_stats(w);
        long long f = pl_jint(o, "inFlight");
        json_object_put(o);
        if (f >= n)
            return;
        ck_assert_msg(clock_mono_ms() < deadline, "the fake provider has %lld requests in flight, want %lld", f, n);
        clock_sleep_ms(PL_POLL_MS);
    }
}

/* ------------------------------------------------------------ SSE */

struct pl_event {
    char name[32];
    long long id;                    /* -1: no id line */
    struct json_object *data;        /* owned; NULL if no data line */
};

struct pl_stream {
    long status;
    const char *content_type;        /* points into ctype */
    char ctype[128];
    size_t n;
    struct pl_event ev[PL_MAX_EVENTS];
};

static inline void pl_stream_done(struct pl_stream *s)
{
    for (size_t i = 0; i < s->n; i++)
        json_object_put(s->ev[i].data);
    s->n = 0;
}

/* Parse text/event-stream frames ("field: value" lines, blank line ends a frame). */
static inline void pl_sse_parse(const char *body, struct pl_stream *s)
{
    const char *p = body;
    struct pl_event cur = { .id = -1 };
    bool any = false;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len == 0) {
            if (any && cur.name[0]) {
                ck_assert_uint_lt(s->n, PL_MAX_EVENTS);
                s->ev[s->n++] = cur;
            } else {
                json_object_put(cur.data);
            }
            memset(&cur, 0, sizeof cur);
            cur.id = -1;
            any = false;
        } else if (len > 7 && strncmp(p, "event: ", 7) == 0) {
            snprintf(cur.name, sizeof cur.name, "%.*s", (int)(len - 7), p + 7);
            any = true;
        } else if (len > 6 && strncmp(p, "data: ", 6) == 0) {
            char *d = pl_fmt("%.*s", (int)(len - 6), p + 6);
            json_object_put(cur.data);
            cur.data = pl_parse(d);
            free(d);
            any = true;
        } else if (len > 4 && strncmp(p, "id: ", 4) == 0) {
            cur.id = strtoll(p + 4, NULL, 10);
            any = true;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    /* an unterminated frame is not an event */
    json_object_put(cur.data);
}

/* GET the job's eventsUrl (relative, from a 202) and read the stream until
 * the server ends it (it must, after completed or failed). */
static inline void pl_sse_read(struct pl_world *w, const char *events_url, const char *last_event_id,
                               struct pl_stream *s)
{
    char leh[64];
    const char *hdrs[2] = { NULL, NULL };
    if (last_event_id) {
        snprintf(leh, sizeof leh, "Last-Event-ID: %s", last_event_id);
        hdrs[0] = leh;
    }
    struct fx_http_req req = { .url = pl_url(w->gw_base, events_url), .headers = hdrs, .timeout_ms = PL_JOB_MS };
    struct fx_http_resp r;
    int rc = fx_http_do(&req, &r);
    memset(s, 0, sizeof(*s));
    s->status = r.status;
    const char *ct = fx_http_header(&r, "Content-Type");
    snprintf(s->ctype, sizeof s->ctype, "%s", ct ? ct : "");
    s->content_type = s->ctype;
    ck_assert_msg(rc == 0, "SSE %s: %d (the stream did not end); so far: %.2000s", events_url, rc, r.body);
    if (r.status == 200)
        pl_sse_parse(r.body, s);
    fx_http_resp_done(&r);
}

static inline size_t pl_count(const struct pl_stream *s, const char *name)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->ev[i].name, name) == 0)
            k++;
    return k;
}

/* The contract's shape of a job stream: connected first (no id), every
 * other event with a strictly increasing id, exactly one final event
 * (`final_name`) and it is the last; every data names the job. */
static inline void pl_assert_stream(const struct pl_stream *s, const char *job_id, const char *final_name)
{
    ck_assert_int_eq(s->status, 200);
    ck_assert_msg(strncmp(s->content_type, "text/event-stream", 17) == 0, "Content-Type %s", s->content_type);
    ck_assert_uint_ge(s->n, 3);
    ck_assert_str_eq(s->ev[0].name, "connected");
    ck_assert_int_eq(s->ev[0].id, -1);
    long long last = 0;
    for (size_t i = 1; i < s->n; i++) {
        const struct pl_event *e = &s->ev[i];
        ck_assert_ptr_nonnull(e->data);
        ck_assert_str_eq(pl_jstr(e->data, "jobId"), job_id);
        ck_assert_str_ne(e->name, "connected");
        if (strcmp(e->name, "heartbeat") == 0)
            continue;
        ck_assert_msg(e->id > last, "event %zu (%s) has id %lld after %lld", i, e->name, e->id, last);
        last = e->id;
    }
    ck_assert_str_eq(s->ev[1].name, "active");
    ck_assert_int_eq(s->ev[1].id, 1);
    ck_assert_str_eq(s->ev[s->n - 1].name, final_name);
    ck_assert_uint_eq(pl_count(s, "completed") + pl_count(s, "failed"), 1);
}

/* ------------------------------------------------------------ Redis */

/* The job's stored events (history), one JSON object per entry, counted by name. */
static inline long long pl_history_count(struct pl_world *w, const char *job_id, const char *event)
{
    redisContext *c = fx_redis_connect(&w->rs);
    ck_assert_ptr_nonnull(c);
    redisReply *r = redisCommand(c, "LRANGE " PL_QKEY("events:%s") " 0 -1", job_id);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    long long k = 0;
    for (size_t i = 0; i < r->elements; i++) {
        struct json_object *o = pl_parse(r->element[i]->str);
        if (strcmp(pl_jstr(o, "event"), event) == 0)
            k++;
        json_object_put(o);
    }
    freeReplyObject(r);
    redisFree(c);
    return k;
}

#endif
