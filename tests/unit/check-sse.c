/*
 * Unit tests of gateway/sse.c (SSE frame encoding), read back through a
 * WHATWG event-stream parser (tests/support/sse-parse.h), which is itself
 * checked first against the standard's own examples: a frame is right when
 * a conforming client reads back the event name, the data and the id that
 * were encoded, whatever bytes the data holds and however the stream is cut
 * into reads.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/job.h"
#include "gateway/sse.h"
#include "tests/support/sse-parse.h"

/* Parse the whole text in one feed. */
static void parse_all(struct ssep *p, const char *s, size_t n)
{
    ssep_init(p);
    ck_assert_int_eq(ssep_feed(p, s, n), 0);
}

static void assert_event(const struct ssep *p, size_t i, const char *type, const char *data, const char *id)
{
    ck_assert_uint_gt(p->nev, i);
    ck_assert_str_eq(p->ev[i].type, type);
    ck_assert_str_eq(p->ev[i].data, data);
    ck_assert_uint_eq(p->ev[i].data_len, strlen(data));
    ck_assert_str_eq(p->ev[i].id, id);
}

/* ------------------------------------------------------------ the parser itself */

START_TEST(test_parser_spec_examples)
{
    struct ssep p;
    /* "data: YHOO / +2 / 10": three data lines joined with LF */
    const char *a = "data: YHOO\ndata: +2\ndata: 10\n\n";
    parse_all(&p, a, strlen(a));
    ck_assert_uint_eq(p.nev, 1);
    assert_event(&p, 0, "message", "YHOO\n+2\n10", "");
    ck_assert_uint_eq(p.ev[0].data_lines, 3);
    ssep_done(&p);

    /* comment, id, "id" alone clears the last event ID, unterminated block discarded */
    const char *b = ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n";
    parse_all(&p, b, strlen(b));
    ck_assert_uint_eq(p.comments, 1);
    ck_assert_uint_eq(p.nev, 2);
    assert_event(&p, 0, "message", "first event", "1");
    assert_event(&p, 1, "message", "second event", "");
    ssep_done(&p);

    /* "data" with no colon: empty value; two of them: one LF */
    const char *c = "data\n\ndata\ndata\n\ndata:";
    parse_all(&p, c, strlen(c));
    ck_assert_uint_eq(p.nev, 2);
    assert_event(&p, 0, "message", "", "");
    assert_event(&p, 1, "message", "\n", "");
    ssep_done(&p);

    /* one leading space is removed, not two */
    const char *d = "data:test\n\ndata: test\n\ndata:  test\n\n";
    parse_all(&p, d, strlen(d));
    ck_assert_uint_eq(p.nev, 3);
    assert_event(&p, 0, "message", "test", "");
    assert_event(&p, 1, "message", "test", "");
    assert_event(&p, 2, "message", " test", "");
    ssep_done(&p);
}
END_TEST

START_TEST(test_parser_line_ends_and_fields)
{
    struct ssep p;
    /* CRLF, CR and LF all end lines; a BOM at the very start is dropped */
    const char *a = "\xef\xbb\xbf" "event: a\r\ndata: 1\r\rretry: 2500\nid: 7\n\nevent:b\rdata: x:y\r\n\r\n";
    parse_all(&p, a, strlen(a));
    ck_assert_uint_eq(p.nev, 2);
    assert_event(&p, 0, "a", "1", "");       /* the CR CR ended the block before id: 7 */
    assert_event(&p, 1, "b", "x:y", "7");    /* the id block dispatched nothing but set the ID */
    ck_assert_int_eq(p.retry_ms, 2500);
    ssep_done(&p);

    /* unknown fields and bad retry values are ignored; id with NUL ignored */
    const char s[] = "foo: bar\nretry: 12a\nretry:\nid: 4\n\nid: 5\0x\ndata: z\n\n";
    parse_all(&p, s, sizeof(s) - 1);
    ck_assert_uint_eq(p.nev, 1);
    assert_event(&p, 0, "message", "z", "4");
    ck_assert_int_eq(p.retry_ms, -1);
    ssep_done(&p);

    /* an event field without data fires nothing and does not leak into the next block */
    const char *t = "event: lost\n\ndata: d\n\n";
    parse_all(&p, t, strlen(t));
    ck_assert_uint_eq(p.nev, 1);
    assert_event(&p, 0, "message", "d", "");
    ssep_done(&p);

    /* a BOM later in the stream is data, and only one BOM is stripped */
    const char *u = "\xef\xbb\xbf\xef\xbb\xbf" "data: q\n\n";
    parse_all(&p, u, strlen(u));
    ck_assert_uint_eq(p.nev, 0);             /* the line's field name is "\xef\xbb\xbf" "data" */
    ssep_done(&p);
}
END_TEST

