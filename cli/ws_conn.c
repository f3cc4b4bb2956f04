/*
 * WebSocket connections (ws_conn.h): non-blocking socket, optional TLS,
 * poll with deadlines everywhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "net/base64.h"
#include "ws.h"
#include "ws_conn.h"

#define SEND_TIMEOUT_MS 10000
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Threads: one reads (ws_conn_recv), any may send. lock guards the socket
 * and TLS calls and the error; send_lock keeps a message's frames together. */
struct ws_conn {
    int fd;
    tls_conn *tls;
    int client;
    atomic_int closed;
    pthread_mutex_t lock, send_lock;
    size_t max_message;        /* the most one message received may hold */
    size_t send_max;           /* and one sent: max_message, or the server's
                                * smaller bound (client side) */
    uint64_t peer_max_timeout_ms; /* the server's time limit, if it said */
    uint8_t *rbuf;             /* bytes read, not yet parsed */
    size_t rlen, rcap, consumed;
    uint8_t *msg;              /* a fragmented message being assembled */
    size_t msg_len, msg_cap;
    int msg_op;                /* its opcode, or -1 when there is none */
    int head_only;             /* the request was HEAD: answers carry no body */
    uint8_t *parked;           /* the rest of a message given up on, sent */
    size_t parked_len;         /* before the next (send_lock guards both) */
    char host[256];
    char err[256];
};

static int remaining(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t r = deadline - (int64_t)eryx_cli_now_ms();
    return r < 0 ? 0 : r > 1 << 30 ? 1 << 30 : (int)r;
}

static int fail(ws_conn *c, const char *fmt, const char *arg)
{
    pthread_mutex_lock(&c->lock);
    if (!c->err[0])
        snprintf(c->err, sizeof c->err, fmt, arg);
    pthread_mutex_unlock(&c->lock);
    c->closed = 1;
    return -1;
}

ws_conn *ws_conn_new(int fd, tls_ctx *tls, int client, const char *host, size_t max_message)
{
    ws_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->client = client;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->send_lock, NULL);
    c->max_message = c->send_max = max_message;
    c->msg_op = -1;
    snprintf(c->host, sizeof c->host, "%s", host ? host : "");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (tls && !(c->tls = tls_conn_new(tls, fd, client ? c->host : NULL))) {
        ws_conn_free(c);
        return NULL;
    }
    return c;
}

void ws_conn_free(ws_conn *c)
{
    if (!c)
        return;
    tls_conn_free(c->tls);
    close(c->fd);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->send_lock);
    free(c->rbuf);
    free(c->msg);
    free(c->parked);
    free(c);
}

int ws_conn_fd(const ws_conn *c) { return c->fd; }
const char *ws_conn_error(const ws_conn *c) { return c->err[0] ? c->err : "connection closed"; }

void ws_conn_shutdown(ws_conn *c)
{
    c->closed = 1;
    shutdown(c->fd, SHUT_RDWR);
}

/* ---- bytes ------------------------------------------------------------ */

/* >0 bytes, 0 end of stream, TLS_WANT_READ/WRITE, TLS_ERROR. One TLS
 * object must not be used by two threads at once: the reading and the
 * sending thread take turns (never while they wait). */
static long raw_read(ws_conn *c, void *buf, size_t n)
{
    long r;
    pthread_mutex_lock(&c->lock);
    if (c->tls) {
        r = tls_conn_read(c->tls, buf, n);
    } else {
        ssize_t k = recv(c->fd, buf, n, 0);
        r = k >= 0 ? k
            : errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? TLS_WANT_READ
                                                                         : TLS_ERROR;
    }
    pthread_mutex_unlock(&c->lock);
    return r;
}

