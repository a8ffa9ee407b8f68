/*
 * The worker's health server (libmicrohttpd, one internal thread) on
 * WORKER_HEALTH_PORT: GET /health and GET /ready with the contract's body.
 */
#ifndef WORKER_HEALTH_H
#define WORKER_HEALTH_H

struct worker;
struct health_server;

/* 0 or -errno (port in use). */
int health_start(struct worker *w, struct health_server **ret);
void health_stop(struct health_server *h);   /* NULL-safe */

#endif
