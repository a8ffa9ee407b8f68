/*
 * sse.c: frame encoding (see sse.h).
 */
#include "gateway/sse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool field_ok(const char *s)
{
    return s && *s && !strpbrk(s, "\r\n");
}

/* Append helper that counts even past the cap. */
struct sbuf {
    char *p;
    size_t cap, n;
};

static void put(struct sbuf *b, const char *s, size_t len)
{
    if (b->n < b->cap) {
        size_t room = b->cap - b->n;
        memcpy(b->p + b->n, s, len < room ? len : room);
    }
    b->n += len;
}

long sse_encode(const char *name, const char *data, size_t data_len, long long seq,
                char *out, size_t cap)
{
    if (!field_ok(name))
        return -EINVAL;
    struct sbuf b = { .p = out, .cap = cap ? cap - 1 : 0 };
    put(&b, "event: ", 7);
    put(&b, name, strlen(name));
    put(&b, "\n", 1);
    /* one data: line per line of data (CRLF, CR and LF all end a line) */
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < data_len && data[j] != '\r' && data[j] != '\n')
            j++;
        put(&b, "data: ", 6);
        put(&b, data + i, j - i);
        put(&b, "\n", 1);
        if (j >= data_len)
            break;
        if (data[j] == '\r' && j + 1 < data_len && data[j + 1] == '\n')
            j++;
        i = j + 1;
    }
    if (seq > 0) {
        char id[32];
        int n = snprintf(id, sizeof(id), "id: %lld\n", seq);
        put(&b, id, (size_t)n);
    }
    put(&b, "\n", 1);
    if (cap)
        out[b.n < cap - 1 ? b.n : cap - 1] = 0;
    return (long)b.n;
}

static struct sse_frame *frame_alloc(size_t len)
{
    struct sse_frame *f = malloc(sizeof(*f) + len + 1);
    if (!f)
        return NULL;
    atomic_init(&f->ref, 1);
    f->seq = 0;
    f->final = false;
    f->job_id[0] = 0;
    f->len = len;
    f->chunk_hdr_len = (unsigned char)snprintf(f->chunk_hdr, sizeof(f->chunk_hdr), "%zX\r\n", len);
    return f;
}

struct sse_frame *sse_frame_event(const char *name, const char *data, size_t data_len,
                                  long long seq, const char *job_id)
{
    long need = sse_encode(name, data, data_len, seq, NULL, 0);
    if (need < 0)
        return NULL;
    struct sse_frame *f = frame_alloc((size_t)need);
    if (!f)
        return NULL;
    sse_encode(name, data, data_len, seq, f->text, (size_t)need + 1);
    f->seq = seq;
    if (job_id)
        snprintf(f->job_id, sizeof(f->job_id), "%s", job_id);
    return f;
}

struct sse_frame *sse_frame_from_event(const struct job_event *e)
{
    const char *d = e->data_json ? e->data_json : "{}";
    struct sse_frame *f = sse_frame_event(e->name, d, strlen(d), e->seq, e->job_id);
    if (f)
        f->final = job_event_is_final(e);
    return f;
}

struct sse_frame *sse_frame_raw(const char *text)
{
    size_t n = strlen(text);
    struct sse_frame *f = frame_alloc(n);
    if (f)
        memcpy(f->text, text, n + 1);
    return f;
}

struct sse_frame *sse_frame_ref(struct sse_frame *f)
{
    atomic_fetch_add_explicit(&f->ref, 1, memory_order_relaxed);
    return f;
}

void sse_frame_unref(struct sse_frame *f)
{
    if (f && atomic_fetch_sub_explicit(&f->ref, 1, memory_order_acq_rel) == 1)
        free(f);
}
