/*
 * The gateway binary against a real redis-server, driven as clients see it:
 * libcurl (tests/support/fixture.h) for ordinary requests, raw sockets where
 * a client must misbehave or where libcurl would tidy the request first
 * (traversal paths, header floods, trickled bytes, thousands of idle
 * connections, requests held open across a shutdown).
 *
 * Each test starts its own redis-server and gateway on free ports with the
 * environment it needs, and stops them at the end; gw_stop() asserts the
 * gateway is still running, that SIGTERM makes it exit 0, and that its log
 * has no sanitizer report, so every test also checks "never crashes".
 *
 * Time: nothing sleeps for readiness.  The slow-client tests pace their own
 * bytes (that is the behaviour under test) with poll() on the socket, so a
 * disconnect is seen as soon as it happens; assertions on time are only
 * "within the deadline plus a generous margin".
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/clock.h"
#include "common/crypto.h"
#include "gateway/jwt.h"
#include "tests/support/fixture.h"

#define FLASHCARDS "/api/ai/generate-flashcards"
#define VALID_JOB "{\"content\":\"Der Hund schlaeft. Die Katze spielt im Garten.\"," \
                  "\"subject\":\"German\",\"topic\":\"Animals\"}"
#define JWT_SECRET "gwtest-jwt-secret-0123456789abcdef"
#define ADMIN_SECRET "gwtest-admin-token-s3cret"
#define GW_ENV_MAX 48
#define RAW_TIMEOUT_MS 10000
#define RAW_MAX (4u << 20)

/* ------------------------------------------------------------ gateway fixture */

struct gwx {
    struct fx_redis rs;
    struct fx_proc p;
    int port;
    char base[64];
    char *public_dir;         /* owned */
};

static void env_set(const char **env, size_t *n, const char *kv)
{
    size_t klen = strcspn(kv, "=");
    for (size_t i = 0; i < *n; i++)
        if (strncmp(env[i], kv, klen) == 0 && env[i][klen] == '=') {
            env[i] = kv;
            return;
        }
    ck_assert_uint_lt(*n, GW_ENV_MAX);
    env[(*n)++] = kv;
}

/* Start redis (unless no_redis) and the gateway with `extra` ("K=V", NULL-ended)
 * over defaults; returns once /health answers 200. */
static void gw_start_opts(struct gwx *g, const char *const *extra, bool no_redis)
{
    static char port_kv[32], redis_kv[96], public_kv[4096];
    const char *env[GW_ENV_MAX + 1];
    size_t n = 0;

    memset(g, 0, sizeof(*g));
    g->rs.pid = -1;
    g->p.pid = -1;
    if (!no_redis)
        ck_assert_int_eq(fx_redis_start(&g->rs, false), 0);
    g->port = fixture_free_port();
    ck_assert_int_gt(g->port, 0);
    snprintf(g->base, sizeof(g->base), "http://127.0.0.1:%d", g->port);
    snprintf(port_kv, sizeof(port_kv), "PORT=%d", g->port);
    snprintf(redis_kv, sizeof(redis_kv), "REDIS_URL=%s", no_redis ? "redis://127.0.0.1:1" : g->rs.url);
    char *pub = fixture_source_path("public");
    ck_assert_ptr_nonnull(pub);
    snprintf(public_kv, sizeof(public_kv), "PUBLIC_DIR=%s", pub);
    free(pub);

    env_set(env, &n, port_kv);
    env_set(env, &n, redis_kv);
    env_set(env, &n, public_kv);
    env_set(env, &n, "LISTEN_ADDRESS=127.0.0.1");
    env_set(env, &n, "INSTANCE_ID=gwtest-1");
    env_set(env, &n, "HTTP_THREADS=2");
    env_set(env, &n, "REDIS_RETRY_MAX_MS=300");
    env_set(env, &n, "REDIS_COMMAND_TIMEOUT_MS=1000");
    env_set(env, &n, "REDIS_CONNECT_TIMEOUT_MS=1000");
    env_set(env, &n, "SHUTDOWN_GRACE_MS=5000");
    /* this suite sends many requests from one address and user; rate limits have their own tests */
    env_set(env, &n, "RATE_LIMIT_IP_PER_MIN=100000000");
    env_set(env, &n, "RATE_LIMIT_AI_PER_MIN=1000000");
    for (size_t i = 0; extra && extra[i]; i++)
        env_set(env, &n, extra[i]);
    env[n] = NULL;

    const char *bin = fixture_bin("FLASHGATE_GATEWAY", NULL);
    ck_assert_msg(bin != NULL, "FLASHGATE_GATEWAY is not set (see tests/support/meson.build)");
    ck_assert_int_eq(fx_proc_start(&g->p, "gateway", bin, NULL, env), 0);
}

static void gw_start(struct gwx *g, const char *const *extra)
{
    gw_start_opts(g, extra, false);
    char url[128];
    snprintf(url, sizeof(url), "%s/health", g->base);
    ck_assert_int_eq(fx_proc_wait_http(&g->p, url, 0), 0);
}

static void assert_log_clean(struct gwx *g)
{
    char *log = fx_proc_log(&g->p);
    ck_assert_ptr_nonnull(log);
    bool bad = strstr(log, "AddressSanitizer") || strstr(log, "LeakSanitizer") ||
               strstr(log, "runtime error:") || strstr(log, "ThreadSanitizer");
    if (bad)
        fx_proc_print_log(&g->p);
    ck_assert_msg(!bad, "sanitizer report in the gateway log");
    free(log);
}

/* The gateway must still be running; SIGTERM must end it with status 0. */
static void gw_stop(struct gwx *g)
{
    ck_assert_msg(fx_proc_running(&g->p), "the gateway is not running any more (crashed?)");
    ck_assert_int_eq(fx_proc_stop(&g->p, 0), 0);
    assert_log_clean(g);
    fx_proc_done(&g->p);
    fx_redis_done(&g->rs);
    if (g->public_dir) {
        fixture_rmtree(g->public_dir);
        free(g->public_dir);
        g->public_dir = NULL;
    }
}

/* base + path in one of 8 rotating buffers */
static const char *U(const struct gwx *g, const char *path)
{
    static char buf[8][2048];
    static unsigned i;
    char *b = buf[i++ % 8];
    snprintf(b, sizeof(buf[0]), "%s%s", g->base, path);
    return b;
}

/* ------------------------------------------------------------ HTTP via libcurl */

static long get(const struct gwx *g, const char *path, const char *const *hdrs, struct fx_http_resp *resp)
{
    struct fx_http_req req = { .url = U(g, path), .headers = hdrs };
    int rc = fx_http_do(&req, resp);
    ck_assert_msg(rc == 0, "GET %s: %d", path, rc);
    return resp->status;
}

static long req_do(const struct gwx *g, const char *method, const char *path, const char *const *hdrs,
                   const char *body, struct fx_http_resp *resp)
{
    struct fx_http_req req = { .method = method, .url = U(g, path), .headers = hdrs, .body = body };
    int rc = fx_http_do(&req, resp);
    ck_assert_msg(rc == 0, "%s %s: %d", method, path, rc);
    return resp->status;
}

static long post_json(const struct gwx *g, const char *path, const char *json,
                      const char *const *hdrs, struct fx_http_resp *resp)
{
    int rc = fx_http_post_json(U(g, path), json, hdrs, resp);
    ck_assert_msg(rc == 0, "POST %s: %d", path, rc);
    return resp->status;
}

/* ------------------------------------------------------------ JSON */

static struct json_object *jparse(const char *text)
{
    struct json_object *o = json_tokener_parse(text);
    ck_assert_msg(o != NULL, "not JSON: %.300s", text);
    return o;
}

/* Member at a dotted path ("instance.id"), borrowed, or NULL. */
static struct json_object *jat(struct json_object *o, const char *path)
{
    char key[128];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        ck_assert_uint_lt(n, sizeof(key));
        memcpy(key, path, n);
        key[n] = 0;
        struct json_object *v = NULL;
        if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
            return NULL;
        o = v;
        path += n + (path[n] == '.');
    }
    return o;
}

static const char *jstr(struct json_object *o, const char *path)
{
    struct json_object *v = jat(o, path);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static void assert_jstr(struct json_object *o, const char *path, const char *want)
{
    const char *v = jstr(o, path);
    ck_assert_msg(v && strcmp(v, want) == 0, "%s: want \"%s\", got %s (in %s)", path, want,
                  v ? v : "(missing)", json_object_to_json_string(o));
}

static int64_t jint(struct json_object *o, const char *path)
{
    struct json_object *v = jat(o, path);
    ck_assert_msg(v && json_object_is_type(v, json_type_int), "%s: not an integer in %s", path,
                  json_object_to_json_string(o));
    return json_object_get_int64(v);
}

static bool jarray_has(struct json_object *o, const char *path, const char *s)
{
    struct json_object *a = jat(o, path);
    if (!a || !json_object_is_type(a, json_type_array))
        return false;
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        struct json_object *e = json_object_array_get_idx(a, i);
        if (json_object_is_type(e, json_type_string) && strcmp(json_object_get_string(e), s) == 0)
            return true;
    }
    return false;
}

static void assert_json_type(const char *ct)
{
    ck_assert_msg(ct && strncasecmp(ct, "application/json", 16) == 0, "Content-Type %s", ct ? ct : "(none)");
}

/* The contract's error shape: status, JSON, success false, code, a sentence, X-Request-Id. */
static void expect_error(const struct fx_http_resp *r, long status, const char *code)
{
    ck_assert_msg(r->status == status, "status %ld, want %ld; body %.300s", r->status, status, r->body);
    assert_json_type(fx_http_header(r, "Content-Type"));
    ck_assert_ptr_nonnull(fx_http_header(r, "X-Request-Id"));
    struct json_object *o = jparse(r->body);
    struct json_object *s = jat(o, "success");
    ck_assert_msg(s && json_object_is_type(s, json_type_boolean) && !json_object_get_boolean(s),
                  "success must be false: %s", r->body);
    assert_jstr(o, "code", code);
    const char *e = jstr(o, "error");
    ck_assert_msg(e && *e, "error sentence missing: %s", r->body);
    json_object_put(o);
}

