/*
 * An event-stream parser for the tests, written from the WHATWG HTML
 * standard, "Server-sent events", section "Interpreting an event stream"
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html):
 *
 *   - one leading UTF-8 BOM of the stream is dropped; bytes are otherwise
 *     passed through (a browser decodes UTF-8; our frames are UTF-8 JSON);
 *   - lines end with CRLF, LF or CR (a CR at the end of one chunk and an LF
 *     at the start of the next are one line end);
 *   - an empty line dispatches the event; a line starting with ':' is a
 *     comment; otherwise the field name is up to the first ':', the value is
 *     the rest with one leading space removed (no ':' at all: the whole
 *     line is the name and the value is empty);
 *   - `event` sets the type buffer, `data` appends the value and an LF to
 *     the data buffer, `id` sets the last event ID buffer unless the value
 *     contains NUL, `retry` sets the reconnection time when the value is all
 *     ASCII digits; other fields are ignored;
 *   - dispatch: the stream's last event ID becomes the buffer's (even when
 *     nothing fires); an empty data buffer fires nothing; else one trailing
 *     LF is removed and an event fires with type = the type buffer or
 *     "message"; data and type buffers are cleared (the last event ID is
 *     not);
 *   - at the end of the stream an unterminated event is discarded.
 *
 * Header-only (static inline), so the unit suite, the fuzz target and the
 * integration suites share one parser.  Not thread-safe per struct.
 * Sizes are capped (SSEP_LINE_MAX per line, SSEP_EVENTS_MAX kept events):
 * ssep_feed answers -EMSGSIZE past them.
 */
#ifndef TESTS_SUPPORT_SSE_PARSE_H
#define TESTS_SUPPORT_SSE_PARSE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define SSEP_LINE_MAX   (8u << 20)   /* longest line (a completed event carries the result) */
#define SSEP_EVENTS_MAX 1000000      /* events kept per parser */

struct ssep_event {
    char *type;            /* "message" when the block had no event field */
    char *data;            /* NUL-terminated; data_len bytes (may contain NUL) */
    size_t data_len;
    char *id;              /* the stream's last event ID when it fired ("" none yet) */
    bool had_id;           /* the block itself carried an accepted id field */
    unsigned data_lines;   /* data fields in the block */
};

struct ssep_buf {
    char *p;
    size_t n, cap;
};

struct ssep {
    bool started;          /* first byte seen (BOM handling) */
    unsigned bom;          /* BOM bytes matched so far at the start */
    bool last_cr;          /* previous byte ended a line with CR */
    bool overflow;
    struct ssep_buf line, data, type, last_id;
    bool type_set, block_id;
    unsigned data_lines;
    long long retry_ms;    /* -1 until a valid retry field */
    unsigned retries;      /* valid retry fields seen */
    unsigned comments;     /* comment lines seen */
    unsigned id_changes;   /* dispatches where the last event ID changed */
    struct ssep_event *ev;
    size_t nev, evcap;
};

