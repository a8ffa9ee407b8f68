/*
 * redisx: one synchronous hiredis connection per owning thread, with lazy
 * connect, connect/command timeouts and reconnect backoff.
 *
 * State machine of a struct redisx:
 *   ctx == NULL, next_try <= now   -> the next call connects (AUTH, SELECT)
 *   ctx == NULL, next_try >  now   -> calls fail fast with -EAGAIN (backing off)
 *   ctx != NULL                    -> commands run; an I/O error or timeout frees
 *                                     ctx and schedules next_try with backoff
 * Backoff: 100 ms doubling up to retry_max_ms, each wait jittered to 50..100 %,
 * reset after a successful connect.  A NULL reply from hiredis always means the
 * context is unusable (hiredis sets c->err), so it is dropped, never reused.
 *
 * redisx_thread() keeps one struct redisx per thread in a pthread key whose
 * destructor frees it when the thread exits.
 */
#include "common/redisx.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/crypto.h"
#include "common/ids.h"
#include "common/log.h"

#define BACKOFF_START_MS 100

struct redisx {
    struct redis_target t;
    redisContext *ctx;
    int64_t next_try_ms;         /* monotonic; 0 = may connect now */
    int backoff_ms;
    int last_err;
    int timeout_override_ms;     /* 0 = t.command_timeout_ms */
    bool logged_down;            /* log the outage once, not per attempt */
    int64_t last_used_ms;        /* monotonic, last command on this connection */
};

#define IDLE_CHECK_MS 250        /* connections idle this long are checked before use */

static struct timeval ms_to_tv(int ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    return tv;
}

/* ------------------------------------------------------------ targets */

static int parse_int_range(const char *s, size_t n, long lo, long hi, long *out)
{
    if (n == 0 || n > 10)
        return -EINVAL;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Percent-decode src[0..n) into dst (cap bytes incl. NUL). */
static int pct_decode(const char *src, size_t n, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -EINVAL;
            char hex[3] = { src[i + 1], src[i + 2], 0 };
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end || v == 0)
                return -EINVAL;
            c = (char)v;
            i += 2;
        }
        if (o + 1 >= cap)
            return -EINVAL;
        dst[o++] = c;
    }
    dst[o] = 0;
    return 0;
}

int redisx_parse_url(const char *url, struct redis_target *t)
{
    const char *p;
    memset(t->host, 0, sizeof(t->host));
    t->password[0] = 0;
    t->username[0] = 0;
    t->port = 6379;
    t->db = 0;
    t->unix_socket = false;

    if (strncmp(url, "unix://", 7) == 0) {
        p = url + 7;
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || n >= sizeof(t->host) || p[0] != '/')
            return -EINVAL;
        memcpy(t->host, p, n);
        t->unix_socket = true;
        if (q) {
            long db;
            if (strncmp(q, "?db=", 4) != 0 || parse_int_range(q + 4, strlen(q + 4), 0, 1000000, &db))
                return -EINVAL;
            t->db = (int)db;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) == 0)
        p = url + 8;
    else if (strncmp(url, "rediss://", 9) == 0)
        return -EINVAL;                  /* TLS not supported by this build */
    else
        return -EINVAL;

    /* userinfo: everything up to the last '@' before the path */
    const char *path = strchr(p, '/');
    const char *at = NULL;
    for (const char *s = p; *s && (!path || s < path); s++)
        if (*s == '@')
            at = s;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (pct_decode(p, (size_t)(colon - p), t->username, sizeof(t->username)) ||
                pct_decode(colon + 1, (size_t)(at - colon - 1), t->password, sizeof(t->password)))
                return -EINVAL;
        } else {
            /* redis://password@host is accepted as a password (common in the wild) */
            if (pct_decode(p, (size_t)(at - p), t->password, sizeof(t->password)))
                return -EINVAL;
        }
        p = at + 1;
    }
    const char *hostend = path ? path : p + strlen(p);
    const char *portsep = NULL;
    if (*p == '[') {                     /* [ipv6]:port */
        const char *rb = memchr(p, ']', (size_t)(hostend - p));
        if (!rb || rb - p - 1 <= 0 || (size_t)(rb - p - 1) >= sizeof(t->host))
            return -EINVAL;
        memcpy(t->host, p + 1, (size_t)(rb - p - 1));
        if (rb + 1 < hostend) {
            if (rb[1] != ':')
                return -EINVAL;
            portsep = rb + 1;
        }
    } else {
        portsep = memchr(p, ':', (size_t)(hostend - p));
        const char *he = portsep ? portsep : hostend;
        if (he == p || (size_t)(he - p) >= sizeof(t->host))
            return -EINVAL;
        memcpy(t->host, p, (size_t)(he - p));
    }
    if (portsep) {
        long port;
        if (parse_int_range(portsep + 1, (size_t)(hostend - portsep - 1), 1, 65535, &port))
            return -EINVAL;
        t->port = (int)port;
    }
    if (path && path[1]) {
        long db;
        const char *q = strchr(path + 1, '?');
        size_t n = q ? (size_t)(q - path - 1) : strlen(path + 1);
        if (parse_int_range(path + 1, n, 0, 1000000, &db))
            return -EINVAL;
        t->db = (int)db;
    }
    return 0;
}

