/* Faults that are not guest traps reach the handler that was there before
 * ours, so host bugs still crash. Each case runs in a fork()ed child that
 * sets the "previous" handler itself before eryx__engine_global_init(). */
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

enum fault { HOST_OUTSIDE, HOST_IN_IMPORT, HOST_SIGBUS, KILL_SEGV, TRAP_OUTSIDE };

static void child(enum prev prev, enum fault fault)
{
    eng e;
    set_prev(prev);
    eng_new(&e);
    /* Guest traps still work with any previous handler. */
    CHECK_RC(eng_run(&e, OP_LOAD32, 65536, 0, NULL), WASM_RT_TRAP_OOB);
    if (check_failures)
        _exit(98);      /* a failed check here must not pass for the fault */
    switch (fault) {
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

TEST_MAIN()
