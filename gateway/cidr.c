/*
 * CIDR allow-lists and the client-address rule.
 *
 * Entries are stored masked, so matching is a prefix compare of network
 * bytes.  IPv4-mapped IPv6 entries (::ffff:a.b.c.d/p, p >= 96) are stored as
 * the IPv4 entry they describe; an IPv4 address (plain or mapped) is matched
 * against IPv4 entries by its 4 bytes and against IPv6 entries by its mapped
 * 16 bytes, so "::/0" still covers everything a dual-stack socket reports.
 *
 * X-Forwarded-For: every proxy appends the address it saw, so only the
 * rightmost `hops` entries were written by proxies we trust; anything left of
 * them is the client's word.  We take the entry exactly `hops` positions from
 * the right (the leftmost when the list is shorter).  If that entry is not an
 * address we fall back to the socket peer rather than move further left into
 * entries a client could have forged.  Every position counts, empty or not.
 *
 * Output addresses are canonical (inet_ntop), mapped IPv6 shown as IPv4, so
 * one client has one spelling in logs and rate-limit keys.  Pure functions.
 */
#include "gateway/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define CIDR_ENTRY_MAX 64          /* longest entry text we look at: address + "/128" */

static const unsigned char cidr_v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static bool cidr_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Trim [*s, *s+*n) in place. */
static void cidr_trim(const char **s, size_t *n)
{
    while (*n > 0 && cidr_is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && cidr_is_space((*s)[*n - 1]))
        (*n)--;
}

/*
 * Parse a bare textual address of n bytes.  Returns AF_INET (4 bytes in addr)
 * or AF_INET6 (16 bytes; mapped addresses become AF_INET), or 0.
 */
static int cidr_parse_addr(const char *s, size_t n, unsigned char addr[16])
{
    char buf[CIDR_ADDR_STRLEN];

    if (n == 0 || n >= sizeof(buf))
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, addr) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, buf, addr) == 1) {
        if (memcmp(addr, cidr_v4mapped, sizeof(cidr_v4mapped)) == 0) {
            memmove(addr, addr + 12, 4);
            return AF_INET;
        }
        return AF_INET6;
    }
    return 0;
}

static void cidr_mask(unsigned char *addr, size_t bytes, unsigned prefix)
{
    for (size_t i = 0; i < bytes; i++) {
        unsigned bits = prefix > 8 * i ? prefix - 8 * (unsigned)i : 0;

        if (bits < 8)
            addr[i] &= (unsigned char)(0xff00u >> bits);
    }
}

static bool cidr_prefix_eq(const unsigned char *a, const unsigned char *net, unsigned prefix)
{
    size_t full = prefix / 8;
    unsigned rest = prefix % 8;

    if (memcmp(a, net, full) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((a[full] ^ net[full]) & (unsigned char)(0xff00u >> rest)) == 0;
}

/* One trimmed entry of n bytes into *e.  0 or -EINVAL. */
static int cidr_parse_entry(const char *s, size_t n, struct cidr *e)
{
    const char *slash = memchr(s, '/', n);
    size_t alen = slash ? (size_t)(slash - s) : n;
    unsigned max, prefix = 0;
    unsigned char addr[16] = { 0 };
    bool mapped;
    int fam;

    fam = cidr_parse_addr(s, alen, addr);
    if (!fam)
        return -EINVAL;
    /* A mapped address was written in IPv6 terms: its prefix counts 96 more. */
    mapped = fam == AF_INET && memchr(s, ':', alen) != NULL;

    max = mapped ? 128 : fam == AF_INET ? 32 : 128;
    if (slash) {
        const char *p = slash + 1, *end = s + n;

        if (p == end || end - p > 3)
            return -EINVAL;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return -EINVAL;
            prefix = prefix * 10 + (unsigned)(*p - '0');
        }
        if (prefix > max)
            return -EINVAL;
    } else
        prefix = max;

    if (mapped) {
        if (prefix < 96) {
            /* Wider than ::ffff:0:0/96: keep it an IPv6 network. */
            fam = AF_INET6;
            memmove(addr + 12, addr, 4);
            memcpy(addr, cidr_v4mapped, sizeof(cidr_v4mapped));
        } else
            prefix -= 96;
    }
    memset(e, 0, sizeof(*e));
    e->family = fam;
    e->prefix = prefix;
    memcpy(e->addr, addr, fam == AF_INET ? 4 : 16);
    cidr_mask(e->addr, fam == AF_INET ? 4 : 16, prefix);
    return 0;
}

