/*
 * HS256 JSON Web Tokens: strict verification and signing.
 *
 * Verification order matters: nothing from the payload is parsed before the
 * signature is checked, and the signature is checked only after the header
 * has proved it asks for HS256 (so "alg":"none" with an empty signature is a
 * JWT_BAD_ALG, never a pass).
 *
 *   1. length <= JWT_MAX_LEN, exactly two dots, every segment non-empty and
 *      made only of base64url characters (no '=' padding, no whitespace);
 *   2. header: base64url (canonical: unused trailing bits must be zero, so a
 *      token has one spelling), a JSON object (depth <= JWT_JSON_DEPTH) with
 *      "alg" exactly "HS256", "typ" absent or "JWT", and no "crit";
 *   3. signature: decodes to exactly 32 bytes, equal in constant time to
 *      HMAC-SHA256(key, "<header>.<payload>");
 *   4. payload: a JSON object; sub/job/role strings, exp/nbf/iat numbers
 *      (integers or finite doubles); then the time checks.
 *
 * Decoded segments live on the stack (bounded by JWT_MAX_LEN); json-c trees
 * are freed before returning.  No global state: any thread may call.
 */
#include "gateway/jwt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "common/crypto.h"
#include "common/jsonx.h"

#define JWT_JSON_DEPTH 8                      /* nesting accepted in header and payload */
#define JWT_SEG_MAX (JWT_MAX_LEN / 4 * 3 + 3) /* largest decoded segment */
#define JWT_PAYLOAD_MAX 2048                  /* what jwt_sign_hs256 builds, escaped */
#define JWT_ESC_MAX 6                         /* longest JSON escape of one byte: \u00XX */

static const char jwt_header_b64[] =          /* {"alg":"HS256","typ":"JWT"} */
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

static bool jwt_b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

static bool jwt_segment_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!jwt_b64url_char((unsigned char)s[i]))
            return false;
    return true;
}

/* Decode one segment and parse it as a JSON object.  0 or -EINVAL. */
static int jwt_parse_segment(const char *s, size_t n, struct json_object **ret)
{
    uint8_t buf[JWT_SEG_MAX];
    struct json_object *o = NULL;
    long len;

    len = crypto_b64url_decode(s, n, buf, sizeof(buf));
    if (len < 0)
        return -EINVAL;
    if (jsonx_parse((const char *)buf, (size_t)len, JWT_JSON_DEPTH, &o, NULL) < 0)
        return -EINVAL;
    if (!json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return -EINVAL;
    }
    *ret = o;
    return 0;
}

static enum jwt_status jwt_check_header(struct json_object *h)
{
    struct json_object *v;
    const char *typ;

    if (!json_object_object_get_ex(h, "alg", &v) || !json_object_is_type(v, json_type_string) ||
        strcmp(json_object_get_string(v), "HS256") != 0)
        return JWT_BAD_ALG;
    /* Extensions we do not understand must not be ignored (RFC 7515 4.1.11). */
    if (json_object_object_get_ex(h, "crit", NULL))
        return JWT_BAD_ALG;
    switch (jsonx_get_str(h, "typ", &typ)) {
    case -ENOENT:
        return JWT_OK;
    case 0:
        return strcasecmp(typ, "JWT") == 0 ? JWT_OK : JWT_MALFORMED;
    default:
        return JWT_MALFORMED;
    }
}

/*
 * Optional string claim into out (cap bytes, "" when absent or null).
 * -EINVAL wrong type, -EMSGSIZE too long.
 */
static int jwt_claim_str(struct json_object *p, const char *key, char *out, size_t cap)
{
    struct json_object *v;
    size_t n;

    out[0] = '\0';
    if (!json_object_object_get_ex(p, key, &v) || !v)
        return 0;
    if (!json_object_is_type(v, json_type_string))
        return -EINVAL;
    n = (size_t)json_object_get_string_len(v);
    if (n >= cap)
        return -EMSGSIZE;
    memcpy(out, json_object_get_string(v), n + 1);
    return 0;
}

/*
 * Optional numeric date claim (RFC 7519 NumericDate: integer or not).
 * Fractions round towards refusal: `up` rounds up (nbf), else down (exp).
 * Values beyond int64 saturate.  0 absent, 1 present, -EINVAL not a number.
 */
