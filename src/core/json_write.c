/* Compact JSON text of a jansson value: json_write.h says why. */
#include "core/json_write.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

static int grow(eryx__json_out *o, size_t n)
{
    if (o->err)
        return -1;
    if (n < o->cap - o->len)
        return 0;
    size_t cap = o->cap ? o->cap : 256;
    while (cap - o->len <= n) {
        if (cap > SIZE_MAX / 2) {
            o->err = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(o->p, cap);
    if (!p) {
        o->err = 1;
        return -1;
    }
    o->p = p;
    o->cap = cap;
    return 0;
}

void eryx__json_put(eryx__json_out *o, const char *s, size_t n)
{
    if (grow(o, n) < 0)
        return;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

char *eryx__json_reserve(eryx__json_out *o, size_t n)
{
    return grow(o, n) < 0 ? NULL : o->p + o->len;
}

void eryx__json_put_u64(eryx__json_out *o, unsigned long long v)
{
    char buf[24], *e = buf + sizeof buf, *d = e;
    do
        *--d = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    eryx__json_put(o, d, (size_t)(e - d));
}

static void put_int(eryx__json_out *o, json_int_t v)
{
    if (v < 0) {
        eryx__json_put(o, "-", 1);
        eryx__json_put_u64(o, 0ull - (unsigned long long)v);
    } else {
        eryx__json_put_u64(o, (unsigned long long)v);
    }
}

/* A real as jansson writes it: "%.17g", with ".0" when that looks like an
 * integer (so that it reads back as a real), and the exponent without a
 * '+' or leading zeros ("1e+07" is "1e7"). */
static void put_real(eryx__json_out *o, double v)
{
    char buf[40];
    int n = snprintf(buf, sizeof buf - 2, "%.17g", v);
    if (n < 0 || (size_t)n >= sizeof buf - 2) {
        o->err = 1;
        return;
    }
    size_t len = (size_t)n;
    char *e = strchr(buf, 'e');
    if (!e && !strchr(buf, '.')) {
        memcpy(buf + len, ".0", 3);
        len += 2;
    }
    if (e) {
        char *digits = e + 1 + (e[1] == '-' || e[1] == '+');
        char *keep = e + 1 + (e[1] == '-');  /* where the digits go */
        while (*digits == '0' && digits[1])
            digits++;
        size_t tail = strlen(digits);
        memmove(keep, digits, tail + 1);
        len = (size_t)(keep - buf) + tail;
    }
    eryx__json_put(o, buf, len);
}

/* A string, quoted, with jansson's escapes: the two that must be, the
 * short forms, \u00XX (upper-case hex) for the other control characters;
 * everything else as it is. Runs of plain bytes are copied at once. */
void eryx__json_put_string(eryx__json_out *o, const char *str, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0;
    eryx__json_put(o, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t len = eryx__utf8_len(s + i, n - i);
            if (!len) {
                o->err = 1;
                return;
            }
            i += len;
            continue;
        }
        eryx__json_put(o, str + run, i - run);
        char esc[6] = {'\\', 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        eryx__json_put(o, esc, elen);
        run = ++i;
    }
    eryx__json_put(o, str + run, n - run);
    eryx__json_put(o, "\"", 1);
}

static int write_value(eryx__json_out *o, const json_t *v, int depth);

static int write_object(eryx__json_out *o, const json_t *v, int depth)
{
    eryx__json_put(o, "{", 1);
    int first = 1;
    for (void *it = json_object_iter((json_t *)v); it && !o->err;
         it = json_object_iter_next((json_t *)v, it)) {
        if (!first)
            eryx__json_put(o, ",", 1);
        first = 0;
        eryx__json_put_string(o, json_object_iter_key(it), json_object_iter_key_len(it));
        eryx__json_put(o, ":", 1);
        write_value(o, json_object_iter_value(it), depth + 1);
    }
    eryx__json_put(o, "}", 1);
    return o->err ? -1 : 0;
}

static int write_array(eryx__json_out *o, const json_t *v, int depth)
{
    eryx__json_put(o, "[", 1);
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n && !o->err; i++) {
        if (i)
            eryx__json_put(o, ",", 1);
        write_value(o, json_array_get(v, i), depth + 1);
    }
    eryx__json_put(o, "]", 1);
    return o->err ? -1 : 0;
}

static int write_value(eryx__json_out *o, const json_t *v, int depth)
{
    if (!v || depth > ERYX__JSON_WRITE_MAX_DEPTH) {
        o->err = 1;
        return -1;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: return write_object(o, v, depth);
    case JSON_ARRAY: return write_array(o, v, depth);
    case JSON_STRING: eryx__json_put_string(o, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: put_int(o, json_integer_value(v)); break;
    case JSON_REAL: put_real(o, json_real_value(v)); break;
    case JSON_TRUE: eryx__json_put(o, "true", 4); break;
    case JSON_FALSE: eryx__json_put(o, "false", 5); break;
    case JSON_NULL: eryx__json_put(o, "null", 4); break;
    }
    return o->err ? -1 : 0;
}

int eryx__json_write(eryx__json_out *o, const json_t *v)
{
    return write_value(o, v, 0);
}
