/*
 * `eryx mcp`: an MCP server on stdin/stdout (newline-delimited JSON-RPC
 * 2.0) whose tools run Python in eryx sandboxes (docs/mcp.md).
 *
 * Tools: run_python(code, session?, timeout_ms?), reset_session(session?),
 * list_sessions(). A session is a sandbox kept between calls, made from the
 * runtime's image on first use; calls on one session run one after the
 * other, calls on different sessions at once (a thread per call).
 *
 * The main thread reads and answers requests; a call's thread writes its
 * own response (writes are serialised by one lock). notifications/cancelled
 * interrupts the call's run (eryx_sandbox_interrupt: KeyboardInterrupt,
 * then a hard stop) or drops it while it waits for its session, and no
 * response is sent. A call with a progressToken gets notifications/progress
 * once a second while it runs. When stdin closes (the client went away) the
 * runs in progress are interrupted and the process exits once they ended.
 *
 * With --http, the same requests come as Streamable HTTP POSTs instead
 * (mcp_http.c); where an answer goes is the request's channel: stdout, or
 * the HTTP connection that asked. Each HTTP client (MCP session) has its
 * own namespace of sessions.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jsonrpc.h"
#include "mcp.h"
#include "mcp_internal.h"
#include "mcp_server.h"
#include "result_json.h"
#include "run_status.h"

#define MAX_JOBS 256
/* The ..._PER_MCP_SESSION bounds are per Mcp-Session-Id, not per client:
 * one client may open several MCP sessions (64 at most, mcp_http.c), each
 * with its own share; the bounds in all hold them together. */
/* Calls of one MCP session over HTTP in progress at most: a client that
 * posted calls and went (a disconnect does not cancel one) must not fill
 * the table of all the clients. */
#define MAX_JOBS_PER_MCP_SESSION 16
/* Bytes of code the calls in progress may hold in all: MAX_JOBS calls of
 * --mcp-max-message each held 4 GB (100 calls of 15 MB of code queued
 * behind a busy session: 1.6 GB). */
#define MAX_JOB_CODE_BYTES ((size_t)256 << 20)
/* Of which one MCP session over HTTP may hold a quarter: 16 calls of 16 MiB
 * from one client took it all, from every other client. */
#define MAX_JOB_CODE_BYTES_PER_MCP_SESSION (MAX_JOB_CODE_BYTES / 4)
/* Bytes of answers made and not yet delivered (written out, or given up)
 * in all, and of one MCP session over HTTP: a client that does not read
 * must not make the server grow. 40 unread answers of 12 MB each (6 MB
 * printed: stdout goes in both forms) held 1.5 GB. A run's answer past
 * the bound waits, its session still busy, until the answers ahead of it
 * are read: the calls behind it wait, and nothing is lost. */
#define MAX_ANSWER_BYTES ((size_t)256 << 20)
#define MAX_ANSWER_BYTES_PER_MCP_SESSION (MAX_ANSWER_BYTES / 4)
/* Once stdin has closed, the answers still going out on stdout get this
 * long without a byte taken, then the server gives them up and exits
 * (EXIT_UNREAD): a client that stopped reading and closed its side left
 * it waiting forever. */
#define STDOUT_GRACE_MS 5000
#define EXIT_UNREAD 74 /* EX_IOERR */
#define DEFAULT_MAX_SESSIONS 16
#define HEARTBEAT_MS 15000 /* a comment on an event stream quiet this long */
/* What the logs of resumable streams may hold in all (each one also at
 * most --mcp-max-message and a mebibyte): past it a stream's log is let
 * go and the stream cannot be resumed. */
#define MAX_KEPT_BYTES ((size_t)256 << 20)
/* Of which the streams of one MCP session may keep a quarter: 22 cut
 * streams of 12 MB answers from one client took all of it, and every
 * other client's cut stream was then lost. */
#define MAX_KEPT_BYTES_PER_MCP_SESSION (MAX_KEPT_BYTES / 4)
#define KEPT_MCP_SESSIONS 256 /* MCP sessions with logs (ended ones' may linger) */

static atomic_size_t kept_bytes; /* the logs' bytes, all channels */

/* The logs' bytes of each MCP session. Its lock is taken last (under a
 * channel's) and nothing is taken under it. */
static struct {
    pthread_mutex_t lock;
    char sid[KEPT_MCP_SESSIONS][128];
    size_t bytes[KEPT_MCP_SESSIONS];
} K = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Counts n bytes more kept for sid's logs: -1 (nothing counted) past
 * MAX_KEPT_BYTES_PER_MCP_SESSION, or when KEPT_MCP_SESSIONS sessions keep some. */
static int kept_add(const char *sid, size_t n)
{
    int rc = -1;
    pthread_mutex_lock(&K.lock);
    size_t at = KEPT_MCP_SESSIONS, free_at = KEPT_MCP_SESSIONS;
    for (size_t i = 0; i < KEPT_MCP_SESSIONS && at == KEPT_MCP_SESSIONS; i++) {
        if (K.bytes[i] && strcmp(K.sid[i], sid) == 0)
            at = i;
        else if (!K.bytes[i] && free_at == KEPT_MCP_SESSIONS)
            free_at = i;
    }
    if (at == KEPT_MCP_SESSIONS && free_at < KEPT_MCP_SESSIONS && n) {
        at = free_at;
        snprintf(K.sid[at], sizeof K.sid[at], "%s", sid);
    }
    if (at < KEPT_MCP_SESSIONS && K.bytes[at] + n <= MAX_KEPT_BYTES_PER_MCP_SESSION) {
        K.bytes[at] += n;
        rc = 0;
    }
    pthread_mutex_unlock(&K.lock);
    return rc;
}

/* Counts n bytes of sid's logs let go. */
static void kept_sub(const char *sid, size_t n)
{
    pthread_mutex_lock(&K.lock);
    for (size_t i = 0; i < KEPT_MCP_SESSIONS && n; i++) {
        if (K.bytes[i] && strcmp(K.sid[i], sid) == 0) {
            K.bytes[i] -= n;
            break;
        }
    }
    pthread_mutex_unlock(&K.lock);
}

typedef struct job job;

typedef struct session {
    char *name;               /* "SID:NAME": the MCP session's id ("" on
                                 stdio), then the name the client gave */
    eryx_sandbox *sb;         /* NULL while being made (make_session):
                                 the session is then busy and not listed */
    int busy;
    uint64_t runs;
    uint64_t memory_bytes;    /* after its last run */
    uint64_t used_ms;         /* made or last run */
    int reset_untold;         /* reset by a run whose call was cancelled
                                 (no answer): the next answer says so */
    struct session *next;
} session;

enum { JOB_RUN, JOB_RESET };

struct job {
    int kind;
    json_t *id;               /* the request's id */
    char *code;
    size_t code_len;
    size_t held_len;          /* code_len and its progress token's copies:
                                 what it counts for MAX_JOB_CODE_BYTES */
    char *session;            /* its name */
    char *key;                /* "SID:NAME" (session's name) */
    char sid[128];            /* the MCP session ("" on stdio) */
    channel *ch;              /* where its answer goes */
    uint64_t timeout_ns;
    json_t *progress_token;   /* or NULL */
    int cancelled;
    int was_dropped;          /* its session had been dropped for room */
    int was_reset_untold;     /* a cancelled call's run had reset it */
    session *running;         /* while it runs */
    uint64_t started_ms;
    json_int_t progress;
    int answered;             /* ran: its answer is being delivered */
    size_t answer_len;        /* its answer's bytes, while delivered */
    job *next;
};

