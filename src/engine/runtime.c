/*
 * The process-wide part of wasm-rt.h (init, function-type and tag registries)
 * and wasm exceptions, whose state is per thread.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

void wasm_rt_init(void)
{
    /* wasm_rt_init has no error return; a failure shows as
     * wasm_rt_is_initialized() == false and in eryx__engine_global_init(). */
    (void)eryx__engine_global_init();
}

bool wasm_rt_is_initialized(void)
{
    return eryx__fault_installed();
}

/* Nothing is released: modules run their init_module (which registers their
 * function types and tags) once per process, so the registries must outlive
 * any instance, and the fault handler may be serving other threads. */
void wasm_rt_free(void) {}

/* Function types are compared by signature; the index (1-based, so that 0
 * never matches a registered type) is what call_indirect compares. */
typedef struct func_type {
    uint32_t params, results;
    int *types;                 /* params then results */
} func_type;

static pthread_mutex_t types_lock = PTHREAD_MUTEX_INITIALIZER;
static func_type *types;
static uint32_t types_len, types_cap;

/* Host code for the interrupt (it locks and allocates), though in practice
 * it runs at module init, outside any call. */
uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...)
{
    uint32_t n = params + results, i, index = 0;
    int *sig;
    va_list ap;

    eryx__engine_enter_host();
    sig = malloc((n ? n : 1) * sizeof *sig);
    if (sig == NULL)
        abort();            /* at module init, before any sandbox exists */
    va_start(ap, results);
    for (i = 0; i < n; i++)
        sig[i] = va_arg(ap, int);   /* wasm_rt_type_t is promoted to int */
    va_end(ap);

    pthread_mutex_lock(&types_lock);
    for (i = 0; i < types_len; i++) {
        if (types[i].params == params && types[i].results == results
            && memcmp(types[i].types, sig, n * sizeof *sig) == 0) {
            index = i + 1;
            break;
        }
    }
    if (index == 0) {
        if (types_len == types_cap) {
            uint32_t cap = types_cap ? types_cap * 2 : 64;
            func_type *grown = realloc(types, cap * sizeof *grown);
            if (grown == NULL)
                abort();
            types = grown;
            types_cap = cap;
        }
        types[types_len] = (func_type){params, results, sig};
        sig = NULL;
        index = ++types_len;
    }
    pthread_mutex_unlock(&types_lock);
    free(sig);
    eryx__engine_leave_host();
    return index;
}

uint32_t wasm_rt_register_tag(uint32_t size)
{
    static _Atomic uint32_t next_tag;
    (void)size;                 /* exception payloads are sized at throw */
    return next_tag++;
}

/* The realloc makes this host code for the interrupt. */
void wasm_rt_load_exception(uint32_t tag, uint32_t size, const void *values)
{
    eryx__engine_thread *t = &eryx__engine_tls;
    if (size > t->exc_cap) {
        size_t cap = size < 256 ? 256 : size;
        eryx__engine_enter_host();
        void *buf = realloc(t->exc_buf, cap);
        if (buf == NULL)
            eryx__engine_unwind(ERYX__CALL_NOMEM);
        t->exc_buf = buf;
        t->exc_cap = cap;
        eryx__engine_leave_host();
    }
    t->exc_tag = tag;
    t->exc_size = size;
    if (size != 0)
        memcpy(t->exc_buf, values, size);
}

/* The target was set by the generated code's wasm_rt_try (sigsetjmp with the
 * mask saved), so longjmp restores that mask. No target: the exception
 * escapes the outermost wasm frame and ends the guarded call. */
WASM_RT_NO_RETURN void wasm_rt_throw(void)
{
    jmp_buf *target = eryx__engine_tls.unwind;
    if (target == NULL)
        eryx__engine_unwind(WASM_RT_TRAP_UNCAUGHT_EXCEPTION);
    longjmp(*target, WASM_RT_TRAP_UNCAUGHT_EXCEPTION);
}

WASM_RT_UNWIND_TARGET *wasm_rt_get_unwind_target(void)
{
    return eryx__engine_tls.unwind;
}

void wasm_rt_set_unwind_target(WASM_RT_UNWIND_TARGET *target)
{
    eryx__engine_tls.unwind = target;
}

uint32_t wasm_rt_exception_tag(void)
{
    return eryx__engine_tls.exc_tag;
}

uint32_t wasm_rt_exception_size(void)
{
    return eryx__engine_tls.exc_size;
}

void *wasm_rt_exception(void)
{
    return eryx__engine_tls.exc_buf;
}
