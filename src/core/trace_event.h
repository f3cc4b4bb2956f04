/*
 * The guest's trace events (ERYX_EVENT_TRACE, guest/abi.h): one line of the
 * user's code, "file\0line\0function", made by guest/eryx_guest.c
 * (trace_line) and decoded by the host for on_trace. The bytes come from the
 * guest, so the decoder trusts nothing of them (fuzzed: fuzz_trace_event).
 */
#ifndef ERYX_CORE_TRACE_EVENT_H
#define ERYX_CORE_TRACE_EVENT_H

#include <stddef.h>

typedef struct eryx__trace_event {
    const char *file;       /* in the event's bytes, NUL-terminated there */
    int line;
    const char *function;   /* in the event's bytes, function_len long and
                               not NUL-terminated: the event ends there */
    size_t function_len;
} eryx__trace_event;

/* Decodes data[0..len) into *ev; 0, or -1 for bytes that are not an event:
 * no NUL after the file, a line that is not a decimal int as the guest
 * writes it (an optional '-', no leading zero, at most 10 digits, within
 * int), or no NUL after it. The function is the rest, possibly empty. */
int eryx__trace_event_decode(const char *data, size_t len, eryx__trace_event *ev);

#endif
