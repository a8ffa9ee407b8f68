/*
 * Configuration from the environment, driven by the one table in
 * config_vars.h.
 *
 * config_load_from walks cfg_vars[] once: a variable of the program's scope
 * is looked up (an empty value counts as unset), anything else takes its
 * default without looking; the chosen text goes through the parser of its
 * kind, which writes the typed field at cfg_vars[i].offset.  Defaults go
 * through the same parsers, so a bad default in the table fails the same way
 * (and check-config catches it).  Then come the derived defaults and the
 * cross-checks between variables.  The first failure stops the load with a
 * message naming the variable; the struct is then emptied again.
 *
 * Single-threaded by contract: main() loads before any thread starts; after
 * that the struct is only read.
 */
#include "common/config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/jsonx.h"
#include "common/log.h"

#ifndef FLASHGATE_SOURCE_DIR
#define FLASHGATE_SOURCE_DIR "."
#endif

#define CFG_SHOW_MAX 80          /* bytes of a bad value quoted in an error */
#define CFG_USD_SCALE 1000000LL  /* micro-dollars per dollar */

const struct cfg_var cfg_vars[] = {
#define CFG(field, name, def, kind, lo, hi, choices, scope, doc) \
    { name, def, CFG_##kind, lo, hi, choices, CFG_SCOPE_##scope, doc, offsetof(struct config, field) },
#include "config_vars.h"
#undef CFG
};
const size_t cfg_vars_count = sizeof(cfg_vars) / sizeof(cfg_vars[0]);

static const char *cfg_scope_name(enum cfg_scope s)
{
    switch (s) {
    case CFG_SCOPE_GW: return "gateway";
    case CFG_SCOPE_WK: return "worker";
    default:           return "both";
    }
}

static bool cfg_is_string_kind(enum cfg_kind k)
{
    return k == CFG_STR || k == CFG_SECRET || k == CFG_LIST || k == CFG_ENUM;
}

static void *cfg_field(struct config *c, const struct cfg_var *v)
{
    return (char *)c + v->offset;
}

static const void *cfg_cfield(const struct config *c, const struct cfg_var *v)
{
    return (const char *)c + v->offset;
}

const struct cfg_var *config_find(const char *name)
{
    for (size_t i = 0; i < cfg_vars_count; i++)
        if (strcmp(cfg_vars[i].name, name) == 0)
            return &cfg_vars[i];
    return NULL;
}

static bool cfg_in_scope(const char *name, enum cfg_scope scope)
{
    const struct cfg_var *v = config_find(name);

    return v && (v->scope & scope);
}

/* ---- parsers ---- */

static bool cfg_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool cfg_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Decimal integer, optional sign, whole string, no blanks. */
static int cfg_parse_ll(const char *s, long long *ret)
{
    unsigned long long acc = 0, lim;
    bool neg = false;

    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (!cfg_is_digit(*s))
        return -EINVAL;
    lim = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    for (; *s; s++) {
        unsigned d;

        if (!cfg_is_digit(*s))
            return -EINVAL;
        d = (unsigned)(*s - '0');
        if (acc > (lim - d) / 10)
            return -ERANGE;
        acc = acc * 10 + d;
    }
    if (neg)
        *ret = acc == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)acc;
    else
        *ret = (long long)acc;
    return 0;
}

int config_parse_usd(const char *s, long long *ret_micro)
{
    long long whole = 0, frac = 0, scale = CFG_USD_SCALE;

    if (!s || !cfg_is_digit(*s))
        return -EINVAL;
    for (; cfg_is_digit(*s); s++) {
        whole = whole * 10 + (*s - '0');
        if (whole > LLONG_MAX / CFG_USD_SCALE)
            return -EINVAL;
    }
    if (*s == '.') {
        s++;
        if (!cfg_is_digit(*s))
            return -EINVAL;
        for (; cfg_is_digit(*s); s++) {
            if (scale == 1)
                return -EINVAL;     /* more than 6 decimals */
            scale /= 10;
            frac += (*s - '0') * scale;
        }
    }
    if (*s != '\0')
        return -EINVAL;
    if (whole * CFG_USD_SCALE > LLONG_MAX - frac)
        return -EINVAL;
    *ret_micro = whole * CFG_USD_SCALE + frac;
    return 0;
}