/* Every split of a stream into two reads gives the same events (CR/LF across reads). */
START_TEST(test_parser_chunking)
{
    const char *s = "event: a\r\ndata: 1\r\ndata: 2\r\rid: 9\r\n\r\nevent: b\rdata: \r\n\n";
    size_t n = strlen(s);
    struct ssep whole;
    parse_all(&whole, s, n);
    ck_assert_uint_eq(whole.nev, 2);
    for (size_t cut = 0; cut <= n; cut++) {
        struct ssep p;
        ssep_init(&p);
        ck_assert_int_eq(ssep_feed(&p, s, cut), 0);
        ck_assert_int_eq(ssep_feed(&p, s + cut, n - cut), 0);
        ck_assert_uint_eq(p.nev, whole.nev);
        for (size_t i = 0; i < p.nev; i++)
            assert_event(&p, i, whole.ev[i].type, whole.ev[i].data, whole.ev[i].id);
        ssep_done(&p);
    }
    /* and byte by byte */
    struct ssep p;
    ssep_init(&p);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(ssep_feed(&p, s + i, 1), 0);
    ck_assert_uint_eq(p.nev, whole.nev);
    ssep_done(&p);
    ssep_done(&whole);
}
END_TEST

/* ------------------------------------------------------------ the encoder */

START_TEST(test_encode_exact_bytes)
{
    char out[256];
    const char *d = "{\"jobId\":\"j1\",\"progress\":50}";
    long n = sse_encode("progress", d, strlen(d), 3, out, sizeof(out));
    const char *want = "event: progress\ndata: {\"jobId\":\"j1\",\"progress\":50}\nid: 3\n\n";
    ck_assert_int_eq(n, (long)strlen(want));
    ck_assert_str_eq(out, want);

    /* seq 0 (connected, heartbeat): no id line */
    n = sse_encode("connected", "{}", 2, 0, out, sizeof(out));
    ck_assert_str_eq(out, "event: connected\ndata: {}\n\n");
    ck_assert_int_eq(n, (long)strlen(out));

    /* empty data is still one data line (the event fires with data "") */
    sse_encode("x", "", 0, 1, out, sizeof(out));
    ck_assert_str_eq(out, "event: x\ndata: \nid: 1\n\n");

    /* the largest id */
    sse_encode("x", "1", 1, 9223372036854775807LL, out, sizeof(out));
    ck_assert_str_eq(out, "event: x\ndata: 1\nid: 9223372036854775807\n\n");
}
END_TEST

START_TEST(test_encode_bad_names)
{
    char out[64];
    ck_assert_int_eq(sse_encode(NULL, "{}", 2, 1, out, sizeof(out)), -EINVAL);
    ck_assert_int_eq(sse_encode("", "{}", 2, 1, out, sizeof(out)), -EINVAL);
    ck_assert_int_eq(sse_encode("a\nb", "{}", 2, 1, out, sizeof(out)), -EINVAL);
    ck_assert_int_eq(sse_encode("a\rb", "{}", 2, 1, out, sizeof(out)), -EINVAL);
    ck_assert_ptr_null(sse_frame_event("a\nevent: b", "{}", 2, 1, NULL));
    ck_assert_ptr_null(sse_frame_event("", "{}", 2, 1, NULL));
}
END_TEST

