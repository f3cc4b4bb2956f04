/*
 * Base64 (RFC 4648, with padding), the encoding of the bytes a guest sends
 * and receives inside the JSON of its network operations. The decoder
 * takes untrusted text from the guest (fuzzed: tests/fuzz/fuzz_net.c).
 */
#ifndef ERYX_NET_BASE64_H
#define ERYX_NET_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* A malloc'd, NUL-terminated encoding of p[0..n) (*outlen without the
 * NUL), or NULL when out of memory. */
char *eryx__b64_encode(const uint8_t *p, size_t n, size_t *outlen);

/* Decodes n characters: 0 with *out malloc'd, or -1 when the text is not
 * canonical base64 (length a multiple of 4, padding only at the end, no
 * bits set past the end) or memory ran out. */
int eryx__b64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen);

#endif
