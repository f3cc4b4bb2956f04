/*
 * Client connections of the eryx command: a URL split into its parts, and
 * a TCP connection made within a timeout. `eryx --remote` (remote.c) and
 * `eryx mcp-proxy` (mcp_proxy.c) use them.
 */
#ifndef ERYX_CLI_DIAL_H
#define ERYX_CLI_DIAL_H

#include <stddef.h>

typedef struct dial_url {
    int tls;                     /* the secure scheme */
    char host[256], port[8], path[1024], authority[300];
} dial_url;

/* Splits s: PLAIN or SECURE scheme (e.g. "ws://", "wss://"), authority
 * (host, [v6], optional :port; the scheme's default port 80 or 443), path
 * (default_path when none, the query kept). 0, or -1 when s is not such a
 * URL or a part is too long. */
int dial_url_parse(const char *s, const char *plain, const char *secure,
                   const char *default_path, dial_url *u);

/* A connected, non-blocking TCP socket to u's host and port (every
 * address tried), each attempt within timeout_ms; -1 with err filled. */
int dial_connect(const dial_url *u, int timeout_ms, char *err, size_t errlen);

#endif
