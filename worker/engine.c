/*
 * engine.c: the worker's job loop.
 *
 * Threads (each owns its Redis connection and struct queue):
 *   claimer    claims up to the free slots (QUEUE_CONCURRENCY - in flight);
 *              with nothing to claim it blocks in queue_wait (BLPOP on the
 *              notify list, bounded by the next due delayed job), so an idle
 *              worker costs no CPU.  Each claimed job becomes a slot and is
 *              started: HTTP providers through httpc (libcurl multi, one
 *              thread for every call) once the fleet-wide gates admit the
 *              call (resilience.h: one Redis round trip); a gate that says
 *              "not yet" hands the job back to delayed (queue_release, no
 *              attempt spent); offline straight to the finishers.
 *   httpc      (worker/httpc.c) runs the calls; its completion callback
 *              classifies the reply (reply_classify) and queues the slot for
 *              a finisher.  Nothing there blocks.
 *   finishers  FINISHERS threads: settle the call's gates (slot, tokens,
 *              cost, breaker result: one round trip), run offline
 *              generation, then record the outcome with the slot's attempt
 *              token (complete / retry / fail).  A Redis outage while
 *              recording is retried until the lease would have expired;
 *              after that the job belongs to whoever claims it next, and
 *              our late report is refused (-ESTALE), never applied twice.
 *   renewer    every JOB_LEASE_MS/3 renews the leases of all slots in one
 *              batch, abandons the slots whose lease was lost (cancelling
 *              their call), and writes the worker heartbeat.
 *
 * Slot states (under slots_lock): RUNNING -> RECORDING -> freed, or
 * RUNNING -> RELEASED (drain) -> freed when its call returns.  Only the
 * thread that moved a slot out of RUNNING may record it, so a released job
 * is never also completed by us.
 */
#include "worker/engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/job.h"
#include "common/log.h"
#include "common/queue.h"
#include "common/redisx.h"
#include "worker/httpc.h"
#include "worker/provider.h"
#include "worker/resilience.h"
#include "worker/worker.h"

#define FINISHERS 2
#define RECORD_RETRY_MS 200

enum slot_state { SLOT_RUNNING = 0, SLOT_RECORDING, SLOT_RELEASED };

struct slot {
    struct slot *prev, *next;       /* engine.slots, under slots_lock */
    struct slot *qnext;             /* finisher queue link, under fin_lock */
    struct engine *e;
    struct queue_job job;
    struct job_params params;
    bool params_ok;
    enum slot_state state;          /* under slots_lock */
    bool lost;                      /* lease lost (renewer), under slots_lock */
    int64_t call_id;                /* httpc request id, 0 if none */
    int64_t started_ms;             /* monotonic */
    struct outcome out;
    bool have_outcome;
    struct resilience_ticket ticket;    /* the provider call's fleet-wide slot (resilience.h) */
    bool fallback_offline;              /* kill-switch on with BUDGET_FALLBACK_PROVIDER=offline */
};

struct engine {
    struct worker *w;
    struct queue_limits lim;
    bool offline;
    bool paid;                      /* the provider costs money: respect the kill-switch */
    char url[1024];
    char auth_header[600];
    const char *model;              /* NULL for Azure */
    const char *provider_name;
    struct httpc *http;
    struct resilience *res;         /* fleet-wide gates of a paid provider, else NULL */

    pthread_mutex_t slots_lock;     /* protects slots list, slot state/lost, nslots */
    pthread_cond_t slot_freed;
    struct slot slots;              /* list head */
    long nslots;

    pthread_mutex_t fin_lock;       /* protects fin_head/fin_tail, fin_stop */
    pthread_cond_t fin_cv;
    struct slot *fin_head, *fin_tail;
    bool fin_stop;

    atomic_bool stop_claiming;
    atomic_bool stop_all;
    pthread_t claimer, renewer, finishers[FINISHERS];
    int nfinishers;
    bool claimer_started, renewer_started;
};

