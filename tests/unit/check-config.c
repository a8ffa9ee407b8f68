/*
 * Unit tests of common/config.c: every kind's parser, the scope filter,
 * derived defaults, cross-checks, masked secrets in the logged configuration,
 * and docs/configuration.md against the table in code.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/config.h"
#include "common/log.h"

/* ---- a fake environment: NULL-terminated name/value pairs ---- */

struct fake_env {
    const char *const *pairs;
    const char *seen[512];       /* names looked up, in order */
    size_t nseen;
};

static const char *fake_lookup(const char *name, void *ud)
{
    struct fake_env *e = ud;

    if (e->nseen < sizeof(e->seen) / sizeof(e->seen[0]))
        e->seen[e->nseen++] = name;
    for (size_t i = 0; e->pairs && e->pairs[i]; i += 2)
        if (strcmp(e->pairs[i], name) == 0)
            return e->pairs[i + 1];
    return NULL;
}

/* Load with the given pairs; returns the result, err holds the message. */
static int load(struct config *c, enum cfg_scope scope, const char *const *pairs,
                char *err, size_t errlen)
{
    struct fake_env e = { .pairs = pairs };

    return config_load_from(c, scope, fake_lookup, &e, err, errlen);
}

#define ENV(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Expect success; the caller config_done()s. */
static void load_ok(struct config *c, enum cfg_scope scope, const char *const *pairs)
{
    char err[512];
    int r = load(c, scope, pairs, err, sizeof(err));

    ck_assert_msg(r == 0, "load failed: %d %s", r, err);
}

