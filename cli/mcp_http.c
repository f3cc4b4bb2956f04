/*
 * `eryx mcp --http 127.0.0.1:PORT`: the Streamable HTTP transport of MCP
 * (protocol revisions 2025-06-18 and 2025-11-25), the subset a server
 * without server-initiated messages needs:
 *   - POST /mcp with one JSON-RPC message; a request's answer is JSON, or,
 *     for tools/call, server-sent events (progress notifications, then the
 *     response); notifications and responses get 202;
 *   - initialize opens an MCP session (Mcp-Session-Id, 128 random bits),
 *     which every later request must name (400 without, 404 unknown);
 *     DELETE /mcp ends it (its runs are interrupted, its sandboxes freed),
 *     and so does a new session when MAX_MCP_SESSIONS are open, to the
 *     least recently used one not running code;
 *   - GET /mcp with Last-Event-ID resumes a tools/call's event stream
 *     whose connection broke (revision 2025-11-25: its events carry ids,
 *     a priming event opens it; mcp_resume.c keeps them); without, 405:
 *     there is no stream of server-initiated messages;
 *   - GET /healthz is 200 "ok", without a token (for probes);
 *   - without --http-token-file only loopback addresses are served, and a
 *     Host or Origin header that is not loopback is refused (403: DNS
 *     rebinding); with it, any address, and every request must carry the
 *     token (401 without: the token is what a rebound page cannot have);
 *   - HTTPS with --http-tls-cert and --http-tls-key;
 *   - a thread per connection, kept alive between requests (HTTP/1.1, no
 *     "Connection: close" from the client; a tools/call's event stream
 *     then goes in chunks) for KEEP_ALIVE_IDLE_MS; an error, a DELETE, or
 *     an answer that did not go out whole end it.
 * A connection that goes away before its tools/call is answered does not
 * cancel the run (the transport says a disconnect is no cancellation): the
 * answer is dropped; notifications/cancelled or DELETE stop it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "listen.h"
#include "mcp_internal.h"
#include "mcp_server.h"
#include "serve_tls.h"

#define MAX_MCP_SESSIONS 64
#define MAX_CONNECTIONS 256
#define MAX_PER_CLIENT 32         /* connections from one address */
#define IO_TIMEOUT_MS 30000       /* each wait of a connection's reads and writes */
/* A request's head, and the TLS handshake, must come whole within this of
 * their start (a client trickling a byte at a time would otherwise hold a
 * connection, one of MAX_CONNECTIONS, for hours); its body within
 * BODY_TIMEOUT_MS. */
#define HEAD_TIMEOUT_MS 10000
#define BODY_TIMEOUT_MS 60000
/* How long a kept connection waits for the next request: 10 s past the
 * Keep-Alive hint (ERYX_MCP_KEEP_ALIVE_S). A client drops an idle
 * connection by a timer of its own near the hint (Node's fetch: 1 s before
 * it), and a busy client's timer fires late: a connection it took as alive
 * had been closed, and its next request failed on it (EPIPE writing the
 * body; the POST is not retried). Seen in sdk_client.mjs's HTTP test as
 * five 15 MiB uploads began, 3 of 4 runs alone, and in an ASan run. */
#define KEEP_ALIVE_IDLE_MS (ERYX_MCP_KEEP_ALIVE_S * 1000 + 10000)

static struct {
    pthread_mutex_t lock;
    char ids[MAX_MCP_SESSIONS][33];
    uint64_t used_ms[MAX_MCP_SESSIONS]; /* each one's last request */
    size_t n;
    cli_gate gate;            /* connections (a thread each), per client too */
    size_t max_message;
    char token[258];          /* --http-token-file's, or "" */
    size_t token_len;
    tls_ctx *tls;             /* --http-tls-cert, or NULL */
} H = {.lock = PTHREAD_MUTEX_INITIALIZER};

