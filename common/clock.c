/*
 * Time helpers over clock_gettime(2).
 *
 * Wall-clock values (clock_now_*) are for timestamps that leave the process
 * (logs, records, events); the monotonic ones are for durations, deadlines
 * and timeouts, which must not jump when the wall clock is stepped.
 * Everything here is stateless and therefore thread-safe.
 */
#include "common/clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t clock_read_us(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t clock_now_ms(void)  { return clock_read_us(CLOCK_REALTIME) / 1000; }
int64_t clock_now_us(void)  { return clock_read_us(CLOCK_REALTIME); }
int64_t clock_mono_ms(void) { return clock_read_us(CLOCK_MONOTONIC) / 1000; }
int64_t clock_mono_us(void) { return clock_read_us(CLOCK_MONOTONIC); }

void clock_iso8601(int64_t ms, char out[CLOCK_ISO_LEN])
{
    /* Floor division so that times before 1970 still format correctly. */
    int64_t sec = ms / 1000, rem = ms % 1000;
    struct tm tm;
    time_t t;

    if (rem < 0) {
        rem += 1000;
        sec -= 1;
    }
    t = (time_t)sec;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
        snprintf(out, CLOCK_ISO_LEN, "%s", "1970-01-01T00:00:00.000Z");
        return;
    }
    /* The year is within 0..9999, so the text is exactly CLOCK_ISO_LEN - 1
     * long; the larger buffer only keeps the compiler's range analysis quiet. */
    char tmp[80];

    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
    memcpy(out, tmp, CLOCK_ISO_LEN - 1);
    out[CLOCK_ISO_LEN - 1] = '\0';
}

void clock_sleep_ms(int64_t ms)
{
    /* An absolute monotonic deadline, so signals cannot stretch the sleep. */
    struct timespec ts;

    if (ms <= 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec += 1;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}
