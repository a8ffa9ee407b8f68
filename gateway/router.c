/*
 * Method + path router.
 *
 * router_add compiles a pattern into segments once: a literal, a ":name"
 * parameter, or a final "*" that matches the rest of the path (the static
 * file catch-all, slash-star).  Compiled routes are allocated one by one and never
 * move, so `struct route_match` may point at their names and `struct route`.
 *
 * Matching walks the path against each route without allocating:
 *   - segments are split on '/', so "/health/" has an empty last segment and
 *     does not match "/health", and "//x" does not match "/x";
 *   - a parameter matches one non-empty segment whose percent-decoding is
 *     well-formed and free of NUL and '/' (libmicrohttpd already decoded the
 *     path once, so "%252F" arrives as "%2F" and is refused here rather than
 *     smuggled into a Redis key); a route's decoded values together, each
 *     with its NUL, must fit in ROUTER_PARAM_MAX bytes, the same limit
 *     whether or not the caller asked for the values, so a path never
 *     matches while scanning and fails when the values are taken;
 *   - among routes matching path and method, the one whose first differing
 *     segment is literal wins (bit i of a score, from the top, is "segment i
 *     is literal"); equal scores go to the route added first;
 *   - wildcard routes are consulted only when no other route matches the
 *     path, whatever its method, so a wrong method on an API path is a 405,
 *     never a static-file lookup;
 *   - HEAD falls back to GET routes; OPTIONS is an ordinary method (the
 *     server answers preflight from the 405's Allow list).
 * Allow lists the distinct methods of the routes matching the path, in the
 * order they were added, then HEAD (when GET is there), then OPTIONS.
 */
#include "gateway/router.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ROUTER_METHOD_MAX 16      /* "OPTIONS" and friends, with NUL */
#define ROUTER_NAME_MAX 32        /* parameter name, with NUL */
#define ROUTER_ALLOW_METHODS 16   /* distinct methods listed in Allow */

enum rseg_kind { RSEG_LIT, RSEG_PARAM, RSEG_WILD };

struct rseg {
    enum rseg_kind kind;
    const char *lit;              /* into the pattern (RSEG_LIT) */
    size_t len;
    size_t param;                 /* index into names (RSEG_PARAM) */
};

struct croute {
    struct route pub;             /* pub.method points at method below */
    char method[ROUTER_METHOD_MAX];
    size_t nseg;
    struct rseg seg[ROUTER_MAX_SEGMENTS];
    size_t nparams;
    char names[ROUTER_MAX_PARAMS][ROUTER_NAME_MAX];
    bool wild;
    uint32_t score;
};

struct router {
    struct croute **r;
    size_t n, cap;
};

struct router *router_new(void)
{
    return calloc(1, sizeof(struct router));
}

void router_free(struct router *rt)
{
    if (!rt)
        return;
    for (size_t i = 0; i < rt->n; i++)
        free(rt->r[i]);
    free(rt->r);
    free(rt);
}

static bool router_method_ok(const char *m)
{
    size_t n = 0;

    for (; m[n]; n++)
        if (!(m[n] >= 'A' && m[n] <= 'Z') && m[n] != '-' && m[n] != '_')
            return false;
    return n > 0 && n < ROUTER_METHOD_MAX;
}

static bool router_name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= ROUTER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
            !(s[i] >= '0' && s[i] <= '9') && s[i] != '_')
            return false;
    return true;
}

static int router_compile(struct croute *c, const char *pattern)
{
    const char *p = pattern + 1;

    if (pattern[0] != '/')
        return -EINVAL;
    if (*p == '\0')
        return 0;                                  /* "/" */
    for (;;) {
        const char *q = strchr(p, '/');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        struct rseg *s;

        if (n == 0 || c->nseg == ROUTER_MAX_SEGMENTS || c->wild)
            return -EINVAL;                        /* empty segment, too long, after "*" */
        s = &c->seg[c->nseg];
        if (n == 1 && p[0] == '*') {
            s->kind = RSEG_WILD;
            c->wild = true;
        } else if (p[0] == ':') {
            if (!router_name_ok(p + 1, n - 1) || c->nparams == ROUTER_MAX_PARAMS)
                return -EINVAL;
            for (size_t i = 0; i < c->nparams; i++)
                if (strlen(c->names[i]) == n - 1 && memcmp(c->names[i], p + 1, n - 1) == 0)
                    return -EINVAL;
            memcpy(c->names[c->nparams], p + 1, n - 1);
            c->names[c->nparams][n - 1] = '\0';
            s->kind = RSEG_PARAM;
            s->param = c->nparams++;
        } else {
            if (memchr(p, '*', n))
                return -EINVAL;
            s->kind = RSEG_LIT;
            s->lit = p;
            s->len = n;
            c->score |= UINT32_C(1) << (31 - c->nseg);
        }
        c->nseg++;
        if (!q)
            return 0;
        p = q + 1;
    }
}

int router_add(struct router *rt, const char *method, const char *pattern,
               route_handler h, unsigned flags)
{
    struct croute *c;
    int r;

    if (!rt || !method || !pattern || !router_method_ok(method))
        return -EINVAL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    r = router_compile(c, pattern);
    if (r < 0)
        goto out;
    if (rt->n == rt->cap) {
        size_t cap = rt->cap ? 2 * rt->cap : 32;
        struct croute **v = realloc(rt->r, cap * sizeof(*v));

        if (!v) {
            r = -ENOMEM;
            goto out;
        }
        rt->r = v;
        rt->cap = cap;
    }
    strcpy(c->method, method);                     /* length checked above */
    c->pub.method = c->method;
    c->pub.pattern = pattern;
    c->pub.handler = h;
    c->pub.flags = flags;
    rt->r[rt->n++] = c;
    c = NULL;
out:
    free(c);
    return r;
}

