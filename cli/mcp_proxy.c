/*
 * `eryx mcp-proxy URL [--header 'Name: value']... [--timeout MS]
 * [--max-message BYTES] [--ca-file PEM] [--transport http|sse|auto]
 * [--max-idle N]`: MCP's
 * stdio transport on stdin/stdout, its Streamable HTTP transport (or the
 * older HTTP+SSE one) to the server at URL (http://, or https:// verified
 * against the system's CAs and PEM's). eryx's MCP client starts it for a
 * remote server of an agent's configuration (mcp_config.c), so that the
 * client speaks stdio to every server; any stdio MCP client can use it
 * the same way.
 *
 * Each message read on stdin is one POST; the answer, a JSON body or an
 * event stream, is written to stdout a message a line. Connections are
 * kept alive: one whose answer leaves it reusable (HTTP/1.1, framed, no
 * "Connection: close") waits, up to --max-idle (16) of them, for the next
 * request, which saves a TCP and TLS handshake (a round trip or two to a
 * server far away) per tool call; it is reused only well within the
 * server's idle timeout (its Keep-Alive hint, else 4 s), and a read-only
 * request a kept connection loses unread (the server closed it as the
 * request went) is sent again on a new one. initialize is sent alone, first
 * (its answer carries the session id and protocol revision later requests
 * send); the others go up to MAX_PARALLEL at once, so gathered tool calls
 * stay concurrent. An event stream that ends before its answer, after
 * events with ids, is resumed with a GET of Last-Event-ID (revision
 * 2025-11-25: servers may close streams to be polled). A request the
 * server fails (an HTTP error, no answer, a malformed response) gets a
 * JSON-RPC error answer, so that the client fails that call instead of
 * waiting for it. At the end of stdin the session is ended with DELETE.
 *
 * With --transport sse (MCP's HTTP+SSE transport of 2024-11-05, which
 * servers still serve) a GET of URL opens an event stream whose first
 * event, "endpoint", names where messages are posted (the same origin
 * only: the configured headers go there); every message from the server
 * comes on that stream, and the posts, in order, on this thread, are only
 * acknowledged. Requests posted and not yet answered are kept, so that
 * when the stream ends each gets an error answer. With --transport auto,
 * initialize goes as Streamable HTTP, and a refusal as of an unknown
 * endpoint (400, 404, 405) turns the proxy to the older transport at the
 * same URL (MCP's rule for clients of both).
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
#include <time.h>
#include <unistd.h>

#include "dial.h"
#include "http_resp.h"
#include "core/json_wide.h"
#include "jsonrpc.h"
#include "mcp.h"
#include "size_arg.h"
#include "mcp_internal.h"
#include "net_link.h"
#include "serve_tls.h"

#define MAX_PARALLEL 16
#define MAX_HEADERS 64
#define DEFAULT_TIMEOUT_MS 60000
#define DEFAULT_MAX_MESSAGE (16u << 20)
#define MAX_PENDING 4096      /* --transport sse: requests awaiting answers */
/* How long an idle connection is reused when the server gives no
 * "Keep-Alive: timeout=N" hint: below the 5 s after which the servers of
 * MCP's SDKs close one (Node's http, uvicorn), as Node's own client
 * (undici) does. With a hint: N less a second, for the request's way. */
#define DEFAULT_KEEP_MS 4000
#define KEEP_MARGIN_MS 1000
/* Resuming an event stream (exchange_resume): the wait before a GET when
 * the server named none (its retry field), and the most a failed GET
 * adds to it, doubling. */
#define DEFAULT_RETRY_MS 1000
#define MAX_BACKOFF_MS 30000

enum { STREAM_OPENING, STREAM_OPEN, STREAM_ENDED };

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
    net_link idle[MAX_PARALLEL]; /* connections kept alive for the next request */
    uint64_t idle_until[MAX_PARALLEL]; /* when each is no longer reused */
    size_t n_idle;
    size_t max_idle;          /* --max-idle: how many may wait (0: none) */
    /* --transport sse, or auto once the server refused initialize */
    int sse;
    int fallback;             /* --transport auto, until initialize is answered */
    pthread_t stream_thread;
    int stream;               /* STREAM_*: the event stream's state */
    char stream_error[400];   /* why it ended, or could not open */
    dial_url post;            /* where messages go: the endpoint event's */
    json_t *pending;          /* ids of requests posted and not answered */
    int stream_fd;            /* the stream's socket, or -1 */
    int closing;              /* stdin ended: the stream is to end, and
                               * streams being resumed are left */
    struct exchange *resuming[MAX_PARALLEL]; /* exchanges running (resuming_mark) */
} proxy;

/* ---- one connection --------------------------------------------------------- */

/* A connection to the server: TCP, then TLS for https://. */
static int link_open(proxy *p, net_link *l, char *err, size_t errlen)
{
    int fd = dial_connect(&p->url, p->timeout_ms, err, errlen);
    if (fd < 0) {
        l->fd = -1;
        l->tls = NULL;
        return -1;
    }
    return net_link_start(l, fd, p->tls, p->tls ? p->url.host : NULL, p->timeout_ms, err,
                          errlen);
}

