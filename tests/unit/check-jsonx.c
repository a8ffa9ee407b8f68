/* Unit tests of common/jsonx.c: strict parsing of untrusted JSON, typed getters, escaping. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/jsonx.h"

/* Parse s (whole C string); returns the error kind, puts the object. */
static enum jsonx_err parse_kind(const char *s, int depth)
{
    struct json_object *o = NULL;
    enum jsonx_err kind = (enum jsonx_err)-1;
    int r = jsonx_parse(s, strlen(s), depth, &o, &kind);

    ck_assert_int_eq(r, kind == JSONX_OK ? 0 : -EINVAL);
    json_object_put(o);
    return kind;
}

/* depth nested containers, the innermost holding 1 (leaf) or empty:
 * "[[1]]", "[[]]", "{"k":{"k":1}}", "{"k":{}}". */
static char *nested(int depth, bool leaf, bool objects)
{
    char *s = malloc((size_t)depth * 8 + 8), *p = s;
    int wrap = objects && !leaf ? depth - 1 : depth;

    for (int i = 0; i < wrap; i++)
        p = stpcpy(p, objects ? "{\"k\":" : "[");
    if (leaf)
        p = stpcpy(p, "1");
    else if (objects)
        p = stpcpy(p, "{}");
    for (int i = 0; i < wrap; i++)
        p = stpcpy(p, objects ? "}" : "]");
    return s;
}

START_TEST(test_parse_ok)
{
    struct json_object *o = NULL;
    enum jsonx_err kind;
    const char *s = " \n{\"a\":[1,2,{\"b\":\"c\"}],\"d\":null}\r\n\t ";
    int64_t n;

    ck_assert_int_eq(jsonx_parse(s, strlen(s), 32, &o, &kind), 0);
    ck_assert_int_eq(kind, JSONX_OK);
    ck_assert(json_object_is_type(o, json_type_object));
    ck_assert_str_eq(jsonx_to_string(o), "{\"a\":[1,2,{\"b\":\"c\"}],\"d\":null}");
    json_object_put(o);

    /* Top-level scalars need the end of input to finish. */
    ck_assert_int_eq(jsonx_parse("123", 3, 32, &o, NULL), 0);
    ck_assert(json_object_is_type(o, json_type_int));
    ck_assert_int_eq(json_object_get_int64(o), 123);
    json_object_put(o);
    ck_assert_int_eq(jsonx_parse("true ", 5, 32, &o, NULL), 0);
    ck_assert(json_object_get_boolean(o));
    json_object_put(o);
    o = (struct json_object *)&n;   /* poison: must become NULL */
    ck_assert_int_eq(jsonx_parse("null", 4, 32, &o, NULL), 0);
    ck_assert_ptr_null(o);

    /* The length is honoured: bytes past it are not looked at. */
    ck_assert_int_eq(jsonx_parse("[1]garbage", 3, 32, &o, NULL), 0);
    json_object_put(o);
    ck_assert_int_eq(jsonx_parse("12345", 2, 32, &o, NULL), 0);
    ck_assert_int_eq(json_object_get_int64(o), 12);
    json_object_put(o);
}
END_TEST

START_TEST(test_parse_malformed)
{
    static const char *const bad[] = {
        "{", "}", "[1,2", "{\"a\":}", "{\"a\" 1}", "[1,]", "{\"a\":1,}", "'a'",
        "{a:1}", "tru", "nul", "01x", "\"unterminated", "[1]//comment", "/*c*/[1]",
        "NaN", "[Infinity]", "[-Infinity]", "1e400", "\"\xff\"", "\"\xc0\xaf\"", "+1",
        /* json-c 0.16 strict mode alone accepts these two (keys) */
        "{'a':1}", "{\"content\":\"x\",'userId':\"u\"}", "{\"sub\\u0000evil\":\"admin\"}",
        "[01]", "[1.]", "[.5]", "[1e]", "{\"a\":1 \"b\":2}", "[\"\\x\"]", "[\"\t\"]", "{,}", "[,1]",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum jsonx_err k = parse_kind(bad[i], 32);

        ck_assert_msg(k == JSONX_SYNTAX, "input %s gave kind %d", bad[i], (int)k);
    }
}
END_TEST

