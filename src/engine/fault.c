/*
 * The process-wide SIGSEGV/SIGBUS handler: a fault in guest code becomes a
 * trap of the thread's active guarded call; any other fault is passed on to
 * whatever handler was installed before ours, so host bugs still crash (or
 * reach the embedder's crash reporter) exactly as they would without eryx.
 * Also the handler of ERYX_INTERRUPT_SIGNAL, which ends a fiber call that is
 * running guest code (see eryx__engine_interrupt).
 *
 * "In guest code" means the faulting instruction lies in the generated guest
 * code (eryx__engine_set_guest_code) and the address is in the call's linear
 * memory reservation (out of bounds) or on the stack the call runs on (call
 * stack exhausted). A fault in host code is never a trap, whatever the
 * address: a WASI import, an embedder callback (on_output, on_trace) or our
 * own wasm_rt_* functions may hold locks or be half-way through an update,
 * and jumping over their frames would leave that behind silently. The
 * stack case follows the same rule: a guard page hit by a guest frame is the
 * guest recursing too deep, the same hit by a host frame is a host crash.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>

#include "engine/internal.h"

static struct sigaction prev_segv, prev_bus, prev_intr;
static int install_errno = -1;          /* -1: not yet; 0: ok; else errno */
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

/* Called for faults that are not ours. Mirrors what the kernel would have
 * done had our handler not been there. */
