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
#include <pthread.h>
#include <unistd.h>

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

/* Private memory of the process (kB): Private_Clean + Private_Dirty. */
static long private_kb(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long total = 0, v;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "Private_Clean: %ld kB", &v) == 1 ||
            sscanf(line, "Private_Dirty: %ld kB", &v) == 1)
            total += v;
    }
    if (f)
        fclose(f);
    return total;
}

static eryx_result *run(eryx_sandbox *sb, const char *code);

/* Private memory per idle sandbox: n sandboxes, each after one `pass`. */
static double idle_kb_per_sandbox(eryx_runtime *rt, int n)
{
    eryx_sandbox **sbs = calloc((size_t)n, sizeof *sbs);
    long before = private_kb();
    for (int i = 0; i < n; i++) {
        if (eryx_sandbox_new(rt, NULL, &sbs[i]) != ERYX_OK)
            exit(1);
        eryx_result *r = NULL;
        eryx_sandbox_run(sbs[i], "pass", 4, &r);
        eryx_result_free(r);
    }
    double per = (double)(private_kb() - before) / n;
    for (int i = 0; i < n; i++)
        eryx_sandbox_free(sbs[i]);
    free(sbs);
    return per;
}

struct churn {
    eryx_runtime *rt;
    double seconds;
    long done;
};

/* create -> run a small snippet -> free, for a fixed time. */
static void *churn(void *arg)
{
    struct churn *c = arg;
    double end = now_us() + c->seconds * 1e6;
    while (now_us() < end) {
        eryx_sandbox *sb = NULL;
        eryx_result *r = NULL;
        if (eryx_sandbox_new(c->rt, NULL, &sb) != ERYX_OK)
            exit(1);
        if (eryx_sandbox_run(sb, "x = sum(range(100))", 19, &r) == ERYX_OK)
            c->done++;
        eryx_result_free(r);
        eryx_sandbox_free(sb);
    }
    return NULL;
}