/* 1 if bytes of l wait to be read. */
static int link_readable(net_link *l)
{
    struct pollfd pf = {.fd = l->fd, .events = POLLIN};
    return poll(&pf, 1, 0) > 0 || (l->tls && tls_conn_pending(l->tls) > 0);
}

/* An idle connection to reuse: 1 and *l, or 0 when there is none. One
 * the server has closed since (its end, or anything, is readable), or
 * may be closing now (idle too long), is closed instead: a request sent
 * there would be lost. */
static int link_take(proxy *p, net_link *l)
{
    pthread_mutex_lock(&p->lock);
    uint64_t now = eryx_cli_now_ms();
    int found = 0;
    while (!found && p->n_idle > 0) {
        p->n_idle--;
        *l = p->idle[p->n_idle];
        found = now < p->idle_until[p->n_idle] && !link_readable(l);
        if (!found)
            net_link_close(l);
    }
    pthread_mutex_unlock(&p->lock);
    return found;
}

/* Keeps l, after answer r, for the requests of a while, well within how
 * long the server keeps it (r's hint); or closes it (--max-idle wait, or
 * the server keeps it too briefly). */
static void link_give(proxy *p, net_link *l, const http_resp *r)
{
    uint64_t keep_ms = !r->has_keep_alive ? DEFAULT_KEEP_MS
                       : r->keep_alive_s * 1000u > KEEP_MARGIN_MS
                           ? r->keep_alive_s * 1000u - KEEP_MARGIN_MS
                           : 0;
    pthread_mutex_lock(&p->lock);
    if (keep_ms && p->n_idle < p->max_idle) {
        p->idle_until[p->n_idle] = eryx_cli_now_ms() + keep_ms;
        p->idle[p->n_idle++] = *l;
    } else {
        net_link_close(l);
    }
    pthread_mutex_unlock(&p->lock);
}

/* ---- one exchange ----------------------------------------------------------- */

typedef struct exchange {
    proxy *p;
    json_t *id;               /* the request's id; NULL for a notification */
    int initialize;
    int replayable;           /* safe to send twice (a read-only method) */
    int answered;             /* a response to id was written */
    int status;               /* the answer's HTTP status, 0 without one */
    const http_resp *r;       /* the answer, while it is read */
    /* Its event stream, to resume it when it ends before the answer: */
    int streamed;             /* the last try's answer was a 2xx event stream */
    int dropped;              /* a message over --max-message was dropped */
    int unread;               /* a message too wide to read was dropped
                               * (server_message) */
    char last_id[HTTP_EVENT_ID_MAX]; /* the last event's id ("": none, or
                                      * one that cannot be sent back) */
    long retry_ms;            /* the server's retry field, -1: none came */
    int cancelled;            /* the client cancelled the request (p->lock) */
    json_t *held;             /* the answer, held until its connection is
                               * back for reuse (answer_flush) */
} exchange;

/* A message of the server, read; NULL (said on stderr) when it is not
 * JSON. One whose tree would be too wide to read (JR_MAX_TREE) is not
 * read (*unread = 1, said on stderr): the error response to its id stands
 * for it (jr_decode_unread), for the caller to pass on when that id is of
 * a request waiting for its answer; NULL when its ends show no id. */
static json_t *server_message(proxy *p, const char *text, size_t len, int *unread)
{
    size_t max_tree = JR_MAX_TREE(p->max_message);
    if (eryx__json_tree_fits(text, len, max_tree, NULL)) {
        json_t *msg = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
        if (!msg)
            fprintf(stderr, "eryx mcp-proxy: the server sent a message that is not JSON "
                            "(dropped)\n");
        return msg;
    }
    fprintf(stderr, "eryx mcp-proxy: the server sent a message whose JSON would take more "
                    "than %zu bytes to read (dropped)\n", max_tree);
    *unread = 1;
    char why[200];
    snprintf(why, sizeof why, "its answer's JSON would take more than %zu bytes to read "
             "(4 times --max-message: too many objects, arrays and values) and was dropped",
             max_tree);
    jr_msg m;
    return jr_decode_unread(text, len, why, &m) == 0 ? m.root : NULL;
}

/* A message of the answer: compacted to one line and written to stdout. */
static void on_message(void *ud, const char *text, size_t len)
{
    exchange *x = ud;
    proxy *p = x->p;
    if (x->r->status < 200 || x->r->status > 299) /* an error page: the status says it */
        return;
    int unread = 0;
    json_t *msg = server_message(p, text, len, &unread);
    x->unread |= unread;
    if (!msg)
        return;
    json_t *id = json_object_get(msg, "id");
    int is_answer = x->id && id && json_equal(id, x->id) && !json_object_get(msg, "method");
    pthread_mutex_lock(&p->lock);
    if (is_answer && !x->answered) {
        x->answered = 1;
        const char *v = json_string_value(
            json_object_get(json_object_get(msg, "result"), "protocolVersion"));
        if (x->initialize && v && strlen(v) < sizeof p->version &&
            strspn(v, "0123456789-") == strlen(v))
            snprintf(p->version, sizeof p->version, "%s", v);
        x->held = msg;
        msg = NULL;
    } else if (!is_answer && !unread) { /* (a second answer to it is dropped) */
        jr_write(1, NULL, msg);
    }
    pthread_mutex_unlock(&p->lock);
    json_decref(msg);
}

