/*
 * `--mcp-server NAME=COMMAND`: eryx as an MCP client (stdio transport).
 *
 * Each server is a child process (`/bin/sh -c COMMAND`, in a process group
 * of its own) spoken to over its stdin/stdout, one JSON-RPC message per
 * line; its stderr is ours. At start: initialize (protocol revision
 * 2025-11-25, or the 2025-06-18 a server answers with), the initialized
 * notification, tools/list page by page. Each tool becomes the callback
 * `mcp.NAME.TOOL`: its handler (inline: it never blocks) writes tools/call
 * to the server's stdin, or queues what the pipe does not take, and
 * returns; an I/O thread per server flushes that queue and reads the
 * answers, matches them to calls by id and completes them. So concurrent
 * calls (asyncio.gather) are concurrent requests to the server, no thread
 * is spent per call, and the callback timeout, count and size limits of
 * the sandbox apply to them as to any callback.
 *
 * A server that misbehaves costs a catchable CallbackError, never eryx:
 * one that exits fails its calls in flight and every later one; a line
 * that is not JSON-RPC is skipped (and reported once on stderr); a message
 * over --mcp-max-message is dropped as it streams (memory stays bounded)
 * and fails the calls in flight; one that stops answering leaves its calls
 * to the callback timeout (each then gets notifications/cancelled); one
 * that stops reading its stdin (its queue makes no progress for a callback
 * timeout) is stopped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/json_wide.h"
#include "jsonrpc.h"
#include "mcp.h"
#include "mcp_internal.h"
#include "result_json.h"
#include "size_arg.h"

extern char **environ;

#define MAX_TOOLS_PER_SERVER 1000
#define MAX_TOOL_PAGES 100

typedef struct pending {
    struct pending *next;
    json_int_t id;
    eryx_call *call;       /* a tool call; NULL for a request of our own */
    const char *tool;      /* the call's tool (for messages) */
    int done;              /* our own requests: answered (or failed) */
    json_t *result;        /* ... with this result, or */
    char *error;           /* ... this error */
} pending;

typedef struct mcp_conn {
    char *name, *command;
    char *who;             /* in messages: "--mcp-server NAME", "MCP server
                              NAME (FILE)" */
    pid_t pid;
    int to_fd, from_fd;
    pthread_t reader;
    int reader_started;
    pthread_mutex_t lock;  /* everything below */
    pthread_cond_t cond;
    char *out;             /* bytes for the server's stdin not written yet */
    size_t out_len, out_off, out_cap, out_max;
    uint64_t out_stalled;  /* when the queue last made progress */
    uint64_t stall_ms;     /* no progress for this long: the server is stopped */
    int wake[2];           /* wakes the I/O thread: the queue has bytes */
    pending *pending;
    json_int_t next_id;
    int dead, stopping, reaped;
    char dead_msg[300];
    size_t max_message;
    int warned;
    json_t *tools;         /* the tools/list results, concatenated */
    char *version;         /* the negotiated protocol revision */
    struct mcp_conn *next;
} mcp_conn;

struct eryx_cli_mcp_tool {
    mcp_conn *conn;
    char *tool;            /* the MCP name */
    char *callback;        /* mcp.NAME.PYNAME */
    char *description;
    char *schema;
    int has_output_schema;
};

static mcp_conn *conns;                  /* every server started; kept */
static eryx_callback *merged;            /* the config's callbacks + tools */
static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static int conns_killed;                 /* eryx_cli_mcp_kill_all ran */

/* ---- options ---- */

const char eryx_cli_mcp_usage[] =
    "  --mcp-server NAME=COMMAND\n"
    "                  start the MCP server COMMAND (/bin/sh -c) and offer each of\n"
    "                  its tools as `await mcp.NAME.TOOL(**args)`; repeatable\n"
    "  --mcp           also start the servers that the MCP configurations of\n"
    "                  Claude, Cursor, VS Code, Zed, Windsurf and Gemini name\n"
    "                  (user-wide, then this directory's; remote ones through\n"
    "                  `eryx mcp-proxy`; docs/mcp.md)\n"
    "  --mcp-config PATH\n"
    "                  also start the servers that this JSON file names; repeatable\n"
    "  --mcp-timeout MS  time a server has to start, initialize and list its\n"
    "                  tools (default 30000; at least 1)\n"
    "  --mcp-max-message BYTES\n"
    "                  largest JSON-RPC message taken from or given to an MCP\n"
    "                  peer (default 16M)\n"
    "  --callback-timeout MS\n"
    "                  how long one callback (or MCP tool) call may take\n"
    "                  (default 10000)\n"
    "  --max-sessions N  sessions `eryx mcp` keeps at most (default 16)\n"
    "  --http ADDR:PORT  `eryx mcp` serves Streamable HTTP at http://ADDR:PORT/mcp\n"
    "                  instead of stdio; ADDR is 127.0.0.1, localhost or [::1]\n"
    "                  (PORT 0: any free port, printed on stderr), or any\n"
    "                  address with --http-token-file\n"
    "  --http-token-file FILE  every request must carry 'Authorization: Bearer\n"
    "                  TOKEN', TOKEN the file's first line (16+ characters)\n"
    "  --http-tls-cert FILE --http-tls-key FILE  serve HTTPS (PEM)\n";

static int parse_u64(const char *opt, const char *s, uint64_t *out, int sizes)
{
    if (eryx_cli_parse_number(s, out, sizes) < 0) {
        fprintf(stderr, "eryx: %s wants a number, not '%s'\n", opt, s);
        return -1;
    }
    return 0;
}

