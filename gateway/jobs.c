/*
 * jobs.c: POST /api/ai/generate-flashcards, POST /api/ai/generate-lesson,
 * GET /api/job-status/:jobId, GET /api/queue/stats (admin).
 *
 * Enqueue: validate (400 with every missing field named), resolve the caller
 * (auth.c), apply the contract's defaults so the same request always encodes
 * the same canonical params, then one atomic script does the idempotency
 * check, the kill-switch and queue-depth checks and the enqueue
 * (queue_enqueue_admit), with both client rate limits (per address, per
 * user: resilience_enqueue_*) in the same script: one Redis round trip per
 * submission.  A request refused before that (400/401/403/413/415) never
 * touches Redis, so it does not count against the per-address limit.  The 202 carries statusUrl and an eventsUrl with a token
 * bound to (user, job).
 *
 * Each pool thread keeps one struct queue over its thread-local Redis
 * connection (created on first use, never shared).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/ids.h"
#include "common/job.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/queue.h"
#include "common/redisx.h"
#include "gateway/auth.h"
#include "gateway/gateway.h"
#include "gateway/http.h"
#include "gateway/jobs.h"
#include "gateway/resilience.h"
#include "gateway/router.h"

#define FIELD_MAX_CHARS 500       /* subject, topic, languages, sourceFileName */
#define DEFAULT_LANGUAGE "English"
#define DEFAULT_SOURCE "Unknown Source"

static pthread_key_t queue_key;
static pthread_once_t queue_once = PTHREAD_ONCE_INIT;
static struct queue_limits queue_lim;

static void queue_key_free(void *p)
{
    queue_free(p);
}

static void queue_key_init(void)
{
    if (pthread_key_create(&queue_key, queue_key_free) != 0)
        abort();
}

void jobs_setup(const struct config *c)
{
    queue_limits_from_config(c, &queue_lim);
    pthread_once(&queue_once, queue_key_init);
}

struct queue *jobs_queue(void)
{
    struct queue *q = pthread_getspecific(queue_key);
    if (!q) {
        q = queue_new(redisx_thread(), &queue_lim);
        if (!q || pthread_setspecific(queue_key, q) != 0)
            abort();
    }
    return q;
}

int reply_redis_down(struct req *r)
{
    reply_header(r, "Retry-After", "5");
    return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "REDIS_UNAVAILABLE",
                       "The job store is unavailable; please retry shortly");
}

/* UTF-8 code points in s (bytes that are not continuation bytes). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* An optional string member: 0 (set *out, or leave the default), or queues a 400. */
static int opt_str(struct req *r, struct json_object *o, const char *key, const char **out, int *rr)
{
    const char *v;
    int rc = jsonx_get_str(o, key, &v);
    if (rc == -ENOENT)
        return 0;
    char msg[160];
    if (rc == -EINVAL) {
        snprintf(msg, sizeof(msg), "Field %s must be a string", key);
        *rr = reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", msg);
        return -EINVAL;
    }
    if (utf8_chars(v) > FIELD_MAX_CHARS) {
        snprintf(msg, sizeof(msg), "Field %s is longer than %d characters", key, FIELD_MAX_CHARS);
        *rr = reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", msg);
        return -EINVAL;
    }
    if (*v)
        *out = v;
    return 0;
}

static void add_common(struct json_object *o, const char *message, const char *job_id,
                       const char *status, const char *events_url, bool from_cache)
{
    char url[256];
    json_object_object_add(o, "success", json_object_new_boolean(1));
    json_object_object_add(o, "message", json_object_new_string(message));
    json_object_object_add(o, "jobId", json_object_new_string(job_id));
    json_object_object_add(o, "status", json_object_new_string(status));
    snprintf(url, sizeof(url), "/api/job-status/%s", job_id);
    json_object_object_add(o, "statusUrl", json_object_new_string(url));
    json_object_object_add(o, "eventsUrl", json_object_new_string(events_url));
    json_object_object_add(o, "estimatedTime", json_object_new_string("10-30 seconds"));
    json_object_object_add(o, "fromCache", json_object_new_boolean(from_cache));
}

