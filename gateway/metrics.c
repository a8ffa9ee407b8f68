/*
 * metrics.c: the fleet's request metrics and the operators' alerts.
 *
 * Recording (pool threads, lock-free): metrics_record() runs when a request
 * finishes and adds to one of MX_STRIPES cache-line-sized sets of atomic
 * counters (a thread keeps its stripe): requests and 5xx per route class,
 * health probes apart, and the latency in a fixed-bucket histogram.  No
 * Redis on the request path.
 *
 * Flushing (the flusher thread, its own Redis connection): every
 * METRICS_FLUSH_MS it moves the stripes' counts (atomic exchange with 0, so
 * each increment is taken exactly once) into `collecting`, a batch of
 * per-minute slots, then sends the `pending` batch with metrics_flush.lua:
 * HINCRBY into fg:{ai-jobs}:metrics:m:<minute> (TTL MX_BUCKET_TTL_S) and the
 * cumulative fg:{ai-jobs}:metrics:total, plus this gateway's live record
 * (SSE connections and jobs, TTL MX_ALIVE_FLUSHES flushes).  A batch keeps
 * its (epoch, seq) until Redis answers: a failed flush is retried unchanged
 * while new counts wait in `collecting`, and a retry of a batch that was
 * applied but whose answer was lost is recognised by the script and changes
 * nothing: counts are neither lost nor doubled.  Redis down for long: the
 * oldest minutes are folded into one totals-only slot (bounded memory; those
 * minutes are past every window anyway).  On shutdown a last flush sends what
 * is left and removes the live record.
 *
 * Reading (pool threads): GET /api/metrics/alerts and GET /metrics take one
 * snapshot: metrics_read.lua (window, totals, live gateways, age of the front
 * job), queue_stats, both breakers and the budget: five round trips, any
 * failure is 503 REDIS_UNAVAILABLE.  The window is the current minute and
 * the MX_WINDOW_MIN - 1 before it (Redis time).  This gateway's own SSE
 * figures are taken live; the others' from their records (at most one flush
 * old).
 */
#include "gateway/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/crypto.h"
#include "common/gates.h"
#include "common/ids.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/queue.h"
#include "common/redisx.h"
#include "gateway/gateway.h"
#include "gateway/http.h"
#include "gateway/hub.h"
#include "gateway/jobs.h"
#include "gateway/resilience.h"
#include "gateway/router.h"

extern const char lua_metrics_flush[];
extern const char lua_metrics_read[];

#define MX_STRIPES        8        /* counter sets; threads share one round-robin */
#define MX_SLOTS          12       /* minutes kept in one batch (one is the totals-only slot) */
#define MX_WINDOW_MIN     5        /* the alerts' window: this minute and the 4 before */
#define MX_BUCKET_TTL_S   900      /* a minute bucket lives 15 minutes */
#define MX_TOTAL_TTL_S    2592000  /* the totals survive 30 idle days */
#define MX_SEQ_TTL_S      86400    /* a gateway's last batch number, for duplicate retries */
#define MX_ALIVE_FLUSHES  3        /* a gateway's live record outlives this many missed flushes */
#define MX_GATEWAYS_MAX   1000     /* live gateways read in one snapshot */
#define MX_SSE_JOBS_PER_GW 50      /* jobs with subscribers one gateway publishes */
#define MX_SSE_JOBS_MAX   100      /* jobs with subscribers listed fleet-wide */
#define MX_SSE_JOBS_JSON_MAX 16384 /* a gateway record's jobs list we accept (bytes) */
#define MX_NUM_LEN        24

/* ------------------------------------------------------------ layout */

enum mx_class { MC_API = 0, MC_ADMIN, MC_STREAM, MC_STATIC, MC_N };
static const char *const class_names[MC_N] = { "api", "admin", "stream", "static" };

/* Histogram upper bounds, ms; the last bucket is +Inf. */
#define MX_NB 12
static const int bucket_le_ms[MX_NB - 1] = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 };

/* Counter fields, as named in Redis (field_name()). */
enum {
    F_REQ = 0,                   /* sum of F_REQ_C (computed at harvest) */
    F_ERR,                       /* sum of F_ERR_C */
    F_REQ_C,                     /* "req:<class>" x MC_N */
    F_ERR_C = F_REQ_C + MC_N,    /* "err:<class>" x MC_N: status >= 500 */
    F_PROBES = F_ERR_C + MC_N,   /* health probes (not in F_REQ) */
    F_LAT_SUM_US,                /* latency sum of the histogram's requests */
    F_B0,                        /* "b:<le ms>" ... "b:inf": non-cumulative bucket counts */
    MX_NF = F_B0 + MX_NB,
};

#define MX_ARGV_MAX (2 + 11 + MX_NF + MX_SLOTS * (MX_NF + 2))

struct stripe {
    _Atomic long long v[MX_NF];
    _Atomic long long max_us;
} __attribute__((aligned(64)));

/* Counts of one minute (minute -1: totals only). */
struct slot {
    long long minute;
    long long v[MX_NF];
    long long max_us;
};

struct batch {
    struct slot s[MX_SLOTS];
    int n;
    long long seq;
};

enum mx_alert {
    A_QUEUE_HIGH = 0, A_QUEUE_CRITICAL, A_FAIL_HIGH, A_FAIL_CRITICAL, A_BREAKER_OPEN,
    A_WORKER_STALLED, A_NO_WORKERS, A_KILL_SWITCH, A_BUDGET_NEAR, A_N
};
static const char *const alert_names[A_N] = {
    "queueDepthHigh", "queueDepthCritical", "failureRateHigh", "failureRateCritical",
    "circuitBreakerOpen", "workerStalled", "noWorkers", "budgetKillSwitchActive", "budgetNearLimit",
};

