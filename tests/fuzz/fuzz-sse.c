/*
 * fuzz-sse: SSE frame encoding (gateway/sse.c) read back by a WHATWG
 * event-stream parser (tests/support/sse-parse.h).  The first input byte
 * picks the mode (mod 3), the second a cut point for split reads:
 *
 *   0  encoder: then 8 bytes of seq (little-endian), 1 byte name length,
 *      the name (up to its first NUL), the rest is data (any bytes).
 *      Properties: a name with CR or LF or an empty one is refused
 *      (-EINVAL, no frame); otherwise sse_encode's length equals the frame's
 *      and a conforming parser, fed the frame in one read or cut in two,
 *      fires exactly one event whose type is the name, whose data is the
 *      input with CRLF and CR turned into LF, and whose last event ID is the
 *      seq (none when seq <= 0); no comment lines, no retry field.
 *   1  stored event: the rest is job event text as Redis holds it
 *      (job_event_decode).  Properties: a decoded event becomes a frame with
 *      exactly one data line whose data is the event's JSON (valid UTF-8,
 *      parses to an object), id = seq, type = the event name, and `final`
 *      only for completed/failed.
 *   2  parser robustness: any bytes, fed whole and cut in two, give the same
 *      events (type, data, id) and the same reconnection time.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "common/job.h"
#include "gateway/sse.h"
#include "tests/fuzz/fuzz.h"
#include "tests/support/sse-parse.h"

#define FUZZ_SSE_MAX_DATA (1u << 20)

static size_t cut_of(uint8_t b, size_t n)
{
    return n ? (size_t)b * n / 255 : 0;
}

static void parse_split(struct ssep *p, const char *s, size_t n, size_t cut)
{
    ssep_init(p);
    FUZZ_CHECK(ssep_feed(p, s, cut) == 0);
    FUZZ_CHECK(ssep_feed(p, s + cut, n - cut) == 0);
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + k >= n)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static void encoder(const uint8_t *in, size_t n, uint8_t cutb)
{
    if (n < 9)
        return;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = (u << 8) | in[i];
    long long seq = (long long)u;
    size_t nlen = in[8];
    in += 9;
    n -= 9;
    if (nlen > n)
        nlen = n;
    char name[256];
    memcpy(name, in, nlen);
    name[nlen] = 0;
    const char *data = (const char *)in + nlen;
    size_t dlen = n - nlen;
    if (dlen > FUZZ_SSE_MAX_DATA)
        return;

    bool bad = !name[0] || strpbrk(name, "\r\n");
    long need = sse_encode(name, data, dlen, seq, NULL, 0);
    struct sse_frame *f = sse_frame_event(name, data, dlen, seq, "job");
    if (bad) {
        FUZZ_CHECK(need == -EINVAL);
        FUZZ_CHECK(f == NULL);
        return;
    }
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(need == (long)f->len);
    FUZZ_CHECK(f->text[f->len] == 0);
    FUZZ_CHECK(f->seq == seq);

    /* what a client must read: CRLF and CR become LF */
    char *want = malloc(dlen + 1);
    FUZZ_CHECK(want != NULL);
    size_t wn = 0;
    for (size_t i = 0; i < dlen; i++) {
        if (data[i] == '\r') {
            want[wn++] = '\n';
            if (i + 1 < dlen && data[i + 1] == '\n')
                i++;
        } else {
            want[wn++] = data[i];
        }
    }
    char id[32] = "";
    if (seq > 0)
        snprintf(id, sizeof(id), "%lld", seq);

    struct ssep p;
    parse_split(&p, f->text, f->len, cut_of(cutb, f->len));
    FUZZ_CHECK(p.nev == 1);
    FUZZ_CHECK(strcmp(p.ev[0].type, name) == 0);
    FUZZ_CHECK(p.ev[0].data_len == wn);
    FUZZ_CHECK(memcmp(p.ev[0].data, want, wn) == 0);
    FUZZ_CHECK(strcmp(p.ev[0].id, id) == 0);
    FUZZ_CHECK(p.ev[0].had_id == (seq > 0));
    FUZZ_CHECK(p.comments == 0 && p.retries == 0);
    ssep_done(&p);

    /* the frame after another one: the stream's state does not leak between frames */
    struct sse_frame *g = sse_frame_event("prev", "x", 1, 0, NULL);
    FUZZ_CHECK(g != NULL);
    size_t tn = g->len + f->len;
    char *two = malloc(tn);
    FUZZ_CHECK(two != NULL);
    memcpy(two, g->text, g->len);
    memcpy(two + g->len, f->text, f->len);
    parse_split(&p, two, tn, cut_of(cutb, tn));
    FUZZ_CHECK(p.nev == 2);
    FUZZ_CHECK(strcmp(p.ev[1].type, name) == 0);
    FUZZ_CHECK(p.ev[1].data_len == wn && memcmp(p.ev[1].data, want, wn) == 0);
    ssep_done(&p);
    free(two);
    free(want);
    sse_frame_unref(g);
    sse_frame_unref(f);
}

