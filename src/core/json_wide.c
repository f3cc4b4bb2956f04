/* JSON integers beyond 64 bits: json_wide.h says why. */
#include "core/json_wide.h"

#include <stdlib.h>
#include <string.h>

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* The characters a JSON number token is made of. */
static int in_number(char c)
{
    return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* 1 if the token is an integer (-?[0-9]+) that strtoll, and so jansson,
 * would refuse: above 2^63 - 1, or below -2^63. */
static int int_overflows(const char *t, size_t n)
{
    int neg = n > 0 && t[0] == '-';
    const char *d = t + neg;
    size_t nd = n - (size_t)neg;
    if (nd == 0)
        return 0;
    for (size_t i = 0; i < nd; i++)
        if (!is_digit(d[i]))
            return 0;
    while (nd > 1 && d[0] == '0') {   /* not JSON, but not ours to judge */
        d++;
        nd--;
    }
    if (nd != 19)
        return nd > 19;
    return memcmp(d, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0;
}

/* The one scan of the text: counts the integer tokens to widen and, when
 * out is not NULL, writes the widened copy there (the length it returns). */
static size_t widen(const char *text, size_t len, char *out, size_t *n_wide)
{
    size_t o = 0;
    int in_string = 0, escaped = 0;
    *n_wide = 0;
    for (size_t i = 0; i < len;) {
        char c = text[i];
        if (in_string) {
            if (escaped)
                escaped = 0;
            else if (c == '\\')
                escaped = 1;
            else if (c == '"')
                in_string = 0;
            if (out)
                out[o] = c;
            o++, i++;
        } else if (c == '-' || is_digit(c)) {
            size_t j = i;
            while (j < len && in_number(text[j]))
                j++;
            if (out)
                memcpy(out + o, text + i, j - i);
            o += j - i;
            if (int_overflows(text + i, j - i)) {
                if (out)
                    memcpy(out + o, ".0", 2);
                o += 2;
                ++*n_wide;
            }
            i = j;
        } else {
            in_string = c == '"';
            if (out)
                out[o] = c;
            o++, i++;
        }
    }
    return o;
}

size_t eryx__json_wide_ints(const char *text, size_t len)
{
    size_t n;
    widen(text, len, NULL, &n);
    return n;
}

char *eryx__json_widen_ints(const char *text, size_t len, size_t *out_len, int *widened)
{
    size_t n;
    /* A widened token has at least 19 characters and gains 2. */
    char *out = malloc(len + len / 9 + 1);
    *widened = 0;
    if (!out)
        return NULL;
    *out_len = widen(text, len, out, &n);
    *widened = n > 0;
    return out;
}

json_t *eryx__json_read(const char *text, size_t len, size_t flags, int *inexact)
{
    *inexact = 0;
    json_t *v = json_loadb(text, len, flags, NULL);
    if (v)
        return v;
    /* Counted first: text that is merely not JSON costs no copy. */
    if (eryx__json_wide_ints(text, len) == 0)
        return NULL;
    size_t wlen;
    int widened;
    char *w = eryx__json_widen_ints(text, len, &wlen, &widened);
    if (w)
        v = json_loadb(w, wlen, flags, NULL);
    free(w);
    *inexact = v != NULL;
    return v;
}

int eryx__json_number_overflows(const char *text, size_t len, size_t flags)
{
    json_error_t e;
    size_t wlen = len;
    int widened = 0;
    char *w = eryx__json_widen_ints(text, len, &wlen, &widened);
    if (!w)
        return 0;
    json_t *v = json_loadb(w, wlen, flags, &e);
    free(w);
    if (v) {
        json_decref(v);
        return 0;
    }
    /* jansson's own words for a real it cannot hold. */
    return json_error_code(&e) == json_error_numeric_overflow;
}

/* ---- the size of a tree ---------------------------------------------------- */

enum { TREE_OBJECT = 232, TREE_ARRAY = 136, TREE_NUMBER = 40, TREE_LITERAL = 16,
       TREE_STRING = 88 };

static int is_letter(char c) { return c >= 'a' && c <= 'z'; }

/* By memchr: every call's arguments pass through the estimate, and a byte
 * at a time its scan of 1.4 KB of arguments took 4.2 us, a quarter of a
 * callback's round trip. */
size_t eryx__json_string_end(const char *text, size_t len, size_t i)
{
    size_t start = i;
    for (;;) {
        const char *q = memchr(text + i, '"', len - i);
        if (!q)
            return len;
        size_t at = (size_t)(q - text), run = 0;
        while (at - run > start && text[at - run - 1] == '\\')
            run++;
        if (run % 2 == 0)
            return at;
        i = at + 1;
    }
}

/* The estimate, or the first sum past stop (at most SIZE_MAX / 2: each
 * step adds less than what is left). */
static size_t tree_bytes(const char *text, size_t len, size_t stop)
{
    size_t bytes = 0;
    for (size_t i = 0; i < len && bytes <= stop;) {
        char c = text[i++];
        if (c == '"') {
            size_t start = i;
            i = eryx__json_string_end(text, len, i);
            bytes += TREE_STRING + i - start;
            i++; /* the closing quote */
        } else if (c == '{') {
            bytes += TREE_OBJECT;
        } else if (c == '[') {
            bytes += TREE_ARRAY;
        } else if (c == '-' || is_digit(c)) {
            bytes += TREE_NUMBER;
            while (i < len && in_number(text[i]))
                i++;
        } else if (is_letter(c)) {
            bytes += TREE_LITERAL;
            while (i < len && is_letter(text[i]))
                i++;
        }
    }
    return bytes;
}

size_t eryx__json_tree_bytes(const char *text, size_t len)
{
    return tree_bytes(text, len, SIZE_MAX / 2);
}

int eryx__json_tree_fits(const char *text, size_t len, size_t max, size_t *bytes)
{
    size_t b = tree_bytes(text, len, max < SIZE_MAX / 2 ? max : SIZE_MAX / 2);
    if (bytes)
        *bytes = b;
    return b <= max;
}
