/*
 * The connection gate of `eryx serve` and `eryx mcp --http` (cli/listen.c):
 * limits in all and per client, where an IPv6 client is its /64, and room
 * made by shutting down the oldest connection that never proved itself.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "listen.h"

/* Admitted: a ticket. */
#define IN(g, addr) (cli_gate_enter((g), (addr), -1) >= 0)

TEST_CASE(per_client_and_total_limits)
{
    cli_gate g;
    cli_gate_init(&g, 5, 2);
    int t1 = cli_gate_enter(&g, "192.0.2.1", -1);
    CHECK(t1 >= 0);
    CHECK(IN(&g, "192.0.2.1"));
    CHECK(!IN(&g, "192.0.2.1")); /* its two */
    CHECK(IN(&g, "192.0.2.2"));  /* another IPv4 address */
    cli_gate_leave(&g, t1);
    CHECK(IN(&g, "192.0.2.1")); /* its place came back */
    CHECK(IN(&g, "192.0.2.3"));
    /* Five in all, none proven: the sixth takes the oldest one's place. */
    CHECK(IN(&g, "192.0.2.4"));
    CHECK_INT(g.total, 5);
    CHECK(IN(&g, "192.0.2.5"));
    CHECK_INT(g.total - g.evicting, 5);
    cli_gate_free(&g);
}

/* A subscriber usually holds a whole /64: one address each made a /64 a
 * connection table's worth of clients. */
TEST_CASE(an_ipv6_client_is_its_slash_64)
{
    cli_gate g;
    cli_gate_init(&g, 100, 2);
    int t = cli_gate_enter(&g, "2001:db8:1:2::1", -1);
    CHECK(t >= 0);
    CHECK(IN(&g, "2001:db8:1:2:aaaa:bbbb:cccc:dddd"));
    CHECK(!IN(&g, "2001:db8:1:2::99")); /* the same /64 */
    CHECK(IN(&g, "2001:db8:1:3::1"));   /* the next /64 */
    cli_gate_leave(&g, t);
    CHECK(IN(&g, "2001:db8:1:2::5"));
    /* IPv4-mapped addresses stay IPv4 clients, each its own. */
    CHECK(IN(&g, "::ffff:192.0.2.1"));
    CHECK(IN(&g, "::ffff:192.0.2.1"));
    CHECK(!IN(&g, "::ffff:192.0.2.1"));
    CHECK(IN(&g, "::ffff:192.0.2.2"));
    cli_gate_free(&g);
}

/* Many clients, each counted apart in the table of counts (a linear
 * array before: each connection cost a pass over every client present),
 * and an IPv4 address the same client whether written mapped or not. */
TEST_CASE(many_clients_counted_apart)
{
    enum { N = 20000 };
    cli_gate g;
    cli_gate_init(&g, N, 1);
    static int tickets[N];
    char addr[64];
    for (int i = 0; i < N; i++) {
        snprintf(addr, sizeof addr, "2001:db8:%x:%x::1", i >> 8, i & 0xff);
        tickets[i] = cli_gate_enter(&g, addr, -1);
        CHECK(tickets[i] >= 0);
        snprintf(addr, sizeof addr, "2001:db8:%x:%x::2", i >> 8, i & 0xff);
        CHECK(!IN(&g, addr)); /* its /64 holds its one */
    }
    CHECK_INT(g.live_clients, N);
    for (int i = 0; i < N; i += 2)
        cli_gate_leave(&g, tickets[i]);
    CHECK_INT(g.live_clients, N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(addr, sizeof addr, "2001:db8:%x:%x::3", i >> 8, i & 0xff);
        CHECK(IN(&g, addr) == (i % 2 == 0));
    }
    CHECK_INT(g.total, N);
    cli_gate_free(&g);

    cli_gate_init(&g, 10, 1);
    CHECK(IN(&g, "192.0.2.7"));
    CHECK(!IN(&g, "::ffff:192.0.2.7"));
    CHECK(IN(&g, "?"));
    CHECK(!IN(&g, "?"));
    cli_gate_free(&g);
}

/* The longest chain of the table of counts. */
static uint32_t longest_chain(const cli_gate *g)
{
    uint32_t most = 0;
    for (uint32_t b = 0; b < g->n_buckets; b++) {
        uint32_t n = 0;
        for (uint32_t i = g->buckets[b]; i != UINT32_MAX; i = g->clients[i].next)
            n++;
        most = n > most ? n : most;
    }
    return most;
}

/* The /64s of one /48 (what one site is commonly given: 65,536 clients
 * to one holder) are spread over the table whatever its seed: the hash
 * took the bucket from the low bits of a product, which only the address's
 * first bytes reach, so all of them shared one chain and each connection
 * walked every client of the /48. */
