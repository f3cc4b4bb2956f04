/*
 * The guest's trace events (ERYX_EVENT_TRACE, guest/abi.h): one line of the
 * user's code, the line and the file name's length, then "file\0function\0",
 * made by guest/eryx_guest.c (trace_line) and decoded by the host for
 * on_trace. The bytes come from the guest, so the decoder trusts nothing of
 * them (fuzzed: fuzz_trace_event).
 */
#ifndef ERYX_CORE_TRACE_EVENT_H
#define ERYX_CORE_TRACE_EVENT_H

#include <stddef.h>

/* The longest file or function name an event may carry. Real ones are far
 * shorter (a path fits in PATH_MAX); the guest could forge megabytes, which
 * every on_trace would then have to copy or escape (the CLI's escaping of
 * 25 MB names took 1.9 GB and ran seconds past the time limit). */
#define ERYX__TRACE_NAME_MAX 4096

typedef struct eryx__trace_event {
    const char *file;       /* in the event's bytes, file_len long and
                               NUL-terminated there */
    size_t file_len;
    int line;
    const char *function;   /* in the event's bytes, function_len long and
                               NUL-terminated there: its NUL ends the event */
    size_t function_len;
} eryx__trace_event;

/* Decodes data[0..len) into *ev without reading the names (a name with a
 * NUL inside reads as shorter): 0, or -1 for bytes that are not an event,
 * too short for the header and two NULs, a file length past the end, no
 * NUL after the file or at the end, a name over ERYX__TRACE_NAME_MAX. */
int eryx__trace_event_decode(const char *data, size_t len, eryx__trace_event *ev);

#endif
