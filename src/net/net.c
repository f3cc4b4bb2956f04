/*
 * Connections made for the guest: operations, the poller thread, limits,
 * secrets on the wire (net.h). TLS is tls.c.
 */
#include "net/net.h"

#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "core/exec.h"
#include "net/base64.h"
#include "net/net_internal.h"

#define NS_PER_S 1000000000ull
#define DEFAULT_MAX_CONNECTIONS 10u
#define DEFAULT_CONNECT_TIMEOUT_NS (10 * NS_PER_S)
#define DEFAULT_IDLE_TIMEOUT_NS (30 * NS_PER_S)
#define DEFAULT_MAX_BYTES (1ull << 30)
/* One recv hands the guest at most this (base64 in JSON: 4/3 of it). */
#define MAX_RECV_CHUNK (1u << 20)
#define MAX_INBUF ERYX_NET_MAX_INBUF
#define MAX_OUTBUF ERYX_NET_MAX_OUTBUF
/* How long the tail held back on a connection that carries secrets
 * (scrub_in) waits for more bytes before it goes to the guest as it is. */
#define HOLD_NS (50ull * 1000 * 1000)
#define RESOLVE_CACHE 64

eryx__net_global eryx__net_g = {.mu = PTHREAD_MUTEX_INITIALIZER};
#define G eryx__net_g

/* ---- config ---------------------------------------------------------------- */

static void conf_unref(eryx__net_conf *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    eryx__policy_clear(&c->policy);
    for (size_t i = 0; i < c->n_secrets; i++)
        eryx__secret_clear(&c->secrets[i]);
    free(c->secrets);
    eryx__tls_conf_clear(c);
    free(c);
}

static uint64_t limit_or(uint64_t v, uint64_t def)
{
    if (v == 0)
        return def;
    return v == ERYX_NO_LIMIT ? UINT64_MAX : v;
}

static eryx__net *net_alloc(eryx__net_conf *conf)
{
    eryx__net *net = calloc(1, sizeof *net);
    if (!net)
        return NULL;
    net->conf = conf;
    atomic_fetch_add(&conf->refs, 1);
    net->refs = 1;
    /* Connection ids start at a random point: a socket object that
     * survived a fork or a load names no connection of the new sandbox. */
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (uint32_t)(uintptr_t)net;
    net->next_id = ((uint64_t)r << 20) + 1;
    return net;
}

int eryx__net_new(const eryx_net_config *given, const eryx_secret *secrets, size_t n_secrets,
                  eryx__net **out, char *err, size_t errsize)
{
    *out = NULL;
    eryx_net_config cfg;
    memset(&cfg, 0, sizeof cfg);
    size_t size = given->size ? given->size : sizeof cfg;
    if (size < sizeof(size_t) || size > sizeof cfg) {
        snprintf(err, errsize, "eryx_net_config.size is %zu: use sizeof(eryx_net_config)", size);
        return ERYX_INVALID;
    }
    memcpy(&cfg, given, size);
    if ((cfg.n_allow && !cfg.allow) || (cfg.n_deny && !cfg.deny) ||
        (cfg.n_resolve && !cfg.resolve) || (cfg.n_ca_files && !cfg.ca_files) ||
        (n_secrets && !secrets)) {
        snprintf(err, errsize, "misuse: eryx_net_config: a count is set but its array is NULL");
        return ERYX_MISUSE;
    }
    eryx__net_conf *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errsize, "out of memory");
        return ERYX_NOMEM;
    }
    atomic_init(&c->refs, 1);
    c->max_connections = cfg.max_connections ? cfg.max_connections : DEFAULT_MAX_CONNECTIONS;
    c->connect_timeout_ns = limit_or(cfg.connect_timeout_ns, DEFAULT_CONNECT_TIMEOUT_NS);
    c->idle_timeout_ns = limit_or(cfg.idle_timeout_ns, DEFAULT_IDLE_TIMEOUT_NS);
    c->max_sent = limit_or(cfg.max_bytes_sent, DEFAULT_MAX_BYTES);
    c->max_received = limit_or(cfg.max_bytes_received, DEFAULT_MAX_BYTES);
    int rc = ERYX_INVALID;
    if (eryx__policy_init(&c->policy, cfg.allow, cfg.n_allow, cfg.deny, cfg.n_deny, cfg.resolve,
                          cfg.n_resolve, err, errsize))
        goto fail;
    if (n_secrets && !(c->secrets = calloc(n_secrets, sizeof *c->secrets)))
        goto nomem;
    for (; c->n_secrets < n_secrets; c->n_secrets++) {
        eryx_secret s;
        memset(&s, 0, sizeof s);
        size_t ssize = secrets[0].size ? secrets[0].size : sizeof s;
        if (ssize < sizeof(size_t) || ssize > sizeof s) {
            snprintf(err, errsize, "eryx_secret.size is %zu: use sizeof(eryx_secret)", ssize);
            goto fail;
        }
        memcpy(&s, (const char *)secrets + c->n_secrets * ssize, ssize);
        if (s.n_hosts && !s.hosts) {
            snprintf(err, errsize, "misuse: eryx_secret %zu: n_hosts set, hosts NULL",
                     c->n_secrets);
            rc = ERYX_MISUSE;
            goto fail;
        }
        if (s.value && strlen(s.value) < 8) {
            snprintf(err, errsize, "secret %.100s: values shorter than 8 bytes are refused "
                     "(their scrubbing from responses would mangle ordinary data)",
                     s.name ? s.name : "(null)");
            goto fail;
        }
        /* Two of one name: the guest's $NAME holds one placeholder, and
         * the other's hosts were silently left out. */
        for (size_t j = 0; s.name && j < c->n_secrets; j++)
            if (strcmp(c->secrets[j].name, s.name) == 0) {
                snprintf(err, errsize, "secret %.100s is given twice: give it once, with all "
                         "its hosts", s.name);
                goto fail;
            }
        if (eryx__secret_init(&c->secrets[c->n_secrets], s.name, s.value, s.hosts, s.n_hosts,
                              err, errsize) < 0)
            goto fail;
    }
    if (eryx__tls_conf_init(c, &cfg, err, errsize) < 0)
        goto fail;
    eryx__net *net = net_alloc(c);
    conf_unref(c); /* the network's reference is the one left */
    if (!net) {
        snprintf(err, errsize, "out of memory");
        return ERYX_NOMEM;
    }
    *out = net;
    return ERYX_OK;
nomem:
    snprintf(err, errsize, "out of memory");
    rc = ERYX_NOMEM;
fail:
    conf_unref(c);
    return rc;
}

eryx__net *eryx__net_share(const eryx__net *parent)
{
    return net_alloc(parent->conf);
}

size_t eryx__net_secret_count(const eryx__net *net)
{
    return net ? net->conf->n_secrets : 0;
}

const char *eryx__net_secret_name(const eryx__net *net, size_t i)
{
    return net->conf->secrets[i].name;
}

const char *eryx__net_secret_placeholder(const eryx__net *net, size_t i)
{
    return net->conf->secrets[i].placeholder;
}

void eryx__net_run_begin(eryx__net *net)
{
    if (!net)
        return;
    pthread_mutex_lock(&G.mu);
    net->sent = net->received = 0;
    pthread_mutex_unlock(&G.mu);
}

/* ---- completions, delivered with no lock held ------------------------------ */

/* An operation's call, with the result to give it once G.mu is released. */
typedef struct done {
    eryx_call *call;
    json_t *value;              /* NULL: failure */
    char kind[24];
    char msg[400];
} done;

typedef struct done_list {
    done *d;
    size_t n, cap;
} done_list;

