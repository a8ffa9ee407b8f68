/*
 * fake-provider: a stand-in for the OpenAI Chat Completions API and Azure
 * OpenAI, for tests and benchmarks.  It speaks both wire formats (paths,
 * auth headers, success envelope, error envelopes, rate-limit headers) and
 * injects faults on command through a small JSON control API under /_fake/
 * (documented in tests/support/fake-provider.md).
 *
 * Threads.  libmicrohttpd runs an epoll thread pool (--threads, default the
 * number of CPUs) that calls every handler.  One timer thread owns the parked
 * connections: a delayed or hanging answer suspends its connection
 * (MHD_suspend_connection) instead of holding a thread, so thousands can wait
 * at once.  The timer thread keeps a min-heap of deadlines and an epoll set
 * that watches each parked socket for the client hanging up (MHD does not
 * notice a disconnect while a connection is suspended), and it is the only
 * thread that resumes connections.
 *
 * Lifetimes.  A struct req lives from the first handler call of a request to
 * MHD's completion callback.  MHD cannot complete a suspended connection, so
 * a req in the heap or the epoll set is always valid; it leaves both (under
 * g.park) before the timer thread resumes it.
 *
 * Locks.  g.ctl protects the script, the default step and all statistics; it
 * is never held across an MHD call.  g.park protects the heap, the parked
 * list and the epoll set; it is held across MHD_suspend/resume_connection and
 * never taken in the completion callback.  Steps are immutable once parsed
 * and shared by atomic reference counts; json-c trees never leave the handler
 * call that built them.
 *
 * Shutdown (SIGTERM/SIGINT): stop parking, resume every parked connection
 * (they close without an answer), wait until MHD has taken them all back,
 * then MHD_stop_daemon (which panics on a connection still suspended).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <json-c/json.h>
#include <microhttpd.h>

/* ---- Named caps: everything a client or a test controls is bounded. */
#define FAKE_ARRIVALS_MAX     100000            /* arrivals kept for /_fake/stats (a ring) */
#define FAKE_MAX_BODY_BYTES   (16u << 20)       /* request body; beyond: 413 */
#define FAKE_SCRIPT_MAX_STEPS 10000             /* steps in one script */
#define FAKE_STEP_MAX_COUNT   1000000000L       /* "count" of one step */
#define FAKE_MAX_DELAY_MS     3600000LL         /* "delayMs" */
#define FAKE_MAX_RETRY_S      86400LL           /* "retryAfter" */
#define FAKE_HUGE_MAX_BYTES   (1ULL << 36)      /* "bytes" of a huge answer (64 GiB) */
#define FAKE_STEP_STR_MAX     (1u << 20)        /* "content", "body", "message", ... */
#define FAKE_PATHS_MAX        256               /* distinct paths counted in byPath */
#define FAKE_FIELD_MAX        96                /* chars kept of a path, model, deployment */
#define FAKE_JSON_DEPTH       64                /* nesting accepted in request bodies */
#define FAKE_POOL_MAX         64                /* --threads */
#define FAKE_TERMS            5                 /* flashcards per answer */
#define FAKE_WORD_MAX         64                /* longer "words" are ignored as terms */
#define FAKE_HUGE_BLOCK       (64u * 1024)      /* MHD buffer per streaming answer */
#define FAKE_SHUTDOWN_WAIT_MS 5000              /* wait for resumed connections to close */

#define NOT_SET (-1LL)

/* ---- small helpers ------------------------------------------------------ */

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p)
        abort();
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        abort();
    return p;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

static int64_t now_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Per-thread xorshift64* seeded from getrandom: ids need not be secret. */
static uint64_t rnd64(void)
{
    static __thread uint64_t s;
    if (!s) {
        while (getrandom(&s, sizeof s, 0) != sizeof s || !s)
            ;
    }
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ULL;
}

static void rnd_chars(char *out, size_t n, const char *alphabet)
{
    size_t k = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[rnd64() % k];
    out[n] = '\0';
}

/* Copy at most cap-1 bytes of s, replacing anything outside printable ASCII
 * with '?', so stats JSON and logs stay valid whatever a client sends. */
static void copy_clean(char *dst, size_t cap, const char *s)
{
    size_t i = 0;
    if (s)
        for (; s[i] && i + 1 < cap; i++)
            dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    dst[i] = '\0';
}

/* A growing string buffer (aborts on OOM: sizes here are internal or capped). */
struct buf {
    char *p;
    size_t len, cap;
};

static void buf_need(struct buf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    size_t c = b->cap ? b->cap : 256;
    while (c < b->len + n + 1)
        c *= 2;
    b->p = xrealloc(b->p, c);
    b->cap = c;
}

