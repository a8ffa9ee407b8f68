/*
 * The job queue over Redis: C wrappers around the Lua scripts in
 * common/lua/ (docs/queue.md has the key layout, each script's KEYS/ARGV/
 * reply contract, the state diagram and the delivery argument).
 *
 * Each state change is one EVALSHA of one script; the scripts that emit
 * events are sent as common.lua (prelude: Redis time, ISO-8601, emit(),
 * final failure) followed by their body, joined once per process.  This
 * file only validates arguments, names keys, draws random tokens and
 * jitter (Lua's math.random is deterministic inside Redis), and turns
 * replies into structs.  It keeps no state between calls other than the
 * last error text, and never logs: callers log at their edge.
 *
 * Threads: a struct queue is used by one thread at a time (the redisx it
 * borrows is single-owner).  The joined script sources are built once
 * (pthread_once) and read-only afterwards.
 */
#include "common/queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "common/config.h"
#include "common/crypto.h"
#include "common/ids.h"
#include "common/jsonx.h"
#include "common/redisx.h"

extern const char lua_common[];
extern const char lua_gcra[];
extern const char lua_enqueue[];
extern const char lua_claim[];
extern const char lua_renew[];
extern const char lua_progress[];
extern const char lua_complete[];
extern const char lua_fail[];
extern const char lua_release[];
extern const char lua_heartbeat[];
extern const char lua_stats[];
extern const char lua_due[];

#define K_WAITING   QUEUE_KEY_PREFIX "waiting"
#define K_ACTIVE    QUEUE_KEY_PREFIX "active"
#define K_DELAYED   QUEUE_KEY_PREFIX "delayed"
#define K_COMPLETED QUEUE_KEY_PREFIX "completed"
#define K_FAILED    QUEUE_KEY_PREFIX "failed"
#define K_NOTIFY    QUEUE_KEY_PREFIX "notify"
#define K_STATS     QUEUE_KEY_PREFIX "stats"
#define K_WORKERS   QUEUE_KEY_PREFIX "workers"

#define KEY_MAX        160    /* prefix + kind + 64-char id */
#define INSTANCE_MAX   128    /* worker instance ids */
#define RENEW_BATCH    250    /* jobs per renew call: 1 + 4 * 250 words < redisx's 1024 */

enum script_id {
    S_ENQUEUE, S_CLAIM, S_RENEW, S_PROGRESS, S_COMPLETE, S_FAIL, S_RELEASE,
    S_HEARTBEAT, S_STATS, S_DUE, S_COUNT
};

static const struct {
    const char *name;
    const char *body;
    bool prelude;              /* send common.lua in front */
    bool gcra;                 /* and gcra.lua (client rate-limit buckets) after it */
} script_src[S_COUNT] = {
    [S_ENQUEUE]   = { "enqueue", lua_enqueue, true, true },
    [S_CLAIM]     = { "claim", lua_claim, true, false },
    [S_RENEW]     = { "renew", lua_renew, true, false },
    [S_PROGRESS]  = { "progress", lua_progress, true, false },
    [S_COMPLETE]  = { "complete", lua_complete, true, false },
    [S_FAIL]      = { "fail", lua_fail, true, false },
    [S_RELEASE]   = { "release", lua_release, true, false },
    [S_HEARTBEAT] = { "heartbeat", lua_heartbeat, true, false },
    [S_STATS]     = { "stats", lua_stats, false, false },
    [S_DUE]       = { "due", lua_due, false, false },
};

static struct redisx_script scripts[S_COUNT];
static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;

static void scripts_init(void)
{
    size_t pre = strlen(lua_common), lib = strlen(lua_gcra);

    for (int i = 0; i < S_COUNT; i++) {
        const char *src = script_src[i].body;

        if (script_src[i].prelude) {
            size_t n = strlen(script_src[i].body), g = script_src[i].gcra ? lib : 0;
            char *s = malloc(pre + g + n + 1);   /* process lifetime */

            if (!s)
                abort();
            memcpy(s, lua_common, pre);
            memcpy(s + pre, lua_gcra, g);
            memcpy(s + pre + g, script_src[i].body, n + 1);
            src = s;
        }
        redisx_script_init(&scripts[i], script_src[i].name, src);
    }
}

struct queue {
    struct redisx *r;              /* borrowed */
    struct queue_limits lim;
    long long live_ttl_s;          /* TTL of a job's keys while it is not finished */
    char err[256];                 /* last unexpected error reply */
};

void queue_limits_from_config(const struct config *c, struct queue_limits *ret)
{
    *ret = (struct queue_limits){
        .max_attempts = (int)c->job_attempts,
        .backoff_ms = c->job_backoff_ms,
        .backoff_cap_ms = QUEUE_BACKOFF_CAP_MS,
        .lease_ms = c->job_lease_ms,
        .deadline_ms = c->job_deadline_ms,
        .ttl_s = c->idempotency_ttl_s,
        .events_max = c->job_events_max,
        .max_waiting = c->queue_max_waiting,
        .finished_keep = QUEUE_FINISHED_KEEP,
        .heartbeat_ms = c->worker_heartbeat_ms,
    };
}

