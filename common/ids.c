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
#include <stdio.h>
#include <stdlib.h>
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

void ids_new(char out[ID_HEX_LEN])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[(ID_HEX_LEN - 1) / 2];

    ids_random_bytes(b, sizeof(b));
    for (size_t i = 0; i < sizeof(b); i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[ID_HEX_LEN - 1] = '\0';
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
