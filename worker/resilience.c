/*
 * resilience.c: what the worker passes to the fleet-wide gates, and what it
 * makes of a provider call's outcome.  The gates themselves (atomic, in
 * Redis) are common/gates.c and its scripts.
 *
 * Estimates: tokens = the prompt estimate (prompt_estimate_tokens, leaning
 * high) + PROVIDER_MAX_TOKENS; cost = those at the price table, rounded up.
 * Since a reply cannot use more than max_tokens, the reservation is an upper
 * bound of the call's cost unless the provider counts the prompt higher than
 * our estimate; the month can overspend by at most that, for the calls in
 * flight.
 *
 * Settling, by what the call produced:
 *   an answer with usage        tokens and cost from the usage
 *   HTTP error status           cost 0 (providers do not bill failed
 *                               requests); tokens keep the estimate
 *   no HTTP answer (timeout,    cost = the estimate (the provider may have
 *   cancelled after sending)    processed and billed it)
 *   never sent                  everything refunded
 * Breaker: a fault is a 5xx, a timeout or a connection error; every other
 * answer (4xx, 429, unusable 200) shows the provider is up and counts as a
 * success; a call without an answer of its own (cancelled) counts as nothing.
 *
 * Breaker transitions and kill-switch trips seen in settle replies are logged
 * once per change by this process (other instances log their own view).
 */
#include "worker/resilience.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/job.h"
#include "common/log.h"
#include "worker/provider.h"

struct resilience {
    const struct config *cfg;
    enum gates_provider provider;
    struct gates_call_cfg call;
    long long price_in, price_out;       /* micro-dollars per 1M tokens */
    int max_tokens;
    bool fallback_offline;

    atomic_llong admitted, faults, errors;
    atomic_llong waits[GATES_WAIT_BUDGET + 1];
    atomic_int last_state;               /* 0 CLOSED, 1 OPEN, 2 HALF_OPEN: for logging changes */
    atomic_bool last_switch;
};

struct resilience *resilience_new(const struct config *c, const char *provider)
{
    int p = gates_provider_from_name(provider);
    if (p < 0)
        return NULL;
    struct resilience *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return NULL;
    rs->cfg = c;
    rs->provider = (enum gates_provider)p;
    bool azure = rs->provider == GATES_AZURE;
    rs->call.rpm = azure ? c->azure_rpm : c->openai_rpm;
    rs->call.tpm = azure ? c->azure_tpm : c->openai_tpm;
    rs->call.max_concurrent = azure ? c->azure_max_concurrent : c->openai_max_concurrent;
    rs->call.lease_ms = c->provider_timeout_ms + RESILIENCE_LEASE_MARGIN_MS;
    rs->call.monthly_limit = c->budget_monthly_limit;
    gates_breaker_cfg_from_config(c, &rs->call.cb);
    rs->price_in = c->price_input_per_1m;
    rs->price_out = c->price_output_per_1m;
    rs->max_tokens = (int)c->provider_max_tokens;
    rs->fallback_offline = c->budget_fallback && strcmp(c->budget_fallback, "offline") == 0;
    return rs;
}

void resilience_free(struct resilience *rs)
{
    free(rs);
}

bool resilience_fallback_offline(const struct resilience *rs)
{
    return rs && rs->fallback_offline;
}

long long resilience_cost(const struct resilience *rs, long long prompt_tokens, long long completion_tokens)
{
    if (prompt_tokens < 0)
        prompt_tokens = 0;
    if (completion_tokens < 0)
        completion_tokens = 0;
    /* 128-bit: a million tokens at the largest configurable price overflows 64 bits */
    __int128 m = (__int128)prompt_tokens * rs->price_in + (__int128)completion_tokens * rs->price_out;
    __int128 c = (m + 999999) / 1000000;
    return c > (__int128)(1LL << 62) ? (1LL << 62) : (long long)c;
}

bool resilience_is_fault(const struct outcome *o)
{
    if (!o || o->kind != OUTCOME_TRANSIENT)
        return false;
    return strcmp(o->error_code, "PROVIDER_TIMEOUT") == 0 ||
           strcmp(o->error_code, "PROVIDER_CONNECTION") == 0 ||
           strncmp(o->error_code, "PROVIDER_HTTP_5", 15) == 0;
}

int resilience_acquire(struct resilience *rs, struct redisx *rx, const struct job_params *p,
                       struct resilience_ticket *ticket, long long *ret_wait_ms)
{
    memset(ticket, 0, sizeof(*ticket));
    long long prompt = prompt_estimate_tokens(p, 0);
    ticket->est_tokens = prompt + rs->max_tokens;
    ticket->est_cost = resilience_cost(rs, prompt, rs->max_tokens);