int eryx_mcp_http_listen(const eryx_cli_mcp *m)
{
    if (!m->http_tls_cert != !m->http_tls_key) {
        fprintf(stderr, "eryx mcp: --http-tls-cert and --http-tls-key go together\n");
        return -1;
    }
    if (m->http_token_file && cli_read_secret("eryx mcp", m->http_token_file, H.token,
                                              sizeof H.token, &H.token_len, "token") < 0)
        return -1;
    int loopback = 0;
    int fd = cli_listen("eryx mcp", m->http, &loopback);
    if (fd < 0)
        return -1;
    if (!loopback && !H.token_len) {
        fprintf(stderr, "eryx mcp: --http %s is not a loopback address: give "
                        "--http-token-file FILE (and --http-tls-cert, --http-tls-key)\n",
                m->http);
        close(fd);
        return -1;
    }
    if (m->http_tls_cert) {
        char err[256];
        if (!(H.tls = tls_server_ctx(m->http_tls_cert, m->http_tls_key, NULL, err, sizeof err))) {
            fprintf(stderr, "eryx mcp: %s\n", err);
            close(fd);
            return -1;
        }
    }
    const char *colon = strrchr(m->http, ':');
    fprintf(stderr, "eryx mcp: serving %s://%.*s:%u/mcp%s\n", H.tls ? "https" : "http",
            (int)(colon - m->http), m->http, cli_listen_port(fd),
            H.token_len ? " (bearer token required)" : "");
    return fd;
}

/* ---- MCP sessions ---- */

/* Removes session i from the table (lock held). */
static void forget_session(size_t i)
{
    H.n--;
    memcpy(H.ids[i], H.ids[H.n], 33);
    H.used_ms[i] = H.used_ms[H.n];
}

/* Opens an MCP session for initialize: its id in out. Clients need not
 * end theirs (many just go), so when the table is full the one least
 * recently used without a run in flight is ended to make room: its client
 * gets 404 next and starts a new session, as the transport says a client
 * must. -1 when every one is running code. */
static int new_session(char out[33])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return -1;
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    char evicted[33] = "";
    pthread_mutex_lock(&H.lock);
    if (H.n == MAX_MCP_SESSIONS) {
        size_t lru = H.n;
        for (size_t i = 0; i < H.n; i++)
            if ((lru == H.n || H.used_ms[i] < H.used_ms[lru]) &&
                !eryx_mcp_session_busy(H.ids[i]))
                lru = i;
        if (lru < H.n) {
            memcpy(evicted, H.ids[lru], 33);
            forget_session(lru);
        }
    }
    int ok = H.n < MAX_MCP_SESSIONS;
    if (ok) {
        memcpy(H.ids[H.n], out, 33);
        H.used_ms[H.n++] = eryx_cli_now_ms();
    }
    pthread_mutex_unlock(&H.lock);
    if (evicted[0])
        eryx_mcp_end_session(evicted);
    return ok ? 0 : -1;
}

/* 1 if id names a session (now used, or removed when remove). */
static int known_session(const char *id, int remove)
{
    pthread_mutex_lock(&H.lock);
    int found = 0;
    for (size_t i = 0; i < H.n && !found; i++) {
        if (strcmp(H.ids[i], id) == 0) {
            found = 1;
            if (remove)
                forget_session(i);
            else
                H.used_ms[i] = eryx_cli_now_ms();
        }
    }
    pthread_mutex_unlock(&H.lock);
    return found;
}

void eryx_mcp_http_end_sessions(void)
{
    for (;;) {
        char id[33];
        pthread_mutex_lock(&H.lock);
        int any = H.n > 0;
        if (any) {
            memcpy(id, H.ids[H.n - 1], sizeof id);
            forget_session(H.n - 1);
        }
        pthread_mutex_unlock(&H.lock);
        if (!any)
            break;
        eryx_mcp_end_session(id);
    }
}

/* ---- responses ---- */

