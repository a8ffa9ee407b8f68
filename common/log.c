/*
 * JSON-lines logging to stderr.
 *
 * A line is built in a buffer on the stack (LOG_STACK_BUF), moved to the heap
 * when it grows past that, and written with one write(2), so lines of
 * concurrent threads do not interleave (writes to a pipe up to PIPE_BUF are
 * atomic; longer ones are still one call, which is as good as the kernel
 * gives).  A line never exceeds LOG_LINE_MAX: a string value that would push
 * it past the cap is cut (ending in "...(truncated)"), fields that no longer
 * fit are dropped, and the line then carries "truncated":true.  LOG_RESERVE
 * bytes are kept free at all times so the line can always be closed.  If the
 * heap is exhausted the line is simply capped at the stack buffer.
 *
 * Fields, in order: ts, level, msg, service, instance, then the caller's
 * pairs.  All strings go through jsonx_escape_step, so any bytes a user sends
 * us come out as valid JSON (invalid UTF-8 as \ufffd).
 *
 * Settings are written by log_init before threads start and only read after.
 */
#include "common/log.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/jsonx.h"

#define LOG_LINE_MAX  65536     /* one line, newline included */
#define LOG_STACK_BUF 4096      /* lines up to this size never touch the heap */
#define LOG_RESERVE   64        /* always free: ,"truncated":true}\n */
#define LOG_NAME_MAX  128       /* service and instance names are cut to this */

#define LOG_CUT_MARK  "...(truncated)"

static char log_service[LOG_NAME_MAX];
static char log_instance[LOG_NAME_MAX];
static enum log_level log_min = LOG_INFO;

static const char *const log_level_names[] = { "debug", "info", "warn", "error" };

struct logbuf {
    char *p;
    size_t len, cap;
    size_t limit;               /* hard cap of the line */
    bool truncated;
    char *stack;                /* the caller's stack buffer (p starts there) */
};

void log_init(const char *service, const char *instance, enum log_level min)
{
    snprintf(log_service, sizeof(log_service), "%s", service ? service : "");
    snprintf(log_instance, sizeof(log_instance), "%s", instance ? instance : "");
    log_min = min;
}

int log_level_parse(const char *s)
{
    for (size_t i = 0; s && i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++)
        if (strcasecmp(s, log_level_names[i]) == 0)
            return (int)i;
    return -1;
}

bool log_enabled(enum log_level lvl)
{
    return lvl >= log_min;
}

/* Make room for n more bytes plus the reserve, within the limit. */
static bool lb_room(struct logbuf *b, size_t n)
{
    size_t need = b->len + n + LOG_RESERVE, ncap;
    char *np;

    if (need > b->limit)
        return false;
    if (need <= b->cap)
        return true;
    ncap = b->cap * 2;
    if (ncap < need)
        ncap = need;
    if (ncap > b->limit)
        ncap = b->limit;
    if (b->p == b->stack) {
        np = malloc(ncap);
        if (np)
            memcpy(np, b->p, b->len);
    } else {
        np = realloc(b->p, ncap);
    }
    if (!np) {
        b->limit = b->cap;      /* out of memory: cap the line where it is */
        return false;
    }
    b->p = np;
    b->cap = ncap;
    return true;
}