int eryx_cli_mcp_option(eryx_cli_mcp *m, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    static const char *const opts[] = {"--mcp-server", "--mcp-timeout", "--mcp-max-message",
                                       "--callback-timeout", "--max-sessions", "--http",
                                       "--mcp-config", "--http-token-file", "--http-tls-cert",
                                       "--http-tls-key"};
    if (strcmp(a, "--mcp") == 0) {
        m->discover = 1;
        return 1;
    }
    size_t k = 0;
    while (k < sizeof opts / sizeof *opts && strcmp(a, opts[k]) != 0)
        k++;
    if (k == sizeof opts / sizeof *opts)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "eryx: argument expected for the %s option\n", a);
        return -1;
    }
    char *v = argv[++*i];
    uint64_t n;
    switch (k) {
    case 0: {
        char *eq = strchr(v, '=');
        if (!eq || eq == v || !eq[1]) {
            fprintf(stderr, "eryx: --mcp-server wants NAME=COMMAND, not '%s'\n", v);
            return -1;
        }
        *eq = '\0';
        if (!eryx_cli_py_identifier(v)) {
            fprintf(stderr, "eryx: --mcp-server name '%s' is not a Python identifier\n", v);
            return -1;
        }
        for (size_t j = 0; j < m->n_servers; j++) {
            if (strcmp(m->servers[j].name, v) == 0) {
                fprintf(stderr, "eryx: --mcp-server %s is given twice\n", v);
                return -1;
            }
        }
        if (m->n_servers == ERYX_CLI_MAX_MCP_SERVERS) {
            fprintf(stderr, "eryx: too many --mcp-server options (at most %d)\n",
                    ERYX_CLI_MAX_MCP_SERVERS);
            return -1;
        }
        m->servers[m->n_servers].name = v;
        m->servers[m->n_servers].command = eq + 1;
        m->n_servers++;
        return 1;
    }
    case 1:
    case 3:
        if (parse_u64(a, v, &n, 0) < 0)
            return -1;
        /* Bounded as --timeout is: a deadline of now + 2^64 - 1 ms wrapped
         * to the past, and the servers were given up on at once. */
        if (n == 0 || n > UINT64_MAX / 1000000u) {
            fprintf(stderr, "eryx: %s must be positive and at most %" PRIu64 " ms\n", a,
                    UINT64_MAX / 1000000u);
            return -1;
        }
        *(k == 1 ? &m->connect_timeout_ms : &m->callback_timeout_ms) = n;
        return 1;
    case 2:
        if (parse_u64(a, v, &n, 1) < 0)
            return -1;
        if (n < 1024) {
            fprintf(stderr, "eryx: --mcp-max-message must be at least 1k\n");
            return -1;
        }
        m->max_message = n;
        return 1;
    case 5: case 7: case 8: case 9: { /* the options of --http: paths and ADDR:PORT */
        const char **to[] = {[5] = &m->http, [7] = &m->http_token_file,
                             [8] = &m->http_tls_cert, [9] = &m->http_tls_key};
        *to[k] = v;
        return 1;
    }
    case 6:
        if (m->n_configs == ERYX_CLI_MAX_MCP_CONFIGS) {
            fprintf(stderr, "eryx: too many --mcp-config options (at most %d)\n",
                    ERYX_CLI_MAX_MCP_CONFIGS);
            return -1;
        }
        m->configs[m->n_configs++] = v;
        return 1;
    default:
        if (eryx_cli_parse_number(v, &n, 0) < 0 || n == 0 || n > 1024) {
            fprintf(stderr, "eryx: --max-sessions wants 1 to 1024, not '%s'\n", v);
            return -1;
        }
        m->max_sessions = (uint32_t)n;
        return 1;
    }
}

/* ---- the connection ---- */

static void set_dead(mcp_conn *c, const char *fmt, const char *arg)
{
    if (c->dead)
        return;
    c->dead = 1;
    snprintf(c->dead_msg, sizeof c->dead_msg, fmt, c->name, arg ? arg : "");
}

/* Takes the pending entry with this id out of the list (lock held). */
static pending *take(mcp_conn *c, json_int_t id)
{
    for (pending **pp = &c->pending; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            pending *p = *pp;
            *pp = p->next;
            return p;
        }
    }
    return NULL;
}

/* Completes an entry taken from the list: a call is failed, a request of
 * ours is marked done with the message (lock held for requests). */
static void fail_entry(mcp_conn *c, pending *p, int kind, const char *msg)
{
    if (p->call) {
        eryx_call_fail(p->call, kind, msg);
        free(p);
    } else {
        p->error = strdup(msg);
        p->done = 1;
        pthread_cond_broadcast(&c->cond);
    }
}

/* Fails everything in flight (lock held). */
static void fail_all(mcp_conn *c, const char *msg)
{
    pending *p = c->pending;
    c->pending = NULL;
    while (p) {
        pending *next = p->next;
        fail_entry(c, p, ERYX_CALL_FAILED, msg);
        p = next;
    }
}

/* The text of a result's content items, joined by newlines (*len bytes:
 * they may hold NULs), or NULL when out of memory; *all_text says whether
 * every item is text. */
