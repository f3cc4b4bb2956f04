/*
 * The messages an `eryx serve` client sends (cli/serve_request.c and the
 * session operations of serve_session.c), through the real connection
 * code: each line of the input is one text message, sent masked over a
 * socket pair to serve_client(), which handles them as it does a peer's
 * (execute, resume, cancel, reply, stdin, the session operations, with
 * sandboxes from a pool, sessions in a memory store) until the input ends
 * and the connection with it. A line starting with 0x02 goes as a binary
 * message. The code the messages carry runs in the guest under a 300 ms
 * limit. Properties beyond "no crash, no leak, no UB": serve_client
 * returns once the peer has gone, every message the server sends is one
 * JSON object within --max-message, and the pool has its sandboxes back.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_sandbox.h"
#include "serve.h"
#include "ws.h"

#define MAX_MESSAGE 65536u

static server sv;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    fuzz_runtime_init();
    serve_cfg *c = &sv.cfg;
    c->pool = 2;
    c->cache = 2;
    c->max_message = MAX_MESSAGE;
    c->max_timeout_ms = 300;
    c->max_memory = 64u << 20;
    c->max_output = 64u << 10;
    c->max_callbacks = 8;
    c->callback_timeout_ms = 200;
    c->journal_ttl_ms = 60000;
    c->lock_ttl_ms = 3000;
    c->lock_wait_ms = 200;
    c->quiet = 1;
    c->no_auth = 1;
    pthread_mutex_init(&sv.lock, NULL);
    serve_slots_init(&sv);
    snprintf(sv.replica, sizeof sv.replica, "fuzz");
    memset(sv.journal_key, 0x5a, 32);
    sv.journal_key_len = 32;
    char err[256];
    FUZZ_CHECK(store_open("memory://?max_bytes=8388608", &sv.st, err, sizeof err) == STORE_OK);
    sv.rt = fuzz_rt;
    eryx_sandbox_config_default(&sv.sbcfg);
    sv.sbcfg.max_memory = c->max_memory;
    sv.sbcfg.max_output = c->max_output;
    sv.sbcfg.max_callbacks = c->max_callbacks;
    sv.sbcfg.callback_timeout_ns = c->callback_timeout_ms * 1000000ull;
    sv.sbcfg.timeout_ns = c->max_timeout_ms * 1000000ull;
    sv.sbcfg.on_output = serve_output;
    eryx_pool_config pc;
    eryx_pool_config_default(&pc);
    pc.sandbox = &sv.sbcfg;
    pc.max_size = c->pool;
    pc.min_idle = 0;
    FUZZ_CHECK(eryx_pool_new(sv.rt, &pc, &sv.pool) == ERYX_OK);
    return 0;
}

/* The client's end: one thread writes the messages, another reads what
 * the server sends until it closes, checking each frame. The close goes
 * once the server has been quiet for QUIET_MS (at most MAX_WAIT_MS after
 * the last message), so that executions run with what the input sent them
 * rather than being cancelled by the client's going at once. */
#define QUIET_MS 10
#define MAX_WAIT_MS 1500

typedef struct peer {
    int fd;
    const uint8_t *wire;      /* the framed messages */
    size_t wire_len;
    uint8_t *buf;             /* received, not yet parsed */
    size_t len, cap;
    _Atomic uint64_t last_ms; /* when the server last sent */
} peer;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void check_frames(peer *p)
{
    size_t off = 0;
    for (;;) {
        ws_frame f;
        long r = ws_parse_frame(p->buf + off, p->len - off, 0, MAX_MESSAGE, &f);
        FUZZ_CHECK(r >= 0); /* the server sends well-formed frames within the bound */
        if (r == 0)
            break;
        FUZZ_CHECK(f.fin); /* and never fragments */
        if (f.opcode == WS_TEXT) {
            json_error_t e;
            json_t *v = json_loadb((const char *)f.payload, (size_t)f.len, JSON_ALLOW_NUL, &e);
            if (!json_is_object(v))
                fprintf(stderr, "the server sent %.*s (%s)\n", (int)(f.len < 2000 ? f.len : 2000),
                        (const char *)f.payload, e.text);
            FUZZ_CHECK(json_is_object(v));
            json_decref(v);
        }
        off += (size_t)r;
    }
    memmove(p->buf, p->buf + off, p->len - off);
    p->len -= off;
}

