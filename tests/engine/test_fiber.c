/* Fibers: suspend/resume round trips (values through guest memory), resuming
 * on other threads, every way a fiber call can end (also after suspends and
 * after migrating), stack exhaustion on the fiber, abandon, free while
 * suspended, and misuse. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "harness.h"

static uint32_t mem_get(eng *e, uint32_t addr)
{
    uint32_t v;
    memcpy(&v, e->inst.w2c_memory.data + addr, 4);
    return v;
}

static void mem_put(eng *e, uint32_t addr, uint32_t v)
{
    memcpy(e->inst.w2c_memory.data + addr, &v, 4);
}

static int call_on(eryx__fiber *f, job *j, eryx__call_info *info)
{
    return eryx__engine_call_on(f, &j->e->inst.w2c_memory, eng_job_run, j, info);
}

/* Resuming on a thread of its own. */
typedef struct resume_args {
    eryx__fiber *f;
    eryx__call_info *info;
    int rc;
    eng *e;
    int answer;                 /* answer a roundtrips wait first */
} resume_args;

static void answer(eng *e)
{
    uint32_t i = mem_get(e, 0);
    mem_put(e, 4, 3 * i + 1);
}

static void *resume_thread(void *arg)
{
    resume_args *a = arg;
    if (a->answer)
        answer(a->e);
    a->rc = eryx__engine_resume(a->f, a->info);
    return NULL;
}

static int resume_elsewhere(eryx__fiber *f, eng *e, int answer_first, eryx__call_info *info)
{
    pthread_t th;
    resume_args a = {f, info, -2, e, answer_first};
    CHECK_EQ(pthread_create(&th, NULL, resume_thread, &a), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    return a.rc;
}

static uint32_t roundtrips_sum(uint32_t n)
{
    uint32_t s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += 3 * i + 1;
    return s;
}

/* roundtrips(n) with every wait answered here (or every k-th resume done on
 * another thread). */
static void roundtrips(eryx__fiber *f, eng *e, uint32_t n, int migrate_every)
{
    job j = {e, OP_ROUNDTRIPS, n, 0, 0, 0, 0};
    int waits0 = e->host.waits;
    int rc = call_on(f, &j, NULL);
    for (uint32_t i = 0; i < n; i++) {
        CHECK_RC(rc, ERYX__CALL_SUSPENDED);
        CHECK(eryx__fiber_suspended(f));
        CHECK_EQ(mem_get(e, 0), i);
        if (migrate_every && i % (uint32_t)migrate_every == 0) {
            rc = resume_elsewhere(f, e, 1, NULL);
        } else {
            answer(e);
            rc = eryx__engine_resume(f, NULL);
        }
    }
    CHECK_RC(rc, ERYX__CALL_OK);
    CHECK(!eryx__fiber_suspended(f));
    CHECK_EQ(j.r, roundtrips_sum(n));
    CHECK_EQ(e->host.waits - waits0, (int)n);
}

TEST_CASE(test_roundtrips)
{
    eng e;
    eryx__fiber *f = eryx__fiber_new(0);
    CHECK(f != NULL);
    eng_new(&e);
    roundtrips(f, &e, 0, 0);
    roundtrips(f, &e, 5, 0);
    roundtrips(f, &e, 10000, 0);
    roundtrips(f, &e, 7, 1);            /* every resume on another thread */
    roundtrips(f, &e, 20, 3);
    CHECK_EQ(e.host.suspend_failed, 0);
    /* The fiber also runs calls that never suspend. */
    job j = {&e, OP_PING, 21, 0, 0, 0, 0};
    CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_OK);
    CHECK_EQ(j.r, 42);
    eryx__fiber_free(f);
    eng_free(&e);
}

/* wait_then(n, what) on f, every resume on another thread if `migrate`. */
static int wait_then(eryx__fiber *f, eng *e, uint32_t n, enum wait_then what, int migrate,
                     eryx__call_info *info, uint64_t *out)
{
    static job j;               /* outlives the threads that resume it */
    j = (job){e, OP_WAIT_THEN, n, what, 0, 0, UINT64_MAX};
    int rc = call_on(f, &j, info);
    for (uint32_t i = 0; i < n; i++) {
        CHECK_RC(rc, ERYX__CALL_SUSPENDED);
        e->host.reply = 100 + i;
        rc = migrate ? resume_elsewhere(f, e, 0, info) : eryx__engine_resume(f, info);
    }
    if (out != NULL)
        *out = j.r;
    return rc;
}