/* Writes the answer on_message held. It waits for the end of the
 * response and the return of its connection to the idle ones: the client
 * sends its next request as soon as it has the answer, and that request
 * should find the connection free, not open another. (A server that keeps
 * the stream open after the answer does not make it wait: exchange_try
 * writes it as soon as nothing more is there to read.) */
static void answer_flush(exchange *x)
{
    if (!x->held)
        return;
    pthread_mutex_lock(&x->p->lock);
    jr_write(1, NULL, x->held);
    pthread_mutex_unlock(&x->p->lock);
    json_decref(x->held);
    x->held = NULL;
}

/* The head of a request for path into buf (with Last-Event-ID: last_id
 * unless NULL); -1 when it does not fit. */
static int request_head(proxy *p, const char *method, const char *path, const char *accept,
                        const char *last_id, size_t body_len, char *buf, size_t cap)
{
    pthread_mutex_lock(&p->lock);
    int n = snprintf(buf, cap,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: eryx/%s\r\n"
                     "Accept: %s\r\n"
                     "%s%s%s%s%s%s%s%s%s",
                     method, path, p->url.authority, eryx_version(), accept,
                     p->session[0] ? "Mcp-Session-Id: " : "", p->session,
                     p->session[0] ? "\r\n" : "", p->version[0] ? "MCP-Protocol-Version: " : "",
                     p->version, p->version[0] ? "\r\n" : "", last_id ? "Last-Event-ID: " : "",
                     last_id ? last_id : "", last_id ? "\r\n" : "");
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

/* One try of exchange_run, on a kept connection unless fresh. *unheard:
 * a kept connection ended (or failed) before one byte of an answer came,
 * as when the server closes it as the request goes: the request may not
 * have been read, and a new connection may be tried. */
/* Whether the client cancelled x's request (resuming_cancel). */
static int exchange_cancelled(exchange *x)
{
    pthread_mutex_lock(&x->p->lock);
    int c = x->cancelled || x->p->closing;
    pthread_mutex_unlock(&x->p->lock);
    return c;
}

static const char *exchange_try(exchange *x, const char *method, const char *path,
                                const char *body, size_t len, http_resp_message_fn fn,
                                int fresh, int *unheard, char *err, size_t errlen)
{
    proxy *p = x->p;
    char head[HTTP_MAX_HEAD];
    int resume = strcmp(method, "GET") == 0;
    int hlen = request_head(p, method, path,
                            resume ? "text/event-stream" : "application/json, text/event-stream",
                            resume ? x->last_id : NULL, len, head, sizeof head);
    *unheard = 0;
    if (hlen < 0)
        return "the request's headers are too long";
    net_link l;
    int kept = !fresh && link_take(p, &l);
    if (!kept && link_open(p, &l, err, errlen) < 0) {
        net_link_close(&l);
        return err;
    }
    http_resp *r = malloc(sizeof *r);
    if (!r) {
        net_link_close(&l);
        return "out of memory";
    }
    http_resp_init(r, p->max_message);
    x->r = r;
    const char *why = NULL;
    /* The head and the body in one write: one TLS record, one segment
     * when they fit. */
    char *request = malloc((size_t)hlen + len);
    if (!request) {
        why = "out of memory";
    } else {
        memcpy(request, head, (size_t)hlen);
        memcpy(request + hlen, body, len);
        if (net_link_write(&l, request, (size_t)hlen + len) < 0) {
            snprintf(err, errlen, "cannot send the request: %s", strerror(errno));
            why = err;
            *unheard = kept;
        }
        free(request);
    }
    char buf[16384];
    int done = 0;
    while (!why && !done) {
        if (x->held && !link_readable(&l))
            answer_flush(x); /* the server keeps the stream open after it */
        if (exchange_cancelled(x)) {
            /* Nobody waits for the answer: the stream goes, and its slot
             * (a server that streams comments for ever filled all
             * MAX_PARALLEL of them with calls that had timed out). */
            x->answered = 1;
            break;
        }
        long n = net_link_read(&l, buf, sizeof buf);
        if (n <= 0 && kept && !http_resp_started(r) && (n == 0 || errno != ETIMEDOUT)) {
            snprintf(err, errlen, "the server closed a kept-alive connection without "
                                  "answering");
            why = err;
            *unheard = 1;
        } else if (n < 0) {
            snprintf(err, errlen, "%s", errno == ETIMEDOUT ? "no answer in time (--timeout)"
                                                           : "the connection failed");
            why = err;
        } else {
            done = n == 0 ? http_resp_eof(r, fn, x) : http_resp_feed(r, buf, (size_t)n, fn, x);
            if (done < 0) {
                snprintf(err, errlen, "a malformed answer: %s", r->error);
                why = err;
            }
        }
    }
    x->status = r->status;
    x->r = NULL;
    x->streamed = r->sse && r->status >= 200 && r->status <= 299;
    x->dropped |= r->dropped != 0;
    if (r->has_last_id)
        memcpy(x->last_id, r->last_id, sizeof x->last_id);
    if (r->retry_ms >= 0)
        x->retry_ms = r->retry_ms;
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
                 : (r->status == 404 || r->status == 405) && x->initialize && !p->sse
                     ? " (a server of the older HTTP+SSE transport? --transport sse or auto; "
                       "\"type\": \"sse\" in a configuration)"
                     : "");
        why = err;
    } else if (!why && r->dropped) {
        snprintf(err, errlen, "an answer over --max-message (%zu bytes) was dropped",
                 p->max_message);
        why = err;
    } else if (!why && x->unread && !x->answered) {
        snprintf(err, errlen, "a message whose JSON would take more than %zu bytes to read "
                 "(4 times --max-message) was dropped", JR_MAX_TREE(p->max_message));
        why = err;
    }
    if (done == 1 && http_resp_reusable(r))
        link_give(p, &l, r);
    else
        net_link_close(&l);
    answer_flush(x);
    free(r->text);
    free(r->data);
    free(r);
    return why;
}