static void buf_add(struct buf *b, const char *s, size_t n)
{
    buf_need(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    buf_need(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* s as a JSON string literal; NULL gives null.  Bytes >= 0x80 pass through
 * (callers give valid UTF-8 or cleaned ASCII). */
static void buf_json_str(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (!s) {
        buf_puts(b, "null");
        return;
    }
    buf_need(b, strlen(s) + 2);
    buf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[7];
        switch (*p) {
        case '"':  buf_add(b, "\\\"", 2); break;
        case '\\': buf_add(b, "\\\\", 2); break;
        case '\n': buf_add(b, "\\n", 2); break;
        case '\r': buf_add(b, "\\r", 2); break;
        case '\t': buf_add(b, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                e[0] = '\\'; e[1] = 'u'; e[2] = '0'; e[3] = '0';
                e[4] = hex[*p >> 4]; e[5] = hex[*p & 15];
                buf_add(b, e, 6);
            } else {
                buf_add(b, (const char *)p, 1);
            }
        }
    }
    buf_add(b, "\"", 1);
}

/* ---- steps: one scripted behaviour --------------------------------------- */

enum action {
    ACT_OK, ACT_STATUS, ACT_QUOTA, ACT_HANG, ACT_RESET, ACT_MALFORMED,
    ACT_BAD_CONTENT, ACT_TRUNCATED, ACT_HUGE, ACT_FENCED, ACT__N
};

static const char *const action_names[ACT__N] = {
    "ok", "status", "insufficient_quota", "hang", "reset", "malformed",
    "bad_content", "truncated", "huge", "fenced",
};

enum ovr { OVR_DEFAULT = 0, OVR_NULL, OVR_STR, OVR_INT };

struct step {
    atomic_int refs;
    enum action action;
    long count;
    int status;                 /* ACT_STATUS */
    long long delay_ms;         /* 0 = answer at once */
    long long retry_after_s;    /* NOT_SET or seconds */
    long long retry_after_ms;   /* NOT_SET or ms */
    bool retry_off;             /* "retryHeaders": false */
    enum ovr code_ovr, type_ovr;
    char *code_s;               /* OVR_STR */
    long long code_i;           /* OVR_INT */
    char *type_s;               /* OVR_STR */
    char *message;              /* NULL: the real default text */
    char *content;              /* bad_content: literal assistant content */
    char *body;                 /* malformed: literal body */
    unsigned long long bytes;   /* huge */
    bool fin;                   /* reset: "mode":"fin" closes politely */
};

static struct step *step_ref(struct step *s)
{
    if (s)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

static void step_unref(struct step *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    free(s->code_s);
    free(s->type_s);
    free(s->message);
    free(s->content);
    free(s->body);
    free(s);
}

static struct step *step_new_ok(void)
{
    struct step *s = xcalloc(1, sizeof *s);
    atomic_init(&s->refs, 1);
    s->action = ACT_OK;
    s->count = 1;
    s->retry_after_s = NOT_SET;
    s->retry_after_ms = NOT_SET;
    return s;
}

static int get_int_member(struct json_object *v, const char *key, long long lo, long long hi,
                          long long *ret, char *err, size_t errlen)
{
    if (!json_object_is_type(v, json_type_int)) {
        snprintf(err, errlen, "\"%s\" must be an integer", key);
        return -EINVAL;
    }
    errno = 0;
    long long x = json_object_get_int64(v);
    if (x < lo || x > hi) {
        snprintf(err, errlen, "\"%s\" must be between %lld and %lld", key, lo, hi);
        return -EINVAL;
    }
    *ret = x;
    return 0;
}

static int get_str_member(struct json_object *v, const char *key, char **ret, char *err, size_t errlen)
{
    if (!json_object_is_type(v, json_type_string)) {
        snprintf(err, errlen, "\"%s\" must be a string", key);
        return -EINVAL;
    }
    if ((size_t)json_object_get_string_len(v) > FAKE_STEP_STR_MAX) {
        snprintf(err, errlen, "\"%s\" is longer than %u bytes", key, FAKE_STEP_STR_MAX);
        return -EINVAL;
    }
    free(*ret);
    *ret = xstrdup(json_object_get_string(v));
    return 0;
}

/* Parse one step object.  Unknown members are refused so that a typo in a
 * test's script fails loudly.  Returns 0 with *ret (owned, refs 1) or -EINVAL
 * with a sentence in err. */
static int step_parse(struct json_object *o, struct step **ret, char *err, size_t errlen)
{
    struct step *s = step_new_ok();
    bool have_action = false;
    long long x;

    if (!json_object_is_type(o, json_type_object)) {
        snprintf(err, errlen, "a step must be a JSON object");
        goto fail;
    }
    json_object_object_foreach(o, key, v) {
        if (!strcmp(key, "action")) {
            const char *a = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
            int found = -1;
            for (int i = 0; i < ACT__N; i++)
                if (!strcmp(a, action_names[i]))
                    found = i;
            if (!strcmp(a, "delay"))        /* alias: ok after delayMs */
                found = ACT_OK;
            if (found < 0) {
                snprintf(err, errlen, "unknown action \"%.40s\"", a);
                goto fail;
            }
            s->action = (enum action)found;
            have_action = true;
        } else if (!strcmp(key, "count")) {
            if (get_int_member(v, key, 1, FAKE_STEP_MAX_COUNT, &x, err, errlen))
                goto fail;
            s->count = (long)x;
        } else if (!strcmp(key, "status")) {
            if (get_int_member(v, key, 200, 599, &x, err, errlen))
                goto fail;
            s->status = (int)x;
        } else if (!strcmp(key, "delayMs")) {
            if (get_int_member(v, key, 0, FAKE_MAX_DELAY_MS, &s->delay_ms, err, errlen))
                goto fail;
        } else if (!strcmp(key, "retryAfter")) {
            if (get_int_member(v, key, 0, FAKE_MAX_RETRY_S, &s->retry_after_s, err, errlen))
                goto fail;
        } else if (!strcmp(key, "retryAfterMs")) {
            if (get_int_member(v, key, 0, FAKE_MAX_RETRY_S * 1000, &s->retry_after_ms, err, errlen))
                goto fail;
        } else if (!strcmp(key, "retryHeaders")) {
            if (!json_object_is_type(v, json_type_boolean)) {
                snprintf(err, errlen, "\"retryHeaders\" must be true or false");
                goto fail;
            }
            s->retry_off = !json_object_get_boolean(v);
        } else if (!strcmp(key, "code")) {
            if (!v) {
                s->code_ovr = OVR_NULL;
            } else if (json_object_is_type(v, json_type_int)) {
                s->code_ovr = OVR_INT;
                s->code_i = json_object_get_int64(v);
            } else {
                if (get_str_member(v, key, &s->code_s, err, errlen))
                    goto fail;
                s->code_ovr = OVR_STR;
            }
        } else if (!strcmp(key, "type")) {
            if (!v) {
                s->type_ovr = OVR_NULL;
            } else {
                if (get_str_member(v, key, &s->type_s, err, errlen))
                    goto fail;
                s->type_ovr = OVR_STR;
            }
        } else if (!strcmp(key, "message")) {
            if (get_str_member(v, key, &s->message, err, errlen))
                goto fail;
        } else if (!strcmp(key, "content")) {
            if (get_str_member(v, key, &s->content, err, errlen))
                goto fail;
        } else if (!strcmp(key, "body")) {
            if (get_str_member(v, key, &s->body, err, errlen))
                goto fail;
        } else if (!strcmp(key, "bytes")) {
            if (get_int_member(v, key, 0, (long long)FAKE_HUGE_MAX_BYTES, &x, err, errlen))
                goto fail;
            s->bytes = (unsigned long long)x;
        } else if (!strcmp(key, "mode")) {
            const char *m = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
            if (strcmp(m, "rst") && strcmp(m, "fin")) {
                snprintf(err, errlen, "\"mode\" must be \"rst\" or \"fin\"");
                goto fail;
            }
            s->fin = !strcmp(m, "fin");
        } else {
            snprintf(err, errlen, "unknown member \"%.40s\"", key);
            goto fail;
        }
    }
    if (!have_action) {
        snprintf(err, errlen, "a step needs an \"action\"");
        goto fail;
    }
    if (s->action == ACT_STATUS && !s->status) {
        snprintf(err, errlen, "action \"status\" needs \"status\" (200..599)");
        goto fail;
    }
    if (s->action == ACT_HUGE && !s->bytes)
        s->bytes = 100u << 20;
    *ret = s;
    return 0;
fail:
    step_unref(s);
    return -EINVAL;
}

/* ---- global state -------------------------------------------------------- */

enum outcome { OUT_PENDING = 0, OUT_ANSWERED, OUT_INTERRUPTED, OUT_RESET, OUT_CLIENT_CLOSED };
static const char *const outcome_names[] = {
    NULL, "answered", "interrupted", "reset", "client_closed",
};

struct arrival {
    uint64_t seq;
    int64_t t_us, done_us;      /* wall clock; done_us 0 = not done */
    int status;                 /* 0 = no HTTP answer (yet) */
    signed char action;         /* -1: none (answered before the script) */
    unsigned char outcome;
    bool key_ok;
    char path[FAKE_FIELD_MAX];
    char model[FAKE_FIELD_MAX];
    char deployment[FAKE_FIELD_MAX];
};

struct path_count {
    char path[FAKE_FIELD_MAX];
    uint64_t n;
};

struct req;

static struct {
    /* Set before the daemon starts, then read-only. */
    const char *api_key;        /* NULL: any non-empty key */
    int log_fd;                 /* -1: no request log */
    unsigned int threads;

    pthread_mutex_t ctl;        /* protects everything down to `park` */
    struct step **script;
    size_t script_n, script_i;  /* next step is script[script_i] with script_left uses left */
    long script_left;
    struct step *dflt;
    uint64_t requests;
    uint64_t by_status[600];
    struct path_count paths[FAKE_PATHS_MAX];
    size_t npaths;
    uint64_t other_paths;
    uint64_t resets, client_closed;
    long in_flight, max_in_flight;
    struct arrival *arr;        /* ring of FAKE_ARRIVALS_MAX */
    uint64_t seq_next;          /* seq of the next arrival (never reset) */
    uint64_t seq_base;          /* first seq since the last reset */

    pthread_mutex_t park;       /* protects the heap, the parked list, stopping */
    struct req **heap;
    size_t heap_n, heap_cap;
    struct req *parked;         /* all parked reqs (doubly linked) */
    bool stopping;
    int ep;                     /* epoll: parked sockets (EPOLLRDHUP) + evfd */
    int evfd;                   /* wakes the timer thread */
    atomic_long unreturned;     /* suspended and not yet back in the handler */
} g = {
    .ctl = PTHREAD_MUTEX_INITIALIZER,
    .park = PTHREAD_MUTEX_INITIALIZER,
    .log_fd = -1,
    .ep = -1,
    .evfd = -1,
};

static void log_line(const char *level, const char *msg, const char *extra, bool to_stderr)
{
    struct buf b = {0};
    char ts[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level);
    buf_json_str(&b, msg);
    buf_puts(&b, ",\"service\":\"fake-provider\"");
    if (extra)
        buf_puts(&b, extra);
    buf_puts(&b, "}\n");
    if (to_stderr && write(STDERR_FILENO, b.p, b.len) < 0) {
        /* nothing useful to do */
    }
    if (g.log_fd >= 0 && write(g.log_fd, b.p, b.len) < 0) {
        /* idem */
    }
    free(b.p);
}

/* ---- request state -------------------------------------------------------- */

enum kind { K_OPENAI, K_AZURE, K_CONTROL, K_NOTFOUND_OPENAI, K_NOTFOUND_AZURE };
enum phase { PH_BODY, PH_PARKED, PH_RESUMED };

struct req {
    enum kind kind;
    enum phase phase;
    struct MHD_Connection *conn;
    char method[16];
    char path[FAKE_FIELD_MAX];
    char deployment[FAKE_FIELD_MAX];
    char model[FAKE_FIELD_MAX];
    char *body;                 /* owned; NULL when not kept */
    size_t len, cap;
    bool keep_body, too_big;
    bool counted;               /* has an arrival and counts in in_flight */
    uint64_t seq;
    int64_t t0_mono_us;
    struct step *step;          /* owned ref; NULL for answers decided from headers */
    bool step_from_header;
    struct MHD_Response *resp;  /* prepared answer (owned until queued) */
    unsigned int resp_status;
    bool do_reset;
    bool answered;
    bool aborted;               /* set by the timer thread before resume */
    /* parking, under g.park */
    int fd;
    int64_t deadline_us;
    size_t heap_i;
    bool in_heap;
    struct req *pnext, *pprev;
};

/* ---- statistics ------------------------------------------------------------ */

static struct arrival *arrival_of_locked(uint64_t seq)
{
    if (seq < g.seq_base || g.seq_next - seq > FAKE_ARRIVALS_MAX)
        return NULL;
    struct arrival *a = &g.arr[seq % FAKE_ARRIVALS_MAX];
    return a->seq == seq ? a : NULL;
}

static void stats_arrive(struct req *r, bool key_ok)
{
    pthread_mutex_lock(&g.ctl);
    r->seq = g.seq_next++;
    r->counted = true;
    g.requests++;
    if (++g.in_flight > g.max_in_flight)
        g.max_in_flight = g.in_flight;
    size_t i;
    for (i = 0; i < g.npaths; i++)
        if (!strcmp(g.paths[i].path, r->path))
            break;
    if (i < g.npaths) {
        g.paths[i].n++;
    } else if (g.npaths < FAKE_PATHS_MAX) {
        memcpy(g.paths[g.npaths].path, r->path, sizeof r->path);
        g.paths[g.npaths++].n = 1;
    } else {
        g.other_paths++;
    }
    struct arrival *a = &g.arr[r->seq % FAKE_ARRIVALS_MAX];
    memset(a, 0, sizeof *a);
    a->seq = r->seq;
    a->t_us = now_wall_us();
    a->action = -1;
    a->key_ok = key_ok;
    memcpy(a->path, r->path, sizeof a->path);
    memcpy(a->deployment, r->deployment, sizeof a->deployment);
    pthread_mutex_unlock(&g.ctl);
}

/* The next scripted step (a new reference). */
static struct step *script_next(void)
{
    struct step *s;
    pthread_mutex_lock(&g.ctl);
    if (g.script_i < g.script_n) {
        s = step_ref(g.script[g.script_i]);
        if (--g.script_left <= 0 && ++g.script_i < g.script_n)
            g.script_left = g.script[g.script_i]->count;
    } else {
        s = step_ref(g.dflt);
    }
    pthread_mutex_unlock(&g.ctl);
    return s;
}

static void stats_note_model(struct req *r)
{
    if (!r->counted)
        return;
    pthread_mutex_lock(&g.ctl);
    struct arrival *a = arrival_of_locked(r->seq);
    if (a) {
        memcpy(a->model, r->model, sizeof a->model);
        a->action = r->step ? (signed char)r->step->action : -1;
    }
    pthread_mutex_unlock(&g.ctl);
}

static void stats_answer(struct req *r, unsigned int status)
{
    if (!r->counted)
        return;
    pthread_mutex_lock(&g.ctl);
    if (status < 600)
        g.by_status[status]++;
    struct arrival *a = arrival_of_locked(r->seq);
    if (a)
        a->status = (int)status;
    pthread_mutex_unlock(&g.ctl);
}

static void stats_done(struct req *r, enum outcome out)
{
    pthread_mutex_lock(&g.ctl);
    g.in_flight--;
    if (out == OUT_RESET)
        g.resets++;
    else if (out == OUT_CLIENT_CLOSED)
        g.client_closed++;
    struct arrival *a = arrival_of_locked(r->seq);
    if (a) {
        a->done_us = now_wall_us();
        a->outcome = (unsigned char)out;
    }
    pthread_mutex_unlock(&g.ctl);
}

/* Clear statistics, script and default.  Requests in flight keep counting in
 * inFlight; their arrivals are gone. */
static void stats_reset(void)
{
    struct step **old;
    size_t oldn;
    struct step *olddef;
    struct step *ok = step_new_ok();

    pthread_mutex_lock(&g.ctl);
    old = g.script;
    oldn = g.script_n;
    olddef = g.dflt;
    g.script = NULL;
    g.script_n = g.script_i = 0;
    g.script_left = 0;
    g.dflt = ok;
    g.requests = 0;
    memset(g.by_status, 0, sizeof g.by_status);
    g.npaths = 0;
    g.other_paths = 0;
    g.resets = g.client_closed = 0;
    g.max_in_flight = g.in_flight;
    g.seq_base = g.seq_next;
    pthread_mutex_unlock(&g.ctl);

    for (size_t i = 0; i < oldn; i++)
        step_unref(old[i]);
    free(old);
    step_unref(olddef);
}

/* ---- generated content ------------------------------------------------------ */

/* Long words that prompts are made of; never chosen as terms. */
static const char *const stop_words[] = {
    "flashcard", "flashcards", "generate", "create", "json", "format", "content",
    "subject", "topic", "language", "languages", "english", "native", "target",
    "response", "respond", "return", "object", "array", "field", "fields",
    "following", "provide", "please", "should", "include", "example", "examples",
    "sentence", "sentences", "pronunciation", "difficulty", "beginner",
    "intermediate", "expert", "definition", "translation", "vocabulary",
    "conversation", "lesson", "lessons", "title", "speaker", "message",
    "messages", "educational", "student", "students", "learning", "learner",
    "learners", "with", "from", "that", "this", "their", "there", "about",
    "which", "what", "must", "only", "valid", "text", "based", "using", "into",
    "your", "other", "than", "output", "keys", "string", "strings", "given",
    "term", "terms", "front", "back", "topicname", "source", "file", "unknown",
    "each", "have", "will", "were", "been", "they", "them", "then", "when",
    "where", "would", "could", "these", "those", "also", "more", "most", "some",
    "such", "only", "very", "just", "like", "make", "made", "user", "assistant",
    "system", "helpful", "exactly", "items", "item", "list", "cards", "card",
};

static bool is_word_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static bool is_stop_word(const char *w, size_t n)
{
    for (size_t i = 0; i < sizeof stop_words / sizeof *stop_words; i++)
        if (strlen(stop_words[i]) == n && !strncasecmp(stop_words[i], w, n))
            return true;
    return false;
}

struct term {
    const char *p;
    size_t n, pos;
};

/* The FAKE_TERMS longest distinct words (4..FAKE_WORD_MAX bytes, not all
 * digits, not a stop word; ties: the earlier one) in order of appearance. */
static size_t pick_terms(const char *s, size_t len, struct term out[FAKE_TERMS])
{
    size_t k = 0, i = 0;
    while (i < len) {
        while (i < len && !is_word_byte((unsigned char)s[i]))
            i++;
        size_t st = i;
        bool digits = true;
        while (i < len && is_word_byte((unsigned char)s[i])) {
            if (s[i] < '0' || s[i] > '9')
                digits = false;
            i++;
        }
        size_t n = i - st;
        if (n < 4 || n > FAKE_WORD_MAX || digits || is_stop_word(s + st, n))
            continue;
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++)
            dup = out[j].n == n && !strncasecmp(out[j].p, s + st, n);
        if (dup)
            continue;
        struct term t = { s + st, n, st };
        if (k < FAKE_TERMS) {
            out[k++] = t;
            continue;
        }
        size_t w = 0;
        for (size_t j = 1; j < k; j++)
            if (out[j].n < out[w].n || (out[j].n == out[w].n && out[j].pos > out[w].pos))
                w = j;
        if (n > out[w].n)
            out[w] = t;
    }
    for (size_t a = 1; a < k; a++)          /* insertion sort by position */
        for (size_t b = a; b > 0 && out[b - 1].pos > out[b].pos; b--) {
            struct term t = out[b];
            out[b] = out[b - 1];
            out[b - 1] = t;
        }
    return k;
}

struct chatreq {
    struct json_object *root;   /* owned */
    const char *model;          /* borrowed from root; NULL if absent */
    bool has_messages, empty_messages, bad_messages;
    bool lessons;               /* some message contains "lessons" (with quotes) */
    bool json_word;             /* some message contains "json" (any case) */
    bool json_mode;             /* response_format {"type":"json_object"} */
    size_t chars;               /* total message characters */
    struct buf last_user;       /* text of the last user message */
    long long max_tokens;       /* 0: none */
};

static void chatreq_done(struct chatreq *q)
{
    if (q->root)
        json_object_put(q->root);
    free(q->last_user.p);
    memset(q, 0, sizeof *q);
}

static void chatreq_text(struct chatreq *q, const char *t, size_t n, bool user, bool first_part)
{
    q->chars += n;
    if (!q->lessons && memmem(t, n, "\"lessons\"", 9))
        q->lessons = true;
    if (!q->json_word && strcasestr(t, "json"))
        q->json_word = true;
    if (user) {
        if (first_part)
            q->last_user.len = 0;
        else
            buf_add(&q->last_user, "\n", 1);
        buf_add(&q->last_user, t, n);
    }
}

/* 0, or -EINVAL if the body is not one JSON object. */
static int chatreq_parse(const char *body, size_t len, struct chatreq *q)
{
    memset(q, 0, sizeof *q);
    if (!body || !len)
        return -EINVAL;
    struct json_tokener *tok = json_tokener_new_ex(FAKE_JSON_DEPTH);
    if (!tok)
        abort();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *o = json_tokener_parse_ex(tok, body, (int)len);
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
              json_tokener_get_parse_end(tok) == len && json_object_is_type(o, json_type_object);
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(o);
        return -EINVAL;
    }
    q->root = o;

    struct json_object *v;
    if (json_object_object_get_ex(o, "model", &v) && json_object_is_type(v, json_type_string))
        q->model = json_object_get_string(v);
    if ((json_object_object_get_ex(o, "max_completion_tokens", &v) ||
         json_object_object_get_ex(o, "max_tokens", &v)) && json_object_is_type(v, json_type_int))
        q->max_tokens = json_object_get_int64(v);
    if (json_object_object_get_ex(o, "response_format", &v) && json_object_is_type(v, json_type_object)) {
        struct json_object *t;
        if (json_object_object_get_ex(v, "type", &t) && json_object_is_type(t, json_type_string) &&
            !strcmp(json_object_get_string(t), "json_object"))
            q->json_mode = true;
    }
    if (!json_object_object_get_ex(o, "messages", &v) || !v)
        return 0;
    q->has_messages = true;
    if (!json_object_is_type(v, json_type_array)) {
        q->bad_messages = true;
        return 0;
    }
    size_t n = json_object_array_length(v);
    q->empty_messages = n == 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *m = json_object_array_get_idx(v, i), *role, *content;
        if (!json_object_is_type(m, json_type_object) ||
            !json_object_object_get_ex(m, "role", &role) || !json_object_is_type(role, json_type_string)) {
            q->bad_messages = true;
            continue;
        }
        bool user = !strcmp(json_object_get_string(role), "user");
        if (!json_object_object_get_ex(m, "content", &content) || !content)
            continue;
        if (json_object_is_type(content, json_type_string)) {
            chatreq_text(q, json_object_get_string(content), (size_t)json_object_get_string_len(content),
                         user, true);
        } else if (json_object_is_type(content, json_type_array)) {
            bool first = true;
            for (size_t j = 0; j < json_object_array_length(content); j++) {
                struct json_object *part = json_object_array_get_idx(content, j), *text;
                if (json_object_object_get_ex(part, "text", &text) && json_object_is_type(text, json_type_string)) {
                    chatreq_text(q, json_object_get_string(text), (size_t)json_object_get_string_len(text),
                                 user, first);
                    first = false;
                }
            }
        } else {
            q->bad_messages = true;
        }
    }
    return 0;
}