START_TEST(test_parse_trailing)
{
    ck_assert_int_eq(parse_kind("{} x", 32), JSONX_SYNTAX);
    ck_assert_int_eq(parse_kind("{}{}", 32), JSONX_SYNTAX);
    ck_assert_int_eq(parse_kind("1 2", 32), JSONX_SYNTAX);
    ck_assert_int_eq(parse_kind("[1] ,", 32), JSONX_SYNTAX);
    ck_assert_int_eq(parse_kind("\"a\"b", 32), JSONX_SYNTAX);
    ck_assert_int_eq(parse_kind("{}  \n", 32), JSONX_OK);
}
END_TEST

START_TEST(test_parse_unicode)
{
    struct json_object *o = NULL;
    const char *s = "[\"\\ud83d\\ude00\", \"caf\xc3\xa9\"]";

    /* An escaped surrogate pair and raw UTF-8 are fine. */
    ck_assert_int_eq(jsonx_parse(s, strlen(s), 4, &o, NULL), 0);
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(o, 0)), "\xf0\x9f\x98\x80");
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(o, 1)), "caf\xc3\xa9");
    json_object_put(o);
    /* Overlong forms and raw surrogates are not UTF-8, in values or keys. */
    ck_assert_int_eq(parse_kind("[\"\xed\xa0\x80\"]", 4), JSONX_SYNTAX);
    ck_assert_int_eq(parse_kind("{\"\xc0\xaf\":1}", 4), JSONX_SYNTAX);
    ck_assert_int_eq(parse_kind("{\"\xff\":1}", 4), JSONX_SYNTAX);
}
END_TEST

START_TEST(test_parse_nul_and_empty)
{
    static const char with_nul[] = "{\"a\":\"x\0y\"}";
    static const char nul_after[] = "{}\0";
    struct json_object *o = NULL;
    enum jsonx_err kind;

    ck_assert_int_eq(jsonx_parse(with_nul, sizeof(with_nul) - 1, 32, &o, &kind), -EINVAL);
    ck_assert_int_eq(kind, JSONX_SYNTAX);
    ck_assert_int_eq(jsonx_parse(nul_after, sizeof(nul_after) - 1, 32, &o, &kind), -EINVAL);
    ck_assert_int_eq(kind, JSONX_SYNTAX);
    ck_assert_ptr_null(o);
    /* An escaped NUL would cut a C string short: refused as well. */
    ck_assert_int_eq(parse_kind("{\"a\":\"x\\u0000y\"}", 32), JSONX_SYNTAX);

    ck_assert_int_eq(jsonx_parse("", 0, 32, &o, &kind), -EINVAL);
    ck_assert_int_eq(kind, JSONX_EMPTY);
    ck_assert_int_eq(jsonx_parse(NULL, 0, 32, &o, &kind), -EINVAL);
    ck_assert_int_eq(kind, JSONX_EMPTY);
    ck_assert_int_eq(parse_kind(" \r\n\t", 32), JSONX_EMPTY);
}
END_TEST

