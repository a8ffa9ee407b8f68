/*
 * server.c: the libmicrohttpd daemon and the life of one request.
 *
 * Threads: libmicrohttpd runs HTTP_THREADS pool threads, each with its own
 * epoll set; every callback below runs on the pool thread that owns the
 * connection.  A struct req lives from the URI callback (first bytes of a
 * request) to the completion callback, and is touched only by that thread
 * (SSE streams hand a suspended connection to the hub; see events.c).
 *
 * Request pipeline (access handler):
 *   1st call   early refusals that need no body: Content-Length past
 *              MAX_BODY_BYTES -> 413 (the body is never read)
 *   body calls append to req->body up to MAX_BODY_BYTES, then discard
 *   last call  X-Request-Id, client address, CORS preflight, route (404/405),
 *              admin check, content type (415), body size (413), handler
 * Every response goes through reply_response(), which adds X-Request-Id, CORS
 * and the handler's extra headers.  The completion callback writes the access
 * log line and frees the request.
 *
 * Streams: a request whose handler opened a stream (r->stream) lives as long
 * as its client stays connected, so once the handler has returned it is
 * parked: the few fields the completion needs move to a struct parked held
 * by the connection's conn_track, and the struct req (~1.3 KB with its
 * reply scratch space) is freed.  The completion rebuilds a struct req from
 * it for the log line and gw->on_request_done.  Per idle stream that is most
 * of what the gateway itself holds; the rest is libmicrohttpd's connection
 * and its HTTP_CONN_MEMORY_BYTES pool (docs/benchmarks.md).
 *
 * Slow clients: libmicrohttpd's own timeout is an idle timeout, so a client
 * that trickles one header byte a second would hold its connection for hours.
 * Every connection is therefore tracked (connection notify callback) with the
 * phase it is in and when that phase began; a reaper thread shuts down the
 * socket of a connection whose headers (or keep-alive idle gap) take longer
 * than HTTP_HEADER_TIMEOUT_S, and a body that takes longer than
 * HTTP_BODY_TIMEOUT_S is closed by the access handler (the reaper is the
 * backstop for a body that stops arriving).  shutdown(2) is issued under the
 * tracking lock, and the close notification takes the same lock before the
 * descriptor is closed, so the reaper never touches a reused descriptor.
 */
#include "gateway/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/crypto.h"
#include "common/ids.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "gateway/gateway.h"
#include "gateway/http.h"
#include "gateway/router.h"

#define CORS_ALLOW_HEADERS \
    "Authorization, Content-Type, Idempotency-Key, X-Request-Id, user-id, Last-Event-ID, If-None-Match"
#define CORS_EXPOSE_HEADERS \
    "X-Request-Id, Retry-After, RateLimit, RateLimit-Policy, ETag"
#define LISTEN_BACKLOG 4096

enum conn_phase { PH_HEADERS = 0, PH_BODY, PH_HANDLER };

/* What the completion of a parked stream request needs (see the top). */
struct parked {
    const char *method, *url;         /* libmicrohttpd's, valid until the completion */
    const struct route *route;
    void *stream;
    void (*stream_done)(void *stream);
    int64_t start_us;
    unsigned status;
    char request_id[REQ_ID_MAX];
    char peer_ip[CIDR_ADDR_STRLEN];
    char client_ip[CIDR_ADDR_STRLEN];
};

struct conn_track {
    struct conn_track *prev, *next;   /* in server.conns (NULL: out of it), under conns_lock */
    int fd;
    _Atomic int phase;                /* enum conn_phase; written by the pool thread */
    _Atomic int64_t since_ms;         /* monotonic start of the phase */
    struct parked *parked;            /* the pool thread's only: its parked request */
};

struct server {
    struct MHD_Daemon *d;
    struct gw *gw;
    unsigned port;
    pthread_mutex_t conns_lock;       /* protects conns (links) and reaper_stop */
    pthread_cond_t reaper_cv;
    struct conn_track conns;          /* list head */
    bool reaper_stop;
    bool reaper_started;
    pthread_t reaper;
    MHD_socket quiesced_fd;           /* listen socket after quiesce; closed after stop */
};

