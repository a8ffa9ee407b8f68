/* Time helpers.  All functions are thread-safe. */
#ifndef COMMON_CLOCK_H
#define COMMON_CLOCK_H

#include <stdint.h>

#define CLOCK_ISO_LEN 25   /* "2026-11-22T10:00:00.000Z" + NUL */

int64_t clock_now_ms(void);      /* wall clock, ms since the epoch */
int64_t clock_now_us(void);      /* wall clock, us since the epoch */
int64_t clock_mono_ms(void);     /* monotonic ms (durations, deadlines) */
int64_t clock_mono_us(void);
/* Format ms-since-epoch as ISO-8601 UTC with milliseconds into out. */
void clock_iso8601(int64_t ms, char out[CLOCK_ISO_LEN]);
/* Sleep ms milliseconds (restarted after signals). */
void clock_sleep_ms(int64_t ms);

#endif
