/*
 * The job pipeline end to end, as a user sees it: the real gateway, the real
 * worker, a real redis-server and the fake OpenAI/Azure provider
 * (check-pipeline.h builds the world).  This suite covers the paths where
 * nothing goes wrong on the provider's side:
 *
 *   happy_*        both job types with each provider (openai and azure via
 *                  the fake, offline): the 202 body, job-status until
 *                  completed, the result's shape, tokenUsage/provider/model,
 *                  the SSE stream in order, what the fake received
 *   idempotency    same request -> same job (202 pending, 200 with the
 *                  result once completed); Idempotency-Key wins over the
 *                  body; targetLanguage and the user are part of the identity
 *   duplicates_50  50 concurrent identical submissions -> one job, one
 *                  provider call
 *   bad_input      malformed, missing, mistyped, oversized and mis-typed
 *                  requests to both endpoints: the right 4xx, nothing queued
 *   status_owner   job-status of another user's job or of an unknown id is
 *                  the contract's 404, in development mode and with JWTs
 *
 * check-pipeline-faults.c covers retries, failures, dying workers, drains
 * and a Redis restart.  CK_RUN_CASE=<name> runs one case.
 */
#include <pthread.h>

#include <curl/curl.h>

#include "gateway/jwt.h"
#include "tests/integration/check-pipeline.h"

#define DUPLICATES 50
#define JWT_SECRET "pipeline-jwt-secret-0123456789abcdef"

/* ------------------------------------------------------------ happy paths */

static void assert_accepted(struct json_object *o, const char *message)
{
    ck_assert(pl_jbool(o, "success"));
    ck_assert_str_eq(pl_jstr(o, "message"), message);
    const char *id = pl_jstr(o, "jobId");
    ck_assert_uint_eq(strlen(id), 32);
    ck_assert_uint_eq(strspn(id, "0123456789abcdef"), 32);
    ck_assert_str_eq(pl_jstr(o, "status"), "queued");
    char want[128];
    snprintf(want, sizeof want, "/api/job-status/%s", id);
    ck_assert_str_eq(pl_jstr(o, "statusUrl"), want);
    snprintf(want, sizeof want, "/api/job-events?jobId=%s&token=", id);
    const char *ev = pl_jstr(o, "eventsUrl");
    ck_assert_msg(strncmp(ev, want, strlen(want)) == 0 && strlen(ev) > strlen(want) + 20,
                  "eventsUrl %s", ev);
    ck_assert_str_eq(pl_jstr(o, "estimatedTime"), "10-30 seconds");
    ck_assert(!pl_jbool(o, "fromCache"));
}

static void assert_flashcards(struct json_object *res)
{
    size_t n = pl_jlen(res, "flashcards");
    ck_assert_uint_ge(n, 1);
    for (size_t i = 0; i < n; i++) {
        struct json_object *c = json_object_array_get_idx(pl_jp(res, "flashcards"), i);
        ck_assert_ptr_nonnull(c);
        static const char *const fields[] = { "front", "back", "topic" };
        for (size_t k = 0; k < 3; k++)
            ck_assert_msg(strlen(pl_jstr(c, fields[k])) > 0, "card %zu: empty %s", i, fields[k]);
        pl_jstr(c, "example");
        const char *d = pl_jstr(c, "difficulty");
        ck_assert_msg(!strcmp(d, "beginner") || !strcmp(d, "intermediate") || !strcmp(d, "expert"),
                      "difficulty %s", d);
        if (pl_jhas(c, "pronunciation"))
            pl_jstr(c, "pronunciation");
    }
}

static void assert_lessons(struct json_object *res)
{
    size_t n = pl_jlen(res, "lessons");
    ck_assert_uint_ge(n, 1);
    for (size_t i = 0; i < n; i++) {
        struct json_object *l = json_object_array_get_idx(pl_jp(res, "lessons"), i);
        ck_assert(strlen(pl_jstr(l, "title")) > 0);
        pl_jstr(l, "subject");
        pl_jstr(l, "topicName");
        size_t nv = pl_jlen(l, "vocabulary");
        ck_assert_uint_ge(nv, 1);
        for (size_t k = 0; k < nv; k++) {
            struct json_object *v = json_object_array_get_idx(pl_jp(l, "vocabulary"), k);
            ck_assert(strlen(pl_jstr(v, "target_term")) > 0);
            pl_jstr(v, "definition");
            pl_jstr(v, "native_translation");
            pl_jstr(v, "example_sentence_target");
            pl_jstr(v, "example_sentence_native");
        }
        size_t nc = pl_jlen(l, "conversation");
        ck_assert_uint_ge(nc, 1);
        for (size_t k = 0; k < nc; k++) {
            struct json_object *c = json_object_array_get_idx(pl_jp(l, "conversation"), k);
            ck_assert(strlen(pl_jstr(c, "speaker")) > 0);
            ck_assert(strlen(pl_jstr(c, "message")) > 0);
        }
    }
}

