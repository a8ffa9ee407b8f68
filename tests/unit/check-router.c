/*
 * Router: the contract's route set, parameters, precedence, 404 vs 405 with
 * the Allow text, HEAD, percent-decoding and the static catch-all.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/router.h"

/* Distinct handlers so a test can tell which route matched. */
#define H(n) static int h_##n(struct req *r) { (void)r; return n; }
H(1) H(2) H(3) H(4) H(5) H(6) H(7) H(8) H(9) H(10) H(11) H(12) H(13) H(14) H(15) H(16)
H(17) H(18) H(19) H(20) H(21) H(22) H(23)

static struct router *rt;

/* The contract's routes (API.md), as the gateway registers them. */
static void add_contract(struct router *r)
{
    ck_assert_int_eq(router_add(r, "GET", "/health", h_1, 0), 0);
    ck_assert_int_eq(router_add(r, "GET", "/ready", h_2, 0), 0);
    ck_assert_int_eq(router_add(r, "GET", "/api/health", h_3, 0), 0);
    ck_assert_int_eq(router_add(r, "POST", "/api/ai/generate-flashcards", h_4, 0), 0);
    ck_assert_int_eq(router_add(r, "POST", "/api/ai/generate-lesson", h_5, 0), 0);
    ck_assert_int_eq(router_add(r, "GET", "/api/job-status/:jobId", h_6, 0), 0);
    ck_assert_int_eq(router_add(r, "GET", "/api/job-events", h_7, 0), 0);
    ck_assert_int_eq(router_add(r, "GET", "/api/events", h_8, 0), 0);
    ck_assert_int_eq(router_add(r, "GET", "/api/sse/stats", h_9, ROUTE_ADMIN), 0);
    ck_assert_int_eq(router_add(r, "GET", "/api/profile/:userId", h_10, 0), 0);
    ck_assert_int_eq(router_add(r, "POST", "/api/profile/:userId/invalidate", h_11,
                                ROUTE_ADMIN), 0);
    ck_assert_int_eq(router_add(r, "GET", "/api/metrics/alerts", h_12, ROUTE_ADMIN), 0);
    ck_assert_int_eq(router_add(r, "GET", "/metrics", h_13, ROUTE_ADMIN), 0);
    ck_assert_int_eq(router_add(r, "GET", "/api/queue/stats", h_14, ROUTE_ADMIN), 0);
    ck_assert_int_eq(router_add(r, "GET", "/api/redis/health", h_15, ROUTE_ADMIN), 0);
    ck_assert_int_eq(router_add(r, "GET", "/api/circuit-breakers/status", h_16, ROUTE_ADMIN), 0);
    ck_assert_int_eq(router_add(r, "POST", "/api/circuit-breakers/reset/:name", h_17,
                                ROUTE_ADMIN), 0);
    ck_assert_int_eq(router_add(r, "GET", "/api/admin/budget/status", h_18, ROUTE_ADMIN), 0);
    ck_assert_int_eq(router_add(r, "POST", "/api/admin/budget/kill-switch", h_19, ROUTE_ADMIN), 0);
    ck_assert_int_eq(router_add(r, "POST", "/api/admin/budget/set-limit", h_20, ROUTE_ADMIN), 0);
    ck_assert_int_eq(router_add(r, "GET", "/api/rate-limits/status", h_21, ROUTE_ADMIN), 0);
    ck_assert_int_eq(router_add(r, "GET", "/*", h_22, 0), 0);   /* static files, added any time */
}

static void setup(void)
{
    rt = router_new();
    ck_assert_ptr_nonnull(rt);
}

static void teardown(void)
{
    router_free(rt);
    rt = NULL;
}

static struct route_match m;
static char allow[128];

/* Handler number of the matched route, or -1 / -2 for 404 / 405. */
static int which(const char *method, const char *path)
{
    memset(&m, 0x5a, sizeof(m));
    switch (router_match(rt, method, path, &m, allow, sizeof(allow))) {
    case ROUTER_OK:
        ck_assert_ptr_nonnull(m.route);
        return m.route->handler(NULL);
    case ROUTER_NOT_FOUND:
        ck_assert_ptr_null(m.route);
        ck_assert_str_eq(allow, "");
        return -1;
    case ROUTER_METHOD_NOT_ALLOWED:
        ck_assert_ptr_null(m.route);
        return -2;
    }
    return -3;
}