/* Sends method (POST with body, GET to resume, or DELETE) to path and
 * reads the answer, its messages to fn (NULL: the body is read and
 * ignored). NULL, or why the exchange failed. A request a kept connection
 * lost unread goes again on a new one when x->replayable; another (a
 * tools/call: it may have run) fails, as HTTP asks of a request that is
 * not idempotent. */
static const char *exchange_send(exchange *x, const char *method, const char *path,
                                 const char *body, size_t len, http_resp_message_fn fn,
                                 char *err, size_t errlen)
{
    int unheard;
    const char *why = exchange_try(x, method, path, body, len, fn, 0, &unheard, err, errlen);
    if (why && unheard && x->replayable)
        why = exchange_try(x, method, path, body, len, fn, 1, &unheard, err, errlen);
    else if (why == err && unheard)
        snprintf(err + strlen(err), errlen - strlen(err), " (not sent again: it may have acted)");
    return why;
}

/* 1 while x's request is unanswered and its stream can be resumed: the
 * last event had an id, and no answer was dropped for its size (it would
 * come again). */
static int resumable(const exchange *x)
{
    return !x->answered && x->last_id[0] && !x->dropped && !x->unread;
}

/* Waits ms before resuming x's stream: 0, or -1 as soon as the client
 * cancels the request or stdin ends (nobody wants the answer then). */
static int resume_wait(exchange *x, uint64_t ms)
{
    proxy *p = x->p;
    struct timespec until = eryx_cli_deadline(ms);
    pthread_mutex_lock(&p->lock);
    int rc = 0, stop;
    while (!(stop = x->cancelled || p->closing) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->cond, &p->lock, &until);
    pthread_mutex_unlock(&p->lock);
    return stop ? -1 : 0;
}

/* Registers x as running (on 1), or no longer (on 0), so that a
 * notifications/cancelled of its request stops it. */
static void resuming_mark(exchange *x, int on)
{
    proxy *p = x->p;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < MAX_PARALLEL; i++) {
        if (on && !p->resuming[i]) {
            p->resuming[i] = x;
            break;
        }
        if (!on && p->resuming[i] == x)
            p->resuming[i] = NULL;
    }
    pthread_mutex_unlock(&p->lock);
}

/* The client cancelled request id (m: its notifications/cancelled): the
 * exchange running for it (its stream, or its resumption) is left. */
static void resuming_cancel(proxy *p, const jr_msg *m)
{
    json_t *id = json_object_get(m->params, "requestId");
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; id && i < MAX_PARALLEL; i++)
        if (p->resuming[i] && json_equal(p->resuming[i]->id, id))
            p->resuming[i]->cancelled = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

/* The event stream answering x's request ended (closed, or broken) before
 * the answer, after an event with an id: resumes it as MCP's Streamable
 * HTTP transport has clients do (2025-11-25): a GET with Last-Event-ID,
 * after the server's retry time (it MUST be respected), and again each
 * time a stream ends unanswered (a server may close them at will, to be
 * polled). The server replays what came after that event. Gives up when
 * it refuses a GET (4xx: 405 says it cannot resume, 404 that the session
 * ended), or has served none for --timeout; a GET that fails otherwise
 * waits longer each time. why: how the first stream ended. */