/* Expect -EINVAL with a message that contains `want`. */
static void load_fails(enum cfg_scope scope, const char *const *pairs, const char *want)
{
    struct config c;
    char err[512];
    int r = load(&c, scope, pairs, err, sizeof(err));

    ck_assert_msg(r == -EINVAL, "load of %s=%s succeeded", pairs[0], pairs[1]);
    ck_assert_msg(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
    /* On failure nothing is left to free. */
    ck_assert_ptr_null(c.log_level);
    ck_assert_ptr_null(c.redis_host);
    config_done(&c);
}

/* ---- stderr capture ---- */

struct capture {
    FILE *f;
    int saved;
};

static void capture_start(struct capture *c)
{
    c->f = tmpfile();
    ck_assert_ptr_nonnull(c->f);
    c->saved = dup(STDERR_FILENO);
    ck_assert_int_ge(dup2(fileno(c->f), STDERR_FILENO), 0);
}

static char *capture_end(struct capture *c)
{
    struct stat st;
    char *buf;

    ck_assert_int_ge(dup2(c->saved, STDERR_FILENO), 0);
    close(c->saved);
    ck_assert_int_eq(fstat(fileno(c->f), &st), 0);
    buf = malloc((size_t)st.st_size + 1);
    ck_assert_int_eq(pread(fileno(c->f), buf, (size_t)st.st_size, 0), st.st_size);
    buf[st.st_size] = '\0';
    fclose(c->f);
    return buf;
}

/* ---- tests ---- */

START_TEST(test_table_sane)
{
    ck_assert_uint_gt(cfg_vars_count, 50);
    for (size_t i = 0; i < cfg_vars_count; i++) {
        const struct cfg_var *v = &cfg_vars[i];

        ck_assert_ptr_eq(config_find(v->name), v);
        ck_assert_msg(v->doc && *v->doc, "%s has no doc", v->name);
        ck_assert(v->scope == CFG_SCOPE_GW || v->scope == CFG_SCOPE_WK || v->scope == CFG_SCOPE_ALL);
        ck_assert_uint_lt(v->offset, sizeof(struct config));
        if (v->kind == CFG_INT || v->kind == CFG_USD)
            ck_assert_msg(v->min <= v->max, "%s range", v->name);
        if (v->kind == CFG_ENUM)
            ck_assert_ptr_nonnull(v->choices);
        for (size_t j = 0; j < i; j++) {
            ck_assert_str_ne(v->name, cfg_vars[j].name);
            ck_assert_uint_ne(v->offset, cfg_vars[j].offset);
        }
    }
    ck_assert_ptr_null(config_find("NO_SUCH_VARIABLE"));
}
END_TEST

START_TEST(test_defaults)
{
    struct config c;
    char host[256], want[320];

    /* Every default in the table parses (ALL reads nothing from here: no pairs). */
    load_ok(&c, CFG_SCOPE_ALL, NULL);
    ck_assert_int_eq(c.port, 3001);
    ck_assert_int_eq(c.redis_port, 6379);
    ck_assert_str_eq(c.redis_host, "127.0.0.1");
    ck_assert_ptr_null(c.redis_url);
    ck_assert_ptr_null(c.auth_jwt_secret);
    ck_assert_str_eq(c.log_level, "info");
    ck_assert(!c.http_reuseport);
    ck_assert_int_eq(c.budget_monthly_limit, 100000000);
    ck_assert_int_eq(c.price_input_per_1m, 150000);
    ck_assert_int_eq(c.price_output_per_1m, 600000);
    ck_assert_str_eq(c.cors_origins, "*");
    ck_assert_str_eq(c.admin_allow_cidrs, "127.0.0.0/8,::1/128");
    ck_assert_ptr_null(c.budget_fallback);
    ck_assert_str_eq(c.openai_model, "gpt-4o-mini");
    ck_assert_int_eq(c.max_json_depth, 32);

    /* Derived defaults. */
    ck_assert_str_eq(c.ai_provider, "offline");
    ck_assert_str_eq(c.public_dir, FLASHGATE_SOURCE_DIR "/public");
    ck_assert_int_eq(c.http_threads, sysconf(_SC_NPROCESSORS_ONLN));
    ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
    snprintf(want, sizeof(want), "%s-%ld", host, (long)getpid());
    ck_assert_str_eq(c.instance_id, want);
    config_done(&c);
    config_done(&c);                     /* idempotent */
    ck_assert_ptr_null(c.redis_host);
    config_done(NULL);
}
END_TEST

START_TEST(test_int)
{
    struct config c;
    char err[512];

    load_ok(&c, CFG_SCOPE_GW, ENV("PORT", "8080", "TRUST_PROXY", "+2", "HTTP_THREADS", "3"));
    ck_assert_int_eq(c.port, 8080);
    ck_assert_int_eq(c.trust_proxy, 2);
    ck_assert_int_eq(c.http_threads, 3);
    config_done(&c);
    load_ok(&c, CFG_SCOPE_GW, ENV("PORT", "1", "TRUST_PROXY", "-0"));
    ck_assert_int_eq(c.port, 1);
    ck_assert_int_eq(c.trust_proxy, 0);
    config_done(&c);
    load_ok(&c, CFG_SCOPE_GW, ENV("PORT", "65535"));
    ck_assert_int_eq(c.port, 65535);
    config_done(&c);

    /* The exact message, naming the variable and what was expected. */
    ck_assert_int_eq(load(&c, CFG_SCOPE_GW, ENV("PORT", "abc"), err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "invalid value for PORT: \"abc\" (expected an integer 1..65535)");

    static const char *const bad[] = { "abc", "80a", " 80", "80 ", "0", "65536", "-1", "0x50",
                                       "1e3", "+", "-", "8.0", "99999999999999999999999" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        load_fails(CFG_SCOPE_GW, ENV("PORT", bad[i]), "invalid value for PORT: ");
    load_fails(CFG_SCOPE_WK, ENV("QUEUE_CONCURRENCY", "5001"), "QUEUE_CONCURRENCY");
    load_fails(CFG_SCOPE_ALL, ENV("REDIS_PORT", "-9223372036854775809"), "REDIS_PORT");
}
END_TEST

START_TEST(test_empty_is_unset)
{
    struct config c;

    load_ok(&c, CFG_SCOPE_ALL, ENV("PORT", "", "LOG_LEVEL", "", "REDIS_URL", "", "CORS_ORIGINS", ""));
    ck_assert_int_eq(c.port, 3001);
    ck_assert_str_eq(c.log_level, "info");
    ck_assert_ptr_null(c.redis_url);
    ck_assert_str_eq(c.cors_origins, "*");
    config_done(&c);
}
END_TEST

START_TEST(test_bool)
{
    static const char *const yes[] = { "true", "TRUE", "1", "yes", "Yes", "on", "ON" };
    static const char *const no[] = { "false", "False", "0", "no", "NO", "off", "Off" };
    struct config c;

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        load_ok(&c, CFG_SCOPE_GW, ENV("HTTP_REUSEPORT", yes[i]));
        ck_assert_msg(c.http_reuseport, "%s", yes[i]);
        config_done(&c);
        load_ok(&c, CFG_SCOPE_GW, ENV("HTTP_REUSEPORT", no[i]));
        ck_assert_msg(!c.http_reuseport, "%s", no[i]);
        config_done(&c);
    }
    static const char *const bad[] = { "2", "maybe", "t", "truee", " true", "y" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        load_fails(CFG_SCOPE_GW, ENV("HTTP_REUSEPORT", bad[i]), "invalid value for HTTP_REUSEPORT: ");
}
END_TEST

START_TEST(test_usd_parse)
{
    static const struct { const char *s; long long micro; } good[] = {
        { "0.15", 150000 }, { "100", 100000000 }, { "12.345678", 12345678 }, { "0", 0 },
        { "0.000001", 1 }, { "7.5", 7500000 }, { "007.10", 7100000 },
        { "9223372036854.775807", 9223372036854775807LL },
    };
    static const char *const bad[] = {
        "1e3", "-1", "1.2345678", "", ".5", "5.", "+1", " 1", "1 ", "1,5", "1.2.3", "abc",
        "0x10", "9223372036854.775808", "9223372036855", "99999999999999999999", "NaN",
    };
    long long m;
    char buf[CONFIG_USD_LEN];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        m = -1;
        ck_assert_msg(config_parse_usd(good[i].s, &m) == 0, "%s refused", good[i].s);
        ck_assert_msg(m == good[i].micro, "%s gave %lld", good[i].s, m);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        m = 42;
        ck_assert_msg(config_parse_usd(bad[i], &m) == -EINVAL, "%s accepted", bad[i]);
        ck_assert_int_eq(m, 42);
    }
    ck_assert_int_eq(config_parse_usd(NULL, &m), -EINVAL);

    config_format_usd(150000, buf);
    ck_assert_str_eq(buf, "0.15");
    config_format_usd(100000000, buf);
    ck_assert_str_eq(buf, "100");
    config_format_usd(12345678, buf);
    ck_assert_str_eq(buf, "12.345678");
    config_format_usd(1, buf);
    ck_assert_str_eq(buf, "0.000001");
    config_format_usd(-2500000, buf);
    ck_assert_str_eq(buf, "-2.5");
}
END_TEST

START_TEST(test_usd_var)
{
    struct config c;
    char err[512];

    load_ok(&c, CFG_SCOPE_WK, ENV("BUDGET_MONTHLY_LIMIT_USD", "250.5", "PRICE_INPUT_PER_1M_USD", "0"));
    ck_assert_int_eq(c.budget_monthly_limit, 250500000);
    ck_assert_int_eq(c.price_input_per_1m, 0);
    config_done(&c);
    load_fails(CFG_SCOPE_WK, ENV("BUDGET_MONTHLY_LIMIT_USD", "1e3"), "BUDGET_MONTHLY_LIMIT_USD");
    load_fails(CFG_SCOPE_WK, ENV("BUDGET_MONTHLY_LIMIT_USD", "-1"), "BUDGET_MONTHLY_LIMIT_USD");
    load_fails(CFG_SCOPE_WK, ENV("BUDGET_MONTHLY_LIMIT_USD", "1.2345678"), "BUDGET_MONTHLY_LIMIT_USD");
    /* Above the table's maximum of 1e9 dollars. */
    ck_assert_int_eq(load(&c, CFG_SCOPE_WK, ENV("BUDGET_MONTHLY_LIMIT_USD", "1000000000.01"),
                          err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "invalid value for BUDGET_MONTHLY_LIMIT_USD: \"1000000000.01\" "
                          "(expected US dollars 0..1000000000 with at most 6 decimals)");
}
END_TEST

START_TEST(test_list)
{
    struct config c;
    const char *cur, *item;
    size_t n, count = 0;

    load_ok(&c, CFG_SCOPE_GW, ENV("CORS_ORIGINS", " https://a.example ,https://b.example",
                                  "ADMIN_ALLOW_CIDRS", "10.0.0.0/8"));
    /* The original text is kept; iteration trims. */
    ck_assert_str_eq(c.cors_origins, " https://a.example ,https://b.example");
    cur = c.cors_origins;
    while ((item = config_list_next(&cur, &n))) {
        ck_assert_int_eq(n, 17);
        ck_assert(strncmp(item, count ? "https://b.example" : "https://a.example", n) == 0);
        count++;
    }
    ck_assert_uint_eq(count, 2);
    ck_assert_str_eq(c.admin_allow_cidrs, "10.0.0.0/8");
    config_done(&c);

    cur = NULL;
    ck_assert_ptr_null(config_list_next(&cur, &n));
    cur = "";
    ck_assert_ptr_null(config_list_next(&cur, &n));

    static const char *const bad[] = { "a,,b", "a,", ",a", " , ", " ", "a, ,b" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        load_fails(CFG_SCOPE_GW, ENV("CORS_ORIGINS", bad[i]), "invalid value for CORS_ORIGINS: ");
}
END_TEST

START_TEST(test_enum_str_secret)
{
    struct config c;
    char err[512];

    load_ok(&c, CFG_SCOPE_ALL, ENV("LOG_LEVEL", "DEBUG", "BUDGET_FALLBACK_PROVIDER", "offline",
                                   "REDIS_URL", "redis://:pw@h:1/2", "OPENAI_MODEL", "gpt-x",
                                   "INSTANCE_ID", "gw-1"));
    ck_assert_str_eq(c.log_level, "debug");           /* canonical spelling */
    ck_assert_str_eq(c.budget_fallback, "offline");
    ck_assert_str_eq(c.redis_url, "redis://:pw@h:1/2");
    ck_assert_str_eq(c.openai_model, "gpt-x");
    ck_assert_str_eq(c.instance_id, "gw-1");
    config_done(&c);

    ck_assert_int_eq(load(&c, CFG_SCOPE_ALL, ENV("LOG_LEVEL", "verbose"), err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "invalid value for LOG_LEVEL: \"verbose\" (expected one of debug|info|warn|error)");
    load_fails(CFG_SCOPE_WK, ENV("AI_PROVIDER", "anthropic"), "invalid value for AI_PROVIDER: ");
    load_fails(CFG_SCOPE_WK, ENV("AI_PROVIDER", "open"), "AI_PROVIDER");
    load_fails(CFG_SCOPE_WK, ENV("BUDGET_FALLBACK_PROVIDER", "openai"), "BUDGET_FALLBACK_PROVIDER");
}
END_TEST

START_TEST(test_error_shows_value_safely)
{
    struct config c;
    char err[512], longv[300];

    ck_assert_int_eq(load(&c, CFG_SCOPE_GW, ENV("PORT", "8\n0\"\x01"), err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "invalid value for PORT: \"8\\n0\\\"\\u0001\" (expected an integer 1..65535)");
    memset(longv, '9', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    ck_assert_int_eq(load(&c, CFG_SCOPE_GW, ENV("PORT", longv), err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "9999\"... (expected"));
    ck_assert_uint_lt(strlen(err), 200);
    /* A tiny or missing error buffer is fine. */
    ck_assert_int_eq(load(&c, CFG_SCOPE_GW, ENV("PORT", "x"), err, 8), -EINVAL);
    ck_assert_str_eq(err, "invalid");
    ck_assert_int_eq(load(&c, CFG_SCOPE_GW, ENV("PORT", "x"), NULL, 0), -EINVAL);
}
END_TEST

START_TEST(test_scope_filter)
{
    struct fake_env e = { .pairs = ENV("PORT", "abc", "QUEUE_CONCURRENCY", "7") };
    struct config c;
    char err[256];

    /* The worker does not read PORT at all, so a bad PORT cannot stop it. */
    ck_assert_int_eq(config_load_from(&c, CFG_SCOPE_WK, fake_lookup, &e, err, sizeof(err)), 0);
    ck_assert_int_eq(c.port, 3001);
    ck_assert_int_eq(c.queue_concurrency, 7);
    for (size_t i = 0; i < e.nseen; i++) {
        const struct cfg_var *v = config_find(e.seen[i]);

        if (v)
            ck_assert_msg(v->scope & CFG_SCOPE_WK, "worker read %s", e.seen[i]);
    }
    ck_assert_ptr_null(c.public_dir);            /* gateway-only: not derived */
    config_done(&c);

    e = (struct fake_env){ .pairs = ENV("QUEUE_CONCURRENCY", "7", "OPENAI_API_KEY", "sk") };
    ck_assert_int_eq(config_load_from(&c, CFG_SCOPE_GW, fake_lookup, &e, err, sizeof(err)), 0);
    ck_assert_int_eq(c.queue_concurrency, 20);
    ck_assert_ptr_null(c.openai_api_key);
    ck_assert_ptr_null(c.ai_provider);           /* worker-only: not derived */
    for (size_t i = 0; i < e.nseen; i++) {
        const struct cfg_var *v = config_find(e.seen[i]);

        if (v)
            ck_assert_msg(v->scope & CFG_SCOPE_GW, "gateway read %s", e.seen[i]);
    }
    config_done(&c);
}
END_TEST

START_TEST(test_derived)
{
    struct config c;

    load_ok(&c, CFG_SCOPE_ALL, ENV("RAILWAY_REPLICA_ID", "replica-7"));
    ck_assert_str_eq(c.instance_id, "replica-7");
    config_done(&c);
    load_ok(&c, CFG_SCOPE_ALL, ENV("RAILWAY_REPLICA_ID", "replica-7", "INSTANCE_ID", "mine"));
    ck_assert_str_eq(c.instance_id, "mine");
    config_done(&c);
    load_ok(&c, CFG_SCOPE_GW, ENV("PUBLIC_DIR", "/srv/www"));
    ck_assert_str_eq(c.public_dir, "/srv/www");
    config_done(&c);

    load_ok(&c, CFG_SCOPE_WK, ENV("OPENAI_API_KEY", "sk-1"));
    ck_assert_str_eq(c.ai_provider, "openai");
    config_done(&c);
    load_ok(&c, CFG_SCOPE_WK, ENV("AZURE_OPENAI_ENDPOINT", "https://x", "AZURE_OPENAI_API_KEY", "k",
                                  "AZURE_OPENAI_DEPLOYMENT", "d"));
    ck_assert_str_eq(c.ai_provider, "azure");
    config_done(&c);
    load_ok(&c, CFG_SCOPE_WK, ENV("AZURE_OPENAI_ENDPOINT", "https://x", "AZURE_OPENAI_API_KEY", "k"));
    ck_assert_str_eq(c.ai_provider, "offline");
    config_done(&c);
    load_ok(&c, CFG_SCOPE_WK, ENV("OPENAI_API_KEY", "sk-1", "AZURE_OPENAI_ENDPOINT", "https://x",
                                  "AZURE_OPENAI_API_KEY", "k", "AZURE_OPENAI_DEPLOYMENT", "d"));
    ck_assert_str_eq(c.ai_provider, "openai");
    config_done(&c);
    load_ok(&c, CFG_SCOPE_WK, ENV("OPENAI_API_KEY", "sk-1", "AI_PROVIDER", "offline"));
    ck_assert_str_eq(c.ai_provider, "offline");
    config_done(&c);
}
END_TEST

START_TEST(test_cross_checks)
{
    struct config c;
    char err[512];

    load_fails(CFG_SCOPE_WK, ENV("AI_PROVIDER", "openai"), "AI_PROVIDER=openai needs OPENAI_API_KEY");
    ck_assert_int_eq(load(&c, CFG_SCOPE_WK, ENV("AI_PROVIDER", "azure", "AZURE_OPENAI_API_KEY", "k"),
                          err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "AI_PROVIDER=azure needs"));
    ck_assert_ptr_nonnull(strstr(err, "missing: AZURE_OPENAI_ENDPOINT AZURE_OPENAI_DEPLOYMENT)"));
    load_ok(&c, CFG_SCOPE_WK, ENV("AI_PROVIDER", "azure", "AZURE_OPENAI_API_KEY", "k",
                                  "AZURE_OPENAI_ENDPOINT", "https://x", "AZURE_OPENAI_DEPLOYMENT", "d"));
    config_done(&c);

    load_fails(CFG_SCOPE_GW, ENV("ALERT_QUEUE_CRITICAL", "10"),
               "ALERT_QUEUE_CRITICAL (10) must be >= ALERT_QUEUE_HIGH (50)");
    load_ok(&c, CFG_SCOPE_GW, ENV("ALERT_QUEUE_CRITICAL", "50"));
    config_done(&c);
    load_fails(CFG_SCOPE_GW, ENV("ALERT_ERROR_RATE_HIGH", "30"), "ALERT_ERROR_RATE_CRITICAL");
    load_fails(CFG_SCOPE_ALL, ENV("CB_MIN_CALLS", "21"), "CB_MIN_CALLS (21) must be <= CB_WINDOW_CALLS (20)");
    /* The worker does not read the gateway's alert thresholds. */
    load_ok(&c, CFG_SCOPE_WK, ENV("ALERT_QUEUE_CRITICAL", "10"));
    config_done(&c);
}
END_TEST

START_TEST(test_getenv)
{
    struct config c;
    char err[256];

    setenv("PORT", "4000", 1);
    setenv("LOG_LEVEL", "warn", 1);
    ck_assert_int_eq(config_load(&c, CFG_SCOPE_GW, err, sizeof(err)), 0);
    ck_assert_int_eq(c.port, 4000);
    ck_assert_str_eq(c.log_level, "warn");
    config_done(&c);
    setenv("PORT", "nope", 1);
    ck_assert_int_eq(config_load(&c, CFG_SCOPE_GW, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "PORT"));
    unsetenv("PORT");
    unsetenv("LOG_LEVEL");
}
END_TEST

START_TEST(test_log_masks_secrets)
{
    struct config c;
    struct capture cap;
    struct json_object *line, *cfg, *v;
    char *out;

    load_ok(&c, CFG_SCOPE_ALL, ENV("REDIS_URL", "redis://:hunter2@db.internal:6379/0",
                                   "OPENAI_API_KEY", "sk-topsecret", "ADMIN_TOKEN", "adm-secret",
                                   "OPENAI_MODEL", "gpt-\"quoted\""));
    log_init("check-config", "t", LOG_INFO);
    capture_start(&cap);
    config_log(&c, CFG_SCOPE_ALL);
    out = capture_end(&cap);

    ck_assert_ptr_null(strstr(out, "hunter2"));
    ck_assert_ptr_null(strstr(out, "topsecret"));
    ck_assert_ptr_null(strstr(out, "adm-secret"));
    /* Dollars are printed exactly, not through a double. */
    ck_assert_ptr_nonnull(strstr(out, "\"PRICE_INPUT_PER_1M_USD\":0.15,"));
    ck_assert_ptr_nonnull(strstr(out, "\"BUDGET_MONTHLY_LIMIT_USD\":100,"));

    line = json_tokener_parse(out);
    ck_assert_ptr_nonnull(line);
    ck_assert(json_object_object_get_ex(line, "msg", &v));
    ck_assert_str_eq(json_object_get_string(v), "configuration");
    ck_assert(json_object_object_get_ex(line, "level", &v));
    ck_assert_str_eq(json_object_get_string(v), "info");
    ck_assert(json_object_object_get_ex(line, "config", &cfg));
    ck_assert_int_eq(json_object_object_length(cfg), (int)cfg_vars_count);
    ck_assert(json_object_object_get_ex(cfg, "REDIS_URL", &v));
    ck_assert_str_eq(json_object_get_string(v), "***");
    ck_assert(json_object_object_get_ex(cfg, "OPENAI_API_KEY", &v));
    ck_assert_str_eq(json_object_get_string(v), "***");
    ck_assert(json_object_object_get_ex(cfg, "AUTH_JWT_SECRET", &v));
    ck_assert_ptr_null(v);                                  /* unset secret: null */
    ck_assert(json_object_object_get_ex(cfg, "PORT", &v));
    ck_assert_int_eq(json_object_get_int64(v), 3001);
    ck_assert(json_object_object_get_ex(cfg, "HTTP_REUSEPORT", &v));
    ck_assert(json_object_is_type(v, json_type_boolean));
    ck_assert(json_object_object_get_ex(cfg, "OPENAI_MODEL", &v));
    ck_assert_str_eq(json_object_get_string(v), "gpt-\"quoted\"");
    ck_assert(json_object_object_get_ex(cfg, "BUDGET_FALLBACK_PROVIDER", &v));
    ck_assert_ptr_null(v);
    json_object_put(line);
    free(out);

    /* The gateway logs only what it reads. */
    capture_start(&cap);
    config_log(&c, CFG_SCOPE_GW);
    out = capture_end(&cap);
    line = json_tokener_parse(out);
    ck_assert(json_object_object_get_ex(line, "config", &cfg));
    ck_assert(json_object_object_get_ex(cfg, "PORT", NULL));
    ck_assert(json_object_object_get_ex(cfg, "REDIS_URL", NULL));
    ck_assert(!json_object_object_get_ex(cfg, "OPENAI_API_KEY", NULL));
    json_object_put(line);
    free(out);
    config_done(&c);
}
END_TEST

/* The Markdown table in docs/configuration.md, between the markers. */
static char *doc_table(void)
{
    static const char begin[] = "<!-- BEGIN CONFIG TABLE -->\n", end[] = "<!-- END CONFIG TABLE -->";
    const char *src = getenv("FLASHGATE_SOURCE_DIR");
    char path[4096];
    FILE *f;
    char *text = NULL, *b, *e;
    size_t cap = 0;

    snprintf(path, sizeof(path), "%s/docs/configuration.md", src ? src : FLASHGATE_SOURCE_DIR);
    f = fopen(path, "r");
    ck_assert_msg(f, "cannot open %s", path);
    ck_assert(getdelim(&text, &cap, '\0', f) > 0);
    fclose(f);
    b = strstr(text, begin);
    ck_assert_msg(b, "%s lacks the line %s", path, "<!-- BEGIN CONFIG TABLE -->");
    b += sizeof(begin) - 1;
    e = strstr(b, end);
    ck_assert_msg(e, "%s lacks the line %s", path, end);
    memmove(text, b, (size_t)(e - b));
    text[e - b] = '\0';
    return text;
}

START_TEST(test_doc_matches_table)
{
    char *doc = doc_table(), *gen = NULL;
    size_t len = 0, rows = 0;
    FILE *m = open_memstream(&gen, &len);

    config_write_markdown(m);
    fclose(m);
    bool same = strcmp(doc, gen) == 0;

    free(doc);
    if (!same)
        free(gen);
    ck_assert_msg(same,
                  "docs/configuration.md is out of date with common/config_vars.h: "
                  "run scripts/gen-config-doc.sh [build-dir] and commit the result");
    for (const char *p = gen; *p; p++)
        rows += *p == '\n';
    ck_assert_uint_eq(rows, cfg_vars_count + 2);
    for (size_t i = 0; i < cfg_vars_count; i++) {
        char cell[128];

        snprintf(cell, sizeof(cell), "\n| `%s` | ", cfg_vars[i].name);
        ck_assert_msg(strstr(gen, cell), "%s missing from the table", cfg_vars[i].name);
    }
    ck_assert_ptr_nonnull(strstr(gen, "| `PORT` | `3001` | gateway | HTTP listen port. Range 1..65535. |\n"));
    ck_assert_ptr_nonnull(strstr(gen, "| `REDIS_PASSWORD` | (unset) | both |"));
    ck_assert_ptr_nonnull(strstr(gen, "| `INSTANCE_ID` | RAILWAY_REPLICA_ID, else host-pid | both |"));
    free(gen);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_table_sane);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_int);
    tcase_add_test(tc, test_empty_is_unset);
    tcase_add_test(tc, test_bool);
    tcase_add_test(tc, test_usd_parse);
    tcase_add_test(tc, test_usd_var);
    tcase_add_test(tc, test_list);
    tcase_add_test(tc, test_enum_str_secret);
    tcase_add_test(tc, test_error_shows_value_safely);
    tcase_add_test(tc, test_scope_filter);
    tcase_add_test(tc, test_derived);
    tcase_add_test(tc, test_cross_checks);
    tcase_add_test(tc, test_getenv);
    tcase_add_test(tc, test_log_masks_secrets);
    tcase_add_test(tc, test_doc_matches_table);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