struct metrics {
    struct stripe stripes[MX_STRIPES];
    struct gw *gw;
    char fields[MX_NF][16];
    struct redisx_script flush_s, read_s;   /* read-only after metrics_new */
    char epoch[17];
    atomic_uint next_stripe;

    /* flusher thread only (and metrics_stop after the join) */
    struct redisx *rx;
    struct batch pending, collecting;
    long long seq;
    bool outage;                 /* the last flush failed (logged once) */
    const char *argv[MX_ARGV_MAX];
    char nums[MX_ARGV_MAX][MX_NUM_LEN];

    pthread_mutex_t lock;        /* protects stop */
    pthread_cond_t cv;
    bool stop;
    bool started;
    pthread_t thread;
};

static _Thread_local int my_stripe = -1;

static void field_name(int f, char out[16])
{
    if (f == F_REQ)
        snprintf(out, 16, "req");
    else if (f == F_ERR)
        snprintf(out, 16, "err");
    else if (f < F_ERR_C)
        snprintf(out, 16, "req:%s", class_names[f - F_REQ_C]);
    else if (f < F_PROBES)
        snprintf(out, 16, "err:%s", class_names[f - F_ERR_C]);
    else if (f == F_PROBES)
        snprintf(out, 16, "probes");
    else if (f == F_LAT_SUM_US)
        snprintf(out, 16, "lat_sum_us");
    else if (f < F_B0 + MX_NB - 1)
        snprintf(out, 16, "b:%d", bucket_le_ms[f - F_B0]);
    else
        snprintf(out, 16, "b:inf");
}

/* ------------------------------------------------------------ recording */

/* Health probes are the ROUTE_NO_LOG routes other than the static files'
 * catch-all (which is ROUTE_NO_LOG too, but is user traffic). */
static bool is_probe(const struct route *rt)
{
    return (rt->flags & ROUTE_NO_LOG) && strcmp(rt->pattern, "/*") != 0;
}

static enum mx_class class_of(const struct route *rt)
{
    if (!rt)
        return MC_API;             /* 404 / 405 / refused before routing */
    if (rt->flags & ROUTE_ADMIN)
        return MC_ADMIN;
    if (rt->flags & ROUTE_STREAM)
        return MC_STREAM;
    if (rt->flags & ROUTE_NO_LOG)
        return MC_STATIC;
    return MC_API;
}

static int bucket_of(int64_t dur_us)
{
    for (int i = 0; i < MX_NB - 1; i++)
        if (dur_us <= (int64_t)bucket_le_ms[i] * 1000)
            return i;
    return MX_NB - 1;
}

