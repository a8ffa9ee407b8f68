/*
 * CIDR allow-lists and the client-address rule (socket peer, or the
 * X-Forwarded-For entry `hops` positions from the right).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gateway/cidr.h"

static struct cidr_list parse_ok(const char *s)
{
    struct cidr_list l;
    char err[128];
    int r = cidr_list_parse(s, &l, err, sizeof(err));

    ck_assert_msg(r == 0, "parse \"%s\": %d %s", s, r, err);
    return l;
}

START_TEST(v4_match)
{
    struct cidr_list l = parse_ok("10.0.0.0/8, 192.168.1.7");

    ck_assert_uint_eq(l.n, 2);
    ck_assert(cidr_list_match(&l, "10.0.0.1"));
    ck_assert(cidr_list_match(&l, "10.255.255.255"));
    ck_assert(cidr_list_match(&l, "192.168.1.7"));
    ck_assert(!cidr_list_match(&l, "11.0.0.1"));
    ck_assert(!cidr_list_match(&l, "9.255.255.255"));
    ck_assert(!cidr_list_match(&l, "192.168.1.8"));        /* bare address = /32 */
    ck_assert(!cidr_list_match(&l, "192.168.1.6"));
    ck_assert(!cidr_list_match(&l, "::1"));
    ck_assert(!cidr_list_match(&l, "not an address"));
    ck_assert(!cidr_list_match(&l, ""));
    ck_assert(!cidr_list_match(&l, NULL));
    ck_assert(!cidr_list_match(&l, "10.0.0.1 "));          /* callers pass clean text */
}
END_TEST

START_TEST(v4_odd_prefix_and_host_bits)
{
    /* host bits are masked away: 172.16.5.9/12 is 172.16.0.0/12 */
    struct cidr_list l = parse_ok("172.16.5.9/12");

    ck_assert_uint_eq(l.e[0].family, AF_INET);
    ck_assert_uint_eq(l.e[0].prefix, 12);
    ck_assert_uint_eq(l.e[0].addr[0], 172);
    ck_assert_uint_eq(l.e[0].addr[1], 16);
    ck_assert_uint_eq(l.e[0].addr[2], 0);
    ck_assert_uint_eq(l.e[0].addr[3], 0);
    ck_assert(cidr_list_match(&l, "172.16.0.0"));
    ck_assert(cidr_list_match(&l, "172.31.255.255"));
    ck_assert(!cidr_list_match(&l, "172.32.0.0"));
    ck_assert(!cidr_list_match(&l, "172.15.255.255"));

    l = parse_ok("192.168.100.128/25");
    ck_assert(cidr_list_match(&l, "192.168.100.200"));
    ck_assert(!cidr_list_match(&l, "192.168.100.127"));
}
END_TEST

START_TEST(v6_match)
{
    struct cidr_list l = parse_ok("::1/128, 2001:db8::/32, fd00:1:2:3::/64");

    ck_assert_uint_eq(l.n, 3);
    ck_assert(cidr_list_match(&l, "::1"));
    ck_assert(cidr_list_match(&l, "0:0:0:0:0:0:0:1"));
    ck_assert(!cidr_list_match(&l, "::2"));
    ck_assert(cidr_list_match(&l, "2001:db8:ffff::1"));
    ck_assert(cidr_list_match(&l, "2001:DB8::abcd"));
    ck_assert(!cidr_list_match(&l, "2001:db9::1"));
    ck_assert(cidr_list_match(&l, "fd00:1:2:3:ffff:ffff:ffff:ffff"));
    ck_assert(!cidr_list_match(&l, "fd00:1:2:4::"));
    ck_assert(!cidr_list_match(&l, "127.0.0.1"));
    ck_assert(!cidr_list_match(&l, "[::1]"));
    ck_assert(!cidr_list_match(&l, "fe80::1%eth0"));

    l = parse_ok("2001:db8::1:2:3:4/116");                 /* masked mid-byte */
    ck_assert(cidr_list_match(&l, "2001:db8::1:2:3:0"));
    ck_assert(cidr_list_match(&l, "2001:db8::1:2:3:fff"));
    ck_assert(!cidr_list_match(&l, "2001:db8::1:2:3:1000"));
}
END_TEST