/* One job of `path` through the whole pipeline; returns nothing, asserts all. */
static void one_happy_job(struct pl_world *w, const char *path, const char *provider, const char *model)
{
    bool lesson = strcmp(path, PL_LESSON) == 0;
    struct json_object *acc = pl_submit_new(w, path, lesson ? "lesson" : "cards");
    assert_accepted(acc, lesson ? "Lesson generation job queued successfully"
                                : "Flashcard generation job queued successfully");
    const char *id = pl_jstr(acc, "jobId");

    /* The stream, opened right after the 202 (the fake answers after a
     * delay, so the events arrive live), ends after `completed`. */
    struct pl_stream s;
    pl_sse_read(w, pl_jstr(acc, "eventsUrl"), NULL, &s);
    pl_assert_stream(&s, id, "completed");
    ck_assert_uint_eq(pl_count(&s, "retrying"), 0);
    ck_assert_uint_eq(pl_count(&s, "active"), 1);
    ck_assert_int_eq(pl_jint(s.ev[1].data, "attempt"), 1);
    ck_assert_str_eq(pl_jstr(s.ev[1].data, "message"), "Job is now being processed");
    struct json_object *done = s.ev[s.n - 1].data;
    pl_jint(done, "duration");
    pl_jstr(done, "timestamp");

    struct json_object *st = pl_wait_state(w, id, "completed", 0);
    ck_assert(pl_jbool(st, "success"));
    ck_assert_str_eq(pl_jstr(st, "jobId"), id);
    ck_assert_str_eq(pl_jstr(st, "type"), lesson ? "generate-lesson" : "generate-flashcards");
    ck_assert_str_eq(pl_jstr(st, "queue"), "ai-jobs");
    ck_assert_int_eq(pl_jint(st, "progress"), 100);
    ck_assert_int_eq(pl_jint(st, "attemptsMade"), 1);
    ck_assert_int_ge(pl_jint(st, "completedAt"), pl_jint(st, "timestamp"));
    ck_assert(!pl_jhas(st, "errorCode"));
    struct json_object *res = pl_jp(st, "result");
    ck_assert_ptr_nonnull(res);
    ck_assert(pl_jbool(res, "success"));
    ck_assert_str_eq(pl_jstr(res, "provider"), provider);
    ck_assert_str_eq(pl_jstr(res, "model"), model);
    if (strcmp(provider, "offline") == 0)
        ck_assert_int_eq(pl_jint(res, "tokenUsage"), 0);
    else
        ck_assert_int_gt(pl_jint(res, "tokenUsage"), 0);
    if (lesson)
        assert_lessons(res);
    else
        assert_flashcards(res);
    /* the stream carried the same result */
    ck_assert_msg(json_object_equal(pl_jp(done, "result"), res), "SSE result %s != status result %s",
                  json_object_to_json_string(pl_jp(done, "result")), json_object_to_json_string(res));

    json_object_put(st);
    pl_stream_done(&s);
    json_object_put(acc);
}

