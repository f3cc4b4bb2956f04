/*
 * `eryx mcp --http 127.0.0.1:PORT`: the Streamable HTTP transport of MCP
 * (protocol revisions 2025-06-18 and 2025-11-25), the subset a server
 * without server-initiated messages needs:
 *   - POST /mcp with one JSON-RPC message; a request's answer is JSON, or,
 *     for tools/call, server-sent events (progress notifications, then the
 *     response); notifications and responses get 202;
 *   - initialize opens an MCP session (Mcp-Session-Id, 128 random bits),
 *     which every later request must name (400 without, 404 unknown);
 *     DELETE /mcp ends it (its runs are interrupted, its sandboxes freed);
 *   - GET /mcp is 405: there is no stream of server-initiated messages;
 *   - only loopback addresses are served (there is no authentication), and
 *     a Host or Origin header that is not loopback is refused (403: DNS
 *     rebinding);
 *   - one request per connection (Connection: close); a thread each.
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
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "mcp_internal.h"
#include "mcp_server.h"

#define MAX_MCP_SESSIONS 64
#define MAX_CONNECTIONS 256

static struct {
    pthread_mutex_t lock;
    char ids[MAX_MCP_SESSIONS][33];
    size_t n;
    unsigned connections;     /* threads serving one */
    size_t max_message;
} H = {.lock = PTHREAD_MUTEX_INITIALIZER};

int eryx_mcp_http_listen(const char *spec)
{
    const char *colon = strrchr(spec, ':');
    char host[64];
    if (!colon || (size_t)(colon - spec) >= sizeof host) {
        fprintf(stderr, "eryx: --http wants ADDR:PORT, not '%s'\n", spec);
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535) {
        fprintf(stderr, "eryx: --http: bad port in '%s'\n", spec);
        return -1;
    }
    int v6 = strcmp(host, "[::1]") == 0;
    if (!v6 && strcmp(host, "127.0.0.1") != 0 && strcmp(host, "localhost") != 0) {
        fprintf(stderr, "eryx: --http serves only a loopback address (127.0.0.1, localhost, "
                        "[::1]): there is no authentication\n");
        return -1;
    }
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        fprintf(stderr, "eryx: --http %s: %s\n", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    unsigned bound = v6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                        : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    fprintf(stderr, "eryx mcp: serving http://%s:%u/mcp\n", host, bound);
    return fd;
}

/* ---- MCP sessions ---- */

static int new_session(char out[33])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return -1;
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    pthread_mutex_lock(&H.lock);
    int ok = H.n < MAX_MCP_SESSIONS;
    if (ok)
        memcpy(H.ids[H.n++], out, 33);
    pthread_mutex_unlock(&H.lock);
    return ok ? 0 : -1;
}

static int known_session(const char *id, int remove)
{
    pthread_mutex_lock(&H.lock);
    int found = 0;
    for (size_t i = 0; i < H.n; i++) {
        if (strcmp(H.ids[i], id) == 0) {
            found = 1;
            if (remove)
                memcpy(H.ids[i], H.ids[--H.n], 33);
            break;
        }
    }
    pthread_mutex_unlock(&H.lock);
    return found;
}

/* ---- responses ---- */

static void respond(int fd, int code, const char *reason, const char *type, const char *body,
                    const char *sid)
{
    char head[512];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n%s%s%s%s%s%sContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     code, reason, type ? "Content-Type: " : "", type ? type : "",
                     type ? "\r\n" : "", sid ? "Mcp-Session-Id: " : "", sid ? sid : "",
                     sid ? "\r\n" : "", blen);
    if (jr_write_raw(fd, head, (size_t)n) == 0 && blen)
        jr_write_raw(fd, body, blen);
}

static void respond_405(int fd)
{
    static const char r[] = "HTTP/1.1 405 Method Not Allowed\r\nAllow: POST, DELETE\r\n"
                            "Content-Length: 0\r\nConnection: close\r\n\r\n";
    jr_write_raw(fd, r, sizeof r - 1);
}

