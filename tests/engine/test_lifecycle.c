/* 1000 instantiate / run / trap / free cycles leave no mapping and no
 * memory behind. */
#include "harness.h"

#if defined(__SANITIZE_ADDRESS__)
/* ASan keeps freed blocks in a quarantine (up to 256 MiB), which would read
 * as RSS growth here; use-after-free is covered by the other tests. */
const char *__asan_default_options(void);
__attribute__((visibility("default"))) const char *__asan_default_options(void)
{
    return "quarantine_size_mb=0:thread_local_quarantine_size_kb=0";
}
#endif

#ifndef CYCLES
#define CYCLES 1000
#endif

static void cycle(uint32_t i)
{
    eng e;
    uint64_t r;
    eng_new(&e);
    CHECK_RC(eng_run(&e, OP_GROW, 3, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 1);
    CHECK_RC(eng_run(&e, OP_STORE32, 4 * 65536 - 4, i, NULL), ERYX__CALL_OK);
    CHECK_RC(eng_run(&e, OP_LOAD32, 4 * 65536 - 4, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, i);
    CHECK_RC(eng_run(&e, OP_LOAD32, 4 * 65536, 0, NULL), WASM_RT_TRAP_OOB);
    CHECK_RC(eng_run(&e, OP_THROW, i, 0, NULL), WASM_RT_TRAP_UNCAUGHT_EXCEPTION);
    eng_free(&e);
}

TEST_CASE(test_cycles)
{
    for (uint32_t i = 0; i < 20; i++)
        cycle(i);
    int maps = maps_count();
    long rss = rss_kib();
    for (uint32_t i = 0; i < CYCLES; i++)
        cycle(i);
    int maps_after = maps_count();
    long rss_after = rss_kib();
    printf("maps %d -> %d, rss %ld -> %ld KiB\n", maps, maps_after, rss, rss_after);
    CHECK(maps_after <= maps + 2);
    CHECK(rss_after <= rss + 4096);
}

TEST_MAIN()