static void happy(const char *provider)
{
    struct pl_world w;
    pl_start_base(&w, provider, false);
    pl_start_gateway(&w, NULL);
    pl_start_worker(&w, 0, NULL);
    pl_fake_default(&w, "{\"action\":\"ok\",\"delayMs\":300}");

    const char *model = !strcmp(provider, "openai") ? "gpt-4o-mini"
                      : !strcmp(provider, "azure") ? PL_AZURE_DEP : "offline-extractive-v1";
    one_happy_job(&w, PL_FLASHCARDS, provider, model);
    one_happy_job(&w, PL_LESSON, provider, model);

    /* What the provider received: one call per job, on the provider's own
     * path, with its own credentials (the fake runs with --api-key and
     * answers 401 to another; Azure answers 404 without a valid
     * api-version, so a 200 proves it was sent). */
    struct json_object *fs = pl_fake_stats(&w);
    if (strcmp(provider, "offline") == 0) {
        ck_assert_int_eq(pl_jint(fs, "requests"), 0);
    } else {
        ck_assert_int_eq(pl_jint(fs, "requests"), 2);
        for (int i = 0; i < 2; i++) {
            char p[64];
            snprintf(p, sizeof p, "arrivals.%d", i);
            struct json_object *a = pl_jp(fs, p);
            ck_assert_ptr_nonnull(a);
            ck_assert(pl_jbool(a, "apiKeyOk"));
            ck_assert_int_eq(pl_jint(a, "status"), 200);
            if (strcmp(provider, "azure") == 0) {
                ck_assert_str_eq(pl_jstr(a, "path"), "/openai/deployments/" PL_AZURE_DEP "/chat/completions");
                ck_assert_str_eq(pl_jstr(a, "deployment"), PL_AZURE_DEP);
                ck_assert(!pl_jhas(a, "model") || json_object_is_type(pl_jp(a, "model"), json_type_null));
            } else {
                ck_assert_str_eq(pl_jstr(a, "path"), "/v1/chat/completions");
                ck_assert_str_eq(pl_jstr(a, "model"), "gpt-4o-mini");
            }
        }
    }
    json_object_put(fs);

    /* The worker counts what it did. */
    long hst;
    struct json_object *h = pl_get_json(w.wk_base[0], "/health", NULL, &hst);
    ck_assert_int_eq(hst, 200);
    ck_assert_str_eq(pl_jstr(h, "service"), "worker");
    ck_assert_int_eq(pl_jint(h, "stats.processed"), 2);
    ck_assert_int_eq(pl_jint(h, "stats.succeeded"), 2);
    ck_assert_int_eq(pl_jint(h, "stats.failed"), 0);
    json_object_put(h);

    ck_assert_int_eq(pl_qstat(&w, "completed"), 2);
    ck_assert_int_eq(pl_qstat(&w, "waiting"), 0);
    ck_assert_int_eq(pl_qstat(&w, "active"), 0);
    pl_stop(&w);
}

START_TEST(happy_openai) { happy("openai"); }
END_TEST
START_TEST(happy_azure) { happy("azure"); }
END_TEST
START_TEST(happy_offline) { happy("offline"); }
END_TEST

/* A late subscriber gets the whole history at once; Last-Event-ID replays
 * only what follows; the final id answers 204. */
