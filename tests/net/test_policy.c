/*
 * The network policy and the secrets' byte handling, without a sandbox
 * (src/net/policy.c, src/net/secrets.c).
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <string.h>

#include "../check.h"
#include "net/policy.h"
#include "net/secrets.h"

static int check(const char *const *allow, size_t n_allow, const char *const *deny,
                 size_t n_deny, const char *name, const char *addr, unsigned port, char *why)
{
    eryx__policy p;
    char err[300];
    eryx__addr a;
    if (eryx__policy_init(&p, allow, n_allow, deny, n_deny, NULL, 0, err, sizeof err))
        return -1;
    if (!eryx__addr_parse(addr, &a)) {
        eryx__policy_clear(&p);
        return -2;
    }
    int ok = eryx__policy_check(&p, name, &a, (uint16_t)port, why, 400);
    eryx__policy_clear(&p);
    return ok;
}

TEST_CASE(address_spellings_all_mean_loopback)
{
    static const char *const spellings[] = {"127.0.0.1", "2130706433", "0x7f.1", "0x7f000001",
                                            "017700000001", "127.1", "0177.0.0.1",
                                            "::ffff:127.0.0.1", "::ffff:7f00:1", "::1",
                                            "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1"};
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        eryx__addr a;
        REQUIRE(eryx__addr_parse(spellings[i], &a));
        const char *what = eryx__addr_special(&a);
        CHECK(what != NULL);
        if (what)
            CHECK(strstr(what, "loopback") != NULL || strstr(what, "IPv4-compatible") != NULL);
    }
}

TEST_CASE(special_ranges)
{
    static const struct {
        const char *addr, *what;
    } cases[] = {
        {"169.254.169.254", "link-local"}, {"10.0.0.1", "private"}, {"172.31.255.255", "private"},
        {"192.168.1.1", "private"}, {"100.64.0.1", "CGNAT"}, {"100.127.255.255", "CGNAT"},
        {"0.0.0.0", "this network"}, {"224.0.0.1", "multicast"}, {"255.255.255.255", "broadcast"},
        {"fc00::1", "unique local"}, {"fd12::1", "unique local"}, {"fe80::1", "link-local"},
        {"ff02::1", "multicast"}, {"::", "unspecified"}, {"::ffff:169.254.169.254", "link-local"},
        {"::ffff:10.0.0.1", "private"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eryx__addr a;
        REQUIRE(eryx__addr_parse(cases[i].addr, &a));
        const char *what = eryx__addr_special(&a);
        REQUIRE(what != NULL);
        CHECK_CONTAINS(what, cases[i].what);
    }
    static const char *const public_[] = {"93.184.216.34", "8.8.8.8", "100.128.0.1",
                                          "172.32.0.1", "2606:4700::1111", "192.169.0.1"};
    for (size_t i = 0; i < sizeof public_ / sizeof public_[0]; i++) {
        eryx__addr a;
        REQUIRE(eryx__addr_parse(public_[i], &a));
        CHECK(eryx__addr_special(&a) == NULL);
    }
}

TEST_CASE(host_rules)
{
    static const char *const allow[] = {"api.example.com", "*.svc.example.com:443"};
    char why[400];
    CHECK_INT(check(allow, 2, NULL, 0, "api.example.com", "93.184.216.34", 80, why), 1);
    CHECK_CONTAINS(why, "api.example.com");
    CHECK_INT(check(allow, 2, NULL, 0, "a.svc.example.com", "93.184.216.34", 443, why), 1);
    CHECK_INT(check(allow, 2, NULL, 0, "a.b.svc.example.com", "93.184.216.34", 443, why), 1);
    /* *.domain is not the domain; a port rule is that port only */
    CHECK_INT(check(allow, 2, NULL, 0, "svc.example.com", "93.184.216.34", 443, why), 0);
    CHECK_CONTAINS(why, "no allow rule matches");
    CHECK_INT(check(allow, 2, NULL, 0, "a.svc.example.com", "93.184.216.34", 80, why), 0);
    CHECK_INT(check(allow, 2, NULL, 0, "xapi.example.com", "93.184.216.34", 80, why), 0);
    /* rebinding: an allowed name resolving to loopback or metadata */
    CHECK_INT(check(allow, 2, NULL, 0, "api.example.com", "127.0.0.1", 80, why), 0);
    CHECK_CONTAINS(why, "loopback");
    CHECK_INT(check(allow, 2, NULL, 0, "api.example.com", "169.254.169.254", 80, why), 0);
    CHECK_CONTAINS(why, "link-local");
    CHECK_INT(check(allow, 2, NULL, 0, "api.example.com", "::ffff:10.1.1.1", 80, why), 0);
    CHECK_CONTAINS(why, "private");
    /* no rules at all */
    CHECK_INT(check(NULL, 0, NULL, 0, "api.example.com", "93.184.216.34", 80, why), 0);
    CHECK_CONTAINS(why, "allows no destination");
}

