/*
 * Request context and response helpers shared by every resource handler.
 *
 * server.c owns the libmicrohttpd daemon: it accumulates the body (capped by
 * MAX_BODY_BYTES, 413 past it), assigns X-Request-Id, answers CORS preflight,
 * routes (JSON 404/405 with Allow), checks admin access for ROUTE_ADMIN and the
 * JSON content type for ROUTE_BODY, then calls the handler once with the whole
 * body.  A handler must queue exactly one response through reply_*() and
 * return its result.  Handlers run on libmicrohttpd pool threads and may block
 * briefly on Redis (redisx_thread()) or PostgreSQL; never on anything unbounded.
 */
#ifndef GATEWAY_HTTP_H
#define GATEWAY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <microhttpd.h>

#include "gateway/cidr.h"
#include "gateway/router.h"

struct gw;
struct json_object;

#define REQ_ID_MAX 65            /* longest X-Request-Id we accept from a client, + NUL */
#define REQ_MAX_EXTRA_HEADERS 8

struct req {
    struct MHD_Connection *conn;
    struct gw *gw;
    const char *method;          /* as received */
    const char *url;             /* path as received (no query) */
    const char *version;         /* "HTTP/1.1" etc., as received */
    char request_id[REQ_ID_MAX];
    char peer_ip[CIDR_ADDR_STRLEN];    /* socket peer */
    char client_ip[CIDR_ADDR_STRLEN];  /* after TRUST_PROXY rules */
    int64_t start_us;            /* monotonic */
    bool raw_has_nul;            /* raw path contained %00 (refused) */

    char *body;                  /* NUL-terminated, body_len bytes; NULL if none */
    size_t body_len;
    size_t body_cap;
    bool body_too_large;
    struct json_object *json;    /* parsed by req_json(); freed with the request */

    struct route_match match;
    unsigned status;             /* status queued, 0 until a reply */
    const char *extra_hdr[REQ_MAX_EXTRA_HEADERS][2];   /* borrowed, until the reply */
    char extra_val[REQ_MAX_EXTRA_HEADERS][64];
    size_t n_extra;

    void *stream;                /* owned by a ROUTE_STREAM handler (SSE) */
    void (*stream_done)(void *stream);   /* called when the connection closes */
};

/* Request header / query argument (borrowed; valid during the request) or NULL. */
const char *req_header(struct req *r, const char *name);
const char *req_query(struct req *r, const char *name);
const char *req_param(struct req *r, const char *name);   /* path parameter */

/*
 * Parse the body as one JSON object (depth MAX_JSON_DEPTH).  On success *ret is
 * borrowed (owned by the request).  On failure the 400 INVALID_JSON /
 * VALIDATION_ERROR reply has already been queued: return *reply_result.
 */
int req_json(struct req *r, struct json_object **ret, int *reply_result);

/* Add a response header for the next reply (value copied, up to 63 bytes). */
void reply_header(struct req *r, const char *name, const char *value);

/* Queue a JSON reply. Takes ownership of body (json_object_put). */
int reply_json(struct req *r, unsigned status, struct json_object *body);
/* Queue a JSON text reply (copied). */
int reply_json_text(struct req *r, unsigned status, const char *json, size_t len);
/* {"success":false,"error":msg,"code":code} */
int reply_error(struct req *r, unsigned status, const char *code, const char *msg);
/* Queue any response; adds X-Request-Id, CORS and extra headers, then destroys resp. */
int reply_response(struct req *r, unsigned status, struct MHD_Response *resp);

/* True if the caller may use operator endpoints (ADMIN_TOKEN or ADMIN_ALLOW_CIDRS). */
bool req_is_admin(struct req *r);

#endif
