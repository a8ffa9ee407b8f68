/*
 * Hashes and MACs through OpenSSL's libcrypto, base64url, constant-time
 * comparison.  All functions are thread-safe and allocation-free unless noted.
 */
#ifndef COMMON_CRYPTO_H
#define COMMON_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32
#define SHA256_HEX_LEN 65
#define SHA1_HEX_LEN 41

void crypto_sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]);
void crypto_sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN]);
void crypto_sha1_hex(const void *data, size_t len, char out[SHA1_HEX_LEN]);  /* Redis script SHAs */
void crypto_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                        uint8_t out[SHA256_LEN]);
/* Compares n bytes in time independent of content. */
bool crypto_ct_equal(const void *a, const void *b, size_t n);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void crypto_hex(const uint8_t *in, size_t n, char *out);

/* base64url without padding.  encode: out needs 4*ceil(n/3)+1 bytes; returns length.
 * decode: accepts no padding (and tolerates '=' padding); returns decoded length,
 * or -EINVAL on a bad character, or -EMSGSIZE if outcap is too small. */
size_t crypto_b64url_encode(const void *in, size_t n, char *out);
long crypto_b64url_decode(const char *in, size_t n, uint8_t *out, size_t outcap);

#endif
