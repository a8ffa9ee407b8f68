/*
 * fuzz-jwt: HS256 verification with a fixed key (FUZZ_KEY; the seed corpus
 * signs with it).  Every input goes through:
 *   1. jwt_verify_hs256 as a token; a token accepted with FUZZ_KEY must be
 *      refused with any other key, as a bad signature, and claims are sane;
 *   2. "header.payload" with exactly one dot: we append the right signature,
 *      so the fuzzer reaches the claim checks behind the MAC; the result can
 *      then never be JWT_BAD_SIGNATURE;
 *   3. an input starting with '{' is "<header JSON>\n<payload JSON>": encoded,
 *      signed and verified, so mutations work on JSON rather than base64;
 *   4. sign/verify round trip with the input split at its first '\n' into
 *      sub and job: a signed token verifies to the same claims; a one-byte
 *      change to it never verifies; a plain ASCII sub/job always signs, and
 *      a JWT_MAX_LEN buffer is always large enough.
 */
#include <errno.h>
#include <string.h>

#include "common/crypto.h"
#include "gateway/jwt.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_KEY "flashgate-fuzz-key"
#define FUZZ_NOW 1700000000

static const struct jwt_verify_opts opts = { .now_s = FUZZ_NOW, .leeway_s = 30 };

static void check_claims(const struct jwt_claims *c)
{
    size_t n = strnlen(c->sub, sizeof(c->sub));

    FUZZ_CHECK(n > 0 && n < sizeof(c->sub));
    FUZZ_CHECK(strnlen(c->job, sizeof(c->job)) < sizeof(c->job));
    FUZZ_CHECK(strnlen(c->role, sizeof(c->role)) < sizeof(c->role));
    FUZZ_CHECK(c->exp == 0 || c->exp > FUZZ_NOW - 30);
    FUZZ_CHECK(c->nbf <= FUZZ_NOW + 30);
}

static enum jwt_status verify(const char *t, size_t n, struct jwt_claims *c)
{
    enum jwt_status st = jwt_verify_hs256(t, n, FUZZ_KEY, strlen(FUZZ_KEY), &opts, c);

    FUZZ_CHECK(st >= JWT_OK && st <= JWT_MISSING_CLAIM);
    FUZZ_CHECK(jwt_status_str(st) != NULL);
    if (st == JWT_OK) {
        check_claims(c);
        FUZZ_CHECK(jwt_verify_hs256(t, n, "other", 5, &opts, NULL) == JWT_BAD_SIGNATURE);
    }
    return st;
}

/* Append ".<HMAC of buf[0..n)>" and verify; the MAC is right by construction. */
static void verify_self_signed(char *buf, size_t n)
{
    struct jwt_claims c;
    uint8_t mac[SHA256_LEN];

    crypto_hmac_sha256(FUZZ_KEY, strlen(FUZZ_KEY), buf, n, mac);
    buf[n] = '.';
    n += 1 + crypto_b64url_encode(mac, sizeof(mac), buf + n + 1);
    FUZZ_CHECK(verify(buf, n, &c) != JWT_BAD_SIGNATURE || n > JWT_MAX_LEN);
}

static bool plain_ascii(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e)
            return false;
    return true;
}

static void round_trip(const char *sub, const char *job, size_t salt)
{
    char tok[JWT_MAX_LEN], other[JWT_MAX_LEN];   /* JWT_MAX_LEN always suffices */
    struct jwt_claims c;
    int64_t exp = FUZZ_NOW + 60 + (int64_t)(salt % 100000);
    long n;
    size_t pos;

    n = jwt_sign_hs256(sub, job, FUZZ_NOW, exp, FUZZ_KEY, strlen(FUZZ_KEY), tok, sizeof(tok));
    if (*sub && strlen(sub) < JWT_SUB_MAX && strlen(job) < JWT_CLAIM_MAX &&
        plain_ascii(sub) && plain_ascii(job))
        FUZZ_CHECK(n > 0);
    if (n < 0) {
        FUZZ_CHECK(n == -EINVAL);
        return;
    }
    FUZZ_CHECK((size_t)n == strlen(tok));
    FUZZ_CHECK(verify(tok, (size_t)n, &c) == JWT_OK);
    FUZZ_CHECK(strcmp(c.sub, sub) == 0);
    FUZZ_CHECK(strcmp(c.job, job) == 0);
    FUZZ_CHECK(c.iat == FUZZ_NOW && c.exp == exp && c.nbf == 0 && c.role[0] == '\0');

    /* any single changed byte is refused */
    memcpy(other, tok, (size_t)n + 1);
    pos = salt % (size_t)n;
    other[pos] = (char)(other[pos] ^ (1 + salt % 127));
    FUZZ_CHECK(verify(other, (size_t)n, &c) != JWT_OK);
    /* so is any truncation */
    FUZZ_CHECK(verify(tok, pos, &c) != JWT_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[2 * JWT_MAX_LEN + 64];
    struct jwt_claims c;
    const char *in = (const char *)data;
    const char *nl;

    /* 1. the input as a token */
    verify(in, size, &c);

    /* 2. "header.payload", signed for the fuzzer */
    if (size <= JWT_MAX_LEN && memchr(in, '.', size) &&
        memchr(in, '.', size) == memrchr(in, '.', size)) {
        memcpy(buf, in, size);
        verify_self_signed(buf, size);
    }

    /* 3. "<header JSON>\n<payload JSON>" */
    nl = memchr(in, '\n', size);
    if (size > 0 && in[0] == '{' && nl && size <= JWT_MAX_LEN / 2) {
        size_t hl = (size_t)(nl - in), o;

        o = crypto_b64url_encode(in, hl, buf);
        buf[o++] = '.';
        o += crypto_b64url_encode(nl + 1, size - hl - 1, buf + o);
        verify_self_signed(buf, o);
    }

    /* 4. round trip: sub "\n" job, each a C string */
    {
        char sub[300], job[300];
        size_t sl = nl ? (size_t)(nl - in) : size;

        sl = strnlen(in, sl);
        if (sl >= sizeof(sub))
            sl = sizeof(sub) - 1;
        memcpy(sub, in, sl);
        sub[sl] = '\0';
        job[0] = '\0';
        if (nl) {
            size_t jl = strnlen(nl + 1, size - (size_t)(nl + 1 - in));

            if (jl >= sizeof(job))
                jl = sizeof(job) - 1;
            memcpy(job, nl + 1, jl);
            job[jl] = '\0';
        }
        round_trip(sub, job, size);
    }
    return 0;
}