static void add_str(struct json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, json_object_new_string(v));
}

/* The assistant content for q: a malloc'ed JSON text (flashcards or lessons). */
static char *gen_content(const struct chatreq *q)
{
    struct term terms[FAKE_TERMS];
    char words[FAKE_TERMS][FAKE_WORD_MAX + 1];
    const char *text = q->last_user.p ? q->last_user.p : "";
    size_t k = pick_terms(text, q->last_user.len, terms);
    for (size_t i = 0; i < FAKE_TERMS; i++) {
        if (i < k) {
            memcpy(words[i], terms[i].p, terms[i].n);
            words[i][terms[i].n] = '\0';
        } else {
            snprintf(words[i], sizeof words[i], "term%zu", i + 1);
        }
    }

    char line[FAKE_TERMS * (FAKE_WORD_MAX + 1) + 128];   /* the compiler cannot see that one word is <= FAKE_WORD_MAX */
    struct json_object *root = json_object_new_object(), *arr = json_object_new_array();
    if (q->lessons) {
        struct json_object *lesson = json_object_new_object(), *vocab = json_object_new_array(),
                           *conv = json_object_new_array();
        snprintf(line, sizeof line, "Lesson on %s", words[0]);
        add_str(lesson, "title", line);
        add_str(lesson, "subject", "General");
        add_str(lesson, "topicName", words[0]);
        for (int i = 0; i < 3; i++) {
            struct json_object *it = json_object_new_object();
            add_str(it, "target_term", words[i]);
            snprintf(line, sizeof line, "Definition of %s", words[i]);
            add_str(it, "definition", line);
            snprintf(line, sizeof line, "translation of %s", words[i]);
            add_str(it, "native_translation", line);
            snprintf(line, sizeof line, "This sentence uses %s.", words[i]);
            add_str(it, "example_sentence_target", line);
            snprintf(line, sizeof line, "This sentence translates %s.", words[i]);
            add_str(it, "example_sentence_native", line);
            json_object_array_add(vocab, it);
        }
        static const char *const who[4] = { "Teacher", "Student", "Teacher", "Student" };
        for (int i = 0; i < 4; i++) {
            struct json_object *it = json_object_new_object();
            add_str(it, "speaker", who[i]);
            switch (i) {
            case 0: snprintf(line, sizeof line, "Today we learn the word %s.", words[0]); break;
            case 1: snprintf(line, sizeof line, "What does %s mean?", words[1]); break;
            case 2: snprintf(line, sizeof line, "%s is explained in the vocabulary.", words[1]); break;
            default: snprintf(line, sizeof line, "Thank you! I will practise %s.", words[2]); break;
            }
            add_str(it, "message", line);
            json_object_array_add(conv, it);
        }
        json_object_object_add(lesson, "vocabulary", vocab);
        json_object_object_add(lesson, "conversation", conv);
        json_object_array_add(arr, lesson);
        json_object_object_add(root, "lessons", arr);
    } else {
        for (int i = 0; i < FAKE_TERMS; i++) {
            struct json_object *c = json_object_new_object();
            add_str(c, "front", words[i]);
            snprintf(line, sizeof line, "Definition of %s", words[i]);
            add_str(c, "back", line);
            add_str(c, "topic", "General");
            add_str(c, "difficulty", "beginner");
            snprintf(line, sizeof line, "This sentence uses %s.", words[i]);
            add_str(c, "example", line);
            snprintf(line, sizeof line, "/%s/", words[i]);
            add_str(c, "pronunciation", line);
            json_object_array_add(arr, c);
        }
        json_object_object_add(root, "flashcards", arr);
    }
    char *s = xstrdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
    return s;
}

