/*
 * The guarded call: the one frame that enters guest code and the only place
 * a trap, proc_exit or host abort lands. Also the per-thread set-up it needs
 * (stack bounds, alternate signal stack), done once per thread.
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

/* Under valgrind, a jump from the alternate signal stack back to a thread
 * stack that happens to lie within --max-stackframe of it is taken for a
 * frame pop, and memcheck then marks everything in between as unusable.
 * Registering the alt stack as a stack makes it a recognised switch. The
 * client requests are a few no-op instructions outside valgrind. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define ERYX__VALGRIND 1
#endif
#endif

_Thread_local eryx__engine_thread eryx__engine_tls
    __attribute__((tls_model("initial-exec")));

/* Below the lowest stack address pthread reports there is the guard page of
 * a pthread stack, or for the main thread the kernel's stack guard gap
 * (256 pages): a runaway frame faults somewhere in there. */
#define STACK_FAULT_SLACK (1u << 20)

static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;
static int thread_key_errno;

/* Runs at thread exit: remove and unmap the alternate stack we installed
 * (glibc reuses thread stacks, and an alt stack left behind would point at
 * freed memory), and free the exception buffer. */
static void thread_exit(void *arg)
{
    eryx__engine_thread *t = arg;
    if (t->altstack != NULL) {
        stack_t cur;
        if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == t->altstack) {
            stack_t off;
            memset(&off, 0, sizeof off);
            off.ss_flags = SS_DISABLE;
            sigaltstack(&off, NULL);
        }
#ifdef ERYX__VALGRIND
        VALGRIND_STACK_DEREGISTER(t->altstack_vg_id);
#endif
        munmap((char *)t->altstack - getpagesize(), t->altstack_len);
        t->altstack = NULL;
    }
    free(t->exc_buf);
    t->exc_buf = NULL;
    t->exc_cap = 0;
    t->ready = 0;
}

static void make_thread_key(void)
{
    thread_key_errno = pthread_key_create(&thread_key, thread_exit);
}

static int stack_bounds(eryx__engine_thread *t)
{
    pthread_attr_t attr;
    void *lo;
    size_t size, guard = 0;
    int err = pthread_getattr_np(pthread_self(), &attr);
    if (err != 0)
        return err;
    err = pthread_attr_getstack(&attr, &lo, &size);
    if (err == 0)
        pthread_attr_getguardsize(&attr, &guard);
    pthread_attr_destroy(&attr);
    if (err != 0)
        return err;
    uintptr_t l = (uintptr_t)lo, slack = guard + STACK_FAULT_SLACK;
    t->stack_fault_lo = l > slack ? l - slack : 0;
    t->stack_hi = l + size;
    return 0;
}

/* Gives the thread an alternate signal stack, unless the embedder (or a
 * sanitizer runtime) already did: then we keep theirs, if it is big enough
 * to run our handler. A guard page below ours catches a handler overflow. */
static int alt_stack(eryx__engine_thread *t)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) != 0)
        return errno;
    if (!(cur.ss_flags & SS_DISABLE) && cur.ss_size >= (size_t)MINSIGSTKSZ)
        return 0;
    size_t page = (size_t)getpagesize();
    size_t len = page + ((ERYX_SIGNAL_STACK_SIZE + page - 1) & ~(page - 1));
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                   -1, 0);
    if (p == MAP_FAILED)
        return errno;
    if (mprotect(p, page, PROT_NONE) != 0) {
        int err = errno;
        munmap(p, len);
        return err;
    }
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = p + page;
    ss.ss_size = len - page;
    if (sigaltstack(&ss, NULL) != 0) {
        int err = errno;
        munmap(p, len);
        return err;
    }
    t->altstack = p + page;
    t->altstack_len = len;
#ifdef ERYX__VALGRIND
    t->altstack_vg_id = VALGRIND_STACK_REGISTER(p + page, p + len);
#endif
    return 0;
}

int eryx__engine_thread_setup(eryx__engine_thread *t)
{
    int err;
    if (eryx__engine_global_init() != 0)
        return -1;
    pthread_once(&thread_key_once, make_thread_key);
    if ((err = thread_key_errno) != 0 || (err = stack_bounds(t)) != 0
        || (err = alt_stack(t)) != 0)
        goto fail;
    if ((err = pthread_setspecific(thread_key, t)) != 0) {
        thread_exit(t);
        goto fail;
    }
    t->tid = (int)syscall(SYS_gettid);
    t->ready = 1;
    return 0;
fail:
    errno = err;
    return -1;
}