static long raw_write(ws_conn *c, const void *buf, size_t n)
{
    long r;
    pthread_mutex_lock(&c->lock);
    if (c->tls) {
        r = tls_conn_write(c->tls, buf, n);
    } else {
        ssize_t k = send(c->fd, buf, n, MSG_NOSIGNAL);
        r = k >= 0 ? k
            : errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? TLS_WANT_WRITE
                                                                          : TLS_ERROR;
    }
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* Waits for the socket to be ready for what want asks (TLS_WANT_*). 1
 * ready, 0 timed out. */
static int wait_for(ws_conn *c, long want, int64_t deadline)
{
    struct pollfd p = {.fd = c->fd, .events = want == TLS_WANT_WRITE ? POLLOUT : POLLIN};
    for (;;) {
        int r = poll(&p, 1, remaining(deadline));
        if (r >= 0)
            return r > 0;
        if (errno != EINTR)
            return 0;
    }
}

/* A failed read or write, with TLS's reason when there is one. */
static int fail_io(ws_conn *c, const char *doing)
{
    char why[160] = "", what[256];
    pthread_mutex_lock(&c->lock); /* the TLS object's, as in raw_read */
    if (c->tls)
        snprintf(why, sizeof why, "%s", tls_conn_error(c->tls));
    pthread_mutex_unlock(&c->lock);
    snprintf(what, sizeof what, "the connection failed while %s%s%s", doing, why[0] ? ": " : "",
             why);
    return fail(c, "%s", what);
}

/* How often a send that may give up asks whether it does. */
#define GIVE_UP_SLICE_MS 10

/* Writes buf whole, waiting for the peer until the deadline; or, when
 * give_up (which may be NULL) says so while it waits, keeps what is left
 * in c->parked (send_lock held) and returns WS_PARKED. A TLS write retried
 * later from that copy is the same bytes from another place, which
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER (serve_tls.c) allows. */
static int write_some_or_park(ws_conn *c, const void *buf, size_t n, int64_t deadline,
                              int (*give_up)(void *), void *arg)
{
    const uint8_t *p = buf;
    while (n) {
        if (c->closed)
            return -1;
        long r = raw_write(c, p, n);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (r != TLS_WANT_READ && r != TLS_WANT_WRITE)
            return fail_io(c, "sending");
        int64_t until = deadline;
        if (give_up) {
            if (give_up(arg)) {
                if (!(c->parked = malloc(n)))
                    return fail(c, "%s", "out of memory");
                memcpy(c->parked, p, n);
                c->parked_len = n;
                return WS_PARKED;
            }
            int64_t slice = (int64_t)eryx_cli_now_ms() + GIVE_UP_SLICE_MS;
            until = slice < deadline ? slice : deadline;
        }
        if (!wait_for(c, r, until) && until == deadline)
            return fail(c, "%s", "the peer stopped reading (send timed out)");
    }
    return 0;
}

static int write_all(ws_conn *c, const void *buf, size_t n, int64_t deadline)
{
    return write_some_or_park(c, buf, n, deadline, NULL, NULL);
}

/* Sends the rest of a message given up on, first; send_lock held. */
static int send_parked(ws_conn *c, int64_t deadline)
{
    if (!c->parked)
        return 0;
    int r = write_all(c, c->parked, c->parked_len, deadline);
    free(c->parked);
    c->parked = NULL;
    c->parked_len = 0;
    return r;
}

/* Reads more into rbuf: 1 got bytes, 0 timed out, -1 closed or failed. */
static int fill(ws_conn *c, int64_t deadline)
{
    if (c->consumed) {
        memmove(c->rbuf, c->rbuf + c->consumed, c->rlen - c->consumed);
        c->rlen -= c->consumed;
        c->consumed = 0;
    }
    size_t limit = c->max_message + WS_MAX_HEADER + HTTP_MAX_HEAD;
    if (c->rlen == c->rcap) {
        if (c->rcap >= limit)
            return fail(c, "%s", "message too large");
        size_t cap = c->rcap ? c->rcap * 2 : 16384;
        uint8_t *p = realloc(c->rbuf, cap < limit ? cap : limit);
        if (!p)
            return fail(c, "%s", "out of memory");
        c->rbuf = p;
        c->rcap = cap < limit ? cap : limit;
    }
    for (;;) {
        long r = raw_read(c, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (r > 0) {
            c->rlen += (size_t)r;
            return 1;
        }
        if (r == 0)
            return fail(c, "%s", "the peer closed the connection");
        if (r == TLS_ERROR)
            return fail_io(c, "reading");
        if (!wait_for(c, r, deadline))
            return 0;
    }
}

/* A server's refusal in the handshake (a TLS 1.3 client certificate
 * missing: the alert comes after the client has sent its request) is
 * followed by a lingering close: closed with the request unread, the
 * socket sent a reset, which could reach the client before the alert and
 * lose it, and the client said only that the connection failed. What
 * comes is read and dropped until the client closes, at most 64 KiB and
 * LINGER_MS (within deadline). */
#define LINGER_MS 1000

static void linger(ws_conn *c, int64_t deadline)
{
    int64_t until = (int64_t)eryx_cli_now_ms() + LINGER_MS;
    if (deadline >= 0 && deadline < until)
        until = deadline;
    shutdown(c->fd, SHUT_WR);
    char buf[4096];
    for (size_t got = 0; got < 65536 && wait_for(c, TLS_WANT_READ, until);) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n <= 0 && !(n < 0 && errno == EINTR))
            return;
        got += n > 0 ? (size_t)n : 0;
    }
}

