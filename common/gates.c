/*
 * gates.c: the C side of the resilience scripts.  Each function builds the
 * key names and arguments of one script, runs it with redisx_eval (EVALSHA,
 * EVAL after NOSCRIPT) and decodes the reply defensively.  The scripts that
 * change breaker, throttle or budget state share throttle_lib.lua, sent in
 * front of each body as one script text (built once, pthread_once);
 * ratelimit.lua gets gcra.lua the same way (queue.c sends gcra.lua with
 * enqueue.lua too: the job submission checks the client limits itself).
 *
 * Key layout (P = QUEUE_KEY_PREFIX, "fg:{ai-jobs}:"):
 *   P cb:<provider>              HASH   breaker
 *   P thr:<provider>             HASH   GCRA TAT, wait hint, call average, limits last used
 *   P thr:<provider>:leases      ZSET   lease (id and reservation) -> expiry ms (<= max concurrent)
 *   P thr:<provider>:tpm         ZSET   lease id -> admission ms (last 60 s)
 *   P thr:<provider>:tpmtok      HASH   lease id -> tokens, and _sum (expires with the window)
 *   P budget:killswitch          HASH   QUEUE_KILLSWITCH_KEY: reason, source, since
 *   P budget:limit               HASH   operator's monthly limit and the configured one it replaces
 *   P budget:month:<YYYY-MM>     HASH   spent, reserved, calls
 *   P rl:<kind>:<client>         STRING GCRA TAT of a client limit
 */
#include "common/gates.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/ids.h"
#include "common/queue.h"
#include "common/redisx.h"

extern const char lua_throttle_lib[];
extern const char lua_throttle_acquire[];
extern const char lua_throttle_settle[];
extern const char lua_throttle_status[];
extern const char lua_breaker_status[];
extern const char lua_breaker_reset[];
extern const char lua_budget_status[];
extern const char lua_budget_killswitch[];
extern const char lua_budget_set_limit[];
extern const char lua_ratelimit[];
extern const char lua_gcra[];

enum { S_ACQUIRE, S_SETTLE, S_THR_STATUS, S_CB_STATUS, S_CB_RESET, S_BUDGET_STATUS, S_KILLSWITCH,
       S_SET_LIMIT, S_RATELIMIT, S_COUNT };

static const struct {
    const char *name;
    const char *body;
    const char *lib;             /* library sent in front of the body (after its shebang line), or NULL */
} script_src[S_COUNT] = {
    [S_ACQUIRE]       = { "throttle_acquire", lua_throttle_acquire, lua_throttle_lib },
    [S_SETTLE]        = { "throttle_settle", lua_throttle_settle, lua_throttle_lib },
    [S_THR_STATUS]    = { "throttle_status", lua_throttle_status, NULL },
    [S_CB_STATUS]     = { "breaker_status", lua_breaker_status, lua_throttle_lib },
    [S_CB_RESET]      = { "breaker_reset", lua_breaker_reset, lua_throttle_lib },
    [S_BUDGET_STATUS] = { "budget_status", lua_budget_status, lua_throttle_lib },
    [S_KILLSWITCH]    = { "budget_killswitch", lua_budget_killswitch, lua_throttle_lib },
    [S_SET_LIMIT]     = { "budget_set_limit", lua_budget_set_limit, lua_throttle_lib },
    [S_RATELIMIT]     = { "ratelimit", lua_ratelimit, lua_gcra },
};

static struct redisx_script scripts[S_COUNT];
static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;

/* lib + body as one script text; a body's "#!lua" line stays the first line
 * (Redis reads the shebang only there). */
static void scripts_init(void)
{
    for (int i = 0; i < S_COUNT; i++) {
        const char *src = script_src[i].body, *lib = script_src[i].lib;
        if (lib) {
            size_t n = strlen(src), l = strlen(lib), h = 0;
            if (strncmp(src, "#!", 2) == 0) {
                const char *nl = strchr(src, '\n');
                h = nl ? (size_t)(nl - src) + 1 : n;
            }
            char *s = malloc(n + l + 1);    /* process lifetime */
            if (!s)
                abort();
            memcpy(s, src, h);
            memcpy(s + h, lib, l);
            memcpy(s + h + l, src + h, n - h + 1);
            src = s;
        }
        redisx_script_init(&scripts[i], script_src[i].name, src);
    }
}