struct queue *queue_new(struct redisx *r, const struct queue_limits *lim)
{
    struct queue *q;

    if (!r || !lim || lim->max_attempts < 1 || lim->backoff_ms < 0 || lim->lease_ms < 1 ||
        lim->deadline_ms < 1 || lim->ttl_s < 1 || lim->events_max < 1 || lim->max_waiting < 1 ||
        lim->heartbeat_ms < 1)
        return NULL;
    pthread_once(&scripts_once, scripts_init);
    q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->r = r;
    q->lim = *lim;
    if (q->lim.backoff_cap_ms <= 0)
        q->lim.backoff_cap_ms = QUEUE_BACKOFF_CAP_MS;
    if (q->lim.finished_keep <= 0)
        q->lim.finished_keep = QUEUE_FINISHED_KEEP;
    /* Unfinished jobs outlive their deadline (plus a lease) by the TTL, so a
     * record never expires while its id is still queued or leased. */
    q->live_ttl_s = lim->ttl_s + (lim->deadline_ms + lim->lease_ms) / 1000 + 1;
    return q;
}

void queue_free(struct queue *q)
{
    free(q);
}

const char *queue_last_error(const struct queue *q)
{
    return q->err;
}

/* ------------------------------------------------------------ helpers */

struct nums {
    char v[16][24];
    int n;
};

/* Decimal text of x in a slot of ns (valid while ns lives). */
static const char *num(struct nums *ns, long long x)
{
    char *s = ns->v[ns->n++ & 15];

    snprintf(s, 24, "%lld", x);
    return s;
}

static bool id_ok(const char *id)
{
    return ids_is_sane(id, JOB_ID_MAX) != 0;
}

/* Length of the valid UTF-8 sequence at p (1..4), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p)
{
    unsigned c = p[0], cp;
    size_t n;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 1, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 2, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 3, cp = c & 0x07;
    else
        return 0;
    for (size_t i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;          /* also stops at the NUL */
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n + 1;
}

static bool is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* Valid UTF-8 without control characters (text that goes into events). */
static bool text_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        size_t n = utf8_seq(p);

        if (n == 0 || is_ctl(*p))
            return false;
        p += n;
    }
    return true;
}

/* Copy s into out (cap bytes), cut on a character boundary, invalid UTF-8
 * bytes replaced by '?' and control characters by ' '. */
static void clean_text(const char *s, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;

    while (*p) {
        size_t n = utf8_seq(p);

        if (n == 0 || is_ctl(*p)) {
            if (o + 2 > cap)
                break;
            out[o++] = n == 0 ? '?' : ' ';
            p++;
            continue;
        }
        if (o + n + 1 > cap)
            break;
        memcpy(out + o, p, n);
        o += n;
        p += n;
    }
    out[o] = '\0';
}

static int reply_error(struct queue *q, const redisReply *rep)
{
    static const char *const transient[] = {
        "LOADING", "BUSY", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "TRYAGAIN",
        "MOVED", "ASK", "NOREPLICAS", "NOSCRIPT",
    };

    snprintf(q->err, sizeof(q->err), "%.*s", (int)rep->len, rep->str);
    if (strncmp(rep->str, "OOM", 3) == 0)
        return -ENOMEM;
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        if (strncmp(rep->str, transient[i], strlen(transient[i])) == 0)
            return -EIO;
    return -EPROTO;
}

/* Run a script.  0 with *ret (caller frees), or -errno. */
static int run(struct queue *q, enum script_id s, int nkeys, int nargs, const char **argv,
               redisReply **ret)
{
    redisReply *rep = redisx_eval(q->r, &scripts[s], nkeys, nargs, argv, NULL);
    int r;

    if (!rep)
        return redisx_last_error(q->r);
    if (rep->type == REDIS_REPLY_ERROR) {
        r = reply_error(q, rep);
        freeReplyObject(rep);
        return r;
    }
    *ret = rep;
    return 0;
}

/* Integer from an integer reply or a decimal bulk string. */
static int reply_ll(const redisReply *e, long long *ret)
{
    char buf[24], *end;

    if (e->type == REDIS_REPLY_INTEGER) {
        *ret = e->integer;
        return 0;
    }
    if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len >= sizeof(buf))
        return -EPROTO;
    memcpy(buf, e->str, e->len);
    buf[e->len] = '\0';
    errno = 0;
    *ret = strtoll(buf, &end, 10);
    return errno || *end ? -EPROTO : 0;
}

