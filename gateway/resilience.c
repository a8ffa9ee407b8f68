/*
 * resilience.c: clients' rate limits and the operator endpoints for the
 * fleet-wide limits, breakers and budget (state and scripts: common/gates.h;
 * what it all means for an operator: docs/operations.md).
 *
 * Rate limits (shared by every gateway):
 *   per address  RATE_LIMIT_IP_PER_MIN on every routed request except health
 *                and static files (server.c does not call the hook for
 *                them) and SSE reconnects carrying a valid Last-Event-ID
 *                (header or lastEventId): a browser resuming a stream after
 *                a network blip must not be locked out of its own events.
 *                One round trip of its own (admit_request), except on the
 *                job submissions (ROUTE_ADMIT_IN_HANDLER), where it runs
 *                inside the enqueue script after validation.
 *                Redis down: fail open (logged once per outage): refusing
 *                every request because the limiter's store is down would turn
 *                a Redis blip into a full outage, and the handlers behind
 *                answer 503 for what truly needs Redis (a submission: 503
 *                REDIS_UNAVAILABLE, its job could not be queued anyway).
 *   per user     RATE_LIMIT_AI_PER_MIN job submissions, inside the enqueue
 *                script (queue_enqueue_admit; an idempotent repeat of a job
 *                does not spend it).  Redis down: 503 REDIS_UNAVAILABLE.
 * Each is a bucket of N requests refilled at N per minute (GCRA, Redis
 * time).  Responses carry draft-ietf-httpapi-ratelimit-headers-10 fields:
 *   RateLimit-Policy: "ip";q=600;w=60      RateLimit: "ip";r=599;t=1
 * (q quota, w window s, r remaining, t seconds until the quota is whole
 * again), and a 429 carries Retry-After (seconds until one more request is
 * allowed).
 *
 * Handlers run on libmicrohttpd pool threads with the thread's Redis
 * connection (redisx_thread()); nothing here keeps state besides the
 * outage flag.
 */
#include "gateway/resilience.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/crypto.h"
#include "common/gates.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/queue.h"
#include "common/redisx.h"
#include "gateway/gateway.h"
#include "gateway/http.h"
#include "gateway/jobs.h"
#include "gateway/router.h"

#define WINDOW_MS 60000
#define LAST_EVENT_ID_MAX_DIGITS 18
/* set-limit refuses more than the configuration's own maximum ($1e9) */
#define BUDGET_LIMIT_MAX_USD 1e9

static atomic_bool ip_limit_down;   /* Redis unreachable: per-address limit not enforced (logged once) */

/* ------------------------------------------------------------ helpers */

static void add_timestamp(struct json_object *o)
{
    char iso[CLOCK_ISO_LEN];
    clock_iso8601(clock_now_ms(), iso);
    json_object_object_add(o, "timestamp", json_object_new_string(iso));
}

/* USD from micro-dollars, serialized as the shortest decimal ("0.15", "100"). */
static struct json_object *usd_json(long long micro)
{
    char s[CONFIG_USD_LEN];
    config_format_usd(micro, s);
    return json_object_new_double_s((double)micro / 1e6, s);
}

static struct json_object *ms_or_null(int64_t ms)
{
    return ms > 0 ? json_object_new_int64(ms) : NULL;
}

static long long ceil_s(long long ms)
{
    return ms <= 0 ? 0 : (ms + 999) / 1000;
}

/* RateLimit-Policy and RateLimit for one policy. */
static void ratelimit_headers(struct req *r, const char *policy, const struct gates_rate *rl)
{
    char v[64];
    snprintf(v, sizeof(v), "\"%s\";q=%lld;w=%d", policy, rl->limit, WINDOW_MS / 1000);
    reply_header(r, "RateLimit-Policy", v);
    snprintf(v, sizeof(v), "\"%s\";r=%lld;t=%lld", policy, rl->remaining, ceil_s(rl->reset_ms));
    reply_header(r, "RateLimit", v);
}