int eryx__engine_thread_in_guest(void)
{
    const eryx__engine_thread *t = &eryx__engine_tls;
    return t->jmp != NULL || t->fiber != NULL;
}

int eryx__engine_global_init(void)
{
    return eryx__fault_install();
}

/* Saving the signal mask (sigsetjmp(buf, 1)) costs an rt_sigprocmask system
 * call on every call. Measured with bench_engine_call (tests/engine) on the
 * development VM: a guarded call of a trivial export 10-12 ns against 2.5 ns
 * for the bare call; sigsetjmp(buf, 0) 4-5 ns, sigsetjmp(buf, 1) 1.2-1.3 us
 * (system calls are slow there). Only the signal path needs the mask back,
 * and the handler restores the interrupted context's mask before jumping, so
 * nothing is saved here. wasm_rt_trap, exit and abort jump without a signal
 * and leave the mask as it is. */
int eryx__engine_call(wasm_rt_memory_t *mem, eryx__guest_fn fn, void *arg,
                      eryx__call_info *info)
{
    eryx__engine_thread *t = &eryx__engine_tls;
    sigjmp_buf frame;

    if (t->jmp != NULL || t->fiber != NULL) {
        errno = EBUSY;
        return -1;
    }
    if (!t->ready && eryx__engine_thread_setup(t) != 0)
        return -1;
    t->mem = mem;
    eryx__segment_enter(t, mem);
    t->host_depth = 0;
    t->result = ERYX__CALL_OK;
    t->exit_code = 0;
    t->abort_reason = 0;
    t->unwind = NULL;
    if (sigsetjmp(frame, 0) == 0) {
        t->jmp = &frame;
        atomic_signal_fence(memory_order_seq_cst);
        fn(arg);
    }
    atomic_signal_fence(memory_order_seq_cst);
    t->jmp = NULL;
    t->mem = NULL;
    t->unwind = NULL;
    t->host_depth = 0;
    if (info != NULL) {
        info->exit_code = t->exit_code;
        info->abort_reason = t->abort_reason;
    }
    return t->result;
}

_Noreturn void eryx__engine_unwind(int result)
{
    eryx__engine_thread *t = &eryx__engine_tls;
    if (t->jmp == NULL) {
        fprintf(stderr, "eryx: %s outside a guarded call\n", eryx__engine_strerror(result));
        abort();
    }
    t->result = result;
    siglongjmp(*t->jmp, 1);
}

void eryx__engine_nomem(void)
{
    if (eryx__engine_tls.jmp != NULL)
        eryx__engine_unwind(ERYX__CALL_NOMEM);
}

_Noreturn void eryx__engine_exit(int exit_code)
{
    eryx__engine_tls.exit_code = exit_code;
    eryx__engine_unwind(ERYX__CALL_EXIT);
}

_Noreturn void eryx__engine_abort(int reason)
{
    eryx__engine_tls.abort_reason = reason;
    eryx__engine_unwind(ERYX__CALL_ABORTED);
}

void wasm_rt_trap(wasm_rt_trap_t trap)
{
    eryx__engine_unwind((int)trap);
}

const char *wasm_rt_strerror(wasm_rt_trap_t trap)
{
    return eryx__engine_strerror((int)trap);
}

const char *eryx__engine_strerror(int call_result)
{
    switch (call_result) {
    case ERYX__CALL_OK: return "no error";
    case WASM_RT_TRAP_OOB: return "out-of-bounds memory or table access";
    case WASM_RT_TRAP_INT_OVERFLOW: return "integer overflow";
    case WASM_RT_TRAP_DIV_BY_ZERO: return "integer divide by zero";
    case WASM_RT_TRAP_INVALID_CONVERSION: return "invalid conversion to integer";
    case WASM_RT_TRAP_UNREACHABLE: return "unreachable executed";
    case WASM_RT_TRAP_CALL_INDIRECT: return "indirect call to a null, out-of-range or "
                                            "mistyped table entry";
    case WASM_RT_TRAP_UNCAUGHT_EXCEPTION: return "uncaught wasm exception";
    case WASM_RT_TRAP_EXHAUSTION: return "call stack exhausted";
    case ERYX__CALL_EXIT: return "guest exited";
    case ERYX__CALL_ABORTED: return "call aborted by the host";
    case ERYX__CALL_NOMEM: return "out of memory allocating a memory or table";
    case ERYX__CALL_SUSPENDED: return "guest suspended (waiting to be resumed)";
    case ERYX__CALL_INTERRUPTED: return "interrupted";
    case -1: return "guarded call refused (reentrant, busy fiber, or thread set-up failed)";
    default: return "unknown call result";
    }
}
