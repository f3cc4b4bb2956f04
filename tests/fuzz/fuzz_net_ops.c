/*
 * The network layer's operations (src/net/net.c, tls.c) as the guest
 * issues them: eryx__net_submit with any operation name and JSON
 * arguments, in any order, against loopback peers of this harness. No
 * sandbox runs: the eryx_call functions net.c completes its calls with
 * (exec.c's) are defined here over calls of the harness's own, so an input
 * costs milliseconds.
 *
 * Input: lines "NAME ARGS". NAME is the operation ("connect", "send",
 * "recv", "tls", "shutdown", "close", "poll", "resolve", or anything);
 * with a '&' before it the harness does not wait for it (the next line
 * runs while it is in progress), with a '~' it waits as the thread of a
 * blocking run does (eryx__net_pollfds, poll, eryx__net_poll_done). ARGS
 * is JSON, passed as it is when it is not an object; in an object the
 * harness first rewrites:
 *   "conn": k (0..15)    the id of the k-th connection of this input;
 *        k (16..31)      the id 32 - k before the next the network gives
 *                        (31: the newest, the guest can guess it: a
 *                        connection still connecting)
 *   "conns": [[k, ev]]   the same in each entry
 *   "port": k (0..6)     the port of peer k: echo, TLS echo, a plain
 *                        greeting then TLS, one that never reads, one that
 *                        resets, one that closes, a 256 KiB burst
 *   "text": s            "data": the base64 of s repeated "repeat" times
 *                        (64 KiB at most), "$SECRET" in s being the
 *                        placeholder of the secret (its value may go to
 *                        peer.test); with "\u0000ERYX-STARTTLS {...}\n"
 *                        TLS is asked for in band
 *   a resolve's "host"   "localhost" (/etc/hosts') if it would ask DNS
 *                        (a name not pinned at that port: "peer.test" is
 *                        at the peers' ports): nothing leaves the machine
 * The line "#wait" waits for the operations in progress, "#sleep" 2 ms.
 * Each input has a network of its own (eryx__net_share): at most 4
 * connections, 200 ms to connect or resolve, 25 ms for anything else (the
 * arguments' "timeout" can only shorten it), 16 MiB to send and 1 MiB to
 * receive; its buffers are built at 16 KiB (CMakeLists.txt), and the
 * connections to the peer that never reads and to the one that resets get
 * a 4 KiB socket buffer, so that kilobytes of input reach every limit.
 *
 * Properties, besides no crash, leak or undefined behaviour: every call is
 * completed at most once and its last reference released once the network
 * is freed; each deadline is within the configured limit; the operations
 * that never wait (close, shutdown, a poll without "wait", unknown names, a
 * connection that is not open, a recv with timeout 0) are answered before
 * eryx__net_submit returns; a result has the shape of its operation (a
 * send's count is the bytes given, or some of them for a non-blocking
 * one, a recv's bytes are base64 of at most max, a connection id is new,
 * none of the greeting sent in clear comes through TLS), a failure a
 * "net:" kind and a message;
 * what a connection holds stays within its limits plus one send or read;
 * neither the poller thread nor a run's thread polling the sockets spins.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "core/exec.h"
#include "fuzz.h"
#include "net/base64.h"
#include "net/net_internal.h"
#include "net/ssl_lib.h"

#define MS 1000000ull
#define MAX_LINES 32
#define MAX_CONNS 16
#define MAX_CALLS 64
#define MAX_SEND (64u << 10)
#define CONNECT_TIMEOUT_NS (200 * MS)
#define IDLE_TIMEOUT_NS (25 * MS)

enum { P_ECHO, P_TLS, P_GREET, P_SINK, P_RESET, P_CLOSE, P_BURST, N_PEERS };

static const eryx__ssl_lib *L;
static SSL_CTX *server_ctx;
static int ports[N_PEERS], listeners[N_PEERS];
static char cert_dir[] = "/tmp/eryx-fuzz-net-ops-XXXXXX";
static char cert_path[80], key_path[80];
static eryx__net *template_net;  /* the config; each input shares it */
static const char *placeholder;
static clockid_t poller_clock;
static int capture_poller;
static int verbose;             /* FUZZ_NET_OPS_VERBOSE=1: each outcome on stderr */
static pthread_t poller_thread;
static int have_poller;

/* ---- the calls: exec.c's functions for the network layer --------------- */

/* A call of the harness. refs: the harness's and, until it completes or
 * drops it, the network layer's. */