static int jwt_claim_time(struct json_object *p, const char *key, bool up, int64_t *ret)
{
    struct json_object *v;
    double d;

    if (!json_object_object_get_ex(p, key, &v) || !v)
        return 0;
    if (json_object_is_type(v, json_type_int)) {
        *ret = json_object_get_int64(v);          /* saturates beyond int64 */
        return 1;
    }
    if (!json_object_is_type(v, json_type_double))
        return -EINVAL;
    d = json_object_get_double(v);
    if (!isfinite(d))
        return -EINVAL;
    d = up ? ceil(d) : floor(d);
    if (d >= 9223372036854775807.0)
        *ret = INT64_MAX;
    else if (d <= -9223372036854775808.0)
        *ret = INT64_MIN;
    else
        *ret = (int64_t)d;
    return 1;
}

static int64_t jwt_add_sat(int64_t a, int64_t b)
{
    int64_t r;

    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static enum jwt_status jwt_check_claims(struct json_object *p, const struct jwt_verify_opts *opts,
                                        struct jwt_claims *c)
{
    int has_exp, has_nbf, has_iat, r;

    memset(c, 0, sizeof(*c));
    r = jwt_claim_str(p, "sub", c->sub, sizeof(c->sub));
    if (r == -EINVAL)
        return JWT_MISSING_CLAIM;
    if (r < 0)
        return JWT_MALFORMED;
    if (jwt_claim_str(p, "job", c->job, sizeof(c->job)) < 0 ||
        jwt_claim_str(p, "role", c->role, sizeof(c->role)) < 0)
        return JWT_MALFORMED;
    has_exp = jwt_claim_time(p, "exp", false, &c->exp);
    has_nbf = jwt_claim_time(p, "nbf", true, &c->nbf);
    has_iat = jwt_claim_time(p, "iat", false, &c->iat);
    if (has_exp < 0 || has_nbf < 0 || has_iat < 0)
        return JWT_MALFORMED;

    if (c->sub[0] == '\0')
        return JWT_MISSING_CLAIM;
    if (!has_exp && opts->require_exp)
        return JWT_MISSING_CLAIM;
    if (has_exp && c->exp <= jwt_add_sat(opts->now_s, -(int64_t)opts->leeway_s))
        return JWT_EXPIRED;
    if (has_nbf && c->nbf > jwt_add_sat(opts->now_s, opts->leeway_s))
        return JWT_NOT_YET_VALID;
    return JWT_OK;
}

enum jwt_status jwt_verify_hs256(const char *token, size_t len,
                                 const void *key, size_t keylen,
                                 const struct jwt_verify_opts *opts,
                                 struct jwt_claims *ret)
{
    struct json_object *hdr = NULL, *pay = NULL;
    struct jwt_claims c;
    uint8_t mac[SHA256_LEN], sig[SHA256_LEN + 1];
    const char *dot1, *dot2;
    size_t hlen, plen, slen;
    enum jwt_status st = JWT_MALFORMED;
    long n;

    if (!token || len == 0 || len > JWT_MAX_LEN || !opts)
        goto out;
    dot1 = memchr(token, '.', len);
    if (!dot1)
        goto out;
    dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (!dot2)
        goto out;
    hlen = (size_t)(dot1 - token);
    plen = (size_t)(dot2 - dot1 - 1);
    slen = len - (size_t)(dot2 + 1 - token);
    /* A third dot, padding, NUL or whitespace all fail the alphabet check. */
    if (!jwt_segment_ok(token, hlen) || !jwt_segment_ok(dot1 + 1, plen))
        goto out;
    if (slen > 0 && !jwt_segment_ok(dot2 + 1, slen))
        goto out;

    if (jwt_parse_segment(token, hlen, &hdr) < 0)
        goto out;
    st = jwt_check_header(hdr);
    if (st != JWT_OK)
        goto out;

    st = JWT_BAD_SIGNATURE;
    n = crypto_b64url_decode(dot2 + 1, slen, sig, sizeof(sig));
    if (n != SHA256_LEN)
        goto out;
    crypto_hmac_sha256(key, keylen, token, hlen + 1 + plen, mac);
    if (!crypto_ct_equal(mac, sig, SHA256_LEN))
        goto out;

    st = JWT_MALFORMED;
    if (jwt_parse_segment(dot1 + 1, plen, &pay) < 0)
        goto out;
    st = jwt_check_claims(pay, opts, &c);
    if (st == JWT_OK && ret)
        *ret = c;
out:
    json_object_put(hdr);
    json_object_put(pay);
    return st;
}

/* True if s is well-formed UTF-8 (what a JSON round trip preserves). */
static bool jwt_utf8_ok(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;

    while (*s) {
        unsigned char c = *s;
        unsigned char lo = 0x80, hi = 0xbf;
        size_t len;

        if (c < 0x80) {
            s++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            lo = c == 0xe0 ? 0xa0 : 0x80;         /* overlong */
            hi = c == 0xed ? 0x9f : 0xbf;         /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            lo = c == 0xf0 ? 0x90 : 0x80;         /* overlong */
            hi = c == 0xf4 ? 0x8f : 0xbf;         /* > U+10FFFF */
        } else
            return false;
        if (s[1] < lo || s[1] > hi)               /* also stops at the NUL */
            return false;
        for (size_t i = 2; i < len; i++)
            if (s[i] < 0x80 || s[i] > 0xbf)
                return false;
        s += len;
    }
    return true;
}

/*
 * Refuses (-EINVAL) what jwt_verify_hs256 would not give back unchanged:
 * an empty or over-long sub, an over-long job, malformed UTF-8.
 */
long jwt_sign_hs256(const char *sub, const char *job, int64_t iat, int64_t exp,
                    const void *key, size_t keylen, char *out, size_t cap)
{
    char payload[JWT_PAYLOAD_MAX], esub[JWT_SUB_MAX * JWT_ESC_MAX + 3];
    char ejob[JWT_CLAIM_MAX * JWT_ESC_MAX + 3];
    uint8_t mac[SHA256_LEN];
    size_t hl = sizeof(jwt_header_b64) - 1, pl, need, o;
    int n;

    if (!sub || !*sub || strlen(sub) >= JWT_SUB_MAX || !jwt_utf8_ok(sub))
        return -EINVAL;
    if (!job)
        job = "";
    if (strlen(job) >= JWT_CLAIM_MAX || !jwt_utf8_ok(job))
        return -EINVAL;
    jsonx_escape(sub, esub, sizeof(esub));
    jsonx_escape(job, ejob, sizeof(ejob));
    if (*job)
        n = snprintf(payload, sizeof(payload), "{\"sub\":%s,\"job\":%s,\"iat\":%lld,\"exp\":%lld}",
                     esub, ejob, (long long)iat, (long long)exp);
    else
        n = snprintf(payload, sizeof(payload), "{\"sub\":%s,\"iat\":%lld,\"exp\":%lld}",
                     esub, (long long)iat, (long long)exp);
    if (n < 0 || (size_t)n >= sizeof(payload))
        return -EINVAL;                           /* cannot happen with the caps above */
    pl = (size_t)n / 3 * 4 + ((size_t)n % 3 ? (size_t)n % 3 + 1 : 0);
    need = hl + 1 + pl + 1 + 43 + 1;              /* 43: 32 bytes in base64url, then NUL */
    if (!out || cap < need)
        return -EMSGSIZE;

    memcpy(out, jwt_header_b64, hl);
    o = hl;
    out[o++] = '.';
    o += crypto_b64url_encode(payload, (size_t)n, out + o);
    crypto_hmac_sha256(key, keylen, out, o, mac);
    out[o++] = '.';
    o += crypto_b64url_encode(mac, sizeof(mac), out + o);
    return (long)o;
}

const char *jwt_status_str(enum jwt_status s)
{
    switch (s) {
    case JWT_OK:             return "ok";
    case JWT_MALFORMED:      return "malformed token";
    case JWT_BAD_ALG:        return "unsupported algorithm";
    case JWT_BAD_SIGNATURE:  return "bad signature";
    case JWT_EXPIRED:        return "token expired";
    case JWT_NOT_YET_VALID:  return "token not yet valid";
    case JWT_MISSING_CLAIM:  return "missing claim";
    }
    return "unknown";
}
