/*
 * Fibers: guest code on a stack of its own, so that a host import can return
 * control to the embedder (suspend) with the guest's native frames intact and
 * the embedder can continue it later on any thread (resume). Also the hard
 * interrupt and the host-code bracketing it relies on.
 *
 * Who runs where. The thread side (call_on, resume, run) runs on the
 * caller's stack and never migrates. The fiber side (fiber_main, the guest,
 * its imports, eryx__engine_suspend) runs on the fiber stack and can come
 * back from a switch on another thread: after every switch it re-reads the
 * thread-local state through tls_now(), never a cached address.
 *
 * The state of a call (the sigsetjmp frame a trap jumps to, the memory, the
 * wasm `try` target, the host depth, the exception in flight) belongs to the
 * call, not to a thread: run() loads it into the running thread's
 * eryx__engine_tls before switching to the fiber and saves it back when the
 * fiber suspends. The frame itself lives on the fiber stack (in fiber_main),
 * so the fault handler on whichever thread runs the fiber jumps to it, and
 * the fiber then switches back to that thread's run().
 *
 * Context switch cost, measured with bench_engine_fiber (tests/engine) on the
 * development VM (2 shared vCPUs, a system call ~0.6-1 us; ranges are over
 * quiet and busy runs):
 *   glibc swapcontext, a round trip (2 switches)       2100-4000 ns
 *     (every swapcontext does an rt_sigprocmask system call)
 *   eryx__ctx_swap (fiber_x86_64.S), a round trip      26-48 ns
 *     (of which ~10 ns saving/restoring MXCSR and the x87 control word)
 *   eryx__engine_suspend + eryx__engine_resume         56-110 ns
 *     (a host import suspending and being resumed, guest loop included:
 *     the switches plus the call state moved in and out of TLS, a CAS on
 *     the fiber state and a locked store for the interrupt handshake)
 *   eryx__engine_call_on of a trivial export           51-99 ns
 *     (eryx__engine_call: 7-14 ns)
 * so the hand-written switch is used on x86-64, ucontext elsewhere.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/internal.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define ERYX__VALGRIND 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define ERYX__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ERYX__ASAN 1
#endif
#endif
#ifdef ERYX__ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__SANITIZE_THREAD__)
#define ERYX__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ERYX__TSAN 1
#endif
#endif
#ifdef ERYX__TSAN
#include <sanitizer/tsan_interface.h>
#endif

static void fiber_main(void *arg);
static void leave_host(eryx__engine_thread *t);

/* The thread-local state of the thread running this code *now*. A function
 * on the fiber that spans a switch must not reuse an address computed before
 * it (the compiler may keep %fs-relative addresses in registers); the empty
 * asm keeps GCC from proving this function const and merging calls. */
__attribute__((noinline)) static eryx__engine_thread *tls_now(void)
{
    eryx__engine_thread *t = &eryx__engine_tls;
    __asm__ volatile("" : "+r"(t));
    return t;
}

/* ---- Machine contexts ---------------------------------------------------- */

#if ERYX__FIBER_ASM
/* The stack eryx__ctx_swap expects to pop, from the lowest address: MXCSR and
 * x87 control word, r15, r14, r13, r12, rbx, rbp, return address. The return
 * goes to eryx__ctx_start with r12 = entry, r13 = argument and rsp at the
 * 16-aligned top, as the ABI wants before a call. */
static void ctx_init(eryx__ctx *c, eryx__fiber *f)
{
    uint64_t *sp = (uint64_t *)(f->stack_hi & ~(uintptr_t)15);
    uint32_t mxcsr;
    uint16_t fcw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fcw));
    *--sp = (uint64_t)(uintptr_t)eryx__ctx_start;
    *--sp = 0;                                  /* rbp */
    *--sp = 0;                                  /* rbx */
    *--sp = (uint64_t)(uintptr_t)fiber_main;    /* r12 */
    *--sp = (uint64_t)(uintptr_t)f;             /* r13 */
    *--sp = 0;                                  /* r14 */
    *--sp = 0;                                  /* r15 */
    *--sp = mxcsr | (uint64_t)fcw << 32;
    c->sp = sp;
}

