/*
 * `eryx mcp-proxy URL [--header 'Name: value']... [--timeout MS]
 * [--max-message BYTES] [--ca-file PEM]`: MCP's stdio transport on
 * stdin/stdout, its Streamable HTTP transport to the server at URL
 * (http://, or https:// verified against the system's CAs and PEM's). eryx's MCP client starts it for a remote server of an
 * agent's configuration (mcp_config.c), so that the client speaks stdio
 * to every server; any stdio MCP client can use it the same way.
 *
 * Each message read on stdin is one POST (a connection of its own,
 * "Connection: close"); the answer, a JSON body or an event stream, is
 * written to stdout a message a line. initialize is sent alone, first
 * (its answer carries the session id and protocol revision later requests
 * send); the others go up to MAX_PARALLEL at once, so gathered tool calls
 * stay concurrent. A request the server fails (an HTTP error, no answer,
 * a malformed response) gets a JSON-RPC error answer, so that the client
 * fails that call instead of waiting for it. At the end of stdin the
 * session is ended with DELETE.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dial.h"
#include "http_resp.h"
#include "jsonrpc.h"
#include "mcp.h"
#include "serve_tls.h"

#define MAX_PARALLEL 16
#define MAX_HEADERS 64
#define DEFAULT_TIMEOUT_MS 60000
#define DEFAULT_MAX_MESSAGE (16u << 20)

typedef struct proxy {
    dial_url url;
    tls_ctx *tls;
    const char *ca_file;      /* --ca-file: CAs trusted besides the system's */
    const char *headers[MAX_HEADERS];
    size_t n_headers;
    int timeout_ms;           /* to connect, and for each read or write */
    size_t max_message;
    pthread_mutex_t lock;     /* everything below, and stdout */
    pthread_cond_t cond;
    char session[256];        /* Mcp-Session-Id, once initialize gave one */
    char version[32];         /* MCP-Protocol-Version, once negotiated */
    int running;              /* requests in flight */
} proxy;

/* ---- one connection --------------------------------------------------------- */

typedef struct link {
    int fd;
    tls_conn *tls;
    int timeout_ms;
} link_t;

/* Waits for fd to be ready for ev; -1 (errno ETIMEDOUT) after the timeout. */
static int link_wait(const link_t *l, short ev)
{
    struct pollfd p = {.fd = l->fd, .events = ev};
    int r;
    while ((r = poll(&p, 1, l->timeout_ms)) < 0 && errno == EINTR) {
    }
    if (r == 1)
        return 0;
    errno = r == 0 ? ETIMEDOUT : errno;
    return -1;
}

/* One read: >0 bytes, 0 the end, -1 an error or the timeout. */
static long link_read(link_t *l, char *buf, size_t n)
{
    for (;;) {
        long r = l->tls ? tls_conn_read(l->tls, buf, n) : read(l->fd, buf, n);
        if (r >= 0)
            return r;
        short ev = r == TLS_WANT_WRITE ? POLLOUT : POLLIN;
        if (l->tls ? (r != TLS_WANT_READ && r != TLS_WANT_WRITE)
                   : (errno != EAGAIN && errno != EINTR))
            return -1;
        if (link_wait(l, ev) < 0)
            return -1;
    }
}

static int link_write(link_t *l, const char *p, size_t n)
{
    while (n > 0) {
        long r = l->tls ? tls_conn_write(l->tls, p, n) : send(l->fd, p, n, MSG_NOSIGNAL);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        short ev = r == TLS_WANT_READ ? POLLIN : POLLOUT;
        if (l->tls ? (r != TLS_WANT_READ && r != TLS_WANT_WRITE)
                   : (r == 0 || (errno != EAGAIN && errno != EINTR)))
            return -1;
        if (link_wait(l, ev) < 0)
            return -1;
    }
    return 0;
}

