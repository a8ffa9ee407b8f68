/*
 * The gateway's fleet-wide client limits and the operator endpoints for
 * breakers, budget and rate limits, against the real gateway binary(ies)
 * and a real redis-server, as a client sees them: statuses, bodies,
 * RateLimit / RateLimit-Policy / Retry-After headers.
 *
 *   per-user AI limit  exact across two gateways under concurrency (all
 *                      requests in flight at once through curl multi)
 *   per-address limit  counted per client, health and SSE resumes exempt,
 *                      fail-open when Redis is gone (and no crash)
 *   job submissions    one Redis script each with both limits inside; a 400
 *                      costs no script and no quota; an idempotent repeat
 *                      spends no AI quota
 *   admin endpoints    contract bodies; 400 for every malformed input;
 *                      403 for non-operators; the kill-switch reaches the
 *                      enqueue path (429 BUDGET_LIMIT_EXCEEDED) at once
 *
 * World: tests/integration/check-pipeline.h (fixtures started by the test
 * itself).  Nothing sleeps for readiness.
 */
#include <curl/curl.h>

#include "tests/integration/check-pipeline.h"

#define USERS_BURST 20          /* concurrent submissions in the per-user test */
#define AI_LIMIT 5

/* ------------------------------------------------------------ helpers */

/* The header's value (the one of the policy named in `want_policy` when the
 * field comes once per policy, else the last one); NULL if absent. */
static char *hdr_copy(const struct fx_http_resp *r, const char *name, const char *want_policy)
{
    const char *found = NULL;
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0) {
            found = r->headers[i].value;
            if (want_policy && strncmp(found, want_policy, strlen(want_policy)) == 0)
                break;
        }
    return found ? strdup(found) : NULL;
}

static const char *want_policy = "\"ip\"";   /* whose RateLimit fields do_req keeps */

struct call {
    long status;
    char *body;
    char *retry_after, *ratelimit, *policy;
};

static void call_done(struct call *c)
{
    free(c->body);
    free(c->retry_after);
    free(c->ratelimit);
    free(c->policy);
    memset(c, 0, sizeof(*c));
}

static struct call do_req(const char *method, const char *url, const char *body, const char *const *hdrs)
{
    struct fx_http_req req = { .method = method, .url = url, .headers = hdrs, .body = body };
    const char *h2[8];
    size_t n = 0;
    for (size_t i = 0; hdrs && hdrs[i] && n < 6; i++)
        h2[n++] = hdrs[i];
    if (body)
        h2[n++] = "Content-Type: application/json";
    h2[n] = NULL;
    req.headers = h2;
    struct fx_http_resp r;
    int rc = fx_http_do(&req, &r);
    ck_assert_msg(rc == 0, "%s %s: %d", method ? method : "GET", url, rc);
    struct call c = { .status = r.status, .body = strdup(r.body), .retry_after = hdr_copy(&r, "Retry-After", NULL),
                      .ratelimit = hdr_copy(&r, "RateLimit", want_policy),
                      .policy = hdr_copy(&r, "RateLimit-Policy", want_policy) };
    fx_http_resp_done(&r);
    return c;
}

/* Code of an error body ("" if none). */
static void assert_code(const struct call *c, long status, const char *code)
{
    ck_assert_msg(c->status == status, "status %ld, want %ld: %s", c->status, status, c->body);
    struct json_object *o = pl_parse(c->body);
    ck_assert_str_eq(pl_jstr(o, "code"), code);
    ck_assert(!pl_jbool(o, "success"));
    json_object_put(o);
}

/* ---- concurrent submissions through curl multi: every request is in flight at once */

struct mreq {
    CURL *h;
    struct curl_slist *hdrs;
    char url[256], *body;
    char resp[4096];
    size_t resp_len;
    char headers[4096];
    size_t hdr_len;
    long status;
};

static size_t m_write(char *p, size_t sz, size_t n, void *ud)
{
    struct mreq *m = ud;
    size_t k = sz * n, room = sizeof(m->resp) - 1 - m->resp_len;
    memcpy(m->resp + m->resp_len, p, k < room ? k : room);
    m->resp_len += k < room ? k : room;
    m->resp[m->resp_len] = 0;
    return k;
}