typedef struct fcall {
    eryx_call call;             /* first: what the network layer is given */
    char op[16];
    int expired;                /* its deadline passed before an answer */
    int answered;               /* completed by the network layer in time */
    int checked;
    json_t *value;              /* the answer: a value, or NULL and kind */
    char kind[32];
    char msg[120];              /* its start */
    size_t msg_len;
    size_t send_len;            /* send: the bytes given; SIZE_MAX: not base64 */
    int nonblocking;            /* send: "timeout": 0, a partial count is an answer */
    size_t recv_max;
    int peer;                   /* connect: the peer's kind, or -1 */
    uint64_t conn;              /* its "conn", or 0 */
} fcall;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;

static int overdue_locked(const eryx_call *c, uint64_t now)
{
    return c->deadline_ns && now >= c->deadline_ns;
}

int eryx__call_complete(eryx_call *call, json_t *value, const char *kind, const char *msg)
{
    fcall *f = (fcall *)call;
    pthread_mutex_lock(&mu);
    FUZZ_CHECK(call->refs == 2);
    if (call->state == ERYX__CALL_WAITING && !overdue_locked(call, eryx__now_ns())) {
        call->state = ERYX__CALL_COMPLETED;
        f->answered = 1;
        f->value = value;
        value = NULL;
        snprintf(f->kind, sizeof f->kind, "%s", kind ? kind : "");
        f->msg_len = msg ? strlen(msg) : 0;
        snprintf(f->msg, sizeof f->msg, "%s", msg ? msg : "");
    }
    call->refs--;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    json_decref(value);
    return 0;
}