static char *content_text(json_t *content, int *all_text, size_t *len)
{
    size_t total = 0, i;
    json_t *item;
    *all_text = 1;
    json_array_foreach(content, i, item) {
        json_t *text = json_object_get(item, "text");
        if (!json_is_string(json_object_get(item, "type")) ||
            strcmp(json_string_value(json_object_get(item, "type")), "text") != 0 ||
            !json_is_string(text)) {
            *all_text = 0;
            continue;
        }
        total += json_string_length(text) + 1;
    }
    char *out = malloc(total + 1), *o = out;
    if (!out)
        return NULL;
    json_array_foreach(content, i, item) {
        json_t *text = json_object_get(item, "text");
        if (!json_is_string(text) || !json_is_string(json_object_get(item, "type")) ||
            strcmp(json_string_value(json_object_get(item, "type")), "text") != 0)
            continue;
        if (o != out)
            *o++ = '\n';
        memcpy(o, json_string_value(text), json_string_length(text));
        o += json_string_length(text);
    }
    *o = '\0';
    *len = (size_t)(o - out);
    return out;
}

/* A tools/call result as the Python value of the call: structuredContent
 * when there is one; else the text (items joined by newlines) when every
 * content item is text; else the content list itself. */
static void complete_call(mcp_conn *c, pending *p, json_t *result, json_t *error)
{
    char msg[600];
    if (error) {
        json_t *m = json_object_get(error, "message");
        snprintf(msg, sizeof msg, "MCP server %s, tool %s: error %lld: %.400s", c->name, p->tool,
                 (long long)json_integer_value(json_object_get(error, "code")),
                 json_is_string(m) ? json_string_value(m) : "(no message)");
        fail_entry(c, p, ERYX_CALL_FAILED, msg);
        return;
    }
    json_t *content = json_object_get(result, "content");
    json_t *structured = json_object_get(result, "structuredContent");
    /* MCP types structuredContent as an object; null passes (as None). */
    const char *not_result =
        !json_is_object(result) || (content && !json_is_array(content)) ? ""
        : structured && !json_is_object(structured) && !json_is_null(structured)
            ? " (its structuredContent is not an object)"
            : NULL;
    if (not_result) {
        snprintf(msg, sizeof msg, "MCP server %s, tool %s: the answer is not a tool result%s",
                 c->name, p->tool, not_result);
        fail_entry(c, p, ERYX_CALL_FAILED, msg);
        return;
    }
    int all_text = 1;
    size_t text_len = 0;
    char *text = content ? content_text(content, &all_text, &text_len) : strdup("");
    if (!text) {
        fail_entry(c, p, ERYX_CALL_FAILED, "out of memory");
        return;
    }
    if (json_is_true(json_object_get(result, "isError"))) {
        snprintf(msg, sizeof msg, "MCP server %s, tool %s failed: %.450s", c->name, p->tool,
                 text[0] ? text : "(no message)");
        free(text);
        fail_entry(c, p, ERYX_CALL_FAILED, msg);
        return;
    }
    json_t *value;
    if (structured)
        value = json_incref(structured);
    else if (!content || json_array_size(content) == 0)
        value = json_null();
    else if (all_text)
        value = json_stringn(text, text_len);
    else
        value = json_incref(content);
    free(text);
    char *json = value ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(value);
    if (!json) {
        fail_entry(c, p, ERYX_CALL_FAILED, "the tool's result could not be converted");
        return;
    }
    eryx_call_reply(p->call, json, strlen(json));
    free(json);
    free(p);
}

/* Writes msg to the server's stdin now, queueing what the pipe does not
 * take (the I/O thread flushes it): never blocks. -1 with errno EMSGSIZE
 * (over max), ENOBUFS (the queue is full: the server does not read), EPIPE
 * (the server is gone) or ENOMEM. */
static int send_msg(mcp_conn *c, const json_t *msg, size_t max)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    if (!text) {
        errno = ENOMEM;
        return -1;
    }
    size_t n = strlen(text);
    if (max && n > max) {
        free(text);
        errno = EMSGSIZE;
        return -1;
    }
    text[n++] = '\n'; /* the NUL becomes the line's end */
    int rc = 0, err = 0;
    pthread_mutex_lock(&c->lock);
    size_t done = 0;
    if (c->dead || c->to_fd < 0) {
        rc = -1;
        err = EPIPE;
    } else if (c->out_off == c->out_len) {
        long w = jr_write_some(c->to_fd, text, n);
        if (w < 0) {
            rc = -1;
            err = EPIPE;
        } else {
            done = (size_t)w;
        }
    } else if (c->out_len - c->out_off + n > c->out_max) {
        rc = -1;
        err = ENOBUFS;
    }
    if (rc == 0 && done < n) {
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        size_t need = c->out_len + n - done;
        if (need > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 65536;
            while (cap < need)
                cap *= 2;
            char *bigger = realloc(c->out, cap);
            if (!bigger) {
                /* Part of the message may be in the pipe: the stream is
                 * broken. */
                rc = -1;
                err = ENOMEM;
                set_dead(c, "MCP server %s %s", "could not be written to (out of memory)");
            } else {
                c->out = bigger;
                c->out_cap = cap;
            }
        }
        if (rc == 0) {
            if (c->out_len == 0)
                c->out_stalled = eryx_cli_now_ms();
            memcpy(c->out + c->out_len, text + done, n - done);
            c->out_len += n - done;
            char one = 1;
            if (write(c->wake[1], &one, 1) < 0) {
                /* full: the I/O thread is awake already */
            }
        }
    }
    pthread_mutex_unlock(&c->lock);
    free(text);
    errno = err;
    return rc;
}

static void send_cancel(mcp_conn *c, json_int_t id, const char *reason)
{
    json_t *n = jr_notification("notifications/cancelled",
                                json_pack("{s:I, s:s}", "requestId", id, "reason", reason));
    if (n)
        send_msg(c, n, 0);
    json_decref(n);
}

