/*
 * json-c helpers for untrusted input.
 *
 * jsonx_parse: explicit length, depth cap, the whole buffer must be exactly
 * one JSON value (trailing bytes other than whitespace are refused), NUL bytes
 * refused.  The caller owns *ret_obj (json_object_put).
 * Getters borrow: strings returned are valid while the object lives.
 * json-c objects must stay in the thread that built them.
 */
#ifndef COMMON_JSONX_H
#define COMMON_JSONX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

enum jsonx_err {
    JSONX_OK = 0,
    JSONX_SYNTAX,      /* malformed JSON, trailing garbage, NUL byte */
    JSONX_DEPTH,       /* nesting deeper than max_depth */
    JSONX_EMPTY,       /* no bytes at all */
};

/* Returns 0 with *ret_obj set, or -EINVAL with *ret_kind saying why (ret_kind may be NULL). */
int jsonx_parse(const char *buf, size_t len, int max_depth,
                struct json_object **ret_obj, enum jsonx_err *ret_kind);

/* Member getters: 0 found with the right type; -ENOENT absent or null; -EINVAL wrong type. */
int jsonx_get_str(struct json_object *o, const char *key, const char **ret);
int jsonx_get_int(struct json_object *o, const char *key, int64_t *ret);   /* integers only */
int jsonx_get_bool(struct json_object *o, const char *key, bool *ret);     /* real booleans only */
int jsonx_get_num(struct json_object *o, const char *key, double *ret);    /* int or double */
/* A non-empty string member after trimming nothing: "" counts as missing (-ENOENT). */
int jsonx_get_nonempty_str(struct json_object *o, const char *key, const char **ret);

/* Serialize without spaces or escaped slashes; returned string is owned by o. */
const char *jsonx_to_string(struct json_object *o);

/* Append s as a JSON string literal (with quotes) to a malloc'ed buffer. Helper for
 * hand-built JSON on hot paths: writes into out (cap bytes); returns needed length
 * excluding NUL (like snprintf). */
size_t jsonx_escape(const char *s, char *out, size_t cap);

#endif
