/*
 * The network policy: rules, address classes, decisions (policy.h).
 */
#include "net/policy.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <pthread.h>
#include <time.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- addresses ------------------------------------------------------------ */

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int eryx__addr_is_v4(const eryx__addr *a)
{
    return memcmp(a->b, v4_mapped_prefix, 12) == 0;
}

static void addr_from_v4(eryx__addr *a, const uint8_t v4[4])
{
    memcpy(a->b, v4_mapped_prefix, 12);
    memcpy(a->b + 12, v4, 4);
}

int eryx__addr_parse(const char *text, eryx__addr *out)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (!text || !*text)
        return 0;
    /* inet_aton takes what the resolver takes for IPv4: 1 to 4 parts, each
     * decimal, octal (leading 0) or hex (0x): "2130706433" and "0x7f.1" are
     * 127.0.0.1 to it, so they must be to the policy too. It also stops
     * at the first space ("1.2.3.4 x"): such text is no literal here. */
    if (strchr(text, ' ') == NULL && inet_aton(text, &v4)) {
        addr_from_v4(out, (const uint8_t *)&v4.s_addr);
        return 1;
    }
    if (inet_pton(AF_INET6, text, &v6) == 1) {
        memcpy(out->b, v6.s6_addr, 16);
        return 1;
    }
    return 0;
}

void eryx__addr_format(const eryx__addr *a, char *out, size_t outsize)
{
    char buf[INET6_ADDRSTRLEN];
    if (eryx__addr_is_v4(a))
        inet_ntop(AF_INET, a->b + 12, buf, sizeof buf);
    else
        inet_ntop(AF_INET6, a->b, buf, sizeof buf);
    snprintf(out, outsize, "%s", buf);
}

static int in_prefix(const uint8_t *a, const uint8_t *net, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, net, whole) != 0)
        return 0;
    if (!rest)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (net[whole] & mask);
}

