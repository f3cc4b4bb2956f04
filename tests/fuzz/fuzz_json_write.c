/*
 * The compact JSON writer (src/core/json_write.c) against json_dumps: for
 * every value jansson reads from the input (integers beyond 64 bits read
 * as reals, as the host reads replies), and for the input's first eight
 * bytes taken as a double, the writer's text is byte for byte
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY), appended after what the
 * buffer already held.
 */
#include <jansson.h>
#include <math.h>

#include "core/json_wide.h"
#include "core/json_write.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* Writes v after a prefix and compares with jansson's text. */
static void check_same(const json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    eryx__json_out o = {0};
    eryx__json_put(&o, "[", 1);
    int rc = eryx__json_write(&o, v);
    FUZZ_CHECK(want ? rc == 0 && !o.err : rc < 0);
    if (want) {
        FUZZ_CHECK(o.len == 1 + strlen(want) && o.p[o.len] == '\0');
        FUZZ_CHECK(memcmp(o.p + 1, want, o.len - 1) == 0);
    }
    free(want);
    free(o.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int inexact;
    json_t *v = eryx__json_read((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                                &inexact);
    if (v)
        check_same(v);
    json_decref(v);

    double d;
    if (size >= sizeof d) {
        memcpy(&d, data, sizeof d);
        json_t *r = isfinite(d) ? json_real(d) : NULL;
        if (r)
            check_same(r);
        json_decref(r);
    }
    return 0;
}
