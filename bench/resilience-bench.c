/*
 * resilience-bench: what the fleet-wide gates add to one provider call.
 *
 * Each thread alternates two kinds of call against the same provider (the
 * fake provider answering at once), over its own keep-alive connection:
 *   off  POST /v1/chat/completions
 *   on   gates_acquire (throttle + breaker + budget, one script) -> POST ->
 *        gates_settle (one script)
 * and times both end to end, plus acquire+settle alone inside the "on"
 * calls.  Alternating in one run puts both kinds under the same machine
 * load.  Round trips are counted by Redis itself: INFO commandstats before
 * and after the measured calls.
 *
 *   resilience-bench --redis redis://127.0.0.1:P --provider http://127.0.0.1:Q
 *                    [--calls N] [--threads T] [--warmup W]
 *
 * Limits are set high enough never to refuse (the cost measured is the
 * admitted path, the common one); TPM is on, so the sliding window is part
 * of every acquire.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>

#include "common/clock.h"
#include "common/gates.h"
#include "common/redisx.h"

#define BODY "{\"model\":\"gpt-4o-mini\",\"max_tokens\":256,\"response_format\":{\"type\":\"json_object\"}," \
             "\"messages\":[{\"role\":\"user\",\"content\":\"Return json flashcards about Photosynthesis\"}]}"

struct opts {
    struct redis_target redis;
    char url[512];
    int calls, threads, warmup;
};

struct worker {
    pthread_t th;
    const struct opts *o;
    long long *off_us, *on_us, *added_us;   /* calls entries each */
    int errors;
};

static pthread_barrier_t bench_barrier;  /* warmup done / go: shared with main */

static const struct gates_call_cfg limits = {
    .rpm = 10000000, .tpm = 1000000000, .max_concurrent = 100000, .lease_ms = 60000,
    .monthly_limit = 1000000000000000LL,
    .cb = { .threshold = 5, .rate_pct = 50, .window_calls = 20, .min_calls = 10, .open_ms = 30000, .probes = 3 },
};

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

static int post(CURL *h)
{
    long status = 0;
    if (curl_easy_perform(h) != CURLE_OK)
        return -EIO;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    return status == 200 ? 0 : -EPROTO;
}

/* One gated call; *added gets the acquire+settle time. */
static int gated(struct redisx *rx, CURL *h, long long *added)
{
    struct gates_ticket t;
    struct gates_acquire_result ar;
    int64_t t0 = clock_mono_us();
    int rc = gates_acquire(rx, GATES_OPENAI, &limits, 600, 100, &t, &ar);
    int64_t t1 = clock_mono_us();
    if (rc < 0 || !ar.admitted)
        return rc < 0 ? rc : -EAGAIN;
    rc = post(h);
    int64_t t2 = clock_mono_us();
    struct gates_settle_args sa = { .result = rc == 0 ? GATES_RESULT_OK : GATES_RESULT_FAULT, .tokens = 300,
                                    .cost = 50 };
    int src = gates_settle(rx, &limits, &t, &sa, NULL);
    int64_t t3 = clock_mono_us();
    *added = (t1 - t0) + (t3 - t2);
    return rc < 0 ? rc : src;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    struct redisx *rx = redisx_new(&w->o->redis);
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Authorization: Bearer sk-bench");
    curl_easy_setopt(h, CURLOPT_URL, w->o->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, BODY);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    long long scratch;
    for (int i = 0; i < w->o->warmup; i++)          /* connections, script cache, TCP windows */
        if (post(h) != 0 || gated(rx, h, &scratch) != 0)
            w->errors++;
    /* the main thread snapshots Redis's counters between warmup and measurement */
    pthread_barrier_wait(&bench_barrier);
    pthread_barrier_wait(&bench_barrier);
    for (int i = 0; i < w->o->calls; i++) {
        int64_t t0 = clock_mono_us();
        if (post(h) != 0)
            w->errors++;
        int64_t t1 = clock_mono_us();
        if (gated(rx, h, &w->added_us[i]) != 0)
            w->errors++;
        int64_t t2 = clock_mono_us();
        w->off_us[i] = t1 - t0;
        w->on_us[i] = t2 - t1;
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    redisx_free(rx);
    return NULL;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void report(const char *what, long long *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_ll);
    long double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    printf("  %-22s %9lld %9lld %9lld %9.1Lf\n", what, v[n / 2], v[(size_t)((double)n * 0.99)], v[n - 1],
           sum / (long double)n);
}

/* calls (and total server-side usec in *usec) of a command in INFO
 * commandstats; 0 if absent. */
static long long cmdstat(redisContext *c, const char *cmd, long long *usec)
{
    redisReply *r = redisCommand(c, "INFO commandstats");
    long long n = 0;
    *usec = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
        char key[64];
        snprintf(key, sizeof(key), "cmdstat_%s:calls=", cmd);
        const char *p = strstr(r->str, key);
        if (p) {
            n = strtoll(p + strlen(key), NULL, 10);
            const char *u = strstr(p, ",usec=");
            if (u)
                *usec = strtoll(u + 6, NULL, 10);
        }
    }
    freeReplyObject(r);
    return n;
}

