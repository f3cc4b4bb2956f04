/*
 * What the command's servers share: a listening socket from HOST:PORT, a
 * secret read from a file, and the count of their connections. `eryx
 * serve` (serve.c) and `eryx mcp --http` (mcp_http.c) use them; who ("eryx
 * serve") begins their messages.
 */
#ifndef ERYX_CLI_LISTEN_H
#define ERYX_CLI_LISTEN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A socket listening on spec, HOST:PORT ([v6]:PORT too; PORT 0: any free
 * one), or -1 after a message on stderr. *loopback (may be NULL) tells
 * whether the address is a loopback one. */
int cli_listen(const char *who, const char *spec, int *loopback);

/* The port fd listens on, or 0. */
unsigned cli_listen_port(int fd);

/* The first line of the file at path (trailing newline and spaces
 * dropped) into out (cap bytes), its length in *len: a secret (what: "token")
 * of 16 to cap - 2 characters. -1 after a message on stderr. */
int cli_read_secret(const char *who, const char *path, char *out, size_t cap, size_t *len,
                    const char *what);

/* A server's open connections, counted in all and per client address (an
 * IPv6 address's /64: one subscriber's): a new one is admitted under both
 * limits, so that one client cannot take every connection. When the
 * table is full, the connection that has waited longest without proving
 * itself (sending a request the server took: cli_gate_proven) is shut
 * down to make room, so that connections which never send a good
 * request, from however many addresses, cannot keep clients that do out.
 * Thread-safe. */
typedef struct cli_gate {
    pthread_mutex_t lock;
    uint32_t max_total, max_per_addr;
    uint32_t total;        /* admitted and not yet left, evicted ones too */
    uint32_t evicting;     /* of those, shut down by the gate, not yet left */
    struct cli_gate_client {    /* a client's count: entries with n > 0 are in */
        uint8_t ip[16];         /* the chain of their bucket, the others in */
        uint32_t n, next;       /* the free list (next links both) */
    } *clients;
    uint32_t n_clients, cap_clients, free_client, live_clients;
    uint32_t *buckets, n_buckets;   /* heads of chains, a power of 2 */
    unsigned bucket_shift;          /* 64 - log2(n_buckets) */
    uint64_t seed[2];               /* the hash's, random: a client cannot
                                     * choose addresses that share a chain */
    struct cli_gate_conn {      /* a ticket's entry */
        int fd;                 /* -1: none (a test's) */
        uint8_t used, proven, evicted; /* free ones: next_free links them */
        uint32_t next_free;
        uint32_t older, newer;  /* the unproven queue's links */
        uint32_t client;        /* its entry in clients */
    } *conns;
    uint32_t n_conns, cap_conns;    /* entries made, room */
    uint32_t free_head;             /* the first free entry, or UINT32_MAX */
    uint32_t oldest, newest;        /* the unproven queue, in admission order:
                                     * used, not proven, not evicted */
} cli_gate;

void cli_gate_init(cli_gate *g, uint32_t max_total, uint32_t max_per_addr);

/* Admits a connection from addr on fd (which the gate may shut down, never
 * close): its ticket, for cli_gate_proven and cli_gate_leave; -1 if a
 * limit, or memory, refuses it. */
int cli_gate_enter(cli_gate *g, const char *addr, int fd);

/* The connection sent a request the server accepted (authorised): it is
 * no longer the first to go when the table is full. */
void cli_gate_proven(cli_gate *g, int ticket);

/* The connection ends: call before closing its fd. */
void cli_gate_leave(cli_gate *g, int ticket);
/* Frees what the gate holds (a server's gate lives as long as it does). */
void cli_gate_free(cli_gate *g);

/* The address of a peer (accept's) as text into out: IPv4 or IPv6, "?"
 * for other families. */
void cli_peer_name(const struct sockaddr_storage *ss, char *out, size_t cap);

#endif
