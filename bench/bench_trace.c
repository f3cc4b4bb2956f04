/*
 * The cost of line tracing (eryx_sandbox_config.on_trace): runs one kernel
 * file of bench/kernels/ in a fresh sandbox, with or without an on_trace
 * that only counts, and prints the kernel's JSON line with the number of
 * events added. bench/trace.py runs it side by side with the same program
 * linked against an older liberyx (sys.settrace there).
 *
 * usage: bench_trace KERNEL.py N REPEATS on|off
 */
#include <eryx.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void count(void *ud, const char *file, int line, const char *function)
{
    (void)file;
    (void)line;
    (void)function;
    ++*(unsigned long long *)ud;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = p ? (size_t)n : 0;
    return p;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_trace KERNEL.py N REPEATS on|off\n");
        return 2;
    }
    size_t len;
    char *code = slurp(argv[1], &len);
    if (!code) {
        perror(argv[1]);
        return 2;
    }
    unsigned long long events = 0;
    eryx_runtime *rt = NULL;
    eryx_sandbox *sb = NULL;
    eryx_result *res = NULL;
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.timeout_ns = ERYX_NO_LIMIT;
    if (strcmp(argv[4], "on") == 0) {
        cfg.on_trace = count;
        cfg.trace_user_data = &events;
    }
    const char *args[] = {argv[1], argv[2], argv[3], NULL};
    eryx_run_options opts;
    eryx_run_options_default(&opts);
    opts.filename = argv[1];
    opts.argv = args;
    int rc = eryx_runtime_new(NULL, &rt);
    if (rc == ERYX_OK)
        rc = eryx_sandbox_new(rt, &cfg, &sb);
    if (rc == ERYX_OK)
        rc = eryx_sandbox_run_ex(sb, code, len, &opts, &res);
    if (rc != ERYX_OK) {
        fprintf(stderr, "bench_trace: %s: %s\n%s", eryx_errstr(rc), eryx_errmsg(NULL),
                res && res->traceback ? res->traceback : "");
        return 1;
    }
    /* The kernel's line, '}' replaced by the event count. */
    char *end = strrchr(res->out, '}');
    if (end)
        printf("%.*s, \"events\": %llu}\n", (int)(end - res->out), res->out, events);
    eryx_result_free(res);
    eryx_sandbox_free(sb);
    eryx_runtime_free(rt);
    free(code);
    return end ? 0 : 1;
}