static const char *const provider_names[GATES_PROVIDERS] = { "openai", "azure" };

const char *gates_provider_name(enum gates_provider p)
{
    return (unsigned)p < GATES_PROVIDERS ? provider_names[p] : "unknown";
}

int gates_provider_from_name(const char *name)
{
    for (int i = 0; name && i < GATES_PROVIDERS; i++)
        if (strcmp(name, provider_names[i]) == 0)
            return i;
    return -EINVAL;
}

static const char *const reason_names[] = {
    [GATES_WAIT_NONE] = "none",
    [GATES_WAIT_KILLSWITCH] = "killswitch",
    [GATES_WAIT_BREAKER_OPEN] = "breaker_open",
    [GATES_WAIT_BREAKER_PROBING] = "breaker_probing",
    [GATES_WAIT_CONCURRENCY] = "concurrency",
    [GATES_WAIT_RPM] = "rpm",
    [GATES_WAIT_TPM] = "tpm",
    [GATES_WAIT_BUDGET] = "budget",
};

const char *gates_wait_reason_name(enum gates_wait_reason r)
{
    return (unsigned)r < sizeof(reason_names) / sizeof(reason_names[0]) ? reason_names[r] : "unknown";
}

static enum gates_wait_reason reason_from(const char *s)
{
    for (size_t i = 1; i < sizeof(reason_names) / sizeof(reason_names[0]); i++)
        if (strcmp(s, reason_names[i]) == 0)
            return (enum gates_wait_reason)i;
    return GATES_WAIT_NONE;
}

void gates_breaker_cfg_from_config(const struct config *c, struct gates_breaker_cfg *ret)
{
    ret->threshold = c->cb_failure_threshold;
    ret->rate_pct = c->cb_failure_rate_pct;
    ret->window_calls = c->cb_window_calls;
    ret->min_calls = c->cb_min_calls;
    ret->open_ms = c->cb_open_ms;
    ret->probes = c->cb_half_open_probes;
}

/* ------------------------------------------------------------ plumbing */

#define ARG_MAX 24
#define NUM_LEN 24

/* Arguments of one script call: key names and numbers formatted in place. */
struct args {
    const char *v[ARG_MAX];
    char keys[10][GATES_KEY_MAX];
    char nums[ARG_MAX][NUM_LEN];
    int n, nkeys;
};

/* Key QUEUE_KEY_PREFIX + kind + name + tail ("cb:" "openai" ""). */
static void add_key(struct args *a, const char *kind, const char *name, const char *tail)
{
    char *k = a->keys[a->nkeys++];
    snprintf(k, GATES_KEY_MAX, "%s%s%s%s", QUEUE_KEY_PREFIX, kind, name, tail);
    a->v[a->n++] = k;
}

static void add_str(struct args *a, const char *s)
{
    a->v[a->n++] = s;
}

static void add_num(struct args *a, long long x)
{
    char *s = a->nums[a->n];
    snprintf(s, NUM_LEN, "%lld", x);
    a->v[a->n++] = s;
}

static void add_cb(struct args *a, const struct gates_breaker_cfg *cb)
{
    add_num(a, cb->threshold);
    add_num(a, cb->rate_pct);
    add_num(a, cb->window_calls);
    add_num(a, cb->min_calls);
    add_num(a, cb->open_ms);
    add_num(a, cb->probes);
}

/* The 7 keys of acquire and settle. */
static void add_call_keys(struct args *a, enum gates_provider p)
{
    const char *name = gates_provider_name(p);
    add_key(a, "cb:", name, "");
    add_key(a, "thr:", name, "");
    add_key(a, "thr:", name, ":leases");
    add_key(a, "thr:", name, ":tpm");
    add_key(a, "thr:", name, ":tpmtok");
    add_key(a, "budget:killswitch", "", "");
    add_key(a, "budget:limit", "", "");
}

/* Run script s; the reply must be an array of at least min_elems.  NULL and
 * *rc = -errno otherwise. */
static redisReply *run(struct redisx *r, int s, struct args *a, size_t min_elems, int *rc)
{
    pthread_once(&scripts_once, scripts_init);
    redisReply *rep = redisx_eval(r, &scripts[s], a->nkeys, a->n - a->nkeys, a->v, NULL);
    if (!rep) {
        *rc = redisx_last_error(r) ? redisx_last_error(r) : -EIO;
        return NULL;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < min_elems) {
        freeReplyObject(rep);
        *rc = -EPROTO;
        return NULL;
    }
    *rc = 0;
    return rep;
}

