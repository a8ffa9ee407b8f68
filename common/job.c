/*
 * Job and event records (see job.h for the shapes).
 *
 * Everything decoded here comes from Redis, which any bug or operator can
 * write to, so decoders check sizes, types and lengths and never trust a
 * field to be what its name says; a stored record that fails the checks is
 * reported as -EINVAL, never half-used.  JSON goes through json-c with a
 * depth cap (jsonx_parse) and is written back compact, one line, without
 * escaped slashes, so the text always fits an SSE `data:` line.
 */
#include "common/job.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/jsonx.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char *const type_names[] = { "generate-flashcards", "generate-lesson" };
static const char *const state_names[] = { "waiting", "active", "delayed", "completed", "failed" };
static const char *const event_names[] = { "active", "progress", "retrying", "completed", "failed" };

const char *job_type_name(enum job_type t)
{
    return (unsigned)t < 2 ? type_names[t] : "unknown";
}

int job_type_parse(const char *s, enum job_type *ret)
{
    for (unsigned i = 0; s && i < 2; i++)
        if (strcmp(s, type_names[i]) == 0) {
            *ret = (enum job_type)i;
            return 0;
        }
    return -EINVAL;
}

const char *job_state_name(enum job_state s)
{
    return (unsigned)s < 5 ? state_names[s] : "unknown";
}

int job_state_parse(const char *s, enum job_state *ret)
{
    for (unsigned i = 0; s && i < 5; i++)
        if (strcmp(s, state_names[i]) == 0) {
            *ret = (enum job_state)i;
            return 0;
        }
    return -EINVAL;
}

/* Serialize o as a malloc'ed one-line string. */
static char *json_dup(struct json_object *o)
{
    size_t n;
    const char *s = json_object_to_json_string_length(o, JSON_FLAGS, &n);

    return s ? strndup(s, n) : NULL;
}

/* ------------------------------------------------------------ params */

struct param_member {
    const char *key;
    size_t off;
};

static const struct param_member param_members[] = {
    { "content", offsetof(struct job_params, content) },
    { "subject", offsetof(struct job_params, subject) },
    { "topic", offsetof(struct job_params, topic) },
    { "nativeLanguage", offsetof(struct job_params, native_language) },
    { "targetLanguage", offsetof(struct job_params, target_language) },
    { "sourceFileName", offsetof(struct job_params, source_file_name) },
};
#define N_PARAM_MEMBERS (sizeof(param_members) / sizeof(param_members[0]))

static char **param_slot(struct job_params *p, size_t i)
{
    return (char **)((char *)p + param_members[i].off);
}

int job_params_encode(const struct job_params *p, char **ret_json)
{
    struct json_object *o = NULL;
    char *s = NULL;
    int r = -ENOMEM;

    if (!p || !p->content)
        return -EINVAL;
    o = json_object_new_object();
    if (!o)
        goto out;
    for (size_t i = 0; i < N_PARAM_MEMBERS; i++) {
        const char *v = *param_slot((struct job_params *)p, i);
        struct json_object *js;

        if (!v)
            continue;
        js = json_object_new_string(v);
        if (!js || json_object_object_add(o, param_members[i].key, js) != 0) {
            json_object_put(js);
            goto out;
        }
    }
    s = json_dup(o);
    if (!s)
        goto out;
    *ret_json = s;
    r = 0;
out:
    json_object_put(o);
    return r;
}

int job_params_decode(enum job_type type, const char *json, size_t len, struct job_params *ret)
{
    struct job_params p = { .type = type };
    struct json_object *o = NULL;
    int r;

    r = jsonx_parse(json, len, JOB_JSON_MAX_DEPTH, &o, NULL);
    if (r < 0)
        goto out;
    r = -EINVAL;
    if (!json_object_is_type(o, json_type_object))
        goto out;
    for (size_t i = 0; i < N_PARAM_MEMBERS; i++) {
        const char *v;
        int k = jsonx_get_str(o, param_members[i].key, &v);

        if (k == -ENOENT)
            continue;
        if (k < 0)
            goto out;
        *param_slot(&p, i) = strdup(v);
        if (!*param_slot(&p, i)) {
            r = -ENOMEM;
            goto out;
        }
    }
    if (!p.content)
        goto out;
    *ret = p;
    memset(&p, 0, sizeof(p));
    r = 0;
out:
    job_params_done(&p);
    json_object_put(o);
    return r;
}

void job_params_done(struct job_params *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < N_PARAM_MEMBERS; i++) {
        free(*param_slot(p, i));
        *param_slot(p, i) = NULL;
    }
}