/* A client's connection, and whether it goes on after this request. */
typedef struct client {
    net_link *link;
    int ticket;               /* the gate's, or -1 */
    int may_keep;             /* the request allows keep-alive */
    int kept;                 /* the answer said so: read the next request */
    int head_only;            /* a HEAD request: answers carry no body */
} client;

/* An answer with a body of its own length. A success keeps the connection
 * when the client allows it; an error closes it (what follows a refused
 * request may not be a request). */
static void respond(client *c, int code, const char *reason, const char *type,
                    const char *body, const char *sid)
{
    char head[512];
    size_t blen = body ? strlen(body) : 0;
    c->kept = c->may_keep && code >= 200 && code <= 299;
    if (c->head_only)
        body = NULL;    /* the length GET would have, no body (RFC 9110 9.3.2) */
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n%s%s%s%s%s%sContent-Length: %zu\r\n%s\r\n",
                     code, reason, type ? "Content-Type: " : "", type ? type : "",
                     type ? "\r\n" : "", sid ? "Mcp-Session-Id: " : "", sid ? sid : "",
                     sid ? "\r\n" : "", blen,
                     c->kept ? ERYX_MCP_KEEP_ALIVE_HINT : "Connection: close\r\n");
    /* One write: one segment, one TLS record, as the proxy's requests. */
    char *out = malloc((size_t)n + blen);
    if (out) {
        memcpy(out, head, (size_t)n);
        memcpy(out + n, body ? body : "", body ? blen : 0);
    }
    if (!out || net_link_write(c->link, out, (size_t)n + (body ? blen : 0)) < 0)
        c->kept = 0;
    free(out);
}

static void respond_405(net_link *l)
{
    static const char r[] = "HTTP/1.1 405 Method Not Allowed\r\nAllow: POST, DELETE\r\n"
                            "Content-Length: 0\r\nConnection: close\r\n\r\n";
    net_link_write(l, r, sizeof r - 1);
}

static void respond_401(net_link *l)
{
    static const char body[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,"
                               "\"message\":\"a valid bearer token is required\"}}";
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"eryx\"\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n", sizeof body - 1);
    if (net_link_write(l, head, (size_t)n) == 0)
        net_link_write(l, body, sizeof body - 1);
}

/* The request carries "Authorization: Bearer TOKEN" with the server's
 * token (compared in constant time). */
static int authorized(const http_req *req)
{
    const char *h = req->authorization;
    if (strncmp(h, "Bearer ", 7) != 0)
        return 0;
    size_t n = strlen(h + 7);
    return n == H.token_len && crypto_equal(h + 7, H.token, n);
}

/* A JSON-RPC error as the body of an HTTP error. */
static void respond_rpc_error(client *c, int code, const char *reason, int rpc_code,
                              const char *message)
{
    json_t *e = jr_error(NULL, rpc_code, message);
    char *body = e ? json_dumps(e, JSON_COMPACT) : NULL;
    respond(c, code, reason, "application/json", body ? body : "", NULL);
    free(body);
    json_decref(e);
}

static void respond_json(client *c, json_t *msg, const char *sid)
{
    char *body = json_dumps(msg, JSON_COMPACT);
    if (body && strlen(body) > H.max_message) {
        free(body);
        body = NULL;
        json_t *e = jr_error(json_object_get(msg, "id"), JR_INTERNAL_ERROR,
                             "the response is larger than --mcp-max-message");
        body = e ? json_dumps(e, JSON_COMPACT) : NULL;
        json_decref(e);
    }
    respond(c, 200, "OK", "application/json", body ? body : "", sid);
    free(body);
}

/* ---- one connection ---- */

/* 1 if a Content-Type value is type, parameters aside ("application/json;
 * charset=utf-8"); not a substring of something else ("text/plain;
 * x=application/json"). */
static int is_media_type(const char *value, const char *type)
{
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(type);
    if (strncasecmp(value, type, n) != 0)
        return 0;
    value += n;
    while (*value == ' ' || *value == '\t')
        value++;
    return *value == '\0' || *value == ';';
}

