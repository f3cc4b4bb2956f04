/*
 * HTTP/1.1 request heads (http.h). Strict where it costs nothing: one
 * request line of three parts, header names of token characters, no
 * obsolete line folding, one Content-Length (repeated only with the same
 * value), no NUL anywhere.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"

static int is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Copies [p, p+n) into dst of size cap; -1 if it does not fit. */
static int copy(char *dst, size_t cap, const char *p, size_t n)
{
    if (n >= cap)
        return -1;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return 0;
}

static int parse_request_line(const char *p, size_t n, http_req *r)
{
    const char *sp1 = memchr(p, ' ', n);
    if (!sp1 || sp1 == p)
        return -1;
    const char *rest = sp1 + 1;
    size_t rn = n - (size_t)(rest - p);
    const char *sp2 = memchr(rest, ' ', rn);
    if (!sp2 || sp2 == rest)
        return -1;
    const char *ver = sp2 + 1;
    size_t vn = n - (size_t)(ver - p);
    if (vn != 8 || memcmp(ver, "HTTP/1.", 7) != 0 || (ver[7] != '0' && ver[7] != '1'))
        return -1;
    r->http10 = ver[7] == '0';
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar(*q))
            return -1;
    if (copy(r->method, sizeof r->method, p, (size_t)(sp1 - p)) < 0)
        return -1;
    size_t tn = (size_t)(sp2 - rest);
    const char *query = memchr(rest, '?', tn);
    if (query)
        tn = (size_t)(query - rest);
    if (tn == 0 || rest[0] != '/')
        return -1;
    for (size_t i = 0; i < tn; i++)
        if ((unsigned char)rest[i] <= ' ' || rest[i] == 0x7f)
            return -1;
    return copy(r->path, sizeof r->path, rest, tn);
}

/* 1 if the comma-separated list v[0..n) holds token (any case). */
static int has_token(const char *v, size_t n, const char *token)
{
    size_t k = strlen(token), i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t e = j;
        while (e > i && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - i == k && strncasecmp(v + i, token, k) == 0)
            return 1;
        i = j;
    }
    return 0;
}

static int header(const char *p, size_t n, http_req *r)
{
    const char *colon = memchr(p, ':', n);
    if (!colon || colon == p)
        return -1;
    size_t nn = (size_t)(colon - p);
    for (size_t i = 0; i < nn; i++)
        if (!is_tchar(p[i]))
            return -1;
    const char *v = colon + 1, *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vn = (size_t)(end - v);
    for (size_t i = 0; i < vn; i++)
        if ((unsigned char)v[i] < ' ' && v[i] != '\t')
            return -1;
#define IS(name) (nn == sizeof name - 1 && strncasecmp(p, name, nn) == 0)
    /* A header that names one thing (RFC 9112 3.2: Host) may come once: a
     * second Host or Origin was taken, the last winning, past the checks
     * made of the first (an audit's finding). */
    static const char *const single[] = {"Host", "Origin", "Mcp-Session-Id",
                                          "MCP-Protocol-Version", "Last-Event-ID", "Authorization",
                                          "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                                          "Content-Type"};
    for (unsigned k = 0; k < sizeof single / sizeof *single; k++) {
        if (nn == strlen(single[k]) && strncasecmp(p, single[k], nn) == 0) {
            if (r->seen & (1u << k))
                return -1;
            r->seen |= 1u << k;
        }
    }
    if (IS("Host"))
        return copy(r->host, sizeof r->host, v, vn);
    if (IS("Origin")) {
        r->has_origin = 1;
        return copy(r->origin, sizeof r->origin, v, vn);
    }
    if (IS("Mcp-Session-Id")) {
        r->has_session = 1;
        return copy(r->session, sizeof r->session, v, vn);
    }
    if (IS("MCP-Protocol-Version")) {
        r->has_protocol = 1;
        return copy(r->protocol, sizeof r->protocol, v, vn);
    }
    if (IS("Last-Event-ID")) {
        r->has_last_event_id = 1;
        return copy(r->last_event_id, sizeof r->last_event_id, v, vn);
    }
    if (IS("Accept")) {
        if (copy(r->accept, sizeof r->accept, v, vn) < 0)
            strcpy(r->accept, "*/*"); /* a long list: taken as accepting anything */
        return 0;
    }
    if (IS("Authorization"))
        return copy(r->authorization, sizeof r->authorization, v, vn);
    if (IS("Sec-WebSocket-Key"))
        return copy(r->ws_key, sizeof r->ws_key, v, vn);
    if (IS("Sec-WebSocket-Version"))
        return copy(r->ws_version, sizeof r->ws_version, v, vn);
    if (IS("Upgrade")) {
        r->upgrade_websocket |= has_token(v, vn, "websocket");
        return 0;
    }
    if (IS("Connection")) {
        r->connection_upgrade |= has_token(v, vn, "upgrade");
        r->connection_close |= has_token(v, vn, "close");
        return 0;
    }
    if (IS("Content-Type"))
        return copy(r->content_type, sizeof r->content_type, v, vn);
    if (IS("Transfer-Encoding")) {
        r->chunked = 1;
        return 0;
    }
    if (IS("Content-Length")) {
        unsigned long long x = 0;
        if (vn == 0 || vn > 15)
            return -1;
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9')
                return -1;
            x = x * 10 + (unsigned)(v[i] - '0');
        }
        if (r->has_length && r->content_length != x)
            return -1;
        r->content_length = x;
        r->has_length = 1;
        return 0;
    }
#undef IS
    return 0;
}

int http_parse_head(const char *buf, size_t len, http_req *req)
{
    memset(req, 0, sizeof *req);
    size_t limit = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
    size_t pos = 0;
    int line_no = 0;
    while (pos < limit) {
        const char *nl = memchr(buf + pos, '\n', limit - pos);
        if (!nl)
            break;
        size_t end = (size_t)(nl - buf);
        size_t n = end - pos;
        if (n && buf[pos + n - 1] == '\r')
            n--;
        if (memchr(buf + pos, '\0', n))
            return -1;
        if (n == 0) {
            if (line_no == 0)
                return -1;
            return (int)(end + 1);
        }
        if (line_no == 0) {
            if (parse_request_line(buf + pos, n, req) < 0)
                return -1;
        } else {
            if (buf[pos] == ' ' || buf[pos] == '\t') /* obsolete folding */
                return -1;
            if (header(buf + pos, n, req) < 0)
                return -1;
        }
        line_no++;
        pos = end + 1;
    }
    return len >= HTTP_MAX_HEAD ? -2 : 0;
}

/* name[:port] with name one of the loopback names; the port digits only. */
static int loopback_authority(const char *s, size_t n)
{
    static const char *const names[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < 3; i++) {
        size_t k = strlen(names[i]);
        if (n < k || strncasecmp(s, names[i], k) != 0)
            continue;
        if (n == k)
            return 1;
        if (s[k] != ':' || n == k + 1 || n > k + 6)
            continue;
        size_t j = k + 1;
        while (j < n && s[j] >= '0' && s[j] <= '9')
            j++;
        if (j == n)
            return 1;
    }
    return 0;
}

int http_host_is_loopback(const char *host)
{
    return loopback_authority(host, strlen(host));
}

int http_origin_is_loopback(const char *origin)
{
    size_t n = strlen(origin);
    if (n > 7 && strncasecmp(origin, "http://", 7) == 0)
        return loopback_authority(origin + 7, n - 7);
    if (n > 8 && strncasecmp(origin, "https://", 8) == 0)
        return loopback_authority(origin + 8, n - 8);
    return 0;
}