TEST_CASE(address_rules)
{
    static const char *const allow[] = {"127.0.0.1:8080", "10.0.0.0/8", "[::1]:9000",
                                        "fd00::/8"};
    static const char *const deny[] = {"10.9.0.0/16"};
    char why[400];
    CHECK_INT(check(allow, 4, deny, 1, NULL, "127.0.0.1", 8080, why), 1);
    CHECK_INT(check(allow, 4, deny, 1, NULL, "::ffff:127.0.0.1", 8080, why), 1);
    CHECK_INT(check(allow, 4, deny, 1, NULL, "127.0.0.1", 8081, why), 0);
    CHECK_INT(check(allow, 4, deny, 1, NULL, "10.2.3.4", 1, why), 1);
    CHECK_INT(check(allow, 4, deny, 1, NULL, "10.9.3.4", 1, why), 0);
    CHECK_CONTAINS(why, "deny rule \"10.9.0.0/16\"");
    CHECK_INT(check(allow, 4, deny, 1, NULL, "::1", 9000, why), 1);
    CHECK_INT(check(allow, 4, deny, 1, NULL, "fd00::5", 1, why), 1);
    CHECK_INT(check(allow, 4, deny, 1, NULL, "fc00::5", 1, why), 0);
    /* a name that resolves into an allowed range is allowed by the range */
    CHECK_INT(check(allow, 4, deny, 1, "db.internal", "10.0.0.7", 5432, why), 1);
}

/* Names are looked up only for host rules: a lookup of a name the guest
 * makes up carries what it holds to whoever serves its DNS, and with only
 * address rules that would be anyone. */
TEST_CASE(names_are_looked_up_only_for_host_rules)
{
    static const char *const addresses[] = {"203.0.113.7:443", "10.0.0.0/8"};
    static const char *const hosts[] = {"api.example.com:443", "*.example.org"};
    eryx__policy p;
    char err[300];
    REQUIRE(eryx__policy_init(&p, addresses, 2, NULL, 0, NULL, 0, err, sizeof err) == NULL);
    CHECK_INT(eryx__policy_name_possible(&p, "secret-data.attacker.example", 443), 0);
    CHECK_INT(eryx__policy_name_possible(&p, "db.internal", 5432), 0);
    eryx__policy_clear(&p);
    REQUIRE(eryx__policy_init(&p, hosts, 2, NULL, 0, NULL, 0, err, sizeof err) == NULL);
    CHECK_INT(eryx__policy_name_possible(&p, "api.example.com", 443), 1);
    CHECK_INT(eryx__policy_name_possible(&p, "api.example.com", 80), 0);
    CHECK_INT(eryx__policy_name_possible(&p, "x.y.example.org", 80), 1);
    CHECK_INT(eryx__policy_name_possible(&p, "example.org", 80), 0);
    eryx__policy_clear(&p);
}

/* This machine's own addresses are as local as loopback: a service bound
 * to 0.0.0.0 answers there. Each interface address the machine has is
 * special, and needs a rule naming it. */
