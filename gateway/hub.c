/*
 * hub.c: topics, streams and their queues (design and threads: hub.h).
 *
 * Locks, always taken in this order:
 *   shard->lock    a shard's topic buckets and the topic membership links
 *   stream->lock   everything in struct stream below the lock
 *   (libmicrohttpd's own cleanup mutex, inside MHD_suspend/resume)
 * MHD_suspend_connection (reader callback) and MHD_resume_connection
 * (publishers) are both called with stream->lock held and the `suspended`
 * flag changed with them, so a running connection is never resumed.
 * Redis I/O (history replay) happens in the reader callback with no lock held.
 *
 * A stream has two references: the MHD response (dropped by its free
 * callback) and the request (dropped by stream_closed, which also unlinks it
 * from its topic).  Frames are shared by reference count.
 *
 * Queue bounds: SSE_MAX_QUEUE caps the frames queued for a client that does
 * not read.  History is not pushed at that cap: a replay queues at most half
 * of it and leaves need_replay set, and the reader fetches the next page
 * once the client has taken the queued frames, so a catch-up longer than the
 * cap (JOB_EVENTS_MAX > SSE_MAX_QUEUE, a user stream's many jobs) cannot
 * overflow its own stream.  Live frames past the cap overflow it: the stream
 * is cut at once (its socket is shut down, since a client that stops reading
 * leaves the reader uncalled), and the client resumes from history by id.
 * The socket is only touched under stream->lock while `closed` is false:
 * libmicrohttpd calls the completion callback (stream_closed, which takes
 * that lock) before it closes the descriptor.
 *
 * A replay that Redis refused is retried every REPLAY_RETRY_MS by the
 * heartbeat thread (not only at the next heartbeat or live event), so a
 * stream whose catch-up met a restarting Redis does not wait
 * SSE_HEARTBEAT_MS for the events it missed.
 *
 * Resumes are batched: publishers, the heartbeat sweep and gap/drain sweeps
 * collect the suspended streams they queued frames on (struct wakes, holding
 * a reference) and resume them together after the sweep.  libmicrohttpd
 * 0.9.75 walks every suspended connection of a worker each time that worker
 * wakes up for a resume; resumes that trickle in one at a time cost one walk
 * each (perf: 80 % of the gateway's CPU with 19,900 streams), a burst costs
 * one or two.
 *
 * Direct writes: a frame for a stream that is suspended with nothing queued
 * is written to its socket by the publishing thread itself (try_direct), as
 * one HTTP/1.1 chunk (or raw bytes for HTTP/1.0): no resume, no
 * libmicrohttpd pass, no suspend again.  Only when the socket is full (or
 * the stream is replaying, or has a queue) does a frame take the queue and
 * the reader.  A big topic's fan-out is shared by the bus thread and the
 * fan-out threads (SSE_FANOUT_THREADS - 1), each taking FANOUT_CHUNK streams at a
 * time; the bus thread waits for the whole fan-out before the next event,
 * so no stream sees two events out of order.
 *
 * Heartbeats go to idle streams only (nothing written for half an interval)
 * and the sweep is spread over SSE_HEARTBEAT_MS, a few shards per tick: a
 * sweep of every stream at once is a burst of one send per stream (10,000
 * streams: ~100 ms of sends) that live events would queue behind.  An idle
 * stream gets one every SSE_HEARTBEAT_MS (at most 1.5 x after its last
 * event).
 */
#include "gateway/hub.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/job.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/queue.h"
#include "gateway/gateway.h"
#include "gateway/jobs.h"
#include "gateway/sse.h"

#define SHARDS 64
#define BUCKETS_PER_SHARD 256
#define TOPIC_MAX (2 + JOB_USER_MAX + 1)
#define SEEN_MAX 64                /* jobs tracked per user stream */
#define STATS_LIST_MAX 100
/* libmicrohttpd's buffer in each stream's response object (allocated and
 * zeroed per stream).  Only an unchunked (HTTP/1.0) stream reads through it;
 * chunked streams write into the connection's memory pool.  Small: it was
 * 4 KiB of every stream's RSS (bench/sse.sh, docs/benchmarks.md). */
#define READER_BLOCK 256
#define REPLAY_RETRY_MS 250        /* a failed replay (Redis away) is retried this often */
#define MAX_QUEUE_MIN 4            /* floor of SSE_MAX_QUEUE (see hub_new) */
#define HB_TICK_MIN_MS 5           /* the heartbeat sweep's shortest step */
#define FANOUT_INLINE 64           /* topics this small are delivered by the publisher alone */
#define FANOUT_CHUNK 32            /* streams a fan-out thread takes at a time */
#define FANOUT_THREADS_MAX 15      /* SSE_FANOUT_THREADS is at most 16 */

/* How an idle stream's socket is written directly (try_direct). */
enum wire {
    WIRE_NONE,                     /* only through libmicrohttpd (unknown framing) */
    WIRE_CHUNKED,                  /* HTTP/1.1: each frame one chunk */
    WIRE_RAW,                      /* HTTP/1.0: the body is the frames, ended by the close */
};

struct topic {
    struct topic *next;            /* bucket chain */
    struct stream **m;             /* member streams (order not kept: removal swaps in the last) */
    size_t n, cap;
    char name[TOPIC_MAX];
};

struct shard {
    pthread_mutex_t lock;          /* protects buckets, topics, stream tidx/topic */
    struct topic *b[BUCKETS_PER_SHARD];
};