/* The one answer to a client limit's figures, for both paths (the
 * admit_request hook and the enqueue script): RateLimit-Policy and
 * RateLimit for the policy ("ip" per address, "ai" per user); refused: the
 * 429 queued (result in *reply_result) and -1. */
static int rate_answer(struct req *r, const char *policy, const struct gates_rate *rl, int *reply_result)
{
    ratelimit_headers(r, policy, rl);
    if (rl->allowed)
        return 0;
    const struct config *c = r->gw->cfg;
    bool ai = strcmp(policy, "ai") == 0;
    char msg[160];
    if (ai) {
        snprintf(msg, sizeof(msg),
                 "AI generation is limited to %lld requests per minute per user; please retry later",
                 c->rate_limit_ai_per_min);
    } else {
        snprintf(msg, sizeof(msg), "Too many requests from this address; please retry later");
    }
    char v[32];
    long long retry = ceil_s(rl->retry_ms);
    if (retry < 1)
        retry = 1;
    snprintf(v, sizeof(v), "%lld", retry);
    reply_header(r, "Retry-After", v);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "success", json_object_new_boolean(0));
    json_object_object_add(o, "error", json_object_new_string(msg));
    json_object_object_add(o, "code", json_object_new_string(ai ? "USER_AI_RATE_LIMIT_EXCEEDED"
                                                                : "RATE_LIMIT_EXCEEDED"));
    json_object_object_add(o, "retryAfter", json_object_new_int64(retry));
    *reply_result = reply_json(r, MHD_HTTP_TOO_MANY_REQUESTS, o);
    return -1;
}

/* Client ids go into key names: long ones (insecure-mode user ids) are hashed. */
static const char *client_key(const char *id, char hex[SHA256_HEX_LEN])
{
    if (strlen(id) <= 128)
        return id;
    crypto_sha256_hex(id, strlen(id), hex);
    return hex;
}

/* ------------------------------------------------------------ admission hooks */

/* An SSE reconnect: a stream route with a well-formed Last-Event-ID. */
static bool is_stream_resume(struct req *r)
{
    const struct route *rt = r->match.route;
    if (!rt || !(rt->flags & ROUTE_STREAM) || strcmp(r->method, "GET") != 0)
        return false;
    const char *v = req_header(r, "Last-Event-ID");
    if (!v || !*v)
        v = req_query(r, "lastEventId");
    if (!v || !*v)
        return false;
    size_t n = strspn(v, "0123456789");
    return n > 0 && n <= LAST_EVENT_ID_MAX_DIGITS && v[n] == 0;
}

static const char *request_ip(struct req *r)
{
    return r->client_ip[0] ? r->client_ip : r->peer_ip;
}

static int admit_request(struct req *r, int *reply_result)
{
    if (is_stream_resume(r))
        return 0;
    const struct config *c = r->gw->cfg;
    const char *ip = request_ip(r);
    if (!*ip)
        return 0;
    struct gates_rate rl;
    int rc = gates_rate_take(redisx_thread(), "ip", ip, c->rate_limit_ip_per_min, WINDOW_MS, 1, &rl);
    if (rc < 0) {
        if (!atomic_exchange(&ip_limit_down, true))
            log_warn("per-address rate limit not enforced: Redis unavailable (failing open)",
                     LOG_STR("request_id", r->request_id), LOG_INT("rc", rc));
        return 0;
    }
    if (atomic_exchange(&ip_limit_down, false))
        log_info("per-address rate limit enforced again");
    return rate_answer(r, "ip", &rl, reply_result);
}

void resilience_enqueue_admission(struct req *r, const char *user_id, struct queue_admission *adm,
                                  char key[SHA256_HEX_LEN])
{
    const struct config *c = r->gw->cfg;
    const char *ip = request_ip(r);
    *adm = (struct queue_admission){
        .ip = *ip && strlen(ip) <= QUEUE_CLIENT_ID_MAX ? ip : NULL,
        .ip_limit = c->rate_limit_ip_per_min,
        .user_key = client_key(user_id, key),
        .user_limit = c->rate_limit_ai_per_min,
        .window_ms = WINDOW_MS,
    };
}