static inline void ssep_buf_put(struct ssep_buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            abort();
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static inline char *ssep_dup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        abort();
    if (n)
        memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static inline void ssep_init(struct ssep *p)
{
    memset(p, 0, sizeof(*p));
    p->retry_ms = -1;
    ssep_buf_put(&p->last_id, "", 0);
}

static inline void ssep_clear_events(struct ssep *p)
{
    for (size_t i = 0; i < p->nev; i++) {
        free(p->ev[i].type);
        free(p->ev[i].data);
        free(p->ev[i].id);
    }
    p->nev = 0;
}

static inline void ssep_done(struct ssep *p)
{
    ssep_clear_events(p);
    free(p->ev);
    free(p->line.p);
    free(p->data.p);
    free(p->type.p);
    free(p->last_id.p);
    memset(p, 0, sizeof(*p));
}

static inline void ssep_dispatch(struct ssep *p)
{
    p->id_changes += p->block_id;
    bool fire = p->data.n > 0;
    if (fire && p->nev >= SSEP_EVENTS_MAX) {
        p->overflow = true;
        fire = false;
    }
    if (fire) {
        if (p->nev == p->evcap) {
            size_t cap = p->evcap ? p->evcap * 2 : 16;
            struct ssep_event *v = realloc(p->ev, cap * sizeof(*v));
            if (!v)
                abort();
            p->ev = v;
            p->evcap = cap;
        }
        struct ssep_event *e = &p->ev[p->nev++];
        size_t n = p->data.n;
        if (p->data.p[n - 1] == '\n')
            n--;
        e->data = ssep_dup(p->data.p, n);
        e->data_len = n;
        e->type = p->type_set && p->type.n ? ssep_dup(p->type.p, p->type.n) : ssep_dup("message", 7);
        e->id = ssep_dup(p->last_id.p, p->last_id.n);
        e->had_id = p->block_id;
        e->data_lines = p->data_lines;
    }
    p->data.n = 0;
    p->type.n = 0;
    p->type_set = false;
    p->block_id = false;
    p->data_lines = 0;
}

static inline void ssep_line(struct ssep *p, const char *s, size_t n)
{
    if (n == 0) {
        ssep_dispatch(p);
        return;
    }
    if (s[0] == ':') {
        p->comments++;
        return;
    }
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    size_t vlen = colon ? n - flen - 1 : 0;
    if (vlen && v[0] == ' ') {
        v++;
        vlen--;
    }
#define SSEP_IS(name) (flen == sizeof(name) - 1 && memcmp(s, name, flen) == 0)
    if (SSEP_IS("event")) {
        p->type.n = 0;
        ssep_buf_put(&p->type, v, vlen);
        p->type_set = true;
    } else if (SSEP_IS("data")) {
        ssep_buf_put(&p->data, v, vlen);
        ssep_buf_put(&p->data, "\n", 1);
        p->data_lines++;
    } else if (SSEP_IS("id")) {
        if (!memchr(v, 0, vlen)) {
            p->last_id.n = 0;
            ssep_buf_put(&p->last_id, v, vlen);
            p->block_id = true;
        }
    } else if (SSEP_IS("retry")) {
        bool digits = vlen > 0 && vlen < 19;
        long long x = 0;
        for (size_t i = 0; digits && i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9')
                digits = false;
            else
                x = x * 10 + (v[i] - '0');
        }
        if (digits) {
            p->retry_ms = x;
            p->retries++;
        }
    }
#undef SSEP_IS
}

/* Feed bytes of the stream (any split).  0, or -EMSGSIZE past a cap. */
static inline int ssep_feed(struct ssep *p, const char *buf, size_t len)
{
    static const unsigned char bom[3] = { 0xef, 0xbb, 0xbf };
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (!p->started) {
            /* Hold back a possible BOM; a partial match that fails is data. */
            if (c == bom[p->bom]) {
                if (++p->bom == 3)
                    p->started = true;
                continue;
            }
            p->started = true;
            if (p->bom) {
                unsigned k = p->bom;
                p->bom = 0;
                int r = ssep_feed(p, (const char *)bom, k);
                if (r < 0)
                    return r;
            }
        }
        if (p->last_cr) {
            p->last_cr = false;
            if (c == '\n')
                continue;
        }
        if (c == '\r' || c == '\n') {
            ssep_line(p, p->line.p ? p->line.p : "", p->line.n);
            p->line.n = 0;
            p->last_cr = c == '\r';
            continue;
        }
        if (p->line.n >= SSEP_LINE_MAX) {
            p->overflow = true;
            return -EMSGSIZE;
        }
        ssep_buf_put(&p->line, (const char *)&c, 1);
    }
    return p->overflow ? -EMSGSIZE : 0;
}

/* Index of the first event of this type at or after `from`, or -1. */
static inline long ssep_find(const struct ssep *p, const char *type, size_t from)
{
    for (size_t i = from; i < p->nev; i++)
        if (strcmp(p->ev[i].type, type) == 0)
            return (long)i;
    return -1;
}

#endif
