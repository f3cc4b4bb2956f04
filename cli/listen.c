/*
 * Listening sockets and secret files for the command's servers (listen.h).
 */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Whether s is a port number, 0 to 65535 in decimal digits: getaddrinfo
 * takes 99999 and binds 99999 % 65536 (another port than the one asked
 * for, and 65536 the random port 0). */
static int is_port(const char *s)
{
    unsigned long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || p - s >= 5)
            return 0;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    return *s && v <= 65535;
}

/* Splits HOST:PORT ([v6]:PORT too) into host and port. */
static int split_hostport(const char *spec, char *host, size_t cap, char *port, size_t pcap)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || !is_port(colon + 1) || strlen(colon + 1) >= pcap)
        return -1;
    const char *h = spec;
    size_t n = (size_t)(colon - spec);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= cap)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

int cli_listen(const char *who, const char *spec, int *loopback)
{
    char host[256], port[16];
    if (split_hostport(spec, host, sizeof host, port, sizeof port) < 0) {
        fprintf(stderr, "%s: want HOST:PORT (a port of 0 to 65535), not '%s'\n", who, spec);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai;
    int e = getaddrinfo(host, port, &hints, &ai);
    if (e) {
        fprintf(stderr, "%s: %s: %s\n", who, spec, gai_strerror(e));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
        fprintf(stderr, "%s: cannot listen on %s: %s\n", who, spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    if (loopback) {
        if (ai->ai_family == AF_INET)
            *loopback = (ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) >> 24) == 127;
        else
            *loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
    }
    freeaddrinfo(ai);
    return fd;
}

unsigned cli_listen_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    return ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Reads a secret file's first line (trailing newline and spaces dropped). */
int cli_read_secret(const char *who, const char *path, char *out, size_t cap, size_t *len,
                    const char *what)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot read the %s file %s: %s\n", who, what, path, strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, cap - 1, f);
    int too_long = n == cap - 1 && fgetc(f) != EOF;
    fclose(f);
    out[n] = '\0';
    n = strcspn(out, "\r\n");
    while (n && (out[n - 1] == ' ' || out[n - 1] == '\t'))
        n--;
    out[n] = '\0';
    if (too_long || n < 16) {
        fprintf(stderr, "%s: the %s in %s must be 16 to %zu characters on its first line\n", who,
                what, path, cap - 2);
        return -1;
    }
    *len = n;
    return 0;
}

void cli_gate_init(cli_gate *g, uint32_t max_total, uint32_t max_per_addr)
{
    *g = (cli_gate){.max_total = max_total, .max_per_addr = max_per_addr,
                    .free_head = UINT32_MAX, .oldest = UINT32_MAX, .newest = UINT32_MAX,
                    .free_client = UINT32_MAX};
    if (getrandom(g->seed, sizeof g->seed, 0) != (ssize_t)sizeof g->seed) {
        g->seed[0] = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15u; /* not secret, still spread */
        g->seed[1] = (uint64_t)getpid() * 0xc2b2ae3d27d4eb4fu;
    }
    g->seed[0] |= 1;
    g->seed[1] |= 1;
    pthread_mutex_init(&g->lock, NULL);
}

/* The client an address counts as, in 16 bytes: an IPv4 address (plain
 * or IPv4-mapped) is itself, an IPv6 address its /64, which one subscriber
 * usually holds whole (one address each, a /64 was a whole connection
 * table's worth of clients); what is neither ("?") is one client. */
static void client_of(const char *addr, uint8_t ip[16])
{
    struct in_addr v4;
    struct in6_addr v6;
    memset(ip, 0, 16);
    if (inet_pton(AF_INET, addr, &v4) == 1) {
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, &v4, 4);
    } else if (inet_pton(AF_INET6, addr, &v6) == 1) {
        memcpy(ip, v6.s6_addr, IN6_IS_ADDR_V4MAPPED(&v6) ? 16 : 8);
    } else
        memset(ip, 0xff, 16);
}

/* Multiply-shift: the bucket is the top bits of the product, which every
 * bit of the address reaches, so that two clients share one with a
 * chance of about 2 in n_buckets whatever the addresses. The low bits of
 * a product depend only on the low bits of what was multiplied (the
 * address's first bytes): taken from there, every /64 of one /48 had one
 * chain, whatever the seed. */
