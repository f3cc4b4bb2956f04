/*
 * JSON-RPC 2.0, newline-delimited (jsonrpc.h). The framer and the lossy
 * string copy are the only parsing done here beyond jansson; both are
 * fuzzed by tests/fuzz/fuzz_jsonrpc.c.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jsonrpc.h"
#include "core/json_wide.h"
#include "core/utf8.h"

/* ---- the framer ---- */

void jr_framer_init(jr_framer *f, size_t max)
{
    memset(f, 0, sizeof *f);
    f->max = max ? max : 1;
}

void jr_framer_free(jr_framer *f)
{
    free(f->buf);
    memset(f, 0, sizeof *f);
}

int jr_framer_feed(jr_framer *f, const char *data, size_t n)
{
    char *b = f->buf;
    if (f->skipping) {
        const char *nl = memchr(data, '\n', n);
        if (!nl)
            return 0;
        f->skipping = 0;
        n -= (size_t)(nl + 1 - data);
        data = nl + 1;
    }
    /* Drop what was handed out before making room. */
    if (f->start > 0) {
        memmove(b, b + f->start, f->len - f->start);
        f->len -= f->start;
        f->scan -= f->start;
        f->start = 0;
    }
    if (n == 0)
        return 0;
    if (f->len + n + 1 > f->cap) {
        size_t cap = f->cap ? f->cap : 4096;
        while (cap < f->len + n + 1)
            cap = cap > SIZE_MAX / 4 ? f->len + n + 1 : cap * 2;
        char *bigger = realloc(f->buf, cap);
        if (!bigger)
            return -1;
        f->buf = bigger;
        f->cap = cap;
        b = f->buf;
    }
    memcpy(b + f->len, data, n);
    f->len += n;
    /* An unterminated line already over the limit is dropped now, so that
     * a peer that never sends a newline cannot make us hold more. */
    if (!memchr(b + f->scan, '\n', f->len - f->scan) && f->len > f->max) {
        f->len = f->scan = 0;
        f->skipping = 1;
        f->pending_report = 1;
    }
    /* Keep the buffer from staying large after one big message. */
    if (f->len == 0 && f->cap > (1u << 20)) {
        free(f->buf);
        f->buf = NULL;
        f->cap = 0;
    }
    return 0;
}

int jr_framer_next(jr_framer *f, char **line, size_t *len)
{
    char *b = f->buf;
    if (f->pending_report) {
        f->pending_report = 0;
        return JR_TOO_LONG;
    }
    if (!b)
        return JR_NONE;
    for (;;) {
        char *nl = memchr(b + f->scan, '\n', f->len - f->scan);
        if (!nl) {
            f->scan = f->len;
            return JR_NONE;
        }
        size_t end = (size_t)(nl - b);
        size_t begin = f->start;
        f->start = f->scan = end + 1;
        size_t n = end - begin;
        if (n > f->max)
            return JR_TOO_LONG;
        if (n && b[begin + n - 1] == '\r')
            n--;
        if (n == 0)
            continue;
        b[begin + n] = '\0';
        *line = b + begin;
        *len = n;
        return JR_LINE;
    }
}

long jr_framer_read(jr_framer *f, int fd)
{
    char chunk[65536];
    ssize_t n;
    do
        n = read(fd, chunk, sizeof chunk);
    while (n < 0 && errno == EINTR);
    if (n > 0 && jr_framer_feed(f, chunk, (size_t)n) < 0) {
        errno = ENOMEM;
        return -1;
    }
    return (long)n;
}

/* ---- messages ---- */

void jr_msg_clear(jr_msg *m)
{
    json_decref(m->root);
    memset(m, 0, sizeof *m);
}

const char *jr_text(const json_t *v)
{
    const char *s = json_string_value(v);
    return s && strlen(s) == json_string_length(v) ? s : NULL;
}

static int valid_id(const json_t *id)
{
    return jr_text(id) || json_is_integer(id);
}

void jr_decode_bounded(const char *line, size_t len, size_t max_tree, jr_msg *out)
{
    if (eryx__json_tree_fits(line, len, max_tree, NULL)) {
        jr_decode(line, len, out);
        return;
    }
    memset(out, 0, sizeof *out);
    out->parse_error = 1;
    out->parse_why = "parse error: the message's JSON would take more than 4 times the "
                     "largest message to read (too many objects, arrays and values)";
}

int jr_decode_unread(const char *text, size_t len, const char *why, jr_msg *out)
{
    enum { ENDS = 256 };
    size_t n = len < ENDS ? len : ENDS;
    json_t *id = jr_id_of_ends(text, n, text + len - n, n);
    memset(out, 0, sizeof *out);
    out->root = id ? jr_error(id, -32000, why) : NULL;
    json_decref(id);
    if (!out->root)
        return -1;
    out->kind = JR_ERROR_RESPONSE;
    out->id = json_object_get(out->root, "id");
    out->error = json_object_get(out->root, "error");
    return 0;
}