static void done_add(done_list *l, eryx_call *call, json_t *value, const char *kind,
                     const char *msg)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        done *bigger = realloc(l->d, cap * sizeof *bigger);
        if (!bigger) {
            /* Completed as a failure right away would take locks in the
             * wrong order; dropping the reference leaves the guest to its
             * timeout. Out of memory anyway. */
            json_decref(value);
            eryx__call_release(call);
            return;
        }
        l->d = bigger;
        l->cap = cap;
    }
    done *d = &l->d[l->n++];
    d->call = call;
    d->value = value;
    snprintf(d->kind, sizeof d->kind, "%s", kind ? kind : "");
    snprintf(d->msg, sizeof d->msg, "%s", msg ? msg : "");
}

static void done_deliver(done_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        done *d = &l->d[i];
        eryx__call_complete(d->call, d->value, d->kind, d->msg);
    }
    free(l->d);
    memset(l, 0, sizeof *l);
}

static void op_ok(done_list *l, eryx__op *op, json_t *value)
{
    if (op->call)
        done_add(l, op->call, value, NULL, NULL);
    else
        json_decref(value);
    op->call = NULL;
}

static void op_fail(done_list *l, eryx__op *op, int err, const char *msg)
{
    char kind[24];
    snprintf(kind, sizeof kind, ERYX__NET_KIND_PREFIX "%s", eryx__net_errname(err));
    if (op->call)
        done_add(l, op->call, NULL, kind, msg ? msg : strerror(err));
    op->call = NULL;
}

/* ---- connections ----------------------------------------------------------- */