static struct {
    pthread_mutex_t lock;     /* sessions, jobs, closing */
    pthread_cond_t cond;
    eryx_runtime *rt;
    eryx_sandbox_config cfg;
    session *sessions;
    size_t n_sessions;
    uint32_t max_sessions;
    job *jobs;
    size_t n_jobs;
    size_t job_code_bytes;    /* the jobs' code, for MAX_JOB_CODE_BYTES */
    size_t answer_bytes;      /* the jobs' answers, for MAX_ANSWER_BYTES */
    int closing;
    int out_broken;
    size_t max_message;
    json_t *tools;            /* the tools/list answer's array */
} S = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .cond = PTHREAD_COND_INITIALIZER};

/* ---- channels ---- */

channel eryx_mcp_stdio = {.kind = CH_STDIO, .fd = STDOUT_FILENO,
                          .lock = PTHREAD_MUTEX_INITIALIZER, .waker = -1, .refs = 1};

channel *eryx_mcp_channel_new(net_link *link, const char *sid)
{
    channel *ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    ch->kind = CH_HTTP;
    ch->fd = -1;
    ch->link = link;
    ch->waker = -1;
    ch->refs = 1;
    ch->wrote_ms = eryx_cli_now_ms();
    snprintf(ch->sid, sizeof ch->sid, "%s", sid);
    pthread_mutex_init(&ch->lock, NULL);
    return ch;
}