static const char *v4_special(const uint8_t *v)
{
    static const struct {
        uint8_t net[4];
        unsigned bits;
        const char *what;
    } ranges[] = {
        {{0, 0, 0, 0}, 8, "\"this network\" (0.0.0.0/8)"},
        {{10, 0, 0, 0}, 8, "private (10.0.0.0/8)"},
        {{100, 64, 0, 0}, 10, "shared CGNAT space (100.64.0.0/10)"},
        {{127, 0, 0, 0}, 8, "loopback (127.0.0.0/8)"},
        {{169, 254, 0, 0}, 16, "link-local, where cloud metadata services live (169.254.0.0/16)"},
        {{172, 16, 0, 0}, 12, "private (172.16.0.0/12)"},
        {{192, 0, 0, 0}, 24, "IETF protocol assignments (192.0.0.0/24)"},
        {{192, 168, 0, 0}, 16, "private (192.168.0.0/16)"},
        {{198, 18, 0, 0}, 15, "benchmarking (198.18.0.0/15)"},
        {{224, 0, 0, 0}, 4, "multicast (224.0.0.0/4)"},
        {{240, 0, 0, 0}, 4, "reserved or broadcast (240.0.0.0/4)"},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (in_prefix(v, ranges[i].net, ranges[i].bits))
            return ranges[i].what;
    return NULL;
}

/* This machine's own addresses. A service listening on every interface
 * (0.0.0.0, ::) answers on the machine's public address too: reached by
 * that address, or by a name whose DNS record someone points at it, it is
 * as local as loopback. Read with getifaddrs, again at most once a second
 * (interfaces come and go rarely; a connect must not pay a netlink round
 * trip each time). */
#define OWN_MAX 64
static struct {
    pthread_mutex_t mu;
    int64_t read_at;            /* CLOCK_MONOTONIC seconds; 0: never */
    size_t n;
    eryx__addr a[OWN_MAX];
} own = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* fork(2) (net.c's eryx__net_fork, core/fork.c): own.mu is held across
 * it (a connect checked on another thread at the fork left it held for
 * good in the child, whose next check of an address hung). A leaf:
 * nothing else is taken under it. */
void eryx__policy_fork_lock(int lock)
{
    if (lock)
        pthread_mutex_lock(&own.mu);
    else
        pthread_mutex_unlock(&own.mu);
}

int eryx__addr_from_sockaddr(const struct sockaddr *sa, eryx__addr *out)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (sa->sa_family == AF_INET) {
        memcpy(out->b, mapped, 12);
        memcpy(out->b + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return 1;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out->b, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return 1;
    }
    return 0;
}

static void own_read(void)
{
    struct ifaddrs *list;
    own.n = 0;
    if (getifaddrs(&list) < 0)
        return;
    for (struct ifaddrs *i = list; i && own.n < OWN_MAX; i = i->ifa_next)
        if (i->ifa_addr && eryx__addr_from_sockaddr(i->ifa_addr, &own.a[own.n]))
            own.n++;
    freeifaddrs(list);
}

int eryx__addr_own(const eryx__addr *a)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int found = 0;
    pthread_mutex_lock(&own.mu);
    if (!own.read_at || now.tv_sec != own.read_at) {
        own_read();
        own.read_at = now.tv_sec ? now.tv_sec : 1;
    }
    for (size_t i = 0; i < own.n && !found; i++)
        found = memcmp(own.a[i].b, a->b, 16) == 0;
    pthread_mutex_unlock(&own.mu);
    return found;
}

/* The fixed ranges: what an address is wherever it is seen. */
static const char *addr_class(const eryx__addr *a)
{
    static const uint8_t zero[16] = {0};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
    const uint8_t *b = a->b;
    if (eryx__addr_is_v4(a))
        return v4_special(b + 12);
    if (memcmp(b, zero, 15) == 0 && b[15] <= 1)
        return b[15] ? "loopback (::1)" : "unspecified (::)";
    /* IPv6 spellings of an IPv4 address: judged as that address. */
    if (memcmp(b, zero, 12) == 0)
        return v4_special(b + 12) ? v4_special(b + 12) : "IPv4-compatible IPv6 (::/96)";
    if (memcmp(b, nat64, 12) == 0) {
        const char *w = v4_special(b + 12);
        if (w)
            return w;
    }
    if (b[0] == 0x20 && b[1] == 0x02) { /* 6to4: 2002:AABB:CCDD::/48 */
        const char *w = v4_special(b + 2);
        if (w)
            return w;
    }
    if ((b[0] & 0xfe) == 0xfc)
        return "unique local (fc00::/7)";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return "link-local (fe80::/10)";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return "site-local (fec0::/10)";
    if (b[0] == 0xff)
        return "multicast (ff00::/8)";
    return NULL;
}

const char *eryx__addr_special(const eryx__addr *a)
{
    const char *what = addr_class(a);
    if (!what && eryx__addr_own(a))
        what = "one of this machine's own addresses";
    return what;
}

/* ---- names ---------------------------------------------------------------- */

int eryx__host_normalise(const char *in, char *out, size_t outsize)
{
    size_t n = strlen(in);
    if (n && in[n - 1] == '.')
        n--; /* "example.com." is example.com */
    if (n == 0 || n > 253 || n >= outsize)
        return -1;
    size_t label = 0;
    int numeric = 1; /* the label so far is all digits */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '.') {
            if (label == 0)
                return -1; /* empty label */
            label = 0;
            numeric = 1;
        } else if (isalnum(c) || c == '-' || c == '_') {
            /* A leading hyphen is no DNS label, and on a command line it
             * is the next option taken for a value ("--allow-net -c"). */
            if ((label == 0 && c == '-') || ++label > 63)
                return -1;
            numeric = numeric && isdigit(c);
        } else {
            return -1; /* not ASCII letters/digits: IDNA must come encoded */
        }
        out[i] = (char)tolower(c);
    }
    /* No top-level domain is all digits: such a name ("127.1", "2130706433")
     * is an address in a spelling the rules do not take, and as a name it
     * could never match. */
    if (label == 0 || numeric)
        return -1;
    out[n] = '\0';
    return 0;
}

/* ---- rules ---------------------------------------------------------------- */

static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    if (!*s || !isdigit((unsigned char)*s))
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v == 0 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* An address or range, "a.b.c.d", "a.b.c.d/n", "x::y", "x::/n". IPv4 ranges
 * are dotted quads here (inet_pton), never inet_aton's other spellings. */
