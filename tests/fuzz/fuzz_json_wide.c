/*
 * JSON text from the guest and from peers, read with integers beyond 64
 * bits widened to reals (src/core/json_wide.c): callbacks' replies, a
 * run's `result`, a call's arguments, the messages of MCP peers and of the
 * service's clients.
 * Properties beyond "no crash, no leak":
 *   - the widened copy is at most len + len / 9 + 1 bytes, and equal to
 *     the input when nothing was widened;
 *   - widening is idempotent: the copy widens to itself, and the count
 *     without a copy says whether there was anything to widen;
 *   - text jansson reads as it is is never widened, and the reader gives
 *     the same value, exact;
 *   - a value read inexact is one jansson could not read as it was;
 *   - the guest's record of a reply holds the value when it is exact, the
 *     text itself when not, nothing when it is not JSON;
 *   - the record written straight as text (eryx__call_ok_text), when it is,
 *     is compact and reads as that record: only for an exact value;
 *   - the estimate of the tree (eryx__json_tree_bytes) is at least half
 *     what jansson takes at its peak to read the text (counted through
 *     its allocation hooks), and eryx__json_tree_fits agrees with it;
 *   - a string ends (eryx__json_string_end, by memchr) where a scan a byte
 *     at a time ends it, from every quote of the text.
 */
#include <jansson.h>
#include <malloc.h>

#include "core/call_record.h"
#include "core/json_wide.h"
#include "fuzz.h"

#define FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)

/* jansson's bytes in use, and their peak, as malloc counts them. */
static size_t live, peak;

static void *counted_malloc(size_t n)
{
    void *p = malloc(n);
    if (p && (live += malloc_usable_size(p)) > peak)
        peak = live;
    return p;
}

static void counted_free(void *p)
{
    if (p)
        live -= malloc_usable_size(p);
    free(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_set_alloc_funcs(counted_malloc, counted_free);
    return 0;
}

/* From every quote, the string's end against a scan a byte at a time: a
 * backslash takes the byte after it, a quote ends the string. */
static void check_string_ends(const char *text, size_t size)
{
    for (size_t q = 0; q < size; q++) {
        if (text[q] != '"')
            continue;
        size_t i = q + 1;
        while (i < size && text[i] != '"')
            i += text[i] == '\\' ? 2 : 1;
        FUZZ_CHECK(eryx__json_string_end(text, size, q + 1) == (i < size ? i : size));
    }
}

/* The estimate against jansson's peak for the text: real trees of the
 * shapes a scan sees (the parent's slot, arrays grown by doubling). */
static void check_tree_estimate(const char *text, size_t size, const json_t *strict)
{
    check_string_ends(text, size);
    size_t est = eryx__json_tree_bytes(text, size), got;
    FUZZ_CHECK(eryx__json_tree_fits(text, size, est, &got) && got == est);
    /* Below the estimate: refused, with a sum past the bound. */
    FUZZ_CHECK(est == 0 || (!eryx__json_tree_fits(text, size, est - 1, &got) && got >= est));
    if (!strict)
        return;
    size_t before = live;
    peak = live;
    json_t *again = json_loadb(text, size, FLAGS, NULL);
    size_t used = peak - before;
    json_decref(again);
    FUZZ_CHECK(used <= 2 * est + 4096);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t wlen, wlen2;
    int widened, widened2;
    char *w = eryx__json_widen_ints(text, size, &wlen, &widened);
    FUZZ_CHECK(w);
    FUZZ_CHECK(wlen <= size + size / 9 + 1);
    FUZZ_CHECK(widened || (wlen == size && memcmp(w, text, size) == 0));
    FUZZ_CHECK((eryx__json_wide_ints(text, size) > 0) == widened);
    char *w2 = eryx__json_widen_ints(w, wlen, &wlen2, &widened2);
    FUZZ_CHECK(w2 && !widened2 && wlen2 == wlen && memcmp(w2, w, wlen) == 0);
    free(w2);
    free(w);

    json_t *strict = json_loadb(text, size, FLAGS, NULL);
    check_tree_estimate(text, size, strict);
    int inexact;
    json_t *v = eryx__json_read(text, size, FLAGS, &inexact);
    if (strict) {
        FUZZ_CHECK(!widened && v && !inexact && json_equal(strict, v));
    } else {
        FUZZ_CHECK(!v || (inexact && widened));
    }
    FUZZ_CHECK(!inexact || v);
    /* The error's reason: a text read is never said to overflow. */
    FUZZ_CHECK(!v || !eryx__json_number_overflows(text, size, FLAGS));
    json_t *rec = eryx__call_ok_record(7, text, size);
    FUZZ_CHECK(!rec == !v);
    if (rec) {
        json_t *raw = json_object_get(rec, "raw");
        FUZZ_CHECK(json_integer_value(json_object_get(rec, "id")) == 7);
        if (inexact)
            FUZZ_CHECK(json_string_length(raw) == size && memcmp(json_string_value(raw), text, size) == 0);
        else
            FUZZ_CHECK(!raw && json_equal(json_object_get(rec, "value"), v));
    }
    size_t tlen;
    char *t = eryx__call_ok_text(7, text, size, &tlen);
    if (t) {
        static const char head[] = "{\"id\":7,\"ok\":true,\"value\":";
        FUZZ_CHECK(rec && !inexact && tlen <= size + sizeof head && t[tlen] == '\0');
        FUZZ_CHECK(memcmp(t, head, sizeof head - 1) == 0 && t[tlen - 1] == '}');
        json_t *read = json_loadb(t, tlen, FLAGS, NULL);
        FUZZ_CHECK(read && json_equal(read, rec));
        json_decref(read);
        int in_string = 0; /* compact: no whitespace outside strings */
        for (size_t i = 0; i < tlen; i++) {
            if (in_string && t[i] == '\\')
                i++; /* the escaped character */
            else if (in_string)
                in_string = t[i] != '"';
            else if (t[i] == '"')
                in_string = 1;
            else
                FUZZ_CHECK(t[i] != ' ' && t[i] != '\n' && t[i] != '\t' && t[i] != '\r');
        }
        free(t);
    }
    json_decref(rec);
    json_decref(strict);
    json_decref(v);
    return 0;
}