void metrics_record(struct gw *gw, struct req *r, int64_t dur_us)
{
    struct metrics *m = gw->metrics;
    if (!m || !r->method || r->status == 0)
        return;
    if (my_stripe < 0)
        my_stripe = (int)(atomic_fetch_add_explicit(&m->next_stripe, 1, memory_order_relaxed) % MX_STRIPES);
    struct stripe *s = &m->stripes[my_stripe];
    const struct route *rt = r->match.route;
    if (rt && is_probe(rt)) {
        atomic_fetch_add_explicit(&s->v[F_PROBES], 1, memory_order_relaxed);
        return;
    }
    enum mx_class c = class_of(rt);
    atomic_fetch_add_explicit(&s->v[F_REQ_C + c], 1, memory_order_relaxed);
    if (r->status >= 500)
        atomic_fetch_add_explicit(&s->v[F_ERR_C + c], 1, memory_order_relaxed);
    if (c == MC_STREAM && r->status == MHD_HTTP_OK)
        return;                    /* a stream's duration is its lifetime */
    if (dur_us < 0)
        dur_us = 0;
    atomic_fetch_add_explicit(&s->v[F_LAT_SUM_US], dur_us, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->v[F_B0 + bucket_of(dur_us)], 1, memory_order_relaxed);
    long long cur = atomic_load_explicit(&s->max_us, memory_order_relaxed);
    while (dur_us > cur &&
           !atomic_compare_exchange_weak_explicit(&s->max_us, &cur, dur_us, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

/* ------------------------------------------------------------ batches */

static bool slot_empty(const struct slot *s)
{
    for (int f = 0; f < MX_NF; f++)
        if (s->v[f])
            return false;
    return true;
}

/* Take every stripe's counts (each increment exactly once). */
static void harvest(struct metrics *m, struct slot *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < MX_STRIPES; i++) {
        struct stripe *s = &m->stripes[i];
        for (int f = F_REQ_C; f < MX_NF; f++)
            out->v[f] += atomic_exchange_explicit(&s->v[f], 0, memory_order_relaxed);
        long long mx = atomic_exchange_explicit(&s->max_us, 0, memory_order_relaxed);
        if (mx > out->max_us)
            out->max_us = mx;
    }
    for (int c = 0; c < MC_N; c++) {
        out->v[F_REQ] += out->v[F_REQ_C + c];
        out->v[F_ERR] += out->v[F_ERR_C + c];
    }
}

static void slot_add(struct slot *to, const struct slot *from)
{
    for (int f = 0; f < MX_NF; f++)
        to->v[f] += from->v[f];
    if (from->max_us > to->max_us)
        to->max_us = from->max_us;
}

static void batch_remove(struct batch *b, int i)
{
    b->s[i] = b->s[b->n - 1];
    b->n--;
}

/* Make room for one more slot: the oldest minute joins the totals-only slot. */
static void batch_fold(struct batch *b)
{
    while (b->n >= MX_SLOTS) {
        int old = -1, tot = -1;
        for (int i = 0; i < b->n; i++) {
            if (b->s[i].minute < 0)
                tot = i;
            else if (old < 0 || b->s[i].minute < b->s[old].minute)
                old = i;
        }
        if (tot < 0) {
            b->s[old].minute = -1;
            continue;
        }
        slot_add(&b->s[tot], &b->s[old]);
        batch_remove(b, old);
    }
}

static void batch_add(struct batch *b, long long minute, const struct slot *c)
{
    for (int i = 0; i < b->n; i++)
        if (b->s[i].minute == minute) {
            slot_add(&b->s[i], c);
            return;
        }
    batch_fold(b);
    struct slot *s = &b->s[b->n++];
    *s = *c;
    s->minute = minute;
}

static long long batch_requests(const struct batch *b)
{
    long long n = 0;
    for (int i = 0; i < b->n; i++)
        n += b->s[i].v[F_REQ] + b->s[i].v[F_PROBES];
    return n;
}

/* ------------------------------------------------------------ flushing */

static const char *arg_num(struct metrics *m, int i, long long v)
{
    snprintf(m->nums[i], MX_NUM_LEN, "%lld", v);
    return m->nums[i];
}

/* This gateway's SSE figures: connections, jobs with subscribers and the
 * first MX_SSE_JOBS_PER_GW of them as JSON (caller frees). */
static char *sse_snapshot(struct gw *gw, long long *ret_conns, long long *ret_jobs)
{
    struct json_object *st = hub_stats_json(gw->hub), *list = NULL, *v = NULL;
    struct json_object *out = json_object_new_array();
    *ret_conns = hub_stream_count(gw->hub);
    *ret_jobs = json_object_object_get_ex(st, "activeJobs", &v) ? json_object_get_int64(v) : 0;
    if (json_object_object_get_ex(st, "jobsWithSubscribers", &list) && json_object_is_type(list, json_type_array))
        for (size_t i = 0; i < json_object_array_length(list) && i < MX_SSE_JOBS_PER_GW; i++)
            json_object_array_add(out, json_object_get(json_object_array_get_idx(list, i)));
    char *s = strdup(jsonx_to_string(out));
    json_object_put(out);
    json_object_put(st);
    if (!s)
        abort();
    return s;
}

/* One metrics_flush.lua call: b's counts (b->n == 0: none) and the live
 * record (alive_ms 0: remove it).  0, or -errno (nothing is known to have
 * been added: send the same batch again). */
static int flush_send(struct metrics *m, const struct batch *b, long long alive_ms)
{
    long long conns, jobs;
    char *jobs_json = sse_snapshot(m->gw, &conns, &jobs);
    int n = 0, k = 0;
    const char **av = m->argv;

    av[n++] = QUEUE_KEY_PREFIX "metrics:total";
    av[n++] = QUEUE_KEY_PREFIX "metrics:gateways";
    av[n++] = m->gw->instance_id;
    av[n++] = m->epoch;
    av[n++] = arg_num(m, k++, b->n ? b->seq : 0);
    av[n++] = arg_num(m, k++, alive_ms);
    av[n++] = arg_num(m, k++, MX_BUCKET_TTL_S);
    av[n++] = arg_num(m, k++, MX_TOTAL_TTL_S);
    av[n++] = arg_num(m, k++, MX_SEQ_TTL_S);
    av[n++] = arg_num(m, k++, conns);
    av[n++] = arg_num(m, k++, jobs);
    av[n++] = jobs_json;
    av[n++] = arg_num(m, k++, MX_NF);
    for (int f = 0; f < MX_NF; f++)
        av[n++] = m->fields[f];
    for (int i = 0; i < b->n; i++) {
        av[n++] = arg_num(m, k++, b->s[i].minute);
        for (int f = 0; f < MX_NF; f++)
            av[n++] = arg_num(m, k++, b->s[i].v[f]);
        av[n++] = arg_num(m, k++, b->s[i].max_us);
    }
    redisReply *rep = redisx_eval(m->rx, &m->flush_s, 2, n - 2, av, NULL);
    int rc = 0;
    if (!rep) {
        rc = redisx_last_error(m->rx);
        if (rc >= 0)
            rc = -EIO;
    } else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
               rep->element[0]->type != REDIS_REPLY_INTEGER) {
        if (!m->outage)
            log_error("metrics flush: unexpected reply from Redis",
                      LOG_STR("error", rep->type == REDIS_REPLY_ERROR ? rep->str : "not an array"));
        rc = -EPROTO;
    } else if (rep->element[0]->integer == 0) {
        log_info("metrics flush: batch was already added (reply lost earlier); not added again",
                 LOG_INT("seq", b->seq));
    }
    freeReplyObject(rep);
    free(jobs_json);
    return rc;
}

/* Send pending (promoting collecting first when pending is empty).
 * leaving: the last call of this gateway removes its live record. */
static int flush_step(struct metrics *m, bool leaving)
{
    if (m->pending.n == 0 && m->collecting.n > 0) {
        m->pending = m->collecting;
        m->pending.seq = ++m->seq;
        m->collecting.n = 0;
    }
    bool last = leaving && m->collecting.n == 0;
    long long alive_ms = last ? 0 : MX_ALIVE_FLUSHES * m->gw->cfg->metrics_flush_ms + 1000;
    int rc = flush_send(m, &m->pending, alive_ms);
    if (rc == 0) {
        if (m->outage)
            log_info("metrics flushed to Redis again", LOG_INT("requests", batch_requests(&m->pending)));
        m->outage = false;
        m->pending.n = 0;
    } else if (!m->outage) {
        m->outage = true;
        log_warn("metrics flush failed: counts kept in memory and sent again", LOG_INT("rc", rc),
                 LOG_INT("requests", batch_requests(&m->pending) + batch_requests(&m->collecting)));
    }
    return rc;
}

static void collect(struct metrics *m)
{
    struct slot h;
    harvest(m, &h);
    if (!slot_empty(&h))
        batch_add(&m->collecting, clock_now_ms() / 60000, &h);
}

static void *flusher_main(void *arg)
{
    struct metrics *m = arg;
    int64_t period = m->gw->cfg->metrics_flush_ms;
    int64_t next = clock_mono_ms();
    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        int64_t now = clock_mono_ms();
        if (now < next) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t ns = (int64_t)ts.tv_nsec + (next - now) * 1000000;
            ts.tv_sec += ns / 1000000000;
            ts.tv_nsec = ns % 1000000000;
            pthread_cond_timedwait(&m->cv, &m->lock, &ts);
            continue;
        }
        pthread_mutex_unlock(&m->lock);
        collect(m);
        flush_step(m, false);
        next += period;
        if (next <= clock_mono_ms())
            next = clock_mono_ms() + period;
        pthread_mutex_lock(&m->lock);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* The stop's last flush: everything left, and the live record removed. */
static void final_flush(struct metrics *m)
{
    collect(m);
    for (int i = 0; i < 3; i++) {
        if (flush_step(m, true) != 0)
            break;
        if (m->pending.n == 0 && m->collecting.n == 0)
            return;
    }
    long long lost = batch_requests(&m->pending) + batch_requests(&m->collecting);
    if (lost)
        log_warn("metrics: counts not flushed at shutdown (Redis unreachable)", LOG_INT("requests", lost));
}

struct metrics *metrics_new(struct gw *gw)
{
    size_t sz = (sizeof(struct metrics) + 63) & ~(size_t)63;
    struct metrics *m = aligned_alloc(64, sz);
    if (!m)
        return NULL;
    memset(m, 0, sz);
    m->gw = gw;
    for (int f = 0; f < MX_NF; f++)
        field_name(f, m->fields[f]);
    redisx_script_init(&m->flush_s, "metrics_flush", lua_metrics_flush);
    redisx_script_init(&m->read_s, "metrics_read", lua_metrics_read);
    uint8_t rnd[8];
    ids_random_bytes(rnd, sizeof(rnd));
    crypto_hex(rnd, sizeof(rnd), m->epoch);
    pthread_mutex_init(&m->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    gw->metrics = m;
    gw->on_request_done = metrics_record;
    return m;
}

int metrics_start(struct metrics *m)
{
    if (!m || m->started)
        return -EINVAL;
    m->rx = redisx_new(&m->gw->redis);
    if (!m->rx)
        return -ENOMEM;
    int rc = pthread_create(&m->thread, NULL, flusher_main, m);
    if (rc != 0) {
        redisx_free(m->rx);
        m->rx = NULL;
        return -rc;
    }
    m->started = true;
    return 0;
}

void metrics_stop(struct metrics *m)
{
    if (!m || !m->started)
        return;
    pthread_mutex_lock(&m->lock);
    m->stop = true;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    m->started = false;
    final_flush(m);
    redisx_free(m->rx);
    m->rx = NULL;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    metrics_stop(m);
    if (m->gw && m->gw->metrics == m) {
        m->gw->on_request_done = NULL;
        m->gw->metrics = NULL;
    }
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* ------------------------------------------------------------ snapshot */

struct snap {
    int64_t now_ms;              /* Redis time */
    long long tot[MX_NF], win[MX_NF], win_max_us;
    int64_t window_ms;
    int64_t front_created_ms;    /* job at the front of waiting; 0 unknown */
    long long sse_conns, sse_jobs, gateways;
    struct json_object *sse_list;   /* owned: [{"jobId","subscribers"}] */
    struct queue_stats qs;
    struct gates_breaker_cfg cb;
    struct gates_breaker br[GATES_PROVIDERS];
    struct gates_budget bud;
    double error_rate, avg_ms, p95_ms, rpm;
    int64_t oldest_wait_ms;
    bool alert[A_N];
    int active;
};

static int field_index(const struct metrics *m, const char *name)
{
    for (int f = 0; f < MX_NF; f++)
        if (strcmp(m->fields[f], name) == 0)
            return f;
    return -1;
}

static int reply_i64(const redisReply *e, long long *ret)
{
    if (e->type == REDIS_REPLY_INTEGER) {
        *ret = e->integer;
        return 0;
    }
    if (e->type == REDIS_REPLY_STRING) {
        char *end;
        errno = 0;
        long long v = strtoll(e->str, &end, 10);
        if (errno || end == e->str || *end)
            return -EPROTO;
        *ret = v;
        return 0;
    }
    return -EPROTO;
}

/* {field, value, ...} into v[] (unknown fields ignored; max_us to *max). */
static int read_fields(const struct metrics *m, const redisReply *a, long long *v, long long *max)
{
    if (a->type != REDIS_REPLY_ARRAY || a->elements % 2)
        return -EPROTO;
    for (size_t i = 0; i + 1 < a->elements; i += 2) {
        if (a->element[i]->type != REDIS_REPLY_STRING)
            return -EPROTO;
        long long x;
        if (reply_i64(a->element[i + 1], &x) != 0)
            continue;
        if (max && strcmp(a->element[i]->str, "max_us") == 0) {
            *max = x;
            continue;
        }
        int f = field_index(m, a->element[i]->str);
        if (f >= 0)
            v[f] = x;
    }
    return 0;
}

/* Add one gateway's jobs list (JSON text) into the jobId -> subscribers map. */
static void sse_merge(struct json_object *map, struct json_object *list)
{
    if (!list || !json_object_is_type(list, json_type_array))
        return;
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        struct json_object *e = json_object_array_get_idx(list, i);
        const char *id;
        int64_t n;
        if (!json_object_is_type(e, json_type_object) || jsonx_get_str(e, "jobId", &id) != 0 ||
            jsonx_get_int(e, "subscribers", &n) != 0)
            continue;
        struct json_object *cur;
        if (json_object_object_get_ex(map, id, &cur))
            json_object_set_int64(cur, json_object_get_int64(cur) + n);
        else
            json_object_object_add(map, id, json_object_new_int64(n));
    }
}

static int by_subscribers(const void *a, const void *b)
{
    struct json_object *const *x = a, *const *y = b;
    struct json_object *vx, *vy;
    json_object_object_get_ex(*x, "subscribers", &vx);
    json_object_object_get_ex(*y, "subscribers", &vy);
    int64_t nx = json_object_get_int64(vx), ny = json_object_get_int64(vy);
    return nx < ny ? 1 : nx > ny ? -1 : 0;
}

/* The gateways' records from the read script, with this one's live figures. */
static int read_sse(struct gw *gw, const redisReply *a, struct snap *s)
{
    if (a->type != REDIS_REPLY_ARRAY || a->elements % 4)
        return -EPROTO;
    struct json_object *map = json_object_new_object();
    for (size_t i = 0; i + 3 < a->elements; i += 4) {
        const redisReply *id = a->element[i], *js = a->element[i + 3];
        long long conns = 0, jobs = 0;
        if (id->type != REDIS_REPLY_STRING || strcmp(id->str, gw->instance_id) == 0)
            continue;
        reply_i64(a->element[i + 1], &conns);
        reply_i64(a->element[i + 2], &jobs);
        s->sse_conns += conns;
        s->sse_jobs += jobs;
        s->gateways++;
        struct json_object *list = NULL;
        if (js->type == REDIS_REPLY_STRING && js->len <= MX_SSE_JOBS_JSON_MAX &&
            jsonx_parse(js->str, js->len, 4, &list, NULL) == 0) {
            sse_merge(map, list);
            json_object_put(list);
        }
    }
    struct json_object *mine = hub_stats_json(gw->hub), *v;
    s->sse_conns += hub_stream_count(gw->hub);
    if (json_object_object_get_ex(mine, "activeJobs", &v))
        s->sse_jobs += json_object_get_int64(v);
    if (json_object_object_get_ex(mine, "jobsWithSubscribers", &v))
        sse_merge(map, v);
    json_object_put(mine);
    s->gateways++;

    struct json_object *arr = json_object_new_array();
    json_object_object_foreach(map, key, val) {
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "jobId", json_object_new_string(key));
        json_object_object_add(e, "subscribers", json_object_new_int64(json_object_get_int64(val)));
        json_object_array_add(arr, e);
    }
    json_object_put(map);
    json_object_array_sort(arr, by_subscribers);
    if (json_object_array_length(arr) > MX_SSE_JOBS_MAX)
        json_object_array_del_idx(arr, MX_SSE_JOBS_MAX, json_object_array_length(arr) - MX_SSE_JOBS_MAX);
    s->sse_list = arr;
    return 0;
}

static int read_metrics(struct gw *gw, struct redisx *rx, struct snap *s)
{
    struct metrics *m = gw->metrics;
    char win[8], alive[24], gmax[8];
    snprintf(win, sizeof(win), "%d", MX_WINDOW_MIN);
    snprintf(alive, sizeof(alive), "%lld", MX_ALIVE_FLUSHES * gw->cfg->metrics_flush_ms + 1000);
    snprintf(gmax, sizeof(gmax), "%d", MX_GATEWAYS_MAX);
    const char *argv[] = { QUEUE_KEY_PREFIX "metrics:total", QUEUE_KEY_PREFIX "metrics:gateways",
                           QUEUE_KEY_PREFIX "waiting", win, alive, gmax };
    redisReply *rep = redisx_eval(rx, &m->read_s, 3, 3, argv, NULL);
    if (!rep)
        return redisx_last_error(rx) < 0 ? redisx_last_error(rx) : -EIO;
    int rc = -EPROTO;
    long long now = 0, front = 0;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 5 || reply_i64(rep->element[0], &now) != 0 ||
        reply_i64(rep->element[4], &front) != 0)
        goto out;
    if (read_fields(m, rep->element[1], s->tot, NULL) != 0 ||
        read_fields(m, rep->element[2], s->win, &s->win_max_us) != 0 ||
        read_sse(gw, rep->element[3], s) != 0)
        goto out;
    s->now_ms = now;
    s->front_created_ms = front;
    rc = 0;
out:
    if (rc == -EPROTO)
        log_error("metrics read: unexpected reply from Redis",
                  LOG_STR("error", rep->type == REDIS_REPLY_ERROR ? rep->str : "bad shape"));
    freeReplyObject(rep);
    return rc;
}