void config_format_usd(long long micro, char out[CONFIG_USD_LEN])
{
    unsigned long long u = micro < 0 ? 0ULL - (unsigned long long)micro : (unsigned long long)micro;
    unsigned long long w = u / CFG_USD_SCALE, f = u % CFG_USD_SCALE;
    int n;

    if (f == 0) {
        snprintf(out, CONFIG_USD_LEN, "%s%llu", micro < 0 ? "-" : "", w);
        return;
    }
    n = snprintf(out, CONFIG_USD_LEN, "%s%llu.%06llu", micro < 0 ? "-" : "", w, f);
    while (n > 0 && out[n - 1] == '0')
        out[--n] = '\0';
}

static int cfg_parse_bool(const char *s, bool *ret)
{
    static const char *const yes[] = { "true", "1", "yes", "on" };
    static const char *const no[] = { "false", "0", "no", "off" };

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *ret = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *ret = false;
            return 0;
        }
    }
    return -EINVAL;
}

const char *config_list_next(const char **cursor, size_t *ret_len)
{
    const char *p = *cursor, *comma, *end;

    if (!p || !*p)
        return NULL;
    comma = strchr(p, ',');
    end = comma ? comma : p + strlen(p);
    *cursor = comma ? comma + 1 : end;
    while (p < end && cfg_is_blank(*p))
        p++;
    while (end > p && cfg_is_blank(end[-1]))
        end--;
    *ret_len = (size_t)(end - p);
    return p;
}

/* Every item non-empty after trimming ("a,,b", "a," and " " are refused). */
static int cfg_check_list(const char *s)
{
    const char *cur = s, *item;
    size_t n, items = 0;

    while ((item = config_list_next(&cur, &n))) {
        if (n == 0)
            return -EINVAL;
        items++;
    }
    /* A trailing comma leaves the cursor at "" after the last item. */
    if (items == 0 || s[strlen(s) - 1] == ',')
        return -EINVAL;
    return 0;
}

/* The canonical spelling of s among "a|b|c" (case-insensitive), or NULL. */
static char *cfg_match_choice(const char *choices, const char *s)
{
    size_t n = strlen(s);

    for (const char *p = choices; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);

        if (len == n && strncasecmp(p, s, n) == 0)
            return strndup(p, len);
        p = bar ? bar + 1 : p + len;
    }
    return NULL;
}

/* ---- errors ---- */

/* "invalid value for NAME: "<value>" (expected ...)", value escaped and cut. */
static int cfg_fail(char *err, size_t errlen, const struct cfg_var *v, const char *value,
                    bool is_default, const char *expect)
{
    char shown[CFG_SHOW_MAX + 1];
    char quoted[CFG_SHOW_MAX * JSONX_ESCAPE_STEP_MAX + 3];
    size_t n = strlen(value);

    snprintf(shown, sizeof(shown), "%.*s", CFG_SHOW_MAX, value);
    jsonx_escape(shown, quoted, sizeof(quoted));
    if (err && errlen)
        snprintf(err, errlen, "invalid %s for %s: %s%s (expected %s)",
                 is_default ? "default" : "value", v->name, quoted,
                 n > CFG_SHOW_MAX ? "..." : "", expect);
    return -EINVAL;
}

static void cfg_describe(const struct cfg_var *v, char *out, size_t n)
{
    char lo[CONFIG_USD_LEN], hi[CONFIG_USD_LEN];

    switch (v->kind) {
    case CFG_INT:
        snprintf(out, n, "an integer %lld..%lld", v->min, v->max);
        break;
    case CFG_USD:
        config_format_usd(v->min, lo);
        config_format_usd(v->max, hi);
        snprintf(out, n, "US dollars %s..%s with at most 6 decimals", lo, hi);
        break;
    case CFG_BOOL:
        snprintf(out, n, "true/false, 1/0, yes/no or on/off");
        break;
    case CFG_LIST:
        snprintf(out, n, "a comma-separated list of non-empty items");
        break;
    case CFG_ENUM:
        snprintf(out, n, "one of %s", v->choices ? v->choices : "");
        break;
    default:
        snprintf(out, n, "a string");
        break;
    }
}

