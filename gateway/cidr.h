/*
 * CIDR allow-lists (IPv4 and IPv6) and the client address rule of the contract:
 * the client address is the socket peer; X-Forwarded-For is consulted only when
 * TRUST_PROXY=<hops> > 0, taking the entry `hops` positions from the right
 * (the one our nearest trusted proxy saw).  IPv4-mapped IPv6 peers
 * (::ffff:a.b.c.d) match IPv4 entries.  Pure functions, thread-safe after parse.
 */
#ifndef GATEWAY_CIDR_H
#define GATEWAY_CIDR_H

#include <stdbool.h>
#include <stddef.h>

#define CIDR_MAX_ENTRIES 64
#define CIDR_ADDR_STRLEN 46   /* INET6_ADDRSTRLEN */

struct cidr {
    int family;               /* AF_INET or AF_INET6 */
    unsigned char addr[16];   /* network bytes, masked */
    unsigned prefix;
};

struct cidr_list {
    size_t n;
    struct cidr e[CIDR_MAX_ENTRIES];
};

/* "10.0.0.0/8, ::1/128, 192.168.1.7" (no prefix = host).  0 or -EINVAL with err set. */
int cidr_list_parse(const char *s, struct cidr_list *out, char *err, size_t errlen);
/* ip is a textual address; false if it does not parse. */
bool cidr_list_match(const struct cidr_list *l, const char *ip);

/* Resolve the client address into out (CIDR_ADDR_STRLEN bytes).
 * peer: textual socket peer; xff: X-Forwarded-For header or NULL; hops: TRUST_PROXY.
 * With hops > 0, the hops-th entry of X-Forwarded-For from the right is taken (fewer
 * entries than hops: the leftmost).  If that entry is not an address, the peer is
 * used: entries further left are written by the client, so skipping left would
 * let a client choose its own address.  Output is canonical (::ffff:a.b.c.d as a.b.c.d). */
void cidr_client_address(const char *peer, const char *xff, int hops, char *out);

#endif