/* The q-quantile (ms) of the histogram b (interpolated inside a bucket; the
 * +Inf bucket ends at the largest latency seen). */
static double quantile_ms(const long long *b, long long max_us, double q)
{
    long long n = 0;
    for (int i = 0; i < MX_NB; i++)
        n += b[i];
    if (n <= 0)
        return 0;
    double rank = q * (double)n, cum = 0, max_ms = (double)max_us / 1000.0;
    for (int i = 0; i < MX_NB; i++) {
        if (b[i] > 0 && cum + (double)b[i] >= rank) {
            double lo = i ? bucket_le_ms[i - 1] : 0;
            double hi = i < MX_NB - 1 ? bucket_le_ms[i] : (max_ms > lo ? max_ms : lo);
            if (max_ms > lo && max_ms < hi)
                hi = max_ms;
            return lo + (hi - lo) * (rank - cum) / (double)b[i];
        }
        cum += (double)b[i];
    }
    return max_ms;
}

static void compute(const struct config *c, struct snap *s)
{
    long long req = s->win[F_REQ], err = s->win[F_ERR], n = 0;
    for (int i = 0; i < MX_NB; i++)
        n += s->win[F_B0 + i];
    s->window_ms = (MX_WINDOW_MIN - 1) * 60000LL + s->now_ms % 60000;
    s->error_rate = req > 0 ? 100.0 * (double)err / (double)req : 0;
    s->avg_ms = n > 0 ? (double)s->win[F_LAT_SUM_US] / (double)n / 1000.0 : 0;
    s->p95_ms = quantile_ms(&s->win[F_B0], s->win_max_us, 0.95);
    s->rpm = s->window_ms > 0 ? (double)req * 60000.0 / (double)s->window_ms : 0;

    const struct queue_stats *q = &s->qs;
    int64_t stall_ms = c->worker_stall_seconds * 1000;
    s->oldest_wait_ms = q->waiting > 0 && s->front_created_ms > 0 && q->now_ms > s->front_created_ms
                        ? q->now_ms - s->front_created_ms : 0;
    bool finished_lately = q->last_finish_ms > 0 && q->now_ms - q->last_finish_ms <= stall_ms;
    bool waited_long = s->front_created_ms > 0 ? s->oldest_wait_ms > stall_ms
                                               : q->last_finish_ms > 0;  /* age unknown: finishes decide */
    bool breaker = false;
    for (int p = 0; p < GATES_PROVIDERS; p++)
        if (strcmp(s->br[p].state, "CLOSED") != 0)
            breaker = true;
    bool judged = req > 0 && req >= c->alert_error_min_requests;

    s->alert[A_QUEUE_HIGH] = q->waiting > c->alert_queue_high;
    s->alert[A_QUEUE_CRITICAL] = q->waiting > c->alert_queue_critical;
    s->alert[A_FAIL_HIGH] = judged && s->error_rate > (double)c->alert_error_rate_high;
    s->alert[A_FAIL_CRITICAL] = judged && s->error_rate > (double)c->alert_error_rate_critical;
    s->alert[A_BREAKER_OPEN] = breaker;
    s->alert[A_WORKER_STALLED] = q->waiting > 0 && waited_long && !finished_lately;
    s->alert[A_NO_WORKERS] = q->workers_alive == 0;
    s->alert[A_KILL_SWITCH] = s->bud.kill_switch;
    s->alert[A_BUDGET_NEAR] = s->bud.limit > 0 && s->bud.spent * 100 >= c->budget_alert_pct * s->bud.limit;
    s->active = 0;
    for (int a = 0; a < A_N; a++)
        s->active += s->alert[a];
}

