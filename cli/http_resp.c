/*
 * An HTTP/1.1 response read as it arrives (http_resp.h): a state machine
 * over the head, the body's framing (length, chunks, to the end) and its
 * content (one JSON message, or server-sent events).
 */
#include "http_resp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { S_HEAD, S_BODY, S_TO_END, S_CHUNK_SIZE, S_CHUNK_DATA, S_CHUNK_CRLF, S_TRAILER, S_DONE,
       S_FAILED };

/* What a line of the framing (a chunk's size, a trailer) may hold. */
#define MAX_FRAMING_LINE 256
/* A line of the event stream longer than a message by this much cannot be
 * part of one. */
#define SSE_LINE_SLACK 64

static int fail(http_resp *r, const char *why)
{
    snprintf(r->error, sizeof r->error, "%s", why);
    r->state = S_FAILED;
    return -1;
}

/* Appends n bytes to a growing NUL-terminated buffer; -1 when out of
 * memory. */
static int append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*cap - *len <= n) {
        size_t c = *cap ? *cap : 256;
        while (c - *len <= n)
            c *= 2;
        char *b = realloc(*buf, c);
        if (!b)
            return -1;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

void http_resp_init(http_resp *r, size_t max)
{
    memset(r, 0, sizeof *r);
    r->max = max;
    r->retry_ms = -1;
}

void http_resp_clear(http_resp *r)
{
    free(r->text);
    free(r->data);
    http_resp_init(r, r->max);
}

/* ---- the head --------------------------------------------------------------- */

/* The value of header line `line` (NUL-terminated) if its name is name,
 * spaces trimmed, else NULL. */
static char *header_value(char *line, const char *name)
{
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    char *v = line + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t len = strlen(v);
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        v[--len] = '\0';
    return v;
}

/* "timeout=N" of a Keep-Alive value (a list of name=value parameters):
 * the server's idle timeout, for the client to reuse a connection only
 * well before it. A malformed value is no hint (it is advisory). */
static void keep_alive_hint(http_resp *r, const char *v)
{
    for (const char *t = v; *t; t++) {
        if (strncasecmp(t, "timeout=", 8) != 0 || (t != v && t[-1] != ' ' && t[-1] != ','))
            continue;
        unsigned long n = 0;
        const char *d = t + 8;
        for (; *d >= '0' && *d <= '9'; d++)
            n = n > 3600 ? n : n * 10 + (unsigned)(*d - '0');
        if (d > t + 8 && (*d == '\0' || *d == ',' || *d == ' ')) {
            r->has_keep_alive = 1;
            r->keep_alive_s = n > 3600 ? 3600 : (unsigned)n;
        }
        return;
    }
}

static int parse_header(http_resp *r, char *line)
{
    char *v;
    if ((v = header_value(line, "content-type"))) {
        r->sse = strncasecmp(v, "text/event-stream", 17) == 0;
        r->json = strncasecmp(v, "application/json", 16) == 0;
    } else if ((v = header_value(line, "content-length"))) {
        unsigned long long n = 0;
        if (!*v)
            return fail(r, "a malformed Content-Length");
        for (; *v; v++) {
            if (*v < '0' || *v > '9' || n > (UINT64_MAX - 9) / 10)
                return fail(r, "a malformed Content-Length");
            n = n * 10 + (unsigned)(*v - '0');
        }
        if (r->has_length && n != r->length)
            return fail(r, "two different Content-Lengths");
        r->has_length = 1;
        r->length = n;
    } else if ((v = header_value(line, "transfer-encoding"))) {
        size_t len = strlen(v);
        if (len < 7 || strcasecmp(v + len - 7, "chunked") != 0)
            return fail(r, "a Transfer-Encoding other than chunked");
        r->chunked = 1;
    } else if ((v = header_value(line, "connection"))) {
        for (const char *t = v; *t; t++) /* a list of tokens: close among them */
            if (strncasecmp(t, "close", 5) == 0 && (t == v || t[-1] == ' ' || t[-1] == ',') &&
                (t[5] == '\0' || t[5] == ',' || t[5] == ' '))
                r->conn_close = 1;
    } else if ((v = header_value(line, "keep-alive"))) {
        keep_alive_hint(r, v);
    } else if ((v = header_value(line, "mcp-session-id"))) {
        size_t len = strlen(v);
        if (len == 0 || len >= sizeof r->session)
            return fail(r, "an Mcp-Session-Id that is empty or too long");
        for (size_t i = 0; i < len; i++)
            if (v[i] < 0x21 || v[i] > 0x7E) /* visible ASCII, as MCP requires */
                return fail(r, "an Mcp-Session-Id with characters other than visible ASCII");
        memcpy(r->session, v, len + 1);
    }
    return 0;
}

/* The head in r->head (its blank line included) read: status, headers,
 * and how the body is framed. */
static int parse_head(http_resp *r)
{
    char *p = r->head;
    if (strncmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
        p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        (p[12] != ' ' && p[12] != '\r' && p[12] != '\n'))
        return fail(r, "not an HTTP/1.x response");
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    r->http11 = p[7] == '1';
    r->sse = r->json = r->chunked = r->has_length = r->conn_close = r->has_keep_alive = 0;
    r->keep_alive_s = 0;
    char *line = strchr(p, '\n') + 1;
    while (*line && *line != '\r' && *line != '\n') {
        char *end = strchr(line, '\n');
        char *next = end + 1;
        if (end > line && end[-1] == '\r')
            end--;
        *end = '\0';
        if (parse_header(r, line) < 0)
            return -1;
        line = next;
    }
    if (r->status >= 100 && r->status < 200) /* 100 Continue: the real head follows */
        return 0;
    if (r->status == 204 || r->status == 304)
        r->state = S_DONE;
    else if (r->chunked)
        r->state = S_CHUNK_SIZE;
    else if (r->has_length)
        r->state = r->length ? (r->left = r->length, S_BODY) : S_DONE;
    else
        r->state = S_TO_END;
    r->to_end = r->state == S_TO_END;
    return 0;
}

/* Takes bytes of the head; the number taken (the rest is the body's). */
static long feed_head(http_resp *r, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (r->head_len == HTTP_MAX_HEAD)
            return fail(r, "a response head over 16 KiB");
        char c = p[i++];
        if (c == '\0')
            return fail(r, "a NUL in the response head");
        r->head[r->head_len++] = c;
        r->head[r->head_len] = '\0';
        size_t k = r->head_len;
        if (c == '\n' && ((k >= 2 && r->head[k - 2] == '\n') ||
                          (k >= 3 && r->head[k - 2] == '\r' && r->head[k - 3] == '\n'))) {
            if (parse_head(r) < 0)
                return -1;
            r->head_len = 0;
            if (r->state != S_HEAD)
                break;
        }
    }
    return (long)i;
}