static void stored(const uint8_t *in, size_t n, uint8_t cutb)
{
    struct job_event e;
    if (job_event_decode((const char *)in, n, &e) != 0)
        return;
    struct sse_frame *f = sse_frame_from_event(&e);
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(f->final == (strcmp(e.name, "completed") == 0 || strcmp(e.name, "failed") == 0));
    FUZZ_CHECK(f->seq == e.seq && strcmp(f->job_id, e.job_id) == 0);
    FUZZ_CHECK(utf8_valid((const unsigned char *)f->text, f->len));

    struct ssep p;
    parse_split(&p, f->text, f->len, cut_of(cutb, f->len));
    FUZZ_CHECK(p.nev == 1);
    FUZZ_CHECK(p.ev[0].data_lines == 1);
    FUZZ_CHECK(strcmp(p.ev[0].type, e.name) == 0);
    FUZZ_CHECK(strcmp(p.ev[0].data, e.data_json) == 0 && p.ev[0].data_len == strlen(e.data_json));
    char id[32];
    snprintf(id, sizeof(id), "%lld", e.seq);
    FUZZ_CHECK(strcmp(p.ev[0].id, id) == 0);
    struct json_object *o = json_tokener_parse(p.ev[0].data);
    FUZZ_CHECK(o != NULL && json_object_is_type(o, json_type_object));
    json_object_put(o);
    ssep_done(&p);
    sse_frame_unref(f);
    job_event_done(&e);
}

static void robustness(const uint8_t *in, size_t n, uint8_t cutb)
{
    struct ssep a, b;
    ssep_init(&a);
    FUZZ_CHECK(ssep_feed(&a, (const char *)in, n) == 0);
    parse_split(&b, (const char *)in, n, cut_of(cutb, n));
    FUZZ_CHECK(a.nev == b.nev);
    FUZZ_CHECK(a.retry_ms == b.retry_ms && a.comments == b.comments);
    for (size_t i = 0; i < a.nev; i++) {
        FUZZ_CHECK(strcmp(a.ev[i].type, b.ev[i].type) == 0);
        FUZZ_CHECK(a.ev[i].data_len == b.ev[i].data_len);
        FUZZ_CHECK(memcmp(a.ev[i].data, b.ev[i].data, a.ev[i].data_len) == 0);
        FUZZ_CHECK(strcmp(a.ev[i].id, b.ev[i].id) == 0);
        FUZZ_CHECK(a.ev[i].data_lines >= 1);
    }
    ssep_done(&a);
    ssep_done(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0] % 3, cutb = data[1];
    data += 2;
    size -= 2;
    if (mode == 0)
        encoder(data, size, cutb);
    else if (mode == 1)
        stored(data, size, cutb);
    else
        robustness(data, size, cutb);
    return 0;
}