/* 0, or -errno (Redis unreachable or answering nonsense). */
static int snapshot(struct gw *gw, struct snap *s)
{
    const struct config *c = gw->cfg;
    struct redisx *rx = redisx_thread();
    memset(s, 0, sizeof(*s));
    int rc = read_metrics(gw, rx, s);
    if (rc == 0)
        rc = queue_stats(jobs_queue(), &s->qs);
    gates_breaker_cfg_from_config(c, &s->cb);
    for (int p = 0; p < GATES_PROVIDERS && rc == 0; p++)
        rc = gates_breaker_status(rx, (enum gates_provider)p, &s->cb, c->budget_monthly_limit, &s->br[p]);
    if (rc == 0)
        rc = gates_budget_status(rx, c->budget_monthly_limit, c->cb_open_ms, &s->bud);
    if (rc != 0)
        return rc;
    compute(c, s);
    return 0;
}

static void snap_done(struct snap *s)
{
    json_object_put(s->sse_list);
    s->sse_list = NULL;
}

/* ------------------------------------------------------------ GET /api/metrics/alerts */

/* A number with at most `decimals` decimals, printed that way. */
static struct json_object *dec_json(double v, int decimals)
{
    char buf[48];
    snprintf(buf, sizeof(buf), "%.*f", decimals, v);
    char *dot = strchr(buf, '.');
    if (dot) {
        char *e = buf + strlen(buf);
        while (e > dot + 1 && e[-1] == '0')
            *--e = 0;
        if (e == dot + 1)
            *dot = 0;
    }
    return json_object_new_double_s(strtod(buf, NULL), buf);
}

