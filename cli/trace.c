/*
 * --trace FILE: one JSON line per line event of the user's code. The guest
 * reports them through sys.monitoring (guest/python/_eryx/__init__.py);
 * this writes each as it comes, on the running thread, through stdio's
 * buffer: a traced loop makes millions of them.
 */
#include "trace.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
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

/* Appends s to p as a JSON string; returns the new end. File and function
 * names are the guest's UTF-8; a byte that is not (a surrogate-escaped file
 * name) goes through as it is. p has room for 6 bytes a byte of s + 2. */
static char *put_string(char *p, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    *p++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            *p++ = '\\';
            *p++ = (char)*c;
        } else if (*c < 0x20) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[*c >> 4];
            p[5] = hex[*c & 15];
            p += 6;
        } else {
            *p++ = (char)*c;
        }
    }
    *p++ = '"';
    return p;
}

/* Each event is formatted by hand into one buffer and written with one
 * fwrite: fprintf's float formatting made `--trace` cost 7x the tracing
 * itself (BENCHMARKS.md, "Tracing"). */
static void on_trace(void *ud, const char *file, int line, const char *function)
{
    const cli_trace *t = ud;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t us = (int64_t)(now.tv_sec - t->t0.tv_sec) * 1000000 +
                 (now.tv_nsec - t->t0.tv_nsec) / 1000;
    size_t need = 6 * (strlen(file) + strlen(function)) + 128;
    char small[1024];
    char *buf = need <= sizeof small ? small : malloc(need);
    if (!buf)
        return;
    char *p = buf;
    memcpy(p, "{\"file\": ", 9);
    p = put_string(p + 9, file);
    p += sprintf(p, ", \"line\": %d, \"function\": ", line);
    p = put_string(p, function);
    p += sprintf(p, ", \"time\": %" PRId64 ".%06" PRId64 "}\n", us / 1000000, us % 1000000);
    fwrite(buf, 1, (size_t)(p - buf), t->f);
    if (buf != small)
        free(buf);
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
