/*
 * The job pipeline when things go wrong, as a user sees it (job-status, the
 * SSE stream, queue stats) and as the provider sees it (the fake's request
 * counts and arrival times).  The real gateway, worker(s) and redis-server;
 * the fake provider injects the faults (check-pipeline.h builds the world).
 *
 *   retry_then_success    500, 500, ok: completed on attempt 3, two
 *                         `retrying`, one `completed`, no `failed`
 *   rate_limited          429 with Retry-After: the retry waits for it and
 *                         spends no attempt (more 429s than JOB_ATTEMPTS
 *                         still complete)
 *   permanent_failures    400, 401, malformed envelope, reply over
 *                         PROVIDER_MAX_REPLY_BYTES, truncated and non-JSON
 *                         content, insufficient_quota: failed at once with
 *                         its errorCode, one provider call, one `failed`
 *   transport_retried     a hung call (PROVIDER_TIMEOUT_MS) and a reset
 *                         connection are retried and complete
 *   worker_sigkill        kill -9 of the worker mid-call; a second worker
 *                         completes the job once, after the lease
 *   worker_stalled        a worker frozen (SIGSTOP) mid-call past its
 *                         lease: another completes the job; the frozen one's
 *                         late, different answer is refused when it thaws
 *   drain_finishes        SIGTERM: in-flight calls finish, exit 0, nothing
 *                         new is claimed
 *   drain_hands_back      SIGTERM with WORKER_DRAIN_SECONDS=1 and slow calls:
 *                         prompt exit, jobs back in waiting at once, a new
 *                         worker completes them
 *   redis_restart         redis-server (appendonly yes) restarted while jobs
 *                         wait and run: every job completes, once
 *
 * CK_RUN_CASE=<name> runs one case.
 */
#include <curl/curl.h>

#include "tests/integration/check-pipeline.h"

/* The stream of a job opened right after its 202 and read to its end. */
static void stream_of(struct pl_world *w, struct json_object *acc, struct pl_stream *s)
{
    pl_sse_read(w, pl_jstr(acc, "eventsUrl"), NULL, s);
}

/* The i-th event named `name` in s (borrowed), or NULL. */
static const struct pl_event *nth_event(const struct pl_stream *s, const char *name, size_t i)
{
    for (size_t k = 0; k < s->n; k++)
        if (strcmp(s->ev[k].name, name) == 0 && i-- == 0)
            return &s->ev[k];
    return NULL;
}

static long long arrival_us(struct json_object *stats, int i)
{
    char p[64];
    snprintf(p, sizeof p, "arrivals.%d.t_us", i);
    return pl_jint(stats, p);
}

/* ------------------------------------------------------------ retries */

