/*
 * fuzz-json: jsonx_parse on arbitrary bytes (depth cap 32), then properties
 * of what it accepts:
 *   - every value the getters return agrees with the value's json-c type;
 *   - accepting at depth 3 implies accepting at depth 32;
 *   - serializing and re-parsing gives the same text (so what we log or
 *     store can be read back);
 *   - jsonx_escape of every string parses back to the same string.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <json-c/json.h>

#include "common/jsonx.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_DEPTH 32
#define FUZZ_ESC_MAX 4096          /* strings longer than this skip the escape check */

static void check_escape(const char *s, size_t n)
{
    static char esc[FUZZ_ESC_MAX * 6 + 3];
    struct json_object *o = NULL;
    size_t len;

    if (n > FUZZ_ESC_MAX)
        return;
    len = jsonx_escape(s, esc, sizeof(esc));
    FUZZ_CHECK(len < sizeof(esc));
    FUZZ_CHECK(strlen(esc) == len);
    FUZZ_CHECK(jsonx_parse(esc, len, 1, &o, NULL) == 0);
    FUZZ_CHECK(json_object_is_type(o, json_type_string));
    FUZZ_CHECK((size_t)json_object_get_string_len(o) == n);
    FUZZ_CHECK(memcmp(json_object_get_string(o), s, n) == 0);
    json_object_put(o);
}

/* Getters on member `key` of object `parent`, whose value is v. */
static void check_getters(struct json_object *parent, const char *key, struct json_object *v)
{
    enum json_type t = json_object_get_type(v);
    const char *s = NULL;
    int64_t i = 0;
    double d = 0;
    bool b = false;
    int r;

    r = jsonx_get_str(parent, key, &s);
    if (t == json_type_null)
        FUZZ_CHECK(r == -ENOENT);
    else if (t == json_type_string)
        FUZZ_CHECK(r == 0 && s == json_object_get_string(v));
    else
        FUZZ_CHECK(r == -EINVAL);

    r = jsonx_get_nonempty_str(parent, key, &s);
    if (t == json_type_string && json_object_get_string_len(v) > 0)
        FUZZ_CHECK(r == 0 && strlen(s) > 0);
    else if (t == json_type_string || t == json_type_null)
        FUZZ_CHECK(r == -ENOENT);
    else
        FUZZ_CHECK(r == -EINVAL);

    r = jsonx_get_int(parent, key, &i);
    if (r == 0)
        FUZZ_CHECK(t == json_type_int && i == json_object_get_int64(v));
    else
        FUZZ_CHECK(t != json_type_int || json_object_get_uint64(v) > (uint64_t)INT64_MAX);

    r = jsonx_get_num(parent, key, &d);
    if (t == json_type_int || t == json_type_double)
        FUZZ_CHECK(r == 0 && isfinite(d));
    else
        FUZZ_CHECK(r == (t == json_type_null ? -ENOENT : -EINVAL));

    r = jsonx_get_bool(parent, key, &b);
    if (t == json_type_boolean)
        FUZZ_CHECK(r == 0 && b == (bool)json_object_get_boolean(v));
    else
        FUZZ_CHECK(r == (t == json_type_null ? -ENOENT : -EINVAL));
}

static void walk(struct json_object *o, int depth)
{
    FUZZ_CHECK(depth <= FUZZ_DEPTH);
    switch (json_object_get_type(o)) {
    case json_type_object: {
        const char *s;

        json_object_object_foreach(o, key, val) {
            check_getters(o, key, val);
            check_escape(key, strlen(key));
            walk(val, depth + 1);
        }
        if (!json_object_object_get_ex(o, "\001absent", NULL))
            FUZZ_CHECK(jsonx_get_str(o, "\001absent", &s) == -ENOENT);
        break;
    }
    case json_type_array:
        for (size_t i = 0, n = json_object_array_length(o); i < n; i++)
            walk(json_object_array_get_idx(o, i), depth + 1);
        break;
    case json_type_string:
        check_escape(json_object_get_string(o), (size_t)json_object_get_string_len(o));
        break;
    case json_type_double:
        FUZZ_CHECK(isfinite(json_object_get_double(o)));
        break;
    default:
        break;
    }
    if (!json_object_is_type(o, json_type_object)) {
        const char *s;
        int64_t i;

        FUZZ_CHECK(jsonx_get_str(o, "k", &s) == -EINVAL);
        FUZZ_CHECK(jsonx_get_int(o, "k", &i) == -EINVAL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_object *o = NULL, *shallow = NULL, *again = NULL;
    enum jsonx_err kind = JSONX_OK;
    const char *text;
    char *copy;
    int r;

    r = jsonx_parse((const char *)data, size, FUZZ_DEPTH, &o, &kind);
    if (size == 0)
        FUZZ_CHECK(r == -EINVAL && kind == JSONX_EMPTY);
    if (jsonx_parse((const char *)data, size, 3, &shallow, NULL) == 0) {
        FUZZ_CHECK(r == 0);
        json_object_put(shallow);
    }
    if (r != 0) {
        FUZZ_CHECK(r == -EINVAL && kind != JSONX_OK);
        return 0;
    }
    FUZZ_CHECK(kind == JSONX_OK);
    if (!o)                                     /* top-level null */
        return 0;
    walk(o, 0);

    text = jsonx_to_string(o);
    FUZZ_CHECK(text != NULL);
    copy = strdup(text);
    FUZZ_CHECK(copy != NULL);
    FUZZ_CHECK(jsonx_parse(copy, strlen(copy), FUZZ_DEPTH, &again, NULL) == 0);
    FUZZ_CHECK(again != NULL);
    FUZZ_CHECK(strcmp(jsonx_to_string(again), copy) == 0);
    free(copy);
    json_object_put(again);
    json_object_put(o);
    return 0;
}