static double throughput_2_threads(eryx_runtime *rt)
{
    struct churn c[2] = {{rt, 3.0, 0}, {rt, 3.0, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, churn, &c[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return (c[0].done + c[1].done) / 3.0;
}

struct looper {
    eryx_sandbox *sb;
    const char *code;
    volatile int started;
    double returned_us;
};

static void *loop_until_stopped(void *arg)
{
    struct looper *l = arg;
    eryx_result *r = NULL;
    l->started = 1;
    eryx_sandbox_run(l->sb, l->code, strlen(l->code), &r);
    l->returned_us = now_us();
    eryx_result_free(r);
    return NULL;
}

/* Time from eryx_sandbox_interrupt() to the run returning, for code that
 * checks for it (a Python loop: the graceful stop) and code stuck in C (the
 * hard stop, which comes after the grace period). */
static void interrupt_latency(eryx_runtime *rt, const char *code, uint64_t grace_ns,
                              double *p50, double *p99)
{
    enum { N = 20 };
    double lat[N];
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.interrupt_grace_ns = grace_ns;
    eryx_sandbox *sb = NULL;
    for (int i = 0; i < N; i++) {
        /* A session survives a graceful stop: it is reused (warm); a hard
         * stop kills it: a fresh one each time. */
        if (!sb && eryx_sandbox_new(rt, &cfg, &sb) != ERYX_OK)
            exit(1);
        struct looper l = {sb, code, 0, 0};
        pthread_t t;
        pthread_create(&t, NULL, loop_until_stopped, &l);
        while (!l.started)
            ;
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        double t0 = now_us();
        eryx_sandbox_interrupt(sb);
        pthread_join(t, NULL);
        lat[i] = l.returned_us - t0;
        if (eryx_sandbox_is_dead(sb)) {
            eryx_sandbox_free(sb);
            sb = NULL;
        }
    }
    eryx_sandbox_free(sb);
    *p50 = percentile(lat, N, 0.5);
    *p99 = percentile(lat, N, 0.99);
}

/* The pool: acquire (an idle sandbox, reset when it was released), the
 * first `pass` in it, and the release (the reset back to the image). */
static void pool_costs(eryx_runtime *rt, int n, double out[4])
{
    eryx_pool_config pc;
    eryx_pool_config_default(&pc);
    pc.max_size = 4;
    pc.min_idle = 1;
    eryx_pool *pool = NULL;
    if (eryx_pool_new(rt, &pc, &pool) != ERYX_OK)
        exit(1);
    double *acq = calloc((size_t)n, sizeof *acq), *first = calloc((size_t)n, sizeof *first);
    double *rel = calloc((size_t)n, sizeof *rel);
    for (int i = 0; i < n; i++) {
        eryx_sandbox *sb = NULL;
        double t = now_us();
        if (eryx_pool_acquire(pool, 1000000000u, &sb) != ERYX_OK)
            exit(1);
        acq[i] = now_us() - t;
        t = now_us();
        eryx_result_free(run(sb, "pass"));
        first[i] = now_us() - t;
        t = now_us();
        eryx_pool_release(pool, sb);
        rel[i] = now_us() - t;
    }
    out[0] = percentile(acq, n, 0.5);
    out[1] = percentile(acq, n, 0.99);
    out[2] = percentile(first, n, 0.5);
    out[3] = percentile(rel, n, 0.5);
    eryx_pool_free(pool);
    free(acq);
    free(first);
    free(rel);
}

/* A session holding ~50 MB of Python objects: fork, save to a file and
 * load it back. A fork captures the parent's memory once per state (the
 * parent runs a statement between these), and forks of an unchanged state
 * reuse that capture. out: MB of linear memory, fork after a run (ms, p50 of
 * 5), fork again of the same state (us, p50 of 5), a small first run in a
 * fork (ms, p50 of 5), save ms, load ms. */
static void session_image_costs(eryx_runtime *rt, double out[6])
{
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.max_memory = 512u << 20;
    eryx_sandbox *sb = NULL, *copy = NULL;
    if (eryx_sandbox_new(rt, &cfg, &sb) != ERYX_OK)
        exit(1);
    eryx_result *r = run(sb, "data = [('x%d' % i) * 5 for i in range(500_000)]\n"
                             "index = {s: i for i, s in enumerate(data[:100_000])}");
    out[0] = (double)r->memory_bytes / (1 << 20);
    eryx_result_free(r);
    double first[5], again[5], child_run[5];
    for (int i = 0; i < 5; i++) {
        eryx_result_free(run(sb, "turn = len(data)"));
        double t = now_us();
        if (eryx_sandbox_fork(sb, &copy) != ERYX_OK)
            exit(1);
        first[i] = (now_us() - t) / 1000;
        eryx_sandbox *second = NULL;
        t = now_us();
        if (eryx_sandbox_fork(sb, &second) != ERYX_OK)
            exit(1);
        again[i] = now_us() - t;
        t = now_us();
        eryx_result_free(run(copy, "assert len(data) == turn"));
        child_run[i] = (now_us() - t) / 1000;
        eryx_sandbox_free(second);
        eryx_sandbox_free(copy);
    }
    out[1] = percentile(first, 5, 0.5);
    out[2] = percentile(again, 5, 0.5);
    out[3] = percentile(child_run, 5, 0.5);
    char path[] = "/tmp/eryx-bench-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        exit(1);
    close(fd);
    double t = now_us();
    if (eryx_sandbox_save(sb, path) != ERYX_OK)
        exit(1);
    out[4] = (now_us() - t) / 1000;
    t = now_us();
    if (eryx_sandbox_load(rt, &cfg, path, &copy) != ERYX_OK)
        exit(1);
    out[5] = (now_us() - t) / 1000;
    eryx_result_free(run(copy, "assert len(data) == 500_000"));
    eryx_sandbox_free(copy);
    eryx_sandbox_free(sb);
    unlink(path);
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
    static const eryx_callback cb = {0, "noop", NULL, NULL, noop, NULL, ERYX_CALLBACK_INLINE};
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

    /* Cold: all n alive at once, so none can reuse a freed one. */
    double *create = calloc((size_t)n, sizeof *create), *first = calloc((size_t)n, sizeof *first);
    eryx_sandbox **all = calloc((size_t)n, sizeof *all);
    for (int i = 0; i < n; i++) {
        t = now_us();
        if (eryx_sandbox_new(rt, &cfg, &all[i]) != ERYX_OK)
            return 1;
        create[i] = now_us() - t;
        t = now_us();
        eryx_result_free(run(all[i], "pass"));
        first[i] = now_us() - t;
    }
    for (int i = 0; i < n; i++)
        eryx_sandbox_free(all[i]);
    free(all);
    /* Recycled: create, run, free in turn; a freed sandbox is parked and
     * the next eryx_sandbox_new takes it (src/core/snapshot.c). */
    double *rcreate = calloc((size_t)n, sizeof *rcreate);
    double *rfirst = calloc((size_t)n, sizeof *rfirst);
    eryx_sandbox *sb = NULL;
    for (int i = 0; i < n; i++) {
        t = now_us();
        if (eryx_sandbox_new(rt, &cfg, &sb) != ERYX_OK)
            return 1;
        rcreate[i] = now_us() - t;
        t = now_us();
        eryx_result_free(run(sb, "pass"));
        rfirst[i] = now_us() - t;
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

    double py50, py99, c50, c99;
    /* The Python loop sees the graceful stop well within the default grace;
     * the regex never does, and is stopped hard at once (grace 1 ns). */
    interrupt_latency(rt, "while True: pass", 200u * 1000 * 1000, &py50, &py99);
    interrupt_latency(rt, "import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')", 1, &c50, &c99);
    double pool[4], image[6];
    pool_costs(rt, n, pool);
    session_image_costs(rt, image);
    double idle_kb = idle_kb_per_sandbox(rt, 200);
    double per_s = throughput_2_threads(rt);
    /* Each sandbox reserves 8 GiB of address space (plus a fiber stack): a
     * 47-bit user address space holds ~16000 of them whatever the memory. */
    double by_ram = 24.0 * 1024 * 1024 / (idle_kb > 1 ? idle_kb : 1);
    double by_va = (double)(1ull << 47) / (double)(8ull << 30);
    printf("{\"interrupt_python_p50_us\": %.0f, \"interrupt_python_p99_us\": %.0f, "
           "\"interrupt_c_p50_us\": %.0f, \"interrupt_c_p99_us\": %.0f, ", py50, py99, c50, c99);
    printf("\"recycled_new_p50_us\": %.1f, \"recycled_new_p99_us\": %.1f, "
           "\"recycled_first_run_p50_us\": %.0f, ",
           percentile(rcreate, n, 0.5), percentile(rcreate, n, 0.99), percentile(rfirst, n, 0.5));
    printf("\"pool_acquire_p50_us\": %.1f, \"pool_acquire_p99_us\": %.1f, "
           "\"pool_first_run_p50_us\": %.0f, \"pool_release_p50_us\": %.0f, ",
           pool[0], pool[1], pool[2], pool[3]);
    printf("\"session_mb\": %.0f, \"fork_p50_ms\": %.1f, \"fork_again_p50_us\": %.0f, "
           "\"fork_first_run_p50_ms\": %.1f, \"save_ms\": %.0f, \"load_ms\": %.0f, ",
           image[0], image[1], image[2], image[3], image[4], image[5]);
    printf("\"idle_private_kb\": %.0f, \"live_sandboxes_24gib\": %.0f, "
           "\"create_run_free_per_s_2_threads\": %.0f, ",
           idle_kb, by_ram < by_va ? by_ram : by_va, per_s);
    printf("\"runtime_new_us\": %.0f, \"sandbox_new_p50_us\": %.0f, "
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
    free(rcreate);
    free(rfirst);
    free(pass);
    free(gather);
    return 0;
}
