/*
 * The job queue (common/queue.h, common/lua/) against a real redis-server:
 * what a client of the gateway and a worker can observe.  Every test starts
 * its own redis-server (tests/support/fixture.h), so no state leaks between
 * tests.  Events are checked twice: in the stored history and as published
 * on a subscriber connection; a sentinel message published after the last
 * action proves that nothing else was published in between.
 * Waits poll a condition (queue_wait blocks on the queue's own wake-ups, or
 * Redis TIME is polled) against a deadline; nothing sleeps for readiness.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/clock.h"
#include "common/job.h"
#include "common/jsonx.h"
#include "common/queue.h"
#include "common/redisx.h"
#include "tests/support/fixture.h"

extern const char lua_common[];

#define P QUEUE_KEY_PREFIX
#define WAIT_MS 10000          /* longest wait for anything in these tests */

/* ------------------------------------------------------------ helpers */

struct qenv {
    struct fx_redis rs;
    struct redisx *rx;
    struct queue *q;
    struct queue_limits lim;
    redisContext *c;            /* plain connection for assertions */
};

static struct queue_limits default_limits(void)
{
    return (struct queue_limits){
        .max_attempts = 3, .backoff_ms = 20, .lease_ms = 30000, .deadline_ms = 600000,
        .ttl_s = 86400, .events_max = 200, .max_waiting = 10000, .heartbeat_ms = 1000,
    };
}

static struct redisx *connect_rx(int port)
{
    struct redis_target t = {
        .host = "127.0.0.1", .port = port, .connect_timeout_ms = 2000,
        .command_timeout_ms = 5000, .retry_max_ms = 200,
    };
    struct redisx *rx = redisx_new(&t);

    ck_assert_ptr_nonnull(rx);
    return rx;
}

static void env_start_ex(struct qenv *e, const struct queue_limits *lim, bool aof)
{
    memset(e, 0, sizeof(*e));
    ck_assert_int_eq(fx_redis_start(&e->rs, aof), 0);
    e->lim = lim ? *lim : default_limits();
    e->rx = connect_rx(e->rs.port);
    e->q = queue_new(e->rx, &e->lim);
    ck_assert_ptr_nonnull(e->q);
    e->c = fx_redis_connect(&e->rs);
    ck_assert_ptr_nonnull(e->c);
}

static void env_start(struct qenv *e, const struct queue_limits *lim)
{
    env_start_ex(e, lim, false);
}

static void env_done(struct qenv *e)
{
    queue_free(e->q);
    redisx_free(e->rx);
    if (e->c)
        redisFree(e->c);
    fx_redis_done(&e->rs);
}

static redisReply *cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "redis command failed: %s", c->errstr);
    return r;
}

static long long cmd_ll(redisContext *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->type == REDIS_REPLY_INTEGER, "not an integer reply (type %d)", r->type);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* String reply as a heap copy, NULL for nil. */
static char *cmd_str(redisContext *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(r);
    char *s = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return s;
}

static int64_t redis_now_ms(redisContext *c)
{
    redisReply *r = cmd(c, "TIME");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    int64_t ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    return ms;
}

/* Poll Redis TIME until it passes t (ms). */
static void wait_redis_time_past(redisContext *c, int64_t t)
{
    int64_t end = clock_mono_ms() + WAIT_MS;

    while (redis_now_ms(c) <= t) {
        ck_assert_msg(clock_mono_ms() < end, "Redis time never passed %lld", (long long)t);
        poll(NULL, 0, 5);
    }
}

static struct job_params params(const char *content, const char *target)
{
    return (struct job_params){
        .type = JOB_TYPE_FLASHCARDS, .content = (char *)content, .subject = (char *)"Spanish",
        .topic = (char *)"Food", .native_language = (char *)"English",
        .target_language = (char *)target,
    };
}

static void enqueue_ok(struct qenv *e, const char *user, const char *content, const char *key,
                       struct queue_enqueue_result *res)
{
    struct job_params p = params(content, "Spanish");
    int r = queue_enqueue(e->q, user, &p, key, res);

    ck_assert_msg(r == 0, "queue_enqueue: %d (%s)", r, queue_last_error(e->q));
}

/* Claim one job, waiting (queue_wait) up to WAIT_MS for one to be handed out. */
static void claim_wait(struct queue *q, unsigned flags, struct queue_job *j)
{
    int64_t end = clock_mono_ms() + WAIT_MS;

    for (;;) {
        int n = queue_claim(q, 1, flags, j);

        ck_assert_int_ge(n, 0);
        if (n == 1)
            return;
        ck_assert_msg(clock_mono_ms() < end, "no job handed out within %d ms", WAIT_MS);
        ck_assert_int_ge(queue_wait(q, 200), 0);
    }
}

static void claim_now(struct queue *q, struct queue_job *j)
{
    ck_assert_int_eq(queue_claim(q, 1, 0, j), 1);
}

static void get_ok(struct qenv *e, const char *id, struct job_record *rec)
{
    ck_assert_int_eq(queue_get(e->q, id, rec), 0);
}

/* Names of the stored events of a job, "a,b,c", with seq checked to be 1..n. */
static void history(struct qenv *e, const char *id, char *out, size_t cap)
{
    struct job_event_list l;

    ck_assert_int_eq(queue_events_since(e->q, id, 0, &l), 0);
    out[0] = '\0';
    for (size_t i = 0; i < l.n; i++) {
        ck_assert_int_eq(l.v[i].seq, (long long)i + 1);
        ck_assert_str_eq(l.v[i].job_id, id);
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? "," : "", l.v[i].name);
    }
    job_event_list_done(&l);
}

/* The data object of the stored event with this seq (caller puts it). */
static struct json_object *event_data(struct qenv *e, const char *id, long long seq)
{
    struct job_event_list l;
    struct json_object *o = NULL;

    ck_assert_int_eq(queue_events_since(e->q, id, seq - 1, &l), 0);
    ck_assert_uint_ge(l.n, 1);
    ck_assert_int_eq(l.v[0].seq, seq);
    ck_assert_ptr_null(strchr(l.v[0].data_json, '\n'));
    ck_assert_int_eq(jsonx_parse(l.v[0].data_json, strlen(l.v[0].data_json), 32, &o, NULL), 0);
    job_event_list_done(&l);
    return o;
}

static const char *jstr(struct json_object *o, const char *k)
{
    const char *s = NULL;

    ck_assert_msg(jsonx_get_str(o, k, &s) == 0, "no string member %s", k);
    return s;
}

static int64_t jint(struct json_object *o, const char *k)
{
    int64_t v = 0;

    ck_assert_msg(jsonx_get_int(o, k, &v) == 0, "no integer member %s", k);
    return v;
}

static bool is_iso_ms(const char *s)
{
    int y, mo, d, h, mi, se, ms;
    char z;

    return strlen(s) == 24 &&
           sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &se, &ms, &z) == 8 &&
           z == 'Z';
}

/* ---- subscriber */

struct sub {
    redisContext *c;
    char job_names[64][16];     /* events seen on the job channel, in order */
    long long job_seqs[64];
    int njob;
    char user_names[64][16];
    int nuser;
};

static void sub_open(struct qenv *e, struct sub *s, const char *job_id, const char *user)
{
    memset(s, 0, sizeof(*s));
    s->c = fx_redis_connect(&e->rs);
    ck_assert_ptr_nonnull(s->c);
    redisReply *r = cmd(s->c, "SUBSCRIBE " QUEUE_CHANNEL_JOB_PREFIX "%s " QUEUE_CHANNEL_USER_PREFIX "%s",
                        job_id, user);
    freeReplyObject(r);
    void *v;
    ck_assert_int_eq(redisGetReply(s->c, &v), REDIS_OK);   /* second confirmation */
    freeReplyObject(v);
}

/* Publish a sentinel on the user channel, then read everything published
 * before it, decoding each event. */
static void sub_drain(struct qenv *e, struct sub *s, const char *user)
{
    freeReplyObject(cmd(e->c, "PUBLISH " QUEUE_CHANNEL_USER_PREFIX "%s END", user));
    for (;;) {
        void *v;
        ck_assert_msg(redisGetReply(s->c, &v) == REDIS_OK, "subscriber: %s", s->c->errstr);
        redisReply *m = v;
        ck_assert_int_eq(m->type, REDIS_REPLY_ARRAY);
        ck_assert_int_eq(m->elements, 3);
        const char *ch = m->element[1]->str, *payload = m->element[2]->str;
        if (strcmp(payload, "END") == 0) {
            freeReplyObject(m);
            return;
        }
        struct job_event ev;
        ck_assert_int_eq(job_event_decode(payload, m->element[2]->len, &ev), 0);
        ck_assert_str_eq(ev.user_id, user);
        if (strncmp(ch, QUEUE_CHANNEL_JOB_PREFIX, strlen(QUEUE_CHANNEL_JOB_PREFIX)) == 0) {
            ck_assert_str_eq(ch + strlen(QUEUE_CHANNEL_JOB_PREFIX), ev.job_id);
            ck_assert_int_lt(s->njob, 64);
            snprintf(s->job_names[s->njob], 16, "%s", ev.name);
            s->job_seqs[s->njob++] = ev.seq;
        } else {
            ck_assert_int_lt(s->nuser, 64);
            snprintf(s->user_names[s->nuser++], 16, "%s", ev.name);
        }
        job_event_done(&ev);
        freeReplyObject(m);
    }
}

