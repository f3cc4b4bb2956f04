/*
 * What clients of `eryx mcp --http` send, through the server's request
 * handling (cli/mcp_http.c's serve_connection, as a connection's thread
 * runs it). The input is the bytes sent, in pieces split at each 0xFF
 * byte, each piece sent once the server has been quiet for QUIET_MS after
 * the one before; a piece that starts with 0xFE is sent on a new
 * connection, the one before it cut (at most MAX_CONNS). In a piece, "@S"
 * becomes the Mcp-Session-Id of the latest answer that carried one (the
 * ids are 128 random bits), and "@E" the id of the latest event of an
 * event stream, so that a session's requests follow its initialize and a
 * GET on a new connection can resume a cut stream. Requests, keep-alive
 * and pipelining, bodies cut short, sessions, DELETE, Last-Event-ID,
 * tools/call event streams, on sandboxes from the runtime with code under
 * a 300 ms limit. "HEAD" is sent as "HEAX": the reader below could not
 * tell where an answer to HEAD ends (its Content-Length is the GET's, with
 * no body); tests/mcp/http_auth.sh tests HEAD.
 *
 * Properties beyond "no crash, no leak, no UB": each connection ends once
 * its client's does; every answer is a well-formed HTTP/1.1 response as
 * eryx's own client reads it (cli/http_resp.c: status, framing by length
 * or chunks, event streams), whole unless its client had gone; every JSON
 * body and event is a JSON-RPC 2.0 message within --mcp-max-message.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_sandbox.h"
#include "http_resp.h"
#include "mcp.h"
#include "mcp_server.h"

#define MAX_MESSAGE 65536u
#define MAX_INPUT (4 * MAX_MESSAGE)
#define QUIET_MS 10
#define MAX_WAIT_MS 1500
#define MAX_CONNS 4

static eryx_sandbox_config cfg;
static int listen_fd;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_mcp_init(&cfg);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(listen_fd >= 0 && bind(listen_fd, (struct sockaddr *)&a, sizeof a) == 0 &&
               listen(listen_fd, 4) == 0);
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* What the pieces' "@S" and "@E" become, and when the server last wrote
 * on any connection. */
typedef struct shared {
    pthread_mutex_t lock;
    char sid[256];
    char event_id[HTTP_EVENT_ID_MAX];
    _Atomic uint64_t last_ms;
} shared;

typedef struct conn {
    shared *sh;
    int fd, server_fd;
    pthread_t reader, server;
    _Atomic int gone;         /* the client has cut or shut its side */
    http_resp r;
} conn;

/* Each JSON body or event: a JSON-RPC 2.0 message (an event without data,
 * the priming one of a resumable stream, aside; a text/plain body is for
 * people). */
static void on_message(void *ud, const char *text, size_t len)
{
    const conn *c = ud;
    if (getenv("ERYX_FUZZ_ECHO"))
        fprintf(stderr, "< %.*s\n", (int)len, text);
    if (len == 0 || !(c->r.json || c->r.sse))
        return;
    FUZZ_CHECK(len <= MAX_MESSAGE);
    json_error_t e;
    json_t *v = json_loadb(text, len, JSON_ALLOW_NUL, &e);
    if (!json_is_object(v))
        fprintf(stderr, "the server sent %.*s (%s)\n", (int)(len < 2000 ? len : 2000), text,
                e.text);
    FUZZ_CHECK(json_is_object(v));
    const char *version = json_string_value(json_object_get(v, "jsonrpc"));
    FUZZ_CHECK(version && strcmp(version, "2.0") == 0);
    json_decref(v);
}

/* Notes the session and event ids of the answer being read. */
static void note_ids(conn *c)
{
    if (!c->r.session[0] && !c->r.has_last_id)
        return;
    pthread_mutex_lock(&c->sh->lock);
    if (c->r.session[0])
        snprintf(c->sh->sid, sizeof c->sh->sid, "%s", c->r.session);
    if (c->r.has_last_id && c->r.last_id[0])
        snprintf(c->sh->event_id, sizeof c->sh->event_id, "%s", c->r.last_id);
    pthread_mutex_unlock(&c->sh->lock);
}

/* One byte at a time: a complete response's end is where the next
 * begins. */
static void *reader_main(void *arg)
{
    conn *c = arg;
    char buf[4096];
    http_resp_init(&c->r, MAX_MESSAGE);
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n <= 0)
            break;
        c->sh->last_ms = now_ms();
        for (ssize_t i = 0; i < n; i++) {
            int rc = http_resp_feed(&c->r, buf + i, 1, on_message, c);
            if (rc < 0)
                fprintf(stderr, "malformed answer: %s\n", c->r.error);
            FUZZ_CHECK(rc >= 0);
            FUZZ_CHECK(c->r.dropped == 0);
            note_ids(c);
            if (rc == 1) {
                FUZZ_CHECK(c->r.http11 && c->r.status >= 200 && c->r.status <= 599);
                http_resp_clear(&c->r);
                http_resp_init(&c->r, MAX_MESSAGE);
            }
        }
    }
    /* An answer cut short: only one the server was right to let go, its
     * client having gone, or one read to the connection's end. */
    if (http_resp_started(&c->r) && http_resp_eof(&c->r, on_message, c) != 1)
        FUZZ_CHECK(c->gone);
    http_resp_clear(&c->r);
    return NULL;
}

