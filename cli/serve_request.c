/*
 * One client of `eryx serve`: its messages, one request at a time, and
 * the executions it asks for (docs/serve.md). Two threads per connection:
 * a reader takes the client's messages off the socket into an inbox (and
 * interrupts the running execution at once on a cancel or a disconnect,
 * even while the guest computes), and the connection's own thread handles
 * the requests, steps executions (eryx_exec_step) and sends: output,
 * calls, answers. It sleeps on one eventfd, which the reader and the
 * execution's notify both write.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "net/base64.h"
#include "result_json.h"
#include "run_status.h"
#include "serve.h"
#include "ws.h"

#define IDLE_TIMEOUT_MS (10 * 60 * 1000)
#define POOL_WAIT_NS (2ull * 1000000000)
#define MAX_DECLARED_CALLBACKS 256
/* Messages the reader may hold for the connection's thread, and their
 * bytes as parsed (eryx__json_tree_bytes: 232 an object...): a client that
 * sends faster than its requests are handled is cut off, not buffered. By
 * count alone, 256 messages of --max-message (16 MiB) were 4 GiB a
 * connection; by the bytes sent, 16 MiB of `[{},{},...]` was 1.3 GB. One
 * message larger than this as parsed is refused unread. The count is 256
 * more than the calls the server has asked and not had answered: a client
 * answering a gather of 1000 calls at once, while this thread was still
 * sending them, was cut off with 1009 (until 2026-12-07). Those are at most
 * --max-callbacks an execution, and the bytes stay bounded. */
#define MAX_INBOX 256
#define MAX_INBOX_BYTES(max_message) \
    ((max_message) > (4u << 20) ? 4 * (size_t)(max_message) : (size_t)16 << 20)
/* A client's string id, echoed in every event of its request: bounded so
 * that an event's fixed part is (EVENT_ROOM, with its other small fields). */
#define MAX_ID_BYTES 256
#define EVENT_ROOM 2048
_Static_assert(2 * EVENT_ROOM <= SERVE_MIN_MESSAGE, "output pieces need room");

typedef struct outstanding {
    uint64_t id;
    eryx_call *call;
    char *name;
} outstanding;

/* What the reader hands to the connection's thread. */
typedef struct client {
    server *sv;
    ws_conn *c;
    int efd;                       /* written on each message and notify */
    pthread_mutex_t mu;            /* guards the fields below */
    json_t *inbox;                 /* messages not yet handled, in order */
    json_t *sizes;                 /* their sizes parsed (integers), in order */
    size_t inbox_bytes;
    size_t owed;                   /* calls asked of the client, unanswered */
    int reader_done;               /* the client went away (or idled out) */
    int live_cancelled;            /* live was interrupted by a cancel */
    eryx_sandbox *live;            /* the sandbox running its execution */
    json_t *live_id;               /* its request's id (a reference), or NULL */
    struct client *next;           /* in sv->clients, under sv->clients_mu */
} client;

/* An execution in progress on this connection. */
typedef struct running {
    server *sv;
    client *cl;
    ws_conn *c;
    json_t *id;
    eryx_sandbox *sb;
    eryx_exec *ex;
    session_ref *session;          /* NULL in a fresh sandbox */
    outstanding *calls;            /* calls sent to the client, unanswered */
    size_t n_calls, cap_calls;
    json_t *replay_pending;        /* resume: the suspended calls [{call, name}] */
    size_t replay_next;
    json_t *replies;               /* resume: answers given with the request */
    int gone;                      /* the client went away */
    int replaying;                 /* a resume before its first new call:
                                      the output is the client's already */
    int interrupted, suspend_wanted;
    uint64_t next_refresh_ms;
    uint64_t stop_at_ms;           /* the run's time limit passes (0: none) */
    uint64_t output_dropped;       /* bytes not sent: serve_output says why */
    /* "stdin_stream": the program's stdin asked of the client as it reads
     * (a "read" event, answered by one "stdin" message). in holds one
     * message's bytes at most: nothing is asked while it has any. */
    int in_asked, in_eof, in_used;
    uint8_t *in;
    size_t in_len, in_pos;
} running;

/* The execution whose output the running thread is producing. */
static _Thread_local running *current;

int send_error(ws_conn *c, json_t *id, const char *code, const char *message)
{
    return ws_conn_send_json(c, json_pack("{sO? ss ss ss}", "id", id, "ev", "error", "code", code,
                                          "message", message));
}

/* A message whose JSON would take more than max bytes parsed (all that a
 * connection's waiting messages may take) is refused unread: its id is
 * not known. */
static void send_too_structured(ws_conn *c, size_t len, size_t max)
{
    char msg[300];
    snprintf(msg, sizeof msg,
             "the message's %zu bytes of JSON would take more than %zu MiB to read, all that "
             "a connection's waiting messages may take: send a large structured value as "
             "result_json text",
             len, max >> 20);
    send_error(c, NULL, "too_large", msg);
}

/* Whether r's run is being stopped: its time limit passed, it was
 * cancelled, its client went away or its lock was lost, or the server is
 * stopping. */
static int stopping(void *arg)
{
    running *r = arg;
    if (r->interrupted || atomic_load(&r->sv->stopping) ||
        (r->stop_at_ms && eryx_cli_now_ms() >= r->stop_at_ms))
        return 1;
    pthread_mutex_lock(&r->cl->mu);
    int stop = r->cl->reader_done || r->cl->live_cancelled;
    pthread_mutex_unlock(&r->cl->mu);
    return stop;
}

/* Sends an event of the running request (fields taken): 0, -1 when the
 * client is gone, WS_TOO_LARGE (nothing sent, the client still there)
 * when it would be over --max-message: the caller makes it fit. With
 * may_park, a send still waiting for the client once the run is being
 * stopped keeps its rest for the next send and returns WS_PARKED. */
static int send_event_or_park(running *r, const char *ev, json_t *fields, int may_park)
{
    if (!fields)
        return -1;
    json_object_set(fields, "id", r->id ? r->id : json_null());
    json_object_set_new(fields, "ev", json_string(ev));
    if (r->gone) {
        json_decref(fields);
        return -1;
    }
    int rc = may_park ? ws_conn_send_json_or_park(r->c, fields, stopping, r)
                      : ws_conn_send_json(r->c, fields);
    if (rc == WS_TOO_LARGE || rc == WS_PARKED)
        return rc;
    if (rc < 0) {
        /* The client is gone or stopped reading (the send's time limit):
         * the execution ends now, not when the code next awaits (a print
         * loop never does), and the connection with it (its reader would
         * otherwise wait out its idle limit). */
        r->gone = 1;
        if (!r->interrupted && r->sb)
            eryx_sandbox_interrupt(r->sb);
        r->interrupted = 1;
        ws_conn_shutdown(r->c);
    }
    return r->gone ? -1 : 0;
}