static int handshake_tls(ws_conn *c, int64_t deadline)
{
    if (!c->tls)
        return 0;
    for (;;) {
        char err[200] = "";
        pthread_mutex_lock(&c->lock);
        int r = tls_conn_handshake(c->tls, err, sizeof err);
        pthread_mutex_unlock(&c->lock);
        if (r == 1)
            return 0;
        if (r == TLS_ERROR) {
            if (!c->client)
                linger(c, deadline);
            return fail(c, "%s", err);
        }
        if (!wait_for(c, r, deadline))
            return fail(c, "%s", "TLS handshake timed out");
    }
}

/* ---- the opening handshake -------------------------------------------- */

int ws_conn_read_request(ws_conn *c, http_req *req, int timeout_ms)
{
    int64_t deadline = (int64_t)eryx_cli_now_ms() + timeout_ms;
    if (handshake_tls(c, deadline) < 0)
        return -1;
    for (;;) {
        int h = http_parse_head((const char *)c->rbuf, c->rlen, req);
        if (h > 0) {
            c->consumed = (size_t)h;
            c->head_only = strcmp(req->method, "HEAD") == 0;
            return 1;
        }
        if (h == -2) {
            ws_conn_http_answer(c, 431, "Request Header Fields Too Large", "text/plain",
                                "the request's head is over 16 KiB\n");
            return fail(c, "%s", "request head too large");
        }
        if (h < 0) {
            ws_conn_http_answer(c, 400, "Bad Request", "text/plain", "malformed request\n");
            return fail(c, "%s", "malformed HTTP request");
        }
        int r = fill(c, deadline);
        if (r <= 0)
            return c->rlen == 0 && r < 0 ? 0 : fail(c, "%s", "no request in time");
    }
}

/* An answer with more header lines (each ending in CRLF). */
static void http_answer_with(ws_conn *c, int code, const char *reason, const char *type,
                             const char *headers, const char *body)
{
    /* One write, head and body together: a client that stops reading after
     * the head still has the reason. */
    const char *fmt = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "%sConnection: close\r\n\r\n%s";
    size_t blen = strlen(body);
    if (c->head_only)
        body = "";      /* the length GET would have, no body (RFC 9110 9.3.2) */
    int n = snprintf(NULL, 0, fmt, code, reason, type, blen, headers, body);
    char *answer = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (answer) {
        snprintf(answer, (size_t)n + 1, fmt, code, reason, type, blen, headers, body);
        write_all(c, answer, (size_t)n, (int64_t)eryx_cli_now_ms() + SEND_TIMEOUT_MS);
        free(answer);
    }
    c->closed = 1;
}

void ws_conn_http_answer(ws_conn *c, int code, const char *reason, const char *type,
                         const char *body)
{
    http_answer_with(c, code, reason, type, "", body);
}

/* 1 if key is a Sec-WebSocket-Key: the base64 of 16 bytes (RFC 6455 4.1). */
static int key_valid(const char *key)
{
    uint8_t *raw;
    size_t n;
    if (strlen(key) != 24 || eryx__b64_decode(key, 24, &raw, &n) != 0)
        return 0;
    free(raw);
    return n == 16;
}

