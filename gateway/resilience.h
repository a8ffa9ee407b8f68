/*
 * The gateway's side of the fleet-wide limits (resilience.c): the clients'
 * rate limits as admission hooks, and the operator endpoints for circuit
 * breakers, the budget and rate limits.  State lives in Redis
 * (common/gates.h), so every gateway instance sees and enforces the same.
 */
#ifndef GATEWAY_RESILIENCE_H
#define GATEWAY_RESILIENCE_H

#include "common/gates.h"

struct config;
struct gw;
struct json_object;
struct router;

/* Once, from app_init before the daemon starts: sets gw->admit_request
 * (per-address API limit) and gw->admit_ai (per-user AI submissions). */
void resilience_setup(struct gw *gw);

/* GET  /api/circuit-breakers/status, POST /api/circuit-breakers/reset/:name,
 * GET  /api/admin/budget/status, POST /api/admin/budget/kill-switch,
 * POST /api/admin/budget/set-limit, GET /api/rate-limits/status (all admin). */
void routes_resilience(struct router *rt);

/* The JSON objects of GET /api/circuit-breakers/status ("circuitBreakers"
 * members) and GET /api/admin/budget/status ("budget"), for the other
 * operator endpoints that show them (metrics.c).  New objects, owned by the
 * caller; any thread (json-c trees stay in the thread that built them). */
struct json_object *resilience_breaker_json(enum gates_provider p, const struct gates_breaker *b,
                                           const struct gates_breaker_cfg *cb);
/* queue_depth: waiting + delayed jobs. */
struct json_object *resilience_budget_json(const struct config *c, const struct gates_budget *b,
                                          long long queue_depth);

#endif