/* A message of the server's too wide to read (its tree past JR_MAX_TREE):
 * the call it answers fails with the reason, or, when its ends do not
 * show which call that is, every call in flight does (as for a message
 * over the limit). 0 when m stands for it. */
static int refuse_wide(mcp_conn *c, const char *line, size_t len, jr_msg *m)
{
    char why[300];
    snprintf(why, sizeof why, "eryx did not read the answer: its JSON would take more than "
             "%zu bytes (4 times the %zu-byte --mcp-max-message: too many objects, arrays and "
             "values)", JR_MAX_TREE(c->max_message), c->max_message);
    if (jr_decode_unread(line, len, why, m) == 0)
        return 0;
    char msg[400];
    snprintf(msg, sizeof msg, "MCP server %s sent a message whose JSON would take more than "
             "%zu bytes to read (4 times the %zu-byte --mcp-max-message); it was dropped, and the "
             "calls in flight fail", c->name, JR_MAX_TREE(c->max_message),
             c->max_message);
    pthread_mutex_lock(&c->lock);
    fail_all(c, msg);
    pthread_mutex_unlock(&c->lock);
    return -1;
}

/* A line of the server's that eryx cannot read as JSON: a number beyond a
 * double's range (1e400), nesting deeper than jansson's 2,048, or no JSON
 * at all. When its ends show which call it answers, that call fails now
 * with the reason, instead of waiting out its callback timeout; else m
 * stays invalid and the line is skipped. */
static void refuse_unreadable(const char *line, size_t len, jr_msg *m)
{
    json_error_t err;
    json_t *v = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    json_decref(v);
    const char *reason = eryx__json_number_overflows(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL)
                             ? "a number beyond a double's range"
                             : v ? "not JSON" : err.text;
    char why[300];
    snprintf(why, sizeof why, "eryx could not read the answer: %s", reason);
    jr_msg_clear(m);
    if (jr_decode_unread(line, len, why, m) < 0)
        m->parse_error = 1;
}

static void handle_line(mcp_conn *c, const char *line, size_t len)
{
    jr_msg m;
    if (eryx__json_tree_fits(line, len, JR_MAX_TREE(c->max_message), NULL)) {
        jr_decode(line, len, &m);
        if (m.parse_error)
            refuse_unreadable(line, len, &m);
    } else if (refuse_wide(c, line, len, &m) < 0) {
        return;
    }
    switch (m.kind) {
    case JR_RESPONSE:
    case JR_ERROR_RESPONSE: {
        if (!json_is_integer(m.id))
            break;
        pthread_mutex_lock(&c->lock);
        pending *p = take(c, json_integer_value(m.id));
        if (p && !p->call) {
            if (m.error) {
                json_t *msg = json_object_get(m.error, "message");
                p->error = strdup(json_is_string(msg) ? json_string_value(msg) : "error");
            } else {
                /* A copy: the waiting thread must not share reference
                 * counts with this message, which this thread frees. */
                p->result = json_deep_copy(m.result);
            }
            p->done = 1;
            pthread_cond_broadcast(&c->cond);
            p = NULL;
        }
        pthread_mutex_unlock(&c->lock);
        if (p)
            complete_call(c, p, m.result, m.error);
        break;
    }
    case JR_REQUEST: {
        /* The server asks us: we answer ping and nothing else (we declare
         * no client capabilities). */
        json_t *reply = strcmp(m.method, "ping") == 0
                            ? jr_response(m.id, NULL)
                            : jr_error(m.id, JR_METHOD_NOT_FOUND, "method not supported by eryx");
        if (reply)
            send_msg(c, reply, 0);
        json_decref(reply);
        break;
    }
    case JR_NOTIFICATION:
        break; /* logging, progress, list_changed: nothing to do */
    default:
        if (!c->warned) {
            c->warned = 1;
            fprintf(stderr, "eryx: MCP server %s wrote a line that is not JSON-RPC 2.0 "
                            "(skipped; further ones are skipped silently)\n", c->name);
        }
        break;
    }
    jr_msg_clear(&m);
}

/* Calls whose guest stopped waiting (callback timeout, run ended) are
 * released here and cancelled at the server. The core has already given
 * the guest its outcome (the standard timeout, or nothing for an ended
 * run), so eryx_call_fail returns ERYX_NOTFOUND: it is called only because
 * it is what releases the handle, and its message is never seen. */
static void sweep(mcp_conn *c)
{
    pending *gone = NULL;
    pthread_mutex_lock(&c->lock);
    for (pending **pp = &c->pending; *pp;) {
        pending *p = *pp;
        if (p->call && !eryx_call_pending(p->call)) {
            *pp = p->next;
            p->next = gone;
            gone = p;
        } else {
            pp = &p->next;
        }
    }
    pthread_mutex_unlock(&c->lock);
    while (gone) {
        pending *next = gone->next;
        send_cancel(c, gone->id, "the caller stopped waiting (timeout)");
        (void)eryx_call_fail(gone->call, ERYX_CALL_TIMEOUT, "released");
        free(gone);
        gone = next;
    }
}

static int reaped(mcp_conn *c)
{
    pthread_mutex_lock(&c->lock);
    int r = c->reaped;
    pthread_mutex_unlock(&c->lock);
    return r;
}

