/*
 * httpc: an HTTP client engine over libcurl's multi interface.  One engine
 * thread drives every transfer with curl_multi_poll, so hundreds of provider
 * calls can be in flight without a thread (or a blocked stack) per call.
 *
 * Threads: httpc_submit() and httpc_cancel() may be called from any thread
 * (they post to a locked inbox and wake the engine with curl_multi_wakeup);
 * completion callbacks run on the engine thread and must not block: they
 * classify the reply and hand the result to another thread.
 *
 * Limits: a reply body larger than max_reply_bytes aborts the transfer
 * (transport_error -EMSGSIZE); response headers are capped at
 * HTTPC_MAX_HEADER_BYTES; every transfer has a total and a connect timeout.
 */
#ifndef WORKER_HTTPC_H
#define WORKER_HTTPC_H

#include <stddef.h>
#include <stdint.h>

#define HTTPC_MAX_HEADER_BYTES (32 * 1024)
#define HTTPC_MAX_REQ_HEADERS 8

struct httpc_limits {
    long max_reply_bytes;
    long timeout_ms;
    long connect_timeout_ms;
    long max_host_connections;     /* 0 = unlimited */
};

struct httpc_result {
    int transport_error;           /* 0, or -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -EMSGSIZE, -EIO, -ECANCELED */
    long status;                   /* HTTP status, 0 without a response */
    const char *body;              /* NUL-terminated, borrowed until the callback returns */
    size_t body_len;
    double total_ms;
    /* Response header lookup (case-insensitive), borrowed until the callback returns. */
    const char *(*header)(void *hud, const char *name);
    void *hud;
};

/* Called once per submitted request, on the engine thread. */
typedef void (*httpc_done_fn)(void *ud, const struct httpc_result *res);

struct httpc;

/* Starts the engine thread.  NULL on failure. */
struct httpc *httpc_new(const struct httpc_limits *lim);
/* Stops the engine: transfers still running complete with -ECANCELED.  NULL-safe. */
void httpc_free(struct httpc *h);

/*
 * POST body (takes ownership; freed by the engine) to url with the given
 * header lines ("Name: value"; copied; up to HTTPC_MAX_REQ_HEADERS).
 * Returns a request id > 0 (for httpc_cancel), or -ENOMEM / -ESHUTDOWN.
 * When an id is returned, done is called exactly once, even if the engine shuts down;
 * on an error return it is never called.
 */
int64_t httpc_post(struct httpc *h, const char *url, const char *const *headers, size_t nheaders,
                   char *body, httpc_done_fn done, void *ud);
/* Abort a request: its callback runs with -ECANCELED (unless it already finished). */
void httpc_cancel(struct httpc *h, int64_t id);
/* Transfers currently submitted and not yet completed. */
size_t httpc_inflight(struct httpc *h);

#endif
