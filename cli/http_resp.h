/*
 * An HTTP/1.1 response read as it arrives, for `eryx mcp-proxy`
 * (mcp_proxy.c), the client side of MCP's Streamable HTTP transport: the
 * head, then the body (by Content-Length, in chunks, or to the end of the
 * connection), handed out as messages: the whole body of a JSON answer,
 * or the data of each event of a text/event-stream one. The peer is a
 * server on the network: everything is bounded (the head by
 * HTTP_MAX_HEAD, a message by the reader's max) and fuzzed
 * (tests/fuzz/fuzz_http_resp.c).
 */
#ifndef ERYX_CLI_HTTP_RESP_H
#define ERYX_CLI_HTTP_RESP_H

#include <stddef.h>

#include "http.h"

/* The longest event id kept for Last-Event-ID, with its NUL. */
#define HTTP_EVENT_ID_MAX 256
/* How much of each end of an event dropped for its size is kept. */
#define HTTP_DROP_KEEP 256

/* Called for an event of the stream dropped for its size (over max), with
 * its data's first and last bytes (at most HTTP_DROP_KEEP each), for the
 * reader to tell which request it answered. */
typedef void (*http_resp_drop_fn)(void *ud, const char *head, size_t head_len,
                                  const char *tail, size_t tail_len);

typedef struct http_resp {
    size_t max;                 /* the largest message handed out */
    int state;                  /* where the reader is (http_resp.c) */
    int started;                /* a byte of the response has come */
    char head[HTTP_MAX_HEAD + 1];
    size_t head_len;
    int status;                 /* the status code, once the head is read */
    int sse;                    /* Content-Type: text/event-stream */
    int json;                   /* Content-Type: application/json */
    int chunked;                /* Transfer-Encoding: chunked */
    int has_length;
    unsigned long long length;  /* Content-Length */
    unsigned long long left;    /* of the body, or of the current chunk */
    char session[256];          /* Mcp-Session-Id, or "" */
    char *text;                 /* a JSON body, or the event stream's line */
    size_t text_len, text_cap;
    char *data;                 /* the current event's data */
    size_t data_len, data_cap;
    char event[32];             /* the current event's name ("" when it has
                                 * none, "?" when too long), read in the
                                 * callback (MCP's older HTTP+SSE transport
                                 * names its "endpoint" event) */
    /* Where the event stream resumes (MCP's Streamable HTTP, 2025-11-25;
     * the SSE rules): the id field's value, kept until changed, becomes
     * the last event id as each event ends, data or none (a server primes
     * a stream with an event of an id and empty data). An id that cannot
     * go in a Last-Event-ID header (over HTTP_EVENT_ID_MAX - 1 bytes, a
     * control character) is kept as "": like an empty one, it makes the
     * stream one that cannot resume. */
    char id_buf[HTTP_EVENT_ID_MAX];
    int id_seen;                /* an id field came */
    char last_id[HTTP_EVENT_ID_MAX]; /* the last ended event's id, or "" */
    int has_last_id;            /* an event ended after an id field */
    long retry_ms;              /* the last retry field (how long to wait
                                 * before resuming), -1 without one */
    int http11;                 /* an HTTP/1.1 response (else 1.0) */
    int has_keep_alive;         /* a "Keep-Alive: timeout=N" hint came */
    unsigned keep_alive_s;      /* its N: how long the server keeps an idle
                                 * connection (at most 3600) */
    int conn_close;             /* Connection: close */
    int to_end;                 /* its body ends with the connection */
    int surplus;                /* bytes came after the complete response */
    int skipping;               /* a message over max: dropped */
    int dropped;                /* messages dropped for their size */
    http_resp_drop_fn drop_fn;  /* set by the reader, or NULL */
    int drop_started;           /* the current event is being dropped */
    int drop_line;              /* the line being skipped is its data */
    char drop_head[HTTP_DROP_KEEP], drop_tail[HTTP_DROP_KEEP];
    size_t drop_head_len, drop_tail_len;
    char error[160];            /* why the response is malformed */
} http_resp;

/* Called for each message: text[0..len), NUL-terminated, valid until the
 * call returns. */
typedef void (*http_resp_message_fn)(void *ud, const char *text, size_t len);

void http_resp_init(http_resp *r, size_t max);
void http_resp_clear(http_resp *r);

/* Feeds n bytes of the response. 0: more wanted; 1: the response is
 * complete (bytes after it are ignored); -1: malformed, or memory ran out
 * (r->error says which). */
int http_resp_feed(http_resp *r, const char *p, size_t n, http_resp_message_fn fn, void *ud);

/* The connection ended. 1 if that completes the response (a body read to
 * the end), -1 if it was cut short. */
int http_resp_eof(http_resp *r, http_resp_message_fn fn, void *ud);

/* 1 once any byte of a response has come: a request whose connection
 * ends before that was not answered at all (a kept-alive connection the
 * server closed as the request went). */
int http_resp_started(const http_resp *r);

/* 1 if the connection may carry another request: the response is
 * complete, HTTP/1.1, framed by its length or chunks, without
 * "Connection: close", and nothing came after it. */
int http_resp_reusable(const http_resp *r);

#endif
