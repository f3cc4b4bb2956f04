/*
 * The C side of bench/python_binding.py: the operations the Python binding's
 * benchmark times, done through the C API directly, so that the difference
 * is the binding's own cost. Prints "name microseconds-per-operation" lines
 * (best of `rounds` rounds of n operations each).
 *
 *   bench_binding [n] [rounds] [cpu]
 */
#include <eryx.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int use_cpu;

/* Wall time, or with "cpu" the process's CPU time (all threads): on a
 * loaded machine that one measures our work rather than the neighbours'. */
static double now_us(void)
{
    struct timespec ts;
    clock_gettime(use_cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void reply_null(void *ud, eryx_call *call)
{
    (void)ud;
    eryx_call_reply(call, "null", 4);
}

static void check(int rc, const char *what)
{
    if (rc != ERYX_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, eryx_errstr(rc), eryx_errmsg(NULL));
        exit(1);
    }
}

static void run_pass(eryx_sandbox *sb)
{
    eryx_result *res = NULL;
    check(eryx_sandbox_run(sb, "pass", 4, &res), "run");
    eryx_result_free(res);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    use_cpu = argc > 3 && strcmp(argv[3], "cpu") == 0;
    eryx_runtime *rt;
    check(eryx_runtime_new(NULL, &rt), "runtime");
    double best[7];
    for (int i = 0; i < 7; i++)
        best[i] = 1e30;
    eryx_callback cb = {0, "f", NULL, NULL, reply_null, NULL, 0};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = &cb;
    cfg.n_callbacks = 1;
    for (int r = 0; r < rounds; r++) {
        /* 0: new sandbox + run pass + free (Sandbox().execute("pass")). */
        double t = now_us();
        for (int i = 0; i < n; i++) {
            eryx_sandbox *sb;
            check(eryx_sandbox_new(rt, NULL, &sb), "new");
            run_pass(sb);
            eryx_sandbox_free(sb);
        }
        double v = (now_us() - t) / n;
        best[0] = v < best[0] ? v : best[0];
        /* 1: run pass in one session. 2: reset + run pass (a stateless
         * Sandbox's second and later executes). */
        eryx_sandbox *sb;
        check(eryx_sandbox_new(rt, NULL, &sb), "new");
        run_pass(sb);
        t = now_us();
        for (int i = 0; i < n; i++)
            run_pass(sb);
        v = (now_us() - t) / n;
        best[1] = v < best[1] ? v : best[1];
        t = now_us();
        for (int i = 0; i < n; i++) {
            check(eryx_sandbox_reset(sb), "reset");
            run_pass(sb);
        }
        v = (now_us() - t) / n;
        best[2] = v < best[2] ? v : best[2];
        eryx_sandbox_free(sb);
        /* 3: a callback round trip (worker-thread handler, as the binding
         * uses): one run awaiting n calls in turn, minus an empty run. */
        check(eryx_sandbox_new(rt, &cfg, &sb), "new cb");
        char code[128];
        snprintf(code, sizeof code, "for _ in range(%d):\n    await f()\n", n);
        eryx_result *res = NULL;
        check(eryx_sandbox_run(sb, code, strlen(code), &res), "warm");
        eryx_result_free(res);
        t = now_us();
        check(eryx_sandbox_run(sb, code, strlen(code), &res), "cb run");
        eryx_result_free(res);
        double total = now_us() - t;
        t = now_us();
        run_pass(sb);
        v = (total - (now_us() - t)) / n;
        best[3] = v < best[3] ? v : best[3];
        eryx_sandbox_free(sb);
        /* 5: the same with an inline handler (run on the running thread). */
        cb.flags = ERYX_CALLBACK_INLINE;
        check(eryx_sandbox_new(rt, &cfg, &sb), "new cb inline");
        check(eryx_sandbox_run(sb, code, strlen(code), &res), "warm");
        eryx_result_free(res);
        t = now_us();
        check(eryx_sandbox_run(sb, code, strlen(code), &res), "cb run");
        eryx_result_free(res);
        total = now_us() - t;
        t = now_us();
        run_pass(sb);
        v = (total - (now_us() - t)) / n;
        best[5] = v < best[5] ? v : best[5];
        eryx_sandbox_free(sb);
        cb.flags = 0;
        /* 4: pool acquire + run pass + release. */
        eryx_pool *pool;
        check(eryx_pool_new(rt, NULL, &pool), "pool");
        for (int i = 0; i < 3; i++) {
            check(eryx_pool_acquire(pool, 0, &sb), "acquire");
            run_pass(sb);
            check(eryx_pool_release(pool, sb), "release");
        }
        t = now_us();
        for (int i = 0; i < n; i++) {
            check(eryx_pool_acquire(pool, 0, &sb), "acquire");
            run_pass(sb);
            check(eryx_pool_release(pool, sb), "release");
        }
        v = (now_us() - t) / n;
        best[4] = v < best[4] ? v : best[4];
        eryx_pool_free(pool);
    }
    printf("sandbox_new_run_free %.2f\n", best[0]);
    printf("session_run_pass %.2f\n", best[1]);
    printf("reset_run_pass %.2f\n", best[2]);
    printf("callback_round_trip %.2f\n", best[3]);
    printf("callback_round_trip_inline %.2f\n", best[5]);
    printf("pool_acquire_run_release %.2f\n", best[4]);
    eryx_runtime_free(rt);
    return 0;
}