START_TEST(prefix_zero)
{
    struct cidr_list l = parse_ok("0.0.0.0/0");

    ck_assert(cidr_list_match(&l, "1.2.3.4"));
    ck_assert(cidr_list_match(&l, "255.255.255.255"));
    ck_assert(cidr_list_match(&l, "::ffff:8.8.8.8"));
    ck_assert(!cidr_list_match(&l, "2001:db8::1"));

    l = parse_ok("::/0");
    ck_assert(cidr_list_match(&l, "2001:db8::1"));
    ck_assert(cidr_list_match(&l, "::"));
    /* an IPv4 client seen on a dual-stack socket is inside ::/0 too */
    ck_assert(cidr_list_match(&l, "1.2.3.4"));
    ck_assert(cidr_list_match(&l, "::ffff:1.2.3.4"));

    l = parse_ok("5.6.7.8/0");                             /* all host bits */
    ck_assert(cidr_list_match(&l, "9.9.9.9"));
}
END_TEST

START_TEST(mapped_addresses)
{
    struct cidr_list l = parse_ok("127.0.0.0/8, 10.1.0.0/16");

    ck_assert(cidr_list_match(&l, "::ffff:127.0.0.1"));
    ck_assert(cidr_list_match(&l, "::FFFF:10.1.2.3"));
    ck_assert(cidr_list_match(&l, "::ffff:a01:203"));      /* 10.1.2.3 in hex */
    ck_assert(!cidr_list_match(&l, "::ffff:10.2.0.1"));
    ck_assert(!cidr_list_match(&l, "::127.0.0.1"));        /* IPv4-compatible is not mapped */
    ck_assert(!cidr_list_match(&l, "64:ff9b::7f00:1"));    /* NAT64 is not mapped */

    /* mapped entries describe IPv4 networks */
    l = parse_ok("::ffff:192.168.0.0/112");
    ck_assert_uint_eq(l.e[0].family, AF_INET);
    ck_assert_uint_eq(l.e[0].prefix, 16);
    ck_assert(cidr_list_match(&l, "192.168.44.1"));
    ck_assert(cidr_list_match(&l, "::ffff:192.168.44.1"));
    ck_assert(!cidr_list_match(&l, "192.169.0.1"));
    l = parse_ok("::ffff:1.2.3.4");
    ck_assert(cidr_list_match(&l, "1.2.3.4"));
    ck_assert(!cidr_list_match(&l, "1.2.3.5"));
    l = parse_ok("::ffff:0:0/96");
    ck_assert(cidr_list_match(&l, "8.8.4.4"));
    ck_assert(!cidr_list_match(&l, "::1"));
}
END_TEST

START_TEST(whitespace_and_empty)
{
    struct cidr_list l = parse_ok("  127.0.0.0/8 ,\t::1/128\n");

    ck_assert_uint_eq(l.n, 2);
    ck_assert(cidr_list_match(&l, "127.5.5.5"));
    ck_assert(cidr_list_match(&l, "::1"));

    /* an empty list is valid and allows nobody */
    l = parse_ok("");
    ck_assert_uint_eq(l.n, 0);
    ck_assert(!cidr_list_match(&l, "127.0.0.1"));
    l = parse_ok("   ");
    ck_assert_uint_eq(l.n, 0);
}
END_TEST

static void parse_bad(const char *s, const char *needle)
{
    struct cidr_list l;
    char err[128] = "untouched";

    l.n = 99;
    ck_assert_msg(cidr_list_parse(s, &l, err, sizeof(err)) == -EINVAL, "\"%s\" parsed", s);
    ck_assert_uint_eq(l.n, 99);                            /* out untouched on failure */
    ck_assert_msg(strstr(err, needle) != NULL, "\"%s\": message \"%s\" lacks \"%s\"", s, err,
                  needle);
}

START_TEST(bad_inputs)
{
    parse_bad("10.0.0.0/33", "10.0.0.0/33");
    parse_bad("::/129", "::/129");
    parse_bad("10.0.0.0/-1", "10.0.0.0/-1");
    parse_bad("10.0.0.0/", "10.0.0.0/");
    parse_bad("10.0.0.0/8/8", "10.0.0.0/8/8");
    parse_bad("10.0.0.0/ 8", "10.0.0.0/ 8");
    parse_bad("10.0.0.0/0008", "0008");
    parse_bad("10.0.0.0/+8", "+8");
    parse_bad("10.0.0.0/8x", "8x");
    parse_bad("localhost", "localhost");
    parse_bad("10.0.0", "10.0.0");
    parse_bad("10.0.0.256", "10.0.0.256");
    parse_bad("010.0.0.1", "010.0.0.1");
    parse_bad("1.2.3.4:80", "1.2.3.4:80");
    parse_bad("[::1]", "[::1]");
    parse_bad("fe80::1%eth0/64", "fe80::1%eth0");
    parse_bad("::ffff:1.2.3.4/129", "/129");
    parse_bad("127.0.0.1 10.0.0.1", "127.0.0.1 10.0.0.1");
    parse_bad("127.0.0.1,,::1", "#2");                     /* empty entries */
    parse_bad("127.0.0.1,", "#2");
    parse_bad(",127.0.0.1", "#1");
    parse_bad("127.0.0.1, ,::1", "empty");
    parse_bad("127.0.0.1, bogus, ::1", "bogus");
}
END_TEST