void job_idem_hash(const char *user, enum job_type type, const char *params_json,
                   char out[SHA256_HEX_LEN])
{
    const char *parts[3] = { user ? user : "", job_type_name(type), params_json ? params_json : "" };
    size_t lens[3], total = sizeof("flashgate-idem-v1");
    char *buf, *w;

    for (int i = 0; i < 3; i++) {
        lens[i] = strlen(parts[i]);
        total += 21 + lens[i];
    }
    buf = malloc(total);
    if (!buf)
        abort();   /* internal size (the caller capped the content) */
    w = buf + sprintf(buf, "flashgate-idem-v1");
    for (int i = 0; i < 3; i++) {
        w += sprintf(w, "\n%zu:", lens[i]);
        memcpy(w, parts[i], lens[i]);
        w += lens[i];
    }
    crypto_sha256_hex(buf, (size_t)(w - buf), out);
    free(buf);
}

/* ------------------------------------------------------------ record */

enum { SEEN_ID = 1, SEEN_USER = 2, SEEN_TYPE = 4, SEEN_STATE = 8, SEEN_ALL = 15 };

void job_record_init(struct job_record *r)
{
    memset(r, 0, sizeof(*r));
}

/* Copy value into a fixed buffer; -EINVAL if it does not fit or holds NUL. */
static int set_fixed(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap || memchr(v, '\0', n))
        return -EINVAL;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return 0;
}

static int set_heap(char **dst, const char *v, size_t n)
{
    char *s;

    if (memchr(v, '\0', n))
        return -EINVAL;
    s = strndup(v, n);
    if (!s)
        return -ENOMEM;
    free(*dst);
    *dst = s;
    return 0;
}

/* Non-negative decimal integer; "" reads as 0 (field cleared). */
static int parse_ll(const char *v, size_t n, long long *ret)
{
    long long x = 0;

    if (n > 19)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -EINVAL;
        x = x * 10 + (v[i] - '0');
    }
    *ret = x;
    return 0;
}

int job_record_set_field(struct job_record *r, const char *name, size_t name_len,
                         const char *v, size_t n)
{
    char tmp[32];
    long long x;
    int k;

#define IS(s) (name_len == sizeof(s) - 1 && memcmp(name, s, name_len) == 0)
    if (IS("id")) {
        k = set_fixed(r->id, sizeof(r->id), v, n);
        r->seen_ |= k == 0 && n > 0 ? SEEN_ID : 0;
        return k;
    }
    if (IS("user")) {
        k = set_fixed(r->user, sizeof(r->user), v, n);
        r->seen_ |= k == 0 && n > 0 ? SEEN_USER : 0;
        return k;
    }
    if (IS("type") || IS("state")) {
        if (set_fixed(tmp, sizeof(tmp), v, n) < 0)
            return -EINVAL;
        if (IS("type")) {
            enum job_type t;

            if (job_type_parse(tmp, &t) < 0)
                return -EINVAL;
            r->type = t;
            r->seen_ |= SEEN_TYPE;
        } else {
            enum job_state s;

            if (job_state_parse(tmp, &s) < 0)
                return -EINVAL;
            r->state = s;
            r->seen_ |= SEEN_STATE;
        }
        return 0;
    }
    if (IS("error_code"))
        return set_fixed(r->error_code, sizeof(r->error_code), v, n);
    if (IS("error"))
        return n ? set_heap(&r->error, v, n) : 0;
    if (IS("params"))
        return n ? set_heap(&r->params_json, v, n) : 0;
    if (IS("result"))
        return n ? set_heap(&r->result_json, v, n) : 0;

    if (!(IS("attempts") || IS("progress") || IS("created_ms") || IS("started_ms") ||
          IS("finished_ms") || IS("next_attempt_at") || IS("event_seq") ||
          IS("usage_input_tokens") || IS("usage_output_tokens")))
        return 0;   /* attempt_token, idem keys, fields added later */
    if (parse_ll(v, n, &x) < 0)
        return -EINVAL;
    if (IS("attempts"))
        r->attempts = x > INT_MAX ? INT_MAX : (int)x;
    else if (IS("progress"))
        r->progress = x > 100 ? 100 : (int)x;
    else if (IS("created_ms"))
        r->created_ms = x;
    else if (IS("started_ms"))
        r->started_ms = x;
    else if (IS("finished_ms"))
        r->finished_ms = x;
    else if (IS("next_attempt_at"))
        r->next_attempt_ms = x;
    else if (IS("event_seq"))
        r->event_seq = x;
    else if (IS("usage_input_tokens"))
        r->usage.input_tokens = x;
    else
        r->usage.output_tokens = x;
    return 0;
#undef IS
}

int job_record_check(const struct job_record *r)
{
    return (r->seen_ & SEEN_ALL) == SEEN_ALL ? 0 : -EINVAL;
}

void job_record_done(struct job_record *r)
{
    if (!r)
        return;
    free(r->error);
    free(r->params_json);
    free(r->result_json);
    r->error = r->params_json = r->result_json = NULL;
}

/* Add key → value to o; on failure the value is released.  0 or -ENOMEM. */
static int add(struct json_object *o, const char *key, struct json_object *v)
{
    if (!v || json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        return -ENOMEM;
    }
    return 0;
}

struct json_object *job_record_status_json(const struct job_record *r)
{
    struct json_object *o = json_object_new_object();
    struct json_object *res = NULL;
    int k = 0;