/* base64(SHA-1(key GUID)) into out (29 bytes). */
static int accept_value(const char *key, char out[29])
{
    char buf[128];
    uint8_t sha[20];
    int n = snprintf(buf, sizeof buf, "%s%s", key, WS_GUID);
    if (n < 0 || (size_t)n >= sizeof buf || crypto_sha1(buf, (size_t)n, sha) < 0)
        return -1;
    size_t len;
    char *b = eryx__b64_encode(sha, sizeof sha, &len);
    if (!b || len != 28) {
        free(b);
        return -1;
    }
    memcpy(out, b, 29);
    free(b);
    return 0;
}

int ws_conn_accept(ws_conn *c, const http_req *req, const char *headers)
{
    char accept[29];
    /* RFC 6455 4.1-4.2: a GET of HTTP/1.1 at least, with a Host. */
    if (strcmp(req->method, "GET") != 0 || req->http10 || !req->host[0] ||
        !req->upgrade_websocket || !req->connection_upgrade || !key_valid(req->ws_key) ||
        accept_value(req->ws_key, accept) < 0) {
        ws_conn_http_answer(c, 400, "Bad Request", "text/plain",
                            "a WebSocket upgrade (RFC 6455) is expected here\n");
        return -1;
    }
    if (strcmp(req->ws_version, "13") != 0) {
        http_answer_with(c, 426, "Upgrade Required", "text/plain",
                         "Sec-WebSocket-Version: 13\r\n",
                         "Sec-WebSocket-Version 13 is required\n");
        return -1;
    }
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     WS_MAX_MESSAGE_HEADER ": %zu\r\n%s\r\n",
                     accept, c->max_message, headers ? headers : "");
    if (n < 0 || (size_t)n >= sizeof head)
        return -1;
    return write_all(c, head, (size_t)n, (int64_t)eryx_cli_now_ms() + SEND_TIMEOUT_MS);
}

/* The value of header name in the response head h (NUL-terminated), into
 * out; 0 if found. */
static int response_header(const char *h, const char *name, char *out, size_t cap)
{
    size_t k = strlen(name);
    for (const char *p = strstr(h, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, k) != 0 || line[k] != ':')
            continue;
        const char *v = line + k + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t n = strcspn(v, "\r");
        while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (n >= cap)
            return -1;
        memcpy(out, v, n);
        out[n] = '\0';
        return 0;
    }
    return -1;
}

/* Reads the answer head (through the blank line) into rbuf; its length. */
static long read_answer_head(ws_conn *c, int64_t deadline)
{
    for (;;) {
        uint8_t *end = c->rlen >= 4 ? memmem(c->rbuf, c->rlen, "\r\n\r\n", 4) : NULL;
        if (end)
            return (long)(end - c->rbuf) + 4;
        if (c->rlen >= HTTP_MAX_HEAD)
            return fail(c, "%s", "the server's answer head is too long");
        int r = fill(c, deadline);
        if (r <= 0)
            return r == 0 ? fail(c, "%s", "no answer from the server in time") : -1;
    }
}

/* A refusal's body says why (the server writes it after the head, maybe in
 * another segment): reads what Content-Length announces, up to what is
 * quoted, waiting at most a second more. */
static void read_refusal_body(ws_conn *c, const char *head, size_t head_len)
{
    char value[32];
    if (response_header(head, "Content-Length", value, sizeof value) < 0)
        return;
    size_t want = strtoul(value, NULL, 10);
    if (want > 512)
        want = 512;
    int64_t deadline = (int64_t)eryx_cli_now_ms() + 1000;
    while (c->rlen - head_len < want && fill(c, deadline) > 0)
        ;
}

static void quote_answer(ws_conn *c, const char *head, size_t head_len)
{
    read_refusal_body(c, head, head_len);
    const char *body = (const char *)c->rbuf + head_len;
    size_t body_len = c->rlen - head_len;
    size_t line = strcspn(head, "\r");
    snprintf(c->err, sizeof c->err, "the server refused the connection: %.*s%s%.*s",
             (int)(line < 80 ? line : 80), head, body_len ? ": " : "",
             (int)(body_len < 120 ? body_len : 120), body);
    char *nl = strchr(c->err, '\n');
    if (nl)
        *nl = '\0';
}

