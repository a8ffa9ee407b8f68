/*
 * The gateway's side of the fleet-wide limits (resilience.c): the clients'
 * rate limits as admission hooks, and the operator endpoints for circuit
 * breakers, the budget and rate limits.  State lives in Redis
 * (common/gates.h), so every gateway instance sees and enforces the same.
 */
#ifndef GATEWAY_RESILIENCE_H
#define GATEWAY_RESILIENCE_H

#include "common/crypto.h"
#include "common/gates.h"
#include "common/queue.h"

struct config;
struct gw;
struct json_object;
struct req;
struct router;

/* Once, from app_init before the daemon starts: sets gw->admit_request
 * (per-address API limit of every route but ROUTE_ADMIT_IN_HANDLER ones). */
void resilience_setup(struct gw *gw);

/* Job submissions check both client limits inside the enqueue script (one
 * Redis round trip).  The limits of this request for user_id (key: room for
 * the user's bucket id when user_id is long; *adm points into r and key). */
void resilience_enqueue_admission(struct req *r, const char *user_id, struct queue_admission *adm,
                                  char key[SHA256_HEX_LEN]);
/* After queue_enqueue_admit returned rc: RateLimit headers for the buckets
 * the script checked and, for QUEUE_RATE_IP / QUEUE_RATE_USER, the 429
 * (RATE_LIMIT_EXCEEDED / USER_AI_RATE_LIMIT_EXCEEDED) queued: -1 with its
 * result in *reply_result.  0: go on answering rc. */
int resilience_enqueue_answer(struct req *r, int rc, const struct queue_enqueue_result *res, int *reply_result);

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
