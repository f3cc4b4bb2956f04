/* The command's sizes and counts as options give them: one parser, so that
 * `eryx`, `eryx serve` and the rest take the same words. */
#ifndef ERYX_CLI_SIZE_ARG_H
#define ERYX_CLI_SIZE_ARG_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/* "1048576", or with suffixes "512M", "2G", "64k": a whole number in
 * decimal, with an optional binary suffix (k, M, G, either case) when
 * suffixes is set; no sign, no space. 0, or -1 when s is not one or does
 * not fit in 64 bits. */
static inline int eryx_cli_parse_number(const char *s, uint64_t *out, int suffixes)
{
    if (!(s[0] >= '0' && s[0] <= '9')) /* strtoull takes " -5" as 2^64-5 */
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    if (suffixes) {
        switch (*end) {
        case 'k': case 'K': shift = 10; end++; break;
        case 'm': case 'M': shift = 20; end++; break;
        case 'g': case 'G': shift = 30; end++; break;
        default: break;
        }
    }
    if (errno || *end || v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

/* A size: eryx_cli_parse_number with suffixes. */
static inline int eryx_cli_parse_size(const char *s, uint64_t *out)
{
    return eryx_cli_parse_number(s, out, 1);
}

#endif
