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

/* Write v as exactly n decimal digits. */
static void put_digits(char *p, int64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/*
 * Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil,
 * inverted): pure arithmetic, so formatting a timestamp takes no lock
 * (glibc's gmtime_r takes the time-zone lock on every call, which threads
 * formatting timestamps on every response contend for).
 */
void clock_iso8601(int64_t ms, char out[CLOCK_ISO_LEN])
{
    /* Floor division so that times before 1970 still format correctly. */
    int64_t sec = ms / 1000, rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        sec -= 1;
    }
    int64_t days = sec / 86400, sod = sec % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2)
        y++;
    if (y < 0 || y > 9999) {
        memcpy(out, "1970-01-01T00:00:00.000Z", CLOCK_ISO_LEN);
        return;
    }
    char *p = out;
    put_digits(p, y, 4);
    p[4] = '-';
    put_digits(p + 5, m, 2);
    p[7] = '-';
    put_digits(p + 8, d, 2);
    p[10] = 'T';
    put_digits(p + 11, sod / 3600, 2);
    p[13] = ':';
    put_digits(p + 14, sod / 60 % 60, 2);
    p[16] = ':';
    put_digits(p + 17, sod % 60, 2);
    p[19] = '.';
    put_digits(p + 20, rem, 3);
    p[23] = 'Z';
    p[24] = '\0';
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