/* ---- the content -------------------------------------------------------------- */

static void deliver(http_resp *r, const char *text, size_t len, http_resp_message_fn fn,
                    void *ud)
{
    if (len > r->max)
        r->dropped++;
    else if (fn)
        fn(ud, text, len);
}

/* An id field: the SSE rules ignore one holding a NUL; one that cannot
 * go back in a header is kept as "", no id to resume from (resuming from
 * an earlier one would deliver messages twice). */
static void sse_id(http_resp *r, const char *v, size_t vlen)
{
    if (memchr(v, '\0', vlen))
        return;
    int ok = vlen < sizeof r->id_buf;
    for (size_t i = 0; ok && i < vlen; i++)
        ok = (unsigned char)v[i] >= 0x20 && v[i] != 0x7f;
    r->id_seen = 1;
    memcpy(r->id_buf, ok ? v : "", ok ? vlen : 0);
    r->id_buf[ok ? vlen : 0] = '\0';
}

/* A retry field: milliseconds, in ASCII digits only (else ignored);
 * capped at a day. */
static void sse_retry(http_resp *r, const char *v, size_t vlen)
{
    long ms = 0;
    for (size_t i = 0; i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9')
            return;
        if (ms < 86400000L)
            ms = ms * 10 + (v[i] - '0');
    }
    if (vlen)
        r->retry_ms = ms < 86400000L ? ms : 86400000L;
}