static struct conn_track *track_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void track_phase(struct MHD_Connection *c, enum conn_phase ph)
{
    struct conn_track *t = track_of(c);
    if (t) {
        atomic_store(&t->since_ms, clock_mono_ms());
        atomic_store(&t->phase, (int)ph);
    }
}

/* The reaper's list: every connection except parked streams, which have no
 * deadline left to watch (their request is answered; they only send) and
 * would make each 500 ms walk touch every idle stream (10,000 streams: ~7 ms
 * of CPU per walk, competing with event fan-outs). */
static void track_link(struct server *s, struct conn_track *t)
{
    pthread_mutex_lock(&s->conns_lock);
    if (!t->next) {
        t->next = s->conns.next;
        t->prev = &s->conns;
        s->conns.next->prev = t;
        s->conns.next = t;
    }
    pthread_mutex_unlock(&s->conns_lock);
}

static void track_unlink(struct server *s, struct conn_track *t)
{
    pthread_mutex_lock(&s->conns_lock);
    if (t->next) {
        t->prev->next = t->next;
        t->next->prev = t->prev;
        t->next = t->prev = NULL;
    }
    pthread_mutex_unlock(&s->conns_lock);
}

static void notify_conn_cb(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe)
{
    struct server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn_track *t = calloc(1, sizeof(*t));
        if (!t)
            abort();
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        t->fd = ci ? ci->connect_fd : -1;
        atomic_store(&t->since_ms, clock_mono_ms());
        track_link(s, t);
        *socket_context = t;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct conn_track *t = *socket_context;
        if (!t)
            return;
        track_unlink(s, t);
        free(t->parked);              /* NULL: the completion always comes first */
        free(t);
        *socket_context = NULL;
    }
}

static void *reaper_main(void *arg)
{
    struct server *s = arg;
    const struct config *c = s->gw->cfg;
    int64_t header_ms = c->http_header_timeout_s * 1000;
    int64_t body_ms = c->http_body_timeout_s * 1000 + 5000;   /* backstop after the 408 path */
    pthread_mutex_lock(&s->conns_lock);
    while (!s->reaper_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 500 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&s->reaper_cv, &s->conns_lock, &ts);
        int64_t now = clock_mono_ms();
        long cut = 0;
        for (struct conn_track *t = s->conns.next; t != &s->conns; t = t->next) {
            int ph = atomic_load(&t->phase);
            int64_t age = now - atomic_load(&t->since_ms);
            if (t->fd >= 0 && ((ph == PH_HEADERS && age > header_ms) || (ph == PH_BODY && age > body_ms))) {
                shutdown(t->fd, SHUT_RDWR);
                atomic_store(&t->since_ms, now);     /* once per deadline */
                cut++;
            }
        }
        if (cut)
            log_debug("slow connections cut off", LOG_INT("count", cut));
    }
    pthread_mutex_unlock(&s->conns_lock);
    return NULL;
}

/* ------------------------------------------------------------ request accessors */

