/*
 * Decoding of the guest's eryx.wait requests (guest/abi.h), apart from the
 * sandbox so that it can be tested and fuzzed on its own.
 *
 * The guest's event loop (guest/python/_eryx/loop.py) sends exactly
 *   {"calls": [{"id": <int>, "name": <str>, "args": {...}}, ...],
 *    "timeout": <number> | null}
 * and nothing else is accepted: the envelope is checked byte by byte,
 * without building a JSON tree, and each call's arguments are validated and
 * copied out as compact JSON text. The host's memory for a request is thus
 * at most its size (one arena) plus one small record per call, whatever the
 * guest sends; the guest is the attacker here.
 *
 * Strings are checked as jansson checks them (UTF-8, escapes, surrogate
 * pairs, no \u0000) and re-escaped as json_dumps would, so that arguments
 * read the same as before this decoder; numbers are kept as written.
 */
#ifndef ERYX_CORE_WAIT_REQUEST_H
#define ERYX_CORE_WAIT_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Deepest nesting of arrays and objects inside one call's arguments (the
 * guest's json.dumps cannot go much past its recursion limit of 1000, and
 * embedders that parse the arguments recursively stay safe). */
#define ERYX__WAIT_MAX_DEPTH 512

typedef struct eryx__wait_call {
    uint64_t id;                /* the guest's id, 0 .. 2^63 - 1 */
    const char *name;           /* decoded, NUL-terminated (in the arena) */
    const char *args;           /* compact JSON object text, NUL-terminated,
                                   or NULL when it was larger than
                                   ERYX_MAX_CALL_ARGS */
    size_t args_size;           /* bytes of the arguments as sent */
} eryx__wait_call;

typedef struct eryx__wait_request {
    eryx__wait_call *calls;
    size_t n_calls;
    int has_timeout;            /* "timeout" was a number */
    double timeout_s;           /* then: seconds, as sent (may be negative) */
    char *arena;                /* holds every name and args */
    /* A request of one small call, the common one, needs no allocation:
     * calls and arena point here. So a decoded request must stay where it
     * was decoded (not be copied) until it is cleared. */
    eryx__wait_call one;
    char small[240];
} eryx__wait_request;

/* Decodes len bytes of a request into *out. Returns NULL on success (free
 * *out with eryx__wait_request_clear), or a static message for the guest
 * (then *out is empty and needs no clearing). Requests over
 * ERYX_MAX_WAIT_REQUEST bytes are refused without being read. Pure: reads
 * buf, allocates, nothing else. */
const char *eryx__wait_request_decode(const void *buf, size_t len, eryx__wait_request *out);

void eryx__wait_request_clear(eryx__wait_request *r);

/* The same strict reader, for a callback's reply (call_record.c): the JSON
 * value in len bytes at buf, written compactly into out (room for len
 * bytes; compact text is never longer), *out_len its length. -1 when the
 * text is outside what this reader takes for certain to read as jansson
 * does: not JSON, nested deeper than ERYX__WAIT_MAX_DEPTH, a \u0000, or a
 * number of 19 characters or more or with a three-digit exponent (which
 * may not fit a 64-bit integer or a double). The caller then reads it
 * with jansson. */
int eryx__json_compact(const void *buf, size_t len, char *out, size_t *out_len);

#endif
