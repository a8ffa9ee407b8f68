/*
 * HS256 JWT verification and signing.  Tokens are built here from raw header
 * and payload JSON (so every malformed shape can be expressed), plus two
 * known-answer tokens made by other implementations (jwt.io's example and a
 * Supabase-shaped token signed with Python's hmac).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "gateway/jwt.h"

#define KEY "test-secret-0123456789abcdef0123456789"
#define NOW 1700000000

static const struct jwt_verify_opts opts = { .now_s = NOW, .leeway_s = 30, .require_exp = false };
static const struct jwt_verify_opts opts_exp = {
    .now_s = NOW, .leeway_s = 30, .require_exp = true,
};

static char tok[JWT_MAX_LEN * 2];

static size_t b64(const char *s, char *out)
{
    return crypto_b64url_encode(s, strlen(s), out);
}

/* header.payload.HMAC(key) with the given JSON texts; returns tok. */
static const char *make(const char *header, const char *payload, const char *key)
{
    uint8_t mac[SHA256_LEN];
    size_t o = b64(header, tok);

    tok[o++] = '.';
    o += b64(payload, tok + o);
    crypto_hmac_sha256(key, strlen(key), tok, o, mac);
    tok[o++] = '.';
    crypto_b64url_encode(mac, sizeof(mac), tok + o);
    return tok;
}

