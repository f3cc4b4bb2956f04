/*
 * `eryx --remote URL -c CODE`: the client side of `eryx serve`. One
 * connection, one execute request; output is written as it arrives, calls
 * are answered by the --callback commands (run side by side, as in a local
 * run), Ctrl-C sends a cancel.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "dial.h"
#include "net/base64.h"
#include "remote.h"
#include "run_status.h"
#include "result_json.h"
#include "shell_callback.h"
#include "ws.h"
#include "ws_conn.h"

enum { EXIT_SANDBOX = 70, EXIT_SETUP = 71, EXIT_OUTPUT_LOST = 120, EXIT_FUEL = 122,
       EXIT_OUTPUT_LIMIT = 123, EXIT_TIMEOUT = 124, EXIT_MEMORY = 125, EXIT_INTERRUPTED = 130 };

#define CONNECT_TIMEOUT_MS 10000
/* A server silent for the run's time limit and this much more is given up
 * on (a stopped or wedged server, a dead route): the wait covers the
 * server's own limit, its default wait for a session's lock (10 s) and
 * for a pooled sandbox (2 s), in which it sends nothing. The limit is
 * --timeout's or the server's (its handshake says it), the smaller; a
 * client of an older server without --timeout waits for ever. Until
 * 2026-12-07 every client without --timeout did. */
#define SILENCE_GRACE_MS 15000
#define MAX_MESSAGE (64u << 20)
/* The largest tree read of one of the server's messages (core/json_wide.h):
 * 16 MiB of `[{},{},...]` would be 1.3 GB. As eryx's other readers of a
 * peer's JSON (cli/jsonrpc.h, JR_MAX_TREE). */
#define MAX_TREE (4 * (size_t)MAX_MESSAGE)

static volatile sig_atomic_t interrupted;

/* How long past the run's limit a stalled reader of our stdout or stderr
 * is waited for: the server has ended the run by then, unless it queued
 * it first. */
#define OUTPUT_GRACE_MS 5000

/* When our writes to a stalled reader give up (out_stream.h): the request
 * went out then plus the run's limit and OUTPUT_GRACE_MS; 0 while neither
 * limit is known. */
static _Atomic uint64_t output_give_up_ms;

int eryx_cli_remote_stopping(void)
{
    uint64_t at = atomic_load(&output_give_up_ms);
    return interrupted || (at && eryx_cli_now_ms() >= at);
}

/* The first error writing stdout, or 0. EPIPE: its reader went away; the
 * run is cancelled then, as by Ctrl-C, so that the server ends it and
 * stores the session (a client that died of SIGPIPE left the execution
 * cancelled and its state not stored), and the run's status is 120, as a
 * local run's (cli/main.c stream_output; main's check_stdout says why). */
static int stdout_errno;

int eryx_cli_remote_stdout_errno(void)
{
    return stdout_errno;
}

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* A connected socket, within the connect timeout. */
static int dial(const dial_url *u)
{
    char err[400];
    int fd = dial_connect(u, CONNECT_TIMEOUT_MS, err, sizeof err);
    if (fd < 0)
        fprintf(stderr, "eryx: --remote: %s\n", err);
    return fd;
}

static int auth_header(const char *token_file, char *out, size_t cap)
{
    out[0] = '\0';
    if (!token_file)
        return 0;
    FILE *f = fopen(token_file, "r");
    char tok[512];
    size_t n = f ? fread(tok, 1, sizeof tok - 1, f) : 0;
    if (f)
        fclose(f);
    tok[n] = '\0';
    tok[strcspn(tok, "\r\n")] = '\0';
    if (!f || !tok[0]) {
        fprintf(stderr, "eryx: cannot read a token from %s\n", token_file);
        return -1;
    }
    snprintf(out, cap, "Authorization: Bearer %s\r\n", tok);
    return 0;
}

