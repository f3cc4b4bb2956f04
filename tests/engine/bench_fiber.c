/* Not a test: ns per suspend + resume round trip of a host import (the
 * guest's roundtrips loop), against what a bare context switch costs with
 * glibc swapcontext and (on x86-64) with our eryx__ctx_swap, and
 * eryx__engine_call_on against eryx__engine_call for a call that does not
 * suspend. */
#include <time.h>
#include <ucontext.h>

#include "engine/internal.h"
#include "harness.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static ucontext_t uc_main, uc_other;
static char uc_stack[64 * 1024];

static void uc_loop(void)
{
    for (;;)
        swapcontext(&uc_other, &uc_main);
}

#if ERYX__FIBER_ASM
static void *asm_main_sp, *asm_other_sp;
static void asm_loop(void *arg)
{
    (void)arg;
    for (;;)
        eryx__ctx_swap(&asm_other_sp, asm_main_sp);
}
static _Alignas(16) char asm_stack[64 * 1024];
#endif

static eng e;
static volatile uint32_t sink;
static void tiny(void *arg)
{
    sink = Z_engZ_div_s(&e.inst, 7, 2);
}

int main(void)
{
    enum { N = 200000, M = 2000000 };
    eng_new(&e);
    eryx__fiber *f = eryx__fiber_new(0);
    CHECK(f != NULL);

    getcontext(&uc_other);
    uc_other.uc_stack.ss_sp = uc_stack;
    uc_other.uc_stack.ss_size = sizeof uc_stack;
    uc_other.uc_link = NULL;
    makecontext(&uc_other, uc_loop, 0);
#if ERYX__FIBER_ASM
    {
        uint64_t *sp = (uint64_t *)(asm_stack + sizeof asm_stack);
        *--sp = (uint64_t)(uintptr_t)eryx__ctx_start;
        *--sp = 0;
        *--sp = 0;
        *--sp = (uint64_t)(uintptr_t)asm_loop;
        *--sp = 0;
        *--sp = 0;
        *--sp = 0;
        *--sp = 0x1f80 | (uint64_t)0x37f << 32;
        asm_other_sp = sp;
    }
#endif

    for (int round = 0; round < 3; round++) {
        double t0 = now_ns();
        for (int i = 0; i < N / 10; i++)
            swapcontext(&uc_main, &uc_other);
        double t1 = now_ns();
#if ERYX__FIBER_ASM
        for (int i = 0; i < M; i++)
            eryx__ctx_swap(&asm_main_sp, asm_other_sp);
#endif
        double t2 = now_ns();

        job j = {&e, OP_ROUNDTRIPS, N, 0, 0, 0, 0};
        int rc = eryx__engine_call_on(f, &e.inst.w2c_memory, eng_job_run, &j, NULL);
        while (rc == ERYX__CALL_SUSPENDED)
            rc = eryx__engine_resume(f, NULL);
        CHECK_RC(rc, ERYX__CALL_OK);
        double t3 = now_ns();

        for (int i = 0; i < M; i++)
            eryx__engine_call(&e.inst.w2c_memory, tiny, NULL, NULL);
        double t4 = now_ns();
        for (int i = 0; i < M; i++)
            eryx__engine_call_on(f, &e.inst.w2c_memory, tiny, NULL, NULL);
        double t5 = now_ns();

        printf("round trip: swapcontext %.1f ns, eryx__ctx_swap %.1f ns, "
               "suspend+resume through an import %.1f ns (%s); "
               "call %.1f ns, call_on %.1f ns\n",
               (t1 - t0) / (N / 10), ERYX__FIBER_ASM ? (t2 - t1) / M : 0.0, (t3 - t2) / N,
               ERYX__FIBER_ASM ? "asm switch" : "ucontext switch", (t4 - t3) / M,
               (t5 - t4) / M);
    }
    eryx__fiber_free(f);
    eng_free(&e);
    return 0;
}
