/*
 * health.c: /health (liveness), /ready (readiness), /api/health (the Railway
 * health check: 200 with healthy|degraded), /api/redis/health (admin, 503
 * when Redis does not answer).  Liveness never touches Redis; readiness and
 * the detailed checks do, each with the command timeout of the thread's
 * connection, so a dead Redis costs a bounded wait (or none while backing off).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libpq-fe.h>
#include <microhttpd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/jsonx.h"
#include "common/queue.h"
#include "common/redisx.h"
#include "gateway/gateway.h"
#include "gateway/http.h"
#include "gateway/jobs.h"
#include "gateway/router.h"

/* Resident memory in MB, read from /proc at most once a second: liveness
 * probes and load balancers call /health often, and four syscalls per call
 * for a figure that moves slowly is waste. */
static long rss_mb(void)
{
    static _Atomic long cached = -1;
    static _Atomic int64_t read_at;
    int64_t now = clock_mono_ms();
    long v = atomic_load(&cached);
    if (v >= 0 && now - atomic_load(&read_at) < 1000)
        return v;
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f)
        return v > 0 ? v : 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    v = rss * sysconf(_SC_PAGESIZE) / (1024 * 1024);
    atomic_store(&cached, v);
    atomic_store(&read_at, now);
    return v;
}

static struct json_object *instance_obj(struct gw *gw)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(gw->instance_id));
    json_object_object_add(o, "pid", json_object_new_int(gw->pid));
    json_object_object_add(o, "memoryMB", json_object_new_int64(rss_mb()));
    json_object_object_add(o, "uptimeS", json_object_new_int64((clock_now_ms() - gw->started_ms) / 1000));
    return o;
}

static void add_timestamp(struct json_object *o)
{
    char iso[CLOCK_ISO_LEN];
    clock_iso8601(clock_now_ms(), iso);
    json_object_object_add(o, "timestamp", json_object_new_string(iso));
}

/* "connected" / "disconnected" / "not_configured" */
static const char *db_state(struct gw *gw)
{
    const char *url = gw->cfg->database_url;
    if (!url)
        return "not_configured";
    const char *const keys[] = { "dbname", "connect_timeout", NULL };
    const char *const vals[] = { url, "2", NULL };
    return PQpingParams(keys, vals, 1) == PQPING_OK ? "connected" : "disconnected";
}

/* Liveness is probed often: one snprintf, no JSON tree, no syscall. */
static int h_health(struct req *r)
{
    struct gw *gw = r->gw;
    char iso[CLOCK_ISO_LEN], id[6 * sizeof(gw->instance_id) + 3], body[1024];
    clock_iso8601(clock_now_ms(), iso);
    jsonx_escape(gw->instance_id, id, sizeof(id));
    int n = snprintf(body, sizeof(body),
                     "{\"status\":\"OK\",\"instance\":{\"id\":%s,\"pid\":%d,\"memoryMB\":%ld,"
                     "\"uptimeS\":%lld},\"version\":\"%s\",\"timestamp\":\"%s\"}",
                     id, gw->pid, rss_mb(), (long long)((clock_now_ms() - gw->started_ms) / 1000),
                     FLASHGATE_VERSION, iso);
    if (n < 0 || (size_t)n >= sizeof(body))
        return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "health body too long");
    return reply_json_text(r, MHD_HTTP_OK, body, (size_t)n);
}

static int h_ready(struct req *r)
{
    struct gw *gw = r->gw;
    bool draining = atomic_load(&gw->draining);
    bool redis_ok = redisx_ping_us(redisx_thread()) >= 0;
    const char *db = db_state(gw);
    bool db_ok = strcmp(db, "disconnected") != 0;
    bool ok = !draining && redis_ok && db_ok;

    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string(ok ? "ready" : "not_ready"));
    struct json_object *missing = json_object_new_array();
    if (draining)
        json_object_array_add(missing, json_object_new_string("draining"));
    if (!redis_ok)
        json_object_array_add(missing, json_object_new_string("redis"));
    if (!db_ok)
        json_object_array_add(missing, json_object_new_string("database"));
    json_object_object_add(o, "missing", missing);
    json_object_object_add(o, "instance", json_object_new_string(gw->instance_id));
    add_timestamp(o);
    return reply_json(r, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, o);
}

static int h_api_health(struct req *r)
{
    struct gw *gw = r->gw;
    bool redis_ok = redisx_ping_us(redisx_thread()) >= 0;
    const char *db = db_state(gw);
    bool healthy = redis_ok && strcmp(db, "disconnected") != 0 && !atomic_load(&gw->draining);

    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string(healthy ? "healthy" : "degraded"));
    char msg[160];
    if (healthy)
        snprintf(msg, sizeof(msg), "All services operational");
    else
        snprintf(msg, sizeof(msg), "Degraded:%s%s%s", redis_ok ? "" : " redis unavailable;",
                 strcmp(db, "disconnected") ? "" : " database unavailable;",
                 atomic_load(&gw->draining) ? " instance draining;" : "");
    json_object_object_add(o, "message", json_object_new_string(msg));
    struct json_object *svc = json_object_new_object();
    json_object_object_add(svc, "redis", json_object_new_string(redis_ok ? "connected" : "disconnected"));
    json_object_object_add(svc, "database", json_object_new_string(db));
    char providers[128] = "";
    if (redis_ok && queue_worker_providers(jobs_queue(), providers, sizeof(providers)) != 0)
        providers[0] = 0;
    /* what the live workers run, e.g. "openai" or "offline"; "none" without workers */
    json_object_object_add(svc, "provider", json_object_new_string(providers[0] ? providers : "none"));
    json_object_object_add(o, "services", svc);
    json_object_object_add(o, "auth", json_object_new_string(gw->cfg->auth_jwt_secret ? "jwt" : "insecure-dev"));
    json_object_object_add(o, "instance", instance_obj(gw));
    json_object_object_add(o, "version", json_object_new_string(FLASHGATE_VERSION));
    add_timestamp(o);
    return reply_json(r, MHD_HTTP_OK, o);
}

static int h_redis_health(struct req *r)
{
    long us = redisx_ping_us(redisx_thread());
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "success", json_object_new_boolean(us >= 0));
    json_object_object_add(o, "redis", json_object_new_string(us >= 0 ? "connected" : "disconnected"));
    if (us >= 0)
        json_object_object_add(o, "latencyMs", json_object_new_double((double)us / 1000.0));
    else {
        json_object_object_add(o, "error", json_object_new_string("Redis is not answering"));
        json_object_object_add(o, "code", json_object_new_string("REDIS_UNAVAILABLE"));
    }
    add_timestamp(o);
    return reply_json(r, us >= 0 ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, o);
}

void routes_health(struct router *rt)
{
    router_add(rt, "GET", "/health", h_health, ROUTE_NO_LOG);
    router_add(rt, "GET", "/ready", h_ready, ROUTE_NO_LOG);
    router_add(rt, "GET", "/api/health", h_api_health, ROUTE_NO_LOG);
    router_add(rt, "GET", "/api/redis/health", h_redis_health, ROUTE_ADMIN);
}