static const char *exchange_resume(exchange *x, const char *why, char *err, size_t errlen)
{
    proxy *p = x->p;
    char first[400], last[400];
    snprintf(first, sizeof first, "%s", why ? why : "closed by the server");
    uint64_t give_up = eryx_cli_now_ms() + (uint64_t)p->timeout_ms, backoff = 0;
    int replayable = x->replayable;
    x->replayable = 1; /* a GET may go twice */
    why = NULL;
    while (resumable(x)) {
        uint64_t wait = (x->retry_ms >= 0 ? (uint64_t)x->retry_ms : DEFAULT_RETRY_MS) + backoff;
        if (eryx_cli_now_ms() + wait > give_up) {
            snprintf(err, errlen, "the event stream of the answer ended (%.150s) and could not "
                     "be resumed within --timeout%s%.150s", first, why ? ": " : "", why ? last : "");
            why = err;
            break;
        }
        if (resume_wait(x, wait) < 0) {
            x->answered = 1; /* cancelled, or the client left: no answer wanted */
            why = NULL;
            break;
        }
        why = exchange_send(x, "GET", p->url.path, "", 0, on_message, last, sizeof last);
        if (why && why != last)
            snprintf(last, sizeof last, "%s", why);
        if (x->answered) {
            why = NULL;
        } else if (x->status >= 400 && x->status <= 499) {
            snprintf(err, errlen, "the event stream of the answer ended (%.150s) and resuming "
                     "it failed: %.150s", first, why);
            why = err;
            break;
        } else if (x->streamed) { /* served: the server holds the request */
            give_up = eryx_cli_now_ms() + (uint64_t)p->timeout_ms;
            backoff = 0;
        } else {
            backoff = backoff ? backoff * 2 : DEFAULT_RETRY_MS / 2;
            if (backoff > MAX_BACKOFF_MS)
                backoff = MAX_BACKOFF_MS;
        }
    }
    x->replayable = replayable;
    /* The loop may have ended on a failed GET, whose text is in last, a
     * buffer of this frame: what goes back is always the caller's copy
     * (why may already be err: memmove). */
    if (!why)
        return NULL;
    if (errlen) {
        size_t n = strnlen(why, errlen - 1);
        memmove(err, why, n);
        err[n] = '\0';
    }
    return err;
}

/* exchange_send, resuming a request's event stream that ends before its
 * answer (exchange_resume). */
static const char *exchange_run(exchange *x, const char *method, const char *path,
                                const char *body, size_t len, http_resp_message_fn fn,
                                char *err, size_t errlen)
{
    resuming_mark(x, 1); /* a notifications/cancelled of its id stops it */
    const char *why = exchange_send(x, method, path, body, len, fn, err, errlen);
    if (x->id && !x->initialize && x->streamed && resumable(x))
        why = exchange_resume(x, why, err, errlen);
    resuming_mark(x, 0);
    return why;
}

static int stream_start(proxy *p);
static void post_sse(proxy *p, const char *line, size_t len);

/* Answers request id with an error saying why. Called with p->lock held. */
static void answer_error(proxy *p, json_t *id, const char *why)
{
    char msg[600];
    snprintf(msg, sizeof msg, "MCP server at %.200s: %.300s", p->url.authority, why);
    json_t *e = jr_error(id, -32000, msg);
    if (e)
        jr_write(1, NULL, e);
    json_decref(e);
}

/* 1 if message m may be sent twice: a notification, or a request of a
 * method MCP defines as reading only (not tools/call: a tool may act; not
 * a response to the server: it would see two). */
static int replayable(const jr_msg *m)
{
    static const char *const reading[] = {
        "ping", "tools/list", "prompts/list", "prompts/get", "resources/list",
        "resources/templates/list", "resources/read", "completion/complete", "logging/setLevel"};
    if (m->kind == JR_NOTIFICATION)
        return 1;
    for (size_t i = 0; m->kind == JR_REQUEST && i < sizeof reading / sizeof *reading; i++)
        if (!strcmp(m->method, reading[i]))
            return 1;
    return 0;
}

/* Posts one message from stdin; a request that fails gets an error
 * answer. Takes line. */