TEST_CASE(the_machines_own_addresses_are_special)
{
    struct ifaddrs *list;
    REQUIRE(getifaddrs(&list) == 0);
    int seen = 0;
    for (struct ifaddrs *i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        char text[INET_ADDRSTRLEN], why[400];
        inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, text,
                  sizeof text);
        eryx__addr a;
        REQUIRE(eryx__addr_parse(text, &a));
        CHECK(eryx__addr_own(&a));
        CHECK(eryx__addr_special(&a) != NULL);
        static const char *const any[] = {"*"};
        CHECK_INT(check(any, 1, NULL, 0, "rebound.example.com", text, 8080, why), 0);
        const char *const rule[] = {text};
        CHECK_INT(check(rule, 1, NULL, 0, NULL, text, 8080, why), 1);
        seen++;
    }
    freeifaddrs(list);
    CHECK(seen > 0); /* loopback at least */
    eryx__addr public;
    REQUIRE(eryx__addr_parse("93.184.216.34", &public));
    CHECK_INT(eryx__addr_own(&public), 0);
}

TEST_CASE(any_rule_still_refuses_special_addresses)
{
    static const char *const allow[] = {"*"};
    char why[400];
    CHECK_INT(check(allow, 1, NULL, 0, "example.com", "93.184.216.34", 443, why), 1);
    CHECK_INT(check(allow, 1, NULL, 0, NULL, "93.184.216.34", 443, why), 0);
    CHECK_INT(check(allow, 1, NULL, 0, "example.com", "192.168.0.1", 443, why), 0);
    CHECK_INT(check(allow, 1, NULL, 0, NULL, "169.254.169.254", 80, why), 0);
}

TEST_CASE(bad_rules_and_names)
{
    static const char *const bad[] = {"", "exa mple.com", "*", "a..b", "host:0", "host:65536",
                                      "10.0.0.0/33", "[::1", "[::1]x", "bücher.de", "*.",
                                      "fc00::/129", "host:http"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eryx__rule r;
        int rc = eryx__rule_parse(bad[i], &r);
        if (strcmp(bad[i], "*") == 0) {
            CHECK_INT(rc, 0); /* "*" is valid: every name */
            eryx__rule_clear(&r);
        } else {
            CHECK_INT(rc, -1);
        }
    }
    char out[300];
    CHECK_INT(eryx__host_normalise("API.Example.COM.", out, sizeof out), 0);
    CHECK_STR(out, "api.example.com");
    CHECK_INT(eryx__host_normalise("xn--bcher-kva.example", out, sizeof out), 0);
    CHECK_INT(eryx__host_normalise("b\xc3\xbc" "cher.example", out, sizeof out), -1);
    CHECK_INT(eryx__host_normalise("a..b", out, sizeof out), -1);
    CHECK_INT(eryx__host_normalise(".", out, sizeof out), -1);
    eryx__policy p;
    char err[300];
    static const char *const pins[] = {"api.example.com:443:127.0.0.1", "v6.test:80:[::1]"};
    REQUIRE(eryx__policy_init(&p, NULL, 0, NULL, 0, pins, 2, err, sizeof err) == NULL);
    CHECK(eryx__policy_pin(&p, "api.example.com", 443) != NULL);
    CHECK(eryx__policy_pin(&p, "api.example.com", 80) == NULL);
    CHECK(eryx__policy_pin(&p, "v6.test", 80) != NULL);
    eryx__policy_clear(&p);
    static const char *const bad_pins[] = {"api.example.com:443"};
    CHECK(eryx__policy_init(&p, NULL, 0, NULL, 0, bad_pins, 1, err, sizeof err) != NULL);
    CHECK_CONTAINS(err, "HOST:PORT:ADDRESS");
}

/* Rules that parsed as host names no name could ever match ("127.1",
 * "2130706433": the policy takes dotted quads only), an option taken for
 * the value of --allow-net ("-c"), and "::1:80", taken as that address
 * when its writer may have meant [::1]:80: refused, each with why. */