START_TEST(contract_routes)
{
    add_contract(rt);
    ck_assert_int_eq(which("GET", "/health"), 1);
    ck_assert_int_eq(which("GET", "/ready"), 2);
    ck_assert_int_eq(which("GET", "/api/health"), 3);
    ck_assert_int_eq(which("POST", "/api/ai/generate-flashcards"), 4);
    ck_assert_int_eq(which("POST", "/api/ai/generate-lesson"), 5);
    ck_assert_int_eq(which("GET", "/api/job-events"), 7);
    ck_assert_int_eq(which("GET", "/api/sse/stats"), 9);
    ck_assert_int_eq(m.route->flags, ROUTE_ADMIN);
    ck_assert_str_eq(m.route->method, "GET");
    ck_assert_str_eq(m.route->pattern, "/api/sse/stats");
    ck_assert_int_eq(which("POST", "/api/profile/u1/invalidate"), 11);
    ck_assert_int_eq(which("GET", "/metrics"), 13);
    ck_assert_int_eq(which("POST", "/api/admin/budget/kill-switch"), 19);
    ck_assert_int_eq(which("GET", "/sse-example.html"), 22);
    ck_assert_int_eq(which("GET", "/"), 22);
}
END_TEST

START_TEST(params)
{
    add_contract(rt);
    ck_assert_int_eq(which("GET", "/api/job-status/abc-123"), 6);
    ck_assert_uint_eq(m.nparams, 1);
    ck_assert_str_eq(m.names[0], "jobId");
    ck_assert_str_eq(route_param(&m, "jobId"), "abc-123");
    ck_assert_ptr_null(route_param(&m, "userId"));
    ck_assert_ptr_null(route_param(&m, "jobid"));
    ck_assert_ptr_null(route_param(NULL, "jobId"));

    ck_assert_int_eq(which("POST", "/api/circuit-breakers/reset/openai"), 17);
    ck_assert_str_eq(route_param(&m, "name"), "openai");
    ck_assert_int_eq(which("POST", "/api/profile/0f9e-aa/invalidate"), 11);
    ck_assert_str_eq(route_param(&m, "userId"), "0f9e-aa");
    ck_assert_str_eq(m.names[0], "userId");             /* NUL-terminated mid-pattern name */

    /* several parameters */
    ck_assert_int_eq(router_add(rt, "GET", "/a/:x/b/:y/:z", h_23, 0), 0);
    ck_assert_int_eq(which("GET", "/a/1/b/2/3"), 23);
    ck_assert_uint_eq(m.nparams, 3);
    ck_assert_str_eq(route_param(&m, "x"), "1");
    ck_assert_str_eq(route_param(&m, "y"), "2");
    ck_assert_str_eq(route_param(&m, "z"), "3");
}
END_TEST

START_TEST(empty_and_extra_segments)
{
    add_contract(rt);
    /* empty parameter: no API route, so the static catch-all gets it */
    ck_assert_int_eq(which("GET", "/api/job-status/"), 22);
    ck_assert_int_eq(which("POST", "/api/job-status/"), -2);
    ck_assert_str_eq(allow, "GET, HEAD, OPTIONS");      /* from the catch-all */
    ck_assert_int_eq(which("GET", "/api/job-status"), 22);
    ck_assert_int_eq(which("GET", "/api/job-status/a/b"), 22);
    ck_assert_int_eq(which("POST", "/api/profile//invalidate"), -2);
    /* trailing slash and doubled slashes are other paths */
    ck_assert_int_eq(which("GET", "/health/"), 22);
    ck_assert_int_eq(which("POST", "/health/"), -2);
    ck_assert_int_eq(which("GET", "//health"), 22);
    ck_assert_int_eq(which("GET", "/HEALTH"), 22);      /* case-sensitive */
}
END_TEST