/* The positive decimal number in header name of head, or 0. */
static unsigned long long header_number(const char *head, const char *name)
{
    char v[32], *end;
    if (response_header(head, name, v, sizeof v) < 0 || v[0] < '0' || v[0] > '9')
        return 0;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    return errno == 0 && *end == '\0' ? n : 0;
}

/* A server that says how large a message it takes (its --max-message) bounds
 * what this client sends too; one that says nothing (an older eryx) leaves
 * the client's own bound. Its time limit is kept for the client's
 * patience. */
static void adopt_peer_bounds(ws_conn *c, const char *head)
{
    unsigned long long bound = header_number(head, WS_MAX_MESSAGE_HEADER);
    if (bound > 0 && bound < c->send_max)
        c->send_max = (size_t)bound;
    c->peer_max_timeout_ms = header_number(head, WS_MAX_TIMEOUT_HEADER);
}

uint64_t ws_conn_peer_max_timeout_ms(const ws_conn *c)
{
    return c->peer_max_timeout_ms;
}

size_t ws_conn_send_max(const ws_conn *c)
{
    return c->send_max;
}

int ws_conn_connect(ws_conn *c, const char *host_header, const char *path,
                    const char *headers, int timeout_ms)
{
    int64_t deadline = (int64_t)eryx_cli_now_ms() + timeout_ms;
    uint8_t nonce[16];
    char key[32], expect[29];
    if (handshake_tls(c, deadline) < 0)
        return -1;
    if (getrandom(nonce, sizeof nonce, 0) != sizeof nonce)
        return fail(c, "%s", "no randomness");
    size_t klen;
    char *k = eryx__b64_encode(nonce, sizeof nonce, &klen);
    if (!k || klen >= sizeof key) {
        free(k);
        return fail(c, "%s", "out of memory");
    }
    memcpy(key, k, klen + 1);
    free(k);
    if (accept_value(key, expect) < 0)
        return fail(c, "%s", "cannot compute the handshake");
    size_t cap = 512 + strlen(host_header) + strlen(path) + (headers ? strlen(headers) : 0);
    char *req = malloc(cap);
    if (!req)
        return fail(c, "%s", "out of memory");
    int n = snprintf(req, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     path, host_header, key, headers ? headers : "");
    int w = write_all(c, req, (size_t)n, deadline);
    free(req);
    if (w < 0)
        return -1;
    long head_len = read_answer_head(c, deadline);
    if (head_len < 0)
        return -1;
    char *head = strndup((const char *)c->rbuf, (size_t)head_len);
    if (!head)
        return fail(c, "%s", "out of memory");
    char got[64];
    int ok = strncmp(head, "HTTP/1.1 101", 12) == 0;
    if (!ok) {
        quote_answer(c, head, (size_t)head_len);
        c->closed = 1;
    } else if (response_header(head, "Sec-WebSocket-Accept", got, sizeof got) < 0 ||
               strcmp(got, expect) != 0) {
        ok = 0;
        fail(c, "%s", "the server's WebSocket handshake is wrong");
    }
    if (ok)
        adopt_peer_bounds(c, head);
    free(head);
    if (!ok)
        return -1;
    c->consumed = (size_t)head_len;
    return 0;
}

/* ---- messages --------------------------------------------------------- */

static int send_frame(ws_conn *c, int opcode, const void *data, size_t len);

int ws_conn_send(ws_conn *c, int opcode, const void *data, size_t len)
{
    pthread_mutex_lock(&c->send_lock);
    int r = send_frame(c, opcode, data, len);
    pthread_mutex_unlock(&c->send_lock);
    return r;
}

static int send_frame(ws_conn *c, int opcode, const void *data, size_t len)
{
    if (c->closed)
        return -1;
    uint8_t hdr[WS_MAX_HEADER], mask[4];
    int64_t deadline = (int64_t)eryx_cli_now_ms() + SEND_TIMEOUT_MS;
    if (send_parked(c, deadline) < 0)
        return -1;
    if (!c->client) {
        size_t h = ws_frame_header(hdr, opcode, len, NULL);
        if (write_all(c, hdr, h, deadline) < 0)
            return -1;
        return write_all(c, data, len, deadline);
    }
    if (getrandom(mask, 4, 0) != 4)
        return fail(c, "%s", "no randomness");
    size_t h = ws_frame_header(hdr, opcode, len, mask);
    if (write_all(c, hdr, h, deadline) < 0)
        return -1;
    uint8_t chunk[16384];
    for (size_t off = 0; off < len; off += sizeof chunk) {
        size_t n = len - off < sizeof chunk ? len - off : sizeof chunk;
        memcpy(chunk, (const uint8_t *)data + off, n);
        ws_mask(chunk, n, mask, off);
        if (write_all(c, chunk, n, deadline) < 0)
            return -1;
    }
    return 0;
}

