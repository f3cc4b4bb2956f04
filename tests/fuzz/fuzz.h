/*
 * Shared by the libFuzzer harnesses: a reader that turns the fuzzer's bytes
 * into arguments (zeros once they run out), and a check that aborts, so
 * that libFuzzer records the input as a crash, when a property fails.
 */
#ifndef ERYX_TEST_FUZZ_H
#define ERYX_TEST_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                         \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                      \
            abort();                                                             \
        }                                                                        \
    } while (0)

typedef struct fuzz_in {
    const uint8_t *p;
    size_t n;
} fuzz_in;

static inline uint64_t fuzz_bytes(fuzz_in *in, unsigned k)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < k; i++) {
        uint64_t b = 0;
        if (in->n) {
            b = *in->p++;
            in->n--;
        }
        v |= b << (8 * i);
    }
    return v;
}

static inline uint8_t fuzz_u8(fuzz_in *in) { return (uint8_t)fuzz_bytes(in, 1); }
static inline uint32_t fuzz_u32(fuzz_in *in) { return (uint32_t)fuzz_bytes(in, 4); }
static inline uint64_t fuzz_u64(fuzz_in *in) { return fuzz_bytes(in, 8); }

#endif
