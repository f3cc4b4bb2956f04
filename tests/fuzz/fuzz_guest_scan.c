/*
 * The guest's long memory scans (src/core/guest_scan.c): a memory of any
 * bytes and any offsets, lengths and byte. Property: each answers as the
 * guest's own byte loop would (guest/host_string.c below its cut-off),
 * including where that loop would have read past the memory's end (OOB),
 * and never reads outside the memory itself (ASan, on an exact copy).
 *
 * Input: op (0 memchr, 1 memrchr, 2 memcmp), a mode byte, the two offsets,
 * the length (little endian u32; with mode bit i set, taken modulo the
 * memory's size plus 40, so that most land near it), the byte c, then the
 * memory.
 */
#include "fuzz.h"

#include "core/guest_scan.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* The guest's loops, one byte at a time, with every read checked. */
static int ref_memchr(const uint8_t *m, uint64_t size, uint32_t p, uint8_t c, uint32_t n,
                      uint32_t *index)
{
    *index = UINT32_MAX;
    for (uint64_t i = 0; i < n; i++) {
        if (p + i >= size)
            return ERYX__SCAN_OOB;
        if (m[p + i] == c) {
            *index = (uint32_t)i;
            return 0;
        }
    }
    return 0;
}

static int ref_memrchr(const uint8_t *m, uint64_t size, uint32_t p, uint8_t c, uint32_t n,
                       uint32_t *index)
{
    *index = UINT32_MAX;
    for (uint64_t i = n; i-- > 0;) {
        if (p + i >= size)
            return ERYX__SCAN_OOB;
        if (m[p + i] == c) {
            *index = (uint32_t)i;
            return 0;
        }
    }
    return 0;
}

static int ref_memcmp(const uint8_t *m, uint64_t size, uint32_t a, uint32_t b, uint32_t n,
                      int32_t *sign)
{
    *sign = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (a + i >= size || b + i >= size)
            return ERYX__SCAN_OOB;
        if (m[a + i] != m[b + i]) {
            *sign = m[a + i] < m[b + i] ? -1 : 1;
            return 0;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in in = {data, size};
    unsigned op = (unsigned)fuzz_bytes(&in, 1) % 3, mode = (unsigned)fuzz_bytes(&in, 1);
    uint32_t a = (uint32_t)fuzz_bytes(&in, 4), b = (uint32_t)fuzz_bytes(&in, 4);
    uint32_t n = (uint32_t)fuzz_bytes(&in, 4);
    uint8_t c = (uint8_t)fuzz_bytes(&in, 1);
    uint64_t msize = in.n;
    if (mode & 1)
        a = (uint32_t)(a % (msize + 40));
    if (mode & 2)
        b = (uint32_t)(b % (msize + 40));
    if (mode & 4)
        n = (uint32_t)(n % (msize + 40));
    /* An exact copy: a read past it is ASan's to catch. */
    uint8_t *mem = malloc(msize ? msize : 1);
    FUZZ_CHECK(mem);
    memcpy(mem, in.p, msize);

    uint64_t scanned = 0;
    if (op < 2) {
        uint32_t got, want;
        int rc = op == 0 ? eryx__scan_memchr(mem, msize, a, c, n, &got, &scanned)
                         : eryx__scan_memrchr(mem, msize, a, c, n, &got, &scanned);
        int ref = op == 0 ? ref_memchr(mem, msize, a, c, n, &want)
                          : ref_memrchr(mem, msize, a, c, n, &want);
        FUZZ_CHECK(rc == ref);
        if (rc == 0)
            FUZZ_CHECK(got == want);
    } else {
        int32_t got, want;
        int rc = eryx__scan_memcmp(mem, msize, a, b, n, &got, &scanned);
        int ref = ref_memcmp(mem, msize, a, b, n, &want);
        FUZZ_CHECK(rc == ref);
        if (rc == 0)
            FUZZ_CHECK(got == want);
    }
    FUZZ_CHECK(scanned <= n && scanned <= msize);
    free(mem);
    return 0;
}