static int send_event(running *r, const char *ev, json_t *fields)
{
    return send_event_or_park(r, ev, fields, 0);
}

/* How many bytes of output one event carries at most, so that it stays
 * under --max-message: a byte of text takes up to 6 in JSON (\u001f), 3
 * bytes of anything else take 4 in base64. */
static size_t output_piece(size_t max_message, int text)
{
    size_t room = max_message - EVENT_ROOM; /* --max-message >= 2 * EVENT_ROOM */
    return text ? room / 6 : room / 4 * 3;
}

/* The sandboxes' on_output: streams to the client whose execution runs on
 * this thread, in pieces that fit a message (text cut between characters).
 * Text that is not UTF-8 goes as base64. Once the run is being stopped,
 * output the client takes no more of is dropped, and counted in done's
 * "output_dropped": a send that waited for the client waited in host
 * code, out of reach of the stop, whose grace then ran out; the sandbox
 * was stopped hard and the session not stored (a client reading nothing
 * held a 500 ms run 5 s). The event being sent then goes whole, first
 * thing with the next one. */
void serve_output(void *ud, int fd, const char *data, size_t len)
{
    (void)ud;
    running *r = current;
    if (!r || r->gone || r->replaying)
        return;
    int text = ws_utf8_valid((const uint8_t *)data, len);
    size_t piece = output_piece(r->sv->cfg.max_message, text);
    for (size_t off = 0, n; off < len && !r->gone; off += n) {
        if (ws_conn_parked(r->c)) { /* the client takes nothing, and the run stops */
            r->output_dropped += len - off;
            return;
        }
        n = len - off < piece ? len - off : piece;
        while (text && off + n < len && n > 1 && ((uint8_t)data[off + n] & 0xC0) == 0x80)
            n--; /* data[off + n] continues a character: end before it */
        json_t *ev = json_pack("{si}", "fd", fd);
        if (text) {
            json_object_set_new(ev, "data", json_stringn(data + off, n));
        } else {
            size_t b64_len;
            char *b = eryx__b64_encode((const uint8_t *)data + off, n, &b64_len);
            json_object_set_new(ev, "b64", b ? json_stringn(b, b64_len) : json_null());
            free(b);
        }
        send_event_or_park(r, "output", ev, 1);
    }
}

/* ---- calls ---------------------------------------------------------------- */

/* Counts calls asked of the client and not answered: as many more
 * messages may wait in the inbox (MAX_INBOX says why). */
static void owe(running *r, int delta)
{
    pthread_mutex_lock(&r->cl->mu);
    r->cl->owed = delta > 0 ? r->cl->owed + 1 : r->cl->owed - (r->cl->owed > 0);
    pthread_mutex_unlock(&r->cl->mu);
}

static int remember_call(running *r, eryx_call *call)
{
    if (r->n_calls == r->cap_calls) {
        size_t cap = r->cap_calls ? r->cap_calls * 2 : 8;
        outstanding *p = realloc(r->calls, cap * sizeof *p);
        if (!p)
            return -1;
        r->calls = p;
        r->cap_calls = cap;
    }
    char *name = strdup(eryx_call_name(call));
    if (!name)
        return -1;
    r->calls[r->n_calls++] = (outstanding){eryx_call_id(call), call, name};
    return 0;
}

/* Drops call i, keeping the others in the order they were made: a
 * suspension lists the pending calls in that order, and a resume matches
 * its replies to the journal's calls by it (moving the last call into the
 * hole gave two pending calls of one name each other's answers). */
static void forget_call(running *r, size_t i)
{
    free(r->calls[i].name);
    owe(r, -1);
    memmove(r->calls + i, r->calls + i + 1, (r->n_calls - i - 1) * sizeof *r->calls);
    r->n_calls--;
}

/* Completes call with the answer object {result}, {result_json} (the exact
 * text, which an integer beyond 64 bits needs: result_json.h) or {error:
 * {kind, message}}. */
static void answer(eryx_call *call, json_t *reply)
{
    json_t *err = json_object_get(reply, "error");
    if (err) {
        const char *kind = json_string_value(json_object_get(err, "kind"));
        const char *msg = json_string_value(json_object_get(err, "message"));
        int k = kind && strcmp(kind, "invalid_arguments") == 0 ? ERYX_CALL_INVALID_ARGS
              : kind && strcmp(kind, "timeout") == 0        ? ERYX_CALL_TIMEOUT
                                                            : ERYX_CALL_FAILED;
        eryx_call_fail(call, k, msg ? msg : "the client's callback failed");
        return;
    }
    json_t *exact = json_object_get(reply, "result_json");
    if (json_is_string(exact)) {
        eryx_call_reply(call, json_string_value(exact), json_string_length(exact));
        return;
    }
    char *s = json_dumps(json_object_get(reply, "result"), JSON_COMPACT | JSON_ENCODE_ANY);
    if (s)
        eryx_call_reply(call, s, strlen(s));
    else
        eryx_call_fail(call, ERYX_CALL_FAILED, "out of memory");
    free(s);
}

/* 1 if a reply (live or given with a resume) carries an answer. */
static int has_answer(json_t *reply)
{
    return json_object_get(reply, "result") || json_is_string(json_object_get(reply, "result_json")) ||
           json_is_object(json_object_get(reply, "error"));
}

/* On a resume, the first calls that repeat the suspended ones (by name, in
 * order) take the answers the request brought, if any. 1 if answered. */
static int answer_from_replies(running *r, eryx_call *call)
{
    if (!r->replay_pending || r->replay_next >= json_array_size(r->replay_pending))
        return 0;
    json_t *p = json_array_get(r->replay_pending, r->replay_next);
    const char *name = json_string_value(json_object_get(p, "name"));
    if (!name || strcmp(name, eryx_call_name(call)) != 0)
        return 0;
    r->replay_next++;
    json_int_t old = json_integer_value(json_object_get(p, "call"));
    size_t i;
    json_t *rep;
    json_array_foreach(r->replies, i, rep) {
        if (json_integer_value(json_object_get(rep, "call")) == old) {
            answer(call, rep);
            return 1;
        }
    }
    return 0;
}

/* A call as the client sees it: id, name and arguments, with the exact
 * text of the arguments beside them when an integer beyond 64 bits made
 * them inexact (result_json.h). */
static json_t *call_fields(eryx_call *call, uint64_t id, const char *name)
{
    const char *text = eryx_call_args(call);
    int inexact;
    json_t *args = eryx__json_read(text, strlen(text), ERYX_CLI_JSON_FLAGS, &inexact);
    json_t *f = json_pack("{sI ss so}", "call", (json_int_t)id, "name", name, "args",
                          args ? args : json_object());
    if (f && inexact)
        json_object_set_new(f, "args_json", json_string(text));
    return f;
}

