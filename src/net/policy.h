/*
 * The network policy of a sandbox: which destinations its code may reach.
 * Pure: parses rules, classifies addresses and answers questions; it does
 * no I/O (the resolver and the connections are src/net/net.c).
 *
 * Deny by default. A destination is an address and a port, reached either
 * through a host name the policy resolved or as an IP literal. It is
 * allowed when no deny rule matches it and then either an address rule
 * (an IP or a CIDR range) covers the address, or the address is public
 * and a host rule matches the name it was resolved from. "Public" excludes
 * loopback, private, link-local (the cloud metadata address among them),
 * CGNAT, "this network", multicast, reserved and broadcast ranges, their
 * IPv6 counterparts, and any IPv6 form that embeds such an IPv4 address
 * (mapped, compatible, NAT64, 6to4): those need an address rule naming
 * them. So a name allowed by pattern that resolves to 127.0.0.1 or to
 * 169.254.169.254 (DNS rebinding) is refused.
 *
 * Rule syntax ("RULE" below), case-insensitive:
 *   api.example.com       that name only
 *   *.example.com         names under example.com at any depth, not
 *                         example.com itself
 *   *                     every name (addresses must still be public)
 *   203.0.113.7           one IPv4 address      2001:db8::1   one IPv6
 *   10.0.0.0/8            an IPv4 range         fc00::/7      an IPv6 range
 * each optionally followed by ":PORT" (IPv6 then in brackets:
 * "[2001:db8::1]:443", "[fc00::/7]:443"); without a port, every port.
 */
#ifndef ERYX_NET_POLICY_H
#define ERYX_NET_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* An address, IPv4 ones as IPv4-mapped IPv6 (::ffff:a.b.c.d). */
typedef struct eryx__addr {
    uint8_t b[16];
} eryx__addr;

enum eryx__rule_kind { ERYX__RULE_NAME, ERYX__RULE_SUFFIX, ERYX__RULE_ANY, ERYX__RULE_NET };

typedef struct eryx__rule {
    enum eryx__rule_kind kind;
    char *name;                 /* NAME: the name; SUFFIX: ".example.com" */
    eryx__addr net;             /* NET: the range's first address */
    unsigned prefix;            /* NET: prefix length over the 128 bits */
    uint16_t port;              /* 0 = any */
    char *text;                 /* as written, for messages */
} eryx__rule;

/* A name pinned to an address for one port (curl's --resolve). */
typedef struct eryx__pin {
    char *name;
    uint16_t port;
    eryx__addr addr;
} eryx__pin;

typedef struct eryx__policy {
    eryx__rule *allow, *deny;
    size_t n_allow, n_deny;
    eryx__pin *pins;
    size_t n_pins;
} eryx__policy;

/* Parses the rules into *p. Returns NULL, or a message (written to err)
 * naming the first rule that does not parse; *p is then empty. */
const char *eryx__policy_init(eryx__policy *p, const char *const *allow, size_t n_allow,
                              const char *const *deny, size_t n_deny,
                              const char *const *pins, size_t n_pins, char *err,
                              size_t errsize);
void eryx__policy_clear(eryx__policy *p);

/* Parses one rule (exposed for eryx__secret hosts, which are rules too). */
int eryx__rule_parse(const char *text, eryx__rule *r);
/* Why text, which eryx__rule_parse refused, is wrong, when a common mistake
 * says more than the grammar: ": ..." to append to a message, or "". */
const char *eryx__rule_hint(const char *text);
void eryx__rule_clear(eryx__rule *r);
/* 1 if rule r matches name (normalised, may be NULL) / address / port. */
int eryx__rule_matches(const eryx__rule *r, const char *name, const eryx__addr *a,
                       uint16_t port);

/* Normalises a host name into out (lowercase, one trailing dot dropped):
 * 0, or -1 when it is not a valid ASCII host name (IDNA names must come
 * encoded, "xn--..."; no label begins with '-'; the last is not all
 * digits). */
int eryx__host_normalise(const char *in, char *out, size_t outsize);

/* Parses an IP literal the way the C library's resolver would accept it
 * (so also "2130706433", "0x7f.1", "017700000001"): 1 if it is one. */
int eryx__addr_parse(const char *text, eryx__addr *out);
/* An AF_INET (as IPv4-mapped) or AF_INET6 socket address into *out: 1, or
 * 0 for another family. */
struct sockaddr;
int eryx__addr_from_sockaddr(const struct sockaddr *sa, eryx__addr *out);
/* Formats an address ("127.0.0.1", "2001:db8::1"). */
void eryx__addr_format(const eryx__addr *a, char *out, size_t outsize);
int eryx__addr_is_v4(const eryx__addr *a);

/* Why an address is not public ("loopback", "private (RFC 1918)",
 * "link-local", ..., this machine's own), or NULL when it is. */
const char *eryx__addr_special(const eryx__addr *a);
/* 1 if a is an address of one of this machine's interfaces (any of them:
 * a service bound to 0.0.0.0 answers there). Thread-safe. */
int eryx__addr_own(const eryx__addr *a);

/* fork(2): takes (1) or lets go (0) the lock of the cache of this
 * machine's addresses (net.c's eryx__net_fork). */
void eryx__policy_fork_lock(int lock);

/* Whether name may be looked up at all: 1 if a host rule allows it. An
 * address rule does not: a lookup of a name the guest makes up carries
 * what the name holds to whoever serves its DNS, and with only address
 * rules that would be anyone. */
int eryx__policy_name_possible(const eryx__policy *p, const char *name, uint16_t port);
/* The text of the first deny rule that refuses name at port by the name
 * alone, or NULL: such a name is not looked up (the lookup itself would
 * carry the name, and what the guest put in it, to the domain's servers). */
const char *eryx__policy_name_denied(const eryx__policy *p, const char *name, uint16_t port);

/* Decides on a connection to a:port reached through name (NULL for an IP
 * literal). Returns 1 (allowed) or 0; why[] says which rule allowed it or
 * why it was refused, in a sentence naming the rule. */
int eryx__policy_check(const eryx__policy *p, const char *name, const eryx__addr *a,
                       uint16_t port, char *why, size_t whysize);

/* The pinned address of name:port, or NULL. */
const eryx__addr *eryx__policy_pin(const eryx__policy *p, const char *name, uint16_t port);

#endif
