/* Sandboxes created and freed in a loop leave nothing behind, also when
 * address space runs out.
 * usage: test_lifecycle [iterations]   (default 10000; valgrind runs use few) */
#include <eryx.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../check.h"

#ifdef __SANITIZE_ADDRESS__
/* ASan's quarantine keeps freed blocks resident: it would read as growth. */
const char *__asan_default_options(void);
__attribute__((visibility("default"))) const char *__asan_default_options(void)
{
    return "quarantine_size_mb=0:thread_local_quarantine_size_kb=0";
}
#endif

static int iterations = 10000;

/* The process's mappings but the writable and executable ones: eryx never
 * makes those (no code is generated at run time), valgrind's translation
 * caches are such, and they come and go with what it translates. */
static long mapping_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    char line[512];
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        char perms[8] = "";
        if (sscanf(line, "%*s %7s", perms) == 1 && strcmp(perms, "rwxp") != 0)
            n++;
        while (!strchr(line, '\n') && fgets(line, sizeof line, f)) {
        }
    }
    fclose(f);
    return n;
}

static void cycle(eryx_runtime *rt, int i)
{
    eryx_sandbox *sb = NULL;
    eryx_result *r = NULL;
    REQUIRE(eryx_sandbox_new(rt, NULL, &sb) == ERYX_OK);
    char code[64];
    snprintf(code, sizeof code, "print(%d * 2)", i);
    CHECK_INT(eryx_sandbox_run(sb, code, strlen(code), &r), ERYX_OK);
    CHECK_INT(atoi(r->out), i * 2);
    eryx_result_free(r);
    eryx_sandbox_free(sb);
}

/* More alive at once than a runtime parks (4): some are made cold, some
 * from parked ones; then a fork of each, freed parent first. */
static void crowd_cycle(eryx_runtime *rt, int i)
{
    enum { N = 6 };
    eryx_sandbox *sb[N], *child[N];
    eryx_result *r = NULL;
    for (int k = 0; k < N; k++)
        REQUIRE(eryx_sandbox_new(rt, NULL, &sb[k]) == ERYX_OK);
    for (int k = 0; k < N; k++) {
        char code[64];
        snprintf(code, sizeof code, "v = %d", i * N + k);
        CHECK_INT(eryx_sandbox_run(sb[k], code, strlen(code), &r), ERYX_OK);
        eryx_result_free(r);
        REQUIRE(eryx_sandbox_fork(sb[k], &child[k]) == ERYX_OK);
        eryx_sandbox_free(sb[k]);
    }
    for (int k = 0; k < N; k++) {
        CHECK_INT(eryx_sandbox_run(child[k], "print(v)", 8, &r), ERYX_OK);
        CHECK_INT(atoi(r->out), i * N + k);
        eryx_result_free(r);
        eryx_sandbox_free(child[k]);
    }
}

#ifndef __SANITIZE_ADDRESS__
static long vm_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0;
    if (f) {
        if (fscanf(f, "%ld", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return pages * sysconf(_SC_PAGESIZE);
}

/* The child of test_address_space: 0 when all went as it should, else the
 * number of the step that did not. */
static int exhaust_address_space(void)
{
    eryx_runtime *rt = NULL;
    if (eryx_runtime_new(NULL, &rt) != ERYX_OK)
        return 1;
    /* Room for two sandboxes (8 GiB of reservation each) and change. */
    rlim_t room = (rlim_t)vm_bytes() + (17ull << 30);
    struct rlimit lim = {room, room};
    if (setrlimit(RLIMIT_AS, &lim) != 0)
        return 2;
    eryx_sandbox *sb[8];
    int made = 0, rc = ERYX_OK;
    while (made < 8 && (rc = eryx_sandbox_new(rt, NULL, &sb[made])) == ERYX_OK)
        made++;
    if (made < 1 || made == 8 || rc != ERYX_NOMEM)
        return 3;
    if (!strstr(eryx_errmsg(NULL), "memory"))
        return 4;
    /* What was made still works; a fork fails the same clear way. */
    eryx_result *r = NULL;
    if (eryx_sandbox_run(sb[0], "x = 41\nprint(x + 1)", 19, &r) != ERYX_OK ||
        strcmp(r->out, "42\n") != 0)
        return 5;
    eryx_result_free(r);
    eryx_sandbox *child = NULL;
    if (eryx_sandbox_fork(sb[0], &child) != ERYX_NOMEM || child != NULL)
        return 6;
    if (eryx_sandbox_run(sb[0], "print(x)", 8, &r) != ERYX_OK || strcmp(r->out, "41\n") != 0)
        return 7;
    eryx_result_free(r);
    /* Freeing one makes room again. */
    eryx_sandbox_free(sb[--made]);
    if (eryx_sandbox_new(rt, NULL, &sb[made]) != ERYX_OK)
        return 8;
    made++;
    while (made > 0)
        eryx_sandbox_free(sb[--made]);
    return eryx_runtime_free(rt) == ERYX_OK ? 0 : 9;
}

/* Address space running out while sandboxes are made: ERYX_NOMEM with a
 * message, nothing made so far harmed. In a child process, since RLIMIT_AS
 * cannot be raised back; not under ASan (its shadow memory needs more
 * address space than any useful limit) nor valgrind. */
TEST_CASE(test_address_space)
{
    if (RUNNING_ON_VALGRIND)
        return;
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        _exit(exhaust_address_space());
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_INT(WEXITSTATUS(status), 0);
}
#endif

TEST_CASE(test_cycles)
{
    eryx_runtime *rt = NULL;
    REQUIRE(eryx_runtime_new(NULL, &rt) == ERYX_OK);
    int warmup = iterations < 20 ? 1 : 10;
    for (int i = 0; i < warmup; i++)
        cycle(rt, i);
    /* The first half reaches the steady state: which sandboxes are parked,
     * how much of the image their page tables map, the allocator's caches
     * (under ASan RSS rises ~22 MB over the first ~3000 cycles, then stays
     * flat). The second half must not grow. */
    long rss0 = 0, maps0 = 0;
    for (int i = 0; i < iterations; i++) {
        if (i == iterations / 2) {
            rss0 = check_rss_kib();
            maps0 = mapping_count();
        }
        cycle(rt, i);
        if (i % 500 == 0)
            crowd_cycle(rt, i);
    }
    crowd_cycle(rt, iterations);
    long rss1 = check_rss_kib(), maps1 = mapping_count();
    printf("%d cycles; over the second half: RSS %ld -> %ld KiB, mappings %ld -> %ld\n",
           iterations, rss0, rss1, maps0, maps1);
    /* A leak of one sandbox's memory (20 MiB of linear memory, or a single
     * mapping) per cycle would show far above these bounds. */
    if (!CHECK_TSAN) {          /* TSan maps memory of its own as it goes */
        CHECK(maps1 <= maps0 + 2);
        CHECK(rss1 <= rss0 + 8 * 1024);
    }
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
}

int main(int argc, char **argv)
{
    /* The iteration count, if given, goes before case names. */
    if (argc > 1 && argv[1][0] >= '0' && argv[1][0] <= '9') {
        iterations = atoi(argv[1]);
        argv[1] = argv[0];
        argc--;
        argv++;
    }
    return check_main_(argc, argv, NULL, NULL);
}
