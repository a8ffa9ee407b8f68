/*
 * json-c helpers for untrusted input.
 *
 * jsonx_parse: explicit length, depth cap, the whole buffer must be exactly
 * one JSON value (trailing bytes other than whitespace are refused), NUL bytes
 * refused.  The caller owns *ret_obj (json_object_put).
 * Depth counts nested containers: `1` is 0, `{"a":1}` is 1, `[[1]]` is 2;
 * max_depth is clamped to 1..1024.  Also refused (JSONX_SYNTAX): invalid
 * UTF-8, strings containing \u0000, non-finite numbers (NaN, 1e400), and what
 * json-c's strict mode refuses (comments, single quotes, trailing commas).
 * Input of only whitespace is JSONX_EMPTY.  A top-level `null` parses to
 * 0 with *ret_obj == NULL.
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

/* Write s as a JSON string literal (with quotes; NULL gives `null`) into out
 * (cap bytes, always NUL-terminated when cap > 0).  Helper for hand-built JSON
 * on hot paths.  Returns the length needed excluding NUL (like snprintf: the
 * output was cut short if the result is >= cap).  Invalid UTF-8 bytes become
 * \ufffd, so the result is always valid JSON. */
size_t jsonx_escape(const char *s, char *out, size_t cap);

/* Longest output of one jsonx_escape_step (a \uXXXX escape). */
#define JSONX_ESCAPE_STEP_MAX 6

/* One step of the escaper, for callers that budget their output (log.c):
 * escapes the character at s (n > 0 bytes available: one valid UTF-8
 * sequence, or one byte) into out without quotes or NUL.  Quotes, backslash
 * and control characters are escaped; an invalid UTF-8 byte becomes \ufffd.
 * Returns the bytes written (1..JSONX_ESCAPE_STEP_MAX); *ret_used is set to
 * the input bytes consumed. */
size_t jsonx_escape_step(const char *s, size_t n, char out[JSONX_ESCAPE_STEP_MAX],
                         size_t *ret_used);

#endif