static void new_call(running *r, eryx_call *call)
{
    r->replaying = 0;
    if (answer_from_replies(r, call))
        return;
    /* Sent before it is remembered: the client's answer is read by this
     * thread, after this. Owed before it is sent: the reader may have the
     * answer before send_event returns. */
    owe(r, 1);
    int rc = send_event(r, "call", call_fields(call, eryx_call_id(call), eryx_call_name(call)));
    if (rc == WS_TOO_LARGE) {
        char msg[160];
        snprintf(msg, sizeof msg, "the call's arguments do not fit in one message to the client "
                                  "(--max-message %zu bytes)", r->sv->cfg.max_message);
        eryx_call_fail(call, ERYX_CALL_INVALID_ARGS, msg);
    } else if (rc < 0) {
        eryx_call_fail(call, ERYX_CALL_FAILED, "the client is gone");
    } else if (remember_call(r, call) < 0) {
        eryx_call_fail(call, ERYX_CALL_FAILED, "out of memory");
    } else {
        return;
    }
    owe(r, -1);
}

/* Releases the calls nobody will answer now (each must be completed once). */
static void drop_calls(running *r)
{
    while (r->n_calls) {
        eryx_call_fail(r->calls[0].call, ERYX_CALL_FAILED, "the execution ended");
        forget_call(r, 0);
    }
    free(r->calls);
    r->calls = NULL;
    r->cap_calls = 0;
}

/* ---- messages during an execution ---------------------------------------- */

static void on_reply(running *r, json_t *msg)
{
    json_t *cid = json_object_get(msg, "call");
    for (size_t i = 0; json_is_integer(cid) && i < r->n_calls; i++) {
        if (r->calls[i].id != (uint64_t)json_integer_value(cid))
            continue;
        if (!has_answer(msg)) {
            send_error(r->c, r->id, "bad_request",
                       "a reply needs \"result\", \"result_json\" or \"error\"");
            return;
        }
        answer(r->calls[i].call, msg);
        forget_call(r, i);
        return;
    }
    send_error(r->c, r->id, "bad_request", "no pending call has that \"call\" id");
}

/* The client's answer to a read event: bytes ("data" as text or "b64"),
 * "eof", or both. */
static void on_stdin(running *r, json_t *msg)
{
    json_t *text = json_object_get(msg, "data"), *eof = json_object_get(msg, "eof");
    const char *b64 = json_string_value(json_object_get(msg, "b64"));
    uint8_t *bytes = NULL;
    size_t n = 0;
    const char *why = NULL;
    if (!r->in_asked)
        why = "no read is pending: send \"stdin\" once per \"read\" event";
    else if ((text && !json_is_string(text)) || (eof && !json_is_boolean(eof)) ||
             (text && b64) || (!text && !b64 && !json_is_true(eof)))
        why = "\"stdin\" carries \"data\" (text) or \"b64\" (bytes), and/or \"eof\": true";
    else if (b64 && eryx__b64_decode(b64, strlen(b64), &bytes, &n) != 0)
        why = "\"b64\" is not base64";
    if (why) {
        send_error(r->c, r->id, "bad_request", why);
        return;
    }
    if (text) {
        n = json_string_length(text);
        bytes = malloc(n ? n : 1);
        if (bytes)
            memcpy(bytes, json_string_value(text), n);
    }
    free(r->in);
    r->in = bytes;
    r->in_len = bytes ? n : 0;
    r->in_pos = 0;
    r->in_eof = json_is_true(eof) || (!bytes && n); /* out of memory: the end */
    r->in_asked = 0;
    r->in_used = 1;
}

/* Whether msg belongs to the request of id live: it carries that id, or
 * none (the running one is meant). A reply, cancel or stdin of a request
 * that has ended was applied to the next one on the connection: in a
 * pooled sandbox call numbers start at 1 again, and a late reply answered
 * the next run's first call with the data of another (an audit's finding). */
static int for_request(json_t *msg, json_t *live)
{
    json_t *id = json_object_get(msg, "id");
    return !id || (live && json_equal(id, live));
}

static void on_message_while_running(running *r, json_t *msg)
{
    const char *op = json_string_value(json_object_get(msg, "op"));
    if (op && !for_request(msg, r->id) &&
        (strcmp(op, "reply") == 0 || strcmp(op, "cancel") == 0 || strcmp(op, "stdin") == 0)) {
        return; /* late: its request has ended (docs/serve.md) */
    }
    if (op && strcmp(op, "suspend") == 0 && !for_request(msg, r->id)) {
        send_error(r->c, json_object_get(msg, "id"), "bad_request",
                   "nothing to suspend: that request is not the one running");
        return;
    }
    if (!op) {
        send_error(r->c, json_object_get(msg, "id"), "bad_request", "a message needs an \"op\"");
    } else if (strcmp(op, "reply") == 0) {
        on_reply(r, msg);
    } else if (strcmp(op, "cancel") == 0) {
        if (!r->interrupted) /* the reader did too, unless it came first */
            eryx_sandbox_interrupt(r->sb);
        r->interrupted = 1;
    } else if (strcmp(op, "stdin") == 0) {
        on_stdin(r, msg);
    } else if (strcmp(op, "suspend") == 0) {
        if (r->in_used)
            send_error(r->c, r->id, "bad_request",
                       "the code has read the streamed stdin: a resume would need its bytes "
                       "again, so this execution cannot be suspended");
        else if (r->n_calls)
            r->suspend_wanted = 1;
        else
            send_error(r->c, r->id, "bad_request",
                       "nothing to suspend: the code is not waiting on a callback");
    } else {
        send_error(r->c, json_object_get(msg, "id"), "busy",
                   "one request at a time on a connection (open another)");
    }
}

/* Takes the next message of the inbox (NULL when empty); *done: the
 * reader has ended. */
static json_t *next_message(client *cl, int *done)
{
    pthread_mutex_lock(&cl->mu);
    json_t *msg = json_array_size(cl->inbox) ? json_incref(json_array_get(cl->inbox, 0)) : NULL;
    if (msg) {
        json_array_remove(cl->inbox, 0);
        cl->inbox_bytes -= (size_t)json_integer_value(json_array_get(cl->sizes, 0));
        json_array_remove(cl->sizes, 0);
    }
    *done = cl->reader_done;
    pthread_mutex_unlock(&cl->mu);
    return msg;
}

/* Handles what the client sent meanwhile. */
static void read_client(running *r)
{
    json_t *msg;
    int done;
    while ((msg = next_message(r->cl, &done))) {
        on_message_while_running(r, msg);
        json_decref(msg);
    }
    if (done)
        r->gone = 1;
}

