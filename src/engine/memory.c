/*
 * Linear memories in guard reservations, and funcref/externref tables.
 *
 * Generated code does no bounds checks (WASM_RT_MEMCHECK_SIGNAL_HANDLER):
 * every guest address is data + a 32-bit index + a 32-bit offset, so it lies
 * below data + 8 GiB, and everything past the accessible pages is PROT_NONE.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/internal.h"

/* Makes [p, p + len) of a reservation readable and writable, zero-filled.
 * A fixed anonymous mapping rather than mprotect: the cost is the same, the
 * kernel merges it with its neighbours, and valgrind (which ignores
 * mprotect) then knows the pages are accessible. */
static int commit(uint8_t *p, size_t len)
{
    if (len == 0)
        return 0;
    void *q = mmap(p, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return q == MAP_FAILED ? -1 : 0;
}

int eryx__memory_commit(uint8_t *p, size_t len) { return commit(p, len); }

/* The opposite: [p, p + len) becomes inaccessible reservation again, and
 * whatever was mapped there (private pages, file mappings) is released. */
int eryx__memory_decommit(uint8_t *p, size_t len)
{
    if (len == 0)
        return 0;
    void *q = mmap(p, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
                   -1, 0);
    return q == MAP_FAILED ? -1 : 0;
}

static void memory_failed(wasm_rt_memory_t *m)
{
    m->data = NULL;
    m->pages = m->max_pages = m->size = 0;
    eryx__engine_nomem();
}

static void allocate_memory(wasm_rt_memory_t *m, uint32_t initial_pages, uint32_t max_pages)
{
    if (max_pages > ERYX__MAX_PAGES)
        max_pages = ERYX__MAX_PAGES;
    if (initial_pages > max_pages) {
        memory_failed(m);
        return;
    }
    /* MAP_NORESERVE: the reservation is address space only; pages count
     * against memory only once made accessible and touched. */
    void *p = mmap(NULL, ERYX__MEMORY_MAPPING, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        memory_failed(m);
        return;
    }
    size_t bytes = (size_t)initial_pages * ERYX__WASM_PAGE;
    if (commit(p, bytes) != 0) {
        munmap(p, ERYX__MEMORY_MAPPING);
        memory_failed(m);
        return;
    }
    m->data = p;
    m->pages = initial_pages;
    m->max_pages = max_pages;
    m->size = (uint32_t)bytes;
}

static uint32_t grow_memory(wasm_rt_memory_t *m, uint32_t delta)
{
    uint32_t old = m->pages;
    if (delta == 0)
        return old;
    if (m->data == NULL || delta > m->max_pages - old)
        return UINT32_MAX;
    /* A failed fixed mapping leaves the range as it was (PROT_NONE). */
    if (commit(m->data + (size_t)old * ERYX__WASM_PAGE, (size_t)delta * ERYX__WASM_PAGE) != 0)
        return UINT32_MAX;
    m->pages = old + delta;
    m->size = m->pages * ERYX__WASM_PAGE;
    return old;
}

/* The wasm-rt functions generated code calls are host code for the
 * interrupt (eryx__engine_enter_host): they mmap, malloc and realloc, and
 * must not be jumped out of half-way. A pending interrupt takes effect when
 * they return to the guest. */
void wasm_rt_allocate_memory(wasm_rt_memory_t *m, uint32_t initial_pages, uint32_t max_pages)
{
    eryx__engine_enter_host();
    allocate_memory(m, initial_pages, max_pages);
    /* Instantiation allocates the memory inside a guarded call, after the
     * call pointed %gs at a memory that did not exist yet. */
    if (eryx__engine_tls.mem == m)
        eryx__segment_enter(&eryx__engine_tls, m);
    eryx__engine_leave_host();
}

uint32_t wasm_rt_grow_memory(wasm_rt_memory_t *m, uint32_t delta)
{
    eryx__engine_enter_host();
    uint32_t old = grow_memory(m, delta);
    eryx__engine_leave_host();
    return old;
}

int eryx__memory_reserve(wasm_rt_memory_t *m, uint32_t max_pages)
{
    if (max_pages > ERYX__MAX_PAGES)
        max_pages = ERYX__MAX_PAGES;
    void *p = mmap(NULL, ERYX__MEMORY_MAPPING, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        m->data = NULL;
        m->pages = m->max_pages = m->size = 0;
        return -1;
    }
    m->data = p;
    m->pages = m->size = 0;
    m->max_pages = max_pages;
    return 0;
}

void wasm_rt_free_memory(wasm_rt_memory_t *m)
{
    if (m->data != NULL)
        munmap(m->data, ERYX__MEMORY_MAPPING);
    m->data = NULL;
    m->pages = m->max_pages = m->size = 0;
}

void eryx__memory_set_max(wasm_rt_memory_t *m, uint32_t max_pages)
{
    if (max_pages > ERYX__MAX_PAGES)
        max_pages = ERYX__MAX_PAGES;
    m->max_pages = max_pages < m->pages ? m->pages : max_pages;
}

void eryx__memory_set_limit(wasm_rt_memory_t *m, uint32_t max_pages)
{
    if (max_pages < m->pages)
        max_pages = m->pages;
    if (max_pages < m->max_pages)
        m->max_pages = max_pages;
}

/* Tables: zeroed arrays from malloc. The Python guest has none (its table
 * is static data: guest/w2c_table.h); other modules' tables are made here.
 * A large one has its pages populated in one MADV_POPULATE_WRITE (~1 us a
 * page) before it is cleared, not faulted in one by one (~11 us each on
 * the development VM). */
#define TABLE_POPULATE_MIN (64u * 1024u)

/* bytes of zeroed table data, or NULL. */
static void *table_storage_new(size_t bytes)
{
    uint8_t *p = malloc(bytes);
    if (p == NULL)
        return NULL;
    if (bytes >= TABLE_POPULATE_MIN) {
        uintptr_t lo = ((uintptr_t)p + 4095u) & ~(uintptr_t)4095u;
        uintptr_t hi = ((uintptr_t)p + bytes) & ~(uintptr_t)4095u;
        /* Best effort: without it (kernels before 5.14) the pages fault in. */
        if (hi > lo)
            (void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
    }
    memset(p, 0, bytes);
    return p;
}

/* Tables: grown by copying. A failed allocation at instantiation ends the
 * guarded call (or leaves data NULL, size 0); a failed table.grow returns
 * -1 to the guest. */
#define DEFINE_TABLE(kind, elem_t)                                                            \
    static void allocate_##kind##_table(wasm_rt_##kind##_table_t *t, uint32_t elements,      \
                                        uint32_t max_elements)                               \
    {                                                                                        \
        t->data = NULL;                                                                      \
        t->size = 0;                                                                         \
        t->max_size = max_elements;                                                          \
        if (elements == 0)                                                                   \
            return;                                                                          \
        t->data = table_storage_new((size_t)elements * sizeof(elem_t));                      \
        if (t->data == NULL) {                                                               \
            t->max_size = 0;                                                                 \
            eryx__engine_nomem();                                                            \
            return;                                                                          \
        }                                                                                    \
        t->size = elements;                                                                  \
    }                                                                                        \
    void wasm_rt_free_##kind##_table(wasm_rt_##kind##_table_t *t)                            \
    {                                                                                        \
        free(t->data);                                                                       \
        t->data = NULL;                                                                      \
        t->size = t->max_size = 0;                                                           \
    }                                                                                        \
    static uint32_t grow_##kind##_table(wasm_rt_##kind##_table_t *t, uint32_t delta,         \
                                        elem_t init)                                         \
    {                                                                                        \
        uint32_t old = t->size;                                                              \
        if (delta == 0)                                                                      \
            return old;                                                                      \
        if (delta > t->max_size - old)                                                       \
            return UINT32_MAX;                                                               \
        size_t n = (size_t)old + delta;                                                      \
        elem_t *grown = table_storage_new(n * sizeof(elem_t));                               \
        if (grown == NULL)                                                                   \
            return UINT32_MAX;                                                               \
        if (old > 0)                                                                         \
            memcpy(grown, t->data, (size_t)old * sizeof(elem_t));                            \
        free(t->data);                                                                       \
        for (size_t i = old; i < n; i++)                                                     \
            grown[i] = init;                                                                 \
        t->data = grown;                                                                     \
        t->size = (uint32_t)n;                                                               \
        return old;                                                                          \
    }                                                                                        \
    void wasm_rt_allocate_##kind##_table(wasm_rt_##kind##_table_t *t, uint32_t elements,     \
                                         uint32_t max_elements)                              \
    {                                                                                        \
        eryx__engine_enter_host();                                                           \
        allocate_##kind##_table(t, elements, max_elements);                                  \
        eryx__engine_leave_host();                                                           \
    }                                                                                        \
    uint32_t wasm_rt_grow_##kind##_table(wasm_rt_##kind##_table_t *t, uint32_t delta,        \
                                         elem_t init)                                        \
    {                                                                                        \
        eryx__engine_enter_host();                                                           \
        uint32_t old = grow_##kind##_table(t, delta, init);                                  \
        eryx__engine_leave_host();                                                           \
        return old;                                                                          \
    }

DEFINE_TABLE(funcref, wasm_rt_funcref_t)
DEFINE_TABLE(externref, wasm_rt_externref_t)