static const char *make_hs(const char *payload)
{
    return make("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, KEY);
}

static enum jwt_status verify(const char *t, const struct jwt_verify_opts *o, struct jwt_claims *c)
{
    return jwt_verify_hs256(t, strlen(t), KEY, strlen(KEY), o, c);
}

START_TEST(good_token)
{
    struct jwt_claims c;

    make_hs("{\"sub\":\"user-1\",\"job\":\"j1\",\"role\":\"authenticated\","
            "\"iat\":1699999000,\"exp\":1700003600,\"nbf\":1699999000}");
    ck_assert_int_eq(verify(tok, &opts_exp, &c), JWT_OK);
    ck_assert_str_eq(c.sub, "user-1");
    ck_assert_str_eq(c.job, "j1");
    ck_assert_str_eq(c.role, "authenticated");
    ck_assert_int_eq(c.exp, 1700003600);
    ck_assert_int_eq(c.nbf, 1699999000);
    ck_assert_int_eq(c.iat, 1699999000);
    /* ret may be NULL */
    ck_assert_int_eq(verify(tok, &opts, NULL), JWT_OK);
}
END_TEST

START_TEST(absent_claims_are_empty)
{
    struct jwt_claims c;

    make_hs("{\"sub\":\"u\"}");
    ck_assert_int_eq(verify(tok, &opts, &c), JWT_OK);
    ck_assert_str_eq(c.job, "");
    ck_assert_str_eq(c.role, "");
    ck_assert_int_eq(c.exp, 0);
    ck_assert_int_eq(c.nbf, 0);
    ck_assert_int_eq(c.iat, 0);
    ck_assert_int_eq(verify(tok, &opts_exp, &c), JWT_MISSING_CLAIM);
}
END_TEST

START_TEST(known_answer_jwt_io)
{
    static const char t[] =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9l"
        "IiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    static const char key[] = "your-256-bit-secret";
    struct jwt_claims c;

    ck_assert_int_eq(jwt_verify_hs256(t, strlen(t), key, strlen(key), &opts, &c), JWT_OK);
    ck_assert_str_eq(c.sub, "1234567890");
    ck_assert_int_eq(c.iat, 1516239022);
    ck_assert_int_eq(jwt_verify_hs256(t, strlen(t), key, strlen(key), &opts_exp, &c),
                     JWT_MISSING_CLAIM);
    ck_assert_int_eq(jwt_verify_hs256(t, strlen(t), "other", 5, &opts, &c), JWT_BAD_SIGNATURE);
}
END_TEST

START_TEST(supabase_token)
{
    /* Signed by Python hmac; payload as Supabase GoTrue issues it (aud, iss,
     * email, app_metadata, amr array, UTF-8 name, booleans). */
    static const char t[] =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJhdXRoZW50aWNhdGVkIiwiZXhwIjo0MTAyNDQ0"
        "ODAwLCJpYXQiOjE3MDAwMDAwMDAsImlzcyI6Imh0dHBzOi8vYWJjZGVmZ2guc3VwYWJhc2UuY28vYXV0aC92"
        "MSIsInN1YiI6IjJmMWM5YTdlLTViM2QtNGM4YS05ZTIxLTdkNmYwYjRhMWMzMyIsImVtYWlsIjoiYW5hQGV4"
        "YW1wbGUuY29tIiwicGhvbmUiOiIiLCJhcHBfbWV0YWRhdGEiOnsicHJvdmlkZXIiOiJlbWFpbCIsInByb3Zp"
        "ZGVycyI6WyJlbWFpbCJdfSwidXNlcl9tZXRhZGF0YSI6eyJlbWFpbCI6ImFuYUBleGFtcGxlLmNvbSIsImVt"
        "YWlsX3ZlcmlmaWVkIjp0cnVlLCJmdWxsX25hbWUiOiJBbmEgTMO6Y2lhIn0sInJvbGUiOiJhdXRoZW50aWNh"
        "dGVkIiwiYWFsIjoiYWFsMSIsImFtciI6W3sibWV0aG9kIjoicGFzc3dvcmQiLCJ0aW1lc3RhbXAiOjE3MDAw"
        "MDAwMDB9XSwic2Vzc2lvbl9pZCI6IjhkM2UyYzFiLTBhOWYtNGU3ZC1iNmM1LWE0OTM4MjcxNjA1ZiIsImlz"
        "X2Fub255bW91cyI6ZmFsc2V9.qbfD_0ZckF0u4O8zfH94R1ha6Q1V_1S406Q9qrZQxRc";
    static const char key[] = "super-secret-jwt-token-with-at-least-32-characters-long";
    struct jwt_claims c;

    ck_assert_int_eq(jwt_verify_hs256(t, strlen(t), key, strlen(key), &opts_exp, &c), JWT_OK);
    ck_assert_str_eq(c.sub, "2f1c9a7e-5b3d-4c8a-9e21-7d6f0b4a1c33");
    ck_assert_str_eq(c.role, "authenticated");
    ck_assert_str_eq(c.job, "");
    ck_assert_int_eq(c.exp, 4102444800);
    ck_assert_int_eq(c.iat, 1700000000);
}
END_TEST

START_TEST(wrong_key)
{
    make("{\"alg\":\"HS256\"}", "{\"sub\":\"u\",\"exp\":1700003600}", "another key");
    ck_assert_int_eq(verify(tok, &opts, NULL), JWT_BAD_SIGNATURE);
    /* empty key on either side */
    make("{\"alg\":\"HS256\"}", "{\"sub\":\"u\"}", "");
    ck_assert_int_eq(verify(tok, &opts, NULL), JWT_BAD_SIGNATURE);
    ck_assert_int_eq(jwt_verify_hs256(tok, strlen(tok), "", 0, &opts, NULL), JWT_OK);
}
END_TEST

START_TEST(tampered_payload)
{
    char forged[256], payload[128];
    const char *dot2;

    make_hs("{\"sub\":\"alice\",\"exp\":1700003600}");
    dot2 = strrchr(tok, '.');
    /* Same header and signature, payload claiming another user. */
    b64("{\"sub\":\"admin\",\"exp\":1700003600}", payload);
    snprintf(forged, sizeof(forged), "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.%s%s", payload, dot2);
    ck_assert_int_eq(verify(forged, &opts, NULL), JWT_BAD_SIGNATURE);
    /* One flipped bit in the signature. */
    strcpy(forged, tok);
    forged[strlen(forged) - 5] ^= 1;
    ck_assert_int_eq(verify(forged, &opts, NULL), JWT_BAD_SIGNATURE);
}
END_TEST

START_TEST(alg_none)
{
    char t[256], h[64], p[128];

    b64("{\"alg\":\"none\",\"typ\":\"JWT\"}", h);
    b64("{\"sub\":\"admin\"}", p);
    snprintf(t, sizeof(t), "%s.%s.", h, p);       /* the classic: empty signature */
    ck_assert_int_eq(verify(t, &opts, NULL), JWT_BAD_ALG);
    snprintf(t, sizeof(t), "%s.%s", h, p);        /* and without the last dot */
    ck_assert_int_eq(verify(t, &opts, NULL), JWT_MALFORMED);
    make("{\"alg\":\"none\"}", "{\"sub\":\"admin\"}", KEY);   /* even correctly MACed */
    ck_assert_int_eq(verify(tok, &opts, NULL), JWT_BAD_ALG);
    make("{\"alg\":\"None\"}", "{\"sub\":\"admin\"}", KEY);
    ck_assert_int_eq(verify(tok, &opts, NULL), JWT_BAD_ALG);
}
END_TEST

START_TEST(other_algs)
{
    static const char *hdrs[] = {
        "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
        "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"hs256\"}",
        "{\"alg\":\"HS256 \"}",
        "{\"typ\":\"JWT\"}",                        /* missing */
        "{\"alg\":256}",                            /* not a string */
        "{\"alg\":null}",
        "{\"alg\":[\"HS256\"]}",
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",   /* extension we cannot honour */
    };

    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        make(hdrs[i], "{\"sub\":\"u\"}", KEY);
        ck_assert_msg(verify(tok, &opts, NULL) == JWT_BAD_ALG, "header %s", hdrs[i]);
    }
    make("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", "{\"sub\":\"u\"}", KEY);
    ck_assert_int_eq(verify(tok, &opts, NULL), JWT_MALFORMED);
    make("{\"alg\":\"HS256\",\"typ\":\"jwt\"}", "{\"sub\":\"u\"}", KEY);
    ck_assert_int_eq(verify(tok, &opts, NULL), JWT_OK);
    make("[\"HS256\"]", "{\"sub\":\"u\"}", KEY);
    ck_assert_int_eq(verify(tok, &opts, NULL), JWT_MALFORMED);
}
END_TEST

