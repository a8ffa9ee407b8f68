/*
 * httpc.c: see httpc.h.
 *
 * Engine loop (one thread):
 *   take the inbox (new requests, cancellations) under the lock, add/remove
 *   easy handles, curl_multi_perform, reap finished transfers and call their
 *   callbacks, curl_multi_poll until a socket is ready, a timer is due or
 *   curl_multi_wakeup is called by a submitter.
 * The lock protects only the inbox lists and the stopping flag; it is never
 * held during a curl call other than curl_multi_wakeup.
 */
#include "worker/httpc.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "common/log.h"

struct xfer {
    struct xfer *next;             /* inbox link */
    int64_t id;
    CURL *easy;
    struct curl_slist *hdrs;
    char *url;
    char *req_body;
    char *body;                    /* reply */
    size_t body_len, body_cap;
    char *rhdr;                    /* reply headers: "name\0value\0..." lower-case names */
    size_t rhdr_len, rhdr_cap;
    bool too_large;
    httpc_done_fn done;
    void *ud;
    long max_reply;
};

struct cancel_req {
    struct cancel_req *next;
    int64_t id;
};

struct httpc {
    struct httpc_limits lim;
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t lock;          /* protects inbox, cancels, stopping */
    struct xfer *inbox;
    struct cancel_req *cancels;
    bool stopping;
    atomic_long inflight;
    atomic_llong next_id;
    /* engine-thread only: running transfers, for cancel lookup */
    struct xfer **running;
    size_t nrunning, caprunning;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (x->body_len + n > (size_t)x->max_reply) {
        x->too_large = true;
        return 0;                  /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (x->body_len + n + 1 > x->body_cap) {
        size_t cap = x->body_cap ? x->body_cap : 4096;
        while (cap < x->body_len + n + 1)
            cap *= 2;
        char *nb = realloc(x->body, cap);
        if (!nb)
            return 0;
        x->body = nb;
        x->body_cap = cap;
    }
    memcpy(x->body + x->body_len, ptr, n);
    x->body_len += n;
    x->body[x->body_len] = 0;
    return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nitems;
    char *colon = memchr(buf, ':', n);
    if (!colon)
        return n;                  /* status line or blank line */
    if (strncmp(buf, "HTTP/", 5) == 0)
        return n;
    size_t nl = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vl = n - nl - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    size_t need = nl + vl + 2;
    if (x->rhdr_len + need > HTTPC_MAX_HEADER_BYTES)
        return n;                  /* ignore headers past the cap */
    if (x->rhdr_len + need > x->rhdr_cap) {
        size_t cap = x->rhdr_cap ? x->rhdr_cap * 2 : 1024;
        while (cap < x->rhdr_len + need)
            cap *= 2;
        char *nb = realloc(x->rhdr, cap);
        if (!nb)
            return n;
        x->rhdr = nb;
        x->rhdr_cap = cap;
    }
    for (size_t i = 0; i < nl; i++)
        x->rhdr[x->rhdr_len + i] = (char)tolower((unsigned char)buf[i]);
    x->rhdr[x->rhdr_len + nl] = 0;
    memcpy(x->rhdr + x->rhdr_len + nl + 1, v, vl);
    x->rhdr[x->rhdr_len + nl + 1 + vl] = 0;
    x->rhdr_len += need;
    return n;
}

static const char *header_lookup(void *hud, const char *name)
{
    struct xfer *x = hud;
    for (size_t off = 0; off < x->rhdr_len;) {
        const char *k = x->rhdr + off;
        const char *v = k + strlen(k) + 1;
        if (strcasecmp(k, name) == 0)
            return v;
        off = (size_t)(v - x->rhdr) + strlen(v) + 1;
    }
    return NULL;
}

static void xfer_free(struct xfer *x)
{
    if (!x)
        return;
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    free(x->url);
    free(x->req_body);
    free(x->body);
    free(x->rhdr);
    free(x);
}

static int map_curl(CURLcode c, const struct xfer *x)
{
    switch (c) {
    case CURLE_OK:
        return 0;
    case CURLE_WRITE_ERROR:
        return x->too_large ? -EMSGSIZE : -EIO;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return -EHOSTUNREACH;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        return -ECONNRESET;
    default:
        return -EIO;
    }
}

static void finish(struct httpc *h, struct xfer *x, int terr)
{
    struct httpc_result res = {
        .transport_error = terr,
        .body = x->body ? x->body : "",
        .body_len = x->body_len,
        .header = header_lookup,
        .hud = x,
    };
    if (x->easy) {
        long st = 0;
        double t = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &st);
        curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME, &t);
        res.status = terr ? 0 : st;
        res.total_ms = t * 1000.0;
    }
    x->done(x->ud, &res);
    atomic_fetch_sub(&h->inflight, 1);
    xfer_free(x);
}

static void running_remove(struct httpc *h, struct xfer *x)
{
    for (size_t i = 0; i < h->nrunning; i++)
        if (h->running[i] == x) {
            h->running[i] = h->running[--h->nrunning];
            return;
        }
}