static struct json_object *queue_json(const struct snap *s)
{
    const struct queue_stats *q = &s->qs;
    struct json_object *o = queue_stats_json(q);
    json_object_object_add(o, "oldestWaitingSeconds", json_object_new_int64(s->oldest_wait_ms / 1000));
    char iso[CLOCK_ISO_LEN];
    if (q->last_finish_ms > 0)
        clock_iso8601(q->last_finish_ms, iso);
    json_object_object_add(o, "lastFinishedAt", q->last_finish_ms > 0 ? json_object_new_string(iso) : NULL);
    return o;
}

static struct json_object *performance_json(const struct snap *s)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "errorRate", dec_json(s->error_rate, 2));
    json_object_object_add(o, "avgResponseTime", dec_json(s->avg_ms, 1));
    json_object_object_add(o, "p95ResponseTime", dec_json(s->p95_ms, 1));
    json_object_object_add(o, "requestsPerMinute", dec_json(s->rpm, 1));
    json_object_object_add(o, "requests", json_object_new_int64(s->win[F_REQ]));
    json_object_object_add(o, "serverErrors", json_object_new_int64(s->win[F_ERR]));
    json_object_object_add(o, "windowSeconds", json_object_new_int64(s->window_ms / 1000));
    json_object_object_add(o, "healthProbes", json_object_new_int64(s->win[F_PROBES]));
    return o;
}