/* ------------------------------------------------------------ slots */

static void slot_free(struct slot *s)
{
    if (!s)
        return;
    queue_job_done(&s->job);
    job_params_done(&s->params);
    outcome_done(&s->out);
    free(s);
}

/* Remove from the in-flight list and free; wakes the claimer. */
static void slot_finish(struct engine *e, struct slot *s)
{
    pthread_mutex_lock(&e->slots_lock);
    s->prev->next = s->next;
    s->next->prev = s->prev;
    e->nslots--;
    atomic_store(&e->w->stats.current, e->nslots);
    pthread_cond_broadcast(&e->slot_freed);
    pthread_mutex_unlock(&e->slots_lock);
    slot_free(s);
}

static void fin_push(struct engine *e, struct slot *s)
{
    pthread_mutex_lock(&e->fin_lock);
    s->qnext = NULL;
    if (e->fin_tail)
        e->fin_tail->qnext = s;
    else
        e->fin_head = s;
    e->fin_tail = s;
    pthread_cond_signal(&e->fin_cv);
    pthread_mutex_unlock(&e->fin_lock);
}

/* ------------------------------------------------------------ providers */

static void on_http_done(void *ud, const struct httpc_result *res)
{
    struct slot *s = ud;
    struct engine *e = s->e;
    if (res->transport_error == -ECANCELED) {
        s->have_outcome = false;    /* released or lost: nothing to record */
    } else {
        reply_classify(&s->params, e->provider_name, e->model, res->transport_error, res->status,
                       res->header, res->hud, res->body, res->body_len, &s->out);
        s->have_outcome = true;
    }
    fin_push(e, s);
}

/* A fleet-wide gate said "not yet": hand the job back to wait in delayed
 * (no attempt spent; it returns to the front of waiting when due). */
static void defer_job(struct engine *e, struct queue *q, struct slot *s, long long wait_ms)
{
    /* a wait past the job's deadline would only tell the user later that it
     * failed: come back at the deadline (the claim then fails it) */
    long long left = s->job.created_ms + e->lim.deadline_ms - clock_now_ms();
    if (wait_ms > left)
        wait_ms = left > 0 ? left + 1 : 1;
    pthread_mutex_lock(&e->slots_lock);
    s->state = SLOT_RELEASED;        /* the renewer leaves it alone */
    pthread_mutex_unlock(&e->slots_lock);
    int rc = queue_release(q, s->job.id, s->job.token, wait_ms);
    if (rc != 0 && rc != -ESTALE && rc != -ENOENT)
        log_warn("cannot hand a throttled job back: it returns when its lease expires",
                 LOG_STR("job_id", s->job.id), LOG_INT("rc", rc));
    slot_finish(e, s);
}

/* Runs on the claimer thread, which lends its Redis connection and queue. */
static void start_job(struct engine *e, struct redisx *rx, struct queue *q, struct slot *s)
{
    if (!s->params_ok || e->offline) {
        fin_push(e, s);              /* finisher fails it, or runs offline generation */
        return;
    }
    if (e->res) {
        long long wait_ms = 0;
        int v = resilience_acquire(e->res, rx, &s->params, &s->ticket, &wait_ms);
        if (v == RESILIENCE_WAIT) {
            log_debug("provider call deferred", LOG_STR("job_id", s->job.id), LOG_INT("wait_ms", wait_ms));
            defer_job(e, q, s, wait_ms);
            return;
        }
        if (v == RESILIENCE_OFFLINE) {
            s->fallback_offline = true;
            fin_push(e, s);
            return;
        }
    }
    char *body = prompt_build_body(&s->params, e->model, (int)e->w->cfg->provider_max_tokens);
    if (!body)
        abort();
    const char *hdrs[1] = { e->auth_header };
    s->ticket.sent = true;           /* before: the callback may run before httpc_post returns */
    int64_t id = httpc_post(e->http, e->url, hdrs, 1, body, on_http_done, s);
    if (id < 0) {
        /* shutting down: hand it back untouched */
        s->ticket.sent = false;
        s->have_outcome = false;
        fin_push(e, s);
        return;
    }
    pthread_mutex_lock(&e->slots_lock);
    s->call_id = id;
    pthread_mutex_unlock(&e->slots_lock);
}

