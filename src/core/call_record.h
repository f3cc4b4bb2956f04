/*
 * The guest's record of a call's outcome, one per call in a reply's
 * "results" (guest/python/_eryx/hostcall.py reads them): {"id", "ok": true,
 * "value"} or {"id", "ok": true, "raw": text} for a value, {"id", "ok":
 * false, "kind", "message"} for an error. Built by the calls' completion
 * (exec.c) and by a journal's replay (journal.c), copied (text) or
 * written by json_write.c (tree) into the reply by exec.c.
 */
#ifndef ERYX_CORE_CALL_RECORD_H
#define ERYX_CORE_CALL_RECORD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* A record as a tree, or (a reply's common case: eryx__call_ok_text) as
 * its compact text of len bytes; one of them, or neither (no record). */
typedef struct eryx__record {
    json_t *tree;
    char *text;
    size_t len;
} eryx__record;

/* The guest's record of call id: {"id", "ok", key: value}, value taken
 * (NULL: value was NULL, or out of memory). Built member by member:
 * json_pack's parse of its format cost half a microsecond a record. */
json_t *eryx__call_record(uint64_t id, int ok, const char *key, json_t *value);

/* {"id", "ok": false, "kind", "message"}; NULL when message is not UTF-8
 * (or out of memory). */
json_t *eryx__call_error_record(uint64_t id, const char *kind, const char *message);

/* The guest's record of call id answered with the JSON text json:
 * {"id", "ok": true, "value"}, or {"id", "ok": true, "raw": the text} when
 * the value holds an integer beyond 64 bits (the guest's glue reads the
 * text itself: guest/python/_eryx/hostcall.py). NULL when json is not
 * JSON (or out of memory). */
json_t *eryx__call_ok_record(uint64_t id, const char *json, size_t len);

/* The same record as text, {"id":id,"ok":true,"value":V} with V the
 * value's compact text, for a reply that needs no tree: most replies, read
 * and copied in one pass, not parsed into a tree and written out again
 * (docs/performance.md, "Callback round trip"). NULL when the value is
 * outside what eryx__json_compact takes (or out of memory): then
 * eryx__call_ok_record reads it. The record reads, with jansson, as the
 * tree eryx__call_ok_record builds (fuzz_json_wide checks). */
char *eryx__call_ok_text(uint64_t id, const char *json, size_t len, size_t *out_len);

#endif
