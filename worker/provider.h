/*
 * Providers: the pure-code half.  No networking here; the worker's libcurl
 * loop sends what prompt_build_body() returns and hands the finished exchange
 * to reply_classify(); the offline provider answers without a network.
 *
 *   prompt.c            Chat Completions request body (OpenAI and Azure alike)
 *   reply.c             classify an HTTP exchange into a result or an error
 *   provider_offline.c  extractive flashcards and lessons from the text itself
 *
 * Every function here is reentrant and may be called from any thread; the
 * json-c trees they build never leave the call.  A struct outcome is filled
 * completely by reply_classify() and offline_generate() (any previous content
 * is overwritten, not freed: call outcome_done() first when reusing one).
 */
#ifndef WORKER_PROVIDER_H
#define WORKER_PROVIDER_H

#include <stddef.h>

#include "common/job.h"

/* enum job_type and struct job_params (the job's request) come from
 * common/job.h: the gateway, the queue and the providers share one definition.
 * Providers only read the params; NULL members are treated as "". */

enum outcome_kind {
    OUTCOME_OK = 0,
    OUTCOME_TRANSIENT,     /* retry with backoff, counts an attempt: 408, 409, 5xx, timeouts, connection errors */
    OUTCOME_RATE_LIMITED,  /* 429 (not quota): re-queue after retry_after_ms without spending an attempt */
    OUTCOME_PERMANENT,     /* 400/401/403/404/422, unusable reply: fail now */
    OUTCOME_QUOTA,         /* 429 insufficient_quota: permanent for the job, and trips the budget kill-switch */
};

struct outcome {
    enum outcome_kind kind;
    int http_status;           /* 0 if no HTTP response */
    long retry_after_ms;       /* from retry-after-ms, else retry-after (seconds or HTTP date), else -1 */
    char error_code[48];       /* machine code, e.g. PROVIDER_TIMEOUT, PROVIDER_HTTP_500, REPLY_NOT_JSON, ... ("" when OK) */
    char error[256];           /* sentence for a person (no secrets, no raw provider body beyond a short escaped excerpt) */
    char *result_json;         /* OK: owned malloc'ed contract result object text, e.g. {"success":true,"flashcards":[...],"tokenUsage":n,"provider":"openai","model":"gpt-4o-mini"} */
    long prompt_tokens, completion_tokens;
};

/* Frees result_json and clears the struct (kind OK, retry_after_ms -1); NULL-safe. */
void outcome_done(struct outcome *o);
/* "ok", "transient", "rate_limited", "permanent", "quota" (for logs and metrics). */
const char *outcome_kind_name(enum outcome_kind k);

/* ---- Named caps on what a provider (or a user's text) controls. */
#define REPLY_MAX_DEPTH             64      /* JSON nesting accepted in a reply (envelope and content) */
#define REPLY_MAX_CONTENT_SCAN      16      /* '{' / '[' starts tried when looking for JSON in prose */
#define RESULT_MAX_CARDS            200     /* flashcards kept from one reply */
#define RESULT_MAX_LESSONS          20      /* lessons kept from one reply */
#define RESULT_MAX_VOCAB            200     /* vocabulary items per lesson */
#define RESULT_MAX_LINES            200     /* conversation lines per lesson */
#define RESULT_MAX_TEXT_BYTES       2000    /* front, back, example, definition, message, sentences */
#define RESULT_MAX_LABEL_BYTES      200     /* topic, title, subject, speaker, pronunciation, term, model */
#define PROVIDER_MAX_RETRY_AFTER_MS (10L * 60 * 1000)  /* retry-after values are clamped to this */

/* (a) Chat Completions request body (malloc'ed JSON text, caller frees), with
 * response_format json_object, max_tokens, temperature, the system prompt and
 * the user message (which carries the whole content).  model NULL for Azure
 * (the deployment decides) and the "model" member is then omitted.
 * NULL strings in p are treated as "" (languages as "English").
 * Returns NULL on ENOMEM only. */
char *prompt_build_body(const struct job_params *p, const char *model, int max_tokens);
/* Estimated prompt+completion tokens for throttling/budget reservation before
 * the call: an upper-leaning estimate of the prompt plus max_tokens. */
long prompt_estimate_tokens(const struct job_params *p, int max_tokens);

/* (b) Classify a finished HTTP exchange.
 * transport_error: 0 if an HTTP response arrived, else a negative errno-style
 *   code (-ETIMEDOUT timeout, -ECONNRESET/-ECONNREFUSED/-EIO connection errors,
 *   -EMSGSIZE reply exceeded PROVIDER_MAX_REPLY_BYTES).
 * headers: lookup callback for response headers (case-insensitive name; the
 *   returned value is borrowed for the duration of the call) or NULL.
 * provider_name "openai"/"azure"; model is used for the result's "model" when
 *   the reply lacks one (may be NULL).
 * body/body_len: the reply body (need not be NUL-terminated; may be NULL).
 * out is filled completely; on OUTCOME_OK out->result_json is owned by out. */
void reply_classify(const struct job_params *p, const char *provider_name, const char *model,
                    int transport_error, long http_status,
                    const char *(*header)(void *ud, const char *name), void *ud,
                    const char *body, size_t body_len, struct outcome *out);

/* (c) Offline provider: deterministic (same input, byte-identical result), no
 * network.  provider "offline", model OFFLINE_MODEL, tokenUsage 0.  Text
 * without any word: OUTCOME_PERMANENT with EMPTY_CONTENT. */
#define OFFLINE_PROVIDER "offline"
#define OFFLINE_MODEL    "offline-extractive-v1"
void offline_generate(const struct job_params *p, struct outcome *out);

#endif
