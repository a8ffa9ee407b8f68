/*
 * The fake AI provider (tests/support/fake-provider.c) against libcurl, as
 * the worker will see it: the OpenAI and Azure wire formats (paths, auth,
 * envelope, error bodies, rate-limit and retry headers), the flashcards /
 * lessons decision, and every fault action of the control API
 * (tests/support/fake-provider.md): scripts, the default step, the
 * X-Fake-Action header, stats and reset; hang while another request is
 * served, 1000 parked requests at once, a 100 MB streamed body, resets.
 *
 * Each test starts its own provider with --port 0 and reads PORT=<n> from its
 * output; every wait polls a condition against a deadline.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "tests/support/fixture.h"

#define KEY          "sk-test-secret-key-1234"
#define START_MS     20000
#define MANY         1000     /* parked requests held at once */
#define HUGE_BYTES   (100LL << 20)

static struct fx_proc fp;
static char base[64];         /* http://127.0.0.1:<port> */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void start_provider(const char *key)
{
    const char *bin = fixture_bin("FLASHGATE_FAKE_PROVIDER", NULL);
    ck_assert_msg(bin != NULL, "FLASHGATE_FAKE_PROVIDER is not set (run through meson test)");
    const char *argv_any[] = { bin, "--port", "0", NULL };
    const char *argv_key[] = { bin, "--port", "0", "--api-key", key, NULL };
    ck_assert_int_eq(fx_proc_start(&fp, "fake-provider", bin, key ? argv_key : argv_any, NULL), 0);

    /* The first line of its output is PORT=<n>. */
    int port = 0;
    for (int64_t deadline = mono_ms() + START_MS; !port && mono_ms() < deadline;) {
        char *log = fx_proc_log(&fp);
        const char *p = log ? strstr(log, "PORT=") : NULL;
        if (p && strchr(p, '\n'))
            port = atoi(p + 5);
        free(log);
        if (!port) {
            ck_assert_msg(fx_proc_running(&fp), "fake-provider exited before printing PORT=");
            struct timespec ts = { 0, 5 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    ck_assert_int_gt(port, 0);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    char url[128];
    snprintf(url, sizeof url, "%s/_fake/health", base);
    ck_assert_int_eq(fx_proc_wait_http(&fp, url, START_MS), 0);
}

static void setup_any(void) { start_provider(NULL); }
static void setup_key(void) { start_provider(KEY); }

static void teardown(void)
{
    int rc = fx_proc_running(&fp) ? fx_proc_stop(&fp, 0) : 0;
    fx_proc_done(&fp);
    ck_assert_int_eq(rc, 0);
}

/* ---- helpers */

static struct json_object *parse(const char *s)
{
    struct json_object *o = s ? json_tokener_parse(s) : NULL;
    ck_assert_msg(o != NULL, "not JSON: %.300s", s ? s : "(null)");
    return o;
}

/* "a.b.0.c": members and array indices.  Borrowed; NULL if absent (or null). */
static struct json_object *jp(struct json_object *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *t = strtok_r(buf, ".", &save); o && t; t = strtok_r(NULL, ".", &save)) {
        if (json_object_is_type(o, json_type_array)) {
            size_t i = strtoul(t, NULL, 10);
            o = i < json_object_array_length(o) ? json_object_array_get_idx(o, i) : NULL;
        } else if (!json_object_object_get_ex(o, t, &o)) {
            return NULL;
        }
    }
    return o;
}

static bool jhas(struct json_object *o, const char *path)
{
    char buf[256], *dot;
    snprintf(buf, sizeof buf, "%s", path);
    dot = strrchr(buf, '.');
    struct json_object *parent = o;
    const char *leaf = buf;
    if (dot) {
        *dot = '\0';
        parent = jp(o, buf);
        leaf = dot + 1;
    }
    return parent && json_object_object_get_ex(parent, leaf, NULL);
}

static const char *jstr(struct json_object *o, const char *path)
{
    struct json_object *v = jp(o, path);
    ck_assert_msg(v && json_object_is_type(v, json_type_string), "%s is not a string", path);
    return json_object_get_string(v);
}

static int64_t jint(struct json_object *o, const char *path)
{
    struct json_object *v = jp(o, path);
    ck_assert_msg(v && json_object_is_type(v, json_type_int), "%s is not an integer", path);
    return json_object_get_int64(v);
}

static size_t jlen(struct json_object *o, const char *path)
{
    struct json_object *v = jp(o, path);
    ck_assert_msg(v && json_object_is_type(v, json_type_array), "%s is not an array", path);
    return json_object_array_length(v);
}

static void url_of(char *out, size_t cap, const char *path)
{
    snprintf(out, cap, "%s%s", base, path);
}

/* POST a body to path with Authorization (unless auth is NULL) and an
 * optional X-Fake-Action. */
static int post_to(const char *path, const char *body, const char *auth_header, const char *action,
                   struct fx_http_resp *resp)
{
    char url[512], act[1024];
    const char *hdrs[4];
    size_t n = 0;
    url_of(url, sizeof url, path);
    if (auth_header)
        hdrs[n++] = auth_header;
    if (action) {
        snprintf(act, sizeof act, "X-Fake-Action: %s", action);
        hdrs[n++] = act;
    }
    hdrs[n] = NULL;
    return fx_http_post_json(url, body, hdrs, resp);
}

#define AUTH_ANY "Authorization: Bearer sk-anything"
#define CHAT_PATH "/v1/chat/completions"
#define AZ_PATH "/openai/deployments/dep-a/chat/completions?api-version=2024-06-01"

static const char *const plain_body =
    "{\"model\":\"gpt-4o-mini\",\"response_format\":{\"type\":\"json_object\"},\"max_tokens\":2000,"
    "\"temperature\":0.7,\"messages\":[{\"role\":\"system\",\"content\":\"You create flashcards as JSON.\"},"
    "{\"role\":\"user\",\"content\":\"Photosynthesis converts sunlight into sugar inside chloroplasts.\"}]}";

/* POST plain_body to the OpenAI path; returns the status. */
static long chat(const char *action, struct fx_http_resp *resp)
{
    ck_assert_int_eq(post_to(CHAT_PATH, plain_body, AUTH_ANY, action, resp), 0);
    return resp->status;
}

static long chat_status(const char *action)
{
    struct fx_http_resp r;
    long st = chat(action, &r);
    fx_http_resp_done(&r);
    return st;
}

static void ctl(const char *path, const char *json)
{
    char url[256];
    struct fx_http_resp r;
    url_of(url, sizeof url, path);
    ck_assert_int_eq(fx_http_post_json(url, json, NULL, &r), 0);
    ck_assert_msg(r.status == 200, "%s -> %ld %s", path, r.status, r.body);
    fx_http_resp_done(&r);
}

static struct json_object *stats(void)
{
    char url[256];
    struct fx_http_resp r;
    url_of(url, sizeof url, "/_fake/stats");
    ck_assert_int_eq(fx_http_get(url, &r), 0);
    ck_assert_int_eq(r.status, 200);
    struct json_object *o = parse(r.body);
    fx_http_resp_done(&r);
    return o;
}

/* Poll stats until member `key` equals want (deadline 10 s). */
static void wait_stat(const char *key, int64_t want)
{
    int64_t got = -1, deadline = mono_ms() + 10000;
    while (mono_ms() < deadline) {
        struct json_object *s = stats();
        got = jint(s, key);
        json_object_put(s);
        if (got == want)
            return;
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("stats.%s is %lld, want %lld", key, (long long)got, (long long)want);
}

/* The assistant content of a completion, parsed as JSON (NULL if it is not JSON). */
static struct json_object *content_json(struct json_object *env)
{
    return json_tokener_parse(jstr(env, "choices.0.message.content"));
}

static void assert_error_envelope(const char *body, const char *type, const char *code)
{
    struct json_object *o = parse(body);
    ck_assert(jp(o, "error.message") && strlen(jstr(o, "error.message")) > 0);
    ck_assert(jhas(o, "error.type") && jhas(o, "error.param") && jhas(o, "error.code"));
    if (type)
        ck_assert_str_eq(jstr(o, "error.type"), type);
    else
        ck_assert_ptr_null(jp(o, "error.type"));
    if (code)
        ck_assert_str_eq(jstr(o, "error.code"), code);
    else
        ck_assert_ptr_null(jp(o, "error.code"));
    json_object_put(o);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Raw libcurl for what fx_http does not cover (transport errors, multi, huge bodies). */
struct raw {
    CURL *h;
    struct curl_slist *hdrs;
    long long bytes;
    char head[64];
    char tail[64];
    size_t headn;
    CURLcode rc;
    bool done;
    int64_t done_ms;
};

static size_t raw_write(char *p, size_t sz, size_t n, void *ud)
{
    struct raw *r = ud;
    size_t len = sz * n;
    for (size_t i = 0; i < len && r->headn < sizeof r->head - 1; i++)
        r->head[r->headn++] = p[i];
    size_t keep = sizeof r->tail - 1;
    if (len >= keep) {
        memcpy(r->tail, p + len - keep, keep);
        r->tail[keep] = '\0';
    } else {
        size_t have = strlen(r->tail);
        if (have + len > keep) {
            memmove(r->tail, r->tail + (have + len - keep), keep - len);
            have = keep - len;
        }
        memcpy(r->tail + have, p, len);
        r->tail[have + len] = '\0';
    }
    r->bytes += (long long)len;
    return len;
}

static void raw_init(struct raw *r, const char *action, long timeout_ms)
{
    static char url[256];
    char act[512];
    memset(r, 0, sizeof *r);
    url_of(url, sizeof url, CHAT_PATH);
    r->h = curl_easy_init();
    ck_assert_ptr_nonnull(r->h);
    r->hdrs = curl_slist_append(r->hdrs, "Content-Type: application/json");
    r->hdrs = curl_slist_append(r->hdrs, AUTH_ANY);
    r->hdrs = curl_slist_append(r->hdrs, "Expect:");
    if (action) {
        snprintf(act, sizeof act, "X-Fake-Action: %s", action);
        r->hdrs = curl_slist_append(r->hdrs, act);
    }
    curl_easy_setopt(r->h, CURLOPT_URL, url);
    curl_easy_setopt(r->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(r->h, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(r->h, CURLOPT_POSTFIELDS, plain_body);
    curl_easy_setopt(r->h, CURLOPT_WRITEFUNCTION, raw_write);
    curl_easy_setopt(r->h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(r->h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(r->h, CURLOPT_PRIVATE, r);
}

static void raw_done(struct raw *r)
{
    curl_easy_cleanup(r->h);
    curl_slist_free_all(r->hdrs);
}

static long raw_status(struct raw *r)
{
    long st = 0;
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &st);
    return st;
}

/* Run a multi handle until every transfer is done (deadline 60 s). */
static void multi_run(CURLM *m, int total)
{
    int running = 1, finished = 0;
    int64_t deadline = mono_ms() + 60000;
    while (finished < total) {
        ck_assert_msg(mono_ms() < deadline, "transfers did not finish");
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct raw *r;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            r->rc = msg->data.result;
            r->done = true;
            r->done_ms = mono_ms();
            finished++;
        }
        if (finished < total)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
}

/* ---- wire format */

START_TEST(ok_openai_envelope_headers_and_content)
{
    struct fx_http_resp r;
    int64_t now = time(NULL);
    ck_assert_int_eq(chat(NULL, &r), 200);

    const char *ct = fx_http_header(&r, "content-type");
    ck_assert(ct && !strncmp(ct, "application/json", 16));
    const char *rid = fx_http_header(&r, "x-request-id");
    ck_assert(rid && !strncmp(rid, "req_", 4) && strlen(rid) > 10);
    ck_assert_ptr_nonnull(fx_http_header(&r, "openai-processing-ms"));
    ck_assert_str_eq(fx_http_header(&r, "x-ratelimit-limit-requests"), "10000");
    ck_assert_ptr_nonnull(fx_http_header(&r, "x-ratelimit-remaining-requests"));
    ck_assert_ptr_nonnull(fx_http_header(&r, "x-ratelimit-limit-tokens"));
    ck_assert_ptr_nonnull(fx_http_header(&r, "x-ratelimit-remaining-tokens"));
    ck_assert_ptr_null(fx_http_header(&r, "retry-after"));

    struct json_object *env = parse(r.body);
    ck_assert(!strncmp(jstr(env, "id"), "chatcmpl-", 9));
    ck_assert_str_eq(jstr(env, "object"), "chat.completion");
    ck_assert(llabs(jint(env, "created") - now) < 600);
    ck_assert_str_eq(jstr(env, "model"), "gpt-4o-mini");
    ck_assert_str_eq(jstr(env, "system_fingerprint"), "fp_fake");
    ck_assert_int_eq(jlen(env, "choices"), 1);
    ck_assert_int_eq(jint(env, "choices.0.index"), 0);
    ck_assert_str_eq(jstr(env, "choices.0.message.role"), "assistant");
    ck_assert(jhas(env, "choices.0.message.refusal") && !jp(env, "choices.0.message.refusal"));
    ck_assert(jhas(env, "choices.0.logprobs") && !jp(env, "choices.0.logprobs"));
    ck_assert_str_eq(jstr(env, "choices.0.finish_reason"), "stop");
    ck_assert_ptr_null(jp(env, "prompt_filter_results"));

    /* usage: prompt = message characters / 4 (rounded up), completion = content / 4 */
    struct json_object *req = parse(plain_body);
    size_t chars = strlen(jstr(req, "messages.0.content")) + strlen(jstr(req, "messages.1.content"));
    json_object_put(req);
    const char *content = jstr(env, "choices.0.message.content");
    ck_assert_int_eq(jint(env, "usage.prompt_tokens"), (int64_t)(chars + 3) / 4);
    ck_assert_int_eq(jint(env, "usage.completion_tokens"), (int64_t)(strlen(content) + 3) / 4);
    ck_assert_int_eq(jint(env, "usage.total_tokens"),
                     jint(env, "usage.prompt_tokens") + jint(env, "usage.completion_tokens"));

    /* content: five flashcards whose terms come from the user's text */
    struct json_object *c = content_json(env);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_null(jp(c, "lessons"));
    ck_assert_int_eq(jlen(c, "flashcards"), 5);
    bool photo = false, chloro = false;
    for (int i = 0; i < 5; i++) {
        char p[64];
        const char *fields[] = { "front", "back", "topic", "example", "pronunciation" };
        for (size_t f = 0; f < 5; f++) {
            snprintf(p, sizeof p, "flashcards.%d.%s", i, fields[f]);
            ck_assert(strlen(jstr(c, p)) > 0);
        }
        snprintf(p, sizeof p, "flashcards.%d.difficulty", i);
        ck_assert_str_eq(jstr(c, p), "beginner");
        snprintf(p, sizeof p, "flashcards.%d.front", i);
        photo |= !strcmp(jstr(c, p), "Photosynthesis");
        chloro |= !strcmp(jstr(c, p), "chloroplasts");
    }
    ck_assert(photo && chloro);
    json_object_put(c);
    json_object_put(env);
    fx_http_resp_done(&r);
}
END_TEST

START_TEST(path_without_v1_is_accepted)
{
    struct fx_http_resp r;
    ck_assert_int_eq(post_to("/chat/completions", plain_body, AUTH_ANY, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    struct json_object *env = parse(r.body);
    ck_assert_str_eq(jstr(env, "object"), "chat.completion");
    json_object_put(env);
    fx_http_resp_done(&r);
}
END_TEST

START_TEST(lessons_when_a_message_says_lessons)
{
    static const char body[] =
        "{\"model\":\"gpt-4o-mini\",\"response_format\":{\"type\":\"json_object\"},\"messages\":["
        "{\"role\":\"system\",\"content\":\"Answer with JSON: {\\\"lessons\\\":[...]}\"},"
        "{\"role\":\"user\",\"content\":\"Mitochondria generate adenosine triphosphate.\"}]}";
    struct fx_http_resp r;
    ck_assert_int_eq(post_to(CHAT_PATH, body, AUTH_ANY, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    struct json_object *env = parse(r.body), *c = content_json(env);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_null(jp(c, "flashcards"));
    ck_assert_int_eq(jlen(c, "lessons"), 1);
    ck_assert(strlen(jstr(c, "lessons.0.title")) > 0);
    ck_assert(strlen(jstr(c, "lessons.0.subject")) > 0);
    ck_assert(strlen(jstr(c, "lessons.0.topicName")) > 0);
    ck_assert_int_eq(jlen(c, "lessons.0.vocabulary"), 3);
    ck_assert_int_eq(jlen(c, "lessons.0.conversation"), 4);
    const char *vf[] = { "target_term", "definition", "native_translation",
                         "example_sentence_target", "example_sentence_native" };
    bool seen = false;
    for (int i = 0; i < 3; i++)
        for (size_t f = 0; f < 5; f++) {
            char p[96];
            snprintf(p, sizeof p, "lessons.0.vocabulary.%d.%s", i, vf[f]);
            ck_assert(strlen(jstr(c, p)) > 0);
            seen |= f == 0 && !strcmp(jstr(c, p), "Mitochondria");
        }
    ck_assert(seen);
    for (int i = 0; i < 4; i++) {
        char p[96];
        snprintf(p, sizeof p, "lessons.0.conversation.%d.speaker", i);
        ck_assert(strlen(jstr(c, p)) > 0);
        snprintf(p, sizeof p, "lessons.0.conversation.%d.message", i);
        ck_assert(strlen(jstr(c, p)) > 0);
    }
    json_object_put(c);
    json_object_put(env);
    fx_http_resp_done(&r);
}
END_TEST

START_TEST(request_validation_like_the_real_api)
{
    struct fx_http_resp r;
    /* json_object without the word "json" in any message */
    ck_assert_int_eq(post_to(CHAT_PATH, "{\"model\":\"m\",\"response_format\":{\"type\":\"json_object\"},"
                             "\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}]}", AUTH_ANY, NULL, &r), 0);
    ck_assert_int_eq(r.status, 400);
    assert_error_envelope(r.body, "invalid_request_error", NULL);
    ck_assert(strstr(r.body, "must contain the word 'json'"));
    fx_http_resp_done(&r);
    /* not JSON */
    ck_assert_int_eq(post_to(CHAT_PATH, "{not json", AUTH_ANY, NULL, &r), 0);
    ck_assert_int_eq(r.status, 400);
    assert_error_envelope(r.body, "invalid_request_error", NULL);
    ck_assert(strstr(r.body, "could not parse the JSON body"));
    fx_http_resp_done(&r);
    /* no model (OpenAI needs one) */
    ck_assert_int_eq(post_to(CHAT_PATH, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", AUTH_ANY, NULL, &r), 0);
    ck_assert_int_eq(r.status, 400);
    ck_assert(strstr(r.body, "you must provide a model parameter"));
    fx_http_resp_done(&r);
    /* no messages */
    ck_assert_int_eq(post_to(CHAT_PATH, "{\"model\":\"m\"}", AUTH_ANY, NULL, &r), 0);
    ck_assert_int_eq(r.status, 400);
    assert_error_envelope(r.body, "invalid_request_error", "missing_required_parameter");
    fx_http_resp_done(&r);
    /* unknown path, wrong method */
    ck_assert_int_eq(post_to("/v1/completions-nope", plain_body, AUTH_ANY, NULL, &r), 0);
    ck_assert_int_eq(r.status, 404);
    assert_error_envelope(r.body, "invalid_request_error", NULL);
    fx_http_resp_done(&r);
    char url[256];
    url_of(url, sizeof url, CHAT_PATH);
    ck_assert_int_eq(fx_http_get(url, &r), 0);
    ck_assert_int_eq(r.status, 405);
    fx_http_resp_done(&r);
}
END_TEST

START_TEST(max_tokens_cuts_the_content)
{
    static const char body[] = "{\"model\":\"m\",\"max_tokens\":10,"
        "\"messages\":[{\"role\":\"user\",\"content\":\"Photosynthesis and chloroplasts\"}]}";
    struct fx_http_resp r;
    ck_assert_int_eq(post_to(CHAT_PATH, body, AUTH_ANY, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    struct json_object *env = parse(r.body);
    ck_assert_str_eq(jstr(env, "choices.0.finish_reason"), "length");
    ck_assert_int_le(strlen(jstr(env, "choices.0.message.content")), 40);
    ck_assert_int_le(jint(env, "usage.completion_tokens"), 10);
    json_object_put(env);
    fx_http_resp_done(&r);
}
END_TEST

/* ---- scripted faults */

START_TEST(script_runs_in_order_then_default_ok)
{
    ctl("/_fake/script", "{\"steps\":[{\"action\":\"status\",\"status\":500,\"count\":2},{\"action\":\"ok\"}]}");
    struct fx_http_resp r;
    ck_assert_int_eq(chat(NULL, &r), 500);
    assert_error_envelope(r.body, "server_error", NULL);
    ck_assert(strstr(r.body, "The server had an error while processing your request"));
    fx_http_resp_done(&r);
    ck_assert_int_eq(chat_status(NULL), 500);
    ck_assert_int_eq(chat_status(NULL), 200);
    ck_assert_int_eq(chat_status(NULL), 200);     /* script ran out: default ok */
    struct json_object *s = stats();
    ck_assert_int_eq(jint(s, "scriptRemaining"), 0);
    ck_assert_int_eq(jint(s, "byStatus.500"), 2);
    ck_assert_int_eq(jint(s, "byStatus.200"), 2);
    json_object_put(s);
    /* append keeps the rest of the running script */
    ctl("/_fake/script", "{\"steps\":[{\"action\":\"status\",\"status\":503}]}");
    ctl("/_fake/script", "{\"append\":true,\"steps\":[{\"action\":\"status\",\"status\":502}]}");
    ck_assert_int_eq(chat_status(NULL), 503);
    ck_assert_int_eq(chat_status(NULL), 502);
    ck_assert_int_eq(chat_status(NULL), 200);
}
END_TEST

START_TEST(rate_limit_429_retry_headers)
{
    ctl("/_fake/script", "{\"steps\":["
        "{\"action\":\"status\",\"status\":429,\"retryAfter\":7},"
        "{\"action\":\"status\",\"status\":429,\"retryAfterMs\":1500},"
        "{\"action\":\"status\",\"status\":429},"
        "{\"action\":\"status\",\"status\":429,\"retryHeaders\":false},"
        "{\"action\":\"status\",\"status\":503,\"retryAfter\":3}]}");
    static const char *const want[][2] = { { "7", "7000" }, { "2", "1500" }, { "1", "1000" }, { NULL, NULL } };
    for (int i = 0; i < 4; i++) {
        struct fx_http_resp r;
        ck_assert_int_eq(chat(NULL, &r), 429);
        const char *ra = fx_http_header(&r, "retry-after"), *ram = fx_http_header(&r, "retry-after-ms");
        if (want[i][0]) {
            ck_assert_msg(ra && !strcmp(ra, want[i][0]), "step %d retry-after %s", i, ra ? ra : "(none)");
            ck_assert_msg(ram && !strcmp(ram, want[i][1]), "step %d retry-after-ms %s", i, ram ? ram : "(none)");
        } else {
            ck_assert_ptr_null(ra);
            ck_assert_ptr_null(ram);
        }
        ck_assert_str_eq(fx_http_header(&r, "x-ratelimit-remaining-requests"), "0");
        assert_error_envelope(r.body, "requests", "rate_limit_exceeded");
        ck_assert(strstr(r.body, "Rate limit reached for gpt-4o-mini"));
        fx_http_resp_done(&r);
    }
    struct fx_http_resp r;
    ck_assert_int_eq(chat(NULL, &r), 503);
    ck_assert_str_eq(fx_http_header(&r, "retry-after"), "3");
    ck_assert_str_eq(fx_http_header(&r, "retry-after-ms"), "3000");
    fx_http_resp_done(&r);
}
END_TEST

START_TEST(insufficient_quota)
{
    struct fx_http_resp r;
    ck_assert_int_eq(chat("{\"action\":\"insufficient_quota\"}", &r), 429);
    assert_error_envelope(r.body, "insufficient_quota", "insufficient_quota");
    ck_assert(strstr(r.body, "You exceeded your current quota, please check your plan and billing details."));
    ck_assert_ptr_null(fx_http_header(&r, "retry-after"));
    fx_http_resp_done(&r);
}
END_TEST

START_TEST(status_bodies_and_overrides)
{
    struct fx_http_resp r;
    ck_assert_int_eq(chat("{\"action\":\"status\",\"status\":503}", &r), 503);
    assert_error_envelope(r.body, "server_error", NULL);
    ck_assert(strstr(r.body, "The engine is currently overloaded"));
    fx_http_resp_done(&r);

    ck_assert_int_eq(chat("{\"action\":\"status\",\"status\":400}", &r), 400);
    assert_error_envelope(r.body, "invalid_request_error", NULL);
    fx_http_resp_done(&r);

    ck_assert_int_eq(chat("{\"action\":\"status\",\"status\":401}", &r), 401);
    assert_error_envelope(r.body, "invalid_request_error", "invalid_api_key");
    fx_http_resp_done(&r);

    ck_assert_int_eq(chat("{\"action\":\"status\",\"status\":502}", &r), 502);
    struct json_object *o = parse(r.body);
    ck_assert_int_eq(jint(o, "error.code"), 502);
    ck_assert_str_eq(jstr(o, "error.type"), "cf_bad_gateway");
    json_object_put(o);
    fx_http_resp_done(&r);

    ck_assert_int_eq(chat("{\"action\":\"status\",\"status\":418,\"code\":\"teapot_code\","
                          "\"type\":\"teapot_type\",\"message\":\"short and stout\"}", &r), 418);
    o = parse(r.body);
    ck_assert_str_eq(jstr(o, "error.code"), "teapot_code");
    ck_assert_str_eq(jstr(o, "error.type"), "teapot_type");
    ck_assert_str_eq(jstr(o, "error.message"), "short and stout");
    json_object_put(o);
    fx_http_resp_done(&r);

    ck_assert_int_eq(chat("{\"action\":\"status\",\"status\":404,\"code\":null}", &r), 404);
    assert_error_envelope(r.body, "invalid_request_error", NULL);
    fx_http_resp_done(&r);

    /* status 200 is an ordinary success */
    ck_assert_int_eq(chat_status("{\"action\":\"status\",\"status\":200}"), 200);
}
END_TEST

START_TEST(malformed_body)
{
    struct fx_http_resp r;
    ck_assert_int_eq(chat("{\"action\":\"malformed\"}", &r), 200);
    ck_assert(r.body_len > 0);
    ck_assert_ptr_null(json_tokener_parse(r.body));
    fx_http_resp_done(&r);
    ck_assert_int_eq(chat("{\"action\":\"malformed\",\"body\":\"<html>502 Bad Gateway</html>\"}", &r), 200);
    ck_assert_str_eq(r.body, "<html>502 Bad Gateway</html>");
    fx_http_resp_done(&r);
}
END_TEST

START_TEST(bad_content)
{
    struct fx_http_resp r;
    ck_assert_int_eq(chat("{\"action\":\"bad_content\",\"content\":\"{\\\"cards\\\":[]}\"}", &r), 200);
    struct json_object *env = parse(r.body);
    ck_assert_str_eq(jstr(env, "choices.0.message.content"), "{\"cards\":[]}");
    ck_assert_str_eq(jstr(env, "choices.0.finish_reason"), "stop");
    json_object_put(env);
    fx_http_resp_done(&r);

    ck_assert_int_eq(chat("{\"action\":\"bad_content\"}", &r), 200);
    env = parse(r.body);
    ck_assert_ptr_null(content_json(env));
    json_object_put(env);
    fx_http_resp_done(&r);
}
END_TEST

START_TEST(truncated_content)
{
    struct fx_http_resp r;
    ck_assert_int_eq(chat("{\"action\":\"truncated\"}", &r), 200);
    struct json_object *env = parse(r.body);
    ck_assert_str_eq(jstr(env, "choices.0.finish_reason"), "length");
    const char *c = jstr(env, "choices.0.message.content");
    ck_assert(!strncmp(c, "{\"flashcards\":[", 15));
    ck_assert_ptr_null(content_json(env));
    json_object_put(env);
    fx_http_resp_done(&r);
}
END_TEST

START_TEST(fenced_content)
{
    struct fx_http_resp r;
    ck_assert_int_eq(chat("{\"action\":\"fenced\"}", &r), 200);
    struct json_object *env = parse(r.body);
    const char *c = jstr(env, "choices.0.message.content");
    ck_assert_ptr_null(content_json(env));          /* prose around it */
    const char *open = strstr(c, "```json\n"), *close = open ? strstr(open + 8, "\n```") : NULL;
    ck_assert(open && close);
    char *inner = strndup(open + 8, (size_t)(close - open - 8));
    struct json_object *cards = parse(inner);
    ck_assert_int_eq(jlen(cards, "flashcards"), 5);
    json_object_put(cards);
    free(inner);
    json_object_put(env);
    fx_http_resp_done(&r);
}
END_TEST

START_TEST(huge_body_is_streamed)
{
    struct raw r;
    char act[128];
    snprintf(act, sizeof act, "{\"action\":\"huge\",\"bytes\":%lld}", HUGE_BYTES);
    raw_init(&r, act, 60000);
    r.rc = curl_easy_perform(r.h);
    ck_assert_msg(r.rc == CURLE_OK, "%s", curl_easy_strerror(r.rc));
    ck_assert_int_eq(raw_status(&r), 200);
    ck_assert_int_eq(r.bytes, HUGE_BYTES);
    curl_off_t cl = -1;
    curl_easy_getinfo(r.h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    ck_assert_int_eq(cl, HUGE_BYTES);
    ck_assert(!strncmp(r.head, "{\"id\":\"chatcmpl-huge\"", 21));
    ck_assert(strstr(r.tail, "\"finish_reason\":\"stop\"}]}\n"));
    raw_done(&r);

    raw_init(&r, "{\"action\":\"huge\",\"bytes\":10}", 10000);
    r.rc = curl_easy_perform(r.h);
    ck_assert_int_eq(r.rc, CURLE_OK);
    ck_assert_int_eq(r.bytes, 10);
    raw_done(&r);
}
END_TEST

START_TEST(reset_closes_without_answer)
{
    struct raw r;
    raw_init(&r, "{\"action\":\"reset\"}", 10000);
    r.rc = curl_easy_perform(r.h);
    ck_assert_msg(r.rc == CURLE_RECV_ERROR || r.rc == CURLE_GOT_NOTHING, "%s", curl_easy_strerror(r.rc));
    ck_assert_int_eq(raw_status(&r), 0);
    raw_done(&r);

    raw_init(&r, "{\"action\":\"reset\",\"mode\":\"fin\"}", 10000);
    r.rc = curl_easy_perform(r.h);
    ck_assert_msg(r.rc == CURLE_GOT_NOTHING, "%s", curl_easy_strerror(r.rc));
    raw_done(&r);

    wait_stat("inFlight", 0);
    struct json_object *s = stats();
    ck_assert_int_eq(jint(s, "resets"), 2);
    ck_assert_int_eq(jlen(s, "arrivals"), 2);
    ck_assert_str_eq(jstr(s, "arrivals.0.outcome"), "reset");
    ck_assert_str_eq(jstr(s, "arrivals.0.action"), "reset");
    ck_assert_ptr_null(jp(s, "arrivals.0.status"));
    json_object_put(s);
}
END_TEST

START_TEST(hang_times_out_while_another_request_succeeds)
{
    struct raw hang, ok;
    CURLM *m = curl_multi_init();
    raw_init(&hang, "{\"action\":\"hang\"}", 1500);
    raw_init(&ok, NULL, 10000);
    curl_multi_add_handle(m, hang.h);
    /* start the second request only once the hang has arrived */
    int running;
    int64_t deadline = mono_ms() + 10000;
    for (;;) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 20, NULL);
        struct json_object *s = stats();
        int64_t inflight = jint(s, "inFlight");
        json_object_put(s);
        if (inflight == 1)
            break;
        ck_assert_msg(mono_ms() < deadline, "the hanging request never arrived");
    }
    curl_multi_add_handle(m, ok.h);
    multi_run(m, 2);
    ck_assert_msg(hang.rc == CURLE_OPERATION_TIMEDOUT, "%s", curl_easy_strerror(hang.rc));
    ck_assert_int_eq(raw_status(&hang), 0);
    ck_assert_msg(ok.rc == CURLE_OK, "%s", curl_easy_strerror(ok.rc));
    ck_assert_int_eq(raw_status(&ok), 200);
    ck_assert(ok.done_ms < hang.done_ms);
    curl_multi_remove_handle(m, hang.h);
    curl_multi_remove_handle(m, ok.h);
    raw_done(&hang);
    raw_done(&ok);
    curl_multi_cleanup(m);

    /* the provider noticed the client give up */
    wait_stat("inFlight", 0);
    struct json_object *s = stats();
    ck_assert_int_eq(jint(s, "clientClosed"), 1);
    ck_assert_str_eq(jstr(s, "arrivals.0.action"), "hang");
    ck_assert_str_eq(jstr(s, "arrivals.0.outcome"), "client_closed");
    ck_assert_ptr_null(jp(s, "arrivals.0.status"));
    ck_assert_ptr_nonnull(jp(s, "arrivals.0.done_us"));
    json_object_put(s);
}
END_TEST

START_TEST(thousand_delayed_requests_at_once)
{
    raise_nofile();
    ctl("/_fake/default", "{\"action\":\"ok\",\"delayMs\":1000}");
    struct raw *rs = calloc(MANY, sizeof *rs);
    ck_assert_ptr_nonnull(rs);
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    for (int i = 0; i < MANY; i++) {
        raw_init(&rs[i], NULL, 30000);
        curl_multi_add_handle(m, rs[i].h);
    }
    multi_run(m, MANY);
    for (int i = 0; i < MANY; i++) {
        ck_assert_msg(rs[i].rc == CURLE_OK, "request %d: %s", i, curl_easy_strerror(rs[i].rc));
        ck_assert_int_eq(raw_status(&rs[i]), 200);
        double t = 0;
        curl_easy_getinfo(rs[i].h, CURLINFO_TOTAL_TIME, &t);
        ck_assert_msg(t >= 0.99, "request %d answered after %.3f s, before its delay", i, t);
        curl_multi_remove_handle(m, rs[i].h);
        raw_done(&rs[i]);
    }
    curl_multi_cleanup(m);
    free(rs);
    struct json_object *s = stats();
    ck_assert_int_eq(jint(s, "maxInFlight"), MANY);
    ck_assert_int_eq(jint(s, "byStatus.200"), MANY);
    json_object_put(s);
}
END_TEST

START_TEST(header_overrides_without_consuming_the_script)
{
    ctl("/_fake/script", "{\"steps\":[{\"action\":\"status\",\"status\":500}]}");
    ck_assert_int_eq(chat_status("{\"action\":\"ok\"}"), 200);
    ck_assert_int_eq(chat_status("{\"action\":\"status\",\"status\":409}"), 409);
    ck_assert_int_eq(chat_status(NULL), 500);
    ck_assert_int_eq(chat_status(NULL), 200);
    /* a bad header is a 400 that names the problem */
    struct fx_http_resp r;
    ck_assert_int_eq(chat("{\"action\":\"explode\"}", &r), 400);
    ck_assert(strstr(r.body, "unknown action"));
    fx_http_resp_done(&r);
}
END_TEST

START_TEST(stats_count_and_reset_clears)
{
    ctl("/_fake/script", "{\"steps\":[{\"action\":\"ok\"},{\"action\":\"status\",\"status\":503}]}");
    int64_t t_before = (int64_t)time(NULL) * 1000000;
    ck_assert_int_eq(chat_status(NULL), 200);
    ck_assert_int_eq(chat_status(NULL), 503);
    struct fx_http_resp r;
    ck_assert_int_eq(post_to("/v1/other", plain_body, AUTH_ANY, NULL, &r), 0);
    ck_assert_int_eq(r.status, 404);
    fx_http_resp_done(&r);

    wait_stat("inFlight", 0);
    struct json_object *s = stats();
    ck_assert_int_eq(jint(s, "requests"), 3);
    ck_assert_int_eq(jint(s, "byStatus.200"), 1);
    ck_assert_int_eq(jint(s, "byStatus.503"), 1);
    ck_assert_int_eq(jint(s, "byStatus.404"), 1);
    ck_assert_int_eq(jint(s, "byPath./v1/chat/completions"), 2);
    /* (not maxInFlight: a request counts until MHD has finished sending it,
     * which may be after the client has started the next one) */
    ck_assert_int_eq(jlen(s, "arrivals"), 3);
    int64_t prev = 0;
    for (int i = 0; i < 3; i++) {
        char p[64];
        snprintf(p, sizeof p, "arrivals.%d.t_us", i);
        int64_t t = jint(s, p);
        ck_assert(t >= t_before - 1000000 && t >= prev);
        prev = t;
        snprintf(p, sizeof p, "arrivals.%d.done_us", i);
        ck_assert(jint(s, p) >= t);
        snprintf(p, sizeof p, "arrivals.%d.apiKeyOk", i);
        ck_assert(json_object_get_boolean(jp(s, p)));
        snprintf(p, sizeof p, "arrivals.%d.deployment", i);
        ck_assert(jhas(s, p) && !jp(s, p));
    }
    ck_assert_str_eq(jstr(s, "arrivals.0.path"), "/v1/chat/completions");
    ck_assert_str_eq(jstr(s, "arrivals.0.model"), "gpt-4o-mini");
    ck_assert_int_eq(jint(s, "arrivals.0.status"), 200);
    ck_assert_str_eq(jstr(s, "arrivals.0.outcome"), "answered");
    ck_assert_int_eq(jint(s, "arrivals.1.status"), 503);
    ck_assert_str_eq(jstr(s, "arrivals.1.action"), "status");
    ck_assert_str_eq(jstr(s, "arrivals.2.path"), "/v1/other");
    ck_assert_int_eq(jint(s, "arrivals.2.status"), 404);
    json_object_put(s);

    char url[256];
    url_of(url, sizeof url, "/_fake/stats?arrivals=1");
    ck_assert_int_eq(fx_http_get(url, &r), 0);
    s = parse(r.body);
    ck_assert_int_eq(jlen(s, "arrivals"), 1);
    ck_assert_str_eq(jstr(s, "arrivals.0.path"), "/v1/other");
    json_object_put(s);
    fx_http_resp_done(&r);

    ctl("/_fake/script", "{\"steps\":[{\"action\":\"status\",\"status\":500,\"count\":5}]}");
    ctl("/_fake/reset", "{}");
    s = stats();
    ck_assert_int_eq(jint(s, "requests"), 0);
    ck_assert_int_eq(jint(s, "scriptRemaining"), 0);
    ck_assert_int_eq(jlen(s, "arrivals"), 0);
    ck_assert_int_eq(json_object_object_length(jp(s, "byStatus")), 0);
    json_object_put(s);
    ck_assert_int_eq(chat_status(NULL), 200);        /* the script is gone too */
}
END_TEST

START_TEST(default_step_applies_after_the_script)
{
    ctl("/_fake/default", "{\"action\":\"status\",\"status\":502}");
    ck_assert_int_eq(chat_status(NULL), 502);
    ck_assert_int_eq(chat_status(NULL), 502);
    ctl("/_fake/reset", "{}");
    ck_assert_int_eq(chat_status(NULL), 200);
}
END_TEST

START_TEST(control_api_refuses_bad_input)
{
    char url[256];
    struct fx_http_resp r;
    static const char *const bad[] = {
        "{\"steps\":[{\"action\":\"explode\"}]}",
        "{\"steps\":[{\"action\":\"ok\",\"delayMS\":5}]}",
        "{\"steps\":[{\"action\":\"status\"}]}",
        "{\"steps\":[{\"action\":\"ok\",\"count\":0}]}",
        "{\"steps\":{}}",
        "not json",
    };
    url_of(url, sizeof url, "/_fake/script");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(fx_http_post_json(url, bad[i], NULL, &r), 0);
        ck_assert_msg(r.status == 400, "%s -> %ld", bad[i], r.status);
        struct json_object *o = parse(r.body);
        ck_assert(!json_object_get_boolean(jp(o, "ok")));
        ck_assert(strlen(jstr(o, "error")) > 0);
        json_object_put(o);
        fx_http_resp_done(&r);
    }
    url_of(url, sizeof url, "/_fake/nothing");
    ck_assert_int_eq(fx_http_get(url, &r), 0);
    ck_assert_int_eq(r.status, 404);
    fx_http_resp_done(&r);
    /* nothing was consumed or changed */
    ck_assert_int_eq(chat_status(NULL), 200);
}
END_TEST

START_TEST(sigterm_exits_cleanly_with_parked_requests)
{
    struct raw hang;
    CURLM *m = curl_multi_init();
    raw_init(&hang, "{\"action\":\"hang\"}", 30000);
    curl_multi_add_handle(m, hang.h);
    int running;
    int64_t deadline = mono_ms() + 10000;
    for (;;) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 20, NULL);
        struct json_object *s = stats();
        int64_t inflight = jint(s, "inFlight");
        json_object_put(s);
        if (inflight == 1)
            break;
        ck_assert_msg(mono_ms() < deadline, "the hanging request never arrived");
    }
    ck_assert_int_eq(fx_proc_stop(&fp, 10000), 0);
    multi_run(m, 1);
    ck_assert(hang.rc != CURLE_OK && hang.rc != CURLE_OPERATION_TIMEDOUT);
    curl_multi_remove_handle(m, hang.h);
    raw_done(&hang);
    curl_multi_cleanup(m);
}
END_TEST

/* ---- with an expected key */

START_TEST(openai_auth)
{
    struct fx_http_resp r;
    ctl("/_fake/script", "{\"steps\":[{\"action\":\"status\",\"status\":500}]}");
    ck_assert_int_eq(post_to(CHAT_PATH, plain_body, NULL, NULL, &r), 0);
    ck_assert_int_eq(r.status, 401);
    assert_error_envelope(r.body, "invalid_request_error", NULL);
    ck_assert(strstr(r.body, "You didn't provide an API key"));
    fx_http_resp_done(&r);

    ck_assert_int_eq(post_to(CHAT_PATH, plain_body, "Authorization: Bearer sk-wrong-key-987654", NULL, &r), 0);
    ck_assert_int_eq(r.status, 401);
    assert_error_envelope(r.body, "invalid_request_error", "invalid_api_key");
    ck_assert_ptr_null(strstr(r.body, "sk-wrong-key-987654"));      /* never echoes the key */
    fx_http_resp_done(&r);

    /* the 401s did not consume the script */
    ck_assert_int_eq(post_to(CHAT_PATH, plain_body, "Authorization: Bearer " KEY, NULL, &r), 0);
    ck_assert_int_eq(r.status, 500);
    fx_http_resp_done(&r);
    ck_assert_int_eq(post_to(CHAT_PATH, plain_body, "Authorization: Bearer " KEY, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    fx_http_resp_done(&r);

    struct json_object *s = stats();
    ck_assert(!json_object_get_boolean(jp(s, "arrivals.0.apiKeyOk")));
    ck_assert(!json_object_get_boolean(jp(s, "arrivals.1.apiKeyOk")));
    ck_assert(json_object_get_boolean(jp(s, "arrivals.2.apiKeyOk")));
    ck_assert_ptr_null(jp(s, "arrivals.0.action"));
    json_object_put(s);
}
END_TEST

START_TEST(azure_wire_format)
{
    static const char body[] = "{\"response_format\":{\"type\":\"json_object\"},\"messages\":["
        "{\"role\":\"system\",\"content\":\"Answer in JSON.\"},"
        "{\"role\":\"user\",\"content\":\"Volcanoes erupt magma.\"}]}";
    struct fx_http_resp r;

    ck_assert_int_eq(post_to(AZ_PATH, body, "api-key: " KEY, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(fx_http_header(&r, "apim-request-id"));
    ck_assert_ptr_nonnull(fx_http_header(&r, "x-ratelimit-remaining-requests"));
    struct json_object *env = parse(r.body);
    ck_assert_str_eq(jstr(env, "object"), "chat.completion");
    ck_assert(!strncmp(jstr(env, "id"), "chatcmpl-", 9));
    ck_assert_int_eq(jlen(env, "prompt_filter_results"), 1);
    ck_assert_int_eq(jint(env, "prompt_filter_results.0.prompt_index"), 0);
    ck_assert_str_eq(jstr(env, "prompt_filter_results.0.content_filter_results.hate.severity"), "safe");
    ck_assert_str_eq(jstr(env, "choices.0.content_filter_results.violence.severity"), "safe");
    ck_assert_ptr_nonnull(jp(env, "usage.total_tokens"));
    struct json_object *c = content_json(env);
    ck_assert_int_eq(jlen(c, "flashcards"), 5);
    ck_assert(strstr(json_object_to_json_string(c), "Volcanoes"));
    json_object_put(c);
    json_object_put(env);
    fx_http_resp_done(&r);

    /* no api-version: Azure's 404 */
    ck_assert_int_eq(post_to("/openai/deployments/dep-a/chat/completions", body, "api-key: " KEY, NULL, &r), 0);
    ck_assert_int_eq(r.status, 404);
    struct json_object *o = parse(r.body);
    ck_assert_str_eq(jstr(o, "error.code"), "404");
    ck_assert_str_eq(jstr(o, "error.message"), "Resource not found");
    json_object_put(o);
    fx_http_resp_done(&r);

    /* wrong or missing key: Azure's 401 */
    const char *keys[] = { "api-key: not-the-key", NULL };
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(post_to(AZ_PATH, body, keys[i], NULL, &r), 0);
        ck_assert_int_eq(r.status, 401);
        o = parse(r.body);
        ck_assert_str_eq(jstr(o, "error.code"), "401");
        ck_assert(!strncmp(jstr(o, "error.message"), "Access denied due to invalid subscription key", 45));
        json_object_put(o);
        fx_http_resp_done(&r);
    }
    /* an OpenAI Bearer header is not an Azure key */
    ck_assert_int_eq(post_to(AZ_PATH, body, "Authorization: Bearer " KEY, NULL, &r), 0);
    ck_assert_int_eq(r.status, 401);
    fx_http_resp_done(&r);

    /* Azure 429 */
    ck_assert_int_eq(post_to(AZ_PATH, body, "api-key: " KEY, "{\"action\":\"status\",\"status\":429,\"retryAfter\":6}", &r), 0);
    ck_assert_int_eq(r.status, 429);
    ck_assert_str_eq(fx_http_header(&r, "retry-after"), "6");
    ck_assert_str_eq(fx_http_header(&r, "retry-after-ms"), "6000");
    o = parse(r.body);
    ck_assert_str_eq(jstr(o, "error.code"), "429");
    ck_assert(strstr(jstr(o, "error.message"), "Please retry after 6 seconds"));
    json_object_put(o);
    fx_http_resp_done(&r);

    struct json_object *s = stats();
    ck_assert_str_eq(jstr(s, "arrivals.0.deployment"), "dep-a");
    ck_assert(json_object_get_boolean(jp(s, "arrivals.0.apiKeyOk")));
    ck_assert_int_eq(jint(s, "byPath./openai/deployments/dep-a/chat/completions"), 6);
    json_object_put(s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("fake-provider");
    TCase *tc = tcase_create("any-key");
    tcase_add_checked_fixture(tc, setup_any, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, ok_openai_envelope_headers_and_content);
    tcase_add_test(tc, path_without_v1_is_accepted);
    tcase_add_test(tc, lessons_when_a_message_says_lessons);
    tcase_add_test(tc, request_validation_like_the_real_api);
    tcase_add_test(tc, max_tokens_cuts_the_content);
    tcase_add_test(tc, script_runs_in_order_then_default_ok);
    tcase_add_test(tc, rate_limit_429_retry_headers);
    tcase_add_test(tc, insufficient_quota);
    tcase_add_test(tc, status_bodies_and_overrides);
    tcase_add_test(tc, malformed_body);
    tcase_add_test(tc, bad_content);
    tcase_add_test(tc, truncated_content);
    tcase_add_test(tc, fenced_content);
    tcase_add_test(tc, huge_body_is_streamed);
    tcase_add_test(tc, reset_closes_without_answer);
    tcase_add_test(tc, hang_times_out_while_another_request_succeeds);
    tcase_add_test(tc, thousand_delayed_requests_at_once);
    tcase_add_test(tc, header_overrides_without_consuming_the_script);
    tcase_add_test(tc, stats_count_and_reset_clears);
    tcase_add_test(tc, default_step_applies_after_the_script);
    tcase_add_test(tc, control_api_refuses_bad_input);
    tcase_add_test(tc, sigterm_exits_cleanly_with_parked_requests);
    suite_add_tcase(s, tc);

    tc = tcase_create("expected-key");
    tcase_add_checked_fixture(tc, setup_key, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, openai_auth);
    tcase_add_test(tc, azure_wire_format);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