static void *server_main(void *arg)
{
    conn *c = arg;
    eryx_mcp_http_serve_fd(c->server_fd, MAX_MESSAGE);
    return NULL;
}

static void conn_open(conn *c, shared *sh)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    FUZZ_CHECK(getsockname(listen_fd, (struct sockaddr *)&a, &al) == 0);
    c->sh = sh;
    c->gone = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(c->fd >= 0 && connect(c->fd, (struct sockaddr *)&a, sizeof a) == 0);
    c->server_fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    FUZZ_CHECK(c->server_fd >= 0);
    FUZZ_CHECK(pthread_create(&c->server, NULL, server_main, c) == 0);
    FUZZ_CHECK(pthread_create(&c->reader, NULL, reader_main, c) == 0);
}

/* The client goes: cut (both ways at once, as a broken network does) or
 * done sending (the server reads to the end). Returns once the server and
 * the reader are done with the connection. */
static void conn_close(conn *c, int cut)
{
    c->gone = 1;
    shutdown(c->fd, cut ? SHUT_RDWR : SHUT_WR);
    if (cut) {
        /* Closed at once: what the server writes from here on is lost. */
        pthread_join(c->reader, NULL);
        close(c->fd);
        pthread_join(c->server, NULL);
    } else {
        pthread_join(c->server, NULL);
        pthread_join(c->reader, NULL);
        close(c->fd);
    }
}

/* Sends piece[0..n) with "@S" and "@E" replaced, and "HEAD" as "HEAX". */
static void send_piece(conn *c, const uint8_t *piece, size_t n)
{
    char sid[256], event_id[HTTP_EVENT_ID_MAX];
    pthread_mutex_lock(&c->sh->lock);
    memcpy(sid, c->sh->sid, sizeof sid);
    memcpy(event_id, c->sh->event_id, sizeof event_id);
    pthread_mutex_unlock(&c->sh->lock);
    size_t sid_len = strlen(sid), id_len = strlen(event_id);
    size_t most = sid_len > id_len ? sid_len : id_len;
    char *out = malloc(n * (most > 2 ? most : 2) + 1);
    FUZZ_CHECK(out);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (piece[i] == '@' && i + 1 < n && (piece[i + 1] == 'S' || piece[i + 1] == 'E')) {
            const char *with = piece[i + 1] == 'S' ? sid : event_id;
            size_t k = piece[i + 1] == 'S' ? sid_len : id_len;
            memcpy(out + m, with, k);
            m += k;
            i++;
        } else if (piece[i] == 'D' && m >= 3 && memcmp(out + m - 3, "HEA", 3) == 0) {
            out[m++] = 'X';
        } else {
            out[m++] = (char)piece[i];
        }
    }
    if (getenv("ERYX_FUZZ_ECHO"))
        fprintf(stderr, "> %.*s\n", (int)m, out);
    for (size_t sent = 0; sent < m;) {
        ssize_t k = write(c->fd, out + sent, m - sent);
        if (k <= 0)
            break;
        sent += (size_t)k;
    }
    free(out);
}

/* The accept loop's ticks (progress, late interrupts), while the input
 * is served. */
static _Atomic int ticking;

static void *ticker_main(void *arg)
{
    (void)arg;
    for (unsigned i = 0; ticking; i++) {
        if (i % 10 == 0)
            eryx_mcp_progress_tick();
        usleep(5000);
    }
    return NULL;
}

static void wait_quiet(shared *sh)
{
    uint64_t start = now_ms();
    sh->last_ms = start;
    while (now_ms() - sh->last_ms < QUIET_MS && now_ms() - start < MAX_WAIT_MS)
        usleep(2000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    eryx_cli_mcp m = {.max_message = MAX_MESSAGE, .max_sessions = 2};
    FUZZ_CHECK(eryx_mcp_serve_begin(&m, fuzz_rt, &cfg) == 0);
    shared sh = {.lock = PTHREAD_MUTEX_INITIALIZER};
    conn conns[MAX_CONNS];
    int n_conns = 1;
    pthread_t ticker;
    ticking = 1;
    FUZZ_CHECK(pthread_create(&ticker, NULL, ticker_main, NULL) == 0);
    conn_open(&conns[0], &sh);
    for (size_t start = 0; start <= size;) {
        const uint8_t *end = memchr(data + start, 0xFF, size - start);
        size_t n = end ? (size_t)(end - (data + start)) : size - start;
        const uint8_t *piece = data + start;
        if (n > 0 && piece[0] == 0xFE && n_conns < MAX_CONNS) {
            conn_close(&conns[n_conns - 1], 1);
            conn_open(&conns[n_conns++], &sh);
            piece++, n--;
            start++;
        }
        send_piece(&conns[n_conns - 1], piece, n);
        wait_quiet(&sh);
        start += n + 1;
    }
    conn_close(&conns[n_conns - 1], 0);
    ticking = 0;
    pthread_join(ticker, NULL);
    eryx_mcp_http_end_sessions();
    eryx_mcp_serve_end();
    return 0;
}