void eryx_mcp_channel_wake(channel *ch)
{
    uint64_t one = 1;
    if (ch->waker >= 0 && write(ch->waker, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is full, so it is readable: woken anyway */
    }
}

/* ch->lock held: nothing more is written on ch's connection. */
static void ch_break(channel *ch)
{
    ch->broken = 1;
    eryx_mcp_channel_wake(ch);
}

static channel *ch_ref(channel *ch)
{
    atomic_fetch_add(&ch->refs, 1);
    return ch;
}

void eryx_mcp_channel_unref(channel *ch)
{
    int last = atomic_fetch_sub(&ch->refs, 1) == 1;
    if (last && ch->kind == CH_HTTP) {
        atomic_fetch_sub(&kept_bytes, ch->log_len);
        kept_sub(ch->sid, ch->log_len);
        free(ch->log);
        free(ch->ends);
        json_decref(ch->progress_token);
        pthread_mutex_destroy(&ch->lock);
        free(ch);
    }
}

#define SSE_HEAD_CLOSE                                                                   \
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"   \
    "Connection: close\r\n\r\n"
#define SSE_HEAD_CHUNKED                                                                 \
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"   \
    "Transfer-Encoding: chunked\r\n" ERYX_MCP_KEEP_ALIVE_HINT "\r\n"

/* Writes all of p to an HTTP connection (lock held); -1 when it is gone. */
static int http_write(channel *ch, const char *p, size_t n)
{
    return net_link_write(ch->link, p, n);
}

/* Writes body[0..n) of a tools/call's event stream (lock held), the
 * response head first if it has not gone: in chunks when the connection
 * is to carry more requests (final: then the empty chunk that ends the
 * answer), else to the end of the connection. One write: one segment, one
 * TLS record. -1 when the connection is gone. */
static int http_stream_write(channel *ch, const char *body, size_t n, int final)
{
    const char *head = ch->started ? "" : ch->chunked ? SSE_HEAD_CHUNKED : SSE_HEAD_CLOSE;
    char *out = malloc(strlen(head) + 24 + n + 7);
    if (!out)
        return -1;
    int k = sprintf(out, "%s", head);
    if (ch->chunked && n)
        k += sprintf(out + k, "%zx\r\n", n);
    if (n) /* (body may be an empty log's NULL) */
        memcpy(out + k, body, n);
    k += (int)n;
    k += sprintf(out + k, "%s%s", ch->chunked && n ? "\r\n" : "",
                 ch->chunked && final ? "0\r\n\r\n" : "");
    int rc = http_write(ch, out, (size_t)k);
    free(out);
    ch->started = 1;
    ch->complete = rc == 0 && final;
    ch->wrote_ms = eryx_cli_now_ms();
    return rc;
}

/* A stream's log let go (lock held): it cannot be resumed. */
static void log_lose(channel *ch)
{
    atomic_fetch_sub(&kept_bytes, ch->log_len);
    kept_sub(ch->sid, ch->log_len);
    free(ch->log);
    ch->log = NULL;
    ch->log_len = ch->log_cap = 0;
    ch->log_lost = 1;
}

/* Room in ch's log for n bytes more and one more event's end; -1 when
 * memory runs out. */
static int log_room(channel *ch, size_t n)
{
    if (ch->log_cap - ch->log_len < n) {
        size_t cap = ch->log_cap ? ch->log_cap : 4096;
        while (cap - ch->log_len < n)
            cap *= 2;
        char *log = realloc(ch->log, cap);
        if (!log)
            return -1;
        ch->log = log;
        ch->log_cap = cap;
    }
    if (ch->n_events == ch->ends_cap) {
        size_t cap = ch->ends_cap ? ch->ends_cap * 2 : 8;
        size_t *ends = realloc(ch->ends, cap * sizeof *ends);
        if (!ends)
            return -1;
        ch->ends = ends;
        ch->ends_cap = cap;
    }
    return 0;
}

/* Keeps event[0..n), the next of a resumable stream, in its log (lock
 * held), within max_message and a mebibyte more, within
 * MAX_KEPT_BYTES_PER_MCP_SESSION for its MCP session's and MAX_KEPT_BYTES for
 * all: past any the stream cannot be resumed (what a client missed is
 * gone). The caller counts the event. */
static void log_event(channel *ch, const char *event, size_t n)
{
    if (ch->log_lost)
        return;
    if (ch->log_len + n > S.max_message + (1u << 20)) {
        log_lose(ch);
        return;
    }
    if (kept_add(ch->sid, n) < 0) {
        log_lose(ch);
        return;
    }
    if (atomic_fetch_add(&kept_bytes, n) + n > MAX_KEPT_BYTES || log_room(ch, n) < 0) {
        atomic_fetch_sub(&kept_bytes, n); /* (counted above, not kept) */
        kept_sub(ch->sid, n);
        log_lose(ch);
        return;
    }
    memcpy(ch->log + ch->log_len, event, n);
    ch->log_len += n;
    ch->ends[ch->n_events] = ch->log_len;
}

/* An event of a tools/call's answer (lock held): progress notifications,
 * then the response (final). A resumable stream's get ids and are kept,
 * also while no connection carries them (a resuming GET sends them).
 * -1 when the connection is gone (and the event not kept). */
static int http_event(channel *ch, const char *text, int final)
{
    size_t n = strlen(text);
    char id[48] = "";
    if (ch->stream)
        snprintf(id, sizeof id, "id: %llu-%zu\n", (unsigned long long)ch->stream,
                 ch->n_events + 1);
    size_t len = strlen(id) + 21 + n + 2; /* id "event: message\ndata: " text "\n\n" */
    char *event = malloc(len + 1);
    if (!event)
        return -1;
    int k = sprintf(event, "%sevent: message\ndata: ", id);
    memcpy(event + k, text, n);
    memcpy(event + k + n, "\n\n", 2);
    if (ch->stream) {
        log_event(ch, event, len);
        ch->n_events++;
    }
    int rc = ch->broken ? (ch->stream ? 0 : -1) : http_stream_write(ch, event, len, final);
    free(event);
    return rc;
}

void eryx_mcp_channel_prime(channel *ch)
{
    char event[64];
    pthread_mutex_lock(&ch->lock);
    int n = snprintf(event, sizeof event, "id: %llu-0\nretry: 1000\ndata:\n\n",
                     (unsigned long long)ch->stream);
    if (!ch->broken && !ch->started && http_stream_write(ch, event, (size_t)n, 0) < 0)
        ch_break(ch);
    pthread_mutex_unlock(&ch->lock);
}

int eryx_mcp_channel_replay(channel *ch, size_t after)
{
    size_t from = after ? ch->ends[after - 1] : 0;
    ch->started = 0; /* a new response: its head goes first */
    return http_stream_write(ch, ch->log + from, ch->log_len - from, ch->done);
}

static char *message_text(json_t *msg, int final);

/* The answer is done (lock held): no more progress, and the token's copy
 * goes now, not with the channel. It was counted in the calls' bounds
 * only until the answer, and a cut resumable stream keeps its channel
 * RESUME_KEEP_MS more: 128 kept streams of 16 MiB tokens held 2 GiB
 * uncounted for five minutes. */
static void ch_drop_token(channel *ch)
{
    json_decref(ch->progress_token);
    ch->progress_token = NULL;
}

/* notifications/progress for a run of secs seconds (token copied). */
static json_t *progress_note(json_t *token, json_int_t secs)
{
    char msg[80];
    snprintf(msg, sizeof msg, "running for %lld s", (long long)secs);
    return jr_notification("notifications/progress",
                           json_pack("{s:o, s:I, s:s}", "progressToken", json_deep_copy(token),
                                     "progress", secs, "message", msg));
}

/* The progress notification due on ch (lock held), if a newer one than
 * the last is: -1 when the connection is gone. */
static int http_progress(channel *ch)
{
    if (!ch->progress_token || ch->progress_due <= ch->progress_sent)
        return 0;
    ch->progress_sent = ch->progress_due;
    char *text = message_text(progress_note(ch->progress_token, ch->progress_due), 0);
    int rc = text ? http_event(ch, text, 0) : 0;
    free(text);
    return rc;
}

/* Besides progress: a comment on the event stream of a run that has said
 * nothing for HEARTBEAT_MS (progress notifications, asked for, speak
 * every second): proxies and load balancers cut connections idle for a
 * minute or so (nginx's proxy_read_timeout, AWS's load balancers: 60 s),
 * and a run may take longer in silence. Clients pass comments over. */
int eryx_mcp_channel_flush(channel *ch)
{
    static const char comment[] = ": running\n\n";
    if (ch->broken || ch->done)
        return HEARTBEAT_MS;
    if (http_progress(ch) < 0)
        ch_break(ch);
    uint64_t now = eryx_cli_now_ms();
    if (!ch->broken && now >= ch->wrote_ms + HEARTBEAT_MS) {
        if (http_stream_write(ch, comment, sizeof comment - 1, 0) < 0)
            ch_break(ch);
        now = eryx_cli_now_ms();
    }
    return now >= ch->wrote_ms + HEARTBEAT_MS ? 0 : (int)(ch->wrote_ms + HEARTBEAT_MS - now);
}

/* Says that the progress notification for secs seconds is due on ch, for
 * its connection's thread to write (from the tick, which must not wait: a
 * channel whose lock is busy, its answer or a replay being written, is
 * passed over, and a later second's goes). A stream with no connection is
 * not told: the notification is not kept for a resuming GET. */
static void ch_progress_due(channel *ch, json_int_t secs)
{
    if (pthread_mutex_trylock(&ch->lock) != 0)
        return;
    if (!ch->done && !ch->broken && secs > ch->progress_due) {
        ch->progress_due = secs;
        eryx_mcp_channel_wake(ch);
    }
    pthread_mutex_unlock(&ch->lock);
}

/* ---- stdout ---- */

static struct {
    atomic_int in_closed;      /* stdin ended or hung up */
    atomic_uint_fast64_t since_ms; /* its close, then each write's progress */
    atomic_int given_up;       /* messages not delivered (STDOUT_GRACE_MS) */
    int fl_saved;              /* stdout's flags before O_NONBLOCK, or -1 */
} O = {.fl_saved = -1};

static void stdin_closed(void)
{
    /* since_ms first: a writer that sees in_closed reads it at once (set
     * after it, a writer in between read 0, and gave up at once). */
    if (!atomic_load(&O.in_closed)) {
        atomic_store(&O.since_ms, eryx_cli_now_ms());
        atomic_store(&O.in_closed, 1);
    }
}

/* 1 once stdin has closed (read to its end, or the client hung up while
 * requests were still unread: a writer stuck behind a full stdout sees
 * that on stdin without reading it) and stdout has taken nothing since
 * for STDOUT_GRACE_MS. */
static int stdout_given_up(void)
{
    if (!atomic_load(&O.in_closed)) {
        /* A socket's end shows as POLLRDHUP alone while the client keeps
         * its side open: libuv's (Node's) stdio is a socketpair, and a
         * client that shuts down its writing side (stream.end()) without
         * closing it was never seen. */
        struct pollfd p = {STDIN_FILENO, POLLRDHUP, 0};
        if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR | POLLRDHUP)))
            stdin_closed();
        return 0;
    }
    return eryx_cli_now_ms() - atomic_load(&O.since_ms) >= STDOUT_GRACE_MS;
}

/* Writes text[0..n) on stdout (its lock held). stdout is non-blocking
 * when it is a pipe or a socket (serve_stdio): a client that does not
 * read is waited for in slices of 100 ms, for ever while it may still
 * read, STDOUT_GRACE_MS once it has closed stdin. -1 when it is gone or
 * given up. */
static int stdout_write(const char *p, size_t n)
{
    while (n) {
        long w = jr_write_some(STDOUT_FILENO, p, n);
        if (w < 0)
            return -1;
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            if (atomic_load(&O.in_closed))
                atomic_store(&O.since_ms, eryx_cli_now_ms());
            continue;
        }
        if (stdout_given_up()) {
            atomic_fetch_add(&O.given_up, 1);
            return -1;
        }
        struct pollfd pfd = {STDOUT_FILENO, POLLOUT, 0};
        poll(&pfd, 1, 100);
    }
    return 0;
}

/* The text of msg (consumed) to send: a response over --mcp-max-message
 * is replaced by an error answering the same request (final: the answer
 * to the channel's request; another message that large is not sent).
 * NULL when there is nothing to send. */