static struct json_object *sse_json(struct snap *s)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "totalConnections", json_object_new_int64(s->sse_conns));
    json_object_object_add(o, "activeJobs", json_object_new_int64(s->sse_jobs));
    json_object_object_add(o, "gateways", json_object_new_int64(s->gateways));
    json_object_object_add(o, "jobsWithSubscribers", s->sse_list);
    s->sse_list = NULL;
    return o;
}

static void add_timestamp(struct json_object *o)
{
    char iso[CLOCK_ISO_LEN];
    clock_iso8601(clock_now_ms(), iso);
    json_object_object_add(o, "timestamp", json_object_new_string(iso));
}

static int h_alerts(struct req *r)
{
    struct gw *gw = r->gw;
    const struct config *c = gw->cfg;
    struct snap s;
    if (snapshot(gw, &s) != 0) {
        snap_done(&s);
        return reply_redis_down(r);
    }
    struct json_object *o = json_object_new_object(), *mo = json_object_new_object();
    struct json_object *br = json_object_new_object(), *wk = json_object_new_object();
    struct json_object *al = json_object_new_object();
    for (int p = 0; p < GATES_PROVIDERS; p++)
        json_object_object_add(br, gates_provider_name((enum gates_provider)p),
                               resilience_breaker_json((enum gates_provider)p, &s.br[p], &s.cb));
    json_object_object_add(wk, "alive", json_object_new_int64(s.qs.workers_alive));
    json_object_object_add(wk, "busy", json_object_new_int64(s.qs.workers_busy));
    json_object_object_add(mo, "queue", queue_json(&s));
    json_object_object_add(mo, "performance", performance_json(&s));
    json_object_object_add(mo, "circuitBreakers", br);
    json_object_object_add(mo, "sse", sse_json(&s));
    json_object_object_add(mo, "workers", wk);
    json_object_object_add(mo, "budget", resilience_budget_json(c, &s.bud, s.qs.waiting + s.qs.delayed));
    for (int a = 0; a < A_N; a++)
        json_object_object_add(al, alert_names[a], json_object_new_boolean(s.alert[a]));
    json_object_object_add(o, "success", json_object_new_boolean(1));
    json_object_object_add(o, "metrics", mo);
    json_object_object_add(o, "alerts", al);
    json_object_object_add(o, "alertsActive", json_object_new_int(s.active));
    json_object_object_add(o, "instance", json_object_new_string(gw->instance_id));
    add_timestamp(o);
    snap_done(&s);
    return reply_json(r, MHD_HTTP_OK, o);
}

/* ------------------------------------------------------------ GET /metrics */

#define PROM_BODY_MAX (64 * 1024)   /* the exposition is a fixed set of series */

struct prom {
    char *buf;
    size_t len, cap;
    bool overflow;
};

__attribute__((format(printf, 2, 3)))
static void pf(struct prom *p, const char *fmt, ...)
{
    if (p->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= p->cap - p->len) {
        p->overflow = true;
        return;
    }
    p->len += (size_t)n;
}

