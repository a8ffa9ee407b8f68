/*
 * Method + path router with ":name" parameters ("/api/job-status/:jobId").
 * Routes are added at start-up (single thread); matching is read-only and
 * thread-safe afterwards.  A path that exists with another method yields
 * ROUTER_METHOD_NOT_ALLOWED and the Allow list; "HEAD" matches "GET" routes.
 */
#ifndef GATEWAY_ROUTER_H
#define GATEWAY_ROUTER_H

#include <stddef.h>

#define ROUTER_MAX_PARAMS 4
#define ROUTER_MAX_SEGMENTS 16
#define ROUTER_PARAM_MAX 256      /* room for a match's decoded values, each with its NUL:
                                     one value is at most ROUTER_PARAM_MAX - 1 bytes */

struct req;
typedef int (*route_handler)(struct req *r);   /* returns an enum MHD_Result */

enum route_flags {
    ROUTE_ADMIN   = 1 << 0,   /* operator endpoint: admin check before the handler */
    ROUTE_BODY    = 1 << 1,   /* takes a JSON body (Content-Type checked, 415 otherwise) */
    ROUTE_NO_LOG  = 1 << 2,   /* health probes: debug-level access log only */
    ROUTE_STREAM  = 1 << 3,   /* long-lived response (SSE) */
    ROUTE_ADMIT_IN_HANDLER = 1 << 4,  /* the handler applies the per-address limit itself
                                         (server.c does not call gw->admit_request) */
};

struct route {
    const char *method;
    const char *pattern;
    route_handler handler;
    unsigned flags;
};

/*
 * Filled by router_match.  values[i] is the percent-decoded value of names[i];
 * the values live in buf, so they are valid as long as the match itself and
 * a copy of the struct must not outlive it (its values still point into the
 * original).  Embedded in every request, hence one shared buffer rather than
 * ROUTER_MAX_PARAMS x ROUTER_PARAM_MAX bytes.
 */
struct route_match {
    const struct route *route;
    size_t nparams;
    const char *names[ROUTER_MAX_PARAMS];
    const char *values[ROUTER_MAX_PARAMS];
    char buf[ROUTER_PARAM_MAX];
};

enum router_result { ROUTER_OK = 0, ROUTER_NOT_FOUND, ROUTER_METHOD_NOT_ALLOWED };

struct router;

struct router *router_new(void);
void router_free(struct router *rt);     /* NULL-safe */
/* Pattern strings must outlive the router.  0, or -EINVAL for a bad pattern, -ENOMEM. */
int router_add(struct router *rt, const char *method, const char *pattern,
               route_handler h, unsigned flags);
/* path: the request path without query.  On ROUTER_METHOD_NOT_ALLOWED, allow gets
 * e.g. "GET, HEAD, OPTIONS" (allowcap bytes). */
enum router_result router_match(const struct router *rt, const char *method, const char *path,
                                struct route_match *m, char *allow, size_t allowcap);
const char *route_param(const struct route_match *m, const char *name);   /* NULL if absent */

#endif