static void reap(mcp_conn *c, int wait_ms, char *how, size_t how_len)
{
    int status;
    snprintf(how, how_len, "closed its output");
    for (int waited = 0;; waited += 10) {
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid) {
            pthread_mutex_lock(&c->lock);
            c->reaped = 1;
            pthread_mutex_unlock(&c->lock);
            if (WIFEXITED(status))
                snprintf(how, how_len, "exited with status %d", WEXITSTATUS(status));
            else if (WIFSIGNALED(status))
                snprintf(how, how_len, "was killed by signal %d", WTERMSIG(status));
            return;
        }
        if (r < 0 || waited >= wait_ms)
            return;
        usleep(10000);
    }
}

/* Writes what the queue holds, as far as the pipe takes it; a queue that
 * made no progress for stall_ms means a server that does not read. */
static void flush(mcp_conn *c)
{
    pthread_mutex_lock(&c->lock);
    if (c->out_off < c->out_len && !c->dead && c->to_fd >= 0) {
        long w = jr_write_some(c->to_fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w > 0) {
            c->out_off += (size_t)w;
            c->out_stalled = eryx_cli_now_ms();
            if (c->out_off == c->out_len)
                c->out_off = c->out_len = 0;
        } else if (w < 0) {
            set_dead(c, "MCP server %s %s", "cannot be written to (it exited?)");
            fail_all(c, c->dead_msg);
        } else if (eryx_cli_now_ms() - c->out_stalled > c->stall_ms) {
            set_dead(c, "MCP server %s %s", "stopped reading its input; it was stopped");
            fail_all(c, c->dead_msg);
            kill(-c->pid, SIGKILL);
        }
    }
    pthread_mutex_unlock(&c->lock);
}

static void *reader_main(void *arg)
{
    mcp_conn *c = arg;
    /* Ctrl-C belongs to the command's own signal thread (cli/signals.c), which
     * expects every other thread to block it; this one may start first. */
    sigset_t intr;
    sigemptyset(&intr);
    sigaddset(&intr, SIGINT);
    pthread_sigmask(SIG_BLOCK, &intr, NULL);
    jr_framer f;
    jr_framer_init(&f, c->max_message);
    for (;;) {
        pthread_mutex_lock(&c->lock);
        int out_fd = c->out_off < c->out_len && !c->dead ? c->to_fd : -1;
        pthread_mutex_unlock(&c->lock);
        struct pollfd pfd[3] = {{c->from_fd, POLLIN, 0},
                                {c->wake[0], POLLIN, 0},
                                {out_fd, POLLOUT, 0}};
        int r = poll(pfd, 3, 200);
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0 && pfd[1].revents) {
            char drain[64];
            while (read(c->wake[0], drain, sizeof drain) > 0) {
            }
        }
        flush(c);
        if (r > 0 && pfd[0].revents) {
            long n = jr_framer_read(&f, c->from_fd);
            if (n <= 0)
                break;
            char *line;
            size_t len;
            int k;
            while ((k = jr_framer_next(&f, &line, &len)) != JR_NONE) {
                if (k == JR_LINE) {
                    handle_line(c, line, len);
                } else {
                    char msg[200];
                    snprintf(msg, sizeof msg, "MCP server %s sent a message over the %zu-byte "
                             "limit (--mcp-max-message); it was dropped, and the calls in flight "
                             "fail", c->name, c->max_message);
                    pthread_mutex_lock(&c->lock);
                    fail_all(c, msg);
                    pthread_mutex_unlock(&c->lock);
                }
            }
        }
        sweep(c);
        pthread_mutex_lock(&c->lock);
        int stop = c->stopping;
        pthread_mutex_unlock(&c->lock);
        if (stop)
            break;
    }
    jr_framer_free(&f);
    char how[80];
    pthread_mutex_lock(&c->lock);
    int stopping = c->stopping;
    pthread_mutex_unlock(&c->lock);
    if (!stopping)
        reap(c, 300, how, sizeof how);
    else
        snprintf(how, sizeof how, "was stopped");
    pthread_mutex_lock(&c->lock);
    set_dead(c, "MCP server %s %s", how);
    fail_all(c, c->dead_msg);
    pthread_mutex_unlock(&c->lock);
    if (!stopping)
        fprintf(stderr, "eryx: %s\n", c->dead_msg);
    return NULL;
}

void eryx_cli_mcp_tool_handler(void *user_data, eryx_call *call)
{
    struct eryx_cli_mcp_tool *t = user_data;
    mcp_conn *c = t->conn;
    const char *text = eryx_call_args(call);
    int inexact;   /* an integer beyond 64 bits goes as a real (core/json_wide.h) */
    json_t *args = eryx__json_read(text, strlen(text), ERYX_CLI_JSON_FLAGS, &inexact);
    if (!json_is_object(args)) {
        json_decref(args);
        eryx_call_fail(call, ERYX_CALL_INVALID_ARGS, "the arguments are not a JSON object");
        return;
    }
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        json_decref(args);
        eryx_call_fail(call, ERYX_CALL_FAILED, "out of memory");
        return;
    }
    pthread_mutex_lock(&c->lock);
    if (c->dead) {
        char msg[sizeof c->dead_msg];
        memcpy(msg, c->dead_msg, sizeof msg);
        pthread_mutex_unlock(&c->lock);
        json_decref(args);
        free(p);
        eryx_call_fail(call, ERYX_CALL_FAILED, msg);
        return;
    }
    p->id = c->next_id++;
    p->call = call;
    p->tool = t->tool;
    p->next = c->pending;
    c->pending = p;
    json_int_t id = p->id;
    pthread_mutex_unlock(&c->lock);
    json_t *req = jr_request(id, "tools/call", json_pack("{s:s, s:o}", "name", t->tool,
                                                          "arguments", args));
    int rc = req ? send_msg(c, req, c->max_message) : -1;
    int e = req ? errno : ENOMEM;
    json_decref(req);
    if (rc == 0)
        return;
    /* Not sent: the call is ours to fail, unless the I/O thread did. */
    pthread_mutex_lock(&c->lock);
    p = take(c, id);
    pthread_mutex_unlock(&c->lock);
    if (p) {
        char msg[200];
        snprintf(msg, sizeof msg, "MCP server %s, tool %s: %s", c->name, t->tool,
                 e == EMSGSIZE ? "the arguments are larger than --mcp-max-message"
                 : e == ENOBUFS ? "the server does not read its input"
                 : e == EPIPE   ? "the server is gone"
                                : "the request could not be sent");
        eryx_call_fail(p->call, ERYX_CALL_FAILED, msg);
        free(p);
    }
}