/* A JSON-RPC error as the body of an HTTP error. */
static void respond_rpc_error(int fd, int code, const char *reason, int rpc_code,
                              const char *message)
{
    json_t *e = jr_error(NULL, rpc_code, message);
    char *body = e ? json_dumps(e, JSON_COMPACT) : NULL;
    respond(fd, code, reason, "application/json", body ? body : "", NULL);
    free(body);
    json_decref(e);
}

static void respond_json(int fd, json_t *msg, const char *sid)
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
    respond(fd, 200, "OK", "application/json", body ? body : "", sid);
    free(body);
}

/* ---- one connection ---- */

static int accepts(const char *accept, const char *type)
{
    return accept[0] == '\0' || strstr(accept, type) || strstr(accept, "*/*");
}

/* The MCP-Protocol-Version header names a published revision (initialize
 * negotiates the current or the previous one; what a request that follows
 * may use is the same for the older ones: tools/list, tools/call, ping). */
static int supported_version(const char *v)
{
    static const char *const known[] = {ERYX_MCP_VERSION, ERYX_MCP_PREVIOUS_VERSION,
                                        "2025-03-26", "2024-11-05"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strcmp(v, known[i]) == 0)
            return 1;
    return 0;
}

/* Waits for the answer to a request handed to a job, while watching the
 * connection: one that closes is marked broken (the answer is dropped). */
