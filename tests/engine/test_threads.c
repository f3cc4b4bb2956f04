/* Several threads run guest code at once, each trapping independently. */
#include <pthread.h>

#include "harness.h"

#define THREADS 4
#define ROUNDS 300

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    eng e;
    uint64_t r;
    eryx__call_info info;
    eng_new(&e);
    for (uint32_t i = 0; i < ROUNDS; i++) {
        uint32_t v = (uint32_t)(id * 100000 + i);
        CHECK_RC(eng_run(&e, OP_STORE32, 8, v, NULL), ERYX__CALL_OK);
        switch ((i + id) % 6) {
        case 0: CHECK_RC(eng_run(&e, OP_LOAD_FAR, v, 0, NULL), WASM_RT_TRAP_OOB); break;
        case 1: CHECK_RC(eng_run(&e, OP_UNREACHABLE, 0, 0, NULL), WASM_RT_TRAP_UNREACHABLE); break;
        case 2:
            if (i % 5 == 2)
                CHECK_RC(eng_run(&e, OP_RECURSE, 0, 0, NULL), WASM_RT_TRAP_EXHAUSTION);
            break;
        case 3: CHECK_RC(eng_run(&e, OP_DIV_S, v, 0, NULL), WASM_RT_TRAP_DIV_BY_ZERO); break;
        case 4:
            CHECK_RC(eng_run3(&e, OP_EXIT, v, 0, 0, 0, NULL, &info), ERYX__CALL_EXIT);
            CHECK_EQ(info.exit_code, (int)v);
            break;
        case 5: CHECK_RC(eng_run(&e, OP_THROW, v, 0, NULL), WASM_RT_TRAP_UNCAUGHT_EXCEPTION); break;
        }
        CHECK_RC(eng_run(&e, OP_LOAD32, 8, 0, &r), ERYX__CALL_OK);
        CHECK_EQ(r, v);
        CHECK_RC(eng_run(&e, OP_CATCH, v, 0, &r), ERYX__CALL_OK);
        CHECK_EQ(r, v + 1);
    }
    eng_free(&e);
    return NULL;
}

TEST_CASE(test_threads_trap_independently)
{
    pthread_t th[THREADS];
    pthread_attr_t attr;
    eng_global();
    CHECK_EQ(pthread_attr_init(&attr), 0);
    CHECK_EQ(pthread_attr_setstacksize(&attr, 512 * 1024), 0);
    for (uintptr_t i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_create(&th[i], &attr, worker, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    pthread_attr_destroy(&attr);
}

TEST_MAIN()
