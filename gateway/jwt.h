/*
 * HS256 JSON Web Tokens (RFC 7519) for user identity and job-bound stream tokens.
 *
 * Verification is strict: exactly three base64url segments; header must be a
 * JSON object with "alg":"HS256" (anything else, "none" included, is refused;
 * "typ", if present, must be "JWT"); the signature is compared in constant time
 * before the payload is trusted; "exp" (if present, or if require_exp) must be
 * in the future and "nbf" (if present) not in the future, both with `leeway_s`
 * of clock skew; numeric claims must be numbers.  Pure functions, thread-safe.
 */
#ifndef GATEWAY_JWT_H
#define GATEWAY_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_LEN 8192      /* longer tokens are refused unparsed */
#define JWT_SUB_MAX 128
#define JWT_CLAIM_MAX 128

enum jwt_status {
    JWT_OK = 0,
    JWT_MALFORMED,        /* not three segments, bad base64url, bad JSON, too long */
    JWT_BAD_ALG,          /* alg missing or not HS256 (includes "none") */
    JWT_BAD_SIGNATURE,
    JWT_EXPIRED,
    JWT_NOT_YET_VALID,
    JWT_MISSING_CLAIM,    /* required claim missing or wrong type (sub, exp when required) */
};

struct jwt_claims {
    char sub[JWT_SUB_MAX];        /* user id */
    char job[JWT_CLAIM_MAX];      /* "job" claim of job-bound stream tokens ("" if none) */
    char role[JWT_CLAIM_MAX];     /* "role" claim ("" if none) */
    int64_t exp, nbf, iat;        /* 0 if absent */
};

struct jwt_verify_opts {
    int64_t now_s;                /* current time, seconds since epoch */
    int leeway_s;                 /* clock skew allowed for exp/nbf */
    bool require_exp;
};

/* Returns JWT_OK and fills *ret (when non-NULL), or the reason for refusal. */
enum jwt_status jwt_verify_hs256(const char *token, size_t len,
                                 const void *key, size_t keylen,
                                 const struct jwt_verify_opts *opts,
                                 struct jwt_claims *ret);

/* Signs {"sub","job"(if non-empty),"iat","exp"} with HS256 into out.
 * Returns the token length, or -EMSGSIZE if cap is too small. */
long jwt_sign_hs256(const char *sub, const char *job, int64_t iat, int64_t exp,
                    const void *key, size_t keylen, char *out, size_t cap);

const char *jwt_status_str(enum jwt_status s);

#endif
