/*
 * Hashes and MACs through OpenSSL 3's libcrypto, base64url and constant-time
 * comparison.
 *
 * The one-shot EVP_Digest and HMAC calls use OpenSSL's implicitly fetched,
 * thread-safe default provider, so nothing here keeps state.  A failure of
 * those calls means a broken libcrypto (no SHA-256 in the default provider):
 * we abort instead of returning an uninitialised digest that would compare
 * equal to something by accident.
 */
#include "common/crypto.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static void crypto_die(const char *what)
{
    fprintf(stderr, "{\"level\":\"error\",\"msg\":\"libcrypto failure\",\"call\":\"%s\"}\n", what);
    abort();
}

static void crypto_digest(const EVP_MD *md, const void *data, size_t len, uint8_t *out)
{
    static const uint8_t empty[1];

    if (!EVP_Digest(data ? data : empty, len, out, NULL, md, NULL))
        crypto_die("EVP_Digest");
}

void crypto_sha256(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
    crypto_digest(EVP_sha256(), data, len, out);
}

void crypto_sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN])
{
    uint8_t d[SHA256_LEN];

    crypto_sha256(data, len, d);
    crypto_hex(d, sizeof(d), out);
}

void crypto_sha1_hex(const void *data, size_t len, char out[SHA1_HEX_LEN])
{
    uint8_t d[(SHA1_HEX_LEN - 1) / 2];

    crypto_digest(EVP_sha1(), data, len, d);
    crypto_hex(d, sizeof(d), out);
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                        uint8_t out[SHA256_LEN])
{
    static const uint8_t empty[1];
    unsigned int outlen = 0;

    /* HMAC() refuses a NULL key even when keylen is 0: give it a real pointer. */
    if (!HMAC(EVP_sha256(), key ? key : empty, (int)keylen,
              msg ? msg : empty, msglen, out, &outlen) || outlen != SHA256_LEN)
        crypto_die("HMAC");
}

bool crypto_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void crypto_hex(const uint8_t *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t crypto_b64url_encode(const void *in, size_t n, char *out)
{
    const uint8_t *p = in;
    size_t o = 0, i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;

        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long crypto_b64url_decode(const char *in, size_t n, uint8_t *out, size_t outcap)
{
    size_t need, o = 0, rem;
    uint32_t acc = 0;
    int bits = 0;

    /* Up to two '=' of padding are tolerated at the very end, nowhere else. */
    for (int pad = 0; pad < 2 && n > 0 && in[n - 1] == '='; pad++)
        n--;
    rem = n % 4;
    if (rem == 1)
        return -EINVAL;                /* 6 bits cannot encode a byte */
    need = n / 4 * 3 + (rem ? rem - 1 : 0);
    if (need > outcap)
        return -EMSGSIZE;
    if (need > (size_t)LONG_MAX)
        return -EMSGSIZE;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)in[i]);

        if (v < 0)
            return -EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero: only one spelling of each byte string. */
    if (acc != 0)
        return -EINVAL;
    return (long)o;
}