void eryx__call_release(eryx_call *call)
{
    pthread_mutex_lock(&mu);
    FUZZ_CHECK(call->refs == 2);
    call->refs--;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

void eryx__call_set_deadline(eryx_call *call, uint64_t deadline_ns)
{
    pthread_mutex_lock(&mu);
    call->deadline_ns = deadline_ns;
    pthread_mutex_unlock(&mu);
}

int eryx__call_pending(eryx_call *call)
{
    pthread_mutex_lock(&mu);
    int pending = call->state == ERYX__CALL_WAITING && !overdue_locked(call, eryx__now_ns());
    pthread_mutex_unlock(&mu);
    return pending;
}

/* status.c's, which the harness does not link. The first thread started
 * while capture_poller is set is the network's poller; the others, name
 * lookups, are counted until they end: an input ends after its lookups
 * have freed what they hold (libFuzzer's leak check runs at once). */
static int lookups_running;     /* under mu */

typedef struct lookup_start {
    void *(*fn)(void *);
    void *arg;
} lookup_start;

static void *lookup_main(void *p)
{
    lookup_start s = *(lookup_start *)p;
    free(p);
    s.fn(s.arg);
    pthread_mutex_lock(&mu);
    lookups_running--;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return NULL;
}

uint64_t eryx__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int eryx__thread_start_detached(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t t;
    lookup_start *s = NULL;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (!capture_poller) {
        FUZZ_CHECK(s = malloc(sizeof *s));
        s->fn = fn;
        s->arg = arg;
        pthread_mutex_lock(&mu);
        lookups_running++;
        pthread_mutex_unlock(&mu);
    }
    int rc = s ? pthread_create(&t, &attr, lookup_main, s) : pthread_create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (rc == 0 && capture_poller) {
        poller_thread = t;
        capture_poller = 0;
        have_poller = 1;
    } else if (rc != 0 && s) {
        free(s);
        pthread_mutex_lock(&mu);
        lookups_running--;
        pthread_mutex_unlock(&mu);
    }
    return rc;
}

/* Waits (mu held) until f is answered or its deadline passes. */
static void wait_call_locked(fcall *f)
{
    while (f->call.state == ERYX__CALL_WAITING) {
        uint64_t now = eryx__now_ns();
        if (overdue_locked(&f->call, now)) {
            f->call.state = ERYX__CALL_COMPLETED;
            f->expired = 1;
            break;
        }
        uint64_t until = f->call.deadline_ns ? f->call.deadline_ns : now + 1000 * MS;
        struct timespec ts = {(time_t)(until / 1000000000u), (long)(until % 1000000000u)};
        pthread_cond_timedwait(&cv, &mu, &ts);
    }
}

static int settled(fcall *f)
{
    pthread_mutex_lock(&mu);
    int done = f->call.state != ERYX__CALL_WAITING;
    if (!done && overdue_locked(&f->call, eryx__now_ns())) {
        f->call.state = ERYX__CALL_COMPLETED;
        f->expired = done = 1;
    }
    pthread_mutex_unlock(&mu);
    return done;
}

/* The wait of a blocking run's thread (run.c, wait_on_sockets): the
 * sockets with operations waiting are taken from the poller and polled
 * here. A socket that is ready again at once, every time, would spin it. */
static void wait_local(eryx__net *net, fcall *f)
{
    unsigned woken = 0;
    while (!settled(f)) {
        struct pollfd fds[16];
        size_t n = eryx__net_pollfds(net, fds, 16);
        if (!n) {
            pthread_mutex_lock(&mu);
            if (f->call.state == ERYX__CALL_WAITING) {
                uint64_t until = eryx__now_ns() + MS;
                struct timespec ts = {(time_t)(until / 1000000000u), (long)(until % 1000000000u)};
                pthread_cond_timedwait(&cv, &mu, &ts);
            }
            pthread_mutex_unlock(&mu);
            continue;
        }
        int r = poll(fds, n, 5);
        eryx__net_poll_done(net, fds, n);
        woken += r > 0;
        FUZZ_CHECK(woken < 2000);
    }
}

/* ---- the peers ------------------------------------------------------------ */

static int send_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The greetings' random words (no input can spell them): none may reach
 * the guest through TLS. Kept and compared masked: libFuzzer learns the
 * operands of memmem, and an echo peer sends back what it learnt. */
#define GREET_LEN 16
#define GREET_MASK 0xa5
static pthread_mutex_t greet_mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t greetings[64][GREET_LEN];
static size_t n_greetings;

static void tls_echo(int fd, int greet)
{
    /* A greeting in the clear first: what the guest has not read of it
     * when TLS starts must not reach it as if it came through TLS. */
    if (greet) {
        unsigned char rnd[GREET_LEN / 2];
        char line[GREET_LEN + 7] = "HELLO ";
        FUZZ_CHECK(L->RAND_bytes(rnd, sizeof rnd) == 1);
        for (size_t i = 0; i < sizeof rnd; i++)
            snprintf(line + 6 + 2 * i, 3, "%02x", rnd[i]);
        pthread_mutex_lock(&greet_mu);
        for (size_t i = 0; i < GREET_LEN; i++)
            greetings[n_greetings % 64][i] = (uint8_t)(line[6 + i] ^ GREET_MASK);
        n_greetings++;
        pthread_mutex_unlock(&greet_mu);
        line[6 + GREET_LEN] = '\n';
        if (send_all(fd, line, sizeof line) < 0)
            return;
    }
    SSL *ssl = L->SSL_new(server_ctx);
    if (!ssl)
        return;
    char buf[16384];
    L->SSL_set_fd(ssl, fd);
    if (L->SSL_accept(ssl) == 1) {
        int n;
        while ((n = L->SSL_read(ssl, buf, sizeof buf)) > 0)
            if (L->SSL_write(ssl, buf, n) <= 0)
                break;
    }
    L->ERR_clear_error();
    L->SSL_free(ssl);
}

/* A connection a peer accepted, and its thread, joined at the end of each
 * input: a thread that has used OpenSSL frees its state only once it has
 * ended, and one still running when the process exits shows as a leak. */
typedef struct peer {
    pthread_t thread;
    int fd;                     /* -1 once closed; under peers_mu */
    int kind;
} peer;

static pthread_mutex_t peers_mu = PTHREAD_MUTEX_INITIALIZER;
static peer **peers;
static size_t n_peers, cap_peers;

static void *peer_main(void *arg)
{
    peer *self = arg;
    int fd = self->fd, kind = self->kind;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    /* Without it a TLS 1.3 server's second session ticket waits for the
     * client's delayed ACK: 40 ms before the first echo. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[16384];
    ssize_t n;
    switch (kind) {
    case P_ECHO:
        while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
            if (send_all(fd, buf, (size_t)n) < 0)
                break;
        break;
    case P_TLS:
    case P_GREET:
        tls_echo(fd, kind == P_GREET);
        break;
    case P_SINK: { /* never reads; goes when the client does */
        struct pollfd p = {.fd = fd, .events = POLLRDHUP};
        poll(&p, 1, 2000);
        break;
    }
    case P_RESET: { /* an RST once something came, or after 5 ms */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 5);
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        break;
    }
    case P_CLOSE:
        break;
    case P_BURST:
        memset(buf, 'z', sizeof buf);
        for (int i = 0; i < 16; i++)
            if (send_all(fd, buf, sizeof buf) < 0)
                break;
        break;
    }
    pthread_mutex_lock(&peers_mu);
    close(fd);
    self->fd = -1;
    pthread_mutex_unlock(&peers_mu);
    return NULL;
}

