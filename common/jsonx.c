/*
 * json-c helpers for untrusted input.
 *
 * jsonx_parse hands json-c the exact length, a depth cap, and strict mode
 * with UTF-8 validation; then it refuses what json-c lets through but we do
 * not want in C: trailing bytes, raw or escaped NUL bytes (C strings would be
 * cut short), non-finite numbers (NaN, Infinity, 1e400), and UTF-8 that
 * json-c's check misses (overlong forms, surrogates).
 *
 * Depth counts nested containers: `1` is depth 0, `[1]` and `{}` depth 1,
 * `[[1]]` depth 2.  json-c counts stack levels instead, where a scalar inside
 * a container takes a level of its own, so its cap is set one higher and the
 * tree is walked afterwards to apply our definition exactly.  The walk's
 * recursion is bounded by that same cap.
 *
 * The escaper is shared with log.c: one character per step, so a caller with
 * an output budget can stop between characters without splitting an escape
 * or a UTF-8 sequence.
 */
#include "common/jsonx.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include <json-c/json.h>

#define JSONX_DEPTH_LIMIT 1024   /* highest max_depth honoured (bounds the walk) */

static bool jsonx_is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid. */
static size_t jsonx_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;   /* bounds of the second byte */

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;                    /* overlong */
        else if (c == 0xed)
            hi = 0x9f;                    /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;                    /* overlong */
        else if (c == 0xf4)
            hi = 0x8f;                    /* above U+10FFFF */
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/* Whole string valid UTF-8 without NUL bytes. */
static bool jsonx_utf8_valid(const char *s, size_t n)
{
    while (n > 0) {
        size_t k = s[0] ? jsonx_utf8_seq((const unsigned char *)s, n) : 0;

        if (k == 0)
            return false;
        s += k;
        n -= k;
    }
    return true;
}

/* 0 fine, JSONX_DEPTH too deep, JSONX_SYNTAX a value we refuse. */
static enum jsonx_err jsonx_check(struct json_object *o, int depth, int max_depth)
{
    switch (json_object_get_type(o)) {
    case json_type_double: {
        double d = json_object_get_double(o);

        return isfinite(d) ? JSONX_OK : JSONX_SYNTAX;
    }
    case json_type_string:
        /* json-c's own UTF-8 check lets overlong forms and surrogates by. */
        if (!jsonx_utf8_valid(json_object_get_string(o), (size_t)json_object_get_string_len(o)))
            return JSONX_SYNTAX;
        return JSONX_OK;
    case json_type_array: {
        size_t n = json_object_array_length(o);

        if (depth + 1 > max_depth)
            return JSONX_DEPTH;
        for (size_t i = 0; i < n; i++) {
            enum jsonx_err e = jsonx_check(json_object_array_get_idx(o, i), depth + 1, max_depth);

            if (e != JSONX_OK)
                return e;
        }
        return JSONX_OK;
    }
    case json_type_object:
        if (depth + 1 > max_depth)
            return JSONX_DEPTH;
        json_object_object_foreach(o, key, val) {
            enum jsonx_err e = jsonx_check(val, depth + 1, max_depth);

            if (e == JSONX_OK && !jsonx_utf8_valid(key, strlen(key)))
                e = JSONX_SYNTAX;
            if (e != JSONX_OK)
                return e;
        }
        return JSONX_OK;
    default:
        return JSONX_OK;
    }
}

/*
 * RFC 8259 grammar check, run before json-c: json-c 0.16's strict mode still
 * accepts single-quoted object keys and cuts keys at an escaped \u0000, so
 * the bytes are checked here first (iteratively, one pass, no allocation):
 * structure, string escapes (no raw control characters, no \u0000), number
 * syntax, literals, and nesting depth.  UTF-8 validity is json-c's check.
 */
