/*
 * A raw-socket Server-Sent Events client for the SSE integration suites:
 * one HTTP/1.1 GET per struct sc, the response head parsed by hand, the body
 * de-chunked and fed to the WHATWG parser (tests/support/sse-parse.h), so a
 * test sees exactly what an EventSource would, and can also misbehave (stop
 * reading, shrink its receive buffer) or hold a thousand streams at once.
 *
 * Every wait polls the socket against a deadline; nothing sleeps.  A stream
 * "ended" when the terminating chunk arrived (a clean end of the response);
 * "eof" when the server closed the socket (with or without a clean end).
 * Header-only (static inline) so each check-sse*.c suite can include it.
 * Not thread-safe; call from the test's main thread.
 */
#ifndef TESTS_INTEGRATION_CHECK_SSE_CLIENT_H
#define TESTS_INTEGRATION_CHECK_SSE_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/sse-parse.h"

#define SC_HEAD_MAX  16384          /* response head */
#define SC_BODY_KEEP (1u << 20)     /* decoded body bytes kept for assertions */

enum sc_chunk { SC_CH_SIZE, SC_CH_DATA, SC_CH_DATA_END, SC_CH_TRAILER };

struct sc {
    int fd;
    int status;                 /* 0 until the response head arrived */
    char head[SC_HEAD_MAX + 1];
    size_t hlen;
    bool head_done;
    bool chunked;
    long long clen;             /* Content-Length, -1 if none */
    long long got;              /* body bytes (after de-chunking) */
    enum sc_chunk cst;
    unsigned long long cleft;   /* bytes left in the chunk */
    char cline[64];
    size_t clinelen;
    bool ended;                 /* the response ended cleanly */
    bool eof;                   /* the server closed the socket */
    int err;                    /* errno of a failed read, 0 */
    struct ssep p;
    char *body;                 /* first SC_BODY_KEEP decoded bytes, NUL-terminated */
    size_t blen;
};

static inline long long sc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Connect to 127.0.0.1:port (rcvbuf > 0 shrinks the receive buffer first)
 * and send GET path as `version` ("HTTP/1.1", "HTTP/1.0") with the extra
 * "Name: value" headers (NULL-ended list).  0 or -errno. */
static inline int sc_open_version(struct sc *c, int port, const char *path, const char *const *headers,
                                  int rcvbuf, const char *version)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->clen = -1;
    ssep_init(&c->p);
    c->body = calloc(1, SC_BODY_KEEP + 1);
    if (!c->body)
        abort();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    char req[8192];
    int n = snprintf(req, sizeof(req), "GET %s %s\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n", path, version, port);
    for (size_t i = 0; headers && headers[i] && n < (int)sizeof(req); i++)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "%s\r\n", headers[i]);
    if (n + 2 >= (int)sizeof(req)) {
        close(fd);
        return -E2BIG;
    }
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
    for (int off = 0; off < n;) {
        ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = -errno;
            close(fd);
            return e;
        }
        off += (int)w;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    c->fd = fd;
    return 0;
}

/* sc_open_version as HTTP/1.1. */
static inline int sc_open(struct sc *c, int port, const char *path, const char *const *headers, int rcvbuf)
{
    return sc_open_version(c, port, path, headers, rcvbuf, "HTTP/1.1");
}

static inline void sc_close(struct sc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    ssep_done(&c->p);
    free(c->body);
    c->body = NULL;
}

