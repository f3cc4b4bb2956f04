/*
 * The assertion harness of every C test: a failing check prints both sides
 * and the place; CHECK* go on, REQUIRE* stop the case at once.
 *
 * A test program is a list of cases:
 *
 *     TEST_CASE(hello) { CHECK_INT(1 + 1, 2); }
 *     TEST_MAIN()
 *
 * (or TEST_MAIN_WITH(setup, teardown), run around every case). The runner
 * forks a child for each case, before anything else ran in the parent (the
 * library starts threads, and a child of a multi-threaded parent could use
 * none of them): each child runs one case from scratch and exits. The parent
 * prints every case's name and outcome (a crash's signal included), a
 * summary, and exits non-zero if any case failed.
 *
 *     test_x [--list] [--no-fork] [CASE...]     run the named cases only
 *     ERYX_TEST_CASE=a,b test_x                 the same through ctest
 *     ERYX_TEST_NOFORK=1 test_x                 all in one process (gdb)
 *     ERYX_TEST_XFAIL=a,b test_x                known failures: reported as
 *                                               XFAIL, not counted
 *
 * A program may also keep its own main() and end with `return CHECK_DONE();`.
 */
#ifndef ERYX_TEST_CHECK_H
#define ERYX_TEST_CHECK_H

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
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

/* CHECK_TSAN: 1 in ThreadSanitizer builds, whose runtime maps memory of its
 * own for every thread and fiber: counts of mappings do not hold there. */
#if defined(__SANITIZE_THREAD__)
#define CHECK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CHECK_TSAN 1
#endif
#endif
#ifndef CHECK_TSAN
#define CHECK_TSAN 0
#endif

/* Failed checks so far, over every object of the program (the engine tests'
 * harness.c checks too): one weak definition shared by all. Counted
 * atomically, since checks fail on threads too. */
__attribute__((weak)) int check_failures;

#define CHECK_FAIL_(...)                                                    \
    do {                                                                    \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                     \
        fprintf(stderr, __VA_ARGS__);                                       \
        fputc('\n', stderr);                                                \
        __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);           \
    } while (0)

/* Ends the running case (the whole program when it has its own main). */
#define CHECK_STOP_() exit(1)

/* ---- Assertions ---------------------------------------------------------- */

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

/* The engine tests' name for CHECK_INT. */
#define CHECK_EQ(a, b) CHECK_INT(a, b)

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