static bool is_hex32(const char *s)
{
    if (!s || strlen(s) != 32)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* ------------------------------------------------------------ raw sockets */

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* 0 or -errno (the peer may have closed: EPIPE, ECONNRESET). */
static int raw_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int raw_sends(int fd, const char *s)
{
    return raw_send(fd, s, strlen(s));
}

struct raw {
    int status;               /* 0 if no status line arrived */
    char *data;               /* everything read, NUL-terminated */
    size_t len, cap;
    size_t head_len;          /* bytes through the blank line, 0 until seen */
    const char *body;
    size_t body_len;
    bool eof;                 /* the peer closed (FIN or RST) */
};

static void raw_done(struct raw *r)
{
    free(r->data);
    memset(r, 0, sizeof(*r));
}

/* Value of a response header (copied into a rotating buffer) or NULL. */
static const char *raw_header(const struct raw *r, const char *name)
{
    static char buf[4][8192];
    static unsigned k;
    size_t nl = strlen(name);
    if (!r->head_len)
        return NULL;
    const char *p = strstr(r->data, "\r\n");
    const char *end = r->data + r->head_len;
    while (p && p + 2 < end) {
        p += 2;
        const char *e = strstr(p, "\r\n");
        if (!e || e == p)
            break;
        if ((size_t)(e - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            char *b = buf[k++ % 4];
            size_t vl = (size_t)(e - v);
            if (vl >= sizeof(buf[0]))
                vl = sizeof(buf[0]) - 1;
            memcpy(b, v, vl);
            b[vl] = 0;
            return b;
        }
        p = e;
    }
    return NULL;
}

/*
 * Read one response.  head_only: the response has no body (HEAD).  Returns 0
 * with a complete response, -ECONNRESET when the peer closed first (r->eof;
 * whatever arrived is kept), -ETIMEDOUT.  A response without Content-Length
 * is read to EOF.
 */
static int raw_read(int fd, struct raw *r, bool head_only, int timeout_ms)
{
    memset(r, 0, sizeof(*r));
    r->cap = 16384;
    r->data = malloc(r->cap);
    ck_assert_ptr_nonnull(r->data);
    r->data[0] = 0;
    int64_t deadline = clock_mono_ms() + timeout_ms;
    size_t want = 0;          /* total length once known; 0 = until EOF */
    for (;;) {
        if (!r->head_len) {
            char *e = strstr(r->data, "\r\n\r\n");
            if (e) {
                r->head_len = (size_t)(e + 4 - r->data);
                if (sscanf(r->data, "HTTP/1.%*d %d", &r->status) != 1)
                    r->status = -1;
                const char *cl = raw_header(r, "Content-Length");
                if (head_only || r->status / 100 == 1 || r->status == 204 || r->status == 304)
                    want = r->head_len;
                else if (cl)
                    want = r->head_len + strtoul(cl, NULL, 10);
            }
        }
        if (r->head_len) {
            r->body = r->data + r->head_len;
            r->body_len = r->len - r->head_len;
            if (want && r->len >= want) {
                r->body_len = want - r->head_len;
                return 0;
            }
        }
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            return -ETIMEDOUT;
        if (r->len + 4096 + 1 > r->cap) {
            ck_assert_uint_lt(r->cap, RAW_MAX);
            r->cap *= 2;
            r->data = realloc(r->data, r->cap);
            ck_assert_ptr_nonnull(r->data);
        }
        ssize_t n = recv(fd, r->data + r->len, r->cap - r->len - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r->eof = true;
            if (r->head_len && !want)
                return 0;     /* body delimited by EOF */
            return -ECONNRESET;
        }
        r->len += (size_t)n;
        r->data[r->len] = 0;
    }
}

/* Connect, send `request` as is, read one response, close.  Returns raw_read's result. */
static int raw_exchange(int port, const char *request, bool head_only, struct raw *r)
{
    int fd = raw_connect(port);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(-fd));
    int rc = raw_sends(fd, request);
    ck_assert_msg(rc == 0, "send: %s", strerror(-rc));
    rc = raw_read(fd, r, head_only, RAW_TIMEOUT_MS);
    close(fd);
    return rc;
}

/* Wait until the peer closes fd (reading and discarding).  true if it did. */
static bool raw_wait_closed(int fd, int timeout_ms)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    char buf[4096];
    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0)
            return false;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            return false;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return true;
    }
}

/* ------------------------------------------------------------ health */

START_TEST(health_endpoints)
{
    struct gwx g;
    struct fx_http_resp r;
    gw_start(&g, NULL);

    ck_assert_int_eq(get(&g, "/health", NULL, &r), 200);
    assert_json_type(fx_http_header(&r, "Content-Type"));
    struct json_object *o = jparse(r.body);
    assert_jstr(o, "status", "OK");
    assert_jstr(o, "instance.id", "gwtest-1");
    ck_assert_int_eq(jint(o, "instance.pid"), g.p.pid);
    ck_assert_int_gt(jint(o, "instance.memoryMB"), 0);
    ck_assert_int_ge(jint(o, "instance.uptimeS"), 0);
    ck_assert_ptr_nonnull(jstr(o, "version"));
    ck_assert_int_gt(strlen(jstr(o, "version")), 0);
    const char *ts = jstr(o, "timestamp");
    ck_assert_msg(ts && strlen(ts) >= 20 && ts[4] == '-' && ts[10] == 'T' && ts[strlen(ts) - 1] == 'Z',
                  "timestamp not ISO-8601 UTC: %s", ts ? ts : "(missing)");
    json_object_put(o);
    fx_http_resp_done(&r);

    ck_assert_int_eq(get(&g, "/ready", NULL, &r), 200);
    o = jparse(r.body);
    assert_jstr(o, "status", "ready");
    ck_assert_int_eq(json_object_array_length(jat(o, "missing")), 0);
    json_object_put(o);
    fx_http_resp_done(&r);

    ck_assert_int_eq(get(&g, "/api/health", NULL, &r), 200);
    o = jparse(r.body);
    assert_jstr(o, "status", "healthy");
    assert_jstr(o, "services.redis", "connected");
    assert_jstr(o, "services.database", "not_configured");
    assert_jstr(o, "auth", "insecure-dev");
    assert_jstr(o, "instance.id", "gwtest-1");
    ck_assert_ptr_nonnull(jstr(o, "message"));
    ck_assert_ptr_nonnull(jstr(o, "timestamp"));
    json_object_put(o);
    fx_http_resp_done(&r);

    /* the insecure mode is announced in the log at start-up */
    char *log = fx_proc_log(&g.p);
    ck_assert_ptr_nonnull(strstr(log, "insecure"));
    free(log);
    gw_stop(&g);
}
END_TEST

/* ------------------------------------------------------------ X-Request-Id */

