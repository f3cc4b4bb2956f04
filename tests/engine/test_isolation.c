/* Instances never see each other's memory, however their calls interleave:
 * plain calls alternating between two instances on one thread, a fiber of
 * one suspended while the other runs and then resumed (also on another
 * thread), instances on several threads at once, and a new instance in the
 * place of a freed one. With the %gs-segment build of the module
 * (engine_*_segment) this is what checks that the engine points %gs at the
 * right memory on every entry (src/engine/segment.c). */
#include <pthread.h>
#include <string.h>

#include "harness.h"

static uint32_t load(eng *e, uint32_t addr)
{
    uint64_t r;
    CHECK_RC(eng_run(e, OP_LOAD32, addr, 0, &r), ERYX__CALL_OK);
    return (uint32_t)r;
}

static void store(eng *e, uint32_t addr, uint32_t v)
{
    CHECK_RC(eng_run(e, OP_STORE32, addr, v, NULL), ERYX__CALL_OK);
}

static uint32_t peek(eng *e, uint32_t addr)
{
    uint32_t v;
    memcpy(&v, e->inst.w2c_memory.data + addr, 4);
    return v;
}

TEST_CASE(test_alternating)
{
    eng a, b;
    eng_new(&a);
    eng_new(&b);
    for (uint32_t i = 0; i < 1000; i++) {
        store(&a, 100, i);
        store(&b, 100, ~i);
        CHECK_EQ(load(&a, 100), i);
        CHECK_EQ(load(&b, 100), ~i);
        CHECK_EQ(peek(&a, 100), i);     /* where the host sees it, too */
        CHECK_EQ(peek(&b, 100), ~i);
    }
    eng_free(&a);
    eng_free(&b);
}

static void *resume_thread(void *arg)
{
    eryx__fiber *f = arg;
    return (void *)(intptr_t)eryx__engine_resume(f, NULL);
}

/* roundtrips(n) on a's fiber stores i at a's [0] before each wait; between
 * the waits b runs on this thread and writes its own [0]. */
static void test_fiber_interleaved(int migrate)
{
    eng a, b;
    eng_new(&a);
    eng_new(&b);
    eryx__fiber *f = eryx__fiber_new(0);
    CHECK(f != NULL);
    job j = {&a, OP_ROUNDTRIPS, 50, 0, 0, 0, 0};
    int rc = eryx__engine_call_on(f, &a.inst.w2c_memory, eng_job_run, &j, NULL);
    uint32_t sum = 0;
    for (uint32_t i = 0; i < 50; i++) {
        CHECK_RC(rc, ERYX__CALL_SUSPENDED);
        CHECK_EQ(peek(&a, 0), i);
        store(&b, 0, 0xb0000000u + i);
        CHECK_EQ(load(&b, 0), 0xb0000000u + i);
        uint32_t reply = 7 * i;
        memcpy(a.inst.w2c_memory.data + 4, &reply, 4);
        sum += reply;
        if (migrate && i % 2) {
            pthread_t th;
            void *res;
            CHECK_EQ(pthread_create(&th, NULL, resume_thread, f), 0);
            CHECK_EQ(pthread_join(th, &res), 0);
            rc = (int)(intptr_t)res;
        } else {
            rc = eryx__engine_resume(f, NULL);
        }
    }
    CHECK_RC(rc, ERYX__CALL_OK);
    CHECK_EQ(j.r, sum);
    CHECK_EQ(peek(&b, 0), 0xb0000000u + 49);
    eryx__fiber_free(f);
    eng_free(&a);
    eng_free(&b);
}

static void *worker(void *arg)
{
    uint32_t id = (uint32_t)(intptr_t)arg;
    eng e;
    eng_new(&e);
    for (uint32_t i = 0; i < 2000; i++) {
        store(&e, 8 * id, id * 100000 + i);
        CHECK_EQ(load(&e, 8 * id), id * 100000 + i);
    }
    for (uint32_t k = 0; k < 8; k++)
        if (k != id)
            CHECK_EQ(peek(&e, 8 * k), 0);
    eng_free(&e);
    return NULL;
}

TEST_CASE(test_threads)
{
    pthread_t th[4];
    for (intptr_t i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, worker, (void *)i), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
}

/* A new instance often gets the freed one's address range back: it must
 * start from its own zeroed memory, not from anything cached. */
TEST_CASE(test_reuse)
{
    for (int i = 0; i < 20; i++) {
        eng e;
        eng_new(&e);
        CHECK_EQ(load(&e, 200), 0);
        store(&e, 200, 1234u + (uint32_t)i);
        CHECK_EQ(load(&e, 200), 1234u + (uint32_t)i);
        eng_free(&e);
    }
}

TEST_CASE(test_fiber_interleaved_same_thread)
{
    test_fiber_interleaved(0);
}

TEST_CASE(test_fiber_interleaved_migrating)
{
    test_fiber_interleaved(1);
}

TEST_MAIN()