const char *req_header(struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *req_query(struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *req_param(struct req *r, const char *name)
{
    return route_param(&r->match, name);
}

int req_json(struct req *r, struct json_object **ret, int *reply_result)
{
    if (r->json) {
        *ret = r->json;
        return 0;
    }
    if (!r->body || r->body_len == 0) {
        *reply_result = reply_error(r, MHD_HTTP_BAD_REQUEST, "INVALID_JSON",
                                    "Request body must be a JSON object");
        return -EINVAL;
    }
    enum jsonx_err why = JSONX_OK;
    struct json_object *o = NULL;
    int depth = (int)r->gw->cfg->max_json_depth;
    if (jsonx_parse(r->body, r->body_len, depth, &o, &why) != 0) {
        char msg[128];
        if (why == JSONX_DEPTH)
            snprintf(msg, sizeof(msg), "JSON nesting deeper than %d levels", depth);
        else
            snprintf(msg, sizeof(msg), "Malformed JSON in request body");
        *reply_result = reply_error(r, MHD_HTTP_BAD_REQUEST, "INVALID_JSON", msg);
        return -EINVAL;
    }
    if (!json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        *reply_result = reply_error(r, MHD_HTTP_BAD_REQUEST, "INVALID_JSON",
                                    "Request body must be a JSON object");
        return -EINVAL;
    }
    r->json = o;
    *ret = o;
    return 0;
}

bool req_is_admin(struct req *r)
{
    const struct config *c = r->gw->cfg;
    if (c->admin_token) {
        const char *auth = req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
        if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
            const char *tok = auth + 7;
            size_t n = strlen(tok), m = strlen(c->admin_token);
            /* compare digests so the time does not depend on the token's length either */
            uint8_t a[SHA256_LEN], b[SHA256_LEN];
            crypto_sha256(tok, n, a);
            crypto_sha256(c->admin_token, m, b);
            if (crypto_ct_equal(a, b, SHA256_LEN))
                return true;
        }
    }
    return cidr_list_match(&r->gw->admin_cidrs, r->client_ip);
}

/* ------------------------------------------------------------ replies */

void reply_header(struct req *r, const char *name, const char *value)
{
    if (r->n_extra >= REQ_MAX_EXTRA_HEADERS)
        return;
    size_t i = r->n_extra++;
    snprintf(r->extra_val[i], sizeof(r->extra_val[i]), "%s", value);
    r->extra_hdr[i][0] = name;
    r->extra_hdr[i][1] = r->extra_val[i];
}

/* Access-Control-Allow-Origin for this request, or NULL. */
static const char *cors_origin(struct req *r, bool *vary)
{
    const char *list = r->gw->cfg->cors_origins;
    *vary = false;
    if (!list || strcmp(list, "*") == 0)
        return "*";
    const char *origin = req_header(r, "Origin");
    if (!origin)
        return NULL;
    *vary = true;
    size_t on = strlen(origin);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if ((size_t)(t - p) == on && strncmp(p, origin, on) == 0)
            return origin;
        p = e;
    }
    return NULL;
}

int reply_response(struct req *r, unsigned status, struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    bool vary;
    const char *origin = cors_origin(r, &vary);
    if (origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
    }
    if (vary)
        MHD_add_response_header(resp, "Vary", "Origin");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    for (size_t i = 0; i < r->n_extra; i++)
        MHD_add_response_header(resp, r->extra_hdr[i][0], r->extra_hdr[i][1]);
    r->n_extra = 0;
    r->status = status;
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

int reply_json_text(struct req *r, unsigned status, const char *json, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)json, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return reply_response(r, status, resp);
}

int reply_json(struct req *r, unsigned status, struct json_object *body)
{
    const char *s = jsonx_to_string(body);
    int ret = reply_json_text(r, status, s, strlen(s));
    json_object_put(body);
    return ret;
}

int reply_error(struct req *r, unsigned status, const char *code, const char *msg)
{
    char buf[1024], emsg[512], ecode[128];
    jsonx_escape(msg, emsg, sizeof(emsg));
    jsonx_escape(code, ecode, sizeof(ecode));
    int n = snprintf(buf, sizeof(buf), "{\"success\":false,\"error\":%s,\"code\":%s}", emsg, ecode);
    if (n < 0 || (size_t)n >= sizeof(buf))
        n = snprintf(buf, sizeof(buf), "{\"success\":false,\"error\":\"error\",\"code\":%s}", ecode);
    return reply_json_text(r, status, buf, (size_t)n);
}

/* ------------------------------------------------------------ lifecycle */

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct server *s = cls;
    struct req *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    r->conn = conn;
    r->gw = s->gw;
    r->start_us = clock_mono_us();
    /* The decoded URL hides %00 (it truncates the string), so look at the raw one. */
    const char *q = strchr(uri, '?');
    size_t plen = q ? (size_t)(q - uri) : strlen(uri);
    for (size_t i = 0; i + 2 < plen; i++)
        if (uri[i] == '%' && uri[i + 1] == '0' && uri[i + 2] == '0')
            r->raw_has_nul = true;
    atomic_fetch_add(&s->gw->inflight, 1);
    return r;
}

