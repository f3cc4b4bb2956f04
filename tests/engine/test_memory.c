/* Linear memory growth and limits, allocation failure, tables; the generated
 * code's accesses of mixed widths and its interpreter dispatch. */
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define PAGE 65536u

static wasm_rt_memory_t *touch_mem;

GUEST_CODE static void touch_first_byte(void *arg)
{
    volatile uint8_t *p = touch_mem->data;
    p[0] = 1;
}

TEST_CASE(test_zero_size)
{
    wasm_rt_memory_t m;
    wasm_rt_allocate_memory(&m, 0, 10);
    CHECK(m.data != NULL);
    CHECK_EQ(m.size, 0);
    CHECK_EQ(m.pages, 0);
    CHECK_EQ(m.max_pages, 10);
    touch_mem = &m;
    CHECK_RC(eryx__engine_call(&m, touch_first_byte, NULL, NULL), WASM_RT_TRAP_OOB);
    CHECK_EQ(wasm_rt_grow_memory(&m, 0), 0);
    CHECK_EQ(wasm_rt_grow_memory(&m, 3), 0);
    CHECK_EQ(m.pages, 3);
    CHECK_EQ(m.size, 3 * PAGE);
    CHECK_EQ(m.data[3 * PAGE - 1], 0);
    m.data[3 * PAGE - 1] = 5;
    CHECK_EQ(wasm_rt_grow_memory(&m, 8), UINT32_MAX);   /* 11 > 10 */
    CHECK_EQ(m.pages, 3);
    CHECK_EQ(wasm_rt_grow_memory(&m, 7), 3);
    CHECK_EQ(wasm_rt_grow_memory(&m, 1), UINT32_MAX);
    CHECK_EQ(wasm_rt_grow_memory(&m, UINT32_MAX), UINT32_MAX);
    CHECK_EQ(m.data[3 * PAGE - 1], 5);
    CHECK_EQ(m.data[10 * PAGE - 1], 0);
    CHECK_RC(eryx__engine_call(&m, touch_first_byte, NULL, NULL), ERYX__CALL_OK);
    wasm_rt_free_memory(&m);
    CHECK(m.data == NULL);
    wasm_rt_free_memory(&m);                           /* twice is harmless */

    /* No declared maximum: capped where the 32-bit size field still fits. */
    wasm_rt_allocate_memory(&m, 1, UINT32_MAX);
    CHECK(m.data != NULL);
    CHECK_EQ(m.max_pages, 65535);
    CHECK_EQ(wasm_rt_grow_memory(&m, 65535), UINT32_MAX);
    wasm_rt_free_memory(&m);
}