static enum jsonx_err grammar(const char *s, size_t n, int max_depth)
{
    char stack[JSONX_DEPTH_LIMIT + 1];   /* '{' or '[' */
    int depth = 0;
    size_t i = 0;
    enum { VALUE, AFTER_VALUE, KEY, COLON } want = VALUE;

#define WS() while (i < n && jsonx_is_ws(s[i])) i++
    for (;;) {
        WS();
        if (i == n)
            return (want == AFTER_VALUE && depth == 0) ? JSONX_OK : JSONX_SYNTAX;
        char c = s[i];
        if (want == AFTER_VALUE) {
            if (depth == 0)
                return JSONX_SYNTAX;                 /* trailing bytes */
            if (c == ',') {
                i++;
                want = stack[depth - 1] == '{' ? KEY : VALUE;
                continue;
            }
            if ((c == '}' && stack[depth - 1] == '{') || (c == ']' && stack[depth - 1] == '[')) {
                i++;
                depth--;
                continue;                            /* still AFTER_VALUE */
            }
            return JSONX_SYNTAX;
        }
        if (want == COLON) {
            if (c != ':')
                return JSONX_SYNTAX;
            i++;
            want = VALUE;
            continue;
        }
        if (want == KEY && c != '"') {
            /* "{}" closes an empty object: only right after '{' */
            if (c == '}' && i > 0) {
                size_t k = i;
                while (k > 0 && jsonx_is_ws(s[k - 1]))
                    k--;
                if (k > 0 && s[k - 1] == '{') {
                    i++;
                    depth--;
                    want = AFTER_VALUE;
                    continue;
                }
            }
            return JSONX_SYNTAX;
        }
        if (c == '"') {                              /* string (value or key) */
            for (i++;; i++) {
                if (i >= n)
                    return JSONX_SYNTAX;
                unsigned char ch = (unsigned char)s[i];
                if (ch == '"')
                    break;
                if (ch < 0x20)
                    return JSONX_SYNTAX;
                if (ch == '\\') {
                    if (++i >= n)
                        return JSONX_SYNTAX;
                    char e = s[i];
                    if (e == 'u') {
                        if (i + 4 >= n)
                            return JSONX_SYNTAX;
                        unsigned v = 0;
                        for (int k = 1; k <= 4; k++) {
                            char h = s[i + k];
                            v <<= 4;
                            if (h >= '0' && h <= '9') v |= (unsigned)(h - '0');
                            else if (h >= 'a' && h <= 'f') v |= (unsigned)(h - 'a' + 10);
                            else if (h >= 'A' && h <= 'F') v |= (unsigned)(h - 'A' + 10);
                            else return JSONX_SYNTAX;
                        }
                        if (v == 0)
                            return JSONX_SYNTAX;     /* \u0000: would cut strings and keys */
                        i += 4;
                    } else if (!strchr("\"\\/bfnrt", e) || e == 0) {
                        return JSONX_SYNTAX;
                    }
                }
            }
            i++;
            want = (want == KEY) ? COLON : AFTER_VALUE;
            continue;
        }
        /* want == VALUE, not a string */
        if (c == '{' || c == '[') {
            if (depth >= max_depth || depth >= JSONX_DEPTH_LIMIT)
                return JSONX_DEPTH;
            stack[depth++] = c;
            i++;
            if (c == '{') {
                want = KEY;
            } else {
                WS();
                if (i < n && s[i] == ']') {
                    i++;
                    depth--;
                    want = AFTER_VALUE;
                } else {
                    want = VALUE;
                }
            }
            continue;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {    /* -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)? */
            if (c == '-')
                i++;
            if (i >= n || s[i] < '0' || s[i] > '9')
                return JSONX_SYNTAX;
            if (s[i] == '0')
                i++;
            else
                while (i < n && s[i] >= '0' && s[i] <= '9')
                    i++;
            if (i < n && s[i] == '.') {
                i++;
                if (i >= n || s[i] < '0' || s[i] > '9')
                    return JSONX_SYNTAX;
                while (i < n && s[i] >= '0' && s[i] <= '9')
                    i++;
            }
            if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                i++;
                if (i < n && (s[i] == '+' || s[i] == '-'))
                    i++;
                if (i >= n || s[i] < '0' || s[i] > '9')
                    return JSONX_SYNTAX;
                while (i < n && s[i] >= '0' && s[i] <= '9')
                    i++;
            }
            want = AFTER_VALUE;
            continue;
        }
        static const char *const lits[] = { "true", "false", "null" };
        bool ok = false;
        for (size_t k = 0; k < 3 && !ok; k++) {
            size_t ln = strlen(lits[k]);
            if (n - i >= ln && memcmp(s + i, lits[k], ln) == 0) {
                i += ln;
                ok = true;
            }
        }
        if (!ok)
            return JSONX_SYNTAX;
        want = AFTER_VALUE;
    }
#undef WS
}

int jsonx_parse(const char *buf, size_t len, int max_depth,
                struct json_object **ret_obj, enum jsonx_err *ret_kind)
{
    struct json_tokener *tok = NULL;
    struct json_object *obj = NULL;
    enum json_tokener_error terr;
    enum jsonx_err kind = JSONX_SYNTAX;
    size_t i, end;
    int r = -EINVAL;

    if (max_depth < 1)
        max_depth = 1;
    if (max_depth > JSONX_DEPTH_LIMIT)
        max_depth = JSONX_DEPTH_LIMIT;
    if (!buf)
        len = 0;
    for (i = 0; i < len && jsonx_is_ws(buf[i]); i++)
        ;
    if (i == len) {
        kind = JSONX_EMPTY;
        goto out;
    }
    if (memchr(buf, '\0', len) || len > (size_t)INT_MAX)
        goto out;
    kind = grammar(buf, len, max_depth);
    if (kind != JSONX_OK)
        goto out;
    kind = JSONX_SYNTAX;

    tok = json_tokener_new_ex(max_depth + 1);
    if (!tok) {
        r = -ENOMEM;
        goto out;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, buf, (int)len);
    terr = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    if (!obj && terr == json_tokener_continue) {
        /* A bare top-level number or literal needs to see the end of input:
         * json-c takes a NUL byte as that end. */
        obj = json_tokener_parse_ex(tok, "", 1);
        terr = json_tokener_get_error(tok);
        end = len;
    }
    if (terr != json_tokener_success) {
        if (terr == json_tokener_error_depth)
            kind = JSONX_DEPTH;
        goto out;
    }
    for (i = end; i < len; i++)
        if (!jsonx_is_ws(buf[i]))
            goto out;
    kind = jsonx_check(obj, 0, max_depth);
    if (kind != JSONX_OK)
        goto out;