/* A bucket as the enqueue script left it, as gates_rate_take reports one. */
static void rate_from_queue(const struct queue_rate *q, bool allowed, struct gates_rate *ret)
{
    *ret = (struct gates_rate){ .allowed = allowed, .limit = q->limit, .remaining = q->remaining,
                                .reset_ms = q->reset_ms, .retry_ms = q->retry_ms };
}

int resilience_enqueue_answer(struct req *r, int rc, const struct queue_enqueue_result *res, int *reply_result)
{
    struct gates_rate rl;
    if (res->ip.checked) {
        if (atomic_exchange(&ip_limit_down, false))
            log_info("per-address rate limit enforced again");
        rate_from_queue(&res->ip, rc != QUEUE_RATE_IP, &rl);
        if (rate_answer(r, "ip", &rl, reply_result) != 0)
            return -1;
    }
    if (res->user.checked) {
        rate_from_queue(&res->user, rc != QUEUE_RATE_USER, &rl);
        if (rate_answer(r, "ai", &rl, reply_result) != 0)
            return -1;
    }
    return 0;
}

void resilience_setup(struct gw *gw)
{
    gw->admit_request = admit_request;
}

/* ------------------------------------------------------------ circuit breakers */

struct json_object *resilience_breaker_json(enum gates_provider p, const struct gates_breaker *b,
                                           const struct gates_breaker_cfg *cb)
{
    bool half = strcmp(b->state, "HALF_OPEN") == 0, closed = strcmp(b->state, "CLOSED") == 0;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(gates_provider_name(p)));
    json_object_object_add(o, "state", json_object_new_string(b->state));
    json_object_object_add(o, "failures", json_object_new_int64(b->window_failures));
    json_object_object_add(o, "successes", json_object_new_int64(half ? b->probes_succeeded
                                                                      : b->window_calls - b->window_failures));
    json_object_object_add(o, "failureThreshold", json_object_new_int64(cb->threshold));
    json_object_object_add(o, "successThreshold", json_object_new_int64(cb->probes));
    json_object_object_add(o, "openedAt", closed ? NULL : ms_or_null(b->opened_at_ms));
    json_object_object_add(o, "nextRetryAt", strcmp(b->state, "OPEN") == 0 ? ms_or_null(b->next_retry_ms) : NULL);
    json_object_object_add(o, "consecutiveFailures", json_object_new_int64(b->consecutive_failures));
    json_object_object_add(o, "windowCalls", json_object_new_int64(b->window_calls));
    json_object_object_add(o, "windowSize", json_object_new_int64(cb->window_calls));
    json_object_object_add(o, "minimumCalls", json_object_new_int64(cb->min_calls));
    json_object_object_add(o, "failureRateThresholdPct", json_object_new_int64(cb->rate_pct));
    json_object_object_add(o, "openMs", json_object_new_int64(cb->open_ms));
    json_object_object_add(o, "probesAdmitted", json_object_new_int64(b->probes_admitted));
    json_object_object_add(o, "callsInFlight", json_object_new_int64(b->in_flight));
    json_object_object_add(o, "generation", json_object_new_int64(b->generation));
    return o;
}

static int h_breakers(struct req *r)
{
    const struct config *c = r->gw->cfg;
    struct gates_breaker_cfg cb;
    gates_breaker_cfg_from_config(c, &cb);
    struct json_object *all = json_object_new_object();
    for (int p = 0; p < GATES_PROVIDERS; p++) {
        struct gates_breaker b;
        if (gates_breaker_status(redisx_thread(), (enum gates_provider)p, &cb, c->budget_monthly_limit, &b) != 0) {
            json_object_put(all);
            return reply_redis_down(r);
        }
        json_object_object_add(all, gates_provider_name((enum gates_provider)p),
                               resilience_breaker_json((enum gates_provider)p, &b, &cb));
    }
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "success", json_object_new_boolean(1));
    json_object_object_add(o, "circuitBreakers", all);
    add_timestamp(o);
    return reply_json(r, MHD_HTTP_OK, o);
}