/* A request of our own, waited for until deadline. Returns the result (a
 * new reference) or NULL with *error set (malloc'd). */
static json_t *request(mcp_conn *c, const char *method, json_t *params, uint64_t deadline,
                       char **error)
{
    pending *p = calloc(1, sizeof *p);
    *error = NULL;
    if (!p) {
        json_decref(params);
        *error = strdup("out of memory");
        return NULL;
    }
    pthread_mutex_lock(&c->lock);
    p->id = c->next_id++;
    p->next = c->pending;
    c->pending = p;
    int dead = c->dead;
    pthread_mutex_unlock(&c->lock);
    json_t *req = jr_request(p->id, method, params);
    if (dead || !req || send_msg(c, req, c->max_message) < 0) {
        pthread_mutex_lock(&c->lock);
        if (!p->done)
            take(c, p->id);
        pthread_mutex_unlock(&c->lock);
        *error = p->error ? p->error : strdup(c->dead ? c->dead_msg : "cannot write to it");
        json_decref(p->result);
        free(p);
        json_decref(req);
        return NULL;
    }
    json_decref(req);
    pthread_mutex_lock(&c->lock);
    while (!p->done) {
        uint64_t now = eryx_cli_now_ms();
        if (now >= deadline)
            break;
        uint64_t wait = deadline - now;
        struct timespec ts = eryx_cli_deadline(wait > 200 ? 200 : wait);
        pthread_cond_timedwait(&c->cond, &c->lock, &ts);
    }
    if (!p->done)
        take(c, p->id);
    pthread_mutex_unlock(&c->lock);
    json_t *result = p->result;
    if (!p->done)
        *error = strdup("no answer in time (--mcp-timeout)");
    else if (p->error)
        *error = p->error;
    free(p);
    return result;
}

/* Our environment with spec's NAME=VALUE strings in place of ours of the
 * same names: malloc'd array (the strings are not copied), or NULL. */
static char **spawn_env(char *const *add)
{
    size_t n_env = 0, n_add = 0;
    while (environ[n_env])
        n_env++;
    while (add && add[n_add])
        n_add++;
    char **env = malloc((n_env + n_add + 1) * sizeof *env);
    if (!env)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n_env; i++) {
        size_t len = strcspn(environ[i], "=");
        size_t j = 0;
        while (j < n_add && !(strncmp(add[j], environ[i], len) == 0 && add[j][len] == '='))
            j++;
        if (j == n_add)
            env[o++] = environ[i];
    }
    for (size_t j = 0; j < n_add; j++)
        env[o++] = add[j];
    env[o] = NULL;
    return env;
}

/* Starts the server of spec: a shell command, or a program found on PATH. */
static pid_t spawn(const eryx_cli_mcp_spec *spec, int *to, int *from)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]), close(in[1]);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    /* A group of its own: Ctrl-C at the terminal is eryx's to handle, and
     * stopping the server stops what it started. */
    posix_spawnattr_setpgroup(&attr, 0);
    /* SIGPIPE at its default, as from a shell: the CLI ignores it during a
     * run (cli/main.c), and an ignored signal stays ignored across exec. */
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &pipe_set);
    /* No signal blocked: the CLI blocks SIGINT, SIGTERM and SIGHUP in all
     * its threads for its signal thread (cli/signals.c), and a blocked
     * mask is inherited across exec; the server must die of our SIGTERM. */
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETSIGMASK);
    pid_t pid;
    int rc;
    if (spec->argv) {
        char **env = spawn_env(spec->env);
        rc = env ? posix_spawnp(&pid, spec->argv[0], &fa, &attr, spec->argv, env) : ENOMEM;
        free(env);
    } else {
        char *argv[] = {"sh", "-c", spec->command, NULL};
        rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(in[0]), close(out[1]);
    if (rc != 0) {
        close(in[1]), close(out[0]);
        errno = rc;
        return -1;
    }
    fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
    *to = in[1];
    *from = out[0];
    return pid;
}

static void stop_one(mcp_conn *c);

