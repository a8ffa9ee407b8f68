/*
 * The operators' fleet-wide metrics: GET /api/metrics/alerts and GET
 * /metrics of the real gateway binaries over a real redis-server, with a
 * real offline worker where jobs must run, as an operator sees them.
 *
 *   fleet         requests through two gateways are summed on either one,
 *                 exactly (neither lost nor doubled); probes apart; SSE
 *                 streams of one gateway seen from the other; a stopped
 *                 gateway leaves the sums at once
 *   window        figures computed from per-minute buckets put in Redis by
 *                 the test (error rate, mean, p95, +Inf tail, requests per
 *                 minute, the minimum-requests gate, buckets past the window)
 *   redis down    503 REDIS_UNAVAILABLE from both endpoints, and the 5xx
 *                 answered meanwhile reach the fleet's figures after Redis
 *                 returns, exactly once
 *   alerts        queue depth, no workers, stalled workers, breaker open,
 *                 kill-switch, budget near its limit; alertsActive
 *   script        metrics_flush.lua adds a batch once whatever the retries
 *   exposition    every /metrics line checked against the text format 0.0.4
 *   access        403 MONITORING_ACCESS_DENIED outside ADMIN_ALLOW_CIDRS
 *
 * Waits poll a condition against a deadline; nothing sleeps for readiness.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/check-pipeline.h"

#define MX_FLUSH_MS     "200"
#define MX_WAIT_MS      15000
#define MX_TOKEN        "metrics-admin-token-0123456789"
#define MX_KEY(k)       "fg:{ai-jobs}:metrics:" k

/* ------------------------------------------------------------ helpers */

struct mx_gw {
    struct fx_proc p;
    int port;
    char base[64];
};

static void gw_init(struct mx_gw *g)
{
    memset(g, 0, sizeof(*g));
    g->p.pid = -1;
}

/* A gateway over redis_url named `instance`; extra "K=V" (NULL-ended) override. */
static void gw_start(struct mx_gw *g, const char *redis_url, const char *instance, const char *const *extra)
{
    static char inst[8][96];
    static unsigned k;
    char *iv = inst[k++ % 8];
    snprintf(iv, 96, "INSTANCE_ID=%s", instance);
    const char *env[PL_ENV_MAX + 1];
    size_t n = 0;
    pl_env_set(env, &n, iv);
    pl_env_set(env, &n, "HTTP_THREADS=4");
    pl_env_set(env, &n, "METRICS_FLUSH_MS=" MX_FLUSH_MS);
    pl_env_set(env, &n, "RATE_LIMIT_AI_PER_MIN=1000000");
    pl_env_set(env, &n, "RATE_LIMIT_IP_PER_MIN=100000000");
    pl_env_set(env, &n, "REDIS_RETRY_MAX_MS=200");
    pl_env_set(env, &n, "REDIS_CONNECT_TIMEOUT_MS=1000");
    pl_env_set(env, &n, "REDIS_COMMAND_TIMEOUT_MS=1000");
    pl_env_set(env, &n, "SHUTDOWN_GRACE_MS=2000");
    pl_env_set(env, &n, "SSE_HEARTBEAT_MS=300");   /* a closed stream is noticed at its next heartbeat */
    for (size_t i = 0; extra && extra[i]; i++)
        pl_env_set(env, &n, extra[i]);
    env[n] = NULL;
    ck_assert_int_eq(fx_gateway_start(&g->p, redis_url, env, &g->port), 0);
    snprintf(g->base, sizeof(g->base), "http://127.0.0.1:%d", g->port);
}

/* SIGTERM: exit 0, clean log. */
static void gw_stop(struct mx_gw *g)
{
    if (g->p.pid > 0) {
        ck_assert_msg(fx_proc_running(&g->p), "gateway %s died", g->p.name);
        ck_assert_int_eq(fx_proc_stop(&g->p, 0), 0);
    }
    if (g->p.log_path)
        pl_assert_log_clean(&g->p);
    fx_proc_done(&g->p);
}

struct resp {
    long status;
    char *body;
    char *ctype;
};

static struct resp get(const char *base, const char *path, const char *const *hdrs)
{
    struct fx_http_req req = { .url = pl_url(base, path), .headers = hdrs };
    struct fx_http_resp r;
    int rc = fx_http_do(&req, &r);
    ck_assert_msg(rc == 0, "GET %s%s: %d", base, path, rc);
    const char *ct = fx_http_header(&r, "Content-Type");
    struct resp out = { .status = r.status, .body = strdup(r.body), .ctype = strdup(ct ? ct : "") };
    fx_http_resp_done(&r);
    return out;
}

static void resp_done(struct resp *r)
{
    free(r->body);
    free(r->ctype);
    memset(r, 0, sizeof(*r));
}

/* GET /api/metrics/alerts: 200 and success, parsed (caller puts). */
static struct json_object *alerts(const char *base)
{
    struct resp r = get(base, "/api/metrics/alerts", NULL);
    ck_assert_msg(r.status == 200, "alerts: %ld %s", r.status, r.body);
    ck_assert_str_eq(r.ctype, "application/json; charset=utf-8");
    struct json_object *o = pl_parse(r.body);
    resp_done(&r);
    ck_assert(pl_jbool(o, "success"));
    /* alertsActive is the count of the true alerts */
    struct json_object *al = pl_jp(o, "alerts");
    ck_assert(al && json_object_is_type(al, json_type_object));
    int n = 0, k = 0;
    json_object_object_foreach(al, key, val) {
        ck_assert_msg(json_object_is_type(val, json_type_boolean), "alert %s not a boolean", key);
        n += json_object_get_boolean(val);
        k++;
    }
    ck_assert_int_eq(k, 9);
    ck_assert_int_eq(pl_jint(o, "alertsActive"), n);
    return o;
}