static int enqueue(struct req *r, enum job_type type)
{
    struct gw *gw = r->gw;
    int rr = MHD_NO;
    struct json_object *o;
    if (req_json(r, &o, &rr) != 0)
        return rr;

    /* required strings: present, string, non-empty */
    static const char *const required[] = { "content", "subject", "topic" };
    const char *val[3] = { NULL, NULL, NULL };
    char missing[128] = "";
    for (size_t i = 0; i < 3; i++) {
        int rc = jsonx_get_nonempty_str(o, required[i], &val[i]);
        if (rc == -EINVAL) {
            char msg[96];
            snprintf(msg, sizeof(msg), "Field %s must be a string", required[i]);
            return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", msg);
        }
        if (rc != 0)
            snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%s%s",
                     missing[0] ? ", " : "", required[i]);
    }
    const char *body_user = NULL;
    if (jsonx_get_str(o, "userId", &body_user) == -EINVAL)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", "Field userId must be a string");

    struct identity id;
    int arc = auth_user(r, body_user, &id, &rr);
    if (arc == -EACCES)
        return rr;
    if (arc == -ENOENT)
        snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%suserId",
                 missing[0] ? ", " : "");
    if (missing[0]) {
        char msg[192];
        snprintf(msg, sizeof(msg), "Missing required fields: %s", missing);
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", msg);
    }

    if (utf8_chars(val[0]) > (size_t)gw->cfg->max_content_chars) {
        char msg[128];
        snprintf(msg, sizeof(msg), "Field content is longer than %lld characters", gw->cfg->max_content_chars);
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", msg);
    }
    const char *native = DEFAULT_LANGUAGE, *target = DEFAULT_LANGUAGE, *source = DEFAULT_SOURCE;
    const char *subject = val[1], *topic = val[2];
    if (utf8_chars(subject) > FIELD_MAX_CHARS || utf8_chars(topic) > FIELD_MAX_CHARS)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR",
                           "Fields subject and topic are limited to 500 characters");
    if (opt_str(r, o, "nativeLanguage", &native, &rr) || opt_str(r, o, "targetLanguage", &target, &rr))
        return rr;
    if (type == JOB_TYPE_LESSON && opt_str(r, o, "sourceFileName", &source, &rr))
        return rr;

    const char *idem = req_header(r, "Idempotency-Key");
    if (idem && (!*idem || strlen(idem) > QUEUE_IDEM_KEY_MAX))
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR",
                           "Idempotency-Key must be 1 to 255 characters");

    struct job_params p = {
        .type = type,
        .content = (char *)val[0],
        .subject = (char *)subject,
        .topic = (char *)topic,
        .native_language = (char *)native,
        .target_language = (char *)target,
        .source_file_name = type == JOB_TYPE_LESSON ? (char *)source : NULL,
    };
    struct queue_enqueue_result res;
    struct queue_admission adm;
    char rl_key[SHA256_HEX_LEN];
    resilience_enqueue_admission(r, id.user_id, &adm, rl_key);
    int rc = queue_enqueue_admit(jobs_queue(), id.user_id, &p, idem, &adm, &res);
    if (resilience_enqueue_answer(r, rc, &res, &rr) != 0) {
        if (rc == QUEUE_RATE_USER)
            log_info("per-user AI limit reached", LOG_STR("request_id", r->request_id),
                     LOG_STR("user_id", id.user_id));
        return rr;
    }
    if (rc == -EPERM) {
        reply_header(r, "Retry-After", "3600");
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "success", json_object_new_boolean(0));
        json_object_object_add(e, "error", json_object_new_string("Service temporarily unavailable due to budget limits"));
        json_object_object_add(e, "code", json_object_new_string("BUDGET_LIMIT_EXCEEDED"));
        json_object_object_add(e, "message", json_object_new_string("Please try again later or contact support"));
        return reply_json(r, MHD_HTTP_TOO_MANY_REQUESTS, e);
    }
    if (rc == -EBUSY) {
        reply_header(r, "Retry-After", "30");
        return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "QUEUE_FULL",
                           "Too many jobs are waiting; please retry shortly");
    }
    if (rc == -EINVAL)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "VALIDATION_ERROR", "Invalid job request");
    if (rc != 0) {
        log_warn("enqueue failed", LOG_STR("request_id", r->request_id), LOG_INT("rc", rc),
                 LOG_STR("detail", queue_last_error(jobs_queue())));
        return reply_redis_down(r);
    }

    char token[1024], events[1200];
    if (auth_sign_job_token(gw, id.user_id, res.job_id, token, sizeof(token)) < 0)
        token[0] = 0;
    snprintf(events, sizeof(events), "/api/job-events?jobId=%s&token=%s", res.job_id, token);
    const char *message = type == JOB_TYPE_LESSON ? "Lesson generation job queued successfully"
                                                  : "Flashcard generation job queued successfully";
    struct json_object *out = json_object_new_object();
    unsigned status = MHD_HTTP_ACCEPTED;
    if (res.existing && res.state == JOB_COMPLETED && res.result_json) {
        struct json_object *result = NULL;
        add_common(out, message, res.job_id, "completed", events, true);
        if (jsonx_parse(res.result_json, strlen(res.result_json), JOB_JSON_MAX_DEPTH, &result, NULL) == 0)
            json_object_object_add(out, "result", result);
        json_object_object_add(out, "cachedAt", json_object_new_int64(res.finished_ms));
        status = MHD_HTTP_OK;
    } else {
        const char *st = res.state == JOB_WAITING ? "queued" : job_state_name(res.state);
        add_common(out, message, res.job_id, st, events, res.existing);
    }
    log_info(res.existing ? "job request deduplicated" : "job queued", LOG_STR("request_id", r->request_id),
             LOG_STR("job_id", res.job_id), LOG_STR("type", job_type_name(type)),
             LOG_STR("state", job_state_name(res.state)));
    queue_enqueue_result_done(&res);
    return reply_json(r, status, out);
}