static char *message_text(json_t *msg, int final)
{
    if (!msg)
        return NULL;
    char *text = json_dumps(msg, JSON_COMPACT);
    if (text && strlen(text) > S.max_message) {
        free(text);
        text = NULL;
        json_t *id = json_object_get(msg, "id");
        if (final || id) {
            json_t *err = jr_error(id, JR_INTERNAL_ERROR,
                                   "the response is larger than --mcp-max-message");
            text = err ? json_dumps(err, JSON_COMPACT) : NULL;
            json_decref(err);
        }
    }
    json_decref(msg);
    return text;
}

/* Sends text (a message, consumed; NULL: nothing) on ch; final marks the
 * answer to the channel's request. On stdio a client that went away ends
 * the server. */
static void ch_send_text(channel *ch, char *text, int final)
{
    if (ch->kind == CH_STDIO) {
        if (!text)
            return;
        size_t n = strlen(text);
        text[n] = '\n'; /* the NUL becomes the line's end (compact JSON has no newline) */
        pthread_mutex_lock(&ch->lock);
        int rc = stdout_write(text, n + 1);
        pthread_mutex_unlock(&ch->lock);
        if (rc < 0) {
            pthread_mutex_lock(&S.lock);
            S.out_broken = 1;
            pthread_mutex_unlock(&S.lock);
        }
        free(text);
        return;
    }
    pthread_mutex_lock(&ch->lock);
    if (text && (!ch->broken || ch->stream) && !ch->done) {
        if (http_event(ch, text, final) < 0)
            ch_break(ch);
    }
    if (final) {
        ch->done = 1;
        ch->done_ms = eryx_cli_now_ms();
        ch_drop_token(ch);
        eryx_mcp_channel_wake(ch);
    }
    pthread_mutex_unlock(&ch->lock);
    free(text);
}

/* Sends msg (consumed) on ch. */
static void ch_send(channel *ch, json_t *msg, int final)
{
    if (msg)
        ch_send_text(ch, message_text(msg, final), final);
}

/* The text of a run's answer to j (its response message), serialised
 * once. An answer over --mcp-max-message has its long texts cut so that it
 * fits, rather than the answer lost, and is made again: nine of them at
 * most (stdout, stderr, traceback and result twice, the message), and
 * JSON may escape a byte into 6: 9 * 6 / 64 of the limit. NULL when out
 * of memory. */
static char *run_answer_text(const job *j, int rc, eryx_result *res, const char *errmsg,
                             int was_reset)
{
    /* (a copy of the id: cancel() compares j->id on another thread, and
     * jansson's reference counts are not shared safely) */
    json_t *id = json_deep_copy(j->id);
    mcp_run_facts f = {j->session, was_reset, j->was_reset_untold, j->was_dropped};
    json_t *msg = jr_response(id, eryx_mcp_run_answer(&f, rc, res, errmsg, SIZE_MAX));
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (!text || strlen(text) > S.max_message) {
        free(text);
        text = message_text(jr_response(id, eryx_mcp_run_answer(&f, rc, res, errmsg,
                                                                 S.max_message / 64)), 1);
    }
    json_decref(id);
    return text;
}

/* ---- jobs ---- */

static session *find_session(const char *key)
{
    for (session *s = S.sessions; s; s = s->next)
        if (strcmp(s->name, key) == 0)
            return s;
    return NULL;
}

static void remove_job(job *j)
{
    for (job **pp = &S.jobs; *pp; pp = &(*pp)->next) {
        if (*pp == j) {
            *pp = j->next;
            S.n_jobs--;
            S.job_code_bytes -= j->held_len;
            break;
        }
    }
    pthread_cond_broadcast(&S.cond);
}

static void free_job(job *j)
{
    json_decref(j->id);
    json_decref(j->progress_token);
    free(j->code);
    free(j->session);
    free(j->key);
    if (j->ch)
        eryx_mcp_channel_unref(j->ch);
    free(j);
}

/* Takes s out of the sessions (S.lock held) onto *dead, to be freed by
 * free_sessions once the lock is let go: freeing a sandbox that ran
 * unmaps tens of megabytes, and every other session's calls waited for
 * it. Only a session that is not busy is dropped: no job runs it or is
 * making it, so once unlinked nothing else reaches it (cancel and the
 * progress tick reach sandboxes through running jobs alone). */
static void unlink_session(session *s, session **dead)
{
    for (session **pp = &S.sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            S.n_sessions--;
            break;
        }
    }
    s->next = *dead;
    *dead = s;
}

/* Frees the sessions unlink_session put on dead (S.lock not held). */
static void free_sessions(session *dead)
{
    while (dead) {
        session *next = dead->next;
        eryx_sandbox_free(dead->sb);
        free(dead->name);
        free(dead);
        dead = next;
    }
}

/* Sessions dropped to make room, remembered (a few) so that their next
 * call can say why its variables are gone. */
#define DROPPED_KEPT 64
static char *dropped[DROPPED_KEPT];
static unsigned dropped_next;

static int forget_dropped(const char *key)
{
    for (unsigned i = 0; i < DROPPED_KEPT; i++) {
        if (dropped[i] && strcmp(dropped[i], key) == 0) {
            free(dropped[i]);
            dropped[i] = NULL;
            return 1;
        }
    }
    return 0;
}

/* At --max-sessions, a new session takes the place of the one used least
 * recently that is not running code: the clients of `eryx mcp --http`
 * often go without ending their MCP session, and theirs would otherwise
 * hold every place. 1 if one was dropped (onto *dead); S.lock held. */
static int drop_least_used(session **dead)
{
    session *old = NULL;
    for (session *s = S.sessions; s; s = s->next)
        if (!s->busy && (!old || s->used_ms < old->used_ms))
            old = s;
    if (!old)
        return 0;
    free(dropped[dropped_next]);
    dropped[dropped_next] = strdup(old->name);
    dropped_next = (dropped_next + 1) % DROPPED_KEPT;
    unlink_session(old, dead);
    return 1;
}

/* Calls on one session run in the order they came: j goes when it is the
 * first job of its session still in the list (which is in arrival order;
 * a running job stays in it until it ends). */
static int first_of_session(const job *j)
{
    for (job *k = S.jobs; k; k = k->next) {
        if (k == j)
            return 1;
        if (!k->cancelled && !k->answered && strcmp(k->key, j->key) == 0)
            return 0;
    }
    return 0;
}

/* The request will get no answer (cancelled, its MCP session deleted, or
 * the server closes): an HTTP connection waiting for it is let go, its
 * response ended properly with no answer in it (the head, if it has not
 * gone, and a kept connection's empty last chunk). Until 2026-12-07 it was
 * cut mid-response, which a client's HTTP library takes for a failure. */
static void ch_abandon(channel *ch)
{
    if (ch->kind != CH_HTTP)
        return;
    pthread_mutex_lock(&ch->lock);
    if (!ch->broken && !ch->done && http_stream_write(ch, NULL, 0, 1) < 0)
        ch_break(ch);
    ch->done = 1;
    ch->done_ms = eryx_cli_now_ms();
    ch_drop_token(ch);
    eryx_mcp_channel_wake(ch);
    pthread_mutex_unlock(&ch->lock);
}

