/*
 * The gateway's side of the fleet-wide limits (resilience.c): the clients'
 * rate limits as admission hooks, and the operator endpoints for circuit
 * breakers, the budget and rate limits.  State lives in Redis
 * (common/gates.h), so every gateway instance sees and enforces the same.
 */
#ifndef GATEWAY_RESILIENCE_H
#define GATEWAY_RESILIENCE_H

struct gw;
struct router;

/* Once, from app_init before the daemon starts: sets gw->admit_request
 * (per-address API limit) and gw->admit_ai (per-user AI submissions). */
void resilience_setup(struct gw *gw);

/* GET  /api/circuit-breakers/status, POST /api/circuit-breakers/reset/:name,
 * GET  /api/admin/budget/status, POST /api/admin/budget/kill-switch,
 * POST /api/admin/budget/set-limit, GET /api/rate-limits/status (all admin). */
void routes_resilience(struct router *rt);

#endif