static ws_conn *open_connection(const remote_opts *o, const dial_url *url, tls_ctx **tls)
{
    dial_url u = *url;
    char auth[600];
    if (auth_header(o->token_file, auth, sizeof auth) < 0)
        return NULL;
    if (u.tls) {
        char err[256];
        if (!(*tls = tls_client_ctx(o->ca_file, o->cert_file, o->key_file, err, sizeof err))) {
            fprintf(stderr, "eryx: --remote: %s\n", err);
            return NULL;
        }
    }
    int fd = dial(&u);
    ws_conn *c = fd < 0 ? NULL : ws_conn_new(fd, *tls, 1, u.host, MAX_MESSAGE);
    if (c && ws_conn_connect(c, u.authority, u.path, auth, CONNECT_TIMEOUT_MS) < 0) {
        fprintf(stderr, "eryx: --remote: %s\n", ws_conn_error(c));
        ws_conn_free(c);
        return NULL;
    }
    return c;
}

static json_t *declarations(const remote_opts *o)
{
    json_t *list = json_array();
    for (size_t i = 0; i < o->n_callbacks; i++) {
        const eryx_callback *cb = &o->callbacks[i];
        json_t *schema = cb->schema ? json_loads(cb->schema, 0, NULL) : NULL;
        json_array_append_new(list, json_pack("{ss ss* so*}", "name", cb->name, "description",
                                              cb->description, "schema", schema));
    }
    return list;
}

/* The calls being answered. Each command runs on a worker thread of its
 * own, at most CALL_WORKERS at once (the share of handlers a local sandbox
 * has: src/core/run.c), so that a gather of slow commands takes the
 * slowest one's time, not their sum, as in a local run. */
#define CALL_WORKERS 64

typedef struct calls {
    ws_conn *c;
    const remote_opts *o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    json_t *queue;          /* call events no worker has taken yet */
    atomic_int over;        /* the run ended: running commands are stopped */
    atomic_int failed;      /* a reply could not be sent */
    size_t n_workers, n_idle;
    pthread_t workers[CALL_WORKERS];
} calls;

static int still_wanted(void *ud)
{
    calls *cs = ud;
    return !interrupted && !cs->over;   /* Ctrl-C, or the run's end, stops it */
}

static int answer_call(calls *cs, json_t *ev)
{
    ws_conn *c = cs->c;
    const remote_opts *o = cs->o;
    const char *name = json_string_value(json_object_get(ev, "name"));
    json_t *cid = json_object_get(ev, "call");
    const char *command = NULL;
    for (size_t i = 0; name && i < o->n_callbacks; i++)
        if (strcmp(o->callbacks[i].name, name) == 0)
            command = o->callbacks[i].user_data;
    /* Both ways as exact text: args_json comes when args lost digits (an
     * integer beyond 64 bits), and result_json carries the command's output
     * as it wrote it (docs/serve.md). */
    json_t *exact = json_object_get(ev, "args_json");
    char *args = json_is_string(exact) ? strdup(json_string_value(exact))
                                       : json_dumps(json_object_get(ev, "args"), JSON_COMPACT);
    char *out = NULL, msg[4096] = "no such callback here";
    size_t len = 0;
    json_t *reply = json_pack("{si ss sO}", "id", 1, "op", "reply", "call", cid);
    json_t *result = NULL;
    shell_wanted w = {still_wanted, cs};
    if (command && args && eryx_cli_shell_run(command, args, &w, &out, &len, msg, sizeof msg) == 0) {
        int inexact;
        result = eryx__json_read(out, len, ERYX_CLI_JSON_FLAGS, &inexact);
        if (!result)
            snprintf(msg, sizeof msg, "the command's output is not JSON");
    }
    if (result)
        json_object_set_new(reply, "result_json", json_stringn(out, len));
    else
        json_object_set_new(reply, "error", json_pack("{ss ss}", "kind", "failed", "message", msg));
    json_decref(result);
    free(args);
    free(out);
    int sent = ws_conn_send_json(c, reply);
    if (sent != WS_TOO_LARGE)
        return sent;
    snprintf(msg, sizeof msg, "the command's output is over the %zu bytes one message to the "
                              "server may carry", ws_conn_send_max(c));
    return ws_conn_send_json(c, json_pack("{si ss sO s{ss ss}}", "id", 1, "op", "reply", "call",
                                          cid, "error", "kind", "failed", "message", msg));
}

