/*
 * A connected socket, plain or TLS, read and written with a time limit on
 * every wait: the HTTP connections of `eryx mcp-proxy` (client side,
 * mcp_proxy.c) and of `eryx mcp --http` (server side, mcp_http.c). One
 * thread at a time reads or writes a link.
 */
#ifndef ERYX_CLI_NET_LINK_H
#define ERYX_CLI_NET_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "serve_tls.h"

typedef struct net_link {
    int fd;                   /* non-blocking; -1 when none */
    tls_conn *tls;            /* NULL: plain */
    int timeout_ms;           /* for each wait (-1: none) */
    uint64_t deadline_ms;     /* 0, or when every wait ends at the latest
                               * (eryx_cli_now_ms): a bound on a whole
                               * exchange that a peer sending a byte per
                               * wait cannot stretch */
} net_link;

/* A link over fd (not owned: net_link_close closes it), made non-blocking
 * and TCP_NODELAY.
 * With ctx, TLS is started: a client's when host is given (the name it
 * verifies and sends as SNI), else a server's; 0, or -1 with err filled
 * (a handshake that does not finish within timeout_ms too). */
int net_link_start(net_link *l, int fd, tls_ctx *ctx, const char *host, int timeout_ms,
                   char *err, size_t errlen);

/* One read: >0 bytes, 0 the end, -1 an error or the timeout (errno
 * ETIMEDOUT). */
long net_link_read(net_link *l, char *buf, size_t n);

/* Writes all of p; -1 when the link failed or the peer did not take it
 * within the timeout. */
int net_link_write(net_link *l, const char *p, size_t n);

/* Frees the TLS state and closes the socket. */
void net_link_close(net_link *l);

#endif