static void notify(void *ud)
{
    uint64_t one = 1;
    ssize_t w = write(*(int *)ud, &one, sizeof one);
    (void)w;
}

/* Waits up to ms for the client (or a notify), then handles its messages. */
static void wait_for_client(running *r, int ms)
{
    struct pollfd p = {.fd = r->cl->efd, .events = POLLIN};
    poll(&p, 1, ms);
    uint64_t v;
    ssize_t n = read(r->cl->efd, &v, sizeof v);
    (void)n;
    read_client(r);
}

/* Waits for a reply, a message, a timer or the lock's refresh time. */
static void wait_for_work(running *r)
{
    uint64_t now = eryx_cli_now_ms(), deadline_ns = eryx_exec_deadline_ns(r->ex);
    int64_t wait = r->session ? (int64_t)(r->next_refresh_ms - now) : 60000;
    if (deadline_ns) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t t = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        int64_t d = deadline_ns > t ? (int64_t)((deadline_ns - t + 999999) / 1000000) : 0;
        if (d < wait)
            wait = d;
    }
    if (wait < 0 || eryx_exec_ready(r->ex))
        wait = 0;
    wait_for_client(r, (int)wait);
}

/* eryx_run_options.stdin_read for "stdin_stream", on this connection's
 * thread inside eryx_exec_step: asks the client for bytes once, then
 * handles its messages for 50 ms at a time (EAGAIN in between, so that the
 * time limit and a cancel act) until they come. */
static long client_stdin(void *ud, void *buf, size_t cap)
{
    running *r = ud;
    if (r->in_pos == r->in_len && !r->in_eof && !r->gone) {
        if (!r->in_asked) {
            size_t most = output_piece(r->sv->cfg.max_message, 0);
            r->in_asked = send_event(r, "read", json_pack("{sI}", "max",
                                     (json_int_t)(cap < most ? cap : most))) == 0;
        }
        wait_for_client(r, 50);
    }
    if (r->in_pos < r->in_len) {
        size_t n = r->in_len - r->in_pos < cap ? r->in_len - r->in_pos : cap;
        memcpy(buf, r->in + r->in_pos, n);
        r->in_pos += n;
        return (long)n;
    }
    if (r->in_eof)
        return 0;
    errno = r->gone ? EPIPE : EAGAIN;
    return -1;
}

/* ---- one execution --------------------------------------------------------- */

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

/* An exception's text, which may hold NULs of its own. */
static json_t *text_or_null(const char *s, size_t n)
{
    return s ? json_stringn(s, n) : json_null();
}

static json_t *done_fields(int rc, const eryx_result *res)
{
    json_t *d = json_pack("{ss si}", "status", eryx_cli_status_name(rc), "rc", rc);
    if (!res) {
        json_object_set_new(d, "message", json_string(eryx_errstr(rc)));
        return d;
    }
    const char *result_error;
    int inexact;
    json_t *result = eryx_cli_result(res, &result_error, &inexact);
    json_object_set_new(d, "exit_code", json_integer(res->exit_code));
    json_object_set_new(d, "exited", json_boolean(res->exited));
    json_object_set_new(d, "result", result ? result : json_null());
    if (inexact)
        json_object_set_new(d, "result_json", json_string(res->result_json));
    json_object_set_new(d, "result_error", str_or_null(result_error));
    json_object_set_new(d, "exc_type", str_or_null(res->exc_type));
    json_object_set_new(d, "exc_message", text_or_null(res->exc_message, res->exc_message_len));
    json_object_set_new(d, "traceback", text_or_null(res->traceback, res->traceback_len));
    json_object_set_new(d, "duration_ms", json_real((double)res->duration_ns / 1e6));
    json_object_set_new(d, "callbacks", json_integer(res->n_callbacks));
    json_object_set_new(d, "memory_bytes", json_integer((json_int_t)res->memory_bytes));
    json_object_set_new(d, "hard_stopped", json_boolean(res->hard_stopped));
    const char *stopped = eryx_cli_stop_name(res);
    json_object_set_new(d, "stopped", stopped ? json_string(stopped) : json_null());
    json_object_set_new(d, "stdout_truncated", json_boolean(res->out_truncated));
    json_object_set_new(d, "stderr_truncated", json_boolean(res->err_truncated));
    return d;
}

/* The bytes c takes in JSON text as jansson writes it. */
static size_t json_char_size(uint8_t c)
{
    if (c == '"' || c == '\\' || c == '\n' || c == '\t' || c == '\r' || c == '\b' || c == '\f')
        return 2;
    return c < 0x20 ? 6 : 1; /* \u001f */
}

/* Cuts the text of done's field name to at most max bytes as JSON (between
 * characters), saying so at its end. By its JSON size, not its own: a text
 * of control characters is six times longer in the message. */
static void cut_text(json_t *done, const char *name, size_t max)
{
    static const char mark[] = "\n[cut to fit --max-message]";
    json_t *text = json_object_get(done, name);
    const char *s = json_string_value(text);
    size_t len = json_string_length(text), n = 0, size = 0, room = max - (sizeof mark + 1);
    while (n < len && size + json_char_size((uint8_t)s[n]) <= room)
        size += json_char_size((uint8_t)s[n++]);
    if (n == len)
        return;
    while (n > 0 && ((uint8_t)s[n] & 0xC0) == 0x80)
        n--;
    char *cut = malloc(n + sizeof mark);
    if (cut) {
        memcpy(cut, s, n);
        memcpy(cut + n, mark, sizeof mark);
    }
    json_object_set_new(done, name, cut ? json_stringn(cut, n + sizeof mark - 1) : json_null());
    free(cut);
}

/* Sends done (taken), made to fit --max-message if it does not: first the
 * exception's texts are cut, then the result is left out (result_error
 * says why); an error event if even that does not fit. */
static void send_done(running *r, json_t *done)
{
    size_t cap = r->sv->cfg.max_message;
    for (int attempt = 0;; attempt++) {
        int rc = send_event(r, "done", json_incref(done));
        if (rc != WS_TOO_LARGE)
            break;
        if (attempt == 0) {
            cut_text(done, "traceback", cap / 4);
            cut_text(done, "exc_message", cap / 4);
        } else if (attempt == 1) {
            char msg[160];
            snprintf(msg, sizeof msg, "the result is larger than one message to the client may "
                                      "be (--max-message %zu bytes)", cap);
            json_object_set_new(done, "result", json_null());
            json_object_del(done, "result_json");
            json_object_set_new(done, "result_error", json_string(msg));
        } else {
            send_error(r->c, r->id, "internal", "the execution's end does not fit in a message");
            break;
        }
    }
    json_decref(done);
}