static int link_open(proxy *p, link_t *l, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    l->timeout_ms = p->timeout_ms;
    l->fd = dial_connect(&p->url, p->timeout_ms, err, errlen);
    if (l->fd < 0)
        return -1;
    if (!p->tls)
        return 0;
    if (!(l->tls = tls_conn_new(p->tls, l->fd, p->url.host))) {
        snprintf(err, errlen, "cannot start TLS");
        return -1;
    }
    for (;;) {
        int r = tls_conn_handshake(l->tls, err, errlen);
        if (r == 1)
            return 0;
        if ((r != TLS_WANT_READ && r != TLS_WANT_WRITE) ||
            link_wait(l, r == TLS_WANT_READ ? POLLIN : POLLOUT) < 0) {
            if (r == TLS_WANT_READ || r == TLS_WANT_WRITE)
                snprintf(err, errlen, "the TLS handshake timed out");
            return -1;
        }
    }
}

static void link_close(link_t *l)
{
    if (l->tls)
        tls_conn_free(l->tls);
    if (l->fd >= 0)
        close(l->fd);
}

/* ---- one exchange ----------------------------------------------------------- */

typedef struct exchange {
    proxy *p;
    json_t *id;               /* the request's id; NULL for a notification */
    int initialize;
    int answered;             /* a response to id was written */
} exchange;

/* A message of the answer: compacted to one line and written to stdout. */
static void on_message(void *ud, const char *text, size_t len)
{
    exchange *x = ud;
    proxy *p = x->p;
    json_t *msg = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
    if (!msg) {
        fprintf(stderr, "eryx mcp-proxy: the server sent a message that is not JSON (dropped)\n");
        return;
    }
    json_t *id = json_object_get(msg, "id");
    int is_answer = x->id && id && json_equal(id, x->id) && !json_object_get(msg, "method");
    pthread_mutex_lock(&p->lock);
    if (is_answer) {
        x->answered = 1;
        const char *v = json_string_value(
            json_object_get(json_object_get(msg, "result"), "protocolVersion"));
        if (x->initialize && v && strlen(v) < sizeof p->version &&
            strspn(v, "0123456789-") == strlen(v))
            snprintf(p->version, sizeof p->version, "%s", v);
    }
    jr_write(1, NULL, msg);
    pthread_mutex_unlock(&p->lock);
    json_decref(msg);
}

/* The request's head into buf; -1 when it does not fit. */
static int request_head(proxy *p, const char *method, size_t body_len, char *buf, size_t cap)
{
    pthread_mutex_lock(&p->lock);
    int n = snprintf(buf, cap,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: eryx/%s\r\n"
                     "Accept: application/json, text/event-stream\r\nConnection: close\r\n"
                     "%s%s%s%s%s%s",
                     method, p->url.path, p->url.authority, eryx_version(),
                     p->session[0] ? "Mcp-Session-Id: " : "", p->session,
                     p->session[0] ? "\r\n" : "", p->version[0] ? "MCP-Protocol-Version: " : "",
                     p->version, p->version[0] ? "\r\n" : "");
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->n_headers && n > 0 && (size_t)n < cap; i++)
        n += snprintf(buf + n, cap - (size_t)n, "%s\r\n", p->headers[i]);
    if (n > 0 && (size_t)n < cap && body_len)
        n += snprintf(buf + n, cap - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    if (n > 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, "\r\n");
    return n > 0 && (size_t)n < cap ? n : -1;
}

/* Sends method (POST with body, or DELETE) and reads the answer, its
 * messages to stdout. NULL, or why the exchange failed. */
