/*
 * The SSE hub: topics ("j:<jobId>", "u:<userId>") -> the streams of this
 * process that listen to them, and each stream's queue of frames.
 *
 * Threads:
 *  - libmicrohttpd pool threads open streams (events.c) and run each
 *    stream's reader callback, which copies queued frames out, replays the
 *    job's history from Redis when needed, and suspends the connection when
 *    it has nothing to send (no thread and no CPU while idle);
 *  - the bus thread calls hub_publish() for every event and hub_gap() after
 *    a Redis reconnect; it writes each event straight to the sockets of idle
 *    streams, sharing a big topic with the hub's fan-out threads
 *    (SSE_FANOUT_THREADS - 1);
 *  - the hub's heartbeat thread queues heartbeats on idle streams (the
 *    sweep spread over SSE_HEARTBEAT_MS) and retries replays Redis refused.
 * Delivery never loses or repeats an event: history is written before an
 * event is published (same Lua script), so a stream that is replaying, or
 * that sees a sequence gap, drops the live frame and re-reads history from
 * its last delivered id; frames at or below that id are dropped as
 * duplicates.
 */
#ifndef GATEWAY_HUB_H
#define GATEWAY_HUB_H

#include <stdbool.h>
#include <stddef.h>

struct gw;
struct job_event;
struct json_object;
struct MHD_Connection;
struct MHD_Response;
struct hub;
struct stream;

/* Starts the heartbeat thread.  NULL on failure. */
struct hub *hub_new(struct gw *gw);
/* Stops the heartbeat thread and frees; every stream must have closed. NULL-safe. */
void hub_free(struct hub *h);

/* A stream of one job's events, from after last_seq (Last-Event-ID; 0 = all).
 * http_version: the request's, as libmicrohttpd gave it (it decides how
 * frames are written to the socket). */
struct stream *hub_open_job(struct hub *h, struct MHD_Connection *c, const char *http_version,
                            const char *job_id, const char *user_id, long long last_seq);
/* A stream of all of a user's jobs (live; each job replayed after a gap). */
struct stream *hub_open_user(struct hub *h, struct MHD_Connection *c, const char *http_version,
                             const char *user_id);
/* The response that streams s (text/event-stream); NULL on ENOMEM. */
struct MHD_Response *stream_response(struct stream *s);
/* For req->stream_done: the connection ended; unsubscribes and drops a reference. */
void stream_closed(void *s);

/* Bus thread: deliver one event to the streams of its job and of its user. */
void hub_publish(struct hub *h, const struct job_event *e);
/* Bus thread: events may have been missed; every stream re-reads history. */
void hub_gap(struct hub *h);
/* SIGTERM: every stream gets a retry: hint and ends; new streams are refused. */
void hub_drain(struct hub *h);

/* {"totalConnections","activeJobs","jobsWithSubscribers":[{"jobId","subscribers"}]} (capped list). */
struct json_object *hub_stats_json(struct hub *h);
long hub_stream_count(struct hub *h);

#endif