START_TEST(retry_then_success)
{
    struct pl_world w;
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    pl_start_worker(&w, 0, (const char *[]){ "JOB_ATTEMPTS=3", "JOB_BACKOFF_MS=100", NULL });
    pl_fake_script(&w, "[{\"action\":\"status\",\"status\":500},{\"action\":\"status\",\"status\":503},"
                       "{\"action\":\"ok\"}]");
    struct json_object *acc = pl_submit_new(&w, PL_FLASHCARDS, "retry");
    const char *id = pl_jstr(acc, "jobId");

    struct pl_stream s;
    stream_of(&w, acc, &s);
    pl_assert_stream(&s, id, "completed");
    ck_assert_uint_eq(pl_count(&s, "retrying"), 2);
    ck_assert_uint_eq(pl_count(&s, "failed"), 0);
    ck_assert_uint_eq(pl_count(&s, "active"), 3);
    for (size_t i = 0; i < 2; i++) {
        const struct pl_event *r = nth_event(&s, "retrying", i);
        ck_assert_int_eq(pl_jint(r->data, "attemptsMade"), (long long)i + 1);
        pl_jstr(r->data, "nextAttemptAt");
        const char *err = pl_jstr(r->data, "error");
        ck_assert_msg(strstr(err, i == 0 ? "500" : "503"), "retrying error: %s", err);
        ck_assert_int_eq(pl_jint(nth_event(&s, "active", i + 1)->data, "attempt"), (long long)i + 2);
    }
    pl_stream_done(&s);

    struct json_object *st = pl_wait_state(&w, id, "completed", 0);
    ck_assert_int_eq(pl_jint(st, "attemptsMade"), 3);
    ck_assert_int_gt(pl_jlen(st, "result.flashcards"), 0);
    json_object_put(st);
    ck_assert_int_eq(pl_history_count(&w, id, "completed"), 1);
    ck_assert_int_eq(pl_history_count(&w, id, "failed"), 0);

    struct json_object *fs = pl_fake_stats(&w);
    ck_assert_int_eq(pl_jint(fs, "requests"), 3);
    ck_assert_int_eq(pl_jint(fs, "byStatus.500"), 1);
    ck_assert_int_eq(pl_jint(fs, "byStatus.503"), 1);
    ck_assert_int_eq(pl_jint(fs, "byStatus.200"), 1);
    json_object_put(fs);

    /* All attempts failing: one final `failed` after JOB_ATTEMPTS calls, no more. */
    pl_fake_script(&w, "[{\"action\":\"status\",\"status\":502,\"count\":3}]");
    struct json_object *acc2 = pl_submit_new(&w, PL_FLASHCARDS, "retry-exhausted");
    const char *id2 = pl_jstr(acc2, "jobId");
    stream_of(&w, acc2, &s);
    pl_assert_stream(&s, id2, "failed");
    ck_assert_uint_eq(pl_count(&s, "retrying"), 2);
    ck_assert_str_eq(pl_jstr(s.ev[s.n - 1].data, "code"), "PROVIDER_HTTP_502");
    ck_assert_int_eq(pl_jint(s.ev[s.n - 1].data, "attemptsMade"), 3);
    pl_stream_done(&s);
    st = pl_wait_state(&w, id2, "failed", 0);
    ck_assert_str_eq(pl_jstr(st, "errorCode"), "PROVIDER_HTTP_502");
    ck_assert_int_eq(pl_jint(st, "attemptsMade"), 3);
    json_object_put(st);
    ck_assert_int_eq(pl_fake_requests(&w), 6);

    json_object_put(acc);
    json_object_put(acc2);
    pl_stop(&w);
}
END_TEST

/* docs/queue.md: a provider 429 re-queues after its Retry-After without
 * spending an attempt (the claim's increment is undone; the next `active`
 * carries the same attempt number). */
START_TEST(rate_limited)
{
    struct pl_world w;
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    pl_start_worker(&w, 0, (const char *[]){ "JOB_ATTEMPTS=2", NULL });
    /* Retry-After: 1 (and retry-after-ms: 1000), then three short 429s (more
     * than JOB_ATTEMPTS), then ok. */
    pl_fake_script(&w, "[{\"action\":\"status\",\"status\":429,\"retryAfter\":1},"
                       "{\"action\":\"status\",\"status\":429,\"retryAfterMs\":100,\"count\":3},"
                       "{\"action\":\"ok\"}]");
    struct json_object *acc = pl_submit_new(&w, PL_LESSON, "ratelimit");
    const char *id = pl_jstr(acc, "jobId");

    struct pl_stream s;
    stream_of(&w, acc, &s);
    pl_assert_stream(&s, id, "completed");
    ck_assert_uint_eq(pl_count(&s, "retrying"), 4);
    ck_assert_uint_eq(pl_count(&s, "failed"), 0);
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(pl_jint(nth_event(&s, "retrying", i)->data, "attemptsMade"), 0);
        ck_assert_int_eq(pl_jint(nth_event(&s, "active", i + 1)->data, "attempt"), 1);
    }
    pl_stream_done(&s);

    struct json_object *st = pl_wait_state(&w, id, "completed", 0);
    ck_assert_int_eq(pl_jint(st, "attemptsMade"), 1);
    json_object_put(st);

    struct json_object *fs = pl_fake_stats(&w);
    ck_assert_int_eq(pl_jint(fs, "requests"), 5);
    ck_assert_int_eq(pl_jint(fs, "byStatus.429"), 4);
    long long gap = arrival_us(fs, 1) - arrival_us(fs, 0);
    ck_assert_msg(gap >= 950000, "second call %lld us after a 429 with Retry-After: 1", gap);
    gap = arrival_us(fs, 2) - arrival_us(fs, 1);
    ck_assert_msg(gap >= 90000, "third call %lld us after a 429 with retry-after-ms: 100", gap);
    json_object_put(fs);
    json_object_put(acc);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ permanent failures */

