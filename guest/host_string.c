/*
 * memchr, memrchr, memcmp and bcmp for the guest, in place of wasi-libc's.
 *
 * wasi-libc's are portable C that reads a word (4 bytes on wasm32) or a byte
 * at a time: str.find of one character in 1 MB took 16.5x native's time,
 * where glibc reads 32 bytes at a time. Past a few dozen bytes these ask the
 * host's libc instead (the "eryx" imports memchr, memrchr and memcmp:
 * src/core/host_imports.c, which checks every range against the guest's
 * memory and traps where the loop here would have read outside it). Short
 * scans, the common case (dict keys, names), stay here: an import call costs
 * more than a few bytes of loop.
 */
#define _GNU_SOURCE     /* memrchr */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("eryx"), import_name(#name)))

/* The index of the first (last) byte c in [s, s + n), or UINT32_MAX. */
IMPORT(memchr) uint32_t host_memchr(const void *s, uint32_t c, uint32_t n);
IMPORT(memrchr) uint32_t host_memrchr(const void *s, uint32_t c, uint32_t n);
/* -1, 0 or 1 as memcmp's sign. */
IMPORT(memcmp) int32_t host_memcmp(const void *a, const void *b, uint32_t n);

/* Below this many bytes the loops here are faster than an import call
 * (docs/performance.md, "The guest's string scans"). */
#define HOST_SCAN_MIN 32

void *memchr(const void *s, int c, size_t n)
{
    const unsigned char *p = s;
    if (n >= HOST_SCAN_MIN) {
        uint32_t i = host_memchr(s, (unsigned char)c, (uint32_t)n);
        return i == UINT32_MAX ? NULL : (void *)(p + i);
    }
    for (; n; n--, p++)
        if (*p == (unsigned char)c)
            return (void *)p;
    return NULL;
}

void *memrchr(const void *s, int c, size_t n)
{
    const unsigned char *p = s;
    if (n >= HOST_SCAN_MIN) {
        uint32_t i = host_memrchr(s, (unsigned char)c, (uint32_t)n);
        return i == UINT32_MAX ? NULL : (void *)(p + i);
    }
    while (n--)
        if (p[n] == (unsigned char)c)
            return (void *)(p + n);
    return NULL;
}

/* Short compares go 8 bytes at a time while the bytes are equal (wasm
 * loads need no alignment), then a byte at a time for the sign. */
int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *l = a, *r = b;
    if (n >= HOST_SCAN_MIN)
        return host_memcmp(a, b, (uint32_t)n);
    for (; n >= 8; n -= 8, l += 8, r += 8) {
        uint64_t x, y;
        __builtin_memcpy(&x, l, 8);
        __builtin_memcpy(&y, r, 8);
        if (x != y)
            break;
    }
    for (; n && *l == *r; n--, l++, r++)
        ;
    return n ? *l - *r : 0;
}

int bcmp(const void *a, const void *b, size_t n)
{
    return memcmp(a, b, n);
}