static const char *exchange_run(exchange *x, const char *method, const char *body, size_t len,
                                char *err, size_t errlen)
{
    proxy *p = x->p;
    char head[HTTP_MAX_HEAD];
    int hlen = request_head(p, method, len, head, sizeof head);
    if (hlen < 0)
        return "the request's headers are too long";
    link_t l;
    if (link_open(p, &l, err, errlen) < 0) {
        link_close(&l);
        return err;
    }
    http_resp *r = malloc(sizeof *r);
    if (!r) {
        link_close(&l);
        return "out of memory";
    }
    http_resp_init(r, p->max_message);
    const char *why = NULL;
    if (link_write(&l, head, (size_t)hlen) < 0 || link_write(&l, body, len) < 0) {
        snprintf(err, errlen, "cannot send the request: %s", strerror(errno));
        why = err;
    }
    char buf[16384];
    int done = 0;
    while (!why && !done) {
        long n = link_read(&l, buf, sizeof buf);
        if (n < 0) {
            snprintf(err, errlen, "%s", errno == ETIMEDOUT ? "no answer in time (--timeout)"
                                                           : "the connection failed");
            why = err;
        } else {
            done = n == 0 ? http_resp_eof(r, on_message, x)
                          : http_resp_feed(r, buf, (size_t)n, on_message, x);
            if (done < 0) {
                snprintf(err, errlen, "a malformed answer: %s", r->error);
                why = err;
            }
        }
    }
    if (!why && x->initialize && r->session[0]) {
        pthread_mutex_lock(&p->lock);
        snprintf(p->session, sizeof p->session, "%s", r->session);
        pthread_mutex_unlock(&p->lock);
    }
    if (!why && (r->status < 200 || r->status > 299)) {
        snprintf(err, errlen, "HTTP status %d%s", r->status,
                 r->status == 401 || r->status == 403 ? " (the server wants credentials: "
                                                        "\"headers\" in the configuration)"
                 : r->status == 404 && p->session[0] ? " (the session has ended)"
                                                      : "");
        why = err;
    } else if (!why && r->dropped) {
        snprintf(err, errlen, "an answer over --max-message (%zu bytes) was dropped",
                 p->max_message);
        why = err;
    }
    free(r->text);
    free(r->data);
    free(r);
    link_close(&l);
    return why;
}

/* Posts one message from stdin; a request that fails gets an error
 * answer. Takes line. */
static void forward(proxy *p, char *line, size_t len)
{
    jr_msg m;
    jr_decode(line, len, &m);
    /* Only a request is answered (a response of ours to the server's
     * request, or a notification, gets 202 and nothing). */
    exchange x = {.p = p, .id = m.kind == JR_REQUEST ? m.id : NULL,
                  .initialize = m.kind == JR_REQUEST && !strcmp(m.method, "initialize")};
    char err[400];
    const char *why = exchange_run(&x, "POST", line, len, err, sizeof err);
    if (x.id && !x.answered) {
        char msg[512];
        snprintf(msg, sizeof msg, "MCP server at %s: %s", p->url.authority,
                 why ? why : "no answer to the request");
        json_t *e = jr_error(x.id, -32000, msg);
        pthread_mutex_lock(&p->lock);
        jr_write(1, NULL, e);
        pthread_mutex_unlock(&p->lock);
        json_decref(e);
    } else if (why && !x.id) {
        fprintf(stderr, "eryx mcp-proxy: %s: %s\n", m.method ? m.method : "a response", why);
    }
    jr_msg_clear(&m);
    free(line);
}

typedef struct job {
    proxy *p;
    char *line;
    size_t len;
} job;

static void *job_main(void *arg)
{
    job *j = arg;
    proxy *p = j->p;
    forward(p, j->line, j->len);
    free(j);
    pthread_mutex_lock(&p->lock);
    p->running--;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Runs line's exchange on a thread of its own, at most MAX_PARALLEL at
 * once; initialize on this thread, before anything else goes. */
static void dispatch(proxy *p, const char *line, size_t len)
{
    char *copy = malloc(len + 1);
    job *j = malloc(sizeof *j);
    if (!copy || !j) {
        free(copy);
        free(j);
        fprintf(stderr, "eryx mcp-proxy: out of memory: a message was dropped\n");
        return;
    }
    memcpy(copy, line, len + 1);
    if (strstr(copy, "\"initialize\"")) { /* maybe initialize: decided in forward */
        jr_msg m;
        jr_decode(copy, len, &m);
        int init = m.method && !strcmp(m.method, "initialize");
        jr_msg_clear(&m);
        if (init) {
            free(j);
            forward(p, copy, len);
            return;
        }
    }
    *j = (job){p, copy, len};
    pthread_mutex_lock(&p->lock);
    while (p->running >= MAX_PARALLEL)
        pthread_cond_wait(&p->cond, &p->lock);
    p->running++;
    pthread_mutex_unlock(&p->lock);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, job_main, j) != 0)
        job_main(j); /* no thread: run it here */
    pthread_attr_destroy(&attr);
}

