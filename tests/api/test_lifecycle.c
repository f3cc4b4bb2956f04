/* Sandboxes created and freed in a loop leave nothing behind.
 * usage: test_lifecycle [iterations]   (default 1000; valgrind runs use few) */
#include <eryx.h>
#include <stdio.h>
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

static long mapping_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    if (!f)
        return -1;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
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

int main(int argc, char **argv)
{
    int iterations = argc > 1 ? atoi(argv[1]) : 1000;
    eryx_runtime *rt = NULL;
    REQUIRE(eryx_runtime_new(NULL, &rt) == ERYX_OK);
    int warmup = iterations < 20 ? 1 : 10;
    for (int i = 0; i < warmup; i++)
        cycle(rt, i);
    long rss0 = check_rss_kib(), maps0 = mapping_count();
    for (int i = 0; i < iterations; i++)
        cycle(rt, i);
    long rss1 = check_rss_kib(), maps1 = mapping_count();
    printf("%d sandboxes: RSS %ld -> %ld KiB, mappings %ld -> %ld\n", iterations, rss0, rss1,
           maps0, maps1);
    /* A leak of one sandbox's memory (20 MiB of linear memory, or a single
     * mapping) per cycle would show far above these bounds. */
    CHECK(maps1 <= maps0 + 2);
    CHECK(rss1 <= rss0 + 8 * 1024);
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
    return CHECK_DONE();
}