static void forward(proxy *p, char *line, size_t len)
{
    jr_msg m;
    jr_decode_bounded(line, len, JR_MAX_TREE(p->max_message), &m);
    /* Only a request is answered (a response of ours to the server's
     * request, or a notification, gets 202 and nothing). */
    exchange x = {.p = p, .id = m.kind == JR_REQUEST ? m.id : NULL,
                  .initialize = m.kind == JR_REQUEST && !strcmp(m.method, "initialize"),
                  .replayable = replayable(&m), .retry_ms = -1};
    if (m.kind == JR_NOTIFICATION && !strcmp(m.method, "notifications/cancelled"))
        resuming_cancel(p, &m);
    char err[400];
    const char *why = exchange_run(&x, "POST", p->url.path, line, len, on_message, err,
                                   sizeof err);
    if (x.initialize && p->fallback) {
        p->fallback = 0;
        /* MCP's backwards compatibility: a server that refuses initialize
         * as a request it has no endpoint for (400, 404, 405) may speak the
         * older transport; one that wants credentials (401, 403) says so. */
        if (!x.answered && (x.status == 400 || x.status == 404 || x.status == 405) &&
            stream_start(p) == 0) {
            fprintf(stderr, "eryx mcp-proxy: %s refused a Streamable HTTP initialize (%d): "
                    "trying the older HTTP+SSE transport\n", p->url.authority, x.status);
            post_sse(p, line, len);
            jr_msg_clear(&m);
            free(line);
            return;
        }
    }
    if (x.id && !x.answered) {
        pthread_mutex_lock(&p->lock);
        answer_error(p, x.id, why ? why : "no answer to the request");
        pthread_mutex_unlock(&p->lock);
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
        jr_decode_bounded(copy, len, JR_MAX_TREE(p->max_message), &m);
        int init = m.method && !strcmp(m.method, "initialize");
        jr_msg_clear(&m);
        if (init) {
            free(j);
            forward(p, copy, len);
            return;
        }
    }
    if (strstr(copy, "notifications/cancelled")) {
        /* Stops the cancelled request's exchange now: with every exchange
         * taken, the notification would otherwise wait below for one of
         * them to end, which it is there to make happen. */
        jr_msg m;
        jr_decode_bounded(copy, len, JR_MAX_TREE(p->max_message), &m);
        if (m.kind == JR_NOTIFICATION && !strcmp(m.method, "notifications/cancelled"))
            resuming_cancel(p, &m);
        jr_msg_clear(&m);
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

/* ---- the older HTTP+SSE transport (--transport sse) ----------------------------- */

typedef struct stream {
    proxy *p;
    net_link l;
    http_resp r;
    const char *why;          /* set by an event that ends the stream */
    char err[400];
} stream;

/* The ids of requests awaiting their answers on the stream: -1 when there
 * are too many. Called with p->lock held. */
static int pending_add(proxy *p, json_t *id)
{
    if (json_array_size(p->pending) >= MAX_PENDING)
        return -1;
    return json_array_append(p->pending, id);
}

/* 1 if id was awaited (and no longer is). Called with p->lock held. */
static int pending_take(proxy *p, json_t *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(p->pending, i, v) {
        if (json_equal(v, id)) {
            json_array_remove(p->pending, i);
            return 1;
        }
    }
    return 0;
}

/* p->post from the endpoint event's text, resolved against the stream's
 * URL: an absolute URL of the same origin, a path, or a relative
 * reference. -1 for another origin (the configured headers, credentials
 * among them, are sent where messages go) or what cannot go in a request
 * line. Called with p->lock held. */
static int endpoint_set(proxy *p, const char *text)
{
    dial_url u = p->url;
    size_t len = strlen(text);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] <= 0x20 || text[i] == 0x7f)
            return -1;
    if (!strncmp(text, "http://", 7) || !strncmp(text, "https://", 8)) {
        if (dial_url_parse(text, "http://", "https://", "/", &u) < 0 || u.tls != p->url.tls ||
            strcmp(u.host, p->url.host) != 0 || strcmp(u.port, p->url.port) != 0)
            return -1;
    } else {
        /* "/path" replaces the path; "?query" the query; "name" the last
         * segment. */
        size_t keep = text[0] == '/' ? 0
                      : text[0] == '?' ? strcspn(u.path, "?")
                                       : (size_t)(strrchr(u.path, '/') - u.path) + 1;
        if (keep + len >= sizeof u.path)
            return -1;
        memcpy(u.path + keep, text, len + 1);
    }
    p->post = u;
    return 0;
}

/* An event of the stream: "endpoint" first, then messages. */
static void on_stream_event(void *ud, const char *text, size_t len)
{
    stream *s = ud;
    proxy *p = s->p;
    if (s->r.status > 299 || !s->r.sse) /* refused: stream_read says why */
        return;
    pthread_mutex_lock(&p->lock);
    if (p->stream == STREAM_OPENING && !strcmp(s->r.event, "endpoint")) {
        if (endpoint_set(p, text) < 0) {
            snprintf(s->err, sizeof s->err, "the stream's endpoint '%.100s' is not a URL of "
                     "the server's own origin", text);
            s->why = s->err;
        } else {
            p->stream = STREAM_OPEN;
            s->l.timeout_ms = -1; /* a stream may be quiet for as long as it likes */
            pthread_cond_broadcast(&p->cond);
        }
    } else if (p->stream == STREAM_OPEN && (!s->r.event[0] || !strcmp(s->r.event, "message"))) {
        int unread = 0;
        json_t *msg = server_message(p, text, len, &unread);
        if (msg) {
            json_t *id = json_object_get(msg, "id");
            int answer = id && !json_object_get(msg, "method") && pending_take(p, id);
            if (answer || !unread)
                jr_write(1, NULL, msg);
            json_decref(msg);
        }
    }
    pthread_mutex_unlock(&p->lock);
}

/* A message of the stream over --max-message was dropped: when its ends
 * show whose answer it was, that request gets an error answer now, not
 * at the client's timeout. */
static void on_stream_drop(void *ud, const char *head, size_t head_len, const char *tail,
                           size_t tail_len)
{
    stream *s = ud;
    proxy *p = s->p;
    json_t *id = jr_id_of_ends(head, head_len, tail, tail_len);
    char why[160];
    snprintf(why, sizeof why, "its answer was over --max-message (%zu bytes) and was dropped",
             p->max_message);
    pthread_mutex_lock(&p->lock);
    if (id && pending_take(p, id))
        answer_error(p, id, why);
    else
        fprintf(stderr, "eryx mcp-proxy: a message over --max-message (%zu bytes) was "
                        "dropped\n", p->max_message);
    pthread_mutex_unlock(&p->lock);
    json_decref(id);
}

