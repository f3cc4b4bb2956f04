/* Faults that are not guest traps reach the handler that was there before
 * ours, so host bugs still crash. Each case runs in a fork()ed child that
 * sets the "previous" handler itself before eryx__engine_global_init().
 * A fault in host code called from guest code is a host crash even where a
 * guest fault would be a trap: at an address in the guest's memory
 * reservation, or on the guard of the stack the call runs on (thread or
 * fiber); the same child first checks that guest faults there still trap. */
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Not NULL: UBSan would report a null dereference itself. */
static volatile uintptr_t wild = 16;

static void host_fault(void)
{
    *(volatile int *)wild = 1;
}

static uint32_t faulting_import(struct Z_host_instance_t *host, uint32_t x)
{
    host_fault();
    return x;
}

/* The memory of the instance whose import runs (child() sets it). */
static wasm_rt_memory_t *import_mem;

/* A host bug writing past the end of guest memory, inside its reservation
 * (where a guest access is an out-of-bounds trap). */
static uint32_t import_writes_guest_oob(struct Z_host_instance_t *host, uint32_t x)
{
    volatile uint8_t *p = import_mem->data + import_mem->size + 4096;
    *p = 1;
    return x;
}

/* A host function recursing until it overflows the stack it runs on. The
 * limit is never reached; it keeps the compiler from seeing an endless
 * recursion, and the use of pad after the call from making it a loop. */
static volatile uint32_t never = UINT32_MAX;

static uint32_t host_recurse(uint32_t n)
{
    volatile char pad[512];
    pad[0] = (char)n;
    if (n >= never)
        return 0;
    return host_recurse(n + 1) + (uint32_t)pad[0];
}

static uint32_t import_overflows_stack(struct Z_host_instance_t *host, uint32_t x)
{
    return host_recurse(x);
}

static void on_segv_info(int sig, siginfo_t *si, void *ctx)
{
    _exit(sig == SIGSEGV && si->si_addr == (void *)wild ? 42 : 99);
}

static void on_segv_plain(int sig)
{
    _exit(sig == SIGSEGV ? 43 : 99);
}

enum prev { PREV_DFL, PREV_IGN, PREV_INFO, PREV_PLAIN };

static void set_prev(enum prev prev)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    switch (prev) {
    case PREV_DFL: sa.sa_handler = SIG_DFL; break;
    case PREV_IGN: sa.sa_handler = SIG_IGN; break;
    case PREV_INFO: sa.sa_sigaction = on_segv_info; sa.sa_flags = SA_SIGINFO; break;
    case PREV_PLAIN: sa.sa_handler = on_segv_plain; break;
    }
    CHECK_EQ(sigaction(SIGSEGV, &sa, NULL), 0);
    sa.sa_handler = SIG_DFL;
    sa.sa_flags = 0;
    CHECK_EQ(sigaction(SIGBUS, &sa, NULL), 0);
}

enum fault {
    HOST_OUTSIDE, HOST_IN_IMPORT, HOST_SIGBUS, KILL_SEGV, TRAP_OUTSIDE,
    IMPORT_GUEST_OOB, IMPORT_GUEST_OOB_FIBER, IMPORT_STACK_OVERFLOW, IMPORT_STACK_OVERFLOW_FIBER
};

/* Runs op on the fiber; its small stack overflows quickly. */
static int run_on_fiber(eryx__fiber *f, eng *e, enum op op)
{
    job j = {e, op, 0, 0, 0, 0, 0};
    return eryx__engine_call_on(f, &e->inst.w2c_memory, eng_job_run, &j, NULL);
}

