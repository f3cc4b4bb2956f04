/*
 * Trace events' decoder (trace_event.h): constant time, no copy and no
 * allocation, since a traced loop sends millions of them.
 */
#include "core/trace_event.h"

#include <stdint.h>

#include "guest/abi.h"
#include "le.h"

int eryx__trace_event_decode(const char *data, size_t len, eryx__trace_event *ev)
{
    if (len < ERYX_TRACE_HEADER + 2)
        return -1;
    size_t file_len = eryx__le32(data + 4), names = len - ERYX_TRACE_HEADER - 2;
    if (file_len > names || file_len > ERYX__TRACE_NAME_MAX ||
        names - file_len > ERYX__TRACE_NAME_MAX || data[ERYX_TRACE_HEADER + file_len] != '\0' ||
        data[len - 1] != '\0')
        return -1;
    uint32_t line = eryx__le32(data);
    ev->line = line <= INT32_MAX ? (int)line : (int)(line - INT32_MAX - 1) + INT32_MIN;
    ev->file = data + ERYX_TRACE_HEADER;
    ev->file_len = file_len;
    ev->function = ev->file + file_len + 1;
    ev->function_len = names - file_len;
    return 0;
}