static void *call_worker(void *arg)
{
    calls *cs = arg;
    pthread_mutex_lock(&cs->mu);
    for (;;) {
        cs->n_idle++;
        while (json_array_size(cs->queue) == 0 && !cs->over)
            pthread_cond_wait(&cs->cv, &cs->mu);
        cs->n_idle--;
        if (cs->over)
            break;
        json_t *ev = json_incref(json_array_get(cs->queue, 0));
        json_array_remove(cs->queue, 0);
        pthread_mutex_unlock(&cs->mu);
        if (answer_call(cs, ev) < 0)
            cs->failed = 1;
        json_decref(ev);
        pthread_mutex_lock(&cs->mu);
    }
    pthread_mutex_unlock(&cs->mu);
    return NULL;
}

/* Hands a copy of a call event to a worker, starting one if none is idle.
 * A copy: jansson's reference counts are not atomic, and the reading
 * thread lets go of the event while the worker uses it. */
static int submit_call(calls *cs, json_t *ev)
{
    json_t *copy = json_deep_copy(ev);
    pthread_mutex_lock(&cs->mu);
    int ok = copy && json_array_append_new(cs->queue, copy) == 0;
    if (ok && cs->n_idle == 0 && cs->n_workers < CALL_WORKERS &&
        pthread_create(&cs->workers[cs->n_workers], NULL, call_worker, cs) == 0)
        cs->n_workers++;
    ok = ok && cs->n_workers > 0;
    pthread_cond_signal(&cs->cv);
    pthread_mutex_unlock(&cs->mu);
    return ok ? 0 : -1;
}

static void calls_init(calls *cs, ws_conn *c, const remote_opts *o)
{
    memset(cs, 0, sizeof *cs);
    cs->c = c;
    cs->o = o;
    pthread_mutex_init(&cs->mu, NULL);
    pthread_cond_init(&cs->cv, NULL);
    cs->queue = json_array();
}

/* The run is over: calls not started are dropped, running commands are
 * stopped (within about a second: shell_callback.c), the workers joined. */
static void calls_end(calls *cs)
{
    pthread_mutex_lock(&cs->mu);
    cs->over = 1;
    pthread_cond_broadcast(&cs->cv);
    pthread_mutex_unlock(&cs->mu);
    for (size_t i = 0; i < cs->n_workers; i++)
        pthread_join(cs->workers[i], NULL);
    json_decref(cs->queue);
    pthread_cond_destroy(&cs->cv);
    pthread_mutex_destroy(&cs->mu);
}

static void write_output(json_t *ev)
{
    FILE *f = json_integer_value(json_object_get(ev, "fd")) == 2 ? stderr : stdout;
    json_t *d = json_object_get(ev, "data");
    int failed = 0;
    errno = 0;
    if (json_is_string(d)) {
        failed = fwrite(json_string_value(d), 1, json_string_length(d), f) !=
                 json_string_length(d);
    } else {
        const char *b = json_string_value(json_object_get(ev, "b64"));
        uint8_t *bytes;
        size_t n;
        if (b && eryx__b64_decode(b, strlen(b), &bytes, &n) == 0) {
            failed = fwrite(bytes, 1, n, f) != n;
            free(bytes);
        }
    }
    failed |= fflush(f) != 0;
    if (failed && f == stdout && !stdout_errno)
        stdout_errno = errno ? errno : EIO;
}

/* What one answer to a read event carries at most. More than the event's
 * max, which the server keeps for the code's next reads: one read of our
 * stdin gives what a pipe or file has (a terminal: a line), and fewer
 * round trips. 10 MiB of stdin took 958 ms in 64 KiB answers. */
#define STDIN_PART (1u << 20)

/* Answers the server's read event with what our stdin has within 50 ms: 1
 * when answered (bytes, or the end), 0 when nothing came yet (asked again
 * later: meanwhile the server's events are read, so that its time limit
 * and Ctrl-C act), -1 when the connection failed. */
static int send_stdin(ws_conn *c, uint8_t *buf)
{
    struct pollfd p = {STDIN_FILENO, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0)
        return 0;
    /* base64 and the message's few fields must fit in one message (the
     * server's --max-message is 4 KiB at least) */
    size_t max = ws_conn_send_max(c), room = max > 1024 ? (max - 256) / 4 * 3 : 512;
    ssize_t n = read(STDIN_FILENO, buf, room < STDIN_PART ? room : STDIN_PART);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n < 0)
        fprintf(stderr, "eryx: --remote: reading stdin: %s (the program gets its end)\n",
                strerror(errno));
    json_t *msg = json_pack("{si ss}", "id", 1, "op", "stdin");
    if (n > 0) {
        size_t b64_len;
        char *b = eryx__b64_encode(buf, (size_t)n, &b64_len);
        json_object_set_new(msg, "b64", b ? json_stringn(b, b64_len) : json_null());
        free(b);
    } else {
        json_object_set_new(msg, "eof", json_true());
    }
    return ws_conn_send_json(c, msg) < 0 ? -1 : 1;
}