/* Copy a bulk string into a fixed buffer; -EPROTO if absent or too long. */
static int reply_fixed(const redisReply *e, char *dst, size_t cap)
{
    if (e->type != REDIS_REPLY_STRING || e->len >= cap || memchr(e->str, '\0', e->len))
        return -EPROTO;
    memcpy(dst, e->str, e->len);
    dst[e->len] = '\0';
    return 0;
}

static bool reply_is(const redisReply *e, const char *s)
{
    return (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) &&
           e->len == strlen(s) && memcmp(e->str, s, e->len) == 0;
}

/* 'STALE' / 'NOT_FOUND' replies of the per-job scripts. */
static int reply_verdict(const redisReply *rep)
{
    if (reply_is(rep, "STALE"))
        return -ESTALE;
    if (reply_is(rep, "NOT_FOUND"))
        return -ENOENT;
    return 1;   /* something else: the caller parses it */
}

static void job_keys(const char *id, char jk[KEY_MAX], char ek[KEY_MAX])
{
    snprintf(jk, KEY_MAX, QUEUE_KEY_PREFIX "job:%s", id);
    if (ek)
        snprintf(ek, KEY_MAX, QUEUE_KEY_PREFIX "events:%s", id);
}

/* ------------------------------------------------------------ enqueue */

/* idemkey:<sha256 of user and Idempotency-Key> (user ids may hold any byte). */
static void user_key_name(const char *user, const char *key, char out[KEY_MAX])
{
    size_t ul = strlen(user), kl = strlen(key);
    char buf[64 + JOB_USER_MAX + QUEUE_IDEM_KEY_MAX];
    char hex[SHA256_HEX_LEN];
    int n = snprintf(buf, sizeof(buf), "flashgate-idemkey-v1\n%zu:", ul);

    memcpy(buf + n, user, ul);
    n += (int)ul;
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, "\n%zu:", kl);
    memcpy(buf + n, key, kl);
    n += (int)kl;
    crypto_sha256_hex(buf, (size_t)n, hex);
    snprintf(out, KEY_MAX, QUEUE_KEY_PREFIX "idemkey:%s", hex);
}

int queue_enqueue(struct queue *q, const char *user, const struct job_params *p,
                  const char *idem_key, struct queue_enqueue_result *ret)
{
    return queue_enqueue_admit(q, user, p, idem_key, NULL, ret);
}

static bool client_id_ok(const char *s)
{
    return !s || !*s || strlen(s) <= QUEUE_CLIENT_ID_MAX;
}

/* rates[b..b+2] of the script's reply into *rt (-1: bucket not consulted). */
static int parse_rate(const redisReply *rates, size_t b, long long limit, struct queue_rate *rt)
{
    long long v[3];

    for (size_t i = 0; i < 3; i++)
        if (reply_ll(rates->element[b + i], &v[i]) < 0)
            return -EPROTO;
    if (v[0] < 0)
        return 0;
    *rt = (struct queue_rate){ .checked = true, .limit = limit, .remaining = v[0],
                               .reset_ms = v[1], .retry_ms = v[2] };
    return 0;
}

int queue_enqueue_admit(struct queue *q, const char *user, const struct job_params *p,
                        const char *idem_key, const struct queue_admission *adm,
                        struct queue_enqueue_result *ret)
{
    struct queue_enqueue_result res = { 0 };
    struct nums ns = { 0 };
    char *params = NULL;
    char id[ID_HEX_LEN], hash[SHA256_HEX_LEN];
    char jk[KEY_MAX], hk[KEY_MAX], uk[KEY_MAX];
    redisReply *rep = NULL;
    const char *ip = adm && adm->ip ? adm->ip : "";
    const char *ukey = adm && adm->user_key ? adm->user_key : "";
    long long x;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (!user || !*user || strlen(user) > JOB_USER_MAX || !text_ok(user) || !p)
        return -EINVAL;
    if (idem_key && (!*idem_key || strlen(idem_key) > QUEUE_IDEM_KEY_MAX))
        return -EINVAL;
    if (adm && (!client_id_ok(ip) || !client_id_ok(ukey) || (*ip && adm->ip_limit <= 0) ||
                (*ukey && adm->user_limit <= 0) || ((*ip || *ukey) && adm->window_ms <= 0)))
        return -EINVAL;
    r = job_params_encode(p, &params);
    if (r < 0)
        return r;
    job_idem_hash(user, p->type, params, hash);
    ids_new(id);
    job_keys(id, jk, NULL);
    snprintf(hk, sizeof(hk), QUEUE_KEY_PREFIX "idem:%s", hash);
    if (idem_key)
        user_key_name(user, idem_key, uk);

    const char *argv[20];
    int k = 0, nkeys;