/* Room for j's answer, n bytes, among the answers not yet delivered
 * (S.lock held): within MAX_ANSWER_BYTES in all and, over HTTP, within
 * MAX_ANSWER_BYTES_PER_MCP_SESSION of j's MCP session; an answer larger than
 * that goes when nothing else is held. Waits for the answers ahead to go
 * out (or, over HTTP, for their connections to fail: IO_TIMEOUT_MS); -1
 * when the call is cancelled or the server closes meanwhile. */
static int reserve_answer(job *j, size_t n)
{
    for (;;) {
        if (j->cancelled || S.closing)
            return -1;
        size_t mine = 0;
        for (job *k = S.jobs; k && j->sid[0]; k = k->next)
            if (strcmp(k->sid, j->sid) == 0)
                mine += k->answer_len;
        if ((!S.answer_bytes || S.answer_bytes + n <= MAX_ANSWER_BYTES) &&
            (!mine || mine + n <= MAX_ANSWER_BYTES_PER_MCP_SESSION))
            break;
        pthread_cond_wait(&S.cond, &S.lock);
    }
    j->answer_len = n;
    S.answer_bytes += n;
    return 0;
}

/* The answer to a call refused a place: every session is running code
 * or being made. */
static json_t *no_room_answer(void)
{
    char msg[200];
    snprintf(msg, sizeof msg, "there are already %u sessions (the limit, --max-sessions), "
             "all running code or being made: try again when one ends", S.max_sessions);
    return eryx_mcp_tool_result(msg, NULL, 1);
}

/* Makes j's session (S.lock held on entry and return, let go while the
 * sandbox is made: that takes milliseconds, and every other session's
 * calls waited for it). Meanwhile the session is in the list, so it
 * holds its place against --max-sessions, busy, so that nothing drops,
 * runs or resets it (the calls behind j on it wait), and without a
 * sandbox, so that list_sessions passes it over. Returns it, or NULL
 * with *answer saying why, its place given back. */
static session *make_session(job *j, json_t **answer)
{
    session *s = calloc(1, sizeof *s), *dead = NULL;
    if (s)
        s->name = strdup(j->key);
    if (!s || !s->name) {
        free(s);
        *answer = eryx_mcp_tool_result("the session could not be created: out of memory", NULL, 1);
        return NULL;
    }
    if (S.n_sessions >= S.max_sessions && !drop_least_used(&dead)) {
        free(s->name);
        free(s);
        *answer = no_room_answer();
        return NULL;
    }
    s->busy = 1;
    s->next = S.sessions;
    S.sessions = s;
    S.n_sessions++;
    pthread_mutex_unlock(&S.lock);
    free_sessions(dead); /* first: the dropped sandbox and the new one are never both held */
    eryx_sandbox *sb = NULL;
    int rc = eryx_sandbox_new(S.rt, &S.cfg, &sb);
    char msg[300] = "";
    if (rc != ERYX_OK)
        snprintf(msg, sizeof msg, "the session could not be created: %s",
                 eryx_errmsg(NULL)[0] ? eryx_errmsg(NULL) : eryx_errstr(rc));
    pthread_mutex_lock(&S.lock);
    pthread_cond_broadcast(&S.cond); /* the calls waiting for it */
    if (rc != ERYX_OK) {
        session *failed = NULL;
        unlink_session(s, &failed);
        free_sessions(failed); /* (no sandbox: at once) */
        *answer = eryx_mcp_tool_result(msg, NULL, 1);
        return NULL;
    }
    s->sb = sb;
    s->busy = 0;
    s->used_ms = eryx_cli_now_ms();
    j->was_dropped = forget_dropped(j->key);
    return s;
}

/* Waits (S.lock held) until j is the first call of its session and the
 * session is free, made first for a run. NULL: nothing to reset, or
 * *answer says why not. j may have been cancelled meanwhile. */
static session *await_session(job *j, json_t **answer)
{
    for (;;) {
        /* (Not a session found before a wait: it may have been dropped
         * and freed since.) */
        if (j->cancelled || S.closing)
            return NULL;
        if (!first_of_session(j)) {
            pthread_cond_wait(&S.cond, &S.lock);
            continue;
        }
        session *s = find_session(j->key);
        if (!s && j->kind == JOB_RESET)
            return NULL;
        if (!s) {
            if (!make_session(j, answer))
                return NULL;
            continue; /* the lock was let go: look again */
        }
        if (!s->busy)
            return s;
        pthread_cond_wait(&S.cond, &S.lock);
    }
}

/* reset_session's answer. */
static json_t *reset_answer(const job *j, int existed)
{
    char msg[160];
    snprintf(msg, sizeof msg, existed ? "session '%.64s' reset: its variables are gone"
                                      : "session '%.64s' did not exist (nothing to reset)",
             j->session);
    return eryx_mcp_tool_result(msg, json_pack("{s:s, s:b}", "session", j->session, "existed", existed),
                       0);
}

static void *job_main(void *arg)
{
    job *j = arg;
    json_t *answer = NULL;
    char *reply = NULL;       /* the answer's text */
    session *dead = NULL;     /* reset: freed once the lock is let go */
    pthread_mutex_lock(&S.lock);
    session *s = await_session(j, &answer);
    int go = s && !s->busy && !answer && !j->cancelled && !S.closing;
    if (go && j->kind == JOB_RESET) {
        unlink_session(s, &dead);
        s = NULL;
        go = 0;
        answer = reset_answer(j, 1);
    } else if (!s && !answer && j->kind == JOB_RESET && !j->cancelled && !S.closing) {
        answer = reset_answer(j, 0);
    }
    if (go) {
        s->busy = 1;
        j->was_reset_untold = s->reset_untold;
        s->reset_untold = 0;
        j->running = s;
        j->started_ms = eryx_cli_now_ms();
    }
    pthread_mutex_unlock(&S.lock);
    free_sessions(dead);

    if (go) {
        eryx_run_options opts;
        eryx_run_options_default(&opts);
        opts.timeout_ns = j->timeout_ns;
        opts.filename = "<run_python>";
        eryx_result *res = NULL;
        int rc = eryx_sandbox_run_ex(s->sb, j->code, j->code_len, &opts, &res);
        char errmsg[300];
        snprintf(errmsg, sizeof errmsg, "%s", eryx_errmsg(s->sb));
        /* A session that can no longer run (trap, hard stop, os._exit)
         * comes back empty rather than failing every later call. */
        int was_reset = eryx_sandbox_is_dead(s->sb) && eryx_sandbox_reset(s->sb) == ERYX_OK;
        pthread_mutex_lock(&S.lock);
        int wanted = !j->cancelled && !S.closing;
        if (res)
            s->memory_bytes = res->memory_bytes;
        /* The run is over: no more "running for N s" (the progress tick
         * looks at running) while its answer is made and waits for room,
         * and nothing to interrupt (a cancel still drops the answer). */
        j->running = NULL;
        pthread_mutex_unlock(&S.lock);
        /* The answer as it will go out, held as text alone; its session
         * stays busy until there is room for it. Made without the lock
         * (the session is busy: nothing else touches it or the job's
         * fields read): a 12 MB answer takes tens of milliseconds, and
         * every other session's calls waited for them. */
        reply = wanted ? run_answer_text(j, rc, res, errmsg, was_reset) : NULL;
        eryx_result_free(res);
        pthread_mutex_lock(&S.lock);
        if (reply && reserve_answer(j, strlen(reply)) < 0) {
            free(reply);
            reply = NULL;
        }
        /* A cancelled call gets no answer: the next call must still
         * learn that the variables it expects are gone (also when this
         * call was to tell it, and was cancelled too). */
        if (!reply && (was_reset || j->was_reset_untold))
            s->reset_untold = 1;
        j->answered = 1; /* the next call on the session may run */
        s->busy = 0;
        s->runs++;
        s->used_ms = eryx_cli_now_ms();
        pthread_cond_broadcast(&S.cond);
        pthread_mutex_unlock(&S.lock);
    }
    pthread_mutex_lock(&S.lock);
    if (answer) { /* a small one, made without a run */
        reply = message_text(jr_response(j->id, answer), 1);
        if (reply && reserve_answer(j, strlen(reply)) < 0) {
            free(reply);
            reply = NULL;
        }
    }
    int send = reply && !j->cancelled && !S.closing;
    j->answered = 1;
    pthread_mutex_unlock(&S.lock);
    if (send) {
        ch_send_text(j->ch, reply, 1);
    } else {
        free(reply);
        ch_abandon(j->ch);
    }
    /* Delivered (or given up): its bytes are room for others. */
    pthread_mutex_lock(&S.lock);
    S.answer_bytes -= j->answer_len;
    remove_job(j);
    pthread_mutex_unlock(&S.lock);
    free_job(j);
    return NULL;
}

