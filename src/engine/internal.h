/*
 * Engine internals shared by its files: the per-thread state that the fault
 * handler, the guarded call and the wasm-rt functions all consult.
 */
#ifndef ERYX_ENGINE_INTERNAL_H
#define ERYX_ENGINE_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "engine/engine.h"

/* Bytes mapped for one linear memory: the guard reservation plus one more
 * wasm page, so that the widest access (a 16-byte v128 at the largest address
 * + offset) that starts inside the reservation also ends inside our mapping. */
#define ERYX__WASM_PAGE 65536u
#define ERYX__MEMORY_MAPPING (ERYX_MEMORY_RESERVATION + ERYX__WASM_PAGE)

/* wasm_rt_memory_t.size is a uint32_t: 65536 pages would wrap it to 0. */
#define ERYX__MAX_PAGES 65535u

/* The state of one thread as far as guest code is concerned. The fault
 * handler reads `jmp` and `mem`, so they are volatile: a signal can arrive
 * between any two instructions of eryx__engine_call. */
typedef struct eryx__engine_thread {
    sigjmp_buf *volatile jmp;           /* frame of the active call, or NULL */
    wasm_rt_memory_t *volatile mem;     /* its memory (may be NULL) */
    volatile int result;                /* how the call ended, set before jumping */
    int exit_code;
    int abort_reason;
    int ready;                          /* stack bounds and alt stack set up */
    jmp_buf *unwind;                    /* innermost wasm `try`, or NULL */
    uintptr_t stack_fault_lo;           /* faults in [lo, hi) are exhaustion */
    uintptr_t stack_hi;
    void *altstack;                     /* our mapping, or NULL if not ours */
    size_t altstack_len;
    unsigned altstack_vg_id;            /* its valgrind stack id, if any */
    uint32_t exc_tag;                   /* the active wasm exception */
    uint32_t exc_size;
    size_t exc_cap;
    void *exc_buf;
} eryx__engine_thread;

/* Initial-exec TLS: one %fs-relative access, no __tls_get_addr call that
 * could allocate inside the signal handler. The struct is small enough for
 * glibc's static TLS surplus should the library be dlopen()ed. */
extern _Thread_local eryx__engine_thread eryx__engine_tls
    __attribute__((tls_model("initial-exec")));

/* fault.c: installs the SIGSEGV/SIGBUS handler once. */
int eryx__fault_install(void);
int eryx__fault_installed(void);

/* call.c: ends the active call with ERYX__CALL_NOMEM; returns if there is
 * none (the allocator then reports failure through its out-parameter). */
void eryx__engine_nomem(void);

/* call.c: ends the active call with `result` (a wasm_rt_trap_t or
 * ERYX__CALL_*); aborts the process if there is none (a host bug). */
_Noreturn void eryx__engine_unwind(int result);

#endif
