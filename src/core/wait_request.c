/*
 * The guest's eryx.wait requests: a strict, single-pass decoder. See
 * wait_request.h for the accepted shape and what the output holds.
 *
 * Output never outgrows input: a name is its decoded string (shorter than
 * its quoted form), arguments lose their whitespace and re-escaping a
 * string never lengthens it (an escape stays the same length or shortens,
 * and raw characters that would need one are invalid JSON). Each call
 * spends at least `"name":"",` around its name and arguments, more than
 * the two NULs that end them. So one arena of len + 1 bytes holds all;
 * every write is still checked.
 */
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "core/wait_request.h"

#define MALFORMED "malformed request"

/* Only a key longer than any we know can hit this (key() decodes keys into
 * a small buffer); the arena itself is large enough by the count above. */
static const char overflow[] = "request decoder: arena overflow";

typedef struct dec {
    const uint8_t *p, *end;
    char *w, *wend;             /* arena write position and end */
    const char *error;
    int rare_number;            /* a number jansson might read otherwise
                                   (see number()) */
} dec;

static int fail(dec *d, const char *why)
{
    if (!d->error)
        d->error = why;
    return -1;
}

static int put(dec *d, const void *src, size_t n)
{
    if ((size_t)(d->wend - d->w) < n)
        return fail(d, overflow);
    memcpy(d->w, src, n);
    d->w += n;
    return 0;
}

static int put_c(dec *d, char c)
{
    return put(d, &c, 1);
}