static void *accept_main(void *arg)
{
    int kind = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept(listeners[kind], NULL, NULL);
        if (fd < 0) { /* out of descriptors, say: not in a loop */
            struct timespec ts = {0, (long)MS};
            nanosleep(&ts, NULL);
            continue;
        }
        peer *p = calloc(1, sizeof *p);
        FUZZ_CHECK(p);
        p->fd = fd;
        p->kind = kind;
        pthread_mutex_lock(&peers_mu);
        if (n_peers == cap_peers) {
            cap_peers = cap_peers ? 2 * cap_peers : 64;
            peers = realloc(peers, cap_peers * sizeof *peers);
            FUZZ_CHECK(peers);
        }
        FUZZ_CHECK(pthread_create(&p->thread, NULL, peer_main, p) == 0);
        peers[n_peers++] = p;
        pthread_mutex_unlock(&peers_mu);
    }
    return NULL;
}

/* Ends the peers' connections (one that never reads would not see the
 * client go: its FIN waits behind the bytes it does not read) and joins
 * their threads. */
static void join_peers(void)
{
    pthread_mutex_lock(&peers_mu);
    peer **list = peers;
    size_t n = n_peers;
    for (size_t i = 0; i < n; i++)
        if (list[i]->fd >= 0)
            shutdown(list[i]->fd, SHUT_RDWR);
    peers = NULL;
    n_peers = cap_peers = 0;
    pthread_mutex_unlock(&peers_mu);
    for (size_t i = 0; i < n; i++) {
        pthread_join(list[i]->thread, NULL);
        free(list[i]);
    }
    free(list);
}

static void start_peer(int kind)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0);
    if (kind == P_SINK) { /* fills at once: the client's sends stay queued */
        int small = 4096;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    FUZZ_CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    FUZZ_CHECK(listen(fd, 64) == 0);
    FUZZ_CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    listeners[kind] = fd;
    ports[kind] = ntohs(a.sin_port);
    pthread_t t;
    FUZZ_CHECK(pthread_create(&t, NULL, accept_main, (void *)(intptr_t)kind) == 0);
    pthread_detach(t);
}

static void remove_cert(void)
{
    unlink(cert_path);
    unlink(key_path);
    rmdir(cert_dir);
}

/* A self-signed certificate for peer.test and 127.0.0.1: the TLS peers'
 * and the network's only CA. Returns its PEM text; the files go once read
 * (libFuzzer ends a process without atexit handlers). */
static char *make_cert(void)
{
    FUZZ_CHECK(mkdtemp(cert_dir) != NULL);
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", cert_dir);
    snprintf(key_path, sizeof key_path, "%s/key.pem", cert_dir);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-subj /CN=peer.test -addext subjectAltName=DNS:peer.test,IP:127.0.0.1 -days 2 "
             "-keyout %s -out %s 2>/dev/null",
             key_path, cert_path);
    FUZZ_CHECK(system(cmd) == 0);
    FILE *f = fopen(cert_path, "r");
    FUZZ_CHECK(f != NULL);
    static char pem[8192];
    size_t n = fread(pem, 1, sizeof pem - 1, f);
    fclose(f);
    pem[n] = '\0';
    server_ctx = L->SSL_CTX_new(L->TLS_server_method());
    FUZZ_CHECK(server_ctx != NULL);
    FUZZ_CHECK(L->SSL_CTX_use_certificate_chain_file(server_ctx, cert_path) == 1);
    FUZZ_CHECK(L->SSL_CTX_use_PrivateKey_file(server_ctx, key_path, SSL_FILETYPE_PEM) == 1);
    remove_cert();
    return pem;
}

/* ---- one input --------------------------------------------------------------- */

typedef struct run {
    eryx__net *net;
    fcall *calls[MAX_CALLS];
    size_t n_calls;
    uint64_t ids[MAX_CONNS];    /* the connections, in the order they came */
    size_t n_conns;
    uint64_t tls_ids[MAX_CONNS]; /* those a tls call secured */
    size_t n_tls;
    uint64_t slow_ids[MAX_CONNS]; /* those to give a small socket buffer */
    size_t n_slow;
} run;

/* Whether the network has a connection of that id now. */
static int conn_open(const run *r, json_t *id)
{
    int found = 0;
    pthread_mutex_lock(&eryx__net_g.mu);
    for (eryx__conn *c = r->net->conns; c && json_is_integer(id); c = c->next)
        found |= c->id == (uint64_t)json_integer_value(id);
    pthread_mutex_unlock(&eryx__net_g.mu);
    return found;
}