static double jnum(struct json_object *o, const char *path)
{
    struct json_object *v = pl_jp(o, path);
    ck_assert_msg(v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)),
                  "%s is not a number in %.600s", path, json_object_to_json_string(o));
    return json_object_get_double(v);
}

/* The value of the sample `series` (name{labels}) in an exposition; NAN if absent. */
static double prom_value(const char *body, const char *series)
{
    size_t n = strlen(series);
    for (const char *l = body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, series, n) == 0 && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return NAN;
}

static double metric(const char *base, const char *series)
{
    struct resp r = get(base, "/metrics", NULL);
    ck_assert_msg(r.status == 200, "/metrics: %ld %s", r.status, r.body);
    double v = prom_value(r.body, series);
    resp_done(&r);
    ck_assert_msg(!isnan(v), "no series %s", series);
    return v;
}

/* Poll until base's alerts body has path == want (integer), or fail. */
static void wait_int(const char *base, const char *path, long long want)
{
    long long got = -1;
    for (int64_t deadline = clock_mono_ms() + MX_WAIT_MS; clock_mono_ms() < deadline;) {
        struct json_object *o = alerts(base);
        got = pl_jint(o, path);
        json_object_put(o);
        if (got == want)
            return;
        clock_sleep_ms(PL_POLL_MS);
    }
    ck_abort_msg("%s: %s stayed %lld, want %lld", base, path, got, want);
}

static void wait_bool(const char *base, const char *path, bool want)
{
    for (int64_t deadline = clock_mono_ms() + MX_WAIT_MS; clock_mono_ms() < deadline;) {
        struct json_object *o = alerts(base);
        bool got = pl_jbool(o, path);
        json_object_put(o);
        if (got == want)
            return;
        clock_sleep_ms(PL_POLL_MS);
    }
    ck_abort_msg("%s: %s did not become %s", base, path, want ? "true" : "false");
}

static redisReply *rcmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(r && r->type != REDIS_REPLY_ERROR, "redis: %s", r ? r->str : c->errstr);
    return r;
}

static void rrun(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(r && r->type != REDIS_REPLY_ERROR, "redis: %s", r ? r->str : c->errstr);
    freeReplyObject(r);
}

/* Redis time, ms. */
static long long redis_now_ms(redisContext *c)
{
    redisReply *r = rcmd(c, "TIME");
    long long ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    return ms;
}

/* Submit a flashcards job through base (insecure mode); returns its 202 body. */
static struct json_object *submit(const char *base, const char *tag)
{
    char *body = pl_fmt("{\"content\":\"Metrics test %s. The river flows into the sea.\",\"subject\":\"Ops\","
                        "\"topic\":\"Metrics %s\",\"userId\":\"mx-user\"}", tag, tag);
    const char *hdrs[] = { "user-id: mx-user", NULL };
    struct fx_http_resp r;
    ck_assert_int_eq(fx_http_post_json(pl_url(base, "/api/ai/generate-flashcards"), body, hdrs, &r), 0);
    ck_assert_msg(r.status == 202, "submit: %ld %s", r.status, r.body);
    struct json_object *o = pl_parse(r.body);
    fx_http_resp_done(&r);
    free(body);
    return o;
}

static long post_admin(const char *base, const char *path, const char *json)
{
    struct fx_http_resp r;
    ck_assert_int_eq(fx_http_post_json(pl_url(base, path), json, NULL, &r), 0);
    long st = r.status;
    fx_http_resp_done(&r);
    return st;
}

/* ------------------------------------------------------------ the flush script */