static void skip_ws(dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

/* The next byte after whitespace, or -1 at the end. */
static int peek(dec *d)
{
    skip_ws(d);
    return d->p < d->end ? *d->p : -1;
}

/* Takes the next byte after whitespace: -1 at the end. */
static int take(dec *d)
{
    int c = peek(d);
    if (c >= 0)
        d->p++;
    return c;
}

static int expect(dec *d, char c)
{
    if (peek(d) != (unsigned char)c)
        return fail(d, MALFORMED ": unexpected character or end");
    d->p++;
    return 0;
}

static int hex4(dec *d, uint32_t *out)
{
    uint32_t v = 0;
    if (d->end - d->p < 4)
        return fail(d, MALFORMED ": bad \\u escape");
    for (int i = 0; i < 4; i++) {
        uint8_t c = *d->p++;
        uint32_t x;
        if (c >= '0' && c <= '9')
            x = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            x = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            x = (uint32_t)(c - 'A' + 10);
        else
            return fail(d, MALFORMED ": bad \\u escape");
        v = v << 4 | x;
    }
    *out = v;
    return 0;
}

static int put_utf8(dec *d, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        b[2] = (char)(0x80 | (cp >> 6 & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    }
    return put(d, b, n);
}

/* One ASCII code point as json_dumps writes it inside a string (its
 * \u00XX in upper case, as json_write.c's eryx__json_put_string). */
static int put_escaped(dec *d, uint32_t cp)
{
    static const char hex[] = "0123456789ABCDEF";
    switch (cp) {
    case '"': return put(d, "\\\"", 2);
    case '\\': return put(d, "\\\\", 2);
    case '\b': return put(d, "\\b", 2);
    case '\f': return put(d, "\\f", 2);
    case '\n': return put(d, "\\n", 2);
    case '\r': return put(d, "\\r", 2);
    case '\t': return put(d, "\\t", 2);
    default:
        if (cp < 0x20) {
            char u[6] = {'\\', 'u', '0', '0', hex[cp >> 4], hex[cp & 15]};
            return put(d, u, 6);
        }
        return put_utf8(d, cp);
    }
}

/* What string() makes of a string: its decoded bytes (a name, a key of
 * the request), or JSON text (quoted, escaped like json_dumps) of a value
 * or of an object's key in the arguments. */
enum { STR_BYTES, STR_VALUE, STR_KEY };

static int string(dec *d, int mode)
{
    int json = mode != STR_BYTES;
    if (expect(d, '"') < 0 || (json && put_c(d, '"') < 0))
        return -1;
    for (;;) {
        if (d->p >= d->end)
            return fail(d, MALFORMED ": unterminated string");
        /* A run of plain ASCII, the usual case, is copied as it is. */
        const uint8_t *run = d->p;
        while (run < d->end && *run >= 0x20 && *run < 0x80 && *run != '"' && *run != '\\')
            run++;
        if (run > d->p) {
            if (put(d, d->p, (size_t)(run - d->p)) < 0)
                return -1;
            d->p = run;
            continue;
        }
        uint8_t c = *d->p;
        if (c == '"') {
            d->p++;
            return json ? put_c(d, '"') : 0;
        }
        if (c < 0x20)
            return fail(d, MALFORMED ": control character in a string");
        if (c >= 0x80) {
            size_t n = eryx__utf8_len(d->p, (size_t)(d->end - d->p));
            if (!n)
                return fail(d, MALFORMED ": invalid UTF-8");
            if (put(d, d->p, n) < 0)
                return -1;
            d->p += n;
            continue;
        }
        d->p++;
        uint32_t cp = c;
        if (c == '\\') {
            if (d->p >= d->end)
                return fail(d, MALFORMED ": unterminated string");
            switch (*d->p++) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (hex4(d, &cp) < 0)
                    return -1;
                if (cp >= 0xdc00 && cp <= 0xdfff)
                    return fail(d, MALFORMED ": lone low surrogate");
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    uint32_t lo;
                    if (d->end - d->p < 2 || d->p[0] != '\\' || d->p[1] != 'u')
                        return fail(d, MALFORMED ": lone high surrogate");
                    d->p += 2;
                    if (hex4(d, &lo) < 0)
                        return -1;
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return fail(d, MALFORMED ": bad surrogate pair");
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                /* A value keeps it escaped. Decoded bytes would end at it,
                 * and jansson reads no key holding it (JSON_ALLOW_NUL
                 * covers values only), so a handler could not read the
                 * arguments. */
                if (cp == 0 && mode != STR_VALUE)
                    return fail(d, MALFORMED ": \\u0000 in a name or key");
                break;
            default:
                return fail(d, MALFORMED ": bad escape");
            }
        }
        if ((json ? put_escaped(d, cp) : put_utf8(d, cp)) < 0)
            return -1;
    }
}

static int digits(dec *d)
{
    const uint8_t *start = d->p;
    while (d->p < d->end && *d->p >= '0' && *d->p <= '9')
        d->p++;
    return d->p > start ? 0 : fail(d, MALFORMED ": bad number");
}

/* A JSON number at d->p: checked, and its span returned. */
static int number(dec *d, const uint8_t **start, size_t *len)
{
    skip_ws(d);
    *start = d->p;
    if (d->p < d->end && *d->p == '-')
        d->p++;
    if (d->p < d->end && *d->p == '0')
        d->p++;
    else if (digits(d) < 0)
        return -1;
    if (d->p < d->end && *d->p == '.') {
        d->p++;
        if (digits(d) < 0)
            return -1;
    }
    if (d->p < d->end && (*d->p == 'e' || *d->p == 'E')) {
        d->p++;
        if (d->p < d->end && (*d->p == '+' || *d->p == '-'))
            d->p++;
        if (digits(d) < 0)
            return -1;
    }
    *len = (size_t)(d->p - *start);
    /* Fewer than 19 characters and at most two exponent digits: within a
     * 64-bit integer and far within a double, as jansson reads it. */
    const uint8_t *e = memchr(*start, 'e', *len);
    if (!e)
        e = memchr(*start, 'E', *len);
    if (*len >= 19 || (e && d->p - e > 3 + (e[1] == '+' || e[1] == '-')))
        d->rare_number = 1;
    return 0;
}

static int literal(dec *d, const char *word, int json)
{
    size_t n = strlen(word);
    skip_ws(d);
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        return fail(d, MALFORMED ": unexpected character");
    d->p += n;
    return json ? put(d, word, n) : 0;
}

/* Any JSON value, written compactly; iterative, nesting at most
 * ERYX__WAIT_MAX_DEPTH deep (this runs on the guest's fiber stack). */
static int value(dec *d)
{
    char stack[ERYX__WAIT_MAX_DEPTH]; /* '{' or '[' of each open container */
    int depth = 0;
    for (;;) {
        int c = peek(d);
        if (c == '{' || c == '[') {
            if (depth == ERYX__WAIT_MAX_DEPTH)
                return fail(d, MALFORMED ": arguments nested too deeply");
            d->p++;
            if (put_c(d, (char)c) < 0)
                return -1;
            int close = c == '{' ? '}' : ']';
            if (peek(d) == close) {
                d->p++;
                if (put_c(d, (char)close) < 0)
                    return -1;
            } else {
                stack[depth++] = (char)c;
                if (c == '{' && (string(d, STR_KEY) < 0 || expect(d, ':') < 0 ||
                                 put_c(d, ':') < 0))
                    return -1;
                continue;
            }
        } else if (c == '"') {
            if (string(d, STR_VALUE) < 0)
                return -1;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            const uint8_t *s;
            size_t n;
            if (number(d, &s, &n) < 0 || put(d, s, n) < 0)
                return -1;
        } else if (c == 't' || c == 'f' || c == 'n') {
            if (literal(d, c == 't' ? "true" : c == 'f' ? "false" : "null", 1) < 0)
                return -1;
        } else {
            return fail(d, MALFORMED ": unexpected character or end");
        }
        /* After a value: close containers, or go on to the next element. */
        for (;;) {
            if (depth == 0)
                return 0;
            char open = stack[depth - 1];
            int next = peek(d);
            if (next == ',') {
                d->p++;
                if (put_c(d, ',') < 0)
                    return -1;
                if (open == '{' && (string(d, STR_KEY) < 0 || expect(d, ':') < 0 ||
                                    put_c(d, ':') < 0))
                    return -1;
                break;
            }
            if (next != (open == '{' ? '}' : ']'))
                return fail(d, MALFORMED ": unexpected character or end");
            d->p++;
            if (put_c(d, (char)next) < 0)
                return -1;
            depth--;
        }
    }
}

/* An object key among the names given (at most 15 bytes each): its index,
 * or -1 with the error set. */
static int key(dec *d, const char *const *names, int n)
{
    /* As the glue writes them, keys need no decoding: matched in place. */
    if (peek(d) == '"') {
        for (int i = 0; i < n; i++) {
            size_t len = strlen(names[i]);
            if ((size_t)(d->end - d->p) > len + 1 && d->p[len + 1] == '"' &&
                memcmp(d->p + 1, names[i], len) == 0) {
                d->p += len + 2;
                return expect(d, ':') < 0 ? -1 : i;
            }
        }
    }
    char buf[16];
    char *w = d->w, *wend = d->wend;
    /* Decode into buf: point the arena writer at it for the moment. */
    d->w = buf;
    d->wend = buf + sizeof buf - 1;
    int rc = string(d, STR_BYTES);
    size_t len = (size_t)(d->w - buf);
    d->w = w;
    d->wend = wend;
    if (rc < 0) {
        if (d->error == overflow) {
            d->error = NULL; /* just a long key: not one of ours */
            return fail(d, MALFORMED ": unknown key");
        }
        return -1;
    }
    buf[len] = '\0';
    if (expect(d, ':') < 0)
        return -1;
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], buf, len) == 0)
            return i;
    return fail(d, MALFORMED ": unknown key");
}

