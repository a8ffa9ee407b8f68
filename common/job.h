/*
 * Job and event records: the contract between the gateway (which enqueues
 * jobs, answers status requests and streams events) and the worker (which
 * runs them).  Pure data and text: nothing here talks to Redis (queue.h
 * does), so the SSE code, the worker and the tests share one definition.
 *
 * - struct job_params: what a job asks for; stored in the job record as one
 *   canonical JSON object (fixed member order), which is also what the
 *   idempotency hash covers (with the user and the type).
 * - struct job_record: a job as stored in Redis (decoded field by field from
 *   HGETALL, defensively), and its contract JSON for GET /api/job-status.
 * - struct job_event: one state-change event.  Stored in the job's history
 *   and published on pub/sub as one line of JSON text:
 *     {"seq":3,"event":"progress","jobId":"..","userId":"..","data":{...}}
 *   `data` is the object the SSE `data:` line carries; seq is the SSE `id:`.
 *   The Lua scripts (common/lua/common.lua, emit()) write this same shape.
 *
 * Ownership: char * members of these structs are heap strings owned by the
 * struct after a decode; release them with the matching *_done (NULL-safe,
 * idempotent).  All functions are thread-safe (no shared state).
 */
#ifndef COMMON_JOB_H
#define COMMON_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/crypto.h"

struct json_object;

#define JOB_ID_MAX          64      /* longest job id accepted (ours: 32 hex chars) */
#define JOB_USER_MAX        256     /* longest user id (bytes) */
#define JOB_TOKEN_MAX       64      /* attempt token (ours: 32 hex chars) */
#define JOB_CODE_MAX        64      /* error codes, e.g. DEADLINE_EXCEEDED */
#define JOB_EVENT_NAME_MAX  16      /* incl. NUL: active|progress|retrying|completed|failed */
#define JOB_JSON_MAX_DEPTH  64      /* nesting accepted in stored params/results/events */
#define JOB_EVENT_MAX_BYTES (64u << 20)   /* largest event text decoded (a result rides in `completed`) */

enum job_type { JOB_TYPE_FLASHCARDS = 0, JOB_TYPE_LESSON = 1 };

/* "generate-flashcards" / "generate-lesson". */
const char *job_type_name(enum job_type t);
/* 0 or -EINVAL. */
int job_type_parse(const char *s, enum job_type *ret);

enum job_state { JOB_WAITING = 0, JOB_ACTIVE, JOB_DELAYED, JOB_COMPLETED, JOB_FAILED };

/* "waiting" | "active" | "delayed" | "completed" | "failed": the contract's status. */
const char *job_state_name(enum job_state s);
int job_state_parse(const char *s, enum job_state *ret);
static inline bool job_state_is_final(enum job_state s)
{
    return s == JOB_COMPLETED || s == JOB_FAILED;
}

/* ------------------------------------------------------------ params */

/*
 * What a job asks for.  NULL members are absent (the gateway applies the
 * contract's defaults before encoding, so the same request always encodes
 * the same way).  source_file_name is used by lessons only.
 */
struct job_params {
    enum job_type type;
    char *content;
    char *subject;
    char *topic;
    char *native_language;
    char *target_language;
    char *source_file_name;
};

/*
 * Canonical JSON text (one line, members in the order above, named as in the
 * request: content, subject, topic, nativeLanguage, targetLanguage,
 * sourceFileName; type is not included).  *ret_json is malloc'ed, caller
 * frees.  The members of *p are borrowed.  0, -EINVAL (no content), -ENOMEM.
 */
int job_params_encode(const struct job_params *p, char **ret_json);
/*
 * Decode stored params (untrusted text: depth-capped, members type-checked;
 * unknown members ignored).  Fills *ret with heap copies (free with
 * job_params_done).  0, -EINVAL (not an object, wrong member types, no
 * content), -ENOMEM.
 */
int job_params_decode(enum job_type type, const char *json, size_t len, struct job_params *ret);
void job_params_done(struct job_params *p);