static redisReply *flush_call(redisContext *c, const char *src, const char *id, const char *epoch, const char *seq,
                              const char *minute, const char *req)
{
    const char *argv[] = {
        "EVAL", src, "2", MX_KEY("total"), MX_KEY("gateways"),
        id, epoch, seq, "3000", "900", "2592000", "86400", "0", "0", "[]",
        "2", "req", "b:5",
        minute, req, req, "1000",
    };
    redisReply *r = redisCommandArgv(c, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
    ck_assert_msg(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "flush script: %s",
                  r && r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
    return r;
}

static long long hget_ll(redisContext *c, const char *key, const char *field)
{
    redisReply *r = rcmd(c, "HGET %s %s", key, field);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return v;
}

START_TEST(test_flush_script_adds_a_batch_once)
{
    struct fx_redis rs = { .pid = -1 };
    ck_assert_int_eq(fx_redis_start(&rs, false), 0);
    redisContext *c = fx_redis_connect(&rs);
    ck_assert_ptr_nonnull(c);
    char *path = fixture_source_path("common/lua/metrics_flush.lua");
    char *src = fixture_read_file(path, NULL);
    ck_assert_msg(src != NULL, "cannot read %s", path);
    char minute[32], old[32], bucket[96];
    long long cur = redis_now_ms(c) / 60000;
    snprintf(minute, sizeof(minute), "%lld", cur);
    snprintf(old, sizeof(old), "%lld", cur - 20);
    snprintf(bucket, sizeof(bucket), MX_KEY("m:%s"), minute);

    redisReply *r = flush_call(c, src, "gw-x", "e1", "1", minute, "5");
    ck_assert_int_eq(r->element[0]->integer, 1);
    freeReplyObject(r);
    /* the same batch again (its reply was lost): nothing added */
    r = flush_call(c, src, "gw-x", "e1", "1", minute, "5");
    ck_assert_int_eq(r->element[0]->integer, 0);
    freeReplyObject(r);
    ck_assert_int_eq(hget_ll(c, MX_KEY("total"), "req"), 5);
    ck_assert_int_eq(hget_ll(c, bucket, "req"), 5);
    ck_assert_int_eq(hget_ll(c, bucket, "max_us"), 1000);
    /* the next batch, then a restarted process (new epoch, seq 1 again) */
    r = flush_call(c, src, "gw-x", "e1", "2", minute, "7");
    ck_assert_int_eq(r->element[0]->integer, 1);
    freeReplyObject(r);
    r = flush_call(c, src, "gw-x", "e2", "1", minute, "11");
    ck_assert_int_eq(r->element[0]->integer, 1);
    freeReplyObject(r);
    ck_assert_int_eq(hget_ll(c, MX_KEY("total"), "req"), 23);
    ck_assert_int_eq(hget_ll(c, bucket, "req"), 23);
    /* another gateway's seq 1 is its own */
    r = flush_call(c, src, "gw-y", "e1", "1", minute, "1");
    ck_assert_int_eq(r->element[0]->integer, 1);
    freeReplyObject(r);
    /* a minute past the buckets' lifetime, and minute -1: totals only */
    r = flush_call(c, src, "gw-x", "e2", "2", old, "100");
    ck_assert_int_eq(r->element[0]->integer, 1);
    freeReplyObject(r);
    r = flush_call(c, src, "gw-x", "e2", "3", "-1", "1000");
    ck_assert_int_eq(r->element[0]->integer, 1);
    freeReplyObject(r);
    ck_assert_int_eq(hget_ll(c, MX_KEY("total"), "req"), 1124);
    ck_assert_int_eq(hget_ll(c, bucket, "req"), 24);
    r = rcmd(c, "KEYS %s", MX_KEY("m:*"));
    ck_assert_int_eq(r->elements, 1);
    freeReplyObject(r);
    /* every key expires */
    r = rcmd(c, "KEYS %s", MX_KEY("*"));
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *t = rcmd(c, "PTTL %s", r->element[i]->str);
        ck_assert_msg(t->integer > 0, "%s has no TTL", r->element[i]->str);
        freeReplyObject(t);
    }
    freeReplyObject(r);
    free(src);
    free(path);
    redisFree(c);
    fx_redis_done(&rs);
}
END_TEST

/* ------------------------------------------------------------ fleet */

/* A raw connection that asks for a stream and stays open; returns the fd
 * once `connected` arrived. */
static int open_stream(int port, const char *events_url)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char *rq = pl_fmt("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nuser-id: mx-user\r\n\r\n",
                      events_url);
    ck_assert_int_eq(write(fd, rq, strlen(rq)), (ssize_t)strlen(rq));
    free(rq);
    char buf[4096];
    size_t got = 0;
    for (int64_t deadline = clock_mono_ms() + MX_WAIT_MS; clock_mono_ms() < deadline;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
        ck_assert_int_gt(k, 0);
        got += (size_t)k;
        buf[got] = 0;
        if (strstr(buf, "event: connected"))
            return fd;
        ck_assert_uint_lt(got, sizeof(buf) - 1);
    }
    ck_abort_msg("no connected event: %s", buf);
    return -1;
}

static bool sse_has_job(struct json_object *o, const char *job, long long subs)
{
    struct json_object *l = pl_jp(o, "metrics.sse.jobsWithSubscribers");
    for (size_t i = 0; l && i < json_object_array_length(l); i++) {
        struct json_object *e = json_object_array_get_idx(l, i);
        if (strcmp(pl_jstr(e, "jobId"), job) == 0)
            return pl_jint(e, "subscribers") == subs;
    }
    return false;
}