static long long int_at(const redisReply *rep, size_t i)
{
    const redisReply *e = rep->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS)
        return strtoll(e->str, NULL, 10);
    return 0;
}

static void str_at(const redisReply *rep, size_t i, char *out, size_t cap)
{
    const redisReply *e = rep->element[i];
    if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS)
        snprintf(out, cap, "%.*s", (int)e->len, e->str);
    else
        out[0] = 0;
}

/* ------------------------------------------------------------ per call */

int gates_acquire(struct redisx *r, enum gates_provider p, const struct gates_call_cfg *cfg,
                   long long est_tokens, long long est_cost,
                   struct gates_ticket *ticket, struct gates_acquire_result *ret)
{
    if ((unsigned)p >= GATES_PROVIDERS || cfg->rpm <= 0 || cfg->max_concurrent <= 0 ||
        cfg->lease_ms <= 0 || est_tokens < 0 || est_cost < 0)
        return -EINVAL;
    unsigned char raw[8];
    char id[GATES_LEASE_ID_LEN];
    ids_random_bytes(raw, sizeof(raw));
    for (int i = 0; i < 8; i++)
        snprintf(id + 2 * i, 3, "%02x", raw[i]);

    struct args a = { .n = 0 };
    add_call_keys(&a, p);
    add_str(&a, id);
    add_num(&a, est_tokens);
    add_num(&a, est_cost);
    add_num(&a, cfg->rpm);
    add_num(&a, cfg->tpm);
    add_num(&a, cfg->max_concurrent);
    add_num(&a, cfg->lease_ms);
    add_cb(&a, &cfg->cb);
    add_num(&a, cfg->monthly_limit);

    int rc;
    redisReply *rep = run(r, S_ACQUIRE, &a, 3, &rc);
    if (!rep)
        return rc;
    char word[16], reason[32];
    str_at(rep, 0, word, sizeof(word));
    memset(ret, 0, sizeof(*ret));
    if (strcmp(word, "OK") == 0 && rep->elements >= 4) {
        memset(ticket, 0, sizeof(*ticket));
        str_at(rep, 3, ticket->lease, sizeof(ticket->lease));
        if (strncmp(ticket->lease, id, strlen(id)) != 0 || strlen(ticket->lease) + 1 >= sizeof(ticket->lease)) {
            freeReplyObject(rep);
            return -EPROTO;
        }
        ticket->provider = p;
        ticket->generation = int_at(rep, 1);
        ticket->probe = int_at(rep, 2) != 0;
        ret->admitted = true;
    } else if (strcmp(word, "WAIT") == 0) {
        str_at(rep, 2, reason, sizeof(reason));
        ret->wait_ms = int_at(rep, 1);
        ret->reason = reason_from(reason);
        if (ret->wait_ms < 1)
            ret->wait_ms = 1;
    } else {
        rc = -EPROTO;
    }
    freeReplyObject(rep);
    return rc;
}

int gates_settle(struct redisx *r, const struct gates_call_cfg *cfg, const struct gates_ticket *t,
                  const struct gates_settle_args *sa, struct gates_settle_result *ret)
{
    static const char *const kinds[] = { "ok", "fault", "none" };
    if ((unsigned)t->provider >= GATES_PROVIDERS || (unsigned)sa->result > GATES_RESULT_NONE)
        return -EINVAL;
    struct args a = { .n = 0 };
    add_call_keys(&a, t->provider);
    add_str(&a, t->lease);
    add_str(&a, kinds[sa->result]);
    add_num(&a, t->generation);
    add_num(&a, sa->tokens < 0 ? -1 : sa->tokens);
    add_num(&a, sa->cost < 0 ? -1 : sa->cost);
    add_str(&a, sa->quota ? "1" : "0");
    add_cb(&a, &cfg->cb);
    add_num(&a, cfg->monthly_limit);

    int rc;
    redisReply *rep = run(r, S_SETTLE, &a, 3, &rc);
    if (!rep)
        return rc;
    if (ret) {
        ret->spent = int_at(rep, 0);
        ret->kill_switch = int_at(rep, 1) != 0;
        str_at(rep, 2, ret->breaker_state, sizeof(ret->breaker_state));
    }
    freeReplyObject(rep);
    return 0;
}