    argv[k++] = K_WAITING;
    argv[k++] = K_DELAYED;
    argv[k++] = K_NOTIFY;
    argv[k++] = QUEUE_KILLSWITCH_KEY;
    argv[k++] = jk;
    argv[k++] = hk;
    if (idem_key)
        argv[k++] = uk;
    nkeys = k;
    argv[k++] = id;
    argv[k++] = user;
    argv[k++] = job_type_name(p->type);
    argv[k++] = params;
    argv[k++] = num(&ns, q->lim.ttl_s);
    argv[k++] = num(&ns, q->live_ttl_s);
    argv[k++] = num(&ns, q->lim.max_waiting);
    argv[k++] = num(&ns, QUEUE_NOTIFY_MAX);
    argv[k++] = ip;
    argv[k++] = num(&ns, *ip ? adm->ip_limit : 0);
    argv[k++] = ukey;
    argv[k++] = num(&ns, *ukey ? adm->user_limit : 0);
    argv[k++] = num(&ns, adm ? adm->window_ms : 0);
    r = run(q, S_ENQUEUE, nkeys, k - nkeys, argv, &rep);
    if (r < 0)
        goto out;
    r = -EPROTO;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2)
        goto out;
    const redisReply *rates = rep->element[1];
    if (rates->type != REDIS_REPLY_ARRAY || rates->elements != 6 ||
        parse_rate(rates, 0, *ip ? adm->ip_limit : 0, &res.ip) < 0 ||
        parse_rate(rates, 3, *ukey ? adm->user_limit : 0, &res.user) < 0)
        goto out;
    ret->ip = res.ip;
    ret->user = res.user;
    if (reply_is(rep->element[0], "RATE_IP")) {
        r = QUEUE_RATE_IP;
        goto out;
    }
    if (reply_is(rep->element[0], "RATE_USER")) {
        r = QUEUE_RATE_USER;
        goto out;
    }
    if (reply_is(rep->element[0], "KILL_SWITCH")) {
        r = -EPERM;
        goto out;
    }
    if (reply_is(rep->element[0], "QUEUE_FULL")) {
        r = -EBUSY;
        goto out;
    }
    res.existing = reply_is(rep->element[0], "EXISTS");
    if (!res.existing && !reply_is(rep->element[0], "NEW"))
        goto out;
    if (rep->elements < (res.existing ? 7u : 5u))
        goto out;
    if (reply_fixed(rep->element[2], res.job_id, sizeof(res.job_id)) < 0 ||
        rep->element[3]->type != REDIS_REPLY_STRING ||
        job_state_parse(rep->element[3]->str, &res.state) < 0 ||
        reply_ll(rep->element[4], &x) < 0)
        goto out;
    res.created_ms = x;
    if (res.existing && res.state == JOB_COMPLETED) {
        if (reply_ll(rep->element[5], &x) < 0 || rep->element[6]->type != REDIS_REPLY_STRING)
            goto out;
        res.finished_ms = x;
        res.result_json = strndup(rep->element[6]->str, rep->element[6]->len);
        if (!res.result_json) {
            r = -ENOMEM;
            goto out;
        }
    }
    *ret = res;
    memset(&res, 0, sizeof(res));
    r = 0;
out:
    queue_enqueue_result_done(&res);
    if (rep)
        freeReplyObject(rep);
    free(params);
    return r;
}

void queue_enqueue_result_done(struct queue_enqueue_result *r)
{
    if (!r)
        return;
    free(r->result_json);
    r->result_json = NULL;
}

/* ------------------------------------------------------------ reading */

int queue_get(struct queue *q, const char *job_id, struct job_record *ret)
{
    struct job_record rec;
    char jk[KEY_MAX];
    redisReply *rep;
    int r = -EPROTO;

    if (!id_ok(job_id))
        return -ENOENT;
    job_keys(job_id, jk, NULL);
    rep = redisx_command(q->r, "HGETALL %s", jk);
    if (!rep)
        return redisx_last_error(q->r);
    job_record_init(&rec);
    if (rep->type == REDIS_REPLY_ERROR) {
        r = reply_error(q, rep);
        goto out;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2)
        goto out;
    if (rep->elements == 0) {
        r = -ENOENT;
        goto out;
    }
    for (size_t i = 0; i < rep->elements; i += 2) {
        const redisReply *k = rep->element[i], *v = rep->element[i + 1];

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            goto out;
        int e = job_record_set_field(&rec, k->str, k->len, v->str, v->len);
        if (e == -ENOMEM) {
            r = e;
            goto out;
        }
        if (e < 0)
            goto out;
    }
    if (job_record_check(&rec) < 0 || strcmp(rec.id, job_id) != 0)
        goto out;
    *ret = rec;
    job_record_init(&rec);
    r = 0;
out:
    job_record_done(&rec);
    freeReplyObject(rep);
    return r;
}

int queue_events_since(struct queue *q, const char *job_id, long long after_seq,
                       struct job_event_list *ret)
{
    struct job_event_list l = { 0 };
    char ek[KEY_MAX];
    redisReply *rep;
    int r = -EPROTO;