START_TEST(test_fleet_requests_summed_across_gateways)
{
    struct fx_redis rs = { .pid = -1 };
    struct mx_gw a, b;
    gw_init(&a);
    gw_init(&b);
    ck_assert_int_eq(fx_redis_start(&rs, false), 0);
    gw_start(&a, rs.url, "mx-a", NULL);
    gw_start(&b, rs.url, "mx-b", NULL);

    /* 30 API requests through A, 20 through B (404s), health probes on both */
    for (int i = 0; i < 30; i++) {
        struct resp r = get(a.base, "/api/job-status/0123456789abcdef0123456789abcdef", NULL);
        ck_assert_int_eq(r.status, 404);
        resp_done(&r);
    }
    for (int i = 0; i < 20; i++) {
        struct resp r = get(b.base, "/api/job-status/0123456789abcdef0123456789abcdef", NULL);
        ck_assert_int_eq(r.status, 404);
        resp_done(&r);
        r = get(b.base, "/health", NULL);
        ck_assert_int_eq(r.status, 200);
        resp_done(&r);
    }
    /* exactly 50 on either gateway once flushed; the probes apart */
    const char *api = "flashgate_http_requests_total{class=\"api\"}";
    for (int64_t deadline = clock_mono_ms() + MX_WAIT_MS;; ) {
        if (metric(a.base, api) == 50 && metric(b.base, api) == 50)
            break;
        ck_assert_msg(clock_mono_ms() < deadline, "fleet api requests: A %g, B %g, want 50",
                      metric(a.base, api), metric(b.base, api));
        clock_sleep_ms(PL_POLL_MS);
    }
    ck_assert_double_ge(metric(a.base, "flashgate_health_probes_total"), 20);
    ck_assert_double_eq(metric(a.base, "flashgate_http_server_errors_total{class=\"api\"}"), 0);
    struct json_object *o = alerts(b.base);
    ck_assert_int_ge(pl_jint(o, "metrics.performance.requests"), 50);
    ck_assert_double_eq(jnum(o, "metrics.performance.errorRate"), 0);
    ck_assert_double_gt(jnum(o, "metrics.performance.requestsPerMinute"), 0);
    ck_assert_double_gt(jnum(o, "metrics.performance.avgResponseTime"), 0);
    ck_assert_double_gt(jnum(o, "metrics.performance.p95ResponseTime"), 0);
    ck_assert_int_eq(pl_jint(o, "metrics.sse.gateways"), 2);
    ck_assert_str_eq(pl_jstr(o, "instance"), "mx-b");
    json_object_put(o);
    /* later flushes of both gateways (each proven by a probe they carry) add
     * nothing more: nothing was counted twice */
    double probes = metric(a.base, "flashgate_health_probes_total");
    struct resp pr = get(a.base, "/health", NULL);
    resp_done(&pr);
    pr = get(b.base, "/ready", NULL);
    resp_done(&pr);
    for (int64_t deadline = clock_mono_ms() + MX_WAIT_MS;
         metric(a.base, "flashgate_health_probes_total") < probes + 2; clock_sleep_ms(PL_POLL_MS))
        ck_assert_msg(clock_mono_ms() < deadline, "the probes never reached the fleet's figures");
    ck_assert_double_eq(metric(a.base, api), 50);
    ck_assert_double_eq(metric(b.base, api), 50);

    /* an SSE stream on B is seen from A, with its job */
    struct json_object *job = submit(a.base, "sse");
    const char *id = pl_jstr(job, "jobId");
    int fd = open_stream(b.port, pl_jstr(job, "eventsUrl"));
    bool seen = false;
    for (int64_t deadline = clock_mono_ms() + MX_WAIT_MS; !seen && clock_mono_ms() < deadline;) {
        o = alerts(a.base);
        seen = pl_jint(o, "metrics.sse.totalConnections") == 1 && pl_jint(o, "metrics.sse.activeJobs") == 1 &&
               sse_has_job(o, id, 1);
        json_object_put(o);
        if (!seen)
            clock_sleep_ms(PL_POLL_MS);
    }
    ck_assert_msg(seen, "B's stream never appeared in A's figures");
    close(fd);
    wait_int(a.base, "metrics.sse.totalConnections", 0);
    json_object_put(job);

    /* B stops: it leaves the fleet's figures at once (not after its record expires) */
    gw_stop(&b);
    o = alerts(a.base);
    ck_assert_int_eq(pl_jint(o, "metrics.sse.gateways"), 1);
    json_object_put(o);
    gw_stop(&a);
    fx_redis_done(&rs);
}
END_TEST

/* ------------------------------------------------------------ the window */

static void put_bucket(redisContext *c, long long minute, const char *fields)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "HSET " MX_KEY("m:%lld") " %s", minute, fields);
    rrun(c, cmd);
    rrun(c, "EXPIRE " MX_KEY("m:%lld") " 900", minute);
}

START_TEST(test_window_figures_from_buckets)
{
    struct fx_redis rs = { .pid = -1 };
    struct mx_gw a;
    gw_init(&a);
    ck_assert_int_eq(fx_redis_start(&rs, false), 0);
    const char *extra[] = { "ALERT_ERROR_MIN_REQUESTS=1000", NULL };
    gw_start(&a, rs.url, "mx-w", extra);
    redisContext *c = fx_redis_connect(&rs);
    long long cur = redis_now_ms(c) / 60000;
    /* 1000 requests, 150 5xx: 900 under 10 ms (8 ms each), 100 in (50, 100] ms (80 ms each) */
    put_bucket(c, cur, "req 1000 err 150 req:api 1000 err:api 150 lat_sum_us 15200000 b:10 900 b:100 100");
    /* past the window: must not count */
    put_bucket(c, cur - 5, "req 5000 err 5000 b:inf 5000 lat_sum_us 500000000000");
    redisFree(c);

    /* the test's first request that is not a health probe: the window holds the buckets only */
    struct json_object *o = alerts(a.base);
    ck_assert_int_eq(pl_jint(o, "metrics.performance.requests"), 1000);
    ck_assert_int_eq(pl_jint(o, "metrics.performance.serverErrors"), 150);
    ck_assert_double_eq_tol(jnum(o, "metrics.performance.errorRate"), 15.0, 1e-9);
    ck_assert_double_eq_tol(jnum(o, "metrics.performance.avgResponseTime"), 15.2, 1e-9);
    /* p95: rank 950 of 1000, 50 into the (50, 100] bucket of 100 */
    ck_assert_double_eq_tol(jnum(o, "metrics.performance.p95ResponseTime"), 75.0, 1e-9);
    long long ws = pl_jint(o, "metrics.performance.windowSeconds");
    ck_assert_int_ge(ws, 240);
    ck_assert_int_le(ws, 300);
    /* 1000 requests over the window (ws <= its length < ws + 1 s), rounded to 0.1 */
    double rpm = jnum(o, "metrics.performance.requestsPerMinute");
    ck_assert_double_le(rpm, 60000.0 / (double)ws + 0.05);
    ck_assert_double_ge(rpm, 60000.0 / (double)(ws + 1) - 0.05);
    ck_assert(pl_jbool(o, "alerts.failureRateHigh"));           /* 15 % > 10 % */
    ck_assert(!pl_jbool(o, "alerts.failureRateCritical"));      /* 15 % <= 20 % */
    json_object_put(o);
    gw_stop(&a);
    fx_redis_done(&rs);
}
END_TEST