START_TEST(request_id)
{
    struct gwx g;
    struct fx_http_resp r;
    char id1[64];
    gw_start(&g, (const char *[]){ "MAX_BODY_BYTES=4096", NULL });

    /* absent: a fresh 32-hex id, different each time */
    ck_assert_int_eq(get(&g, "/health", NULL, &r), 200);
    const char *id = fx_http_header(&r, "X-Request-Id");
    ck_assert_msg(is_hex32(id), "generated id %s", id ? id : "(none)");
    snprintf(id1, sizeof(id1), "%s", id);
    fx_http_resp_done(&r);
    ck_assert_int_eq(get(&g, "/health", NULL, &r), 200);
    ck_assert(is_hex32(fx_http_header(&r, "X-Request-Id")));
    ck_assert_str_ne(fx_http_header(&r, "X-Request-Id"), id1);
    fx_http_resp_done(&r);

    /* sane: echoed (letters, digits, . _ : -; up to 64 characters) */
    static const char *const sane[] = {
        "abc-123.X:y_z",
        "0123456789012345678901234567890123456789012345678901234567890123",   /* 64 */
        "f47ac10b-58cc-4372-a567-0e02b2c3d479",
    };
    for (size_t i = 0; i < sizeof(sane) / sizeof(sane[0]); i++) {
        char h[128];
        snprintf(h, sizeof(h), "X-Request-Id: %s", sane[i]);
        ck_assert_int_eq(get(&g, "/health", (const char *[]){ h, NULL }, &r), 200);
        ck_assert_str_eq(fx_http_header(&r, "X-Request-Id"), sane[i]);
        fx_http_resp_done(&r);
    }

    /* insane: replaced by a generated one */
    static const char *const insane[] = {
        "01234567890123456789012345678901234567890123456789012345678901234",  /* 65 */
        "abc def",
        "<script>alert(1)</script>",
        "a/b",
        "id\"quote",
        "caf\xc3\xa9",
        "x;y",
    };
    for (size_t i = 0; i < sizeof(insane) / sizeof(insane[0]); i++) {
        char h[128];
        snprintf(h, sizeof(h), "X-Request-Id: %s", insane[i]);
        ck_assert_int_eq(get(&g, "/health", (const char *[]){ h, NULL }, &r), 200);
        const char *got = fx_http_header(&r, "X-Request-Id");
        ck_assert_msg(is_hex32(got), "\"%s\" should be replaced, got %s", insane[i], got ? got : "(none)");
        fx_http_resp_done(&r);
    }
    /* a huge value is not echoed either */
    char *big = malloc(5000);
    strcpy(big, "X-Request-Id: ");
    memset(big + 14, 'a', 4000);
    big[4014] = 0;
    ck_assert_int_eq(get(&g, "/health", (const char *[]){ big, NULL }, &r), 200);
    ck_assert(is_hex32(fx_http_header(&r, "X-Request-Id")));
    fx_http_resp_done(&r);
    free(big);

    /* on errors too: 404, 405 (echoed), 413 (early refusal, raw) */
    ck_assert_int_eq(get(&g, "/no-such-file.txt", (const char *[]){ "X-Request-Id: rid-404", NULL }, &r), 404);
    ck_assert_str_eq(fx_http_header(&r, "X-Request-Id"), "rid-404");
    fx_http_resp_done(&r);
    ck_assert_int_eq(req_do(&g, "DELETE", "/health", (const char *[]){ "X-Request-Id: rid-405", NULL }, NULL, &r), 405);
    ck_assert_str_eq(fx_http_header(&r, "X-Request-Id"), "rid-405");
    fx_http_resp_done(&r);
    ck_assert_int_eq(req_do(&g, "DELETE", "/health", NULL, NULL, &r), 405);
    ck_assert(is_hex32(fx_http_header(&r, "X-Request-Id")));
    fx_http_resp_done(&r);

    struct raw rr;
    ck_assert_int_eq(raw_exchange(g.port,
        "POST " FLASHCARDS " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "X-Request-Id: rid-413\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n", false, &rr), 0);
    ck_assert_int_eq(rr.status, 413);
    ck_assert_str_eq(raw_header(&rr, "X-Request-Id"), "rid-413");
    raw_done(&rr);
    ck_assert_int_eq(raw_exchange(g.port,
        "POST " FLASHCARDS " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000000\r\nConnection: close\r\n\r\n", false, &rr), 0);
    ck_assert_int_eq(rr.status, 413);
    ck_assert(is_hex32(raw_header(&rr, "X-Request-Id")));
    raw_done(&rr);

    /* the request id is in the access log line of the request */
    ck_assert_int_eq(post_json(&g, FLASHCARDS, "{", (const char *[]){ "X-Request-Id: rid-in-log-77", NULL }, &r), 400);
    fx_http_resp_done(&r);
    char *log = NULL;
    int64_t deadline = clock_mono_ms() + 5000;
    do {           /* the completion callback writes the line after the reply is sent */
        free(log);
        log = fx_proc_log(&g.p);
    } while (!strstr(log, "rid-in-log-77") && clock_mono_ms() < deadline);
    ck_assert_msg(strstr(log, "rid-in-log-77") != NULL, "request id not in the log");
    free(log);
    gw_stop(&g);
}
END_TEST

/* ------------------------------------------------------------ CORS */

START_TEST(cors_default)
{
    struct gwx g;
    struct fx_http_resp r;
    gw_start(&g, NULL);

    ck_assert_int_eq(get(&g, "/health", NULL, &r), 200);
    ck_assert_str_eq(fx_http_header(&r, "Access-Control-Allow-Origin"), "*");
    fx_http_resp_done(&r);
    ck_assert_int_eq(get(&g, "/health", (const char *[]){ "Origin: https://any.example", NULL }, &r), 200);
    ck_assert_str_eq(fx_http_header(&r, "Access-Control-Allow-Origin"), "*");
    fx_http_resp_done(&r);
    /* errors carry CORS too, or a browser could not read them */
    ck_assert_int_eq(get(&g, "/nope.css", (const char *[]){ "Origin: https://any.example", NULL }, &r), 404);
    ck_assert_str_eq(fx_http_header(&r, "Access-Control-Allow-Origin"), "*");
    fx_http_resp_done(&r);

    /* preflight */
    const char *pre[] = { "Origin: https://any.example", "Access-Control-Request-Method: POST",
                          "Access-Control-Request-Headers: content-type, authorization", NULL };
    ck_assert_int_eq(req_do(&g, "OPTIONS", FLASHCARDS, pre, NULL, &r), 204);
    const char *m = fx_http_header(&r, "Access-Control-Allow-Methods");
    ck_assert_msg(m && strstr(m, "POST"), "Allow-Methods %s", m ? m : "(none)");
    const char *h = fx_http_header(&r, "Access-Control-Allow-Headers");
    ck_assert_msg(h && strcasestr(h, "Content-Type") && strcasestr(h, "Authorization") &&
                  strcasestr(h, "Idempotency-Key"), "Allow-Headers %s", h ? h : "(none)");
    const char *age = fx_http_header(&r, "Access-Control-Max-Age");
    ck_assert_msg(age && atoi(age) > 0, "Max-Age %s", age ? age : "(none)");
    ck_assert_str_eq(fx_http_header(&r, "Access-Control-Allow-Origin"), "*");
    ck_assert_ptr_nonnull(fx_http_header(&r, "X-Request-Id"));
    ck_assert_uint_eq(r.body_len, 0);
    fx_http_resp_done(&r);

    ck_assert_int_eq(req_do(&g, "OPTIONS", "/api/health", pre, NULL, &r), 204);
    m = fx_http_header(&r, "Access-Control-Allow-Methods");
    ck_assert_msg(m && strstr(m, "GET"), "Allow-Methods %s", m ? m : "(none)");
    fx_http_resp_done(&r);
    gw_stop(&g);
}
END_TEST

START_TEST(cors_origin_list)
{
    struct gwx g;
    struct fx_http_resp r;
    gw_start(&g, (const char *[]){ "CORS_ORIGINS=https://a.example,https://b.example", NULL });

    static const char *const allowed[] = { "https://a.example", "https://b.example" };
    for (size_t i = 0; i < 2; i++) {
        char h[128];
        snprintf(h, sizeof(h), "Origin: %s", allowed[i]);
        ck_assert_int_eq(get(&g, "/health", (const char *[]){ h, NULL }, &r), 200);
        ck_assert_str_eq(fx_http_header(&r, "Access-Control-Allow-Origin"), allowed[i]);
        const char *vary = fx_http_header(&r, "Vary");
        ck_assert_msg(vary && strcasestr(vary, "Origin"), "Vary %s", vary ? vary : "(none)");
        fx_http_resp_done(&r);
    }
    static const char *const refused[] = {
        "https://evil.example", "https://a.example.evil.example", "https://a.exampl",
        "http://a.example", "https://A.EXAMPLE.evil", "null",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char h[128];
        snprintf(h, sizeof(h), "Origin: %s", refused[i]);
        ck_assert_int_eq(get(&g, "/health", (const char *[]){ h, NULL }, &r), 200);
        const char *acao = fx_http_header(&r, "Access-Control-Allow-Origin");
        ck_assert_msg(acao == NULL, "origin %s got ACAO %s", refused[i], acao);
        fx_http_resp_done(&r);
    }
    /* no Origin: nothing to allow */
    ck_assert_int_eq(get(&g, "/health", NULL, &r), 200);
    ck_assert_ptr_null(fx_http_header(&r, "Access-Control-Allow-Origin"));
    fx_http_resp_done(&r);

    /* preflight from an allowed origin is echoed; from an unknown one gets no ACAO */
    const char *pre_ok[] = { "Origin: https://b.example", "Access-Control-Request-Method: POST", NULL };
    ck_assert_int_eq(req_do(&g, "OPTIONS", FLASHCARDS, pre_ok, NULL, &r), 204);
    ck_assert_str_eq(fx_http_header(&r, "Access-Control-Allow-Origin"), "https://b.example");
    fx_http_resp_done(&r);
    const char *pre_bad[] = { "Origin: https://evil.example", "Access-Control-Request-Method: POST", NULL };
    ck_assert_int_eq(req_do(&g, "OPTIONS", FLASHCARDS, pre_bad, NULL, &r), 204);
    ck_assert_ptr_null(fx_http_header(&r, "Access-Control-Allow-Origin"));
    fx_http_resp_done(&r);
    gw_stop(&g);
}
END_TEST

/* ------------------------------------------------------------ 404, 405 */

START_TEST(not_found_and_wrong_method)
{
    struct gwx g;
    struct fx_http_resp r;
    gw_start(&g, NULL);

    static const char *const missing[] = { "/api/nope", "/api/ai/generate-everything", "/nope.html",
                                           "/api/health/extra", "/health/" };
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        ck_assert_int_eq(get(&g, missing[i], NULL, &r), 404);
        expect_error(&r, 404, "NOT_FOUND");
        fx_http_resp_done(&r);
    }
    /* a well-formed job id that does not exist */
    ck_assert_int_eq(get(&g, "/api/job-status/0123456789abcdef0123456789abcdef", NULL, &r), 404);
    expect_error(&r, 404, "NOT_FOUND");
    fx_http_resp_done(&r);

    struct { const char *method, *path, *allow; } wrong[] = {
        { "POST", "/health", "GET" },
        { "DELETE", "/api/health", "GET" },
        { "PUT", "/ready", "GET" },
        { "GET", FLASHCARDS, "POST" },
        { "PUT", FLASHCARDS, "POST" },
        { "DELETE", "/api/ai/generate-lesson", "POST" },
    };
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        ck_assert_int_eq(req_do(&g, wrong[i].method, wrong[i].path, NULL, NULL, &r), 405);
        expect_error(&r, 405, "METHOD_NOT_ALLOWED");
        const char *allow = fx_http_header(&r, "Allow");
        ck_assert_msg(allow && strstr(allow, wrong[i].allow), "%s %s: Allow %s", wrong[i].method,
                      wrong[i].path, allow ? allow : "(none)");
        fx_http_resp_done(&r);
    }
    gw_stop(&g);
}
END_TEST

/* ------------------------------------------------------------ admin access */

START_TEST(admin_loopback_default)
{
    struct gwx g;
    struct fx_http_resp r;
    gw_start(&g, NULL);
    ck_assert_int_eq(get(&g, "/api/redis/health", NULL, &r), 200);
    struct json_object *o = jparse(r.body);
    assert_jstr(o, "redis", "connected");
    ck_assert(json_object_get_boolean(jat(o, "success")));
    ck_assert_ptr_nonnull(jat(o, "latencyMs"));
    json_object_put(o);
    fx_http_resp_done(&r);
    ck_assert_int_eq(get(&g, "/api/queue/stats", NULL, &r), 200);
    o = jparse(r.body);
    assert_jstr(o, "stats.queue", "ai-jobs");
    ck_assert_int_eq(jint(o, "stats.waiting"), 0);
    json_object_put(o);
    fx_http_resp_done(&r);
    gw_stop(&g);
}
END_TEST

static void expect_admin(struct gwx *g, const char *const *hdrs, long want)
{
    struct fx_http_resp r;
    long st = get(g, "/api/redis/health", hdrs, &r);
    if (want == 403)
        expect_error(&r, 403, "MONITORING_ACCESS_DENIED");
    else
        ck_assert_msg(st == want, "status %ld want %ld (%s): %s", st, want, hdrs && hdrs[0] ? hdrs[0] : "-", r.body);
    fx_http_resp_done(&r);
}

START_TEST(admin_cidr_and_token)
{
    struct gwx g;
    gw_start(&g, (const char *[]){ "ADMIN_ALLOW_CIDRS=10.0.0.0/8", "ADMIN_TOKEN=" ADMIN_SECRET, NULL });

    expect_admin(&g, NULL, 403);
    expect_admin(&g, (const char *[]){ "Authorization: Bearer " ADMIN_SECRET, NULL }, 200);
    expect_admin(&g, (const char *[]){ "Authorization: bearer " ADMIN_SECRET, NULL }, 200);
    expect_admin(&g, (const char *[]){ "Authorization: Bearer wrong-token", NULL }, 403);
    expect_admin(&g, (const char *[]){ "Authorization: Bearer " ADMIN_SECRET "x", NULL }, 403);
    expect_admin(&g, (const char *[]){ "Authorization: Bearer gwtest-admin-token-s3cre", NULL }, 403);
    expect_admin(&g, (const char *[]){ "Authorization: Bearer ", NULL }, 403);
    expect_admin(&g, (const char *[]){ "Authorization: Basic " ADMIN_SECRET, NULL }, 403);
    expect_admin(&g, (const char *[]){ "Authorization: " ADMIN_SECRET, NULL }, 403);
    /* TRUST_PROXY=0: X-Forwarded-For is ignored, so spoofing an allowed address fails */
    expect_admin(&g, (const char *[]){ "X-Forwarded-For: 127.0.0.1", NULL }, 403);
    expect_admin(&g, (const char *[]){ "X-Forwarded-For: 10.1.2.3", NULL }, 403);
    /* every admin route is guarded, not just one */
    struct fx_http_resp r;
    get(&g, "/api/queue/stats", NULL, &r);
    expect_error(&r, 403, "MONITORING_ACCESS_DENIED");
    fx_http_resp_done(&r);
    /* the admin token never reaches the log */
    char *log = fx_proc_log(&g.p);
    ck_assert_msg(strstr(log, ADMIN_SECRET) == NULL, "ADMIN_TOKEN appears in the log");
    free(log);
    gw_stop(&g);
}
END_TEST

START_TEST(admin_trust_proxy)
{
    struct gwx g;
    gw_start(&g, (const char *[]){ "ADMIN_ALLOW_CIDRS=10.0.0.0/8", "TRUST_PROXY=1", NULL });

    expect_admin(&g, (const char *[]){ "X-Forwarded-For: 10.1.2.3", NULL }, 200);
    /* the rightmost hop is the one our proxy saw: a client-supplied left entry does not help */
    expect_admin(&g, (const char *[]){ "X-Forwarded-For: 10.1.2.3, 8.8.8.8", NULL }, 403);
    expect_admin(&g, (const char *[]){ "X-Forwarded-For: 8.8.8.8, 10.1.2.3", NULL }, 200);
    expect_admin(&g, (const char *[]){ "X-Forwarded-For: 8.8.8.8", NULL }, 403);
    /* no header: the peer (127.0.0.1) is not in the list */
    expect_admin(&g, NULL, 403);
    expect_admin(&g, (const char *[]){ "X-Forwarded-For: garbage", NULL }, 403);
    gw_stop(&g);
}
END_TEST

/* ------------------------------------------------------------ identity (JWT) */

static char *b64(const char *s)
{
    char *out = malloc(strlen(s) * 4 / 3 + 8);
    ck_assert_ptr_nonnull(out);
    crypto_b64url_encode(s, strlen(s), out);
    return out;
}