START_TEST(trailing_slash_without_catch_all)
{
    ck_assert_int_eq(router_add(rt, "GET", "/health", h_1, 0), 0);
    ck_assert_int_eq(router_add(rt, "GET", "/", h_2, 0), 0);
    ck_assert_int_eq(which("GET", "/health"), 1);
    ck_assert_int_eq(which("GET", "/health/"), -1);
    ck_assert_int_eq(which("GET", "/healthz"), -1);
    ck_assert_int_eq(which("GET", "/"), 2);
    ck_assert_int_eq(which("GET", "//"), -1);
    ck_assert_int_eq(which("GET", ""), -1);
    ck_assert_int_eq(which("GET", "health"), -1);
    ck_assert_int_eq(which("GET", "*"), -1);
    ck_assert_int_eq(router_match(rt, "GET", NULL, &m, allow, sizeof(allow)), ROUTER_NOT_FOUND);
    ck_assert_int_eq(router_match(NULL, "GET", "/", &m, allow, sizeof(allow)), ROUTER_NOT_FOUND);
}
END_TEST

START_TEST(precedence)
{
    /* literal beats parameter, whichever was added first */
    ck_assert_int_eq(router_add(rt, "GET", "/api/job-status/:jobId", h_1, 0), 0);
    ck_assert_int_eq(router_add(rt, "GET", "/api/job-status/stats", h_2, 0), 0);
    ck_assert_int_eq(router_add(rt, "GET", "/api/:a/x", h_3, 0), 0);
    ck_assert_int_eq(router_add(rt, "GET", "/api/:a/:b", h_4, 0), 0);
    ck_assert_int_eq(router_add(rt, "GET", "/api/q/:b", h_5, 0), 0);
    ck_assert_int_eq(which("GET", "/api/job-status/stats"), 2);
    ck_assert_int_eq(which("GET", "/api/job-status/other"), 1);
    /* earlier literal segment decides: /api/q/:b beats /api/:a/x */
    ck_assert_int_eq(which("GET", "/api/q/x"), 5);
    ck_assert_int_eq(which("GET", "/api/r/x"), 3);
    ck_assert_int_eq(which("GET", "/api/r/y"), 4);
    ck_assert_str_eq(route_param(&m, "a"), "r");
    ck_assert_str_eq(route_param(&m, "b"), "y");
    /* same pattern twice: the first added wins */
    ck_assert_int_eq(router_add(rt, "GET", "/dup", h_6, 0), 0);
    ck_assert_int_eq(router_add(rt, "GET", "/dup", h_7, 0), 0);
    ck_assert_int_eq(which("GET", "/dup"), 6);
    /* a more specific route of another method does not hide a matching one */
    ck_assert_int_eq(router_add(rt, "POST", "/api/job-status/special", h_8, 0), 0);
    ck_assert_int_eq(which("GET", "/api/job-status/special"), 1);
    ck_assert_int_eq(which("POST", "/api/job-status/special"), 8);
}
END_TEST

START_TEST(not_found_vs_method_not_allowed)
{
    add_contract(rt);
    ck_assert_int_eq(which("POST", "/health"), -2);
    ck_assert_str_eq(allow, "GET, HEAD, OPTIONS");
    ck_assert_int_eq(which("GET", "/api/ai/generate-flashcards"), -2);
    ck_assert_str_eq(allow, "POST, OPTIONS");
    ck_assert_int_eq(which("DELETE", "/api/job-status/j1"), -2);
    ck_assert_str_eq(allow, "GET, HEAD, OPTIONS");
    ck_assert_int_eq(which("GET", "/api/circuit-breakers/reset/openai"), -2);
    ck_assert_str_eq(allow, "POST, OPTIONS");
    /* a wrong method on an API path never falls through to static files */
    ck_assert_int_eq(which("PUT", "/api/profile/u1/invalidate"), -2);

    /* without a catch-all, unknown paths are 404 */
    teardown();
    setup();
    ck_assert_int_eq(router_add(rt, "GET", "/api/profile/:userId", h_1, 0), 0);
    ck_assert_int_eq(router_add(rt, "POST", "/api/profile/:userId", h_2, 0), 0);
    ck_assert_int_eq(router_add(rt, "DELETE", "/api/profile/:userId", h_3, 0), 0);
    ck_assert_int_eq(router_add(rt, "GET", "/api/profile/:userId", h_4, 0), 0);
    ck_assert_int_eq(which("GET", "/api/nothing"), -1);
    ck_assert_int_eq(which("PATCH", "/api/profile/u"), -2);
    /* distinct methods in insertion order, then HEAD, then OPTIONS */
    ck_assert_str_eq(allow, "GET, POST, DELETE, HEAD, OPTIONS");
    /* Allow is filled on success too */
    ck_assert_int_eq(which("DELETE", "/api/profile/u"), 3);
    ck_assert_str_eq(allow, "GET, POST, DELETE, HEAD, OPTIONS");
}
END_TEST