struct seen {
    char job_id[JOB_ID_MAX + 1];
    long long seq;
};

struct stream {
    atomic_int ref;
    struct hub *hub;
    struct MHD_Connection *conn;
    int fd;                        /* the connection's socket (see try_direct) */
    unsigned char wire;            /* enum wire */
    bool user_stream;

    /* shard lock */
    size_t tidx;                   /* index in topic->m */
    struct stream *next_free;      /* in hub->deferred */
    struct topic *topic;

    pthread_mutex_t lock;          /* protects all below */
    bool closed;                   /* connection ended */
    bool suspended;                /* MHD_suspend_connection called, not resumed */
    bool replaying;                /* history read in progress (reader thread) */
    bool need_replay;              /* history must be (re)read before more live frames */
    bool end_after_flush;          /* final event queued, or draining */
    bool overflow;                 /* client too slow: close */
    bool broken;                   /* a direct write failed or was cut short: close */
    bool gapped;                   /* a Redis gap happened while open (user streams: see deliver) */
    long long last_seq;            /* job streams: last delivered id */
    int64_t last_tx_ms;            /* monotonic: when the reader last returned bytes */
    struct seen *seen;             /* user streams: per-job last ids */
    size_t nseen;
    struct sse_frame **q;          /* ring of frames */
    size_t qhead, qlen, qcap;
    size_t qoff;                   /* bytes of q[qhead] already sent */
    char id[];                     /* the topic's id: job id (job streams) or user id */
};

/* Threads that share a big topic's fan-out with the bus thread (fanout_run). */
struct fanout {
    pthread_mutex_t lock;          /* protects all below but next */
    pthread_cond_t work_cv;        /* a new batch (gen changed) or stop */
    pthread_cond_t done_cv;        /* busy reached 0 */
    bool stop;
    unsigned long gen;             /* batch number */
    size_t busy;                   /* threads not done with the batch */
    struct stream **v;             /* the batch: streams (referenced by the caller) */
    size_t n;
    struct sse_frame *f;
    atomic_size_t next;            /* index of the next chunk to take */
    pthread_t th[FANOUT_THREADS_MAX];
    size_t nth;
};

struct hub {
    struct gw *gw;
    long max_queue;
    struct shard shards[SHARDS];
    struct fanout fan;
    pthread_mutex_t defer_lock;    /* protects fanning, deferred */
    bool fanning;                  /* a fan-out snapshot is in use */
    struct stream *deferred;       /* streams to free when it ends */
    atomic_long streams;
    atomic_bool draining;
    pthread_t hb_thread;
    pthread_mutex_t hb_lock;       /* protects hb_stop, retry_at */
    pthread_cond_t hb_cv;          /* CLOCK_MONOTONIC */
    bool hb_stop;
    int64_t retry_at;              /* monotonic ms of the next replay retry sweep, 0 none */
};

/* ------------------------------------------------------------ topics */

/* Append s to a growable array of stream pointers (first: its first capacity). */
static void streams_push(struct stream ***v, size_t *n, size_t *cap, size_t first, struct stream *s)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : first;
        struct stream **nv = realloc(*v, c * sizeof(*nv));
        if (!nv)
            abort();
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = s;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;          /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct shard *shard_of(struct hub *h, const char *name, size_t *bucket)
{
    uint64_t x = hash_str(name);
    *bucket = (size_t)((x >> 8) % BUCKETS_PER_SHARD);
    return &h->shards[x % SHARDS];
}