int cidr_list_parse(const char *s, struct cidr_list *out, char *err, size_t errlen)
{
    struct cidr_list l;
    const char *p, *all;
    size_t alln, idx = 0;

    if (err && errlen)
        err[0] = '\0';
    memset(&l, 0, sizeof(l));
    if (!s)
        s = "";
    all = s;
    alln = strlen(s);
    cidr_trim(&all, &alln);
    if (alln == 0)                 /* an empty list allows nobody */
        goto done;

    p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *e = p;

        idx++;
        cidr_trim(&e, &n);
        if (n == 0) {
            if (err && errlen)
                snprintf(err, errlen, "empty entry #%zu in CIDR list", idx);
            return -EINVAL;
        }
        if (l.n == CIDR_MAX_ENTRIES) {
            if (err && errlen)
                snprintf(err, errlen, "too many CIDR entries (at most %d)", CIDR_MAX_ENTRIES);
            return -EINVAL;
        }
        if (n > CIDR_ENTRY_MAX || cidr_parse_entry(e, n, &l.e[l.n]) < 0) {
            if (err && errlen)
                snprintf(err, errlen, "bad CIDR entry #%zu \"%.*s\"%s", idx,
                         (int)(n > CIDR_ENTRY_MAX ? CIDR_ENTRY_MAX : n), e,
                         n > CIDR_ENTRY_MAX ? "..." : "");
            return -EINVAL;
        }
        l.n++;
        if (!comma)
            break;
        p = comma + 1;
    }
done:
    *out = l;
    return 0;
}

bool cidr_list_match(const struct cidr_list *l, const char *ip)
{
    unsigned char a[16], mapped[16];
    int fam;

    if (!l || !ip)
        return false;
    fam = cidr_parse_addr(ip, strlen(ip), a);
    if (!fam)
        return false;
    if (fam == AF_INET) {
        memcpy(mapped, cidr_v4mapped, sizeof(cidr_v4mapped));
        memcpy(mapped + 12, a, 4);
    }
    for (size_t i = 0; i < l->n; i++) {
        const struct cidr *e = &l->e[i];

        if (e->family == AF_INET && fam == AF_INET && cidr_prefix_eq(a, e->addr, e->prefix))
            return true;
        if (e->family == AF_INET6 &&
            cidr_prefix_eq(fam == AF_INET ? mapped : a, e->addr, e->prefix))
            return true;
    }
    return false;
}

/*
 * One X-Forwarded-For entry (trimmed, n bytes) to canonical text in out.
 * Accepts "1.2.3.4", "1.2.3.4:5678", "2001:db8::1", "[2001:db8::1]",
 * "[2001:db8::1]:443".  false if it is none of these.
 */
static bool cidr_canonical(const char *s, size_t n, char out[CIDR_ADDR_STRLEN])
{
    unsigned char a[16];
    const char *colon;
    int fam;

    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);

        if (!close)
            return false;
        if ((size_t)(close + 1 - s) != n) {       /* "]:port" */
            const char *p = close + 1;

            if (*p != ':' || p + 1 == s + n)
                return false;
            for (p++; p < s + n; p++)
                if (*p < '0' || *p > '9')
                    return false;
        }
        fam = cidr_parse_addr(s + 1, (size_t)(close - s - 1), a);
        if (!fam)
            return false;
    } else {
        fam = cidr_parse_addr(s, n, a);
        colon = memchr(s, ':', n);
        /* "a.b.c.d:port": exactly one colon, so not an IPv6 literal. */
        if (!fam && colon && !memchr(colon + 1, ':', (size_t)(s + n - colon - 1))) {
            const char *p = colon + 1;

            if (p == s + n)
                return false;
            for (; p < s + n; p++)
                if (*p < '0' || *p > '9')
                    return false;
            fam = cidr_parse_addr(s, (size_t)(colon - s), a);
            if (fam != AF_INET)
                return false;
        }
        if (!fam)
            return false;
    }
    return inet_ntop(fam, a, out, CIDR_ADDR_STRLEN) != NULL;
}

void cidr_client_address(const char *peer, const char *xff, int hops, char *out)
{
    if (hops > 0 && xff) {
        const char *end = xff + strlen(xff), *start;
        int pos = 0;

        /* Walk entries from the right; stop at the hops-th or the leftmost. */
        for (;;) {
            const char *e;
            size_t n;

            start = end;
            while (start > xff && start[-1] != ',')
                start--;
            pos++;
            if (pos == hops || start == xff) {
                e = start;
                n = (size_t)(end - start);
                cidr_trim(&e, &n);
                if (n > 0 && cidr_canonical(e, n, out))
                    return;
                break;
            }
            end = start - 1;                       /* skip the comma */
        }
    }
    /* The peer as the caller wrote it, canonical when it is an address. */
    if (!peer)
        peer = "";
    if (!cidr_canonical(peer, strlen(peer), out))
        snprintf(out, CIDR_ADDR_STRLEN, "%s", peer);
}