START_TEST(exp_and_leeway)
{
    char p[128];

    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%d}", NOW - 3600);
    ck_assert_int_eq(verify(make_hs(p), &opts, NULL), JWT_EXPIRED);
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%d}", NOW - 30);      /* at the edge: gone */
    ck_assert_int_eq(verify(make_hs(p), &opts, NULL), JWT_EXPIRED);
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%d}", NOW - 29);      /* inside leeway */
    ck_assert_int_eq(verify(make_hs(p), &opts, NULL), JWT_OK);
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%d}", NOW + 60);
    ck_assert_int_eq(verify(make_hs(p), &opts, NULL), JWT_OK);
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%d.5}", NOW - 30);    /* fraction floors */
    ck_assert_int_eq(verify(make_hs(p), &opts, NULL), JWT_EXPIRED);
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%d.0}", NOW + 60);
    ck_assert_int_eq(verify(make_hs(p), &opts, NULL), JWT_OK);
    /* huge values saturate instead of wrapping */
    ck_assert_int_eq(verify(make_hs("{\"sub\":\"u\",\"exp\":1e300}"), &opts, NULL), JWT_OK);
    ck_assert_int_eq(verify(make_hs("{\"sub\":\"u\",\"exp\":-1e300}"), &opts, NULL), JWT_EXPIRED);
    ck_assert_int_eq(verify(make_hs("{\"sub\":\"u\",\"exp\":18446744073709551615}"), &opts, NULL),
                     JWT_OK);
    ck_assert_int_eq(verify(make_hs("{\"sub\":\"u\",\"exp\":-9223372036854775808}"), &opts, NULL),
                     JWT_EXPIRED);
    /* null counts as absent */
    ck_assert_int_eq(verify(make_hs("{\"sub\":\"u\",\"exp\":null}"), &opts_exp, NULL),
                     JWT_MISSING_CLAIM);
}
END_TEST

