/*
 * fuzz-router: inputs are "METHOD path" (no space: GET and the whole input as
 * the path; the input ends at its first NUL, as a C string would).  The
 * router holds the contract's route set, static catch-all included.
 * Properties:
 *   - a path starting with '/' is never a 404 (the catch-all is GET slash-star);
 *   - a match has a route of the request's method (or GET for HEAD), and its
 *     parameters are non-empty, short enough, free of '/', found by name;
 *   - a 405 names OPTIONS last in Allow and never the request's method
 *     (OPTIONS aside);
 *   - the result does not depend on the Allow buffer's size, and a small
 *     buffer is never overrun and always terminated.
 */
#include <string.h>

#include "gateway/router.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_METHOD_MAX 32
#define FUZZ_PATH_MAX 8192

static int h(struct req *r)
{
    (void)r;
    return 0;
}

static const struct { const char *method, *pattern; } contract[] = {
    { "GET", "/health" },
    { "GET", "/ready" },
    { "GET", "/api/health" },
    { "POST", "/api/ai/generate-flashcards" },
    { "POST", "/api/ai/generate-lesson" },
    { "GET", "/api/job-status/:jobId" },
    { "GET", "/api/job-events" },
    { "GET", "/api/events" },
    { "GET", "/api/sse/stats" },
    { "GET", "/api/profile/:userId" },
    { "POST", "/api/profile/:userId/invalidate" },
    { "GET", "/api/metrics/alerts" },
    { "GET", "/metrics" },
    { "GET", "/api/queue/stats" },
    { "GET", "/api/redis/health" },
    { "GET", "/api/circuit-breakers/status" },
    { "POST", "/api/circuit-breakers/reset/:name" },
    { "GET", "/api/admin/budget/status" },
    { "POST", "/api/admin/budget/kill-switch" },
    { "POST", "/api/admin/budget/set-limit" },
    { "GET", "/api/rate-limits/status" },
    { "GET", "/*" },
};

static struct router *contract_router(void)
{
    static struct router *rt;

    if (!rt) {
        rt = router_new();
        FUZZ_CHECK(rt != NULL);
        for (size_t i = 0; i < sizeof(contract) / sizeof(contract[0]); i++)
            FUZZ_CHECK(router_add(rt, contract[i].method, contract[i].pattern, h, 0) == 0);
    }
    return rt;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[FUZZ_METHOD_MAX + FUZZ_PATH_MAX + 2];
    struct router *rt = contract_router();
    struct route_match m;
    char allow[128], small[16];
    const char *method = "GET", *path;
    size_t n = strnlen((const char *)data, size), cap;
    enum router_result res, res2;
    char *sp;

    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    memcpy(buf, data, n);
    buf[n] = '\0';
    path = buf;
    sp = memchr(buf, ' ', n);
    if (sp && sp - buf < FUZZ_METHOD_MAX) {
        *sp = '\0';
        method = buf;
        path = sp + 1;
    }

    res = router_match(rt, method, path, &m, allow, sizeof(allow));
    FUZZ_CHECK(strlen(allow) < sizeof(allow));
    switch (res) {
    case ROUTER_OK:
        FUZZ_CHECK(m.route != NULL);
        FUZZ_CHECK(strcmp(m.route->method, method) == 0 ||
                   (strcmp(method, "HEAD") == 0 && strcmp(m.route->method, "GET") == 0));
        FUZZ_CHECK(m.nparams <= ROUTER_MAX_PARAMS);
        for (size_t i = 0; i < m.nparams; i++) {
            size_t len = strnlen(m.values[i], ROUTER_PARAM_MAX);

            FUZZ_CHECK(len > 0 && len < ROUTER_PARAM_MAX);
            FUZZ_CHECK(strchr(m.values[i], '/') == NULL);
            FUZZ_CHECK(route_param(&m, m.names[i]) == m.values[i]);
        }
        break;
    case ROUTER_METHOD_NOT_ALLOWED: {
        size_t al = strlen(allow), ml = strlen(method);
        const char *p;

        FUZZ_CHECK(m.route == NULL);
        FUZZ_CHECK(al >= 7 && strcmp(allow + al - 7, "OPTIONS") == 0);
        /* the refused method is not offered (HEAD would have matched GET);
         * OPTIONS always is: the server answers it as a preflight */
        for (p = allow; ml > 0 && strcmp(method, "OPTIONS") != 0 && (p = strstr(p, method));
             p += ml)
            FUZZ_CHECK(!((p == allow || p[-1] == ' ') && (p[ml] == ',' || p[ml] == '\0')));
        break;
    }
    case ROUTER_NOT_FOUND:
        FUZZ_CHECK(m.route == NULL);
        FUZZ_CHECK(path[0] != '/');
        FUZZ_CHECK(allow[0] == '\0');
        break;
    default:
        FUZZ_CHECK(0);
    }

    /* a smaller Allow buffer changes nothing but the text's length */
    cap = size % sizeof(small);
    memset(small, 'Z', sizeof(small));
    res2 = router_match(rt, method, path, NULL, cap ? small : NULL, cap);
    FUZZ_CHECK(res2 == res);
    if (cap) {
        FUZZ_CHECK(strnlen(small, cap) < cap);
        FUZZ_CHECK(strncmp(small, allow, strlen(small)) == 0);
        for (size_t i = cap; i < sizeof(small); i++)
            FUZZ_CHECK(small[i] == 'Z');
    }
    return 0;
}