static void sub_names(const struct sub *s, bool user, char *out, size_t cap)
{
    int n = user ? s->nuser : s->njob;

    out[0] = '\0';
    for (int i = 0; i < n; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? "," : "",
                 user ? s->user_names[i] : s->job_names[i]);
}

static void sub_close(struct sub *s)
{
    if (s->c)
        redisFree(s->c);
    s->c = NULL;
}

/* ------------------------------------------------------------ records (no server) */

START_TEST(lua_iso8601_matches_gmtime)
{
    struct fx_redis rs;
    ck_assert_int_eq(fx_redis_start(&rs, false), 0);
    redisContext *c = fx_redis_connect(&rs);
    ck_assert_ptr_nonnull(c);
    size_t n = strlen(lua_common);
    char *src = malloc(n + 64);
    memcpy(src, lua_common, n);
    strcpy(src + n, "return iso(tonumber(ARGV[1]))");
    const long long probes[] = {
        0, 999, 86399999, 951782400000LL /* 2000-02-29 */, 951868799999LL, 978307199999LL,
        1709164800123LL /* 2024-02-29 */, 4102444799999LL, 4107542400000LL /* 2100-03-01 */,
        253402300799999LL /* 9999-12-31 */,
    };
    unsigned seed = 12345;
    for (int i = 0; i < 10 + 2000; i++) {
        long long ms = i < 10 ? probes[i] : (long long)(rand_r(&seed) % 4102444800LL) * 1000 + rand_r(&seed) % 1000;
        char arg[32], want[96];
        snprintf(arg, sizeof(arg), "%lld", ms);
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03lldZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
        redisReply *r = cmd(c, "EVAL %s 1 %s %s", src, P "x", arg);
        ck_assert_msg(r->type == REDIS_REPLY_STRING, "EVAL: %s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
        ck_assert_str_eq(r->str, want);
        freeReplyObject(r);
    }
    free(src);
    redisFree(c);
    fx_redis_done(&rs);
}
END_TEST

START_TEST(event_records_encode_and_decode_defensively)
{
    struct job_event e = { .seq = 7, .name = "progress", .job_id = "j1", .user_id = "u/1",
                           .data_json = (char *)"{ \"jobId\": \"j1\", \"progress\": 50 }" };
    char *text;
    size_t len;
    ck_assert_int_eq(job_event_encode(&e, &text, &len), 0);
    ck_assert_str_eq(text, "{\"seq\":7,\"event\":\"progress\",\"jobId\":\"j1\",\"userId\":\"u/1\","
                           "\"data\":{\"jobId\":\"j1\",\"progress\":50}}");
    struct job_event d;
    ck_assert_int_eq(job_event_decode(text, len, &d), 0);
    ck_assert_int_eq(d.seq, 7);
    ck_assert_str_eq(d.name, "progress");
    ck_assert_str_eq(d.user_id, "u/1");
    ck_assert_str_eq(d.data_json, "{\"jobId\":\"j1\",\"progress\":50}");
    ck_assert(!job_event_is_final(&d));
    job_event_done(&d);
    free(text);

    /* What the Lua side writes (cjson escapes '/') decodes to one line. */
    const char *lua = "{\"seq\":2,\"event\":\"failed\",\"jobId\":\"a\",\"userId\":\"b\",\"data\":"
                      "{\"error\":\"x \\/ y\\nz\",\"code\":\"E\"}}";
    ck_assert_int_eq(job_event_decode(lua, strlen(lua), &d), 0);
    ck_assert(job_event_is_final(&d));
    ck_assert_str_eq(d.data_json, "{\"error\":\"x / y\\nz\",\"code\":\"E\"}");
    job_event_done(&d);

    const char *bad[] = {
        "", "null", "[]", "{\"seq\":1}", "not json",
        "{\"seq\":0,\"event\":\"active\",\"jobId\":\"a\",\"userId\":\"b\",\"data\":{}}",
        "{\"seq\":\"1\",\"event\":\"active\",\"jobId\":\"a\",\"userId\":\"b\",\"data\":{}}",
        "{\"seq\":1,\"event\":\"exploded\",\"jobId\":\"a\",\"userId\":\"b\",\"data\":{}}",
        "{\"seq\":1,\"event\":\"active\",\"jobId\":\"\",\"userId\":\"b\",\"data\":{}}",
        "{\"seq\":1,\"event\":\"active\",\"jobId\":\"a\",\"userId\":\"b\",\"data\":[]}",
        "{\"seq\":1,\"event\":\"active\",\"jobId\":\"a\",\"userId\":\"b\"}",
        "{\"seq\":1,\"event\":\"active\",\"jobId\":\"a\",\"userId\":\"b\",\"data\":{}} trailing",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(job_event_decode(bad[i], strlen(bad[i]), &d) == -EINVAL, "accepted: %s", bad[i]);
    char longid[JOB_ID_MAX + 40];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    char big[JOB_ID_MAX + 300];
    snprintf(big, sizeof(big), "{\"seq\":1,\"event\":\"active\",\"jobId\":\"%s\",\"userId\":\"b\",\"data\":{}}", longid);
    ck_assert_int_eq(job_event_decode(big, strlen(big), &d), -EINVAL);
    ck_assert_int_eq(job_event_decode("{}", JOB_EVENT_MAX_BYTES + 1ul, &d), -EMSGSIZE);

    /* Params: canonical encoding, and the hash covers every parameter. */
    struct job_params p = params("Hola mundo", "Spanish"), p2;
    char *pj, h1[SHA256_HEX_LEN], h2[SHA256_HEX_LEN];
    ck_assert_int_eq(job_params_encode(&p, &pj), 0);
    ck_assert_str_eq(pj, "{\"content\":\"Hola mundo\",\"subject\":\"Spanish\",\"topic\":\"Food\","
                         "\"nativeLanguage\":\"English\",\"targetLanguage\":\"Spanish\"}");
    ck_assert_int_eq(job_params_decode(JOB_TYPE_LESSON, pj, strlen(pj), &p2), 0);
    ck_assert_str_eq(p2.content, "Hola mundo");
    ck_assert_str_eq(p2.target_language, "Spanish");
    ck_assert_ptr_null(p2.source_file_name);
    ck_assert_int_eq(p2.type, JOB_TYPE_LESSON);
    job_params_done(&p2);
    job_idem_hash("u1", JOB_TYPE_FLASHCARDS, pj, h1);
    job_idem_hash("u1", JOB_TYPE_LESSON, pj, h2);
    ck_assert_str_ne(h1, h2);
    job_idem_hash("u2", JOB_TYPE_FLASHCARDS, pj, h2);
    ck_assert_str_ne(h1, h2);
    free(pj);
    ck_assert_int_eq(job_params_decode(JOB_TYPE_LESSON, "{\"content\":5}", 13, &p2), -EINVAL);
    ck_assert_int_eq(job_params_decode(JOB_TYPE_LESSON, "{\"topic\":\"x\"}", 13, &p2), -EINVAL);
}
END_TEST

/* ------------------------------------------------------------ life of a job */

START_TEST(enqueue_claim_progress_complete_with_events_in_order)
{
    struct qenv e;
    env_start(&e, NULL);
    struct queue_enqueue_result res;
    enqueue_ok(&e, "user-1", "El gato come pescado.", NULL, &res);
    ck_assert(!res.existing);
    ck_assert_int_eq(res.state, JOB_WAITING);
    ck_assert_int_eq(strlen(res.job_id), 32);
    ck_assert_int_gt(res.created_ms, 0);
    ck_assert_ptr_null(res.result_json);

    /* A new job has no stored events (`connected` is the stream's own). */
    char names[256];
    history(&e, res.job_id, names, sizeof(names));
    ck_assert_str_eq(names, "");
    struct job_record rec;
    get_ok(&e, res.job_id, &rec);
    ck_assert_int_eq(rec.state, JOB_WAITING);
    ck_assert_str_eq(rec.user, "user-1");
    ck_assert_int_eq(rec.attempts, 0);
    ck_assert_int_eq(rec.created_ms, res.created_ms);
    ck_assert_ptr_nonnull(strstr(rec.params_json, "El gato come pescado."));
    job_record_done(&rec);

    struct sub s;
    sub_open(&e, &s, res.job_id, "user-1");

    struct queue_job j;
    claim_now(e.q, &j);
    ck_assert_str_eq(j.id, res.job_id);
    ck_assert_int_eq(j.attempt, 1);
    ck_assert_str_eq(j.user, "user-1");
    ck_assert_int_eq(j.type, JOB_TYPE_FLASHCARDS);
    ck_assert_int_eq(j.created_ms, res.created_ms);
    struct job_params p;
    ck_assert_int_eq(job_params_decode(j.type, j.params_json, strlen(j.params_json), &p), 0);
    ck_assert_str_eq(p.content, "El gato come pescado.");
    job_params_done(&p);
    ck_assert_int_eq(queue_claim(e.q, 1, 0, &(struct queue_job){ 0 }), 0);   /* nothing else */

    get_ok(&e, j.id, &rec);
    ck_assert_int_eq(rec.state, JOB_ACTIVE);
    ck_assert_int_eq(rec.attempts, 1);
    job_record_done(&rec);

    ck_assert_int_eq(queue_progress(e.q, j.id, j.token, 40), 0);
    const char *result = "{ \"success\": true, \"flashcards\": [ {\"front\": \"gato\", \"back\": \"cat\"} ],\n"
                         "  \"tokenUsage\": 12, \"provider\": \"offline\", \"model\": \"offline\" }";
    struct job_usage u = { .input_tokens = 10, .output_tokens = 2 };
    ck_assert_int_eq(queue_complete(e.q, j.id, j.token, result, &u), 0);

    history(&e, j.id, names, sizeof(names));
    ck_assert_str_eq(names, "active,progress,completed");
    sub_drain(&e, &s, "user-1");
    sub_names(&s, false, names, sizeof(names));
    ck_assert_str_eq(names, "active,progress,completed");
    for (int i = 0; i < s.njob; i++)
        ck_assert_int_eq(s.job_seqs[i], i + 1);
    sub_names(&s, true, names, sizeof(names));
    ck_assert_str_eq(names, "active,progress,completed");
    sub_close(&s);

    struct json_object *d = event_data(&e, j.id, 1);
    ck_assert_str_eq(jstr(d, "jobId"), j.id);
    ck_assert_str_eq(jstr(d, "message"), "Job is now being processed");
    ck_assert_int_eq(jint(d, "attempt"), 1);
    ck_assert(is_iso_ms(jstr(d, "timestamp")));
    json_object_put(d);
    d = event_data(&e, j.id, 2);
    ck_assert_int_eq(jint(d, "progress"), 40);
    json_object_put(d);
    d = event_data(&e, j.id, 3);
    struct json_object *r;
    ck_assert(json_object_object_get_ex(d, "result", &r));
    ck_assert_int_eq(jint(r, "tokenUsage"), 12);
    ck_assert_int_ge(jint(d, "duration"), 0);
    ck_assert(is_iso_ms(jstr(d, "timestamp")));
    json_object_put(d);

    /* Replay after a given id. */
    struct job_event_list l;
    ck_assert_int_eq(queue_events_since(e.q, j.id, 2, &l), 0);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_str_eq(l.v[0].name, "completed");
    job_event_list_done(&l);
    ck_assert_int_eq(queue_events_since(e.q, j.id, 3, &l), 0);
    ck_assert_uint_eq(l.n, 0);
    job_event_list_done(&l);

    get_ok(&e, j.id, &rec);
    ck_assert_int_eq(rec.state, JOB_COMPLETED);
    ck_assert_int_eq(rec.progress, 100);
    ck_assert_int_eq(rec.usage.input_tokens, 10);
    ck_assert_int_eq(rec.usage.output_tokens, 2);
    ck_assert_int_eq(rec.event_seq, 3);
    ck_assert_int_ge(rec.finished_ms, rec.started_ms);
    ck_assert_ptr_null(strchr(rec.result_json, '\n'));
    struct json_object *st = job_record_status_json(&rec);
    ck_assert_str_eq(jstr(st, "status"), "completed");
    ck_assert_str_eq(jstr(st, "type"), "generate-flashcards");
    ck_assert_str_eq(jstr(st, "queue"), "ai-jobs");
    ck_assert_int_eq(jint(st, "timestamp"), res.created_ms);
    ck_assert_int_eq(jint(st, "attemptsMade"), 1);
    ck_assert_int_eq(jint(st, "progress"), 100);
    ck_assert_int_eq(jint(st, "completedAt"), rec.finished_ms);
    ck_assert(json_object_object_get_ex(st, "result", &r));
    ck_assert_str_eq(jstr(r, "provider"), "offline");
    json_object_put(st);
    job_record_done(&rec);

    /* A second completion of the same attempt changes nothing. */
    ck_assert_int_eq(queue_complete(e.q, j.id, j.token, "{\"other\":1}", NULL), -ESTALE);
    ck_assert_int_eq(queue_progress(e.q, j.id, j.token, 50), -ESTALE);
    history(&e, j.id, names, sizeof(names));
    ck_assert_str_eq(names, "active,progress,completed");
    queue_job_done(&j);

    /* Unknown and impossible ids. */
    ck_assert_int_eq(queue_get(e.q, "0123456789abcdef0123456789abcdef", &rec), -ENOENT);
    ck_assert_int_eq(queue_get(e.q, "../{x}", &rec), -ENOENT);
    ck_assert_int_eq(queue_complete(e.q, "0123456789abcdef", "t", "{}", NULL), -ENOENT);
    queue_enqueue_result_done(&res);
    env_done(&e);
}
END_TEST

/* ------------------------------------------------------------ idempotency */

START_TEST(same_request_returns_the_same_job)
{
    struct qenv e;
    env_start(&e, NULL);
    struct queue_enqueue_result a, b;
    enqueue_ok(&e, "u1", "content one", NULL, &a);
    enqueue_ok(&e, "u1", "content one", NULL, &b);
    ck_assert(!a.existing);
    ck_assert(b.existing);
    ck_assert_str_eq(a.job_id, b.job_id);
    ck_assert_int_eq(b.state, JOB_WAITING);
    queue_enqueue_result_done(&b);

    /* Other user, other content, other targetLanguage: other jobs. */
    enqueue_ok(&e, "u2", "content one", NULL, &b);
    ck_assert(!b.existing);
    ck_assert_str_ne(a.job_id, b.job_id);
    enqueue_ok(&e, "u1", "content one!", NULL, &b);
    ck_assert(!b.existing);
    struct job_params p = params("content one", "French");
    ck_assert_int_eq(queue_enqueue(e.q, "u1", &p, NULL, &b), 0);
    ck_assert(!b.existing);
    /* The whole content counts, not a prefix. */
    char *big1 = malloc(5001), *big2 = malloc(5001);
    memset(big1, 'x', 5000);
    big1[5000] = '\0';
    memcpy(big2, big1, 5001);
    big2[4999] = 'y';
    enqueue_ok(&e, "u1", big1, NULL, &b);
    char id1[JOB_ID_MAX + 1];
    strcpy(id1, b.job_id);
    enqueue_ok(&e, "u1", big2, NULL, &b);
    ck_assert_str_ne(id1, b.job_id);
    free(big1);
    free(big2);
    ck_assert_int_eq(cmd_ll(e.c, "LLEN " P "waiting"), 6);

    /* While running: the same job, state active. */
    struct queue_job j;
    ck_assert_int_eq(queue_claim(e.q, 1, 0, &j), 1);
    ck_assert_str_eq(j.id, a.job_id);
    enqueue_ok(&e, "u1", "content one", NULL, &b);
    ck_assert(b.existing);
    ck_assert_int_eq(b.state, JOB_ACTIVE);

    /* Finished: the same job with its result and finish time. */
    ck_assert_int_eq(queue_complete(e.q, j.id, j.token, "{\"success\":true,\"n\":1}", NULL), 0);
    enqueue_ok(&e, "u1", "content one", NULL, &b);
    ck_assert(b.existing);
    ck_assert_str_eq(b.job_id, a.job_id);
    ck_assert_int_eq(b.state, JOB_COMPLETED);
    ck_assert_str_eq(b.result_json, "{\"success\":true,\"n\":1}");
    ck_assert_int_ge(b.finished_ms, b.created_ms);
    ck_assert_int_eq(b.created_ms, a.created_ms);
    queue_enqueue_result_done(&b);
    /* Record and mapping live IDEMPOTENCY_TTL from the finish. */
    ck_assert_int_gt(cmd_ll(e.c, "TTL " P "job:%s", a.job_id), 86400 - 60);
    ck_assert_int_le(cmd_ll(e.c, "TTL " P "job:%s", a.job_id), 86400);
    struct job_params p1 = params("content one", "Spanish");
    char *pj, h[SHA256_HEX_LEN];
    ck_assert_int_eq(job_params_encode(&p1, &pj), 0);
    job_idem_hash("u1", JOB_TYPE_FLASHCARDS, pj, h);
    free(pj);
    char *mapped = cmd_str(e.c, "GET " P "idem:%s", h);
    ck_assert_str_eq(mapped, a.job_id);
    free(mapped);
    ck_assert_int_gt(cmd_ll(e.c, "TTL " P "idem:%s", h), 86400 - 60);
    queue_job_done(&j);
    queue_enqueue_result_done(&a);
    env_done(&e);
}
END_TEST

START_TEST(idempotency_key_is_scoped_per_user)
{
    struct qenv e;
    env_start(&e, NULL);
    struct queue_enqueue_result a, b;
    enqueue_ok(&e, "u1", "first", "key-123", &a);
    enqueue_ok(&e, "u1", "different body", "key-123", &b);
    ck_assert(b.existing);
    ck_assert_str_eq(a.job_id, b.job_id);
    enqueue_ok(&e, "u2", "first", "key-123", &b);
    ck_assert(!b.existing);
    ck_assert_str_ne(a.job_id, b.job_id);
    /* Same body with a new key: still the same job (the body hash maps it). */
    enqueue_ok(&e, "u1", "first", "key-456", &b);
    ck_assert(b.existing);
    ck_assert_str_eq(a.job_id, b.job_id);
    /* ... and from now on key-456 names it too. */
    enqueue_ok(&e, "u1", "third body", "key-456", &b);
    ck_assert(b.existing);
    ck_assert_str_eq(a.job_id, b.job_id);
    struct job_params p = params("x", "y");
    char longkey[QUEUE_IDEM_KEY_MAX + 2];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    ck_assert_int_eq(queue_enqueue(e.q, "u1", &p, longkey, &b), -EINVAL);
    ck_assert_int_eq(queue_enqueue(e.q, "", &p, NULL, &b), -EINVAL);
    ck_assert_int_eq(queue_enqueue(e.q, "bad\xff", &p, NULL, &b), -EINVAL);
    ck_assert_int_eq(cmd_ll(e.c, "LLEN " P "waiting"), 2);
    env_done(&e);
}
END_TEST

START_TEST(mapping_to_an_expired_job_creates_a_new_one)
{
    struct qenv e;
    env_start(&e, NULL);
    struct queue_enqueue_result a, b;
    enqueue_ok(&e, "u1", "gone soon", "k1", &a);
    ck_assert_int_eq(cmd_ll(e.c, "PEXPIRE " P "job:%s 1", a.job_id), 1);
    int64_t end = clock_mono_ms() + WAIT_MS;
    while (cmd_ll(e.c, "EXISTS " P "job:%s", a.job_id) == 1) {
        ck_assert(clock_mono_ms() < end);
        poll(NULL, 0, 5);
    }
    enqueue_ok(&e, "u1", "gone soon", NULL, &b);
    ck_assert(!b.existing);
    ck_assert_str_ne(a.job_id, b.job_id);
    struct queue_enqueue_result c;
    enqueue_ok(&e, "u1", "other body", "k1", &c);   /* the key's job is gone too */
    ck_assert(!c.existing);
    /* The stale id in waiting is dropped by the claim; the new jobs are handed out. */
    struct queue_job j[3];
    ck_assert_int_eq(queue_claim(e.q, 3, 0, j), 2);
    ck_assert_str_eq(j[0].id, b.job_id);
    ck_assert_str_eq(j[1].id, c.job_id);
    queue_job_done(&j[0]);
    queue_job_done(&j[1]);
    env_done(&e);
}
END_TEST

START_TEST(failed_job_is_not_reused)
{
    struct queue_limits lim = default_limits();
    lim.max_attempts = 1;
    struct qenv e;
    env_start(&e, &lim);
    struct queue_enqueue_result a, b;
    enqueue_ok(&e, "u1", "will fail", "k", &a);
    struct queue_job j;
    claim_now(e.q, &j);
    struct queue_failure f = { .error = "Provider rejected the request", .code = "PROVIDER_BAD_REQUEST" };
    ck_assert_int_eq(queue_fail(e.q, j.id, j.token, j.attempt, &f, NULL), 0);
    enqueue_ok(&e, "u1", "will fail", NULL, &b);
    ck_assert(!b.existing);
    ck_assert_str_ne(a.job_id, b.job_id);
    enqueue_ok(&e, "u1", "other", "k", &b);
    ck_assert(!b.existing);
    queue_job_done(&j);
    env_done(&e);
}
END_TEST

struct dup_arg {
    int port;
    const struct queue_limits *lim;
    pthread_barrier_t *bar;
    struct queue_enqueue_result res;
    int rc;
};

static void *dup_thread(void *p)
{
    struct dup_arg *a = p;
    struct redis_target t = {
        .host = "127.0.0.1", .port = a->port, .connect_timeout_ms = 5000,
        .command_timeout_ms = 5000, .retry_max_ms = 200,
    };
    struct redisx *rx = redisx_new(&t);
    struct queue *q = queue_new(rx, a->lim);
    struct job_params jp = params("the same request from fifty clients", "Spanish");

    a->rc = redisx_ensure(rx);
    pthread_barrier_wait(a->bar);
    if (a->rc == 0)
        a->rc = queue_enqueue(q, "user-dup", &jp, NULL, &a->res);
    queue_free(q);
    redisx_free(rx);
    return NULL;
}

START_TEST(fifty_concurrent_duplicates_make_one_job)
{
    struct qenv e;
    env_start(&e, NULL);
    enum { N = 50 };
    static struct dup_arg args[N];
    pthread_t th[N];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, N);
    for (int i = 0; i < N; i++) {
        args[i] = (struct dup_arg){ .port = e.rs.port, .lim = &e.lim, .bar = &bar };
        ck_assert_int_eq(pthread_create(&th[i], NULL, dup_thread, &args[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    int created = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(args[i].rc, 0);
        ck_assert_str_eq(args[i].res.job_id, args[0].res.job_id);
        created += !args[i].res.existing;
        queue_enqueue_result_done(&args[i].res);
    }
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(cmd_ll(e.c, "LLEN " P "waiting"), 1);
    env_done(&e);
}
END_TEST

/* ------------------------------------------------------------ fencing and retries */

START_TEST(expired_lease_fences_the_old_worker)
{
    struct queue_limits lim = default_limits();
    lim.lease_ms = 300;
    struct qenv e;
    env_start(&e, &lim);
    struct redisx *rx_b = connect_rx(e.rs.port);
    struct queue *qb = queue_new(rx_b, &lim);
    struct queue_enqueue_result res;
    enqueue_ok(&e, "u1", "lease me", NULL, &res);
    struct sub s;
    sub_open(&e, &s, res.job_id, "u1");

    struct queue_job a, b;
    claim_now(e.q, &a);                       /* worker A, then A goes silent */
    claim_wait(qb, 0, &b);                    /* B gets it once A's lease ran out */
    ck_assert_str_eq(b.id, a.id);
    ck_assert_int_eq(b.attempt, 2);
    ck_assert_str_ne(b.token, a.token);

    /* A wakes up: everything it says is refused. */
    bool held[1];
    ck_assert_int_eq(queue_renew(e.q, &(struct queue_lease_ref){ a.id, a.token }, 1, held), 0);
    ck_assert(!held[0]);
    ck_assert_int_eq(queue_progress(e.q, a.id, a.token, 90), -ESTALE);
    ck_assert_int_eq(queue_complete(e.q, a.id, a.token, "{\"by\":\"A\"}", NULL), -ESTALE);
    struct queue_failure f = { .error = "x", .code = "X", .retryable = true, .spend_attempt = true };
    ck_assert_int_eq(queue_fail(e.q, a.id, a.token, a.attempt, &f, NULL), -ESTALE);
    ck_assert_int_eq(queue_release(e.q, a.id, a.token, 0), -ESTALE);
    /* B's result wins, once. */
    ck_assert_int_eq(queue_complete(qb, b.id, b.token, "{\"by\":\"B\"}", NULL), 0);
    ck_assert_int_eq(queue_complete(e.q, a.id, a.token, "{\"by\":\"A\"}", NULL), -ESTALE);
    ck_assert_int_eq(queue_complete(qb, b.id, b.token, "{\"by\":\"B\"}", NULL), -ESTALE);

    char names[256];
    history(&e, a.id, names, sizeof(names));
    ck_assert_str_eq(names, "active,retrying,active,completed");
    sub_drain(&e, &s, "u1");
    sub_names(&s, false, names, sizeof(names));
    ck_assert_str_eq(names, "active,retrying,active,completed");
    sub_close(&s);
    struct json_object *d = event_data(&e, a.id, 2);
    ck_assert_int_eq(jint(d, "attemptsMade"), 1);
    ck_assert(is_iso_ms(jstr(d, "nextAttemptAt")));
    json_object_put(d);
    struct job_record rec;
    get_ok(&e, a.id, &rec);
    ck_assert_str_eq(rec.result_json, "{\"by\":\"B\"}");
    ck_assert_int_eq(rec.attempts, 2);
    job_record_done(&rec);
    ck_assert_int_eq(cmd_ll(e.c, "ZCARD " P "active"), 0);
    ck_assert_int_eq(cmd_ll(e.c, "ZCARD " P "completed"), 1);

    queue_job_done(&a);
    queue_job_done(&b);
    queue_free(qb);
    redisx_free(rx_b);
    queue_enqueue_result_done(&res);
    env_done(&e);
}
END_TEST

START_TEST(lease_expiry_on_the_last_attempt_fails_the_job)
{
    struct queue_limits lim = default_limits();
    lim.lease_ms = 200;
    lim.max_attempts = 1;
    struct qenv e;
    env_start(&e, &lim);
    struct queue_enqueue_result res;
    enqueue_ok(&e, "u1", "crashes its worker", NULL, &res);
    struct queue_job a;
    claim_now(e.q, &a);
    struct job_record rec;
    int64_t end = clock_mono_ms() + WAIT_MS;
    for (;;) {                                 /* maintenance runs inside claims */
        struct queue_job none;
        ck_assert_int_eq(queue_claim(e.q, 1, 0, &none), 0);
        get_ok(&e, a.id, &rec);
        if (rec.state == JOB_FAILED)
            break;
        job_record_done(&rec);
        ck_assert(clock_mono_ms() < end);
        ck_assert_int_ge(queue_wait(e.q, 100), 0);
    }
    ck_assert_str_eq(rec.error_code, "LEASE_EXPIRED");
    job_record_done(&rec);
    char names[256];
    history(&e, a.id, names, sizeof(names));
    ck_assert_str_eq(names, "active,failed");
    queue_job_done(&a);
    env_done(&e);
}
END_TEST

START_TEST(retryable_failure_waits_then_runs_as_attempt_two)
{
    struct queue_limits lim = default_limits();
    lim.max_attempts = 2;
    lim.backoff_ms = 100;
    struct qenv e;
    env_start(&e, &lim);
    struct queue_enqueue_result res;
    enqueue_ok(&e, "u1", "flaky provider", NULL, &res);
    struct sub s;
    sub_open(&e, &s, res.job_id, "u1");
    struct queue_job j;
    claim_now(e.q, &j);
    struct queue_failure f = { .error = "Provider timed out", .code = "PROVIDER_TIMEOUT",
                               .retryable = true, .spend_attempt = true };
    struct queue_fail_result fr;
    ck_assert_int_eq(queue_fail(e.q, j.id, j.token, j.attempt, &f, &fr), 0);
    ck_assert(fr.retrying);
    ck_assert_int_eq(fr.attempts, 1);
    struct job_record rec;
    get_ok(&e, j.id, &rec);
    ck_assert_int_eq(rec.state, JOB_DELAYED);
    ck_assert_int_eq(rec.next_attempt_ms, fr.next_attempt_ms);
    ck_assert_int_le(rec.next_attempt_ms, redis_now_ms(e.c) + 100);
    struct json_object *st = job_record_status_json(&rec);
    ck_assert_str_eq(jstr(st, "status"), "delayed");
    ck_assert_int_eq(jint(st, "attemptsMade"), 1);
    json_object_put(st);
    job_record_done(&rec);
    ck_assert_int_eq(queue_complete(e.q, j.id, j.token, "{}", NULL), -ESTALE);
    queue_job_done(&j);

    claim_wait(e.q, 0, &j);                    /* promoted when due */
    ck_assert_int_eq(j.attempt, 2);
    ck_assert_int_eq(queue_fail(e.q, j.id, j.token, j.attempt, &f, &fr), 0);
    ck_assert(!fr.retrying);                   /* attempts used up */
    ck_assert_int_eq(fr.attempts, 2);

    char names[256];
    history(&e, j.id, names, sizeof(names));
    ck_assert_str_eq(names, "active,retrying,active,failed");
    sub_drain(&e, &s, "u1");
    sub_names(&s, false, names, sizeof(names));
    ck_assert_str_eq(names, "active,retrying,active,failed");
    sub_close(&s);
    struct json_object *d = event_data(&e, j.id, 2);
    ck_assert_str_eq(jstr(d, "error"), "Provider timed out");
    ck_assert_int_eq(jint(d, "attemptsMade"), 1);
    ck_assert(is_iso_ms(jstr(d, "nextAttemptAt")));
    json_object_put(d);
    d = event_data(&e, j.id, 4);
    ck_assert_str_eq(jstr(d, "code"), "PROVIDER_TIMEOUT");
    ck_assert_int_eq(jint(d, "attemptsMade"), 2);
    ck_assert_int_ge(jint(d, "duration"), 0);
    json_object_put(d);
    get_ok(&e, j.id, &rec);
    st = job_record_status_json(&rec);
    ck_assert_str_eq(jstr(st, "status"), "failed");
    ck_assert_str_eq(jstr(st, "error"), "Provider timed out");
    ck_assert_str_eq(jstr(st, "errorCode"), "PROVIDER_TIMEOUT");
    ck_assert_int_eq(jint(st, "failedAt"), rec.finished_ms);
    json_object_put(st);
    job_record_done(&rec);
    queue_job_done(&j);
    queue_enqueue_result_done(&res);
    env_done(&e);
}
END_TEST

START_TEST(provider_429_does_not_spend_an_attempt)
{
    struct queue_limits lim = default_limits();
    lim.max_attempts = 1;
    struct qenv e;
    env_start(&e, &lim);
    struct queue_enqueue_result res;
    enqueue_ok(&e, "u1", "rate limited", NULL, &res);
    struct queue_job j;
    struct queue_failure f = { .error = "Provider rate limit", .code = "PROVIDER_RATE_LIMITED",
                               .retryable = true, .spend_attempt = false, .retry_after_ms = 150 };
    for (int round = 0; round < 3; round++) {
        claim_wait(e.q, 0, &j);
        ck_assert_int_eq(j.attempt, 1);
        struct queue_fail_result fr;
        int64_t before = redis_now_ms(e.c);
        ck_assert_int_eq(queue_fail(e.q, j.id, j.token, j.attempt, &f, &fr), 0);
        ck_assert(fr.retrying);
        ck_assert_int_eq(fr.attempts, 0);
        ck_assert_int_ge(fr.next_attempt_ms, before + 150);
        queue_job_done(&j);
    }
    claim_wait(e.q, 0, &j);
    ck_assert_int_eq(j.attempt, 1);
    ck_assert_int_eq(queue_complete(e.q, j.id, j.token, "{\"ok\":true}", NULL), 0);
    char names[256];
    history(&e, j.id, names, sizeof(names));
    ck_assert_str_eq(names, "active,retrying,active,retrying,active,retrying,active,completed");
    struct json_object *d = event_data(&e, j.id, 2);
    ck_assert_int_eq(jint(d, "attemptsMade"), 0);
    json_object_put(d);
    struct job_record rec;
    get_ok(&e, j.id, &rec);
    ck_assert_int_eq(rec.attempts, 1);
    job_record_done(&rec);
    queue_job_done(&j);
    env_done(&e);
}
END_TEST

START_TEST(permanent_failure_fails_at_once_with_one_event)
{
    struct qenv e;
    env_start(&e, NULL);
    struct queue_enqueue_result res;
    enqueue_ok(&e, "u1", "bad request", NULL, &res);
    struct queue_job j;
    claim_now(e.q, &j);
    struct queue_failure f = { .error = "Reply was not usable:\n\xff truncated", .code = "BAD_REPLY" };
    struct queue_fail_result fr;
    ck_assert_int_eq(queue_fail(e.q, j.id, j.token, j.attempt, &f, &fr), 0);
    ck_assert(!fr.retrying);
    char names[256];
    history(&e, j.id, names, sizeof(names));
    ck_assert_str_eq(names, "active,failed");
    struct json_object *d = event_data(&e, j.id, 2);
    ck_assert_str_eq(jstr(d, "error"), "Reply was not usable: ? truncated");
    json_object_put(d);
    ck_assert_int_eq(queue_fail(e.q, j.id, j.token, j.attempt, &f, &fr), -ESTALE);
    queue_job_done(&j);
    env_done(&e);
}
END_TEST

/* ------------------------------------------------------------ limits and switches */

START_TEST(queue_full_refuses_new_jobs_but_answers_duplicates)
{
    struct queue_limits lim = default_limits();
    lim.max_waiting = 3;
    struct qenv e;
    env_start(&e, &lim);
    struct queue_enqueue_result r1, r;
    enqueue_ok(&e, "u1", "one", NULL, &r1);
    enqueue_ok(&e, "u1", "two", NULL, &r);
    enqueue_ok(&e, "u1", "three", NULL, &r);
    struct job_params p = params("four", "Spanish");
    ck_assert_int_eq(queue_enqueue(e.q, "u1", &p, NULL, &r), -EBUSY);
    enqueue_ok(&e, "u1", "one", NULL, &r);
    ck_assert(r.existing);
    ck_assert_str_eq(r.job_id, r1.job_id);
    /* A running job leaves room. */
    struct queue_job j;
    claim_now(e.q, &j);
    ck_assert_int_eq(queue_enqueue(e.q, "u1", &p, NULL, &r), 0);
    ck_assert_int_eq(queue_enqueue(e.q, "u1", &(struct job_params){ .content = (char *)"five" }, NULL, &r), -EBUSY);
    queue_job_done(&j);
    env_done(&e);
}
END_TEST

START_TEST(kill_switch_refuses_submissions_and_paid_claims)
{
    struct qenv e;
    env_start(&e, NULL);
    struct queue_enqueue_result a, r;
    enqueue_ok(&e, "u1", "before the switch", NULL, &a);
    freeReplyObject(cmd(e.c, "SET %s %s", QUEUE_KILLSWITCH_KEY, "monthly limit reached"));
    struct job_params p = params("after the switch", "Spanish");
    ck_assert_int_eq(queue_enqueue(e.q, "u1", &p, NULL, &r), -EPERM);
    enqueue_ok(&e, "u1", "before the switch", NULL, &r);     /* duplicates still answered */
    ck_assert(r.existing);
    struct queue_stats st;
    ck_assert_int_eq(queue_stats(e.q, &st), 0);
    ck_assert(st.kill_switch);
    struct queue_job j;
    ck_assert_int_eq(queue_claim(e.q, 1, QUEUE_CLAIM_PAID, &j), 0);
    ck_assert_int_eq(cmd_ll(e.c, "LLEN " P "waiting"), 1);
    ck_assert_int_eq(queue_claim(e.q, 1, 0, &j), 1);          /* e.g. the offline fallback */
    ck_assert_str_eq(j.id, a.job_id);
    queue_job_done(&j);
    freeReplyObject(cmd(e.c, "DEL %s", QUEUE_KILLSWITCH_KEY));
    ck_assert_int_eq(queue_enqueue(e.q, "u1", &p, NULL, &r), 0);
    ck_assert_int_eq(queue_claim(e.q, 1, QUEUE_CLAIM_PAID, &j), 1);
    queue_job_done(&j);
    env_done(&e);
}
END_TEST

START_TEST(release_hands_the_job_back_without_spending_it)
{
    struct qenv e;
    env_start(&e, NULL);
    struct queue_enqueue_result a, b;
    enqueue_ok(&e, "u1", "first", NULL, &a);
    enqueue_ok(&e, "u1", "second", NULL, &b);
    struct queue_job j, k;
    claim_now(e.q, &j);
    ck_assert_str_eq(j.id, a.job_id);
    ck_assert_int_eq(queue_release(e.q, j.id, j.token, 0), 0);
    ck_assert_int_eq(queue_release(e.q, j.id, j.token, 0), -ESTALE);
    ck_assert_int_eq(queue_complete(e.q, j.id, j.token, "{}", NULL), -ESTALE);
    struct job_record rec;
    get_ok(&e, j.id, &rec);
    ck_assert_int_eq(rec.state, JOB_WAITING);
    ck_assert_int_eq(rec.attempts, 0);
    job_record_done(&rec);
    claim_now(e.q, &k);                        /* back at the front, same attempt number */
    ck_assert_str_eq(k.id, a.job_id);
    ck_assert_int_eq(k.attempt, 1);
    queue_job_done(&j);

    /* Released with a delay: parked, then due again. */
    ck_assert_int_eq(queue_release(e.q, k.id, k.token, 1500), 0);
    get_ok(&e, k.id, &rec);
    ck_assert_int_eq(rec.state, JOB_DELAYED);
    job_record_done(&rec);
    claim_now(e.q, &j);                        /* meanwhile the next job runs */
    ck_assert_str_eq(j.id, b.job_id);
    queue_job_done(&j);
    claim_wait(e.q, 0, &j);
    ck_assert_str_eq(j.id, a.job_id);
    ck_assert_int_eq(j.attempt, 1);
    char names[256];
    history(&e, a.job_id, names, sizeof(names));
    ck_assert_str_eq(names, "active,active,active");
    queue_job_done(&j);
    queue_job_done(&k);
    env_done(&e);
}
END_TEST

START_TEST(jobs_past_their_deadline_fail_instead_of_running)
{
    struct queue_limits lim = default_limits();
    lim.deadline_ms = 300;
    struct qenv e;
    env_start(&e, &lim);
    struct queue_enqueue_result a;
    enqueue_ok(&e, "u1", "too late", NULL, &a);
    wait_redis_time_past(e.c, a.created_ms + 300);
    struct queue_job j;
    ck_assert_int_eq(queue_claim(e.q, 1, 0, &j), 0);
    struct job_record rec;
    get_ok(&e, a.job_id, &rec);
    ck_assert_int_eq(rec.state, JOB_FAILED);
    ck_assert_str_eq(rec.error_code, "DEADLINE_EXCEEDED");
    job_record_done(&rec);
    char names[256];
    history(&e, a.job_id, names, sizeof(names));
    ck_assert_str_eq(names, "failed");
    struct json_object *d = event_data(&e, a.job_id, 1);
    ck_assert_str_eq(jstr(d, "code"), "DEADLINE_EXCEEDED");
    ck_assert_int_eq(jint(d, "attemptsMade"), 0);
    json_object_put(d);

    /* A retry that could only start after the deadline fails now. */
    lim.deadline_ms = 30000;
    struct queue *q2 = queue_new(e.rx, &lim);
    struct job_params p = params("retry too late", "Spanish");
    struct queue_enqueue_result b;
    ck_assert_int_eq(queue_enqueue(q2, "u1", &p, NULL, &b), 0);
    claim_now(q2, &j);
    struct queue_failure f = { .error = "busy", .code = "PROVIDER_RATE_LIMITED",
                               .retryable = true, .retry_after_ms = 60000 };
    struct queue_fail_result fr;
    ck_assert_int_eq(queue_fail(q2, j.id, j.token, j.attempt, &f, &fr), 0);
    ck_assert(!fr.retrying);
    queue_job_done(&j);
    queue_free(q2);
    env_done(&e);
}
END_TEST

START_TEST(renew_extends_held_leases_and_reports_lost_ones)
{
    struct queue_limits lim = default_limits();
    lim.lease_ms = 5000;
    struct qenv e;
    env_start(&e, &lim);
    struct queue_enqueue_result r;
    enqueue_ok(&e, "u1", "one", NULL, &r);
    enqueue_ok(&e, "u1", "two", NULL, &r);
    struct queue_job j[2];
    ck_assert_int_eq(queue_claim(e.q, 2, 0, j), 2);
    char *s0 = cmd_str(e.c, "ZSCORE " P "active %s", j[0].id);
    long long before = atoll(s0);
    free(s0);
    wait_redis_time_past(e.c, redis_now_ms(e.c) + 5);
    struct queue_lease_ref refs[4] = {
        { j[0].id, j[0].token }, { j[1].id, "not-the-token" }, { "nonexistentjob", "t" }, { j[1].id, j[1].token },
    };
    bool held[4];
    ck_assert_int_eq(queue_renew(e.q, refs, 4, held), 2);
    ck_assert(held[0] && !held[1] && !held[2] && held[3]);
    s0 = cmd_str(e.c, "ZSCORE " P "active %s", j[0].id);
    ck_assert_int_gt(atoll(s0), before);
    free(s0);
    ck_assert_int_eq(queue_complete(e.q, j[1].id, j[1].token, "{}", NULL), 0);
    ck_assert_int_eq(queue_renew(e.q, &refs[3], 1, held), 0);
    ck_assert(!held[0]);

    /* Many at once (batched past one script call's argument limit). */
    enum { M = 600 };
    struct queue_job *many = calloc(M, sizeof(*many));
    struct queue_lease_ref *mr = calloc(M, sizeof(*mr));
    bool *mh = calloc(M, sizeof(*mh));
    for (int i = 0; i < M; i++) {
        char c[32];
        snprintf(c, sizeof(c), "job %d", i);
        enqueue_ok(&e, "u2", c, NULL, &r);
    }
    int got = 0;
    while (got < M) {
        int n = queue_claim(e.q, M - got, 0, many + got);
        ck_assert_int_gt(n, 0);
        got += n;
    }
    for (int i = 0; i < M; i++)
        mr[i] = (struct queue_lease_ref){ many[i].id, many[i].token };
    ck_assert_int_eq(queue_renew(e.q, mr, M, mh), M);
    for (int i = 0; i < M; i++)
        queue_job_done(&many[i]);
    free(many);
    free(mr);
    free(mh);
    queue_job_done(&j[0]);
    queue_job_done(&j[1]);
    env_done(&e);
}
END_TEST

/* ------------------------------------------------------------ waiting, stats, memory */

struct waiter {
    struct queue *q;
    int rc;
};

static void *wait_thread(void *p)
{
    struct waiter *w = p;

    w->rc = queue_wait(w->q, WAIT_MS * 2);
    return NULL;
}

START_TEST(wait_returns_when_work_arrives)
{
    struct qenv e;
    env_start(&e, NULL);
    ck_assert_int_eq(queue_wait(e.q, 50), 0);            /* nothing: times out */

    struct redisx *rx2 = connect_rx(e.rs.port);
    struct queue *q2 = queue_new(rx2, &e.lim);
    struct waiter w = { .q = q2, .rc = -1000 };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, wait_thread, &w), 0);
    /* Enqueue once the waiter is blocked (CLIENT LIST shows it in BLPOP). */
    int64_t end = clock_mono_ms() + WAIT_MS;
    for (;;) {
        char *cl = NULL;
        redisReply *rr = cmd(e.c, "CLIENT LIST");
        if (rr->type == REDIS_REPLY_STRING)
            cl = strstr(rr->str, "cmd=blpop") ? rr->str : NULL;
        bool blocked = cl != NULL;
        freeReplyObject(rr);
        if (blocked)
            break;
        ck_assert(clock_mono_ms() < end);
        poll(NULL, 0, 5);
    }
    struct queue_enqueue_result r;
    enqueue_ok(&e, "u1", "wake up", NULL, &r);
    pthread_join(th, NULL);
    ck_assert_int_eq(w.rc, 1);
    ck_assert_int_eq(queue_wait(e.q, WAIT_MS), 1);       /* jobs wait: at once */

    /* A delayed job falling due ends the wait too. */
    struct queue_job j;
    claim_now(e.q, &j);
    struct queue_failure f = { .error = "x", .code = "X", .retryable = true, .retry_after_ms = 200 };
    ck_assert_int_eq(queue_fail(e.q, j.id, j.token, j.attempt, &f, NULL), 0);
    freeReplyObject(cmd(e.c, "DEL " P "notify"));
    ck_assert_int_eq(queue_wait(e.q, WAIT_MS * 2), 1);
    queue_job_done(&j);
    claim_now(e.q, &j);
    queue_job_done(&j);
    queue_free(q2);
    redisx_free(rx2);
    env_done(&e);
}
END_TEST

START_TEST(stats_count_every_state_and_workers)
{
    struct queue_limits lim = default_limits();
    lim.max_attempts = 1;
    struct qenv e;
    env_start(&e, &lim);
    struct queue_enqueue_result r;
    const char *bodies[] = { "a", "b", "c", "d", "e" };
    for (int i = 0; i < 5; i++)
        enqueue_ok(&e, "u1", bodies[i], NULL, &r);
    struct queue_job j[4];
    ck_assert_int_eq(queue_claim(e.q, 4, 0, j), 4);
    ck_assert_int_eq(queue_complete(e.q, j[0].id, j[0].token, "{}", NULL), 0);
    struct queue_failure perm = { .error = "no", .code = "NO" };
    ck_assert_int_eq(queue_fail(e.q, j[1].id, j[1].token, 1, &perm, NULL), 0);
    struct queue_failure later = { .error = "later", .code = "RL", .retryable = true, .retry_after_ms = 60000 };
    ck_assert_int_eq(queue_fail(e.q, j[2].id, j[2].token, 1, &later, NULL), 0);
    struct queue_stats st;
    ck_assert_int_eq(queue_stats(e.q, &st), 0);
    ck_assert_int_eq(st.waiting, 1);
    ck_assert_int_eq(st.active, 1);
    ck_assert_int_eq(st.delayed, 1);
    ck_assert_int_eq(st.completed, 1);
    ck_assert_int_eq(st.failed, 1);
    ck_assert_int_eq(st.total, 5);
    ck_assert_int_eq(st.completed_total, 1);
    ck_assert_int_eq(st.failed_total, 1);
    ck_assert_int_eq(st.finished_total, 2);
    ck_assert_int_gt(st.last_finish_ms, 0);
    ck_assert_int_ge(st.now_ms, st.last_finish_ms);
    ck_assert(!st.kill_switch);
    ck_assert_int_eq(st.workers_alive, 0);

    struct queue_worker_info wi = { .processed = 3, .succeeded = 1, .failed = 1, .in_flight = 1,
                                    .peak_in_flight = 2, .started_ms = 1 };
    ck_assert_int_eq(queue_heartbeat(e.q, "worker-a", &wi), 0);
    wi.in_flight = 0;
    ck_assert_int_eq(queue_heartbeat(e.q, "worker-b", &wi), 0);
    ck_assert_int_eq(queue_heartbeat(e.q, "bad id{}", &wi), -EINVAL);
    ck_assert_int_eq(queue_stats(e.q, &st), 0);
    ck_assert_int_eq(st.workers_alive, 2);
    ck_assert_int_eq(st.workers_busy, 1);
    char *v = cmd_str(e.c, "HGET " P "worker:worker-a processed");
    ck_assert_str_eq(v, "3");
    free(v);
    ck_assert_int_le(cmd_ll(e.c, "PTTL " P "worker:worker-a"), 3 * lim.heartbeat_ms);
    ck_assert_int_eq(queue_worker_gone(e.q, "worker-a"), 0);
    ck_assert_int_eq(queue_stats(e.q, &st), 0);
    ck_assert_int_eq(st.workers_alive, 1);
    ck_assert_int_eq(st.workers_busy, 0);
    ck_assert_int_eq(cmd_ll(e.c, "EXISTS " P "worker:worker-a"), 0);
    for (int i = 0; i < 4; i++)
        queue_job_done(&j[i]);
    env_done(&e);
}
END_TEST

START_TEST(every_key_has_a_ttl_or_a_bound)
{
    struct queue_limits lim = default_limits();
    lim.events_max = 8;
    lim.finished_keep = 2;
    lim.max_attempts = 2;
    lim.backoff_ms = 1;
    struct qenv e;
    env_start(&e, &lim);
    struct queue_enqueue_result r;
    struct queue_job j;
    /* Every path once: idempotency keys, progress, retry, complete, fail, release, workers. */
    for (int i = 0; i < 4; i++) {
        char body[16];
        snprintf(body, sizeof(body), "job %d", i);
        char key[16];
        snprintf(key, sizeof(key), "key-%d", i);
        enqueue_ok(&e, "u1", body, i % 2 ? key : NULL, &r);
        claim_wait(e.q, 0, &j);
        for (int k = 0; k < 20; k++)
            ck_assert_int_eq(queue_progress(e.q, j.id, j.token, k * 5), 0);
        ck_assert_int_eq(queue_complete(e.q, j.id, j.token, "{\"ok\":1}", NULL), 0);
        queue_job_done(&j);
    }
    /* History keeps the newest events_max, with their original ids. */
    struct job_event_list l;
    ck_assert_int_eq(queue_events_since(e.q, j.id, 0, &l), 0);
    ck_assert_uint_eq(l.n, 8);
    ck_assert_int_eq(l.v[0].seq, 15);
    ck_assert_str_eq(l.v[7].name, "completed");
    ck_assert_int_eq(l.v[7].seq, 22);
    job_event_list_done(&l);
    ck_assert_int_eq(cmd_ll(e.c, "ZCARD " P "completed"), 2);   /* count cap */

    enqueue_ok(&e, "u2", "fails", "k2", &r);
    struct queue_failure f = { .error = "e", .code = "E", .retryable = true, .spend_attempt = true };
    claim_wait(e.q, 0, &j);
    ck_assert_int_eq(queue_fail(e.q, j.id, j.token, j.attempt, &f, NULL), 0);
    queue_job_done(&j);
    claim_wait(e.q, 0, &j);
    ck_assert_int_eq(queue_fail(e.q, j.id, j.token, j.attempt, &f, NULL), 0);
    queue_job_done(&j);
    enqueue_ok(&e, "u2", "released", NULL, &r);
    claim_wait(e.q, 0, &j);
    ck_assert_int_eq(queue_release(e.q, j.id, j.token, 0), 0);
    queue_job_done(&j);
    enqueue_ok(&e, "u3", "delayed", NULL, &r);
    claim_wait(e.q, 0, &j);
    struct queue_failure rl = { .error = "rl", .code = "RL", .retryable = true, .retry_after_ms = 60000 };
    ck_assert_int_eq(queue_fail(e.q, j.id, j.token, j.attempt, &rl, NULL), 0);
    queue_job_done(&j);
    enqueue_ok(&e, "u3", "running", NULL, &r);
    claim_wait(e.q, 0, &j);
    queue_job_done(&j);
    struct queue_worker_info wi = { .in_flight = 1 };
    ck_assert_int_eq(queue_heartbeat(e.q, "w1", &wi), 0);
    for (int i = 0; i < QUEUE_NOTIFY_MAX + 50; i++) {
        char body[16];
        snprintf(body, sizeof(body), "n%d", i);
        enqueue_ok(&e, "u4", body, NULL, &r);
    }
    ck_assert_int_le(cmd_ll(e.c, "LLEN " P "notify"), QUEUE_NOTIFY_MAX);

    /* The bounded set (no TTL): sizes capped or trimmed, see docs/queue.md. */
    const char *bounded[] = { P "waiting", P "active", P "delayed", P "completed", P "failed",
                              P "notify", P "stats" };
    long long cursor = 0;
    int keys = 0;
    do {
        redisReply *sr = cmd(e.c, "SCAN %lld COUNT 1000", cursor);
        ck_assert_int_eq(sr->type, REDIS_REPLY_ARRAY);
        cursor = atoll(sr->element[0]->str);
        for (size_t i = 0; i < sr->element[1]->elements; i++) {
            const char *k = sr->element[1]->element[i]->str;
            ck_assert_msg(strncmp(k, P, strlen(P)) == 0, "key outside the queue's prefix: %s", k);
            long long ttl = cmd_ll(e.c, "PTTL %s", k);
            bool known = false;
            for (size_t b = 0; b < sizeof(bounded) / sizeof(bounded[0]); b++)
                known |= strcmp(k, bounded[b]) == 0;
            ck_assert_msg(ttl > 0 || known, "key without TTL: %s", k);
            keys++;
        }
        freeReplyObject(sr);
    } while (cursor != 0);
    ck_assert_int_gt(keys, QUEUE_NOTIFY_MAX);
    /* Finished records stay IDEMPOTENCY_TTL; unfinished ones longer. */
    long long t = cmd_ll(e.c, "TTL " P "events:%s", j.id);
    ck_assert(t > lim.ttl_s && t <= lim.ttl_s + (lim.deadline_ms + lim.lease_ms) / 1000 + 1);
    ck_assert_int_gt(cmd_ll(e.c, "TTL " P "job:%s", r.job_id), lim.ttl_s);
    env_done(&e);
}
END_TEST

START_TEST(waiting_jobs_survive_a_redis_restart)
{
    struct qenv e;
    env_start_ex(&e, NULL, true);
    struct queue_enqueue_result r[5];
    const char *bodies[] = { "a", "b", "c", "d", "e" };
    for (int i = 0; i < 5; i++)
        enqueue_ok(&e, "u1", bodies[i], NULL, &r[i]);
    redisFree(e.c);
    e.c = NULL;
    ck_assert_int_eq(fx_redis_restart(&e.rs), 0);
    e.c = fx_redis_connect(&e.rs);
    ck_assert_ptr_nonnull(e.c);
    /* The queue's connection notices the restart and reconnects (with backoff). */
    struct queue_stats st;
    int64_t end = clock_mono_ms() + WAIT_MS;
    int rc;
    while ((rc = queue_stats(e.q, &st)) != 0) {
        ck_assert_msg(rc == -EIO || rc == -EAGAIN || rc == -ETIMEDOUT, "stats: %d", rc);
        ck_assert(clock_mono_ms() < end);
        poll(NULL, 0, 20);
    }
    ck_assert_int_eq(st.waiting, 5);
    struct queue_job j[5];
    ck_assert_int_eq(queue_claim(e.q, 5, 0, j), 5);      /* scripts reloaded after NOSCRIPT */
    for (int i = 0; i < 5; i++) {
        ck_assert_str_eq(j[i].id, r[i].job_id);          /* in submission order */
        queue_job_done(&j[i]);
    }
    env_done(&e);
}
END_TEST

/* ------------------------------------------------------------ Redis Cluster */

static redisContext *try_connect(int port)
{
    struct timeval tv = { .tv_sec = 1 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c)
        redisSetTimeout(c, tv);
    return c;
}

START_TEST(scripts_keep_to_one_cluster_slot)
{
    /* A one-node cluster owning every slot: Redis then enforces that each
     * script touches only keys of its declared keys' slot. */
    char *dir = fixture_mkdtemp("cluster");
    ck_assert_ptr_nonnull(dir);
    int port = fixture_free_port(), bus = fixture_free_port();
    for (int i = 0; bus == port && i < 10; i++)
        bus = fixture_free_port();
    ck_assert_int_ne(bus, port);
    ck_assert_int_gt(port, 0);
    ck_assert_int_gt(bus, 0);
    char ports[16], buss[16];
    snprintf(ports, sizeof(ports), "%d", port);
    snprintf(buss, sizeof(buss), "%d", bus);   /* else port + 10000, maybe taken or > 65535 */
    const char *argv[] = { "redis-server", "--port", ports, "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-port", buss,
                           "--cluster-config-file", "nodes.conf", "--dir", dir, NULL };
    struct fx_proc srv;
    ck_assert_int_eq(fx_proc_start(&srv, "redis-cluster", fixture_bin("REDIS_SERVER", "redis-server"),
                                   argv, NULL), 0);
    redisContext *c = NULL;
    redisReply *rr;
    int64_t end = clock_mono_ms() + WAIT_MS;
    for (;;) {                                  /* answers PING */
        c = try_connect(port);
        rr = c ? redisCommand(c, "PING") : NULL;
        bool ok = rr && rr->type == REDIS_REPLY_STATUS;
        if (rr)
            freeReplyObject(rr);
        if (ok)
            break;
        if (c)
            redisFree(c);
        if (!fx_proc_running(&srv))
            fx_proc_print_log(&srv);
        ck_assert_msg(fx_proc_running(&srv), "redis-server (cluster) exited");
        if (clock_mono_ms() >= end)
            fx_proc_print_log(&srv);
        ck_assert(clock_mono_ms() < end);
        poll(NULL, 0, 10);
    }
    rr = cmd(c, "CLUSTER ADDSLOTSRANGE 0 16383");
    ck_assert_msg(rr->type == REDIS_REPLY_STATUS, "ADDSLOTSRANGE: %s", rr->str);
    freeReplyObject(rr);
    for (;;) {
        char *info = cmd_str(c, "CLUSTER INFO");
        bool ok = info && strstr(info, "cluster_state:ok");
        free(info);
        if (ok)
            break;
        ck_assert(clock_mono_ms() < end);
        poll(NULL, 0, 10);
    }
    /* The check is real: a strict script touching another slot is refused. */
    ck_assert_int_ne(cmd_ll(c, "CLUSTER KEYSLOT other"), cmd_ll(c, "CLUSTER KEYSLOT " P "x"));
    rr = cmd(c, "EVAL %s 1 %s", "#!lua\nreturn redis.call('GET', 'other')", P "x");
    ck_assert_int_eq(rr->type, REDIS_REPLY_ERROR);
    freeReplyObject(rr);

    struct queue_limits lim = default_limits();
    lim.max_attempts = 2;
    lim.backoff_ms = 1;
    struct redisx *rx = connect_rx(port);
    struct queue *q = queue_new(rx, &lim);
    struct job_params p = params("cluster content", "Spanish");
    struct queue_enqueue_result r, r2;
    int rc = queue_enqueue(q, "u1", &p, "key", &r);
    ck_assert_msg(rc == 0, "enqueue: %d %s", rc, queue_last_error(q));
    ck_assert_int_eq(queue_enqueue(q, "u1", &p, "key", &r2), 0);
    ck_assert(r2.existing);
    struct queue_job j;
    rc = queue_claim(q, 1, QUEUE_CLAIM_PAID, &j);
    ck_assert_msg(rc == 1, "claim: %d %s", rc, queue_last_error(q));
    ck_assert_int_eq(queue_progress(q, j.id, j.token, 10), 0);
    bool held;
    ck_assert_int_eq(queue_renew(q, &(struct queue_lease_ref){ j.id, j.token }, 1, &held), 1);
    struct queue_failure f = { .error = "e", .code = "E", .retryable = true, .spend_attempt = true };
    ck_assert_int_eq(queue_fail(q, j.id, j.token, j.attempt, &f, NULL), 0);
    queue_job_done(&j);
    claim_wait(q, 0, &j);
    ck_assert_int_eq(queue_release(q, j.id, j.token, 0), 0);
    queue_job_done(&j);
    claim_wait(q, 0, &j);
    rc = queue_complete(q, j.id, j.token, "{\"ok\":true}", NULL);
    ck_assert_msg(rc == 0, "complete: %d %s", rc, queue_last_error(q));
    queue_job_done(&j);
    ck_assert_int_eq(queue_enqueue(q, "u1", &(struct job_params){ .content = (char *)"f" }, NULL, &r2), 0);
    claim_wait(q, 0, &j);
    ck_assert_int_eq(queue_fail(q, j.id, j.token, j.attempt, &(struct queue_failure){ .code = "X" }, NULL), 0);
    queue_job_done(&j);
    struct queue_worker_info wi = { .in_flight = 1 };
    ck_assert_int_eq(queue_heartbeat(q, "w1", &wi), 0);
    struct queue_stats st;
    rc = queue_stats(q, &st);
    ck_assert_msg(rc == 0, "stats: %d %s", rc, queue_last_error(q));
    ck_assert_int_eq(st.completed, 1);
    ck_assert_int_eq(st.failed, 1);
    ck_assert_int_eq(st.workers_busy, 1);
    ck_assert_int_eq(queue_worker_gone(q, "w1"), 0);
    ck_assert_int_eq(queue_wait(q, 10), 0);
    queue_enqueue_result_done(&r2);
    queue_free(q);
    redisx_free(rx);
    redisFree(c);
    fx_proc_stop(&srv, 0);
    fx_proc_done(&srv);
    fixture_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *queue_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *tc = tcase_create("records");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, lua_iso8601_matches_gmtime);
    tcase_add_test(tc, event_records_encode_and_decode_defensively);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, enqueue_claim_progress_complete_with_events_in_order);
    tcase_add_test(tc, same_request_returns_the_same_job);
    tcase_add_test(tc, idempotency_key_is_scoped_per_user);
    tcase_add_test(tc, mapping_to_an_expired_job_creates_a_new_one);
    tcase_add_test(tc, failed_job_is_not_reused);
    tcase_add_test(tc, fifty_concurrent_duplicates_make_one_job);
    suite_add_tcase(s, tc);

    tc = tcase_create("fencing");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, expired_lease_fences_the_old_worker);
    tcase_add_test(tc, lease_expiry_on_the_last_attempt_fails_the_job);
    tcase_add_test(tc, retryable_failure_waits_then_runs_as_attempt_two);
    tcase_add_test(tc, provider_429_does_not_spend_an_attempt);
    tcase_add_test(tc, permanent_failure_fails_at_once_with_one_event);
    tcase_add_test(tc, renew_extends_held_leases_and_reports_lost_ones);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, queue_full_refuses_new_jobs_but_answers_duplicates);
    tcase_add_test(tc, kill_switch_refuses_submissions_and_paid_claims);
    tcase_add_test(tc, release_hands_the_job_back_without_spending_it);
    tcase_add_test(tc, jobs_past_their_deadline_fail_instead_of_running);
    suite_add_tcase(s, tc);

    tc = tcase_create("operations");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, wait_returns_when_work_arrives);
    tcase_add_test(tc, stats_count_every_state_and_workers);
    tcase_add_test(tc, every_key_has_a_ttl_or_a_bound);
    tcase_add_test(tc, waiting_jobs_survive_a_redis_restart);
    tcase_add_test(tc, scripts_keep_to_one_cluster_slot);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(queue_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