START_TEST(nbf_future)
{
    char p[128];

    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"nbf\":%d}", NOW + 3600);
    ck_assert_int_eq(verify(make_hs(p), &opts, NULL), JWT_NOT_YET_VALID);
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"nbf\":%d}", NOW + 31);
    ck_assert_int_eq(verify(make_hs(p), &opts, NULL), JWT_NOT_YET_VALID);
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"nbf\":%d}", NOW + 30);
    ck_assert_int_eq(verify(make_hs(p), &opts, NULL), JWT_OK);
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"nbf\":%d.2}", NOW + 30);    /* fraction ceils */
    ck_assert_int_eq(verify(make_hs(p), &opts, NULL), JWT_NOT_YET_VALID);
    ck_assert_int_eq(verify(make_hs("{\"sub\":\"u\",\"nbf\":1e300}"), &opts, NULL),
                     JWT_NOT_YET_VALID);
}
END_TEST

START_TEST(missing_sub)
{
    char p[JWT_SUB_MAX + 64];

    ck_assert_int_eq(verify(make_hs("{\"exp\":1700003600}"), &opts, NULL), JWT_MISSING_CLAIM);
    ck_assert_int_eq(verify(make_hs("{\"sub\":\"\"}"), &opts, NULL), JWT_MISSING_CLAIM);
    ck_assert_int_eq(verify(make_hs("{\"sub\":42}"), &opts, NULL), JWT_MISSING_CLAIM);
    ck_assert_int_eq(verify(make_hs("{\"sub\":null}"), &opts, NULL), JWT_MISSING_CLAIM);
    ck_assert_int_eq(verify(make_hs("{\"sub\":{\"id\":\"u\"}}"), &opts, NULL), JWT_MISSING_CLAIM);
    /* longest that fits, then one more */
    snprintf(p, sizeof(p), "{\"sub\":\"%0*d\"}", JWT_SUB_MAX - 1, 7);
    ck_assert_int_eq(verify(make_hs(p), &opts, NULL), JWT_OK);
    snprintf(p, sizeof(p), "{\"sub\":\"%0*d\"}", JWT_SUB_MAX, 7);
    ck_assert_int_eq(verify(make_hs(p), &opts, NULL), JWT_MALFORMED);
    /* an escaped NUL would cut the C string short */
    ck_assert_int_eq(verify(make_hs("{\"sub\":\"admin\\u0000x\"}"), &opts, NULL), JWT_MALFORMED);
}
END_TEST

START_TEST(non_numeric_claims)
{
    static const char *ps[] = {
        "{\"sub\":\"u\",\"exp\":\"1700003600\"}",
        "{\"sub\":\"u\",\"exp\":true}",
        "{\"sub\":\"u\",\"exp\":[1700003600]}",
        "{\"sub\":\"u\",\"nbf\":\"0\"}",
        "{\"sub\":\"u\",\"iat\":{}}",
        "{\"sub\":\"u\",\"job\":7}",
        "{\"sub\":\"u\",\"role\":false}",
    };

    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
        ck_assert_msg(verify(make_hs(ps[i]), &opts, NULL) == JWT_MALFORMED, "payload %s", ps[i]);
}
END_TEST

START_TEST(bad_json)
{
    static const char *ps[] = {
        "", "{", "{\"sub\":\"u\"} x", "[\"sub\"]", "\"u\"", "null",
        "{\"sub\":\"u\",\"x\":[[[[[[[[[[1]]]]]]]]]]}",             /* deeper than 8 */
        "{\"sub\":\"u\",\"exp\":NaN}", "{\"sub\":\"u\",\"exp\":1e400}",
        "{\"sub\":\"\xff\xfe\"}",                                   /* not UTF-8 */
    };

    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
        ck_assert_msg(verify(make_hs(ps[i]), &opts, NULL) == JWT_MALFORMED, "payload %s", ps[i]);
    /* nesting within the cap is fine */
    ck_assert_int_eq(verify(make_hs("{\"sub\":\"u\",\"a\":{\"b\":[[1]]}}"), &opts, NULL), JWT_OK);
}
END_TEST