static int h_breaker_reset(struct req *r)
{
    const char *name = req_param(r, "name");
    int p = gates_provider_from_name(name);
    if (p < 0) {
        struct json_object *o = json_object_new_object(), *av = json_object_new_array();
        for (int i = 0; i < GATES_PROVIDERS; i++)
            json_object_array_add(av, json_object_new_string(gates_provider_name((enum gates_provider)i)));
        json_object_object_add(o, "success", json_object_new_boolean(0));
        json_object_object_add(o, "error", json_object_new_string("Unknown circuit breaker"));
        json_object_object_add(o, "code", json_object_new_string("VALIDATION_ERROR"));
        json_object_object_add(o, "available", av);
        return reply_json(r, MHD_HTTP_BAD_REQUEST, o);
    }
    long long gen = 0;
    if (gates_breaker_reset(redisx_thread(), (enum gates_provider)p, &gen) != 0)
        return reply_redis_down(r);
    log_warn("circuit breaker reset by an operator", LOG_STR("request_id", r->request_id),
             LOG_STR("breaker", name), LOG_STR("client", r->client_ip));
    char msg[96];
    snprintf(msg, sizeof(msg), "Circuit breaker %s reset to CLOSED", gates_provider_name((enum gates_provider)p));
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "success", json_object_new_boolean(1));
    json_object_object_add(o, "message", json_object_new_string(msg));
    add_timestamp(o);
    return reply_json(r, MHD_HTTP_OK, o);
}

/* ------------------------------------------------------------ budget */

struct json_object *resilience_budget_json(const struct config *c, const struct gates_budget *b,
                                          long long queue_depth)
{
    struct json_object *bo = json_object_new_object();
    json_object_object_add(bo, "killSwitchActive", json_object_new_boolean(b->kill_switch));
    json_object_object_add(bo, "killSwitchReason", b->kill_switch ? json_object_new_string(b->reason) : NULL);
    json_object_object_add(bo, "killSwitchSource", b->kill_switch ? json_object_new_string(b->source) : NULL);
    json_object_object_add(bo, "killSwitchSince", b->kill_switch ? ms_or_null(b->since_ms) : NULL);
    json_object_object_add(bo, "killSwitchExpiresAt", b->kill_switch ? ms_or_null(b->switch_expires_ms) : NULL);
    json_object_object_add(bo, "monthlyLimit", usd_json(b->limit));
    json_object_object_add(bo, "monthlyLimitSource", json_object_new_string(b->limit_overridden ? "operator"
                                                                                                 : "configuration"));
    json_object_object_add(bo, "spentThisMonth", usd_json(b->spent));
    json_object_object_add(bo, "reservedInFlight", usd_json(b->reserved));
    json_object_object_add(bo, "percentUsed",
                           json_object_new_int64(b->limit > 0 ? (b->spent * 100) / b->limit : (b->spent > 0 ? 100 : 0)));
    json_object_object_add(bo, "alertPct", json_object_new_int64(c->budget_alert_pct));
    json_object_object_add(bo, "month", json_object_new_string(b->month));
    json_object_object_add(bo, "providerCalls", json_object_new_int64(b->calls));
    json_object_object_add(bo, "currency", json_object_new_string("USD"));
    json_object_object_add(bo, "queueDepth", json_object_new_int64(queue_depth));
    return bo;
}

static int h_budget_status(struct req *r)
{
    const struct config *c = r->gw->cfg;
    struct gates_budget b;
    struct queue_stats qs;
    if (gates_budget_status(redisx_thread(), c->budget_monthly_limit, c->cb_open_ms, &b) != 0 ||
        queue_stats(jobs_queue(), &qs) != 0)
        return reply_redis_down(r);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "success", json_object_new_boolean(1));
    json_object_object_add(o, "budget", resilience_budget_json(c, &b, qs.waiting + qs.delayed));
    add_timestamp(o);
    return reply_json(r, MHD_HTTP_OK, o);
}