static void still_works(eryx__fiber *f, eng *e)
{
    uint64_t r;
    CHECK(!eryx__fiber_suspended(f));
    CHECK_RC(wait_then(f, e, 2, WT_RETURN, 0, NULL, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 2 + 100 + 101);
    CHECK_RC(eng_run(e, OP_PING, 4, 0, &r), ERYX__CALL_OK);   /* and plain calls */
    CHECK_EQ(r, 8);
}

static void ends(eryx__fiber *f, eng *e, uint32_t n, int migrate)
{
    eryx__call_info info;
    uint64_t r;
    CHECK_RC(wait_then(f, e, n, WT_UNREACHABLE, migrate, NULL, NULL), WASM_RT_TRAP_UNREACHABLE);
    still_works(f, e);
    CHECK_RC(wait_then(f, e, n, WT_OOB, migrate, NULL, NULL), WASM_RT_TRAP_OOB);
    still_works(f, e);
    CHECK_RC(wait_then(f, e, n, WT_EXIT, migrate, &info, NULL), ERYX__CALL_EXIT);
    CHECK_EQ(info.exit_code, 77);
    still_works(f, e);
    CHECK_RC(wait_then(f, e, n, WT_ABORT, migrate, &info, NULL), ERYX__CALL_ABORTED);
    CHECK_EQ(info.abort_reason, 55);
    still_works(f, e);
    CHECK_RC(wait_then(f, e, n, WT_RECURSE, migrate, NULL, NULL), WASM_RT_TRAP_EXHAUSTION);
    still_works(f, e);
    CHECK_RC(wait_then(f, e, n, WT_THROW, migrate, NULL, NULL),
             WASM_RT_TRAP_UNCAUGHT_EXCEPTION);
    still_works(f, e);
    CHECK_RC(wait_then(f, e, n, WT_PING, migrate, NULL, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 4);
    CHECK_RC(wait_then(f, e, n, WT_RETURN, migrate, NULL, &r), ERYX__CALL_OK);
    CHECK_EQ(r, n + n * 100 + n * (n - 1) / 2);
}

static void test_ends(size_t stack)
{
    eng e;
    eryx__fiber *f = eryx__fiber_new(stack);
    CHECK(f != NULL);
    eng_new(&e);
    ends(f, &e, 0, 0);
    ends(f, &e, 3, 0);
    ends(f, &e, 2, 1);
    /* A guest-caught exception around nothing special still works. */
    job j = {&e, OP_CATCH, 41, 0, 0, 0, 0};
    CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_OK);
    CHECK_EQ(j.r, 42);
    eryx__fiber_free(f);
    eng_free(&e);
}

/* Exhaustion is a trap on the fiber's own guard, whatever the thread's
 * stack looks like, and the fiber is reusable afterwards. */
static void *exhaust_thread(void *arg)
{
    eng *e = arg;
    eryx__fiber *f = eryx__fiber_new(64 * 1024);
    CHECK(f != NULL);
    for (int i = 0; i < 5; i++) {
        job j = {e, OP_RECURSE, 0, 0, 0, 0, 0};
        CHECK_RC(call_on(f, &j, NULL), WASM_RT_TRAP_EXHAUSTION);
        still_works(f, e);
    }
    eryx__fiber_free(f);
    return NULL;
}

TEST_CASE(test_exhaustion)
{
    eng e;
    pthread_t th;
    pthread_attr_t attr;
    eng_new(&e);
    exhaust_thread(&e);
    /* A thread whose own stack (128 KiB) is smaller than the fiber's. */
    CHECK_EQ(pthread_attr_init(&attr), 0);
    CHECK_EQ(pthread_attr_setstacksize(&attr, 128 * 1024), 0);
    CHECK_EQ(pthread_create(&th, &attr, exhaust_thread, &e), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    pthread_attr_destroy(&attr);
    eng_free(&e);
}

TEST_CASE(test_abandon)
{
    eng e;
    uint64_t r;
    eryx__fiber *f = eryx__fiber_new(0);
    CHECK(f != NULL);
    eng_new(&e);
    eryx__fiber_abandon(f);                 /* idle: no-op */
    for (int i = 0; i < 50; i++) {
        job j = {&e, OP_WAIT_THEN, 3, WT_RETURN, 0, 0, 0};
        CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_SUSPENDED);
        CHECK(eryx__fiber_suspended(f));
        /* Misuse while suspended: a new call is refused. */
        job k = {&e, OP_PING, 1, 0, 0, 0, 0};
        errno = 0;
        CHECK_RC(call_on(f, &k, NULL), -1);
        CHECK_EQ(errno, EBUSY);
        if (i % 2)
            CHECK_RC(resume_elsewhere(f, &e, 0, NULL), ERYX__CALL_SUSPENDED);
        eryx__fiber_abandon(f);
        CHECK(!eryx__fiber_suspended(f));
        errno = 0;
        CHECK_RC(eryx__engine_resume(f, NULL), -1);     /* nothing to resume */
        CHECK_EQ(errno, EBUSY);
        still_works(f, &e);
    }
    CHECK_RC(wait_then(f, &e, 4, WT_RETURN, 0, NULL, &r), ERYX__CALL_OK);
    CHECK_EQ(r, 4 + 400 + 6);
    eryx__fiber_free(f);
    eng_free(&e);
}

/* Fibers freed while suspended (and in every other state) leave no mapping
 * or memory behind. */
TEST_CASE(test_free_suspended)
{
    eng e;
    eng_new(&e);
    eryx__fiber_free(NULL);
    for (int i = 0; i < 3; i++) {           /* warm up malloc arenas etc. */
        eryx__fiber *f = eryx__fiber_new(0);
        job j = {&e, OP_WAIT_THEN, 2, WT_RETURN, 0, 0, 0};
        CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_SUSPENDED);
        eryx__fiber_free(f);
    }
    int maps0 = maps_count();
    long rss0 = rss_kib();
    for (int i = 0; i < 300; i++) {
        eryx__fiber *f = eryx__fiber_new(i % 2 ? 0 : 256 * 1024);
        CHECK(f != NULL);
        job j = {&e, OP_WAIT_THEN, 2, WT_RETURN, 0, 0, 0};
        CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_SUSPENDED);
        if (i % 3 == 0) {
            e.host.reply = 1;
            CHECK_RC(eryx__engine_resume(f, NULL), ERYX__CALL_SUSPENDED);
        }
        eryx__fiber_free(f);
    }
    int maps1 = maps_count();
    long rss1 = rss_kib();
    if ((maps1 > maps0 + 1 || rss1 > rss0 + 2048) && !CHECK_TSAN) {
        fprintf(stderr, "300 fibers freed while suspended: mappings %d -> %d, RSS %ld -> %ld KiB\n",
                maps0, maps1, rss0, rss1);
        exit(1);
    }
    eng_free(&e);
}