static uint32_t bucket_of(const cli_gate *g, const uint8_t ip[16])
{
    uint64_t a, b;
    memcpy(&a, ip, 8);
    memcpy(&b, ip + 8, 8);
    uint64_t h = a * g->seed[0] + b * g->seed[1];
    return (uint32_t)(h >> g->bucket_shift);
}

/* Twice the buckets (64 at first), the live clients chained again: a chain
 * holds one client on average. 0 without memory. */
static int grow_buckets(cli_gate *g)
{
    uint32_t n = g->n_buckets ? 2 * g->n_buckets : 64;
    uint32_t *b = malloc(n * sizeof *b);
    if (!b)
        return 0;
    free(g->buckets);
    g->buckets = b;
    g->n_buckets = n;
    g->bucket_shift = 64;
    for (uint32_t k = n; k > 1; k >>= 1)
        g->bucket_shift--;
    for (uint32_t i = 0; i < n; i++)
        b[i] = UINT32_MAX;
    for (uint32_t i = 0; i < g->n_clients; i++) {
        struct cli_gate_client *c = &g->clients[i];
        if (c->n == 0)
            continue;
        uint32_t k = bucket_of(g, c->ip);
        c->next = b[k];
        b[k] = i;
    }
    return 1;
}

/* A free client entry (its n 0, in no chain), or UINT32_MAX. */
static uint32_t client_slot(cli_gate *g)
{
    if (g->free_client != UINT32_MAX) {
        uint32_t i = g->free_client;
        g->free_client = g->clients[i].next;
        return i;
    }
    if (g->n_clients == g->cap_clients) {
        uint32_t cap = g->cap_clients ? 2 * g->cap_clients : 16;
        struct cli_gate_client *p = realloc(g->clients, cap * sizeof *p);
        if (!p)
            return UINT32_MAX;
        g->clients = p;
        g->cap_clients = cap;
    }
    return g->n_clients++;
}

/* The entry of client ip, made (with n 0, chained) if new; UINT32_MAX
 * without memory. */
static uint32_t client_find(cli_gate *g, const uint8_t ip[16])
{
    if (g->live_clients >= g->n_buckets && !grow_buckets(g) && g->n_buckets == 0)
        return UINT32_MAX;
    uint32_t k = bucket_of(g, ip);
    for (uint32_t i = g->buckets[k]; i != UINT32_MAX; i = g->clients[i].next)
        if (memcmp(g->clients[i].ip, ip, 16) == 0)
            return i;
    uint32_t i = client_slot(g);
    if (i == UINT32_MAX)
        return i;
    struct cli_gate_client *c = &g->clients[i];
    memcpy(c->ip, ip, 16);
    c->n = 0;
    c->next = g->buckets[k];
    g->buckets[k] = i;
    g->live_clients++;
    return i;
}

/* Client i lost a connection: unchained and freed when it has none. */
static void client_release(cli_gate *g, uint32_t i)
{
    struct cli_gate_client *c = &g->clients[i];
    if (c->n > 0 && --c->n > 0)
        return;
    uint32_t *link = &g->buckets[bucket_of(g, c->ip)];
    while (*link != i)
        link = &g->clients[*link].next;
    *link = c->next;
    c->next = g->free_client;
    g->free_client = i;
    g->live_clients--;
}

/* A free entry for a ticket, or -1. There are never more than twice
 * max_total: as many live as the limit, and as many evicted on their way
 * out (each eviction made room for one). */
static int64_t conn_slot(cli_gate *g)
{
    if (g->free_head != UINT32_MAX) {
        uint32_t t = g->free_head;
        g->free_head = g->conns[t].next_free;
        return t;
    }
    if (g->n_conns == g->cap_conns) {
        uint64_t most = 2 * (uint64_t)g->max_total;
        uint64_t cap = g->cap_conns ? 2 * (uint64_t)g->cap_conns : 16;
        if (cap > most)
            cap = most;
        struct cli_gate_conn *p = cap > g->cap_conns ? realloc(g->conns, cap * sizeof *p) : NULL;
        if (!p)
            return -1;
        g->conns = p;
        g->cap_conns = (uint32_t)cap;
    }
    return g->n_conns++;
}