TEST_CASE(the_slash_64s_of_one_holder_are_spread)
{
    enum { N = 4096 };
    for (int round = 0; round < 8; round++) {
        cli_gate g;
        cli_gate_init(&g, N, 1);
        char addr[64];
        for (int i = 0; i < N; i++) {
            snprintf(addr, sizeof addr, "2001:db8:7:%x::1", i);
            CHECK(IN(&g, addr));
        }
        CHECK_INT(g.live_clients, N);
        CHECK(longest_chain(&g) < 32);
        cli_gate_free(&g);
    }
}

/* Whether the far end of a socket pair has seen its end shut down. */
static int was_shut(int far)
{
    struct pollfd p = {far, POLLIN, 0};
    char c;
    return poll(&p, 1, 0) == 1 && recv(far, &c, 1, MSG_DONTWAIT) == 0;
}

/* Connections that never send a good request, from as many addresses as
 * the table holds, kept every client out for the head's 10 s, again and
 * again. Now a new one shuts down the oldest of them; proven connections
 * are never shut down, and when all are proven the new one is refused. */
TEST_CASE(the_oldest_unproven_connection_makes_room)
{
    enum { MAX = 4 };
    cli_gate g;
    cli_gate_init(&g, MAX, 2);
    int fds[MAX + 2][2], tickets[MAX + 2];
    char addr[32];
    for (int i = 0; i < MAX + 2; i++)
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]) == 0);
    for (int i = 0; i < MAX; i++) {
        snprintf(addr, sizeof addr, "198.51.100.%d", i + 1);
        tickets[i] = cli_gate_enter(&g, addr, fds[i][0]);
        CHECK(tickets[i] >= 0);
    }
    cli_gate_proven(&g, tickets[0]); /* the oldest is a real client */
    /* Full: the next one shuts down the oldest unproven (the second). */
    tickets[MAX] = cli_gate_enter(&g, "203.0.113.9", fds[MAX][0]);
    CHECK(tickets[MAX] >= 0);
    CHECK(!was_shut(fds[0][1]));
    CHECK(was_shut(fds[1][1]));
    CHECK(!was_shut(fds[2][1]));
    /* Its thread leaves; the table is full again, and the next one goes. */
    cli_gate_leave(&g, tickets[1]);
    CHECK_INT(g.total, MAX);
    CHECK_INT(g.evicting, 0);
    tickets[MAX + 1] = cli_gate_enter(&g, "203.0.113.10", fds[MAX + 1][0]);
    CHECK(tickets[MAX + 1] >= 0);
    CHECK(was_shut(fds[2][1]));
    cli_gate_leave(&g, tickets[2]);
    /* All proven: a new connection is refused, and none is shut down. */
    for (int i = 3; i < MAX + 2; i++)
        cli_gate_proven(&g, tickets[i]);
    CHECK(!IN(&g, "203.0.113.11"));
    CHECK(!was_shut(fds[0][1]) && !was_shut(fds[3][1]));
    CHECK(!was_shut(fds[MAX][1]) && !was_shut(fds[MAX + 1][1]));
    /* Tickets are reused, and what they leave counts right. */
    cli_gate_leave(&g, tickets[3]);
    int t = cli_gate_enter(&g, "203.0.113.11", -1);
    CHECK(t == tickets[3] || t == tickets[2] || t == tickets[1]);
    cli_gate_leave(&g, t);
    cli_gate_leave(&g, tickets[0]);
    cli_gate_leave(&g, tickets[MAX]);
    cli_gate_leave(&g, tickets[MAX + 1]);
    CHECK_INT(g.total, 0);
    CHECK_INT(g.live_clients, 0);
    cli_gate_leave(&g, tickets[MAX]); /* twice: nothing */
    CHECK_INT(g.total, 0);
    for (int i = 0; i < MAX + 2; i++) {
        close(fds[i][0]);
        close(fds[i][1]);
    }
    cli_gate_free(&g);
}

/* Evicted connections slow to leave are bounded too: the table never
 * holds more than twice its limit. */
TEST_CASE(evictions_in_flight_are_bounded)
{
    cli_gate g;
    cli_gate_init(&g, 3, 100);
    int admitted = 0;
    for (int i = 0; i < 20; i++)
        admitted += IN(&g, "192.0.2.7");
    CHECK_INT(admitted, 6);
    CHECK_INT(g.total, 6);
    CHECK_INT(g.evicting, 3);
    cli_gate_free(&g);
}

TEST_MAIN()