START_TEST(allow_buffer)
{
    char small[12];

    ck_assert_int_eq(router_add(rt, "GET", "/x", h_1, 0), 0);
    ck_assert_int_eq(router_add(rt, "POST", "/x", h_2, 0), 0);
    memset(small, 'Z', sizeof(small));
    ck_assert_int_eq(router_match(rt, "PUT", "/x", &m, small, sizeof(small)),
                     ROUTER_METHOD_NOT_ALLOWED);
    ck_assert_str_eq(small, "GET, POST");                 /* whole names only */
    /* "GET, POST" needs 10 bytes: with 9, only "GET", and nothing past cap */
    memset(small, 'Z', sizeof(small));
    ck_assert_int_eq(router_match(rt, "PUT", "/x", &m, small, 9), ROUTER_METHOD_NOT_ALLOWED);
    ck_assert_str_eq(small, "GET");
    ck_assert_int_eq(small[9], 'Z');
    ck_assert_int_eq(router_match(rt, "PUT", "/x", &m, small, 1), ROUTER_METHOD_NOT_ALLOWED);
    ck_assert_str_eq(small, "");
    ck_assert_int_eq(router_match(rt, "PUT", "/x", &m, NULL, 0), ROUTER_METHOD_NOT_ALLOWED);
    ck_assert_int_eq(router_match(rt, "GET", "/x", NULL, NULL, 0), ROUTER_OK);
}
END_TEST

START_TEST(head_and_options)
{
    add_contract(rt);
    ck_assert_int_eq(which("HEAD", "/health"), 1);
    ck_assert_int_eq(which("HEAD", "/api/job-status/j9"), 6);
    ck_assert_str_eq(route_param(&m, "jobId"), "j9");
    ck_assert_int_eq(which("HEAD", "/index.html"), 22);
    ck_assert_int_eq(which("HEAD", "/api/ai/generate-lesson"), -2);
    ck_assert_str_eq(allow, "POST, OPTIONS");
    /* OPTIONS: answered by the server from the Allow list */
    ck_assert_int_eq(which("OPTIONS", "/api/ai/generate-lesson"), -2);
    ck_assert_str_eq(allow, "POST, OPTIONS");
    ck_assert_int_eq(which("OPTIONS", "/api/job-status/j9"), -2);
    ck_assert_str_eq(allow, "GET, HEAD, OPTIONS");
    /* methods are case-sensitive tokens */
    ck_assert_int_eq(which("get", "/health"), -2);

    /* explicit HEAD and OPTIONS routes win and are listed once */
    ck_assert_int_eq(router_add(rt, "HEAD", "/health", h_23, 0), 0);
    ck_assert_int_eq(router_add(rt, "OPTIONS", "/api/ai/generate-lesson", h_23, 0), 0);
    ck_assert_int_eq(which("HEAD", "/health"), 23);
    ck_assert_int_eq(which("PUT", "/health"), -2);
    ck_assert_str_eq(allow, "GET, HEAD, OPTIONS");
    ck_assert_int_eq(which("OPTIONS", "/api/ai/generate-lesson"), 23);
    ck_assert_int_eq(which("GET", "/api/ai/generate-lesson"), -2);
    ck_assert_str_eq(allow, "POST, OPTIONS");
}
END_TEST

