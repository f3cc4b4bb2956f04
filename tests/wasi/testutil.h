/*
 * Helpers for the WASI/VFS tests: a guest memory we own, writers for guest
 * structures, and an in-memory builder of "ERYXIMG1" images.
 */
#ifndef ERYX_TEST_WASI_UTIL_H
#define ERYX_TEST_WASI_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wasm-rt.h>

#include "../check.h"
#include "vfs/vfs_ops.h"
#include "wasi/wasi.h"
#include "wasi/wasi_abi.h"
#include "wasi/wasi_imports.h"

#define W(name) Z_wasi_snapshot_preview1Z_##name

#define PAGE 65536u

/* A guest memory of `pages` zeroed pages. */
static inline wasm_rt_memory_t *gmem_new(uint32_t pages)
{
    wasm_rt_memory_t *m = calloc(1, sizeof *m);
    REQUIRE(m);
    m->data = calloc(pages, PAGE);
    REQUIRE(m->data);
    m->pages = m->max_pages = pages;
    m->size = pages * PAGE;
    return m;
}

static inline void gmem_free(wasm_rt_memory_t *m)
{
    if (m)
        free(m->data);
    free(m);
}

static inline uint32_t ld32(const wasm_rt_memory_t *m, uint32_t off)
{
    uint32_t v;
    memcpy(&v, m->data + off, 4);
    return v;
}

static inline uint64_t ld64(const wasm_rt_memory_t *m, uint32_t off)
{
    uint64_t v;
    memcpy(&v, m->data + off, 8);
    return v;
}

static inline void st32(wasm_rt_memory_t *m, uint32_t off, uint32_t v)
{
    memcpy(m->data + off, &v, 4);
}

static inline void st64(wasm_rt_memory_t *m, uint32_t off, uint64_t v)
{
    memcpy(m->data + off, &v, 8);
}

/* Copies s (without NUL) to guest offset off; returns its length. */
static inline uint32_t put_str(wasm_rt_memory_t *m, uint32_t off, const char *s)
{
    size_t n = strlen(s);
    memcpy(m->data + off, s, n);
    return (uint32_t)n;
}

static inline void put_iov(wasm_rt_memory_t *m, uint32_t off, uint32_t ptr, uint32_t len)
{
    st32(m, off, ptr);
    st32(m, off + 4, len);
}

/* ---- image builder ---------------------------------------------------- */

typedef struct img_file {
    const char *path;
    const char *data;
} img_file;

static int img_cmp(const void *a, const void *b)
{
    const char *x = ((const img_file *)a)->path, *y = ((const img_file *)b)->path;
    size_t lx = strlen(x), ly = strlen(y);
    int c = memcmp(x, y, lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Builds an image of the n files (any order; sorted here). malloc'd. */
static inline uint8_t *img_build(const img_file *files, size_t n, size_t *size)
{
    img_file *s = malloc((n ? n : 1) * sizeof *s);
    REQUIRE(s);
    memcpy(s, files, n * sizeof *s);
    qsort(s, n, sizeof *s, img_cmp);
    size_t total = 16 + 16 * n;
    for (size_t i = 0; i < n; i++)
        total += strlen(s[i].path) + strlen(s[i].data);
    uint8_t *img = calloc(1, total);
    REQUIRE(img);
    memcpy(img, "ERYXIMG1", 8);
    wr32(img + 8, (uint32_t)n);
    size_t off = 16 + 16 * n;
    for (size_t i = 0; i < n; i++) {
        uint8_t *e = img + 16 + 16 * i;
        size_t pl = strlen(s[i].path), dl = strlen(s[i].data);
        wr32(e, (uint32_t)off);
        wr32(e + 4, (uint32_t)pl);
        memcpy(img + off, s[i].path, pl);
        off += pl;
        wr32(e + 8, (uint32_t)off);
        wr32(e + 12, (uint32_t)dl);
        memcpy(img + off, s[i].data, dl);
        off += dl;
    }
    free(s);
    *size = total;
    return img;
}

#endif