/* ------------------------------------------------------------ recording */

static void count_peak(struct worker *w, long cur)
{
    long peak = atomic_load(&w->stats.peak);
    while (cur > peak && !atomic_compare_exchange_weak(&w->stats.peak, &peak, cur))
        ;
}

/* One attempt at recording the outcome.  0 done (recorded or stale), -EIO retry later. */
static int record(struct engine *e, struct queue *q, struct slot *s)
{
    struct worker *w = e->w;
    const struct queue_job *j = &s->job;
    const struct outcome *o = &s->out;
    int rc;

    if (!s->params_ok) {
        struct queue_failure f = { .error = "The stored job parameters cannot be read",
                                   .code = "BAD_PARAMS", .retryable = false, .spend_attempt = true };
        rc = queue_fail(q, j->id, j->token, j->attempt, &f, NULL);
        if (rc == 0) {
            atomic_fetch_add(&w->stats.failed, 1);
            atomic_fetch_add(&w->stats.processed, 1);
        }
        goto out;
    }
    if (o->kind == OUTCOME_OK) {
        struct job_usage u = { .input_tokens = o->prompt_tokens, .output_tokens = o->completion_tokens };
        rc = queue_complete(q, j->id, j->token, o->result_json, &u);
        if (rc == 0) {
            atomic_fetch_add(&w->stats.succeeded, 1);
            atomic_fetch_add(&w->stats.processed, 1);
        }
        goto out;
    }
    struct queue_failure f = {
        .error = o->error[0] ? o->error : "The provider call failed",
        .code = o->error_code[0] ? o->error_code : "PROVIDER_ERROR",
        .retryable = o->kind == OUTCOME_TRANSIENT || o->kind == OUTCOME_RATE_LIMITED,
        .spend_attempt = o->kind != OUTCOME_RATE_LIMITED,
        .retry_after_ms = o->retry_after_ms > 0 ? o->retry_after_ms : 0,
    };
    if (o->kind == OUTCOME_RATE_LIMITED && f.retry_after_ms <= 0)
        f.retry_after_ms = queue_backoff_ms(&e->lim, j->attempt) + 1;
    struct queue_fail_result fr;
    rc = queue_fail(q, j->id, j->token, j->attempt, &f, &fr);
    if (rc == 0) {
        if (fr.retrying) {
            atomic_fetch_add(&w->stats.retried, 1);
            log_info("job attempt failed: retrying", LOG_STR("job_id", j->id), LOG_INT("attempt", j->attempt),
                     LOG_STR("code", f.code), LOG_INT("next_attempt_at", fr.next_attempt_ms));
        } else {
            atomic_fetch_add(&w->stats.failed, 1);
            atomic_fetch_add(&w->stats.processed, 1);
            log_warn("job failed", LOG_STR("job_id", j->id), LOG_INT("attempts", fr.attempts),
                     LOG_STR("code", f.code), LOG_STR("error", f.error));
        }
    }
out:
    if (rc == -ESTALE || rc == -ENOENT) {
        log_warn("outcome discarded: the job's lease was lost", LOG_STR("job_id", j->id),
                 LOG_INT("attempt", j->attempt));
        return 0;
    }
    if (rc == 0) {
        atomic_store(&w->redis_ok, true);
        return 0;
    }
    if (rc == -EIO || rc == -EAGAIN || rc == -ETIMEDOUT) {
        atomic_store(&w->redis_ok, false);
        return -EIO;
    }
    log_error("cannot record the job's outcome", LOG_STR("job_id", j->id), LOG_INT("rc", rc),
              LOG_STR("detail", queue_last_error(q)));
    return 0;
}