/* What a resume message holds besides the token (its fields, small
 * replies); a token that leaves less than this under --max-message is
 * refused at suspension rather than at resume. */
#define RESUME_ROOM (64u << 10)

/* Ends the execution at its suspend point and answers with the token. */
static void suspend(running *r, eryx_journal *j)
{
    journal_meta meta = {0};
    if (r->session) {
        snprintf(meta.session, sizeof meta.session, "%s", r->session->name);
        meta.version = r->session->version;
    }
    meta.pending = json_array();
    for (size_t i = 0; i < r->n_calls; i++)
        json_array_append_new(meta.pending, json_pack("{sI ss}", "call", (json_int_t)r->calls[i].id,
                                                      "name", r->calls[i].name));
    eryx_exec_suspend(r->ex);
    r->ex = NULL;
    char *token = journal_token(r->sv, &meta, j);
    json_t *pending = json_array();
    for (size_t i = 0; i < r->n_calls; i++) {
        json_array_append_new(pending,
                              call_fields(r->calls[i].call, r->calls[i].id, r->calls[i].name));
    }
    drop_calls(r);
    size_t cap = r->sv->cfg.max_message;
    /* A resume carries the token in one message: a token no server of ours
     * would take back, or a suspension that does not fit in a message
     * itself (the pending calls' arguments), is refused. The session keeps
     * its state from before. */
    int too_large = token && strlen(token) > cap - (cap < 2 * RESUME_ROOM ? cap / 2 : RESUME_ROOM);
    if (token && !too_large)
        too_large = send_event(r, "suspended",
                               json_pack("{ss sO ss}", "journal", token, "pending", pending,
                                         "replica", r->sv->replica)) == WS_TOO_LARGE;
    json_decref(pending);
    if (too_large) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "the journal token is %zu bytes, more than a resume may carry under "
                 "--max-message (%zu bytes) with its pending calls: the execution was ended and "
                 "the session keeps its state from before it",
                 strlen(token), cap);
        send_error(r->c, r->id, "journal_too_large", msg);
    } else if (!token) {
        send_error(r->c, r->id, "internal", "cannot make the journal token");
    }
    free(token);
    json_decref(meta.pending);
    metrics_execution(r->sv, M_SUSPENDED, 0);
}

/* Steps the execution to its end (or suspension). Returns the status, or
 * -1 when it was suspended. *res gets the result. */
static int drive(running *r, eryx_journal *j, eryx_result **res)
{
    *res = NULL;
    current = r;
    int rc;
    for (;;) {
        rc = eryx_exec_step(r->ex);
        if (rc != ERYX_PENDING)
            break;
        eryx_call *call;
        while ((call = eryx_exec_next_call(r->ex)))
            new_call(r, call);
        if (r->gone && !r->interrupted) {
            eryx_sandbox_interrupt(r->sb); /* a disconnect cancels */
            r->interrupted = 1;
        }
        if (r->suspend_wanted && r->n_calls && !r->gone) {
            current = NULL;
            suspend(r, j);
            return -1;
        }
        wait_for_work(r);
        if (r->session && eryx_cli_now_ms() >= r->next_refresh_ms) {
            if (session_refresh_lock(r->session) < 0 && !r->interrupted) {
                eryx_sandbox_interrupt(r->sb); /* another replica may own it now */
                r->interrupted = 1;
            }
            r->next_refresh_ms = eryx_cli_now_ms() + r->sv->cfg.lock_ttl_ms / 3;
        }
    }
    current = NULL;
    eryx_exec_finish(r->ex, res);
    r->ex = NULL;
    drop_calls(r);
    return rc;
}

/* ---- the execute and resume requests ---------------------------------------- */

typedef struct exec_request {
    const char *code;
    size_t code_len;
    const char *session;
    int create;
    eryx_callback cbs[MAX_DECLARED_CALLBACKS];
    char *schemas[MAX_DECLARED_CALLBACKS];
    size_t n_cbs;
    eryx_run_options opts;
    eryx_journal *journal;
    journal_meta meta;
    json_t *replies;
    int stdin_stream;
} exec_request;

static void free_request(exec_request *q)
{
    for (size_t i = 0; i < q->n_cbs; i++)
        free(q->schemas[i]);
    eryx_journal_free(q->journal);
    json_decref(q->meta.pending);
}

static int parse_callbacks(exec_request *q, json_t *list, const char **why)
{
    if (!list)
        return 0;
    if (!json_is_array(list) || json_array_size(list) > MAX_DECLARED_CALLBACKS) {
        *why = "\"callbacks\" is a list of at most 256 {name, description, schema}";
        return -1;
    }
    size_t i;
    json_t *cb;
    json_array_foreach(list, i, cb) {
        const char *name = json_string_value(json_object_get(cb, "name"));
        json_t *desc = json_object_get(cb, "description"), *schema = json_object_get(cb, "schema");
        if (!name || (desc && !json_is_string(desc) && !json_is_null(desc)) ||
            (schema && !json_is_object(schema) && !json_is_null(schema))) {
            *why = "each callback is {name: string, description: string, schema: object}";
            return -1;
        }
        q->schemas[i] = json_is_object(schema) ? json_dumps(schema, JSON_COMPACT) : NULL;
        q->cbs[i] = (eryx_callback){.size = sizeof(eryx_callback), .name = name,
                                    .description = json_string_value(desc),
                                    .schema = q->schemas[i]};
        q->n_cbs = i + 1;
    }
    return 0;
}

static int parse_limits(server *sv, exec_request *q, json_t *req, const char **why)
{
    eryx_run_options_default(&q->opts);
    json_t *t = json_object_get(req, "timeout_ms"), *f = json_object_get(req, "fuel");
    json_t *in = json_object_get(req, "stdin");
    uint64_t timeout = sv->cfg.max_timeout_ms;
    if (t) {
        if (!json_is_integer(t) || json_integer_value(t) <= 0) {
            *why = "\"timeout_ms\" is a positive integer";
            return -1;
        }
        if ((uint64_t)json_integer_value(t) < timeout)
            timeout = (uint64_t)json_integer_value(t);
    }
    q->opts.timeout_ns = timeout * 1000000ull;
    if (f) {
        if (!json_is_integer(f) || json_integer_value(f) <= 0 || !eryx_build_has_fuel()) {
            *why = eryx_build_has_fuel() ? "\"fuel\" is a positive integer"
                                         : "this build does not count fuel";
            return -1;
        }
        uint64_t v = (uint64_t)json_integer_value(f);
        q->opts.fuel = sv->cfg.max_fuel && v > sv->cfg.max_fuel ? sv->cfg.max_fuel : v;
    } else if (sv->cfg.max_fuel) {
        q->opts.fuel = sv->cfg.max_fuel;
    }
    if (in) {
        if (!json_is_string(in)) {
            *why = "\"stdin\" is a string";
            return -1;
        }
        q->opts.stdin_data = json_string_value(in);
        q->opts.stdin_len = json_string_length(in);
    }
    return 0;
}