START_TEST(percent_decoding)
{
    char longv[ROUTER_PARAM_MAX + 32], path[ROUTER_PARAM_MAX + 64];

    ck_assert_int_eq(router_add(rt, "GET", "/api/job-status/:jobId", h_1, 0), 0);
    ck_assert_int_eq(which("GET", "/api/job-status/a%20b"), 1);
    ck_assert_str_eq(route_param(&m, "jobId"), "a b");
    ck_assert_int_eq(which("GET", "/api/job-status/%4a%4B"), 1);
    ck_assert_str_eq(route_param(&m, "jobId"), "JK");
    ck_assert_int_eq(which("GET", "/api/job-status/a+b"), 1);
    ck_assert_str_eq(route_param(&m, "jobId"), "a+b");     /* '+' is not a space in paths */
    ck_assert_int_eq(which("GET", "/api/job-status/%25"), 1);
    ck_assert_str_eq(route_param(&m, "jobId"), "%");
    ck_assert_int_eq(which("GET", "/api/job-status/%C3%A9"), 1);
    ck_assert_str_eq(route_param(&m, "jobId"), "\xc3\xa9");
    ck_assert_int_eq(which("GET", "/api/job-status/.."), 1);  /* just a value; no file lookup */
    ck_assert_str_eq(route_param(&m, "jobId"), "..");

    /* refused: NUL, '/', malformed escapes */
    ck_assert_int_eq(which("GET", "/api/job-status/%00"), -1);
    ck_assert_int_eq(which("GET", "/api/job-status/a%00b"), -1);
    ck_assert_int_eq(which("GET", "/api/job-status/%2F"), -1);
    ck_assert_int_eq(which("GET", "/api/job-status/..%2f..%2fetc"), -1);
    ck_assert_int_eq(which("GET", "/api/job-status/%"), -1);
    ck_assert_int_eq(which("GET", "/api/job-status/%4"), -1);
    ck_assert_int_eq(which("GET", "/api/job-status/%zz"), -1);
    ck_assert_int_eq(which("GET", "/api/job-status/a%"), -1);
    /* literal segments are compared as they come */
    ck_assert_int_eq(router_add(rt, "GET", "/health", h_2, 0), 0);
    ck_assert_int_eq(which("GET", "/h%65alth"), -1);

    /* length: ROUTER_PARAM_MAX - 1 decoded bytes fit, one more does not */
    memset(longv, 'a', ROUTER_PARAM_MAX - 1);
    longv[ROUTER_PARAM_MAX - 1] = '\0';
    snprintf(path, sizeof(path), "/api/job-status/%s", longv);
    ck_assert_int_eq(which("GET", path), 1);
    ck_assert_uint_eq(strlen(route_param(&m, "jobId")), ROUTER_PARAM_MAX - 1);
    snprintf(path, sizeof(path), "/api/job-status/%sa", longv);
    ck_assert_int_eq(which("GET", path), -1);
    /* decoded length counts, not raw length */
    {
        char enc[ROUTER_PARAM_MAX * 3 + 32];
        size_t o = (size_t)snprintf(enc, sizeof(enc), "/api/job-status/");

        for (int i = 0; i < ROUTER_PARAM_MAX - 1; i++)
            o += (size_t)snprintf(enc + o, sizeof(enc) - o, "%%41");
        ck_assert_int_eq(which("GET", enc), 1);
        ck_assert_uint_eq(strlen(route_param(&m, "jobId")), ROUTER_PARAM_MAX - 1);
    }
}
END_TEST

START_TEST(param_room)
{
    /* the values of one match share ROUTER_PARAM_MAX bytes, NULs included */
    char a[ROUTER_PARAM_MAX], b[ROUTER_PARAM_MAX], path[3 * ROUTER_PARAM_MAX];
    size_t half = ROUTER_PARAM_MAX / 2 - 1;          /* two of these and their NULs fill it */

    ck_assert_int_eq(router_add(rt, "GET", "/two/:a/:b", h_1, 0), 0);
    memset(a, 'a', half);
    a[half] = '\0';
    memset(b, 'b', half);
    b[half] = '\0';
    snprintf(path, sizeof(path), "/two/%s/%s", a, b);
    ck_assert_int_eq(which("GET", path), 1);
    ck_assert_str_eq(route_param(&m, "a"), a);
    ck_assert_str_eq(route_param(&m, "b"), b);
    ck_assert_ptr_eq(route_param(&m, "a"), m.values[0]);
    ck_assert(m.values[0] >= m.buf && m.values[1] < m.buf + sizeof(m.buf));
    /* one byte more no longer fits: not found, with or without a match to fill */
    snprintf(path, sizeof(path), "/two/%s/%sb", a, b);
    ck_assert_int_eq(which("GET", path), -1);
    ck_assert_int_eq(router_match(rt, "GET", path, NULL, NULL, 0), ROUTER_NOT_FOUND);
    /* and a wrong method on it is a 404 too, not a 405 */
    ck_assert_int_eq(which("POST", path), -1);
}
END_TEST

