/* Between the MCP server (mcp_server.c) and its HTTP transport (mcp_http.c). */
#ifndef ERYX_CLI_MCP_SERVER_H
#define ERYX_CLI_MCP_SERVER_H

#include <pthread.h>

#include "jsonrpc.h"
#include "mcp.h"
#include "net_link.h"

enum { CH_STDIO, CH_HTTP };

/* Where the answers to a request go: stdout, or one HTTP connection (the
 * tools/call answer as server-sent events, then the connection closes). */
typedef struct channel {
    int kind;
    int fd;                   /* stdout, or the HTTP connection's socket */
    net_link *link;           /* HTTP: the connection (plain or TLS) */
    pthread_mutex_t lock;     /* writes, and the fields below */
    pthread_cond_t cond;      /* done */
    int refs;
    int started;              /* HTTP: the response head went out */
    int chunked;              /* HTTP: the event stream goes in chunks, its
                                 end marked, the connection kept (set by
                                 mcp_http.c before dispatch) */
    int complete;             /* HTTP: the whole answer went out */
    int done;                 /* HTTP: the answer went out, or never will */
    int broken;               /* HTTP: the connection is gone */
    uint64_t wrote_ms;        /* HTTP: when it was last written (or made) */
    char sid[128];            /* the MCP session ("" on stdio) */
} channel;

extern channel eryx_mcp_stdio;

channel *eryx_mcp_channel_new(net_link *link, const char *sid);
void eryx_mcp_channel_unref(channel *ch);

/* Handles one message from ch's client: the answer to send at once, or
 * NULL (a notification, or a job that answers on ch later). */
json_t *eryx_mcp_dispatch(channel *ch, const jr_msg *m);

/* Progress notifications and late interrupts: call a few times a second. */
void eryx_mcp_progress_tick(void);

/* Cancels the runs of an MCP session and drops its sandboxes. */
void eryx_mcp_end_session(const char *sid);

/* 1 if an MCP session has a run in flight (a tools/call not answered). */
int eryx_mcp_session_busy(const char *sid);

/* --http: opens the listening socket (a loopback address, or any with
 * --http-token-file), reads the token and the TLS certificate, prints the
 * URL on stderr; -1 after printing why not. Then serves until killed. */
int eryx_mcp_http_listen(const eryx_cli_mcp *m);
void eryx_mcp_http_serve(int listen_fd, size_t max_message);

#endif