static void *finisher_main(void *arg)
{
    struct engine *e = arg;
    struct redisx *rx = redisx_new(&e->w->redis);
    struct queue *q = queue_new(rx, &e->lim);
    if (!q)
        abort();
    for (;;) {
        pthread_mutex_lock(&e->fin_lock);
        while (!e->fin_head && !e->fin_stop)
            pthread_cond_wait(&e->fin_cv, &e->fin_lock);
        if (!e->fin_head) {
            pthread_mutex_unlock(&e->fin_lock);
            break;
        }
        struct slot *s = e->fin_head;
        e->fin_head = s->qnext;
        if (!e->fin_head)
            e->fin_tail = NULL;
        pthread_mutex_unlock(&e->fin_lock);

        /* the call is over, whatever becomes of the job: give its slot back */
        resilience_settle(e->res, rx, &s->ticket, s->have_outcome ? &s->out : NULL);

        pthread_mutex_lock(&e->slots_lock);
        bool mine = s->state == SLOT_RUNNING && !s->lost;
        if (mine)
            s->state = SLOT_RECORDING;
        pthread_mutex_unlock(&e->slots_lock);
        if (!mine) {                 /* released by the drain, or lease lost */
            slot_finish(e, s);
            continue;
        }
        if ((e->offline || s->fallback_offline) && s->params_ok && !s->have_outcome) {
            offline_generate(&s->params, &s->out);
            s->have_outcome = true;
        }
        if (!s->have_outcome && s->params_ok) {
            /* cancelled before an answer (shutdown): give the job back */
            queue_release(q, s->job.id, s->job.token, 0);
            slot_finish(e, s);
            continue;
        }
        int64_t give_up = clock_mono_ms() + e->lim.lease_ms;
        while (record(e, q, s) == -EIO && clock_mono_ms() < give_up && !atomic_load(&e->stop_all))
            clock_sleep_ms(RECORD_RETRY_MS);
        slot_finish(e, s);
    }
    queue_free(q);
    redisx_free(rx);
    return NULL;
}

/* ------------------------------------------------------------ claimer */

static void *claimer_main(void *arg)
{
    struct engine *e = arg;
    struct worker *w = e->w;
    long conc = (long)w->cfg->queue_concurrency;
    struct redisx *rx = redisx_new(&w->redis);
    struct queue *q = queue_new(rx, &e->lim);
    struct queue_job *jobs = calloc(QUEUE_CLAIM_MAX, sizeof(*jobs));
    if (!q || !jobs)
        abort();
    int backoff = 100;

    while (!atomic_load(&e->stop_claiming)) {
        pthread_mutex_lock(&e->slots_lock);
        while (e->nslots >= conc && !atomic_load(&e->stop_claiming)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&e->slot_freed, &e->slots_lock, &ts);
        }
        long free_slots = conc - e->nslots;
        pthread_mutex_unlock(&e->slots_lock);
        if (atomic_load(&e->stop_claiming))
            break;

        int want = free_slots > QUEUE_CLAIM_MAX ? QUEUE_CLAIM_MAX : (int)free_slots;
        bool paid = e->paid && !resilience_fallback_offline(e->res);
        int n = queue_claim(q, want, paid ? QUEUE_CLAIM_PAID : 0, jobs);
        if (n < 0) {
            if (atomic_exchange(&w->redis_ok, false))
                log_warn("cannot claim jobs: Redis unavailable", LOG_INT("rc", n),
                         LOG_STR("detail", queue_last_error(q)));
            clock_sleep_ms(backoff);
            backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
            continue;
        }
        backoff = 100;
        atomic_store(&w->redis_ok, true);
        if (n == 0) {
            queue_wait(q, 1000);
            continue;
        }
        for (int i = 0; i < n; i++) {
            struct slot *s = calloc(1, sizeof(*s));
            if (!s)
                abort();
            s->e = e;
            s->job = jobs[i];                       /* takes the params_json */
            memset(&jobs[i], 0, sizeof(jobs[i]));
            s->started_ms = clock_mono_ms();
            s->out.retry_after_ms = -1;
            const char *pj = s->job.params_json ? s->job.params_json : "";
            s->params_ok = job_params_decode(s->job.type, pj, strlen(pj), &s->params) == 0;
            pthread_mutex_lock(&e->slots_lock);
            s->next = e->slots.next;
            s->prev = &e->slots;
            e->slots.next->prev = s;
            e->slots.next = s;
            e->nslots++;
            long cur = e->nslots;
            pthread_mutex_unlock(&e->slots_lock);
            atomic_store(&w->stats.current, cur);
            count_peak(w, cur);
            log_debug("job claimed", LOG_STR("job_id", s->job.id), LOG_INT("attempt", s->job.attempt));
            start_job(e, rx, q, s);
        }
    }
    free(jobs);
    queue_free(q);
    redisx_free(rx);
    return NULL;
}