static void head(struct prom *p, const char *name, const char *type, const char *help)
{
    pf(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A float in the exposition's syntax, up to 6 decimals, no trailing zeros. */
static const char *fnum(char out[48], double v)
{
    snprintf(out, 48, "%.6f", v);
    char *dot = strchr(out, '.');
    if (dot) {
        char *e = out + strlen(out);
        while (e > dot + 1 && e[-1] == '0')
            *--e = 0;
        if (e == dot + 1)
            *dot = 0;
    }
    return out;
}

static void prom_body(struct prom *p, const struct snap *s)
{
    char f[48];
    head(p, "flashgate_http_requests_total", "counter",
         "HTTP requests answered by all gateway instances (health probes excluded), by route class.");
    for (int k = 0; k < MC_N; k++)
        pf(p, "flashgate_http_requests_total{class=\"%s\"} %lld\n", class_names[k], s->tot[F_REQ_C + k]);
    head(p, "flashgate_http_server_errors_total", "counter",
         "HTTP responses with a 5xx status from all gateway instances, by route class.");
    for (int k = 0; k < MC_N; k++)
        pf(p, "flashgate_http_server_errors_total{class=\"%s\"} %lld\n", class_names[k], s->tot[F_ERR_C + k]);
    head(p, "flashgate_health_probes_total", "counter", "Health probes (/health, /ready, /api/health) answered.");
    pf(p, "flashgate_health_probes_total %lld\n", s->tot[F_PROBES]);

    head(p, "flashgate_http_request_duration_seconds", "histogram",
         "Response time of HTTP requests across the fleet (open SSE streams excluded).");
    long long cum = 0;
    for (int i = 0; i < MX_NB; i++) {
        cum += s->tot[F_B0 + i];
        if (i < MX_NB - 1)
            pf(p, "flashgate_http_request_duration_seconds_bucket{le=\"%s\"} %lld\n",
               fnum(f, bucket_le_ms[i] / 1000.0), cum);
        else
            pf(p, "flashgate_http_request_duration_seconds_bucket{le=\"+Inf\"} %lld\n", cum);
    }
    pf(p, "flashgate_http_request_duration_seconds_sum %lld.%06lld\n", s->tot[F_LAT_SUM_US] / 1000000,
       s->tot[F_LAT_SUM_US] % 1000000);
    pf(p, "flashgate_http_request_duration_seconds_count %lld\n", cum);

    head(p, "flashgate_http_window_requests", "gauge", "HTTP requests in the alerts' window (the last 4 to 5 minutes).");
    pf(p, "flashgate_http_window_requests %lld\n", s->win[F_REQ]);
    head(p, "flashgate_http_window_seconds", "gauge", "Length of the alerts' window.");
    pf(p, "flashgate_http_window_seconds %s\n", fnum(f, (double)s->window_ms / 1000.0));
    head(p, "flashgate_http_error_rate_percent", "gauge", "Share of 5xx responses in the window, percent.");
    pf(p, "flashgate_http_error_rate_percent %s\n", fnum(f, s->error_rate));
    head(p, "flashgate_http_requests_per_minute", "gauge", "Average requests per minute over the window.");
    pf(p, "flashgate_http_requests_per_minute %s\n", fnum(f, s->rpm));
    head(p, "flashgate_http_response_time_avg_seconds", "gauge", "Mean response time over the window.");
    pf(p, "flashgate_http_response_time_avg_seconds %s\n", fnum(f, s->avg_ms / 1000.0));
    head(p, "flashgate_http_response_time_p95_seconds", "gauge", "95th percentile response time over the window.");
    pf(p, "flashgate_http_response_time_p95_seconds %s\n", fnum(f, s->p95_ms / 1000.0));

    const struct queue_stats *q = &s->qs;
    head(p, "flashgate_jobs_completed_total", "counter", "Jobs completed since the queue's counters were created.");
    pf(p, "flashgate_jobs_completed_total %lld\n", q->completed_total);
    head(p, "flashgate_jobs_failed_total", "counter", "Jobs failed for good since the queue's counters were created.");
    pf(p, "flashgate_jobs_failed_total %lld\n", q->failed_total);
    head(p, "flashgate_queue_jobs", "gauge", "Jobs in the queue by state.");
    pf(p, "flashgate_queue_jobs{state=\"waiting\"} %lld\n", q->waiting);
    pf(p, "flashgate_queue_jobs{state=\"active\"} %lld\n", q->active);
    pf(p, "flashgate_queue_jobs{state=\"delayed\"} %lld\n", q->delayed);
    head(p, "flashgate_queue_oldest_waiting_seconds", "gauge", "Age of the job at the front of the queue (0: none).");
    pf(p, "flashgate_queue_oldest_waiting_seconds %s\n", fnum(f, (double)s->oldest_wait_ms / 1000.0));
    head(p, "flashgate_workers_alive", "gauge", "Workers that sent a heartbeat recently.");
    pf(p, "flashgate_workers_alive %lld\n", q->workers_alive);
    head(p, "flashgate_workers_busy", "gauge", "Live workers with jobs in flight.");
    pf(p, "flashgate_workers_busy %lld\n", q->workers_busy);

    head(p, "flashgate_sse_connections", "gauge", "Open SSE streams on all live gateway instances.");
    pf(p, "flashgate_sse_connections %lld\n", s->sse_conns);
    head(p, "flashgate_sse_jobs", "gauge", "Jobs with SSE subscribers (summed over gateway instances).");
    pf(p, "flashgate_sse_jobs %lld\n", s->sse_jobs);
    head(p, "flashgate_gateways", "gauge", "Live gateway instances.");
    pf(p, "flashgate_gateways %lld\n", s->gateways);

    head(p, "flashgate_circuit_breaker_state", "gauge", "Provider circuit breaker: 0 CLOSED, 1 HALF_OPEN, 2 OPEN.");
    for (int i = 0; i < GATES_PROVIDERS; i++) {
        const char *st = s->br[i].state;
        int v = strcmp(st, "OPEN") == 0 ? 2 : strcmp(st, "HALF_OPEN") == 0 ? 1 : 0;
        pf(p, "flashgate_circuit_breaker_state{provider=\"%s\"} %d\n", gates_provider_name((enum gates_provider)i), v);
    }
    head(p, "flashgate_budget_spent_usd", "gauge", "Provider spend this month (UTC), US dollars.");
    pf(p, "flashgate_budget_spent_usd %s\n", fnum(f, (double)s->bud.spent / 1e6));
    head(p, "flashgate_budget_limit_usd", "gauge", "Monthly budget limit in force, US dollars.");
    pf(p, "flashgate_budget_limit_usd %s\n", fnum(f, (double)s->bud.limit / 1e6));
    head(p, "flashgate_budget_kill_switch", "gauge", "1 while the budget kill-switch is on.");
    pf(p, "flashgate_budget_kill_switch %d\n", s->bud.kill_switch ? 1 : 0);

    head(p, "flashgate_alert", "gauge", "1 while the alert is raised (the alerts of /api/metrics/alerts).");
    for (int a = 0; a < A_N; a++)
        pf(p, "flashgate_alert{name=\"%s\"} %d\n", alert_names[a], s->alert[a] ? 1 : 0);
    head(p, "flashgate_alerts_active", "gauge", "Alerts raised.");
    pf(p, "flashgate_alerts_active %d\n", s->active);
}

static int h_prometheus(struct req *r)
{
    struct snap s;
    if (snapshot(r->gw, &s) != 0) {
        snap_done(&s);
        return reply_redis_down(r);
    }
    struct prom p = { .buf = malloc(PROM_BODY_MAX), .cap = PROM_BODY_MAX };
    if (!p.buf)
        abort();
    prom_body(&p, &s);
    snap_done(&s);
    if (p.overflow) {
        free(p.buf);
        log_error("metrics exposition larger than PROM_BODY_MAX", LOG_STR("request_id", r->request_id));
        return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "Metrics exposition too large");
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(p.len, p.buf, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(p.buf);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return reply_response(r, MHD_HTTP_OK, resp);
}

void routes_metrics(struct router *rt)
{
    router_add(rt, "GET", "/api/metrics/alerts", h_alerts, ROUTE_ADMIN);
    router_add(rt, "GET", "/metrics", h_prometheus, ROUTE_ADMIN);
}