START_TEST(test_window_tail_and_minimum_requests)
{
    struct fx_redis rs = { .pid = -1 };
    struct mx_gw a;
    gw_init(&a);
    ck_assert_int_eq(fx_redis_start(&rs, false), 0);
    const char *extra[] = { "ALERT_ERROR_MIN_REQUESTS=101", NULL };
    gw_start(&a, rs.url, "mx-t", extra);
    redisContext *c = fx_redis_connect(&rs);
    long long cur = redis_now_ms(c) / 60000;
    /* 100 requests over two minutes; the slowest 10 past 10 s, the largest 30 s */
    put_bucket(c, cur, "req 60 err 30 b:5 50 b:inf 10 max_us 30000000 lat_sum_us 200000000");
    put_bucket(c, cur - 1, "req 40 err 20 b:5 40 max_us 4000");
    redisFree(c);

    struct json_object *o = alerts(a.base);
    ck_assert_int_eq(pl_jint(o, "metrics.performance.requests"), 100);
    ck_assert_double_eq_tol(jnum(o, "metrics.performance.errorRate"), 50.0, 1e-9);
    /* rank 95: 5 into the +Inf bucket of 10, which ends at the largest (30 s) */
    ck_assert_double_eq_tol(jnum(o, "metrics.performance.p95ResponseTime"), 20000.0, 1e-9);
    ck_assert_double_eq_tol(jnum(o, "metrics.performance.avgResponseTime"), 2000.0, 1e-9);
    /* 50 % of 100 requests, but the gate wants 101: no failure-rate alert */
    ck_assert(!pl_jbool(o, "alerts.failureRateHigh"));
    ck_assert(!pl_jbool(o, "alerts.failureRateCritical"));
    json_object_put(o);
    /* the alerts request itself makes 101 once flushed: both alerts */
    wait_bool(a.base, "alerts.failureRateCritical", true);
    o = alerts(a.base);
    ck_assert(pl_jbool(o, "alerts.failureRateHigh"));
    json_object_put(o);
    gw_stop(&a);
    fx_redis_done(&rs);
}
END_TEST

/* ------------------------------------------------------------ Redis down */

struct tally {
    long long sent, errors;   /* non-probe requests the test sent to the gateway, and their 5xx */
};

static struct resp tget(struct tally *t, const char *base, const char *path)
{
    struct resp r = get(base, path, NULL);
    t->sent++;
    if (r.status >= 500)
        t->errors++;
    return r;
}

START_TEST(test_redis_down_is_503_and_its_errors_are_counted_once)
{
    struct fx_redis rs = { .pid = -1 };
    struct mx_gw a;
    struct tally t = { 0 };
    gw_init(&a);
    ck_assert_int_eq(fx_redis_start(&rs, true), 0);
    const char *extra[] = { "ALERT_ERROR_MIN_REQUESTS=1", NULL };
    gw_start(&a, rs.url, "mx-r", extra);
    for (int i = 0; i < 10; i++) {
        struct resp r = tget(&t, a.base, "/api/job-status/0123456789abcdef0123456789abcdef");
        ck_assert_int_eq(r.status, 404);
        resp_done(&r);
    }
    ck_assert_int_eq(fx_redis_stop(&rs), 0);

    /* both endpoints refuse to pretend */
    const char *paths[] = { "/api/metrics/alerts", "/metrics" };
    for (int i = 0; i < 2; i++) {
        struct resp r = tget(&t, a.base, paths[i]);
        ck_assert_msg(r.status == 503, "%s with Redis down: %ld %s", paths[i], r.status, r.body);
        struct json_object *o = pl_parse(r.body);
        ck_assert_str_eq(pl_jstr(o, "code"), "REDIS_UNAVAILABLE");
        ck_assert(!pl_jbool(o, "success"));
        json_object_put(o);
        resp_done(&r);
    }
    /* 5xx answered while Redis is down */
    for (int i = 0; i < 20; i++) {
        struct resp r = tget(&t, a.base, "/api/job-status/0123456789abcdef0123456789abcdef");
        ck_assert_int_eq(r.status, 503);
        resp_done(&r);
    }
    ck_assert_int_eq(fx_redis_restart(&rs), 0);

    /* once Redis is back the fleet's figures hold every request the test made,
     * each once: the flush kept them and sent them again */
    bool equal = false;
    double req = 0, err = 0;
    for (int64_t deadline = clock_mono_ms() + MX_WAIT_MS; !equal && clock_mono_ms() < deadline;) {
        struct resp r = tget(&t, a.base, "/metrics");
        if (r.status == 200) {
            req = err = 0;
            const char *cls[] = { "api", "admin", "stream", "static" };
            for (int k = 0; k < 4; k++) {
                char s[96];
                snprintf(s, sizeof(s), "flashgate_http_requests_total{class=\"%s\"}", cls[k]);
                req += prom_value(r.body, s);
                snprintf(s, sizeof(s), "flashgate_http_server_errors_total{class=\"%s\"}", cls[k]);
                err += prom_value(r.body, s);
            }
            /* the request that carried this answer is not in it yet */
            equal = req == (double)(t.sent - 1) && err == (double)t.errors;
        }
        resp_done(&r);
        if (!equal)
            clock_sleep_ms(PL_POLL_MS);
    }
    ck_assert_msg(equal, "fleet figures %g requests, %g 5xx; the test made %lld and saw %lld 5xx", req, err,
                  t.sent - 1, t.errors);
    ck_assert_int_ge(t.errors, 22);
    struct json_object *o = alerts(a.base);
    t.sent++;
    ck_assert_int_eq(pl_jint(o, "metrics.performance.serverErrors"), t.errors);
    double rate = 100.0 * (double)t.errors / (double)pl_jint(o, "metrics.performance.requests");
    ck_assert_double_eq_tol(jnum(o, "metrics.performance.errorRate"), rate, 0.006);
    ck_assert(rate > 20);
    ck_assert(pl_jbool(o, "alerts.failureRateHigh"));
    ck_assert(pl_jbool(o, "alerts.failureRateCritical"));
    json_object_put(o);
    gw_stop(&a);
    fx_redis_done(&rs);
}
END_TEST