/* Append without checks: the caller made room. */
static void lb_raw(struct logbuf *b, const char *s, size_t n)
{
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static bool lb_put(struct logbuf *b, const char *s, size_t n)
{
    if (!lb_room(b, n))
        return false;
    lb_raw(b, s, n);
    return true;
}

/* A quoted string; cut short with LOG_CUT_MARK if the line is full.
 * False only if not even the quotes and the mark fit. */
static bool lb_str(struct logbuf *b, const char *s)
{
    static const char tail[] = LOG_CUT_MARK "\"";
    const size_t tail_len = sizeof(tail) - 1;
    char step[JSONX_ESCAPE_STEP_MAX];
    size_t n;

    if (!s)
        return lb_put(b, "null", 4);
    if (!lb_room(b, 1 + tail_len))
        return false;
    lb_raw(b, "\"", 1);
    n = strlen(s);
    while (n > 0) {
        size_t used, k = jsonx_escape_step(s, n, step, &used);

        if (!lb_room(b, k + tail_len)) {
            lb_raw(b, tail, tail_len);  /* fits: the last check reserved it */
            b->truncated = true;
            return true;
        }
        lb_raw(b, step, k);
        s += used;
        n -= used;
    }
    lb_raw(b, "\"", 1);
    return true;
}

/* ,"key": */
static bool lb_key(struct logbuf *b, const char *key)
{
    return lb_put(b, ",", 1) && lb_str(b, key ? key : "") && !b->truncated &&
           lb_put(b, ":", 1);
}

static bool lb_kv(struct logbuf *b, const struct log_kv *kv)
{
    char num[64];
    int n;

    if (!lb_key(b, kv->key))
        return false;
    switch (kv->type) {
    case LOG_T_STR:
        return lb_str(b, kv->v.s);
    case LOG_T_INT:
        n = snprintf(num, sizeof(num), "%lld", kv->v.i);
        return lb_put(b, num, (size_t)n);
    case LOG_T_DBL:
        if (!isfinite(kv->v.d))
            return lb_put(b, "null", 4);
        n = snprintf(num, sizeof(num), "%.15g", kv->v.d);
        return lb_put(b, num, (size_t)n);
    case LOG_T_BOOL:
        return kv->v.b ? lb_put(b, "true", 4) : lb_put(b, "false", 5);
    case LOG_T_RAW:
        if (!kv->v.s)
            return lb_put(b, "null", 4);
        if (lb_put(b, kv->v.s, strlen(kv->v.s)))
            return true;
        b->truncated = true;    /* raw JSON cannot be cut: say null instead */
        return lb_put(b, "null", 4);
    default:
        return lb_put(b, "null", 4);
    }
}

static void log_emit(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, p, len);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;             /* nowhere left to report it */
        }
        p += w;
        len -= (size_t)w;
    }
}

/* Append the pairs until LOG_T_END; a pair that does not fit is dropped
 * whole and ends the line. */
static void lb_pairs(struct logbuf *b, const struct log_kv *kv)
{
    for (; !b->truncated && kv && kv->type != LOG_T_END; kv++) {
        size_t mark = b->len;

        if (kv->type == LOG_T_SKIP)
            continue;
        if (!lb_kv(b, kv)) {
            b->len = mark;
            b->truncated = true;
        }
    }
}

void log_write(enum log_level lvl, const char *msg, const struct log_kv *kv)
{
    char stack[LOG_STACK_BUF];
    struct logbuf b = { .p = stack, .cap = sizeof(stack), .limit = LOG_LINE_MAX, .stack = stack };
    char ts[CLOCK_ISO_LEN];
    const struct log_kv meta[] = {
        LOG_STR("service", log_service[0] ? log_service : program_invocation_short_name),
        LOG_STR("instance", log_instance[0] ? log_instance : NULL),
        { .type = LOG_T_END },
    };

    if ((int)lvl < LOG_DEBUG || lvl > LOG_ERROR)
        lvl = LOG_ERROR;
    if (!log_enabled(lvl))
        return;
    clock_iso8601(clock_now_ms(), ts);

    /* The fixed head is far below the stack buffer: these cannot fail. */
    lb_put(&b, "{\"ts\":\"", 7);
    lb_put(&b, ts, strlen(ts));
    lb_put(&b, "\",\"level\":\"", 11);
    lb_put(&b, log_level_names[lvl], strlen(log_level_names[lvl]));
    lb_put(&b, "\",\"msg\":", 8);
    lb_str(&b, msg ? msg : "");
    lb_pairs(&b, meta);
    lb_pairs(&b, kv);
    /* The reserve is still free, whatever happened above. */
    if (b.truncated)
        lb_raw(&b, ",\"truncated\":true", 17);
    lb_raw(&b, "}\n", 2);
    log_emit(b.p, b.len);
    if (b.p != stack)
        free(b.p);
}