/* Parse text s for v into c.  s is never NULL; "" means unset. */
static int cfg_parse_var(struct config *c, const struct cfg_var *v, const char *s,
                         bool is_default, char *err, size_t errlen)
{
    void *f = cfg_field(c, v);
    char expect[160];
    long long x;
    char *dup;

    cfg_describe(v, expect, sizeof(expect));
    switch (v->kind) {
    case CFG_INT:
        if (cfg_parse_ll(s, &x) < 0 || x < v->min || x > v->max)
            return cfg_fail(err, errlen, v, s, is_default, expect);
        *(long long *)f = x;
        return 0;
    case CFG_USD:
        if (config_parse_usd(s, &x) < 0 || x < v->min || x > v->max)
            return cfg_fail(err, errlen, v, s, is_default, expect);
        *(long long *)f = x;
        return 0;
    case CFG_BOOL:
        if (cfg_parse_bool(s, (bool *)f) < 0)
            return cfg_fail(err, errlen, v, s, is_default, expect);
        return 0;
    case CFG_ENUM:
        if (!*s)
            return 0;                           /* unset: NULL */
        dup = cfg_match_choice(v->choices, s);
        if (!dup)
            return cfg_fail(err, errlen, v, s, is_default, expect);
        *(char **)f = dup;
        return 0;
    case CFG_LIST:
        if (*s && cfg_check_list(s) < 0)
            return cfg_fail(err, errlen, v, s, is_default, expect);
        /* fall through */
    case CFG_STR:
    case CFG_SECRET:
        if (!*s)
            return 0;                           /* unset: NULL */
        dup = strdup(s);
        if (!dup)
            return -ENOMEM;
        *(char **)f = dup;
        return 0;
    }
    return -EINVAL;
}

/* ---- derived defaults and cross-checks ---- */

static int cfg_set_str(char **field, const char *s)
{
    char *dup = strdup(s);

    if (!dup)
        return -ENOMEM;
    free(*field);
    *field = dup;
    return 0;
}

static int cfg_derive(struct config *c, enum cfg_scope scope,
                      const char *(*lookup)(const char *name, void *ud), void *ud)
{
    int r = 0;

    if (!c->instance_id && cfg_in_scope("INSTANCE_ID", scope)) {
        const char *rid = lookup ? lookup("RAILWAY_REPLICA_ID", ud) : NULL;
        char host[256], id[320];

        if (rid && *rid) {
            r = cfg_set_str(&c->instance_id, rid);
        } else {
            if (gethostname(host, sizeof(host)) < 0 || !host[0])
                snprintf(host, sizeof(host), "localhost");
            host[sizeof(host) - 1] = '\0';
            snprintf(id, sizeof(id), "%s-%ld", host, (long)getpid());
            r = cfg_set_str(&c->instance_id, id);
        }
        if (r < 0)
            return r;
    }
    if (!c->public_dir && cfg_in_scope("PUBLIC_DIR", scope)) {
        r = cfg_set_str(&c->public_dir, FLASHGATE_SOURCE_DIR "/public");
        if (r < 0)
            return r;
    }
    if (c->http_threads == 0 && cfg_in_scope("HTTP_THREADS", scope)) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        c->http_threads = n > 0 ? n : 1;
    }
    if (c->sse_fanout_threads == 0 && cfg_in_scope("SSE_FANOUT_THREADS", scope)) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        /* sending is mostly kernel time, and on loopback it also runs the
         * receivers' side: two senders per core kept the CPUs busiest
         * (bench/sse.sh a: 4 senders 46-47 ms p99 on 2 cores, 2 senders 52-54) */
        c->sse_fanout_threads = n > 0 ? (n * 2 > 16 ? 16 : n * 2) : 2;
    }
    if (!c->ai_provider && cfg_in_scope("AI_PROVIDER", scope)) {
        const char *p = "offline";

        if (c->openai_api_key)
            p = "openai";
        else if (c->azure_endpoint && c->azure_api_key && c->azure_deployment)
            p = "azure";
        r = cfg_set_str(&c->ai_provider, p);
    }
    return r;
}

