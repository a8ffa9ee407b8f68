/*
 * app: builds and tears down the gateway context (struct gw) and registers
 * every resource's routes, so main.c only orders start-up and shutdown.
 * All functions run on the main thread.
 */
#ifndef GATEWAY_APP_H
#define GATEWAY_APP_H

#include <stddef.h>

struct gw;
struct config;

/* 0, or -errno with err naming the bad setting. */
int app_init(struct gw *gw, const struct config *cfg, char *err, size_t errlen);
/* The daemon is listening: start background threads (bus, ...). */
void app_started(struct gw *gw);
/* SIGTERM: end long-lived streams so connections can finish. */
void app_drain(struct gw *gw);
/* After the daemon stopped. */
void app_done(struct gw *gw);

#endif