/* ------------------------------------------------------------ queue and worker alerts */

START_TEST(test_queue_depth_no_workers_and_stalled)
{
    struct fx_redis rs = { .pid = -1 };
    struct mx_gw a;
    struct fx_proc wk = { .pid = -1 };
    gw_init(&a);
    ck_assert_int_eq(fx_redis_start(&rs, false), 0);
    const char *extra[] = { "ALERT_QUEUE_HIGH=2", "ALERT_QUEUE_CRITICAL=4", "WORKER_STALL_SECONDS=1", NULL };
    gw_start(&a, rs.url, "mx-q", extra);

    struct json_object *o = alerts(a.base);
    ck_assert(pl_jbool(o, "alerts.noWorkers"));
    ck_assert(!pl_jbool(o, "alerts.workerStalled"));       /* nothing waits */
    ck_assert(!pl_jbool(o, "alerts.queueDepthHigh"));
    ck_assert_int_eq(pl_jint(o, "metrics.workers.alive"), 0);
    json_object_put(o);

    char tag[32];
    for (int i = 0; i < 3; i++) {
        snprintf(tag, sizeof(tag), "q%d", i);
        json_object_put(submit(a.base, tag));
    }
    o = alerts(a.base);
    ck_assert_int_eq(pl_jint(o, "metrics.queue.waiting"), 3);
    ck_assert(pl_jbool(o, "alerts.queueDepthHigh"));        /* 3 > 2 */
    ck_assert(!pl_jbool(o, "alerts.queueDepthCritical"));   /* 3 <= 4 */
    json_object_put(o);
    for (int i = 3; i < 5; i++) {
        snprintf(tag, sizeof(tag), "q%d", i);
        json_object_put(submit(a.base, tag));
    }
    o = alerts(a.base);
    ck_assert(pl_jbool(o, "alerts.queueDepthCritical"));    /* 5 > 4 */
    json_object_put(o);
    /* no job ever finished and the oldest waits past WORKER_STALL_SECONDS */
    wait_bool(a.base, "alerts.workerStalled", true);
    o = alerts(a.base);
    ck_assert_int_ge(pl_jint(o, "metrics.queue.oldestWaitingSeconds"), 1);
    json_object_put(o);

    /* a worker: the queue drains and the alerts clear */
    const char *wenv[] = { "AI_PROVIDER=offline", "INSTANCE_ID=mx-worker", "WORKER_HEARTBEAT_MS=200", NULL };
    int wport;
    ck_assert_int_eq(fx_worker_start(&wk, rs.url, wenv, &wport), 0);
    wait_int(a.base, "metrics.queue.completedTotal", 5);
    wait_bool(a.base, "alerts.noWorkers", false);
    o = alerts(a.base);
    ck_assert_int_eq(pl_jint(o, "metrics.queue.waiting"), 0);
    ck_assert_int_eq(pl_jint(o, "metrics.workers.alive"), 1);
    ck_assert(!pl_jbool(o, "alerts.workerStalled"));
    ck_assert(!pl_jbool(o, "alerts.queueDepthHigh"));
    ck_assert(!pl_jbool(o, "alerts.queueDepthCritical"));
    ck_assert(pl_jhas(o, "metrics.queue.lastFinishedAt"));
    json_object_put(o);
    ck_assert_double_eq(metric(a.base, "flashgate_jobs_completed_total"), 5);
    ck_assert_double_eq(metric(a.base, "flashgate_workers_alive"), 1);

    /* the worker leaves; a new job waits past the stall time with the last finish older than it */
    ck_assert_int_eq(fx_proc_stop(&wk, 0), 0);
    pl_assert_log_clean(&wk);
    fx_proc_done(&wk);
    wait_bool(a.base, "alerts.noWorkers", true);
    json_object_put(submit(a.base, "late"));
    wait_bool(a.base, "alerts.workerStalled", true);
    gw_stop(&a);
    fx_redis_done(&rs);
}
END_TEST

/* ------------------------------------------------------------ breakers and budget */