START_TEST(sse_replay)
{
    struct pl_world w;
    pl_start_base(&w, "offline", false);
    pl_start_gateway(&w, NULL);
    pl_start_worker(&w, 0, NULL);
    struct json_object *acc = pl_submit_new(&w, PL_FLASHCARDS, "replay");
    const char *id = pl_jstr(acc, "jobId");
    json_object_put(pl_wait_state(&w, id, "completed", 0));

    struct pl_stream s;
    pl_sse_read(&w, pl_jstr(acc, "eventsUrl"), NULL, &s);
    pl_assert_stream(&s, id, "completed");
    long long final_id = s.ev[s.n - 1].id;
    pl_stream_done(&s);

    pl_sse_read(&w, pl_jstr(acc, "eventsUrl"), "1", &s);
    ck_assert_int_eq(s.status, 200);
    ck_assert_str_eq(s.ev[0].name, "connected");
    ck_assert_uint_eq(pl_count(&s, "active"), 0);
    ck_assert_uint_eq(pl_count(&s, "completed"), 1);
    pl_stream_done(&s);

    char last[32];
    snprintf(last, sizeof last, "%lld", final_id);
    pl_sse_read(&w, pl_jstr(acc, "eventsUrl"), last, &s);
    ck_assert_int_eq(s.status, 204);
    pl_stream_done(&s);
    json_object_put(acc);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ idempotency */

START_TEST(idempotency)
{
    struct pl_world w;
    struct json_object *o;
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    pl_start_worker(&w, 0, NULL);
    pl_fake_default(&w, "{\"action\":\"ok\",\"delayMs\":1500}");

    /* A, then the same request while A is pending: 202, same job, fromCache. */
    char *body_a = pl_job_body("idem-a", "German");
    ck_assert_int_eq(pl_submit(&w, PL_FLASHCARDS, body_a, PL_USER, NULL, &o), 202);
    ck_assert(!pl_jbool(o, "fromCache"));
    char *a = strdup(pl_jstr(o, "jobId"));
    json_object_put(o);
    ck_assert_int_eq(pl_submit(&w, PL_FLASHCARDS, body_a, PL_USER, NULL, &o), 202);
    ck_assert_str_eq(pl_jstr(o, "jobId"), a);
    ck_assert(pl_jbool(o, "fromCache"));
    ck_assert(pl_jbool(o, "success"));
    ck_assert(!pl_jhas(o, "result"));
    const char *pending = pl_jstr(o, "status");
    ck_assert_msg(!strcmp(pending, "queued") || !strcmp(pending, "active"), "status %s", pending);
    ck_assert_str_eq(pl_jstr(o, "statusUrl") + strlen("/api/job-status/"), a);
    json_object_put(o);

    /* The same request as a lesson is another job (the type is part of it). */
    ck_assert_int_eq(pl_submit(&w, PL_LESSON, body_a, PL_USER, NULL, &o), 202);
    ck_assert(!pl_jbool(o, "fromCache"));
    ck_assert_str_ne(pl_jstr(o, "jobId"), a);
    json_object_put(o);

    /* Idempotency-Key: B is created with key K; another body with K is still B. */
    char *body_b = pl_job_body("idem-b", "German"), *body_c = pl_job_body("idem-c", "German");
    ck_assert_int_eq(pl_submit(&w, PL_FLASHCARDS, body_b, PL_USER, "key-K-1", &o), 202);
    ck_assert(!pl_jbool(o, "fromCache"));
    char *b = strdup(pl_jstr(o, "jobId"));
    json_object_put(o);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(pl_submit(&w, PL_FLASHCARDS, body_c, PL_USER, "key-K-1", &o), 202);
    ck_assert_str_eq(pl_jstr(o, "jobId"), b);
    ck_assert(pl_jbool(o, "fromCache"));
    json_object_put(o);
    /* ... and the same key from another user is that user's own key. */
    ck_assert_int_eq(pl_submit(&w, PL_FLASHCARDS, "{\"content\":\"Ein anderer Text ueber Hunde.\",\"subject\":\"S\","
                               "\"topic\":\"T\"}", "user-bob", "key-K-1", &o), 202);
    ck_assert(!pl_jbool(o, "fromCache"));
    ck_assert_str_ne(pl_jstr(o, "jobId"), b);
    json_object_put(o);

    /* Another targetLanguage is another job; so is another user. */
    char *body_fr = pl_job_body("idem-a", "French");
    ck_assert_int_eq(pl_submit(&w, PL_FLASHCARDS, body_fr, PL_USER, NULL, &o), 202);
    ck_assert(!pl_jbool(o, "fromCache"));
    ck_assert_str_ne(pl_jstr(o, "jobId"), a);
    json_object_put(o);
    char *body_a_bob = strdup(body_a);
    char *u = strstr(body_a_bob, PL_USER);
    ck_assert_ptr_nonnull(u);
    memcpy(u, "user-bobby", strlen(PL_USER));           /* same length as "user-alice" */
    ck_assert_int_eq(pl_submit(&w, PL_FLASHCARDS, body_a_bob, "user-bobby", NULL, &o), 202);
    ck_assert(!pl_jbool(o, "fromCache"));
    ck_assert_str_ne(pl_jstr(o, "jobId"), a);
    json_object_put(o);

    /* Once A completed: 200 with the result and cachedAt, same job id. */
    struct json_object *st = pl_wait_state(&w, a, "completed", 0);
    ck_assert_int_eq(pl_submit(&w, PL_FLASHCARDS, body_a, PL_USER, NULL, &o), 200);
    ck_assert(pl_jbool(o, "success"));
    ck_assert_str_eq(pl_jstr(o, "jobId"), a);
    ck_assert(pl_jbool(o, "fromCache"));
    ck_assert_str_eq(pl_jstr(o, "status"), "completed");
    ck_assert_int_eq(pl_jint(o, "cachedAt"), pl_jint(st, "completedAt"));
    ck_assert(json_object_equal(pl_jp(o, "result"), pl_jp(st, "result")));
    pl_jstr(o, "eventsUrl");
    json_object_put(o);
    json_object_put(st);
    /* the key still answers B once B completed */
    json_object_put(pl_wait_state(&w, b, "completed", 0));
    ck_assert_int_eq(pl_submit(&w, PL_FLASHCARDS, body_c, PL_USER, "key-K-1", &o), 200);
    ck_assert_str_eq(pl_jstr(o, "jobId"), b);
    ck_assert(pl_jbool(o, "fromCache"));
    json_object_put(o);

    /* Six distinct jobs, six provider calls; nothing else ran. */
    int64_t deadline = clock_mono_ms() + PL_JOB_MS;
    while (pl_qstat(&w, "completed") < 6) {
        ck_assert_msg(clock_mono_ms() < deadline, "not all 6 jobs completed");
        clock_sleep_ms(PL_POLL_MS);
    }
    ck_assert_int_eq(pl_qstat(&w, "total"), 6);
    ck_assert_int_eq(pl_fake_requests(&w), 6);

    free(a);
    free(b);
    free(body_a);
    free(body_b);
    free(body_c);
    free(body_fr);
    free(body_a_bob);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ 50 concurrent duplicates */

struct dup {
    const char *url, *body;
    pthread_barrier_t *bar;
    long status;
    char *resp;
    size_t len;
    CURLcode rc;
};

static size_t dup_write(char *p, size_t sz, size_t n, void *ud)
{
    struct dup *d = ud;
    char *nb = realloc(d->resp, d->len + sz * n + 1);
    if (!nb)
        abort();
    memcpy(nb + d->len, p, sz * n);
    d->len += sz * n;
    nb[d->len] = '\0';
    d->resp = nb;
    return sz * n;
}

static void *dup_main(void *arg)
{
    struct dup *d = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "user-id: " PL_USER);
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, d->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, d->body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dup_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, d);
    pthread_barrier_wait(d->bar);
    d->rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &d->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return NULL;
}

