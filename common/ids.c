/*
 * Random identifiers from getrandom(2).
 *
 * No state and no locks: every call asks the kernel, which never blocks once
 * the pool is initialised at boot.  A failure of getrandom other than EINTR
 * (ENOSYS on an ancient kernel) is unrecoverable for a service that hands out
 * unguessable ids, so the process aborts rather than fall back to something
 * predictable.
 */
#include "common/ids.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void ids_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;

    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "{\"level\":\"error\",\"msg\":\"getrandom failed\",\"errno\":%d}\n", errno);
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}

static void to_hex(const unsigned char *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void ids_new(char out[ID_HEX_LEN])
{
    unsigned char b[(ID_HEX_LEN - 1) / 2];

    ids_random_bytes(b, sizeof(b));
    to_hex(b, sizeof(b), out);
}

/* xoshiro256** (Blackman & Vigna), one state per thread, seeded from getrandom. */
static __thread uint64_t xs[4];
static __thread bool xs_seeded;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t xs_next(void)
{
    if (!xs_seeded) {
        do
            ids_random_bytes(xs, sizeof(xs));
        while (!(xs[0] | xs[1] | xs[2] | xs[3]));
        xs_seeded = true;
    }
    uint64_t r = rotl(xs[1] * 5, 7) * 9, t = xs[1] << 17;
    xs[2] ^= xs[0];
    xs[3] ^= xs[1];
    xs[1] ^= xs[2];
    xs[0] ^= xs[3];
    xs[2] ^= t;
    xs[3] = rotl(xs[3], 45);
    return r;
}

void ids_new_fast(char out[ID_HEX_LEN])
{
    uint64_t v[2] = { xs_next(), xs_next() };
    unsigned char b[16];
    memcpy(b, v, sizeof(b));
    to_hex(b, sizeof(b), out);
}

uint64_t ids_random_below(uint64_t bound)
{
    /*
     * Rejection sampling: values below `threshold` (= 2^64 mod bound) would
     * make the low residues more likely, so they are drawn again.  At most
     * half of all values are rejected, so the loop ends quickly.
     */
    uint64_t threshold, r;

    if (bound <= 1)
        return 0;
    threshold = -bound % bound;
    do {
        ids_random_bytes(&r, sizeof(r));
    } while (r < threshold);
    return r % bound;
}

int ids_is_sane(const char *s, size_t max)
{
    size_t n = 0;

    if (!s)
        return 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];

        if (n >= max)
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return n > 0;
}