START_TEST(test_breaker_kill_switch_and_budget_alerts)
{
    struct fx_redis rs = { .pid = -1 };
    struct mx_gw a;
    gw_init(&a);
    ck_assert_int_eq(fx_redis_start(&rs, false), 0);
    gw_start(&a, rs.url, "mx-b", NULL);
    redisContext *c = fx_redis_connect(&rs);

    struct json_object *o = alerts(a.base);
    ck_assert_str_eq(pl_jstr(o, "metrics.circuitBreakers.openai.state"), "CLOSED");
    ck_assert_str_eq(pl_jstr(o, "metrics.circuitBreakers.azure.name"), "azure");
    ck_assert(!pl_jbool(o, "alerts.circuitBreakerOpen"));
    ck_assert(!pl_jbool(o, "alerts.budgetKillSwitchActive"));
    ck_assert(!pl_jbool(o, "alerts.budgetNearLimit"));
    ck_assert_str_eq(pl_jstr(o, "metrics.budget.currency"), "USD");
    json_object_put(o);

    /* the azure breaker trips (as the workers' script would leave it) */
    long long now = redis_now_ms(c);
    rrun(c, "HSET fg:{ai-jobs}:cb:azure state OPEN gen 1 consec 5 win 11111 opened_at %lld next_retry_at %lld "
            "probes_out 0 probes_ok 0", now, now + 600000);
    o = alerts(a.base);
    ck_assert(pl_jbool(o, "alerts.circuitBreakerOpen"));
    ck_assert_str_eq(pl_jstr(o, "metrics.circuitBreakers.azure.state"), "OPEN");
    json_object_put(o);
    ck_assert_double_eq(metric(a.base, "flashgate_circuit_breaker_state{provider=\"azure\"}"), 2);
    ck_assert_double_eq(metric(a.base, "flashgate_circuit_breaker_state{provider=\"openai\"}"), 0);
    ck_assert_int_eq(post_admin(a.base, "/api/circuit-breakers/reset/azure", "{}"), 200);
    o = alerts(a.base);
    ck_assert(!pl_jbool(o, "alerts.circuitBreakerOpen"));
    json_object_put(o);

    /* the kill-switch */
    ck_assert_int_eq(post_admin(a.base, "/api/admin/budget/kill-switch", "{\"enabled\":true,\"reason\":\"drill\"}"), 200);
    o = alerts(a.base);
    ck_assert(pl_jbool(o, "alerts.budgetKillSwitchActive"));
    ck_assert(pl_jbool(o, "metrics.budget.killSwitchActive"));
    ck_assert_str_eq(pl_jstr(o, "metrics.budget.killSwitchReason"), "drill");
    json_object_put(o);
    ck_assert_double_eq(metric(a.base, "flashgate_budget_kill_switch"), 1);
    ck_assert_double_eq(metric(a.base, "flashgate_alert{name=\"budgetKillSwitchActive\"}"), 1);
    ck_assert_int_eq(post_admin(a.base, "/api/admin/budget/kill-switch", "{\"enabled\":false}"), 200);
    o = alerts(a.base);
    ck_assert(!pl_jbool(o, "alerts.budgetKillSwitchActive"));
    json_object_put(o);

    /* spend at 79.999999 then 80 USD of the default 100 USD (BUDGET_ALERT_PCT 80) */
    time_t tt = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&tt, &tm);
    char month[64];
    strftime(month, sizeof(month), "fg:{ai-jobs}:budget:month:%Y-%m", &tm);
    rrun(c, "HSET %s spent 79999999", month);
    o = alerts(a.base);
    ck_assert(!pl_jbool(o, "alerts.budgetNearLimit"));
    json_object_put(o);
    rrun(c, "HSET %s spent 80000000", month);
    o = alerts(a.base);
    ck_assert(pl_jbool(o, "alerts.budgetNearLimit"));
    ck_assert_double_eq_tol(jnum(o, "metrics.budget.spentThisMonth"), 80.0, 1e-9);
    json_object_put(o);
    ck_assert_double_eq(metric(a.base, "flashgate_budget_spent_usd"), 80);
    ck_assert_double_eq(metric(a.base, "flashgate_budget_limit_usd"), 100);
    redisFree(c);
    gw_stop(&a);
    fx_redis_done(&rs);
}
END_TEST

/* ------------------------------------------------------------ access */

START_TEST(test_operators_only)
{
    struct fx_redis rs = { .pid = -1 };
    struct mx_gw a;
    gw_init(&a);
    ck_assert_int_eq(fx_redis_start(&rs, false), 0);
    const char *extra[] = { "ADMIN_ALLOW_CIDRS=10.0.0.0/8", "ADMIN_TOKEN=" MX_TOKEN, NULL };
    gw_start(&a, rs.url, "mx-x", extra);
    const char *paths[] = { "/api/metrics/alerts", "/metrics" };
    const char *none[] = { NULL };
    const char *wrong[] = { "Authorization: Bearer not-the-token", NULL };
    const char *xff[] = { "X-Forwarded-For: 10.1.2.3", NULL };
    const char *right[] = { "Authorization: Bearer " MX_TOKEN, NULL };
    const char *const *refused[] = { none, wrong, xff };
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 3; k++) {
            struct resp r = get(a.base, paths[i], refused[k]);
            ck_assert_msg(r.status == 403, "%s (case %d): %ld", paths[i], k, r.status);
            struct json_object *o = pl_parse(r.body);
            ck_assert_str_eq(pl_jstr(o, "code"), "MONITORING_ACCESS_DENIED");
            ck_assert(strstr(r.body, "flashgate_") == NULL);
            json_object_put(o);
            resp_done(&r);
        }
        struct resp r = get(a.base, paths[i], right);
        ck_assert_msg(r.status == 200, "%s with the token: %ld %s", paths[i], r.status, r.body);
        resp_done(&r);
    }
    gw_stop(&a);
    fx_redis_done(&rs);
}
END_TEST

/* ------------------------------------------------------------ exposition format */

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    return true;
}

static bool value_ok(const char *s, double *ret)
{
    if (!strcmp(s, "+Inf") || !strcmp(s, "-Inf") || !strcmp(s, "NaN")) {
        *ret = !strcmp(s, "NaN") ? NAN : (s[0] == '+' ? INFINITY : -INFINITY);
        return true;
    }
    char *end;
    *ret = strtod(s, &end);
    return end != s && *end == 0 && !isspace((unsigned char)s[0]);
}

/* Labels {a="x",b="y"} at *p; advances past '}'.  le gets the le label's value. */
static bool labels_ok(const char **p, char *le, size_t lecap)
{
    const char *s = *p;
    if (*s != '{')
        return true;
    s++;
    while (*s != '}') {
        const char *n = s;
        while (isalnum((unsigned char)*s) || *s == '_')
            s++;
        if (!name_ok(n, (size_t)(s - n)) || *s != '=' || s[1] != '"')
            return false;
        bool is_le = (s - n) == 2 && !strncmp(n, "le", 2);
        s += 2;
        size_t k = 0;
        while (*s && *s != '"') {
            if (*s == '\\') {
                if (s[1] != '\\' && s[1] != '"' && s[1] != 'n')
                    return false;
                s++;
            }
            if (*s == '\n')
                return false;
            if (is_le && k + 1 < lecap)
                le[k++] = *s;
            s++;
        }
        if (*s != '"')
            return false;
        if (is_le)
            le[k] = 0;
        s++;
        if (*s == ',')
            s++;
        else if (*s != '}')
            return false;
    }
    *p = s + 1;
    return true;
}