START_TEST(test_parse_depth)
{
    /* Depth counts containers: 32 nested are fine at cap 32, 33 are not,
     * whether the innermost is empty or holds a value, arrays or objects. */
    for (int leaf = 0; leaf <= 1; leaf++) {
        for (int objects = 0; objects <= 1; objects++) {
            char *ok = nested(32, leaf, objects), *deep = nested(33, leaf, objects);

            ck_assert_msg(parse_kind(ok, 32) == JSONX_OK, "depth 32 refused: %s", ok);
            ck_assert_msg(parse_kind(deep, 32) == JSONX_DEPTH, "depth 33 accepted: %s", deep);
            free(ok);
            free(deep);
        }
    }
    ck_assert_int_eq(parse_kind("1", 1), JSONX_OK);
    ck_assert_int_eq(parse_kind("[1]", 1), JSONX_OK);
    ck_assert_int_eq(parse_kind("{\"a\":[]}", 1), JSONX_DEPTH);
    ck_assert_int_eq(parse_kind("[{}]", 2), JSONX_OK);
    ck_assert_int_eq(parse_kind("[1,[2,[3]]]", 2), JSONX_DEPTH);

    /* Far deeper than the cap: refused without trouble. */
    char *huge = nested(100000, true, false);
    ck_assert_int_eq(parse_kind(huge, 32), JSONX_DEPTH);
    free(huge);
}
END_TEST

START_TEST(test_getters)
{
    const char *s = "{\"s\":\"txt\",\"e\":\"\",\"i\":-42,\"big\":9223372036854775807,"
                    "\"huge\":9223372036854775808,\"d\":1.0,\"b\":true,\"n\":null,\"o\":{}}";
    struct json_object *o = NULL;
    const char *str;
    int64_t i;
    bool b;
    double d;

    ck_assert_int_eq(jsonx_parse(s, strlen(s), 32, &o, NULL), 0);

    ck_assert_int_eq(jsonx_get_str(o, "s", &str), 0);
    ck_assert_str_eq(str, "txt");
    ck_assert_int_eq(jsonx_get_str(o, "e", &str), 0);
    ck_assert_str_eq(str, "");
    ck_assert_int_eq(jsonx_get_str(o, "i", &str), -EINVAL);
    ck_assert_int_eq(jsonx_get_str(o, "o", &str), -EINVAL);
    ck_assert_int_eq(jsonx_get_str(o, "missing", &str), -ENOENT);
    ck_assert_int_eq(jsonx_get_str(o, "n", &str), -ENOENT);

    ck_assert_int_eq(jsonx_get_nonempty_str(o, "s", &str), 0);
    ck_assert_int_eq(jsonx_get_nonempty_str(o, "e", &str), -ENOENT);
    ck_assert_int_eq(jsonx_get_nonempty_str(o, "b", &str), -EINVAL);

    ck_assert_int_eq(jsonx_get_int(o, "i", &i), 0);
    ck_assert_int_eq(i, -42);
    ck_assert_int_eq(jsonx_get_int(o, "big", &i), 0);
    ck_assert(i == INT64_MAX);
    ck_assert_int_eq(jsonx_get_int(o, "huge", &i), -EINVAL);
    i = 7;
    ck_assert_int_eq(jsonx_get_int(o, "d", &i), -EINVAL);     /* 1.0 is a double */
    ck_assert_int_eq(jsonx_get_int(o, "s", &i), -EINVAL);
    ck_assert_int_eq(jsonx_get_int(o, "b", &i), -EINVAL);
    ck_assert_int_eq(jsonx_get_int(o, "n", &i), -ENOENT);
    ck_assert_int_eq(i, 7);                                  /* untouched on failure */

    ck_assert_int_eq(jsonx_get_bool(o, "b", &b), 0);
    ck_assert(b);
    ck_assert_int_eq(jsonx_get_bool(o, "i", &b), -EINVAL);
    ck_assert_int_eq(jsonx_get_bool(o, "s", &b), -EINVAL);
    ck_assert_int_eq(jsonx_get_bool(o, "missing", &b), -ENOENT);

    ck_assert_int_eq(jsonx_get_num(o, "d", &d), 0);
    ck_assert(d == 1.0);
    ck_assert_int_eq(jsonx_get_num(o, "i", &d), 0);
    ck_assert(d == -42.0);
    ck_assert_int_eq(jsonx_get_num(o, "s", &d), -EINVAL);
    ck_assert_int_eq(jsonx_get_num(o, "b", &d), -EINVAL);

    /* Not an object at all. */
    struct json_object *arr = json_object_new_array();
    ck_assert_int_eq(jsonx_get_str(arr, "s", &str), -EINVAL);
    ck_assert_int_eq(jsonx_get_int(NULL, "i", &i), -EINVAL);
    json_object_put(arr);
    json_object_put(o);
}
END_TEST