/* Stops the case at once: for preconditions the rest depends on. */
#define REQUIRE(cond)                                                       \
    do {                                                                    \
        if (!(cond)) {                                                      \
            CHECK_FAIL_("required: %s", #cond);                             \
            CHECK_STOP_();                                                  \
        }                                                                   \
    } while (0)

#define REQUIRE_INT(a, b)                                                   \
    do {                                                                    \
        long long a_ = (long long)(a), b_ = (long long)(b);                 \
        if (a_ != b_) {                                                     \
            CHECK_FAIL_("required %s == %s: %lld != %lld", #a, #b, a_, b_); \
            CHECK_STOP_();                                                  \
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

/* For a program with its own main: its exit status. */
#define CHECK_DONE()                                                        \
    (check_failures ? (fprintf(stderr, "%d check(s) failed\n", check_failures), 1) : 0)

/* ---- Cases and the runner ------------------------------------------------ */

typedef struct check_case_ {
    const char *name;
    void (*fn)(void);
    int line;
} check_case_;

#define CHECK_MAX_CASES_ 256
__attribute__((weak)) check_case_ check_cases_[CHECK_MAX_CASES_];
__attribute__((weak)) int check_ncases_;

static inline void check_register_(const char *name, void (*fn)(void), int line)
{
    if (check_ncases_ == CHECK_MAX_CASES_) {
        fprintf(stderr, "check.h: more than %d cases\n", CHECK_MAX_CASES_);
        abort();
    }
    check_cases_[check_ncases_++] = (check_case_){name, fn, line};
}

/* Defines a case: a function run in a process of its own. Cases run in the
 * order they appear in the file. */
#define TEST_CASE(name)                                                     \
    static void name(void);                                                 \
    __attribute__((constructor)) static void check_reg_##name##_(void)     \
    {                                                                       \
        check_register_(#name, name, __LINE__);                             \
    }                                                                       \
    static void name(void)

static inline int check_case_cmp_(const void *a, const void *b)
{
    return ((const check_case_ *)a)->line - ((const check_case_ *)b)->line;
}

/* Whether `name` is in the comma-separated list. */
static inline int check_in_list_(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return 1;
        p += len + (end != NULL);
    }
    return 0;
}

static inline double check_now_(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs one case in this process; 0 if it passed. */
static inline int check_run_here_(const check_case_ *c, void (*setup)(void),
                                  void (*teardown)(void))
{
    int before = __atomic_load_n(&check_failures, __ATOMIC_RELAXED);
    if (setup)
        setup();
    c->fn();
    if (teardown)
        teardown();
    fflush(stdout);
    return __atomic_load_n(&check_failures, __ATOMIC_RELAXED) != before;
}

/* Runs one case in a child; 0 if it passed, else prints why not. */
static inline int check_run_forked_(const check_case_ *c, void (*setup)(void),
                                    void (*teardown)(void))
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("check.h: fork");
        return 1;
    }
    if (pid == 0)
        exit(check_run_here_(c, setup, teardown));  /* exit(): leak checkers run */
    int status;
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        fprintf(stderr, "%s: killed by signal %d (%s)\n", c->name, sig, strsignal(sig));
        return 1;
    }
    if (WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s: exit status %d\n", c->name, WEXITSTATUS(status));
        return 1;
    }
    return 0;
}

static inline int check_main_(int argc, char **argv, void (*setup)(void),
                              void (*teardown)(void))
{
    const char *env = getenv("ERYX_TEST_CASE");
    const char *nofork_env = getenv("ERYX_TEST_NOFORK");
    int nofork = nofork_env && *nofork_env && strcmp(nofork_env, "0") != 0;
    int list = 0, named = 0;
    qsort(check_cases_, (size_t)check_ncases_, sizeof check_cases_[0], check_case_cmp_);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-fork") == 0)
            nofork = 1;
        else if (strcmp(argv[i], "--list") == 0)
            list = 1;
        else {
            int found = 0;
            for (int k = 0; k < check_ncases_; k++)
                found |= strcmp(check_cases_[k].name, argv[i]) == 0;
            if (!found) {
                fprintf(stderr, "%s: no case named %s (--list lists them)\n", argv[0], argv[i]);
                return 2;
            }
            named = 1;
        }
    }
    int run = 0, failed = 0;
    char bad_case[CHECK_MAX_CASES_] = {0};
    for (int k = 0; k < check_ncases_; k++) {
        const check_case_ *c = &check_cases_[k];
        if (list) {
            puts(c->name);
            continue;
        }
        int selected = !named && !(env && *env);
        for (int i = 1; i < argc && !selected; i++)
            selected = strcmp(argv[i], c->name) == 0;
        if (!selected && env && *env)
            selected = check_in_list_(env, c->name);
        if (!selected)
            continue;
        printf("[ RUN  ] %s\n", c->name);
        double t0 = check_now_();
        int bad = nofork ? check_run_here_(c, setup, teardown)
                         : check_run_forked_(c, setup, teardown);
        /* A known failure (a bug reported but not fixed yet) still shows,
         * with its output, but does not fail the run. */
        const char *xfail = getenv("ERYX_TEST_XFAIL");
        int known = xfail && check_in_list_(xfail, c->name);
        const char *verdict = bad ? (known ? "XFAIL" : "FAIL") : (known ? "XPASS" : " OK ");
        printf("[ %s ] %s (%.2f s)\n", verdict, c->name, check_now_() - t0);
        run++;
        bad = bad && !known;
        failed += bad;
        bad_case[k] = (char)bad;
    }
    if (list)
        return 0;
    if (run == 0) {
        fprintf(stderr, "%s: no case selected\n", argv[0]);
        return 2;
    }
    printf("%d case(s), %d failed\n", run, failed);
    if (failed) {
        fflush(stdout);
        fprintf(stderr, "failed:");
        for (int k = 0; k < check_ncases_; k++)
            if (bad_case[k])
                fprintf(stderr, " %s", check_cases_[k].name);
        fputc('\n', stderr);
    }
    fflush(stdout);
    return failed != 0;
}

#define TEST_MAIN_WITH(setup, teardown)                                     \
    int main(int argc, char **argv)                                         \
    {                                                                       \
        return check_main_(argc, argv, setup, teardown);                    \
    }
#define TEST_MAIN() TEST_MAIN_WITH(NULL, NULL)

#endif