START_TEST(catch_all)
{
    /* the catch-all added first still loses to any other matching route */
    ck_assert_int_eq(router_add(rt, "GET", "/*", h_1, 0), 0);
    ck_assert_int_eq(router_add(rt, "GET", "/health", h_2, 0), 0);
    ck_assert_int_eq(router_add(rt, "POST", "/api/x", h_3, 0), 0);
    ck_assert_int_eq(router_add(rt, "GET", "/static/*", h_4, 0), 0);
    ck_assert_int_eq(which("GET", "/health"), 2);
    ck_assert_int_eq(which("GET", "/"), 1);
    ck_assert_int_eq(which("GET", "/monitoring.html"), 1);
    ck_assert_int_eq(which("GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u"), 1);
    ck_assert_int_eq(which("GET", "/../../etc/passwd"), 1);  /* the static handler refuses */
    ck_assert_uint_eq(m.nparams, 0);
    ck_assert_int_eq(which("GET", "/api/x"), -2);            /* path exists as POST */
    ck_assert_str_eq(allow, "POST, OPTIONS");
    ck_assert_int_eq(which("POST", "/anything"), -2);
    ck_assert_str_eq(allow, "GET, HEAD, OPTIONS");
    /* longer literal prefix wins among catch-alls */
    ck_assert_int_eq(which("GET", "/static/app.js"), 4);
    ck_assert_int_eq(which("GET", "/static"), 4);
    ck_assert_int_eq(which("GET", "/staticx"), 1);
}
END_TEST

START_TEST(bad_patterns)
{
    static const char *bad[] = {
        "", "health", "//x", "/x/", "/x//y", "/:", "/:a/:a", "/:a-b", "/*/x", "/x*",
        "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q", "/:a/:b/:c/:d/:e",
        "/:abcdefghijklmnopqrstuvwxyz0123456789",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(router_add(rt, "GET", bad[i], h_1, 0) == -EINVAL, "pattern \"%s\"", bad[i]);
    ck_assert_int_eq(router_add(rt, "get", "/x", h_1, 0), -EINVAL);
    ck_assert_int_eq(router_add(rt, "", "/x", h_1, 0), -EINVAL);
    ck_assert_int_eq(router_add(rt, "VERYLONGMETHODNAME", "/x", h_1, 0), -EINVAL);
    ck_assert_int_eq(router_add(rt, NULL, "/x", h_1, 0), -EINVAL);
    ck_assert_int_eq(router_add(rt, "GET", NULL, h_1, 0), -EINVAL);
    ck_assert_int_eq(router_add(NULL, "GET", "/x", h_1, 0), -EINVAL);
    /* nothing half-added */
    ck_assert_int_eq(which("GET", "/x"), -1);
    /* limits themselves are fine */
    ck_assert_int_eq(router_add(rt, "GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p", h_1, 0), 0);
    ck_assert_int_eq(router_add(rt, "GET", "/:a/:b/:c/:d", h_2, 0), 0);
    ck_assert_int_eq(which("GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p"), 1);
    ck_assert_int_eq(which("GET", "/1/2/3/4"), 2);
    router_free(NULL);
}
END_TEST

START_TEST(many_routes)
{
    static char pats[300][32];

    for (int i = 0; i < 300; i++) {
        snprintf(pats[i], sizeof(pats[i]), "/r%d/:id", i);
        ck_assert_int_eq(router_add(rt, "GET", pats[i], h_1, (unsigned)i), 0);
    }
    ck_assert_int_eq(which("GET", "/r299/z"), 1);
    ck_assert_uint_eq(m.route->flags, 299);
    ck_assert_str_eq(m.route->pattern, "/r299/:id");
    ck_assert_str_eq(route_param(&m, "id"), "z");
}
END_TEST

static Suite *router_suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("match");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, contract_routes);
    tcase_add_test(tc, params);
    tcase_add_test(tc, empty_and_extra_segments);
    tcase_add_test(tc, trailing_slash_without_catch_all);
    tcase_add_test(tc, precedence);
    tcase_add_test(tc, not_found_vs_method_not_allowed);
    tcase_add_test(tc, allow_buffer);
    tcase_add_test(tc, head_and_options);
    tcase_add_test(tc, percent_decoding);
    tcase_add_test(tc, param_room);
    tcase_add_test(tc, catch_all);
    tcase_add_test(tc, bad_patterns);
    tcase_add_test(tc, many_routes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(router_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
