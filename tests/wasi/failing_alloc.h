/*
 * Allocation failure on demand, for tests linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup (which
 * affects only the objects linked, not libc's own calls): set fail_at to N
 * and count to 0, and the N-th allocation from then on returns NULL.
 * Include in one file per test program.
 */
#ifndef ERYX_TEST_FAILING_ALLOC_H
#define ERYX_TEST_FAILING_ALLOC_H

#include <stddef.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);

static long fail_at;    /* the allocation to fail (1-based), 0: none */
static long count;      /* allocations since count was last set to 0 */

static int failing(void)
{
    return fail_at && ++count == fail_at;
}

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

void *__wrap_malloc(size_t n) { return failing() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return failing() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return failing() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return failing() ? NULL : __real_strdup(s); }

#endif