START_TEST(duplicates_50)
{
    struct pl_world w;
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, (const char *[]){ "HTTP_THREADS=8", NULL });
    pl_start_worker(&w, 0, NULL);
    pl_fake_default(&w, "{\"action\":\"ok\",\"delayMs\":1000}");

    char *body = pl_job_body("fifty", "German");
    const char *url = pl_url(w.gw_base, PL_FLASHCARDS);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, DUPLICATES);
    static struct dup d[DUPLICATES];
    pthread_t t[DUPLICATES];
    memset(d, 0, sizeof d);
    for (int i = 0; i < DUPLICATES; i++) {
        d[i] = (struct dup){ .url = url, .body = body, .bar = &bar };
        ck_assert_int_eq(pthread_create(&t[i], NULL, dup_main, &d[i]), 0);
    }
    for (int i = 0; i < DUPLICATES; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);

    char job[64] = "";
    int fresh = 0;
    for (int i = 0; i < DUPLICATES; i++) {
        ck_assert_msg(d[i].rc == CURLE_OK, "request %d: %s", i, curl_easy_strerror(d[i].rc));
        ck_assert_msg(d[i].status == 202, "request %d: %ld %s", i, d[i].status, d[i].resp);
        struct json_object *o = pl_parse(d[i].resp);
        if (!pl_jbool(o, "fromCache"))
            fresh++;
        if (!job[0])
            snprintf(job, sizeof job, "%s", pl_jstr(o, "jobId"));
        ck_assert_str_eq(pl_jstr(o, "jobId"), job);
        json_object_put(o);
        free(d[i].resp);
    }
    ck_assert_int_eq(fresh, 1);

    struct json_object *st = pl_wait_state(&w, job, "completed", 0);
    ck_assert_int_eq(pl_jint(st, "attemptsMade"), 1);
    json_object_put(st);
    ck_assert_int_eq(pl_qstat(&w, "total"), 1);
    ck_assert_int_eq(pl_fake_requests(&w), 1);
    ck_assert_int_eq(pl_history_count(&w, job, "completed"), 1);
    free(body);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ bad input */

static void expect_error2(struct pl_world *w, const char *path, const char *content_type, const char *body,
                          long want_status, const char *want_code, const char *alt_code, const char *want_error)
{
    char ct[128];
    snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
    const char *hdrs[] = { ct, "user-id: " PL_USER, NULL };
    struct fx_http_req req = { .method = "POST", .url = pl_url(w->gw_base, path), .headers = hdrs, .body = body };
    struct fx_http_resp r;
    ck_assert_int_eq(fx_http_do(&req, &r), 0);
    ck_assert_msg(r.status == want_status, "%s %.80s: %ld %s (want %ld %s)", path, body, r.status, r.body,
                  want_status, want_code);
    struct json_object *o = pl_parse(r.body);
    ck_assert(!pl_jbool(o, "success"));
    ck_assert_msg(!strcmp(pl_jstr(o, "code"), want_code) ||
                  (alt_code && !strcmp(pl_jstr(o, "code"), alt_code)),
                  "%s %.80s: code %s, want %s", path, body, pl_jstr(o, "code"), want_code);
    ck_assert_uint_gt(strlen(pl_jstr(o, "error")), 0);
    if (want_error)
        ck_assert_str_eq(pl_jstr(o, "error"), want_error);
    const char *cth = fx_http_header(&r, "Content-Type");
    ck_assert_msg(cth && strncmp(cth, "application/json", 16) == 0, "Content-Type %s", cth ? cth : "(none)");
    json_object_put(o);
    fx_http_resp_done(&r);
}