/* ---- the command -------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: eryx mcp-proxy URL [--header 'Name: value']... [--timeout MS] "
                    "[--max-message BYTES] [--ca-file PEM]\n"
                    "  MCP over stdin/stdout, forwarded to the Streamable HTTP server at URL\n"
                    "  (http:// or https://; docs/mcp.md)\n");
    return 2;
}

static int parse_options(proxy *p, int argc, char **argv)
{
    if (argc < 2 || dial_url_parse(argv[1], "http://", "https://", "/", &p->url) < 0) {
        fprintf(stderr, "eryx mcp-proxy: want an http:// or https:// URL%s%s\n",
                argc >= 2 ? ", not " : "", argc >= 2 ? argv[1] : "");
        return usage();
    }
    for (int i = 2; i < argc; i += 2) { /* every option takes a value */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        if (strcmp(argv[i], "--header") == 0) {
            const char *colon = strchr(v, ':');
            if (!colon || colon == v || strpbrk(v, "\r\n") ||
                strcspn(v, " \t") < (size_t)(colon - v)) {
                fprintf(stderr, "eryx mcp-proxy: --header wants 'Name: value' on one line\n");
                return 2;
            }
            if (p->n_headers == MAX_HEADERS) {
                fprintf(stderr, "eryx mcp-proxy: at most %d headers\n", MAX_HEADERS);
                return 2;
            }
            p->headers[p->n_headers++] = v;
        } else if (strcmp(argv[i], "--ca-file") == 0) {
            p->ca_file = v;
        } else if (strcmp(argv[i], "--timeout") == 0 || strcmp(argv[i], "--max-message") == 0) {
            char *end;
            unsigned long long n = strtoull(v, &end, 10);
            if (*end || !*v || v[0] == '-' || n == 0 || n > (1ull << 31) - 1) {
                fprintf(stderr, "eryx mcp-proxy: %s wants a positive number\n", argv[i]);
                return 2;
            }
            if (argv[i][2] == 't')
                p->timeout_ms = (int)n;
            else
                p->max_message = (size_t)n;
        } else {
            return usage();
        }
    }
    return 0;
}

int eryx_cli_mcp_proxy(int argc, char **argv)
{
    static proxy p;
    p.timeout_ms = DEFAULT_TIMEOUT_MS;
    p.max_message = DEFAULT_MAX_MESSAGE;
    int rc = parse_options(&p, argc, argv);
    if (rc)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    if (p.url.tls) {
        char err[256];
        if (!(p.tls = tls_client_ctx(p.ca_file, NULL, NULL, err, sizeof err))) {
            fprintf(stderr, "eryx mcp-proxy: %s\n", err);
            return 71;
        }
    }
    jr_framer f;
    jr_framer_init(&f, p.max_message);
    for (;;) {
        char *line;
        size_t len;
        int k;
        while ((k = jr_framer_next(&f, &line, &len)) != JR_NONE) {
            if (k == JR_LINE)
                dispatch(&p, line, len);
            else
                fprintf(stderr, "eryx mcp-proxy: a message over --max-message was dropped\n");
        }
        long n = jr_framer_read(&f, 0);
        if (n == 0 || (n < 0 && errno != EINTR))
            break;
    }
    jr_framer_free(&f);
    pthread_mutex_lock(&p.lock);
    while (p.running > 0)
        pthread_cond_wait(&p.cond, &p.lock);
    int has_session = p.session[0] != '\0';
    pthread_mutex_unlock(&p.lock);
    if (has_session) { /* the end of the session, as the transport asks */
        exchange x = {.p = &p};
        char err[400];
        exchange_run(&x, "DELETE", "", 0, err, sizeof err);
    }
    if (p.tls)
        tls_ctx_free(p.tls);
    return 0;
}
