/* Between the MCP server (mcp_server.c) and its HTTP transport (mcp_http.c). */
#ifndef ERYX_CLI_MCP_SERVER_H
#define ERYX_CLI_MCP_SERVER_H

#include <pthread.h>
#include <stdatomic.h>

#include "jsonrpc.h"
#include "mcp.h"
#include "net_link.h"

enum { CH_STDIO, CH_HTTP };

/* Where the answers to a request go: stdout, or one HTTP connection (the
 * tools/call answer as server-sent events, then the connection closes). */
typedef struct channel {
    int kind;
    int fd;                   /* stdio: stdout (HTTP: -1, see link) */
    net_link *link;           /* HTTP: the connection (plain or TLS) */
    pthread_mutex_t lock;     /* writes, and the fields below */
    int waker;                /* HTTP: the eventfd of the connection that
                                 waits for the answer (mcp_http.c), -1 when
                                 none: eryx_mcp_channel_wake writes it */
    atomic_int refs;          /* (atomic: taking or dropping a reference
                                 never waits for a writer holding lock) */
    int started;              /* HTTP: the response head went out */
    int chunked;              /* HTTP: the event stream goes in chunks, its
                                 end marked, the connection kept (set by
                                 mcp_http.c before dispatch) */
    int complete;             /* HTTP: the whole answer went out */
    int done;                 /* HTTP: the answer went out, or never will */
    int broken;               /* HTTP: the connection is gone, or let go
                               * (nothing writes on it any more) */
    uint64_t wrote_ms;        /* HTTP: when it was last written (or made) */
    /* HTTP: progress notifications are written by the thread whose
     * connection carries the stream (eryx_mcp_channel_flush), never by
     * the thread that accepts connections, which only says one is due. */
    json_t *progress_token;   /* the request's progressToken, or NULL */
    json_int_t progress_due;  /* seconds run, as the last tick saw them */
    json_int_t progress_sent; /* the last notification's */
    char sid[128];            /* the MCP session ("" on stdio) */
    /* HTTP, a resumable stream (revision 2025-11-25, mcp_resume.c): its
     * events carry ids "STREAM-N" (N from 1; a priming event, N = 0,
     * opens it) and are kept as sent, so that a client whose connection
     * broke gets what it missed with a GET of Last-Event-ID, and the
     * rest as it comes on that connection. */
    uint64_t stream;          /* its number; 0: not resumable */
    char *log;                /* its events so far, as sent */
    size_t log_len, log_cap;
    size_t *ends;             /* ends[N - 1]: where event N ends in log */
    size_t n_events, ends_cap; /* events sent (the last id's N) */
    int log_lost;             /* over its bound: it cannot be resumed (the
                               * log is let go; ends no longer grows) */
    uint64_t done_ms;         /* when done was set */
} channel;

extern channel eryx_mcp_stdio;

channel *eryx_mcp_channel_new(net_link *link, const char *sid);
void eryx_mcp_channel_unref(channel *ch);
/* ch->lock held: done, broken or link changed; the connection waiting for
 * the answer looks again. */
void eryx_mcp_channel_wake(channel *ch);

/* ch->lock held by the thread whose connection (ch->link) carries ch's
 * event stream, while it waits for the answer: writes the progress
 * notification due, or a comment on a stream quiet for HEARTBEAT_MS (the
 * connection breaks when a write fails). The milliseconds until the next
 * comment is due. */
int eryx_mcp_channel_flush(channel *ch);

/* Handles one message from ch's client: the answer to send at once, or
 * NULL (a notification, or a job that answers on ch later). */
json_t *eryx_mcp_dispatch(channel *ch, const jr_msg *m);

/* Opens ch's event stream as a resumable one: the response head and the
 * priming event (its id, "retry: 1000", no data) go at once. */
void eryx_mcp_channel_prime(channel *ch);

/* A resuming GET on link: writes the head and ch's events after event
 * `after`, ending the stream if ch is done (ch->lock held by the caller;
 * ch->link already link). -1 when the connection is gone. */
int eryx_mcp_channel_replay(channel *ch, size_t after);

/* Resumable streams (mcp_resume.c): ch kept (a reference) from its
 * priming on; found by a Last-Event-ID of its MCP session; forgotten once
 * delivered whole, with its session, or RESUME_KEEP_MS after its answer. */
int eryx_mcp_resume_keep(channel *ch);
channel *eryx_mcp_resume_find(const char *last_event_id, const char *sid, size_t *after);
void eryx_mcp_resume_forget(channel *ch);
void eryx_mcp_resume_end_session(const char *sid);
void eryx_mcp_resume_tick(uint64_t now_ms);

/* Progress notifications and late interrupts: call a few times a second.
 * It writes nothing on an HTTP connection and never waits for one (the
 * thread that accepts connections calls it); on stdio it writes the
 * notifications. */
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

/* The server's life around its transport, as eryx_cli_mcp_serve runs it:
 * begin sets it up for m, rt and cfg (0, or an exit status after printing
 * why not); end stops every run and drops every session. The fuzz
 * harnesses call them around the connections they make. */
int eryx_mcp_serve_begin(const eryx_cli_mcp *m, eryx_runtime *rt, const eryx_sandbox_config *cfg);
void eryx_mcp_serve_end(void);

/* Serves one plain-HTTP connection on fd to its end, on the calling
 * thread, as a connection's thread does (no token: loopback Host and
 * Origin only), then closes fd (tests/fuzz/fuzz_mcp_http.c). */
void eryx_mcp_http_serve_fd(int fd, size_t max_message);
/* Ends every MCP session of the HTTP transport: their runs are stopped,
 * their kept event streams dropped. */
void eryx_mcp_http_end_sessions(void);

#endif
