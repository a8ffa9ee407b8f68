/*
 * health.c: the worker's /health and /ready.  /health is 200 while the
 * process runs (status "degraded" when Redis does not answer or it is
 * draining); /ready is 503 in those cases so orchestrators stop routing
 * probes' success to a worker that cannot take jobs.  One MHD thread; it
 * pings Redis on its own thread-local connection.
 */
#include "worker/health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/redisx.h"
#include "worker/worker.h"

struct health_server {
    struct MHD_Daemon *d;
    struct worker *w;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, struct json_object *o)
{
    const char *s = jsonx_to_string(o);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), (void *)s, MHD_RESPMEM_MUST_COPY);
    json_object_put(o);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static struct json_object *body(struct worker *w, bool *ok)
{
    long ping = redisx_ping_us(redisx_thread());
    bool redis_ok = ping >= 0;
    bool draining = atomic_load(&w->stopping);
    *ok = redis_ok && !draining;
    struct worker_stats *s = &w->stats;
    long processed = atomic_load(&s->processed), succeeded = atomic_load(&s->succeeded);

    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string(*ok ? "healthy" : "degraded"));
    json_object_object_add(o, "service", json_object_new_string("worker"));
    json_object_object_add(o, "uptime", json_object_new_int64((clock_now_ms() - w->started_ms) / 1000));
    struct json_object *st = json_object_new_object();
    json_object_object_add(st, "processed", json_object_new_int64(processed));
    json_object_object_add(st, "succeeded", json_object_new_int64(succeeded));
    json_object_object_add(st, "failed", json_object_new_int64(atomic_load(&s->failed)));
    json_object_object_add(st, "retried", json_object_new_int64(atomic_load(&s->retried)));
    json_object_object_add(st, "currentlyProcessing", json_object_new_int64(atomic_load(&s->current)));
    json_object_object_add(st, "peakConcurrency", json_object_new_int64(atomic_load(&s->peak)));
    json_object_object_add(st, "concurrency", json_object_new_int64(w->cfg->queue_concurrency));
    json_object_object_add(st, "successRate",
                           json_object_new_double(processed ? 100.0 * (double)succeeded / (double)processed : 100.0));
    json_object_object_add(o, "stats", st);
    json_object_object_add(o, "redis", json_object_new_string(redis_ok ? "connected" : "disconnected"));
    json_object_object_add(o, "provider", json_object_new_string(w->cfg->ai_provider));
    json_object_object_add(o, "draining", json_object_new_boolean(draining));
    json_object_object_add(o, "instance", json_object_new_string(w->instance_id));
    json_object_object_add(o, "pid", json_object_new_int(getpid()));
    char iso[CLOCK_ISO_LEN];
    clock_iso8601(clock_now_ms(), iso);
    json_object_object_add(o, "timestamp", json_object_new_string(iso));
    return o;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    struct health_server *h = cls;
    (void)version;
    (void)upload;
    if (!*con_cls) {               /* first call: wait for (and ignore) any body */
        *con_cls = h;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    bool is_health = strcmp(url, "/health") == 0, is_ready = strcmp(url, "/ready") == 0;
    if (!is_health && !is_ready) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "success", json_object_new_boolean(0));
        json_object_object_add(o, "error", json_object_new_string("Route not found"));
        json_object_object_add(o, "code", json_object_new_string("NOT_FOUND"));
        return reply(c, MHD_HTTP_NOT_FOUND, o);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "success", json_object_new_boolean(0));
        json_object_object_add(o, "error", json_object_new_string("Method not allowed for this path"));
        json_object_object_add(o, "code", json_object_new_string("METHOD_NOT_ALLOWED"));
        const char *s = jsonx_to_string(o);
        struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), (void *)s, MHD_RESPMEM_MUST_COPY);
        json_object_put(o);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
        MHD_add_response_header(r, "Allow", "GET, HEAD");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
        MHD_destroy_response(r);
        return ret;
    }
    bool ok;
    struct json_object *o = body(h->w, &ok);
    unsigned status = (is_ready && !ok) ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK;
    return reply(c, status, o);
}

int health_start(struct worker *w, struct health_server **ret)
{
    struct health_server *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->w = w;
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
                            (uint16_t)w->cfg->worker_health_port, NULL, NULL, access_cb, h,
                            MHD_OPTION_CONNECTION_LIMIT, 256u,
                            MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
                            MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return -EADDRINUSE;
    }
    *ret = h;
    return 0;
}

void health_stop(struct health_server *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
