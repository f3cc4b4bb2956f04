/*
 * The connection gate of `eryx serve` and `eryx mcp --http` (cli/listen.c):
 * limits in all and per client, where an IPv6 client is its /64.
 */
#include "check.h"
#include "listen.h"

TEST_CASE(per_client_and_total_limits)
{
    cli_gate g;
    cli_gate_init(&g, 5, 2);
    CHECK_INT(cli_gate_enter(&g, "192.0.2.1"), 1);
    CHECK_INT(cli_gate_enter(&g, "192.0.2.1"), 1);
    CHECK_INT(cli_gate_enter(&g, "192.0.2.1"), 0); /* its two */
    CHECK_INT(cli_gate_enter(&g, "192.0.2.2"), 1); /* another IPv4 address */
    cli_gate_leave(&g, "192.0.2.1");
    CHECK_INT(cli_gate_enter(&g, "192.0.2.1"), 1); /* its place came back */
    CHECK_INT(cli_gate_enter(&g, "192.0.2.3"), 1);
    CHECK_INT(cli_gate_enter(&g, "192.0.2.4"), 1);
    CHECK_INT(cli_gate_enter(&g, "192.0.2.5"), 0); /* five in all */
    cli_gate_free(&g);
}

/* A subscriber usually holds a whole /64: one address each made a /64 a
 * connection table's worth of clients. */
TEST_CASE(an_ipv6_client_is_its_slash_64)
{
    cli_gate g;
    cli_gate_init(&g, 100, 2);
    CHECK_INT(cli_gate_enter(&g, "2001:db8:1:2::1"), 1);
    CHECK_INT(cli_gate_enter(&g, "2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 1);
    CHECK_INT(cli_gate_enter(&g, "2001:db8:1:2::99"), 0); /* the same /64 */
    CHECK_INT(cli_gate_enter(&g, "2001:db8:1:3::1"), 1);  /* the next /64 */
    cli_gate_leave(&g, "2001:db8:1:2::1");
    CHECK_INT(cli_gate_enter(&g, "2001:db8:1:2::5"), 1);
    /* IPv4-mapped addresses stay IPv4 clients, each its own. */
    CHECK_INT(cli_gate_enter(&g, "::ffff:192.0.2.1"), 1);
    CHECK_INT(cli_gate_enter(&g, "::ffff:192.0.2.1"), 1);
    CHECK_INT(cli_gate_enter(&g, "::ffff:192.0.2.1"), 0);
    CHECK_INT(cli_gate_enter(&g, "::ffff:192.0.2.2"), 1);
    cli_gate_free(&g);
}

TEST_MAIN()
