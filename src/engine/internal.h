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
    struct eryx__fiber *volatile fiber; /* the fiber this thread runs, or NULL */
    volatile int host_depth;            /* > 0: in host code (imports, wasm_rt_*) */
    int tid;                            /* kernel thread id (the interrupt target) */
    uintptr_t segment_base;             /* %gs base last set here (segment.c), 0: unknown */
} eryx__engine_thread;

/* Initial-exec TLS: one %fs-relative access, no __tls_get_addr call that
 * could allocate inside the signal handler. The struct is small enough for
 * glibc's static TLS surplus should the library be dlopen()ed. */
extern _Thread_local eryx__engine_thread eryx__engine_tls
    __attribute__((tls_model("initial-exec")));

/* A saved machine context: where a switch resumes. On x86-64 it is the
 * stack pointer of a stack holding the callee-saved registers (fiber_x86_64.S);
 * elsewhere, or with ERYX_FIBER_UCONTEXT, a glibc ucontext. */
#if defined(__x86_64__) && !ERYX_FIBER_UCONTEXT
#define ERYX__FIBER_ASM 1
typedef struct eryx__ctx {
    void *sp;
} eryx__ctx;
#else
#include <ucontext.h>
#define ERYX__FIBER_ASM 0
typedef struct eryx__ctx {
    ucontext_t uc;
} eryx__ctx;
#endif

enum { ERYX__FIBER_IDLE, ERYX__FIBER_RUNNING, ERYX__FIBER_SUSPENDED };

/* A fiber: a stack for guest code and the state of the call running on it.
 * While the fiber runs, the call's state lives in the running thread's
 * eryx__engine_tls (where the fault handler and wasm-rt find it); while it is
 * suspended, the part that must survive (frame, memory, wasm `try` target,
 * host depth, exception) is saved here, to be loaded into whichever thread
 * resumes it. */
struct eryx__fiber {
    eryx__ctx ctx;                      /* the fiber side, while not running */
    eryx__ctx host;                     /* the thread side, while running */
    _Atomic int state;                  /* ERYX__FIBER_* */
    _Atomic int interrupt;              /* sticky: eryx__engine_interrupt */
    _Atomic int tid;                    /* thread running guest code on it, or 0 */
    char *map;                          /* guard + stack mapping */
    size_t map_len;
    uintptr_t stack_lo, stack_hi;       /* the usable stack */
    unsigned vg_id;                     /* valgrind stack id */
    eryx__guest_fn fn;                  /* the call */
    void *arg;
    wasm_rt_memory_t *mem;
    sigjmp_buf *jmp;                    /* saved call state (see above) */
    jmp_buf *unwind;
    int host_depth;
    int yielded;                        /* set by suspend: the switch back is a pause */
    uint32_t exc_tag, exc_size;
    size_t exc_cap;
    void *exc_buf;
    void *asan_fake;                    /* AddressSanitizer switch bookkeeping */
    const void *asan_host_lo;
    size_t asan_host_len;
    void *tsan_fiber;                   /* ThreadSanitizer's fiber for the stack */
    void *tsan_host;                    /* and the thread side's, while running */
};

/* fiber_x86_64.S: saves the callee-saved registers on the current stack,
 * stores the stack pointer to *save and continues the context saved at `to`.
 * eryx__ctx_start is where a new context begins: it calls r12(r13). */
void eryx__ctx_swap(void **save, void *to);
void eryx__ctx_start(void);

/* fiber.c: 1 if the interrupt signal arriving on thread t, which was at
 * stack pointer sp (0: unknown), may end t's fiber call. */
/* On the interrupt signal's path: ThreadSanitizer delivers that signal at
 * once, possibly inside its own runtime (see ERYX_TSAN in CMakeLists.txt),
 * so the code that decides whether to jump must not call back into it. */
#if defined(__has_attribute) && defined(__has_feature)
#if __has_feature(thread_sanitizer) && __has_attribute(disable_sanitizer_instrumentation)
#define ERYX__SIGNAL_PATH __attribute__((disable_sanitizer_instrumentation))
#endif
#endif
#ifndef ERYX__SIGNAL_PATH
#define ERYX__SIGNAL_PATH
#endif
ERYX__SIGNAL_PATH int eryx__interrupt_here(const eryx__engine_thread *t, uintptr_t sp);

/* fault.c: installs the SIGSEGV/SIGBUS and interrupt handlers once. */
int eryx__fault_install(void);
int eryx__fault_installed(void);

/* memory.c: makes [p, p + len) of a reservation zero-filled read-write
 * anonymous memory (commit) or PROT_NONE reservation again (decommit),
 * releasing what was mapped there. 0, or -1 with errno set. */
int eryx__memory_commit(uint8_t *p, size_t len);
int eryx__memory_decommit(uint8_t *p, size_t len);

/* segment.c: points %gs at mem's data if the guest addresses memory
 * through it (eryx__engine_use_segment_base) and it points elsewhere.
 * Called wherever guest code is entered. */
void eryx__segment_enter(eryx__engine_thread *t, const wasm_rt_memory_t *mem);

/* call.c: the once-per-thread set-up (stack bounds, alt stack, tid);
 * 0, or -1 with errno set. */
int eryx__engine_thread_setup(eryx__engine_thread *t);

/* call.c: ends the active call with ERYX__CALL_NOMEM; returns if there is
 * none (the allocator then reports failure through its out-parameter). */
void eryx__engine_nomem(void);

/* call.c: ends the active call with `result` (a wasm_rt_trap_t or
 * ERYX__CALL_*); aborts the process if there is none (a host bug). */
_Noreturn void eryx__engine_unwind(int result);

#endif
