/*
 * The HTTP/1.1 request head parser of `eryx mcp --http` (mcp_http.c) and
 * `eryx serve` (serve.c): just what the Streamable HTTP transport and a
 * WebSocket upgrade need, bounded, fuzzed by tests/fuzz/fuzz_http.c.
 */
#ifndef ERYX_CLI_HTTP_H
#define ERYX_CLI_HTTP_H

#include <stddef.h>

#define HTTP_MAX_HEAD 16384

typedef struct http_req {
    char method[16];
    char path[256];          /* without the query */
    char host[256];
    char origin[256];
    char session[128];       /* Mcp-Session-Id */
    char protocol[32];       /* MCP-Protocol-Version */
    char last_event_id[64];  /* Last-Event-ID (resuming an event stream) */
    char accept[256];
    char content_type[128];
    unsigned long long content_length;
    int has_length;
    int chunked;             /* a Transfer-Encoding was given */
    char authorization[512];
    char ws_key[64];         /* Sec-WebSocket-Key */
    char ws_version[8];      /* Sec-WebSocket-Version */
    int upgrade_websocket;   /* Upgrade names websocket */
    int connection_upgrade;  /* Connection names upgrade */
    int connection_close;    /* Connection names close */
    int http10;              /* an HTTP/1.0 request (no keep-alive) */
    int has_origin, has_session, has_protocol, has_last_event_id;
    unsigned seen;           /* the single-valued headers met (http.c) */
} http_req;

/* Parses the head at buf[0..len): >0 its length (through the blank line),
 * 0 when more bytes are needed, -1 when it is malformed (or a value is
 * longer than its field, or a single-valued header such as Host or Origin
 * comes twice), -2 when no blank line comes within
 * HTTP_MAX_HEAD bytes. */
int http_parse_head(const char *buf, size_t len, http_req *req);

/* 1 if host (a Host header value) names the loopback: localhost,
 * 127.0.0.1 or [::1], with an optional port. */
int http_host_is_loopback(const char *host);

/* 1 if origin (an Origin header value) is http(s)://loopback[:port]. */
int http_origin_is_loopback(const char *origin);

#endif