/* Largest n' <= n that does not cut a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* ---- responses ---------------------------------------------------------------- */

static void add_hdr(struct MHD_Response *r, const char *k, const char *v)
{
    MHD_add_response_header(r, k, v);
}

static void add_hdr_ll(struct MHD_Response *r, const char *k, long long v)
{
    char s[32];
    snprintf(s, sizeof s, "%lld", v);
    MHD_add_response_header(r, k, s);
}

static struct MHD_Response *resp_from_buf(struct buf *b)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(b->len, b->p ? b->p : (char *)"",
                                                             b->p ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r)
        abort();
    b->p = NULL;
    b->len = b->cap = 0;
    add_hdr(r, "content-type", "application/json");
    return r;
}

static void add_id_headers(struct req *r, struct MHD_Response *resp)
{
    char id[40];
    if (r->kind == K_AZURE || r->kind == K_NOTFOUND_AZURE) {
        char u[37];
        rnd_chars(u, 36, "0123456789abcdef");
        u[8] = u[13] = u[18] = u[23] = '-';
        add_hdr(resp, "apim-request-id", u);
        add_hdr(resp, "x-request-id", u);
        add_hdr(resp, "x-ms-region", "Fake Region");
        add_hdr(resp, "x-content-type-options", "nosniff");
    } else {
        memcpy(id, "req_", 4);
        rnd_chars(id + 4, 32, "0123456789abcdef");
        add_hdr(resp, "x-request-id", id);
        add_hdr(resp, "openai-organization", "org-fake");
        add_hdr(resp, "openai-version", "2020-10-01");
    }
}

static void add_ratelimit_headers(struct req *r, struct MHD_Response *resp, long long tokens, bool exhausted)
{
    add_hdr(resp, "x-ratelimit-limit-requests", "10000");
    add_hdr(resp, "x-ratelimit-remaining-requests", exhausted ? "0" : "9999");
    add_hdr(resp, "x-ratelimit-limit-tokens", "10000000");
    add_hdr_ll(resp, "x-ratelimit-remaining-tokens", exhausted ? 0 : 10000000 - tokens);
    if (r->kind == K_OPENAI) {
        add_hdr(resp, "x-ratelimit-reset-requests", "6ms");
        add_hdr(resp, "x-ratelimit-reset-tokens", "0s");
    }
}

/* Error bodies.  OpenAI: {"error":{"message","type","param","code"}};
 * Azure's own errors (401, 404, 429): {"error":{"code":"<n>","message"}}. */
struct errspec {
    const char *message;
    const char *type;           /* NULL: null */
    enum ovr code_kind;         /* OVR_NULL, OVR_STR or OVR_INT */
    const char *code_s;
    long long code_i;
    const char *param;          /* NULL: null */
    bool azure_short;
};

static void default_error(const struct req *r, int status, const char *model, long long retry_s,
                          struct errspec *e, char *msg, size_t msgcap)
{
    bool azure = r->kind == K_AZURE || r->kind == K_NOTFOUND_AZURE;
    memset(e, 0, sizeof *e);
    e->type = status >= 500 ? "server_error" : "invalid_request_error";
    e->code_kind = OVR_NULL;
    e->message = msg;
    if (!model || !*model)
        model = "gpt-4o-mini";
    if (retry_s < 0)
        retry_s = 1;
    switch (status) {
    case 400:
        snprintf(msg, msgcap, "Invalid request: the request was rejected (fake provider, status 400).");
        break;
    case 401:
        if (azure) {
            e->azure_short = true;
            e->code_kind = OVR_STR;
            e->code_s = "401";
            snprintf(msg, msgcap, "Access denied due to invalid subscription key or wrong API endpoint. "
                     "Make sure to provide a valid key for an active subscription and use a correct "
                     "regional API endpoint for your resource.");
        } else {
            e->code_kind = OVR_STR;
            e->code_s = "invalid_api_key";
            snprintf(msg, msgcap, "Incorrect API key provided: sk-fa*****. You can find your API key at "
                     "https://platform.openai.com/account/api-keys.");
        }
        break;
    case 403:
        e->type = "request_forbidden";
        e->code_kind = OVR_STR;
        e->code_s = "unsupported_country_region_territory";
        snprintf(msg, msgcap, "Country, region, or territory not supported");
        break;
    case 404:
        if (azure) {
            e->azure_short = true;
            e->code_kind = OVR_STR;
            e->code_s = "DeploymentNotFound";
            snprintf(msg, msgcap, "The API deployment for this resource does not exist. If you created the "
                     "deployment within the last 5 minutes, please wait a moment and try again.");
        } else {
            e->code_kind = OVR_STR;
            e->code_s = "model_not_found";
            snprintf(msg, msgcap, "The model `%.80s` does not exist or you do not have access to it.", model);
        }
        break;
    case 408:
        snprintf(msg, msgcap, "Request timed out.");
        break;
    case 409:
        snprintf(msg, msgcap, "The request conflicted with another request.");
        break;
    case 413:
        e->code_kind = OVR_STR;
        e->code_s = "request_too_large";
        snprintf(msg, msgcap, "Request too large.");
        break;
    case 422:
        snprintf(msg, msgcap, "Unprocessable request.");
        break;
    case 429:
        if (azure) {
            e->azure_short = true;
            e->code_kind = OVR_STR;
            e->code_s = "429";
            snprintf(msg, msgcap, "Requests to the ChatCompletions_Create Operation under Azure OpenAI API "
                     "version 2024-06-01 have exceeded call rate limit of your current OpenAI S0 pricing "
                     "tier. Please retry after %lld second%s. Please go here: https://aka.ms/oai/quotaincrease "
                     "if you would like to further increase the default rate limit.",
                     retry_s, retry_s == 1 ? "" : "s");
        } else {
            e->type = "requests";
            e->code_kind = OVR_STR;
            e->code_s = "rate_limit_exceeded";
            snprintf(msg, msgcap, "Rate limit reached for %.80s in organization org-fake on requests per min "
                     "(RPM): Limit 10000, Used 10000, Requested 1. Please try again in %llds. Visit "
                     "https://platform.openai.com/account/rate-limits to learn more.", model, retry_s);
        }
        break;
    case 500:
        snprintf(msg, msgcap, "The server had an error while processing your request. Sorry about that!");
        break;
    case 502:
        e->type = "cf_bad_gateway";
        e->code_kind = OVR_INT;
        e->code_i = 502;
        snprintf(msg, msgcap, "Bad gateway.");
        break;
    case 503:
        snprintf(msg, msgcap, "The engine is currently overloaded, please try again later.");
        break;
    case 504:
        e->type = "cf_gateway_timeout";
        e->code_kind = OVR_INT;
        e->code_i = 504;
        snprintf(msg, msgcap, "Gateway timeout.");
        break;
    default:
        snprintf(msg, msgcap, status >= 500 ? "The server had an error processing your request (status %d)."
                                            : "The request failed (status %d).", status);
    }
}

static void quota_error(struct errspec *e)
{
    memset(e, 0, sizeof *e);
    e->message = "You exceeded your current quota, please check your plan and billing details. For more "
                 "information on this error, read the docs: "
                 "https://platform.openai.com/docs/guides/error-codes/api-errors.";
    e->type = "insufficient_quota";
    e->code_kind = OVR_STR;
    e->code_s = "insufficient_quota";
}

static void apply_overrides(struct errspec *e, const struct step *s)
{
    if (!s)
        return;
    if (s->message)
        e->message = s->message;
    if (s->type_ovr == OVR_NULL)
        e->type = NULL;
    else if (s->type_ovr == OVR_STR)
        e->type = s->type_s;
    if (s->code_ovr != OVR_DEFAULT) {
        e->code_kind = s->code_ovr;
        e->code_s = s->code_s;
        e->code_i = s->code_i;
    }
}

static struct MHD_Response *error_response(struct req *r, const struct errspec *e)
{
    struct buf b = {0};
    buf_puts(&b, "{\"error\":{");
    if (e->azure_short) {
        buf_puts(&b, "\"code\":");
        if (e->code_kind == OVR_STR)
            buf_json_str(&b, e->code_s);
        else if (e->code_kind == OVR_INT)
            buf_printf(&b, "%lld", e->code_i);
        else
            buf_puts(&b, "null");
        buf_puts(&b, ",\"message\":");
        buf_json_str(&b, e->message);
    } else {
        buf_puts(&b, "\"message\":");
        buf_json_str(&b, e->message);
        buf_puts(&b, ",\"type\":");
        buf_json_str(&b, e->type);
        buf_puts(&b, ",\"param\":");
        buf_json_str(&b, e->param);
        buf_puts(&b, ",\"code\":");
        if (e->code_kind == OVR_STR)
            buf_json_str(&b, e->code_s);
        else if (e->code_kind == OVR_INT)
            buf_printf(&b, "%lld", e->code_i);
        else
            buf_puts(&b, "null");
    }
    buf_puts(&b, "}}\n");
    struct MHD_Response *resp = resp_from_buf(&b);
    add_id_headers(r, resp);
    return resp;
}