static int h_flashcards(struct req *r)
{
    return enqueue(r, JOB_TYPE_FLASHCARDS);
}

static int h_lesson(struct req *r)
{
    return enqueue(r, JOB_TYPE_LESSON);
}

int reply_job_not_found(struct req *r)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "success", json_object_new_boolean(0));
    json_object_object_add(o, "status", json_object_new_string("not_found"));
    json_object_object_add(o, "error", json_object_new_string("Job not found"));
    json_object_object_add(o, "code", json_object_new_string("NOT_FOUND"));
    return reply_json(r, MHD_HTTP_NOT_FOUND, o);
}

/*
 * Who may read a job: with AUTH_JWT_SECRET, the bearer of a valid JWT whose
 * sub owns it; in insecure development mode, the user-id header's user when
 * one is given (no header: anyone, as the mode says).  Returns 0 allowed,
 * -ENOENT (answer 404), or -EACCES with the 401 queued.
 */
static int may_read(struct req *r, const struct job_record *rec, int *rr)
{
    struct identity id;
    int rc = auth_user(r, NULL, &id, rr);
    if (rc == -EACCES)
        return -EACCES;
    if (rc == -ENOENT)
        return 0;                    /* insecure mode without an identity */
    return strcmp(id.user_id, rec->user) == 0 ? 0 : -ENOENT;
}

static int h_status(struct req *r)
{
    const char *job_id = req_param(r, "jobId");
    if (!job_id || !ids_is_sane(job_id, JOB_ID_MAX))
        return reply_job_not_found(r);
    struct job_record rec;
    int rc = queue_get(jobs_queue(), job_id, &rec);
    if (rc == -ENOENT)
        return reply_job_not_found(r);
    if (rc != 0)
        return reply_redis_down(r);
    int rr = MHD_NO;
    int ok = may_read(r, &rec, &rr);
    if (ok == -EACCES) {
        job_record_done(&rec);
        return rr;
    }
    if (ok != 0) {
        job_record_done(&rec);
        return reply_job_not_found(r);
    }
    struct json_object *o = job_record_status_json(&rec);
    job_record_done(&rec);
    if (!o)
        return MHD_NO;
    return reply_json(r, MHD_HTTP_OK, o);
}

struct json_object *queue_stats_json(const struct queue_stats *st)
{
    struct json_object *s = json_object_new_object();
    json_object_object_add(s, "queue", json_object_new_string(QUEUE_NAME));
    json_object_object_add(s, "waiting", json_object_new_int64(st->waiting));
    json_object_object_add(s, "active", json_object_new_int64(st->active));
    json_object_object_add(s, "completed", json_object_new_int64(st->completed));
    json_object_object_add(s, "failed", json_object_new_int64(st->failed));
    json_object_object_add(s, "delayed", json_object_new_int64(st->delayed));
    json_object_object_add(s, "total", json_object_new_int64(st->total));
    json_object_object_add(s, "completedTotal", json_object_new_int64(st->completed_total));
    json_object_object_add(s, "failedTotal", json_object_new_int64(st->failed_total));
    json_object_object_add(s, "workersAlive", json_object_new_int64(st->workers_alive));
    json_object_object_add(s, "workersBusy", json_object_new_int64(st->workers_busy));
    return s;
}

static int h_queue_stats(struct req *r)
{
    struct queue_stats st;
    if (queue_stats(jobs_queue(), &st) != 0)
        return reply_redis_down(r);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "success", json_object_new_boolean(1));
    json_object_object_add(o, "stats", queue_stats_json(&st));
    char iso[CLOCK_ISO_LEN];
    clock_iso8601(clock_now_ms(), iso);
    json_object_object_add(o, "timestamp", json_object_new_string(iso));
    return reply_json(r, MHD_HTTP_OK, o);
}

void routes_jobs(struct router *rt)
{
    router_add(rt, "POST", "/api/ai/generate-flashcards", h_flashcards, ROUTE_BODY | ROUTE_ADMIT_IN_HANDLER);
    router_add(rt, "POST", "/api/ai/generate-lesson", h_lesson, ROUTE_BODY | ROUTE_ADMIT_IN_HANDLER);
    router_add(rt, "GET", "/api/job-status/:jobId", h_status, 0);
    router_add(rt, "GET", "/api/queue/stats", h_queue_stats, ROUTE_ADMIN);
}