static eryx__conn *conn_find(eryx__net *net, uint64_t id)
{
    for (eryx__conn *c = net->conns; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

/* Registers c in the global slot table (the poller's names for it). */
static int slot_take(eryx__conn *c)
{
    for (uint32_t i = 0; i < G.n_slots; i++)
        if (!G.slots[i]) {
            G.slots[i] = c;
            c->slot = i;
            return 0;
        }
    uint32_t n = G.n_slots ? G.n_slots * 2 : 64;
    eryx__conn **s = realloc(G.slots, n * sizeof *s);
    uint32_t *g = s ? realloc(G.gens, n * sizeof *g) : NULL;
    if (s)
        G.slots = s;
    if (!g)
        return -1;
    G.gens = g;
    for (uint32_t i = G.n_slots; i < n; i++) {
        G.slots[i] = NULL;
        G.gens[i] = 0;
    }
    c->slot = G.n_slots;
    G.slots[G.n_slots] = c;
    G.n_slots = n;
    return 0;
}

static void conn_close(eryx__conn *c, done_list *l, const char *why)
{
    eryx__net *net = c->net;
    op_fail(l, &c->rd, EBADF, why);
    op_fail(l, &c->wr, EBADF, why);
    if (c->fd >= 0) {
        epoll_ctl(G.epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    eryx__tls_conn_free(c);
    G.slots[c->slot] = NULL;
    G.gens[c->slot]++;
    for (eryx__conn **p = &net->conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    net->n_conns--;
    free(c->in);
    free(c->out);
    free(c->sent_tail);
    free(c);
}

/* The events c waits for. Writable: a connect, queued bytes, or a waiting
 * poll (POLLOUT is the queue empty and, for plain sockets whose
 * non-blocking sends go straight to the kernel, the kernel's room).
 * Readable: a read, the handshake, or a waiting poll. */
static uint32_t conn_events(const eryx__conn *c)
{
    uint32_t ev = 0;
    if (c->connecting || c->out_len > c->out_off || c->poll_out)
        ev |= EPOLLOUT;
    if ((c->rd.call || c->tls_handshaking || c->poll_in) && !c->eof && c->in_len < MAX_INBUF)
        ev |= EPOLLIN;
    return ev;
}

/* Re-arms the poller for what c waits on (one-shot: an event disarms),
 * unless the thread of a blocking run waits on it itself. */
static void conn_arm(eryx__conn *c)
{
    if (c->local_wait)
        return;
    uint32_t ev = conn_events(c);
    if (!ev)
        return;
    struct epoll_event e = {.events = ev | EPOLLONESHOT,
                            .data.u64 = ((uint64_t)G.gens[c->slot] << 32) | c->slot};
    if (!c->registered) {
        if (epoll_ctl(G.epfd, EPOLL_CTL_ADD, c->fd, &e) == 0)
            c->registered = 1;
    } else {
        epoll_ctl(G.epfd, EPOLL_CTL_MOD, c->fd, &e);
    }
}

/* ---- the poller thread ----------------------------------------------------- */

static void progress(eryx__conn *c, done_list *l);

static uint64_t hold_deadline(void)
{
    uint64_t d = 0;
    for (uint32_t i = 0; i < G.n_slots; i++) {
        eryx__conn *c = G.slots[i];
        if (c && c->hold_until && (!d || c->hold_until < d))
            d = c->hold_until;
    }
    return d;
}

static void *poller(void *arg)
{
    (void)arg;
    struct epoll_event ev[64];
    for (;;) {
        pthread_mutex_lock(&G.mu);
        uint64_t hold = hold_deadline();
        pthread_mutex_unlock(&G.mu);
        int timeout = -1;
        if (hold) {
            uint64_t now = eryx__now_ns();
            timeout = hold > now ? (int)((hold - now) / 1000000 + 1) : 0;
        }
        int n = epoll_wait(G.epfd, ev, 64, timeout);
        done_list l = {0};
        pthread_mutex_lock(&G.mu);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == UINT64_MAX) {
                uint64_t v;
                if (read(G.wakefd, &v, sizeof v) < 0) { /* nothing to do */
                }
                continue;
            }
            uint32_t slot = (uint32_t)ev[i].data.u64, gen = (uint32_t)(ev[i].data.u64 >> 32);
            if (slot < G.n_slots && G.slots[slot] && G.gens[slot] == gen)
                progress(G.slots[slot], &l);
        }
        uint64_t now = eryx__now_ns();
        for (uint32_t i = 0; i < G.n_slots; i++) {
            eryx__conn *c = G.slots[i];
            /* Released whether or not a read waits: the guest's select
             * and non-blocking recv see it too. */
            if (c && c->hold_until && c->hold_until <= now) {
                c->hold_until = 0;
                c->hold_release = 1;
                progress(c, &l);
            }
        }
        pthread_mutex_unlock(&G.mu);
        done_deliver(&l);
    }
    return NULL;
}

/* fork(2) (core/fork.c): G.mu is held across it. The poller thread is not
 * in the child, and its epoll instance is the parent's (shared: the
 * child's sockets would be polled by the parent). The child's next
 * connection starts its own, without the parent's sockets (shared too: a
 * connection of a sandbox made before the fork gets no events in the
 * child; its slot stays taken until it closes). The policy's cache of the
 * machine's addresses has a lock of its own (policy.c), held after G.mu. */
void eryx__net_fork(enum eryx__fork_phase phase)
{
    if (phase == ERYX__FORK_PREPARE) {
        pthread_mutex_lock(&G.mu);
        eryx__policy_fork_lock(1);
        return;
    }
    eryx__policy_fork_lock(0);
    if (phase == ERYX__FORK_CHILD && G.started) {
        close(G.epfd);
        close(G.wakefd);
        G.epfd = G.wakefd = -1;
        G.started = 0;
    }
    pthread_mutex_unlock(&G.mu);
}

/* G.mu held. */
static int poller_start(void)
{
    if (G.started)
        return 0;
    G.epfd = epoll_create1(EPOLL_CLOEXEC);
    G.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    if (G.epfd >= 0 && G.wakefd >= 0 && epoll_ctl(G.epfd, EPOLL_CTL_ADD, G.wakefd, &e) == 0
        && eryx__thread_start_detached(poller, NULL) == 0) {
        G.started = 1;
        return 0;
    }
    /* Nothing kept: the next connect tries again from scratch rather than
     * leaking a pair of descriptors per attempt. */
    if (G.epfd >= 0)
        close(G.epfd);
    if (G.wakefd >= 0)
        close(G.wakefd);
    G.epfd = G.wakefd = -1;
    return -1;
}

/* The poller recomputes its timer (a new held-back read). */
static void poller_wake(void)
{
    uint64_t one = 1;
    if (write(G.wakefd, &one, sizeof one) < 0) { /* full: it wakes anyway */
    }
}

/* ---- reading and writing --------------------------------------------------- */

/* Appends p[0..n) to a growing buffer; -1 when out of memory. */
static int buf_append(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0; /* an empty send: the buffer may not exist yet (memcpy to NULL) */
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 16384;
        while (c < *len + n)
            c *= 2;
        uint8_t *b = realloc(*buf, c);
        if (!b)
            return -1;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    return 0;
}

/* Plain bytes the guest sent, after the secrets (or TLS records): into
 * c->out. */
int eryx__conn_queue_plain(eryx__conn *c, const uint8_t *p, size_t n)
{
    if (c->out_off && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    return buf_append(&c->out, &c->out_len, &c->out_cap, p, n);
}

/* Writes what c->out holds; 0, or an errno. */
static int flush_out(eryx__conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : errno == EINTR ? 0 : errno;
        c->out_off += (size_t)w;
    }
    return 0;
}

/* After the guest shut its writing side: TLS's close_notify goes into the
 * queue once the handshake is over, and the FIN once everything queued is
 * on the wire, so that a peer reading to the end gets every byte, then the
 * end (a request-then-read-to-EOF protocol depends on it). */
static void send_fin(eryx__conn *c)
{
    if (!c->shut_wr || c->fin_sent || c->connecting || c->err)
        return;
    if (c->ssl && !c->tls_notified) {
        if (c->tls_handshaking)
            return;
        /* Best effort: a close_notify that cannot be queued leaves the FIN
         * to end the stream; a failed write is the next progress's error. */
        c->tls_notified = 1;
        (void)eryx__tls_close_notify(c);
        (void)flush_out(c);
    }
    if (c->out_off == c->out_len) {
        shutdown(c->fd, SHUT_WR);
        c->fin_sent = 1;
    }
}

/* Appends received plain bytes to c->in. */
int eryx__conn_take_plain(eryx__conn *c, const uint8_t *p, size_t n)
{
    return buf_append(&c->in, &c->in_len, &c->in_cap, p, n);
}

/* Reads what the socket has; 0, or an errno. Sets eof. */
static int fill_in(eryx__conn *c)
{
    uint8_t buf[65536];
    /* Under TLS the bytes go to OpenSSL, not to c->in, which does not grow
     * until they are decrypted: counted here, or a peer that sends as fast
     * as we read kept this loop (and G.mu) going, without a bound on
     * memory. */
    size_t fed = 0;
    while (!c->eof && c->in_len + fed < MAX_INBUF) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : errno;
        if (r == 0) {
            c->eof = 1;
            break;
        }
        int err = c->ssl ? eryx__tls_feed(c, buf, (size_t)r)
                         : eryx__conn_take_plain(c, buf, (size_t)r) < 0 ? ENOMEM : 0;
        if (err)
            return err;
        /* A tail held back (scrub_in) waits until bytes stop coming: a
         * deadline counted from the first hold cut a steadily streamed
         * echo inside a value, and gave the guest its two halves. */
        c->hold_release = 0;
        if (c->hold_until)
            c->hold_until = eryx__now_ns() + HOLD_NS;
        if (c->ssl)
            fed += (size_t)r;
    }
    if (c->ssl && c->eof)
        eryx__tls_feed(c, NULL, 0);
    return 0;
}

/* The name c's secrets are judged by: the one TLS verified, else the one
 * the address was resolved from, else none (the address alone). */
static const char *conn_host(const eryx__conn *c)
{
    return c->tls_name[0] ? c->tls_name : c->host[0] ? c->host : NULL;
}

/* Whether secret s may travel on c: substituted in what the guest sends,
 * scrubbed from what comes back. */
static int conn_carries(const eryx__conn *c, const eryx__secret *s)
{
    return eryx__secret_allowed(s, conn_host(c), &c->addr, c->port);
}

/* On a connection that carries secrets: replaces their values by their
 * placeholders in the bytes not yet final, and holds back a tail as long
 * as the longest value less one, whatever those bytes are, until more
 * arrive, the peer closes or HOLD_NS pass with none arriving (fill_in). A value split between two reads
 * is then still whole when scrubbed. The tail is held whether or not it
 * could begin a value: held only then, how much recv returned and when
 * told a guest whose own bytes a server echoed which of its guesses began
 * the value, and so the value a byte at a time. A connection that carries
 * no secret is left alone: there the guest reads back only what it sent,
 * unless the server had the value by other means, and scrubbing it would
 * make every echo server an oracle for the whole value. */
static int scrub_in(eryx__conn *c)
{
    const eryx__net_conf *conf = c->net->conf;
    size_t hold = 0;
    for (size_t i = 0; i < conf->n_secrets && c->in_clean < c->in_len; i++) {
        const eryx__secret *s = &conf->secrets[i];
        if (!conn_carries(c, s))
            continue;
        if (s->value_len - 1 > hold)
            hold = s->value_len - 1;
        size_t region = c->in_len - c->in_clean, nlen;
        uint8_t *r = eryx__replace_all(c->in + c->in_clean, region, s->value, s->value_len,
                                       s->placeholder, s->placeholder_len, &nlen);
        if (!r)
            return -1;
        if (r != c->in + c->in_clean) {
            c->in_len = c->in_clean;
            int rc = eryx__conn_take_plain(c, r, nlen);
            free(r);
            if (rc < 0)
                return -1;
        }
    }
    size_t region = c->in_len - c->in_clean;
    if (c->eof || c->hold_release || hold > region)
        hold = c->eof || c->hold_release ? 0 : region;
    c->in_clean = c->in_len - hold;
    if (!hold) {
        c->hold_until = 0;
    } else if (!c->hold_until) {
        c->hold_until = eryx__now_ns() + HOLD_NS;
        poller_wake();
    }
    return 0;
}

static json_t *b64_value(const uint8_t *p, size_t n)
{
    size_t len;
    char *o = eryx__b64_encode(p, n, &len);
    json_t *v = o ? json_stringn_nocheck(o, len) : NULL;
    free(o);
    return v;
}

/* The message of c's standing failure (c->err): its own, TLS's, or NULL
 * for strerror's. */
static const char *conn_errmsg(eryx__conn *c)
{
    return c->err_why ? c->err_why : eryx__tls_errmsg(c, c->err);
}

/* Gives the guest's pending read what it may have. */
static void deliver_read(eryx__conn *c, done_list *l)
{
    if (!c->rd.call || c->tls_handshaking)
        return;
    if (scrub_in(c) < 0) {
        op_fail(l, &c->rd, ENOMEM, "out of memory on the host");
        return;
    }
    size_t n = c->in_clean;
    if (n == 0 && !c->eof && !c->err)
        return; /* nothing yet, or all held back until scrub_in's deadline */
    c->hold_release = 0;
    if (n == 0 && c->err) {
        op_fail(l, &c->rd, c->err, conn_errmsg(c));
        return;
    }
    if (n > c->rd.max)
        n = c->rd.max;
    eryx__net *net = c->net;
    if (n > 0 && net->received < net->conf->max_received &&
        net->received + n > net->conf->max_received)
        n = (size_t)(net->conf->max_received - net->received); /* up to the limit exactly */
    if (n > 0 && net->received + n > net->conf->max_received) {
        char msg[200];
        snprintf(msg, sizeof msg, "network limit: this run may receive %llu bytes "
                 "(max_bytes_received)", (unsigned long long)net->conf->max_received);
        op_fail(l, &c->rd, EFBIG, msg);
        return;
    }
    net->received += n;
    json_t *v = b64_value(c->in, n);
    if (n > 0) /* c->in is NULL when the peer closed before sending a byte */
        memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
    c->in_clean -= n;
    if (!v)
        op_fail(l, &c->rd, ENOMEM, "out of memory on the host");
    else
        op_ok(l, &c->rd, v);
}

/* Forgets operations nobody waits for any more: timed out, or of an
 * execution that ended (a session's socket outlives its run).
 *
 * A plain send given up on leaves the stream as CPython's sendall does
 * when it times out: what reached the kernel went, the rest never goes
 * (c->out holds only that send's bytes: a send ends when they are all
 * out). Kept, they went out later behind the guest's back, and a guest
 * that sent again after the TimeoutError sent them twice. TLS records stay
 * queued: the peer would reject the stream with one missing, and OpenSSL
 * likewise keeps a record a timed-out SSL_write began.
 *
 * A plain send that carries a secret's value and is given up on part way
 * may have cut a value: its first bytes went, and a peer that echoes them
 * would hand the guest that part of the value as it is (scrubbing catches
 * whole values), a prefix of random length at each try. That connection
 * is finished instead: nothing more goes or is read, and what came and was
 * not read is dropped. */
static void drop_stale(eryx__conn *c)
{
    if (c->rd.call && !eryx__call_pending(c->rd.call))
        eryx__op_drop(&c->rd);
    if (c->wr.call && !eryx__call_pending(c->wr.call)) {
        if (c->wr.kind == ERYX__OP_SEND && !c->ssl) {
            if (c->out_secret && c->out_off > 0 && c->out_off < c->out_len) {
                c->err = ECONNABORTED;
                c->err_why = "the connection was closed: a send that carried a secret was "
                             "given up on part way (its timeout passed), and the peer may "
                             "have had part of the value";
                c->eof = 1;
                c->in_len = c->in_clean = 0;
                c->hold_until = 0;
                shutdown(c->fd, SHUT_RDWR);
            }
            c->out_off = c->out_len = 0;
        }
        eryx__op_drop(&c->wr);
    }
}

/* Whatever c can do now: finish connecting, the handshake, writing,
 * reading. G.mu held. May close c. */
static void progress_conn(eryx__conn *c, done_list *l)
{
    drop_stale(c);
    if (c->connecting) {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        if (poll(&p, 1, 0) == 1) {
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
            c->connecting = 0;
            if (soerr || !c->wr.call) {
                /* The guest never learnt the id: the connection goes. So
                 * does one whose connect timed out (dropped above): it
                 * would hold one of max_connections for good. */
                op_fail(l, &c->wr, soerr, NULL);
                conn_close(c, l, NULL);
                return;
            }
            op_ok(l, &c->wr, json_pack("{s:I}", "conn", (json_int_t)c->id));
        }
    }
    if (!c->connecting) {
        int err = flush_out(c);
        if (!err && c->ssl)
            err = eryx__tls_progress(c, l);
        if (!err)
            err = flush_out(c);
        if (!err && (c->rd.call || c->tls_handshaking))
            err = fill_in(c);
        if (!err && c->ssl)
            err = eryx__tls_progress(c, l);
        if (!err)
            err = flush_out(c);
        if (err) {
            /* Nothing more goes out: bytes left queued would keep the
             * socket armed for writing, and a socket in error is always
             * writable (the poller, or the run's thread, in a loop). */
            c->err = err;
            c->out_off = c->out_len = 0;
            op_fail(l, &c->wr, err, c->ssl ? eryx__tls_errmsg(c, err) : NULL);
            if (c->tls_handshaking && !c->tls_inband) {
                c->tls_handshaking = 0;
                op_fail(l, &c->rd, err, eryx__tls_errmsg(c, err));
            }
        }
        if (c->wr.call && c->wr.kind == ERYX__OP_SEND && c->out_off == c->out_len)
            op_ok(l, &c->wr, json_integer((json_int_t)c->wr.max));
        send_fin(c);
        deliver_read(c, l);
    }
    conn_arm(c);
}

/* ---- a poll that waits ------------------------------------------------------ */

/* The entries of list ([[conn, events], ...]) ready now, as the same
 * pairs with the events they have; NULL when out of memory. */
static json_t *poll_ready(eryx__net *net, json_t *list)
{
    json_t *ready = json_array(), *e;
    size_t i;
    json_array_foreach(list, i, e) {
        json_int_t id = json_integer_value(json_array_get(e, 0));
        eryx__conn *c = conn_find(net, (uint64_t)id);
        int want = (int)json_integer_value(json_array_get(e, 1)), got = 0;
        if (!c) {
            got = POLLNVAL;
        } else {
            struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLOUT};
            int scrub_failed = scrub_in(c) < 0; /* the recv then reports it */
            int kernel = !c->connecting && poll(&p, 1, 0) == 1 ? p.revents : 0;
            /* Bytes held back (scrub_in) are not readable until released:
             * a select that said so would have the guest spin on EAGAIN. */
            int readable = c->in_clean > 0 || scrub_failed || c->eof || c->err ||
                           (kernel & ~POLLOUT);
            /* Writable: nothing queued and, on a plain socket (whose
             * non-blocking send goes straight to the kernel: send_now),
             * room in the kernel's buffer. Said with the buffer full, a
             * select spun on EAGAIN (62,186 selects in 2 s). */
            int writable = !c->connecting && c->out_off == c->out_len &&
                           (c->ssl || c->err || (kernel & ~POLLIN));
            if ((want & POLLIN) && readable)
                got |= POLLIN;
            if ((want & POLLOUT) && writable)
                got |= POLLOUT;
        }
        if (got && ready && json_array_append_new(ready, json_pack("[I, i]", id, got)) < 0) {
            json_decref(ready);
            return NULL;
        }
    }
    return ready;
}

/* The waiting poll is over: its sockets stop being watched for it. */
static void poll_end(eryx__net *net)
{
    json_t *e;
    size_t i;
    json_array_foreach(net->poll_entries, i, e) {
        eryx__conn *c = conn_find(net, (uint64_t)json_integer_value(json_array_get(e, 0)));
        if (c)
            c->poll_in = c->poll_out = 0;
    }
    json_decref(net->poll_entries);
    net->poll_entries = NULL;
}

/* Completes the waiting poll if one of its entries is ready, or forgets it
 * if nobody waits for it any more (its timeout passed: the guest got
 * TimeoutError; or its run ended). G.mu held. */
static void poll_check(eryx__net *net, done_list *l)
{
    if (!net->poll.call)
        return;
    if (!eryx__call_pending(net->poll.call)) {
        poll_end(net);
        eryx__op_drop(&net->poll);
        return;
    }
    json_t *ready = poll_ready(net, net->poll_entries);
    if (!ready) {
        poll_end(net);
        op_fail(l, &net->poll, ENOMEM, "out of memory on the host");
    } else if (json_array_size(ready)) {
        poll_end(net);
        op_ok(l, &net->poll, ready);
    } else {
        json_decref(ready);
    }
}

/* Ends the waiting poll, if any, with err (the sandbox is reset or gone). */
static void poll_cancel(eryx__net *net, done_list *l, const char *why)
{
    if (!net->poll.call)
        return;
    poll_end(net);
    op_fail(l, &net->poll, EBADF, why);
}

/* progress_conn, then the waiting poll of c's network, which c's progress
 * may have made ready. */
static void progress(eryx__conn *c, done_list *l)
{
    eryx__net *net = c->net;
    progress_conn(c, l);
    poll_check(net, l);
}

/* ---- operations ------------------------------------------------------------ */

static uint64_t op_deadline(const eryx__net_conf *conf, json_t *args, uint64_t cap)
{
    json_t *t = json_object_get(args, "timeout");
    uint64_t ns = cap;
    /* A timeout of 0 (a non-blocking socket) is answered at once by the
     * operation itself (EAGAIN): its call keeps the cap as deadline. */
    if (json_is_number(t) && json_number_value(t) > 0) {
        /* Compared in nanoseconds: under an unlimited cap, seconds just
         * below cap / 1e9 could round to 2^64 nanoseconds, which no
         * uint64_t holds. */
        double given = json_number_value(t) * 1e9;
        if (given < (double)cap)
            ns = (uint64_t)given;
    }
    (void)conf;
    /* A deadline past the clock's range is none (it wrapped to the past:
     * the call timed out at once). */
    uint64_t now = eryx__now_ns();
    return ns >= UINT64_MAX - now ? 0 : now + ns + 1;
}

static eryx__conn *conn_of(eryx__net *net, json_t *args)
{
    json_t *id = json_object_get(args, "conn");
    return json_is_integer(id) ? conn_find(net, (uint64_t)json_integer_value(id)) : NULL;
}

static void resolve_remember(eryx__net *net, const eryx__addr *a, uint16_t port,
                             const char *name)
{
    eryx__resolved *r = &net->resolved[net->n_resolved++ % RESOLVE_CACHE_N];
    r->addr = *a;
    r->port = port;
    snprintf(r->name, sizeof r->name, "%s", name);
}

/* The name this sandbox last resolved to a:port, if any: a connection to
 * the address is a connection to that name (for host rules, secrets and
 * TLS names). */
static const char *resolved_name(eryx__net *net, const eryx__addr *a, uint16_t port)
{
    size_t n = net->n_resolved < RESOLVE_CACHE_N ? net->n_resolved : RESOLVE_CACHE_N;
    for (size_t k = 0; k < n; k++) { /* newest first */
        eryx__resolved *r = &net->resolved[(net->n_resolved - 1 - k) % RESOLVE_CACHE_N];
        if (r->port == port && memcmp(&r->addr, a, sizeof *a) == 0)
            return r->name;
    }
    return NULL;
}

static json_t *addr_entry(const eryx__addr *a)
{
    char text[64];
    eryx__addr_format(a, text, sizeof text);
    return json_pack("{s:i, s:s}", "family", eryx__addr_is_v4(a) ? 4 : 6, "addr", text);
}

/* A name the guest gave: its normal form, or -1 with the reason. */
static int guest_name(const char *host, char *name, size_t size, char *why, size_t whysize)
{
    if (eryx__host_normalise(host, name, size) < 0) {
        snprintf(why, whysize, "\"%.100s\" is not a host name (names must be ASCII: "
                 "encode international names with IDNA)", host);
        return -1;
    }
    return 0;
}

/* A lookup that must ask DNS runs on a thread of its own. */
typedef struct lookup {
    eryx__net *net;
    eryx_call *call;
    char name[256];
    uint16_t port;
} lookup;

static void finish_lookup(lookup *k, struct addrinfo *res, int gai)
{
    done_list l = {0};
    eryx__op op = {.call = k->call};
    pthread_mutex_lock(&G.mu);
    eryx__net *net = k->net;
    net->n_lookups--;
    if (net->dead) {
        op_fail(&l, &op, ECANCELED, "the sandbox is gone");
    } else if (gai) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s: %s", k->name, gai_strerror(gai));
        op_fail(&l, &op, EAI_NONAME_ERRNO, msg);
    } else {
        json_t *list = json_array();
        char why[400] = "";
        for (struct addrinfo *ai = res; ai && list; ai = ai->ai_next) {
            eryx__addr a;
            if (!eryx__addr_from_sockaddr(ai->ai_addr, &a))
                continue;
            char w[400];
            if (!eryx__policy_check(&net->conf->policy, k->name, &a, k->port, w, sizeof w)) {
                if (!why[0])
                    snprintf(why, sizeof why, "%s", w);
                continue;
            }
            resolve_remember(net, &a, k->port, k->name);
            json_array_append_new(list, addr_entry(&a));
        }
        if (list && json_array_size(list) == 0) {
            json_decref(list);
            op_fail(&l, &op, EACCES, why[0] ? why : "no address");
        } else if (!list) {
            op_fail(&l, &op, ENOMEM, NULL);
        } else {
            op_ok(&l, &op, list);
        }
    }
    eryx__net_unref_locked(net);
    pthread_mutex_unlock(&G.mu);
    done_deliver(&l);
}