/* Value of a response header (case-insensitive name), copied into out; NULL if absent. */
static inline const char *sc_header(const struct sc *c, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = strstr(c->head, "\r\n");
    while (p && p[2] && !(p[2] == '\r' && p[3] == '\n')) {
        p += 2;
        const char *e = strstr(p, "\r\n");
        if (!e)
            break;
        if ((size_t)(e - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = (size_t)(e - v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = 0;
            return out;
        }
        p = e;
    }
    return NULL;
}

static inline void sc_body(struct sc *c, const char *p, size_t n)
{
    if (!n)
        return;
    c->got += (long long)n;
    if (c->blen < SC_BODY_KEEP) {
        size_t k = n < SC_BODY_KEEP - c->blen ? n : SC_BODY_KEEP - c->blen;
        memcpy(c->body + c->blen, p, k);
        c->blen += k;
        c->body[c->blen] = 0;
    }
    if (ssep_feed(&c->p, p, n) < 0)
        c->err = EMSGSIZE;
}

/* De-chunk; returns false on a protocol error. */
static inline bool sc_chunked(struct sc *c, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && !c->ended) {
        if (c->cst == SC_CH_DATA) {
            size_t k = n - i < c->cleft ? n - i : (size_t)c->cleft;
            sc_body(c, p + i, k);
            i += k;
            c->cleft -= k;
            if (c->cleft == 0)
                c->cst = SC_CH_DATA_END;
            continue;
        }
        char ch = p[i++];
        if (ch != '\n') {
            if (c->clinelen + 1 >= sizeof(c->cline))
                return false;
            c->cline[c->clinelen++] = ch;
            continue;
        }
        if (c->clinelen && c->cline[c->clinelen - 1] == '\r')
            c->clinelen--;
        c->cline[c->clinelen] = 0;
        size_t len = c->clinelen;
        c->clinelen = 0;
        if (c->cst == SC_CH_SIZE) {
            char *end;
            errno = 0;
            unsigned long long sz = strtoull(c->cline, &end, 16);
            if (errno || end == c->cline || (*end && *end != ';'))
                return false;
            c->cleft = sz;
            c->cst = sz ? SC_CH_DATA : SC_CH_TRAILER;
        } else if (c->cst == SC_CH_DATA_END) {
            if (len)
                return false;
            c->cst = SC_CH_SIZE;
        } else if (len == 0) {           /* end of trailers */
            c->ended = true;
        }
    }
    return true;
}

static inline void sc_head_done(struct sc *c)
{
    char v[128];
    c->head_done = true;
    if (sscanf(c->head, "HTTP/1.%*d %d", &c->status) != 1)
        c->status = -1;
    if (sc_header(c, "Transfer-Encoding", v, sizeof(v)) && strcasestr(v, "chunked"))
        c->chunked = true;
    else if (sc_header(c, "Content-Length", v, sizeof(v)))
        c->clen = strtoll(v, NULL, 10);
    if (c->status == 204 || c->status == 304 || (!c->chunked && c->clen == 0))
        c->ended = true;
}

static inline void sc_process(struct sc *c, const char *p, size_t n)
{
    if (!c->head_done) {
        size_t k = n < SC_HEAD_MAX - c->hlen ? n : SC_HEAD_MAX - c->hlen;
        memcpy(c->head + c->hlen, p, k);
        size_t old = c->hlen;
        c->hlen += k;
        c->head[c->hlen] = 0;
        char *e = strstr(c->head, "\r\n\r\n");
        if (!e) {
            if (c->hlen >= SC_HEAD_MAX)
                c->err = EMSGSIZE;
            return;
        }
        size_t used = (size_t)(e + 4 - c->head) - old;
        c->hlen = (size_t)(e + 4 - c->head);
        c->head[c->hlen] = 0;
        sc_head_done(c);
        p += used;
        n -= used;
    }
    if (c->ended || !n)
        return;
    if (c->chunked) {
        if (!sc_chunked(c, p, n))
            c->err = EPROTO;
    } else if (c->clen >= 0) {
        size_t k = (long long)n < c->clen - c->got ? n : (size_t)(c->clen - c->got);
        sc_body(c, p, k);
        if (c->got >= c->clen)
            c->ended = true;
    } else {
        sc_body(c, p, n);
    }
}

/* Read whatever is available without blocking.  Returns bytes read (0 none). */
static inline long sc_read(struct sc *c)
{
    char buf[65536];
    long total = 0;
    while (c->fd >= 0 && !c->eof) {
        ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
        if (r > 0) {
            sc_process(c, buf, (size_t)r);
            total += r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (r < 0)
            c->err = errno;
        c->eof = true;
        if (!c->chunked && c->clen < 0 && c->head_done)
            c->ended = true;     /* a body delimited by the close */
    }
    return total;
}

typedef bool (*sc_pred)(const struct sc *c, const void *ud);

static inline bool sc_pred_type(const struct sc *c, const void *type)
{
    return ssep_find(&c->p, type, 0) >= 0;
}

static inline bool sc_pred_nev(const struct sc *c, const void *n)
{
    return c->p.nev >= *(const size_t *)n;
}

static inline bool sc_pred_end(const struct sc *c, const void *ud)
{
    (void)ud;
    return c->ended || c->eof;
}

static inline bool sc_pred_head(const struct sc *c, const void *ud)
{
    (void)ud;
    return c->head_done;
}

/* Read until pred holds, the stream ends (then pred decides) or timeout_ms passes. */
static inline bool sc_wait(struct sc *c, sc_pred pred, const void *ud, int timeout_ms)
{
    long long deadline = sc_now_ms() + timeout_ms;
    for (;;) {
        sc_read(c);
        if (pred(c, ud))
            return true;
        if (c->ended || c->eof || c->err)
            return pred(c, ud);
        long long left = deadline - sc_now_ms();
        if (left <= 0)
            return false;
        struct pollfd pf = { .fd = c->fd, .events = POLLIN };
        poll(&pf, 1, (int)(left > 1000 ? 1000 : left));
    }
}

/* The same over many streams: until pred holds for all (true) or timeout. */
static inline bool sc_wait_all(struct sc *v, size_t n, sc_pred pred, const void *ud, int timeout_ms)
{
    struct pollfd *pf = calloc(n ? n : 1, sizeof(*pf));
    size_t *ix = calloc(n ? n : 1, sizeof(*ix));
    if (!pf || !ix)
        abort();
    long long deadline = sc_now_ms() + timeout_ms;
    bool ok = false;
    for (;;) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (pred(&v[i], ud) || v[i].ended || v[i].eof || v[i].err)
                continue;
            pf[m] = (struct pollfd){ .fd = v[i].fd, .events = POLLIN };
            ix[m++] = i;
        }
        if (m == 0) {
            ok = true;
            for (size_t i = 0; i < n; i++)
                ok = ok && pred(&v[i], ud);
            break;
        }
        long long left = deadline - sc_now_ms();
        if (left <= 0)
            break;
        int r = poll(pf, m, (int)(left > 1000 ? 1000 : left));
        for (size_t k = 0; r > 0 && k < m; k++)
            if (pf[k].revents)
                sc_read(&v[ix[k]]);
    }
    free(pf);
    free(ix);
    return ok;
}

#endif