static int h_kill_switch(struct req *r)
{
    struct json_object *body;
    int rr;
    if (req_json(r, &body, &rr) != 0)
        return rr;
    bool enabled;
    if (jsonx_get_bool(body, "enabled", &enabled) != 0)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", "Field enabled must be true or false");
    const char *reason = NULL;
    int rc = jsonx_get_str(body, "reason", &reason);
    if (rc == -EINVAL)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", "Field reason must be a string");
    if (reason && strlen(reason) > GATES_REASON_MAX)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", "Field reason is limited to 200 bytes");
    if (enabled && (!reason || !*reason))
        reason = "Activated by an operator";
    bool was = false;
    if (gates_killswitch_set(redisx_thread(), enabled, enabled ? reason : "", "admin", &was) != 0)
        return reply_redis_down(r);
    log_warn(enabled ? "budget kill-switch activated by an operator" : "budget kill-switch deactivated by an operator",
             LOG_STR("request_id", r->request_id), LOG_STR("reason", enabled ? reason : NULL),
             LOG_BOOL("was_active", was), LOG_STR("client", r->client_ip));
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "success", json_object_new_boolean(1));
    json_object_object_add(o, "message", json_object_new_string(enabled ? "Budget kill-switch activated"
                                                                        : "Budget kill-switch deactivated"));
    json_object_object_add(o, "killSwitchActive", json_object_new_boolean(enabled));
    json_object_object_add(o, "reason", enabled ? json_object_new_string(reason) : NULL);
    json_object_object_add(o, "wasActive", json_object_new_boolean(was));
    add_timestamp(o);
    return reply_json(r, MHD_HTTP_OK, o);
}

static int h_set_limit(struct req *r)
{
    const struct config *c = r->gw->cfg;
    struct json_object *body;
    int rr;
    if (req_json(r, &body, &rr) != 0)
        return rr;
    double usd;
    if (jsonx_get_num(body, "limit", &usd) != 0 || !isfinite(usd) || usd < 0 || usd > BUDGET_LIMIT_MAX_USD)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR",
                           "Field limit must be a number of US dollars from 0 to 1000000000");
    long long micro = llround(usd * 1e6);
    struct gates_set_limit_result res;
    if (gates_budget_set_limit(redisx_thread(), c->budget_monthly_limit, micro, &res) != 0)
        return reply_redis_down(r);
    char ns[CONFIG_USD_LEN], ps[CONFIG_USD_LEN], msg[96];
    config_format_usd(micro, ns);
    config_format_usd(res.previous, ps);
    snprintf(msg, sizeof(msg), "Monthly budget limit set to $%s", ns);
    log_warn("monthly budget limit set by an operator", LOG_STR("request_id", r->request_id),
             LOG_STR("limit_usd", ns), LOG_STR("previous_usd", ps), LOG_BOOL("kill_switch_cleared", res.switch_cleared),
             LOG_STR("client", r->client_ip));
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "success", json_object_new_boolean(1));
    json_object_object_add(o, "message", json_object_new_string(msg));
    json_object_object_add(o, "monthlyLimit", usd_json(micro));
    json_object_object_add(o, "previousLimit", usd_json(res.previous));
    json_object_object_add(o, "spentThisMonth", usd_json(res.spent));
    json_object_object_add(o, "killSwitchActive", json_object_new_boolean(res.kill_switch));
    json_object_object_add(o, "killSwitchCleared", json_object_new_boolean(res.switch_cleared));
    add_timestamp(o);
    return reply_json(r, MHD_HTTP_OK, o);
}

/* ------------------------------------------------------------ rate limits */

static struct json_object *limit_json(const char *scope, const struct gates_rate *rl)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "scope", json_object_new_string(scope));
    json_object_object_add(o, "limit", json_object_new_int64(rl->limit));
    json_object_object_add(o, "windowSeconds", json_object_new_int(WINDOW_MS / 1000));
    json_object_object_add(o, "used", json_object_new_int64(rl->limit - rl->remaining));
    json_object_object_add(o, "remaining", json_object_new_int64(rl->remaining));
    json_object_object_add(o, "resetSeconds", json_object_new_int64(ceil_s(rl->reset_ms)));
    json_object_object_add(o, "retryAfterSeconds", json_object_new_int64(rl->remaining > 0 ? 0 : ceil_s(rl->retry_ms)));
    return o;
}