static bool start_xfer(struct httpc *h, struct xfer *x)
{
    CURL *e = curl_easy_init();
    if (!e)
        return false;
    x->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, x->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->req_body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(x->req_body));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->lim.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->lim.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->lim.max_reply_bytes);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "flashgate-worker/" FLASHGATE_VERSION);
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
        return false;
    if (h->nrunning == h->caprunning) {
        size_t cap = h->caprunning ? h->caprunning * 2 : 64;
        struct xfer **nr = realloc(h->running, cap * sizeof(*nr));
        if (!nr)
            abort();
        h->running = nr;
        h->caprunning = cap;
    }
    h->running[h->nrunning++] = x;
    return true;
}

static void reap(struct httpc *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode rc = m->data.result;
        curl_multi_remove_handle(h->multi, m->easy_handle);
        running_remove(h, x);
        int terr = map_curl(rc, x);
        if (rc == CURLE_FILESIZE_EXCEEDED)
            terr = -EMSGSIZE;
        finish(h, x, terr);
    }
}

static void *engine(void *arg)
{
    struct httpc *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->lock);
        struct xfer *in = h->inbox;
        struct cancel_req *cl = h->cancels;
        bool stopping = h->stopping;
        h->inbox = NULL;
        h->cancels = NULL;
        pthread_mutex_unlock(&h->lock);

        struct xfer *fifo = NULL;      /* the inbox is pushed LIFO; start in arrival order */
        while (in) {
            struct xfer *n = in->next;
            in->next = fifo;
            fifo = in;
            in = n;
        }
        in = fifo;

        while (in) {
            struct xfer *x = in;
            in = in->next;
            if (stopping || !start_xfer(h, x)) {
                finish(h, x, stopping ? -ECANCELED : -ENOMEM);
            }
        }
        while (cl) {
            struct cancel_req *c = cl;
            cl = cl->next;
            for (size_t i = 0; i < h->nrunning; i++)
                if (h->running[i]->id == c->id) {
                    struct xfer *x = h->running[i];
                    curl_multi_remove_handle(h->multi, x->easy);
                    running_remove(h, x);
                    finish(h, x, -ECANCELED);
                    break;
                }
            free(c);
        }
        if (stopping) {
            while (h->nrunning) {
                struct xfer *x = h->running[0];
                curl_multi_remove_handle(h->multi, x->easy);
                running_remove(h, x);
                finish(h, x, -ECANCELED);
            }
            return NULL;
        }
        int still;
        curl_multi_perform(h->multi, &still);
        reap(h);
        curl_multi_poll(h->multi, NULL, 0, 1000, NULL);
    }
}

struct httpc *httpc_new(const struct httpc_limits *lim)
{
    struct httpc *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->lim = *lim;
    atomic_init(&h->next_id, 1);
    h->multi = curl_multi_init();
    if (!h->multi) {
        free(h);
        return NULL;
    }
    if (lim->max_host_connections > 0)
        curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, lim->max_host_connections);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
                      lim->max_host_connections > 0 ? lim->max_host_connections : 64L);
    pthread_mutex_init(&h->lock, NULL);
    if (pthread_create(&h->thread, NULL, engine, h) != 0) {
        curl_multi_cleanup(h->multi);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    return h;
}

void httpc_free(struct httpc *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    pthread_mutex_unlock(&h->lock);
    curl_multi_wakeup(h->multi);
    pthread_join(h->thread, NULL);
    /* requests posted after the engine exited */
    while (h->inbox) {
        struct xfer *x = h->inbox;
        h->inbox = x->next;
        finish(h, x, -ECANCELED);
    }
    while (h->cancels) {
        struct cancel_req *c = h->cancels;
        h->cancels = c->next;
        free(c);
    }
    curl_multi_cleanup(h->multi);
    pthread_mutex_destroy(&h->lock);
    free(h->running);
    free(h);
}

int64_t httpc_post(struct httpc *h, const char *url, const char *const *headers, size_t nheaders,
                   char *body, httpc_done_fn done, void *ud)
{
    struct xfer *x = calloc(1, sizeof(*x));
    if (!x) {
        free(body);
        return -ENOMEM;
    }
    x->url = strdup(url);
    x->req_body = body;
    x->done = done;
    x->ud = ud;
    x->max_reply = h->lim.max_reply_bytes;
    x->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    x->hdrs = curl_slist_append(x->hdrs, "Expect:");
    for (size_t i = 0; i < nheaders && i < HTTPC_MAX_REQ_HEADERS && x->hdrs; i++)
        x->hdrs = curl_slist_append(x->hdrs, headers[i]);
    if (!x->url || !x->hdrs) {
        xfer_free(x);
        return -ENOMEM;
    }
    x->id = atomic_fetch_add(&h->next_id, 1);
    int64_t id = x->id;
    atomic_fetch_add(&h->inflight, 1);
    pthread_mutex_lock(&h->lock);
    if (h->stopping) {
        pthread_mutex_unlock(&h->lock);
        atomic_fetch_sub(&h->inflight, 1);
        xfer_free(x);
        return -ESHUTDOWN;
    }
    x->next = h->inbox;
    h->inbox = x;
    pthread_mutex_unlock(&h->lock);
    curl_multi_wakeup(h->multi);
    return id;
}

void httpc_cancel(struct httpc *h, int64_t id)
{
    struct cancel_req *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->id = id;
    pthread_mutex_lock(&h->lock);
    c->next = h->cancels;
    h->cancels = c;
    pthread_mutex_unlock(&h->lock);
    curl_multi_wakeup(h->multi);
}

size_t httpc_inflight(struct httpc *h)
{
    return (size_t)atomic_load(&h->inflight);
}
