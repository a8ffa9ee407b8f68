/*
 * The bus: one thread per gateway that owns the one Redis subscriber
 * connection and feeds the hub.  It PSUBSCRIBEs to every job channel
 * (QUEUE_CHANNEL_JOB_PREFIX "*") instead of SUBSCRIBE per job: at our scale
 * (thousands of streams, ~1k events/s) one pattern costs Redis one match per
 * PUBLISH, while per-job subscriptions cost a SUBSCRIBE/UNSUBSCRIBE round
 * trip per stream and per-channel bookkeeping; every event also carries its
 * userId, so user streams are fed from the same messages.  Events for jobs
 * nobody here listens to are dropped after one hash lookup.
 * On any connection loss it reconnects with backoff, resubscribes and calls
 * hub_gap(), so every stream catches up from history.
 */
#ifndef GATEWAY_BUS_H
#define GATEWAY_BUS_H

#include <stdbool.h>

struct gw;
struct hub;
struct bus;

struct bus *bus_start(struct gw *gw, struct hub *hub);   /* NULL on failure */
void bus_stop(struct bus *b);                           /* NULL-safe; joins the thread */
bool bus_connected(const struct bus *b);
long long bus_messages(const struct bus *b);            /* events received */

#endif