static int router_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode n bytes into out (cap bytes with the NUL).  The decoded
 * length, or -1 if not acceptable. */
static long router_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    if (n == 0 || cap == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '%') {
            int hi, lo;

            if (n - i < 3)
                return -1;
            hi = router_hex(s[i + 1]);
            lo = router_hex(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0' || c == '/' || o == cap - 1)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}

/* Does route c match path?  Fills m's values when m is non-NULL. */
static bool router_match_route(const struct croute *c, const char *path, struct route_match *m)
{
    char scratch[ROUTER_PARAM_MAX];
    char *buf = m ? m->buf : scratch;
    size_t used = 0;
    const char *p = path + 1;
    bool at_end = *p == '\0';                     /* "/" has no segments */

    for (size_t i = 0; i < c->nseg; i++) {
        const struct rseg *s = &c->seg[i];
        const char *q;
        size_t n;

        if (s->kind == RSEG_WILD)
            return true;
        if (at_end)
            return false;
        q = strchr(p, '/');
        n = q ? (size_t)(q - p) : strlen(p);
        if (s->kind == RSEG_LIT) {
            if (n != s->len || memcmp(p, s->lit, n) != 0)
                return false;
        } else {
            long len = router_decode(p, n, buf + used, ROUTER_PARAM_MAX - used);

            if (len < 0)
                return false;
            if (m)
                m->values[s->param] = buf + used;
            used += (size_t)len + 1;
        }
        if (q)
            p = q + 1;                             /* may be "": an empty last segment */
        else
            at_end = true;
    }
    return at_end;
}

static bool router_method_eq(const struct croute *c, const char *method)
{
    return strcmp(c->method, method) == 0;
}

/* Allow header value for the routes of class `wild` that match path. */
static void router_allow(const struct router *rt, const char *path, bool wild,
                         char *allow, size_t cap)
{
    const char *ms[ROUTER_ALLOW_METHODS + 2];
    size_t nm = 0, o = 0;
    bool get = false, head = false, options = false;

    for (size_t i = 0; i < rt->n && nm < ROUTER_ALLOW_METHODS; i++) {
        const struct croute *c = rt->r[i];
        bool dup = false;

        if (c->wild != wild || !router_match_route(c, path, NULL))
            continue;
        for (size_t j = 0; j < nm && !dup; j++)
            dup = strcmp(ms[j], c->method) == 0;
        if (dup)
            continue;
        ms[nm++] = c->method;
        get |= strcmp(c->method, "GET") == 0;
        head |= strcmp(c->method, "HEAD") == 0;
        options |= strcmp(c->method, "OPTIONS") == 0;
    }
    if (get && !head)
        ms[nm++] = "HEAD";
    if (!options)
        ms[nm++] = "OPTIONS";
    for (size_t j = 0; j < nm; j++) {
        size_t len = strlen(ms[j]), sep = o ? 2 : 0;

        if (o + sep + len + 1 > cap)
            break;                                  /* whole names only */
        if (sep) {
            memcpy(allow + o, ", ", 2);
            o += 2;
        }
        memcpy(allow + o, ms[j], len);
        o += len;
    }
    allow[o] = '\0';
}

enum router_result router_match(const struct router *rt, const char *method, const char *path,
                                struct route_match *m, char *allow, size_t allowcap)
{
    const struct croute *best = NULL, *best_get = NULL;
    bool exists = false, wild = false, head;

    if (allow && allowcap)
        allow[0] = '\0';
    if (m) {
        m->route = NULL;
        m->nparams = 0;
    }
    if (!rt || !method || !path || path[0] != '/')
        return ROUTER_NOT_FOUND;
    head = strcmp(method, "HEAD") == 0;

    for (int pass = 0; pass < 2 && !exists; pass++) {
        wild = pass == 1;
        for (size_t i = 0; i < rt->n; i++) {
            const struct croute *c = rt->r[i];

            if (c->wild != wild || !router_match_route(c, path, NULL))
                continue;
            exists = true;
            if (router_method_eq(c, method)) {
                if (!best || c->score > best->score)
                    best = c;
            } else if (head && strcmp(c->method, "GET") == 0) {
                if (!best_get || c->score > best_get->score)
                    best_get = c;
            }
        }
    }
    if (!exists)
        return ROUTER_NOT_FOUND;
    if (allow && allowcap)
        router_allow(rt, path, wild, allow, allowcap);
    if (!best)
        best = best_get;
    if (!best)
        return ROUTER_METHOD_NOT_ALLOWED;
    if (m) {
        router_match_route(best, path, m);
        m->route = &best->pub;
        m->nparams = best->nparams;
        for (size_t i = 0; i < best->nparams; i++)
            m->names[i] = best->names[i];
    }
    return ROUTER_OK;
}

const char *route_param(const struct route_match *m, const char *name)
{
    if (!m || !name)
        return NULL;
    for (size_t i = 0; i < m->nparams; i++)
        if (strcmp(m->names[i], name) == 0)
            return m->values[i];
    return NULL;
}