/* ------------------------------------------------------------ renewer */

static void renew_all(struct engine *e, struct queue *q)
{
    pthread_mutex_lock(&e->slots_lock);
    size_t n = (size_t)e->nslots, i = 0;
    struct queue_lease_ref *refs = calloc(n ? n : 1, sizeof(*refs));
    struct slot **sl = calloc(n ? n : 1, sizeof(*sl));
    char (*ids)[JOB_ID_MAX + 1] = calloc(n ? n : 1, sizeof(*ids));
    char (*toks)[JOB_TOKEN_MAX + 1] = calloc(n ? n : 1, sizeof(*toks));
    if (!refs || !sl || !ids || !toks)
        abort();
    for (struct slot *s = e->slots.next; s != &e->slots && i < n; s = s->next) {
        if (s->state != SLOT_RUNNING || s->lost)
            continue;
        memcpy(ids[i], s->job.id, sizeof(ids[i]));
        memcpy(toks[i], s->job.token, sizeof(toks[i]));
        refs[i].id = ids[i];
        refs[i].token = toks[i];
        sl[i] = s;
        i++;
    }
    pthread_mutex_unlock(&e->slots_lock);
    n = i;
    if (n) {
        bool *held = calloc(n, sizeof(*held));
        if (!held)
            abort();
        int rc = queue_renew(q, refs, n, held);
        if (rc >= 0) {
            atomic_store(&e->w->redis_ok, true);
            for (size_t k = 0; k < n; k++) {
                if (held[k])
                    continue;
                /* The slot may have finished since the snapshot: find it again by identity. */
                pthread_mutex_lock(&e->slots_lock);
                int64_t cancel = 0;
                for (struct slot *s = e->slots.next; s != &e->slots; s = s->next)
                    if (s == sl[k] && s->state == SLOT_RUNNING && strcmp(s->job.token, toks[k]) == 0) {
                        s->lost = true;
                        cancel = s->call_id;
                        break;
                    }
                pthread_mutex_unlock(&e->slots_lock);
                log_warn("lease lost: abandoning the job", LOG_STR("job_id", ids[k]));
                if (cancel)
                    httpc_cancel(e->http, cancel);
            }
        } else {
            atomic_store(&e->w->redis_ok, false);
        }
        free(held);
    }
    free(refs);
    free(sl);
    free(ids);
    free(toks);
}

static void heartbeat(struct engine *e, struct queue *q)
{
    struct worker_stats *st = &e->w->stats;
    struct queue_worker_info wi = {
        .processed = atomic_load(&st->processed),
        .succeeded = atomic_load(&st->succeeded),
        .failed = atomic_load(&st->failed),
        .in_flight = atomic_load(&st->current),
        .peak_in_flight = atomic_load(&st->peak),
        .started_ms = e->w->started_ms,
        .provider = e->w->cfg->ai_provider,
    };
    if (queue_heartbeat(q, e->w->instance_id, &wi) != 0)
        atomic_store(&e->w->redis_ok, false);
}