static inline void ctx_switch(eryx__ctx *save, eryx__ctx *to)
{
    eryx__ctx_swap(&save->sp, to->sp);
}
#else
/* makecontext passes int arguments only: the pointer goes in two halves. */
static void uc_entry(unsigned hi, unsigned lo)
{
    fiber_main((void *)(uintptr_t)(((uint64_t)hi << 32) | lo));
}

static void ctx_init(eryx__ctx *c, eryx__fiber *f)
{
    uint64_t p = (uint64_t)(uintptr_t)f;
    if (getcontext(&c->uc) != 0)
        abort();                /* cannot fail on Linux */
    c->uc.uc_stack.ss_sp = (void *)f->stack_lo;
    c->uc.uc_stack.ss_size = f->stack_hi - f->stack_lo;
    c->uc.uc_link = NULL;
    makecontext(&c->uc, (void (*)(void))uc_entry, 2, (unsigned)(p >> 32), (unsigned)p);
}

static inline void ctx_switch(eryx__ctx *save, eryx__ctx *to)
{
    swapcontext(&save->uc, &to->uc);
}
#endif

/* AddressSanitizer must be told about every stack switch (it keeps the
 * bounds of "the" stack per thread). The fiber side records the thread
 * stack it came from, to switch back to it. */
static inline void asan_to_fiber(eryx__fiber *f, void **fake)
{
#ifdef ERYX__ASAN
    __sanitizer_start_switch_fiber(fake, (void *)f->stack_lo, f->stack_hi - f->stack_lo);
#else
    (void)f, (void)fake;
#endif
}

static inline void asan_back_on_thread(void *fake)
{
#ifdef ERYX__ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
    (void)fake;
#endif
}

static inline void asan_on_fiber(eryx__fiber *f)
{
#ifdef ERYX__ASAN
    __sanitizer_finish_switch_fiber(f->asan_fake, &f->asan_host_lo, &f->asan_host_len);
#else
    (void)f;
#endif
}

static inline void asan_to_thread(eryx__fiber *f, int final)
{
#ifdef ERYX__ASAN
    __sanitizer_start_switch_fiber(final ? NULL : &f->asan_fake, f->asan_host_lo,
                                   f->asan_host_len);
#else
    (void)f, (void)final;
#endif
}

/* ThreadSanitizer keeps a shadow call stack and a vector clock per thread:
 * the fiber gets its own, and every switch says where it goes. The switch also orders what the two sides did before it (flags 0),
 * which is the hand-over run() and the fiber make through the call state. */
static inline void tsan_to_fiber(eryx__fiber *f)
{
#ifdef ERYX__TSAN
    f->tsan_host = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(f->tsan_fiber, 0);
#else
    (void)f;
#endif
}

/* Each call gets a new one (the first makes it): the previous call ended by
 * abandoning its context, with fiber_main's frame still on the old shadow
 * stack, which would grow by a frame per call. */
static inline void tsan_fresh_fiber(eryx__fiber *f)
{
#ifdef ERYX__TSAN
    if (f->tsan_fiber != NULL)
        __tsan_destroy_fiber(f->tsan_fiber);
    f->tsan_fiber = __tsan_create_fiber(0);
#else
    (void)f;
#endif
}

static inline void tsan_to_thread(eryx__fiber *f)
{
#ifdef ERYX__TSAN
    __tsan_switch_to_fiber(f->tsan_host, 0);
#else
    (void)f;
#endif
}

/* Forgets stale poisoning of [lo, hi) on the fiber stack: frames that were
 * jumped over or abandoned never unpoisoned their redzones. */
static inline void asan_forget(uintptr_t lo, uintptr_t hi)
{
#ifdef ERYX__ASAN
    if (hi > lo)
        ASAN_UNPOISON_MEMORY_REGION((void *)lo, hi - lo);
#else
    (void)lo, (void)hi;
#endif
}

/* ---- Fibers -------------------------------------------------------------- */