/* Like snprintf: the length needed whatever the cap, output cut and terminated. */
START_TEST(test_encode_truncation)
{
    const char *d = "a\r\nb";
    long need = sse_encode("e", d, strlen(d), 12, NULL, 0);
    char full[128];
    ck_assert_int_eq(sse_encode("e", d, strlen(d), 12, full, sizeof(full)), need);
    ck_assert_str_eq(full, "event: e\ndata: a\ndata: b\nid: 12\n\n");
    ck_assert_int_eq(need, (long)strlen(full));
    for (size_t cap = 1; cap <= (size_t)need + 1; cap++) {
        char buf[128];
        memset(buf, '#', sizeof(buf));
        ck_assert_int_eq(sse_encode("e", d, strlen(d), 12, buf, cap), need);
        ck_assert_uint_eq(strlen(buf), cap - 1);
        ck_assert_int_eq(memcmp(buf, full, cap - 1), 0);
        ck_assert_int_eq(buf[cap], '#');     /* nothing written past the cap */
    }
}
END_TEST

/* Multi-line data: one data line per line, read back with LF line ends. */
START_TEST(test_encode_multiline_roundtrip)
{
    static const struct { const char *in, *want; } cases[] = {
        { "a\nb", "a\nb" },
        { "a\r\nb", "a\nb" },
        { "a\rb", "a\nb" },
        { "a\n\nb", "a\n\nb" },
        { "\n", "\n" },
        { "\r\n", "\n" },
        { "\r", "\n" },
        { "x\r", "x\n" },
        { "\r\r\n\n", "\n\n\n" },
        { " lead", " lead" },          /* "data:  lead": the parser strips only one space */
        { ": not a comment", ": not a comment" },
        { "id: 5", "id: 5" },
        { "data: nested", "data: nested" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sse_frame *f = sse_frame_event("m", cases[i].in, strlen(cases[i].in), 42, "job");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(f->len, strlen(f->text));
        struct ssep p;
        parse_all(&p, f->text, f->len);
        ck_assert_msg(p.nev == 1, "case %zu: %zu events", i, p.nev);
        assert_event(&p, 0, "m", cases[i].want, "42");
        ck_assert_uint_eq(p.comments, 0);
        ssep_done(&p);
        sse_frame_unref(f);
    }
}
END_TEST

/* Data with NUL bytes and non-ASCII passes through byte for byte. */
START_TEST(test_encode_binary_data)
{
    const char d[] = "a\0b\xc3\xa9\xe2\x80\xa8z";   /* NUL, é, U+2028 (not a line end in SSE) */
    size_t n = sizeof(d) - 1;
    struct sse_frame *f = sse_frame_event("bin", d, n, 1, NULL);
    ck_assert_ptr_nonnull(f);
    struct ssep p;
    parse_all(&p, f->text, f->len);
    ck_assert_uint_eq(p.nev, 1);
    ck_assert_uint_eq(p.ev[0].data_len, n);
    ck_assert_int_eq(memcmp(p.ev[0].data, d, n), 0);
    ck_assert_uint_eq(p.ev[0].data_lines, 1);
    ssep_done(&p);
    sse_frame_unref(f);
}
END_TEST

/* Concatenated frames (what a stream is) read back in order with their ids. */
START_TEST(test_frames_in_a_stream)
{
    struct sse_frame *fr[4];
    fr[0] = sse_frame_raw("retry: 3000\n\n");
    fr[1] = sse_frame_event("connected", "{\"jobId\":\"j\"}", 13, 0, NULL);
    fr[2] = sse_frame_event("active", "{\"attempt\":1}", 13, 1, "j");
    fr[3] = sse_frame_event("heartbeat", "{}", 2, 0, NULL);
    char buf[512] = "";
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        ck_assert_ptr_nonnull(fr[i]);
        memcpy(buf + n, fr[i]->text, fr[i]->len);
        n += fr[i]->len;
    }
    struct ssep p;
    parse_all(&p, buf, n);
    ck_assert_int_eq(p.retry_ms, 3000);
    ck_assert_uint_eq(p.nev, 3);
    assert_event(&p, 0, "connected", "{\"jobId\":\"j\"}", "");
    ck_assert(!p.ev[0].had_id);
    assert_event(&p, 1, "active", "{\"attempt\":1}", "1");
    ck_assert(p.ev[1].had_id);
    /* a heartbeat carries no id: EventSource keeps 1 as the last event ID */
    assert_event(&p, 2, "heartbeat", "{}", "1");
    ck_assert(!p.ev[2].had_id);
    ssep_done(&p);
    /* references: one extra ref survives the first unref */
    sse_frame_ref(fr[2]);
    sse_frame_unref(fr[2]);
    ck_assert_int_eq(fr[2]->seq, 1);
    ck_assert_str_eq(fr[2]->job_id, "j");
    for (int i = 0; i < 4; i++)
        sse_frame_unref(fr[i]);
    sse_frame_unref(NULL);
}
END_TEST