START_TEST(test_to_string)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "url", json_object_new_string("https://x.example/a/b"));
    json_object_object_add(o, "n", json_object_new_int(1));
    ck_assert_str_eq(jsonx_to_string(o), "{\"url\":\"https://x.example/a/b\",\"n\":1}");
    json_object_put(o);
}
END_TEST

START_TEST(test_escape)
{
    char out[128];
    size_t n;

    n = jsonx_escape("a\"b\\c/d", out, sizeof(out));
    ck_assert_str_eq(out, "\"a\\\"b\\\\c/d\"");
    ck_assert_uint_eq(n, strlen(out));

    jsonx_escape("\n\r\t\b\f\x01\x1f", out, sizeof(out));
    ck_assert_str_eq(out, "\"\\n\\r\\t\\b\\f\\u0001\\u001f\"");

    /* Valid UTF-8 passes; invalid bytes, overlongs and surrogates become U+FFFD. */
    jsonx_escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", out, sizeof(out));
    ck_assert_str_eq(out, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    jsonx_escape("a\xff" "b", out, sizeof(out));
    ck_assert_str_eq(out, "\"a\\ufffdb\"");
    jsonx_escape("\xc0\xaf", out, sizeof(out));
    ck_assert_str_eq(out, "\"\\ufffd\\ufffd\"");
    jsonx_escape("\xed\xa0\x80", out, sizeof(out));
    ck_assert_str_eq(out, "\"\\ufffd\\ufffd\\ufffd\"");
    jsonx_escape("\xe2\x82", out, sizeof(out));             /* cut sequence */
    ck_assert_str_eq(out, "\"\\ufffd\\ufffd\"");

    jsonx_escape(NULL, out, sizeof(out));
    ck_assert_str_eq(out, "null");

    /* snprintf semantics. */
    n = jsonx_escape("hello", out, 4);
    ck_assert_uint_eq(n, 7);
    ck_assert_str_eq(out, "\"he");
    ck_assert_uint_eq(jsonx_escape("hello", NULL, 0), 7);
}
END_TEST

START_TEST(test_escape_round_trip)
{
    /* Every byte value: what comes out is valid JSON that parses back. */
    char in[256], out[256 * 6 + 3];
    struct json_object *o = NULL;
    size_t n;

    for (int i = 1; i < 256; i++)
        in[i - 1] = (char)i;
    in[255] = '\0';
    n = jsonx_escape(in, out, sizeof(out));
    ck_assert_uint_lt(n, sizeof(out));
    ck_assert_int_eq(jsonx_parse(out, n, 4, &o, NULL), 0);
    ck_assert(json_object_is_type(o, json_type_string));
    /* The ASCII part survives exactly. */
    ck_assert(memcmp(json_object_get_string(o), in, 127) == 0);
    json_object_put(o);
}
END_TEST

static Suite *jsonx_suite(void)
{
    Suite *s = suite_create("jsonx");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_parse_ok);
    tcase_add_test(tc, test_parse_malformed);
    tcase_add_test(tc, test_parse_trailing);
    tcase_add_test(tc, test_parse_unicode);
    tcase_add_test(tc, test_parse_nul_and_empty);
    tcase_add_test(tc, test_parse_depth);
    tcase_add_test(tc, test_getters);
    tcase_add_test(tc, test_to_string);
    tcase_add_test(tc, test_escape);
    tcase_add_test(tc, test_escape_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jsonx_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
