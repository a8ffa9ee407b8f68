/*
 * Hashes and MACs through OpenSSL 3's libcrypto, base64url and constant-time
 * comparison.
 *
 * OpenSSL 3 resolves a legacy EVP_sha256() or a one-shot HMAC() to a provider
 * implementation on every call (a locked lookup that showed up as ~10 % of a
 * gateway's CPU on the enqueue path), so SHA-256 and SHA-1 are fetched once
 * (pthread_once) and each thread keeps one EVP_MD_CTX it re-initialises per
 * digest.  HMAC-SHA256 is RFC 2104 over that context.  A failure of these
 * calls means a broken libcrypto: we abort instead of returning an
 * uninitialised digest that would compare equal to something by accident.
 */
#include "common/crypto.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define SHA256_BLOCK 64

static void crypto_die(const char *what)
{
    fprintf(stderr, "{\"level\":\"error\",\"msg\":\"libcrypto failure\",\"call\":\"%s\"}\n", what);
    abort();
}

static EVP_MD *md_sha256, *md_sha1;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static pthread_key_t ctx_key;

static void ctx_free(void *p)
{
    EVP_MD_CTX_free(p);
}

static void md_init(void)
{
    md_sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    md_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    if (!md_sha256 || !md_sha1 || pthread_key_create(&ctx_key, ctx_free) != 0)
        crypto_die("EVP_MD_fetch");
}

/* This thread's digest context, initialised for md. */
static EVP_MD_CTX *ctx_for(const EVP_MD *md)
{
    EVP_MD_CTX *c = pthread_getspecific(ctx_key);
    if (!c) {
        c = EVP_MD_CTX_new();
        if (!c || pthread_setspecific(ctx_key, c) != 0)
            crypto_die("EVP_MD_CTX_new");
    }
    if (!EVP_DigestInit_ex(c, md, NULL))
        crypto_die("EVP_DigestInit_ex");
    return c;
}

static void update(EVP_MD_CTX *c, const void *data, size_t len)
{
    if (len && !EVP_DigestUpdate(c, data, len))
        crypto_die("EVP_DigestUpdate");
}

static void final(EVP_MD_CTX *c, uint8_t *out)
{
    if (!EVP_DigestFinal_ex(c, out, NULL))
        crypto_die("EVP_DigestFinal_ex");
}

void crypto_sha256(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
    pthread_once(&md_once, md_init);
    EVP_MD_CTX *c = ctx_for(md_sha256);
    update(c, data, len);
    final(c, out);
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

    pthread_once(&md_once, md_init);
    EVP_MD_CTX *c = ctx_for(md_sha1);
    update(c, data, len);
    final(c, d);
    crypto_hex(d, sizeof(d), out);
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                        uint8_t out[SHA256_LEN])
{
    uint8_t k0[SHA256_BLOCK] = { 0 }, pad[SHA256_BLOCK], inner[SHA256_LEN];

    if (keylen > SHA256_BLOCK)
        crypto_sha256(key, keylen, k0);      /* long keys are hashed first */
    else if (keylen)
        memcpy(k0, key, keylen);
    pthread_once(&md_once, md_init);

    for (size_t i = 0; i < SHA256_BLOCK; i++)
        pad[i] = k0[i] ^ 0x36;
    EVP_MD_CTX *c = ctx_for(md_sha256);
    update(c, pad, sizeof(pad));
    update(c, msg, msglen);
    final(c, inner);

    for (size_t i = 0; i < SHA256_BLOCK; i++)
        pad[i] = k0[i] ^ 0x5c;
    c = ctx_for(md_sha256);
    update(c, pad, sizeof(pad));
    update(c, inner, sizeof(inner));
    final(c, out);
    OPENSSL_cleanse(k0, sizeof(k0));
    OPENSSL_cleanse(pad, sizeof(pad));
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
