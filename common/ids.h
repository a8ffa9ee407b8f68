/* Random identifiers from getrandom(2).  Thread-safe. */
#ifndef COMMON_IDS_H
#define COMMON_IDS_H

#include <stddef.h>
#include <stdint.h>

#define ID_HEX_LEN 33   /* 16 random bytes as hex + NUL: job ids, request ids */

/* Fill buf with n random bytes; aborts if the kernel cannot provide them. */
void ids_random_bytes(void *buf, size_t n);
/* 128-bit random id as 32 lowercase hex chars. */
void ids_new(char out[ID_HEX_LEN]);
/* Same format from a per-thread xoshiro256** generator seeded once from
 * getrandom: unique and unpredictable enough for request ids, no syscall per
 * call.  Not for anything that must resist guessing (job ids, tokens). */
void ids_new_fast(char out[ID_HEX_LEN]);
/* Uniform random integer in [0, bound) (bound > 0). */
uint64_t ids_random_below(uint64_t bound);
/* True if s is 1..max chars of [A-Za-z0-9._:-] (ids a client may send us). */
int ids_is_sane(const char *s, size_t max);

#endif