/* Opens the stream and reads it to its end. Why it ended. */
static const char *stream_read(stream *s)
{
    proxy *p = s->p;
    char head[HTTP_MAX_HEAD];
    int hlen = request_head(p, "GET", p->url.path, "text/event-stream", NULL, 0, head,
                            sizeof head);
    if (hlen < 0)
        return "the request's headers are too long";
    if (link_open(p, &s->l, s->err, sizeof s->err) < 0)
        return s->err;
    pthread_mutex_lock(&p->lock);
    int closing = p->closing;
    p->stream_fd = s->l.fd;
    pthread_mutex_unlock(&p->lock);
    if (closing)
        return "stdin ended";
    if (net_link_write(&s->l, head, (size_t)hlen) < 0) {
        snprintf(s->err, sizeof s->err, "cannot send the request: %s", strerror(errno));
        return s->err;
    }
    char buf[16384];
    for (;;) {
        long n = net_link_read(&s->l, buf, sizeof buf);
        if (n < 0)
            return errno == ETIMEDOUT ? "no endpoint event in time (--timeout)"
                                      : "the event stream's connection failed";
        int done = n == 0 ? http_resp_eof(&s->r, on_stream_event, s)
                          : http_resp_feed(&s->r, buf, (size_t)n, on_stream_event, s);
        int status = s->r.status;
        if (done < 0) {
            snprintf(s->err, sizeof s->err, "a malformed event stream: %s", s->r.error);
            return s->err;
        }
        if (s->why)
            return s->why;
        if (status >= 200 && (status > 299 || !s->r.sse)) {
            snprintf(s->err, sizeof s->err, "%s %d%s", status > 299 ? "HTTP status" :
                     "not an event stream (is it a Streamable HTTP server?), status", status,
                     status == 401 || status == 403 ? " (the server wants credentials: "
                                                      "\"headers\" in the configuration)" : "");
            return s->err;
        }
        if (done)
            return "the server ended its event stream";
    }
}

/* The stream's thread: when the stream ends, every request awaiting an
 * answer gets an error one, and so will every later request. */
static void *stream_main(void *arg)
{
    proxy *p = arg;
    stream *s = calloc(1, sizeof *s);
    const char *why = "out of memory";
    if (s) {
        s->p = p;
        s->l.fd = -1;
        http_resp_init(&s->r, p->max_message);
        s->r.drop_fn = on_stream_drop;
        why = stream_read(s);
    }
    pthread_mutex_lock(&p->lock);
    snprintf(p->stream_error, sizeof p->stream_error, "%s", why);
    p->stream = STREAM_ENDED;
    p->stream_fd = -1;
    size_t i;
    json_t *id;
    json_array_foreach(p->pending, i, id)
        answer_error(p, id, why);
    json_array_clear(p->pending);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (s) {
        if (s->r.dropped)
            fprintf(stderr, "eryx mcp-proxy: %d messages over --max-message were dropped\n",
                    s->r.dropped);
        http_resp_clear(&s->r);
        net_link_close(&s->l);
        free(s);
    }
    return NULL;
}

/* Posts one message from stdin to the stream's endpoint (waiting for it
 * first). A request that cannot be posted is answered with an error; the
 * answers of the others come on the stream. */
static void post_sse(proxy *p, const char *line, size_t len)
{
    jr_msg m;
    jr_decode_bounded(line, len, JR_MAX_TREE(p->max_message), &m);
    json_t *id = m.kind == JR_REQUEST ? m.id : NULL;
    if (m.kind == JR_NOTIFICATION && !strcmp(m.method, "notifications/cancelled")) {
        /* The client gave up on a request: its answer is no longer
         * awaited (else calls that time out would fill MAX_PENDING). */
        pthread_mutex_lock(&p->lock);
        json_t *gone = json_object_get(m.params, "requestId");
        if (gone)
            pending_take(p, gone);
        pthread_mutex_unlock(&p->lock);
    }
    struct timespec until = eryx_cli_deadline((uint64_t)p->timeout_ms + 1000);
    pthread_mutex_lock(&p->lock);
    while (p->stream == STREAM_OPENING &&
           pthread_cond_timedwait(&p->cond, &p->lock, &until) == 0) {
    }
    const char *why = p->stream == STREAM_ENDED ? p->stream_error
                      : p->stream == STREAM_OPENING ? "no endpoint event in time (--timeout)"
                      : id && pending_add(p, id) < 0 ? "too many requests awaiting answers"
                                                      : NULL;
    char path[sizeof p->post.path];
    snprintf(path, sizeof path, "%s", p->post.path);
    if (why && id)
        answer_error(p, id, why);
    pthread_mutex_unlock(&p->lock);
    if (!why) {
        exchange x = {.p = p, .replayable = replayable(&m)};
        char err[400];
        why = exchange_run(&x, "POST", path, line, len, NULL, err, sizeof err);
        pthread_mutex_lock(&p->lock);
        if (why && id && pending_take(p, id))
            answer_error(p, id, why);
        pthread_mutex_unlock(&p->lock);
    }
    if (why && !id) /* a notification or a response: only said */
        fprintf(stderr, "eryx mcp-proxy: %s: %s\n", m.method ? m.method : "a response", why);
    jr_msg_clear(&m);
}

/* ---- the command -------------------------------------------------------------- */

static int usage(FILE *f)
{
    fprintf(f, "usage: eryx mcp-proxy URL [--header 'Name: value']... [--timeout MS] "
                    "[--max-message BYTES] [--ca-file PEM] [--transport http|sse|auto]\n"
                    "                      [--max-idle N]\n"
                    "  MCP over stdin/stdout, forwarded to the server at URL (http:// or\n"
                    "  https://) over Streamable HTTP, or the older HTTP+SSE (docs/mcp.md)\n");
    return 2;
}

