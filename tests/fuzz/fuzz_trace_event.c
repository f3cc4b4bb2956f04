/*
 * The guest's trace events (src/core/trace_event.c): any bytes.
 * Properties: an event is taken exactly when its header's file length
 * leaves room for the file, a NUL, the function and a NUL, with NULs where
 * they are said to be; a taken event's pointers stay inside the input, at
 * the places the header says, and its line is the header's int32.
 */
#include "fuzz.h"

#include "core/trace_event.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static uint32_t le32_of(const char *p)
{
    const unsigned char *b = (const unsigned char *)p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes: reads past it are ASan's to catch. */
    char *bytes = malloc(size ? size : 1);
    FUZZ_CHECK(bytes);
    memcpy(bytes, data, size);
    int well_formed = size >= 10 && le32_of(bytes + 4) <= size - 10 &&
                      bytes[8 + le32_of(bytes + 4)] == '\0' && bytes[size - 1] == '\0';
    eryx__trace_event ev;
    int rc = eryx__trace_event_decode(bytes, size, &ev);
    FUZZ_CHECK((rc == 0) == well_formed);
    if (rc == 0) {
        FUZZ_CHECK(ev.file == bytes + 8 && ev.file_len == le32_of(bytes + 4));
        FUZZ_CHECK(ev.file[ev.file_len] == '\0');
        FUZZ_CHECK(ev.function == ev.file + ev.file_len + 1);
        FUZZ_CHECK(ev.function + ev.function_len == bytes + size - 1);
        FUZZ_CHECK(ev.function[ev.function_len] == '\0');
        FUZZ_CHECK((uint32_t)ev.line == le32_of(bytes));
    }
    free(bytes);
    return 0;
}