/* ------------------------------------------------------------ breakers */

int gates_breaker_status(struct redisx *r, enum gates_provider p, const struct gates_breaker_cfg *cb,
                          long long monthly_limit, struct gates_breaker *ret)
{
    if ((unsigned)p >= GATES_PROVIDERS)
        return -EINVAL;
    const char *name = gates_provider_name(p);
    struct args a = { .n = 0 };
    add_key(&a, "cb:", name, "");
    add_key(&a, "thr:", name, ":leases");
    add_key(&a, "budget:killswitch", "", "");
    add_key(&a, "budget:limit", "", "");
    add_cb(&a, cb);
    add_num(&a, monthly_limit);
    int rc;
    redisReply *rep = run(r, S_CB_STATUS, &a, 11, &rc);
    if (!rep)
        return rc;
    memset(ret, 0, sizeof(*ret));
    str_at(rep, 0, ret->state, sizeof(ret->state));
    ret->generation = int_at(rep, 1);
    ret->consecutive_failures = int_at(rep, 2);
    ret->window_calls = int_at(rep, 3);
    ret->window_failures = int_at(rep, 4);
    ret->opened_at_ms = int_at(rep, 5);
    ret->next_retry_ms = int_at(rep, 6);
    ret->probes_admitted = int_at(rep, 7);
    ret->probes_succeeded = int_at(rep, 8);
    ret->now_ms = int_at(rep, 9);
    ret->in_flight = int_at(rep, 10);
    freeReplyObject(rep);
    return 0;
}

int gates_breaker_reset(struct redisx *r, enum gates_provider p, long long *ret_gen)
{
    if ((unsigned)p >= GATES_PROVIDERS)
        return -EINVAL;
    struct args a = { .n = 0 };
    add_key(&a, "cb:", gates_provider_name(p), "");
    pthread_once(&scripts_once, scripts_init);
    redisReply *rep = redisx_eval(r, &scripts[S_CB_RESET], a.nkeys, 0, a.v, NULL);
    if (!rep)
        return redisx_last_error(r) ? redisx_last_error(r) : -EIO;
    int rc = rep->type == REDIS_REPLY_INTEGER ? 0 : -EPROTO;
    if (rc == 0 && ret_gen)
        *ret_gen = rep->integer;
    freeReplyObject(rep);
    return rc;
}

/* ------------------------------------------------------------ budget */

int gates_budget_status(struct redisx *r, long long configured_limit, long long cb_open_ms,
                         struct gates_budget *ret)
{
    struct args a = { .n = 0 };
    add_key(&a, "budget:killswitch", "", "");
    add_key(&a, "budget:limit", "", "");
    for (int p = 0; p < GATES_PROVIDERS; p++) {
        const char *name = gates_provider_name((enum gates_provider)p);
        add_key(&a, "cb:", name, "");
        add_key(&a, "thr:", name, ":leases");
    }
    add_num(&a, configured_limit);
    add_num(&a, cb_open_ms);
    int rc;
    redisReply *rep = run(r, S_BUDGET_STATUS, &a, 12, &rc);
    if (!rep)
        return rc;
    memset(ret, 0, sizeof(*ret));
    ret->kill_switch = int_at(rep, 0) != 0;
    str_at(rep, 1, ret->reason, sizeof(ret->reason));
    str_at(rep, 2, ret->source, sizeof(ret->source));
    ret->since_ms = int_at(rep, 3);
    ret->limit = int_at(rep, 4);
    ret->limit_overridden = int_at(rep, 5) != 0;
    ret->spent = int_at(rep, 6);
    ret->reserved = int_at(rep, 7);
    ret->calls = int_at(rep, 8);
    str_at(rep, 9, ret->month, sizeof(ret->month));
    ret->now_ms = int_at(rep, 10);
    long long pttl = int_at(rep, 11);
    ret->switch_expires_ms = ret->kill_switch && pttl > 0 ? ret->now_ms + pttl : 0;
    freeReplyObject(rep);
    return 0;
}