static void expect_error(struct pl_world *w, const char *path, const char *content_type, const char *body,
                         long want_status, const char *want_code, const char *want_error)
{
    expect_error2(w, path, content_type, body, want_status, want_code, NULL, want_error);
}

START_TEST(bad_input)
{
    struct pl_world w;
    pl_start_base(&w, "offline", false);
    /* no worker: whatever is queued stays in `waiting` where it can be counted */
    pl_start_gateway(&w, (const char *[]){ "MAX_CONTENT_CHARS=200", "MAX_BODY_BYTES=4096", NULL });
    static const char *const paths[] = { PL_FLASHCARDS, PL_LESSON };
    const char *json = "application/json";

    for (size_t i = 0; i < 2; i++) {
        const char *p = paths[i];
        expect_error(&w, p, json, "{\"content\":", 400, "INVALID_JSON", NULL);
        expect_error(&w, p, json, "{\"content\":\"a\",}", 400, "INVALID_JSON", NULL);
        expect_error(&w, p, json, "{\"content\":\"a\"} trailing", 400, "INVALID_JSON", NULL);
        expect_error(&w, p, json, "", 400, "INVALID_JSON", NULL);
        /* identity comes from the body here: no user-id header in these */
        {
            const char *hdrs[] = { "Content-Type: application/json", NULL };
            struct fx_http_req req = { .method = "POST", .url = pl_url(w.gw_base, p), .headers = hdrs, .body = "{}" };
            struct fx_http_resp r;
            ck_assert_int_eq(fx_http_do(&req, &r), 0);
            ck_assert_int_eq(r.status, 400);
            struct json_object *o = pl_parse(r.body);
            ck_assert_str_eq(pl_jstr(o, "code"), "VALIDATION_ERROR");
            ck_assert_str_eq(pl_jstr(o, "error"), "Missing required fields: content, subject, topic, userId");
            json_object_put(o);
            fx_http_resp_done(&r);
        }
        expect_error(&w, p, json, "{\"content\":\"Hund\",\"userId\":\"" PL_USER "\"}", 400, "VALIDATION_ERROR",
                     "Missing required fields: subject, topic");
        expect_error(&w, p, json, "{\"content\":\"\",\"subject\":\"s\",\"topic\":\"t\"}", 400, "VALIDATION_ERROR",
                     "Missing required fields: content");
        expect_error(&w, p, json, "{\"content\":42,\"subject\":\"s\",\"topic\":\"t\"}", 400, "VALIDATION_ERROR", NULL);
        expect_error(&w, p, json, "{\"content\":\"Hund\",\"subject\":[\"s\"],\"topic\":\"t\"}", 400,
                     "VALIDATION_ERROR", NULL);
        expect_error(&w, p, json, "{\"content\":\"Hund\",\"subject\":\"s\",\"topic\":\"t\",\"userId\":{\"id\":1}}", 400,
                     "VALIDATION_ERROR", NULL);
        expect_error(&w, p, json, "{\"content\":\"Hund\",\"subject\":\"s\",\"topic\":\"t\",\"targetLanguage\":7}", 400,
                     "VALIDATION_ERROR", NULL);
        /* valid JSON that is not an object: either code is honest */
        expect_error2(&w, p, json, "[\"content\",\"subject\"]", 400, "VALIDATION_ERROR", "INVALID_JSON", NULL);
        expect_error2(&w, p, json, "\"just a string\"", 400, "VALIDATION_ERROR", "INVALID_JSON", NULL);
        /* content over MAX_CONTENT_CHARS (characters, not bytes) */
        char big[600];
        memset(big, 'x', sizeof big);
        char *b = pl_fmt("{\"content\":\"%.*s\",\"subject\":\"s\",\"topic\":\"t\"}", 201, big);
        expect_error(&w, p, json, b, 400, "VALIDATION_ERROR", NULL);
        free(b);
        /* wrong Content-Type */
        expect_error(&w, p, "text/plain", "{\"content\":\"Hund\",\"subject\":\"s\",\"topic\":\"t\"}", 415,
                     "UNSUPPORTED_MEDIA_TYPE", NULL);
        expect_error(&w, p, "application/x-www-form-urlencoded", "content=Hund&subject=s&topic=t", 415,
                     "UNSUPPORTED_MEDIA_TYPE", NULL);
        /* body over MAX_BODY_BYTES */
        char *huge = malloc(8192);
        ck_assert_ptr_nonnull(huge);
        int n = snprintf(huge, 8192, "{\"content\":\"");
        memset(huge + n, 'y', 8192 - (size_t)n - 40);
        snprintf(huge + 8192 - 40, 40, "\",\"subject\":\"s\",\"topic\":\"t\"}");
        expect_error(&w, p, json, huge, 413, "PAYLOAD_TOO_LARGE", NULL);
        free(huge);
        /* a body userId that is not the caller */
        expect_error(&w, p, json, "{\"content\":\"Hund\",\"subject\":\"s\",\"topic\":\"t\",\"userId\":\"mallory\"}", 403,
                     "FORBIDDEN", NULL);
    }
    /* none of that queued anything */
    ck_assert_int_eq(pl_qstat(&w, "total"), 0);
    ck_assert_int_eq(pl_qstat(&w, "waiting"), 0);

    /* Limits are inclusive and count characters: 200 x "ä" (400 bytes) is fine;
     * unknown fields are ignored. */
    char *ok = malloc(1024);
    ck_assert_ptr_nonnull(ok);
    int n = snprintf(ok, 1024, "{\"content\":\"");
    for (int i = 0; i < 200; i++)
        n += snprintf(ok + n, 1024 - (size_t)n, "\xc3\xa4");
    snprintf(ok + n, 1024 - (size_t)n, "\",\"subject\":\"s\",\"topic\":\"t\",\"extra\":{\"deep\":[1,2,{\"x\":null}]},"
             "\"priority\":99}");
    for (size_t i = 0; i < 2; i++) {
        struct json_object *o;
        ck_assert_int_eq(pl_submit(&w, paths[i], ok, PL_USER, NULL, &o), 202);
        ck_assert(!pl_jbool(o, "fromCache"));
        json_object_put(o);
    }
    free(ok);
    ck_assert_int_eq(pl_qstat(&w, "waiting"), 2);
    ck_assert_int_eq(pl_qstat(&w, "total"), 2);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ job-status ownership */

static void expect_not_found(struct json_object *o, long st)
{
    ck_assert_int_eq(st, 404);
    ck_assert(!pl_jbool(o, "success"));
    ck_assert_str_eq(pl_jstr(o, "status"), "not_found");
    ck_assert_str_eq(pl_jstr(o, "error"), "Job not found");
    ck_assert_str_eq(pl_jstr(o, "code"), "NOT_FOUND");
}

START_TEST(status_owner_dev)
{
    struct pl_world w;
    long st;
    pl_start_base(&w, "offline", false);
    pl_start_gateway(&w, NULL);
    struct json_object *acc = pl_submit_new(&w, PL_FLASHCARDS, "owner");
    const char *id = pl_jstr(acc, "jobId");

    struct json_object *o = pl_status(&w, id, PL_USER, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(pl_jstr(o, "status"), "waiting");
    ck_assert_str_eq(pl_jstr(o, "type"), "generate-flashcards");
    ck_assert_str_eq(pl_jstr(o, "queue"), "ai-jobs");
    ck_assert_int_eq(pl_jint(o, "attemptsMade"), 0);
    ck_assert_int_eq(pl_jint(o, "progress"), 0);
    ck_assert_int_gt(pl_jint(o, "timestamp"), 0);
    ck_assert(!pl_jhas(o, "result"));
    json_object_put(o);

    o = pl_status(&w, id, "user-bob", &st);
    expect_not_found(o, st);
    json_object_put(o);
    o = pl_status(&w, "0123456789abcdef0123456789abcdef", PL_USER, &st);
    expect_not_found(o, st);
    json_object_put(o);
    o = pl_status(&w, "no-such-job", PL_USER, &st);
    expect_not_found(o, st);
    json_object_put(o);

    /* the stream of another user's job is a 404 as well */
    char *ev = pl_fmt("/api/job-events?jobId=%s", id);
    const char *hdrs[] = { "user-id: user-bob", NULL };
    o = pl_get_json(w.gw_base, ev, hdrs, &st);
    expect_not_found(o, st);
    json_object_put(o);
    free(ev);
    json_object_put(acc);
    pl_stop(&w);
}
END_TEST

START_TEST(status_owner_jwt)
{
    struct pl_world w;
    long st;
    char alice[1024], bob[1024], ah[1100], bh[1100];
    int64_t now = clock_now_ms() / 1000;
    ck_assert_int_gt(jwt_sign_hs256(PL_USER, "", now, now + 600, JWT_SECRET, strlen(JWT_SECRET), alice, sizeof alice), 0);
    ck_assert_int_gt(jwt_sign_hs256("user-bob", "", now, now + 600, JWT_SECRET, strlen(JWT_SECRET), bob, sizeof bob), 0);
    snprintf(ah, sizeof ah, "Authorization: Bearer %s", alice);
    snprintf(bh, sizeof bh, "Authorization: Bearer %s", bob);

    pl_start_base(&w, "offline", false);
    pl_start_gateway(&w, (const char *[]){ "AUTH_JWT_SECRET=" JWT_SECRET, NULL });
    pl_start_worker(&w, 0, NULL);

    /* identity from the token; no userId in the body */
    const char *hdrs_a[] = { ah, NULL };
    struct fx_http_resp r;
    ck_assert_int_eq(fx_http_post_json(pl_url(w.gw_base, PL_FLASHCARDS),
                                       "{\"content\":\"Der Vogel singt am Morgen.\",\"subject\":\"German\",\"topic\":\"Birds\"}",
                                       hdrs_a, &r), 0);
    ck_assert_msg(r.status == 202, "%ld %s", r.status, r.body);
    struct json_object *acc = pl_parse(r.body);
    fx_http_resp_done(&r);
    const char *id = pl_jstr(acc, "jobId");
    char path[128];
    snprintf(path, sizeof path, "/api/job-status/%s", id);

    /* the owner sees it complete */
    int64_t deadline = clock_mono_ms() + PL_JOB_MS;
    for (;;) {
        struct json_object *o = pl_get_json(w.gw_base, path, hdrs_a, &st);
        ck_assert_int_eq(st, 200);
        bool done = !strcmp(pl_jstr(o, "status"), "completed");
        json_object_put(o);
        if (done)
            break;
        ck_assert(clock_mono_ms() < deadline);
        clock_sleep_ms(PL_POLL_MS);
    }
    /* another user: 404, the contract body */
    const char *hdrs_b[] = { bh, NULL };
    struct json_object *o = pl_get_json(w.gw_base, path, hdrs_b, &st);
    expect_not_found(o, st);
    json_object_put(o);
    /* nobody: 401 */
    o = pl_get_json(w.gw_base, path, NULL, &st);
    ck_assert_int_eq(st, 401);
    ck_assert_str_eq(pl_jstr(o, "code"), "UNAUTHORIZED");
    json_object_put(o);
    /* the user-id header means nothing once JWTs are on */
    const char *hdrs_spoof[] = { "user-id: " PL_USER, NULL };
    o = pl_get_json(w.gw_base, path, hdrs_spoof, &st);
    ck_assert_int_eq(st, 401);
    json_object_put(o);

    /* the job's stream: its own token works; bob's JWT gets a 404 */
    struct pl_stream s;
    pl_sse_read(&w, pl_jstr(acc, "eventsUrl"), NULL, &s);
    pl_assert_stream(&s, id, "completed");
    pl_stream_done(&s);
    char *ev = pl_fmt("/api/job-events?jobId=%s&access_token=%s", id, bob);
    o = pl_get_json(w.gw_base, ev, NULL, &st);
    expect_not_found(o, st);
    json_object_put(o);
    free(ev);
    json_object_put(acc);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *pipeline_suite(void)
{
    Suite *s = suite_create("pipeline");
    struct { const char *name; const TTest *t; } tests[] = {
        { "happy_openai", happy_openai },
        { "happy_azure", happy_azure },
        { "happy_offline", happy_offline },
        { "sse_replay", sse_replay },
        { "idempotency", idempotency },
        { "duplicates_50", duplicates_50 },
        { "bad_input", bad_input },
        { "status_owner_dev", status_owner_dev },
        { "status_owner_jwt", status_owner_jwt },
    };
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        TCase *tc = tcase_create(tests[i].name);
        tcase_set_timeout(tc, 90);
        tcase_add_test(tc, tests[i].t);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    SRunner *sr = srunner_create(pipeline_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