START_TEST(segments)
{
    static char t[sizeof(tok) + 16];
    char sig[64], *dot2;

    make_hs("{\"sub\":\"u\"}");
    strcpy(sig, strrchr(tok, '.') + 1);
    strcpy(t, tok);
    dot2 = strrchr(t, '.');
    *dot2 = '\0';                                          /* 2 segments */
    ck_assert_int_eq(verify(t, &opts, NULL), JWT_MALFORMED);
    snprintf(t, sizeof(t), "%s.xyz", tok);                 /* 4 segments */
    ck_assert_int_eq(verify(t, &opts, NULL), JWT_MALFORMED);
    snprintf(t, sizeof(t), "%s.", tok);
    ck_assert_int_eq(verify(t, &opts, NULL), JWT_MALFORMED);
    ck_assert_int_eq(verify("", &opts, NULL), JWT_MALFORMED);
    ck_assert_int_eq(verify("..", &opts, NULL), JWT_MALFORMED);
    ck_assert_int_eq(verify("a.b.c", &opts, NULL), JWT_MALFORMED);
    /* empty payload segment */
    snprintf(t, sizeof(t), "eyJhbGciOiJIUzI1NiJ9..%s", sig);
    ck_assert_int_eq(verify(t, &opts, NULL), JWT_MALFORMED);
    /* the length given wins over the NUL: a prefix is a truncated token */
    ck_assert_int_eq(jwt_verify_hs256(tok, 10, KEY, strlen(KEY), &opts, NULL), JWT_MALFORMED);
    ck_assert_int_eq(jwt_verify_hs256(NULL, 0, KEY, strlen(KEY), &opts, NULL), JWT_MALFORMED);
}
END_TEST