int gates_killswitch_set(struct redisx *r, bool on, const char *reason, const char *source,
                          bool *ret_was_on)
{
    /* cut to GATES_REASON_MAX at a character boundary (never inside a UTF-8 sequence) */
    char cut[GATES_REASON_MAX + 1];
    size_t n = reason ? strlen(reason) : 0;
    if (n > GATES_REASON_MAX) {
        n = GATES_REASON_MAX;
        while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(cut, reason, n);
    cut[n] = 0;
    struct args a = { .n = 0 };
    add_key(&a, "budget:killswitch", "", "");
    add_str(&a, on ? "1" : "0");
    add_str(&a, cut);
    add_str(&a, source ? source : "admin");
    pthread_once(&scripts_once, scripts_init);
    redisReply *rep = redisx_eval(r, &scripts[S_KILLSWITCH], a.nkeys, a.n - a.nkeys, a.v, NULL);
    if (!rep)
        return redisx_last_error(r) ? redisx_last_error(r) : -EIO;
    int rc = rep->type == REDIS_REPLY_INTEGER ? 0 : -EPROTO;
    if (rc == 0 && ret_was_on)
        *ret_was_on = rep->integer != 0;
    freeReplyObject(rep);
    return rc;
}

int gates_budget_set_limit(struct redisx *r, long long configured_limit, long long new_limit,
                            struct gates_set_limit_result *ret)
{
    if (new_limit < 0)
        return -EINVAL;
    struct args a = { .n = 0 };
    add_key(&a, "budget:limit", "", "");
    add_key(&a, "budget:killswitch", "", "");
    add_num(&a, new_limit);
    add_num(&a, configured_limit);
    int rc;
    redisReply *rep = run(r, S_SET_LIMIT, &a, 4, &rc);
    if (!rep)
        return rc;
    if (ret) {
        ret->previous = int_at(rep, 0);
        ret->switch_cleared = int_at(rep, 1) != 0;
        ret->spent = int_at(rep, 2);
        ret->kill_switch = int_at(rep, 3) != 0;
    }
    freeReplyObject(rep);
    return 0;
}

/* ------------------------------------------------------------ client limits */

int gates_rate_take(struct redisx *r, const char *kind, const char *id, long long limit,
                     long long window_ms, int cost, struct gates_rate *ret)
{
    if (!kind || !id || !*id || strlen(id) > GATES_CLIENT_ID_MAX || strlen(kind) > 16 ||
        limit <= 0 || window_ms <= 0 || cost < 0 || cost > 1)
        return -EINVAL;
    char key[GATES_KEY_MAX + GATES_CLIENT_ID_MAX];
    snprintf(key, sizeof(key), QUEUE_KEY_PREFIX "rl:%s:%s", kind, id);
    struct args a = { .n = 0 };
    a.v[a.n++] = key;
    a.nkeys = 1;
    add_num(&a, limit);
    add_num(&a, window_ms);
    add_num(&a, cost);
    int rc;
    redisReply *rep = run(r, S_RATELIMIT, &a, 4, &rc);
    if (!rep)
        return rc;
    ret->allowed = int_at(rep, 0) != 0;
    ret->limit = limit;
    ret->remaining = int_at(rep, 1);
    ret->reset_ms = int_at(rep, 2);
    ret->retry_ms = int_at(rep, 3);
    freeReplyObject(rep);
    return 0;
}

int gates_throttle_status(struct redisx *r, enum gates_provider p, struct gates_throttle *ret)
{
    if ((unsigned)p >= GATES_PROVIDERS)
        return -EINVAL;
    const char *name = gates_provider_name(p);
    struct args a = { .n = 0 };
    add_key(&a, "thr:", name, "");
    add_key(&a, "thr:", name, ":leases");
    add_key(&a, "thr:", name, ":tpm");
    add_key(&a, "thr:", name, ":tpmtok");
    int rc;
    redisReply *rep = run(r, S_THR_STATUS, &a, 8, &rc);
    if (!rep)
        return rc;
    memset(ret, 0, sizeof(*ret));
    ret->in_flight = int_at(rep, 0);
    ret->tokens_in_window = int_at(rep, 1);
    long long tat_us = int_at(rep, 2);
    ret->rpm = int_at(rep, 3);
    ret->tpm = int_at(rep, 4);
    ret->max_concurrent = int_at(rep, 5);
    ret->avg_call_ms = int_at(rep, 6);
    ret->now_ms = int_at(rep, 7);
    ret->next_call_ms = tat_us / 1000 > ret->now_ms ? tat_us / 1000 : 0;
    freeReplyObject(rep);
    return 0;
}