/* Retry headers: 429 gets retry-after 1 / retry-after-ms 1000 unless the step
 * says otherwise; other statuses only when the step sets them. */
static void add_retry_headers(struct MHD_Response *resp, int status, const struct step *s, bool quota)
{
    long long rs = s ? s->retry_after_s : NOT_SET, rms = s ? s->retry_after_ms : NOT_SET;
    if (s && s->retry_off)
        return;
    if (rs == NOT_SET && rms == NOT_SET) {
        if (status != 429 || quota)
            return;
        rs = 1;
    }
    if (rms == NOT_SET)
        rms = rs * 1000;
    if (rs == NOT_SET)
        rs = (rms + 999) / 1000;
    add_hdr_ll(resp, "retry-after", rs);
    add_hdr_ll(resp, "retry-after-ms", rms);
}

static void prepare(struct req *r, unsigned int status, struct MHD_Response *resp)
{
    if (r->resp)
        MHD_destroy_response(r->resp);
    r->resp = resp;
    r->resp_status = status;
}

/* A simple error decided from the request itself (auth, path, body). */
static void prepare_simple_error(struct req *r, int status, const char *message, const char *type,
                                 const char *code, const char *param)
{
    struct errspec e = {
        .message = message, .type = type, .code_kind = code ? OVR_STR : OVR_NULL,
        .code_s = code, .param = param,
    };
    prepare(r, (unsigned int)status, error_response(r, &e));
}

static void prepare_azure_error(struct req *r, int status, const char *message)
{
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    struct errspec e = { .message = message, .code_kind = OVR_STR, .code_s = code, .azure_short = true };
    prepare(r, (unsigned int)status, error_response(r, &e));
}

static void prepare_step_error(struct req *r, int status, const struct step *s, bool quota)
{
    struct errspec e;
    char msg[1024];
    long long rs = s->retry_after_s != NOT_SET ? s->retry_after_s
                 : s->retry_after_ms != NOT_SET ? (s->retry_after_ms + 999) / 1000 : NOT_SET;
    if (quota)
        quota_error(&e);
    else
        default_error(r, status, r->model[0] ? r->model : NULL, rs, &e, msg, sizeof msg);
    apply_overrides(&e, s);
    struct MHD_Response *resp = error_response(r, &e);
    add_retry_headers(resp, status, s, quota);
    if (status == 429 && !quota)
        add_ratelimit_headers(r, resp, 0, true);
    prepare(r, (unsigned int)status, resp);
}

/* The chat.completion envelope around content. */
static void prepare_completion(struct req *r, const struct chatreq *q, const char *content, size_t clen,
                               const char *finish)
{
    char id[40];
    long long pt = (long long)(q->chars + 3) / 4, ct = (long long)(clen + 3) / 4;
    const char *model = q->model ? q->model : (r->deployment[0] ? r->deployment : "gpt-4o-mini");
    bool azure = r->kind == K_AZURE;
    static const char filters[] =
        "\"hate\":{\"filtered\":false,\"severity\":\"safe\"},"
        "\"self_harm\":{\"filtered\":false,\"severity\":\"safe\"},"
        "\"sexual\":{\"filtered\":false,\"severity\":\"safe\"},"
        "\"violence\":{\"filtered\":false,\"severity\":\"safe\"}";

    if (pt < 1)
        pt = 1;
    memcpy(id, "chatcmpl-", 9);
    rnd_chars(id + 9, 29, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");

    struct buf b = {0};
    buf_need(&b, clen + 1024);
    buf_printf(&b, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,\"model\":", id,
               (long long)time(NULL));
    buf_json_str(&b, model);
    buf_puts(&b, ",\"system_fingerprint\":\"fp_fake\"");
    if (azure) {
        buf_puts(&b, ",\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{");
        buf_puts(&b, filters);
        buf_puts(&b, "}}]");
    }
    buf_puts(&b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    buf_json_str(&b, content);
    buf_puts(&b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":");
    buf_json_str(&b, finish);
    if (azure) {
        buf_puts(&b, ",\"content_filter_results\":{");
        buf_puts(&b, filters);
        buf_puts(&b, ",\"protected_material_code\":{\"filtered\":false,\"detected\":false}"
                     ",\"protected_material_text\":{\"filtered\":false,\"detected\":false}}");
    }
    buf_printf(&b, "}],\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld,"
               "\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"
               "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"
               "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n",
               pt, ct, pt + ct);
    struct MHD_Response *resp = resp_from_buf(&b);
    add_id_headers(r, resp);
    add_ratelimit_headers(r, resp, pt + ct, false);
    if (azure)
        add_hdr(resp, "azureml-model-session", "fake-session");
    prepare(r, 200, resp);
}

/* Body validation as the real API does it, for actions that answer with content.
 * true if an error answer was prepared. */
static bool prepare_validation_error(struct req *r, int parse_rc, const struct chatreq *q)
{
    if (r->too_big) {
        prepare_simple_error(r, 413, "Request too large.", "invalid_request_error", "request_too_large", NULL);
        return true;
    }
    if (parse_rc) {
        prepare_simple_error(r, 400, "We could not parse the JSON body of your request. (HINT: This likely means "
                             "you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                             "but what was sent was not valid JSON. If you have trouble figuring out how to fix "
                             "this, please contact us through our help center at help.openai.com.)",
                             "invalid_request_error", NULL, NULL);
        return true;
    }
    if (r->kind == K_OPENAI && !q->model) {
        prepare_simple_error(r, 400, "you must provide a model parameter", "invalid_request_error", NULL, NULL);
        return true;
    }
    if (!q->has_messages) {
        prepare_simple_error(r, 400, "Missing required parameter: 'messages'.", "invalid_request_error",
                             "missing_required_parameter", "messages");
        return true;
    }
    if (q->bad_messages) {
        prepare_simple_error(r, 400, "Invalid type for 'messages': expected an array of message objects, each "
                             "with a string 'role' and a 'content'.", "invalid_request_error",
                             "invalid_type", "messages");
        return true;
    }
    if (q->empty_messages) {
        prepare_simple_error(r, 400, "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                             "but got an empty array instead.", "invalid_request_error", "empty_array", "messages");
        return true;
    }
    if (q->json_mode && !q->json_word) {
        prepare_simple_error(r, 400, "'messages' must contain the word 'json' in some form, to use "
                             "'response_format' of type 'json_object'.", "invalid_request_error", NULL, "messages");
        return true;
    }
    return false;
}

/* Streaming body of exactly `total` bytes: a chat.completion envelope whose
 * content is a long run of 'a' (or only 'a' when total is too small for it). */
struct huge {
    uint64_t total;
    size_t plen, slen;
    char prefix[256], suffix[64];
};

static ssize_t huge_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct huge *h = cls;
    if (pos >= h->total)
        return MHD_CONTENT_READER_END_OF_STREAM;
    uint64_t n = h->total - pos < max ? h->total - pos : max;
    bool framed = h->total >= h->plen + h->slen;
    uint64_t fill_end = framed ? h->total - h->slen : h->total;
    for (uint64_t i = 0; i < n;) {
        uint64_t p = pos + i;
        if (framed && p < h->plen) {
            uint64_t k = h->plen - p < n - i ? h->plen - p : n - i;
            memcpy(out + i, h->prefix + p, k);
            i += k;
        } else if (p < fill_end) {
            uint64_t k = fill_end - p < n - i ? fill_end - p : n - i;
            memset(out + i, 'a', k);
            i += k;
        } else {
            uint64_t k = h->total - p < n - i ? h->total - p : n - i;
            memcpy(out + i, h->suffix + (p - fill_end), k);
            i += k;
        }
    }
    return (ssize_t)n;
}

static void prepare_huge(struct req *r, uint64_t total)
{
    struct huge *h = xcalloc(1, sizeof *h);
    h->total = total;
    int n = snprintf(h->prefix, sizeof h->prefix,
                     "{\"id\":\"chatcmpl-huge\",\"object\":\"chat.completion\",\"created\":%lld,\"model\":\"%s\","
                     "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"",
                     (long long)time(NULL), "fake-huge");
    h->plen = (size_t)n;
    n = snprintf(h->suffix, sizeof h->suffix, "\"},\"finish_reason\":\"stop\"}]}\n");
    h->slen = (size_t)n;
    struct MHD_Response *resp = MHD_create_response_from_callback(total, FAKE_HUGE_BLOCK, huge_read, h, free);
    if (!resp)
        abort();
    add_hdr(resp, "content-type", "application/json");
    add_id_headers(r, resp);
    prepare(r, 200, resp);
}

static void prepare_literal(struct req *r, unsigned int status, const char *body)
{
    struct buf b = {0};
    buf_puts(&b, body);
    struct MHD_Response *resp = resp_from_buf(&b);
    add_id_headers(r, resp);
    prepare(r, status, resp);
}

/* Decide the answer for a completion request whose body has arrived. */
static void prepare_for_step(struct req *r)
{
    struct chatreq q;
    int prc = r->too_big ? -EINVAL : chatreq_parse(r->body, r->len, &q);
    if (prc)
        memset(&q, 0, sizeof q);
    if (q.model)
        copy_clean(r->model, sizeof r->model, q.model);
    stats_note_model(r);

    struct step *s = r->step;
    enum action a = s->action;
    if (a == ACT_STATUS && s->status == 200)
        a = ACT_OK;

    switch (a) {
    case ACT_STATUS:
        prepare_step_error(r, s->status, s, false);
        break;
    case ACT_QUOTA:
        prepare_step_error(r, 429, s, true);
        break;
    case ACT_HANG:
        break;
    case ACT_RESET:
        r->do_reset = true;
        break;
    case ACT_MALFORMED:
        prepare_literal(r, 200, s->body ? s->body
                        : "{\"id\":\"chatcmpl-malformed\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
                          "\"message\":{\"role\":\"assistant\",\"content\":\"{\\\"flashcards\\\":[");
        break;
    case ACT_HUGE:
        prepare_huge(r, s->bytes);
        break;
    case ACT_OK:
    case ACT_BAD_CONTENT:
    case ACT_TRUNCATED:
    case ACT_FENCED: {
        if (prepare_validation_error(r, prc, &q))
            break;
        char *content;
        const char *finish = "stop";
        if (a == ACT_BAD_CONTENT) {
            content = xstrdup(s->content ? s->content
                              : "I'm sorry, but I can't produce flashcards from this text. Here is a summary instead.");
        } else {
            content = gen_content(&q);
        }
        size_t clen = strlen(content);
        if (a == ACT_TRUNCATED) {
            clen = utf8_cut(content, clen / 2);
            content[clen] = '\0';
            finish = "length";
        } else if (a == ACT_FENCED) {
            struct buf f = {0};
            buf_puts(&f, "Sure! Here is the JSON you asked for:\n\n```json\n");
            buf_add(&f, content, clen);
            buf_puts(&f, "\n```\n\nLet me know if you need anything else.");
            free(content);
            content = f.p;
            clen = f.len;
        }
        if (q.max_tokens > 0 && (long long)(clen + 3) / 4 > q.max_tokens) {
            size_t keep = (size_t)q.max_tokens * 4 < clen ? (size_t)q.max_tokens * 4 : clen;
            clen = utf8_cut(content, keep);
            content[clen] = '\0';
            finish = "length";
        }
        prepare_completion(r, &q, content, clen, finish);
        free(content);
        break;
    }
    default:
        abort();
    }
    chatreq_done(&q);
}

/* ---- parking (timer thread) ------------------------------------------------------ */

static void heap_swap(size_t a, size_t b)
{
    struct req *t = g.heap[a];
    g.heap[a] = g.heap[b];
    g.heap[b] = t;
    g.heap[a]->heap_i = a;
    g.heap[b]->heap_i = b;
}

static void heap_up(size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (g.heap[p]->deadline_us <= g.heap[i]->deadline_us)
            break;
        heap_swap(i, p);
        i = p;
    }
}

static void heap_down(size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, rr = l + 1, m = i;
        if (l < g.heap_n && g.heap[l]->deadline_us < g.heap[m]->deadline_us)
            m = l;
        if (rr < g.heap_n && g.heap[rr]->deadline_us < g.heap[m]->deadline_us)
            m = rr;
        if (m == i)
            return;
        heap_swap(i, m);
        i = m;
    }
}