static int cfg_cross_check(const struct config *c, enum cfg_scope scope, char *err, size_t errlen)
{
    if (c->ai_provider && cfg_in_scope("AI_PROVIDER", scope)) {
        if (strcmp(c->ai_provider, "openai") == 0 && !c->openai_api_key) {
            snprintf(err, errlen, "AI_PROVIDER=openai needs OPENAI_API_KEY");
            return -EINVAL;
        }
        if (strcmp(c->ai_provider, "azure") == 0 &&
            (!c->azure_endpoint || !c->azure_api_key || !c->azure_deployment)) {
            snprintf(err, errlen, "AI_PROVIDER=azure needs AZURE_OPENAI_ENDPOINT, "
                     "AZURE_OPENAI_API_KEY and AZURE_OPENAI_DEPLOYMENT (missing:%s%s%s)",
                     c->azure_endpoint ? "" : " AZURE_OPENAI_ENDPOINT",
                     c->azure_api_key ? "" : " AZURE_OPENAI_API_KEY",
                     c->azure_deployment ? "" : " AZURE_OPENAI_DEPLOYMENT");
            return -EINVAL;
        }
    }
    if (cfg_in_scope("ALERT_QUEUE_CRITICAL", scope) &&
        c->alert_queue_critical < c->alert_queue_high) {
        snprintf(err, errlen, "ALERT_QUEUE_CRITICAL (%lld) must be >= ALERT_QUEUE_HIGH (%lld)",
                 c->alert_queue_critical, c->alert_queue_high);
        return -EINVAL;
    }
    if (cfg_in_scope("ALERT_ERROR_RATE_CRITICAL", scope) &&
        c->alert_error_rate_critical < c->alert_error_rate_high) {
        snprintf(err, errlen, "ALERT_ERROR_RATE_CRITICAL (%lld) must be >= ALERT_ERROR_RATE_HIGH (%lld)",
                 c->alert_error_rate_critical, c->alert_error_rate_high);
        return -EINVAL;
    }
    if (cfg_in_scope("CB_MIN_CALLS", scope) && c->cb_min_calls > c->cb_window_calls) {
        snprintf(err, errlen, "CB_MIN_CALLS (%lld) must be <= CB_WINDOW_CALLS (%lld)",
                 c->cb_min_calls, c->cb_window_calls);
        return -EINVAL;
    }
    return 0;
}

/* ---- load ---- */

int config_load_from(struct config *c, enum cfg_scope scope,
                     const char *(*lookup)(const char *name, void *ud), void *ud,
                     char *err, size_t errlen)
{
    char dummy[1];
    int r = 0;

    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < cfg_vars_count; i++) {
        const struct cfg_var *v = &cfg_vars[i];
        const char *s = NULL;

        if ((v->scope & scope) && lookup)
            s = lookup(v->name, ud);
        if (s && *s)
            r = cfg_parse_var(c, v, s, false, err, errlen);
        else
            r = cfg_parse_var(c, v, v->def, true, err, errlen);
        if (r < 0)
            goto fail;
    }
    r = cfg_derive(c, scope, lookup, ud);
    if (r < 0)
        goto fail;
    r = cfg_cross_check(c, scope, err, errlen);
    if (r < 0)
        goto fail;
    return 0;
fail:
    if (r == -ENOMEM && !err[0])
        snprintf(err, errlen, "out of memory while loading the configuration");
    config_done(c);
    return r;
}

static const char *cfg_getenv(const char *name, void *ud)
{
    (void)ud;
    return getenv(name);
}

int config_load(struct config *c, enum cfg_scope scope, char *err, size_t errlen)
{
    return config_load_from(c, scope, cfg_getenv, NULL, err, errlen);
}

void config_done(struct config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < cfg_vars_count; i++) {
        if (cfg_is_string_kind(cfg_vars[i].kind)) {
            char **f = cfg_field(c, &cfg_vars[i]);

            free(*f);
            *f = NULL;
        }
    }
}