/* ---- requests ---- */

static int valid_session_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* Starts a job for tools/call; returns an immediate answer (a tool error)
 * or NULL when the job's thread will answer on ch. */
static json_t *start_job(channel *ch, json_t *id, int kind, json_t *args, json_t *meta)
{
    json_t *code = json_object_get(args, "code");
    json_t *sess = json_object_get(args, "session");
    json_t *tmo = json_object_get(args, "timeout_ms");
    if (kind == JOB_RUN && !json_is_string(code))
        return eryx_mcp_tool_result("run_python needs `code`, a string of Python source", NULL, 1);
    if (sess && !json_is_null(sess) &&
        (!jr_text(sess) || !valid_session_name(jr_text(sess))))
        return eryx_mcp_tool_result("`session` must be 1 to 64 letters, digits, '_', '-' or '.'", NULL,
                           1);
    if (tmo && !json_is_null(tmo) && (!json_is_integer(tmo) || json_integer_value(tmo) < 1))
        return eryx_mcp_tool_result("`timeout_ms` must be a positive integer", NULL, 1);
    job *j = calloc(1, sizeof *j);
    if (!j)
        return eryx_mcp_tool_result("out of memory", NULL, 1);
    j->kind = kind;
    /* Copies, never references into the request: the job's thread must
     * not share reference counts with the reading thread. */
    j->id = json_deep_copy(id);
    j->ch = ch_ref(ch);
    snprintf(j->sid, sizeof j->sid, "%s", ch->sid);
    j->session = strdup(json_is_string(sess) ? json_string_value(sess) : "default");
    size_t klen = strlen(j->sid) + (j->session ? strlen(j->session) : 0) + 2;
    j->key = malloc(klen);
    if (j->key && j->session)
        snprintf(j->key, klen, "%s:%s", j->sid, j->session);
    if (kind == JOB_RUN) {
        j->code_len = json_string_length(code);
        j->code = malloc(j->code_len + 1);
        if (j->code)
            memcpy(j->code, json_string_value(code), j->code_len + 1);
    }
    /* timeout_ms may shorten the operator's --timeout, never lengthen it. */
    uint64_t limit = S.cfg.timeout_ns;
    j->timeout_ns = limit;
    if (json_is_integer(tmo)) {
        uint64_t want = (uint64_t)json_integer_value(tmo);
        want = want > UINT64_MAX / 1000000u ? UINT64_MAX : want * 1000000u;
        if (limit == 0 || limit == ERYX_NO_LIMIT || want < limit)
            j->timeout_ns = want;
    }
    json_t *token = json_object_get(meta, "progressToken");
    j->held_len = j->code_len;
    if (json_is_string(token) || json_is_integer(token)) {
        /* The spec bounds no token: held twice (the job's copy, the
         * channel's) for the whole call and sent in each notification, a
         * 12 MB one made a session's 16 calls hold 576 MB uncounted. */
        if (json_is_string(token))
            j->held_len += (ch->kind == CH_HTTP ? 2 : 1) * json_string_length(token);
        j->progress_token = json_deep_copy(token);
        if (ch->kind == CH_HTTP) { /* (a copy of its own: see ch->progress_token) */
            pthread_mutex_lock(&ch->lock);
            if (!ch->progress_token)
                ch->progress_token = json_deep_copy(token);
            pthread_mutex_unlock(&ch->lock);
        }
    }
    if (!j->session || !j->key || (kind == JOB_RUN && !j->code)) {
        free_job(j);
        return eryx_mcp_tool_result("out of memory", NULL, 1);
    }
    pthread_mutex_lock(&S.lock);
    size_t mine = 0, my_code = 0;
    for (job *k = S.jobs; k && j->sid[0]; k = k->next) {
        if (strcmp(k->sid, j->sid) == 0) {
            mine++;
            my_code += k->held_len;
        }
    }
    int over_mine = j->sid[0] && my_code + j->held_len > MAX_JOB_CODE_BYTES_PER_MCP_SESSION;
    if (over_mine || S.job_code_bytes + j->held_len > MAX_JOB_CODE_BYTES) {
        size_t held = over_mine ? my_code : S.job_code_bytes;
        size_t most = over_mine ? MAX_JOB_CODE_BYTES_PER_MCP_SESSION : MAX_JOB_CODE_BYTES;
        pthread_mutex_unlock(&S.lock);
        free_job(j);
        char msg[200];
        snprintf(msg, sizeof msg, "the calls in progress%s hold %zu MiB of code and progress "
                 "tokens, and this one would pass %zu MiB: wait for one to end, or cancel one",
                 over_mine ? " of this MCP session" : "", held >> 20, most >> 20);
        return eryx_mcp_tool_result(msg, NULL, 1);
    }
    if (S.n_jobs >= MAX_JOBS || mine >= MAX_JOBS_PER_MCP_SESSION) {
        pthread_mutex_unlock(&S.lock);
        free_job(j);
        char msg[160];
        int over_mine_jobs = mine >= MAX_JOBS_PER_MCP_SESSION;
        snprintf(msg, sizeof msg, "too many calls in progress (%s %d): wait for one to end, "
                 "or cancel one", over_mine_jobs ? "this MCP session's, at most"
                                                 : "all clients', at most",
                 over_mine_jobs ? MAX_JOBS_PER_MCP_SESSION : MAX_JOBS);
        return eryx_mcp_tool_result(msg, NULL, 1);
    }
    job **tail = &S.jobs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = j;
    S.n_jobs++;
    S.job_code_bytes += j->held_len;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, job_main, j);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        remove_job(j);
        pthread_mutex_unlock(&S.lock);
        free_job(j);
        return eryx_mcp_tool_result("cannot start a thread for the call", NULL, 1);
    }
    pthread_mutex_unlock(&S.lock);
    return NULL;
}