static int parse_net(const char *s, eryx__rule *r)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    char *slash = strchr(buf, '/');
    long bits = -1;
    if (slash) {
        char *end;
        *slash = '\0';
        if (!isdigit((unsigned char)slash[1]))
            return -1;
        bits = strtol(slash + 1, &end, 10);
        if (*end)
            return -1;
    }
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, buf, &v4) == 1) {
        if (bits > 32)
            return -1;
        addr_from_v4(&r->net, (const uint8_t *)&v4.s_addr);
        r->prefix = bits < 0 ? 128 : 96 + (unsigned)bits;
    } else if (inet_pton(AF_INET6, buf, &v6) == 1) {
        if (bits > 128)
            return -1;
        memcpy(r->net.b, v6.s6_addr, 16);
        r->prefix = bits < 0 ? 128 : (unsigned)bits;
    } else {
        return -1;
    }
    r->kind = ERYX__RULE_NET;
    return 0;
}

static int parse_host(const char *s, eryx__rule *r)
{
    char name[256];
    if (strcmp(s, "*") == 0) {
        r->kind = ERYX__RULE_ANY;
        return 0;
    }
    int suffix = strncmp(s, "*.", 2) == 0;
    if (eryx__host_normalise(suffix ? s + 2 : s, name, sizeof name) < 0)
        return -1;
    if (suffix) {
        r->kind = ERYX__RULE_SUFFIX;
        r->name = malloc(strlen(name) + 2);
        if (r->name)
            sprintf(r->name, ".%s", name);
    } else {
        r->kind = ERYX__RULE_NAME;
        r->name = strdup(name);
    }
    return r->name ? 0 : -1;
}

/* Whether s, an IPv6 address without brackets, could as well be a shorter
 * address and a port ("::1:80": ::1 port 80, or the address ::1:80). */
static int v6_port_ambiguous(const char *s)
{
    char head[INET6_ADDRSTRLEN];
    struct in6_addr v6;
    const char *colon = strrchr(s, ':');
    size_t digits = strspn(colon + 1, "0123456789");
    if (strchr(s, '/') || digits == 0 || digits > 5 || colon[1 + digits] ||
        (size_t)(colon - s) >= sizeof head)
        return 0;
    memcpy(head, s, (size_t)(colon - s));
    head[colon - s] = '\0';
    return inet_pton(AF_INET6, head, &v6) == 1;
}

int eryx__rule_parse(const char *text, eryx__rule *r)
{
    memset(r, 0, sizeof *r);
    char buf[300];
    if (!text || !*text || strlen(text) >= sizeof buf)
        return -1;
    strcpy(buf, text);
    char *host = buf, *port = NULL;
    if (buf[0] == '[') { /* [v6] or [v6]:port */
        char *close = strchr(buf, ']');
        if (!close)
            return -1;
        *close = '\0';
        host = buf + 1;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1])
            return -1;
    } else {
        char *colon = strchr(buf, ':');
        if (colon && !strchr(colon + 1, ':')) { /* exactly one: host:port */
            *colon = '\0';
            port = colon + 1;
        } else if (colon && v6_port_ambiguous(buf)) {
            return -1; /* [ADDRESS]:PORT says which (eryx__rule_hint) */
        }
    }
    if (port && parse_port(port, &r->port) < 0)
        return -1;
    int rc = parse_net(host, r) == 0 ? 0 : parse_host(host, r);
    if (rc == 0 && !(r->text = strdup(text)))
        rc = -1;
    if (rc < 0)
        eryx__rule_clear(r);
    return rc;
}

void eryx__rule_clear(eryx__rule *r)
{
    free(r->name);
    free(r->text);
    memset(r, 0, sizeof *r);
}

static int name_matches(const eryx__rule *r, const char *name)
{
    if (!name)
        return 0;
    if (r->kind == ERYX__RULE_ANY)
        return 1;
    if (r->kind == ERYX__RULE_NAME)
        return strcmp(r->name, name) == 0;
    size_t n = strlen(name), s = strlen(r->name);
    return n > s && strcmp(name + n - s, r->name) == 0; /* s includes the dot */
}