    *ret_obj = obj;       /* NULL for a top-level `null` */
    obj = NULL;
    r = 0;
out:
    json_object_put(obj);
    if (tok)
        json_tokener_free(tok);   /* not NULL-safe in json-c 0.16 */
    if (ret_kind)
        *ret_kind = r == 0 ? JSONX_OK : kind;
    return r;
}

/* Borrowed member `key` of object o: 0, -ENOENT (absent or null), -EINVAL (o not an object). */
static int jsonx_member(struct json_object *o, const char *key, struct json_object **ret)
{
    struct json_object *v = NULL;

    if (!json_object_is_type(o, json_type_object))
        return -EINVAL;
    if (!json_object_object_get_ex(o, key, &v) || !v)
        return -ENOENT;
    *ret = v;
    return 0;
}

int jsonx_get_str(struct json_object *o, const char *key, const char **ret)
{
    struct json_object *v;
    int r = jsonx_member(o, key, &v);

    if (r < 0)
        return r;
    if (!json_object_is_type(v, json_type_string))
        return -EINVAL;
    *ret = json_object_get_string(v);
    return 0;
}

int jsonx_get_nonempty_str(struct json_object *o, const char *key, const char **ret)
{
    struct json_object *v;
    int r = jsonx_member(o, key, &v);

    if (r < 0)
        return r;
    if (!json_object_is_type(v, json_type_string))
        return -EINVAL;
    if (json_object_get_string_len(v) == 0)
        return -ENOENT;
    *ret = json_object_get_string(v);
    return 0;
}

int jsonx_get_int(struct json_object *o, const char *key, int64_t *ret)
{
    struct json_object *v;
    int64_t x;
    int r = jsonx_member(o, key, &v);

    if (r < 0)
        return r;
    if (!json_object_is_type(v, json_type_int))
        return -EINVAL;
    x = json_object_get_int64(v);
    /* json-c keeps 2^63..2^64-1 as unsigned and saturates int64 reads. */
    if (x == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
        return -EINVAL;
    *ret = x;
    return 0;
}

int jsonx_get_bool(struct json_object *o, const char *key, bool *ret)
{
    struct json_object *v;
    int r = jsonx_member(o, key, &v);

    if (r < 0)
        return r;
    if (!json_object_is_type(v, json_type_boolean))
        return -EINVAL;
    *ret = json_object_get_boolean(v);
    return 0;
}

int jsonx_get_num(struct json_object *o, const char *key, double *ret)
{
    struct json_object *v;
    double d;
    int r = jsonx_member(o, key, &v);

    if (r < 0)
        return r;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return -EINVAL;
    d = json_object_get_double(v);
    if (!isfinite(d))
        return -EINVAL;
    *ret = d;
    return 0;
}

const char *jsonx_to_string(struct json_object *o)
{
    return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

size_t jsonx_escape_step(const char *s, size_t n, char out[JSONX_ESCAPE_STEP_MAX],
                         size_t *ret_used)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char c = (unsigned char)s[0];
    size_t len;

    *ret_used = 1;
    switch (c) {
    case '"':  memcpy(out, "\\\"", 2); return 2;
    case '\\': memcpy(out, "\\\\", 2); return 2;
    case '\n': memcpy(out, "\\n", 2); return 2;
    case '\r': memcpy(out, "\\r", 2); return 2;
    case '\t': memcpy(out, "\\t", 2); return 2;
    case '\b': memcpy(out, "\\b", 2); return 2;
    case '\f': memcpy(out, "\\f", 2); return 2;
    default:
        break;
    }
    if (c < 0x20) {
        memcpy(out, "\\u00", 4);
        out[4] = hex[c >> 4];
        out[5] = hex[c & 15];
        return 6;
    }
    len = jsonx_utf8_seq((const unsigned char *)s, n);
    if (len == 0) {
        memcpy(out, "\\ufffd", 6);
        return 6;
    }
    memcpy(out, s, len);
    *ret_used = len;
    return len;
}

size_t jsonx_escape(const char *s, char *out, size_t cap)
{
    char step[JSONX_ESCAPE_STEP_MAX];
    size_t o = 0, n;

#define JSONX_PUT(p, k)                                            \
    do {                                                           \
        for (size_t j_ = 0; j_ < (k); j_++, o++)                   \
            if (o + 1 < cap)                                       \
                out[o] = (p)[j_];                                  \
    } while (0)

    if (!s) {
        JSONX_PUT("null", 4);
        goto out;
    }
    n = strlen(s);
    JSONX_PUT("\"", 1);
    while (n > 0) {
        size_t used, k = jsonx_escape_step(s, n, step, &used);

        JSONX_PUT(step, k);
        s += used;
        n -= used;
    }
    JSONX_PUT("\"", 1);
out:
    if (cap > 0)
        out[o < cap ? o : cap - 1] = '\0';
    return o;
#undef JSONX_PUT
}