int redisx_target_from_config(const struct config *c, struct redis_target *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    t->connect_timeout_ms = (int)c->redis_connect_timeout_ms;
    t->command_timeout_ms = (int)c->redis_command_timeout_ms;
    t->retry_max_ms = (int)c->redis_retry_max_ms;

    const char *url = c->redis_url ? c->redis_url : c->redis_public_url;
    const char *name = c->redis_url ? "REDIS_URL" : "REDIS_PUBLIC_URL";
    if (url) {
        if (redisx_parse_url(url, t)) {
            snprintf(err, errlen, "invalid value for %s (expected redis://[:password@]host:port[/db])", name);
            return -EINVAL;
        }
        return 0;
    }
    if (!c->redis_host || strlen(c->redis_host) >= sizeof(t->host)) {
        snprintf(err, errlen, "invalid value for REDIS_HOST");
        return -EINVAL;
    }
    snprintf(t->host, sizeof(t->host), "%s", c->redis_host);
    t->port = (int)c->redis_port;
    if (c->redis_password) {
        if (strlen(c->redis_password) >= sizeof(t->password)) {
            snprintf(err, errlen, "invalid value for REDIS_PASSWORD (too long)");
            return -EINVAL;
        }
        snprintf(t->password, sizeof(t->password), "%s", c->redis_password);
    }
    return 0;
}

void redisx_describe(const struct redis_target *t, char *out, size_t cap)
{
    if (t->unix_socket)
        snprintf(out, cap, "unix:%s/%d", t->host, t->db);
    else if (strchr(t->host, ':'))
        snprintf(out, cap, "[%s]:%d/%d", t->host, t->port, t->db);
    else
        snprintf(out, cap, "%s:%d/%d", t->host, t->port, t->db);
}

/* ------------------------------------------------------------ connections */

struct redisx *redisx_new(const struct redis_target *t)
{
    struct redisx *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    r->t = *t;
    if (r->t.connect_timeout_ms <= 0)
        r->t.connect_timeout_ms = 2000;
    if (r->t.command_timeout_ms <= 0)
        r->t.command_timeout_ms = 2000;
    if (r->t.retry_max_ms <= 0)
        r->t.retry_max_ms = 5000;
    r->backoff_ms = BACKOFF_START_MS;
    return r;
}

void redisx_free(struct redisx *r)
{
    if (!r)
        return;
    if (r->ctx)
        redisFree(r->ctx);
    free(r);
}