/* Suspending where there is no fiber is refused and the import carries on;
 * nested calls from inside a fiber call are refused. */
static eryx__fiber *other_fiber;
static int nested_rc[3], nested_errno[3];

static uint32_t nested_ping(struct Z_host_instance_t *host, uint32_t x)
{
    eng *e = (eng *)((char *)host - offsetof(eng, host));
    job j = {e, OP_LOAD32, 0, 0, 0, 0, 0};
    errno = 0;
    nested_rc[0] = eryx__engine_call(&e->inst.w2c_memory, eng_job_run, &j, NULL);
    nested_errno[0] = errno;
    errno = 0;
    nested_rc[1] = call_on(other_fiber, &j, NULL);
    nested_errno[1] = errno;
    errno = 0;
    nested_rc[2] = eryx__engine_resume(other_fiber, NULL);
    nested_errno[2] = errno;
    return x + 1;
}

TEST_CASE(test_misuse)
{
    eng e;
    uint64_t r;
    eryx__fiber *f = eryx__fiber_new(0);
    other_fiber = eryx__fiber_new(0);
    CHECK(f != NULL && other_fiber != NULL);
    eng_new(&e);

    CHECK_RC(eng_run(&e, OP_WAIT_THEN, 2, WT_RETURN, &r), ERYX__CALL_OK);
    CHECK_EQ(e.host.suspend_failed, 2);
    errno = 0;
    CHECK_EQ(eryx__engine_suspend(), -1);
    CHECK_EQ(errno, EINVAL);

    e.host.on_ping = nested_ping;
    job j = {&e, OP_PING, 5, 0, 0, 0, 0};
    CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_OK);
    CHECK_EQ(j.r, 6);
    for (int i = 0; i < 3; i++) {
        CHECK_RC(nested_rc[i], -1);
        CHECK_EQ(nested_errno[i], EBUSY);
    }
    e.host.on_ping = NULL;

    /* Two fibers suspended at once on one thread, resumed alternately, and
     * plain calls in between. */
    eng e2;
    eng_new(&e2);
    job a = {&e, OP_ROUNDTRIPS, 50, 0, 0, 0, 0}, b = {&e2, OP_ROUNDTRIPS, 50, 0, 0, 0, 0};
    int ra = call_on(f, &a, NULL), rb = call_on(other_fiber, &b, NULL);
    for (int i = 0; i < 50; i++) {
        CHECK_RC(ra, ERYX__CALL_SUSPENDED);
        CHECK_RC(rb, ERYX__CALL_SUSPENDED);
        CHECK_RC(eng_run(&e, OP_PING, 1, 0, &r), ERYX__CALL_OK);
        answer(&e);
        answer(&e2);
        ra = eryx__engine_resume(f, NULL);
        rb = eryx__engine_resume(other_fiber, NULL);
    }
    CHECK_RC(ra, ERYX__CALL_OK);
    CHECK_RC(rb, ERYX__CALL_OK);
    CHECK_EQ(a.r, roundtrips_sum(50));
    CHECK_EQ(b.r, roundtrips_sum(50));

    /* Plain calls still trap correctly on a thread that has run fibers. */
    CHECK_RC(eng_run(&e, OP_RECURSE, 0, 0, NULL), WASM_RT_TRAP_EXHAUSTION);
    CHECK_RC(eng_run(&e, OP_LOAD32, 65536, 0, NULL), WASM_RT_TRAP_OOB);
    eryx__fiber_free(f);
    eryx__fiber_free(other_fiber);
    eng_free(&e);
    eng_free(&e2);
}