/* A turn of the event loop while the server waits for our stdin: -1 when
 * the connection failed (or out of memory), else 0 (*want cleared once
 * answered). */
static int stdin_turn(ws_conn *c, int *want, uint8_t **buf)
{
    if (!*buf && !(*buf = malloc(STDIN_PART)))
        return -1;
    int r = send_stdin(c, *buf);
    if (r > 0)
        *want = 0;
    return r < 0 ? -1 : 0;
}

static int run_status(json_t *ev, const char *status, int truncated);

/* The exit status for a done event, as the local run reports it: 71 for a
 * run that succeeded but whose session's new state was not stored, as a
 * local --session that cannot be saved (until 2026-12-07, 0). */
static int finish(json_t *ev)
{
    const char *status = json_string_value(json_object_get(ev, "status"));
    int truncated = json_is_true(json_object_get(ev, "stdout_truncated")) ||
                    json_is_true(json_object_get(ev, "stderr_truncated"));
    const char *save_error = json_string_value(json_object_get(ev, "save_error"));
    fflush(stdout);
    if (save_error)
        fprintf(stderr, "eryx: --remote: %s\n", save_error);
    if (truncated)
        fprintf(stderr, "eryx: output truncated at the server's output limit\n");
    json_int_t dropped = json_integer_value(json_object_get(ev, "output_dropped"));
    if (dropped > 0)
        fprintf(stderr, "eryx: --remote: the server dropped %lld bytes of the program's output: "
                        "this client did not take them before the run was stopped\n",
                (long long)dropped);
    int rc = run_status(ev, status ? status : "error", truncated);
    return rc == 0 && save_error ? EXIT_SETUP : rc;
}

static int run_status(json_t *ev, const char *status, int truncated)
{
    json_t *tb = json_object_get(ev, "traceback");
    const char *exc = json_string_value(json_object_get(ev, "exc_type"));
    int exit_code = (int)json_integer_value(json_object_get(ev, "exit_code"));
    const char *stopped = json_string_value(json_object_get(ev, "stopped"));
    if (stopped && strcmp(stopped, "timeout") == 0 &&
        (strcmp(status, "ok") == 0 || strcmp(status, "exception") == 0)) {
        /* As locally (report, main.c): the code caught the stop. */
        if (json_is_string(tb))
            fwrite(json_string_value(tb), 1, json_string_length(tb), stderr);
        fprintf(stderr, "eryx: %s\n", ERYX_CLI_CAUGHT_TIMEOUT);
        return EXIT_TIMEOUT;
    }
    if (strcmp(status, "ok") == 0)
        return exit_code == 0 && truncated ? EXIT_OUTPUT_LIMIT : exit_code;
    if (strcmp(status, "interrupted") == 0 && stdout_errno == EPIPE)
        return EXIT_OUTPUT_LOST; /* our own cancel */
    if (strcmp(status, "interrupted") == 0 && json_is_true(json_object_get(ev, "server_stopping"))) {
        /* Not a Ctrl-C (130): the service went away, as when it cannot be
         * reached. Until 2026-12-07 this was 130. */
        fprintf(stderr, "eryx: --remote: the server is stopping: it interrupted the run (its "
                        "session keeps what ran)\n");
        return EXIT_SETUP;
    }
    /* As the local run says it (report, main.c): a stop's message, without
     * the KeyboardInterrupt's traceback it unwound the code with. */
    if (strcmp(status, "timeout") == 0 || strcmp(status, "interrupted") == 0) {
        fprintf(stderr, "eryx: %s\n", status[0] == 't' ? "the run exceeded its time limit"
                                                       : "the run was interrupted");
        return status[0] == 't' ? EXIT_TIMEOUT : EXIT_INTERRUPTED;
    }
    if (json_is_string(tb))
        fwrite(json_string_value(tb), 1, json_string_length(tb), stderr);
    if (strcmp(status, "exception") == 0)
        return exc && strcmp(exc, "MemoryError") == 0 ? EXIT_MEMORY : 1;
    if (strcmp(status, "fuel") == 0)
        return EXIT_FUEL;
    fprintf(stderr, "eryx: --remote: the run ended: %s\n", status);
    return EXIT_SANDBOX;
}

