/* Runaway recursion: a stack-exhaustion trap on the main thread and on
 * threads with small stacks, with the host going on afterwards. */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"

static void recurse_then_work(eng *e, int times)
{
    uint64_t r;
    for (int i = 0; i < times; i++) {
        CHECK_RC(eng_run(e, OP_RECURSE, 0, 0, NULL), WASM_RT_TRAP_EXHAUSTION);
        CHECK_RC(eng_run(e, OP_PING, 5, 0, &r), ERYX__CALL_OK);
        CHECK_EQ(r, 10);
        CHECK_RC(eng_run(e, OP_LOAD32, 65536, 0, NULL), WASM_RT_TRAP_OOB);
    }
}

static void *small_stack_thread(void *arg)
{
    eng e;
    eng_new(&e);
    recurse_then_work(&e, 10);
    eng_free(&e);
    return NULL;
}

static void run_thread(void *(*fn)(void *), size_t stack)
{
    pthread_attr_t attr;
    pthread_t th;
    CHECK_EQ(pthread_attr_init(&attr), 0);
    if (stack)
        CHECK_EQ(pthread_attr_setstacksize(&attr, stack), 0);
    CHECK_EQ(pthread_create(&th, &attr, fn, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    pthread_attr_destroy(&attr);
}

/* An alternate signal stack the embedder installed is used, not replaced. */
static void *own_altstack_thread(void *arg)
{
    size_t len = 256 * 1024;
    void *mine = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mine != MAP_FAILED);
    stack_t ss = {.ss_sp = mine, .ss_size = len, .ss_flags = 0}, now;
    CHECK_EQ(sigaltstack(&ss, NULL), 0);
    small_stack_thread(NULL);
    CHECK_EQ(sigaltstack(NULL, &now), 0);
    CHECK(now.ss_sp == mine);
    CHECK_EQ(now.ss_size, len);
    CHECK(!(now.ss_flags & SS_DISABLE));
    ss.ss_flags = SS_DISABLE;
    CHECK_EQ(sigaltstack(&ss, NULL), 0);
    munmap(mine, len);
    return NULL;
}

static void *one_trap_thread(void *arg)
{
    eng e;
    eng_new(&e);
    CHECK_RC(eng_run(&e, OP_RECURSE, 0, 0, NULL), WASM_RT_TRAP_EXHAUSTION);
    eng_free(&e);
    return NULL;
}

TEST_CASE(test_recursion)
{
    eng e, fresh;
    uint64_t r;
    eng_new(&e);
    recurse_then_work(&e, 3);
    eng_new(&fresh);
    CHECK_RC(eng_run(&fresh, OP_PING, 1, 0, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 2);
    eng_free(&fresh);

    run_thread(small_stack_thread, 256 * 1024);
    run_thread(small_stack_thread, 0);
    run_thread(own_altstack_thread, 256 * 1024);

    /* Threads that ran guest code leave no mapping behind (their alternate
     * signal stacks are unmapped at thread exit). */
    run_thread(one_trap_thread, 128 * 1024);
    int before = maps_count();
    for (int i = 0; i < 50; i++)
        run_thread(one_trap_thread, 128 * 1024);
    int after = maps_count();
    if (after > before + 2 && !CHECK_TSAN) {
        fprintf(stderr, "mappings grew from %d to %d over 50 threads\n", before, after);
        exit(1);
    }
    recurse_then_work(&e, 1);
    eng_free(&e);
}

TEST_MAIN()
