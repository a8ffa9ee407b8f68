/* Unit tests of common/log.c: every line is one valid JSON object, whatever the input. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/log.h"

/* ---- capture of fd 2 into a temporary file ---- */

struct capture {
    FILE *f;
    int saved;
};

static void capture_start(struct capture *c)
{
    c->f = tmpfile();
    ck_assert_ptr_nonnull(c->f);
    c->saved = dup(STDERR_FILENO);
    ck_assert_int_ge(c->saved, 0);
    ck_assert_int_ge(dup2(fileno(c->f), STDERR_FILENO), 0);
}

/* Everything written since capture_start, NUL-terminated; caller frees. */
static char *capture_end(struct capture *c, size_t *ret_len)
{
    struct stat st;
    char *buf;

    ck_assert_int_ge(dup2(c->saved, STDERR_FILENO), 0);
    close(c->saved);
    ck_assert_int_eq(fstat(fileno(c->f), &st), 0);
    buf = malloc((size_t)st.st_size + 1);
    ck_assert_int_eq(pread(fileno(c->f), buf, (size_t)st.st_size, 0), st.st_size);
    buf[st.st_size] = '\0';
    fclose(c->f);
    if (ret_len)
        *ret_len = (size_t)st.st_size;
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Parse one line (without its newline) strictly; the whole line must be the object. */
static struct json_object *parse_line(const char *line, size_t len)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o;

    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, line, (int)len);
    ck_assert_msg(o && json_tokener_get_error(tok) == json_tokener_success,
                  "not one JSON object: %.*s", (int)(len > 300 ? 300 : len), line);
    ck_assert_uint_eq(json_tokener_get_parse_end(tok), len);
    json_tokener_free(tok);
    return o;
}

static const char *get_s(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;

    ck_assert_msg(json_object_object_get_ex(o, k, &v), "missing key %s", k);
    return json_object_get_string(v);
}

/* ---- tests ---- */

#define HOSTILE "he said \"hi\"\n\\ \x01 \xff end\t</script>\r\x7f"
#define HOSTILE_DECODED "he said \"hi\"\n\\ \x01 \xef\xbf\xbd end\t</script>\r\x7f"