/* Fills q from an execute or resume message. On failure: code, message. */
static int parse_exec(server *sv, json_t *req, int resume, exec_request *q, const char **code,
                      char *msg, size_t msglen)
{
    const char *why = NULL;
    json_t *session = json_object_get(req, "session"), *create = json_object_get(req, "create");
    *code = "bad_request";
    if (parse_callbacks(q, json_object_get(req, "callbacks"), &why) < 0 ||
        parse_limits(sv, q, req, &why) < 0)
        goto bad;
    json_t *stream = json_object_get(req, "stdin_stream");
    if (stream && (!json_is_boolean(stream) || (resume && json_is_true(stream)))) {
        why = resume ? "a resume cannot stream stdin (its replay would need the bytes again)"
                     : "\"stdin_stream\" is a boolean";
        goto bad;
    }
    q->stdin_stream = json_is_true(stream);
    if (resume) {
        const char *token = json_string_value(json_object_get(req, "journal"));
        json_t *replies = json_object_get(req, "replies");
        if (!token || (replies && !json_is_array(replies))) {
            why = "resume needs \"journal\" (a token) and optional \"replies\" (a list)";
            goto bad;
        }
        size_t i;
        json_t *rep;
        json_array_foreach(replies, i, rep) {
            if (!json_is_integer(json_object_get(rep, "call")) || !has_answer(rep)) {
                why = "each of \"replies\" is {call, result}, {call, result_json} or "
                      "{call, error}";
                goto bad;
            }
        }
        q->journal = journal_open(sv, token, &q->meta, code, msg, msglen);
        if (!q->journal)
            return -1;
        q->replies = replies;
        q->session = q->meta.session[0] ? q->meta.session : NULL;
        return 0;
    }
    json_t *src = json_object_get(req, "code");
    if (!json_is_string(src)) {
        why = "execute needs \"code\" (a string)";
        goto bad;
    }
    q->code = json_string_value(src);
    q->code_len = json_string_length(src);
    if (session && (!json_is_string(session) || !session_name_ok(json_string_value(session)))) {
        why = "a session name is 1-128 characters of A-Z a-z 0-9 . _ : -";
        goto bad;
    }
    q->session = json_string_value(session);
    q->create = json_is_true(create);
    if (eryx_journal_new(&q->journal) != ERYX_OK) {
        *code = "internal";
        why = "out of memory";
        goto bad;
    }
    return 0;
bad:
    snprintf(msg, msglen, "%s", why);
    return -1;
}

/* Every execution holds one of --pool's slots while it runs, in a session
 * or not: the pool alone bounded only the fresh sandboxes, and a token
 * holder's requests naming sessions each loaded a sandbox of their own, as
 * many at once as it had connections. More wait POOL_WAIT_NS, then are
 * refused. 0; -1 when none came free; -2 when the server is stopping (a
 * stop wakes the waits: serve_stop_clients). */
static int slot_take(server *sv)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(POOL_WAIT_NS / 1000000000);
    pthread_mutex_lock(&sv->run_mu);
    int waited = 0, stopping;
    while (!(stopping = atomic_load(&sv->stopping)) && sv->running >= sv->cfg.pool && waited == 0)
        waited = pthread_cond_timedwait(&sv->run_cv, &sv->run_mu, &until);
    int ok = !stopping && sv->running < sv->cfg.pool;
    if (ok)
        sv->running++;
    pthread_mutex_unlock(&sv->run_mu);
    return ok ? 0 : stopping ? -2 : -1;
}

void serve_slots_init(server *sv)
{
    pthread_mutex_init(&sv->run_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sv->run_cv, &ca);
    pthread_condattr_destroy(&ca);
    sv->running = 0;
}

static void slot_give(server *sv)
{
    pthread_mutex_lock(&sv->run_mu);
    sv->running--;
    pthread_cond_signal(&sv->run_cv);
    pthread_mutex_unlock(&sv->run_mu);
}

/* Gets the sandbox the request runs in, and its slot (give_back returns
 * both). */
static int take_sandbox(server *sv, exec_request *q, session_ref *ref, eryx_sandbox **sb,
                        const char **code, char *msg, size_t msglen)
{
    int slot = slot_take(sv);
    if (slot < 0) {
        /* Refused before anything ran: safe to send again, elsewhere. */
        *code = "busy";
        if (slot == -2)
            snprintf(msg, msglen, "the server is stopping; nothing ran: try again on another "
                                  "server");
        else
            snprintf(msg, msglen, "every sandbox is in use (--pool %u); try again shortly",
                     sv->cfg.pool);
        return -1;
    }
    int rc = 0;
    if (q->session) {
        int want = q->meta.id[0] ? 1 : 0;
        rc = session_open(sv, q->session, q->create, want ? q->meta.version : 0, ref, code, msg,
                          msglen);
        *sb = ref->sb;
    } else if (eryx_pool_acquire(sv->pool, POOL_WAIT_NS, sb) != ERYX_OK) {
        *code = "busy";
        snprintf(msg, msglen, "every sandbox is in use (--pool %u); try again shortly",
                 sv->cfg.pool);
        rc = -1;
    }
    if (rc < 0)
        slot_give(sv);
    return rc;
}

static void give_back(server *sv, running *r, session_ref *ref, int save, json_t *done)
{
    eryx_sandbox_set_callbacks(r->sb, NULL, 0);
    slot_give(sv);
    if (!r->session) {
        eryx_pool_release(sv->pool, r->sb);
        return;
    }
    char msg[256] = "";
    int saved = 0;
    session_close(sv, ref, save, &saved, msg, sizeof msg);
    if (done) {
        json_object_set_new(done, "session", json_string(ref->name));
        json_object_set_new(done, "version", json_integer((json_int_t)ref->version));
        json_object_set_new(done, "saved", json_boolean(saved));
        if (msg[0])
            json_object_set_new(done, "save_error", json_string(msg));
    }
}

/* Makes sb the one a cancel or a disconnect interrupts (NULL: none). A
 * cancel that arrived before the execution started stops it as it starts. */