static void set_identity(struct req *r)
{
    const char *rid = req_header(r, "X-Request-Id");
    if (rid && ids_is_sane(rid, REQ_ID_MAX - 1))
        snprintf(r->request_id, sizeof(r->request_id), "%s", rid);
    else
        ids_new_fast(r->request_id);

    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    r->peer_ip[0] = 0;
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->peer_ip, sizeof(r->peer_ip));
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->peer_ip, sizeof(r->peer_ip));
    }
    cidr_client_address(r->peer_ip, req_header(r, "X-Forwarded-For"),
                        (int)r->gw->cfg->trust_proxy, r->client_ip);
}

static int preflight(struct req *r, const char *allow)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", allow);
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    MHD_add_response_header(resp, "Allow", allow);
    return reply_response(r, MHD_HTTP_NO_CONTENT, resp);
}

static bool is_json_type(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    size_t n = strcspn(ct, "; ");
    return (n == 16 && strncasecmp(ct, "application/json", 16) == 0);
}

static int too_large(struct req *r)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "Request body exceeds the limit of %lld bytes",
             r->gw->cfg->max_body_bytes);
    return reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "PAYLOAD_TOO_LARGE", msg);
}

static int dispatch(struct req *r)
{
    if (r->raw_has_nul)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", "Invalid request path");

    char allow[128];
    enum router_result rr = router_match(r->gw->router, r->method, r->url, &r->match, allow, sizeof(allow));
    if (strcmp(r->method, "OPTIONS") == 0 && rr != ROUTER_OK) {
        if (rr == ROUTER_NOT_FOUND)
            return reply_error(r, MHD_HTTP_NOT_FOUND, "NOT_FOUND", "Route not found");
        return preflight(r, allow);
    }
    if (rr == ROUTER_NOT_FOUND)
        return reply_error(r, MHD_HTTP_NOT_FOUND, "NOT_FOUND", "Route not found");
    if (rr == ROUTER_METHOD_NOT_ALLOWED) {
        reply_header(r, "Allow", allow);
        return reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED",
                           "Method not allowed for this path");
    }
    const struct route *rt = r->match.route;
    if (r->gw->admit_request && !(rt->flags & (ROUTE_NO_LOG | ROUTE_ADMIT_IN_HANDLER))) {
        int result = MHD_NO;
        if (r->gw->admit_request(r, &result) != 0)
            return result;
    }
    if ((rt->flags & ROUTE_ADMIN) && !req_is_admin(r))
        return reply_error(r, MHD_HTTP_FORBIDDEN, "MONITORING_ACCESS_DENIED",
                           "Operator access requires ADMIN_TOKEN or an allowed address");
    if (rt->flags & ROUTE_BODY) {
        if (r->body_too_large)
            return too_large(r);
        if (!is_json_type(req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE)))
            return reply_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE",
                               "Content-Type must be application/json");
    } else if (r->body_too_large) {
        return too_large(r);
    }
    return rt->handler(r);
}

/*
 * After the handler of a request that opened a stream: keep what the
 * completion needs, free the rest.  The handler has queued its response (or
 * failed, and the connection is being closed); libmicrohttpd does not call
 * the access handler again once a response is queued.  true if r was freed.
 */
static bool park(struct server *s, struct req *r)
{
    struct conn_track *t = track_of(r->conn);
    if (!t || t->parked)
        return false;
    struct parked *p = malloc(sizeof(*p));
    if (!p)
        abort();
    p->method = r->method;
    p->url = r->url;
    p->route = r->match.route;
    p->stream = r->stream;
    p->stream_done = r->stream_done;
    p->start_us = r->start_us;
    p->status = r->status;
    memcpy(p->request_id, r->request_id, sizeof(p->request_id));
    memcpy(p->peer_ip, r->peer_ip, sizeof(p->peer_ip));
    memcpy(p->client_ip, r->client_ip, sizeof(p->client_ip));
    t->parked = p;
    track_unlink(s, t);              /* no deadline left to watch (see track_link) */
    if (r->json)
        json_object_put(r->json);
    free(r->body);
    free(r);
    return true;
}