/* Handles one event; returns an exit status when it ends the run, else -1.
 * A read event sets *want_stdin. */
static int on_event(calls *cs, json_t *ev, int *want_stdin)
{
    const char *kind = json_string_value(json_object_get(ev, "ev"));
    if (!kind)
        return -1;
    if (strcmp(kind, "output") == 0) {
        write_output(ev);
    } else if (strcmp(kind, "read") == 0) {
        *want_stdin = 1;
    } else if (strcmp(kind, "call") == 0) {
        if (!cs->queue || submit_call(cs, ev) < 0) {
            fprintf(stderr, "eryx: --remote: out of memory or threads for a callback\n");
            return EXIT_SANDBOX;
        }
    } else if (strcmp(kind, "done") == 0) {
        return finish(ev);
    } else if (strcmp(kind, "error") == 0) {
        const char *code = json_string_value(json_object_get(ev, "code"));
        fprintf(stderr, "eryx: --remote: %s: %s\n", code ? code : "error",
                json_string_value(json_object_get(ev, "message")));
        return !code ? EXIT_SANDBOX
               /* The request as the options made it is refused (a session
                * name the server does not take): a usage error. */
               : strcmp(code, "bad_request") == 0 ? 2
               /* The session's store, as a local --session's directory
                * that cannot be written (store_full was 70 until
                * 2026-12-07). */
               : strcmp(code, "busy") == 0 || strcmp(code, "store_unavailable") == 0 ||
                       strcmp(code, "locked") == 0 || strcmp(code, "store_full") == 0
                   ? EXIT_SETUP
                   : EXIT_SANDBOX;
    }
    return -1;
}

/* Reads one of the server's messages and handles it: an exit status when
 * it ends the run, else -1. One that is not a JSON object, or that belongs
 * to another request than ours (id 1; an error about the connection has
 * none), breaks the protocol: until 2026-12-07 the first was dropped (the
 * run then ended as "the peer closed the connection") and the second taken
 * as ours (another request's done ended our run). */
static int on_message(calls *cs, const char *data, size_t n, int *want_stdin)
{
    int inexact;
    /* Output may hold NUL characters (\u0000 is JSON): without
     * JSON_ALLOW_NUL the whole event was dropped. */
    json_t *ev = eryx__json_read(data, n, JSON_ALLOW_NUL, &inexact);
    json_t *id = json_object_get(ev, "id");
    const char *why = !json_is_object(ev) ? "that is not a JSON object eryx reads (malformed, "
                                            "or nested too deeply)"
                      : id && !json_is_null(id) && json_integer_value(id) != 1
                          ? "for another request than this run's"
                          : NULL;
    int status = EXIT_SANDBOX;
    if (why)
        fprintf(stderr, "eryx: --remote: the server broke the protocol: it sent a message %s\n",
                why);
    else
        status = on_event(cs, ev, want_stdin);
    json_decref(ev);
    return status;
}

static json_t *execute_request(const remote_opts *o, const char *code, size_t len)
{
    json_t *req = json_pack("{si ss s:s%}", "id", 1, "op", "execute", "code", code, len);
    if (!req)
        return NULL;
    json_object_set_new(req, "callbacks", declarations(o));
    if (o->session) {
        json_object_set_new(req, "session", json_string(o->session));
        json_object_set_new(req, "create", json_true());
    }
    if (o->timeout_ms)
        json_object_set_new(req, "timeout_ms", json_integer((json_int_t)o->timeout_ms));
    if (o->stdin_stream)
        json_object_set_new(req, "stdin_stream", json_true());
    return req;
}

/* The run's time limit as far as this client knows: --timeout's or the
 * server's, the smaller; 0 if neither is known. */
static uint64_t run_limit_ms(const ws_conn *c, const remote_opts *o)
{
    uint64_t server = ws_conn_peer_max_timeout_ms(c);
    if (!o->timeout_ms)
        return server;
    return server && server < o->timeout_ms ? server : o->timeout_ms;
}