static void set_live(client *cl, eryx_sandbox *sb, json_t *id)
{
    pthread_mutex_lock(&cl->mu);
    cl->live = sb;
    cl->live_cancelled = 0;
    json_decref(cl->live_id);
    cl->live_id = sb ? json_incref(id) : NULL;
    int stop = cl->reader_done || atomic_load(&cl->sv->stopping);
    size_t i;
    json_t *msg;
    json_array_foreach(cl->inbox, i, msg) {
        const char *op = json_string_value(json_object_get(msg, "op"));
        stop |= op && strcmp(op, "cancel") == 0 && sb && for_request(msg, id);
    }
    pthread_mutex_unlock(&cl->mu);
    if (sb && stop)
        eryx_sandbox_interrupt(sb);
}

static void execute(client *cl, json_t *id, json_t *req, int resume)
{
    server *sv = cl->sv;
    ws_conn *c = cl->c;
    exec_request q = {0};
    const char *code = NULL;
    char msg[512];
    session_ref ref = {0};
    running r = {.sv = sv, .cl = cl, .c = c, .id = id};
    if (parse_exec(sv, req, resume, &q, &code, msg, sizeof msg) < 0 ||
        take_sandbox(sv, &q, &ref, &r.sb, &code, msg, sizeof msg) < 0) {
        send_error(c, id, code, msg);
        free_request(&q);
        return;
    }
    r.session = q.session ? &ref : NULL;
    if (resume && journal_claim(sv, &q.meta, &code, msg, sizeof msg) < 0) {
        send_error(c, id, code, msg);
        r.sb = ref.sb ? ref.sb : r.sb;
        give_back(sv, &r, &ref, 0, NULL);
        free_request(&q);
        return;
    }
    r.replay_pending = q.meta.pending;
    r.replaying = resume;
    r.replies = q.replies;
    r.next_refresh_ms = eryx_cli_now_ms() + sv->cfg.lock_ttl_ms / 3;
    if (q.stdin_stream) {
        q.opts.stdin_read = client_stdin;
        q.opts.stdin_user_data = &r;
    }
    int rc = eryx_sandbox_set_callbacks(r.sb, q.cbs, q.n_cbs);
    if (q.opts.timeout_ns)
        r.stop_at_ms = eryx_cli_now_ms() + q.opts.timeout_ns / 1000000u;
    if (rc == ERYX_OK)
        rc = eryx_exec_start_journaled(r.sb, q.code, q.code_len, &q.opts, q.journal, &r.ex);
    if (rc != ERYX_OK) {
        send_error(c, id, rc == ERYX_INVALID ? "bad_request" : "internal", eryx_errmsg(r.sb));
        give_back(sv, &r, &ref, 0, NULL);
        goto out;
    }
    eryx_exec_set_notify(r.ex, notify, &cl->efd);
    atomic_fetch_add(&sv->m.executing, 1);
    set_live(cl, r.sb, id);
    eryx_result *res;
    rc = drive(&r, q.journal, &res);
    set_live(cl, NULL, NULL);
    atomic_fetch_sub(&sv->m.executing, 1);
    if (rc == -1) {
        give_back(sv, &r, &ref, 0, NULL);
        goto out;
    }
    metrics_execution(sv, metrics_status_index(rc, res), res ? res->duration_ns : 0);
    json_t *done = done_fields(rc, res);
    json_object_set_new(done, "replica", json_string(sv->replica));
    json_object_set_new(done, "output_dropped", json_integer((json_int_t)r.output_dropped));
    /* Stopped by the server's own stop (SIGTERM), not by this client: the
     * clients say so, rather than report a cancel nobody asked for. */
    if (rc == ERYX_INTERRUPTED && !r.interrupted && atomic_load(&sv->stopping))
        json_object_set_new(done, "server_stopping", json_true());
    int alive = res && !eryx_sandbox_is_dead(r.sb);
    /* A resume that diverged ran code the journal does not vouch for (it
     * finished without making the journal's calls): its state is not the
     * session's next one, and the client saw none of its output. */
    give_back(sv, &r, &ref, alive && !r.gone && rc != ERYX_DIVERGED, done);
    send_done(&r, done);
    if (!sv->cfg.quiet)
        serve_log(sv, resume ? "resume" : "execute",
                  json_pack("{ss* ss sf}", "session", q.session, "status", eryx_cli_status_name(rc),
                            "ms", res ? (double)res->duration_ns / 1e6 : 0.0));
    eryx_result_free(res);
out:
    free(r.in);
    free_request(&q);
}

/* ---- the connection --------------------------------------------------------- */

static void dispatch(client *cl, json_t *msg)
{
    server *sv = cl->sv;
    ws_conn *c = cl->c;
    json_t *id = json_object_get(msg, "id");
    const char *op = json_string_value(json_object_get(msg, "op"));
    atomic_fetch_add(&sv->m.requests_total, 1);
    if (id && !json_is_integer(id) &&
        !(json_is_string(id) && json_string_length(id) <= MAX_ID_BYTES)) {
        char why[80];
        snprintf(why, sizeof why, "\"id\" is a number or a string of at most %d bytes",
                 MAX_ID_BYTES);
        send_error(c, NULL, "bad_request", why);
    } else if (!op) {
        send_error(c, id, "bad_request", "a message needs an \"op\"");
    } else if (strcmp(op, "execute") == 0 || strcmp(op, "resume") == 0) {
        execute(cl, id, msg, op[0] == 'r');
    } else if (strcmp(op, "ping") == 0) {
        ws_conn_send_json(c, json_pack("{sO? ss ss sI}", "id", id, "ev", "done", "replica",
                                       sv->replica, "max_message",
                                       (json_int_t)sv->cfg.max_message));
    } else if (strncmp(op, "session.", 8) == 0) {
        session_op(sv, c, id, op + 8, msg);
    } else if (strcmp(op, "reply") == 0 || strcmp(op, "cancel") == 0 || strcmp(op, "stdin") == 0) {
        /* Late: the execution it was meant for has ended (the client
         * cannot know when it sends). Nothing to do, nothing to say. */
    } else if (strcmp(op, "suspend") == 0) {
        send_error(c, id, "bad_request", "no execution is running on this connection");
    } else {
        send_error(c, id, "bad_request", "unknown op");
    }
}

/* 1 if no string in v holds a NUL character (keys cannot: jansson refuses
 * them when it reads). */
static int nul_free(json_t *v)
{
    const char *key;
    json_t *item;
    size_t i;
    if (json_is_string(v))
        return strlen(json_string_value(v)) == json_string_length(v);
    if (json_is_array(v)) {
        json_array_foreach(v, i, item) {
            if (!nul_free(item))
                return 0;
        }
    }
    json_object_foreach(v, key, item) {
        if (!nul_free(item))
            return 0;
    }
    return 1;
}

/* The fields whose text is data, taken with its length: the code (Python
 * itself refuses a NUL in it), stdin's text, a session's base64, and a
 * reply's value. */