static void heap_push(struct req *r)
{
    if (g.heap_n == g.heap_cap) {
        g.heap_cap = g.heap_cap ? 2 * g.heap_cap : 1024;
        g.heap = xrealloc(g.heap, g.heap_cap * sizeof *g.heap);
    }
    g.heap[g.heap_n] = r;
    r->heap_i = g.heap_n++;
    r->in_heap = true;
    heap_up(r->heap_i);
}

static void heap_remove(struct req *r)
{
    size_t i = r->heap_i;
    g.heap_n--;
    if (i != g.heap_n) {
        g.heap[i] = g.heap[g.heap_n];
        g.heap[i]->heap_i = i;
        heap_down(i);
        heap_up(i);
    }
    r->in_heap = false;
}

static void wake_timer(void)
{
    uint64_t one = 1;
    if (write(g.evfd, &one, sizeof one) < 0) {
        /* the counter cannot overflow in practice; EAGAIN means it is already awake */
    }
}

/* g.park held.  Takes r out of the heap, the list and the epoll set, then
 * resumes it; r may be freed by an MHD thread as soon as this returns. */
static void unpark_locked(struct req *r, bool aborted)
{
    if (r->in_heap)
        heap_remove(r);
    if (r->fd >= 0)
        epoll_ctl(g.ep, EPOLL_CTL_DEL, r->fd, NULL);
    if (r->pprev)
        r->pprev->pnext = r->pnext;
    else
        g.parked = r->pnext;
    if (r->pnext)
        r->pnext->pprev = r->pprev;
    r->pnext = r->pprev = NULL;
    r->aborted = aborted;
    MHD_resume_connection(r->conn);
}

/* Suspend r's connection until delay_ms has passed (-1: until the client
 * hangs up or we shut down).  Called from the handler. */
static enum MHD_Result park(struct req *r, long long delay_ms)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    bool wake = false;

    r->fd = ci ? ci->connect_fd : -1;
    pthread_mutex_lock(&g.park);
    if (g.stopping) {
        pthread_mutex_unlock(&g.park);
        return MHD_NO;
    }
    MHD_suspend_connection(r->conn);
    atomic_fetch_add(&g.unreturned, 1);
    r->phase = PH_PARKED;
    r->pprev = NULL;
    r->pnext = g.parked;
    if (g.parked)
        g.parked->pprev = r;
    g.parked = r;
    if (delay_ms >= 0) {
        r->deadline_us = now_mono_us() + delay_ms * 1000;
        heap_push(r);
        wake = r->heap_i == 0;
    }
    if (r->fd >= 0) {
        struct epoll_event ev = { .events = EPOLLRDHUP | EPOLLONESHOT, .data.ptr = r };
        if (epoll_ctl(g.ep, EPOLL_CTL_ADD, r->fd, &ev) < 0)
            r->fd = -1;         /* cannot watch: a hang then lasts until shutdown */
    }
    pthread_mutex_unlock(&g.park);
    if (wake)
        wake_timer();
    return MHD_YES;
}

static void *timer_main(void *arg)
{
    struct epoll_event evs[256];
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&g.park);
        if (g.stopping) {
            while (g.parked)
                unpark_locked(g.parked, true);
            pthread_mutex_unlock(&g.park);
            return NULL;
        }
        int timeout = -1;
        if (g.heap_n) {
            int64_t d = g.heap[0]->deadline_us - now_mono_us();
            timeout = d <= 0 ? 0 : d / 1000 + 1 > INT_MAX ? INT_MAX : (int)(d / 1000 + 1);
        }
        pthread_mutex_unlock(&g.park);

        int n = epoll_wait(g.ep, evs, (int)(sizeof evs / sizeof *evs), timeout);
        pthread_mutex_lock(&g.park);
        for (int i = 0; i < n; i++) {
            struct req *r = evs[i].data.ptr;
            if (!r) {
                uint64_t v;
                if (read(g.evfd, &v, sizeof v) < 0) {
                    /* EAGAIN: already drained */
                }
            } else if (r->phase == PH_PARKED) {
                unpark_locked(r, true);   /* the client hung up */
            }
        }
        int64_t now = now_mono_us();
        while (g.heap_n && g.heap[0]->deadline_us <= now)
            unpark_locked(g.heap[0], false);
        pthread_mutex_unlock(&g.park);
    }
}

/* ---- control API ----------------------------------------------------------------- */

static void prepare_json(struct req *r, unsigned int status, struct buf *b)
{
    struct MHD_Response *resp = resp_from_buf(b);
    add_hdr(resp, "cache-control", "no-store");
    prepare(r, status, resp);
}

static void prepare_ctl_error(struct req *r, unsigned int status, const char *msg)
{
    struct buf b = {0};
    buf_puts(&b, "{\"ok\":false,\"error\":");
    buf_json_str(&b, msg);
    buf_puts(&b, "}\n");
    prepare_json(r, status, &b);
}

static void prepare_ok(struct req *r, const char *extra)
{
    struct buf b = {0};
    buf_puts(&b, "{\"ok\":true");
    if (extra)
        buf_puts(&b, extra);
    buf_puts(&b, "}\n");
    prepare_json(r, 200, &b);
}

static int parse_ctl_body(struct req *r, struct json_object **ret)
{
    struct json_tokener *tok = json_tokener_new_ex(FAKE_JSON_DEPTH);
    if (!tok)
        abort();
    struct json_object *o = NULL;
    if (r->body && r->len && !r->too_big)
        o = json_tokener_parse_ex(tok, r->body, (int)r->len);
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
              json_tokener_get_parse_end(tok) == r->len && json_object_is_type(o, json_type_object);
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(o);
        prepare_ctl_error(r, 400, r->too_big ? "body too large" : "the body must be one JSON object");
        return -EINVAL;
    }
    *ret = o;
    return 0;
}

static void ctl_script(struct req *r)
{
    struct json_object *o, *steps, *app;
    char err[160], msg[200];
    struct step **list = NULL;
    size_t n = 0;
    bool append = false;

    if (parse_ctl_body(r, &o))
        return;
    if (json_object_object_get_ex(o, "append", &app))
        append = json_object_get_boolean(app);
    if (!json_object_object_get_ex(o, "steps", &steps) || !json_object_is_type(steps, json_type_array)) {
        prepare_ctl_error(r, 400, "\"steps\" must be an array of steps");
        goto out;
    }
    n = json_object_array_length(steps);
    if (n > FAKE_SCRIPT_MAX_STEPS) {
        snprintf(msg, sizeof msg, "at most %d steps", FAKE_SCRIPT_MAX_STEPS);
        prepare_ctl_error(r, 400, msg);
        n = 0;
        goto out;
    }
    list = xcalloc(n, sizeof *list);
    for (size_t i = 0; i < n; i++) {
        if (step_parse(json_object_array_get_idx(steps, i), &list[i], err, sizeof err)) {
            snprintf(msg, sizeof msg, "steps[%zu]: %s", i, err);
            prepare_ctl_error(r, 400, msg);
            goto out;
        }
    }

    struct step **old = NULL;
    size_t oldn = 0, total = 0;
    bool too_many = false;
    pthread_mutex_lock(&g.ctl);
    if (append && g.script_n - g.script_i + n > FAKE_SCRIPT_MAX_STEPS) {
        too_many = true;
    } else if (append) {
        /* keep what is left of the current script, then the new steps (moved) */
        size_t left = g.script_n - g.script_i;
        struct step **merged = xcalloc(left + n, sizeof *merged);
        memcpy(merged, g.script + g.script_i, left * sizeof *merged);
        memcpy(merged + left, list, n * sizeof *merged);
        old = g.script;
        oldn = g.script_i;      /* only the consumed steps are released */
        g.script_left = left ? g.script_left : (n ? merged[0]->count : 0);
        g.script = merged;
        g.script_n = left + n;
        g.script_i = 0;
        free(list);
        list = NULL;
    } else {
        old = g.script;
        oldn = g.script_n;
        g.script = list;
        g.script_n = n;
        g.script_i = 0;
        g.script_left = n ? list[0]->count : 0;
        list = NULL;
    }
    total = g.script_n;
    pthread_mutex_unlock(&g.ctl);
    for (size_t i = 0; i < oldn; i++)
        step_unref(old[i]);
    free(old);
    if (too_many) {
        snprintf(msg, sizeof msg, "at most %d steps", FAKE_SCRIPT_MAX_STEPS);
        prepare_ctl_error(r, 400, msg);
        goto out;
    }
    n = 0;
    snprintf(msg, sizeof msg, ",\"steps\":%zu", total);
    prepare_ok(r, msg);
out:
    if (list) {
        for (size_t i = 0; i < n; i++)
            step_unref(list[i]);
        free(list);
    }
    json_object_put(o);
}