int eryx_cli_remote(const remote_opts *o, const char *code, size_t len)
{
    if (!ws_utf8_valid((const uint8_t *)code, len)) {
        fprintf(stderr, "eryx: --remote: the program must be UTF-8 text\n");
        return 2;
    }
    dial_url u;
    if (dial_url_parse(o->url, "ws://", "wss://", "/v1/ws", &u) < 0) {
        fprintf(stderr, "eryx: --remote wants ws://HOST:PORT or wss://HOST:PORT (a port of 0 to "
                        "65535), not '%s'\n", o->url);
        return 2;
    }
    tls_ctx *tls = NULL;
    ws_conn *c = open_connection(o, &u, &tls);
    json_t *req = c ? execute_request(o, code, len) : NULL;
    int status = EXIT_SETUP;
    int sent = c && req ? ws_conn_send_json(c, req) : -1;
    if (sent == WS_TOO_LARGE) {
        fprintf(stderr, "eryx: --remote: the request is over the %zu bytes one message to the "
                        "server may carry\n", ws_conn_send_max(c));
        goto out;
    }
    if (sent < 0) {
        if (c)
            fprintf(stderr, "eryx: --remote: %s\n", ws_conn_error(c));
        goto out;
    }
    struct sigaction sa = {.sa_handler = on_sigint};
    sigaction(SIGINT, &sa, NULL);
    /* A reader of stdout or stderr that goes away: EPIPE, not death (see
     * stdout_errno); the --callback commands get SIGPIPE's default back
     * (shell_callback.c). */
    signal(SIGPIPE, SIG_IGN);
    int cancelled = 0;
    int want_stdin = 0;
    uint8_t *stdin_buf = NULL;
    calls cs;
    calls_init(&cs, c, o);
    uint64_t heard = eryx_cli_now_ms(), limit = run_limit_ms(c, o);
    if (limit)
        atomic_store(&output_give_up_ms, heard + limit + OUTPUT_GRACE_MS);
    for (status = -1; status < 0;) {
        uint8_t *data;
        size_t n;
        /* Ctrl-C, or stdout's reader gone: the run is being cancelled, so
         * stdin is not read for it (nor waited on without a pause). */
        int stopping = interrupted || stdout_errno == EPIPE, reading = want_stdin && !stopping;
        int binary, r = reading ? stdin_turn(c, &want_stdin, &stdin_buf) : 0;
        if (r == 0)
            r = ws_conn_recv(c, reading ? 0 : 200, &data, &n, &binary);
        if (stopping && !cancelled) {
            cancelled = ws_conn_send_json(c, json_pack("{si ss}", "id", 1, "op", "cancel")) == 0;
        }
        if (r > 0)
            heard = eryx_cli_now_ms();
        if (r < 0) {
            fprintf(stderr, "eryx: --remote: %s\n", ws_conn_error(c));
            status = EXIT_SANDBOX;
        } else if (r == 0 && limit && eryx_cli_now_ms() - heard > limit + SILENCE_GRACE_MS) {
            fprintf(stderr, "eryx: --remote: the server sent nothing for %llu ms, past the "
                            "run's time limit (%llu ms) and %d s of grace: given up (the run "
                            "may or may not have ended there)\n",
                    (unsigned long long)(eryx_cli_now_ms() - heard), (unsigned long long)limit,
                    SILENCE_GRACE_MS / 1000);
            status = EXIT_SETUP;
        } else if (r > 0 && !binary && !eryx__json_tree_fits((const char *)data, n, MAX_TREE,
                                                              NULL)) {
            fprintf(stderr, "eryx: --remote: the server sent a message whose JSON would take "
                            "more than %zu MiB to read (too many objects, arrays and values)\n",
                    MAX_TREE >> 20);
            status = EXIT_SANDBOX;
        } else if (r > 0 && !binary) {
            status = on_message(&cs, (const char *)data, n, &want_stdin);
        }
        if (status < 0 && cs.failed) {
            fprintf(stderr, "eryx: --remote: %s\n", ws_conn_error(c));
            status = EXIT_SANDBOX;
        }
    }
    calls_end(&cs);
    ws_conn_close(c, WS_CLOSE_NORMAL, "");
    free(stdin_buf);
out:
    ws_conn_free(c);
    tls_ctx_free(tls);
    return status;
}
