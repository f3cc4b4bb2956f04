/* Every way a guarded call can end, and that the host goes on after each. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "harness.h"

static eng e;

/* The instance still works after whatever the previous call did. */
static void still_works(void)
{
    uint64_t r;
    CHECK_RC(eng_run(&e, OP_LOAD32, 0, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 1234);
}

static void expect(enum op op, uint32_t a, uint32_t b, int want)
{
    CHECK_RC(eng_run(&e, op, a, b, NULL), want);
    still_works();
}

TEST_CASE(test_oob)
{
    uint64_t r;
    CHECK_RC(eng_run(&e, OP_STORE32, 0, 1234, NULL), ERYX__CALL_OK);
    still_works();
    CHECK_RC(eng_run(&e, OP_STORE8, 65535, 7, NULL), ERYX__CALL_OK);
    expect(OP_LOAD32, 65536, 0, WASM_RT_TRAP_OOB);
    expect(OP_LOAD32, 65533, 0, WASM_RT_TRAP_OOB);      /* straddles the end */
    expect(OP_STORE32, 65533, 1, WASM_RT_TRAP_OOB);
    expect(OP_STORE8, 65536, 1, WASM_RT_TRAP_OOB);
    expect(OP_LOAD32, 0xffffffffu, 0, WASM_RT_TRAP_OOB);
    expect(OP_LOAD_FAR, 0, 0, WASM_RT_TRAP_OOB);        /* offset 4 GiB - 1 */
    expect(OP_LOAD_FAR, 0xfffffff0u, 0, WASM_RT_TRAP_OOB);
    expect(OP_LOAD_FAR, 0xffffffffu, 0, WASM_RT_TRAP_OOB); /* 8 GiB - 2 */
    expect(OP_STORE_FAR, 0xffffffffu, 5, WASM_RT_TRAP_OOB);
    expect(OP_LOAD64_FAR, 0xffffffffu, 0, WASM_RT_TRAP_OOB); /* ends past 8 GiB */
    /* memory.fill is bounds-checked by the generated code (wasm_rt_trap). */
    CHECK_RC(eng_run3(&e, OP_FILL, 65000, 9, 1000, 0, NULL, NULL), WASM_RT_TRAP_OOB);
    still_works();
    CHECK_RC(eng_run3(&e, OP_FILL, 65000, 9, 536, 0, NULL, NULL), ERYX__CALL_OK);
    CHECK_RC(eng_run(&e, OP_LOAD32, 65532, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 0x09090909);
}

TEST_CASE(test_arith)
{
    uint64_t r;
    expect(OP_UNREACHABLE, 0, 0, WASM_RT_TRAP_UNREACHABLE);
    expect(OP_DIV_S, 1, 0, WASM_RT_TRAP_DIV_BY_ZERO);
    expect(OP_DIV_S, (uint32_t)INT_MIN, (uint32_t)-1, WASM_RT_TRAP_INT_OVERFLOW);
    expect(OP_REM_U, 1, 0, WASM_RT_TRAP_DIV_BY_ZERO);
    CHECK_RC(eng_run(&e, OP_DIV_S, (uint32_t)-7, 2, &r), ERYX__CALL_OK);
    CHECK_EQ((int32_t)r, -3);
    CHECK_RC(eng_run3(&e, OP_TRUNC, 0, 0, 0, NAN, NULL, NULL), WASM_RT_TRAP_INVALID_CONVERSION);
    still_works();
    CHECK_RC(eng_run3(&e, OP_TRUNC, 0, 0, 0, 1e10, NULL, NULL), WASM_RT_TRAP_INT_OVERFLOW);
    still_works();
    CHECK_RC(eng_run3(&e, OP_TRUNC, 0, 0, 0, -3.9, &r, NULL), ERYX__CALL_OK);
    CHECK_EQ((int32_t)r, -3);
}

TEST_CASE(test_call_indirect)
{
    uint64_t r;
    CHECK_RC(eng_run(&e, OP_CALL_IND, 0, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 42);
    expect(OP_CALL_IND, 1, 0, WASM_RT_TRAP_CALL_INDIRECT);   /* wrong type */
    expect(OP_CALL_IND, 2, 0, WASM_RT_TRAP_CALL_INDIRECT);   /* null */
    expect(OP_CALL_IND, 4, 0, WASM_RT_TRAP_CALL_INDIRECT);   /* past the end */
    expect(OP_CALL_IND, 0xffffffffu, 0, WASM_RT_TRAP_CALL_INDIRECT);
}

TEST_CASE(test_exceptions)
{
    uint64_t r;
    expect(OP_THROW, 5, 0, WASM_RT_TRAP_UNCAUGHT_EXCEPTION);
    for (int i = 0; i < 3; i++) {
        CHECK_RC(eng_run(&e, OP_CATCH, 5, 0, &r), ERYX__CALL_OK);
        CHECK_EQ(r, 6);
        CHECK(wasm_rt_get_unwind_target() == NULL);
        expect(OP_THROW, 6, 0, WASM_RT_TRAP_UNCAUGHT_EXCEPTION);
    }
    /* A trap while a wasm `try` is active leaves no stale unwind target. */
    CHECK(wasm_rt_get_unwind_target() == NULL);
}

TEST_CASE(test_exit_abort)
{
    eryx__call_info info = {-1, -1};
    CHECK_RC(eng_run3(&e, OP_EXIT, 3, 0, 0, 0, NULL, &info), ERYX__CALL_EXIT);
    CHECK_EQ(info.exit_code, 3);
    still_works();
    CHECK_RC(eng_run3(&e, OP_ABORT, 9, 0, 0, 0, NULL, &info), ERYX__CALL_ABORTED);
    CHECK_EQ(info.abort_reason, 9);
    still_works();
    CHECK_RC(eng_run(&e, OP_EXIT, 0, 0, NULL), ERYX__CALL_EXIT);   /* info NULL */
}

static int inner_rc, inner_errno;

static void nothing(void *arg) {}

static uint32_t reenter(struct Z_host_instance_t *host, uint32_t x)
{
    inner_rc = eryx__engine_call(NULL, nothing, NULL, NULL);
    inner_errno = errno;
    return x + 1;
}

TEST_CASE(test_host_calls)
{
    uint64_t r;
    CHECK_RC(eng_run(&e, OP_PING, 21, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 42);
    CHECK_EQ(e.host.pings, 1);
    e.host.on_ping = reenter;
    CHECK_RC(eng_run(&e, OP_PING, 1, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 2);
    CHECK_EQ(inner_rc, -1);
    CHECK_EQ(inner_errno, EBUSY);
    e.host.on_ping = NULL;
    CHECK_RC(eryx__engine_call(NULL, nothing, NULL, NULL), ERYX__CALL_OK);
}

TEST_CASE(test_strerror)
{
    int codes[] = {ERYX__CALL_OK, WASM_RT_TRAP_OOB, WASM_RT_TRAP_INT_OVERFLOW,
                   WASM_RT_TRAP_DIV_BY_ZERO, WASM_RT_TRAP_INVALID_CONVERSION,
                   WASM_RT_TRAP_UNREACHABLE, WASM_RT_TRAP_CALL_INDIRECT,
                   WASM_RT_TRAP_UNCAUGHT_EXCEPTION, WASM_RT_TRAP_EXHAUSTION, ERYX__CALL_EXIT,
                   ERYX__CALL_ABORTED, ERYX__CALL_NOMEM, -1};
    size_t n = sizeof codes / sizeof codes[0];
    const char *unknown = eryx__engine_strerror(12345);
    for (size_t i = 0; i < n; i++) {
        CHECK(eryx__engine_strerror(codes[i]) != unknown);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(eryx__engine_strerror(codes[i]), eryx__engine_strerror(codes[j])) != 0);
    }
    CHECK(strcmp(wasm_rt_strerror(WASM_RT_TRAP_OOB), eryx__engine_strerror(WASM_RT_TRAP_OOB)) == 0);
}

/* Function-type indices: equal signatures share one, from any thread. */
static uint32_t reg_results[8][3];

static void *register_types(void *arg)
{
    uint32_t *out = arg;
    for (int i = 0; i < 200; i++) {
        out[0] = wasm_rt_register_func_type(2, 1, WASM_RT_I32, WASM_RT_F64, WASM_RT_I64);
        out[1] = wasm_rt_register_func_type(0, 0);
        out[2] = wasm_rt_register_func_type(1, 2, WASM_RT_FUNCREF, WASM_RT_EXTERNREF,
                                            WASM_RT_F32);
    }
    return NULL;
}

TEST_CASE(test_func_types)
{
    pthread_t th[8];
    for (int i = 0; i < 8; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, register_types, reg_results[i]), 0);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 3; k++)
            CHECK_EQ(reg_results[i][k], reg_results[0][k]);
    CHECK(reg_results[0][0] != reg_results[0][1]);
    CHECK(reg_results[0][1] != reg_results[0][2]);
    CHECK(reg_results[0][0] != 0);
    CHECK_EQ(wasm_rt_register_func_type(2, 1, WASM_RT_I32, WASM_RT_F64, WASM_RT_I64),
             reg_results[0][0]);
    CHECK(wasm_rt_register_func_type(2, 1, WASM_RT_I32, WASM_RT_F64, WASM_RT_I32)
          != reg_results[0][0]);
}

/* A fresh instance is independent of one that trapped. */
TEST_CASE(test_fresh)
{
    eng fresh;
    uint64_t r;
    expect(OP_LOAD32, 65536, 0, WASM_RT_TRAP_OOB);
    eng_new(&fresh);
    CHECK_RC(eng_run(&fresh, OP_LOAD32, 0, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 0);
    CHECK_RC(eng_run(&fresh, OP_LOAD32, 65536, 0, NULL), WASM_RT_TRAP_OOB);
    still_works();
    eng_free(&fresh);
}

/* Every case starts with an instance whose word 0 is 1234 (still_works). */
static void setup(void)
{
    eng_new(&e);
    CHECK_RC(eng_run(&e, OP_STORE32, 0, 1234, NULL), ERYX__CALL_OK);
}

static void teardown(void)
{
    eng_free(&e);
    CHECK(e.inst.w2c_memory.data == NULL);
}

TEST_MAIN_WITH(setup, teardown)