static int accepts(const char *accept, const char *type)
{
    return accept[0] == '\0' || strstr(accept, type) || strstr(accept, "*/*");
}

/* Waits for the answer to a request handed to a job while ch's connection
 * is mine: woken through an eventfd (ch->waker) when the answer has gone
 * out, the stream broke or was taken over, and by the client closing its
 * side (POLLRDHUP), which marks it broken (the answer is dropped, or kept
 * for a resumable stream). Not POLLIN: bytes the client sends meanwhile
 * (its next request) must not end the wait. A resuming GET that takes the
 * stream over ends it too. Meanwhile it writes the stream's progress
 * notifications, when woken for one, and its heartbeats: on this thread,
 * a client that does not read waits only for itself. Without an eventfd
 * it looks every 200 ms. */
static void wait_answer(channel *ch, const net_link *mine)
{
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_lock(&ch->lock);
    ch->waker = efd;
    while (!ch->done && !ch->broken && ch->link == mine) {
        int wait_ms = eryx_mcp_channel_flush(ch);
        if (ch->broken)
            break;
        pthread_mutex_unlock(&ch->lock);
        struct pollfd p[2] = {{mine->fd, POLLRDHUP, 0}, {efd, POLLIN, 0}};
        int n = poll(p, efd >= 0 ? 2 : 1, efd >= 0 || wait_ms < 200 ? wait_ms : 200);
        uint64_t count;
        if (n > 0 && (p[1].revents & POLLIN) && read(efd, &count, sizeof count) < 0) {
            /* EAGAIN: another read took it; the state is looked at anyway */
        }
        pthread_mutex_lock(&ch->lock);
        if (n > 0 && (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) && !ch->done &&
            ch->link == mine)
            ch->broken = 1;
    }
    if (ch->waker == efd)
        ch->waker = -1;
    pthread_mutex_unlock(&ch->lock);
    if (efd >= 0)
        close(efd);
}

/* Done with ch on connection mine: 1 if its answer went out whole there
 * (the connection may go on). From here on nothing writes on mine: the
 * stream is let go, unless a resuming GET has taken it over. */
static int let_go(channel *ch, const net_link *mine)
{
    pthread_mutex_lock(&ch->lock);
    int is_mine = ch->link == mine;
    int complete = is_mine && ch->complete && !ch->broken;
    if (is_mine)
        ch->broken = 1;
    pthread_mutex_unlock(&ch->lock);
    return complete;
}

/* GET with Last-Event-ID: the events of that stream after it, and the
 * rest as they come, on this connection, which takes the stream over
 * (from the request's own connection if the server has not seen it go
 * yet, or from an older GET: the client's latest connection is the one it
 * reads). 404 when the stream is not one of this MCP session's kept ones
 * (unknown, expired, over its bounds). */
static void resume_stream(client *c, const http_req *req)
{
    size_t after = 0;
    channel *ch = eryx_mcp_resume_find(req->last_event_id, req->session, &after);
    if (!ch) {
        respond(c, 404, "Not Found", "text/plain", "no such event stream to resume\n", NULL);
        return;
    }
    pthread_mutex_lock(&ch->lock);
    int lost = ch->log_lost;
    if (!lost) {
        ch->link = c->link;
        ch->chunked = c->may_keep;
        ch->broken = eryx_mcp_channel_replay(ch, after) < 0;
        eryx_mcp_channel_wake(ch); /* the connection it had stops waiting */
    }
    pthread_mutex_unlock(&ch->lock);
    if (lost) {
        respond(c, 404, "Not Found", "text/plain", "the stream was too large to keep\n", NULL);
        eryx_mcp_channel_unref(ch);
        return;
    }
    wait_answer(ch, c->link); /* returns at once when it is done */
    int complete = let_go(ch, c->link);
    c->kept = c->may_keep && complete;
    if (complete)
        eryx_mcp_resume_forget(ch);
    eryx_mcp_channel_unref(ch);
}