START_TEST(too_many_entries)
{
    char buf[CIDR_MAX_ENTRIES * 16 + 32];
    struct cidr_list l;
    char err[128];
    size_t o = 0;

    for (int i = 0; i < CIDR_MAX_ENTRIES; i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s10.0.%d.0/24", i ? "," : "", i);
    l = parse_ok(buf);
    ck_assert_uint_eq(l.n, CIDR_MAX_ENTRIES);
    ck_assert(cidr_list_match(&l, "10.0.63.9"));
    snprintf(buf + o, sizeof(buf) - o, ",1.1.1.1");
    ck_assert_int_eq(cidr_list_parse(buf, &l, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "too many"));
    /* a tiny or absent error buffer is fine */
    ck_assert_int_eq(cidr_list_parse("nope", &l, err, 4), -EINVAL);
    ck_assert_uint_eq(strlen(err), 3);
    ck_assert_int_eq(cidr_list_parse("nope", &l, NULL, 0), -EINVAL);
}
END_TEST

static const char *client(const char *peer, const char *xff, int hops)
{
    static char out[CIDR_ADDR_STRLEN];

    memset(out, 'X', sizeof(out));
    cidr_client_address(peer, xff, hops, out);
    ck_assert_uint_lt(strlen(out), CIDR_ADDR_STRLEN);
    return out;
}

START_TEST(xff_no_trust)
{
    /* hops = 0: X-Forwarded-For is the client's word and is ignored */
    ck_assert_str_eq(client("203.0.113.9", "127.0.0.1", 0), "203.0.113.9");
    ck_assert_str_eq(client("203.0.113.9", NULL, 0), "203.0.113.9");
    ck_assert_str_eq(client("203.0.113.9", "127.0.0.1", -1), "203.0.113.9");
    /* the peer comes out canonical; mapped peers as IPv4 */
    ck_assert_str_eq(client("::ffff:127.0.0.1", NULL, 0), "127.0.0.1");
    ck_assert_str_eq(client("2001:DB8:0:0::1", NULL, 0), "2001:db8::1");
    /* a peer that is not an address is passed through */
    ck_assert_str_eq(client("unix", NULL, 0), "unix");
    ck_assert_str_eq(client(NULL, NULL, 0), "");
}
END_TEST

START_TEST(xff_hops)
{
    const char *peer = "10.0.0.2";                         /* our proxy */

    ck_assert_str_eq(client(peer, "198.51.100.1, 203.0.113.5, 192.0.2.7", 1), "192.0.2.7");
    ck_assert_str_eq(client(peer, "198.51.100.1, 203.0.113.5, 192.0.2.7", 2), "203.0.113.5");
    ck_assert_str_eq(client(peer, "198.51.100.1, 203.0.113.5, 192.0.2.7", 3), "198.51.100.1");
    /* fewer entries than hops: the leftmost */
    ck_assert_str_eq(client(peer, "198.51.100.1, 203.0.113.5", 5), "198.51.100.1");
    ck_assert_str_eq(client(peer, "198.51.100.1", 1), "198.51.100.1");
    /* no header, or an empty one: the peer */
    ck_assert_str_eq(client(peer, NULL, 1), peer);
    ck_assert_str_eq(client(peer, "", 1), peer);
    ck_assert_str_eq(client(peer, "   ", 2), peer);
    /* spacing variants */
    ck_assert_str_eq(client(peer, "198.51.100.1,203.0.113.5", 1), "203.0.113.5");
    ck_assert_str_eq(client(peer, "\t198.51.100.1 ,  203.0.113.5  ", 2), "198.51.100.1");
}
END_TEST

START_TEST(xff_spoofed)
{
    const char *peer = "10.0.0.2";

    /* A client sends "X-Forwarded-For: 127.0.0.1"; our one proxy appends the
     * real address.  With hops=1 the forged entry is never chosen. */
    ck_assert_str_eq(client(peer, "127.0.0.1, 203.0.113.5", 1), "203.0.113.5");
    ck_assert_str_eq(client(peer, "127.0.0.1, ::1, 10.0.0.1, 203.0.113.5", 1), "203.0.113.5");
    /* The entry at the trusted position is garbage: fall back to the peer, do
     * not walk further left into entries the client wrote. */
    ck_assert_str_eq(client(peer, "127.0.0.1, unknown", 1), peer);
    ck_assert_str_eq(client(peer, "127.0.0.1, ", 1), peer);
    ck_assert_str_eq(client(peer, "127.0.0.1,,203.0.113.5", 2), peer);
    ck_assert_str_eq(client(peer, "127.0.0.1, 203.0.113.5:99999x", 1), peer);
    /* garbage left of the trusted entry does not matter */
    ck_assert_str_eq(client(peer, "<script>, 203.0.113.5", 1), "203.0.113.5");
    /* overlong entry */
    {
        char xff[400];

        memset(xff, '1', sizeof(xff) - 1);
        xff[sizeof(xff) - 1] = '\0';
        ck_assert_str_eq(client(peer, xff, 1), peer);
    }
}
END_TEST

START_TEST(xff_ports_and_brackets)
{
    const char *peer = "10.0.0.2";

    ck_assert_str_eq(client(peer, "1.2.3.4:5678", 1), "1.2.3.4");
    ck_assert_str_eq(client(peer, "[::1]:80", 1), "::1");
    ck_assert_str_eq(client(peer, "[2001:db8::7]", 1), "2001:db8::7");
    ck_assert_str_eq(client(peer, "2001:db8::7", 1), "2001:db8::7");
    ck_assert_str_eq(client(peer, "::ffff:1.2.3.4", 1), "1.2.3.4");
    ck_assert_str_eq(client(peer, "[::ffff:1.2.3.4]:1", 1), "1.2.3.4");
    /* not addresses */
    ck_assert_str_eq(client(peer, "1.2.3.4:", 1), peer);
    ck_assert_str_eq(client(peer, "1.2.3.4:http", 1), peer);
    ck_assert_str_eq(client(peer, "[::1", 1), peer);
    ck_assert_str_eq(client(peer, "[::1]x", 1), peer);
    ck_assert_str_eq(client(peer, "[::1]:", 1), peer);
    ck_assert_str_eq(client(peer, "[1.2.3.4]:80x", 1), peer);
    ck_assert_str_eq(client(peer, "host.example:80", 1), peer);
    ck_assert_str_eq(client(peer, "fe80::1%eth0", 1), peer);
}
END_TEST

START_TEST(xff_result_matches_allow_list)
{
    struct cidr_list l = parse_ok("127.0.0.0/8,::1/128");

    /* What the admin check does: resolve, then match. */
    ck_assert(!cidr_list_match(&l, client("10.0.0.2", "127.0.0.1, 203.0.113.5", 1)));
    ck_assert(cidr_list_match(&l, client("127.0.0.1", "203.0.113.5", 0)));
    ck_assert(!cidr_list_match(&l, client("203.0.113.5", "127.0.0.1", 0)));
    ck_assert(cidr_list_match(&l, client("::ffff:127.0.0.1", NULL, 0)));
}
END_TEST

static Suite *cidr_suite(void)
{
    Suite *s = suite_create("cidr");
    TCase *tc = tcase_create("list");

    tcase_add_test(tc, v4_match);
    tcase_add_test(tc, v4_odd_prefix_and_host_bits);
    tcase_add_test(tc, v6_match);
    tcase_add_test(tc, prefix_zero);
    tcase_add_test(tc, mapped_addresses);
    tcase_add_test(tc, whitespace_and_empty);
    tcase_add_test(tc, bad_inputs);
    tcase_add_test(tc, too_many_entries);
    suite_add_tcase(s, tc);
    tc = tcase_create("client");
    tcase_add_test(tc, xff_no_trust);
    tcase_add_test(tc, xff_hops);
    tcase_add_test(tc, xff_spoofed);
    tcase_add_test(tc, xff_ports_and_brackets);
    tcase_add_test(tc, xff_result_matches_allow_list);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cidr_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
