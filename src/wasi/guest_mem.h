/*
 * Checked access to guest linear memory. Every guest pointer and length goes
 * through gm_span() first: the range [ptr, ptr+len) is compared with the
 * memory's current size in 64-bit arithmetic, so a 32-bit wrap-around
 * (ptr near 2^32) cannot pass. The loads and stores below take pointers
 * gm_span() returned and use memcpy, so guest data need not be aligned.
 *
 * The memory's size is read on every call (memory.grow changes it); nothing
 * here caches a host pointer across a call that could run guest code.
 */
#ifndef ERYX_GUEST_MEM_H
#define ERYX_GUEST_MEM_H

#include <stdint.h>
#include <string.h>
#include <wasm-rt.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "guest memory access assumes a little-endian host, like wasm2c's output"
#endif

/* Host pointer to guest [ptr, ptr+len), or NULL if any of it is outside the
 * memory (or no memory is bound). */
static inline uint8_t *gm_span(const wasm_rt_memory_t *m, uint32_t ptr, uint64_t len)
{
    if (!m || !m->data || (uint64_t)ptr + len > (uint64_t)m->size)
        return NULL;
    return m->data + ptr;
}

/* Bytes needed for n elements of elem_size each, in 64 bits so that an
 * absurd count fails the range check instead of wrapping. */
static inline uint64_t gm_array_len(uint32_t n, uint32_t elem_size)
{
    return (uint64_t)n * elem_size;
}

static inline uint16_t gm_ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t gm_ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint64_t gm_ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void gm_st8(uint8_t *p, uint8_t v) { *p = v; }
static inline void gm_st16(uint8_t *p, uint16_t v) { memcpy(p, &v, sizeof v); }
static inline void gm_st32(uint8_t *p, uint32_t v) { memcpy(p, &v, sizeof v); }
static inline void gm_st64(uint8_t *p, uint64_t v) { memcpy(p, &v, sizeof v); }

/* Stores a u32 / u64 result at a guest pointer; 0 or -1 when out of range. */
static inline int gm_put32(const wasm_rt_memory_t *m, uint32_t ptr, uint32_t v)
{
    uint8_t *p = gm_span(m, ptr, 4);
    if (!p)
        return -1;
    gm_st32(p, v);
    return 0;
}

static inline int gm_put64(const wasm_rt_memory_t *m, uint32_t ptr, uint64_t v)
{
    uint8_t *p = gm_span(m, ptr, 8);
    if (!p)
        return -1;
    gm_st64(p, v);
    return 0;
}

#endif