    if (!id_ok(job_id)) {
        *ret = l;
        return 0;
    }
    snprintf(ek, sizeof(ek), QUEUE_KEY_PREFIX "events:%s", job_id);
    rep = redisx_command(q->r, "LRANGE %s 0 -1", ek);
    if (!rep)
        return redisx_last_error(q->r);
    if (rep->type == REDIS_REPLY_ERROR) {
        r = reply_error(q, rep);
        goto out;
    }
    if (rep->type != REDIS_REPLY_ARRAY)
        goto out;
    if (rep->elements) {
        l.v = calloc(rep->elements, sizeof(*l.v));
        if (!l.v) {
            r = -ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        struct job_event ev;

        if (e->type != REDIS_REPLY_STRING)
            continue;
        int k = job_event_decode(e->str, e->len, &ev);
        if (k == -ENOMEM) {
            r = k;
            goto out;
        }
        if (k < 0)
            continue;
        if (ev.seq <= after_seq || strcmp(ev.job_id, job_id) != 0) {
            job_event_done(&ev);
            continue;
        }
        l.v[l.n++] = ev;
    }
    *ret = l;
    memset(&l, 0, sizeof(l));
    r = 0;
out:
    job_event_list_done(&l);
    freeReplyObject(rep);
    return r;
}

int queue_stats(struct queue *q, struct queue_stats *ret)
{
    struct nums ns = { 0 };
    const char *argv[] = {
        K_WAITING, K_ACTIVE, K_DELAYED, K_COMPLETED, K_FAILED, K_STATS, K_WORKERS,
        QUEUE_KILLSWITCH_KEY, num(&ns, q->lim.ttl_s), num(&ns, 3 * q->lim.heartbeat_ms),
    };
    redisReply *rep = NULL;
    long long v[13];
    int r = run(q, S_STATS, 8, 2, argv, &rep);

    if (r < 0)
        return r;
    r = -EPROTO;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 13)
        goto out;
    for (int i = 0; i < 13; i++)
        if (reply_ll(rep->element[i], &v[i]) < 0)
            goto out;
    *ret = (struct queue_stats){
        .waiting = v[0], .active = v[1], .delayed = v[2], .completed = v[3], .failed = v[4],
        .total = v[0] + v[1] + v[2] + v[3] + v[4],
        .completed_total = v[5], .failed_total = v[6], .finished_total = v[7],
        .last_finish_ms = v[8], .workers_alive = v[9], .now_ms = v[10],
        .kill_switch = v[11] != 0, .workers_busy = v[12],
    };
    r = 0;
out:
    freeReplyObject(rep);
    return r;
}

/* ------------------------------------------------------------ claim */

void queue_job_done(struct queue_job *j)
{
    if (!j)
        return;
    free(j->params_json);
    j->params_json = NULL;
}

static int parse_claimed(redisReply **e, struct queue_job *j)
{
    long long x;

    memset(j, 0, sizeof(*j));
    if (reply_fixed(e[0], j->id, sizeof(j->id)) < 0 ||
        reply_fixed(e[1], j->token, sizeof(j->token)) < 0 ||
        reply_ll(e[2], &x) < 0 || x < 1 || x > 1000000)
        return -EPROTO;
    j->attempt = (int)x;
    if (e[3]->type != REDIS_REPLY_STRING || job_type_parse(e[3]->str, &j->type) < 0 ||
        reply_fixed(e[4], j->user, sizeof(j->user)) < 0 || e[5]->type != REDIS_REPLY_STRING ||
        reply_ll(e[6], &x) < 0)
        return -EPROTO;
    j->created_ms = x;
    j->params_json = strndup(e[5]->str, e[5]->len);
    return j->params_json ? 0 : -ENOMEM;
}

int queue_claim(struct queue *q, int n, unsigned flags, struct queue_job *out)
{
    static const int fixed = 6 + 10;
    char tokens[QUEUE_CLAIM_MAX][ID_HEX_LEN];
    const char *argv[6 + 10 + QUEUE_CLAIM_MAX];
    struct nums ns = { 0 };
    redisReply *rep = NULL;
    int r, got = 0;

    if (n < 0 || (n > 0 && !out))
        return -EINVAL;
    if (n > QUEUE_CLAIM_MAX)
        n = QUEUE_CLAIM_MAX;
    argv[0] = K_WAITING;
    argv[1] = K_ACTIVE;
    argv[2] = K_DELAYED;
    argv[3] = K_FAILED;
    argv[4] = K_STATS;
    argv[5] = QUEUE_KILLSWITCH_KEY;
    argv[6] = num(&ns, n);
    argv[7] = num(&ns, q->lim.lease_ms);
    argv[8] = num(&ns, q->lim.max_attempts);
    argv[9] = num(&ns, q->lim.deadline_ms);
    argv[10] = num(&ns, q->lim.ttl_s);
    argv[11] = num(&ns, q->live_ttl_s);
    argv[12] = num(&ns, q->lim.events_max);
    argv[13] = num(&ns, q->lim.finished_keep);
    argv[14] = num(&ns, QUEUE_MAINT_BATCH);
    argv[15] = (flags & QUEUE_CLAIM_PAID) ? "1" : "0";
    for (int i = 0; i < n; i++) {
        ids_new(tokens[i]);
        argv[fixed + i] = tokens[i];
    }
    r = run(q, S_CLAIM, 6, 10 + n, argv, &rep);
    if (r < 0)
        return r;
    r = -EPROTO;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 7 || rep->elements / 7 > (size_t)n)
        goto out;
    for (size_t i = 0; i < rep->elements; i += 7) {
        r = parse_claimed(&rep->element[i], &out[got]);
        if (r < 0) {
            queue_job_done(&out[got]);
            goto out;
        }
        got++;
    }
    r = got;