/* ---- the ends of an event dropped for its size ---- */

/* Adds n bytes of the dropped event's data (its lines joined by '\n') to
 * its head, while that is not full, and to its tail, the last bytes. */
static void drop_add(http_resp *r, const char *p, size_t n)
{
    if (n == 0) /* (p may be a buffer not yet made) */
        return;
    size_t h = HTTP_DROP_KEEP - r->drop_head_len;
    memcpy(r->drop_head + r->drop_head_len, p, n < h ? n : h);
    r->drop_head_len += n < h ? n : h;
    if (n >= HTTP_DROP_KEEP) {
        memcpy(r->drop_tail, p + n - HTTP_DROP_KEEP, HTTP_DROP_KEEP);
        r->drop_tail_len = HTTP_DROP_KEEP;
        return;
    }
    size_t keep = r->drop_tail_len < HTTP_DROP_KEEP - n ? r->drop_tail_len : HTTP_DROP_KEEP - n;
    memmove(r->drop_tail, r->drop_tail + r->drop_tail_len - keep, keep);
    memcpy(r->drop_tail + keep, p, n);
    r->drop_tail_len = keep + n;
}

/* The current event turns out too large: its data so far (lines each
 * ended by '\n', as the lines to come will follow) starts its ends; a
 * later line of it adds a '\n' first. */
static void drop_begin(http_resp *r)
{
    if (r->drop_started) {
        drop_add(r, "\n", 1);
        return;
    }
    r->drop_started = 1;
    r->drop_head_len = r->drop_tail_len = 0;
    if (r->data_len && r->data_len <= r->max + 1)
        drop_add(r, r->data, r->data_len);
}

/* A line too long to hold starts: its first bytes are text[0..text_len)
 * then p[0..n). A data line's value goes to the dropped event's ends
 * (the rest of it as it comes, in sse_feed). */
static void drop_line_start(http_resp *r, const char *p, size_t n)
{
    char start[6];
    size_t have = 0;
    for (size_t i = 0; i < r->text_len && have < sizeof start; i++)
        start[have++] = r->text[i];
    for (size_t i = 0; i < n && have < sizeof start; i++)
        start[have++] = p[i];
    r->drop_line = have >= 5 && memcmp(start, "data:", 5) == 0;
    if (!r->drop_line)
        return;
    size_t skip = have == 6 && start[5] == ' ' ? 6 : 5; /* "data:", and a space */
    drop_begin(r);
    size_t from_text = skip < r->text_len ? skip : r->text_len;
    drop_add(r, r->text + from_text, r->text_len - from_text);
    size_t from_p = skip > r->text_len ? skip - r->text_len : 0;
    if (from_p < n)
        drop_add(r, p + from_p, n - from_p);
}

/* One line of the event stream, in r->text: a field of the event being
 * read, or the blank line that ends it. */