/* One request on c, its head's bytes (and maybe more) in buf[0..*len)
 * already, read into buf (HTTP_MAX_HEAD bytes) as needed; answers it.
 * c->kept: the connection goes on, the next request's first bytes left in
 * buf[0..*len). first: the connection's first request (the others are
 * waited for KEEP_ALIVE_IDLE_MS). */
static void serve_request(client *c, char *buf, size_t *plen, int first)
{
    net_link *l = c->link;
    size_t len = *plen;
    http_req req;
    int head = len ? http_parse_head(buf, len, &req) : 0;
    c->kept = c->may_keep = c->head_only = 0;
    *plen = 0;
    /* The head's deadline starts with its first byte (a kept connection
     * waits KEEP_ALIVE_IDLE_MS for it). */
    l->deadline_ms = len || first ? eryx_cli_now_ms() + HEAD_TIMEOUT_MS : 0;
    while (head == 0 && len < HTTP_MAX_HEAD) {
        l->timeout_ms = len == 0 && !first ? KEEP_ALIVE_IDLE_MS : IO_TIMEOUT_MS;
        long n = net_link_read(l, buf + len, HTTP_MAX_HEAD - len);
        if (n <= 0)
            break;
        if (!l->deadline_ms)
            l->deadline_ms = eryx_cli_now_ms() + HEAD_TIMEOUT_MS;
        len += (size_t)n;
        head = http_parse_head(buf, len, &req);
    }
    l->timeout_ms = IO_TIMEOUT_MS;
    l->deadline_ms = 0;
    if (head == 0)
        return; /* the client went away, or was idle too long */
    if (head > 0) {
        c->may_keep = !req.http10 && !req.connection_close;
        c->head_only = strcmp(req.method, "HEAD") == 0;
    }
    if (head == -2) {
        respond(c, 431, "Request Header Fields Too Large", NULL, NULL, NULL);
        return;
    }
    if (head < 0 || req.host[0] == '\0') {
        respond(c, 400, "Bad Request", NULL, NULL, NULL);
        return;
    }
    if ((strcmp(req.method, "GET") == 0 || c->head_only) && strcmp(req.path, "/healthz") == 0) {
        /* For load balancers and probes, which carry no token: says only
         * that the server is up. */
        respond(c, 200, "OK", "text/plain", "ok\n", NULL);
        return;
    }
    if (H.token_len && !authorized(&req)) {
        respond_401(l);
        return;
    }
    if (!H.token_len && (!http_host_is_loopback(req.host) ||
                         (req.has_origin && !http_origin_is_loopback(req.origin)))) {
        respond(c, 403, "Forbidden", "text/plain", "Host or Origin is not loopback\n", NULL);
        return;
    }
    cli_gate_proven(&H.gate, c->ticket);
    if (strcmp(req.path, "/mcp") != 0) {
        respond(c, 404, "Not Found", NULL, NULL, NULL);
        return;
    }
    if (req.has_protocol && !eryx_cli_mcp_known_revision(req.protocol)) {
        respond_rpc_error(c, 400, "Bad Request", JR_INVALID_REQUEST,
                          "unsupported MCP-Protocol-Version");
        return;
    }
    if (strcmp(req.method, "DELETE") == 0) {
        if (!req.has_session) {
            respond(c, 400, "Bad Request", NULL, NULL, NULL);
        } else if (!known_session(req.session, 1)) {
            respond(c, 404, "Not Found", NULL, NULL, NULL);
        } else {
            eryx_mcp_end_session(req.session);
            c->may_keep = 0; /* the session is over: so is its connection */
            respond(c, 200, "OK", NULL, NULL, NULL);
        }
        return;
    }
    if (strcmp(req.method, "GET") == 0 && req.has_last_event_id) {
        if (!req.has_session)
            respond(c, 400, "Bad Request", NULL, NULL, NULL);
        else if (!known_session(req.session, 0))
            respond(c, 404, "Not Found", NULL, NULL, NULL);
        else
            resume_stream(c, &req);
        return;
    }
    if (strcmp(req.method, "POST") != 0) {
        respond_405(l);
        return;
    }
    if (req.chunked || !req.has_length) {
        respond(c, 411, "Length Required", NULL, NULL, NULL);
        return;
    }
    if (req.content_length > H.max_message) {
        respond_rpc_error(c, 413, "Content Too Large", JR_INVALID_REQUEST,
                          "message larger than --mcp-max-message");
        return;
    }
    if (!is_media_type(req.content_type, "application/json")) {
        respond(c, 415, "Unsupported Media Type", NULL, NULL, NULL);
        return;
    }
    if (!accepts(req.accept, "application/json") || !accepts(req.accept, "text/event-stream")) {
        respond(c, 406, "Not Acceptable", NULL, NULL, NULL);
        return;
    }
    /* The body: what came with the head, then the rest. */
    size_t body_len = (size_t)req.content_length;
    char *body = malloc(body_len + 1);
    if (!body) {
        respond(c, 500, "Internal Server Error", NULL, NULL, NULL);
        return;
    }
    size_t have = len - (size_t)head;
    if (have > body_len) { /* the next request's first bytes: kept for it */
        *plen = have - body_len;
        have = body_len;
    }
    memcpy(body, buf + head, have);
    l->deadline_ms = eryx_cli_now_ms() + BODY_TIMEOUT_MS;
    while (have < body_len) {
        long n = net_link_read(l, body + have, body_len - have);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    l->deadline_ms = 0;
    if (have < body_len) {
        free(body);
        return;
    }
    memmove(buf, buf + head + body_len, *plen);
    jr_msg m;
    jr_decode_bounded(body, body_len, JR_MAX_TREE(H.max_message), &m);
    free(body);
    char sid[sizeof req.session] = "";
    int is_init = m.kind == JR_REQUEST && strcmp(m.method, "initialize") == 0;
    if (m.kind == JR_INVALID || m.kind == JR_BATCH) {
        respond_rpc_error(c, 400, "Bad Request",
                          m.parse_error ? JR_PARSE_ERROR : JR_INVALID_REQUEST,
                          m.kind == JR_BATCH ? "batches are not supported"
                          : m.parse_why      ? m.parse_why
                                             : "not a JSON-RPC 2.0 message");
    } else if (is_init && new_session(sid) < 0) {
        respond_rpc_error(c, 503, "Service Unavailable", JR_INTERNAL_ERROR,
                          "too many MCP sessions running code");
    } else if (!is_init && !req.has_session) {
        respond_rpc_error(c, 400, "Bad Request", JR_INVALID_REQUEST,
                          "missing Mcp-Session-Id (initialize first)");
    } else if (!is_init && !known_session(req.session, 0)) {
        respond_rpc_error(c, 404, "Not Found", JR_INVALID_REQUEST, "unknown MCP session");
    } else {
        if (!is_init)
            snprintf(sid, sizeof sid, "%s", req.session);
        channel *ch = eryx_mcp_channel_new(l, sid);
        if (ch)
            ch->chunked = c->may_keep; /* before any job can write on it */
        /* A tools/call of a 2025-11-25 client: a resumable stream, kept
         * before any job can write on it. */
        int resumable = ch && m.kind == JR_REQUEST && strcmp(m.method, "tools/call") == 0 &&
                        strcmp(req.protocol, ERYX_MCP_VERSION) == 0 &&
                        eryx_mcp_resume_keep(ch) == 0;
        json_t *reply = ch ? eryx_mcp_dispatch(ch, &m) : NULL;
        int waited = 0;
        if (!ch) {
            respond(c, 500, "Internal Server Error", NULL, NULL, NULL);
        } else if (reply) {
            respond_json(c, reply, is_init ? sid : NULL);
            json_decref(reply);
        } else if (m.kind == JR_REQUEST) {
            if (resumable)
                eryx_mcp_channel_prime(ch);
            wait_answer(ch, l); /* an event stream, in chunks when it may keep */
            waited = 1;
        } else {
            respond(c, 202, "Accepted", NULL, NULL, NULL);
        }
        if (ch) {
            /* From here on nothing writes on the connection: it is closed,
             * or carries the next request's answer. A resumable stream
             * delivered whole is not kept; one cut short is, for its
             * client to come back (its events go on being kept). */
            int complete = let_go(ch, l);
            if (waited)
                c->kept = c->may_keep && complete;
            if (resumable && (complete || reply))
                eryx_mcp_resume_forget(ch);
            eryx_mcp_channel_unref(ch);
        }
    }
    jr_msg_clear(&m);
}

static void serve_connection(net_link *l, int ticket)
{
    char *buf = malloc(HTTP_MAX_HEAD);
    client c = {.link = l, .ticket = ticket};
    size_t len = 0;
    for (int first = 1; buf; first = 0) {
        serve_request(&c, buf, &len, first);
        if (!c.kept)
            break;
    }
    free(buf);
}

void eryx_mcp_http_serve_fd(int fd, size_t max_message)
{
    H.max_message = max_message;
    net_link l;
    char err[256];
    if (net_link_start(&l, fd, NULL, NULL, HEAD_TIMEOUT_MS, err, sizeof err) == 0) {
        l.timeout_ms = IO_TIMEOUT_MS;
        serve_connection(&l, -1);
    }
    shutdown(fd, SHUT_RDWR);
    net_link_close(&l);
}

typedef struct conn_arg {
    int fd;
    int ticket;               /* the gate's */
    char peer[64];
} conn_arg;

static void *connection_main(void *arg)
{
    conn_arg *a = arg;
    int fd = a->fd;
    net_link l;
    char err[256];
    /* The TLS handshake gets the head's time in all. */
    if (net_link_start(&l, fd, H.tls, NULL, HEAD_TIMEOUT_MS, err, sizeof err) == 0) {
        l.timeout_ms = IO_TIMEOUT_MS;
        serve_connection(&l, a->ticket);
    }
    shutdown(fd, SHUT_RDWR);
    cli_gate_leave(&H.gate, a->ticket); /* before the fd closes: the gate may shut it down */
    net_link_close(&l);
    free(a);
    return NULL;
}

/* Takes a connection and starts its thread: at most MAX_CONNECTIONS,
 * MAX_PER_CLIENT from one address; the rest are turned away (told so in
 * plain HTTP; over TLS, only closed). */
static void accept_one(int listen_fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    conn_arg *a = malloc(sizeof *a);
    if (a) {
        a->fd = fd;
        cli_peer_name(&ss, a->peer, sizeof a->peer);
    }
    if (!a || (a->ticket = cli_gate_enter(&H.gate, a->peer, fd)) < 0) {
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                   "Content-Length: 0\r\nConnection: close\r\n\r\n";
        if (!H.tls)
            send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        close(fd);
        free(a);
        return;
    }
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, connection_main, a) != 0) {
        cli_gate_leave(&H.gate, a->ticket);
        close(fd);
        free(a);
    }
    pthread_attr_destroy(&attr);
}

void eryx_mcp_http_serve(int listen_fd, size_t max_message)
{
    H.max_message = max_message;
    cli_gate_init(&H.gate, MAX_CONNECTIONS, MAX_PER_CLIENT);
    for (;;) {
        struct pollfd p = {listen_fd, POLLIN, 0};
        int r = poll(&p, 1, 250);
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0)
            accept_one(listen_fd);
        eryx_mcp_progress_tick();
    }
    close(listen_fd);
}
