/* ns per eryx__engine_call of a trivial export, and what sigsetjmp costs
 * with and without saving the signal mask (the choice made in call.c). */
#include <setjmp.h>
#include <time.h>

#include "harness.h"

#define N 2000000

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static eng e;
static volatile uint32_t sink;

/* One sigsetjmp per call, in its own frame like eryx__engine_call's. */
__attribute__((noinline)) static void setjmp_once(int savemask)
{
    sigjmp_buf b;
    if (sigsetjmp(b, savemask) == 0)
        sink = 1;
}

static void tiny(void *arg)
{
    sink = Z_engZ_div_s(&e.inst, 7, 2);
}

int main(void)
{
    eng_new(&e);
    for (int round = 0; round < 3; round++) {
        double t0 = now_ns();
        for (int i = 0; i < N; i++)
            eryx__engine_call(&e.inst.w2c_memory, tiny, NULL, NULL);
        double t1 = now_ns();
        for (int i = 0; i < N; i++)
            tiny(NULL);
        double t2 = now_ns();
        for (int i = 0; i < N; i++)
            setjmp_once(0);
        double t3 = now_ns();
        for (int i = 0; i < N; i++)
            setjmp_once(1);
        double t4 = now_ns();
        printf("guarded call %.1f ns, bare call %.1f ns, sigsetjmp(,0) %.1f ns, "
               "sigsetjmp(,1) %.1f ns\n",
               (t1 - t0) / N, (t2 - t1) / N, (t3 - t2) / N, (t4 - t3) / N);
    }
    eng_free(&e);
    return 0;
}