static void *lookup_thread(void *arg)
{
    lookup *k = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(k->name, NULL, &hints, &res);
    finish_lookup(k, res, gai);
    if (res)
        freeaddrinfo(res);
    free(k);
    return NULL;
}

static void op_resolve(eryx__net *net, eryx__op *op, json_t *args, done_list *l)
{
    const char *host = json_string_value(json_object_get(args, "host"));
    json_int_t port = json_integer_value(json_object_get(args, "port"));
    char name[256], why[400];
    eryx__addr a;
    if (!host || port < 0 || port > 65535) {
        op_fail(l, op, EINVAL, "resolve: host and port are needed");
        return;
    }
    if (eryx__addr_parse(host, &a)) { /* a literal in any spelling */
        if (!eryx__policy_check(&net->conf->policy, NULL, &a, (uint16_t)port, why, sizeof why))
            op_fail(l, op, EACCES, why);
        else
            op_ok(l, op, json_pack("[o]", addr_entry(&a)));
        return;
    }
    if (guest_name(host, name, sizeof name, why, sizeof why) < 0) {
        op_fail(l, op, EAI_NONAME_ERRNO, why);
        return;
    }
    const eryx__addr *pin = eryx__policy_pin(&net->conf->policy, name, (uint16_t)port);
    if (pin) {
        if (!eryx__policy_check(&net->conf->policy, name, pin, (uint16_t)port, why, sizeof why)) {
            op_fail(l, op, EACCES, why);
        } else {
            resolve_remember(net, pin, (uint16_t)port, name);
            op_ok(l, op, json_pack("[o]", addr_entry(pin)));
        }
        return;
    }
    const char *deny = eryx__policy_name_denied(&net->conf->policy, name, (uint16_t)port);
    if (deny) {
        snprintf(why, sizeof why, "%s:%u is refused by the deny rule \"%s\"", name,
                 (unsigned)port, deny);
        op_fail(l, op, EACCES, why);
        return;
    }
    if (!eryx__policy_name_possible(&net->conf->policy, name, (uint16_t)port)) {
        const eryx__policy *p = &net->conf->policy;
        int address_rules = 0;
        for (size_t i = 0; i < p->n_allow; i++)
            address_rules |= p->allow[i].kind == ERYX__RULE_NET;
        snprintf(why, sizeof why, "%s:%u is refused: %s", name, (unsigned)port,
                 address_rules ? "no allow rule matches it (a name is looked up only when a host "
                                 "rule names it: an address rule allows that address by itself)"
                 : p->n_allow  ? "no allow rule matches it"
                               : "the sandbox's network policy allows no destination");
        op_fail(l, op, EACCES, why);
        return;
    }
    if (net->n_lookups >= net->conf->max_connections) {
        op_fail(l, op, EAGAIN, "too many name lookups at once");
        return;
    }
    lookup *k = calloc(1, sizeof *k);
    if (!k) {
        op_fail(l, op, ENOMEM, NULL);
        return;
    }
    k->net = net;
    k->call = op->call;
    snprintf(k->name, sizeof k->name, "%s", name);
    k->port = (uint16_t)port;
    net->refs++;
    net->n_lookups++;
    if (eryx__thread_start_detached(lookup_thread, k) != 0) {
        net->refs--;
        net->n_lookups--;
        free(k);
        op_fail(l, op, EAGAIN, "cannot start a lookup thread");
        return;
    }
    op->call = NULL; /* the thread completes it */
}