static void map_conn(const run *r, json_t *v, json_t **out)
{
    json_int_t k = json_integer_value(v);
    if (!json_is_integer(v) || k < 0 || k >= 2 * MAX_CONNS)
        return;
    if (k < MAX_CONNS) {
        if ((size_t)k < r->n_conns)
            *out = json_integer((json_int_t)r->ids[k]);
        return;
    }
    pthread_mutex_lock(&eryx__net_g.mu);
    *out = json_integer((json_int_t)(r->net->next_id - (uint64_t)(2 * MAX_CONNS - k)));
    pthread_mutex_unlock(&eryx__net_g.mu);
}

/* What the network holds for the guest stays bounded: its limits (built
 * small here: CMakeLists.txt) plus one send (TLS records' overhead
 * included), or one read from the socket and a partial TLS record. */
static void check_buffers(const run *r)
{
    pthread_mutex_lock(&eryx__net_g.mu);
    for (eryx__conn *c = r->net->conns; c; c = c->next) {
        FUZZ_CHECK(c->out_len - c->out_off <= ERYX_NET_MAX_OUTBUF + MAX_SEND + (MAX_SEND >> 3));
        FUZZ_CHECK(c->in_len <= ERYX_NET_MAX_INBUF + (128u << 10));
    }
    pthread_mutex_unlock(&eryx__net_g.mu);
}

/* s with "$SECRET" replaced by the placeholder, repeated: base64 (by
 * OpenSSL, uninstrumented: the harness's copy need not be fuzzed). */
static json_t *payload(const char *s, size_t n, json_int_t repeat, size_t *total)
{
    static const char mark[] = "$SECRET";
    size_t plen = strlen(placeholder), cap = n * (plen + 1) + 1, len = 0;
    char *one = malloc(cap);
    FUZZ_CHECK(one);
    for (size_t i = 0; i < n;) {
        if (n - i >= sizeof mark - 1 && memcmp(s + i, mark, sizeof mark - 1) == 0) {
            memcpy(one + len, placeholder, plen);
            len += plen;
            i += sizeof mark - 1;
        } else {
            one[len++] = s[i++];
        }
    }
    size_t times = repeat > 1 && len ? (size_t)repeat : 1;
    if (len && times > MAX_SEND / len)
        times = MAX_SEND / len ? MAX_SEND / len : 1;
    *total = len * times;
    uint8_t *all = malloc(*total + 1);
    FUZZ_CHECK(all);
    memcpy(all, one, len);
    for (size_t have = len; have < *total; have *= 2)
        memcpy(all + have, all, have < *total - have ? have : *total - have);
    char *b = malloc(*total / 3 * 4 + 5);
    FUZZ_CHECK(b);
    int blen = L->EVP_EncodeBlock((unsigned char *)b, all, (int)*total);
    json_t *v = json_stringn(b, (size_t)blen);
    free(b);
    free(all);
    free(one);
    return v;
}

/* The arguments net.c gets for a line's ARGS, with what the harness
 * expects of the operation noted in f. */