TEST_CASE(rules_that_could_never_match_are_refused)
{
    static const char *const bad[] = {"127.1", "2130706433", "127.1:80", "1.2.3.4.5",
                                      "example.123", "-c", "--allow-net", "a.-b.example",
                                      "*.-x.example", "::1:80", "2001:db8::1:443"};
    static const char *const good[] = {"1.2.3.4", "1.2.3.4:80", "::1", "[::1]:80",
                                       "[::1:80]", "2001:db8::8080", "::ffff:1.2.3.4",
                                       "123.example", "1password.com", "a-b.example",
                                       "*.x1.example", "fe80::/10"};
    eryx__rule r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = eryx__rule_parse(bad[i], &r);
        if (rc == 0)
            eryx__rule_clear(&r);
        CHECK_INT(rc, -1);
    }
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int rc = eryx__rule_parse(good[i], &r);
        CHECK_INT(rc, 0);
        if (rc == 0)
            eryx__rule_clear(&r);
    }
    char out[300];
    CHECK_INT(eryx__host_normalise("-x.example", out, sizeof out), -1);
    CHECK_INT(eryx__host_normalise("10.0.0.256", out, sizeof out), -1);
    static const struct {
        const char *rule, *why;
    } hints[] = {{"127.1", "dotted quad"},
                 {"2130706433:443", "dotted quad"},
                 {"-c", "begins with '-'"},
                 {"::1:80", "[ADDRESS]:PORT"}};
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++) {
        eryx__policy p;
        char err[400];
        const char *allow[] = {hints[i].rule};
        CHECK(eryx__policy_init(&p, allow, 1, NULL, 0, NULL, 0, err, sizeof err) != NULL);
        CHECK_CONTAINS(err, hints[i].why);
    }
    /* A valid quad refused for its port is not told to be one. */
    CHECK_STR(eryx__rule_hint("1.2.3.4:0"), "");
}

TEST_CASE(secrets_placeholders_and_replacement)
{
    eryx__secret s;
    char err[300];
    static const char *const hosts[] = {"api.example.com"};
    REQUIRE(eryx__secret_init(&s, "API_KEY", "0123456789abcdefghijklmnopqrstuvwxyz", hosts, 1,
                              err, sizeof err) == 0);
    CHECK_INT((long)s.placeholder_len, 36);
    CHECK(strncmp(s.placeholder, "ERYX_SECRET_", 12) == 0);
    eryx__secret t;
    REQUIRE(eryx__secret_init(&t, "API_KEY", "0123456789abcdefghijklmnopqrstuvwxyz", hosts, 1,
                              err, sizeof err) == 0);
    CHECK(strcmp(s.placeholder, t.placeholder) != 0); /* different every time */
    CHECK(eryx__secret_allowed(&s, "api.example.com", NULL, 443));
    CHECK(!eryx__secret_allowed(&s, "evil.example.com", NULL, 443));
    CHECK(!eryx__secret_allowed(&s, NULL, NULL, 443));

    char msg[200];
    snprintf(msg, sizeof msg, "Authorization: Bearer %s\r\nX: %s\r\n", s.placeholder,
             s.placeholder);
    size_t n;
    uint8_t *r = eryx__replace_all((const uint8_t *)msg, strlen(msg), s.placeholder,
                                   s.placeholder_len, s.value, s.value_len, &n);
    REQUIRE(r != NULL && r != (uint8_t *)msg);
    CHECK_INT((long)n, (long)strlen(msg)); /* same length */
    CHECK(memmem(r, n, s.value, s.value_len) != NULL);
    CHECK(memmem(r, n, s.placeholder, s.placeholder_len) == NULL);
    free(r);
    static const uint8_t abc[] = "abc";
    CHECK(eryx__replace_all(abc, 3, "zz", 2, "y", 1, &n) == abc); /* nothing to replace */

    eryx__secret_clear(&t);
    CHECK_INT(eryx__secret_init(&t, "1BAD", "0123456789", hosts, 1, err, sizeof err), -1);
    CHECK_CONTAINS(err, "not an environment variable name");
    eryx__secret_clear(&s);
    eryx__secret_clear(&t);
}

TEST_MAIN()