/* Starts one server and lists its tools; NULL after printing why not. */
static mcp_conn *connect_one(const eryx_cli_mcp_spec *spec, const eryx_cli_mcp *m)
{
    mcp_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    const char *name = spec->name, *command = spec->command;
    size_t wlen = strlen(name) + (spec->origin ? strlen(spec->origin) : 0) + 32;
    c->who = malloc(wlen);
    if (!c->who) {
        free(c);
        return NULL;
    }
    if (spec->origin)
        snprintf(c->who, wlen, "MCP server %s (%s)", name, spec->origin);
    else
        snprintf(c->who, wlen, "--mcp-server %s", name);
    const char *who = c->who;
    c->name = strdup(name);
    c->command = strdup(command);
    c->next_id = 1;
    c->max_message = m->max_message ? m->max_message : ERYX_MCP_DEFAULT_MAX_MESSAGE;
    c->to_fd = c->from_fd = -1;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->wake[0] = c->wake[1] = -1;
    c->stall_ms = m->callback_timeout_ms ? m->callback_timeout_ms : 10000;
    c->out_max = c->max_message * 4 + (1u << 20);
    c->tools = json_array();
    pthread_mutex_lock(&conns_lock);
    c->next = conns;
    conns = c;
    pthread_mutex_unlock(&conns_lock);
    char *error = NULL;
    json_t *res = NULL;
    uint64_t deadline = eryx_cli_now_ms() + (m->connect_timeout_ms ? m->connect_timeout_ms : 30000);
    if (pipe2(c->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "eryx: %s: %s\n", who, strerror(errno));
        return NULL;
    }
    /* Under conns_lock, so that eryx_cli_mcp_kill_all (a fatal signal)
     * either sees this server's pid or stops it from starting. */
    pthread_mutex_lock(&conns_lock);
    c->pid = conns_killed ? -1 : spawn(spec, &c->to_fd, &c->from_fd);
    pthread_mutex_unlock(&conns_lock);
    if (c->pid < 0) {
        fprintf(stderr, "eryx: %s: cannot start '%s': %s\n", who, command,
                strerror(errno));
        c->dead = 1;
        c->reaped = 1;
        return NULL;
    }
    if (pthread_create(&c->reader, NULL, reader_main, c) != 0) {
        fprintf(stderr, "eryx: %s: cannot start a thread\n", who);
        return NULL;
    }
    c->reader_started = 1;
    res = request(c, "initialize",
                  json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion", ERYX_MCP_VERSION,
                            "capabilities", "clientInfo", "name", "eryx", "version",
                            eryx_version()),
                  deadline, &error);
    json_t *version = json_object_get(res, "protocolVersion");
    if (!res || !json_is_string(version) || !eryx_cli_mcp_known_revision(json_string_value(version))) {
        fprintf(stderr, "eryx: %s: initialize failed: %s\n", who,
                error ? error
                : !json_is_string(version) ? "no protocolVersion in the answer"
                                           : "it speaks a protocol revision eryx does not");
        if (json_is_string(version) && !error)
            fprintf(stderr, "eryx: %s answered with revision %s; eryx speaks %s, %s, "
                            "2025-03-26 and 2024-11-05\n", who, json_string_value(version),
                    ERYX_MCP_VERSION, ERYX_MCP_PREVIOUS_VERSION);
        goto fail;
    }
    c->version = strdup(json_string_value(version));
    json_decref(res);
    res = NULL;
    json_t *note = jr_notification("notifications/initialized", NULL);
    int wrc = note ? send_msg(c, note, 0) : -1;
    json_decref(note);
    if (wrc < 0) {
        fprintf(stderr, "eryx: %s: cannot write to it\n", who);
        goto fail;
    }
    char *cursor = NULL;
    for (int page = 0;; page++) {
        if (page == MAX_TOOL_PAGES) {
            fprintf(stderr, "eryx: %s: more than %d pages of tools\n", who,
                    MAX_TOOL_PAGES);
            free(cursor);
            goto fail;
        }
        json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : json_object();
        free(cursor);
        cursor = NULL;
        res = request(c, "tools/list", params, deadline, &error);
        json_t *tools = json_object_get(res, "tools");
        if (!json_is_array(tools)) {
            fprintf(stderr, "eryx: %s: tools/list failed: %s\n", who,
                    error ? error : "no tools array in the answer");
            goto fail;
        }
        if (json_array_extend(c->tools, tools) < 0 ||
            json_array_size(c->tools) > MAX_TOOLS_PER_SERVER) {
            fprintf(stderr, "eryx: %s: more than %d tools\n", who,
                    MAX_TOOLS_PER_SERVER);
            goto fail;
        }
        json_t *next = json_object_get(res, "nextCursor");
        if (jr_text(next) && json_string_length(next) > 0)
            cursor = strdup(jr_text(next));
        json_decref(res);
        res = NULL;
        if (!cursor)
            break;
    }
    return c;
fail:
    free(error);
    json_decref(res);
    stop_one(c); /* now: a configured server that failed is left out */
    return NULL;
}

/* Stops one server: stdin closed, then SIGTERM, then SIGKILL to its group. */
static void stop_one(mcp_conn *c)
{
    pthread_mutex_lock(&c->lock);
    int was_stopping = c->stopping;
    c->stopping = 1;
    pthread_mutex_unlock(&c->lock);
    if (was_stopping)
        return;
    if (c->pid > 0 && !reaped(c)) {
        pthread_mutex_lock(&c->lock);
        close(c->to_fd);
        c->to_fd = -1;
        pthread_mutex_unlock(&c->lock);
        char how[80];
        reap(c, 1000, how, sizeof how);
        if (!reaped(c)) {
            kill(-c->pid, SIGTERM);
            reap(c, 1000, how, sizeof how);
        }
        if (!reaped(c)) {
            kill(-c->pid, SIGKILL);
            reap(c, 1000, how, sizeof how);
        }
    }
    if (c->reader_started)
        pthread_join(c->reader, NULL);
    c->reader_started = 0;
}

void eryx_cli_mcp_disconnect(void)
{
    pthread_mutex_lock(&conns_lock);
    mcp_conn *list = conns;
    pthread_mutex_unlock(&conns_lock);
    for (mcp_conn *c = list; c; c = c->next)
        stop_one(c);
}