static void chain(int sig, siginfo_t *si, void *ctx)
{
    const struct sigaction *prev = sig == SIGBUS ? &prev_bus : &prev_segv;
    int from_kernel = si->si_code > 0;

    if (prev->sa_flags & SA_SIGINFO) {
        prev->sa_sigaction(sig, si, ctx);
        return;
    }
    if (prev->sa_handler == SIG_IGN && !from_kernel)
        return;
    if (prev->sa_handler == SIG_DFL || prev->sa_handler == SIG_IGN) {
        /* A real fault cannot be ignored (the kernel forces the default
         * action too). Returning re-executes the faulting instruction, which
         * now kills the process with the right signal; a signal sent with
         * kill() is re-raised instead: it stays pending (the handler blocks
         * it) until we return. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
        if (!from_kernel)
            raise(sig);
        return;
    }
    prev->sa_handler(sig);
}

/* Where the generated guest code lies, when the embedder told us
 * (eryx__engine_set_guest_code). A fault becomes a trap only if the faulting
 * instruction is in it; the interrupt also requires the interrupted
 * instruction to be in it. Host functions that guest code calls without
 * eryx__engine_enter_host (the WASI imports, libc's memcpy) are then never
 * jumped out of either; the caller retries the interrupt. */
static uintptr_t guest_code_lo, guest_code_hi;

void eryx__engine_set_guest_code(const void *lo, const void *hi)
{
    guest_code_lo = (uintptr_t)lo;
    guest_code_hi = (uintptr_t)hi;
}

/* 1 if the interrupted instruction is in the guest code; if_unknown when
 * the embedder never said where that is. Where the instruction pointer
 * cannot be read (an architecture not listed), every instruction counts. */
ERYX__SIGNAL_PATH static int in_guest_code(const void *ctx, int if_unknown)
{
    if (!guest_code_hi)
        return if_unknown;
    const ucontext_t *uc = ctx;
#if defined(__x86_64__)
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.pc;
#else
    uintptr_t pc = guest_code_lo;
    (void)uc;
#endif
    return pc >= guest_code_lo && pc < guest_code_hi;
}

/* The trap a fault at addr in guest code is, or WASM_RT_TRAP_NONE if addr
 * is neither in the call's memory reservation nor on its stack. */
static int fault_trap(const eryx__engine_thread *t, uintptr_t addr)
{
    wasm_rt_memory_t *mem = t->mem;
    if (mem != NULL && mem->data != NULL && addr - (uintptr_t)mem->data < ERYX__MEMORY_MAPPING)
        return WASM_RT_TRAP_OOB;
    /* On a fiber, its stack is "the stack" (and its guard region is where a
     * runaway recursion faults). */
    const eryx__fiber *f = t->fiber;
    uintptr_t lo = f != NULL ? (uintptr_t)f->map : t->stack_fault_lo;
    uintptr_t hi = f != NULL ? f->stack_hi : t->stack_hi;
    if (addr >= lo && addr < hi)
        return WASM_RT_TRAP_EXHAUSTION;
    return WASM_RT_TRAP_NONE;
}

static void on_fault(int sig, siginfo_t *si, void *ctx)
{
    eryx__engine_thread *t = &eryx__engine_tls;
    int saved_errno = errno;

    /* Faults only; a SIGSEGV sent with kill() has si_code <= 0. Undeclared
     * guest code (if_unknown 0): nothing can be told apart, so no trap. */
    if (si->si_code > 0 && t->jmp != NULL && in_guest_code(ctx, 0)) {
        int trap = fault_trap(t, (uintptr_t)si->si_addr);
        if (trap != WASM_RT_TRAP_NONE) {
            /* The call was entered with sigsetjmp(buf, 0) (no mask saved, no
             * syscall), so restore the mask of the interrupted code here:
             * inside the handler `sig` is blocked, and a later fault with it
             * still blocked would kill the process. */
            const ucontext_t *uc = ctx;
            pthread_sigmask(SIG_SETMASK, &uc->uc_sigmask, NULL);
            t->result = trap;
            siglongjmp(*t->jmp, 1);
        }
    }
    errno = saved_errno;
    chain(sig, si, ctx);
}

ERYX__SIGNAL_PATH static uintptr_t interrupted_sp(const void *ctx)
{
    const ucontext_t *uc = ctx;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.sp;
#else
    (void)uc;
    return 0;
#endif
}

/* The interrupt signal: jump out only if this thread is in guest code of an
 * interrupted fiber (never out of host code, nor out of our fault handler on
 * the alternate stack). Anything else (a late delivery after the call ended,
 * a signal someone else sent) goes to the previous handler; SIG_DFL and
 * SIG_IGN both mean ignoring it, since a late delivery of ours must not kill
 * the process whatever the signal's default action. */
ERYX__SIGNAL_PATH static void on_interrupt(int sig, siginfo_t *si, void *ctx)
{
    eryx__engine_thread *t = &eryx__engine_tls;
    int saved_errno = errno;

    if (eryx__interrupt_here(t, interrupted_sp(ctx)) && in_guest_code(ctx, 1)) {
        const ucontext_t *uc = ctx;
        pthread_sigmask(SIG_SETMASK, &uc->uc_sigmask, NULL);
        t->result = ERYX__CALL_INTERRUPTED;
        siglongjmp(*t->jmp, 1);
    }
    if (prev_intr.sa_flags & SA_SIGINFO)
        prev_intr.sa_sigaction(sig, si, ctx);
    else if (prev_intr.sa_handler != SIG_DFL && prev_intr.sa_handler != SIG_IGN)
        prev_intr.sa_handler(sig);
    errno = saved_errno;
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &prev_segv) != 0) {
        install_errno = errno;
        return;
    }
    if (sigaction(SIGBUS, &sa, &prev_bus) != 0) {
        install_errno = errno;
        sigaction(SIGSEGV, &prev_segv, NULL);
        return;
    }
    sa.sa_sigaction = on_interrupt;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    if (sigaction(ERYX_INTERRUPT_SIGNAL, &sa, &prev_intr) != 0) {
        install_errno = errno;
        sigaction(SIGSEGV, &prev_segv, NULL);
        sigaction(SIGBUS, &prev_bus, NULL);
        return;
    }
    install_errno = 0;
}

int eryx__fault_install(void)
{
    pthread_once(&install_once, install);
    if (install_errno != 0) {
        errno = install_errno;
        return -1;
    }
    return 0;
}

int eryx__fault_installed(void)
{
    return __atomic_load_n(&install_errno, __ATOMIC_ACQUIRE) == 0;
}
