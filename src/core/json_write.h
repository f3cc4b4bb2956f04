/*
 * Compact JSON text of a jansson value, written into a growable buffer.
 *
 * Every callback's reply goes to the guest as JSON text made from a tree.
 * json_dumps made that text in about 2.3 us for a three-field object on
 * the Intel host (a sixth of an `await noop()` round trip): per call it
 * sets up a hash table of the containers being written, keyed by their
 * addresses formatted with snprintf, to refuse cycles, and grows a fresh
 * buffer. This writer bounds the nesting instead (trees read by jansson
 * are at most 2048 deep, the trees eryx builds are shallower) and appends
 * to a buffer the caller keeps.
 *
 * The output is byte for byte json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY):
 * members in the object's order, strings escaped as jansson escapes them,
 * reals as "%.17g" with jansson's touches. fuzz_json_write checks that on
 * every tree jansson reads.
 */
#ifndef ERYX_CORE_JSON_WRITE_H
#define ERYX_CORE_JSON_WRITE_H

#include <jansson.h>
#include <stddef.h>

/* Deepest nesting written; deeper fails (and so would a cycle). */
#define ERYX__JSON_WRITE_MAX_DEPTH 4096

/* A growable text buffer; after a failed allocation or write `err` is set
 * and later writes do nothing. The text is NUL-terminated when p is not
 * NULL; the owner frees p. */
typedef struct eryx__json_out {
    char *p;
    size_t len, cap;
    int err;
} eryx__json_out;

/* Appends n bytes. */
void eryx__json_put(eryx__json_out *o, const char *s, size_t n);

/* Room for n more bytes at the end of the text: where to write them (the
 * caller then adds what it wrote to len), or NULL with err set. */
char *eryx__json_reserve(eryx__json_out *o, size_t n);

/* Appends an unsigned integer in decimal. */
void eryx__json_put_u64(eryx__json_out *o, unsigned long long v);

/* Appends the n bytes at s as a JSON string (err set if not UTF-8). */
void eryx__json_put_string(eryx__json_out *o, const char *s, size_t n);

/* Appends v's compact JSON text; -1 (and `err` set) when v nests deeper
 * than ERYX__JSON_WRITE_MAX_DEPTH, holds a string that is not UTF-8 (a
 * json_stringn_nocheck) or memory runs out. */
int eryx__json_write(eryx__json_out *o, const json_t *v);

#endif