static void wait_answer(channel *ch)
{
    pthread_mutex_lock(&ch->lock);
    while (!ch->done && !ch->broken) {
        pthread_mutex_unlock(&ch->lock);
        struct pollfd p = {ch->fd, POLLIN | POLLRDHUP, 0};
        int r = poll(&p, 1, 200);
        pthread_mutex_lock(&ch->lock);
        if (r > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
            ch->broken = 1;
    }
    pthread_mutex_unlock(&ch->lock);
}

static void serve_connection(int fd)
{
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char *buf = malloc(HTTP_MAX_HEAD);
    size_t len = 0;
    http_req req;
    int head = 0;
    while (buf && len < HTTP_MAX_HEAD) {
        ssize_t n = read(fd, buf + len, HTTP_MAX_HEAD - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        head = http_parse_head(buf, len, &req);
        if (head != 0)
            break;
    }
    if (!buf || head == 0) {
        free(buf);
        return;
    }
    if (head < 0 || req.host[0] == '\0') {
        respond(fd, 400, "Bad Request", NULL, NULL, NULL);
        goto done;
    }
    if (!http_host_is_loopback(req.host) ||
        (req.has_origin && !http_origin_is_loopback(req.origin))) {
        respond(fd, 403, "Forbidden", "text/plain", "Host or Origin is not loopback\n", NULL);
        goto done;
    }
    if (strcmp(req.path, "/mcp") != 0) {
        respond(fd, 404, "Not Found", NULL, NULL, NULL);
        goto done;
    }
    if (req.has_protocol && !supported_version(req.protocol)) {
        respond_rpc_error(fd, 400, "Bad Request", JR_INVALID_REQUEST,
                          "unsupported MCP-Protocol-Version");
        goto done;
    }
    if (strcmp(req.method, "DELETE") == 0) {
        if (!req.has_session) {
            respond(fd, 400, "Bad Request", NULL, NULL, NULL);
        } else if (!known_session(req.session, 1)) {
            respond(fd, 404, "Not Found", NULL, NULL, NULL);
        } else {
            eryx_mcp_end_session(req.session);
            respond(fd, 200, "OK", NULL, NULL, NULL);
        }
        goto done;
    }
    if (strcmp(req.method, "POST") != 0) {
        respond_405(fd);
        goto done;
    }
    if (req.chunked || !req.has_length) {
        respond(fd, 411, "Length Required", NULL, NULL, NULL);
        goto done;
    }
    if (req.content_length > H.max_message) {
        respond_rpc_error(fd, 413, "Content Too Large", JR_INVALID_REQUEST,
                          "message larger than --mcp-max-message");
        goto done;
    }
    if (!strstr(req.content_type, "application/json")) {
        respond(fd, 415, "Unsupported Media Type", NULL, NULL, NULL);
        goto done;
    }
    if (!accepts(req.accept, "application/json") || !accepts(req.accept, "text/event-stream")) {
        respond(fd, 406, "Not Acceptable", NULL, NULL, NULL);
        goto done;
    }
    /* The body: what came with the head, then the rest. */
    size_t body_len = (size_t)req.content_length;
    char *body = malloc(body_len + 1);
    if (!body) {
        respond(fd, 500, "Internal Server Error", NULL, NULL, NULL);
        goto done;
    }
    size_t have = len - (size_t)head;
    if (have > body_len)
        have = body_len;
    memcpy(body, buf + head, have);
    while (have < body_len) {
        ssize_t n = read(fd, body + have, body_len - have);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    if (have < body_len) {
        free(body);
        goto done;
    }
    jr_msg m;
    jr_decode(body, body_len, &m);
    free(body);
    char sid[sizeof req.session] = "";
    int is_init = m.kind == JR_REQUEST && strcmp(m.method, "initialize") == 0;
    if (m.kind == JR_INVALID || m.kind == JR_BATCH) {
        respond_rpc_error(fd, 400, "Bad Request",
                          m.parse_error ? JR_PARSE_ERROR : JR_INVALID_REQUEST,
                          m.kind == JR_BATCH ? "batches are not supported"
                          : m.parse_error    ? "parse error: not JSON"
                                             : "not a JSON-RPC 2.0 message");
    } else if (is_init && new_session(sid) < 0) {
        respond_rpc_error(fd, 503, "Service Unavailable", JR_INTERNAL_ERROR,
                          "too many MCP sessions");
    } else if (!is_init && !req.has_session) {
        respond_rpc_error(fd, 400, "Bad Request", JR_INVALID_REQUEST,
                          "missing Mcp-Session-Id (initialize first)");
    } else if (!is_init && !known_session(req.session, 0)) {
        respond_rpc_error(fd, 404, "Not Found", JR_INVALID_REQUEST, "unknown MCP session");
    } else {
        if (!is_init)
            snprintf(sid, sizeof sid, "%s", req.session);
        channel *ch = eryx_mcp_channel_new(fd, sid);
        json_t *reply = ch ? eryx_mcp_dispatch(ch, &m) : NULL;
        if (!ch) {
            respond(fd, 500, "Internal Server Error", NULL, NULL, NULL);
        } else if (reply) {
            respond_json(fd, reply, is_init ? sid : NULL);
            json_decref(reply);
        } else if (m.kind == JR_REQUEST) {
            wait_answer(ch);
        } else {
            respond(fd, 202, "Accepted", NULL, NULL, NULL);
        }
        if (ch) {
            /* From here on nothing writes to fd: it is closed below. */
            pthread_mutex_lock(&ch->lock);
            ch->broken = 1;
            pthread_mutex_unlock(&ch->lock);
            eryx_mcp_channel_unref(ch);
        }
    }
    jr_msg_clear(&m);
done:
    free(buf);
}

static void *connection_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    serve_connection(fd);
    shutdown(fd, SHUT_RDWR);
    close(fd);
    pthread_mutex_lock(&H.lock);
    H.connections--;
    pthread_mutex_unlock(&H.lock);
    return NULL;
}

void eryx_mcp_http_serve(int listen_fd, size_t max_message)
{
    H.max_message = max_message;
    for (;;) {
        struct pollfd p = {listen_fd, POLLIN, 0};
        int r = poll(&p, 1, 250);
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0) {
            int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
            pthread_mutex_lock(&H.lock);
            int full = H.connections >= MAX_CONNECTIONS;
            if (fd >= 0 && !full)
                H.connections++;
            pthread_mutex_unlock(&H.lock);
            if (fd >= 0 && full) {
                /* At most MAX_CONNECTIONS threads: the rest are turned away. */
                respond(fd, 503, "Service Unavailable", NULL, NULL, NULL);
                close(fd);
            } else if (fd >= 0) {
                pthread_t t;
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                if (pthread_create(&t, &attr, connection_main, (void *)(intptr_t)fd) != 0) {
                    close(fd);
                    pthread_mutex_lock(&H.lock);
                    H.connections--;
                    pthread_mutex_unlock(&H.lock);
                }
                pthread_attr_destroy(&attr);
            }
        }
        eryx_mcp_progress_tick();
    }
    close(listen_fd);
}
