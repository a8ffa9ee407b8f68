/*
 * events.c: GET /api/job-events (one job), GET /api/events (all of a user's
 * jobs), GET /api/sse/stats (admin).
 *
 * Tokens (EventSource cannot send headers): a job stream takes the
 * job-bound token from eventsUrl, or a user JWT (Authorization or
 * access_token); the user stream takes a user JWT.  In insecure development
 * mode none is required; the user-id header or userId parameter, when given,
 * still restricts a job stream to its owner.  Tokens are never logged (the
 * access log records the path only).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/ids.h"
#include "common/job.h"
#include "common/queue.h"
#include "gateway/auth.h"
#include "gateway/gateway.h"
#include "gateway/http.h"
#include "gateway/hub.h"
#include "gateway/jobs.h"
#include "gateway/router.h"

static int unauthorized(struct req *r, const char *msg)
{
    return reply_error(r, MHD_HTTP_UNAUTHORIZED, "UNAUTHORIZED", msg);
}

static int draining(struct req *r)
{
    char ra[24];
    snprintf(ra, sizeof(ra), "%lld", (r->gw->cfg->sse_retry_ms + 999) / 1000);
    reply_header(r, "Retry-After", ra);
    return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE",
                       "This instance is shutting down; reconnect to another");
}

/* A user JWT from Authorization: Bearer or ?access_token=.  0 or -EACCES. */
static int user_from_jwt(struct req *r, struct identity *id)
{
    const char *tok = req_query(r, "access_token");
    const char *auth = req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!tok && auth && strncasecmp(auth, "Bearer ", 7) == 0)
        tok = auth + 7;
    return tok ? auth_verify_user_token(r->gw, tok, id) : -EACCES;
}

/* Last-Event-ID header or lastEventId parameter: 0 none, 1 parsed, -EINVAL. */
static int last_event_id(struct req *r, long long *ret)
{
    const char *v = req_header(r, "Last-Event-ID");
    if (!v || !*v)
        v = req_query(r, "lastEventId");
    *ret = 0;
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || x < 0)
        return -EINVAL;
    *ret = x;
    return 1;
}

static int h_job_events(struct req *r)
{
    struct gw *gw = r->gw;
    if (atomic_load(&gw->draining))
        return draining(r);
    const char *job_id = req_query(r, "jobId");
    if (!job_id || !*job_id)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", "jobId is required");
    if (!ids_is_sane(job_id, JOB_ID_MAX))
        return reply_job_not_found(r);
    long long last = 0;
    if (last_event_id(r, &last) < 0)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", "Last-Event-ID must be a number");

    /* who is asking */
    char user[JWT_SUB_MAX] = "";
    const char *token = req_query(r, "token");
    struct identity id;
    if (token && auth_verify_job_token(gw, token, job_id, user) == 0) {
        /* the job-bound token names its user */
    } else if (user_from_jwt(r, &id) == 0) {
        snprintf(user, sizeof(user), "%s", id.user_id);
    } else if (!auth_insecure(gw)) {
        return unauthorized(r, token ? "Invalid or expired stream token" : "A stream token is required");
    } else {
        const char *u = req_header(r, "user-id");
        if (!u || !*u)
            u = req_query(r, "userId");
        if (u)
            snprintf(user, sizeof(user), "%s", u);
    }

    struct job_record rec;
    int rc = queue_get(jobs_queue(), job_id, &rec);
    if (rc == -ENOENT)
        return reply_job_not_found(r);
    if (rc != 0)
        return reply_redis_down(r);
    bool mine = !user[0] || strcmp(user, rec.user) == 0;
    bool finished = job_state_is_final(rec.state) && last >= rec.event_seq && rec.event_seq > 0;
    char owner[JOB_USER_MAX + 1];
    snprintf(owner, sizeof(owner), "%s", rec.user);
    job_record_done(&rec);
    if (!mine)
        return reply_job_not_found(r);
    if (finished) {                /* the client has the final event: tell EventSource to stop */
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        return reply_response(r, MHD_HTTP_NO_CONTENT, resp);
    }
    struct stream *s = hub_open_job(gw->hub, r->conn, r->version, job_id, owner, last);
    if (!s)
        return draining(r);
    r->stream = s;
    r->stream_done = stream_closed;
    return reply_response(r, MHD_HTTP_OK, stream_response(s));
}

static int h_user_events(struct req *r)
{
    struct gw *gw = r->gw;
    if (atomic_load(&gw->draining))
        return draining(r);
    struct identity id;
    char user[JWT_SUB_MAX] = "";
    if (user_from_jwt(r, &id) == 0) {
        snprintf(user, sizeof(user), "%s", id.user_id);
    } else if (!auth_insecure(gw)) {
        return unauthorized(r, "access_token (a user JWT) is required");
    } else {
        const char *u = req_header(r, "user-id");
        if (!u || !*u)
            u = req_query(r, "userId");
        if (!u || !*u)
            return unauthorized(r, "A user-id header or userId parameter is required");
        if (strlen(u) >= sizeof(user))
            return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", "userId is too long");
        snprintf(user, sizeof(user), "%s", u);
    }
    struct stream *s = hub_open_user(gw->hub, r->conn, r->version, user);
    if (!s)
        return draining(r);
    r->stream = s;
    r->stream_done = stream_closed;
    return reply_response(r, MHD_HTTP_OK, stream_response(s));
}

static int h_sse_stats(struct req *r)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "success", json_object_new_boolean(1));
    json_object_object_add(o, "sse", hub_stats_json(r->gw->hub));
    json_object_object_add(o, "instance", json_object_new_string(r->gw->instance_id));
    char iso[CLOCK_ISO_LEN];
    clock_iso8601(clock_now_ms(), iso);
    json_object_object_add(o, "timestamp", json_object_new_string(iso));
    return reply_json(r, MHD_HTTP_OK, o);
}

void routes_events(struct router *rt)
{
    router_add(rt, "GET", "/api/job-events", h_job_events, ROUTE_STREAM);
    router_add(rt, "GET", "/api/events", h_user_events, ROUTE_STREAM);
    router_add(rt, "GET", "/api/sse/stats", h_sse_stats, ROUTE_ADMIN);
}