static long long total_commands(redisContext *c)
{
    redisReply *r = redisCommand(c, "INFO stats");
    long long n = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, "total_commands_processed:");
        if (p)
            n = strtoll(p + strlen("total_commands_processed:"), NULL, 10);
    }
    freeReplyObject(r);
    return n;
}

int main(int argc, char **argv)
{
    struct opts o = { .calls = 20000, .threads = 1, .warmup = 500 };
    const char *redis_url = NULL, *provider = NULL;
    static const struct option lo[] = {
        { "redis", required_argument, NULL, 'r' }, { "provider", required_argument, NULL, 'p' },
        { "calls", required_argument, NULL, 'n' }, { "threads", required_argument, NULL, 't' },
        { "warmup", required_argument, NULL, 'w' }, { NULL, 0, NULL, 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "r:p:n:t:w:", lo, NULL)) != -1) {
        switch (ch) {
        case 'r': redis_url = optarg; break;
        case 'p': provider = optarg; break;
        case 'n': o.calls = atoi(optarg); break;
        case 't': o.threads = atoi(optarg); break;
        case 'w': o.warmup = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: resilience-bench --redis URL --provider URL [--calls N] [--threads T] [--warmup W]\n");
            return 2;
        }
    }
    if (!redis_url || !provider || o.calls < 1 || o.threads < 1 || o.threads > 256 || o.warmup < 0 ||
        redisx_parse_url(redis_url, &o.redis) != 0) {
        fprintf(stderr, "resilience-bench: need --redis redis://host:port and --provider http://host:port\n");
        return 2;
    }
    o.redis.connect_timeout_ms = 2000;
    o.redis.command_timeout_ms = 5000;
    o.redis.retry_max_ms = 1000;
    snprintf(o.url, sizeof(o.url), "%s/v1/chat/completions", provider);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    redisContext *mon = redisConnect(o.redis.host, o.redis.port);
    if (!mon || mon->err) {
        fprintf(stderr, "resilience-bench: cannot connect to Redis\n");
        return 1;
    }

    struct worker *ws = calloc((size_t)o.threads, sizeof(*ws));
    size_t total = (size_t)o.calls * (size_t)o.threads;
    long long *off = calloc(total, sizeof(long long)), *on = calloc(total, sizeof(long long)),
              *added = calloc(total, sizeof(long long));
    if (!ws || !off || !on || !added)
        return 1;
    pthread_barrier_init(&bench_barrier, NULL, (unsigned)o.threads + 1);
    for (int i = 0; i < o.threads; i++) {
        ws[i].o = &o;
        ws[i].off_us = off + (size_t)i * (size_t)o.calls;
        ws[i].on_us = on + (size_t)i * (size_t)o.calls;
        ws[i].added_us = added + (size_t)i * (size_t)o.calls;
        pthread_create(&ws[i].th, NULL, run, &ws[i]);
    }
    pthread_barrier_wait(&bench_barrier);          /* warmup done */
    long long us0, us1, eus;
    long long evalsha0 = cmdstat(mon, "evalsha", &us0), eval0 = cmdstat(mon, "eval", &eus),
              tot0 = total_commands(mon);
    int64_t t0 = clock_mono_us();
    pthread_barrier_wait(&bench_barrier);          /* go */
    int errors = 0;
    for (int i = 0; i < o.threads; i++) {
        pthread_join(ws[i].th, NULL);
        errors += ws[i].errors;
    }
    int64_t t1 = clock_mono_us();
    long long evalsha = cmdstat(mon, "evalsha", &us1) - evalsha0, eval = cmdstat(mon, "eval", &eus) - eval0;
    /* the INFO calls of this monitor connection itself: 3 between the snapshots */
    long long tot = total_commands(mon) - tot0 - 3;

    printf("resilience overhead: %zu calls with the steps off and %zu with them on (alternating), %d thread%s,\n"
           "Redis and the fake provider on loopback, %.1f s\n",
           total, total, o.threads, o.threads == 1 ? "" : "s", (double)(t1 - t0) / 1e6);
    printf("  %-22s %9s %9s %9s %9s\n", "microseconds", "p50", "p99", "max", "mean");
    report("call, steps off", off, total);
    report("call, steps on", on, total);
    report("acquire + settle", added, total);
    printf("  Redis round trips per gated call: %.2f (EVALSHA %.2f, EVAL %.2f)\n",
           (double)(evalsha + eval) / (double)total, (double)evalsha / (double)total, (double)eval / (double)total);
    printf("  inside Redis per gated call: %.1f us of script time, %.1f commands (the scripts' redis.call included)\n",
           evalsha ? (double)(us1 - us0) / (double)total : 0.0, (double)tot / (double)total);
    printf("  errors: %d\n", errors);
    redisFree(mon);
    free(off);
    free(on);
    free(added);
    free(ws);
    curl_global_cleanup();
    return errors ? 1 : 0;
}