/* header.payload.signature with HMAC-SHA256 over the first two under key (NULL: empty signature). */
static char *craft_token(const char *header_json, const char *payload_json, const char *key)
{
    char *h = b64(header_json), *p = b64(payload_json);
    size_t cap = strlen(h) + strlen(p) + 64;
    char *t = malloc(cap);
    ck_assert_ptr_nonnull(t);
    int n = snprintf(t, cap, "%s.%s.", h, p);
    if (key) {
        uint8_t mac[SHA256_LEN];
        crypto_hmac_sha256(key, strlen(key), t, (size_t)n - 1, mac);
        crypto_b64url_encode(mac, sizeof(mac), t + n);
    }
    free(h);
    free(p);
    return t;
}

static long post_with_token(struct gwx *g, const char *token, const char *body, struct fx_http_resp *r)
{
    char auth[2048];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    return post_json(g, FLASHCARDS, body, (const char *[]){ auth, NULL }, r);
}

START_TEST(identity_jwt)
{
    struct gwx g;
    struct fx_http_resp r;
    gw_start(&g, (const char *[]){ "AUTH_JWT_SECRET=" JWT_SECRET, NULL });

    ck_assert_int_eq(get(&g, "/api/health", NULL, &r), 200);
    struct json_object *o = jparse(r.body);
    assert_jstr(o, "auth", "jwt");
    json_object_put(o);
    fx_http_resp_done(&r);

    int64_t now = clock_now_ms() / 1000;
    char valid[1024], forged[1024], expired[1024];
    ck_assert_int_gt(jwt_sign_hs256("user-1", "", now, now + 600, JWT_SECRET, strlen(JWT_SECRET), valid, sizeof(valid)), 0);
    ck_assert_int_gt(jwt_sign_hs256("user-1", "", now, now + 600, "another-secret", 14, forged, sizeof(forged)), 0);
    ck_assert_int_gt(jwt_sign_hs256("user-1", "", now - 7200, now - 3600, JWT_SECRET, strlen(JWT_SECRET), expired, sizeof(expired)), 0);
    char payload[256];
    snprintf(payload, sizeof(payload), "{\"sub\":\"user-1\",\"iat\":%lld,\"exp\":%lld}", (long long)now, (long long)now + 600);
    char *none = craft_token("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, NULL);
    char *none_signed = craft_token("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, JWT_SECRET);
    char *hs512 = craft_token("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", payload, JWT_SECRET);
    char *no_alg = craft_token("{\"typ\":\"JWT\"}", payload, JWT_SECRET);
    char *crafted_ok = craft_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, JWT_SECRET);
    snprintf(payload, sizeof(payload), "{\"sub\":\"user-1\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}",
             (long long)now, (long long)now + 3600, (long long)now + 7200);
    char *nbf = craft_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, JWT_SECRET);
    snprintf(payload, sizeof(payload), "{\"sub\":\"user-1\",\"iat\":%lld}", (long long)now);
    char *no_exp = craft_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, JWT_SECRET);
    /* a valid token with its signature altered in one character */
    char tampered[1024];
    snprintf(tampered, sizeof(tampered), "%s", valid);
    char *last = tampered + strlen(tampered) - 2;
    *last = *last == 'A' ? 'B' : 'A';

    const char *bad[] = { forged, expired, none, none_signed, hs512, no_alg, nbf, no_exp, tampered,
                          "not-a-jwt", "a.b.c", "" };
    const char *what[] = { "forged", "expired", "alg:none", "alg:none signed", "HS512", "no alg", "nbf future",
                           "no exp", "tampered", "garbage", "a.b.c", "empty" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        post_with_token(&g, bad[i], VALID_JOB, &r);
        ck_assert_msg(r.status == 401, "%s token: status %ld %s", what[i], r.status, r.body);
        expect_error(&r, 401, "UNAUTHORIZED");
        fx_http_resp_done(&r);
    }
    /* no Authorization at all; a user-id header is not an identity in this mode */
    post_json(&g, FLASHCARDS, VALID_JOB, (const char *[]){ "user-id: user-1", NULL }, &r);
    expect_error(&r, 401, "UNAUTHORIZED");
    fx_http_resp_done(&r);

    /* a valid token works, hand-crafted or signed by the library */
    ck_assert_int_eq(post_with_token(&g, valid, VALID_JOB, &r), 202);
    o = jparse(r.body);
    ck_assert(json_object_get_boolean(jat(o, "success")));
    ck_assert_ptr_nonnull(jstr(o, "jobId"));
    json_object_put(o);
    fx_http_resp_done(&r);
    ck_assert_int_eq(post_with_token(&g, crafted_ok,
        "{\"content\":\"Ein anderer Text.\",\"subject\":\"German\",\"topic\":\"Other\",\"userId\":\"user-1\"}", &r), 202);
    fx_http_resp_done(&r);
    /* a body userId other than the token's sub is refused */
    post_with_token(&g, valid,
        "{\"content\":\"x\",\"subject\":\"s\",\"topic\":\"t\",\"userId\":\"user-2\"}", &r);
    expect_error(&r, 403, "FORBIDDEN");
    fx_http_resp_done(&r);

    /* neither the secret nor a token reaches the log */
    char *log = fx_proc_log(&g.p);
    ck_assert_msg(strstr(log, JWT_SECRET) == NULL, "AUTH_JWT_SECRET appears in the log");
    ck_assert_msg(strstr(log, valid) == NULL, "a user token appears in the log");
    free(log);

    free(none);
    free(none_signed);
    free(hs512);
    free(no_alg);
    free(crafted_ok);
    free(nbf);
    free(no_exp);
    gw_stop(&g);
}
END_TEST

/* ------------------------------------------------------------ request bodies */

