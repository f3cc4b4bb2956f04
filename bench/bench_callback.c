/*
 * The round trip of `await noop()`: an inline handler that replies `null`
 * at once, awaited N times in one run and timed inside the guest with
 * time.perf_counter_ns(); prints the p50 and p99 in ns of each of R runs,
 * a line each. Linked against the shared liberyx, so that bench/callback.py
 * can run it with another build's library (LD_LIBRARY_PATH) side by side.
 * usage: bench_callback [calls [runs [args]]]
 * args: the call's arguments as Python source (default none), e.g.
 * "query='x', limit=10": the handler ignores them.
 */
#include <eryx.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void noop(void *ud, eryx_call *call)
{
    (void)ud;
    eryx_call_reply(call, "null", 4);
}

int main(int argc, char **argv)
{
    int calls = argc > 1 ? atoi(argv[1]) : 20000, runs = argc > 2 ? atoi(argv[2]) : 3;
    const char *args = argc > 3 ? argv[3] : "";
    static const eryx_callback cb = {0, "noop", NULL, NULL, noop, NULL, ERYX_CALLBACK_INLINE};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = &cb;
    cfg.n_callbacks = 1;
    cfg.max_callbacks = 100u * 1000 * 1000;
    eryx_runtime *rt = NULL;
    eryx_sandbox *sb = NULL;
    if (calls <= 0 || runs <= 0 || strlen(args) > 256 || eryx_runtime_new(NULL, &rt) != ERYX_OK ||
        eryx_sandbox_new(rt, &cfg, &sb) != ERYX_OK) {
        fprintf(stderr, "usage: bench_callback [calls [runs [args]]] (or no runtime)\n");
        return 1;
    }
    char code[1024];
    snprintf(code, sizeof code,
             "import time\n"
             "await noop(%s)\n"
             "ts = []\n"
             "for _ in range(%d):\n"
             "    t0 = time.perf_counter_ns()\n"
             "    await noop(%s)\n"
             "    ts.append(time.perf_counter_ns() - t0)\n"
             "ts.sort()\n"
             "print(ts[len(ts) // 2], ts[len(ts) * 99 // 100])",
             args, calls, args);
    int rc = 0;
    for (int i = 0; i < runs && rc == 0; i++) {
        eryx_result *r = NULL;
        rc = eryx_sandbox_run(sb, code, strlen(code), &r);
        if (rc == ERYX_OK)
            fputs(r->out, stdout);
        else
            fprintf(stderr, "run failed: %s %s\n", eryx_errstr(rc), eryx_errmsg(sb));
        eryx_result_free(r);
    }
    eryx_sandbox_free(sb);
    eryx_runtime_free(rt);
    return rc == ERYX_OK ? 0 : 1;
}
