/*
 * The guest's trace events (src/core/trace_event.c): any bytes.
 * Properties: an event that decodes encodes back to exactly its bytes (the
 * file up to its NUL, the line in decimal, the function the rest), every
 * pointer stays inside the input, and a decoded line is the digits' value.
 */
#include "fuzz.h"

#include "core/trace_event.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes: reads past it are ASan's to catch. */
    char *bytes = malloc(size ? size : 1);
    FUZZ_CHECK(bytes);
    memcpy(bytes, data, size);
    eryx__trace_event ev;
    if (eryx__trace_event_decode(bytes, size, &ev) == 0) {
        size_t file_len = strlen(ev.file);
        FUZZ_CHECK(ev.file == bytes && file_len < size);
        FUZZ_CHECK(ev.function >= bytes && ev.function + ev.function_len == bytes + size);
        char again[64];
        int n = snprintf(again, sizeof again, "%d", ev.line);
        FUZZ_CHECK(n > 0 && (size_t)n < sizeof again);
        FUZZ_CHECK(file_len + 1 + (size_t)n + 1 + ev.function_len == size);
        FUZZ_CHECK(memcmp(bytes + file_len + 1, again, (size_t)n + 1) == 0);
    } else {
        /* Refused: no NUL-terminated file, or what follows is no line. */
        const char *nul = size ? memchr(bytes, '\0', size) : NULL;
        if (nul) {
            const char *line = nul + 1;
            size_t rest = size - (size_t)(line - bytes);
            const char *end = memchr(line, '\0', rest);
            char text[16] = "";
            if (end && end - line < (ptrdiff_t)sizeof text) {
                memcpy(text, line, (size_t)(end - line));
                char again[16];
                long long v = strtoll(text, NULL, 10);
                snprintf(again, sizeof again, "%lld", v);
                /* A canonical int would have been taken. */
                FUZZ_CHECK(strcmp(again, text) != 0 || v < -2147483647LL - 1 ||
                           v > 2147483647LL);
            }
        }
    }
    free(bytes);
    return 0;
}