START_TEST(body_errors)
{
    struct gwx g;
    struct fx_http_resp r;
    gw_start(&g, (const char *[]){ "MAX_BODY_BYTES=4096", NULL });
    const char *user[] = { "user-id: body-tester", NULL };

    /* malformed JSON, never a 500 */
    static const char *const malformed[] = {
        "{", "{\"content\": ", "hello", "{\"a\":1,}", "{\"a\":'b'}", "['a']", "{\"a\":1} trailing",
        "{\"a\":1}{\"b\":2}", "{\"a\":\"\\u0000\"}", "{\"a\":NaN}", "{\"a\":\"\xff\xfe\"}", "   ",
    };
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        post_json(&g, FLASHCARDS, malformed[i], user, &r);
        ck_assert_msg(r.status == 400, "body %s: status %ld", malformed[i], r.status);
        expect_error(&r, 400, "INVALID_JSON");
        fx_http_resp_done(&r);
    }
    /* JSON that is not an object */
    static const char *const not_object[] = { "[1,2]", "\"text\"", "42", "null", "true" };
    for (size_t i = 0; i < sizeof(not_object) / sizeof(not_object[0]); i++) {
        post_json(&g, FLASHCARDS, not_object[i], user, &r);
        ck_assert_msg(r.status == 400, "body %s: status %ld", not_object[i], r.status);
        expect_error(&r, 400, "INVALID_JSON");
        fx_http_resp_done(&r);
    }
    /* an empty body */
    post_json(&g, FLASHCARDS, "", user, &r);
    ck_assert_int_eq(r.status, 400);
    fx_http_resp_done(&r);

    /* deeply nested (default MAX_JSON_DEPTH 32): 200 levels */
    char deep[1024];
    size_t n = 0;
    n += (size_t)sprintf(deep, "{\"content\":");
    for (int i = 0; i < 200; i++)
        deep[n++] = '[';
    for (int i = 0; i < 200; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = 0;
    post_json(&g, FLASHCARDS, deep, user, &r);
    expect_error(&r, 400, "INVALID_JSON");
    fx_http_resp_done(&r);
    /* 31 levels inside the object (32 in all) is not a nesting error */
    n = (size_t)sprintf(deep, "{\"content\":\"c\",\"subject\":\"s\",\"topic\":\"t\",\"extra\":");
    for (int i = 0; i < 31; i++)
        deep[n++] = '[';
    for (int i = 0; i < 31; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = 0;
    post_json(&g, FLASHCARDS, deep, user, &r);
    ck_assert_msg(r.status == 202, "nesting within the limit: %ld %s", r.status, r.body);
    fx_http_resp_done(&r);

    /* missing fields: 400 VALIDATION_ERROR naming them */
    post_json(&g, FLASHCARDS, "{}", NULL, &r);
    expect_error(&r, 400, "VALIDATION_ERROR");
    struct json_object *o = jparse(r.body);
    const char *err = jstr(o, "error");
    ck_assert_msg(strstr(err, "content") && strstr(err, "subject") && strstr(err, "topic") &&
                  strstr(err, "userId"), "error %s", err);
    json_object_put(o);
    fx_http_resp_done(&r);
    post_json(&g, FLASHCARDS, "{\"content\":42,\"subject\":\"s\",\"topic\":\"t\"}", user, &r);
    expect_error(&r, 400, "VALIDATION_ERROR");
    fx_http_resp_done(&r);

    /* oversized with Content-Length: 413 (curl sends the whole body) */
    char *big = malloc(10001);
    memset(big, ' ', 10000);
    big[0] = '{';
    big[9999] = '}';
    big[10000] = 0;
    struct fx_http_req req = { .method = "POST", .url = U(&g, FLASHCARDS), .body = big,
                               .headers = (const char *[]){ "Content-Type: application/json", NULL } };
    int rc = fx_http_do(&req, &r);
    ck_assert_msg(rc == 0 || r.status == 413, "oversized: rc %d status %ld", rc, r.status);
    expect_error(&r, 413, "PAYLOAD_TOO_LARGE");
    fx_http_resp_done(&r);
    free(big);
    /* announced too large: refused before the body is sent */
    struct raw rr;
    ck_assert_int_eq(raw_exchange(g.port,
        "POST " FLASHCARDS " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 5000\r\nConnection: close\r\n\r\n", false, &rr), 0);
    ck_assert_int_eq(rr.status, 413);
    ck_assert_ptr_nonnull(strstr(rr.body, "PAYLOAD_TOO_LARGE"));
    raw_done(&rr);
    /* nonsense Content-Length */
    ck_assert_int_eq(raw_exchange(g.port,
        "POST " FLASHCARDS " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 99999999999999999999999\r\nConnection: close\r\n\r\n", false, &rr), 0);
    ck_assert_msg(rr.status == 413 || rr.status == 400, "huge Content-Length: %d", rr.status);
    raw_done(&rr);

    /* oversized chunked (no Content-Length): 413 after the limit */
    int fd = raw_connect(g.port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(raw_sends(fd, "POST " FLASHCARDS " HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"), 0);
    char chunk[1100];
    memset(chunk, 'a', sizeof(chunk));
    int chunk_rc = 0;
    for (int i = 0; i < 10 && chunk_rc == 0; i++) {
        char len[16];
        snprintf(len, sizeof(len), "%x\r\n", 1000);
        chunk_rc = raw_sends(fd, len);
        if (!chunk_rc)
            chunk_rc = raw_send(fd, chunk, 1000);
        if (!chunk_rc)
            chunk_rc = raw_sends(fd, "\r\n");
    }
    if (!chunk_rc)
        raw_sends(fd, "0\r\n\r\n");
    ck_assert_int_eq(raw_read(fd, &rr, false, RAW_TIMEOUT_MS), 0);
    ck_assert_msg(rr.status == 413, "chunked oversized: %d %s", rr.status, rr.data);
    ck_assert_ptr_nonnull(strstr(rr.body, "PAYLOAD_TOO_LARGE"));
    ck_assert_ptr_nonnull(raw_header(&rr, "X-Request-Id"));
    raw_done(&rr);
    close(fd);
    /* a chunked body within the limit is read as usual */
    ck_assert_int_eq(raw_exchange(g.port, "POST " FLASHCARDS " HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        "1\r\n{\r\n0\r\n\r\n", false, &rr), 0);
    ck_assert_int_eq(rr.status, 400);
    ck_assert_ptr_nonnull(strstr(rr.body, "INVALID_JSON"));
    raw_done(&rr);

    /* wrong or missing Content-Type */
    static const char *const types[] = { "Content-Type: text/plain", "Content-Type: application/jsonx",
                                         "Content-Type: application/x-www-form-urlencoded",
                                         "Content-Type: multipart/form-data; boundary=x", NULL };
    for (size_t i = 0; i < 5; i++) {
        const char *h[] = { types[i] ? types[i] : "Content-Type:", "user-id: body-tester", NULL };
        struct fx_http_req q = { .method = "POST", .url = U(&g, FLASHCARDS), .headers = h, .body = VALID_JOB };
        ck_assert_int_eq(fx_http_do(&q, &r), 0);
        ck_assert_msg(r.status == 415, "%s: %ld", types[i] ? types[i] : "no type", r.status);
        expect_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");
        fx_http_resp_done(&r);
    }
    /* parameters after the type are fine */
    const char *h[] = { "Content-Type: application/json; charset=utf-8", "user-id: body-tester", NULL };
    struct fx_http_req q = { .method = "POST", .url = U(&g, FLASHCARDS), .headers = h, .body = VALID_JOB };
    ck_assert_int_eq(fx_http_do(&q, &r), 0);
    ck_assert_msg(r.status == 202, "charset parameter: %ld %s", r.status, r.body);
    fx_http_resp_done(&r);

    /* wrong method */
    ck_assert_int_eq(req_do(&g, "GET", FLASHCARDS, NULL, NULL, &r), 405);
    expect_error(&r, 405, "METHOD_NOT_ALLOWED");
    ck_assert_ptr_nonnull(strstr(fx_http_header(&r, "Allow"), "POST"));
    fx_http_resp_done(&r);
    gw_stop(&g);
}
END_TEST

/*
 * Regression: json-c 0.16's strict mode refuses single-quoted string values
 * but accepts a single-quoted object key; jsonx now checks the RFC 8259
 * grammar first, so {'a':1} is 400 INVALID_JSON, never a parsed object.
 */
START_TEST(body_single_quoted_key)
{
    struct gwx g;
    struct fx_http_resp r;
    gw_start(&g, NULL);
    static const char *const bodies[] = {
        "{'a':1}",
        "{'content':'x','subject':'s','topic':'t','userId':'u'}",
        "{\"content\":\"x\",\"subject\":\"s\",\"topic\":\"t\",'userId':\"u\"}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        post_json(&g, FLASHCARDS, bodies[i], (const char *[]){ "user-id: u", NULL }, &r);
        ck_assert_msg(r.status == 400 && strstr(r.body, "INVALID_JSON"),
                      "single-quoted key accepted: body %s -> %ld %s",
                      bodies[i], r.status, r.body);
        fx_http_resp_done(&r);
    }
    gw_stop(&g);
}
END_TEST

/* ------------------------------------------------------------ static files */

/* Static response for path via raw socket (libcurl would normalise it). */
static int raw_get(int port, const char *method, const char *path, const char *extra, struct raw *r)
{
    char req[8192];
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n",
             method, path, extra ? extra : "");
    return raw_exchange(port, req, strcmp(method, "HEAD") == 0, r);
}

START_TEST(static_files)
{
    struct gwx g;
    struct fx_http_resp r;
    gw_start(&g, NULL);

    char *path = fixture_source_path("public/sse-example.html");
    size_t flen = 0;
    char *file = fixture_read_file(path, &flen);
    ck_assert_ptr_nonnull(file);
    free(path);

    ck_assert_int_eq(get(&g, "/sse-example.html", NULL, &r), 200);
    const char *ct = fx_http_header(&r, "Content-Type");
    ck_assert_msg(ct && strncmp(ct, "text/html", 9) == 0, "Content-Type %s", ct ? ct : "(none)");
    ck_assert_ptr_nonnull(fx_http_header(&r, "Cache-Control"));
    ck_assert_ptr_nonnull(fx_http_header(&r, "Last-Modified"));
    ck_assert_ptr_nonnull(fx_http_header(&r, "X-Request-Id"));
    const char *etag0 = fx_http_header(&r, "ETag");
    ck_assert_msg(etag0 && etag0[0] == '"' && etag0[strlen(etag0) - 1] == '"', "ETag %s", etag0 ? etag0 : "(none)");
    char etag[128], inm[160];
    snprintf(etag, sizeof(etag), "%s", etag0);
    ck_assert_uint_eq(r.body_len, flen);
    ck_assert(memcmp(r.body, file, flen) == 0);
    fx_http_resp_done(&r);

    /* revalidation */
    snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
    ck_assert_int_eq(get(&g, "/sse-example.html", (const char *[]){ inm, NULL }, &r), 304);
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_str_eq(fx_http_header(&r, "ETag"), etag);
    fx_http_resp_done(&r);
    ck_assert_int_eq(get(&g, "/sse-example.html", (const char *[]){ "If-None-Match: \"other\"", NULL }, &r), 200);
    ck_assert_uint_eq(r.body_len, flen);
    fx_http_resp_done(&r);

    /* HEAD: the headers of GET, no body */
    struct raw rr;
    int hfd = raw_connect(g.port);
    ck_assert_int_ge(hfd, 0);
    ck_assert_int_eq(raw_sends(hfd, "HEAD /sse-example.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 0);
    ck_assert_int_eq(raw_read(hfd, &rr, true, RAW_TIMEOUT_MS), 0);
    ck_assert_int_eq(rr.status, 200);
    ck_assert_uint_eq(strtoul(raw_header(&rr, "Content-Length"), NULL, 10), flen);
    ck_assert_str_eq(raw_header(&rr, "ETag"), etag);
    ck_assert_str_eq(raw_header(&rr, "Content-Type"), "text/html; charset=utf-8");
    size_t extra = rr.len - rr.head_len;   /* nothing may follow the headers, up to the close */
    raw_done(&rr);
    char sink[4096];
    ssize_t got;
    struct pollfd hp = { .fd = hfd, .events = POLLIN };
    while (poll(&hp, 1, RAW_TIMEOUT_MS) == 1 && (got = recv(hfd, sink, sizeof(sink), 0)) > 0)
        extra += (size_t)got;
    close(hfd);
    ck_assert_msg(extra == 0, "HEAD response carried %zu body bytes", extra);

    /* "/" is index.html; other types */
    ck_assert_int_eq(get(&g, "/", NULL, &r), 200);
    ck_assert_str_eq(fx_http_header(&r, "Content-Type"), "text/html; charset=utf-8");
    fx_http_resp_done(&r);
    ck_assert_int_eq(get(&g, "/app.css", NULL, &r), 200);
    ck_assert_str_eq(fx_http_header(&r, "Content-Type"), "text/css; charset=utf-8");
    /* pages, CSS and scripts revalidate so a deploy is seen at once */
    ck_assert_str_eq(fx_http_header(&r, "Cache-Control"), "no-cache");
    fx_http_resp_done(&r);
    ck_assert_int_eq(get(&g, "/sse-example.js", NULL, &r), 200);
    ck_assert_ptr_nonnull(strstr(fx_http_header(&r, "Content-Type"), "javascript"));
    fx_http_resp_done(&r);
    ck_assert_int_eq(get(&g, "/favicon.svg", NULL, &r), 200);
    ck_assert_str_eq(fx_http_header(&r, "Content-Type"), "image/svg+xml");
    ck_assert_ptr_nonnull(strstr(fx_http_header(&r, "Cache-Control"), "max-age"));
    fx_http_resp_done(&r);
    /* a query string does not change the file */
    ck_assert_int_eq(get(&g, "/sse-example.html?v=3&x=..%2f..", NULL, &r), 200);
    ck_assert_uint_eq(r.body_len, flen);
    fx_http_resp_done(&r);
    free(file);

    /* traversal: refused, and nothing outside public/ leaks */
    struct { const char *path; int status; } bad[] = {
        { "/../meson.build", 404 },
        { "/%2e%2e/meson.build", 404 },
        { "/%2e%2e%2fmeson.build", 404 },
        { "/%2E%2E/meson.build", 404 },
        { "/..%2f..%2fetc/passwd", 404 },
        { "/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", 404 },
        { "/../../../../../../etc/passwd", 404 },
        { "//etc/passwd", 404 },
        { "/.git/config", 404 },
        { "/%2egit/config", 404 },
        { "/./sse-example.html", 404 },
        { "/public/../meson.build", 404 },
        { "/..\\meson.build", 404 },
        { "/%5c..%5cmeson.build", 404 },
        { "/..%5c..%5cetc%5cpasswd", 404 },
        { "/\\etc\\passwd", 404 },
        { "/sse-example.html/", 404 },
        { "/%00", 400 },
        { "/index.html%00.png", 400 },
        { "/..%00/meson.build", 400 },
        { "/%2e%2e%00/meson.build", 400 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = raw_get(g.port, "GET", bad[i].path, NULL, &rr);
        ck_assert_msg(rc == 0, "%s: no response (%d)", bad[i].path, rc);
        ck_assert_msg(rr.status == bad[i].status, "%s: status %d, want %d: %.200s", bad[i].path, rr.status,
                      bad[i].status, rr.body);
        ck_assert_msg(!strstr(rr.body, "project(") && !strstr(rr.body, "root:") && !strstr(rr.body, "[core]"),
                      "%s leaked: %.200s", bad[i].path, rr.body);
        assert_json_type(raw_header(&rr, "Content-Type"));
        raw_done(&rr);
    }
    gw_stop(&g);
}
END_TEST

static void write_file(const char *dir, const char *rel, const char *text)
{
    char p[4096];
    ck_assert_int_lt(snprintf(p, sizeof(p), "%s/%s", dir, rel), (int)sizeof(p));
    FILE *f = fopen(p, "w");
    ck_assert_msg(f != NULL, "create %s: %s", p, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static void make_node(const char *dir, const char *rel, int kind, const char *target)
{
    char p[4096];
    ck_assert_int_lt(snprintf(p, sizeof(p), "%s/%s", dir, rel), (int)sizeof(p));
    int rc = kind == 'd' ? mkdir(p, 0755) : kind == 'l' ? symlink(target, p) : mkfifo(p, 0644);
    ck_assert_msg(rc == 0, "%s: %s", p, strerror(errno));
}

START_TEST(static_symlinks_and_types)
{
    char *tmp = fixture_mkdtemp("gwtest-public");
    ck_assert_ptr_nonnull(tmp);
    write_file(tmp, "secret.txt", "OUTSIDE-SECRET\n");
    make_node(tmp, "outside", 'd', NULL);
    write_file(tmp, "outside/inner.txt", "OUTSIDE-DIR-SECRET\n");
    make_node(tmp, "pub", 'd', NULL);
    write_file(tmp, "pub/index.html", "<!doctype html><title>tmp index</title>\n");
    make_node(tmp, "pub/sub", 'd', NULL);
    make_node(tmp, "pub/sub/deeper", 'd', NULL);
    write_file(tmp, "pub/sub/deeper/nested.txt", "nested file\n");
    write_file(tmp, "pub/data.unknownext", "opaque\n");
    write_file(tmp, "pub/noext", "opaque too\n");
    make_node(tmp, "pub/passwd", 'l', "/etc/passwd");
    make_node(tmp, "pub/secret.txt", 'l', "../secret.txt");
    make_node(tmp, "pub/outlink", 'l', "../outside");
    make_node(tmp, "pub/sub/up", 'l', "..");
    make_node(tmp, "pub/etc", 'l', "/etc");
    make_node(tmp, "pub/fifo", 'p', NULL);

    char pub[4096], env_pub[4200];
    snprintf(pub, sizeof(pub), "%s/pub", tmp);
    snprintf(env_pub, sizeof(env_pub), "PUBLIC_DIR=%s", pub);
    struct gwx g;
    gw_start(&g, (const char *[]){ env_pub, NULL });
    g.public_dir = tmp;
    struct fx_http_resp r;

    ck_assert_int_eq(get(&g, "/", NULL, &r), 200);
    ck_assert_str_eq(r.body, "<!doctype html><title>tmp index</title>\n");
    fx_http_resp_done(&r);
    ck_assert_int_eq(get(&g, "/sub/deeper/nested.txt", NULL, &r), 200);
    ck_assert_str_eq(r.body, "nested file\n");
    ck_assert_str_eq(fx_http_header(&r, "Content-Type"), "text/plain; charset=utf-8");
    fx_http_resp_done(&r);
    ck_assert_int_eq(get(&g, "/data.unknownext", NULL, &r), 200);
    ck_assert_str_eq(fx_http_header(&r, "Content-Type"), "application/octet-stream");
    ck_assert_str_eq(r.body, "opaque\n");
    fx_http_resp_done(&r);
    ck_assert_int_eq(get(&g, "/noext", NULL, &r), 200);
    ck_assert_str_eq(fx_http_header(&r, "Content-Type"), "application/octet-stream");
    fx_http_resp_done(&r);

    static const char *const refused[] = {
        "/passwd", "/secret.txt", "/outlink/inner.txt", "/outlink", "/sub/up/index.html",
        "/sub/up/secret.txt", "/sub/up/sub/deeper/nested.txt", "/etc/passwd", "/etc/hostname",
        "/fifo", "/sub", "/sub/deeper", "/sub/", "/missing.txt",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        int rc = fx_http_get(U(&g, refused[i]), &r);
        ck_assert_msg(rc == 0, "%s: %d", refused[i], rc);
        ck_assert_msg(r.status == 404, "%s: status %ld", refused[i], r.status);
        expect_error(&r, 404, "NOT_FOUND");
        ck_assert_msg(!strstr(r.body, "SECRET") && !strstr(r.body, "root:"), "%s leaked %s", refused[i], r.body);
        fx_http_resp_done(&r);
    }
    /* the same through raw paths libcurl would not send */
    struct raw rr;
    static const char *const raw_refused[] = { "/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt",
                                               "/sub/..%2f..%2fsecret.txt" };
    for (size_t i = 0; i < sizeof(raw_refused) / sizeof(raw_refused[0]); i++) {
        ck_assert_int_eq(raw_get(g.port, "GET", raw_refused[i], NULL, &rr), 0);
        ck_assert_msg(rr.status == 404, "%s: %d", raw_refused[i], rr.status);
        ck_assert_ptr_null(strstr(rr.body, "SECRET"));
        raw_done(&rr);
    }
    /* still serving after all that */
    ck_assert_int_eq(get(&g, "/sub/deeper/nested.txt", NULL, &r), 200);
    fx_http_resp_done(&r);
    gw_stop(&g);
}
END_TEST

/* ------------------------------------------------------------ header floods */

static void expect_431_or_closed(int port, const char *head, size_t len, const char *what)
{
    int fd = raw_connect(port);
    ck_assert_int_ge(fd, 0);
    int src = raw_send(fd, head, len);   /* the server may close before we are done */
    struct raw rr;
    int rc = raw_read(fd, &rr, false, RAW_TIMEOUT_MS);
    ck_assert_msg(rc != -ETIMEDOUT, "%s: no answer and no close within %d ms", what, RAW_TIMEOUT_MS);
    ck_assert_msg(rr.status == 0 || rr.status == 431 || rr.status == 414 || rr.status == 413 ||
                  rr.status == 400,
                  "%s: status %d (send %d)", what, rr.status, src);
    ck_assert_msg(rr.status != 200, "%s was served", what);
    fprintf(stderr, "[gwtest] %s: %s %d\n", what, rr.status ? "status" : "closed, send", rr.status ? rr.status : src);
    raw_done(&rr);
    close(fd);
}

START_TEST(header_flood)
{
    struct gwx g;
    struct fx_http_resp r;
    gw_start(&g, NULL);

    /* 2,000 headers */
    size_t cap = 2000 * 32 + 256, n = 0;
    char *req = malloc(cap);
    n += (size_t)snprintf(req, cap, "GET /health HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 2000; i++)
        n += (size_t)snprintf(req + n, cap - n, "X-Flood-%04d: v%d\r\n", i, i);
    n += (size_t)snprintf(req + n, cap - n, "\r\n");
    expect_431_or_closed(g.port, req, n, "2000 headers");
    free(req);

    /* one 100 KB header */
    cap = 100 * 1024 + 256;
    req = malloc(cap);
    n = (size_t)snprintf(req, cap, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'b', 100 * 1024);
    n += 100 * 1024;
    n += (size_t)snprintf(req + n, cap - n, "\r\n\r\n");
    expect_431_or_closed(g.port, req, n, "a 100 KB header");
    free(req);

    /* a 100 KB request line */
    cap = 100 * 1024 + 256;
    req = malloc(cap);
    n = (size_t)snprintf(req, cap, "GET /");
    memset(req + n, 'p', 100 * 1024);
    n += 100 * 1024;
    n += (size_t)snprintf(req + n, cap - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_431_or_closed(g.port, req, n, "a 100 KB URL");
    free(req);

    /* ordinary requests with a fair number of headers still work */
    const char *hdrs[41];
    char store[40][64];
    for (int i = 0; i < 40; i++) {
        snprintf(store[i], sizeof(store[i]), "X-Fair-%02d: %040d", i, i);
        hdrs[i] = store[i];
    }
    hdrs[40] = NULL;
    ck_assert_int_eq(get(&g, "/health", hdrs, &r), 200);
    fx_http_resp_done(&r);
    ck_assert(fx_proc_running(&g.p));
    ck_assert_int_eq(get(&g, "/health", NULL, &r), 200);
    fx_http_resp_done(&r);
    gw_stop(&g);
}
END_TEST

/* ------------------------------------------------------------ request head size */

/*
 * A browser's request head at the default HTTP_CONN_MEMORY_BYTES: Chrome's
 * usual headers, an Authorization header (token may be NULL) and `ncookies`
 * cookies of about 100 bytes.  libmicrohttpd parses all of it into the
 * connection's pool (each cookie is copied and gets a 64-byte record), which
 * must still hold the response head.  Returns the request, malloc'd.
 */
static char *browser_request(int port, const char *method, const char *path, const char *token,
                             int ncookies, const char *json)
{
    size_t cap = 4096 + (token ? strlen(token) : 0) + (size_t)ncookies * 112 + (json ? strlen(json) : 0);
    char *q = malloc(cap);
    ck_assert_ptr_nonnull(q);
    size_t n = (size_t)snprintf(q, cap,
        "%s %s HTTP/1.1\r\n"
        "Host: 127.0.0.1:%d\r\n"
        "Connection: keep-alive\r\n"
        "sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n"
        "Accept: %s\r\n"
        "Cache-Control: no-cache\r\n"
        "sec-ch-ua-mobile: ?0\r\n"
        "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36\r\n"
        "sec-ch-ua-platform: \"Windows\"\r\n"
        "Origin: http://127.0.0.1:%d\r\n"
        "Sec-Fetch-Site: same-origin\r\n"
        "Sec-Fetch-Mode: cors\r\n"
        "Sec-Fetch-Dest: empty\r\n"
        "Referer: http://127.0.0.1:%d/sse-example.html\r\n"
        "Accept-Encoding: gzip, deflate, br, zstd\r\n"
        "Accept-Language: en-GB,en-US;q=0.9,en;q=0.8\r\n",
        method, path, port, json ? "*/*" : "text/event-stream", port, port);
    if (token)
        n += (size_t)snprintf(q + n, cap - n, "Authorization: Bearer %s\r\n", token);
    if (ncookies) {
        n += (size_t)snprintf(q + n, cap - n, "Cookie: ");
        for (int i = 0; i < ncookies; i++)
            n += (size_t)snprintf(q + n, cap - n, "%sck_%02d=%090d", i ? "; " : "", i, i);
        n += (size_t)snprintf(q + n, cap - n, "\r\n");
    }
    if (json)
        n += (size_t)snprintf(q + n, cap - n, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                              strlen(json));
    n += (size_t)snprintf(q + n, cap - n, "\r\n%s", json ? json : "");
    ck_assert_uint_lt(n, cap);
    return q;
}

START_TEST(browser_request_heads)
{
    struct gwx g;
    struct raw rr;
    gw_start(&g, (const char *[]){ "AUTH_JWT_SECRET=" JWT_SECRET, NULL });   /* default pool size */

    /* a 2 KB access token: claims an identity provider puts in one */
    int64_t now = clock_now_ms() / 1000;
    char payload[2048];
    snprintf(payload, sizeof(payload),
             "{\"sub\":\"user-1\",\"iat\":%lld,\"exp\":%lld,\"app_metadata\":\"%01400d\"}",
             (long long)now, (long long)now + 600, 7);
    char *token = craft_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, JWT_SECRET);
    ck_assert_uint_ge(strlen(token), 2000);

    /* with 1 KB of cookies: the user stream opens (a long-lived response), a job is accepted */
    char *q = browser_request(g.port, "GET", "/api/events", token, 10, NULL);
    fprintf(stderr, "[gwtest] browser request head: %zu bytes\n", strlen(q));
    int fd = raw_connect(g.port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(raw_sends(fd, q), 0);
    ck_assert_int_eq(raw_read(fd, &rr, true, RAW_TIMEOUT_MS), 0);
    ck_assert_msg(rr.status == 200, "stream: status %d", rr.status);
    ck_assert_ptr_nonnull(strstr(raw_header(&rr, "Content-Type"), "text/event-stream"));
    raw_done(&rr);
    close(fd);
    free(q);

    q = browser_request(g.port, "POST", FLASHCARDS, token, 10, VALID_JOB);
    ck_assert_int_eq(raw_exchange(g.port, q, false, &rr), 0);
    ck_assert_msg(rr.status == 202, "job: status %d %s", rr.status, rr.body ? rr.body : "");
    raw_done(&rr);
    free(q);

    /* 8 KB of cookies: a clean 431, not a closed connection */
    q = browser_request(g.port, "GET", "/api/events", token, 80, NULL);
    ck_assert_int_eq(raw_exchange(g.port, q, false, &rr), 0);
    ck_assert_msg(rr.status == 431, "8 KB of cookies: status %d", rr.status);
    raw_done(&rr);
    free(q);

    ck_assert_int_eq(raw_exchange(g.port, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                  false, &rr), 0);
    ck_assert_int_eq(rr.status, 200);
    raw_done(&rr);
    free(token);
    gw_stop(&g);
}
END_TEST

/* A stream's request is parked once its handler has run (server.c): the
 * completion still writes its access log line when the client goes away. */
START_TEST(stream_access_log)
{
    struct gwx g;
    struct raw rr;
    /* development mode (user-id names the user); idle streams are probed every 200 ms */
    gw_start(&g, (const char *[]){ "SSE_HEARTBEAT_MS=200", NULL });
    int fd = raw_connect(g.port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(raw_sends(fd, "GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                                   "user-id: log-user\r\nX-Request-Id: rid-parked-stream-5\r\n\r\n"), 0);
    ck_assert_int_eq(raw_read(fd, &rr, true, RAW_TIMEOUT_MS), 0);
    ck_assert_int_eq(rr.status, 200);
    ck_assert_str_eq(raw_header(&rr, "X-Request-Id"), "rid-parked-stream-5");
    raw_done(&rr);
    close(fd);

    char *log = NULL;
    const char *line = NULL;
    int64_t deadline = clock_mono_ms() + 10000;
    do {           /* written once a heartbeat finds the client gone */
        free(log);
        log = fx_proc_log(&g.p);
        line = strstr(log, "\"request_id\":\"rid-parked-stream-5\"");
    } while (!line && clock_mono_ms() < deadline);
    ck_assert_msg(line != NULL, "no access log line for the stream");
    const char *bol = line, *eol = strchr(line, '\n');
    while (bol > log && bol[-1] != '\n')
        bol--;
    size_t len = eol ? (size_t)(eol - bol) : strlen(bol);
    char *l = strndup(bol, len);
    ck_assert_msg(strstr(l, "\"msg\":\"request\"") && strstr(l, "\"path\":\"/api/events\"") &&
                  strstr(l, "\"status\":200") && strstr(l, "\"method\":\"GET\""), "access log line: %s", l);
    free(l);
    free(log);
    ck_assert_int_eq(raw_exchange(g.port, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                  false, &rr), 0);
    ck_assert_int_eq(rr.status, 200);
    raw_done(&rr);
    gw_stop(&g);
}
END_TEST

/* ------------------------------------------------------------ slow clients */

#define SLOW_DEADLINE_S 2
#define SLOW_MARGIN_MS 8000

/*
 * Trickle `tail` one byte per second after sending `head` at once; between
 * bytes, check that a normal client is served.  Returns the ms from the
 * first byte to the disconnect, or -1 if the connection survived the deadline
 * plus the margin.
 */
static long trickle(struct gwx *g, const char *head, const char *tail, int *normal_ok)
{
    int fd = raw_connect(g->port);
    ck_assert_int_ge(fd, 0);
    int64_t t0 = clock_mono_ms();
    if (*head)
        ck_assert_int_eq(raw_sends(fd, head), 0);
    size_t i = 0, n = strlen(tail);
    for (;;) {
        if (i < n && raw_send(fd, tail + i++, 1) != 0)
            break;                                   /* reset by the server */
        struct fx_http_resp r;
        if (fx_http_get(U(g, "/health"), &r) == 0 && r.status == 200)
            (*normal_ok)++;
        fx_http_resp_done(&r);
        /* one second per byte, returning early if the server closes */
        if (raw_wait_closed(fd, 1000))
            break;
        if (clock_mono_ms() - t0 > SLOW_DEADLINE_S * 1000 + SLOW_MARGIN_MS) {
            close(fd);
            return -1;
        }
    }
    long ms = (long)(clock_mono_ms() - t0);
    close(fd);
    fprintf(stderr, "[gwtest] slow client disconnected after %ld ms (%zu of %zu bytes sent); "
            "%d normal requests served meanwhile\n", ms, i, n, *normal_ok);
    return ms;
}

START_TEST(slow_header_client)
{
    struct gwx g;
    gw_start(&g, (const char *[]){ "HTTP_HEADER_TIMEOUT_S=2", "HTTP_BODY_TIMEOUT_S=2", NULL });
    int normal_ok = 0;
    long ms = trickle(&g, "", "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
                      &normal_ok);
    ck_assert_msg(ms >= 0, "a client sending one header byte a second was not disconnected within %d s",
                  SLOW_DEADLINE_S + SLOW_MARGIN_MS / 1000);
    ck_assert_msg(normal_ok >= 1, "normal clients were not served while a slow one was connected");
    ck_assert(fx_proc_running(&g.p));
    gw_stop(&g);
}
END_TEST

START_TEST(slow_body_client)
{
    struct gwx g;
    gw_start(&g, (const char *[]){ "HTTP_HEADER_TIMEOUT_S=2", "HTTP_BODY_TIMEOUT_S=2", NULL });
    int normal_ok = 0;
    long ms = trickle(&g,
        "POST " FLASHCARDS " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "user-id: slow\r\nContent-Length: 60\r\n\r\n",
        "{\"content\":\"aaaaaaaaaaaaaaaaaaaa\",\"subject\":\"s\",\"topic\":\"tttttt\"}", &normal_ok);
    ck_assert_msg(ms >= 0, "a client sending one body byte a second was not disconnected within %d s",
                  SLOW_DEADLINE_S + SLOW_MARGIN_MS / 1000);
    ck_assert_msg(normal_ok >= 1, "normal clients were not served while a slow one was connected");
    /* an idle keep-alive connection is closed after the header deadline too */
    int fd = raw_connect(g.port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(raw_sends(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    struct raw rr;
    ck_assert_int_eq(raw_read(fd, &rr, false, RAW_TIMEOUT_MS), 0);
    ck_assert_int_eq(rr.status, 200);
    raw_done(&rr);
    ck_assert_msg(raw_wait_closed(fd, SLOW_DEADLINE_S * 1000 + SLOW_MARGIN_MS),
                  "an idle keep-alive connection outlived the header deadline");
    close(fd);
    gw_stop(&g);
}
END_TEST

/* ------------------------------------------------------------ many connections */

#define MANY_CONNS 2000

START_TEST(many_idle_connections)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rlim_t want = MANY_CONNS + 256;
    if (rl.rlim_cur < want) {
        ck_assert_msg(rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want,
                      "RLIMIT_NOFILE hard limit %llu is below %llu", (unsigned long long)rl.rlim_max,
                      (unsigned long long)want);
        rl.rlim_cur = want;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    struct gwx g;
    struct fx_http_resp r;
    /* long idle deadlines: this test is about capacity, not the reaper */
    gw_start(&g, (const char *[]){ "HTTP_HEADER_TIMEOUT_S=120", "HTTP_CONN_TIMEOUT_S=120", NULL });

    int *fds = malloc(MANY_CONNS * sizeof(int));
    ck_assert_ptr_nonnull(fds);
    for (int i = 0; i < MANY_CONNS; i++) {
        fds[i] = raw_connect(g.port);
        ck_assert_msg(fds[i] >= 0, "connection %d: %s", i, strerror(-fds[i]));
    }
    /* each is a real keep-alive client: one request answered, then idle */
    static const char ka[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < MANY_CONNS; i++)
        ck_assert_int_eq(raw_sends(fds[i], ka), 0);
    for (int i = 0; i < MANY_CONNS; i++) {
        struct raw rr;
        int rc = raw_read(fds[i], &rr, false, 30000);
        ck_assert_msg(rc == 0 && rr.status == 200, "connection %d: rc %d status %d", i, rc, rr.status);
        raw_done(&rr);
    }
    /* with all of them open and idle, a new client is served */
    ck_assert_int_eq(get(&g, "/health", NULL, &r), 200);
    fx_http_resp_done(&r);
    ck_assert_int_eq(get(&g, "/api/health", NULL, &r), 200);
    fx_http_resp_done(&r);
    /* and none of the idle ones was dropped: a second request on the first and last */
    int probe[] = { 0, MANY_CONNS / 2, MANY_CONNS - 1 };
    for (size_t k = 0; k < 3; k++) {
        struct raw rr;
        ck_assert_int_eq(raw_sends(fds[probe[k]], ka), 0);
        ck_assert_int_eq(raw_read(fds[probe[k]], &rr, false, RAW_TIMEOUT_MS), 0);
        ck_assert_int_eq(rr.status, 200);
        raw_done(&rr);
    }
    for (int i = 0; i < MANY_CONNS; i++)
        close(fds[i]);
    free(fds);
    ck_assert_int_eq(get(&g, "/health", NULL, &r), 200);
    fx_http_resp_done(&r);
    gw_stop(&g);
}
END_TEST

/* ------------------------------------------------------------ Redis away and back */

static long poll_status(struct gwx *g, const char *path, long want, int timeout_ms)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    long st = 0;
    for (;;) {
        struct fx_http_resp r;
        fx_http_get(U(g, path), &r);
        st = r.status;
        fx_http_resp_done(&r);
        if (st == want || clock_mono_ms() >= deadline)
            return st;
        ck_assert_msg(fx_proc_running(&g->p), "gateway exited while waiting for %s", path);
        clock_sleep_ms(100);
    }
}

START_TEST(redis_away_and_back)
{
    struct gwx g;
    struct fx_http_resp r;
    gw_start(&g, NULL);
    ck_assert_int_eq(get(&g, "/ready", NULL, &r), 200);
    fx_http_resp_done(&r);

    ck_assert_int_eq(fx_redis_stop(&g.rs), 0);

    /* every pool thread's connection is now dead: no waiting needed */
    for (int round = 0; round < 4; round++) {
        ck_assert_int_eq(get(&g, "/ready", NULL, &r), 503);
        struct json_object *o = jparse(r.body);
        ck_assert_msg(jarray_has(o, "missing", "redis"), "missing: %s", r.body);
        json_object_put(o);
        fx_http_resp_done(&r);

        ck_assert_int_eq(get(&g, "/api/health", NULL, &r), 200);
        o = jparse(r.body);
        assert_jstr(o, "status", "degraded");
        assert_jstr(o, "services.redis", "disconnected");
        json_object_put(o);
        fx_http_resp_done(&r);

        ck_assert_int_eq(get(&g, "/api/redis/health", NULL, &r), 503);
        o = jparse(r.body);
        assert_jstr(o, "redis", "disconnected");
        assert_jstr(o, "code", "REDIS_UNAVAILABLE");
        ck_assert(!json_object_get_boolean(jat(o, "success")));
        json_object_put(o);
        fx_http_resp_done(&r);

        ck_assert_int_eq(get(&g, "/api/queue/stats", NULL, &r), 503);
        expect_error(&r, 503, "REDIS_UNAVAILABLE");
        fx_http_resp_done(&r);

        post_json(&g, FLASHCARDS, VALID_JOB, (const char *[]){ "user-id: u1", NULL }, &r);
        expect_error(&r, 503, "REDIS_UNAVAILABLE");
        ck_assert_ptr_nonnull(fx_http_header(&r, "Retry-After"));
        fx_http_resp_done(&r);

        /* liveness does not depend on Redis */
        ck_assert_int_eq(get(&g, "/health", NULL, &r), 200);
        fx_http_resp_done(&r);
    }
    ck_assert(fx_proc_running(&g.p));

    ck_assert_int_eq(fx_redis_restart(&g.rs), 0);
    ck_assert_int_eq(poll_status(&g, "/ready", 200, 20000), 200);
    ck_assert_int_eq(poll_status(&g, "/api/redis/health", 200, 20000), 200);
    /* once back, every thread reconnects: a run of consecutive successes */
    int64_t deadline = clock_mono_ms() + 20000;
    int good = 0;
    while (good < 10 && clock_mono_ms() < deadline) {
        fx_http_get(U(&g, "/api/health"), &r);
        bool ok = r.status == 200 && strstr(r.body, "\"healthy\"");
        good = ok ? good + 1 : 0;
        fx_http_resp_done(&r);
    }
    ck_assert_msg(good >= 10, "/api/health did not settle back to healthy");
    ck_assert_int_eq(post_json(&g, FLASHCARDS, VALID_JOB, (const char *[]){ "user-id: u1", NULL }, &r), 202);
    fx_http_resp_done(&r);
    gw_stop(&g);
}
END_TEST

/* ------------------------------------------------------------ shutdown */

START_TEST(shutdown_clean)
{
    struct gwx g;
    struct fx_http_resp r;
    gw_start(&g, NULL);
    /* an idle keep-alive client does not hold the shutdown up */
    int fd = raw_connect(g.port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(raw_sends(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    struct raw rr;
    ck_assert_int_eq(raw_read(fd, &rr, false, RAW_TIMEOUT_MS), 0);
    raw_done(&rr);
    ck_assert_int_eq(get(&g, "/health", NULL, &r), 200);
    fx_http_resp_done(&r);

    ck_assert_int_eq(fx_proc_signal(&g.p, SIGTERM), 0);
    ck_assert_int_eq(fx_proc_wait_exit(&g.p, 5000 + 10000), 0);
    ck_assert_msg(raw_wait_closed(fd, 5000), "the keep-alive connection was not closed at exit");
    close(fd);
    int c = raw_connect(g.port);
    ck_assert_msg(c < 0, "still accepting after exit");
    char *log = fx_proc_log(&g.p);
    ck_assert_ptr_nonnull(strstr(log, "shutdown complete"));
    free(log);
    assert_log_clean(&g);
    fx_proc_done(&g.p);
    fx_redis_done(&g.rs);
}
END_TEST

/*
 * Holds one request in flight: headers of a POST with Expect: 100-continue,
 * waits for "100 Continue" (proof the gateway has the request), then sends
 * part of the body.  Returns the socket.
 */
static int hold_request(struct gwx *g)
{
    int fd = raw_connect(g->port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(raw_sends(fd, "POST /health HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                   "Content-Length: 10\r\nExpect: 100-continue\r\n\r\n"), 0);
    struct raw rr;
    ck_assert_int_eq(raw_read(fd, &rr, false, RAW_TIMEOUT_MS), 0);
    ck_assert_msg(rr.status == 100, "expected 100 Continue, got %d", rr.status);
    raw_done(&rr);
    ck_assert_int_eq(raw_sends(fd, "{\"a\":"), 0);
    return fd;
}

/* An idle keep-alive connection, already used once. */
static int keepalive_conn(struct gwx *g)
{
    int fd = raw_connect(g->port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(raw_sends(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    struct raw rr;
    ck_assert_int_eq(raw_read(fd, &rr, false, RAW_TIMEOUT_MS), 0);
    ck_assert_int_eq(rr.status, 200);
    raw_done(&rr);
    return fd;
}

/* After SIGTERM: the listening socket goes away while the process runs: a
 * new connection fails at once, refused, or reset when the kernel had
 * completed its handshake as the listener shut down (seen under load: the
 * client sees ECONNRESET from connect()); either way it is not served and
 * the client moves on. */
static void expect_refusing(struct gwx *g)
{
    int64_t deadline = clock_mono_ms() + 5000;
    int c;
    while ((c = raw_connect(g->port)) >= 0 && clock_mono_ms() < deadline) {
        close(c);
        clock_sleep_ms(20);
    }
    if (c >= 0)
        close(c);
    ck_assert_msg(c == -ECONNREFUSED || c == -ECONNRESET, "new connections still accepted after SIGTERM (%d)", c);
    ck_assert_msg(fx_proc_running(&g->p), "the gateway exited with a request in flight");
}

/* /ready on an existing connection during the drain: 503 naming "draining". */
static void expect_draining(int ka)
{
    struct raw rr;
    ck_assert_int_eq(raw_sends(ka, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    ck_assert_int_eq(raw_read(ka, &rr, false, RAW_TIMEOUT_MS), 0);
    ck_assert_msg(rr.status == 503, "/ready during drain: %d %s", rr.status, rr.body);
    ck_assert_ptr_nonnull(strstr(rr.body, "draining"));
    raw_done(&rr);
}

START_TEST(shutdown_drains_inflight)
{
    struct gwx g;
    gw_start(&g, (const char *[]){ "SHUTDOWN_GRACE_MS=30000", "HTTP_BODY_TIMEOUT_S=120", NULL });
    int ka = keepalive_conn(&g);
    int fd = hold_request(&g);

    ck_assert_int_eq(fx_proc_signal(&g.p, SIGTERM), 0);
    expect_refusing(&g);
    expect_draining(ka);
    ck_assert(fx_proc_running(&g.p));

    /* the in-flight request finishes and is answered, then the process exits 0 */
    ck_assert_int_eq(raw_sends(fd, "12345"), 0);
    struct raw rr;
    ck_assert_int_eq(raw_read(fd, &rr, false, RAW_TIMEOUT_MS), 0);
    ck_assert_int_eq(rr.status, 405);
    raw_done(&rr);
    ck_assert_int_eq(fx_proc_wait_exit(&g.p, 15000), 0);
    close(fd);
    close(ka);
    assert_log_clean(&g);
    fx_proc_done(&g.p);
    fx_redis_done(&g.rs);
}
END_TEST

START_TEST(shutdown_grace_expires)
{
    struct gwx g;
    gw_start(&g, (const char *[]){ "SHUTDOWN_GRACE_MS=1500", "HTTP_BODY_TIMEOUT_S=120", NULL });
    int fd = hold_request(&g);
    ck_assert_int_eq(fx_proc_signal(&g.p, SIGTERM), 0);
    expect_refusing(&g);
    /* the request never completes: exit 0 once the grace is over */
    ck_assert_int_eq(fx_proc_wait_exit(&g.p, 1500 + 10000), 0);
    ck_assert_msg(raw_wait_closed(fd, 5000), "the held connection was not closed at exit");
    close(fd);
    char *log = fx_proc_log(&g.p);
    ck_assert_ptr_nonnull(strstr(log, "grace expired"));
    free(log);
    assert_log_clean(&g);
    fx_proc_done(&g.p);
    fx_redis_done(&g.rs);
}
END_TEST

START_TEST(shutdown_second_signal)
{
    struct gwx g;
    gw_start(&g, (const char *[]){ "SHUTDOWN_GRACE_MS=60000", "HTTP_BODY_TIMEOUT_S=120", NULL });
    int ka = keepalive_conn(&g);
    int fd = hold_request(&g);
    ck_assert_int_eq(fx_proc_signal(&g.p, SIGTERM), 0);
    expect_refusing(&g);
    expect_draining(ka);
    /* a second signal: exit at once, non-zero */
    ck_assert_int_eq(fx_proc_signal(&g.p, SIGINT), 0);
    int code = fx_proc_wait_exit(&g.p, 5000);
    ck_assert_msg(code > 0 && code < 128, "second signal: exit %d (want a non-zero exit status)", code);
    close(fd);
    close(ka);
    fx_proc_done(&g.p);
    fx_redis_done(&g.rs);
}
END_TEST

/* ------------------------------------------------------------ invalid configuration */

static void expect_config_error(const char *kv, const char *name)
{
    struct gwx g;
    gw_start_opts(&g, (const char *[]){ kv, NULL }, true);
    int code = fx_proc_wait_exit(&g.p, 10000);
    if (code != 2)
        fx_proc_print_log(&g.p);
    ck_assert_msg(code == 2, "%s: exit %d, want 2", kv, code);
    char *log = fx_proc_log(&g.p);
    ck_assert_ptr_nonnull(log);
    ck_assert_msg(strstr(log, name) != NULL, "%s: the log does not name %s:\n%s", kv, name, log);
    free(log);
    fx_proc_done(&g.p);
}

/*
 * Every invalid value stops the program with status 2 and names the
 * variable; under AddressSanitizer this also checks that the early exits
 * free what they allocated (a leak report would turn the status into 1).
 */
START_TEST(invalid_configuration)
{
    expect_config_error("PORT=abc", "PORT");
    expect_config_error("PORT=70000", "PORT");
    expect_config_error("ADMIN_ALLOW_CIDRS=garbage", "ADMIN_ALLOW_CIDRS");
    expect_config_error("ADMIN_ALLOW_CIDRS=10.0.0.0/33", "ADMIN_ALLOW_CIDRS");
    expect_config_error("TRUST_PROXY=-1", "TRUST_PROXY");
    expect_config_error("MAX_BODY_BYTES=lots", "MAX_BODY_BYTES");
    expect_config_error("HTTP_HEADER_TIMEOUT_S=0", "HTTP_HEADER_TIMEOUT_S");
    expect_config_error("LOG_LEVEL=chatty", "LOG_LEVEL");
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *gateway_suite(void)
{
    Suite *s = suite_create("gateway");
    struct { const char *name; const TTest *t; } tests[] = {
        { "health", health_endpoints },
        { "request_id", request_id },
        { "cors_default", cors_default },
        { "cors_origin_list", cors_origin_list },
        { "routing", not_found_and_wrong_method },
        { "admin_loopback", admin_loopback_default },
        { "admin_cidr_token", admin_cidr_and_token },
        { "admin_trust_proxy", admin_trust_proxy },
        { "identity", identity_jwt },
        { "body", body_errors },
        { "body_single_quoted_key", body_single_quoted_key },
        { "static_files", static_files },
        { "static_symlinks", static_symlinks_and_types },
        { "header_flood", header_flood },
        { "browser_heads", browser_request_heads },
        { "stream_access_log", stream_access_log },
        { "slow_header", slow_header_client },
        { "slow_body", slow_body_client },
        { "many_connections", many_idle_connections },
        { "redis", redis_away_and_back },
        { "shutdown_clean", shutdown_clean },
        { "shutdown_drain", shutdown_drains_inflight },
        { "shutdown_grace", shutdown_grace_expires },
        { "shutdown_second_signal", shutdown_second_signal },
        { "config", invalid_configuration },
    };
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        TCase *tc = tcase_create(tests[i].name);   /* CK_RUN_CASE=<name> runs one */
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, tests[i].t);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(gateway_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