eryx__fiber *eryx__fiber_new(size_t stack_size)
{
    size_t page = (size_t)getpagesize();
    size_t guard = (ERYX_FIBER_GUARD_SIZE + page - 1) & ~(page - 1);
    if (guard == 0)
        guard = page;
    if (stack_size == 0)
        stack_size = ERYX_FIBER_STACK_SIZE;
    if (stack_size > ((size_t)1 << 40)) {
        errno = ENOMEM;
        return NULL;
    }
    stack_size = (stack_size + page - 1) & ~(page - 1);
    if (stack_size < 4 * page)
        stack_size = 4 * page;

    eryx__fiber *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    size_t len = guard + stack_size;
    /* Reserve everything PROT_NONE, then map the stack over it: valgrind
     * (which ignores mprotect) then knows the guard is inaccessible. */
    char *map = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED)
        goto fail;
    if (mmap(map + guard, stack_size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED | MAP_STACK, -1, 0)
        == MAP_FAILED) {
        int err = errno;
        munmap(map, len);
        errno = err;
        goto fail;
    }
    f->map = map;
    f->map_len = len;
    f->stack_lo = (uintptr_t)(map + guard);
    f->stack_hi = (uintptr_t)(map + len);
    atomic_init(&f->state, ERYX__FIBER_IDLE);
    atomic_init(&f->interrupt, 0);
    atomic_init(&f->tid, 0);
#ifdef ERYX__VALGRIND
    f->vg_id = VALGRIND_STACK_REGISTER(map + guard, map + len);
#endif
    return f;
fail:
    free(f);
    return NULL;
}

/* Drops a suspended computation: nothing on the stack is run or needed. */
static void discard(eryx__fiber *f)
{
    asan_forget(f->stack_lo, f->stack_hi);
    f->asan_fake = NULL;
    f->jmp = NULL;
    f->unwind = NULL;
    f->host_depth = 0;
}

void eryx__fiber_free(eryx__fiber *f)
{
    if (f == NULL)
        return;
    asan_forget(f->stack_lo, f->stack_hi);
#ifdef ERYX__VALGRIND
    VALGRIND_STACK_DEREGISTER(f->vg_id);
#endif
#ifdef ERYX__TSAN
    if (f->tsan_fiber != NULL)
        __tsan_destroy_fiber(f->tsan_fiber);
#endif
    munmap(f->map, f->map_len);
    free(f->exc_buf);
    free(f);
}

int eryx__fiber_suspended(const eryx__fiber *f)
{
    return atomic_load_explicit(&f->state, memory_order_acquire) == ERYX__FIBER_SUSPENDED;
}

void eryx__fiber_abandon(eryx__fiber *f)
{
    int s = ERYX__FIBER_SUSPENDED;
    if (atomic_compare_exchange_strong(&f->state, &s, ERYX__FIBER_RUNNING)) {
        discard(f);
        atomic_store_explicit(&f->state, ERYX__FIBER_IDLE, memory_order_release);
    }
}

/* The exception in flight belongs to the call too. Buffers are swapped, not
 * copied: while the fiber runs it holds the thread's buffer and the thread
 * its own; each owner frees what it holds at the end. */
static void swap_exc(eryx__engine_thread *t, eryx__fiber *f)
{
    uint32_t tag = t->exc_tag, size = t->exc_size;
    size_t cap = t->exc_cap;
    void *buf = t->exc_buf;
    t->exc_tag = f->exc_tag;
    t->exc_size = f->exc_size;
    t->exc_cap = f->exc_cap;
    t->exc_buf = f->exc_buf;
    f->exc_tag = tag;
    f->exc_size = size;
    f->exc_cap = cap;
    f->exc_buf = buf;
}

/* The thread side of a call_on or resume: load the call's state into this
 * thread, switch to the fiber, and when it switches back (suspended or
 * finished) take the state out again. */