int ws_conn_parked(ws_conn *c)
{
    pthread_mutex_lock(&c->send_lock);
    int parked = c->parked != NULL;
    pthread_mutex_unlock(&c->send_lock);
    return parked;
}

/* msg (taken) as the compact JSON text of a message: NULL, with *rc
 * WS_TOO_LARGE when it is over send_max, or -1 (out of memory). */
static char *message_text(ws_conn *c, json_t *msg, size_t *len, int *rc)
{
    char *s = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (!s) {
        *rc = fail(c, "%s", "out of memory");
        return NULL;
    }
    *len = strlen(s);
    if (*len > c->send_max) {
        free(s);
        *rc = WS_TOO_LARGE;
        return NULL;
    }
    return s;
}

int ws_conn_send_json_or_park(ws_conn *c, json_t *msg, int (*give_up)(void *), void *arg)
{
    size_t len;
    int r;
    char *s = message_text(c, msg, &len, &r);
    if (!s)
        return r;
    uint8_t *frame = malloc(WS_MAX_HEADER + len);
    r = frame ? 0 : fail(c, "%s", "out of memory");
    if (r == 0) {
        /* The head and the body in one buffer: a rest kept is one piece. */
        size_t h = ws_frame_header(frame, WS_TEXT, len, NULL);
        memcpy(frame + h, s, len);
        int64_t deadline = (int64_t)eryx_cli_now_ms() + SEND_TIMEOUT_MS;
        pthread_mutex_lock(&c->send_lock);
        r = c->client || c->closed ? -1 : send_parked(c, deadline);
        if (r == 0)
            r = write_some_or_park(c, frame, h + len, deadline, give_up, arg);
        pthread_mutex_unlock(&c->send_lock);
    }
    free(frame);
    free(s);
    return r;
}

int ws_conn_send_json(ws_conn *c, json_t *msg)
{
    size_t len;
    int r;
    char *s = message_text(c, msg, &len, &r);
    if (!s)
        return r;
    r = ws_conn_send(c, WS_TEXT, s, len);
    free(s);
    return r;
}

void ws_conn_close(ws_conn *c, int code, const char *reason)
{
    if (c->closed)
        return;
    uint8_t body[125];
    size_t n = strlen(reason);
    if (n > sizeof body - 2)
        n = sizeof body - 2;
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)code;
    memcpy(body + 2, reason, n);
    ws_conn_send(c, WS_CLOSE, body, n + 2);
    c->closed = 1;
}