static void ctl_default(struct req *r)
{
    struct json_object *o;
    struct step *s, *old;
    char err[160];
    if (parse_ctl_body(r, &o))
        return;
    if (step_parse(o, &s, err, sizeof err)) {
        prepare_ctl_error(r, 400, err);
    } else {
        pthread_mutex_lock(&g.ctl);
        old = g.dflt;
        g.dflt = s;
        pthread_mutex_unlock(&g.ctl);
        step_unref(old);
        prepare_ok(r, NULL);
    }
    json_object_put(o);
}

static void ctl_stats(struct req *r)
{
    struct buf b = {0};
    const char *lim = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "arrivals");
    uint64_t want = FAKE_ARRIVALS_MAX;
    if (lim) {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(lim, &end, 10);
        if (errno || end == lim || *end) {
            prepare_ctl_error(r, 400, "arrivals must be a non-negative integer");
            return;
        }
        if (x < want)
            want = x;
    }

    pthread_mutex_lock(&g.ctl);
    buf_need(&b, 4096);
    buf_printf(&b, "{\"requests\":%" PRIu64 ",\"byStatus\":{", g.requests);
    bool first = true;
    for (int s = 0; s < 600; s++)
        if (g.by_status[s]) {
            buf_printf(&b, "%s\"%d\":%" PRIu64, first ? "" : ",", s, g.by_status[s]);
            first = false;
        }
    buf_puts(&b, "},\"byPath\":{");
    for (size_t i = 0; i < g.npaths; i++) {
        if (i)
            buf_puts(&b, ",");
        buf_json_str(&b, g.paths[i].path);
        buf_printf(&b, ":%" PRIu64, g.paths[i].n);
    }
    if (g.other_paths)
        buf_printf(&b, "%s\"(other)\":%" PRIu64, g.npaths ? "," : "", g.other_paths);
    long script_left = 0;
    for (size_t i = g.script_i; i < g.script_n; i++)
        script_left += i == g.script_i ? g.script_left : g.script[i]->count;
    uint64_t total = g.seq_next - g.seq_base;
    uint64_t kept = total < FAKE_ARRIVALS_MAX ? total : FAKE_ARRIVALS_MAX;
    uint64_t from = g.seq_next - (kept < want ? kept : want);
    buf_printf(&b, "},\"inFlight\":%ld,\"maxInFlight\":%ld,\"resets\":%" PRIu64 ",\"clientClosed\":%" PRIu64
               ",\"scriptRemaining\":%ld,\"default\":\"%s\",\"arrivalsTotal\":%" PRIu64
               ",\"arrivalsCap\":%d,\"arrivals\":[",
               g.in_flight, g.max_in_flight, g.resets, g.client_closed, script_left,
               action_names[g.dflt->action], total, FAKE_ARRIVALS_MAX);
    buf_need(&b, (size_t)(g.seq_next - from) * 200);
    for (uint64_t seq = from; seq < g.seq_next; seq++) {
        const struct arrival *a = &g.arr[seq % FAKE_ARRIVALS_MAX];
        buf_printf(&b, "%s{\"t_us\":%" PRId64 ",\"path\":", seq == from ? "" : ",", a->t_us);
        buf_json_str(&b, a->path);
        buf_puts(&b, ",\"model\":");
        buf_json_str(&b, a->model[0] ? a->model : NULL);
        buf_puts(&b, ",\"deployment\":");
        buf_json_str(&b, a->deployment[0] ? a->deployment : NULL);
        buf_printf(&b, ",\"apiKeyOk\":%s,\"action\":", a->key_ok ? "true" : "false");
        buf_json_str(&b, a->action >= 0 ? action_names[(int)a->action] : NULL);
        if (a->status)
            buf_printf(&b, ",\"status\":%d", a->status);
        else
            buf_puts(&b, ",\"status\":null");
        if (a->done_us)
            buf_printf(&b, ",\"done_us\":%" PRId64, a->done_us);
        else
            buf_puts(&b, ",\"done_us\":null");
        buf_puts(&b, ",\"outcome\":");
        buf_json_str(&b, outcome_names[a->outcome]);
        buf_puts(&b, "}");
    }
    pthread_mutex_unlock(&g.ctl);
    buf_puts(&b, "]}\n");
    prepare_json(r, 200, &b);
}

static void handle_control(struct req *r)
{
    const char *p = r->path + strlen("/_fake/");
    bool get = !strcmp(r->method, "GET"), post = !strcmp(r->method, "POST");
    if (!strcmp(p, "health") && get) {
        struct buf b = {0};
        buf_puts(&b, "{\"status\":\"ok\"}\n");
        prepare_json(r, 200, &b);
    } else if (!strcmp(p, "stats") && get) {
        ctl_stats(r);
    } else if (!strcmp(p, "script") && post) {
        ctl_script(r);
    } else if (!strcmp(p, "default") && post) {
        ctl_default(r);
    } else if (!strcmp(p, "reset") && post) {
        stats_reset();
        prepare_ok(r, NULL);
    } else if (!strcmp(p, "health") || !strcmp(p, "stats") || !strcmp(p, "script") ||
               !strcmp(p, "default") || !strcmp(p, "reset")) {
        prepare_ctl_error(r, 405, "method not allowed");
    } else {
        prepare_ctl_error(r, 404, "unknown control endpoint");
    }
}

/* ---- request handling ------------------------------------------------------------ */

static bool valid_api_version(const char *v)
{
    /* YYYY-MM-DD or YYYY-MM-DD-preview */
    if (!v || strlen(v) < 10)
        return false;
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            if (v[i] != '-')
                return false;
        } else if (v[i] < '0' || v[i] > '9') {
            return false;
        }
    }
    return v[10] == '\0' || !strcmp(v + 10, "-preview");
}

/* First call of a request: route, check auth, choose the step. */
static void begin(struct req *r, const char *url)
{
    struct MHD_Connection *c = r->conn;
    static const char azure_prefix[] = "/openai/deployments/";

    if (!strncmp(url, "/_fake/", 7)) {
        r->kind = K_CONTROL;
        r->keep_body = true;
        return;
    }
    if (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/chat/completions")) {
        r->kind = K_OPENAI;
    } else if (!strncmp(url, azure_prefix, sizeof azure_prefix - 1)) {
        const char *dep = url + sizeof azure_prefix - 1, *slash = strchr(dep, '/');
        r->kind = K_NOTFOUND_AZURE;
        if (slash && slash > dep && (size_t)(slash - dep) < sizeof r->deployment && !strcmp(slash, "/chat/completions")) {
            char d[FAKE_FIELD_MAX];
            memcpy(d, dep, (size_t)(slash - dep));
            d[slash - dep] = '\0';
            copy_clean(r->deployment, sizeof r->deployment, d);
            r->kind = K_AZURE;
        }
    } else if (!strncmp(url, "/openai/", 8)) {
        r->kind = K_NOTFOUND_AZURE;
    } else {
        r->kind = K_NOTFOUND_OPENAI;
    }

    bool key_ok = false;
    if (r->kind == K_OPENAI || r->kind == K_NOTFOUND_OPENAI) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        const char *key = auth && !strncasecmp(auth, "Bearer ", 7) ? auth + 7 : NULL;
        if (key && *key && (!g.api_key || !strcmp(key, g.api_key)))
            key_ok = true;
        if (r->kind == K_NOTFOUND_OPENAI) {
            char msg[FAKE_FIELD_MAX + 64];
            snprintf(msg, sizeof msg, "Invalid URL (%s %s)", r->method, r->path);
            prepare_simple_error(r, 404, msg, "invalid_request_error", NULL, NULL);
        } else if (strcmp(r->method, "POST")) {
            char msg[FAKE_FIELD_MAX + 64];
            snprintf(msg, sizeof msg, "Invalid method for URL (%s %s)", r->method, r->path);
            prepare_simple_error(r, 405, msg, "invalid_request_error", NULL, NULL);
        } else if (!key || !*key) {
            prepare_simple_error(r, 401, "You didn't provide an API key. You need to provide your API key in an "
                                 "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or "
                                 "as the password field (with blank username) if you're accessing the API from your "
                                 "browser and are prompted for a username and password. You can obtain an API key "
                                 "from https://platform.openai.com/account/api-keys.",
                                 "invalid_request_error", NULL, NULL);
        } else if (!key_ok) {
            char msg[256], masked[16];
            size_t kl = strlen(key);
            snprintf(masked, sizeof masked, "%.3s*****%s", kl > 8 ? key : "", kl > 8 ? key + kl - 4 : "");
            snprintf(msg, sizeof msg, "Incorrect API key provided: %s. You can find your API key at "
                     "https://platform.openai.com/account/api-keys.", masked);
            prepare_simple_error(r, 401, msg, "invalid_request_error", "invalid_api_key", NULL);
        }
    } else {
        const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "api-key");
        const char *ver = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "api-version");
        if (key && *key && (!g.api_key || !strcmp(key, g.api_key)))
            key_ok = true;
        if (r->kind == K_NOTFOUND_AZURE || strcmp(r->method, "POST") || !valid_api_version(ver))
            prepare_azure_error(r, 404, "Resource not found");
        else if (!key_ok)
            prepare_azure_error(r, 401, "Access denied due to invalid subscription key or wrong API endpoint. "
                                "Make sure to provide a valid key for an active subscription and use a correct "
                                "regional API endpoint for your resource.");
    }
    stats_arrive(r, key_ok);
    if (r->resp)
        return;                 /* answered from the headers: no step is consumed */

    r->keep_body = true;
    const char *fx = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Fake-Action");
    if (fx) {
        struct json_object *o = json_tokener_parse(fx);
        char err[160], msg[200];
        if (!o || step_parse(o, &r->step, err, sizeof err)) {
            snprintf(msg, sizeof msg, "X-Fake-Action: %s", o ? err : "not a JSON object");
            prepare_simple_error(r, 400, msg, "fake_provider_error", NULL, NULL);
        }
        r->step_from_header = true;
        json_object_put(o);
    } else {
        r->step = script_next();
    }
}

