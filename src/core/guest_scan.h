/*
 * The guest's long memory scans, done by the host's libc: the "eryx"
 * imports memchr, memrchr and memcmp (guest/host_string.c asks for them past
 * a few dozen bytes; src/core/host_imports.c calls these). Offsets, lengths
 * and bytes come from the guest, so each range is checked against the
 * memory first; where the guest's own loop would have read outside it, the
 * result is ERYX__SCAN_OOB and the import traps as that loop would have.
 * A scan that stops early never reads past where it stopped, as C's memchr
 * and memcmp need not: memchr(p, 0, SIZE_MAX) is how musl's strnlen starts.
 * Fuzzed against byte loops: fuzz_guest_scan.
 */
#ifndef ERYX_CORE_GUEST_SCAN_H
#define ERYX_CORE_GUEST_SCAN_H

#include <stdint.h>

#define ERYX__SCAN_OOB (-1)

/* In mem[0..size): *index is that of the first (memchr) or last (memrchr)
 * byte equal to c & 0xff in [ptr, ptr + n), or UINT32_MAX for none.
 * *scanned is how many bytes that took (the import charges fuel for them).
 * 0, or ERYX__SCAN_OOB. */
int eryx__scan_memchr(const uint8_t *mem, uint64_t size, uint32_t ptr, uint32_t c, uint32_t n,
                      uint32_t *index, uint64_t *scanned);
int eryx__scan_memrchr(const uint8_t *mem, uint64_t size, uint32_t ptr, uint32_t c, uint32_t n,
                       uint32_t *index, uint64_t *scanned);

/* *sign is -1, 0 or 1 as memcmp of [a, a + n) and [b, b + n) in mem;
 * *scanned as above. 0, or ERYX__SCAN_OOB. */
int eryx__scan_memcmp(const uint8_t *mem, uint64_t size, uint32_t a, uint32_t b, uint32_t n,
                      int32_t *sign, uint64_t *scanned);

#endif