void eryx_cli_mcp_kill_all(void)
{
    pthread_mutex_lock(&conns_lock);
    conns_killed = 1;
    for (mcp_conn *c = conns; c; c = c->next)
        if (c->pid > 0 && !reaped(c))
            kill(-c->pid, SIGKILL);
    pthread_mutex_unlock(&conns_lock);
}

static const char *str_or(json_t *v, const char *dflt)
{
    return json_is_string(v) ? json_string_value(v) : dflt;
}

int eryx_cli_mcp_wants_servers(const eryx_cli_mcp *m)
{
    return m->n_servers || m->discover || m->n_configs;
}

int eryx_cli_mcp_connect(const eryx_cli_mcp *m, eryx_sandbox_config *cfg)
{
    if (m->callback_timeout_ms)
        cfg->callback_timeout_ns = m->callback_timeout_ms * 1000000u;
    if (!eryx_cli_mcp_wants_servers(m))
        return 0;
    /* Kept until the process exits, as the connections that name them. */
    static eryx_cli_mcp_spec specs[ERYX_CLI_MAX_MCP_SERVERS];
    size_t n_specs = 0;
    for (size_t i = 0; i < m->n_servers; i++, n_specs++) {
        specs[i].name = (char *)m->servers[i].name;
        specs[i].command = (char *)m->servers[i].command;
    }
    eryx_cli_mcp_specs l = {specs, n_specs, ERYX_CLI_MAX_MCP_SERVERS, n_specs, stderr};
    if (eryx_cli_mcp_discover(m, &l) < 0)
        return -1;
    n_specs = l.n;
    size_t total = cfg->n_callbacks, n_started = 0;
    mcp_conn *started[ERYX_CLI_MAX_MCP_SERVERS];
    for (size_t i = 0; i < n_specs; i++) {
        mcp_conn *c = connect_one(&specs[i], m);
        if (!c && !specs[i].origin)
            return -1;
        if (!c) {
            fprintf(stderr, "eryx: MCP server %s (%s) is left out\n", specs[i].name,
                    specs[i].origin);
            continue;
        }
        started[n_started++] = c;
        total += json_array_size(c->tools);
    }
    merged = calloc(total ? total : 1, sizeof *merged);
    if (!merged)
        return -1;
    size_t n = 0;
    /* Every element of the array has the size of the first: this one's. */
    for (size_t i = 0; i < cfg->n_callbacks; i++) {
        merged[n] = cfg->callbacks[i];
        merged[n++].size = sizeof *merged;
    }
    for (size_t i = 0; i < n_started; i++) {
        mcp_conn *c = started[i];
        size_t k;
        json_t *tool;
        size_t first = n;
        json_array_foreach(c->tools, k, tool) {
            json_t *jname = json_object_get(tool, "name");
            const char *tname = str_or(jname, NULL);
            if (!tname) {
                fprintf(stderr, "eryx: %s: a tool without a name (skipped)\n", c->who);
                continue;
            }
            if (strlen(tname) != json_string_length(jname)) {
                /* Read as its part before the NUL, it was called by that
                 * name: another tool's, maybe (an audit's finding). */
                fprintf(stderr, "eryx: %s: a tool whose name holds a NUL character (skipped)\n",
                        c->who);
                continue;
            }
            struct eryx_cli_mcp_tool *t = calloc(1, sizeof *t);
            char *py = eryx_cli_py_name(tname);
            if (!t || !py)
                return -1;
            /* Two tools whose names map to the same identifier: _2, _3, ... */
            size_t plen = strlen(c->name) + strlen(py) + 16;
            t->callback = malloc(plen);
            if (!t->callback)
                return -1;
            snprintf(t->callback, plen, "mcp.%s.%s", c->name, py);
            for (int suffix = 2;; suffix++) {
                size_t j = first;
                while (j < n && strcmp(merged[j].name, t->callback) != 0)
                    j++;
                if (j == n)
                    break;
                snprintf(t->callback, plen, "mcp.%s.%s_%d", c->name, py, suffix);
            }
            free(py);
            t->conn = c;
            t->tool = strdup(tname);
            const char *desc = str_or(json_object_get(tool, "description"),
                                      str_or(json_object_get(tool, "title"), ""));
            size_t dlen = strlen(desc) + strlen(tname) + strlen(c->name) + 64;
            t->description = malloc(dlen);
            if (!t->tool || !t->description)
                return -1;
            snprintf(t->description, dlen, "%s (MCP tool '%s' of server %s)", desc, tname,
                     c->name);
            json_t *schema = json_object_get(tool, "inputSchema");
            t->schema = json_is_object(schema) ? json_dumps(schema, JSON_COMPACT) : NULL;
            t->has_output_schema = json_is_object(json_object_get(tool, "outputSchema"));
            eryx_callback *cb = &merged[n++];
            cb->size = sizeof *cb;
            cb->name = t->callback;
            cb->description = t->description;
            cb->schema = t->schema;
            cb->handler = eryx_cli_mcp_tool_handler;
            cb->user_data = t;
            cb->flags = ERYX_CALLBACK_INLINE; /* it never blocks: send_msg queues */
        }
    }
    cfg->callbacks = merged;
    cfg->n_callbacks = n;
    return 0;
}

const char *eryx_cli_mcp_tool_returns(const eryx_callback *cb)
{
    if (cb->handler != eryx_cli_mcp_tool_handler)
        return "Any";
    const struct eryx_cli_mcp_tool *t = cb->user_data;
    /* Text results are a str, mixed content a list, no content None. */
    return t->has_output_schema ? "dict" : "str | list | None";
}