static int run(eryx__fiber *f, eryx__engine_thread *t, eryx__call_info *info)
{
    void *fake = NULL;
    int rc;

    swap_exc(t, f);
    t->mem = f->mem;
    eryx__segment_enter(t, f->mem);
    t->unwind = f->unwind;
    t->result = ERYX__CALL_OK;
    t->exit_code = 0;
    t->abort_reason = 0;
    t->host_depth = f->host_depth;      /* >= 1: the fiber side is engine code */
    t->jmp = f->jmp;
    t->fiber = f;
    f->yielded = 0;
    /* Publish the thread before the fiber side checks the interrupt flag
     * (a sequentially consistent store against eryx__engine_interrupt's
     * store-flag-then-load-tid: one of them sees the other). */
    atomic_store(&f->tid, t->tid);
    atomic_signal_fence(memory_order_seq_cst);

    asan_to_fiber(f, &fake);
    tsan_to_fiber(f);
    ctx_switch(&f->host, &f->ctx);
    asan_back_on_thread(fake);

    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&f->tid, 0, memory_order_relaxed);
    t->fiber = NULL;
    atomic_signal_fence(memory_order_seq_cst);
    rc = t->result;
    if (f->yielded) {
        f->jmp = t->jmp;
        f->unwind = t->unwind;
        f->host_depth = t->host_depth;
        rc = ERYX__CALL_SUSPENDED;
    }
    t->jmp = NULL;
    t->mem = NULL;
    t->unwind = NULL;
    t->host_depth = 0;
    swap_exc(t, f);
    if (info != NULL) {
        info->exit_code = t->exit_code;
        info->abort_reason = t->abort_reason;
    }
    if (rc == ERYX__CALL_SUSPENDED && atomic_load_explicit(&f->interrupt, memory_order_relaxed)) {
        discard(f);
        rc = ERYX__CALL_INTERRUPTED;
    }
    atomic_store_explicit(&f->state,
                          rc == ERYX__CALL_SUSPENDED ? ERYX__FIBER_SUSPENDED : ERYX__FIBER_IDLE,
                          memory_order_release);
    return rc;
}

/* Common checks of call_on and resume: this thread is free and set up, and
 * the fiber goes from state `from` to running. */
static int claim(eryx__fiber *f, eryx__engine_thread *t, int from)
{
    if (t->jmp != NULL || t->fiber != NULL) {
        errno = EBUSY;
        return -1;
    }
    if (!t->ready && eryx__engine_thread_setup(t) != 0)
        return -1;
    if (!atomic_compare_exchange_strong(&f->state, &from, ERYX__FIBER_RUNNING)) {
        errno = EBUSY;
        return -1;
    }
    return 0;
}

static int interrupted_at_once(eryx__fiber *f, eryx__call_info *info)
{
    discard(f);
    if (info != NULL)
        info->exit_code = info->abort_reason = 0;
    atomic_store_explicit(&f->state, ERYX__FIBER_IDLE, memory_order_release);
    return ERYX__CALL_INTERRUPTED;
}

int eryx__engine_call_on(eryx__fiber *f, wasm_rt_memory_t *mem, eryx__guest_fn fn, void *arg,
                         eryx__call_info *info)
{
    eryx__engine_thread *t = &eryx__engine_tls;
    if (claim(f, t, ERYX__FIBER_IDLE) != 0)
        return -1;
    if (atomic_load_explicit(&f->interrupt, memory_order_relaxed))
        return interrupted_at_once(f, info);
    f->fn = fn;
    f->arg = arg;
    f->mem = mem;
    f->jmp = NULL;
    f->unwind = NULL;
    f->host_depth = 1;
    f->asan_fake = NULL;
    /* The previous call's fiber_main never returned: its frame, at the top
     * of the stack where the new one goes, is still poisoned. */
    asan_forget(f->stack_hi - 4096, f->stack_hi);
    tsan_fresh_fiber(f);
    ctx_init(&f->ctx, f);
    return run(f, t, info);
}

int eryx__engine_resume(eryx__fiber *f, eryx__call_info *info)
{
    eryx__engine_thread *t = &eryx__engine_tls;
    if (claim(f, t, ERYX__FIBER_SUSPENDED) != 0)
        return -1;
    if (atomic_load_explicit(&f->interrupt, memory_order_relaxed))
        return interrupted_at_once(f, info);
    return run(f, t, info);
}

/* Where every fiber call begins, on the fiber stack, and where it ends: a
 * trap, exit, abort or interrupt jumps to `frame` on whatever thread the
 * fiber runs by then. Never returns: the last switch abandons this context
 * (the next call_on builds a new one). */