    if (!o)
        return NULL;
    k |= add(o, "success", json_object_new_boolean(1));
    k |= add(o, "jobId", json_object_new_string(r->id));
    k |= add(o, "type", json_object_new_string(job_type_name(r->type)));
    k |= add(o, "status", json_object_new_string(job_state_name(r->state)));
    k |= add(o, "queue", json_object_new_string("ai-jobs"));
    k |= add(o, "timestamp", json_object_new_int64(r->created_ms));
    k |= add(o, "progress", json_object_new_int(r->progress));
    k |= add(o, "attemptsMade", json_object_new_int(r->attempts));
    switch (r->state) {
    case JOB_COMPLETED:
        if (r->result_json)
            (void)jsonx_parse(r->result_json, strlen(r->result_json), JOB_JSON_MAX_DEPTH, &res, NULL);
        k |= add(o, "result", res ? res : json_object_new_null());
        k |= add(o, "completedAt", json_object_new_int64(r->finished_ms));
        break;
    case JOB_FAILED:
        k |= add(o, "error", json_object_new_string(r->error ? r->error : "Job failed"));
        k |= add(o, "errorCode", json_object_new_string(r->error_code[0] ? r->error_code : "FAILED"));
        k |= add(o, "failedAt", json_object_new_int64(r->finished_ms));
        break;
    case JOB_DELAYED:
        k |= add(o, "nextAttemptAt", json_object_new_int64(r->next_attempt_ms));
        break;
    default:
        break;
    }
    if (k) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* ------------------------------------------------------------ events */

static bool event_name_ok(const char *s)
{
    for (unsigned i = 0; i < 5; i++)
        if (strcmp(s, event_names[i]) == 0)
            return true;
    return false;
}

int job_event_encode(const struct job_event *e, char **ret, size_t *ret_len)
{
    struct json_object *o = NULL, *data = NULL;
    char *s = NULL;
    size_t n;
    const char *t;
    int r = -EINVAL;

    if (e->seq < 1 || !event_name_ok(e->name) || !e->job_id[0] || !e->user_id[0] || !e->data_json)
        return -EINVAL;
    if (jsonx_parse(e->data_json, strlen(e->data_json), JOB_JSON_MAX_DEPTH, &data, NULL) < 0)
        goto out;
    if (!json_object_is_type(data, json_type_object))
        goto out;
    r = -ENOMEM;
    o = json_object_new_object();
    if (!o || add(o, "seq", json_object_new_int64(e->seq)) < 0 ||
        add(o, "event", json_object_new_string(e->name)) < 0 ||
        add(o, "jobId", json_object_new_string(e->job_id)) < 0 ||
        add(o, "userId", json_object_new_string(e->user_id)) < 0)
        goto out;
    if (add(o, "data", data) < 0) {
        data = NULL;
        goto out;
    }
    data = NULL;
    t = json_object_to_json_string_length(o, JSON_FLAGS, &n);
    if (!t || !(s = strndup(t, n)))
        goto out;
    *ret = s;
    if (ret_len)
        *ret_len = n;
    r = 0;
out:
    json_object_put(data);
    json_object_put(o);
    return r;
}

int job_event_decode(const char *buf, size_t len, struct job_event *ret)
{
    struct job_event e = { 0 };
    struct json_object *o = NULL, *data;
    const char *s;
    int64_t seq;
    int r;

    if (len > JOB_EVENT_MAX_BYTES)
        return -EMSGSIZE;
    r = jsonx_parse(buf, len, JOB_JSON_MAX_DEPTH, &o, NULL);
    if (r < 0)
        goto out;
    r = -EINVAL;
    if (!json_object_is_type(o, json_type_object))
        goto out;
    if (jsonx_get_int(o, "seq", &seq) < 0 || seq < 1)
        goto out;
    e.seq = seq;
    if (jsonx_get_str(o, "event", &s) < 0 || strlen(s) >= sizeof(e.name) || !event_name_ok(s))
        goto out;
    strcpy(e.name, s);
    if (jsonx_get_str(o, "jobId", &s) < 0 || !*s || strlen(s) >= sizeof(e.job_id))
        goto out;
    strcpy(e.job_id, s);
    if (jsonx_get_str(o, "userId", &s) < 0 || !*s || strlen(s) >= sizeof(e.user_id))
        goto out;
    strcpy(e.user_id, s);
    if (!json_object_object_get_ex(o, "data", &data) || !json_object_is_type(data, json_type_object))
        goto out;
    r = -ENOMEM;
    e.data_json = json_dup(data);
    if (!e.data_json)
        goto out;
    *ret = e;
    r = 0;
out:
    json_object_put(o);
    return r;
}

void job_event_done(struct job_event *e)
{
    if (!e)
        return;
    free(e->data_json);
    e->data_json = NULL;
}

bool job_event_is_final(const struct job_event *e)
{
    return strcmp(e->name, "completed") == 0 || strcmp(e->name, "failed") == 0;
}

void job_event_list_done(struct job_event_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        job_event_done(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}