void jr_decode(const char *line, size_t len, jr_msg *out)
{
    memset(out, 0, sizeof *out);
    int inexact;   /* an integer beyond 64 bits is read as a real (core/json_wide.h) */
    /* Any JSON value: one that is valid but no object ("x", 5) is an
     * invalid request (-32600), not a parse error. Strings may hold NUL
     * characters (a tool's text does): without JSON_ALLOW_NUL such a
     * message was a parse error, and a response holding one was lost. */
    json_t *root = eryx__json_read(line, len,
                                   JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
                                   &inexact);
    out->root = root;
    if (!root) {
        out->parse_error = 1;
        out->parse_why = "parse error: not JSON";
        return;
    }
    if (json_is_array(root)) {
        out->kind = JR_BATCH;
        return;
    }
    if (!json_is_object(root))
        return;
    json_t *version = json_object_get(root, "jsonrpc");
    if (!json_is_string(version) || strcmp(json_string_value(version), "2.0") != 0)
        return;
    json_t *method = json_object_get(root, "method");
    json_t *id = json_object_get(root, "id");
    json_t *params = json_object_get(root, "params");
    if (method) {
        /* A request that is invalid but for a good id is answered with
         * that id (the peer waits for it), and says why. */
        if (id && valid_id(id))
            out->id = id;
        if (!jr_text(method)) {
            out->parse_why = "a request's method must be a string";
            return;
        }
        if (params && !json_is_object(params) && !json_is_array(params)) {
            out->parse_why = "a request's params must be an object or an array";
            return;
        }
        if (id && !valid_id(id))
            return;
        out->method = json_string_value(method);
        out->params = params;
        out->id = id;
        out->kind = id ? JR_REQUEST : JR_NOTIFICATION;
        return;
    }
    json_t *result = json_object_get(root, "result");
    json_t *error = json_object_get(root, "error");
    if (!id || (!valid_id(id) && !json_is_null(id)) || (result && error) || (!result && !error))
        return;
    if (error && !json_is_object(error))
        return;
    out->id = id;
    out->result = result;
    out->error = error;
    out->kind = result ? JR_RESPONSE : JR_ERROR_RESPONSE;
}

/* ---- writing ---- */

/* A peer that went away must not kill us with SIGPIPE: the write happens
 * with SIGPIPE blocked on this thread and a raised one is taken back (the
 * process-wide disposition, which child processes inherit, stays). */
static int write_all(int fd, const char *p, size_t n, int (*stop)(void *), void *ud)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    int rc = 0, err = 0;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (stop && stop(ud)) {
                rc = -1;
                err = ETIMEDOUT;
                break;
            }
            struct pollfd pfd = {fd, POLLOUT, 0};
            poll(&pfd, 1, stop ? 100 : -1);
            continue;
        }
        if (w <= 0) {
            rc = -1;
            err = w < 0 ? errno : EPIPE;
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    sigset_t pending;
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return rc;
}

int jr_write_ex(int fd, pthread_mutex_t *lock, const json_t *msg, size_t max,
                int (*stop)(void *ud), void *ud)
{
    /* Compact output escapes control characters inside strings, so the
     * message holds no newline of its own. */
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
    text[n] = '\n'; /* the NUL becomes the line's end */
    if (lock)
        pthread_mutex_lock(lock);
    int rc = write_all(fd, text, n + 1, stop, ud);
    int err = errno;
    if (lock)
        pthread_mutex_unlock(lock);
    free(text);
    errno = err;
    return rc;
}

long jr_write_some(int fd, const char *p, size_t n)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t w;
    do
        w = write(fd, p, n);
    while (w < 0 && errno == EINTR);
    int err = errno;
    sigset_t pending;
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (w < 0 && (err == EAGAIN || err == EWOULDBLOCK))
        return 0;
    errno = err;
    return w < 0 ? -1 : (long)w;
}

int jr_write_raw(int fd, const char *p, size_t n)
{
    return write_all(fd, p, n, NULL, NULL);
}

int jr_write(int fd, pthread_mutex_t *lock, const json_t *msg)
{
    return jr_write_ex(fd, lock, msg, 0, NULL, NULL);
}

json_t *jr_response(json_t *id, json_t *result_stolen)
{
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "result",
                     result_stolen ? result_stolen : json_object());
}

json_t *jr_error(json_t *id, int code, const char *message)
{
    return json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                     "error", "code", code, "message", message);
}

json_t *jr_request(json_int_t id, const char *method, json_t *params_stolen)
{
    return json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method", method,
                     "params", params_stolen ? params_stolen : json_object());
}