/*
 * Idempotency hash of a request: SHA-256 over the user, the type and the
 * canonical params JSON (the whole content, every parameter including
 * targetLanguage), each length-prefixed so no two requests collide by
 * concatenation.  out: 64 hex chars + NUL.
 */
void job_idem_hash(const char *user, enum job_type type, const char *params_json,
                   char out[SHA256_HEX_LEN]);

/* ------------------------------------------------------------ record */

struct job_usage {
    long long input_tokens;      /* provider-reported prompt tokens */
    long long output_tokens;     /* provider-reported completion tokens */
};

struct job_record {
    char id[JOB_ID_MAX + 1];
    enum job_type type;
    char user[JOB_USER_MAX + 1];
    enum job_state state;
    int attempts;                /* attempts spent (attemptsMade) */
    int progress;                /* 0..100 */
    int64_t created_ms;
    int64_t started_ms;          /* start of the current/last attempt, 0 if never */
    int64_t finished_ms;         /* completed or failed, else 0 */
    int64_t next_attempt_ms;     /* delayed: when it becomes due, else 0 */
    struct job_usage usage;
    long long event_seq;         /* seq of the newest event (0: none yet) */
    char error_code[JOB_CODE_MAX + 1];   /* last error's code ("" none) */
    char *error;                 /* owned; last error message, NULL if none */
    char *params_json;           /* owned; canonical params, NULL if absent */
    char *result_json;           /* owned; completed only, NULL otherwise */
    unsigned seen_;              /* internal: required fields decoded so far */
};

/* Zero the record (before decoding fields into it). */
void job_record_init(struct job_record *r);
/*
 * Decode one stored field (name, value as bytes from Redis) into *r.
 * Unknown names are ignored; an over-long or malformed value of a known
 * field returns -EINVAL (the record is then unusable).  0, -EINVAL, -ENOMEM.
 */
int job_record_set_field(struct job_record *r, const char *name, size_t name_len,
                         const char *value, size_t value_len);
/* After all fields: 0 if id, user, type and state were present, else -EINVAL. */
int job_record_check(const struct job_record *r);
void job_record_done(struct job_record *r);

/*
 * The contract body of GET /api/job-status/:jobId for this record:
 * {"success":true,"jobId","type","status","queue":"ai-jobs","timestamp":<created ms>,
 *  "progress","attemptsMade"} plus "result","completedAt" (completed),
 * "error","errorCode","failedAt" (failed), "nextAttemptAt" (delayed).
 * Ownership checks are the caller's (compare r->user).  New object owned by
 * the caller (json_object_put), or NULL on allocation failure.
 */
struct json_object *job_record_status_json(const struct job_record *r);

/* ------------------------------------------------------------ events */

struct job_event {
    long long seq;                       /* per-job, 1, 2, 3, ... */
    char name[JOB_EVENT_NAME_MAX];       /* active|progress|retrying|completed|failed */
    char job_id[JOB_ID_MAX + 1];
    char user_id[JOB_USER_MAX + 1];
    char *data_json;                     /* owned; the data object, one line */
};

/* A list of events owned by the list (job_event_list_done frees all). */
struct job_event_list {
    struct job_event *v;
    size_t n;
};

/*
 * Encode as the stored/published text.  e->data_json must be one JSON object
 * (it is embedded as is).  *ret is malloc'ed (caller frees); *ret_len may be
 * NULL.  0, -EINVAL (bad name/ids/seq or data not an object), -ENOMEM.
 */
int job_event_encode(const struct job_event *e, char **ret, size_t *ret_len);
/*
 * Decode stored/published text (untrusted: size- and depth-capped, types and
 * lengths checked, event name one of the five).  data_json is re-serialized
 * compactly, so it is always one line.  0, -EINVAL, -EMSGSIZE (over
 * JOB_EVENT_MAX_BYTES), -ENOMEM.  On failure *ret holds nothing to free.
 */
int job_event_decode(const char *buf, size_t len, struct job_event *ret);
void job_event_done(struct job_event *e);
/* completed or failed: the stream ends after it. */
bool job_event_is_final(const struct job_event *e);

void job_event_list_done(struct job_event_list *l);

#endif