/* The call's id: a non-negative integer below 2^63 (what jansson holds). */
static int call_id(dec *d, uint64_t *id)
{
    const uint8_t *s;
    size_t n;
    if (number(d, &s, &n) < 0)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (uint64_t)(INT64_MAX - (s[i] - '0')) / 10)
            return fail(d, MALFORMED ": a call's id is not an integer from 0 to 2^63-1");
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *id = v;
    return 0;
}

/* {"id": .., "name": .., "args": {..}}, each key once, in any order. */
static int call(dec *d, eryx__wait_call *c)
{
    static const char *const keys[] = {"id", "name", "args"};
    int seen = 0;
    if (expect(d, '{') < 0)
        return -1;
    for (;;) {
        int k = key(d, keys, 3);
        if (k < 0)
            return -1;
        if (seen & 1 << k)
            return fail(d, MALFORMED ": a key appears twice in a call");
        seen |= 1 << k;
        if (k == 0) {
            if (call_id(d, &c->id) < 0)
                return -1;
        } else if (k == 1) {
            if (peek(d) != '"')
                return fail(d, MALFORMED ": a call's name is not a string");
            c->name = d->w;
            if (string(d, STR_BYTES) < 0 || put_c(d, '\0') < 0)
                return -1;
        } else {
            if (peek(d) != '{')
                return fail(d, MALFORMED ": a call's args is not an object");
            char *args = d->w;
            const uint8_t *start = d->p;
            if (value(d) < 0 || put_c(d, '\0') < 0)
                return -1;
            c->args_size = (size_t)(d->p - start);
            c->args = c->args_size <= ERYX_MAX_CALL_ARGS ? args : NULL;
        }
        int next = take(d);
        if (next == '}')
            break;
        if (next != ',')
            return fail(d, MALFORMED ": unexpected character or end");
    }
    if (seen != 7)
        return fail(d, MALFORMED ": a call lacks its id, name or args");
    return 0;
}