out:
    if (r < 0) {
        /* The claimed jobs' leases run out and they are handed out again. */
        for (int i = 0; i < got; i++)
            queue_job_done(&out[i]);
    }
    freeReplyObject(rep);
    return r;
}

int queue_wait(struct queue *q, int timeout_ms)
{
    const char *argv[] = { K_WAITING, K_DELAYED, K_ACTIVE, K_NOTIFY };
    redisReply *rep = NULL;
    long long due, wait = timeout_ms;
    bool due_wake = false;
    char secs[32];
    int r = run(q, S_DUE, 4, 0, argv, &rep);

    if (r < 0)
        return r;
    r = reply_ll(rep, &due);
    freeReplyObject(rep);
    if (r < 0)
        return r;
    if (due == 0)
        return 1;
    if (due > 0 && due < wait) {
        wait = due;
        due_wake = true;
    }
    if (wait <= 0)
        return 0;
    snprintf(secs, sizeof(secs), "%lld.%03lld", wait / 1000, wait % 1000);
    /* The connection must outlast the blocking command. */
    redisx_set_timeout(q->r, (int)wait + 2000);
    rep = redisx_command(q->r, "BLPOP %s %s", K_NOTIFY, secs);
    redisx_set_timeout(q->r, 0);
    if (!rep)
        return redisx_last_error(q->r);
    if (rep->type == REDIS_REPLY_ERROR)
        r = reply_error(q, rep);
    else if (rep->type == REDIS_REPLY_ARRAY)
        r = 1;
    else
        r = due_wake ? 1 : 0;
    freeReplyObject(rep);
    return r;
}

/* ------------------------------------------------------------ per job */

int queue_renew(struct queue *q, const struct queue_lease_ref *v, size_t n, bool *ret_held)
{
    const char *argv[1 + 4 * RENEW_BATCH + 2];
    char (*keys)[KEY_MAX] = NULL;
    struct nums ns = { 0 };
    size_t held = 0;
    int r = 0;

    if (n && (!v || !ret_held))
        return -EINVAL;
    if (n) {
        keys = malloc(2 * RENEW_BATCH * sizeof(*keys));   /* 80 KB: not on a worker's stack */
        if (!keys)
            return -ENOMEM;
    }
    for (size_t at = 0; at < n; at += RENEW_BATCH) {
        size_t m = n - at < RENEW_BATCH ? n - at : RENEW_BATCH, k = 0;
        redisReply *rep = NULL;

        argv[k++] = K_ACTIVE;
        for (size_t i = 0; i < m; i++) {
            const char *id = id_ok(v[at + i].id) ? v[at + i].id : "-";

            job_keys(id, keys[2 * i], keys[2 * i + 1]);
            argv[k++] = keys[2 * i];
            argv[k++] = keys[2 * i + 1];
        }
        argv[k++] = num(&ns, q->lim.lease_ms);
        argv[k++] = num(&ns, q->live_ttl_s);
        for (size_t i = 0; i < m; i++) {
            argv[k++] = id_ok(v[at + i].id) ? v[at + i].id : "-";
            argv[k++] = v[at + i].token ? v[at + i].token : "";
        }
        r = run(q, S_RENEW, (int)(1 + 2 * m), (int)(2 + 2 * m), argv, &rep);
        if (r < 0)
            goto out;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != m) {
            freeReplyObject(rep);
            r = -EPROTO;
            goto out;
        }
        for (size_t i = 0; i < m; i++) {
            long long x = 0;

            ret_held[at + i] = reply_ll(rep->element[i], &x) == 0 && x == 1;
            held += ret_held[at + i];
        }
        freeReplyObject(rep);
    }
    r = (int)held;
out:
    free(keys);
    return r;
}