json_t *jr_notification(const char *method, json_t *params_stolen)
{
    return json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params",
                     params_stolen ? params_stolen : json_object());
}

json_t *jr_string_lossy(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    /* The common case: valid already. */
    while (i < n) {
        size_t k = eryx__utf8_len(p + i, n - i);
        if (!k)
            break;
        i += k;
    }
    if (i == n)
        return json_stringn(s, n);
    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    char *out = malloc(n * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (i = 0; i < n;) {
        size_t k = eryx__utf8_len(p + i, n - i);
        if (k) {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    json_t *str = json_stringn(out, o);
    free(out);
    return str;
}

/* ---- the id of a message seen only at its ends ---- */

/* 1 if c is one of set's characters (never NUL, which strchr would find). */
static int one_of(char c, const char *set)
{
    return c && strchr(set, c);
}

static size_t skip_ws(const char *p, size_t i, size_t n)
{
    while (i < n && one_of(p[i], " \t\n\r"))
        i++;
    return i;
}

/* The end of the JSON string opening at p[i] ('"'), past its closing
 * quote; 0 when it does not end within n. */
static size_t string_end(const char *p, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == '"')
            return i + 1;
    }
    return 0;
}

/* The end of the scalar (number, true, false, null) at p[i]. */
static size_t scalar_end(const char *p, size_t i, size_t n)
{
    while (i < n && one_of(p[i], "0123456789+-.eEtrufalsn"))
        i++;
    return i;
}

/* An id's text p[0..n): a string or an integer, else NULL. */
static json_t *id_value(const char *p, size_t n)
{
    json_t *v = json_loadb(p, n, JSON_DECODE_ANY, NULL);
    if (!json_is_string(v) && !json_is_integer(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static json_t *id_of_head(const char *p, size_t n)
{
    size_t i = skip_ws(p, 0, n);
    if (i >= n || p[i] != '{')
        return NULL;
    for (i++;;) {
        i = skip_ws(p, i, n);
        if (i >= n || p[i] != '"')
            return NULL;
        size_t key = i, key_end = string_end(p, i, n);
        if (!key_end)
            return NULL;
        i = skip_ws(p, key_end, n);
        if (i >= n || p[i] != ':')
            return NULL;
        i = skip_ws(p, i + 1, n);
        if (i >= n || p[i] == '{' || p[i] == '[')
            return NULL; /* a nested value: what follows is out of reach */
        size_t v = i, v_end = p[i] == '"' ? string_end(p, i, n) : scalar_end(p, i, n);
        if (!v_end || v_end == v)
            return NULL;
        i = skip_ws(p, v_end, n);
        if (i >= n || (p[i] != ',' && p[i] != '}'))
            return NULL; /* the value may go on past the head */
        if (key_end - key == 4 && memcmp(p + key, "\"id\"", 4) == 0)
            return id_value(p + v, v_end - v);
        if (p[i] == '}')
            return NULL;
        i++;
    }
}

static size_t skip_ws_back(const char *p, size_t i)
{
    while (i > 0 && one_of(p[i - 1], " \t\n\r"))
        i--;
    return i;
}

/* The last member before the final brace is the top-level object's own:
 * that brace closes the message. */
static json_t *id_of_tail(const char *p, size_t n)
{
    size_t i = skip_ws_back(p, n);
    if (i == 0 || p[i - 1] != '}')
        return NULL;
    size_t v_end = skip_ws_back(p, i - 1), v = v_end;
    if (v == 0)
        return NULL;
    if (p[v - 1] == '"') { /* back to the opening quote: one not escaped */
        for (v--; v > 0; v--) {
            if (p[v - 1] != '"')
                continue;
            size_t slashes = 0;
            while (v - 1 > slashes && p[v - 2 - slashes] == '\\')
                slashes++;
            if (slashes % 2 == 0)
                break;
        }
        if (v == 0)
            return NULL;
        v--;
    } else {
        while (v > 0 && one_of(p[v - 1], "0123456789+-.eE"))
            v--;
    }
    i = skip_ws_back(p, v);
    if (i == 0 || p[i - 1] != ':')
        return NULL;
    i = skip_ws_back(p, i - 1);
    if (i < 4 || memcmp(p + i - 4, "\"id\"", 4) != 0)
        return NULL;
    i = skip_ws_back(p, i - 4);
    if (i == 0 || (p[i - 1] != ',' && p[i - 1] != '{'))
        return NULL;
    return id_value(p + v, v_end - v);
}

json_t *jr_id_of_ends(const char *head, size_t head_len, const char *tail, size_t tail_len)
{
    json_t *id = head_len ? id_of_head(head, head_len) : NULL;
    return id ? id : tail_len ? id_of_tail(tail, tail_len) : NULL;
}
