/*
 * Sandbox costs, measured in one process:
 *   - runtime and sandbox creation, first run;
 *   - an execution of `pass` in an existing sandbox (per-run overhead);
 *   - the round trip of `await noop()` inside one execution (median over
 *     many calls, timed in the guest);
 *   - one execution gathering 100 callbacks.
 * Prints one JSON object. usage: bench_sandbox [repeats]
 */
#include <eryx.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void noop(void *ud, eryx_call *call)
{
    (void)ud;
    eryx_call_reply(call, "null", 4);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[(int)(p * (n - 1))];
}

static eryx_result *run(eryx_sandbox *sb, const char *code)
{
    eryx_result *r = NULL;
    int rc = eryx_sandbox_run(sb, code, strlen(code), &r);
    if (rc != ERYX_OK) {
        fprintf(stderr, "run failed: %s %s %s\n", eryx_errstr(rc), eryx_errmsg(sb),
                r && r->traceback ? r->traceback : "");
        exit(1);
    }
    return r;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20;
    static const eryx_callback cb = {"noop", NULL, NULL, noop, NULL, ERYX_CALLBACK_INLINE};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = &cb;
    cfg.n_callbacks = 1;
    cfg.max_callbacks = 1000000;

    double t = now_us();
    eryx_runtime *rt = NULL;
    if (eryx_runtime_new(NULL, &rt) != ERYX_OK)
        return 1;
    double runtime_us = now_us() - t;

    double *create = calloc((size_t)n, sizeof *create), *first = calloc((size_t)n, sizeof *first);
    eryx_sandbox *sb = NULL;
    for (int i = 0; i < n; i++) {
        t = now_us();
        if (eryx_sandbox_new(rt, &cfg, &sb) != ERYX_OK)
            return 1;
        create[i] = now_us() - t;
        t = now_us();
        eryx_result_free(run(sb, "pass"));
        first[i] = now_us() - t;
        if (i < n - 1)
            eryx_sandbox_free(sb);
    }

    /* `pass` in a warm sandbox. */
    int runs = 2000;
    double *pass = calloc((size_t)runs, sizeof *pass);
    for (int i = 0; i < runs; i++) {
        t = now_us();
        eryx_result_free(run(sb, "pass"));
        pass[i] = now_us() - t;
    }

    /* noop round trips, timed inside the guest with perf_counter_ns. */
    eryx_result_free(run(sb, "import time\nawait noop()"));
    eryx_result *r = run(sb, "import time\n"
                             "ts = []\n"
                             "for _ in range(20000):\n"
                             "    t0 = time.perf_counter_ns()\n"
                             "    await noop()\n"
                             "    ts.append(time.perf_counter_ns() - t0)\n"
                             "ts.sort()\n"
                             "print(ts[len(ts) // 2], ts[len(ts) * 99 // 100])");
    double rt_p50 = 0, rt_p99 = 0;
    sscanf(r->out, "%lf %lf", &rt_p50, &rt_p99);
    eryx_result_free(r);

    /* One execution gathering 100 callbacks. */
    double *gather = calloc((size_t)n, sizeof *gather);
    for (int i = 0; i < n; i++) {
        t = now_us();
        eryx_result_free(run(sb, "import asyncio\nawait asyncio.gather(*(noop() for _ in "
                                 "range(100)))"));
        gather[i] = now_us() - t;
    }

    printf("{\"runtime_new_us\": %.0f, \"sandbox_new_p50_us\": %.0f, "
           "\"sandbox_new_p99_us\": %.0f, \"first_run_p50_us\": %.0f, "
           "\"pass_p50_us\": %.1f, \"pass_p99_us\": %.1f, \"noop_roundtrip_p50_ns\": %.0f, "
           "\"noop_roundtrip_p99_ns\": %.0f, \"gather100_p50_us\": %.0f}\n",
           runtime_us, percentile(create, n, 0.5), percentile(create, n, 0.99),
           percentile(first, n, 0.5), percentile(pass, runs, 0.5), percentile(pass, runs, 0.99),
           rt_p50, rt_p99, percentile(gather, n, 0.5));
    eryx_sandbox_free(sb);
    eryx_runtime_free(rt);
    free(create);
    free(first);
    free(pass);
    free(gather);
    return 0;
}