static void *renewer_main(void *arg)
{
    struct engine *e = arg;
    struct redisx *rx = redisx_new(&e->w->redis);
    struct queue *q = queue_new(rx, &e->lim);
    if (!q)
        abort();
    int64_t every = e->lim.lease_ms / 3 > 100 ? e->lim.lease_ms / 3 : 100;
    int64_t hb_every = e->w->cfg->worker_heartbeat_ms;
    int64_t next_renew = clock_mono_ms() + every, next_hb = 0;
    while (!atomic_load(&e->stop_all)) {
        int64_t now = clock_mono_ms();
        if (now >= next_hb) {
            heartbeat(e, q);
            next_hb = now + hb_every;
        }
        if (now >= next_renew) {
            renew_all(e, q);
            next_renew = now + every;
        }
        clock_sleep_ms(50);
    }
    queue_worker_gone(q, e->w->instance_id);
    queue_free(q);
    redisx_free(rx);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

static int setup_provider(struct engine *e, char *err, size_t errlen)
{
    const struct config *c = e->w->cfg;
    const char *p = c->ai_provider;
    if (strcmp(p, "offline") == 0) {
        e->offline = true;
        e->provider_name = OFFLINE_PROVIDER;
        return 0;
    }
    e->paid = true;
    if (strcmp(p, "openai") == 0) {
        const char *base = c->openai_base_url;
        size_t n = strlen(base);
        while (n && base[n - 1] == '/')
            n--;
        snprintf(e->url, sizeof(e->url), "%.*s/chat/completions", (int)n, base);
        snprintf(e->auth_header, sizeof(e->auth_header), "Authorization: Bearer %s", c->openai_api_key);
        e->model = c->openai_model;
        e->provider_name = "openai";
        return 0;
    }
    if (strcmp(p, "azure") == 0) {
        const char *ep = c->azure_endpoint;
        size_t n = strlen(ep);
        while (n && ep[n - 1] == '/')
            n--;
        snprintf(e->url, sizeof(e->url), "%.*s/openai/deployments/%s/chat/completions?api-version=%s",
                 (int)n, ep, c->azure_deployment, c->azure_api_version);
        snprintf(e->auth_header, sizeof(e->auth_header), "api-key: %s", c->azure_api_key);
        e->model = NULL;
        e->provider_name = "azure";
        return 0;
    }
    snprintf(err, errlen, "invalid value for AI_PROVIDER: \"%s\"", p);
    return -EINVAL;
}

int engine_start(struct worker *w, struct engine **ret, char *err, size_t errlen)
{
    struct engine *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->w = w;
    queue_limits_from_config(w->cfg, &e->lim);
    e->slots.next = e->slots.prev = &e->slots;
    pthread_mutex_init(&e->slots_lock, NULL);
    pthread_cond_init(&e->slot_freed, NULL);
    pthread_mutex_init(&e->fin_lock, NULL);
    pthread_cond_init(&e->fin_cv, NULL);
    int rc = setup_provider(e, err, errlen);
    if (rc)
        goto fail;
    if (!e->offline) {
        e->res = resilience_new(w->cfg, e->provider_name);
        if (!e->res) {
            snprintf(err, errlen, "cannot set up the provider's fleet-wide limits");
            rc = -ENOMEM;
            goto fail;
        }
        struct httpc_limits hl = {
            .max_reply_bytes = w->cfg->provider_max_reply_bytes,
            .timeout_ms = w->cfg->provider_timeout_ms,
            .connect_timeout_ms = w->cfg->provider_connect_timeout_ms,
            .max_host_connections = w->cfg->queue_concurrency,
        };
        e->http = httpc_new(&hl);
        if (!e->http) {
            snprintf(err, errlen, "cannot start the HTTP client");
            rc = -ENOMEM;
            goto fail;
        }
    }
    for (int i = 0; i < FINISHERS; i++) {
        if (pthread_create(&e->finishers[i], NULL, finisher_main, e) != 0)
            goto threads;
        e->nfinishers++;
    }
    if (pthread_create(&e->renewer, NULL, renewer_main, e) != 0)
        goto threads;
    e->renewer_started = true;
    if (pthread_create(&e->claimer, NULL, claimer_main, e) != 0)
        goto threads;
    e->claimer_started = true;
    atomic_store(&w->redis_ok, true);
    *ret = e;
    return 0;
threads:
    snprintf(err, errlen, "cannot start engine threads");
    rc = -EAGAIN;
    engine_free(e);
    return rc;
fail:
    engine_free(e);
    return rc;
}

void engine_stop_claiming(struct engine *e)
{
    atomic_store(&e->stop_claiming, true);
    pthread_mutex_lock(&e->slots_lock);
    pthread_cond_broadcast(&e->slot_freed);
    pthread_mutex_unlock(&e->slots_lock);
}

long engine_inflight(struct engine *e)
{
    pthread_mutex_lock(&e->slots_lock);
    long n = e->nslots;
    pthread_mutex_unlock(&e->slots_lock);
    return n;
}

long engine_release_all(struct engine *e)
{
    engine_stop_claiming(e);
    if (e->claimer_started) {
        pthread_join(e->claimer, NULL);      /* no new slots after this */
        e->claimer_started = false;
    }
    struct redisx *rx = redisx_new(&e->w->redis);
    struct queue *q = queue_new(rx, &e->lim);
    long handed = 0;
    for (;;) {
        struct slot *pick = NULL;
        int64_t cancel = 0;
        char id[JOB_ID_MAX + 1], tok[JOB_TOKEN_MAX + 1];
        pthread_mutex_lock(&e->slots_lock);
        for (struct slot *s = e->slots.next; s != &e->slots; s = s->next)
            if (s->state == SLOT_RUNNING) {
                pick = s;
                s->state = SLOT_RELEASED;
                cancel = s->call_id;
                memcpy(id, s->job.id, sizeof(id));
                memcpy(tok, s->job.token, sizeof(tok));
                break;
            }
        pthread_mutex_unlock(&e->slots_lock);
        if (!pick)
            break;
        if (q && queue_release(q, id, tok, 0) == 0)
            handed++;
        if (cancel)
            httpc_cancel(e->http, cancel);   /* its callback frees the slot via a finisher */
    }
    queue_free(q);
    redisx_free(rx);
    return handed;
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    engine_stop_claiming(e);
    if (e->claimer_started)
        pthread_join(e->claimer, NULL);
    /* stop the HTTP engine first: every pending call completes (cancelled) into the finishers */
    httpc_free(e->http);
    e->http = NULL;
    pthread_mutex_lock(&e->fin_lock);
    e->fin_stop = true;
    pthread_cond_broadcast(&e->fin_cv);
    pthread_mutex_unlock(&e->fin_lock);
    for (int i = 0; i < e->nfinishers; i++)
        pthread_join(e->finishers[i], NULL);
    atomic_store(&e->stop_all, true);
    if (e->renewer_started)
        pthread_join(e->renewer, NULL);
    /* slots left (none normally): free them */
    while (e->slots.next != &e->slots) {
        struct slot *s = e->slots.next;
        s->prev->next = s->next;
        s->next->prev = s->prev;
        slot_free(s);
    }
    resilience_free(e->res);
    pthread_cond_destroy(&e->slot_freed);
    pthread_mutex_destroy(&e->slots_lock);
    pthread_cond_destroy(&e->fin_cv);
    pthread_mutex_destroy(&e->fin_lock);
    free(e);
}
