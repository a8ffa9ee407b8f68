/*
 * The libmicrohttpd daemon: internal thread pool with epoll, suspend/resume
 * allowed (SSE), connection limit and timeouts from the configuration.
 * Threads: server_start/quiesce/stop are called from main only.
 */
#ifndef GATEWAY_SERVER_H
#define GATEWAY_SERVER_H

#include <stddef.h>

struct gw;
struct server;

/* Starts listening.  0, or -errno with err set (port in use, bad address). */
int server_start(struct gw *gw, unsigned max_connections, struct server **ret,
                 char *err, size_t errlen);
/* Stop accepting new connections (the listen socket is closed); in-flight
 * requests and open keep-alive connections continue. */
void server_quiesce(struct server *s);
/* Stop the daemon: closes every connection. NULL-safe. */
void server_stop(struct server *s);
unsigned server_port(const struct server *s);

/* Resume a suspended connection (SSE); safe from any thread. */
struct MHD_Connection;
void server_resume(struct MHD_Connection *c);

#endif