/* A struct req again, for the completion: no body, no path parameters. */
static void unpark(struct req *r, const struct parked *p, struct MHD_Connection *conn,
                   struct gw *gw)
{
    memset(r, 0, sizeof(*r));
    r->conn = conn;
    r->gw = gw;
    r->method = p->method;
    r->url = p->url;
    r->match.route = p->route;
    r->stream = p->stream;
    r->stream_done = p->stream_done;
    r->start_us = p->start_us;
    r->status = p->status;
    memcpy(r->request_id, p->request_id, sizeof(r->request_id));
    memcpy(r->peer_ip, p->peer_ip, sizeof(r->peer_ip));
    memcpy(r->client_ip, p->client_ip, sizeof(r->client_ip));
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct server *s = cls;
    struct req *r = *con_cls;
    if (!r)
        return MHD_NO;               /* uri_cb always runs first; after park() no call comes */

    if (!r->method) {                /* first call: headers only */
        r->method = method;
        r->url = url;
        r->version = version;
        track_phase(conn, PH_BODY);
        set_identity(r);
        const char *cl = req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || *end || n > (unsigned long long)s->gw->cfg->max_body_bytes)
                return too_large(r);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->status)
            return MHD_YES;          /* answered early; discard */
        if (clock_mono_us() - r->start_us > s->gw->cfg->http_body_timeout_s * 1000000) {
            /* libmicrohttpd 0.9.75 cannot queue a response in the middle of a
             * body, so a body past its deadline closes the connection. */
            log_info("request body deadline passed: closing", LOG_STR("request_id", r->request_id),
                     LOG_STR("client", r->client_ip), LOG_INT("received", r->body_len));
            return MHD_NO;
        }
        size_t max = (size_t)s->gw->cfg->max_body_bytes;
        if (r->body_too_large || r->body_len + n > max) {
            r->body_too_large = true;
            return MHD_YES;
        }
        if (r->body_len + n + 1 > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap : 1024;
            while (cap < r->body_len + n + 1)
                cap *= 2;
            if (cap > max + 1)
                cap = max + 1;
            char *nb = realloc(r->body, cap);
            if (!nb)
                abort();
            r->body = nb;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        r->body[r->body_len] = 0;
        return MHD_YES;
    }
    track_phase(conn, PH_HANDLER);
    if (r->status)                   /* already answered (e.g. early 413) */
        return MHD_YES;
    enum MHD_Result ret = (enum MHD_Result)dispatch(r);
    if (r->stream && park(s, r))
        *con_cls = NULL;             /* the completion finds it in the conn_track */
    return ret;
}

static void request_end(struct server *s, struct MHD_Connection *conn, struct req *r,
                        enum MHD_RequestTerminationCode toe)
{
    track_phase(conn, PH_HEADERS);   /* keep-alive: the next request's headers are due */
    if (r->stream_done)
        r->stream_done(r->stream);
    int64_t dur_us = clock_mono_us() - r->start_us;
    bool quiet = r->match.route && (r->match.route->flags & ROUTE_NO_LOG);
    if (r->method && log_enabled(quiet ? LOG_DEBUG : LOG_INFO)) {
        static const char *why[] = { "ok", "error", "timeout", "shutdown", "read_error", "client_abort" };
        log_write(quiet ? LOG_DEBUG : LOG_INFO, "request",
                  (const struct log_kv[]){
                      LOG_STR("request_id", r->request_id),
                      LOG_STR("method", r->method),
                      LOG_STR("path", r->url),
                      LOG_INT("status", r->status),
                      LOG_DBL("ms", (double)dur_us / 1000.0),
                      LOG_STR("client", r->client_ip),
                      LOG_STR("end", (unsigned)toe < 6 ? why[toe] : "other"),
                      { .type = LOG_T_END } });
    }
    if (s->gw->on_request_done)
        s->gw->on_request_done(s->gw, r, dur_us);
    if (r->json)
        json_object_put(r->json);
    free(r->body);
    atomic_fetch_sub(&s->gw->inflight, 1);
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct server *s = cls;
    struct req *r = *con_cls;
    if (r) {
        *con_cls = NULL;
        request_end(s, conn, r, toe);
        free(r);
        return;
    }
    struct conn_track *t = track_of(conn);
    if (t && t->parked) {
        struct req tmp;
        unpark(&tmp, t->parked, conn, s->gw);
        free(t->parked);
        t->parked = NULL;
        request_end(s, conn, &tmp, toe);
        track_link(s, t);            /* keep-alive: its next request's headers are due */
    }
}