static size_t m_header(char *p, size_t sz, size_t n, void *ud)
{
    struct mreq *m = ud;
    size_t k = sz * n, room = sizeof(m->headers) - 1 - m->hdr_len;
    memcpy(m->headers + m->hdr_len, p, k < room ? k : room);
    m->hdr_len += k < room ? k : room;
    m->headers[m->hdr_len] = 0;
    return k;
}

/* Value of the first header `name` whose value starts with `prefix` in the
 * raw header block (into out), or NULL.  (RateLimit fields of two policies
 * come as two lines of the same list field.) */
static const char *m_hdr(const struct mreq *m, const char *name, const char *prefix, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *l = m->headers; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ')
                v++;
            if (strncmp(v, prefix, strlen(prefix)) != 0)
                continue;
            size_t vl = strcspn(v, "\r\n");
            snprintf(out, cap, "%.*s", (int)vl, v);
            return out;
        }
    }
    return NULL;
}

static void multi_run(struct mreq *reqs, size_t n)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *mh = curl_multi_init();
    ck_assert_ptr_nonnull(mh);
    for (size_t i = 0; i < n; i++) {
        struct mreq *m = &reqs[i];
        m->h = curl_easy_init();
        ck_assert_ptr_nonnull(m->h);
        curl_easy_setopt(m->h, CURLOPT_URL, m->url);
        curl_easy_setopt(m->h, CURLOPT_POSTFIELDS, m->body);
        curl_easy_setopt(m->h, CURLOPT_HTTPHEADER, m->hdrs);
        curl_easy_setopt(m->h, CURLOPT_WRITEFUNCTION, m_write);
        curl_easy_setopt(m->h, CURLOPT_WRITEDATA, m);
        curl_easy_setopt(m->h, CURLOPT_HEADERFUNCTION, m_header);
        curl_easy_setopt(m->h, CURLOPT_HEADERDATA, m);
        curl_easy_setopt(m->h, CURLOPT_TIMEOUT_MS, 20000L);
        curl_multi_add_handle(mh, m->h);
    }
    int running = 1;
    while (running) {
        ck_assert_int_eq(curl_multi_perform(mh, &running), CURLM_OK);
        if (running)
            curl_multi_poll(mh, NULL, 0, 100, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        curl_easy_getinfo(reqs[i].h, CURLINFO_RESPONSE_CODE, &reqs[i].status);
        curl_multi_remove_handle(mh, reqs[i].h);
        curl_easy_cleanup(reqs[i].h);
        curl_slist_free_all(reqs[i].hdrs);
        free(reqs[i].body);
    }
    curl_multi_cleanup(mh);
}

/* ------------------------------------------------------------ per user */

/* RATE_LIMIT_AI_PER_MIN is one limit for the whole fleet: of 20 concurrent
 * submissions by one user through two gateways exactly 5 are accepted. */