int queue_progress(struct queue *q, const char *id, const char *token, int pct)
{
    struct nums ns = { 0 };
    char jk[KEY_MAX], ek[KEY_MAX];
    redisReply *rep = NULL;
    int r;

    if (!id_ok(id) || !token)
        return -EINVAL;
    pct = pct < 0 ? 0 : pct > 100 ? 100 : pct;
    job_keys(id, jk, ek);
    const char *argv[] = { jk, ek, id, token, num(&ns, pct), num(&ns, q->live_ttl_s),
                           num(&ns, q->lim.events_max) };
    r = run(q, S_PROGRESS, 2, 5, argv, &rep);
    if (r < 0)
        return r;
    r = reply_verdict(rep);
    if (r > 0)
        r = rep->type == REDIS_REPLY_INTEGER ? 0 : -EPROTO;
    freeReplyObject(rep);
    return r;
}

int queue_complete(struct queue *q, const char *id, const char *token,
                   const char *result_json, const struct job_usage *usage)
{
    struct json_object *o = NULL;
    struct nums ns = { 0 };
    char jk[KEY_MAX], ek[KEY_MAX];
    redisReply *rep = NULL;
    const char *res;
    size_t len;
    int r;

    if (!id_ok(id) || !token || !result_json)
        return -EINVAL;
    len = strlen(result_json);
    if (len > QUEUE_RESULT_MAX)
        return -EMSGSIZE;
    r = jsonx_parse(result_json, len, JOB_JSON_MAX_DEPTH, &o, NULL);
    if (r < 0)
        return r;
    if (!json_object_is_type(o, json_type_object)) {
        r = -EINVAL;
        goto out;
    }
    /* Compact, one line: the SSE data line carries it as is. */
    res = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!res) {
        r = -ENOMEM;
        goto out;
    }
    job_keys(id, jk, ek);
    const char *argv[] = {
        jk, ek, K_ACTIVE, K_COMPLETED, K_STATS, id, token, res,
        num(&ns, usage ? usage->input_tokens : 0), num(&ns, usage ? usage->output_tokens : 0),
        num(&ns, q->lim.ttl_s), num(&ns, q->lim.events_max), num(&ns, q->lim.finished_keep),
    };
    r = run(q, S_COMPLETE, 5, 8, argv, &rep);
    if (r < 0)
        goto out;
    r = reply_verdict(rep);
    if (r > 0)
        r = rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
            reply_is(rep->element[0], "OK") ? 0 : -EPROTO;
out:
    if (rep)
        freeReplyObject(rep);
    json_object_put(o);
    return r;
}

long long queue_backoff_ms(const struct queue_limits *lim, int attempt)
{
    long long cap = lim->backoff_cap_ms > 0 ? lim->backoff_cap_ms : QUEUE_BACKOFF_CAP_MS;
    long long top = lim->backoff_ms;

    if (top <= 0)
        return 0;
    for (int i = 1; i < attempt && top < cap; i++)
        top = top > cap / 2 ? cap : top * 2;
    if (top > cap)
        top = cap;
    return (long long)ids_random_below((uint64_t)top + 1);
}

int queue_fail(struct queue *q, const char *id, const char *token, int attempt,
               const struct queue_failure *f, struct queue_fail_result *ret)
{
    struct nums ns = { 0 };
    char jk[KEY_MAX], ek[KEY_MAX], err[QUEUE_ERROR_MAX + 1], code[JOB_CODE_MAX + 1];
    redisReply *rep = NULL;
    long long delay, x[2];
    int r;

    if (!id_ok(id) || !token || !f || !f->code || !*f->code || strlen(f->code) > JOB_CODE_MAX)
        return -EINVAL;
    clean_text(f->error && *f->error ? f->error : f->code, err, sizeof(err));
    clean_text(f->code, code, sizeof(code));
    delay = f->retry_after_ms > 0 ? f->retry_after_ms : queue_backoff_ms(&q->lim, attempt);
    job_keys(id, jk, ek);
    const char *argv[] = {
        jk, ek, K_ACTIVE, K_DELAYED, K_FAILED, K_STATS,
        id, token, err, code, f->retryable ? "1" : "0", num(&ns, delay),
        f->spend_attempt ? "1" : "0", num(&ns, q->lim.max_attempts), num(&ns, q->lim.deadline_ms),
        num(&ns, q->lim.ttl_s), num(&ns, q->live_ttl_s), num(&ns, q->lim.events_max),
        num(&ns, q->lim.finished_keep),
    };
    r = run(q, S_FAIL, 6, 13, argv, &rep);
    if (r < 0)
        return r;
    r = reply_verdict(rep);
    if (r > 0) {
        r = -EPROTO;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
            reply_ll(rep->element[1], &x[0]) == 0 && reply_ll(rep->element[2], &x[1]) == 0 &&
            (reply_is(rep->element[0], "RETRY") || reply_is(rep->element[0], "FAILED"))) {
            if (ret) {
                ret->retrying = reply_is(rep->element[0], "RETRY");
                ret->next_attempt_ms = ret->retrying ? x[0] : 0;
                ret->attempts = (int)x[1];
            }
            r = 0;
        }
    }
    freeReplyObject(rep);
    return r;
}