static void child(enum prev prev, enum fault fault)
{
    eng e;
    set_prev(prev);
    eng_new(&e);
    eryx__fiber *fib = eryx__fiber_new(64u << 10);
    CHECK(fib != NULL);
    /* Guest traps still work with any previous handler, on a thread's stack
     * and on a fiber's. */
    CHECK_RC(eng_run(&e, OP_LOAD32, 65536, 0, NULL), WASM_RT_TRAP_OOB);
    CHECK_RC(eng_run(&e, OP_RECURSE, 0, 0, NULL), WASM_RT_TRAP_EXHAUSTION);
    CHECK_RC(run_on_fiber(fib, &e, OP_RECURSE), WASM_RT_TRAP_EXHAUSTION);
    if (check_failures)
        _exit(98);      /* a failed check here must not pass for the fault */
    import_mem = &e.inst.w2c_memory;
    switch (fault) {
    case IMPORT_GUEST_OOB:
        e.host.on_ping = import_writes_guest_oob;
        eng_run(&e, OP_PING, 1, 0, NULL);
        break;
    case IMPORT_GUEST_OOB_FIBER:
        e.host.on_ping = import_writes_guest_oob;
        run_on_fiber(fib, &e, OP_PING);
        break;
    case IMPORT_STACK_OVERFLOW:
        e.host.on_ping = import_overflows_stack;
        eng_run(&e, OP_PING, 1, 0, NULL);
        break;
    case IMPORT_STACK_OVERFLOW_FIBER:
        e.host.on_ping = import_overflows_stack;
        run_on_fiber(fib, &e, OP_PING);
        break;
    case HOST_OUTSIDE:
        host_fault();
        break;
    case HOST_IN_IMPORT:
        e.host.on_ping = faulting_import;
        eng_run(&e, OP_PING, 1, 0, NULL);
        break;
    case HOST_SIGBUS: {
        /* A file mapping past the end of its file: SIGBUS, not ours. */
        FILE *f = tmpfile();
        CHECK(f != NULL);
        volatile char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fileno(f), 0);
        CHECK(p != MAP_FAILED);
        (void)p[0];
        break;
    }
    case KILL_SEGV:
        kill(getpid(), SIGSEGV);
        break;
    case TRAP_OUTSIDE:
        wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE);
    }
    _exit(0);       /* survived: the test fails */
}

/* Runs child(prev, fault) and checks it died by `sig` (or exited `code`). */
static void expect(enum prev prev, enum fault fault, int sig, int code)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        child(prev, fault);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (sig) {
        if (!WIFSIGNALED(status))
            fprintf(stderr, "prev %d fault %d: exited %d\n", prev, fault, WEXITSTATUS(status));
        CHECK(WIFSIGNALED(status));
        CHECK_EQ(WTERMSIG(status), sig);
    } else {
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), code);
    }
}

TEST_CASE(default_host_outside)
{
    expect(PREV_DFL, HOST_OUTSIDE, SIGSEGV, 0);
}

TEST_CASE(default_host_in_import)
{
    expect(PREV_DFL, HOST_IN_IMPORT, SIGSEGV, 0);
}

TEST_CASE(ignored_host_outside)
{
    expect(PREV_IGN, HOST_OUTSIDE, SIGSEGV, 0);
}

TEST_CASE(siginfo_host_outside)
{
    expect(PREV_INFO, HOST_OUTSIDE, 0, 42);
}

TEST_CASE(siginfo_host_in_import)
{
    expect(PREV_INFO, HOST_IN_IMPORT, 0, 42);
}

TEST_CASE(plain_host_outside)
{
    expect(PREV_PLAIN, HOST_OUTSIDE, 0, 43);
}

TEST_CASE(default_host_sigbus)
{
    expect(PREV_DFL, HOST_SIGBUS, SIGBUS, 0);
}

TEST_CASE(default_kill_segv)
{
    expect(PREV_DFL, KILL_SEGV, SIGSEGV, 0);
}

TEST_CASE(default_trap_outside)
{
    expect(PREV_DFL, TRAP_OUTSIDE, SIGABRT, 0);
}

TEST_CASE(import_guest_oob)
{
    expect(PREV_DFL, IMPORT_GUEST_OOB, SIGSEGV, 0);
}

TEST_CASE(import_guest_oob_fiber)
{
    expect(PREV_DFL, IMPORT_GUEST_OOB_FIBER, SIGSEGV, 0);
}

TEST_CASE(import_stack_overflow)
{
    expect(PREV_DFL, IMPORT_STACK_OVERFLOW, SIGSEGV, 0);
}

TEST_CASE(import_stack_overflow_fiber)
{
    expect(PREV_DFL, IMPORT_STACK_OVERFLOW_FIBER, SIGSEGV, 0);
}

TEST_MAIN()