static struct topic *topic_find(struct shard *sh, size_t b, const char *name)
{
    for (struct topic *t = sh->b[b]; t; t = t->next)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

static void topic_name(char *out, bool user, const char *id)
{
    snprintf(out, TOPIC_MAX, "%c:%s", user ? 'u' : 'j', id);
}

static void subscribe(struct hub *h, struct stream *s)
{
    char name[TOPIC_MAX];
    topic_name(name, s->user_stream, s->id);
    size_t b;
    struct shard *sh = shard_of(h, name, &b);
    pthread_mutex_lock(&sh->lock);
    struct topic *t = topic_find(sh, b, name);
    if (!t) {
        t = calloc(1, sizeof(*t));
        if (!t)
            abort();
        snprintf(t->name, sizeof(t->name), "%s", name);
        t->next = sh->b[b];
        sh->b[b] = t;
    }
    s->tidx = t->n;
    streams_push(&t->m, &t->n, &t->cap, 4, s);
    s->topic = t;
    pthread_mutex_unlock(&sh->lock);
}

static void unsubscribe(struct hub *h, struct stream *s)
{
    char name[TOPIC_MAX];
    topic_name(name, s->user_stream, s->id);
    size_t b;
    struct shard *sh = shard_of(h, name, &b);
    pthread_mutex_lock(&sh->lock);
    struct topic *t = s->topic;
    if (t) {
        struct stream *moved = t->m[--t->n];
        t->m[s->tidx] = moved;
        moved->tidx = s->tidx;
        s->topic = NULL;
        if (t->n == 0) {
            struct topic **pp = &sh->b[b];
            while (*pp && *pp != t)
                pp = &(*pp)->next;
            if (*pp)
                *pp = t->next;
            free(t->m);
            free(t);
        } else if (t->cap > 16 && t->n < t->cap / 4) {   /* give back a crowd's array */
            struct stream **m = realloc(t->m, (t->cap / 2) * sizeof(*m));
            if (m) {
                t->m = m;
                t->cap /= 2;
            }
        }
    }
    pthread_mutex_unlock(&sh->lock);
}

/* ------------------------------------------------------------ streams */

static void stream_free(struct stream *s)
{
    while (s->qlen) {
        sse_frame_unref(s->q[s->qhead]);
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qlen--;
    }
    free(s->q);
    free(s->seen);
    pthread_mutex_destroy(&s->lock);
    atomic_fetch_sub(&s->hub->streams, 1);
    free(s);
}

/* The last reference frees the stream, or, while a fan-out holds a snapshot
 * of a topic (unreferenced pointers: see publish_topic), leaves it to
 * fanout_run to free afterwards. */
static void stream_unref(struct stream *s)
{
    if (atomic_fetch_sub(&s->ref, 1) != 1)
        return;
    struct hub *h = s->hub;
    pthread_mutex_lock(&h->defer_lock);
    if (h->fanning) {
        s->next_free = h->deferred;
        h->deferred = s;
        s = NULL;
    }
    pthread_mutex_unlock(&h->defer_lock);
    if (s)
        stream_free(s);
}

/* Caller holds s->lock. */
static void wake(struct stream *s)
{
    if (s->suspended && !s->closed) {
        s->suspended = false;
        MHD_resume_connection(s->conn);
    }
}

/* Suspended streams to resume after a sweep (see the file comment). */
struct wakes {
    struct stream **v;             /* each holds a reference */
    size_t n, cap;
};

/* Caller holds s->lock: resume s at wakes_flush(), if it is suspended now. */
static void wake_later(struct wakes *w, struct stream *s)
{
    if (!s->suspended || s->closed)
        return;
    atomic_fetch_add(&s->ref, 1);
    streams_push(&w->v, &w->n, &w->cap, 64, s);
}

/* Resume them all, back to back.  No lock held by the caller. */
static void wakes_flush(struct wakes *w)
{
    for (size_t i = 0; i < w->n; i++) {
        struct stream *s = w->v[i];
        pthread_mutex_lock(&s->lock);
        wake(s);
        pthread_mutex_unlock(&s->lock);
        stream_unref(s);
    }
    w->n = 0;
}

static void wakes_done(struct wakes *w)
{
    wakes_flush(w);
    free(w->v);
    w->v = NULL;
    w->cap = 0;
}

/* The client fell SSE_MAX_QUEUE frames behind: end its stream now.  A
 * suspended stream's reader ends it; otherwise libmicrohttpd is waiting for
 * the socket to drain (and may wait HTTP_CONN_TIMEOUT_S), so shut the socket
 * down.  Caller holds s->lock (see the file comment on the descriptor). */
static void cut(struct stream *s)
{
    if (s->closed)
        return;
    if (s->suspended) {
        wake(s);
        return;
    }
    if (s->fd >= 0)
        shutdown(s->fd, SHUT_RDWR);
}

/* Append a frame (takes a reference).  Caller holds s->lock.  false on overflow. */
static bool enqueue(struct stream *s, struct sse_frame *f)
{
    if ((long)s->qlen >= s->hub->max_queue) {
        if (!s->overflow) {
            log_info("SSE client too slow: closing its stream", LOG_STR("job_id", s->user_stream ? "" : s->id),
                     LOG_INT("queued", s->qlen));
            s->overflow = true;
            cut(s);
        }
        return false;
    }
    if (s->qlen == s->qcap) {
        size_t cap = s->qcap ? s->qcap * 2 : 4;
        struct sse_frame **nq = malloc(cap * sizeof(*nq));
        if (!nq)
            abort();
        for (size_t i = 0; i < s->qlen; i++)
            nq[i] = s->q[(s->qhead + i) % s->qcap];
        free(s->q);
        s->q = nq;
        s->qhead = 0;
        s->qcap = cap;
    }
    s->q[(s->qhead + s->qlen) % s->qcap] = sse_frame_ref(f);
    s->qlen++;
    return true;
}

/* Write f straight to an idle stream's socket: one sendmsg(), no resume and
 * no libmicrohttpd pass (at 10,000 streams on one job those were a third of
 * the fan-out's CPU: bench/sse.sh, docs/benchmarks.md).  Only while the
 * connection is suspended: libmicrohttpd then has nothing buffered (its
 * reader is called only once the previous data is sent, and suspends with
 * nothing to send) and does not touch the socket; only with nothing queued,
 * so frames keep their order; only when the framing is known (enum wire).
 * Caller holds s->lock, under which `closed` guarantees the descriptor is
 * still this connection's.
 * Returns true when f is taken care of: sent; or its unsent rest queued for
 * libmicrohttpd (HTTP/1.0: the rest of the body is just bytes); or the
 * stream cut, when the client is gone or only part of an HTTP/1.1 chunk went
 * out (the client resumes by id).  false: the socket is full, queue it. */
static bool try_direct(struct stream *s, struct sse_frame *f, struct wakes *w)
{
    if (!s->suspended || s->closed || s->qlen || s->broken || s->wire == WIRE_NONE)
        return false;
    struct iovec iov[3];
    int n = 0;
    size_t total = f->len;
    if (s->wire == WIRE_CHUNKED) {
        iov[n++] = (struct iovec){ .iov_base = f->chunk_hdr, .iov_len = f->chunk_hdr_len };
        total += f->chunk_hdr_len + 2;
    }
    iov[n++] = (struct iovec){ .iov_base = f->text, .iov_len = f->len };
    if (s->wire == WIRE_CHUNKED)
        iov[n++] = (struct iovec){ .iov_base = (char *)"\r\n", .iov_len = 2 };
    struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
    ssize_t k;
    do
        k = sendmsg(s->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (k < 0 && errno == EINTR);
    if (k == (ssize_t)total) {
        s->last_tx_ms = clock_mono_ms();
        return true;
    }
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return false;
    if (k > 0 && s->wire == WIRE_RAW) {
        enqueue(s, f);             /* the queue was empty: f is its head */
        s->qoff = (size_t)k;
        s->last_tx_ms = clock_mono_ms();
    } else {
        s->broken = true;
    }
    wake_later(w, s);
    return true;
}

/* The last delivered id for frame's job, or NULL (user stream: job not tracked yet). */
static long long *last_of(struct stream *s, const char *job_id, bool create, long long init)
{
    if (!s->user_stream)
        return &s->last_seq;
    for (size_t i = 0; i < s->nseen; i++)
        if (strcmp(s->seen[i].job_id, job_id) == 0)
            return &s->seen[i].seq;
    if (!create)
        return NULL;
    if (!s->seen) {
        s->seen = calloc(SEEN_MAX, sizeof(*s->seen));
        if (!s->seen)
            abort();
    }
    size_t slot = s->nseen < SEEN_MAX ? s->nseen++ : 0;   /* full: forget the oldest */
    if (s->nseen == SEEN_MAX && slot == 0) {
        memmove(&s->seen[0], &s->seen[1], (SEEN_MAX - 1) * sizeof(*s->seen));
        slot = SEEN_MAX - 1;
    }
    snprintf(s->seen[slot].job_id, sizeof(s->seen[slot].job_id), "%s", job_id);
    s->seen[slot].seq = init;
    return &s->seen[slot].seq;
}

/* Deliver one event frame under the dedupe/gap rules.  Caller holds s->lock.
 * A user stream starts tracking a job at its first live event (live from
 * there), but after a Redis gap from 0: that job's earlier events may be
 * exactly what the gap swallowed.  The job is tracked before a frame is left
 * to a replay in progress, or that replay would not fetch it. */
static void deliver(struct stream *s, struct sse_frame *f, struct wakes *w)
{
    if (s->closed || s->end_after_flush || s->overflow || s->broken)
        return;
    long long *last = last_of(s, f->job_id, false, 0);
    if (!last)
        last = last_of(s, f->job_id, true, s->gapped ? 0 : f->seq - 1);
    if (s->replaying || s->need_replay) {
        s->need_replay = true;     /* history has it: the replay will send it */
        wake_later(w, s);
        return;
    }
    if (f->seq <= *last)
        return;                    /* duplicate */
    if (f->seq > *last + 1) {
        s->need_replay = true;     /* gap: catch up from history first */
        wake_later(w, s);
        return;
    }
    *last = f->seq;
    bool direct = try_direct(s, f, w);
    if ((direct || enqueue(s, f)) && f->final && !s->user_stream)
        s->end_after_flush = true;
    if (!direct || s->end_after_flush)
        wake_later(w, s);
}

/* Ask the heartbeat thread to wake streams whose replay failed, soon. */
static void retry_later(struct hub *h)
{
    pthread_mutex_lock(&h->hb_lock);
    if (!h->retry_at) {
        h->retry_at = clock_mono_ms() + REPLAY_RETRY_MS;
        pthread_cond_signal(&h->hb_cv);
    }
    pthread_mutex_unlock(&h->hb_lock);
}

/* Re-read history after each tracked job's last id, at most a page (half of
 * SSE_MAX_QUEUE queued) at a time.  Reader thread, no lock held. */
static void replay(struct stream *s)
{
    size_t page = s->hub->max_queue / 2 > 0 ? (size_t)(s->hub->max_queue / 2) : 1;
    struct target {
        char job_id[JOB_ID_MAX + 1];
        long long after;
    } *tg = NULL;
    for (int round = 0; round < 8; round++) {
        size_t n = 0;
        pthread_mutex_lock(&s->lock);
        if (!s->need_replay || s->closed) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        s->need_replay = false;
        s->replaying = true;
        size_t want = s->user_stream ? s->nseen : 1;
        tg = realloc(tg, (want ? want : 1) * sizeof(*tg));
        if (!tg)
            abort();
        if (s->user_stream) {
            for (size_t i = 0; i < s->nseen; i++) {
                memcpy(tg[n].job_id, s->seen[i].job_id, sizeof(tg[n].job_id));
                tg[n++].after = s->seen[i].seq;
            }
        } else {
            snprintf(tg[0].job_id, sizeof(tg[0].job_id), "%s", s->id);
            tg[n++].after = s->last_seq;
        }
        pthread_mutex_unlock(&s->lock);

        bool failed = false, more = false;
        for (size_t i = 0; i < n && !failed && !more; i++) {
            struct job_event_list l = { 0 };
            if (queue_events_since(jobs_queue(), tg[i].job_id, tg[i].after, &l) != 0) {
                failed = true;
                break;
            }
            /* History is in id order; anything past our last id is new (if the
             * head was trimmed past it, we skip ahead rather than stall). */
            pthread_mutex_lock(&s->lock);
            long long *last = last_of(s, tg[i].job_id, false, 0);
            for (size_t k = 0; last && k < l.n; k++) {
                if (l.v[k].seq <= *last)
                    continue;
                if (s->qlen >= page) {
                    more = true;   /* the rest after the client has taken these */
                    break;
                }
                struct sse_frame *f = sse_frame_from_event(&l.v[k]);
                if (!f)
                    abort();
                *last = f->seq;
                if (enqueue(s, f) && f->final && !s->user_stream)
                    s->end_after_flush = true;
                sse_frame_unref(f);
            }
            pthread_mutex_unlock(&s->lock);
            job_event_list_done(&l);
        }
        pthread_mutex_lock(&s->lock);
        s->replaying = false;
        if (failed || more)
            s->need_replay = true; /* Redis away: retried soon; more: next page */
        bool again = s->need_replay && !failed && !more;
        pthread_mutex_unlock(&s->lock);
        if (failed)
            retry_later(s->hub);
        if (!again)
            break;
    }
    free(tg);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    (void)pos;
    for (int pass = 0; pass < 2; pass++) {
        pthread_mutex_lock(&s->lock);
        bool need = s->need_replay && !s->replaying && !s->end_after_flush && !s->overflow;
        pthread_mutex_unlock(&s->lock);
        if (need)
            replay(s);

        pthread_mutex_lock(&s->lock);
        if (s->overflow || s->broken) {
            pthread_mutex_unlock(&s->lock);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        size_t n = 0;
        while (s->qlen && n < max) {
            struct sse_frame *f = s->q[s->qhead];
            size_t left = f->len - s->qoff, take = left < max - n ? left : max - n;
            memcpy(buf + n, f->text + s->qoff, take);
            n += take;
            s->qoff += take;
            if (s->qoff == f->len) {
                sse_frame_unref(f);
                s->qhead = (s->qhead + 1) % s->qcap;
                s->qlen--;
                s->qoff = 0;
            }
        }
        if (s->qlen == 0 && s->qcap > 16) {       /* give back a burst's queue */
            free(s->q);
            s->q = NULL;
            s->qcap = s->qhead = 0;
        }
        if (n > 0) {
            s->last_tx_ms = clock_mono_ms();
            pthread_mutex_unlock(&s->lock);
            return (ssize_t)n;
        }
        if (s->end_after_flush) {
            pthread_mutex_unlock(&s->lock);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (s->need_replay && pass == 0) {
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        s->suspended = true;
        MHD_suspend_connection(s->conn);
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    return 0;
}

static void response_free(void *cls)
{
    stream_unref(cls);
}

static struct stream *open_stream(struct hub *h, struct MHD_Connection *c, const char *http_version,
                                  bool user, const char *job_id, const char *user_id, long long last_seq)
{
    if (atomic_load(&h->draining))
        return NULL;
    const char *id = user ? user_id : job_id;
    size_t idlen = strlen(id);
    if (idlen > (user ? JOB_USER_MAX : JOB_ID_MAX))
        return NULL;
    struct stream *s = calloc(1, sizeof(*s) + idlen + 1);   /* sized to the id: memory per stream */
    if (!s)
        return NULL;
    atomic_init(&s->ref, 2);      /* response + request */
    s->hub = h;
    s->conn = c;
    /* libmicrohttpd 0.9.75 chunks an unknown-length body for HTTP/1.1 (and
     * later 1.x) clients, never for HTTP/1.0; other versions: no direct writes */
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->fd = ci ? ci->connect_fd : -1;
    if (s->fd < 0 || !http_version)
        s->wire = WIRE_NONE;
    else if (strcmp(http_version, MHD_HTTP_VERSION_1_1) == 0)
        s->wire = WIRE_CHUNKED;
    else if (strcmp(http_version, MHD_HTTP_VERSION_1_0) == 0)
        s->wire = WIRE_RAW;
    else
        s->wire = WIRE_NONE;
    s->user_stream = user;
    memcpy(s->id, id, idlen + 1);
    s->last_seq = last_seq;
    s->need_replay = !user;       /* a job stream starts with its history */
    s->last_tx_ms = clock_mono_ms();
    pthread_mutex_init(&s->lock, NULL);
    atomic_fetch_add(&h->streams, 1);

    char retry[48], iso[CLOCK_ISO_LEN], data[1800], idj[6 * JOB_ID_MAX + 8], idu[6 * JOB_USER_MAX + 8];
    snprintf(retry, sizeof(retry), "retry: %lld\n\n", h->gw->cfg->sse_retry_ms);
    clock_iso8601(clock_now_ms(), iso);
    if (user) {
        jsonx_escape(user_id, idu, sizeof(idu));
        snprintf(data, sizeof(data), "{\"userId\":%s,\"message\":\"Connected to your job updates\",\"timestamp\":\"%s\"}",
                 idu, iso);
    } else {
        jsonx_escape(job_id, idj, sizeof(idj));
        snprintf(data, sizeof(data), "{\"jobId\":%s,\"message\":\"Connected to job updates\",\"timestamp\":\"%s\"}",
                 idj, iso);
    }
    struct sse_frame *f1 = sse_frame_raw(retry);
    struct sse_frame *f2 = sse_frame_event("connected", data, strlen(data), 0, NULL);
    if (!f1 || !f2)
        abort();
    pthread_mutex_lock(&s->lock);
    enqueue(s, f1);
    enqueue(s, f2);
    pthread_mutex_unlock(&s->lock);
    sse_frame_unref(f1);
    sse_frame_unref(f2);
    subscribe(h, s);              /* live frames now race the replay: deliver() handles it */
    return s;
}

struct stream *hub_open_job(struct hub *h, struct MHD_Connection *c, const char *http_version,
                            const char *job_id, const char *user_id, long long last_seq)
{
    return open_stream(h, c, http_version, false, job_id, user_id, last_seq);
}

struct stream *hub_open_user(struct hub *h, struct MHD_Connection *c, const char *http_version,
                             const char *user_id)
{
    return open_stream(h, c, http_version, true, NULL, user_id, 0);
}

struct MHD_Response *stream_response(struct stream *s)
{
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, READER_BLOCK,
                                                               reader, s, response_free);
    if (!r)
        return NULL;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    return r;
}

void stream_closed(void *p)
{
    struct stream *s = p;
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->closed = true;
    pthread_mutex_unlock(&s->lock);
    unsubscribe(s->hub, s);
    stream_unref(s);
}

/* ------------------------------------------------------------ fan-out */

/* Deliver the batch's frame to its streams, FANOUT_CHUNK at a time, until
 * none are left.  Any fan-out thread or the publisher; no lock held. */
static void fan_chunks(struct fanout *fo)
{
    struct wakes w = { 0 };
    for (;;) {
        size_t i = atomic_fetch_add(&fo->next, FANOUT_CHUNK);
        if (i >= fo->n)
            break;
        size_t end = i + FANOUT_CHUNK < fo->n ? i + FANOUT_CHUNK : fo->n;
        for (size_t k = i; k < end; k++) {
            struct stream *s = fo->v[k];
            pthread_mutex_lock(&s->lock);
            deliver(s, fo->f, &w);
            pthread_mutex_unlock(&s->lock);
        }
        wakes_flush(&w);
    }
    wakes_done(&w);
}

static void *fan_main(void *arg)
{
    struct fanout *fo = arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&fo->lock);
    for (;;) {
        while (!fo->stop && fo->gen == seen)
            pthread_cond_wait(&fo->work_cv, &fo->lock);
        if (fo->stop)
            break;
        seen = fo->gen;
        pthread_mutex_unlock(&fo->lock);
        fan_chunks(fo);
        pthread_mutex_lock(&fo->lock);
        if (--fo->busy == 0)
            pthread_cond_signal(&fo->done_cv);
    }
    pthread_mutex_unlock(&fo->lock);
    return NULL;
}

/* Deliver f to v[0..n) on the publisher and every fan-out thread; returns
 * when all are done, so the next event's fan-out cannot overtake this one on
 * any stream.  Publisher (bus thread) only. */
static void fanout_run(struct fanout *fo, struct stream **v, size_t n, struct sse_frame *f)
{
    pthread_mutex_lock(&fo->lock);
    fo->v = v;
    fo->n = n;
    fo->f = f;
    atomic_store(&fo->next, 0);
    fo->busy = fo->nth;
    fo->gen++;
    pthread_cond_broadcast(&fo->work_cv);
    pthread_mutex_unlock(&fo->lock);
    fan_chunks(fo);
    pthread_mutex_lock(&fo->lock);
    while (fo->busy)
        pthread_cond_wait(&fo->done_cv, &fo->lock);
    fo->v = NULL;
    fo->f = NULL;
    pthread_mutex_unlock(&fo->lock);
}

/* A small topic is delivered under its shard lock; a big one is taken out
 * (each stream referenced) and shared with the fan-out threads: sending to
 * 10,000 sockets is ~50 ms of one CPU.  A stream that joins the topic after
 * the snapshot starts with a history replay, which has this event. */
static void publish_topic(struct hub *h, const char *name, struct sse_frame *f)
{
    size_t b;
    struct shard *sh = shard_of(h, name, &b);
    struct wakes w = { 0 };
    pthread_mutex_lock(&sh->lock);
    struct topic *t = topic_find(sh, b, name);
    if (!t || t->n <= FANOUT_INLINE || h->fan.nth == 0) {
        for (size_t i = 0; t && i < t->n; i++) {
            struct stream *s = t->m[i];
            pthread_mutex_lock(&s->lock);
            deliver(s, f, &w);
            pthread_mutex_unlock(&s->lock);
        }
        pthread_mutex_unlock(&sh->lock);
        wakes_done(&w);
        return;
    }
    size_t n = t->n;
    struct stream **v = malloc(n * sizeof(*v));
    if (!v)
        abort();
    memcpy(v, t->m, n * sizeof(*v));
    /* No reference per stream (10,000 cache-missing atomics before the first
     * send): a stream in the topic still has its request's reference, which
     * it drops only after leaving the topic (under this lock), and from now
     * on the last unref of any stream waits for the fan-out to end. */
    pthread_mutex_lock(&h->defer_lock);
    h->fanning = true;
    pthread_mutex_unlock(&h->defer_lock);
    pthread_mutex_unlock(&sh->lock);
    fanout_run(&h->fan, v, n, f);
    free(v);
    pthread_mutex_lock(&h->defer_lock);
    h->fanning = false;
    struct stream *dead = h->deferred;
    h->deferred = NULL;
    pthread_mutex_unlock(&h->defer_lock);
    while (dead) {
        struct stream *next = dead->next_free;
        stream_free(dead);
        dead = next;
    }
}

void hub_publish(struct hub *h, const struct job_event *e)
{
    struct sse_frame *f = sse_frame_from_event(e);
    if (!f)
        return;
    char name[TOPIC_MAX];
    topic_name(name, false, e->job_id);
    publish_topic(h, name, f);
    topic_name(name, true, e->user_id);
    publish_topic(h, name, f);
    sse_frame_unref(f);
}

typedef void stream_fn(struct stream *s, struct topic *t, void *ud);

/* Run fn on every stream of shard i (shard lock held, stream lock held). */
static void for_shard(struct hub *h, size_t i, stream_fn *fn, void *ud)
{
    struct shard *sh = &h->shards[i];
    pthread_mutex_lock(&sh->lock);
    for (size_t b = 0; b < BUCKETS_PER_SHARD; b++)
        for (struct topic *t = sh->b[b]; t; t = t->next)
            for (size_t k = 0; k < t->n; k++) {
                struct stream *s = t->m[k];
                pthread_mutex_lock(&s->lock);
                fn(s, t, ud);
                pthread_mutex_unlock(&s->lock);
            }
    pthread_mutex_unlock(&sh->lock);
}

static void for_each_stream(struct hub *h, stream_fn *fn, void *ud)
{
    for (size_t i = 0; i < SHARDS; i++)
        for_shard(h, i, fn, ud);
}

static void gap_one(struct stream *s, struct topic *t, void *ud)
{
    (void)t;
    if (s->closed || s->end_after_flush)
        return;
    s->gapped = true;
    s->need_replay = true;
    wake_later(ud, s);
}

void hub_gap(struct hub *h)
{
    struct wakes w = { 0 };
    for_each_stream(h, gap_one, &w);
    wakes_done(&w);
}

struct drain_ctx {
    struct sse_frame *frame;
    struct wakes w;
};

static void drain_one(struct stream *s, struct topic *t, void *ud)
{
    struct drain_ctx *c = ud;
    (void)t;
    if (s->closed)
        return;
    if (!s->end_after_flush && !s->overflow)
        enqueue(s, c->frame);
    s->end_after_flush = true;
    wake_later(&c->w, s);
}

void hub_drain(struct hub *h)
{
    atomic_store(&h->draining, true);
    char text[64];
    snprintf(text, sizeof(text), ": server restarting, reconnect\nretry: %lld\n\n", h->gw->cfg->sse_retry_ms);
    struct drain_ctx c = { .frame = sse_frame_raw(text) };
    if (!c.frame)
        return;
    for_each_stream(h, drain_one, &c);
    sse_frame_unref(c.frame);
    wakes_done(&c.w);
}

/* ------------------------------------------------------------ heartbeats */

struct hb_ctx {
    struct topic *last_topic;      /* with its name: a freed topic's address may be reused */
    char last_name[TOPIC_MAX];
    struct sse_frame *frame;
    int64_t now, idle_ms;          /* monotonic; a stream quiet this long gets a heartbeat */
    char iso[CLOCK_ISO_LEN];
    struct wakes w;
};

static void heartbeat_one(struct stream *s, struct topic *t, void *ud)
{
    struct hb_ctx *c = ud;
    if (s->closed || s->end_after_flush)
        return;
    if (s->need_replay && !s->replaying)
        wake_later(&c->w, s);      /* retries a replay that Redis refused */
    if (s->qlen || c->now - s->last_tx_ms < c->idle_ms)
        return;                    /* busy, or written lately: no heartbeat needed */
    if (t != c->last_topic || strcmp(t->name, c->last_name) != 0) {   /* one shared frame per topic */
        sse_frame_unref(c->frame);
        char data[1800], id[6 * JOB_USER_MAX + 8];
        jsonx_escape(t->name + 2, id, sizeof(id));
        if (t->name[0] == 'j')
            snprintf(data, sizeof(data), "{\"jobId\":%s,\"connections\":%zu,\"timestamp\":\"%s\"}", id, t->n, c->iso);
        else
            snprintf(data, sizeof(data), "{\"jobId\":null,\"userId\":%s,\"connections\":%zu,\"timestamp\":\"%s\"}",
                     id, t->n, c->iso);
        c->frame = sse_frame_event("heartbeat", data, strlen(data), 0, NULL);
        c->last_topic = t;
        memcpy(c->last_name, t->name, sizeof(c->last_name));
    }
    if (!c->frame || try_direct(s, c->frame, &c->w))
        return;
    enqueue(s, c->frame);
    wake_later(&c->w, s);
}

static void retry_one(struct stream *s, struct topic *t, void *ud)
{
    (void)t;
    if (s->need_replay && !s->replaying && !s->end_after_flush)
        wake_later(ud, s);
}

/* Heartbeats: one sweep of all shards per SSE_HEARTBEAT_MS, spread over it
 * (per_tick shards every tick); in between, replay retry sweeps when asked. */
static void *heartbeat_main(void *arg)
{
    struct hub *h = arg;
    int64_t every = (int64_t)h->gw->cfg->sse_heartbeat_ms;
    int64_t tick = every / SHARDS < HB_TICK_MIN_MS ? HB_TICK_MIN_MS : every / SHARDS;
    size_t per_tick = (size_t)((SHARDS * tick + every - 1) / every), next_shard = 0;
    int64_t next_hb = clock_mono_ms() + tick;
    pthread_mutex_lock(&h->hb_lock);
    while (!h->hb_stop) {
        int64_t now = clock_mono_ms();
        bool hb = now >= next_hb, retry = h->retry_at && now >= h->retry_at;
        if (hb || retry) {
            if (hb)
                next_hb = now + tick;
            if (retry)
                h->retry_at = 0;
            pthread_mutex_unlock(&h->hb_lock);
            if (hb) {
                struct hb_ctx c = { .now = now, .idle_ms = every / 2 };
                clock_iso8601(clock_now_ms(), c.iso);
                for (size_t k = 0; k < per_tick; k++, next_shard = (next_shard + 1) % SHARDS)
                    for_shard(h, next_shard, heartbeat_one, &c);
                sse_frame_unref(c.frame);
                wakes_done(&c.w);
            }
            if (retry) {
                struct wakes w = { 0 };
                for_each_stream(h, retry_one, &w);
                wakes_done(&w);
            }
            pthread_mutex_lock(&h->hb_lock);
            continue;
        }
        int64_t until = h->retry_at && h->retry_at < next_hb ? h->retry_at : next_hb;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait_ms = until - now;
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->hb_cv, &h->hb_lock, &ts);
    }
    pthread_mutex_unlock(&h->hb_lock);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle, stats */

static void fanout_stop(struct fanout *fo)
{
    pthread_mutex_lock(&fo->lock);
    fo->stop = true;
    pthread_cond_broadcast(&fo->work_cv);
    pthread_mutex_unlock(&fo->lock);
    for (size_t i = 0; i < fo->nth; i++)
        pthread_join(fo->th[i], NULL);
    pthread_mutex_destroy(&fo->lock);
    pthread_cond_destroy(&fo->work_cv);
    pthread_cond_destroy(&fo->done_cv);
}

struct hub *hub_new(struct gw *gw)
{
    struct hub *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->gw = gw;
    /* at least the stream's first frames (retry:, connected) and a little
     * room: a smaller cap would cut every stream as it opens */
    h->max_queue = gw->cfg->sse_max_queue < MAX_QUEUE_MIN ? MAX_QUEUE_MIN : (long)gw->cfg->sse_max_queue;
    for (size_t i = 0; i < SHARDS; i++)
        pthread_mutex_init(&h->shards[i].lock, NULL);
    pthread_mutex_init(&h->hb_lock, NULL);
    pthread_mutex_init(&h->defer_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->hb_cv, &ca);
    pthread_condattr_destroy(&ca);
    struct fanout *fo = &h->fan;
    pthread_mutex_init(&fo->lock, NULL);
    pthread_cond_init(&fo->work_cv, NULL);
    pthread_cond_init(&fo->done_cv, NULL);
    atomic_init(&fo->next, 0);
    /* SSE_FANOUT_THREADS senders: the bus thread and nth more */
    long nth = gw->cfg->sse_fanout_threads - 1;
    nth = nth < 0 ? 0 : nth > FANOUT_THREADS_MAX ? FANOUT_THREADS_MAX : nth;
    for (long i = 0; i < nth; i++) {
        if (pthread_create(&fo->th[fo->nth], NULL, fan_main, fo) != 0)
            break;                 /* fewer helpers: slower big fan-outs, still correct */
        pthread_setname_np(fo->th[fo->nth], "sse-fanout");
        fo->nth++;
    }
    if (pthread_create(&h->hb_thread, NULL, heartbeat_main, h) != 0) {
        fanout_stop(fo);
        free(h);
        return NULL;
    }
    return h;
}

void hub_free(struct hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->hb_lock);
    h->hb_stop = true;
    pthread_cond_signal(&h->hb_cv);
    pthread_mutex_unlock(&h->hb_lock);
    pthread_join(h->hb_thread, NULL);
    fanout_stop(&h->fan);
    for (size_t i = 0; i < SHARDS; i++) {
        for (size_t b = 0; b < BUCKETS_PER_SHARD; b++)
            while (h->shards[i].b[b]) {
                struct topic *t = h->shards[i].b[b];
                h->shards[i].b[b] = t->next;
                free(t->m);
                free(t);
            }
        pthread_mutex_destroy(&h->shards[i].lock);
    }
    pthread_mutex_destroy(&h->hb_lock);
    pthread_mutex_destroy(&h->defer_lock);
    pthread_cond_destroy(&h->hb_cv);
    free(h);
}

long hub_stream_count(struct hub *h)
{
    return atomic_load(&h->streams);
}

struct json_object *hub_stats_json(struct hub *h)
{
    struct json_object *o = json_object_new_object(), *list = json_object_new_array();
    long jobs = 0;
    for (size_t i = 0; i < SHARDS; i++) {
        struct shard *sh = &h->shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t b = 0; b < BUCKETS_PER_SHARD; b++)
            for (struct topic *t = sh->b[b]; t; t = t->next) {
                if (t->name[0] != 'j')
                    continue;
                jobs++;
                if (json_object_array_length(list) < STATS_LIST_MAX) {
                    struct json_object *e = json_object_new_object();
                    json_object_object_add(e, "jobId", json_object_new_string(t->name + 2));
                    json_object_object_add(e, "subscribers", json_object_new_int64((int64_t)t->n));
                    json_object_array_add(list, e);
                }
            }
        pthread_mutex_unlock(&sh->lock);
    }
    json_object_object_add(o, "totalConnections", json_object_new_int64(atomic_load(&h->streams)));
    json_object_object_add(o, "activeJobs", json_object_new_int64(jobs));
    json_object_object_add(o, "jobsWithSubscribers", list);
    return o;
}