static int map_ctx_err(const redisContext *c)
{
    if (!c)
        return -ENOMEM;
    switch (c->err) {
    case REDIS_ERR_IO:
        if (c->errstr[0] && strstr(c->errstr, "timed out"))
            return -ETIMEDOUT;
        return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -EIO;
    case REDIS_ERR_EOF:
        return -EIO;
    case REDIS_ERR_PROTOCOL:
        return -EPROTO;
    case REDIS_ERR_OOM:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

static void schedule_retry(struct redisx *r)
{
    int wait = r->backoff_ms / 2 + (int)ids_random_below((uint64_t)r->backoff_ms / 2 + 1);
    r->next_try_ms = clock_mono_ms() + wait;
    if (r->backoff_ms < r->t.retry_max_ms)
        r->backoff_ms = r->backoff_ms * 2 > r->t.retry_max_ms ? r->t.retry_max_ms : r->backoff_ms * 2;
}

static void drop(struct redisx *r, int err, const char *why)
{
    char where[300];
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    r->last_err = err;
    schedule_retry(r);
    if (!r->logged_down) {
        redisx_describe(&r->t, where, sizeof(where));
        log_warn("redis connection lost", LOG_STR("redis", where), LOG_STR("error", why));
        r->logged_down = true;
    }
}

/* Run a setup command on a fresh context; 0 or -errno. */
static int setup_cmd(redisContext *c, const char *what, redisReply *rep, char *why, size_t cap)
{
    if (!rep) {
        snprintf(why, cap, "%s: %s", what, c->errstr);
        return map_ctx_err(c);
    }
    int rc = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(why, cap, "%s refused: %.120s", what, rep->str);
        rc = -EACCES;
    }
    freeReplyObject(rep);
    return rc;
}

int redisx_ensure(struct redisx *r)
{
    if (r->ctx)
        return 0;
    if (r->next_try_ms && clock_mono_ms() < r->next_try_ms) {
        r->last_err = -EAGAIN;
        return -EAGAIN;
    }
    char why[256] = "";
    redisContext *c;
    if (r->t.unix_socket)
        c = redisConnectUnixWithTimeout(r->t.host, ms_to_tv(r->t.connect_timeout_ms));
    else
        c = redisConnectWithTimeout(r->t.host, r->t.port, ms_to_tv(r->t.connect_timeout_ms));
    int rc = 0;
    if (!c || c->err) {
        rc = map_ctx_err(c);
        snprintf(why, sizeof(why), "connect: %s", c ? c->errstr : "out of memory");
        goto out;
    }
    int tmo = r->timeout_override_ms > 0 ? r->timeout_override_ms : r->t.command_timeout_ms;
    if (redisSetTimeout(c, ms_to_tv(tmo)) != REDIS_OK || (!r->t.unix_socket && redisEnableKeepAlive(c) != REDIS_OK)) {
        rc = -EIO;
        snprintf(why, sizeof(why), "socket options: %s", c->errstr);
        goto out;
    }
    if (r->t.password[0]) {
        redisReply *rep = r->t.username[0]
            ? redisCommand(c, "AUTH %s %s", r->t.username, r->t.password)
            : redisCommand(c, "AUTH %s", r->t.password);
        rc = setup_cmd(c, "AUTH", rep, why, sizeof(why));
        if (rc)
            goto out;
    }
    if (r->t.db) {
        rc = setup_cmd(c, "SELECT", redisCommand(c, "SELECT %d", r->t.db), why, sizeof(why));
        if (rc)
            goto out;
    }
out:
    if (rc) {
        if (c)
            redisFree(c);
        r->ctx = NULL;
        drop(r, rc, why);
        return rc;
    }
    r->ctx = c;
    r->backoff_ms = BACKOFF_START_MS;
    r->next_try_ms = 0;
    r->last_err = 0;
    if (r->logged_down) {
        char where[300];
        redisx_describe(&r->t, where, sizeof(where));
        log_info("redis connection restored", LOG_STR("redis", where));
        r->logged_down = false;
    }
    return 0;
}

/*
 * A command connection never receives unsolicited data, so a readable (or
 * hung-up) socket before we send means the server closed it: Redis restarted,
 * or dropped an idle client.  Reconnect now, without backoff, instead of
 * failing the caller's command on a connection we could have known was dead.
 * Only idle connections are checked (a poll() per command would sit on every
 * hot path; a busy connection's failure shows in its next reply anyway).
 */
static void drop_if_closed_by_peer(struct redisx *r)
{
    if (!r->ctx || r->ctx->fd < 0)
        return;
    int64_t now = clock_mono_ms();
    bool idle = now - r->last_used_ms > IDLE_CHECK_MS;
    r->last_used_ms = now;
    if (!idle)
        return;
    struct pollfd p = { .fd = r->ctx->fd, .events = POLLIN };
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
        redisFree(r->ctx);
        r->ctx = NULL;
        r->next_try_ms = 0;
        log_debug("redis closed an idle connection: reconnecting");
    }
}

bool redisx_is_connected(const struct redisx *r)
{
    return r && r->ctx;
}