/* The unproven queue: a connection joins it when admitted and leaves it
 * when proven, evicted or gone, so that the oldest is found at once
 * however many the table holds. */
static void queue_push(cli_gate *g, uint32_t t)
{
    g->conns[t].older = g->newest;
    g->conns[t].newer = UINT32_MAX;
    if (g->newest != UINT32_MAX)
        g->conns[g->newest].newer = t;
    else
        g->oldest = t;
    g->newest = t;
}

static void queue_unlink(cli_gate *g, uint32_t t)
{
    struct cli_gate_conn *c = &g->conns[t];
    if (!c->used || c->proven || c->evicted)
        return; /* not in it */
    if (c->older != UINT32_MAX)
        g->conns[c->older].newer = c->newer;
    else
        g->oldest = c->newer;
    if (c->newer != UINT32_MAX)
        g->conns[c->newer].older = c->older;
    else
        g->newest = c->older;
}

/* Shuts down the oldest connection not yet proven; 0 if there is none.
 * Its thread sees the end of its input and leaves. */
static int evict_oldest_unproven(cli_gate *g)
{
    uint32_t t = g->oldest;
    if (t == UINT32_MAX)
        return 0;
    queue_unlink(g, t);
    struct cli_gate_conn *c = &g->conns[t];
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR);
    c->evicted = 1;
    g->evicting++;
    return 1;
}

int cli_gate_enter(cli_gate *g, const char *peer, int fd)
{
    uint8_t ip[16];
    client_of(peer, ip);
    pthread_mutex_lock(&g->lock);
    int64_t t = -1;
    uint32_t a = client_find(g, ip);
    int room = a != UINT32_MAX && g->clients[a].n < g->max_per_addr &&
               (g->free_head != UINT32_MAX || g->n_conns < 2 * (uint64_t)g->max_total);
    if (room && g->total - g->evicting >= g->max_total)
        room = evict_oldest_unproven(g);
    if (room)
        t = conn_slot(g);
    if (t >= 0) {
        g->conns[t] = (struct cli_gate_conn){.fd = fd, .used = 1, .client = a};
        queue_push(g, (uint32_t)t);
        g->clients[a].n++;
        g->total++;
    } else if (a != UINT32_MAX && g->clients[a].n == 0) {
        client_release(g, a); /* made for nothing */
    }
    pthread_mutex_unlock(&g->lock);
    return (int)t;
}

void cli_gate_proven(cli_gate *g, int ticket)
{
    if (ticket < 0)
        return; /* no gate's (eryx_mcp_http_serve_fd) */
    pthread_mutex_lock(&g->lock);
    if ((uint32_t)ticket < g->n_conns && g->conns[ticket].used) {
        queue_unlink(g, (uint32_t)ticket);
        g->conns[ticket].proven = 1;
    }
    pthread_mutex_unlock(&g->lock);
}

void cli_gate_leave(cli_gate *g, int ticket)
{
    if (ticket < 0)
        return;
    pthread_mutex_lock(&g->lock);
    struct cli_gate_conn *c = (uint32_t)ticket < g->n_conns ? &g->conns[ticket] : NULL;
    if (c && c->used) {
        queue_unlink(g, (uint32_t)ticket);
        client_release(g, c->client);
        g->total--;
        if (c->evicted)
            g->evicting--;
        c->used = 0;
        c->next_free = g->free_head;
        g->free_head = (uint32_t)ticket;
    }
    pthread_mutex_unlock(&g->lock);
}

void cli_gate_free(cli_gate *g)
{
    free(g->clients);
    free(g->buckets);
    free(g->conns);
    g->clients = NULL;
    g->buckets = NULL;
    g->conns = NULL;
    g->n_clients = g->cap_clients = g->live_clients = g->n_buckets = 0;
    g->total = g->n_conns = g->cap_conns = 0;
    pthread_mutex_destroy(&g->lock);
}

void cli_peer_name(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)cap);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)cap);
    else
        snprintf(out, cap, "?");
}