static enum MHD_Result answer(struct req *r)
{
    if (r->do_reset) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci && !r->step->fin) {
            struct linger lg = { .l_onoff = 1, .l_linger = 0 };   /* close() sends RST */
            setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        return MHD_NO;
    }
    if (!r->resp)
        return MHD_NO;
    if (r->kind != K_CONTROL)
        add_hdr_ll(r->resp, "openai-processing-ms", (now_mono_us() - r->t0_mono_us) / 1000);
    stats_answer(r, r->resp_status);
    r->answered = true;
    enum MHD_Result ret = MHD_queue_response(r->conn, r->resp_status, r->resp);
    MHD_destroy_response(r->resp);
    r->resp = NULL;
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct req *r = *con_cls;
    (void)cls;
    (void)version;

    if (!r) {
        r = xcalloc(1, sizeof *r);
        r->conn = conn;
        r->fd = -1;
        r->t0_mono_us = now_mono_us();
        copy_clean(r->method, sizeof r->method, method);
        copy_clean(r->path, sizeof r->path, url);
        *con_cls = r;
        begin(r, url);
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!r->keep_body || r->too_big)
            return MHD_YES;
        if (r->len + n > FAKE_MAX_BODY_BYTES) {
            r->too_big = true;
            free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
            return MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
            r->cap = (r->len + n + 1) * 2 > FAKE_MAX_BODY_BYTES + 1 ? FAKE_MAX_BODY_BYTES + 1 : (r->len + n + 1) * 2;
            r->body = xrealloc(r->body, r->cap);
        }
        memcpy(r->body + r->len, upload_data, n);
        r->len += n;
        r->body[r->len] = '\0';
        return MHD_YES;
    }

    if (r->phase == PH_PARKED) {           /* back from the timer thread */
        pthread_mutex_lock(&g.park);
        bool aborted = r->aborted || g.stopping;
        r->phase = PH_RESUMED;
        pthread_mutex_unlock(&g.park);
        atomic_fetch_sub(&g.unreturned, 1);
        return aborted ? MHD_NO : answer(r);
    }
    if (r->phase == PH_RESUMED)            /* cannot happen: we always answer or close */
        return MHD_NO;

    if (r->kind == K_CONTROL) {
        handle_control(r);
        return answer(r);
    }
    if (!r->resp && r->step)
        prepare_for_step(r);
    free(r->body);
    r->body = NULL;
    if (r->step && r->step->action == ACT_HANG && !r->resp)
        return park(r, -1);
    if (r->step && r->step->delay_ms > 0)
        return park(r, r->step->delay_ms);
    return answer(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req *r = *con_cls;
    (void)cls;
    (void)conn;
    if (!r)
        return;
    *con_cls = NULL;
    if (r->counted) {
        enum outcome out = r->do_reset ? OUT_RESET
                         : r->answered ? (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? OUT_ANSWERED : OUT_INTERRUPTED)
                         : OUT_CLIENT_CLOSED;
        stats_done(r, out);
        if (g.log_fd >= 0) {
            struct buf b = {0};
            buf_puts(&b, ",\"path\":");
            buf_json_str(&b, r->path);
            buf_printf(&b, ",\"status\":%u,\"action\":\"%s\",\"outcome\":\"%s\",\"ms\":%lld",
                       r->answered ? r->resp_status : 0, r->step ? action_names[r->step->action] : "none",
                       outcome_names[out], (long long)(now_mono_us() - r->t0_mono_us) / 1000);
            log_line("info", "request", b.p, false);
            free(b.p);
        }
    }
    if (r->resp)
        MHD_destroy_response(r->resp);
    step_unref(r->step);
    free(r->body);
    free(r);
}

/* libmicrohttpd's own messages, as JSON lines on stderr.  "internal error"
 * is what MHD says when a handler closes a connection on purpose (reset,
 * a client that gave up, shutdown): expected here, so not logged. */
__attribute__((format(printf, 2, 0)))
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    if (!strstr(msg, "Application reported internal error"))
        log_line("warn", msg, ",\"source\":\"libmicrohttpd\"", true);
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fake-provider [--port N] [--bind ADDR] [--api-key KEY] [--log FILE] [--threads N]\n"
            "  --port N      TCP port (0: a free one); prints PORT=<n> as the first stdout line\n"
            "  --bind ADDR   IPv4 address to listen on (default 127.0.0.1)\n"
            "  --api-key K   the key accepted as OpenAI Bearer and Azure api-key\n"
            "                (default $FAKE_PROVIDER_API_KEY; unset: any non-empty key)\n"
            "  --log FILE    append one JSON line per request to FILE\n"
            "  --threads N   libmicrohttpd pool threads (default: number of CPUs)\n"
            "Control API: see tests/support/fake-provider.md\n");
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "port", required_argument, NULL, 'p' },
        { "bind", required_argument, NULL, 'b' },
        { "api-key", required_argument, NULL, 'k' },
        { "log", required_argument, NULL, 'l' },
        { "threads", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    long port = 0, threads = sysconf(_SC_NPROCESSORS_ONLN);
    const char *bind_addr = "127.0.0.1", *log_path = NULL;
    int c, rc = 1;
    char *end;
    pthread_t timer;
    bool timer_started = false;
    struct MHD_Daemon *d = NULL;
    sigset_t sigs;

    g.api_key = getenv("FAKE_PROVIDER_API_KEY");
    while ((c = getopt_long(argc, argv, "p:b:k:l:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            port = strtol(optarg, &end, 10);
            if (*end || port < 0 || port > 65535) {
                fprintf(stderr, "fake-provider: bad --port %s\n", optarg);
                return 2;
            }
            break;
        case 'b': bind_addr = optarg; break;
        case 'k': g.api_key = optarg; break;
        case 'l': log_path = optarg; break;
        case 't':
            threads = strtol(optarg, &end, 10);
            if (*end || threads < 1 || threads > FAKE_POOL_MAX) {
                fprintf(stderr, "fake-provider: --threads must be 1..%d\n", FAKE_POOL_MAX);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (g.api_key && !*g.api_key)
        g.api_key = NULL;
    if (threads < 1)
        threads = 1;
    if (threads > FAKE_POOL_MAX)
        threads = FAKE_POOL_MAX;
    g.threads = (unsigned int)threads;

    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "fake-provider: bad --bind %s (IPv4 address expected)\n", bind_addr);
        return 2;
    }
    if (log_path) {
        g.log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (g.log_fd < 0) {
            fprintf(stderr, "fake-provider: cannot open %s: %s\n", log_path, strerror(errno));
            return 2;
        }
    }

    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);   /* every thread inherits this; main sigwait()s */

    g.arr = xcalloc(FAKE_ARRIVALS_MAX, sizeof *g.arr);
    g.dflt = step_new_ok();
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    g.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (g.ep < 0 || g.evfd < 0) {
        perror("fake-provider: epoll/eventfd");
        goto out;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, g.evfd, &ev) < 0 || pthread_create(&timer, NULL, timer_main, NULL)) {
        perror("fake-provider: timer thread");
        goto out;
    }
    timer_started = true;

    struct rlimit rl;
    unsigned int conn_limit = 1000;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 128)
        conn_limit = rl.rlim_cur - 64 > 1000000 ? 1000000 : (unsigned int)(rl.rlim_cur - 64);
    d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                         MHD_USE_ERROR_LOG,
                         0, NULL, NULL, on_request, NULL,
                         MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,   /* first, or MHD complains */
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)g.threads,
                         MHD_OPTION_CONNECTION_LIMIT, conn_limit,
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u,
                         MHD_OPTION_CONNECTION_TIMEOUT, 0u,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "fake-provider: cannot listen on %s:%ld\n", bind_addr, port);
        goto out;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned int bound = di ? di->port : (unsigned int)port;
    printf("PORT=%u\n", bound);
    fflush(stdout);
    {
        char extra[160];
        snprintf(extra, sizeof extra, ",\"port\":%u,\"threads\":%u,\"connection_limit\":%u,\"api_key\":\"%s\"",
                 bound, g.threads, conn_limit, g.api_key ? "set" : "any");
        log_line("info", "fake provider listening", extra, true);
    }

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    rc = 0;
out:
    if (timer_started) {
        pthread_mutex_lock(&g.park);
        g.stopping = true;
        pthread_mutex_unlock(&g.park);
        wake_timer();
        pthread_join(timer, NULL);
    }
    if (d) {
        int64_t deadline = now_mono_us() + FAKE_SHUTDOWN_WAIT_MS * 1000LL;
        while (atomic_load(&g.unreturned) > 0 && now_mono_us() < deadline) {
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
        }
        MHD_stop_daemon(d);
        log_line("info", "fake provider stopped", NULL, true);
    }
    for (size_t i = 0; i < g.script_n; i++)
        step_unref(g.script[i]);
    free(g.script);
    step_unref(g.dflt);
    free(g.heap);
    free(g.arr);
    if (g.ep >= 0)
        close(g.ep);
    if (g.evfd >= 0)
        close(g.evfd);
    if (g.log_fd >= 0)
        close(g.log_fd);
    return rc;
}
