/*
 * Server-Sent Events frames.  A frame is encoded once per event and shared
 * (reference-counted) by every stream that sends it, across threads.
 *
 * Encoding follows the WHATWG event-stream format: `event: <name>`, then the
 * data split on CR, LF and CRLF into one `data: ` line each (our data is
 * compact JSON, so always exactly one line), then `id: <seq>` when seq > 0,
 * then a blank line.  A parser therefore reads back exactly the data given
 * (with any CRLF/CR normalized to LF, which JSON text never contains).
 */
#ifndef GATEWAY_SSE_H
#define GATEWAY_SSE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/job.h"

struct sse_frame {
    atomic_int ref;
    long long seq;                 /* event id, 0 for connected/heartbeat/comments */
    bool final;                    /* completed or failed: the stream ends after it */
    char job_id[JOB_ID_MAX + 1];   /* "" when not about one job */
    size_t len;
    /* "<len in hex>\r\n": the frame as one HTTP/1.1 chunk is chunk_hdr, text,
     * "\r\n" (the hub writes frames to idle streams' sockets itself) */
    char chunk_hdr[20];
    unsigned char chunk_hdr_len;
    char text[];                   /* NUL-terminated */
};

/* New frame with ref 1.  name/id must not contain CR or LF (checked: NULL).
 * NULL on ENOMEM or bad name. */
struct sse_frame *sse_frame_event(const char *name, const char *data, size_t data_len,
                                  long long seq, const char *job_id);
/* A frame from a stored job event (seq, name, job id, data). */
struct sse_frame *sse_frame_from_event(const struct job_event *e);
/* Raw text, e.g. "retry: 3000\n\n" or ": comment\n\n". */
struct sse_frame *sse_frame_raw(const char *text);

struct sse_frame *sse_frame_ref(struct sse_frame *f);
void sse_frame_unref(struct sse_frame *f);     /* NULL-safe */

/* Encode into out (cap bytes).  Returns the length needed (excluding NUL),
 * like snprintf; -EINVAL for a bad name. */
long sse_encode(const char *name, const char *data, size_t data_len, long long seq,
                char *out, size_t cap);

#endif