TEST_CASE(test_limit)
{
    eng e;
    uint64_t r;
    eng_new(&e);
    wasm_rt_memory_t *m = &e.inst.w2c_memory;
    eryx__memory_set_limit(m, 4);
    CHECK_EQ(m->max_pages, 4);
    CHECK_RC(eng_run(&e, OP_GROW, 3, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 1);
    CHECK_EQ(eryx__memory_size(m), 4 * PAGE);
    CHECK_RC(eng_run(&e, OP_STORE32, 4 * PAGE - 4, 0xabcdef01u, NULL), ERYX__CALL_OK);
    CHECK_RC(eng_run(&e, OP_GROW, 1, 0, &r), ERYX__CALL_OK);
    CHECK_EQ((int32_t)r, -1);
    CHECK_RC(eng_run(&e, OP_GROW, 0x10000, 0, &r), ERYX__CALL_OK);
    CHECK_EQ((int32_t)r, -1);
    CHECK_RC(eng_run(&e, OP_SIZE, 0, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 4);
    CHECK_EQ(eryx__memory_size(m), 4 * PAGE);
    CHECK_RC(eng_run(&e, OP_LOAD32, 4 * PAGE - 4, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 0xabcdef01u);
    CHECK_RC(eng_run(&e, OP_LOAD32, 4 * PAGE, 0, NULL), WASM_RT_TRAP_OOB);
    CHECK_RC(eng_run(&e, OP_GROW, 0, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 4);

    eryx__memory_set_limit(m, 2);           /* below the current size */
    CHECK_EQ(m->max_pages, 4);
    eryx__memory_set_limit(m, 100);         /* never raises */
    CHECK_EQ(m->max_pages, 4);
    eng_free(&e);

    eng_new(&e);                            /* the default: no module maximum */
    CHECK_RC(eng_run(&e, OP_GROW, 99, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 1);
    CHECK_RC(eng_run(&e, OP_LOAD32, 100 * PAGE - 4, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 0);
    eng_free(&e);
}

/* Linear memory is untyped: a load after a store of another width at the
 * same address sees the store. The generated C's typed accesses must not let
 * the compiler assume otherwise (guest/w2c_segment.h: may_alias). */
TEST_CASE(test_mixed_widths)
{
    eng e;
    uint64_t r;
    eng_new(&e);
    /* load32 [64]; store64 [64] = 234; load32 [64] */
    CHECK_RC(eng_run(&e, OP_STORE32, 64, 1000, NULL), ERYX__CALL_OK);
    CHECK_RC(eng_run3(&e, OP_PUN, 64, 64, 234, 0, &r, NULL), ERYX__CALL_OK);
    CHECK_EQ(r, 1000 + 234);            /* 2000 if the second load were folded */
    CHECK_RC(eng_run(&e, OP_LOAD32, 68, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 0);                     /* the store's upper half */
    /* load32 [132]; store64 [128] = 5 (its upper half is [132]); load32 [132] */
    CHECK_RC(eng_run(&e, OP_STORE32, 132, 77, NULL), ERYX__CALL_OK);
    CHECK_RC(eng_run3(&e, OP_PUN, 132, 128, 5, 0, &r, NULL), ERYX__CALL_OK);
    CHECK_EQ(r, 77 + 0);
    eng_free(&e);
}

/* eng.wat's interpreter: its 200-case switch is a table of label addresses
 * in the segment build (w2c_rewrite.sh --dispatch) and a plain switch in the
 * other; both must run every kind of entry alike. */
static uint64_t interp(eng *e, const uint8_t *code, size_t n)
{
    uint64_t r = 0;
    for (size_t i = 0; i < n; i++)
        CHECK_RC(eng_run(e, OP_STORE8, 256 + (uint32_t)i, code[i], NULL), ERYX__CALL_OK);
    CHECK_RC(eng_run(e, OP_INTERP, 256, 0, &r), ERYX__CALL_OK);
    return r;
}

TEST_CASE(test_dispatch)
{
    eng e;
    eng_new(&e);
    /* ((0 + 1 + 1) * 2 + 100) * 2 */
    CHECK_EQ(interp(&e, (const uint8_t[]){1, 1, 2, 199, 2, 0}, 6), 208);
    CHECK_EQ(interp(&e, (const uint8_t[]){0}, 1), 0);
    CHECK_EQ(interp(&e, (const uint8_t[]){1, 3, 0}, 3), 0xffffffffu);     /* the table's first default */
    CHECK_EQ(interp(&e, (const uint8_t[]){2, 198, 0}, 3), 0xffffffffu);   /* its last */
    CHECK_EQ(interp(&e, (const uint8_t[]){199, 200, 0}, 3), 0xffffffffu); /* past its end */
    CHECK_EQ(interp(&e, (const uint8_t[]){1, 255, 0}, 3), 0xffffffffu);
    eng_free(&e);
}

static wasm_rt_memory_t failed;

static void allocate_bad(void *arg)
{
    wasm_rt_allocate_memory(&failed, 5, 2);     /* initial > max: cannot exist */
    failed.pages = 77;                          /* not reached */
}

#if !defined(__SANITIZE_ADDRESS__)
static void allocate_one(void *arg)
{
    wasm_rt_allocate_memory(&failed, 1, 10);
}
#endif

TEST_CASE(test_alloc_failure)
{
    wasm_rt_memory_t m;
    memset(&m, 0xff, sizeof m);
    wasm_rt_allocate_memory(&m, 5, 2);
    CHECK(m.data == NULL);
    CHECK_EQ(m.pages, 0);
    CHECK_EQ(m.size, 0);
    CHECK_EQ(wasm_rt_grow_memory(&m, 1), UINT32_MAX);
    wasm_rt_free_memory(&m);
    CHECK_RC(eryx__engine_call(NULL, allocate_bad, NULL, NULL), ERYX__CALL_NOMEM);
    CHECK(failed.data == NULL);
    CHECK_EQ(failed.pages, 0);

#if !defined(__SANITIZE_ADDRESS__)
    /* The reservation itself failing (address space exhausted): in a child,
     * since RLIMIT_AS cannot be raised back. ASan's shadow needs far more
     * address space than any limit that would make the test meaningful. */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct rlimit lim = {1ull << 30, 1ull << 30};
        if (setrlimit(RLIMIT_AS, &lim) != 0)
            _exit(10);
        wasm_rt_allocate_memory(&m, 1, 10);
        if (m.data != NULL || m.pages != 0)
            _exit(11);
        if (eryx__engine_call(NULL, allocate_one, NULL, NULL) != ERYX__CALL_NOMEM)
            _exit(12);
        _exit(failed.data == NULL ? 0 : 13);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
#endif
}

TEST_CASE(test_tables)
{
    wasm_rt_funcref_table_t f;
    wasm_rt_externref_table_t x;
    wasm_rt_funcref_t fr = {3, (wasm_rt_function_ptr_t)test_tables, &f};
    int cookie;

    wasm_rt_allocate_funcref_table(&f, 2, 4);
    CHECK(f.data != NULL);
    CHECK_EQ(f.size, 2);
    CHECK(f.data[1].func == NULL);
    CHECK_EQ(wasm_rt_grow_funcref_table(&f, 0, fr), 2);
    CHECK_EQ(wasm_rt_grow_funcref_table(&f, 2, fr), 2);
    CHECK_EQ(f.size, 4);
    CHECK(f.data[3].func == fr.func);
    CHECK_EQ(f.data[3].func_type, 3);
    CHECK_EQ(wasm_rt_grow_funcref_table(&f, 1, fr), UINT32_MAX);
    CHECK_EQ(f.size, 4);
    wasm_rt_free_funcref_table(&f);

    wasm_rt_allocate_externref_table(&x, 0, UINT32_MAX);
    CHECK_EQ(x.size, 0);
    CHECK_EQ(wasm_rt_grow_externref_table(&x, 3, &cookie), 0);
    CHECK_EQ(x.size, 3);
    CHECK(x.data[2] == &cookie);
    CHECK_EQ(wasm_rt_grow_externref_table(&x, UINT32_MAX, NULL), UINT32_MAX);
    wasm_rt_free_externref_table(&x);
    wasm_rt_free_externref_table(&x);
}

/* Large tables have their pages populated up front (memory.c): growth
 * across that threshold, and beyond, keeps every entry and zeroes none. */
TEST_CASE(test_large_tables)
{
    wasm_rt_funcref_table_t f;
    wasm_rt_funcref_t a = {1, (wasm_rt_function_ptr_t)test_tables, &f};
    wasm_rt_funcref_t b = {2, (wasm_rt_function_ptr_t)test_large_tables, NULL};
    wasm_rt_allocate_funcref_table(&f, 3, 20000);
    CHECK(f.data != NULL);
    CHECK_EQ(wasm_rt_grow_funcref_table(&f, 3000, a), 3);    /* ~94 KiB: populated */
    CHECK_EQ(wasm_rt_grow_funcref_table(&f, 10000, b), 3003);
    CHECK_EQ(f.size, 13003);
    CHECK(f.data[0].func == NULL && f.data[2].func_type == 0);
    CHECK(f.data[3].func == a.func && f.data[3002].func_type == 1);
    CHECK(f.data[3003].func == b.func && f.data[13002].func_type == 2);
    CHECK_EQ(wasm_rt_grow_funcref_table(&f, 7000, a), UINT32_MAX);
    CHECK_EQ(f.size, 13003);
    wasm_rt_free_funcref_table(&f);

    wasm_rt_allocate_funcref_table(&f, 5600, 5600); /* CPython's size */
    CHECK(f.data != NULL && f.data[5599].func == NULL);
    f.data[5599] = a;
    wasm_rt_free_funcref_table(&f);
}

static void setup(void)
{
    eng_global();
}

TEST_MAIN_WITH(setup, NULL)