int ws_conn_buffered(ws_conn *c)
{
    if (c->rlen > c->consumed)
        return 1;
    pthread_mutex_lock(&c->lock);
    int r = c->tls && tls_conn_pending(c->tls) > 0;
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* Appends a fragment to the message being assembled; -1 past the limit. */
static int append_fragment(ws_conn *c, const ws_frame *f)
{
    if (f->len > c->max_message - c->msg_len)
        return -1;
    if (f->len == 0)
        return 0;
    size_t need = c->msg_len + (size_t)f->len;
    if (need > c->msg_cap) {
        size_t cap = c->msg_cap ? c->msg_cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *p = realloc(c->msg, cap);
        if (!p)
            return -1;
        c->msg = p;
        c->msg_cap = cap;
    }
    memcpy(c->msg + c->msg_len, f->payload, (size_t)f->len);
    c->msg_len = need;
    return 0;
}

/* A control frame: 0 handled, -1 the connection is over. */
static int control(ws_conn *c, const ws_frame *f)
{
    if (f->opcode == WS_PING)
        return ws_conn_send(c, WS_PONG, f->payload, (size_t)f->len);
    if (f->opcode == WS_PONG)
        return 0;
    int code = f->len >= 2 ? f->payload[0] << 8 | f->payload[1] : WS_CLOSE_NORMAL;
    /* RFC 6455 7.4: codes an endpoint may send (1004-1006 and 1015 are
     * reserved, 1016-2999 for the protocol, past 4999 none); a reason is
     * UTF-8. A valid close is echoed with its code. */
    int valid = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                (code >= 3000 && code <= 4999);
    int answer = f->len == 1 || !valid ? WS_CLOSE_PROTOCOL
                 : f->len > 2 && !ws_utf8_valid(f->payload + 2, (size_t)f->len - 2)
                     ? WS_CLOSE_INVALID
                     : code;
    ws_conn_close(c, answer, "");
    snprintf(c->err, sizeof c->err, "the peer closed the connection (%d)", code);
    return -1;
}

/* The frame f, a data frame: 1 and the message (data, len) when it ends one, 0
 * when more fragments are needed, -WS_CLOSE_PROTOCOL for a fragment out of
 * place, -WS_CLOSE_TOO_BIG for a message over the limit. */
static int data_frame(ws_conn *c, const ws_frame *f, uint8_t **data, size_t *len, int *op)
{
    if (f->opcode == WS_CONT) {
        if (c->msg_op < 0)
            return -WS_CLOSE_PROTOCOL; /* a continuation of nothing */
        if (append_fragment(c, f) < 0)
            return -WS_CLOSE_TOO_BIG;
        if (!f->fin)
            return 0;
        static uint8_t empty[1];
        *op = c->msg_op;
        c->msg_op = -1;
        *data = c->msg ? c->msg : empty;
        *len = c->msg_len;
        c->msg_len = 0;
        return 1;
    }
    if (c->msg_op >= 0)
        return -WS_CLOSE_PROTOCOL; /* a new message inside a fragmented one */
    if (!f->fin) {
        c->msg_op = f->opcode;
        c->msg_len = 0;
        return append_fragment(c, f) < 0 ? -WS_CLOSE_TOO_BIG : 0;
    }
    *op = f->opcode;
    *data = f->payload;
    *len = (size_t)f->len;
    return 1;
}

/* Parses what rbuf holds: 1 a message, 0 need more, -1 over. */
static int parse_buffered(ws_conn *c, uint8_t **data, size_t *len, int *binary)
{
    while (c->rlen > c->consumed) {
        ws_frame f;
        long r = ws_parse_frame(c->rbuf + c->consumed, c->rlen - c->consumed, !c->client,
                                c->max_message, &f);
        if (r == 0)
            return 0;
        if (r < 0) {
            ws_conn_close(c, (int)-r, r == -WS_CLOSE_TOO_BIG ? "message too large"
                                                             : "protocol error");
            return fail(c, "%s", r == -WS_CLOSE_TOO_BIG ? "message too large"
                                                        : "WebSocket protocol error");
        }
        c->consumed += (size_t)r;
        if (f.opcode >= WS_CLOSE) {
            if (control(c, &f) < 0)
                return -1;
            continue;
        }
        int op = WS_TEXT, d = data_frame(c, &f, data, len, &op);
        if (d < 0) {
            const char *why = d == -WS_CLOSE_TOO_BIG ? "message too large" : "bad fragmentation";
            ws_conn_close(c, -d, why);
            return fail(c, "%s", why);
        }
        if (d == 0)
            continue;
        *binary = op == WS_BINARY;
        if (!*binary && !ws_utf8_valid(*data, *len)) {
            ws_conn_close(c, WS_CLOSE_INVALID, "text is not UTF-8");
            return fail(c, "%s", "a text message that is not UTF-8");
        }
        return 1;
    }
    return 0;
}

int ws_conn_recv(ws_conn *c, int timeout_ms, uint8_t **data, size_t *len, int *binary)
{
    int64_t deadline = timeout_ms < 0 ? -1 : (int64_t)eryx_cli_now_ms() + timeout_ms;
    for (;;) {
        if (c->closed)
            return -1;
        int r = parse_buffered(c, data, len, binary);
        if (r != 0)
            return r;
        r = fill(c, deadline);
        if (r <= 0)
            return r;
    }
}
