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
 *     text itself when not, nothing when it is not JSON.
 */
#include <jansson.h>

#include "core/call_record.h"
#include "core/json_wide.h"
#include "fuzz.h"

#define FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
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
    int inexact;
    json_t *v = eryx__json_read(text, size, FLAGS, &inexact);
    if (strict) {
        FUZZ_CHECK(!widened && v && !inexact && json_equal(strict, v));
    } else {
        FUZZ_CHECK(!v || (inexact && widened));
    }
    FUZZ_CHECK(!inexact || v);
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
    json_decref(rec);
    json_decref(strict);
    json_decref(v);
    return 0;
}