START_TEST(per_user_limit_two_gateways)
{
    struct pl_world w;
    pl_init(&w);
    ck_assert_int_eq(fx_redis_start(&w.rs, false), 0);
    const char *extra[] = { "RATE_LIMIT_AI_PER_MIN=5", NULL };
    pl_start_gateway(&w, extra);
    struct fx_proc gw2 = { .pid = -1 };
    int gw2_port = 0;
    const char *env2[] = { "INSTANCE_ID=pl-gateway-2", "HTTP_THREADS=4", "RATE_LIMIT_AI_PER_MIN=5",
                           "RATE_LIMIT_IP_PER_MIN=100000000", NULL };
    ck_assert_int_eq(fx_gateway_start(&gw2, w.rs.url, env2, &gw2_port), 0);

    struct mreq reqs[USERS_BURST];
    memset(reqs, 0, sizeof(reqs));
    for (int i = 0; i < USERS_BURST; i++) {
        snprintf(reqs[i].url, sizeof(reqs[i].url), "http://127.0.0.1:%d" PL_FLASHCARDS,
                 i % 2 ? gw2_port : w.gw_port);
        char tag[32];
        snprintf(tag, sizeof(tag), "burst-%d", i);
        reqs[i].body = pl_job_body(tag, NULL);
        reqs[i].hdrs = curl_slist_append(NULL, "Content-Type: application/json");
        reqs[i].hdrs = curl_slist_append(reqs[i].hdrs, "user-id: " PL_USER);
    }
    multi_run(reqs, USERS_BURST);

    int accepted = 0, limited = 0;
    bool remaining_seen[AI_LIMIT] = { false };
    for (int i = 0; i < USERS_BURST; i++) {
        char pol[128], rl[128], ra[32];
        ck_assert_msg(m_hdr(&reqs[i], "RateLimit-Policy", "\"ai\"", pol, sizeof(pol)), "no RateLimit-Policy: %s",
                      reqs[i].headers);
        ck_assert_str_eq(pol, "\"ai\";q=5;w=60");
        ck_assert_ptr_nonnull(m_hdr(&reqs[i], "RateLimit", "\"ai\"", rl, sizeof(rl)));
        if (reqs[i].status == 202) {
            accepted++;
            int r = -1, t = -1;
            ck_assert_int_eq(sscanf(rl, "\"ai\";r=%d;t=%d", &r, &t), 2);
            ck_assert(r >= 0 && r < AI_LIMIT && t >= 1 && t <= 60);
            ck_assert_msg(!remaining_seen[r], "remaining %d answered twice", r);
            remaining_seen[r] = true;
        } else {
            ck_assert_msg(reqs[i].status == 429, "status %ld: %s", reqs[i].status, reqs[i].resp);
            limited++;
            struct json_object *o = pl_parse(reqs[i].resp);
            ck_assert_str_eq(pl_jstr(o, "code"), "USER_AI_RATE_LIMIT_EXCEEDED");
            json_object_put(o);
            ck_assert_ptr_nonnull(m_hdr(&reqs[i], "Retry-After", "", ra, sizeof(ra)));
            ck_assert_int_ge(atoi(ra), 1);
            ck_assert_int_le(atoi(ra), 12);
            ck_assert_ptr_nonnull(strstr(rl, "r=0;"));
        }
    }
    ck_assert_int_eq(accepted, AI_LIMIT);
    ck_assert_int_eq(limited, USERS_BURST - AI_LIMIT);
    ck_assert_int_eq(pl_qstat(&w, "waiting"), AI_LIMIT);

    /* another user has a limit of their own */
    char *b = pl_fmt("{\"content\":\"Ein anderer Text\",\"subject\":\"s\",\"topic\":\"t\"}");
    want_policy = "\"ai\"";
    struct call c = do_req("POST", pl_url(w.gw_base, PL_FLASHCARDS), b, (const char *[]){ "user-id: bob", NULL });
    ck_assert_msg(c.status == 202, "%ld %s", c.status, c.body);
    ck_assert_str_eq(c.ratelimit, "\"ai\";r=4;t=12");
    ck_assert_str_eq(c.policy, "\"ai\";q=5;w=60");
    call_done(&c);
    want_policy = "\"ip\"";
    free(b);

    /* the admin view agrees */
    long st;
    struct json_object *o = pl_get_json(w.gw_base, "/api/rate-limits/status?userId=" PL_USER, NULL, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_int_eq(pl_jint(o, "limits.aiSubmissions.limit"), AI_LIMIT);
    ck_assert_int_eq(pl_jint(o, "limits.aiSubmissions.remaining"), 0);
    ck_assert_int_eq(pl_jint(o, "limits.aiSubmissions.used"), AI_LIMIT);
    ck_assert_int_ge(pl_jint(o, "limits.aiSubmissions.retryAfterSeconds"), 1);
    ck_assert_str_eq(pl_jstr(o, "userId"), PL_USER);
    ck_assert(pl_jhas(o, "limits.apiRequests.remaining"));
    ck_assert(pl_jhas(o, "providers.openai.inFlight"));
    json_object_put(o);

    ck_assert(fx_proc_running(&gw2));
    ck_assert_int_eq(fx_proc_stop(&gw2, 0), 0);
    pl_assert_log_clean(&gw2);
    fx_proc_done(&gw2);
    pl_stop(&w);
}
END_TEST

/* Redis gone at submission time: the per-user limit cannot be checked, and
 * the job could not be queued anyway: 503, never a crash. */
START_TEST(per_user_limit_redis_down)
{
    struct pl_world w;
    pl_init(&w);
    ck_assert_int_eq(fx_redis_start(&w.rs, false), 0);
    const char *extra[] = { "RATE_LIMIT_AI_PER_MIN=5", NULL };
    pl_start_gateway(&w, extra);
    ck_assert_int_eq(fx_redis_kill(&w.rs), 0);
    char *b = pl_job_body("down", NULL);
    struct call c = do_req("POST", pl_url(w.gw_base, PL_FLASHCARDS), b, (const char *[]){ "user-id: " PL_USER, NULL });
    assert_code(&c, 503, "REDIS_UNAVAILABLE");
    call_done(&c);
    free(b);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ per address */

START_TEST(per_address_limit)
{
    struct pl_world w;
    pl_init(&w);
    ck_assert_int_eq(fx_redis_start(&w.rs, false), 0);
    const char *extra[] = { "RATE_LIMIT_IP_PER_MIN=5", NULL };
    pl_start_gateway(&w, extra);
    const char *url = pl_url(w.gw_base, "/api/job-status/0123456789abcdef0123456789abcdef");
    for (int i = 0; i < 5; i++) {
        struct call c = do_req(NULL, url, NULL, NULL);
        ck_assert_msg(c.status == 404, "%ld %s", c.status, c.body);
        ck_assert_str_eq(c.policy, "\"ip\";q=5;w=60");
        char want[32];
        snprintf(want, sizeof(want), "\"ip\";r=%d;", 4 - i);
        ck_assert_msg(strncmp(c.ratelimit, want, strlen(want)) == 0, "RateLimit %s, want %s...", c.ratelimit, want);
        call_done(&c);
    }
    struct call c = do_req(NULL, url, NULL, NULL);
    assert_code(&c, 429, "RATE_LIMIT_EXCEEDED");
    ck_assert_ptr_nonnull(c.retry_after);
    ck_assert_int_ge(atoi(c.retry_after), 1);
    ck_assert_int_le(atoi(c.retry_after), 12);
    ck_assert_ptr_nonnull(strstr(c.ratelimit, "r=0;"));
    call_done(&c);

    /* exempt: health, static files, SSE resumes with a valid Last-Event-ID */
    c = do_req(NULL, pl_url(w.gw_base, "/health"), NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    ck_assert_ptr_null(c.ratelimit);
    call_done(&c);
    c = do_req(NULL, pl_url(w.gw_base, "/api/health"), NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    call_done(&c);
    c = do_req(NULL, pl_url(w.gw_base, "/sse-example.html"), NULL, NULL);
    ck_assert_int_ne(c.status, 429);
    call_done(&c);
    const char *sse = "/api/job-events?jobId=0123456789abcdef0123456789abcdef";
    c = do_req(NULL, pl_url(w.gw_base, sse), NULL, (const char *[]){ "Last-Event-ID: 3", NULL });
    ck_assert_msg(c.status != 429, "an SSE resume was rate limited");
    call_done(&c);
    char *u = pl_fmt("%s&lastEventId=7", sse);
    c = do_req(NULL, pl_url(w.gw_base, u), NULL, NULL);
    ck_assert_msg(c.status != 429, "an SSE resume (lastEventId) was rate limited");
    call_done(&c);
    free(u);
    /* not a resume: a new stream, or a malformed id */
    c = do_req(NULL, pl_url(w.gw_base, sse), NULL, NULL);
    ck_assert_int_eq(c.status, 429);
    call_done(&c);
    c = do_req(NULL, pl_url(w.gw_base, sse), NULL, (const char *[]){ "Last-Event-ID: 3x", NULL });
    ck_assert_int_eq(c.status, 429);
    call_done(&c);

    /* Redis gone: the limit fails open (the handler answers for itself), no crash */
    ck_assert_int_eq(fx_redis_kill(&w.rs), 0);
    for (int i = 0; i < 3; i++) {
        c = do_req(NULL, url, NULL, NULL);
        ck_assert_msg(c.status == 503, "%ld %s", c.status, c.body);
        ck_assert_ptr_null(c.ratelimit);
        call_done(&c);
    }
    c = do_req(NULL, pl_url(w.gw_base, "/api/circuit-breakers/status"), NULL, NULL);
    assert_code(&c, 503, "REDIS_UNAVAILABLE");
    call_done(&c);
    char *log = fx_proc_log(&w.gw);
    ck_assert_ptr_nonnull(log);
    const char *first = strstr(log, "per-address rate limit not enforced");
    ck_assert_ptr_nonnull(first);
    ck_assert_ptr_null(strstr(first + 1, "per-address rate limit not enforced"));   /* logged once */
    free(log);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ admin endpoints */

START_TEST(admin_endpoints)
{
    struct pl_world w;
    pl_init(&w);
    ck_assert_int_eq(fx_redis_start(&w.rs, false), 0);
    const char *extra[] = { "BUDGET_MONTHLY_LIMIT_USD=25", "CB_FAILURE_THRESHOLD=7", "CB_HALF_OPEN_PROBES=2", NULL };
    pl_start_gateway(&w, extra);
    const char *ks = pl_url(w.gw_base, "/api/admin/budget/kill-switch");

    /* breakers */
    long st;
    struct json_object *o = pl_get_json(w.gw_base, "/api/circuit-breakers/status", NULL, &st);
    ck_assert_int_eq(st, 200);
    ck_assert(pl_jbool(o, "success"));
    ck_assert_str_eq(pl_jstr(o, "circuitBreakers.openai.name"), "openai");
    ck_assert_str_eq(pl_jstr(o, "circuitBreakers.openai.state"), "CLOSED");
    ck_assert_str_eq(pl_jstr(o, "circuitBreakers.azure.state"), "CLOSED");
    ck_assert_int_eq(pl_jint(o, "circuitBreakers.openai.failures"), 0);
    ck_assert_int_eq(pl_jint(o, "circuitBreakers.openai.successes"), 0);
    ck_assert_int_eq(pl_jint(o, "circuitBreakers.openai.failureThreshold"), 7);
    ck_assert_int_eq(pl_jint(o, "circuitBreakers.openai.successThreshold"), 2);
    struct json_object *v;
    ck_assert(json_object_object_get_ex(pl_jp(o, "circuitBreakers.openai"), "openedAt", &v) && !v);
    ck_assert(json_object_object_get_ex(pl_jp(o, "circuitBreakers.openai"), "nextRetryAt", &v) && !v);
    ck_assert(pl_jhas(o, "timestamp"));
    json_object_put(o);

    struct call c = do_req("POST", pl_url(w.gw_base, "/api/circuit-breakers/reset/openai"), "{}", NULL);
    ck_assert_msg(c.status == 200, "%ld %s", c.status, c.body);
    o = pl_parse(c.body);
    ck_assert_str_eq(pl_jstr(o, "message"), "Circuit breaker openai reset to CLOSED");
    json_object_put(o);
    call_done(&c);
    c = do_req("POST", pl_url(w.gw_base, "/api/circuit-breakers/reset/anthropic"), "{}", NULL);
    assert_code(&c, 400, "VALIDATION_ERROR");
    o = pl_parse(c.body);
    ck_assert_uint_eq(pl_jlen(o, "available"), 2);
    ck_assert_str_eq(pl_jstr(o, "available.0"), "openai");
    ck_assert_str_eq(pl_jstr(o, "available.1"), "azure");
    json_object_put(o);
    call_done(&c);

    /* budget status */
    o = pl_get_json(w.gw_base, "/api/admin/budget/status", NULL, &st);
    ck_assert_int_eq(st, 200);
    ck_assert(!pl_jbool(o, "budget.killSwitchActive"));
    ck_assert(json_object_object_get_ex(pl_jp(o, "budget"), "killSwitchReason", &v) && !v);
    ck_assert(json_object_is_type(pl_jp(o, "budget.monthlyLimit"), json_type_double) ||
              json_object_is_type(pl_jp(o, "budget.monthlyLimit"), json_type_int));
    ck_assert_int_eq((int)json_object_get_double(pl_jp(o, "budget.monthlyLimit")), 25);
    ck_assert(json_object_get_double(pl_jp(o, "budget.spentThisMonth")) == 0);
    ck_assert_str_eq(pl_jstr(o, "budget.currency"), "USD");
    ck_assert_int_eq(pl_jint(o, "budget.queueDepth"), 0);
    json_object_put(o);

    /* kill-switch: only a real boolean */
    const char *bad[] = { "{\"enabled\":\"true\"}", "{\"enabled\":1}", "{}", "{\"enabled\":null}",
                          "{\"enabled\":true,\"reason\":5}", "[true]" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = do_req("POST", ks, bad[i], NULL);
        ck_assert_msg(c.status == 400, "%s -> %ld %s", bad[i], c.status, c.body);
        call_done(&c);
    }
    c = do_req("POST", ks, "{\"enabled\":tru", NULL);
    assert_code(&c, 400, "INVALID_JSON");
    call_done(&c);
    c = do_req("POST", ks, "{\"enabled\":true,\"reason\":\"Provider invoice review\"}", NULL);
    ck_assert_msg(c.status == 200, "%ld %s", c.status, c.body);
    o = pl_parse(c.body);
    ck_assert_str_eq(pl_jstr(o, "message"), "Budget kill-switch activated");
    ck_assert(pl_jbool(o, "killSwitchActive"));
    ck_assert_str_eq(pl_jstr(o, "reason"), "Provider invoice review");
    json_object_put(o);
    call_done(&c);

    /* ... which the enqueue path obeys at once */
    char *job = pl_job_body("ks", NULL);
    struct json_object *r = NULL;
    ck_assert_int_eq(pl_submit(&w, PL_FLASHCARDS, job, PL_USER, NULL, &r), 429);
    ck_assert_str_eq(pl_jstr(r, "code"), "BUDGET_LIMIT_EXCEEDED");
    json_object_put(r);
    o = pl_get_json(w.gw_base, "/api/admin/budget/status", NULL, &st);
    ck_assert(pl_jbool(o, "budget.killSwitchActive"));
    ck_assert_str_eq(pl_jstr(o, "budget.killSwitchReason"), "Provider invoice review");
    ck_assert_str_eq(pl_jstr(o, "budget.killSwitchSource"), "admin");
    json_object_put(o);
    c = do_req("POST", ks, "{\"enabled\":false}", NULL);
    ck_assert_int_eq(c.status, 200);
    o = pl_parse(c.body);
    ck_assert_str_eq(pl_jstr(o, "message"), "Budget kill-switch deactivated");
    ck_assert(!pl_jbool(o, "killSwitchActive"));
    json_object_put(o);
    call_done(&c);
    ck_assert_int_eq(pl_submit(&w, PL_FLASHCARDS, job, PL_USER, NULL, NULL), 202);
    free(job);

    /* set-limit: a non-negative number of dollars */
    const char *badl[] = { "{\"limit\":-1}", "{\"limit\":\"5\"}", "{}", "{\"limit\":true}", "{\"limit\":1e12}" };
    for (size_t i = 0; i < sizeof(badl) / sizeof(badl[0]); i++) {
        c = do_req("POST", pl_url(w.gw_base, "/api/admin/budget/set-limit"), badl[i], NULL);
        ck_assert_msg(c.status == 400, "%s -> %ld %s", badl[i], c.status, c.body);
        call_done(&c);
    }
    c = do_req("POST", pl_url(w.gw_base, "/api/admin/budget/set-limit"), "{\"limit\":12.5}", NULL);
    ck_assert_msg(c.status == 200, "%ld %s", c.status, c.body);
    ck_assert_ptr_nonnull(strstr(c.body, "\"monthlyLimit\":12.5"));
    ck_assert_ptr_nonnull(strstr(c.body, "\"previousLimit\":25"));
    call_done(&c);
    o = pl_get_json(w.gw_base, "/api/admin/budget/status", NULL, &st);
    ck_assert(json_object_get_double(pl_jp(o, "budget.monthlyLimit")) == 12.5);
    ck_assert_str_eq(pl_jstr(o, "budget.monthlyLimitSource"), "operator");
    ck_assert_int_eq(pl_jint(o, "budget.queueDepth"), 1);
    json_object_put(o);

    /* POSTs need a JSON content type (no form-based CSRF against loopback operators) */
    struct fx_http_req rq = { .method = "POST", .url = pl_url(w.gw_base, "/api/circuit-breakers/reset/openai"),
                              .body = "enabled=true" };
    struct fx_http_resp rs;
    ck_assert_int_eq(fx_http_do(&rq, &rs), 0);
    ck_assert_int_eq(rs.status, 415);
    fx_http_resp_done(&rs);
    pl_stop(&w);
}
END_TEST

/* Operators only: another address without the token gets 403; the token works. */
START_TEST(admin_access)
{
    struct pl_world w;
    pl_init(&w);
    ck_assert_int_eq(fx_redis_start(&w.rs, false), 0);
    const char *extra[] = { "ADMIN_ALLOW_CIDRS=10.1.2.0/24", "ADMIN_TOKEN=resilience-admin-token-123", NULL };
    pl_start_gateway(&w, extra);
    const char *paths[] = { "/api/circuit-breakers/status", "/api/admin/budget/status", "/api/rate-limits/status" };
    for (size_t i = 0; i < 3; i++) {
        struct call c = do_req(NULL, pl_url(w.gw_base, paths[i]), NULL, NULL);
        assert_code(&c, 403, "MONITORING_ACCESS_DENIED");
        call_done(&c);
        c = do_req(NULL, pl_url(w.gw_base, paths[i]), NULL,
                   (const char *[]){ "Authorization: Bearer resilience-admin-token-123", NULL });
        ck_assert_msg(c.status == 200, "%s: %ld %s", paths[i], c.status, c.body);
        call_done(&c);
    }
    struct call c = do_req("POST", pl_url(w.gw_base, "/api/admin/budget/kill-switch"), "{\"enabled\":true}", NULL);
    assert_code(&c, 403, "MONITORING_ACCESS_DENIED");
    call_done(&c);
    struct json_object *o;
    long st;
    o = pl_get_json(w.gw_base, "/api/admin/budget/status",
                    (const char *[]){ "Authorization: Bearer resilience-admin-token-123", NULL }, &st);
    ck_assert(!pl_jbool(o, "budget.killSwitchActive"));
    json_object_put(o);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ job submissions */

/* Script calls (EVAL + EVALSHA) Redis has run so far (an EVALSHA answered
 * NOSCRIPT, then sent again as EVAL, is one). */
static long long script_calls(struct pl_world *w)
{
    redisContext *c = fx_redis_connect(&w->rs);
    ck_assert_ptr_nonnull(c);
    redisReply *r = redisCommand(c, "INFO commandstats");
    ck_assert(r && r->type == REDIS_REPLY_STRING);
    long long n = 0;
    for (const char *k = r->str; (k = strstr(k, "cmdstat_eval")); k++) {
        const char *calls = strstr(k, "calls=");
        const char *failed = strstr(k, "failed_calls=");
        if (calls && (strncmp(k, "cmdstat_eval:", 13) == 0 || strncmp(k, "cmdstat_evalsha:", 16) == 0))
            n += atoll(calls + 6) - (failed ? atoll(failed + 13) : 0);
    }
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* "<policy>";r=<n>;... of the response's RateLimit, or -1 without one. */
static int remaining_of(const struct fx_http_resp *r, const char *policy)
{
    char want[16];
    snprintf(want, sizeof(want), "\"%s\";r=", policy);
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, "RateLimit") == 0 && strncmp(r->headers[i].value, want, strlen(want)) == 0)
            return atoi(r->headers[i].value + strlen(want));
    return -1;
}

static long submit_hdrs(struct pl_world *w, const char *body, const char *idem, int *ip_rem, int *ai_rem,
                        char **resp)
{
    const char *hdrs[3] = { "user-id: " PL_USER, NULL, NULL };
    char ih[300];
    if (idem) {
        snprintf(ih, sizeof(ih), "Idempotency-Key: %s", idem);
        hdrs[1] = ih;
    }
    struct fx_http_resp r;
    ck_assert_int_eq(fx_http_post_json(pl_url(w->gw_base, PL_FLASHCARDS), body, hdrs, &r), 0);
    long st = r.status;
    *ip_rem = remaining_of(&r, "ip");
    *ai_rem = remaining_of(&r, "ai");
    if (resp)
        *resp = strdup(r.body);
    fx_http_resp_done(&r);
    return st;
}

/* A submission is one Redis script (both client limits inside the enqueue
 * script); refusals before it (400) cost Redis nothing and count against no
 * limit; an idempotent repeat spends the address's quota, not the user's;
 * the per-address 429 on the submission route is the usual one. */
START_TEST(enqueue_limits_in_script)
{
    struct pl_world w;
    pl_init(&w);
    ck_assert_int_eq(fx_redis_start(&w.rs, false), 0);
    const char *extra[] = { "RATE_LIMIT_IP_PER_MIN=4", "RATE_LIMIT_AI_PER_MIN=2", "METRICS_FLUSH_MS=60000", NULL };
    pl_start_gateway(&w, extra);
    /* the metrics flusher's first flush (one script, at start; the next one
     * is METRICS_FLUSH_MS away) may land after /ready on a slow build */
    int64_t settle = clock_mono_ms() + 10000;
    while (script_calls(&w) < 1) {
        ck_assert_msg(clock_mono_ms() < settle, "the gateway's first metrics flush never came");
        clock_sleep_ms(20);
    }

    long long before = script_calls(&w);
    int ip, ai;
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(submit_hdrs(&w, "{\"subject\":\"s\"}", NULL, &ip, &ai, NULL), 400);
        ck_assert_int_eq(ip, -1);
        ck_assert_int_eq(ai, -1);
    }
    ck_assert_int_eq(script_calls(&w) - before, 0);

    char *a = pl_job_body("once-a", NULL), *b = pl_job_body("once-b", NULL), *c3 = pl_job_body("once-c", NULL);
    before = script_calls(&w);
    ck_assert_int_eq(submit_hdrs(&w, a, "k-a", &ip, &ai, NULL), 202);
    ck_assert_int_eq(ip, 3);
    ck_assert_int_eq(ai, 1);
    ck_assert_int_le(script_calls(&w) - before, 1);     /* one script per submission */
    ck_assert_int_eq(submit_hdrs(&w, a, "k-a", &ip, &ai, NULL), 202);   /* repeat: same job */
    ck_assert_int_eq(ip, 2);
    ck_assert_int_eq(ai, 1);
    ck_assert_int_eq(submit_hdrs(&w, b, NULL, &ip, &ai, NULL), 202);
    ck_assert_int_eq(ip, 1);
    ck_assert_int_eq(ai, 0);
    char *resp = NULL;
    ck_assert_int_eq(submit_hdrs(&w, c3, NULL, &ip, &ai, &resp), 429);   /* user's quota spent */
    ck_assert_int_eq(ip, 0);
    ck_assert_int_eq(ai, 0);
    ck_assert_ptr_nonnull(strstr(resp, "USER_AI_RATE_LIMIT_EXCEEDED"));
    free(resp);
    ck_assert_int_eq(submit_hdrs(&w, c3, NULL, &ip, &ai, &resp), 429);   /* address's quota spent */
    ck_assert_int_eq(ip, 0);
    ck_assert_int_eq(ai, -1);
    ck_assert_ptr_nonnull(strstr(resp, "\"RATE_LIMIT_EXCEEDED\""));
    free(resp);
    ck_assert_int_le(script_calls(&w) - before, 6);      /* 5 submissions (+ at most one metrics flush) */
    redisContext *rc = fx_redis_connect(&w.rs);    /* not through the gateway: the address is limited */
    ck_assert_ptr_nonnull(rc);
    redisReply *rep = redisCommand(rc, "LLEN " PL_QKEY("waiting"));
    ck_assert(rep && rep->type == REDIS_REPLY_INTEGER);
    ck_assert_int_eq(rep->integer, 2);
    freeReplyObject(rep);
    redisFree(rc);
    free(a);
    free(b);
    free(c3);
    pl_stop(&w);
}
END_TEST

static Suite *gw_suite(void)
{
    Suite *s = suite_create("resilience-gateway");
    TCase *tc = tcase_create("limits");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, per_user_limit_two_gateways);
    tcase_add_test(tc, per_user_limit_redis_down);
    tcase_add_test(tc, per_address_limit);
    tcase_add_test(tc, enqueue_limits_in_script);
    suite_add_tcase(s, tc);
    tc = tcase_create("admin");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, admin_endpoints);
    tcase_add_test(tc, admin_access);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(gw_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