/* ---- output ---- */

static struct json_object *cfg_value_json(const struct config *c, const struct cfg_var *v)
{
    const void *f = cfg_cfield(c, v);
    char usd[CONFIG_USD_LEN];
    const char *s;

    switch (v->kind) {
    case CFG_INT:
        return json_object_new_int64(*(const long long *)f);
    case CFG_BOOL:
        return json_object_new_boolean(*(const bool *)f);
    case CFG_USD:
        /* Printed from the exact decimal text, not from the double. */
        config_format_usd(*(const long long *)f, usd);
        return json_object_new_double_s((double)*(const long long *)f / CFG_USD_SCALE, usd);
    case CFG_SECRET:
        return *(char *const *)f ? json_object_new_string("***") : NULL;
    default:
        s = *(char *const *)f;
        return s ? json_object_new_string(s) : NULL;
    }
}

void config_log(const struct config *c, enum cfg_scope scope)
{
    struct json_object *root = json_object_new_object();

    if (!root)
        return;
    for (size_t i = 0; i < cfg_vars_count; i++) {
        const struct cfg_var *v = &cfg_vars[i];

        if (v->scope & scope)
            json_object_object_add(root, v->name, cfg_value_json(c, v));
    }
    log_info("configuration", LOG_STR("scope", cfg_scope_name(scope)),
             LOG_RAW("config", jsonx_to_string(root)));
    json_object_put(root);
}

/* Markdown table text: '|' would end the cell and a newline the row. */
static void cfg_md_text(FILE *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n && s[i]; i++) {
        if (s[i] == '|')
            fputs("\\|", out);
        else if (s[i] == '\n')
            fputc(' ', out);
        else
            fputc(s[i], out);
    }
}

void config_write_markdown(FILE *out)
{
    static const char note[] = " (default: ";

    fputs("| Variable | Default | Scope | Description |\n", out);
    fputs("|---|---|---|---|\n", out);
    for (size_t i = 0; i < cfg_vars_count; i++) {
        const struct cfg_var *v = &cfg_vars[i];
        const char *doc = v->doc ? v->doc : "";
        const char *derived = v->def[0] ? NULL : strstr(doc, note);
        const char *close = derived ? strchr(derived + sizeof(note) - 1, ')') : NULL;

        fprintf(out, "| `%s` | ", v->name);
        if (v->def[0]) {
            fputc('`', out);
            cfg_md_text(out, v->def, SIZE_MAX);
            fputc('`', out);
        } else if (close) {
            /* A derived default: its note moves from the description here. */
            cfg_md_text(out, derived + sizeof(note) - 1, (size_t)(close - derived) - (sizeof(note) - 1));
        } else {
            fputs("(unset)", out);
        }
        fprintf(out, " | %s | ", cfg_scope_name(v->scope));
        if (close) {
            cfg_md_text(out, doc, (size_t)(derived - doc));
            cfg_md_text(out, close + 1, SIZE_MAX);
        } else {
            cfg_md_text(out, doc, SIZE_MAX);
        }
        switch (v->kind) {
        case CFG_INT:
            fprintf(out, ". Range %lld..%lld.", v->min, v->max);
            break;
        case CFG_USD: {
            char lo[CONFIG_USD_LEN], hi[CONFIG_USD_LEN];

            config_format_usd(v->min, lo);
            config_format_usd(v->max, hi);
            fprintf(out, ". Range %s..%s, at most 6 decimals.", lo, hi);
            break;
        }
        case CFG_BOOL:
            fputs(". `true` or `false`.", out);
            break;
        case CFG_ENUM:
            fputs(". One of `", out);
            for (const char *p = v->choices; p && *p; p++) {
                if (*p == '|')
                    fputs("`, `", out);
                else
                    fputc(*p, out);
            }
            fputs("`.", out);
            break;
        case CFG_SECRET:
            fputs(". Secret: logged as `***`.", out);
            break;
        default:
            fputc('.', out);
            break;
        }
        fputs(" |\n", out);
    }
}