static char *rewrite(run *r, const char *name, const char *text, fcall *f, int *at_once)
{
    int known_wait = !strcmp(name, "connect") || !strcmp(name, "send") ||
                     !strcmp(name, "recv") || !strcmp(name, "tls") || !strcmp(name, "resolve") ||
                     !strcmp(name, "poll");
    int needs_conn = strcmp(name, "resolve") && strcmp(name, "connect") && strcmp(name, "poll");
    json_t *o = json_loads(text, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(o)) {
        /* net.c refuses it, or finds no connection in it, at once. */
        *at_once = !o || needs_conn || !known_wait;
        json_decref(o);
        return strdup(text);
    }
    json_t *v, *mapped = NULL;
    map_conn(r, json_object_get(o, "conn"), &mapped);
    if (mapped)
        json_object_set_new(o, "conn", mapped);
    f->conn = (uint64_t)json_integer_value(json_object_get(o, "conn"));
    json_t *list = json_object_get(o, "conns"), *e;
    size_t i;
    json_array_foreach(list, i, e) {
        mapped = NULL;
        map_conn(r, json_array_get(e, 0), &mapped);
        if (mapped)
            json_array_set_new(e, 0, mapped);
    }
    v = json_object_get(o, "port");
    json_int_t k = json_integer_value(v);
    f->peer = -1;
    if (json_is_integer(v) && k >= 0 && k < N_PEERS) {
        json_object_set_new(o, "port", json_integer(ports[k]));
        f->peer = (int)k;
    }
    v = json_object_get(o, "text");
    f->send_len = SIZE_MAX;
    if (json_is_string(v)) {
        json_object_set_new(o, "data", payload(json_string_value(v), json_string_length(v),
                                               json_integer_value(json_object_get(o, "repeat")),
                                               &f->send_len));
        json_object_del(o, "text");
        json_object_del(o, "repeat");
    } else if (json_is_string(v = json_object_get(o, "data"))) {
        uint8_t *bytes;
        if (eryx__b64_decode(json_string_value(v), json_string_length(v), &bytes,
                             &f->send_len) == 0)
            free(bytes);
        else
            f->send_len = SIZE_MAX;
    }
    const char *host = json_string_value(json_object_get(o, "host"));
    if (!strcmp(name, "resolve") && host) {
        /* What op_resolve would hand getaddrinfo: a name, neither a
         * literal nor pinned. Only /etc/hosts' localhost may go. */
        eryx__addr a;
        char norm[256];
        json_int_t port = json_integer_value(json_object_get(o, "port"));
        if (!eryx__addr_parse(host, &a) && eryx__host_normalise(host, norm, sizeof norm) == 0 &&
            port >= 0 && port <= 65535 &&
            !eryx__policy_pin(&r->net->conf->policy, norm, (uint16_t)port) &&
            strcmp(norm, "localhost") != 0)
            json_object_set_new(o, "host", json_string("localhost"));
    }
    json_int_t max = json_integer_value(json_object_get(o, "max"));
    f->recv_max = max <= 0 ? 1 : max > (1 << 20) ? 1 << 20 : (size_t)max;
    json_t *t = json_object_get(o, "timeout");
    f->nonblocking = json_is_number(t) && json_number_value(t) == 0;
    *at_once = !known_wait || (needs_conn && !conn_open(r, json_object_get(o, "conn"))) ||
               (!strcmp(name, "recv") && json_is_number(t) && json_number_value(t) <= 0) ||
               (!strcmp(name, "poll") && !json_is_true(json_object_get(o, "wait")));
    char *out = json_dumps(o, JSON_COMPACT);
    FUZZ_CHECK(out);
    json_decref(o);
    return out;
}

/* The kernel takes megabytes a peer does not read (3 MB here): a socket
 * buffer of 4 KiB lets sends of kilobytes fill the network's queue (and
 * leaves bytes queued when a peer resets). */
static void slow_link(const run *r, uint64_t id)
{
    int small = 4096;
    pthread_mutex_lock(&eryx__net_g.mu);
    for (eryx__conn *c = r->net->conns; c; c = c->next)
        if (c->id == id)
            setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    pthread_mutex_unlock(&eryx__net_g.mu);
}

/* A result has its operation's shape; a connection's id is recorded. */
static void check(run *r, fcall *f)
{
    if (f->checked || !f->answered)
        return;
    f->checked = 1;
    json_t *v = f->value;
    if (verbose) {
        char *text = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        fprintf(stderr, "%s: %.100s%s %s\n", f->op, text ? text : f->kind, v ? "" : ":", f->msg);
        free(text);
    }
    if (!v) {
        FUZZ_CHECK(strncmp(f->kind, "net:", 4) == 0 && f->msg_len > 0);
        return;
    }
    if (!strcmp(f->op, "connect")) {
        json_t *id = json_object_get(v, "conn");
        FUZZ_CHECK(json_is_integer(id));
        for (size_t k = 0; k < r->n_conns; k++)
            FUZZ_CHECK(r->ids[k] != (uint64_t)json_integer_value(id));
        if (r->n_conns < MAX_CONNS)
            r->ids[r->n_conns++] = (uint64_t)json_integer_value(id);
        if ((f->peer == P_SINK || f->peer == P_RESET) && r->n_slow < MAX_CONNS)
            r->slow_ids[r->n_slow++] = (uint64_t)json_integer_value(id);
    } else if (!strcmp(f->op, "send")) {
        /* A non-blocking send takes what the kernel has room for now:
         * some of it, or (EAGAIN) none; any other takes it all. */
        FUZZ_CHECK(json_is_integer(v) && f->send_len != SIZE_MAX);
        size_t n = (size_t)json_integer_value(v);
        FUZZ_CHECK(n == f->send_len || (f->nonblocking && n > 0 && n < f->send_len));
    } else if (!strcmp(f->op, "recv")) {
        uint8_t *bytes;
        size_t n;
        FUZZ_CHECK(json_is_string(v));
        FUZZ_CHECK(eryx__b64_decode(json_string_value(v), json_string_length(v), &bytes, &n) == 0);
        FUZZ_CHECK(n <= f->recv_max);
        for (size_t k = 0; k < r->n_tls; k++) {
            if (r->tls_ids[k] != f->conn)
                continue;
            for (size_t i = 0; i < n; i++)
                bytes[i] ^= GREET_MASK;
            pthread_mutex_lock(&greet_mu);
            for (size_t g = 0; g < 64 && g < n_greetings; g++)
                FUZZ_CHECK(!memmem(bytes, n, greetings[g], GREET_LEN));
            pthread_mutex_unlock(&greet_mu);
            break;
        }
        free(bytes);
    } else if (!strcmp(f->op, "tls")) {
        FUZZ_CHECK(json_is_object(v) && json_is_string(json_object_get(v, "version")));
        if (r->n_tls < MAX_CONNS)
            r->tls_ids[r->n_tls++] = f->conn;
    } else if (!strcmp(f->op, "resolve")) {
        FUZZ_CHECK(json_is_array(v) && json_array_size(v) > 0);
    } else if (!strcmp(f->op, "poll")) {
        FUZZ_CHECK(json_is_array(v));
    } else {
        FUZZ_CHECK(json_is_true(v) && (!strcmp(f->op, "close") || !strcmp(f->op, "shutdown")));
    }
}