struct perm_case {
    const char *step;
    const char *code;
};

START_TEST(permanent_failures)
{
    static const struct perm_case cases[] = {
        { "{\"action\":\"status\",\"status\":400}", "PROVIDER_BAD_REQUEST" },
        { "{\"action\":\"status\",\"status\":401}", "PROVIDER_AUTH" },
        { "{\"action\":\"status\",\"status\":404}", "PROVIDER_NOT_FOUND" },
        { "{\"action\":\"malformed\"}", "REPLY_NOT_JSON" },
        { "{\"action\":\"huge\",\"bytes\":2097152}", "REPLY_TOO_LARGE" },
        { "{\"action\":\"truncated\"}", "REPLY_TRUNCATED" },
        { "{\"action\":\"bad_content\"}", "REPLY_CONTENT_NOT_JSON" },
        { "{\"action\":\"bad_content\",\"content\":\"{\\\"cards\\\":[]}\"}", "REPLY_MISSING_FIELDS" },
        /* last: it may trip the budget kill-switch for what follows */
        { "{\"action\":\"insufficient_quota\"}", "INSUFFICIENT_QUOTA" },
    };
    struct pl_world w;
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    pl_start_worker(&w, 0, (const char *[]){ "JOB_ATTEMPTS=3", "PROVIDER_MAX_REPLY_BYTES=65536", NULL });

    long long before = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char steps[512], tag[32];
        snprintf(steps, sizeof steps, "[%s]", cases[i].step);
        pl_fake_script(&w, steps);
        snprintf(tag, sizeof tag, "perm-%zu", i);
        struct json_object *acc = pl_submit_new(&w, i % 2 ? PL_LESSON : PL_FLASHCARDS, tag);
        const char *id = pl_jstr(acc, "jobId");

        struct pl_stream s;
        stream_of(&w, acc, &s);
        pl_assert_stream(&s, id, "failed");
        ck_assert_msg(pl_count(&s, "retrying") == 0, "%s was retried", cases[i].step);
        ck_assert_uint_eq(pl_count(&s, "active"), 1);
        struct json_object *fd = s.ev[s.n - 1].data;
        ck_assert_msg(!strcmp(pl_jstr(fd, "code"), cases[i].code), "%s: failed with %s, want %s", cases[i].step,
                      pl_jstr(fd, "code"), cases[i].code);
        ck_assert_int_eq(pl_jint(fd, "attemptsMade"), 1);
        ck_assert_uint_gt(strlen(pl_jstr(fd, "error")), 10);
        ck_assert_msg(!strstr(pl_jstr(fd, "error"), PL_FAKE_KEY), "the API key leaked into the error");
        pl_stream_done(&s);

        struct json_object *st = pl_wait_state(&w, id, "failed", 0);
        ck_assert_str_eq(pl_jstr(st, "errorCode"), cases[i].code);
        ck_assert_int_eq(pl_jint(st, "attemptsMade"), 1);
        ck_assert_int_ge(pl_jint(st, "failedAt"), pl_jint(st, "timestamp"));
        ck_assert(!pl_jhas(st, "result"));
        json_object_put(st);
        ck_assert_int_eq(pl_history_count(&w, id, "failed"), 1);

        long long now = pl_fake_requests(&w);
        ck_assert_msg(now - before == 1, "%s: the provider was called %lld times", cases[i].step, now - before);
        before = now;

        /* A failed job's request is not an idempotency hit: resubmitting it is a new job. */
        if (i == 0) {
            char *body = pl_job_body(tag, NULL);
            struct json_object *o;
            pl_fake_script(&w, "[{\"action\":\"ok\"}]");
            ck_assert_int_eq(pl_submit(&w, PL_FLASHCARDS, body, PL_USER, NULL, &o), 202);
            ck_assert(!pl_jbool(o, "fromCache"));
            ck_assert_str_ne(pl_jstr(o, "jobId"), id);
            json_object_put(pl_wait_state(&w, pl_jstr(o, "jobId"), "completed", 0));
            json_object_put(o);
            free(body);
            before = pl_fake_requests(&w);
        }
        json_object_put(acc);
    }
    ck_assert_int_eq(pl_qstat(&w, "failed"), (long long)(sizeof cases / sizeof cases[0]));
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ transport faults */

