/* Unit tests of common/ids.c and common/clock.c. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/ids.h"

START_TEST(test_ids_new)
{
    char a[ID_HEX_LEN], b[ID_HEX_LEN];

    ids_new(a);
    ids_new(b);
    ck_assert_uint_eq(strlen(a), 32);
    ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 32);
    ck_assert_str_ne(a, b);
    ck_assert(ids_is_sane(a, 64));
}
END_TEST

START_TEST(test_random_below)
{
    unsigned seen[10] = { 0 };

    ck_assert_uint_eq(ids_random_below(1), 0);
    ck_assert_uint_eq(ids_random_below(0), 0);
    for (int i = 0; i < 20000; i++) {
        uint64_t r = ids_random_below(10);

        ck_assert_uint_lt(r, 10);
        seen[r]++;
    }
    /* Each value expects 2000 hits; 1500 is more than 11 standard deviations away. */
    for (int i = 0; i < 10; i++)
        ck_assert_uint_gt(seen[i], 1500);
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_lt(ids_random_below(UINT64_MAX), UINT64_MAX);
    /* 2^63 + 1: the worst case for rejection, still correct. */
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_le(ids_random_below((1ULL << 63) + 1), 1ULL << 63);
}
END_TEST

START_TEST(test_is_sane)
{
    ck_assert(ids_is_sane("abc-123_.:XYZ", 64));
    ck_assert(ids_is_sane("a", 1));
    ck_assert(ids_is_sane("abcd", 4));
    ck_assert(!ids_is_sane("abcde", 4));
    ck_assert(!ids_is_sane("", 4));
    ck_assert(!ids_is_sane(NULL, 4));
    ck_assert(!ids_is_sane("a b", 10));
    ck_assert(!ids_is_sane("a/b", 10));
    ck_assert(!ids_is_sane("a\nb", 10));
    ck_assert(!ids_is_sane("caf\xc3\xa9", 10));
}
END_TEST

START_TEST(test_iso8601)
{
    char out[CLOCK_ISO_LEN];

    clock_iso8601(0, out);
    ck_assert_str_eq(out, "1970-01-01T00:00:00.000Z");
    clock_iso8601(1700000000123LL, out);
    ck_assert_str_eq(out, "2023-11-14T22:13:20.123Z");
    clock_iso8601(-1, out);
    ck_assert_str_eq(out, "1969-12-31T23:59:59.999Z");
    clock_iso8601(951782400000LL, out);               /* leap day */
    ck_assert_str_eq(out, "2000-02-29T00:00:00.000Z");
}
END_TEST

START_TEST(test_clocks)
{
    int64_t now = clock_now_ms(), m0 = clock_mono_ms(), u0 = clock_mono_us();

    ck_assert_int_gt(now, 1600000000000LL);           /* after 2020 */
    ck_assert_int_ge(clock_now_us() / 1000, now);
    clock_sleep_ms(20);
    ck_assert_int_ge(clock_mono_ms() - m0, 20);
    ck_assert_int_ge(clock_mono_us() - u0, 20000);
    clock_sleep_ms(0);
    clock_sleep_ms(-5);
}
END_TEST

static Suite *ids_suite(void)
{
    Suite *s = suite_create("ids");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_ids_new);
    tcase_add_test(tc, test_random_below);
    tcase_add_test(tc, test_is_sane);
    tcase_add_test(tc, test_iso8601);
    tcase_add_test(tc, test_clocks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ids_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