__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    (void)cls;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = 0;
    /* Peers closing or resetting connections is routine: keep it out of warn. */
    bool routine = strstr(buf, "clos") || strstr(buf, "reset") || strstr(buf, "timed out") ||
                   strstr(buf, "Application reported");
    log_write(routine ? LOG_DEBUG : LOG_WARN, "libmicrohttpd",
              (const struct log_kv[]){ LOG_STR("detail", buf), { .type = LOG_T_END } });
}

int server_start(struct gw *gw, unsigned max_connections, struct server **ret,
                 char *err, size_t errlen)
{
    const struct config *c = gw->cfg;
    struct server *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->gw = gw;
    s->conns.next = s->conns.prev = &s->conns;
    s->quiesced_fd = MHD_INVALID_SOCKET;
    pthread_mutex_init(&s->conns_lock, NULL);
    pthread_cond_init(&s->reaper_cv, NULL);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, c->listen_address, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)c->port);
    } else if (inet_pton(AF_INET6, c->listen_address, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)c->port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "invalid value for LISTEN_ADDRESS: \"%s\" (expected an IP address)",
                 c->listen_address);
        free(s);
        return -EINVAL;
    }

    s->d = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, access_cb, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)c->http_threads,
        MHD_OPTION_CONNECTION_LIMIT, max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->http_conn_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)c->http_conn_memory,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)LISTEN_BACKLOG,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)(c->http_reuseport ? 1 : 0),
        MHD_OPTION_URI_LOG_CALLBACK, uri_cb, s,
        MHD_OPTION_NOTIFY_COMPLETED, completed_cb, s,
        MHD_OPTION_NOTIFY_CONNECTION, notify_conn_cb, s,
        MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errlen, "cannot listen on %s:%lld (port in use or not permitted)",
                 c->listen_address, c->port);
        free(s);
        return -EADDRINUSE;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : (unsigned)c->port;
    if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        MHD_stop_daemon(s->d);
        free(s);
        snprintf(err, errlen, "cannot start the connection reaper thread");
        return -EAGAIN;
    }
    s->reaper_started = true;
    *ret = s;
    return 0;
}

/*
 * With a thread pool, every pool thread removes the listen socket from its
 * own epoll set after MHD_quiesce_daemon returns, asynchronously; closing the
 * descriptor now would make a late EPOLL_CTL_DEL fail, which libmicrohttpd
 * treats as fatal (abort).  So new connections are refused from here on, and
 * the descriptor itself is closed after MHD_stop_daemon.
 */
void server_quiesce(struct server *s)
{
    if (!s || !s->d || s->quiesced_fd != MHD_INVALID_SOCKET)
        return;
    s->quiesced_fd = MHD_quiesce_daemon(s->d);
    if (s->quiesced_fd != MHD_INVALID_SOCKET)
        shutdown(s->quiesced_fd, SHUT_RDWR);   /* pending and new connects are refused now */
}

void server_stop(struct server *s)
{
    if (!s)
        return;
    if (s->reaper_started) {
        pthread_mutex_lock(&s->conns_lock);
        s->reaper_stop = true;
        pthread_cond_signal(&s->reaper_cv);
        pthread_mutex_unlock(&s->conns_lock);
        pthread_join(s->reaper, NULL);
    }
    if (s->d)
        MHD_stop_daemon(s->d);
    if (s->quiesced_fd != MHD_INVALID_SOCKET)
        close(s->quiesced_fd);
    pthread_cond_destroy(&s->reaper_cv);
    pthread_mutex_destroy(&s->conns_lock);
    free(s);
}

unsigned server_port(const struct server *s)
{
    return s->port;
}

void server_resume(struct MHD_Connection *c)
{
    MHD_resume_connection(c);
}
