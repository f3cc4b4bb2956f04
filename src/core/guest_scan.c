/*
 * The guest's long memory scans (guest_scan.h). A range that runs past the
 * memory is scanned up to the memory's end first: only if the answer is not
 * there is it out of bounds.
 */
#include <string.h>

#include "core/guest_scan.h"

/* Bytes of [ptr, ptr + n) inside mem[0..size). */
static uint64_t in_bounds(uint64_t size, uint32_t ptr, uint32_t n)
{
    uint64_t avail = ptr < size ? size - ptr : 0;
    return n < avail ? n : avail;
}

int eryx__scan_memchr(const uint8_t *mem, uint64_t size, uint32_t ptr, uint32_t c, uint32_t n,
                      uint32_t *index, uint64_t *scanned)
{
    uint64_t len = in_bounds(size, ptr, n);
    const uint8_t *p = mem + (len ? ptr : 0);
    const uint8_t *hit = len ? memchr(p, (int)(c & 0xff), len) : NULL;
    if (hit) {
        *index = (uint32_t)(hit - p);
        *scanned = *index + 1ull;
        return 0;
    }
    *index = UINT32_MAX;
    *scanned = len;
    return len < n ? ERYX__SCAN_OOB : 0;
}

/* The guest's loop reads the last byte first: the whole range must be in. */
int eryx__scan_memrchr(const uint8_t *mem, uint64_t size, uint32_t ptr, uint32_t c, uint32_t n,
                       uint32_t *index, uint64_t *scanned)
{
    *index = UINT32_MAX;
    *scanned = 0;
    if (in_bounds(size, ptr, n) < n)
        return ERYX__SCAN_OOB;
    const uint8_t *p = mem + ptr;
    const uint8_t *hit = n ? memrchr(p, (int)(c & 0xff), n) : NULL;
    if (hit)
        *index = (uint32_t)(hit - p);
    *scanned = hit ? n - *index : n;
    return 0;
}

int eryx__scan_memcmp(const uint8_t *mem, uint64_t size, uint32_t a, uint32_t b, uint32_t n,
                      int32_t *sign, uint64_t *scanned)
{
    uint64_t la = in_bounds(size, a, n), lb = in_bounds(size, b, n);
    uint64_t len = la < lb ? la : lb;
    int d = len ? memcmp(mem + a, mem + b, len) : 0;
    *sign = (d > 0) - (d < 0);
    *scanned = len;
    return d == 0 && len < n ? ERYX__SCAN_OOB : 0;
}