START_TEST(transport_retried)
{
    struct pl_world w;
    pl_start_base(&w, "azure", false);
    pl_start_gateway(&w, NULL);
    pl_start_worker(&w, 0, (const char *[]){ "PROVIDER_TIMEOUT_MS=500", "JOB_ATTEMPTS=3", NULL });

    /* A connection reset mid-call is retried.  First, while the worker has
     * no open connection to the provider: libcurl silently re-sends a
     * request once when a *reused* connection dies before any answer, and
     * the job layer would not see that fault. */
    pl_fake_script(&w, "[{\"action\":\"reset\"},{\"action\":\"ok\"}]");
    struct json_object *acc = pl_submit_new(&w, PL_LESSON, "reset");
    const char *id = pl_jstr(acc, "jobId");
    struct pl_stream s;
    stream_of(&w, acc, &s);
    pl_assert_stream(&s, id, "completed");
    ck_assert_uint_eq(pl_count(&s, "retrying"), 1);
    pl_stream_done(&s);
    struct json_object *st = pl_wait_state(&w, id, "completed", 0);
    ck_assert_int_eq(pl_jint(st, "attemptsMade"), 2);
    json_object_put(st);
    json_object_put(acc);
    struct json_object *fs = pl_fake_stats(&w);
    ck_assert_int_eq(pl_jint(fs, "requests"), 2);
    ck_assert_int_eq(pl_jint(fs, "resets"), 1);
    json_object_put(fs);

    /* a call that never answers: the worker gives up at PROVIDER_TIMEOUT_MS and retries */
    pl_fake_script(&w, "[{\"action\":\"hang\"},{\"action\":\"ok\"}]");
    acc = pl_submit_new(&w, PL_FLASHCARDS, "hang");
    id = pl_jstr(acc, "jobId");
    stream_of(&w, acc, &s);
    pl_assert_stream(&s, id, "completed");
    ck_assert_uint_eq(pl_count(&s, "retrying"), 1);
    ck_assert_msg(strstr(pl_jstr(nth_event(&s, "retrying", 0)->data, "error"), "in time"), "error: %s",
                  pl_jstr(nth_event(&s, "retrying", 0)->data, "error"));
    pl_stream_done(&s);
    st = pl_wait_state(&w, id, "completed", 0);
    ck_assert_int_eq(pl_jint(st, "attemptsMade"), 2);
    json_object_put(st);
    json_object_put(acc);
    fs = pl_fake_stats(&w);
    ck_assert_int_eq(pl_jint(fs, "requests"), 4);
    ck_assert_str_eq(pl_jstr(fs, "arrivals.2.outcome"), "client_closed");
    json_object_put(fs);

    ck_assert_int_eq(pl_fake_requests(&w), 4);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ dying workers */

START_TEST(worker_sigkill)
{
    struct pl_world w;
    const char *const wenv[] = { "JOB_LEASE_MS=2000", NULL };
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    pl_start_worker(&w, 0, wenv);
    pl_fake_script(&w, "[{\"action\":\"ok\",\"delayMs\":3000}]");
    struct json_object *acc = pl_submit_new(&w, PL_FLASHCARDS, "sigkill");
    const char *id = pl_jstr(acc, "jobId");

    pl_fake_wait_inflight(&w, 1, 10000);
    ck_assert_int_eq(fx_proc_signal(&w.wk[0], SIGKILL), 0);
    ck_assert_int_eq(fx_proc_wait_exit(&w.wk[0], 5000), 128 + SIGKILL);
    fx_proc_done(&w.wk[0]);

    /* the job is still leased to the dead worker; a new worker takes it once the lease runs out */
    pl_start_worker(&w, 1, wenv);
    struct json_object *st = pl_wait_state(&w, id, "completed", 20000);
    ck_assert_int_eq(pl_jint(st, "attemptsMade"), 2);
    json_object_put(st);

    struct pl_stream s;
    stream_of(&w, acc, &s);
    pl_assert_stream(&s, id, "completed");
    ck_assert_uint_eq(pl_count(&s, "completed"), 1);
    ck_assert_uint_eq(pl_count(&s, "active"), 2);
    ck_assert_uint_eq(pl_count(&s, "retrying"), 1);
    ck_assert_msg(strstr(pl_jstr(nth_event(&s, "retrying", 0)->data, "error"), "lease"), "retrying: %s",
                  pl_jstr(nth_event(&s, "retrying", 0)->data, "error"));
    pl_stream_done(&s);
    ck_assert_int_eq(pl_history_count(&w, id, "completed"), 1);
    ck_assert_int_eq(pl_qstat(&w, "completed"), 1);
    ck_assert_int_eq(pl_qstat(&w, "active"), 0);
    ck_assert_int_eq(pl_fake_requests(&w), 2);

    long hst;
    struct json_object *h = pl_get_json(w.wk_base[1], "/health", NULL, &hst);
    ck_assert_int_eq(pl_jint(h, "stats.succeeded"), 1);
    json_object_put(h);
    json_object_put(acc);
    pl_stop(&w);
}
END_TEST

/* A worker frozen past its lease loses the job to another.  It thaws while
 * the new holder's call is still running: its late answer (different from
 * the winner's) must be refused then, and again never written after. */
START_TEST(worker_stalled)
{
    struct pl_world w;
    const char *const wenv[] = { "JOB_LEASE_MS=1000", NULL };
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    pl_start_worker(&w, 0, wenv);
    pl_fake_script(&w, "[{\"action\":\"bad_content\",\"delayMs\":1500,\"content\":"
                       "\"{\\\"flashcards\\\":[{\\\"front\\\":\\\"STALE-ANSWER\\\",\\\"back\\\":\\\"late\\\","
                       "\\\"topic\\\":\\\"x\\\",\\\"difficulty\\\":\\\"beginner\\\",\\\"example\\\":\\\"e\\\"}]}\"},"
                       "{\"action\":\"ok\",\"delayMs\":4000}]");
    struct json_object *acc = pl_submit_new(&w, PL_FLASHCARDS, "stalled");
    const char *id = pl_jstr(acc, "jobId");

    pl_fake_wait_inflight(&w, 1, 10000);
    ck_assert_int_eq(fx_proc_signal(&w.wk[0], SIGSTOP), 0);
    pl_start_worker(&w, 1, wenv);

    /* Wait until the new worker's call has arrived (the lease ran out) and
     * the fake has answered the frozen worker's call (its socket holds the
     * stale answer). */
    int64_t deadline = clock_mono_ms() + 10000;
    for (;;) {
        struct json_object *fs = pl_fake_stats(&w);
        bool ready = pl_jint(fs, "requests") >= 2 &&
                     json_object_is_type(pl_jp(fs, "arrivals.0.status"), json_type_int);
        json_object_put(fs);
        if (ready)
            break;
        ck_assert_msg(clock_mono_ms() < deadline, "the second worker never called the provider");
        clock_sleep_ms(PL_POLL_MS);
    }
    /* Thaw it while the job is active under the new worker's attempt. */
    ck_assert_int_eq(fx_proc_signal(&w.wk[0], SIGCONT), 0);
    deadline = clock_mono_ms() + 10000;
    for (;;) {
        long hst;
        struct json_object *h = pl_get_json(w.wk_base[0], "/health", NULL, &hst);
        long long cur = pl_jint(h, "stats.currentlyProcessing");
        json_object_put(h);
        if (cur == 0)
            break;
        ck_assert_msg(clock_mono_ms() < deadline, "the thawed worker still holds the job");
        clock_sleep_ms(PL_POLL_MS);
    }
    long sst;
    struct json_object *st = pl_status(&w, id, PL_USER, &sst);
    ck_assert_msg(!strcmp(pl_jstr(st, "status"), "active"), "after the stale report: %s",
                  json_object_to_json_string(st));
    ck_assert_int_eq(pl_jint(st, "attemptsMade"), 2);
    json_object_put(st);

    st = pl_wait_state(&w, id, "completed", 20000);
    const char *result = json_object_to_json_string(pl_jp(st, "result"));
    ck_assert_msg(!strstr(result, "STALE-ANSWER"), "the frozen worker's answer was written: %s", result);
    json_object_put(st);
    ck_assert_int_eq(pl_history_count(&w, id, "completed"), 1);
    struct pl_stream s;
    stream_of(&w, acc, &s);
    pl_assert_stream(&s, id, "completed");
    ck_assert(!strstr(json_object_to_json_string(s.ev[s.n - 1].data), "STALE-ANSWER"));
    pl_stream_done(&s);
    ck_assert_int_eq(pl_qstat(&w, "completed"), 1);
    long hst;
    struct json_object *h = pl_get_json(w.wk_base[0], "/health", NULL, &hst);
    ck_assert_int_eq(pl_jint(h, "stats.succeeded"), 0);
    json_object_put(h);
    json_object_put(acc);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ SIGTERM drain */

START_TEST(drain_finishes)
{
    struct pl_world w;
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    pl_start_worker(&w, 0, (const char *[]){ "QUEUE_CONCURRENCY=5", "WORKER_DRAIN_SECONDS=20", NULL });
    pl_fake_default(&w, "{\"action\":\"ok\",\"delayMs\":2000}");
    struct json_object *acc[3];
    for (int i = 0; i < 3; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "drain-%d", i);
        acc[i] = pl_submit_new(&w, PL_FLASHCARDS, tag);
    }
    pl_fake_wait_inflight(&w, 3, 10000);
    ck_assert_int_eq(fx_proc_signal(&w.wk[0], SIGTERM), 0);

    /* draining: not ready any more, and nothing new is claimed */
    long st;
    int64_t deadline = clock_mono_ms() + 5000;
    for (;;) {
        struct json_object *o = pl_get_json(w.wk_base[0], "/ready", NULL, &st);
        json_object_put(o);
        if (st == 503)
            break;
        ck_assert_msg(clock_mono_ms() < deadline, "/ready still %ld while draining", st);
        clock_sleep_ms(PL_POLL_MS);
    }
    struct json_object *late = pl_submit_new(&w, PL_FLASHCARDS, "drain-late");

    ck_assert_int_eq(fx_proc_wait_exit(&w.wk[0], 15000), 0);
    pl_assert_log_clean(&w.wk[0]);
    for (int i = 0; i < 3; i++) {
        struct json_object *o = pl_status(&w, pl_jstr(acc[i], "jobId"), PL_USER, &st);
        ck_assert_str_eq(pl_jstr(o, "status"), "completed");
        ck_assert_int_eq(pl_jint(o, "attemptsMade"), 1);
        json_object_put(o);
        json_object_put(acc[i]);
    }
    struct json_object *o = pl_status(&w, pl_jstr(late, "jobId"), PL_USER, &st);
    ck_assert_str_eq(pl_jstr(o, "status"), "waiting");
    ck_assert_int_eq(pl_jint(o, "attemptsMade"), 0);
    json_object_put(o);
    json_object_put(late);
    ck_assert_int_eq(pl_fake_requests(&w), 3);
    pl_stop(&w);
}
END_TEST

START_TEST(drain_hands_back)
{
    struct pl_world w;
    pl_start_base(&w, "openai", false);
    pl_start_gateway(&w, NULL);
    /* the default lease (30 s here) would be what a job waits if it were not handed back */
    const char *const wenv[] = { "WORKER_DRAIN_SECONDS=1", "JOB_LEASE_MS=30000", NULL };
    pl_start_worker(&w, 0, wenv);
    pl_fake_default(&w, "{\"action\":\"ok\",\"delayMs\":10000}");
    const char *ids[2];
    struct json_object *acc[2];
    for (int i = 0; i < 2; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "back-%d", i);
        acc[i] = pl_submit_new(&w, i ? PL_LESSON : PL_FLASHCARDS, tag);
        ids[i] = pl_jstr(acc[i], "jobId");
    }
    pl_fake_wait_inflight(&w, 2, 10000);
    for (int i = 0; i < 2; i++)
        json_object_put(pl_wait_state(&w, ids[i], "active", 0));

    int64_t t0 = clock_mono_ms();
    ck_assert_int_eq(fx_proc_signal(&w.wk[0], SIGTERM), 0);
    ck_assert_int_eq(fx_proc_wait_exit(&w.wk[0], 15000), 0);
    int64_t took = clock_mono_ms() - t0;
    ck_assert_msg(took < 8000, "the worker took %lld ms to exit with WORKER_DRAIN_SECONDS=1", (long long)took);
    pl_assert_log_clean(&w.wk[0]);

    /* at once: back in waiting, the attempt not spent */
    long st;
    for (int i = 0; i < 2; i++) {
        struct json_object *o = pl_status(&w, ids[i], PL_USER, &st);
        ck_assert_str_eq(pl_jstr(o, "status"), "waiting");
        ck_assert_int_eq(pl_jint(o, "attemptsMade"), 0);
        json_object_put(o);
    }
    ck_assert_int_eq(pl_qstat(&w, "waiting"), 2);
    ck_assert_int_eq(pl_qstat(&w, "active"), 0);

    pl_fake_default(&w, "{\"action\":\"ok\"}");
    pl_start_worker(&w, 1, wenv);
    for (int i = 0; i < 2; i++) {
        struct json_object *o = pl_wait_state(&w, ids[i], "completed", 0);
        ck_assert_int_eq(pl_jint(o, "attemptsMade"), 1);
        json_object_put(o);
        struct pl_stream s;
        stream_of(&w, acc[i], &s);
        pl_assert_stream(&s, ids[i], "completed");
        ck_assert_uint_eq(pl_count(&s, "active"), 2);
        ck_assert_uint_eq(pl_count(&s, "retrying"), 0);
        ck_assert_int_eq(pl_jint(nth_event(&s, "active", 1)->data, "attempt"), 1);
        pl_stream_done(&s);
        json_object_put(acc[i]);
    }
    ck_assert_int_eq(pl_fake_requests(&w), 4);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ Redis restart */

#define RESTART_BEFORE 20
#define RESTART_AFTER  10

/* Poll job-status until completed.  A 503 is tolerated while Redis is
 * coming back (it answers LOADING while it replays its append-only file);
 * connections that Redis closed are noticed before the next command
 * (redisx checks the socket) and reconnected at once.  The test checks
 * below that the 503s end. */
static void wait_completed_through_503(struct pl_world *w, const char *id, int timeout_ms)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        long st;
        struct json_object *o = pl_status(w, id, PL_USER, &st);
        ck_assert_msg(st == 200 || st == 503, "job-status %s: %ld %s", id, st, json_object_to_json_string(o));
        const char *s = st == 200 ? pl_jstr(o, "status") : "";
        bool done = !strcmp(s, "completed");
        ck_assert_msg(strcmp(s, "failed") != 0, "job %s failed: %s", id, json_object_to_json_string(o));
        json_object_put(o);
        if (done)
            return;
        ck_assert_msg(clock_mono_ms() < deadline, "job %s not completed", id);
        clock_sleep_ms(PL_POLL_MS);
    }
}

