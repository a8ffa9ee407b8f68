/* Unit tests of common/crypto.c: published test vectors and base64url. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"

static void hex_of(const uint8_t *d, size_t n, char *out)
{
    crypto_hex(d, n, out);
}

START_TEST(test_sha256_vectors)
{
    char hex[SHA256_HEX_LEN];

    crypto_sha256_hex("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    crypto_sha256_hex("", 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    crypto_sha256_hex(NULL, 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    uint8_t raw[SHA256_LEN];
    crypto_sha256("abc", 3, raw);
    ck_assert_int_eq(raw[0], 0xba);
    ck_assert_int_eq(raw[31], 0xad);
}
END_TEST

START_TEST(test_sha1_vector)
{
    char hex[SHA1_HEX_LEN];

    crypto_sha1_hex("abc", 3, hex);
    ck_assert_str_eq(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
}
END_TEST

START_TEST(test_hmac_rfc4231)
{
    uint8_t key1[20], mac[SHA256_LEN];
    char hex[SHA256_HEX_LEN];

    /* Test case 1 */
    memset(key1, 0x0b, sizeof(key1));
    crypto_hmac_sha256(key1, sizeof(key1), "Hi There", 8, mac);
    hex_of(mac, sizeof(mac), hex);
    ck_assert_str_eq(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    /* Test case 2 */
    crypto_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
    hex_of(mac, sizeof(mac), hex);
    ck_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    /* Test case 6: a 131-byte key (longer than the block: hashed first) */
    uint8_t key6[131];
    memset(key6, 0xaa, sizeof(key6));
    crypto_hmac_sha256(key6, sizeof(key6), "Test Using Larger Than Block-Size Key - Hash Key First", 54, mac);
    hex_of(mac, sizeof(mac), hex);
    ck_assert_str_eq(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");

    /* Exactly one block of key (64 bytes: used as is, not hashed) */
    uint8_t key64[64];
    memset(key64, 0x0b, sizeof(key64));
    crypto_hmac_sha256(key64, sizeof(key64), "Hi There", 8, mac);
    hex_of(mac, sizeof(mac), hex);
    ck_assert_str_eq(hex, "21cd586aeca0579d99a1c938127c92525a371f807bc5ba6eb78bc825bd4f2be3");

    /* An empty key is legal HMAC (and must not crash). */
    crypto_hmac_sha256(NULL, 0, "", 0, mac);
    hex_of(mac, sizeof(mac), hex);
    ck_assert_str_eq(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}
END_TEST

START_TEST(test_ct_equal)
{
    ck_assert(crypto_ct_equal("abcdef", "abcdef", 6));
    ck_assert(!crypto_ct_equal("abcdef", "abcdeg", 6));
    ck_assert(!crypto_ct_equal("xbcdef", "abcdef", 6));
    ck_assert(crypto_ct_equal("a", "b", 0));
}
END_TEST

START_TEST(test_b64url_rfc4648)
{
    static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    static const char *const enc[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
    char out[64];
    uint8_t dec[64];

    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        size_t n = crypto_b64url_encode(plain[i], strlen(plain[i]), out);

        ck_assert_uint_eq(n, strlen(enc[i]));
        ck_assert_str_eq(out, enc[i]);
        long d = crypto_b64url_decode(enc[i], strlen(enc[i]), dec, sizeof(dec));
        ck_assert_int_eq(d, (long)strlen(plain[i]));
        ck_assert(memcmp(dec, plain[i], (size_t)d) == 0);
    }
    /* The url alphabet: '-' and '_' where standard base64 has '+' and '/'. */
    const uint8_t fb[] = { 0xfb, 0xff, 0xbf };
    crypto_b64url_encode(fb, 3, out);
    ck_assert_str_eq(out, "-_-_");
}
END_TEST

START_TEST(test_b64url_round_trip)
{
    uint8_t in[200], dec[200];
    char out[4 * 200 / 3 + 8];

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(in); n++) {
        size_t e = crypto_b64url_encode(in, n, out);

        ck_assert_uint_eq(e, strlen(out));
        ck_assert_uint_le(e, 4 * ((n + 2) / 3));
        ck_assert_ptr_null(strpbrk(out, "+/="));
        long d = crypto_b64url_decode(out, e, dec, sizeof(dec));
        ck_assert_int_eq(d, (long)n);
        ck_assert(memcmp(dec, in, n) == 0);
    }
}
END_TEST

START_TEST(test_b64url_bad_input)
{
    uint8_t dec[16];

    ck_assert_int_eq(crypto_b64url_decode("Zm9v+A", 6, dec, sizeof(dec)), -EINVAL);
    ck_assert_int_eq(crypto_b64url_decode("Zm9v/A", 6, dec, sizeof(dec)), -EINVAL);
    ck_assert_int_eq(crypto_b64url_decode("Zm 9v", 5, dec, sizeof(dec)), -EINVAL);
    ck_assert_int_eq(crypto_b64url_decode("Z", 1, dec, sizeof(dec)), -EINVAL);      /* 6 bits */
    ck_assert_int_eq(crypto_b64url_decode("Zh", 2, dec, sizeof(dec)), -EINVAL);     /* stray bits */
    ck_assert_int_eq(crypto_b64url_decode("Z=g", 3, dec, sizeof(dec)), -EINVAL);    /* '=' inside */
    ck_assert_int_eq(crypto_b64url_decode("Zg===", 5, dec, sizeof(dec)), -EINVAL);
    ck_assert_int_eq(crypto_b64url_decode("Zm9v\0A", 6, dec, sizeof(dec)), -EINVAL);
    /* Padding is tolerated. */
    ck_assert_int_eq(crypto_b64url_decode("Zg==", 4, dec, sizeof(dec)), 1);
    ck_assert_int_eq(dec[0], 'f');
    ck_assert_int_eq(crypto_b64url_decode("Zm8=", 4, dec, sizeof(dec)), 2);
    /* Too small an output buffer. */
    ck_assert_int_eq(crypto_b64url_decode("Zm9vYmFy", 8, dec, 5), -EMSGSIZE);
    ck_assert_int_eq(crypto_b64url_decode("Zm9vYmFy", 8, dec, 6), 6);
}
END_TEST

static Suite *crypto_suite(void)
{
    Suite *s = suite_create("crypto");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_sha256_vectors);
    tcase_add_test(tc, test_sha1_vector);
    tcase_add_test(tc, test_hmac_rfc4231);
    tcase_add_test(tc, test_ct_equal);
    tcase_add_test(tc, test_b64url_rfc4648);
    tcase_add_test(tc, test_b64url_round_trip);
    tcase_add_test(tc, test_b64url_bad_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(crypto_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
