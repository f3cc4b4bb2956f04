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
#include <sys/socket.h>
#include <unistd.h>

/* Splits HOST:PORT ([v6]:PORT too) into host and port. */
static int split_hostport(const char *spec, char *host, size_t cap, char *port, size_t pcap)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || !colon[1] || strlen(colon + 1) >= pcap)
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
        fprintf(stderr, "%s: want HOST:PORT, not '%s'\n", who, spec);
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
                    .free_head = UINT32_MAX, .oldest = UINT32_MAX, .newest = UINT32_MAX};
    pthread_mutex_init(&g->lock, NULL);
}

/* The client an address counts as: itself, or for IPv6 its /64, which
 * one subscriber usually holds whole (one address each, a /64 was a whole
 * connection table's worth of clients). */
static const char *gate_key(const char *addr, char *key, size_t size)
{
    struct in6_addr a;
    if (inet_pton(AF_INET6, addr, &a) != 1 || IN6_IS_ADDR_V4MAPPED(&a))
        return addr;
    memset(a.s6_addr + 8, 0, 8);
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &a, text, sizeof text);
    snprintf(key, size, "%s/64", text);
    return key;
}

/* The count of client addr, made if new (NULL without memory). */
static struct cli_gate_addr *addr_count(cli_gate *g, const char *addr)
{
    for (uint32_t i = 0; i < g->n_addrs; i++)
        if (strcmp(g->addrs[i].addr, addr) == 0)
            return &g->addrs[i];
    struct cli_gate_addr *p = realloc(g->addrs, (g->n_addrs + 1) * sizeof *p);
    if (!p)
        return NULL;
    g->addrs = p;
    p += g->n_addrs++;
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    p->n = 0;
    return p;
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
    char key[64];
    const char *addr = gate_key(peer, key, sizeof key);
    pthread_mutex_lock(&g->lock);
    int64_t t = -1;
    struct cli_gate_addr *a = addr_count(g, addr);
    int room = a && a->n < g->max_per_addr &&
               (g->free_head != UINT32_MAX || g->n_conns < 2 * (uint64_t)g->max_total);
    if (room && g->total - g->evicting >= g->max_total)
        room = evict_oldest_unproven(g);
    if (room)
        t = conn_slot(g);
    if (t >= 0) {
        struct cli_gate_conn *c = &g->conns[t];
        *c = (struct cli_gate_conn){.fd = fd, .used = 1};
        snprintf(c->key, sizeof c->key, "%s", addr);
        queue_push(g, (uint32_t)t);
        a->n++;
        g->total++;
    } else if (a && a->n == 0) {
        *a = g->addrs[--g->n_addrs]; /* made for nothing */
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
        for (uint32_t i = 0; i < g->n_addrs; i++) {
            if (strcmp(g->addrs[i].addr, c->key) != 0)
                continue;
            if (--g->addrs[i].n == 0)
                g->addrs[i] = g->addrs[--g->n_addrs];
            break;
        }
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
    free(g->addrs);
    free(g->conns);
    g->addrs = NULL;
    g->conns = NULL;
    g->n_addrs = g->total = g->n_conns = g->cap_conns = 0;
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