int eryx__rule_matches(const eryx__rule *r, const char *name, const eryx__addr *a,
                       uint16_t port)
{
    if (r->port && r->port != port)
        return 0;
    if (r->kind == ERYX__RULE_NET)
        return a && in_prefix(a->b, r->net.b, r->prefix);
    return name_matches(r, name);
}

/* ---- the policy ----------------------------------------------------------- */

static int parse_pin(const char *text, eryx__pin *pin)
{
    /* HOST:PORT:ADDRESS, ADDRESS possibly in brackets */
    memset(pin, 0, sizeof *pin);
    const char *c1 = strchr(text, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2 || c1 == text || (size_t)(c1 - text) > 253)
        return -1;
    char host[256], port[8], addr[INET6_ADDRSTRLEN + 2];
    if ((size_t)(c2 - c1 - 1) >= sizeof port || strlen(c2 + 1) >= sizeof addr)
        return -1;
    memcpy(host, text, (size_t)(c1 - text));
    host[c1 - text] = '\0';
    memcpy(port, c1 + 1, (size_t)(c2 - c1 - 1));
    port[c2 - c1 - 1] = '\0';
    strcpy(addr, c2 + 1);
    char *a = addr;
    size_t alen = strlen(a);
    if (alen >= 2 && a[0] == '[' && a[alen - 1] == ']') {
        a[alen - 1] = '\0';
        a++;
    }
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, a, &v4) == 1)
        addr_from_v4(&pin->addr, (const uint8_t *)&v4.s_addr);
    else if (inet_pton(AF_INET6, a, &v6) == 1)
        memcpy(pin->addr.b, v6.s6_addr, 16);
    else
        return -1;
    char name[256];
    if (parse_port(port, &pin->port) < 0 || eryx__host_normalise(host, name, sizeof name) < 0)
        return -1;
    return (pin->name = strdup(name)) ? 0 : -1;
}

const char *eryx__rule_hint(const char *text)
{
    if (!text || !*text)
        return "";
    if (text[0] == '-')
        return ": it begins with '-' (an option where the rule should be?)";
    size_t host = strcspn(text, ":");
    if (strspn(text, "0123456789.") == host && host < INET_ADDRSTRLEN &&
        strchr(text + host + (text[host] != 0), ':') == NULL) {
        char v4[INET_ADDRSTRLEN];
        struct in_addr a;
        memcpy(v4, text, host);
        v4[host] = '\0';
        if (inet_pton(AF_INET, v4, &a) != 1)
            return ": write an IPv4 address as a dotted quad, a.b.c.d";
    }
    if (text[0] != '[' && strchr(text, ':') != strrchr(text, ':') && v6_port_ambiguous(text))
        return ": an IPv6 address with a port needs brackets, [ADDRESS]:PORT (and one "
               "without may have them, [ADDRESS])";
    return "";
}

const char *eryx__policy_init(eryx__policy *p, const char *const *allow, size_t n_allow,
                              const char *const *deny, size_t n_deny,
                              const char *const *pins, size_t n_pins, char *err,
                              size_t errsize)
{
    memset(p, 0, sizeof *p);
    p->allow = calloc(n_allow + 1, sizeof *p->allow);
    p->deny = calloc(n_deny + 1, sizeof *p->deny);
    p->pins = calloc(n_pins + 1, sizeof *p->pins);
    if (!p->allow || !p->deny || !p->pins) {
        snprintf(err, errsize, "out of memory");
        goto fail;
    }
    for (; p->n_allow < n_allow; p->n_allow++) {
        if (!allow[p->n_allow] || eryx__rule_parse(allow[p->n_allow], &p->allow[p->n_allow]) < 0) {
            snprintf(err, errsize, "network allow rule %zu (\"%.200s\") is not a host name, "
                     "*.domain, *, IP address or CIDR range with an optional :PORT%s",
                     p->n_allow, allow[p->n_allow] ? allow[p->n_allow] : "(null)",
                     eryx__rule_hint(allow[p->n_allow]));
            goto fail;
        }
    }
    for (; p->n_deny < n_deny; p->n_deny++) {
        if (!deny[p->n_deny] || eryx__rule_parse(deny[p->n_deny], &p->deny[p->n_deny]) < 0) {
            snprintf(err, errsize, "network deny rule %zu (\"%.200s\") does not parse%s",
                     p->n_deny, deny[p->n_deny] ? deny[p->n_deny] : "(null)",
                     eryx__rule_hint(deny[p->n_deny]));
            goto fail;
        }
    }
    for (; p->n_pins < n_pins; p->n_pins++) {
        if (!pins[p->n_pins] || parse_pin(pins[p->n_pins], &p->pins[p->n_pins]) < 0) {
            snprintf(err, errsize, "resolve override %zu (\"%.200s\") is not HOST:PORT:ADDRESS",
                     p->n_pins, pins[p->n_pins] ? pins[p->n_pins] : "(null)");
            goto fail;
        }
    }
    return NULL;
fail:
    eryx__policy_clear(p);
    return err;
}