static json_t *list_sessions(const channel *ch)
{
    json_t *list = json_array();
    size_t plen = strlen(ch->sid) + 1;
    pthread_mutex_lock(&S.lock);
    for (session *s = S.sessions; s; s = s->next) {
        if (!s->sb) /* being made: not a session yet (nor, if that fails, ever) */
            continue;
        if (strncmp(s->name, ch->sid, plen - 1) != 0 || s->name[plen - 1] != ':')
            continue;
        json_array_append_new(list, json_pack("{s:s, s:I, s:b, s:I}", "name", s->name + plen,
                                              "runs", (json_int_t)s->runs, "running", s->busy,
                                              "memory_bytes", (json_int_t)s->memory_bytes));
    }
    pthread_mutex_unlock(&S.lock);
    char *text = json_dumps(list, JSON_INDENT(1));
    json_t *r = eryx_mcp_tool_result(json_array_size(list) ? (text ? text : "") : "no sessions yet",
                            json_pack("{s:o}", "sessions", list), 0);
    free(text);
    return r;
}

/* notifications/cancelled: the named request of this MCP session. */
static void cancel(const channel *ch, json_t *params)
{
    json_t *rid = json_object_get(params, "requestId");
    if (!rid)
        return;
    pthread_mutex_lock(&S.lock);
    for (job *j = S.jobs; j; j = j->next) {
        if (!j->cancelled && strcmp(j->sid, ch->sid) == 0 && json_equal(j->id, rid)) {
            j->cancelled = 1;
            if (j->running)
                eryx_sandbox_interrupt(j->running->sb);
        }
    }
    pthread_cond_broadcast(&S.cond);
    pthread_mutex_unlock(&S.lock);
}

int eryx_mcp_session_busy(const char *sid)
{
    pthread_mutex_lock(&S.lock);
    int busy = 0;
    for (job *j = S.jobs; j && !busy; j = j->next)
        busy = strcmp(j->sid, sid) == 0;
    pthread_mutex_unlock(&S.lock);
    return busy;
}

void eryx_mcp_end_session(const char *sid)
{
    size_t plen = strlen(sid);
    eryx_mcp_resume_end_session(sid);
    pthread_mutex_lock(&S.lock);
    uint64_t until = eryx_cli_now_ms() + 5000;
    for (;;) {
        int left = 0;
        for (job *j = S.jobs; j; j = j->next) {
            if (strcmp(j->sid, sid) != 0)
                continue;
            left = 1;
            j->cancelled = 1;
            if (j->running)
                eryx_sandbox_interrupt(j->running->sb);
        }
        pthread_cond_broadcast(&S.cond);
        if (!left || eryx_cli_now_ms() >= until)
            break;
        struct timespec ts = eryx_cli_deadline(100);
        pthread_cond_timedwait(&S.cond, &S.lock, &ts);
    }
    session *dead = NULL;
    for (session *s = S.sessions, *next; s; s = next) {
        next = s->next;
        if (!s->busy && strncmp(s->name, sid, plen) == 0 && s->name[plen] == ':')
            unlink_session(s, &dead);
    }
    pthread_mutex_unlock(&S.lock);
    free_sessions(dead);
}

static json_t *initialize(json_t *params)
{
    json_t *v = json_object_get(params, "protocolVersion");
    const char *version = ERYX_MCP_VERSION;
    if (json_is_string(v) && strcmp(json_string_value(v), ERYX_MCP_PREVIOUS_VERSION) == 0)
        version = ERYX_MCP_PREVIOUS_VERSION;
    return json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s, s:s}, s:s}", "protocolVersion", version,
                     "capabilities", "tools", "listChanged", 0, "serverInfo", "name", "eryx",
                     "title", "eryx: Python in a WebAssembly sandbox", "version", eryx_version(),
                     "instructions",
                     "Use run_python to run Python code in an isolated sandbox. Variables "
                     "persist within a session between calls. Host functions listed in the "
                     "tool's description can be awaited from the code; calling several in "
                     "one program (asyncio.gather) is faster than one tool call each.");
}

json_t *eryx_mcp_dispatch(channel *ch, const jr_msg *m)
{
    if (m->kind == JR_INVALID)
        return jr_error(m->id, m->parse_error ? JR_PARSE_ERROR : JR_INVALID_REQUEST,
                        m->parse_why ? m->parse_why : "not a JSON-RPC 2.0 message");
    if (m->kind == JR_BATCH)
        return jr_error(NULL, JR_INVALID_REQUEST, "batches are not supported");
    if (m->kind == JR_NOTIFICATION) {
        if (strcmp(m->method, "notifications/cancelled") == 0)
            cancel(ch, m->params);
        return NULL;
    }
    if (m->kind != JR_REQUEST)
        return NULL; /* responses: we send the client no requests */
    const char *meth = m->method;
    if (m->params && !json_is_object(m->params))
        return jr_error(m->id, JR_INVALID_PARAMS, "params must be an object");
    if (strcmp(meth, "initialize") == 0)
        return jr_response(m->id, initialize(m->params));
    if (strcmp(meth, "ping") == 0)
        return jr_response(m->id, NULL);
    if (strcmp(meth, "tools/list") == 0) {
        json_t *cursor = json_object_get(m->params, "cursor");
        return cursor && !json_is_null(cursor)
                   ? jr_error(m->id, JR_INVALID_PARAMS, "invalid cursor")
                   : jr_response(m->id, json_pack("{s:o}", "tools", json_deep_copy(S.tools)));
    }
    if (strcmp(meth, "tools/call") != 0)
        return jr_error(m->id, JR_METHOD_NOT_FOUND, "method not found");
    json_t *name = json_object_get(m->params, "name");
    json_t *args = json_object_get(m->params, "arguments");
    json_t *meta = json_object_get(m->params, "_meta");
    const char *n = jr_text(name) ? jr_text(name) : "";
    if (args && !json_is_object(args) && !json_is_null(args))
        return jr_error(m->id, JR_INVALID_PARAMS, "arguments must be an object");
    if (strcmp(n, "run_python") == 0 || strcmp(n, "reset_session") == 0) {
        json_t *answer = start_job(ch, m->id, strcmp(n, "run_python") == 0 ? JOB_RUN : JOB_RESET,
                                   args, meta);
        return answer ? jr_response(m->id, answer) : NULL;
    }
    if (strcmp(n, "list_sessions") == 0)
        return jr_response(m->id, list_sessions(ch));
    char msg[200];
    snprintf(msg, sizeof msg, "unknown tool: %.100s", n);
    return jr_error(m->id, JR_INVALID_PARAMS, msg);
}

/* Once a second: a progress notification for each running call that
 * asked for them (progress counts seconds). On stdio they are written
 * here; over HTTP the thread of the request's connection is told to write
 * them: this is the thread that accepts connections, and a client that
 * does not read its stream made it wait IO_TIMEOUT_MS, every other client
 * with it. */