/* 0 to go on, -1 after --help (exit 0), else the exit status of a usage
 * error. */
static int parse_options(proxy *p, int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return -1; /* exit 0 */
    }
    if (argc < 2 || dial_url_parse(argv[1], "http://", "https://", "/", &p->url) < 0) {
        fprintf(stderr, "eryx mcp-proxy: want an http:// or https:// URL%s%s\n",
                argc >= 2 ? ", not " : "", argc >= 2 ? argv[1] : "");
        return usage(stderr);
    }
    for (int i = 2; i < argc; i += 2) { /* every option takes a value */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage(stderr);
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
        } else if (strcmp(argv[i], "--transport") == 0) {
            if (strcmp(v, "http") != 0 && strcmp(v, "sse") != 0 && strcmp(v, "auto") != 0) {
                fprintf(stderr, "eryx mcp-proxy: --transport is http (Streamable HTTP), sse "
                                "(the older HTTP+SSE) or auto (http, then sse if initialize "
                                "is refused), not %s\n", v);
                return 2;
            }
            p->sse = v[0] == 's';
            p->fallback = v[0] == 'a';
        } else if (strcmp(argv[i], "--max-idle") == 0) {
            char *end;
            unsigned long n = strtoul(v, &end, 10);
            if (*end || !*v || v[0] == '-' || n > MAX_PARALLEL) {
                fprintf(stderr, "eryx mcp-proxy: --max-idle wants 0 to %d\n", MAX_PARALLEL);
                return 2;
            }
            p->max_idle = n;
        } else if (strcmp(argv[i], "--timeout") == 0 || strcmp(argv[i], "--max-message") == 0) {
            /* --max-message 16M, as --mcp-max-message takes it */
            int is_size = argv[i][2] == 'm';
            uint64_t n;
            if (eryx_cli_parse_number(v, &n, is_size) < 0 || n == 0 || n > (1ull << 31) - 1) {
                fprintf(stderr, "eryx mcp-proxy: %s wants a positive number\n", argv[i]);
                return 2;
            }
            if (is_size)
                p->max_message = (size_t)n;
            else
                p->timeout_ms = (int)n;
        } else {
            return usage(stderr);
        }
    }
    if (p->ca_file && !p->url.tls) { /* passed over, a CA file that did not load went unsaid */
        fprintf(stderr, "eryx mcp-proxy: --ca-file is for an https:// URL, not %s\n", argv[1]);
        return 2;
    }
    return 0;
}

/* The stream's thread: for --transport sse before stdin is read, for auto
 * when the server refuses initialize. On the main thread. */
static int stream_start(proxy *p)
{
    p->stream_fd = -1;
    if (!(p->pending = json_array()) ||
        pthread_create(&p->stream_thread, NULL, stream_main, p) != 0) {
        fprintf(stderr, "eryx mcp-proxy: cannot start the event stream's thread\n");
        json_decref(p->pending);
        p->pending = NULL;
        return -1;
    }
    p->sse = 1;
    return 0;
}

/* The end of stdin: the stream is cut and its thread waited for. */
static void stream_stop(proxy *p)
{
    pthread_mutex_lock(&p->lock);
    p->closing = 1;
    if (p->stream_fd >= 0)
        shutdown(p->stream_fd, SHUT_RDWR);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->stream_thread, NULL);
    json_decref(p->pending);
}

int eryx_cli_mcp_proxy(int argc, char **argv)
{
    static proxy p;
    p.timeout_ms = DEFAULT_TIMEOUT_MS;
    p.max_message = DEFAULT_MAX_MESSAGE;
    p.max_idle = MAX_PARALLEL;
    int rc = parse_options(&p, argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;
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
    if (p.sse && stream_start(&p) < 0) {
        if (p.tls)
            tls_ctx_free(p.tls);
        return 71;
    }
    jr_framer f;
    jr_framer_init(&f, p.max_message);
    for (;;) {
        char *line;
        size_t len;
        int k;
        while ((k = jr_framer_next(&f, &line, &len)) != JR_NONE) {
            if (k != JR_LINE)
                fprintf(stderr, "eryx mcp-proxy: a message over --max-message was dropped\n");
            else if (p.sse)
                post_sse(&p, line, len);
            else
                dispatch(&p, line, len);
        }
        long n = jr_framer_read(&f, 0);
        if (n == 0 || (n < 0 && errno != EINTR))
            break;
    }
    jr_framer_free(&f);
    if (p.sse)
        stream_stop(&p);
    pthread_mutex_lock(&p.lock);
    p.closing = 1; /* streams being resumed are left */
    pthread_cond_broadcast(&p.cond);
    while (p.running > 0)
        pthread_cond_wait(&p.cond, &p.lock);
    int has_session = p.session[0] != '\0';
    pthread_mutex_unlock(&p.lock);
    if (has_session) { /* the end of the session, as the transport asks */
        exchange x = {.p = &p, .replayable = 1}; /* DELETE is idempotent */
        char err[400];
        exchange_run(&x, "DELETE", p.url.path, "", 0, on_message, err, sizeof err);
    }
    while (p.n_idle > 0)
        net_link_close(&p.idle[--p.n_idle]);
    if (p.tls)
        tls_ctx_free(p.tls);
    return 0;
}