START_TEST(test_hostile_strings_parse_back)
{
    struct capture cap;
    struct json_object *o, *v;
    size_t len;
    char *out;

    log_init("check-log", "inst-1", LOG_DEBUG);
    capture_start(&cap);
    log_info(HOSTILE, LOG_STR("s", HOSTILE), LOG_STR(HOSTILE, "as key"), LOG_INT("n", -5),
             LOG_BOOL("b", true), LOG_DBL("d", 1.5), LOG_RAW("r", "{\"x\":[1,2]}"),
             LOG_STR("none", NULL));
    out = capture_end(&cap, &len);

    ck_assert_uint_eq(count_lines(out), 1);
    ck_assert_int_eq(out[len - 1], '\n');
    o = parse_line(out, len - 1);
    ck_assert_str_eq(get_s(o, "msg"), HOSTILE_DECODED);
    ck_assert_str_eq(get_s(o, "s"), HOSTILE_DECODED);
    ck_assert_str_eq(get_s(o, HOSTILE_DECODED), "as key");
    ck_assert_str_eq(get_s(o, "level"), "info");
    ck_assert_str_eq(get_s(o, "service"), "check-log");
    ck_assert_str_eq(get_s(o, "instance"), "inst-1");
    ck_assert(json_object_object_get_ex(o, "n", &v) && json_object_get_int64(v) == -5);
    ck_assert(json_object_object_get_ex(o, "b", &v) && json_object_get_boolean(v));
    ck_assert(json_object_object_get_ex(o, "d", &v) && json_object_get_double(v) == 1.5);
    ck_assert(json_object_object_get_ex(o, "r", &v) && json_object_is_type(v, json_type_object));
    ck_assert(json_object_object_get_ex(o, "none", &v) && v == NULL);

    /* ts is ISO-8601 UTC with milliseconds. */
    const char *ts = get_s(o, "ts");
    ck_assert_uint_eq(strlen(ts), 24);
    ck_assert(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');

    /* Order: ts, level, msg, service, instance, then the pairs as given. */
    static const char *const order[] = { "ts", "level", "msg", "service", "instance", "s",
                                         HOSTILE_DECODED, "n", "b", "d", "r", "none" };
    size_t i = 0;
    json_object_object_foreach(o, key, val) {
        (void)val;
        ck_assert_uint_lt(i, sizeof(order) / sizeof(order[0]));
        ck_assert_str_eq(key, order[i]);
        i++;
    }
    ck_assert_uint_eq(i, sizeof(order) / sizeof(order[0]));
    json_object_put(o);
    free(out);
}
END_TEST

START_TEST(test_levels_and_skip)
{
    struct capture cap;
    struct json_object *o, *v;
    size_t len;
    char *out, *nl;

    ck_assert_int_eq(log_level_parse("debug"), LOG_DEBUG);
    ck_assert_int_eq(log_level_parse("WARN"), LOG_WARN);
    ck_assert_int_eq(log_level_parse("error"), LOG_ERROR);
    ck_assert_int_eq(log_level_parse("verbose"), -1);
    ck_assert_int_eq(log_level_parse(NULL), -1);

    log_init("svc", NULL, LOG_WARN);
    ck_assert(!log_enabled(LOG_INFO));
    ck_assert(log_enabled(LOG_ERROR));
    capture_start(&cap);
    log_debug("hidden");
    log_info("hidden");
    log_warn("shown", LOG_INT("a", 1));
    log_write(LOG_ERROR, "skips",
              (const struct log_kv[]){ { .type = LOG_T_SKIP }, LOG_INT("x", 1),
                                       { .key = "ignored", .type = LOG_T_SKIP }, LOG_INT("y", 2),
                                       { .type = LOG_T_END } });
    log_write(LOG_ERROR, "no pairs", NULL);
    out = capture_end(&cap, &len);

    ck_assert_uint_eq(count_lines(out), 3);
    ck_assert_ptr_null(strstr(out, "hidden"));
    nl = strchr(out, '\n');
    o = parse_line(out, (size_t)(nl - out));
    ck_assert_str_eq(get_s(o, "level"), "warn");
    /* No instance configured: null. */
    ck_assert(json_object_object_get_ex(o, "instance", &v) && v == NULL);
    json_object_put(o);

    char *second = nl + 1;
    nl = strchr(second, '\n');
    o = parse_line(second, (size_t)(nl - second));
    ck_assert_str_eq(get_s(o, "level"), "error");
    ck_assert(!json_object_object_get_ex(o, "ignored", NULL));
    ck_assert_int_eq(json_object_object_length(o), 7);   /* 5 fixed + x + y */
    json_object_put(o);
    free(out);
}
END_TEST

START_TEST(test_long_line_is_capped)
{
    struct capture cap;
    struct json_object *o, *v;
    size_t len, big = 200 * 1024;
    char *out, *val = malloc(big + 1);

    /* Quotes double in size when escaped: the cut must not split an escape. */
    for (size_t i = 0; i < big; i++)
        val[i] = i % 3 ? 'a' : '"';
    val[big] = '\0';
    log_init("svc", "i", LOG_DEBUG);
    capture_start(&cap);
    log_info("big", LOG_STR("k", "before"), LOG_STR("v", val), LOG_STR("after", "dropped"));
    out = capture_end(&cap, &len);

    ck_assert_uint_eq(count_lines(out), 1);
    ck_assert_uint_le(len, 65536);
    ck_assert_uint_gt(len, 60000);
    o = parse_line(out, len - 1);
    ck_assert_str_eq(get_s(o, "k"), "before");
    const char *v_s = get_s(o, "v");
    ck_assert_uint_gt(strlen(v_s), 1000);
    ck_assert_str_eq(v_s + strlen(v_s) - strlen("...(truncated)"), "...(truncated)");
    ck_assert(strncmp(v_s, val, strlen(v_s) - strlen("...(truncated)")) == 0);
    ck_assert(!json_object_object_get_ex(o, "after", NULL));
    ck_assert(json_object_object_get_ex(o, "truncated", &v) && json_object_get_boolean(v));
    json_object_put(o);
    free(out);

    /* Many small fields past the cap: whole fields are dropped. */
    size_t n = 10000;
    struct log_kv *kv = calloc(n + 1, sizeof(*kv));
    for (size_t i = 0; i < n; i++)
        kv[i] = LOG_STR("field", "0123456789");
    kv[n].type = LOG_T_END;
    capture_start(&cap);
    log_write(LOG_INFO, "many", kv);
    out = capture_end(&cap, &len);
    ck_assert_uint_eq(count_lines(out), 1);
    ck_assert_uint_le(len, 65536);
    o = parse_line(out, len - 1);
    ck_assert(json_object_object_get_ex(o, "truncated", &v) && json_object_get_boolean(v));
    json_object_put(o);
    free(out);
    free(kv);

    /* Raw JSON cannot be cut: it becomes null. */
    memset(val, '1', big);
    capture_start(&cap);
    log_info("raw", LOG_RAW("r", val));
    out = capture_end(&cap, &len);
    o = parse_line(out, len - 1);
    ck_assert(json_object_object_get_ex(o, "r", &v) && v == NULL);
    ck_assert(json_object_object_get_ex(o, "truncated", &v) && json_object_get_boolean(v));
    json_object_put(o);
    free(out);
    free(val);
}
END_TEST

#define THREADS 4
#define LINES_PER_THREAD 300

static void *logger_thread(void *arg)
{
    long id = (long)arg;
    char text[3000];

    /* Lines above the stack buffer, so the heap path runs concurrently too. */
    memset(text, 'a' + (int)id, sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    for (int i = 0; i < LINES_PER_THREAD; i++)
        log_info("concurrent", LOG_INT("thread", id), LOG_INT("i", i),
                 LOG_STR("pad", i % 2 ? text : "short"), LOG_STR("pad2", text));
    return NULL;
}

START_TEST(test_concurrent_lines_do_not_interleave)
{
    struct capture cap;
    pthread_t t[THREADS];
    size_t len, lines = 0;
    char *out, *p;

    log_init("svc", "i", LOG_DEBUG);
    capture_start(&cap);
    for (long i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, logger_thread, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    out = capture_end(&cap, &len);
    for (p = out; *p; lines++) {
        char *nl = strchr(p, '\n');

        ck_assert_ptr_nonnull(nl);
        json_object_put(parse_line(p, (size_t)(nl - p)));
        p = nl + 1;
    }
    ck_assert_uint_eq(lines, THREADS * LINES_PER_THREAD);
    free(out);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_hostile_strings_parse_back);
    tcase_add_test(tc, test_levels_and_skip);
    tcase_add_test(tc, test_long_line_is_capped);
    tcase_add_test(tc, test_concurrent_lines_do_not_interleave);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