static void *reader_main(void *arg)
{
    peer *p = arg;
    for (;;) {
        if (p->cap - p->len < 65536) {
            p->cap = p->cap * 2 + 65536;
            p->buf = realloc(p->buf, p->cap);
            FUZZ_CHECK(p->buf);
        }
        ssize_t n = read(p->fd, p->buf + p->len, p->cap - p->len);
        if (n <= 0)
            break;
        p->last_ms = now_ms();
        p->len += (size_t)n;
        check_frames(p);
    }
    return NULL;
}

/* One masked frame of payload into out (which has room). */
static size_t put_frame(uint8_t *out, int opcode, const uint8_t *payload, size_t n)
{
    static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    size_t h = ws_frame_header(out, opcode, n, mask);
    memcpy(out + h, payload, n);
    ws_mask(out + h, n, mask, 0);
    return h + n;
}

static void *writer_main(void *arg)
{
    peer *p = arg;
    for (size_t sent = 0; sent < p->wire_len;) {
        ssize_t n = send(p->fd, p->wire + sent, p->wire_len - sent, MSG_NOSIGNAL);
        if (n <= 0)
            return NULL; /* the server closed first */
        sent += (size_t)n;
    }
    uint64_t start = now_ms();
    p->last_ms = start;
    while (now_ms() - p->last_ms < QUIET_MS && now_ms() - start < MAX_WAIT_MS)
        usleep(2000);
    uint8_t close_frame[16];
    static const uint8_t normal[2] = {0x03, 0xe8};
    size_t n = put_frame(close_frame, WS_CLOSE, normal, 2);
    ssize_t r = send(p->fd, close_frame, n, MSG_NOSIGNAL);
    (void)r;
    shutdown(p->fd, SHUT_WR);
    return NULL;
}

/* The input's lines as frames: text, or binary after a 0x02. */
static uint8_t *frame_lines(const uint8_t *data, size_t size, size_t *len)
{
    uint8_t *wire = malloc(size + 16 * (size + 1));
    FUZZ_CHECK(wire);
    size_t w = 0;
    for (size_t i = 0; i <= size;) {
        const uint8_t *end = memchr(data + i, '\n', size - i);
        size_t n = end ? (size_t)(end - (data + i)) : size - i;
        int binary = n && data[i] == 0x02;
        if (n || end)
            w += put_frame(wire + w, binary ? WS_BINARY : WS_TEXT, data + i + binary,
                           n - (size_t)binary);
        i += n + 1;
    }
    *len = w;
    return wire;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4 * MAX_MESSAGE)
        return 0;
    int sp[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
    peer p = {.fd = sp[1]};
    p.wire = frame_lines(data, size, &p.wire_len);
    ws_conn *c = ws_conn_new(sp[0], NULL, 0, NULL, MAX_MESSAGE);
    FUZZ_CHECK(c);
    pthread_t reader, writer;
    FUZZ_CHECK(pthread_create(&reader, NULL, reader_main, &p) == 0);
    FUZZ_CHECK(pthread_create(&writer, NULL, writer_main, &p) == 0);
    serve_client(&sv, c, "fuzz");
    pthread_join(writer, NULL);
    ws_conn_free(c); /* closes sp[0]: the reader ends */
    pthread_join(reader, NULL);
    close(sp[1]);
    eryx_pool_stats st = {.size = sizeof st};
    eryx_pool_get_stats(sv.pool, &st);
    FUZZ_CHECK(st.in_use == 0);
    free(p.buf);
    free((void *)p.wire);
    return 0;
}
