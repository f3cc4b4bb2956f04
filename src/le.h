/*
 * Little-endian integers in byte buffers: the on-disk formats (journals,
 * the stdlib image) and the guest's trace events are little endian
 * whatever the host is.
 */
#ifndef ERYX_LE_H
#define ERYX_LE_H

#include <stdint.h>

static inline uint32_t eryx__le32(const void *p)
{
    const unsigned char *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

#endif