/* Several threads, each with fibers, resuming each other's: fibers hop
 * between threads through a shared queue. */
#define HOPPERS 3
#define HOPS 400
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
typedef struct hop {
    eryx__fiber *f;
    eng e;
    job j;
    uint32_t i;
} hop;
static hop *queue[HOPPERS];
static int q_len, done_count;

static void *hopper(void *arg)
{
    for (;;) {
        pthread_mutex_lock(&q_lock);
        while (q_len == 0 && done_count < HOPPERS)
            pthread_cond_wait(&q_cond, &q_lock);
        if (q_len == 0) {
            pthread_mutex_unlock(&q_lock);
            return NULL;
        }
        hop *h = queue[--q_len];
        pthread_mutex_unlock(&q_lock);

        CHECK_EQ(mem_get(&h->e, 0), h->i);
        answer(&h->e);
        h->i++;
        int rc = eryx__engine_resume(h->f, NULL);
        /* A trap now and then: OOB handled by this thread's signal handler. */
        CHECK_RC(eng_run(&h->e, OP_LOAD32, 65536, 0, NULL), WASM_RT_TRAP_OOB);
        pthread_mutex_lock(&q_lock);
        if (rc == ERYX__CALL_SUSPENDED) {
            queue[q_len++] = h;
        } else {
            CHECK_RC(rc, ERYX__CALL_OK);
            CHECK_EQ(h->j.r, roundtrips_sum(HOPS));
            done_count++;
        }
        pthread_cond_broadcast(&q_cond);
        pthread_mutex_unlock(&q_lock);
    }
}

TEST_CASE(test_hopping)
{
    static hop hops[HOPPERS];
    pthread_t th[HOPPERS];
    for (int i = 0; i < HOPPERS; i++) {
        hop *h = &hops[i];
        eng_new(&h->e);
        h->f = eryx__fiber_new(256 * 1024);
        CHECK(h->f != NULL);
        h->j = (job){&h->e, OP_ROUNDTRIPS, HOPS, 0, 0, 0, 0};
        CHECK_RC(call_on(h->f, &h->j, NULL), ERYX__CALL_SUSPENDED);
        queue[q_len++] = h;
    }
    for (int i = 0; i < HOPPERS; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, hopper, NULL), 0);
    for (int i = 0; i < HOPPERS; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    CHECK_EQ(done_count, HOPPERS);
    for (int i = 0; i < HOPPERS; i++) {
        eryx__fiber_free(hops[i].f);
        eng_free(&hops[i].e);
    }
}

TEST_CASE(test_ends_default_stack)
{
    test_ends(0);
}

TEST_CASE(test_ends_small_stack)
{
    test_ends(256 * 1024);
}

static void setup(void)
{
    eng_global();
}

TEST_MAIN_WITH(setup, NULL)