static int sse_line(http_resp *r, http_resp_message_fn fn, void *ud)
{
    char *line = r->text;
    size_t len = r->text_len;
    if (len == 0) {
        /* Its last '\n' is not data; an event whose data is empty is not
         * one (the SSE rule: servers send such events to mark a point to
         * resume from). Over max, data may not hold the bytes (data_len
         * only marks it): deliver counts it dropped unread. */
        if (r->data_len > 1 && r->data_len - 1 <= r->max)
            r->data[r->data_len - 1] = '\0'; /* the last '\n' */
        if (r->id_seen) { /* before fn: it may read it */
            memcpy(r->last_id, r->id_buf, sizeof r->last_id);
            r->has_last_id = 1;
        }
        if (r->data_len > 1)
            deliver(r, r->data, r->data_len - 1, fn, ud);
        if (r->data_len > r->max + 1 && r->drop_fn)
            r->drop_fn(ud, r->drop_head, r->drop_head_len, r->drop_tail, r->drop_tail_len);
        r->data_len = 0;
        r->event[0] = '\0';
        r->drop_started = 0;
        r->drop_head_len = r->drop_tail_len = 0;
        return 0;
    }
    if (line[0] == ':') /* a comment */
        return 0;
    char *colon = memchr(line, ':', len);
    size_t name = colon ? (size_t)(colon - line) : len;
    const char *v = colon ? colon + 1 : line + len;
    if (*v == ' ')
        v++;
    size_t vlen = (size_t)(line + len - v);
    if (name == 5 && memcmp(line, "event", 5) == 0) {
        int fits = vlen < sizeof r->event && !memchr(v, '\0', vlen);
        memcpy(r->event, fits ? v : "?", fits ? vlen : 1);
        r->event[fits ? vlen : 1] = '\0';
        return 0;
    }
    if (name == 2 && memcmp(line, "id", 2) == 0) {
        sse_id(r, v, vlen);
        return 0;
    }
    if (name == 5 && memcmp(line, "retry", 5) == 0) {
        sse_retry(r, v, vlen);
        return 0;
    }
    if (name != 4 || memcmp(line, "data", 4) != 0)
        return 0;
    if (r->data_len + vlen + 1 > r->max + 1) {
        drop_begin(r);
        drop_add(r, v, vlen);
        r->data_len = r->max + 2; /* too large: delivered as dropped */
        return 0;
    }
    if (append(&r->data, &r->data_len, &r->data_cap, v, vlen) < 0 ||
        append(&r->data, &r->data_len, &r->data_cap, "\n", 1) < 0)
        return fail(r, "out of memory");
    return 0;
}

static int sse_feed(http_resp *r, const char *p, size_t n, http_resp_message_fn fn, void *ud)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (r->skipping) {
            /* an over-long line: dropped up to its end */
            if (r->drop_line)
                drop_add(r, p, take);
        } else if (r->text_len + take > r->max + SSE_LINE_SLACK) {
            r->skipping = 1;
            drop_line_start(r, p, take);
            r->text_len = 0;
            if (r->data_len <= r->max + 1) /* the event it belongs to goes too */
                r->data_len = r->max + 2;
        } else if (append(&r->text, &r->text_len, &r->text_cap, p, take) < 0) {
            return fail(r, "out of memory");
        }
        if (!nl)
            return 0;
        if (r->skipping) {
            r->skipping = 0;
            if (r->drop_line && r->drop_tail_len && r->drop_tail[r->drop_tail_len - 1] == '\r')
                r->drop_tail_len--; /* the line ended with CRLF */
            r->drop_line = 0;
        } else {
            if (r->text_len && r->text[r->text_len - 1] == '\r')
                r->text[--r->text_len] = '\0';
            if (sse_line(r, fn, ud) < 0)
                return -1;
        }
        r->text_len = 0;
        p += take + 1;
        n -= take + 1;
    }
    return 0;
}

/* Body bytes, through whatever framing. */
static int content(http_resp *r, const char *p, size_t n, http_resp_message_fn fn, void *ud)
{
    if (r->sse)
        return sse_feed(r, p, n, fn, ud);
    if (r->skipping || r->text_len + n > r->max) {
        r->skipping = 1;
        return 0;
    }
    return append(&r->text, &r->text_len, &r->text_cap, p, n) < 0 ? fail(r, "out of memory")
                                                                   : 0;
}

/* The body ended: what is left of it is a message. */
static int content_end(http_resp *r, http_resp_message_fn fn, void *ud)
{
    r->state = S_DONE;
    if (r->sse) {
        if (!r->skipping && r->text_len) { /* a last line without its newline */
            if (sse_line(r, fn, ud) < 0)
                return -1;
            r->text_len = 0;
        }
        r->text_len = 0;
        return sse_line(r, fn, ud) < 0 ? -1 : 1; /* an event without its blank line */
    }
    if (r->skipping)
        r->dropped++;
    else if (r->text_len && fn)
        fn(ud, r->text, r->text_len);
    return 1;
}

/* ---- the framing ---------------------------------------------------------------- */

