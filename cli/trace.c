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

#include "core/utf8.h"

int cli_trace_open(cli_trace *t, const char *path)
{
    clock_gettime(CLOCK_MONOTONIC, &t->t0);
    t->names = calloc(2 * CLI_TRACE_SLOTS, sizeof *t->names);
    t->counts = calloc(2, sizeof *t->counts);
    t->max = CLI_TRACE_DEFAULT_MAX;
    t->f = t->names && t->counts ? fopen(path, "w") : NULL;
    if (!t->f) {
        free(t->names);
        free(t->counts);
        t->names = NULL;
        t->counts = NULL;
        fprintf(stderr, "eryx: cannot write the trace to %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* A traced loop writes ~70 bytes an event: one write(2) a megabyte,
     * not a page (a system call is microseconds on a virtual machine). */
    setvbuf(t->f, NULL, _IOFBF, 1u << 20);
    return 0;
}

/* Appends s to p as a JSON string; returns the new end. File and function
 * names are the guest's UTF-8; a byte that is not (a surrogate-escaped file
 * name, a name the code made) is written as Python's surrogateescape would
 * have it, \udcXX: the line stays UTF-8 JSON, and Python reads the byte
 * back with errors="surrogateescape". p has room for 6 bytes a byte of s
 * + 2. */
static char *put_string(char *p, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    *p++ = '"';
    const unsigned char *end = (const unsigned char *)s + strlen(s);
    for (const unsigned char *c = (const unsigned char *)s; *c;) {
        size_t n = eryx__utf8_len(c, (size_t)(end - c));
        if (n == 0) {
            memcpy(p, "\\udc", 4);
            p[4] = hex[*c >> 4];
            p[5] = hex[*c & 15];
            p += 6;
            c++;
        } else if (n > 1) {
            memcpy(p, c, n);
            p += n;
            c += n;
        } else if (*c == '"' || *c == '\\') {
            *p++ = '\\';
            *p++ = (char)*c++;
        } else if (*c < 0x20) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[*c >> 4];
            p[5] = hex[*c & 15];
            p += 6;
            c++;
        } else {
            *p++ = (char)*c++;
        }
    }
    *p++ = '"';
    return p;
}

/* A name and its JSON string, kept while events repeat it: a traced loop
 * goes round a few files and functions, so each is escaped once, not per
 * event. The slot of a name in a table of CLI_TRACE_SLOTS is picked by its
 * length and ends; two names sharing one take turns. */
static cli_trace_name *name_slot(cli_trace_name *table, const char *name, size_t n)
{
    unsigned h = (unsigned)n * 7u;
    if (n)
        h ^= (unsigned char)name[0] * 31u ^ (unsigned char)name[n - 1] * 131u ^
             (unsigned char)name[n / 2];
    return &table[h % CLI_TRACE_SLOTS];
}

static int cached_json(cli_trace_name *table, const char *name, cli_trace_name **out)
{
    size_t n = strlen(name);
    cli_trace_name *c = *out = name_slot(table, name, n);
    if (c->json && c->len == n && memcmp(c->raw, name, n) == 0)
        return 0;
    char *raw = malloc(n + 1), *json = malloc(6 * n + 3);
    if (!raw || !json) {
        free(raw);
        free(json);
        return -1;
    }
    memcpy(raw, name, n + 1);
    char *end = put_string(json, name);
    free(c->raw);
    free(c->json);
    c->raw = raw;
    c->len = n;
    c->json = json;
    c->json_len = (size_t)(end - json);
    return 0;
}

/* v's decimal digits at p, at least width of them (zeros in front). */
static char *put_decimal(char *p, uint64_t v, int width)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v || n < width);
    while (n)
        *p++ = digits[--n];
    return p;
}

/* Each event is formatted by hand into one buffer and written with one
 * fwrite: fprintf's float formatting made `--trace` cost 7x the tracing
 * itself; with the names escaped once (cached_json) and the numbers put by
 * hand, 2x (BENCHMARKS.md, "Tracing", "Issue 17, second pass"). */
static void on_trace(void *ud, const char *file, int line, const char *function)
{
    const cli_trace *t = ud;
    cli_trace_name *f, *fn;
    if (cached_json(t->names, file, &f) < 0 ||
        cached_json(t->names + CLI_TRACE_SLOTS, function, &fn) < 0)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t us = (int64_t)(now.tv_sec - t->t0.tv_sec) * 1000000 +
                 (now.tv_nsec - t->t0.tv_nsec) / 1000;
    if (us < 0)
        us = 0;
    size_t need = f->json_len + fn->json_len + 128;
    char small[1024];
    char *buf = need <= sizeof small ? small : malloc(need);
    if (!buf)
        return;
    char *p = buf;
    memcpy(p, "{\"file\": ", 9);
    memcpy(p += 9, f->json, f->json_len);
    p += f->json_len;
    memcpy(p, ", \"line\": ", 10);
    p += 10;
    if (line < 0)
        *p++ = '-';
    p = put_decimal(p, line < 0 ? 0u - (uint64_t)line : (uint64_t)line, 1);
    memcpy(p, ", \"function\": ", 14);
    memcpy(p += 14, fn->json, fn->json_len);
    p += fn->json_len;
    memcpy(p, ", \"time\": ", 10);
    p = put_decimal(p + 10, (uint64_t)us / 1000000, 1);
    *p++ = '.';
    p = put_decimal(p, (uint64_t)us % 1000000, 6);
    memcpy(p, "}\n", 2);
    p += 2;
    size_t n = (size_t)(p - buf);
    if (t->counts[1] || n > t->max - t->counts[0])
        t->counts[1]++; /* over the limit: and so every later event */
    else if (fwrite_unlocked(buf, 1, n, t->f) == n)
        t->counts[0] += n;
    if (buf != small)
        free(buf);
}

void cli_trace_apply(const cli_trace *t, eryx_sandbox_config *cfg)
{
    if (!t->f)
        return;
    cfg->on_trace = on_trace;
    cfg->trace_user_data = (void *)t; /* on_trace writes only what t points to */
}

int cli_trace_close(cli_trace *t)
{
    if (!t->f)
        return 0;
    uint64_t dropped = t->counts[1];
    if (dropped) {
        fprintf(t->f, "{\"truncated\": true, \"events_dropped\": %" PRIu64 "}\n", dropped);
        fprintf(stderr, "eryx: the trace stopped at its limit of %" PRIu64 " bytes "
                        "(--trace-max): %" PRIu64 " events were not written\n", t->max, dropped);
    }
    int bad = ferror(t->f) | fclose(t->f);
    t->f = NULL;
    for (int i = 0; i < 2 * CLI_TRACE_SLOTS; i++) {
        free(t->names[i].raw);
        free(t->names[i].json);
    }
    free(t->names);
    free(t->counts);
    t->names = NULL;
    t->counts = NULL;
    if (bad) {
        fprintf(stderr, "eryx: the trace could not be written whole\n");
        return -1;
    }
    return 0;
}
