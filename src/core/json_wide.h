/*
 * JSON integers beyond 64 bits. JSON sets no limit on an integer and
 * Python writes 10**30 as its 31 digits; jansson refuses any integer that
 * does not fit a long long ("too big integer"). Such text is still JSON:
 * these read it by copying it with those integers turned into reals, which
 * jansson takes (as the nearest double, as JavaScript's JSON.parse would),
 * and say the value is inexact, so that the exact text can travel beside
 * it. A callback's reply carries that text to the guest, a run's result
 * and a call's arguments carry it to the service's and MCP's clients
 * (cli/result_json.h). Fuzzed: fuzz_json_wide.
 */
#ifndef ERYX_CORE_JSON_WIDE_H
#define ERYX_CORE_JSON_WIDE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* A copy of the JSON text with ".0" after every integer token beyond a
 * 64-bit signed integer's range, outside strings (NULL: out of memory);
 * *widened is 1 if any was. Only tokens are looked at, not the grammar:
 * text that is not JSON stays not JSON. *out_len gets the copy's length,
 * at most len + len / 9 + 1. */
char *eryx__json_widen_ints(const char *text, size_t len, size_t *out_len, int *widened);

/* How many integer tokens eryx__json_widen_ints would widen, without a copy. */
size_t eryx__json_wide_ints(const char *text, size_t len);

/* json_loadb(text, len, flags), but with every integer beyond 64 bits read
 * as a real (*inexact = 1) instead of failing. NULL when the text is not
 * JSON, or holds a number beyond a double's range (10**400). */
json_t *eryx__json_read(const char *text, size_t len, size_t flags, int *inexact);

/* 1 if eryx__json_read refuses the text only for a number beyond a
 * double's range (10**400, 1e400): a clearer error than "not JSON". Only
 * for errors: it parses the text again. */
int eryx__json_number_overflows(const char *text, size_t len, size_t flags);

/* Where the string whose text starts at text[i] ends, as the estimate
 * below reads it: its closing quote (the first one after an even run of
 * backslashes, counted from i), or len when none is left. */
size_t eryx__json_string_end(const char *text, size_t len, size_t i);

/* About the bytes jansson's tree of the text takes, from one scan of its
 * tokens (any text gets an estimate, JSON or not). Measured on bookworm's
 * jansson 2.14 with glibc, a parent's slot and its growth included: 232 an
 * object, 136 an array, 40 a number, 16 true, false or null, 88 and its
 * length a string; a key is counted as a string (72 measured). Within 10 %
 * of jansson's peak on every shape measured (objects of 200 000 short or
 * long keys, arrays of strings or of `true`, 2000 nested arrays, records,
 * escapes); fuzz_json_wide checks it is at least half of it. So
 * `[{},{},...]` costs 77 times its text, records such as
 * `{"a":[1,2,{"b":null}],"c":"x"}` about 33 times, `list(range(10**6))`
 * 6 times, a long string once. */
size_t eryx__json_tree_bytes(const char *text, size_t len);

/* 1 if the text's tree (eryx__json_tree_bytes) takes at most max bytes;
 * *bytes (if not NULL) gets the estimate, or, past max, a sum past it (the
 * scan stops there). Readers of JSON that the guest
 * or a client wrote check this first: jansson builds whatever the text
 * asks for, 1.3 GB for 16 MiB of `[{},{},...]`. */
int eryx__json_tree_fits(const char *text, size_t len, size_t max, size_t *bytes);

#endif