static int is_data_field(const char *key)
{
    return strcmp(key, "code") == 0 || strcmp(key, "stdin") == 0 || strcmp(key, "data") == 0 ||
           strcmp(key, "result") == 0 || strcmp(key, "result_json") == 0;
}

/* A client message may hold NUL characters (\u0000) only in data fields,
 * also those of a resume's replies. Anywhere else (an op, a name, an id,
 * a journal, an error's message) the server reads the text as a C string,
 * which would be its part before the NUL: such a message is refused. */
static int nul_only_in_data(json_t *msg)
{
    const char *key;
    json_t *v, *rep;
    size_t i;
    json_object_foreach(msg, key, v) {
        if (is_data_field(key))
            continue;
        if (strcmp(key, "replies") == 0 && json_is_array(v)) {
            json_array_foreach(v, i, rep) {
                if (!nul_only_in_data(rep))
                    return 0;
            }
        } else if (!nul_free(v)) {
            return 0;
        }
    }
    return 1;
}

/* The reader: messages into the inbox; a cancel or the end of the
 * connection interrupts the running execution at once. */
static void *reader_main(void *arg)
{
    client *cl = arg;
    for (;;) {
        uint8_t *data;
        size_t len;
        int binary;
        int r = ws_conn_recv(cl->c, IDLE_TIMEOUT_MS, &data, &len, &binary);
        if (r <= 0) {
            if (r == 0)
                ws_conn_close(cl->c, WS_CLOSE_GOING_AWAY, "idle");
            break;
        }
        int inexact;
        size_t tree = 0, tree_max = MAX_INBOX_BYTES(cl->sv->cfg.max_message);
        int fits = binary || eryx__json_tree_fits((const char *)data, len, tree_max, &tree);
        json_t *msg = binary || !fits
                          ? NULL
                          : eryx__json_read((const char *)data, len,
                                            JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &inexact);
        if (!fits) {
            atomic_fetch_add(&cl->sv->m.errors_total, 1);
            send_too_structured(cl->c, len, tree_max);
            continue;
        }
        if (!json_is_object(msg) || !nul_only_in_data(msg)) {
            atomic_fetch_add(&cl->sv->m.errors_total, 1);
            send_error(cl->c, NULL, "bad_request",
                       binary ? "binary messages are not accepted: send JSON as text"
                       : !msg ? "a message is one JSON object: this is not JSON that the "
                                "server reads (malformed, a key twice or holding a NUL "
                                "character, or a number out of range)"
                       : json_is_object(msg)
                           ? "a NUL character (\\u0000) may be only in code, stdin, data, "
                             "result and result_json"
                           : "a message is one JSON object, not another JSON value");
            json_decref(msg);
            continue;
        }
        const char *op = json_string_value(json_object_get(msg, "op"));
        pthread_mutex_lock(&cl->mu);
        if (op && strcmp(op, "cancel") == 0 && cl->live && for_request(msg, cl->live_id)) {
            eryx_sandbox_interrupt(cl->live);
            cl->live_cancelled = 1;
        }
        size_t n = json_array_size(cl->inbox);
        int full = n >= MAX_INBOX + cl->owed || cl->inbox_bytes + tree > tree_max ||
                   json_array_append_new(cl->sizes, json_integer((json_int_t)tree)) < 0;
        if (full) {
            json_decref(msg);
        } else {
            json_array_append_new(cl->inbox, msg);
            cl->inbox_bytes += tree;
        }
        pthread_mutex_unlock(&cl->mu);
        if (full) {
            ws_conn_close(cl->c, WS_CLOSE_TOO_BIG, "too much sent and not yet handled");
            break;
        }
        notify(&cl->efd);
    }
    pthread_mutex_lock(&cl->mu);
    cl->reader_done = 1;
    if (cl->live)
        eryx_sandbox_interrupt(cl->live); /* a disconnect cancels */
    pthread_mutex_unlock(&cl->mu);
    notify(&cl->efd);
    return NULL;
}

void serve_stop_clients(server *sv)
{
    pthread_mutex_lock(&sv->run_mu); /* requests waiting for a slot give up */
    pthread_cond_broadcast(&sv->run_cv);
    pthread_mutex_unlock(&sv->run_mu);
    pthread_mutex_lock(&sv->clients_mu);
    for (client *cl = sv->clients; cl; cl = cl->next) {
        pthread_mutex_lock(&cl->mu);
        if (cl->live)
            eryx_sandbox_interrupt(cl->live);
        pthread_mutex_unlock(&cl->mu);
        notify(&cl->efd);
    }
    pthread_mutex_unlock(&sv->clients_mu);
}

static void enlist(client *cl)
{
    pthread_mutex_lock(&cl->sv->clients_mu);
    cl->next = cl->sv->clients;
    cl->sv->clients = cl;
    pthread_mutex_unlock(&cl->sv->clients_mu);
}

static void unlist(client *cl)
{
    pthread_mutex_lock(&cl->sv->clients_mu);
    client **p = &cl->sv->clients;
    while (*p && *p != cl)
        p = &(*p)->next;
    if (*p)
        *p = cl->next;
    pthread_mutex_unlock(&cl->sv->clients_mu);
}

void serve_client(server *sv, ws_conn *c, const char *peer)
{
    (void)peer;
    client cl = {.sv = sv, .c = c, .inbox = json_array(), .sizes = json_array()};
    cl.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_t reader;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256u << 10); /* it only parses JSON */
    pthread_mutex_init(&cl.mu, NULL);
    int started = cl.efd >= 0 && cl.inbox && cl.sizes && pthread_create(&reader, &attr, reader_main, &cl) == 0;
    pthread_attr_destroy(&attr);
    if (!started) {
        ws_conn_close(c, WS_CLOSE_INTERNAL, "out of resources");
        goto out;
    }
    enlist(&cl);
    for (;;) {
        /* Checked between requests: a running one was interrupted and has
         * ended, its session stored and unlocked (serve_stop_clients). */
        if (atomic_load(&sv->stopping)) {
            ws_conn_close(c, WS_CLOSE_GOING_AWAY, "the server is stopping");
            break;
        }
        int done;
        json_t *msg = next_message(&cl, &done);
        if (msg) {
            dispatch(&cl, msg);
            json_decref(msg);
            continue;
        }
        if (done)
            break;
        struct pollfd p = {.fd = cl.efd, .events = POLLIN};
        poll(&p, 1, -1);
        uint64_t v;
        ssize_t n = read(cl.efd, &v, sizeof v);
        (void)n;
    }
    ws_conn_shutdown(c);
    pthread_join(reader, NULL);
    unlist(&cl);
out:
    if (cl.efd >= 0)
        close(cl.efd);
    json_decref(cl.inbox);
    json_decref(cl.sizes);
    pthread_mutex_destroy(&cl.mu);
}