static void check_all(run *r)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < r->n_calls; i++)
        check(r, r->calls[i]);
    pthread_mutex_unlock(&mu);
    /* With mu released: the network calls eryx__call_pending with G.mu
     * held, so mu is never held while taking G.mu. */
    for (size_t i = 0; i < r->n_slow; i++)
        slow_link(r, r->slow_ids[i]);
    r->n_slow = 0;
}

static void wait_all(run *r)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < r->n_calls; i++)
        wait_call_locked(r->calls[i]);
    pthread_mutex_unlock(&mu);
}

static void submit(run *r, const char *line, size_t n)
{
    char *buf = strndup(line, n);
    FUZZ_CHECK(buf);
    char mode = buf[0] == '&' || buf[0] == '~' ? buf[0] : 0;
    char *name = buf + (mode != 0), *sp = strchr(name, ' ');
    const char *args = "";
    if (sp) {
        *sp = '\0';
        args = sp + 1;
    }
    fcall *f = calloc(1, sizeof *f);
    FUZZ_CHECK(f);
    f->call.refs = 2;
    f->call.state = ERYX__CALL_WAITING;
    f->call.id = r->n_calls;
    f->peer = -1;
    snprintf(f->op, sizeof f->op, "%s", name);
    r->calls[r->n_calls++] = f;
    int at_once;
    char *text = rewrite(r, name, args, f, &at_once);
    uint64_t t0 = eryx__now_ns();
    eryx__net_submit(r->net, &f->call, name, text);
    free(text);
    pthread_mutex_lock(&mu);
    uint64_t d = f->call.deadline_ns, cap = !strcmp(name, "connect") || !strcmp(name, "resolve")
                                               ? CONNECT_TIMEOUT_NS
                                               : IDLE_TIMEOUT_NS;
    FUZZ_CHECK(d > t0 && d <= eryx__now_ns() + cap + 1);
    if (at_once) /* answered, or too late (a timeout of 1e-9): no longer held */
        FUZZ_CHECK(f->call.refs == 1);
    if (!mode)
        wait_call_locked(f);
    pthread_mutex_unlock(&mu);
    if (mode == '~')
        wait_local(r->net, f);
    free(buf);
}

static uint64_t cpu_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whether the poller thread keeps working once the operations are over: a
 * socket that stays ready for it with nothing to do. Work that remains
 * (a handshake whose call timed out) ends within a few windows of 4 ms. */