int queue_release(struct queue *q, const char *id, const char *token, long long delay_ms)
{
    struct nums ns = { 0 };
    char jk[KEY_MAX];
    redisReply *rep = NULL;
    int r;

    if (!id_ok(id) || !token || delay_ms < 0)
        return -EINVAL;
    job_keys(id, jk, NULL);
    const char *argv[] = { jk, K_WAITING, K_ACTIVE, K_DELAYED, K_NOTIFY, id, token,
                           num(&ns, delay_ms), num(&ns, q->live_ttl_s),
                           num(&ns, QUEUE_NOTIFY_MAX) };
    r = run(q, S_RELEASE, 5, 5, argv, &rep);
    if (r < 0)
        return r;
    r = reply_verdict(rep);
    if (r > 0)
        r = reply_is(rep, "OK") ? 0 : -EPROTO;
    freeReplyObject(rep);
    return r;
}

/* ------------------------------------------------------------ workers */

static int heartbeat(struct queue *q, const char *instance, const struct queue_worker_info *w)
{
    struct nums ns = { 0 };
    char wk[KEY_MAX];
    redisReply *rep = NULL;
    int r;

    if (!instance || !ids_is_sane(instance, INSTANCE_MAX))
        return -EINVAL;
    snprintf(wk, sizeof(wk), QUEUE_KEY_PREFIX "worker:%s", instance);
    const char *argv[] = {
        K_WORKERS, wk, instance, num(&ns, w ? 3 * q->lim.heartbeat_ms : 0),
        num(&ns, QUEUE_WORKER_FORGET_MS),
        "processed", num(&ns, w ? w->processed : 0), "succeeded", num(&ns, w ? w->succeeded : 0),
        "failed", num(&ns, w ? w->failed : 0), "in_flight", num(&ns, w ? w->in_flight : 0),
        "peak_in_flight", num(&ns, w ? w->peak_in_flight : 0),
        "started_ms", num(&ns, w ? w->started_ms : 0),
        "provider", w && w->provider ? w->provider : "",
    };
    r = run(q, S_HEARTBEAT, 2, w ? 17 : 3, argv, &rep);
    if (r < 0)
        return r;
    r = rep->type == REDIS_REPLY_INTEGER ? 0 : -EPROTO;
    freeReplyObject(rep);
    return r;
}

int queue_heartbeat(struct queue *q, const char *instance, const struct queue_worker_info *w)
{
    return w ? heartbeat(q, instance, w) : -EINVAL;
}

#define PROVIDERS_MAX_WORKERS 256   /* workers looked at for the provider summary */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

int queue_worker_providers(struct queue *q, char *out, size_t cap)
{
    if (cap)
        out[0] = 0;
    redisReply *ids = redisx_command(q->r, "ZREVRANGE %s 0 %d", K_WORKERS, PROVIDERS_MAX_WORKERS - 1);
    if (!ids)
        return redisx_last_error(q->r);
    int r = 0;
    if (ids->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(ids);
        return -EPROTO;
    }
    redisContext *c = redisx_context(q->r);
    size_t sent = 0;
    for (size_t i = 0; c && i < ids->elements; i++) {
        if (ids->element[i]->type != REDIS_REPLY_STRING)
            continue;
        if (redisAppendCommand(c, "HGET " QUEUE_KEY_PREFIX "worker:%b provider", ids->element[i]->str,
                               ids->element[i]->len) != REDIS_OK)
            break;
        sent++;
    }
    char names[8][16];
    size_t nn = 0;
    for (size_t i = 0; i < sent; i++) {
        void *vp = NULL;
        if (redisGetReply(c, &vp) != REDIS_OK) {
            redisx_reset(q->r);
            r = -EIO;
            break;
        }
        redisReply *p = vp;
        /* a worker whose hash expired is no longer alive: nil */
        if (p->type == REDIS_REPLY_STRING && p->len > 0 && p->len < sizeof(names[0])) {
            bool dup = false;
            for (size_t k = 0; k < nn; k++)
                dup = dup || strcmp(names[k], p->str) == 0;
            if (!dup && nn < 8)
                snprintf(names[nn++], sizeof(names[0]), "%s", p->str);
        }
        freeReplyObject(p);
    }
    freeReplyObject(ids);
    qsort(names, nn, sizeof(names[0]), cmp_name);
    size_t o = 0;
    for (size_t k = 0; k < nn && o < cap; k++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", k ? "," : "", names[k]);
    return r;
}

int queue_worker_gone(struct queue *q, const char *instance)
{
    return heartbeat(q, instance, NULL);
}
