/*
 * The session store of `eryx serve` (cli/serve_store.h): the cost of saving
 * real sessions (eryx_sandbox_save) of several sizes to a store and loading
 * them back, and of saving again after a small change.
 *   usage: store_bench URL|mem [repeats]     (bench/store.sh starts a Redis)
 * Prints one line per session and operation: milliseconds (median of the
 * repeats), and the chunks and compressed bytes it moved.
 */
#include <eryx.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "serve_store.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "store_bench: %s: %d %s\n", what, rc, store_errmsg());
    exit(1);
}

/* Runs code in sb and saves its session to path; returns its bytes mapped. */
static const uint8_t *session(eryx_sandbox *sb, const char *code, const char *path, size_t *len)
{
    eryx_result *r = NULL;
    if (eryx_sandbox_run(sb, code, strlen(code), &r) != ERYX_OK) {
        fprintf(stderr, "store_bench: running %s failed\n", code);
        exit(1);
    }
    eryx_result_free(r);
    if (eryx_sandbox_save(sb, path) != ERYX_OK) {
        fprintf(stderr, "store_bench: cannot save %s\n", path);
        exit(1);
    }
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        exit(1);
    *len = (size_t)st.st_size;
    void *p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        exit(1);
    return p;
}

typedef struct delta {
    struct store_stats before;
    store *st;
} delta;

static void report(const char *label, const char *op, double *ms, int n, delta *d)
{
    struct store_stats now;
    store_stats(d->st, &now);
    uint64_t chunks = now.chunks_uploaded - d->before.chunks_uploaded +
                      now.chunks_fetched - d->before.chunks_fetched;
    uint64_t bytes = now.bytes_uploaded - d->before.bytes_uploaded + now.bytes_fetched -
                     d->before.bytes_fetched;
    printf("%-22s %-14s %9.2f ms  %6.1f chunks  %8.2f MB moved\n", label, op, median(ms, n),
           (double)chunks / n, (double)bytes / n / 1e6);
    d->before = now;
}

/* One session under test: a and b differ by one small statement. */
typedef struct sess {
    store *st;
    const uint8_t *a, *b;
    size_t alen, blen;
    int fd;
    uint64_t v;
} sess;

enum { OP_CREATE, OP_GET, OP_VERSION, OP_PUT_SAME, OP_PUT_CHANGE, OPS };
static const char *const op_names[OPS] = {"create", "get", "version", "put unchanged",
                                          "put 1 change"};

/* The i-th repeat of op, timed (a create's delete before it is not). */
static double timed(sess *s, int op, int i)
{
    if (op == OP_CREATE)
        store_delete(s->st, "bench"); /* moves no chunks */
    double t0 = now_ms();
    int rc = op == OP_CREATE    ? store_create(s->st, "bench", s->a, s->alen, &s->v)
             : op == OP_GET     ? store_get(s->st, "bench", s->fd, &s->v)
             : op == OP_VERSION ? store_version(s->st, "bench", &s->v)
             : op == OP_PUT_SAME || i % 2
                 ? store_put(s->st, "bench", s->a, s->alen, s->v, &s->v)
                 : store_put(s->st, "bench", s->b, s->blen, s->v, &s->v);
    double ms = now_ms() - t0;
    if (rc != STORE_OK)
        die(op_names[op], rc);
    return ms;
}

static void bench_session(sess *s, const char *label, int repeats)
{
    double ms[64];
    delta d = {.st = s->st};
    store_stats(s->st, &d.before);
    for (int op = 0; op < OPS; op++) {
        for (int i = 0; i < repeats; i++)
            ms[i] = timed(s, op, i);
        report(label, op_names[op], ms, repeats, &d);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: store_bench URL|mem [repeats]\n");
        return 2;
    }
    int repeats = argc > 2 ? atoi(argv[2]) : 5;
    if (repeats < 1 || repeats > 64)
        repeats = 5;
    store *st = NULL;
    char err[256];
    int rc = store_open(strcmp(argv[1], "mem") == 0 ? NULL : argv[1], &st, err, sizeof err);
    if (rc != STORE_OK) {
        fprintf(stderr, "store_bench: %s\n", err);
        return 1;
    }
    eryx_runtime *rt = NULL;
    eryx_sandbox *sb = NULL;
    if (eryx_runtime_new(NULL, &rt) != ERYX_OK || eryx_sandbox_new(rt, NULL, &sb) != ERYX_OK)
        return 1;
    /* Each session, then the same after one small statement. */
    static const struct {
        const char *label, *code, *change;
    } cases[] = {
        {"after pass", "pass", "y = 1"},
        {"+10 MB random bytes", "import random; b = random.randbytes(10 << 20)", "y = 2"},
        {"+700k str (cumulative)", "x = [str(i) for i in range(700_000)]", "x[0] = 'changed'"},
    };
    char path[64], path2[64];
    snprintf(path, sizeof path, "/tmp/store-bench-%d.a", (int)getpid());
    snprintf(path2, sizeof path2, "/tmp/store-bench-%d.b", (int)getpid());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t alen, blen;
        const uint8_t *a = session(sb, cases[i].code, path, &alen);
        const uint8_t *b = session(sb, cases[i].change, path2, &blen);
        struct stat sa;
        stat(path, &sa);
        printf("%s: session file %.1f MB, %.1f MB allocated on disk\n", cases[i].label,
               (double)alen / 1e6, (double)sa.st_blocks * 512 / 1e6);
        sess s = {st, a, b, alen, blen, memfd_create("session", 0), 0};
        bench_session(&s, cases[i].label, repeats);
        close(s.fd);
        munmap((void *)a, alen);
        munmap((void *)b, blen);
    }
    unlink(path);
    unlink(path2);
    store_delete(st, "bench");
    struct store_stats s;
    store_stats(st, &s);
    printf("connects %llu, retries %llu\n", (unsigned long long)s.connects,
           (unsigned long long)(s.retries[0] + s.retries[1] + s.retries[2]));
    eryx_sandbox_free(sb);
    eryx_runtime_free(rt);
    store_close(st);
    return 0;
}
