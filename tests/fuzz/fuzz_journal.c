/*
 * Journal bytes (eryx_journal_load, src/core/journal.c) from the fuzzer.
 *
 * Input: a flags byte, then the journal's bytes. With flags bit 0 the
 * harness writes the magic and the checksum over what follows, so that the
 * fuzzer reaches the header and entry checks instead of stopping at the
 * checksum; without, the bytes are as given. Properties: anything refused
 * is ERYX_INVALID with a message and no journal; anything accepted saves
 * back to exactly the bytes loaded (the format has one spelling of each
 * journal), and its counts agree.
 */
#include <eryx.h>
#include <xxhash.h>

#include "fuzz.h"

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t flags = size ? data[0] : 0;
    size_t n = size ? size - 1 : 0;
    uint8_t *buf = malloc(n ? n : 1);
    FUZZ_CHECK(buf);
    if (n)
        memcpy(buf, data + 1, n);
    if ((flags & 1) && n >= 16) {
        memcpy(buf, "ERYXJNL1", 8);
        put64(buf + 8, XXH3_64bits(buf + 16, n - 16));
    }
    eryx_journal *j = (eryx_journal *)1;
    int rc = eryx_journal_load(buf, n, &j);
    if (rc != ERYX_OK) {
        FUZZ_CHECK(rc == ERYX_INVALID);
        FUZZ_CHECK(j == NULL);
        FUZZ_CHECK(strstr(eryx_errmsg(NULL), "journal bytes refused") != NULL);
        free(buf);
        return 0;
    }
    void *again = NULL;
    size_t len = 0;
    FUZZ_CHECK(eryx_journal_save(j, &again, &len) == ERYX_OK);
    if (len != n || memcmp(again, buf, n) != 0)
        fprintf(stderr, "a loaded journal saves differently (%zu bytes, was %zu)\n", len, n);
    FUZZ_CHECK(len == n && memcmp(again, buf, n) == 0);
    FUZZ_CHECK(eryx_journal_pending(j) <= eryx_journal_count(j));
    eryx_free(again);
    eryx_journal_free(j);
    free(buf);
    return 0;
}