START_TEST(redis_restart)
{
    struct pl_world w;
    char *ids[RESTART_BEFORE + RESTART_AFTER];
    pl_start_base(&w, "openai", true);
    pl_start_gateway(&w, NULL);
    pl_start_worker(&w, 0, (const char *[]){ "QUEUE_CONCURRENCY=4", "JOB_LEASE_MS=3000", NULL });
    pl_fake_default(&w, "{\"action\":\"ok\",\"delayMs\":300}");
    for (int i = 0; i < RESTART_BEFORE; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "rr-%d", i);
        struct json_object *acc = pl_submit_new(&w, i % 3 ? PL_FLASHCARDS : PL_LESSON, tag);
        ids[i] = strdup(pl_jstr(acc, "jobId"));
        json_object_put(acc);
    }
    /* some jobs done, some running, most waiting */
    pl_fake_wait_inflight(&w, 1, 10000);
    ck_assert_int_gt(pl_qstat(&w, "waiting"), 0);

    ck_assert_int_eq(fx_redis_restart(&w.rs), 0);

    /* the gateway takes submissions again (a 503 while it reconnects is honest) */
    for (int i = RESTART_BEFORE; i < RESTART_BEFORE + RESTART_AFTER; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "rr-%d", i);
        char *body = pl_job_body(tag, NULL);
        int64_t deadline = clock_mono_ms() + 10000;
        for (;;) {
            struct json_object *o;
            long st = pl_submit(&w, PL_FLASHCARDS, body, PL_USER, NULL, &o);
            if (st == 202) {
                ids[i] = strdup(pl_jstr(o, "jobId"));
                json_object_put(o);
                break;
            }
            ck_assert_msg(st == 503 && clock_mono_ms() < deadline, "submit after the restart: %ld %s", st,
                          json_object_to_json_string(o));
            json_object_put(o);
            clock_sleep_ms(50);
        }
        free(body);
    }

    for (int i = 0; i < RESTART_BEFORE + RESTART_AFTER; i++) {
        wait_completed_through_503(&w, ids[i], 45000);
        ck_assert_int_eq(pl_history_count(&w, ids[i], "completed"), 1);
    }
    /* recovered: every pool thread answers again (HTTP_THREADS=4) */
    for (int i = 0; i < 16; i++) {
        long st;
        struct json_object *o = pl_status(&w, ids[i % RESTART_BEFORE], PL_USER, &st);
        ck_assert_msg(st == 200, "job-status after recovery: %ld %s", st, json_object_to_json_string(o));
        json_object_put(o);
    }
    for (int i = 0; i < RESTART_BEFORE + RESTART_AFTER; i++)
        free(ids[i]);
    ck_assert_int_eq(pl_qstat(&w, "waiting"), 0);
    ck_assert_int_eq(pl_qstat(&w, "active"), 0);
    ck_assert_int_eq(pl_qstat(&w, "failed"), 0);
    ck_assert_int_eq(pl_qstat(&w, "completed"), RESTART_BEFORE + RESTART_AFTER);
    pl_stop(&w);
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *faults_suite(void)
{
    Suite *s = suite_create("pipeline-faults");
    struct { const char *name; const TTest *t; } tests[] = {
        { "retry_then_success", retry_then_success },
        { "rate_limited", rate_limited },
        { "permanent_failures", permanent_failures },
        { "transport_retried", transport_retried },
        { "worker_sigkill", worker_sigkill },
        { "worker_stalled", worker_stalled },
        { "drain_finishes", drain_finishes },
        { "drain_hands_back", drain_hands_back },
        { "redis_restart", redis_restart },
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
    SRunner *sr = srunner_create(faults_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