START_TEST(test_prometheus_exposition_is_valid)
{
    struct fx_redis rs = { .pid = -1 };
    struct mx_gw a;
    gw_init(&a);
    ck_assert_int_eq(fx_redis_start(&rs, false), 0);
    gw_start(&a, rs.url, "mx-p", NULL);
    for (int i = 0; i < 5; i++) {
        struct resp r = get(a.base, "/api/job-status/0123456789abcdef0123456789abcdef", NULL);
        resp_done(&r);
    }
    const char *api = "flashgate_http_requests_total{class=\"api\"}";
    for (int64_t deadline = clock_mono_ms() + MX_WAIT_MS; metric(a.base, api) < 5; clock_sleep_ms(PL_POLL_MS))
        ck_assert_msg(clock_mono_ms() < deadline, "the five 404s never reached the figures");
    struct resp r = get(a.base, "/metrics", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
    ck_assert(r.body[0] && r.body[strlen(r.body) - 1] == '\n');

    char family[128] = "", type[16] = "", seen[64][128];
    size_t nseen = 0, samples = 0, buckets = 0;
    double last_le = -INFINITY, last_cum = 0, inf_cum = -1, count = -1;
    char *save = NULL, *body = strdup(r.body);
    for (char *l = strtok_r(body, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (l[0] == '#') {
            char kw[8], nm[128];
            int off = 0;
            ck_assert_msg(sscanf(l, "# %7s %127s %n", kw, nm, &off) >= 2, "bad comment: %s", l);
            ck_assert_msg(name_ok(nm, strlen(nm)), "bad name: %s", l);
            if (!strcmp(kw, "HELP")) {
                ck_assert_msg(l[off] != 0, "empty HELP: %s", l);
                for (size_t i = 0; i < nseen; i++)
                    ck_assert_msg(strcmp(seen[i], nm) != 0, "family %s described twice", nm);
                ck_assert_uint_lt(nseen, 64);
                snprintf(seen[nseen++], 128, "%s", nm);
                snprintf(family, sizeof(family), "%s", nm);
                type[0] = 0;
            } else {
                ck_assert_str_eq(kw, "TYPE");
                ck_assert_str_eq(nm, family);
                const char *t = l + off;
                ck_assert_msg(!strcmp(t, "counter") || !strcmp(t, "gauge") || !strcmp(t, "histogram") ||
                              !strcmp(t, "summary") || !strcmp(t, "untyped"), "bad TYPE: %s", l);
                snprintf(type, sizeof(type), "%s", t);
                last_le = -INFINITY;
                last_cum = 0;
            }
            continue;
        }
        /* sample: name[{labels}] value */
        const char *p = l;
        while (isalnum((unsigned char)*p) || *p == '_' || *p == ':')
            p++;
        size_t nl = (size_t)(p - l);
        ck_assert_msg(name_ok(l, nl), "bad sample name: %s", l);
        ck_assert_msg(type[0], "sample before its TYPE: %s", l);
        size_t fl = strlen(family);
        bool mine = nl == fl && !strncmp(l, family, fl);
        const char *suffix = mine ? "" : l + fl;
        if (!strcmp(type, "histogram"))
            ck_assert_msg(!strncmp(l, family, fl) && (!strncmp(suffix, "_bucket", 7) || !strncmp(suffix, "_sum", 4) ||
                                                      !strncmp(suffix, "_count", 6)), "stray sample %s in %s", l, family);
        else
            ck_assert_msg(mine, "sample %s outside its family %s", l, family);
        char le[32] = "";
        ck_assert_msg(labels_ok(&p, le, sizeof(le)), "bad labels: %s", l);
        ck_assert_msg(*p == ' ', "no value separator: %s", l);
        double v;
        ck_assert_msg(value_ok(p + 1, &v), "bad value: %s", l);
        if (!strcmp(type, "counter"))
            ck_assert_msg(v >= 0 && !strncmp(l + fl - 6, "_total", 6), "counter %s", l);
        if (!strcmp(type, "histogram") && !strncmp(suffix, "_bucket", 7)) {
            double b;
            ck_assert_msg(le[0] && value_ok(le, &b), "bucket without le: %s", l);
            ck_assert_msg(b > last_le && v >= last_cum, "buckets not ascending and cumulative: %s", l);
            last_le = b;
            last_cum = v;
            buckets++;
            if (isinf(b))
                inf_cum = v;
        }
        if (!strcmp(type, "histogram") && !strncmp(suffix, "_count", 6))
            count = v;
        samples++;
    }
    ck_assert_int_ge(samples, 40);
    ck_assert_int_eq(buckets, 12);
    ck_assert_msg(inf_cum >= 5 && inf_cum == count, "+Inf bucket %g, _count %g", inf_cum, count);
    ck_assert_double_eq(prom_value(r.body, api), 5);
    free(body);
    resp_done(&r);
    gw_stop(&a);
    fx_redis_done(&rs);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *t = tcase_create("metrics");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_flush_script_adds_a_batch_once);
    tcase_add_test(t, test_fleet_requests_summed_across_gateways);
    tcase_add_test(t, test_window_figures_from_buckets);
    tcase_add_test(t, test_window_tail_and_minimum_requests);
    tcase_add_test(t, test_redis_down_is_503_and_its_errors_are_counted_once);
    tcase_add_test(t, test_queue_depth_no_workers_and_stalled);
    tcase_add_test(t, test_breaker_kill_switch_and_budget_alerts);
    tcase_add_test(t, test_operators_only);
    tcase_add_test(t, test_prometheus_exposition_is_valid);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