void eryx_mcp_progress_tick(void)
{
    uint64_t now = eryx_cli_now_ms();
    channel *due[MAX_JOBS];
    json_t *notes[MAX_JOBS]; /* stdio's; NULL over HTTP */
    json_int_t secs[MAX_JOBS];
    size_t n = 0;
    pthread_mutex_lock(&S.lock);
    for (job *j = S.jobs; j; j = j->next) {
        /* Again for a cancel that came just before its run started (an
         * interrupt of an idle sandbox does nothing; of an interrupted
         * one, nothing more). */
        if (j->cancelled && j->running)
            eryx_sandbox_interrupt(j->running->sb);
        if (j->answered || !j->progress_token || !j->running || j->cancelled)
            continue;
        uint64_t s = (now - j->started_ms) / 1000u;
        if (s <= (uint64_t)j->progress)
            continue;
        j->progress = (json_int_t)s;
        secs[n] = j->progress;
        notes[n] = j->ch->kind == CH_STDIO ? progress_note(j->progress_token, j->progress) : NULL;
        due[n++] = ch_ref(j->ch);
    }
    pthread_mutex_unlock(&S.lock);
    for (size_t i = 0; i < n; i++) {
        if (due[i]->kind == CH_STDIO)
            ch_send(due[i], notes[i], 0);
        else
            ch_progress_due(due[i], secs[i]);
        eryx_mcp_channel_unref(due[i]);
    }
    eryx_mcp_resume_tick(now);
}

static void handle(const char *line, size_t len)
{
    jr_msg m;
    jr_decode_bounded(line, len, JR_MAX_TREE(S.max_message), &m);
    json_t *reply = eryx_mcp_dispatch(&eryx_mcp_stdio, &m);
    jr_msg_clear(&m);
    ch_send(&eryx_mcp_stdio, reply, 1);
}

/* Reads requests on stdin until it closes (or stdout breaks). */
static void serve_stdio(void)
{
    jr_framer f;
    jr_framer_init(&f, S.max_message);
    /* A pipe's or socket's writes wait in stdout_write, not in write(2):
     * there they see the client close stdin. (A terminal or a file never
     * makes a writer wait for long.) Not when stderr is the same pipe
     * (2>&1): the flag belongs to the open file they share, and stderr's
     * messages would be dropped while the pipe is full; writes then wait
     * in write(2), as they did before. */
    struct stat st, err;
    int shared = fstat(STDERR_FILENO, &err) == 0 && fstat(STDOUT_FILENO, &st) == 0 &&
                 err.st_dev == st.st_dev && err.st_ino == st.st_ino;
    if (!shared && fstat(STDOUT_FILENO, &st) == 0 &&
        (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        int fl = fcntl(STDOUT_FILENO, F_GETFL);
        if (fl >= 0 && fcntl(STDOUT_FILENO, F_SETFL, fl | O_NONBLOCK) == 0)
            O.fl_saved = fl;
    }
    for (;;) {
        struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
        int r = poll(&pfd, 1, 250);
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0) {
            long n = jr_framer_read(&f, STDIN_FILENO);
            if (n <= 0)
                break;
            char *line;
            size_t len;
            int k;
            while ((k = jr_framer_next(&f, &line, &len)) != JR_NONE) {
                if (k == JR_LINE)
                    handle(line, len);
                else
                    ch_send(&eryx_mcp_stdio,
                            jr_error(NULL, JR_INVALID_REQUEST,
                                     "message larger than --mcp-max-message (dropped)"),
                            1);
            }
        }
        eryx_mcp_progress_tick();
        pthread_mutex_lock(&S.lock);
        int broken = S.out_broken;
        pthread_mutex_unlock(&S.lock);
        if (broken)
            break;
    }
    stdin_closed(); /* (or stdout broke): the writes left get their grace */
    jr_framer_free(&f);
}

int eryx_cli_mcp_serve(const eryx_cli_mcp *m, eryx_runtime *rt, const eryx_sandbox_config *cfg)
{
    int listen_fd = -1;
    if (!m->http && (m->http_token_file || m->http_tls_cert || m->http_tls_key)) {
        fprintf(stderr, "eryx mcp: --http-token-file, --http-tls-cert and --http-tls-key go "
                        "with --http\n");
        return 2;
    }
    if (m->http && (listen_fd = eryx_mcp_http_listen(m)) < 0)
        return 2;
#ifdef M_MMAP_THRESHOLD
    /* Answers are megabytes, made and freed by the calls' threads: with
     * glibc's sliding threshold they came from the threads' arenas, which
     * kept them once freed (MAX_ANSWER_BYTES of answers held, and 1 GB
     * resident; 330 MB with this). */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
    int rc = eryx_mcp_serve_begin(m, rt, cfg);
    if (rc != 0) {
        if (listen_fd >= 0)
            close(listen_fd);
        return rc;
    }
    if (listen_fd >= 0)
        eryx_mcp_http_serve(listen_fd, S.max_message);
    else
        serve_stdio();
    eryx_mcp_serve_end();
    if (O.fl_saved >= 0)
        fcntl(STDOUT_FILENO, F_SETFL, O.fl_saved);
    int lost = atomic_load(&O.given_up);
    if (lost) {
        fprintf(stderr, "eryx mcp: stdin closed, and stdout took nothing for %d s: %d "
                "message%s not delivered\n", STDOUT_GRACE_MS / 1000, lost, lost == 1 ? "" : "s");
        return EXIT_UNREAD;
    }
    return 0;
}

int eryx_mcp_serve_begin(const eryx_cli_mcp *m, eryx_runtime *rt, const eryx_sandbox_config *cfg)
{
    /* A second serve (the fuzz harnesses serve once per input) starts
     * where the first ended: no sessions or jobs, but these set. */
    S.closing = 0;
    S.out_broken = 0;
    atomic_store(&O.in_closed, 0);
    atomic_store(&O.given_up, 0);
    O.fl_saved = -1;
    S.rt = rt;
    S.cfg = *cfg;
    S.cfg.on_output = NULL;        /* stdout is the protocol's */
    S.cfg.output_user_data = NULL;
    S.cfg.on_trace = NULL;
    S.max_sessions = m->max_sessions ? m->max_sessions : DEFAULT_MAX_SESSIONS;
    S.max_message = m->max_message ? m->max_message : ERYX_MCP_DEFAULT_MAX_MESSAGE;
    S.tools = eryx_cli_mcp_tools(S.rt, &S.cfg);
    if (!S.tools) {
        fprintf(stderr, "eryx: cannot describe the tools (out of memory)\n");
        return 71;
    }
    return 0;
}

void eryx_mcp_serve_end(void)
{
    /* The client is gone: stop every run, wait for their threads. */
    pthread_mutex_lock(&S.lock);
    S.closing = 1;
    pthread_cond_broadcast(&S.cond);
    while (S.n_jobs) {
        /* Repeated: a run may start between two looks (see progress_tick). */
        for (job *j = S.jobs; j; j = j->next)
            if (j->running)
                eryx_sandbox_interrupt(j->running->sb);
        struct timespec ts = eryx_cli_deadline(100);
        pthread_cond_timedwait(&S.cond, &S.lock, &ts);
    }
    /* No job is left: nothing reaches the sessions once unlinked. */
    session *dead = NULL;
    while (S.sessions)
        unlink_session(S.sessions, &dead);
    for (unsigned i = 0; i < DROPPED_KEPT; i++) {
        free(dropped[i]);
        dropped[i] = NULL;
    }
    pthread_mutex_unlock(&S.lock);
    free_sessions(dead);
    json_decref(S.tools);
    S.tools = NULL;
}