static void op_connect(eryx__net *net, eryx__op *op, json_t *args, done_list *l)
{
    const char *host = json_string_value(json_object_get(args, "addr"));
    json_int_t port = json_integer_value(json_object_get(args, "port"));
    eryx__addr a;
    char why[400];
    if (!host || port <= 0 || port > 65535 || !eryx__addr_parse(host, &a)) {
        op_fail(l, op, EINVAL, "connect: an IP address and a port are needed");
        return;
    }
    const char *name = resolved_name(net, &a, (uint16_t)port);
    if (!eryx__policy_check(&net->conf->policy, name, &a, (uint16_t)port, why, sizeof why)) {
        op_fail(l, op, EACCES, why);
        return;
    }
    if (net->n_conns >= net->conf->max_connections) {
        snprintf(why, sizeof why, "too many connections: the sandbox may have %u open at once",
                 net->conf->max_connections);
        op_fail(l, op, EMFILE, why);
        return;
    }
    if (poller_start() < 0) {
        op_fail(l, op, EAGAIN, "cannot start the network thread");
        return;
    }
    int v4 = eryx__addr_is_v4(&a);
    int fd = socket(v4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    eryx__conn *c = fd >= 0 ? calloc(1, sizeof *c) : NULL;
    if (!c || slot_take(c) < 0) {
        int err = fd < 0 ? errno : ENOMEM;
        if (fd >= 0)
            close(fd);
        free(c);
        op_fail(l, op, err, NULL);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->net = net;
    c->id = net->next_id++;
    c->addr = a;
    c->port = (uint16_t)port;
    snprintf(c->host, sizeof c->host, "%s", name ? name : "");
    c->next = net->conns;
    net->conns = c;
    net->n_conns++;
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    if (v4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        memcpy(&s4->sin_addr, a.b + 12, 4);
        sl = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        memcpy(&s6->sin6_addr, a.b, 16);
        sl = sizeof *s6;
    }
    json_t *ok = json_pack("{s:I}", "conn", (json_int_t)c->id);
    if (connect(fd, (struct sockaddr *)&ss, sl) == 0) {
        op_ok(l, op, ok);
        return;
    }
    if (errno != EINPROGRESS) {
        int err = errno;
        json_decref(ok);
        op_fail(l, op, err, NULL);
        conn_close(c, l, NULL);
        return;
    }
    json_decref(ok);
    c->wr = *op;
    c->wr.kind = ERYX__OP_CONNECT;
    op->call = NULL;
    c->connecting = 1;
    conn_arm(c);
}

/* The longest placeholder of the sandbox's secrets. */
static size_t longest_placeholder(const eryx__net_conf *conf)
{
    size_t max = 0;
    for (size_t i = 0; i < conf->n_secrets; i++)
        if (conf->secrets[i].placeholder_len > max)
            max = conf->secrets[i].placeholder_len;
    return max;
}

/* Whether a placeholder of s begins in joint[0..tail) (the end of what was
 * sent before) and ends past it (in what is being sent). */
static int straddles(const uint8_t *joint, size_t tail, size_t len, const eryx__secret *s)
{
    const uint8_t *p = joint, *end = joint + len, *hit;
    while (p < end && (hit = memmem(p, (size_t)(end - p), s->placeholder, s->placeholder_len))) {
        if ((size_t)(hit - joint) >= tail)
            return 0;
        if ((size_t)(hit - joint) + s->placeholder_len > tail)
            return 1;
        p = hit + 1;
    }
    return 0;
}

/* Keeps the last keep bytes of everything the guest sent on c: a
 * placeholder split over several small sends still shows whole. */
static int remember_sent(eryx__conn *c, const uint8_t *data, size_t len, size_t keep)
{
    if (!c->sent_tail && !(c->sent_tail = malloc(keep ? keep : 1)))
        return -1;
    size_t old = c->sent_tail_len;
    if (len >= keep) {
        memcpy(c->sent_tail, data + len - keep, keep);
        c->sent_tail_len = keep;
        return 0;
    }
    if (old + len > keep) {
        memmove(c->sent_tail, c->sent_tail + old + len - keep, keep - len);
        old = keep - len;
    }
    memcpy(c->sent_tail + old, data, len);
    c->sent_tail_len = old + len;
    return 0;
}

/* Substitutes secret s's value for its placeholder in *cur (n bytes),
 * replacing the buffer when it changes (data is the caller's and is never
 * freed). -1 when out of memory (*cur then freed unless data). */
static int substitute(const eryx__secret *s, const uint8_t *data, uint8_t **cur, size_t *n)
{
    size_t nn;
    uint8_t *r = eryx__replace_all(*cur, *n, s->placeholder, s->placeholder_len, s->value,
                                   s->value_len, &nn);
    if (r == *cur)
        return 0;
    if (*cur != data)
        free(*cur);
    *cur = r;
    *n = nn;
    return r ? 0 : -1;
}

/* The secrets on what the guest sends on c: substituted where allowed,
 * refused where not. A placeholder split between sends is found with the
 * end of the earlier ones: the send that completes it is refused where the
 * secret may not go, and where it may, the part sent before went as the
 * placeholder's text (either way the value stays home). Returns the bytes
 * to send (data itself or a new buffer), or NULL with why set. What is
 * sent of data is the caller's to remember (note_sent), once it is known. */
static uint8_t *apply_secrets(eryx__conn *c, const uint8_t *data, size_t len, size_t *outlen,
                              char *why, size_t whysize)
{
    const eryx__net_conf *conf = c->net->conf;
    uint8_t *cur = (uint8_t *)data, *joint = NULL;
    size_t n = len;
    *outlen = len;
    if (!conf->n_secrets)
        return cur;
    size_t keep = longest_placeholder(conf) - 1;
    size_t tail = c->sent_tail_len, take = len < keep ? len : keep;
    if (tail) {
        if (!(joint = malloc(tail + take)))
            goto oom;
        memcpy(joint, c->sent_tail, tail);
        memcpy(joint + tail, data, take);
    }
    for (size_t i = 0; i < conf->n_secrets; i++) {
        const eryx__secret *s = &conf->secrets[i];
        if (!(joint && straddles(joint, tail, tail + take, s)) &&
            !memmem(cur, n, s->placeholder, s->placeholder_len))
            continue;
        if (!conn_carries(c, s)) {
            char addr[64];
            const char *host = conn_host(c);
            eryx__addr_format(&c->addr, addr, sizeof addr);
            snprintf(why, whysize, "secret %s may not be sent to %s:%u (its hosts do not "
                     "include it): nothing was sent", s->name, host ? host : addr, c->port);
            goto fail;
        }
        if (substitute(s, data, &cur, &n) < 0)
            goto oom;
    }
    free(joint);
    *outlen = n;
    return cur;
oom:
    snprintf(why, whysize, "out of memory on the host");
fail:
    free(joint);
    if (cur != data)
        free(cur);
    return NULL;
}

/* The first len bytes of data have gone (or are queued) on c: the end of
 * them is what the next send's split placeholder is looked for with. */
static int note_sent(eryx__conn *c, const uint8_t *data, size_t len)
{
    const eryx__net_conf *conf = c->net->conf;
    return conf->n_secrets ? remember_sent(c, data, len, longest_placeholder(conf) - 1) : 0;
}

/* A send on a non-blocking socket (timeout 0) of plain bytes that no secret
 * changed, c->out empty: what the kernel takes now is sent and counted, the
 * rest is the guest's to send again (CPython's partial count), and nothing
 * taken is EAGAIN at once. Nothing is queued: queued bytes would go out
 * after the guest was told they had not, or be lost by a close. */
static void send_now(eryx__conn *c, eryx__op *op, const uint8_t *data, size_t len,
                     done_list *l)
{
    ssize_t w;
    do
        w = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        op_fail(l, op, EAGAIN, "nothing could be sent now: the peer is not reading");
        return;
    }
    if (w < 0) {
        c->err = errno;
        op_fail(l, op, c->err, NULL);
    } else if (note_sent(c, data, (size_t)w) < 0) {
        /* Without the end of what went, a placeholder split at it would
         * not be seen: the socket fails closed. */
        c->err = ENOMEM;
        op_fail(l, op, ENOMEM, "out of memory on the host");
    } else {
        c->net->sent += (size_t)w;
        op_ok(l, op, json_integer((json_int_t)w));
    }
    progress(c, l);
}

static void op_send(eryx__net *net, eryx__conn *c, eryx__op *op, json_t *args, done_list *l)
{
    json_t *t = json_object_get(args, "timeout");
    int nonblocking = json_is_number(t) && json_number_value(t) == 0;
    json_t *d = json_object_get(args, "data");
    uint8_t *data, *wire;
    size_t len, wlen;
    char why[400];
    if (!json_is_string(d) ||
        eryx__b64_decode(json_string_value(d), json_string_length(d), &data, &len) < 0) {
        op_fail(l, op, EINVAL, "send: data must be base64");
        return;
    }
    if (c->wr.call || c->connecting) {
        free(data);
        op_fail(l, op, EBUSY, "another write on this socket has not finished");
        return;
    }
    if (c->err || c->shut_wr) {
        free(data);
        op_fail(l, op, c->err ? c->err : EPIPE, c->err ? conn_errmsg(c) : NULL);
        return;
    }
    if (c->out_len - c->out_off > MAX_OUTBUF) {
        free(data);
        op_fail(l, op, EAGAIN, "the peer is not reading: earlier sends on this socket have "
                               "not gone out yet");
        return;
    }
    if (nonblocking && c->out_len > c->out_off) {
        free(data);
        op_fail(l, op, EAGAIN, "nothing could be sent now: earlier sends on this socket "
                               "have not gone out yet");
        return;
    }
    if (net->sent + len > net->conf->max_sent) {
        free(data);
        snprintf(why, sizeof why, "network limit: this run may send %llu bytes "
                 "(max_bytes_sent)", (unsigned long long)net->conf->max_sent);
        op_fail(l, op, EFBIG, why);
        return;
    }
    static const char request[] = ERYX__TLS_REQUEST;
    if (!c->ssl && len >= sizeof request - 1 && memcmp(data, request, sizeof request - 1) == 0) {
        /* TLS asked for in band: the request is the whole write. */
        const uint8_t *line = data + sizeof request - 1;
        size_t rest = len - (sizeof request - 1);
        const uint8_t *nl = memchr(line, '\n', rest);
        int err = !nl || (size_t)(nl - line) + 1 != rest ? EINVAL
                                                          : eryx__tls_start_inband(c, line, (size_t)(nl - line));
        free(data);
        if (err)
            op_fail(l, op, err, c->err ? c->tls_err : "malformed in-band TLS request");
        else {
            op_ok(l, op, json_integer((json_int_t)len));
            progress(c, l);
        }
        return;
    }
    if (!(wire = apply_secrets(c, data, len, &wlen, why, sizeof why))) {
        free(data);
        op_fail(l, op, EACCES, why);
        return;
    }
    if (nonblocking && !c->ssl && wire == data) {
        send_now(c, op, data, len, l);
        free(data);
        return;
    }
    if (note_sent(c, data, len) < 0) {
        if (wire != data)
            free(wire);
        free(data);
        op_fail(l, op, ENOMEM, "out of memory on the host");
        return;
    }
    int err = c->ssl ? eryx__tls_write(c, wire, wlen)
                     : eryx__conn_queue_plain(c, wire, wlen) < 0 ? ENOMEM : 0;
    c->out_secret = wire != data; /* c->out holds only this send (drop_stale) */
    if (wire != data)
        free(wire);
    free(data);
    if (err) {
        /* (A TLS error's message is the connection's: strerror has none.) */
        op_fail(l, op, err, eryx__tls_errmsg(c, err));
        return;
    }
    net->sent += len;
    c->wr = *op;
    c->wr.kind = ERYX__OP_SEND;
    c->wr.max = len;
    op->call = NULL;
    progress(c, l);
}

static void op_recv(eryx__conn *c, eryx__op *op, json_t *args, done_list *l)
{
    json_int_t max = json_integer_value(json_object_get(args, "max"));
    if (c->rd.call) {
        op_fail(l, op, EBUSY, "another read on this socket has not finished");
        return;
    }
    if (c->connecting) {
        op_fail(l, op, ENOTCONN, NULL);
        return;
    }
    c->rd = *op;
    c->rd.kind = ERYX__OP_RECV;
    c->rd.max = max <= 0 ? 1 : max > MAX_RECV_CHUNK ? MAX_RECV_CHUNK : (size_t)max;
    op->call = NULL;
    progress(c, l);
    /* Nothing yet and the guest does not wait (timeout 0): EAGAIN. */
    json_t *t = json_object_get(args, "timeout");
    if (c->rd.call && json_is_number(t) && json_number_value(t) <= 0)
        op_fail(l, &c->rd, EAGAIN, "no data yet");
}

static void op_shutdown(eryx__conn *c, eryx__op *op, json_t *args, done_list *l)
{
    json_int_t how = json_integer_value(json_object_get(args, "how"));
    if (how != SHUT_RD) {
        c->shut_wr = 1;
        send_fin(c);
        conn_arm(c);
    }
    op_ok(l, op, json_true());
}

/* Which of the sockets [[conn, events], ...] are ready: at once, or with
 * "wait": true, as soon as one is (its timeout is the call's deadline).
 * The guest's select and poll over its sockets. */
static void op_poll(eryx__net *net, eryx__op *op, json_t *args, done_list *l)
{
    json_t *list = json_object_get(args, "conns"), *e;
    size_t i;
    /* Each entry costs a poll() under the network lock: a sandbox has at
     * most max_connections sockets worth asking about. */
    if (json_array_size(list) > net->conf->max_connections + 64u) {
        op_fail(l, op, EINVAL, "poll: more entries than the sandbox can have sockets");
        return;
    }
    json_t *ready = poll_ready(net, list);
    if (!ready) {
        op_fail(l, op, ENOMEM, "out of memory on the host");
        return;
    }
    if (json_array_size(ready) || !json_is_true(json_object_get(args, "wait")) ||
        !json_array_size(list)) {
        op_ok(l, op, ready);
        return;
    }
    json_decref(ready);
    /* A synchronous call: a second one means the first was given up on. */
    if (net->poll.call) {
        poll_end(net);
        op_fail(l, &net->poll, ECANCELED, "another poll took its place");
    }
    net->poll = *op;
    op->call = NULL;
    net->poll_entries = json_incref(list);
    json_array_foreach(list, i, e) {
        eryx__conn *c = conn_find(net, (uint64_t)json_integer_value(json_array_get(e, 0)));
        int want = (int)json_integer_value(json_array_get(e, 1));
        if (c && (want & (POLLIN | POLLOUT))) {
            c->poll_in |= (want & POLLIN) != 0;
            c->poll_out |= (want & POLLOUT) != 0;
            conn_arm(c);
        }
    }
}

void eryx__net_submit(eryx__net *net, eryx_call *call, const char *name, const char *argtext)
{
    done_list l = {0};
    eryx__op op = {.call = call};
    json_t *args = json_loads(argtext, 0, NULL);
    if (!net) {
        op_fail(&l, &op, EACCES, "this sandbox has no network (eryx_sandbox_config.net; the "
                                 "command line's --allow-net)");
        json_decref(args);
        done_deliver(&l);
        return;
    }
    const eryx__net_conf *conf = net->conf;
    pthread_mutex_lock(&G.mu);
    uint64_t cap = strcmp(name, "connect") == 0 ? conf->connect_timeout_ns
                   : strcmp(name, "resolve") == 0 ? conf->connect_timeout_ns
                                                   : conf->idle_timeout_ns;
    eryx__call_set_deadline(call, op_deadline(conf, args, cap));
    poll_check(net, &l); /* a poll given up on no longer watches */
    eryx__conn *c = NULL;
    int needs_conn = strcmp(name, "resolve") && strcmp(name, "connect") && strcmp(name, "poll");
    if (args && needs_conn && (c = conn_of(net, args)))
        drop_stale(c);
    if (!args) {
        op_fail(&l, &op, EINVAL, "malformed network request");
    } else if (needs_conn && !c) {
        op_fail(&l, &op, EBADF, "the connection is closed (or was made before a fork, a "
                                "session load or a journal's replay: connections are never "
                                "carried over)");
    } else if (!strcmp(name, "resolve")) {
        op_resolve(net, &op, args, &l);
    } else if (!strcmp(name, "connect")) {
        op_connect(net, &op, args, &l);
    } else if (!strcmp(name, "send")) {
        op_send(net, c, &op, args, &l);
    } else if (!strcmp(name, "recv")) {
        op_recv(c, &op, args, &l);
    } else if (!strcmp(name, "tls")) {
        eryx__tls_start(c, &op, args, &l);
    } else if (!strcmp(name, "shutdown")) {
        op_shutdown(c, &op, args, &l);
    } else if (!strcmp(name, "close")) {
        conn_close(c, &l, "the socket was closed");
        op_ok(&l, &op, json_true());
    } else if (!strcmp(name, "poll")) {
        op_poll(net, &op, args, &l);
    } else {
        op_fail(&l, &op, EINVAL, "unknown network operation");
    }
    pthread_mutex_unlock(&G.mu);
    json_decref(args);
    done_deliver(&l);
}

/* ---- the end of a sandbox's network --------------------------------------- */

void eryx__net_unref_locked(eryx__net *net)
{
    if (--net->refs > 0)
        return;
    conf_unref(net->conf);
    free(net);
}

size_t eryx__net_pollfds(eryx__net *net, struct pollfd *fds, size_t max)
{
    size_t n = 0;
    if (!net)
        return 0;
    done_list l = {0};
    pthread_mutex_lock(&G.mu);
    poll_check(net, &l); /* one given up on must not keep a socket watched */
    for (eryx__conn *c = net->conns; c && n < max; c = c->next) {
        drop_stale(c);
        uint32_t ev = conn_events(c);
        if (!ev || c->hold_until)
            continue;
        /* The poller stands aside for it (one syscall: cheaper than a
         * second thread waking for the same event). One-shot still: epoll
         * adds EPOLLERR and EPOLLHUP to any mask, and a level-triggered
         * registration left behind woke the poller in a loop, for as long
         * as the socket lived, once its peer reset it. */
        struct epoll_event e = {.events = EPOLLONESHOT,
                                .data.u64 = ((uint64_t)G.gens[c->slot] << 32) | c->slot};
        if (c->registered)
            epoll_ctl(G.epfd, EPOLL_CTL_MOD, c->fd, &e);
        c->local_wait = 1;
        fds[n].fd = c->fd;
        fds[n].events = (short)((ev & EPOLLIN ? POLLIN : 0) | (ev & EPOLLOUT ? POLLOUT : 0));
        fds[n].revents = 0;
        n++;
    }
    pthread_mutex_unlock(&G.mu);
    done_deliver(&l);
    return n;
}

void eryx__net_poll_done(eryx__net *net, const struct pollfd *fds, size_t n)
{
    done_list l = {0};
    pthread_mutex_lock(&G.mu);
    for (eryx__conn *c = net->conns; c;) {
        eryx__conn *next = c->next; /* progress may close c */
        if (c->local_wait) {
            c->local_wait = 0;
            progress(c, &l); /* re-arms the poller for what still waits */
        }
        c = next;
    }
    (void)fds;
    (void)n;
    pthread_mutex_unlock(&G.mu);
    done_deliver(&l);
}

void eryx__net_close_all(eryx__net *net)
{
    if (!net)
        return;
    done_list l = {0};
    pthread_mutex_lock(&G.mu);
    poll_cancel(net, &l, "the sandbox was reset");
    while (net->conns)
        conn_close(net->conns, &l, "the sandbox was reset");
    net->n_resolved = 0;
    pthread_mutex_unlock(&G.mu);
    done_deliver(&l);
}

void eryx__net_free(eryx__net *net)
{
    if (!net)
        return;
    done_list l = {0};
    pthread_mutex_lock(&G.mu);
    poll_cancel(net, &l, "the sandbox is gone");
    while (net->conns)
        conn_close(net->conns, &l, "the sandbox is gone");
    net->dead = 1;
    eryx__net_unref_locked(net);
    pthread_mutex_unlock(&G.mu);
    done_deliver(&l);
}

/* ---- helpers for tls.c ----------------------------------------------------- */

void eryx__op_ok(void *list, eryx__op *op, json_t *value)
{
    op_ok(list, op, value);
}

void eryx__op_fail(void *list, eryx__op *op, int err, const char *msg)
{
    op_fail(list, op, err, msg);
}

void eryx__op_drop(eryx__op *op)
{
    if (op->call)
        eryx__call_release(op->call);
    op->call = NULL;
}

void eryx__conn_progress(eryx__conn *c, void *list)
{
    progress(c, list);
}

/* The failures a network operation reports, as the guest's kind
 * "net:NAME" (guest/python/_eryx/net.py maps NAME to its exception). A
 * journal stores a kind as its index here: append only. */
#define NET_KIND(err, name) {err, ERYX__NET_KIND_PREFIX name}
static const struct {
    int err;
    const char *kind;
} net_errors[] = {
    NET_KIND(EIO, "EIO"), /* first: what any other errno is called */
    NET_KIND(EACCES, "EACCES"),
    NET_KIND(EPERM, "EPERM"),
    NET_KIND(ECONNREFUSED, "ECONNREFUSED"),
    NET_KIND(ECONNRESET, "ECONNRESET"),
    NET_KIND(ECONNABORTED, "ECONNABORTED"),
    NET_KIND(ETIMEDOUT, "ETIMEDOUT"),
    NET_KIND(EHOSTUNREACH, "EHOSTUNREACH"),
    NET_KIND(ENETUNREACH, "ENETUNREACH"),
    NET_KIND(EPIPE, "EPIPE"),
    NET_KIND(EBADF, "EBADF"),
    NET_KIND(EINVAL, "EINVAL"),
    NET_KIND(EAGAIN, "EAGAIN"),
    NET_KIND(EBUSY, "EBUSY"),
    NET_KIND(EMFILE, "EMFILE"),
    NET_KIND(EFBIG, "EFBIG"),
    NET_KIND(ENOMEM, "ENOMEM"),
    NET_KIND(ENOTCONN, "ENOTCONN"),
    NET_KIND(ECANCELED, "ECANCELED"),
    NET_KIND(EAI_NONAME_ERRNO, "EAI_NONAME"),
    NET_KIND(ERYX__ETLS, "SSL"),
    NET_KIND(ERYX__ETLS_VERIFY, "SSL_VERIFY"),
};
#undef NET_KIND
#define N_NET_ERRORS (sizeof net_errors / sizeof net_errors[0])

const char *eryx__net_errname(int err)
{
    size_t i = N_NET_ERRORS;
    while (--i > 0 && net_errors[i].err != err) {
    }
    return net_errors[i].kind + strlen(ERYX__NET_KIND_PREFIX);
}

int eryx__net_kind_code(const char *kind)
{
    for (size_t i = 0; kind && i < N_NET_ERRORS; i++)
        if (strcmp(kind, net_errors[i].kind) == 0)
            return (int)i;
    return -1;
}

const char *eryx__net_kind_name(int code)
{
    return code >= 0 && (size_t)code < N_NET_ERRORS ? net_errors[code].kind : NULL;
}