/* A stored event (untrusted text from Redis) becomes a one-line data frame,
 * whatever whitespace or escaped line breaks its JSON holds. */
START_TEST(test_frame_from_stored_event)
{
    const char *stored =
        "{\"seq\":4,\"event\":\"completed\",\"jobId\":\"job-1\",\"userId\":\"u\",\n"
        " \"data\":{\n  \"jobId\":\"job-1\",\r\n  \"result\":{\"text\":\"line1\\nline2\\r\\u2028\"},\n"
        "  \"duration\":12,\"timestamp\":\"2024-01-02T03:04:05.678Z\"}}";
    struct job_event e;
    ck_assert_int_eq(job_event_decode(stored, strlen(stored), &e), 0);
    struct sse_frame *f = sse_frame_from_event(&e);
    ck_assert_ptr_nonnull(f);
    ck_assert(f->final);
    ck_assert_int_eq(f->seq, 4);
    ck_assert_str_eq(f->job_id, "job-1");
    struct ssep p;
    parse_all(&p, f->text, f->len);
    ck_assert_uint_eq(p.nev, 1);
    ck_assert_uint_eq(p.ev[0].data_lines, 1);
    assert_event(&p, 0, "completed", e.data_json, "4");
    struct json_object *o = json_tokener_parse(p.ev[0].data);
    ck_assert_ptr_nonnull(o);
    struct json_object *r, *t;
    ck_assert(json_object_object_get_ex(o, "result", &r));
    ck_assert(json_object_object_get_ex(r, "text", &t));
    ck_assert_str_eq(json_object_get_string(t), "line1\nline2\r\xe2\x80\xa8");
    json_object_put(o);
    ssep_done(&p);
    sse_frame_unref(f);
    job_event_done(&e);

    /* progress is not final; failed is */
    const char *prog = "{\"seq\":2,\"event\":\"progress\",\"jobId\":\"j\",\"userId\":\"u\",\"data\":{}}";
    ck_assert_int_eq(job_event_decode(prog, strlen(prog), &e), 0);
    f = sse_frame_from_event(&e);
    ck_assert(!f->final);
    sse_frame_unref(f);
    job_event_done(&e);
    const char *fail = "{\"seq\":9,\"event\":\"failed\",\"jobId\":\"j\",\"userId\":\"u\",\"data\":{\"code\":\"X\"}}";
    ck_assert_int_eq(job_event_decode(fail, strlen(fail), &e), 0);
    f = sse_frame_from_event(&e);
    ck_assert(f->final);
    ck_assert_str_eq(f->text, "event: failed\ndata: {\"code\":\"X\"}\nid: 9\n\n");
    sse_frame_unref(f);
    job_event_done(&e);
}
END_TEST

static Suite *sse_suite(void)
{
    Suite *s = suite_create("sse");
    TCase *tc = tcase_create("parser");
    tcase_add_test(tc, test_parser_spec_examples);
    tcase_add_test(tc, test_parser_line_ends_and_fields);
    tcase_add_test(tc, test_parser_chunking);
    suite_add_tcase(s, tc);
    tc = tcase_create("encoder");
    tcase_add_test(tc, test_encode_exact_bytes);
    tcase_add_test(tc, test_encode_bad_names);
    tcase_add_test(tc, test_encode_truncation);
    tcase_add_test(tc, test_encode_multiline_roundtrip);
    tcase_add_test(tc, test_encode_binary_data);
    tcase_add_test(tc, test_frames_in_a_stream);
    tcase_add_test(tc, test_frame_from_stored_event);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sse_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