static int calls(dec *d, eryx__wait_request *r)
{
    size_t cap = 1; /* r->one */
    r->calls = &r->one;
    if (expect(d, '[') < 0)
        return -1;
    if (peek(d) == ']') {
        d->p++;
        return 0;
    }
    for (;;) {
        if (r->n_calls == ERYX_MAX_WAIT_CALLS)
            return fail(d, MALFORMED ": too many calls in one request");
        if (r->n_calls == cap) {
            cap = cap == 1 ? 8 : cap * 2;
            eryx__wait_call *bigger = realloc(r->calls == &r->one ? NULL : r->calls,
                                              cap * sizeof *bigger);
            if (!bigger)
                return fail(d, "out of memory on the host");
            if (r->calls == &r->one)
                bigger[0] = r->one;
            r->calls = bigger;
        }
        eryx__wait_call *c = &r->calls[r->n_calls++];
        memset(c, 0, sizeof *c);
        if (call(d, c) < 0)
            return -1;
        int next = take(d);
        if (next == ']')
            return 0;
        if (next != ',')
            return fail(d, MALFORMED ": unexpected character or end");
    }
}

/* A JSON number's value, near enough for a timer and independent of the
 * locale (strtod reads "0.5" differently under a comma locale). */
static double number_value(const uint8_t *s, size_t n)
{
    size_t i = 0;
    int neg = 0, exp10 = 0, digits_kept = 0;
    double v = 0;
    if (i < n && s[i] == '-')
        neg = 1, i++;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (digits_kept < 19)
            v = v * 10 + (s[i] - '0'), digits_kept += v > 0;
        else
            exp10++;
    }
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (digits_kept < 19)
                v = v * 10 + (s[i] - '0'), digits_kept += v > 0, exp10--;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int eneg = 0, e = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (e < 100000)
                e = e * 10 + (s[i] - '0');
        exp10 += eneg ? -e : e;
    }
    if (v == 0)
        return 0;
    if (exp10 > 40)
        v = 1e40; /* far beyond any timer the host honours */
    else if (exp10 < -40)
        v = 0;
    for (; exp10 > 0 && exp10 <= 40; exp10--)
        v *= 10;
    for (; exp10 < 0 && exp10 >= -40; exp10++)
        v /= 10;
    return neg ? -v : v;
}

static int timeout(dec *d, eryx__wait_request *r)
{
    int c = peek(d);
    if (c == 'n')
        return literal(d, "null", 0);
    if (c != '-' && !(c >= '0' && c <= '9'))
        return fail(d, MALFORMED ": timeout is neither a number nor null");
    const uint8_t *s;
    size_t n;
    if (number(d, &s, &n) < 0)
        return -1;
    r->has_timeout = 1;
    r->timeout_s = number_value(s, n);
    return 0;
}

const char *eryx__wait_request_decode(const void *buf, size_t len, eryx__wait_request *out)
{
    static const char *const keys[] = {"calls", "timeout"};
    /* Not the inline storage: a memset of it would cost more than the
     * decoding of a small request. */
    out->calls = NULL;
    out->n_calls = 0;
    out->has_timeout = 0;
    out->timeout_s = 0;
    out->arena = NULL;
    if (len > ERYX_MAX_WAIT_REQUEST)
        return "request too large";
    if (!buf || len == 0)
        return MALFORMED;
    dec d = {buf, (const uint8_t *)buf + len, NULL, NULL, NULL, 0};
    out->arena = len < sizeof out->small ? out->small : malloc(len + 1);
    if (!out->arena)
        return "out of memory on the host";
    d.w = out->arena;
    d.wend = out->arena + len + 1;
    int seen = 0;
    if (expect(&d, '{') < 0)
        goto done;
    for (;;) {
        int k = key(&d, keys, 2);
        if (k < 0)
            goto done;
        if (seen & 1 << k) {
            fail(&d, MALFORMED ": a key appears twice");
            goto done;
        }
        seen |= 1 << k;
        if ((k == 0 ? calls(&d, out) : timeout(&d, out)) < 0)
            goto done;
        int next = take(&d);
        if (next == '}')
            break;
        if (next != ',') {
            fail(&d, MALFORMED ": unexpected character or end");
            goto done;
        }
    }
    if (!(seen & 1))
        fail(&d, MALFORMED ": no calls");
    else if (peek(&d) != -1)
        fail(&d, MALFORMED ": trailing bytes");
done:
    if (d.error)
        eryx__wait_request_clear(out);
    return d.error;
}

void eryx__wait_request_clear(eryx__wait_request *r)
{
    if (r->calls != &r->one)
        free(r->calls);
    if (r->arena != r->small)
        free(r->arena);
    r->calls = NULL;
    r->n_calls = 0;
    r->arena = NULL;
}

int eryx__json_compact(const void *buf, size_t len, char *out, size_t *out_len)
{
    dec d = {buf, (const uint8_t *)buf + len, out, out + len, NULL, 0};
    if (value(&d) < 0 || peek(&d) != -1 || d.rare_number)
        return -1;
    *out_len = (size_t)(d.w - out);
    return 0;
}
