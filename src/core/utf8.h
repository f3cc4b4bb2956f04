/*
 * The one UTF-8 check the JSON readers and writers share: the sequences
 * jansson accepts (shortest form, no surrogate, at most U+10FFFF). Inline:
 * the request decoder and the reply writer call it per non-ASCII character,
 * the CLI's JSON-RPC layer to mend text that is not UTF-8.
 */
#ifndef ERYX_CORE_UTF8_H
#define ERYX_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the valid UTF-8 sequence at p (n > 0 bytes available): 1 for
 * ASCII, 0 when it is not one. */
static inline size_t eryx__utf8_len(const uint8_t *p, size_t n)
{
    size_t len;
    uint32_t cp, min;
    if (*p < 0x80)
        return 1;
    if (*p >= 0xc2 && *p <= 0xdf) {
        len = 2, cp = *p & 0x1fu, min = 0x80;
    } else if (*p >= 0xe0 && *p <= 0xef) {
        len = 3, cp = *p & 0x0fu, min = 0x800;
    } else if (*p >= 0xf0 && *p <= 0xf4) {
        len = 4, cp = *p & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

#endif
