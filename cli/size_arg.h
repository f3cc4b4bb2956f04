/* The command's sizes and counts as options give them: one parser, so that
 * `eryx`, `eryx serve` and the rest take the same words. */
#ifndef ERYX_CLI_SIZE_ARG_H
#define ERYX_CLI_SIZE_ARG_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/* "512M", "2G", "64k", "1048576": a whole number in decimal with an
 * optional binary suffix (k, M, G, either case); no sign. 0, or -1 when s
 * is not one or does not fit in 64 bits. */
static inline int eryx_cli_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

#endif