static void fiber_main(void *arg)
{
    eryx__fiber *f = arg;
    eryx__engine_thread *t = tls_now();
    sigjmp_buf frame;

    asan_on_fiber(f);
    if (sigsetjmp(frame, 0) == 0) {
        t->jmp = &frame;
        atomic_signal_fence(memory_order_seq_cst);
        t->host_depth = 0;              /* guest code from here: interruptible */
        atomic_signal_fence(memory_order_seq_cst);
        if (atomic_load(&f->interrupt))
            eryx__engine_unwind(ERYX__CALL_INTERRUPTED);
        f->fn(f->arg);
    } else {
        asan_forget(f->stack_lo, (uintptr_t)__builtin_frame_address(0));
    }
    /* Possibly another thread than the one we started on. */
    eryx__engine_thread *now = tls_now();
    now->host_depth = 1;
    atomic_signal_fence(memory_order_seq_cst);
    now->jmp = NULL;
    asan_to_thread(f, 1);
    tsan_to_thread(f);
    ctx_switch(&f->ctx, &f->host);
    abort();                            /* never resumed */
}

int eryx__engine_suspend(void)
{
    eryx__engine_thread *t = tls_now();
    eryx__fiber *f = t->fiber;
    if (f == NULL || t->jmp == NULL) {
        errno = EINVAL;
        return -1;
    }
    t->host_depth++;
    f->yielded = 1;
    atomic_signal_fence(memory_order_seq_cst);
    asan_to_thread(f, 0);
    tsan_to_thread(f);
    ctx_switch(&f->ctx, &f->host);
    asan_on_fiber(f);
    /* Resumed, possibly on another thread: run() loaded our state there. */
    leave_host(tls_now());
    return 0;
}

/* ---- Interrupt ----------------------------------------------------------- */

void eryx__engine_interrupt(eryx__fiber *f)
{
    int saved_errno = errno;
    atomic_store(&f->interrupt, 1);
    int tid = atomic_load(&f->tid);
    if (tid != 0)
        syscall(SYS_tgkill, getpid(), tid, ERYX_INTERRUPT_SIGNAL);
    errno = saved_errno;
}

void eryx__fiber_clear_interrupt(eryx__fiber *f)
{
    atomic_store(&f->interrupt, 0);
}

void eryx__engine_enter_host(void)
{
    eryx__engine_thread *t = &eryx__engine_tls;
    t->host_depth++;
    atomic_signal_fence(memory_order_seq_cst);
}

static void leave_host(eryx__engine_thread *t)
{
    atomic_signal_fence(memory_order_seq_cst);
    if (--t->host_depth == 0) {
        eryx__fiber *f = t->fiber;
        atomic_signal_fence(memory_order_seq_cst);
        if (f != NULL && t->jmp != NULL
            && atomic_load_explicit(&f->interrupt, memory_order_relaxed))
            eryx__engine_unwind(ERYX__CALL_INTERRUPTED);
    }
}

void eryx__engine_leave_host(void)
{
    leave_host(&eryx__engine_tls);
}

void eryx__engine_import_entry(void)
{
    const eryx__engine_thread *t = &eryx__engine_tls;
    const eryx__fiber *f = t->fiber;
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    /* Nothing done yet: the trap leaves no host state half-way. */
    if (f != NULL && t->jmp != NULL && sp - f->stack_lo < ERYX_HOST_STACK_RESERVE)
        eryx__engine_unwind(WASM_RT_TRAP_EXHAUSTION);
}

int eryx__engine_interrupt_pending(void)
{
    eryx__fiber *f = eryx__engine_tls.fiber;
    return f != NULL && atomic_load_explicit(&f->interrupt, memory_order_relaxed);
}

/* Called by the interrupt signal handler (fault.c) on the thread that got
 * the signal: 1 if that thread is in guest code of an interrupted fiber,
 * which is the only place the handler may jump out of. */
ERYX__SIGNAL_PATH int eryx__interrupt_here(const eryx__engine_thread *t, uintptr_t sp)
{
    eryx__fiber *f = t->fiber;
    return f != NULL && t->jmp != NULL && t->host_depth == 0 && t->result == ERYX__CALL_OK
           && atomic_load_explicit(&f->interrupt, memory_order_relaxed)
           && (sp == 0 || (sp >= f->stack_lo && sp < f->stack_hi));
}