    struct gates_acquire_result res;
    int rc = gates_acquire(rx, rs->provider, &rs->call, ticket->est_tokens, ticket->est_cost,
                            &ticket->t, &res);
    if (rc < 0) {
        atomic_fetch_add(&rs->errors, 1);
        log_warn("provider gate unavailable: job handed back", LOG_STR("provider", gates_provider_name(rs->provider)),
                 LOG_INT("rc", rc));
        *ret_wait_ms = RESILIENCE_ERROR_WAIT_MS;
        return RESILIENCE_WAIT;
    }
    if (res.admitted) {
        ticket->held = true;
        atomic_fetch_add(&rs->admitted, 1);
        atomic_store(&rs->last_switch, false);   /* a call runs: the switch is off */
        return RESILIENCE_GO;
    }
    if ((unsigned)res.reason <= GATES_WAIT_BUDGET)
        atomic_fetch_add(&rs->waits[res.reason], 1);
    if (res.reason == GATES_WAIT_KILLSWITCH) {
        if (!atomic_exchange(&rs->last_switch, true))
            log_warn("budget kill-switch is on: no paid provider call starts",
                     LOG_STR("fallback", rs->fallback_offline ? "offline" : "wait"));
        if (rs->fallback_offline)
            return RESILIENCE_OFFLINE;
    }
    *ret_wait_ms = res.wait_ms;
    return RESILIENCE_WAIT;
}

static int state_code(const char *s)
{
    return strcmp(s, "OPEN") == 0 ? 1 : strcmp(s, "HALF_OPEN") == 0 ? 2 : 0;
}

void resilience_settle(struct resilience *rs, struct redisx *rx, struct resilience_ticket *ticket,
                       const struct outcome *o)
{
    if (!rs || !ticket->held)
        return;
    ticket->held = false;
    struct gates_settle_args a = { .result = GATES_RESULT_NONE, .tokens = -1, .cost = -1 };
    if (!ticket->sent) {
        a.tokens = 0;                            /* never sent: refund everything */
        a.cost = 0;
    } else if (o) {
        bool fault = resilience_is_fault(o);
        a.result = fault ? GATES_RESULT_FAULT : GATES_RESULT_OK;
        if (fault)
            atomic_fetch_add(&rs->faults, 1);
        long long used = (long long)o->prompt_tokens + o->completion_tokens;
        if (used > 0) {
            a.tokens = used;
            a.cost = resilience_cost(rs, o->prompt_tokens, o->completion_tokens);
        } else if (o->http_status >= 300) {
            a.cost = 0;                          /* an error answer is not billed */
        }
        a.quota = o->kind == OUTCOME_QUOTA;
    }
    struct gates_settle_result r;
    int rc = gates_settle(rx, &rs->call, &ticket->t, &a, &r);
    if (rc < 0) {
        atomic_fetch_add(&rs->errors, 1);
        log_warn("cannot settle a provider call: its lease expires by itself",
                 LOG_STR("provider", gates_provider_name(rs->provider)), LOG_INT("rc", rc));
        return;
    }
    int st = state_code(r.breaker_state);
    int was = atomic_exchange(&rs->last_state, st);
    if (st != was) {
        if (st == 1)
            log_warn("circuit breaker open: provider calls wait", LOG_STR("breaker", gates_provider_name(rs->provider)),
                     LOG_INT("open_ms", rs->call.cb.open_ms));
        else
            log_info("circuit breaker state", LOG_STR("breaker", gates_provider_name(rs->provider)),
                     LOG_STR("state", r.breaker_state));
    }
    bool sw_was = atomic_exchange(&rs->last_switch, r.kill_switch);
    if (r.kill_switch && !sw_was)
        log_warn("budget kill-switch tripped", LOG_INT("spent_micro_usd", r.spent),
                 LOG_BOOL("insufficient_quota", a.quota));
}

void resilience_get_stats(const struct resilience *rs, struct resilience_stats *ret)
{
    memset(ret, 0, sizeof(*ret));
    if (!rs)
        return;
    ret->admitted = atomic_load(&rs->admitted);
    ret->faults = atomic_load(&rs->faults);
    ret->errors = atomic_load(&rs->errors);
    for (int i = 0; i <= GATES_WAIT_BUDGET; i++)
        ret->waits[i] = atomic_load(&rs->waits[i]);
}