static void check_poller_idle(void)
{
    uint64_t busy, wall;
    int windows = 0;
    do {
        uint64_t c0 = cpu_ns(poller_clock), t0 = eryx__now_ns();
        struct timespec ts = {0, 4 * MS};
        nanosleep(&ts, NULL);
        busy = cpu_ns(poller_clock) - c0;
        wall = eryx__now_ns() - t0;
    } while (busy * 2 >= wall && ++windows < 10);
    FUZZ_CHECK(busy * 2 < wall);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN); /* the TLS peers write with write() */
    verbose = getenv("FUZZ_NET_OPS_VERBOSE") != NULL;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &attr);
    pthread_condattr_destroy(&attr);
    L = eryx__ssl_load(NULL);
    FUZZ_CHECK(L != NULL);
    char *pem = make_cert();
    for (int k = 0; k < N_PEERS; k++)
        start_peer(k);
    static char allow_text[N_PEERS][32], pin_text[N_PEERS][64];
    static const char *allow[N_PEERS], *pins[N_PEERS];
    for (int k = 0; k < N_PEERS; k++) {
        snprintf(allow_text[k], sizeof allow_text[k], "127.0.0.1:%d", ports[k]);
        snprintf(pin_text[k], sizeof pin_text[k], "peer.test:%d:127.0.0.1", ports[k]);
        allow[k] = allow_text[k];
        pins[k] = pin_text[k];
    }
    eryx_net_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.size = sizeof cfg;
    cfg.allow = allow;
    cfg.n_allow = N_PEERS;
    cfg.resolve = pins;
    cfg.n_resolve = N_PEERS;
    cfg.ca_pem = pem;
    cfg.max_connections = 4;
    cfg.connect_timeout_ns = CONNECT_TIMEOUT_NS;
    cfg.idle_timeout_ns = IDLE_TIMEOUT_NS;
    cfg.max_bytes_sent = 16u << 20;
    cfg.max_bytes_received = 1u << 20;
    static const char *const secret_hosts[] = {"peer.test"};
    eryx_secret secret = {sizeof secret, "TOKEN", "s3cret-value-7f2a9c41", secret_hosts, 1};
    char err[300];
    FUZZ_CHECK(eryx__net_new(&cfg, &secret, 1, &template_net, err, sizeof err) == ERYX_OK);
    placeholder = eryx__net_secret_placeholder(template_net, 0);
    /* A connection, to start the poller thread and learn its clock, then
     * TLS on it: the context (the system's CA store) is made once, in
     * hundreds of milliseconds. */
    static const char first[] = "connect {\"addr\":\"127.0.0.1\",\"port\":1}",
                      tls[] = "tls {\"conn\":0}";
    run r = {.net = template_net};
    capture_poller = 1;
    submit(&r, first, sizeof first - 1);
    FUZZ_CHECK(have_poller && pthread_getcpuclockid(poller_thread, &poller_clock) == 0);
    check_all(&r);
    submit(&r, tls, sizeof tls - 1);
    FUZZ_CHECK(template_net->conf->ctx != NULL);
    eryx__net_close_all(template_net);
    join_peers();
    for (size_t i = 0; i < r.n_calls; i++) {
        FUZZ_CHECK(r.calls[i]->call.refs == 1);
        json_decref(r.calls[i]->value);
        free(r.calls[i]);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run r;
    memset(&r, 0, sizeof r);
    r.net = eryx__net_share(template_net);
    FUZZ_CHECK(r.net);
    const char *p = (const char *)data, *end = p + size;
    for (int lines = 0; p < end && lines < MAX_LINES; lines++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        check_all(&r);
        check_buffers(&r);
        if (n == 5 && !memcmp(p, "#wait", 5)) {
            wait_all(&r);
        } else if (n == 6 && !memcmp(p, "#sleep", 6)) {
            struct timespec ts = {0, 2 * MS};
            nanosleep(&ts, NULL);
        } else if (r.n_calls < MAX_CALLS) {
            submit(&r, p, n);
        }
        p += n + 1;
    }
    wait_all(&r);
    check_all(&r);
    check_buffers(&r);
    pthread_mutex_lock(&eryx__net_g.mu);
    int open = r.net->conns != NULL;
    pthread_mutex_unlock(&eryx__net_g.mu);
    if (open)
        check_poller_idle();
    eryx__net_free(r.net);
    /* The network's last references go (a lookup's with its thread). */
    uint64_t limit = eryx__now_ns() + 5000 * MS;
    pthread_mutex_lock(&mu);
    while (lookups_running > 0 && eryx__now_ns() < limit) {
        struct timespec ts = {(time_t)(limit / 1000000000u), (long)(limit % 1000000000u)};
        pthread_cond_timedwait(&cv, &mu, &ts);
    }
    FUZZ_CHECK(lookups_running == 0);
    for (size_t i = 0; i < r.n_calls; i++) {
        while (r.calls[i]->call.refs > 1 && eryx__now_ns() < limit) {
            struct timespec ts = {(time_t)(limit / 1000000000u), (long)(limit % 1000000000u)};
            pthread_cond_timedwait(&cv, &mu, &ts);
        }
        FUZZ_CHECK(r.calls[i]->call.refs == 1);
    }
    pthread_mutex_unlock(&mu);
    join_peers();
    for (size_t i = 0; i < r.n_calls; i++) {
        json_decref(r.calls[i]->value);
        free(r.calls[i]);
    }
    return 0;
}