void eryx__policy_clear(eryx__policy *p)
{
    for (size_t i = 0; i < p->n_allow; i++)
        eryx__rule_clear(&p->allow[i]);
    for (size_t i = 0; i < p->n_deny; i++)
        eryx__rule_clear(&p->deny[i]);
    for (size_t i = 0; i < p->n_pins; i++)
        free(p->pins[i].name);
    free(p->allow);
    free(p->deny);
    free(p->pins);
    memset(p, 0, sizeof *p);
}

int eryx__policy_name_possible(const eryx__policy *p, const char *name, uint16_t port)
{
    for (size_t i = 0; i < p->n_allow; i++) {
        const eryx__rule *r = &p->allow[i];
        if (r->kind != ERYX__RULE_NET && eryx__rule_matches(r, name, NULL, port))
            return 1;
    }
    return 0;
}

const char *eryx__policy_name_denied(const eryx__policy *p, const char *name, uint16_t port)
{
    for (size_t i = 0; i < p->n_deny; i++)
        if (p->deny[i].kind != ERYX__RULE_NET && eryx__rule_matches(&p->deny[i], name, NULL, port))
            return p->deny[i].text;
    return NULL;
}

int eryx__policy_check(const eryx__policy *p, const char *name, const eryx__addr *a,
                       uint16_t port, char *why, size_t whysize)
{
    char addr[INET6_ADDRSTRLEN];
    eryx__addr_format(a, addr, sizeof addr);
    for (size_t i = 0; i < p->n_deny; i++)
        if (eryx__rule_matches(&p->deny[i], name, a, port)) {
            snprintf(why, whysize, "%s:%u is refused by the deny rule \"%s\"",
                     name ? name : addr, port, p->deny[i].text);
            return 0;
        }
    for (size_t i = 0; i < p->n_allow; i++)
        if (p->allow[i].kind == ERYX__RULE_NET && eryx__rule_matches(&p->allow[i], NULL, a, port)) {
            snprintf(why, whysize, "allowed by the rule \"%s\"", p->allow[i].text);
            return 1;
        }
    const char *special = eryx__addr_special(a);
    if (special) {
        snprintf(why, whysize,
                 "%s%s%s:%u is refused: %s is %s, reachable only through a rule naming "
                 "that address or range", name ? name : "", name ? " -> " : "", addr, port,
                 addr, special);
        return 0;
    }
    for (size_t i = 0; i < p->n_allow; i++)
        if (p->allow[i].kind != ERYX__RULE_NET &&
            eryx__rule_matches(&p->allow[i], name, NULL, port)) {
            snprintf(why, whysize, "allowed by the rule \"%s\"", p->allow[i].text);
            return 1;
        }
    if (p->n_allow == 0)
        snprintf(why, whysize, "%s:%u is refused: the sandbox's network policy allows no "
                 "destination", name ? name : addr, port);
    else
        snprintf(why, whysize, "%s:%u is refused: no allow rule matches it",
                 name ? name : addr, port);
    return 0;
}

const eryx__addr *eryx__policy_pin(const eryx__policy *p, const char *name, uint16_t port)
{
    for (size_t i = 0; i < p->n_pins; i++)
        if (p->pins[i].port == port && strcmp(p->pins[i].name, name) == 0)
            return &p->pins[i].addr;
    return NULL;
}
