/*
 * Minimal test assertions: a failing check prints both sides and the place,
 * and the test program exits non-zero at the end (or at once with REQUIRE).
 */
#ifndef ERYX_TEST_CHECK_H
#define ERYX_TEST_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* RUNNING_ON_VALGRIND: 1 under valgrind (for tests that skip what valgrind
 * cannot do), 0 otherwise or without valgrind's header. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

static int check_failures;

static inline void check_dump_(const void *p, size_t n);

#define CHECK_FAIL_(...)                                                    \
    do {                                                                    \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                     \
        fprintf(stderr, __VA_ARGS__);                                       \
        fputc('\n', stderr);                                                \
        check_failures++;                                                   \
    } while (0)

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond))                                                        \
            CHECK_FAIL_("check failed: %s", #cond);                         \
    } while (0)

#define CHECK_INT(a, b)                                                     \
    do {                                                                    \
        long long a_ = (long long)(a), b_ = (long long)(b);                 \
        if (a_ != b_)                                                       \
            CHECK_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);          \
    } while (0)

/* Compares n bytes; prints both as escaped strings. */
#define CHECK_MEM(a, b, n)                                                  \
    do {                                                                    \
        const void *a_ = (a), *b_ = (b);                                    \
        size_t n_ = (n);                                                    \
        if (!a_ || !b_ || memcmp(a_, b_, n_) != 0) {                        \
            CHECK_FAIL_("%s == %s (%zu bytes):", #a, #b, n_);               \
            check_dump_(a_, n_);                                            \
            check_dump_(b_, n_);                                            \
        }                                                                   \
    } while (0)

#define CHECK_STR(a, b)                                                     \
    do {                                                                    \
        const char *a_ = (a), *b_ = (b);                                    \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                              \
            CHECK_FAIL_("%s == %s:\n  \"%s\"\n  \"%s\"", #a, #b,            \
                        a_ ? a_ : "(null)", b_ ? b_ : "(null)");            \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                         \
    do {                                                                    \
        const char *h_ = (hay), *n_ = (needle);                             \
        if (!h_ || !strstr(h_, n_))                                         \
            CHECK_FAIL_("%s contains \"%s\":\n  \"%s\"", #hay, n_,          \
                        h_ ? h_ : "(null)");                                \
    } while (0)

static inline void check_dump_(const void *p, size_t n)
{
    fputs("  \"", stderr);
    for (size_t i = 0; p && i < n; i++) {
        unsigned char c = ((const unsigned char *)p)[i];
        if (c >= 32 && c < 127 && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputs("\"\n", stderr);
}

/* Stops the test at once: for preconditions the rest depends on. */
#define REQUIRE(cond)                                                       \
    do {                                                                    \
        if (!(cond)) {                                                      \
            CHECK_FAIL_("required: %s", #cond);                             \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

/* Resident memory of this process in KiB (for leak checks). */
static inline long check_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

#define CHECK_DONE()                                                        \
    (check_failures ? (fprintf(stderr, "%d check(s) failed\n", check_failures), 1) : 0)

#endif
