/*
 * The process-wide SIGSEGV/SIGBUS handler: a fault in guest code becomes a
 * trap of the thread's active guarded call; any other fault is passed on to
 * whatever handler was installed before ours, so host bugs still crash (or
 * reach the embedder's crash reporter) exactly as they would without eryx.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>

#include "engine/internal.h"

static struct sigaction prev_segv, prev_bus;
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

static void on_fault(int sig, siginfo_t *si, void *ctx)
{
    eryx__engine_thread *t = &eryx__engine_tls;
    int saved_errno = errno;

    if (si->si_code > 0 && t->jmp != NULL) {
        uintptr_t addr = (uintptr_t)si->si_addr;
        wasm_rt_memory_t *mem = t->mem;
        int trap = WASM_RT_TRAP_NONE;

        if (mem != NULL && mem->data != NULL
            && addr - (uintptr_t)mem->data < ERYX__MEMORY_MAPPING)
            trap = WASM_RT_TRAP_OOB;
        else if (addr >= t->stack_fault_lo && addr < t->stack_hi)
            trap = WASM_RT_TRAP_EXHAUSTION;
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