static int h_rate_limits(struct req *r)
{
    const struct config *c = r->gw->cfg;
    const char *user = req_query(r, "userId"), *ip = req_query(r, "ip");
    if (user && (!*user || strlen(user) > 1024))
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", "userId must be 1 to 1024 characters");
    if (ip && (!*ip || strlen(ip) > GATES_CLIENT_ID_MAX))
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", "ip must be an address");
    struct redisx *rx = redisx_thread();
    struct json_object *o = json_object_new_object(), *limits = json_object_new_object();
    struct gates_rate rl;
    char hex[SHA256_HEX_LEN];
    if (user) {
        if (gates_rate_take(rx, "ai", client_key(user, hex), c->rate_limit_ai_per_min, WINDOW_MS, 0, &rl) != 0)
            goto down;
        json_object_object_add(limits, "aiSubmissions", limit_json("user", &rl));
    }
    const char *addr = ip ? ip : (r->client_ip[0] ? r->client_ip : r->peer_ip);
    if (gates_rate_take(rx, "ip", addr, c->rate_limit_ip_per_min, WINDOW_MS, 0, &rl) != 0)
        goto down;
    json_object_object_add(limits, "apiRequests", limit_json("address", &rl));

    struct json_object *prov = json_object_new_object();
    for (int p = 0; p < GATES_PROVIDERS; p++) {
        struct gates_throttle t;
        if (gates_throttle_status(rx, (enum gates_provider)p, &t) != 0) {
            json_object_put(prov);
            goto down;
        }
        struct json_object *po = json_object_new_object();
        json_object_object_add(po, "requestsPerMinute", t.rpm ? json_object_new_int64(t.rpm) : NULL);
        json_object_object_add(po, "tokensPerMinute", t.rpm ? json_object_new_int64(t.tpm) : NULL);
        json_object_object_add(po, "maxConcurrent", t.rpm ? json_object_new_int64(t.max_concurrent) : NULL);
        json_object_object_add(po, "inFlight", json_object_new_int64(t.in_flight));
        json_object_object_add(po, "tokensLastMinute", json_object_new_int64(t.tokens_in_window));
        json_object_object_add(po, "nextCallAt", ms_or_null(t.next_call_ms));
        json_object_object_add(po, "avgCallMs", json_object_new_int64(t.avg_call_ms));
        json_object_object_add(prov, gates_provider_name((enum gates_provider)p), po);
    }
    json_object_object_add(o, "success", json_object_new_boolean(1));
    json_object_object_add(o, "userId", user ? json_object_new_string(user) : NULL);
    json_object_object_add(o, "address", json_object_new_string(addr));
    json_object_object_add(o, "limits", limits);
    json_object_object_add(o, "providers", prov);
    add_timestamp(o);
    return reply_json(r, MHD_HTTP_OK, o);
down:
    json_object_put(limits);
    json_object_put(o);
    return reply_redis_down(r);
}

void routes_resilience(struct router *rt)
{
    router_add(rt, "GET", "/api/circuit-breakers/status", h_breakers, ROUTE_ADMIN);
    router_add(rt, "POST", "/api/circuit-breakers/reset/:name", h_breaker_reset, ROUTE_ADMIN | ROUTE_BODY);
    router_add(rt, "GET", "/api/admin/budget/status", h_budget_status, ROUTE_ADMIN);
    router_add(rt, "POST", "/api/admin/budget/kill-switch", h_kill_switch, ROUTE_ADMIN | ROUTE_BODY);
    router_add(rt, "POST", "/api/admin/budget/set-limit", h_set_limit, ROUTE_ADMIN | ROUTE_BODY);
    router_add(rt, "GET", "/api/rate-limits/status", h_rate_limits, ROUTE_ADMIN);
}