START_TEST(bad_base64)
{
    char t[512];
    size_t n;

    make_hs("{\"sub\":\"u\"}");
    n = strlen(tok);
    /* standard-alphabet characters, padding, whitespace, NUL */
    static const char bad[] = { '+', '/', '=', ' ', '\n', '%', '\0' };

    for (size_t i = 0; i < sizeof(bad); i++) {
        memcpy(t, tok, n + 1);
        t[3] = bad[i];
        ck_assert_msg(jwt_verify_hs256(t, n, KEY, strlen(KEY), &opts, NULL) == JWT_MALFORMED,
                      "char 0x%02x in header", bad[i]);
        memcpy(t, tok, n + 1);
        t[n - 1] = bad[i];
        ck_assert_msg(jwt_verify_hs256(t, n, KEY, strlen(KEY), &opts, NULL) == JWT_MALFORMED,
                      "char 0x%02x in signature", bad[i]);
    }
    /* "=" padding appended to the signature is refused too */
    snprintf(t, sizeof(t), "%s=", tok);
    ck_assert_int_eq(verify(t, &opts, NULL), JWT_MALFORMED);
    /* Non-canonical last character: 32 bytes take 43 characters whose last
     * one carries 4 data bits and 2 unused bits; setting an unused bit spells
     * the same bytes differently, and only one spelling is accepted. */
    {
        static const char alpha[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        int v = (int)(strchr(alpha, tok[n - 1]) - alpha);

        ck_assert_int_eq(v & 3, 0);
        memcpy(t, tok, n + 1);
        t[n - 1] = alpha[v | 1];
        ck_assert_int_eq(verify(t, &opts, NULL), JWT_BAD_SIGNATURE);
    }
}
END_TEST

START_TEST(signature_length)
{
    char t[512];
    char *dot2;

    make_hs("{\"sub\":\"u\"}");
    strcpy(t, tok);
    dot2 = strrchr(t, '.');
    strcpy(dot2 + 1, "AAAA");                              /* 3 bytes */
    ck_assert_int_eq(verify(t, &opts, NULL), JWT_BAD_SIGNATURE);
    strcpy(t, tok);
    strcat(t, "AAAA");                                     /* 35 bytes, prefix correct */
    ck_assert_int_eq(verify(t, &opts, NULL), JWT_BAD_SIGNATURE);
    strcpy(t, tok);
    strcat(t, "A");                                        /* 33 bytes, prefix correct */
    ck_assert_int_eq(verify(t, &opts, NULL), JWT_BAD_SIGNATURE);
    make("{\"alg\":\"HS256\"}", "{\"sub\":\"u\"}", KEY);
    strcpy(t, tok);
    *(strrchr(t, '.') + 1) = '\0';                         /* HS256 with empty signature */
    ck_assert_int_eq(verify(t, &opts, NULL), JWT_BAD_SIGNATURE);
}
END_TEST

START_TEST(oversized)
{
    char *p = malloc(JWT_MAX_LEN + 64);
    char *t;
    size_t n;

    ck_assert_ptr_nonnull(p);
    /* a valid token just over the cap */
    n = (size_t)snprintf(p, JWT_MAX_LEN + 64, "{\"sub\":\"u\",\"pad\":\"%0*d\"}",
                         JWT_MAX_LEN / 4 * 3 - 60, 1);
    ck_assert_uint_lt(n, JWT_MAX_LEN);
    make_hs(p);
    ck_assert_uint_gt(strlen(tok), JWT_MAX_LEN);
    ck_assert_int_eq(verify(tok, &opts, NULL), JWT_MALFORMED);
    /* and one under it verifies */
    snprintf(p, JWT_MAX_LEN + 64, "{\"sub\":\"u\",\"pad\":\"%0*d\"}", JWT_MAX_LEN / 4 * 3 - 200, 1);
    make_hs(p);
    ck_assert_uint_le(strlen(tok), JWT_MAX_LEN);
    ck_assert_int_eq(verify(tok, &opts, NULL), JWT_OK);
    free(p);

    t = malloc(1 << 20);
    ck_assert_ptr_nonnull(t);
    memset(t, 'A', 1 << 20);
    ck_assert_int_eq(jwt_verify_hs256(t, 1 << 20, KEY, strlen(KEY), &opts, NULL), JWT_MALFORMED);
    free(t);
}
END_TEST

START_TEST(sign_round_trip)
{
    char out[1024];
    struct jwt_claims c;
    long n;

    n = jwt_sign_hs256("user-7", "job-42", NOW, NOW + 600, KEY, strlen(KEY), out, sizeof(out));
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq((size_t)n, strlen(out));
    ck_assert(strncmp(out, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37) == 0);
    ck_assert_int_eq(jwt_verify_hs256(out, (size_t)n, KEY, strlen(KEY), &opts_exp, &c), JWT_OK);
    ck_assert_str_eq(c.sub, "user-7");
    ck_assert_str_eq(c.job, "job-42");
    ck_assert_int_eq(c.iat, NOW);
    ck_assert_int_eq(c.exp, NOW + 600);
    ck_assert_int_eq(jwt_verify_hs256(out, (size_t)n, "k", 1, &opts, &c), JWT_BAD_SIGNATURE);

    /* no job claim when job is "" or NULL */
    n = jwt_sign_hs256("u", NULL, NOW, NOW + 1, KEY, strlen(KEY), out, sizeof(out));
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(verify(out, &opts, &c), JWT_OK);
    ck_assert_str_eq(c.job, "");

    /* characters that need escaping survive */
    n = jwt_sign_hs256("a\"b\\c\n\x01/é", "ü", NOW, NOW + 60, KEY, strlen(KEY), out, sizeof(out));
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(verify(out, &opts, &c), JWT_OK);
    ck_assert_str_eq(c.sub, "a\"b\\c\n\x01/é");
    ck_assert_str_eq(c.job, "ü");

    /* expired on signing means expired on verifying */
    n = jwt_sign_hs256("u", "j", NOW - 100, NOW - 31, KEY, strlen(KEY), out, sizeof(out));
    ck_assert_int_eq(verify(out, &opts, &c), JWT_EXPIRED);
}
END_TEST

START_TEST(sign_limits)
{
    char out[1024], big[JWT_SUB_MAX + 1];
    long n;

    ck_assert_int_eq(jwt_sign_hs256("", "j", NOW, NOW + 1, KEY, 3, out, sizeof(out)), -EINVAL);
    ck_assert_int_eq(jwt_sign_hs256(NULL, "j", NOW, NOW + 1, KEY, 3, out, sizeof(out)), -EINVAL);
    memset(big, 'x', JWT_SUB_MAX);
    big[JWT_SUB_MAX] = '\0';
    ck_assert_int_eq(jwt_sign_hs256(big, "", NOW, NOW + 1, KEY, 3, out, sizeof(out)), -EINVAL);
    ck_assert_int_eq(jwt_sign_hs256("u", big, NOW, NOW + 1, KEY, 3, out, sizeof(out)), -EINVAL);
    ck_assert_int_eq(jwt_sign_hs256("\xff", "", NOW, NOW + 1, KEY, 3, out, sizeof(out)), -EINVAL);
    ck_assert_int_eq(jwt_sign_hs256("u", "\xc3(", NOW, NOW + 1, KEY, 3, out, sizeof(out)), -EINVAL);
    big[JWT_SUB_MAX - 1] = '\0';                   /* longest sub: fits and verifies */
    n = jwt_sign_hs256(big, big, NOW, NOW + 60, KEY, strlen(KEY), out, sizeof(out));
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(verify(out, &opts, NULL), JWT_OK);

    /* cap: exactly n+1 works, n is too small and out is not overrun */
    n = jwt_sign_hs256("u", "j", NOW, NOW + 60, KEY, strlen(KEY), out, sizeof(out));
    ck_assert_int_gt(n, 0);
    {
        char *exact = malloc((size_t)n + 1);

        ck_assert_int_eq(jwt_sign_hs256("u", "j", NOW, NOW + 60, KEY, strlen(KEY), exact,
                                        (size_t)n + 1), n);
        ck_assert_str_eq(exact, out);
        free(exact);
        exact = malloc((size_t)n);
        ck_assert_int_eq(jwt_sign_hs256("u", "j", NOW, NOW + 60, KEY, strlen(KEY), exact,
                                        (size_t)n), -EMSGSIZE);
        free(exact);
    }
}
END_TEST

START_TEST(status_strings)
{
    for (int s = JWT_OK; s <= JWT_MISSING_CLAIM; s++) {
        ck_assert_ptr_nonnull(jwt_status_str(s));
        ck_assert_str_ne(jwt_status_str(s), "unknown");
    }
}
END_TEST

static Suite *jwt_suite(void)
{
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("verify");

    tcase_add_test(tc, good_token);
    tcase_add_test(tc, absent_claims_are_empty);
    tcase_add_test(tc, known_answer_jwt_io);
    tcase_add_test(tc, supabase_token);
    tcase_add_test(tc, wrong_key);
    tcase_add_test(tc, tampered_payload);
    tcase_add_test(tc, alg_none);
    tcase_add_test(tc, other_algs);
    tcase_add_test(tc, exp_and_leeway);
    tcase_add_test(tc, nbf_future);
    tcase_add_test(tc, missing_sub);
    tcase_add_test(tc, non_numeric_claims);
    tcase_add_test(tc, bad_json);
    tcase_add_test(tc, segments);
    tcase_add_test(tc, bad_base64);
    tcase_add_test(tc, signature_length);
    tcase_add_test(tc, oversized);
    suite_add_tcase(s, tc);
    tc = tcase_create("sign");
    tcase_add_test(tc, sign_round_trip);
    tcase_add_test(tc, sign_limits);
    tcase_add_test(tc, status_strings);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jwt_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