/* A line of the chunked framing, kept in r->head (free once the head is
 * read); 1 when r->head holds a whole line (its "\r\n" cut), 0 when more
 * is needed; *used: the bytes of p taken. */
static int framing_line(http_resp *r, const char *p, size_t n, size_t *used)
{
    const char *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) + 1 : n;
    *used = take;
    if (r->head_len + take > MAX_FRAMING_LINE)
        return fail(r, "a chunk size or trailer line over 256 bytes");
    memcpy(r->head + r->head_len, p, take);
    r->head_len += take;
    if (!nl)
        return 0;
    size_t len = r->head_len - 1;
    if (len && r->head[len - 1] == '\r')
        len--;
    r->head[len] = '\0';
    r->head_len = 0;
    return 1;
}

static int chunk_size(http_resp *r)
{
    unsigned long long size = 0;
    const char *s = r->head;
    int digits = 0;
    for (; *s && *s != ';' && *s != ' ' && *s != '\t'; s++, digits++) {
        int d = *s >= '0' && *s <= '9' ? *s - '0'
                : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
                : *s >= 'A' && *s <= 'F' ? *s - 'A' + 10
                                         : -1;
        if (d < 0 || digits == 15)
            return fail(r, "a malformed chunk size");
        size = size * 16 + (unsigned)d;
    }
    if (!digits)
        return fail(r, "a malformed chunk size");
    r->left = size;
    r->state = size ? S_CHUNK_DATA : S_TRAILER;
    return 0;
}

int http_resp_feed(http_resp *r, const char *p, size_t n, http_resp_message_fn fn, void *ud)
{
    r->started |= n > 0;
    while (r->state != S_DONE) {
        if (r->state == S_FAILED)
            return -1;
        if (n == 0)
            return 0;
        size_t used = 0;
        int line;
        switch (r->state) {
        case S_HEAD: {
            long k = feed_head(r, p, n);
            if (k < 0)
                return -1;
            used = (size_t)k;
            break;
        }
        case S_BODY:
        case S_CHUNK_DATA:
            used = n < r->left ? n : (size_t)r->left;
            if (content(r, p, used, fn, ud) < 0)
                return -1;
            r->left -= used;
            if (r->left == 0) {
                if (r->state == S_CHUNK_DATA)
                    r->state = S_CHUNK_CRLF;
                else if (content_end(r, fn, ud) < 0)
                    return -1;
            }
            break;
        case S_TO_END:
            used = n;
            if (content(r, p, n, fn, ud) < 0)
                return -1;
            break;
        case S_CHUNK_SIZE:
        case S_CHUNK_CRLF:
        case S_TRAILER:
            if ((line = framing_line(r, p, n, &used)) < 0)
                return -1;
            if (line && r->state == S_CHUNK_SIZE) {
                if (chunk_size(r) < 0)
                    return -1;
            } else if (line && r->state == S_CHUNK_CRLF) {
                if (r->head[0])
                    return fail(r, "chunk data longer than its size");
                r->state = S_CHUNK_SIZE;
            } else if (line && !r->head[0]) { /* the blank line after the trailers */
                if (content_end(r, fn, ud) < 0)
                    return -1;
            }
            break;
        default:
            return fail(r, "internal: a reader in no state");
        }
        p += used;
        n -= used;
    }
    if (n)
        r->surplus = 1;
    return 1;
}

int http_resp_started(const http_resp *r)
{
    return r->started;
}

int http_resp_reusable(const http_resp *r)
{
    return r->state == S_DONE && r->http11 && !r->conn_close && !r->to_end && !r->surplus;
}

int http_resp_eof(http_resp *r, http_resp_message_fn fn, void *ud)
{
    if (r->state == S_DONE)
        return 1;
    if (r->state == S_TO_END)
        return content_end(r, fn, ud) < 0 ? -1 : 1;
    if (r->state != S_FAILED)
        fail(r, r->state == S_HEAD ? "the connection ended before a response"
                                   : "the connection ended in the middle of the response");
    return -1;
}