void redisx_reset(struct redisx *r)
{
    if (r->ctx)
        drop(r, -EIO, "reset by caller");
}

redisContext *redisx_context(struct redisx *r)
{
    drop_if_closed_by_peer(r);
    return redisx_ensure(r) == 0 ? r->ctx : NULL;
}

void redisx_set_timeout(struct redisx *r, int ms)
{
    r->timeout_override_ms = ms > 0 ? ms : 0;
    if (r->ctx)
        redisSetTimeout(r->ctx, ms_to_tv(ms > 0 ? ms : r->t.command_timeout_ms));
}

static redisReply *finish(struct redisx *r, redisReply *rep)
{
    if (!rep) {
        char why[160];
        snprintf(why, sizeof(why), "%s", r->ctx->errstr);
        drop(r, map_ctx_err(r->ctx), why);
        return NULL;
    }
    return rep;
}

redisReply *redisx_command(struct redisx *r, const char *fmt, ...)
{
    drop_if_closed_by_peer(r);
    if (redisx_ensure(r))
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->ctx, fmt, ap);
    va_end(ap);
    return finish(r, rep);
}

redisReply *redisx_commandv(struct redisx *r, int argc, const char **argv, const size_t *argvlen)
{
    drop_if_closed_by_peer(r);
    if (redisx_ensure(r))
        return NULL;
    return finish(r, redisCommandArgv(r->ctx, argc, argv, argvlen));
}

int redisx_last_error(const struct redisx *r)
{
    return r->last_err ? r->last_err : -EIO;
}

/* ------------------------------------------------------------ scripts */

void redisx_script_init(struct redisx_script *s, const char *name, const char *src)
{
    s->name = name;
    s->src = src;
    crypto_sha1_hex(src, strlen(src), s->sha);
}

#define EVAL_MAX_ARGS 1024     /* keys + args per call; batches are chunked by callers */

redisReply *redisx_eval(struct redisx *r, const struct redisx_script *s,
                        int nkeys, int nargs, const char **argv, const size_t *lens)
{
    if (nkeys < 0 || nargs < 0 || nkeys + nargs > EVAL_MAX_ARGS) {
        r->last_err = -EINVAL;
        return NULL;
    }
    const char *av[EVAL_MAX_ARGS + 3];
    size_t al[EVAL_MAX_ARGS + 3];
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    av[0] = "EVALSHA";
    al[0] = 7;
    av[1] = s->sha;
    al[1] = 40;
    av[2] = nk;
    al[2] = strlen(nk);
    for (int i = 0; i < nkeys + nargs; i++) {
        av[3 + i] = argv[i];
        al[3 + i] = lens ? lens[i] : strlen(argv[i]);
    }
    redisReply *rep = redisx_commandv(r, 3 + nkeys + nargs, av, al);
    if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(rep);
        av[0] = "EVAL";
        al[0] = 4;
        av[1] = s->src;
        al[1] = strlen(s->src);
        rep = redisx_commandv(r, 3 + nkeys + nargs, av, al);
    }
    return rep;
}

/* ------------------------------------------------------------ per-thread */

static struct redis_target thread_target;
static bool thread_target_set;
static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static void thread_free(void *p)
{
    redisx_free(p);
}

static void thread_key_init(void)
{
    if (pthread_key_create(&thread_key, thread_free) != 0)
        abort();
}

void redisx_thread_setup(const struct redis_target *t)
{
    thread_target = *t;
    thread_target_set = true;
    pthread_once(&thread_once, thread_key_init);
}

struct redisx *redisx_thread(void)
{
    if (!thread_target_set)
        abort();                 /* programming error: setup missing in main */
    struct redisx *r = pthread_getspecific(thread_key);
    if (!r) {
        r = redisx_new(&thread_target);
        if (pthread_setspecific(thread_key, r) != 0)
            abort();
    }
    return r;
}

long redisx_ping_us(struct redisx *r)
{
    int64_t t0 = clock_mono_us();
    redisReply *rep = redisx_command(r, "PING");
    if (!rep)
        return redisx_last_error(r);
    bool ok = rep->type == REDIS_REPLY_STATUS && strcasecmp(rep->str, "PONG") == 0;
    freeReplyObject(rep);
    if (!ok)
        return -EPROTO;
    return (long)(clock_mono_us() - t0);
}
