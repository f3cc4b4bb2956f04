/*
 * Trace events' decoder (trace_event.h): one pass over the bytes, no copy
 * and no allocation, since a traced loop sends millions of them.
 */
#include "core/trace_event.h"

#include <limits.h>
#include <string.h>

int eryx__trace_event_decode(const char *data, size_t len, eryx__trace_event *ev)
{
    const char *end = data + len, *p = memchr(data, '\0', len);
    if (!p)
        return -1;
    p++;
    int negative = p < end && *p == '-';
    p += negative;
    const char *digits = p;
    long long line = 0;
    while (p < end && *p >= '0' && *p <= '9' && p - digits < 10)
        line = line * 10 + (*p++ - '0');
    size_t n = (size_t)(p - digits);
    if (n == 0 || (n > 1 && *digits == '0') || (negative && line == 0) || p >= end ||
        *p != '\0')
        return -1;
    line = negative ? -line : line;
    if (line < INT_MIN || line > INT_MAX)
        return -1;
    ev->file = data;
    ev->line = (int)line;
    ev->function = p + 1;
    ev->function_len = (size_t)(end - (p + 1));
    return 0;
}
