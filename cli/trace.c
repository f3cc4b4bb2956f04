/*
 * --trace FILE: one JSON line per line event of the user's code. The guest
 * reports them through sys.monitoring (guest/python/_eryx/__init__.py);
 * this writes each as it comes, on the running thread, through stdio's
 * buffer: a traced loop makes millions of them.
 */
#include "trace.h"

#include <errno.h>
#include <string.h>

int cli_trace_open(cli_trace *t, const char *path)
{
    clock_gettime(CLOCK_MONOTONIC, &t->t0);
    t->f = fopen(path, "w");
    if (!t->f) {
        fprintf(stderr, "eryx: cannot write the trace to %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* s as a JSON string. File and function names are the guest's UTF-8; a
 * byte that is not (a surrogate-escaped file name) goes through as it is. */
static void put_string(FILE *f, const char *s)
{
    putc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            putc('\\', f);
            putc(*p, f);
        } else if (*p < 0x20) {
            fprintf(f, "\\u%04x", *p);
        } else {
            putc(*p, f);
        }
    }
    putc('"', f);
}

static void on_trace(void *ud, const char *file, int line, const char *function)
{
    const cli_trace *t = ud;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double secs = (double)(now.tv_sec - t->t0.tv_sec) + (double)(now.tv_nsec - t->t0.tv_nsec) / 1e9;
    fputs("{\"file\": ", t->f);
    put_string(t->f, file);
    fprintf(t->f, ", \"line\": %d, \"function\": ", line);
    put_string(t->f, function);
    fprintf(t->f, ", \"time\": %.6f}\n", secs);
}

void cli_trace_apply(const cli_trace *t, eryx_sandbox_config *cfg)
{
    if (!t->f)
        return;
    cfg->on_trace = on_trace;
    cfg->trace_user_data = (void *)t; /* on_trace only reads it */
}

int cli_trace_close(cli_trace *t)
{
    if (!t->f)
        return 0;
    int bad = ferror(t->f) | fclose(t->f);
    t->f = NULL;
    if (bad) {
        fprintf(stderr, "eryx: the trace could not be written whole\n");
        return -1;
    }
    return 0;
}
