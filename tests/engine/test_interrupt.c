/* The hard interrupt: of an idle fiber, a suspended one, guest code in an
 * infinite loop on this or another thread (with the latency printed), host
 * code in an import (takes effect on leaving it), and racing with calls
 * that finish on their own. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static int call_on(eryx__fiber *f, job *j, eryx__call_info *info)
{
    return eryx__engine_call_on(f, &j->e->inst.w2c_memory, eng_job_run, j, info);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static uint32_t xorshift_n(uint32_t n)
{
    uint32_t x = 1;
    while (n--) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
    }
    return x;
}

TEST_CASE(test_idle_and_suspended)
{
    eng e;
    eryx__fiber *f = eryx__fiber_new(0);
    CHECK(f != NULL);
    eng_new(&e);
    job j = {&e, OP_COUNT, 1000, 0, 0, 0, 0};

    /* Idle: every call is refused until cleared; nothing runs. */
    eryx__engine_interrupt(f);
    for (int i = 0; i < 3; i++) {
        j.r = 7;
        CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_INTERRUPTED);
        CHECK_EQ(j.r, 7);
    }
    eryx__fiber_clear_interrupt(f);
    CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_OK);
    CHECK_EQ(j.r, xorshift_n(1000));

    /* Suspended: the resume ends the computation without running it. */
    int waits = e.host.waits;
    job w = {&e, OP_WAIT_THEN, 3, WT_RETURN, 0, 0, 7};
    CHECK_RC(call_on(f, &w, NULL), ERYX__CALL_SUSPENDED);
    eryx__engine_interrupt(f);
    CHECK(eryx__fiber_suspended(f));
    CHECK_RC(eryx__engine_resume(f, NULL), ERYX__CALL_INTERRUPTED);
    CHECK(!eryx__fiber_suspended(f));
    CHECK_EQ(e.host.waits, waits + 1);
    CHECK_EQ(w.r, 7);
    CHECK_RC(eryx__engine_resume(f, NULL), -1);     /* nothing left to resume */
    CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_INTERRUPTED);
    eryx__fiber_clear_interrupt(f);
    CHECK_RC(call_on(f, &w, NULL), ERYX__CALL_SUSPENDED);
    CHECK_RC(eryx__engine_resume(f, NULL), ERYX__CALL_SUSPENDED);
    CHECK_RC(eryx__engine_resume(f, NULL), ERYX__CALL_SUSPENDED);
    e.host.reply = 1;
    CHECK_RC(eryx__engine_resume(f, NULL), ERYX__CALL_OK);
    CHECK_EQ(w.r, 3 + 1);

    /* A stray interrupt signal on a thread outside guest code is ignored. */
    CHECK_EQ(raise(ERYX_INTERRUPT_SIGNAL), 0);
    CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_OK);

    eryx__fiber_free(f);
    eng_free(&e);
}

/* An infinite guest loop stopped from another thread. The guest pings
 * (setting `started`) right before looping. */
static atomic_int started;
static uint32_t note_start(struct Z_host_instance_t *host, uint32_t x)
{
    atomic_store(&started, 1);
    return x;
}

typedef struct stopper {
    eryx__fiber *f;
    long delay_us;
    double t_sent;
} stopper;

static void *stop_after_start(void *arg)
{
    stopper *s = arg;
    while (!atomic_load(&started))
        sleep_us(50);
    sleep_us(s->delay_us);
    s->t_sent = now_us();
    eryx__engine_interrupt(s->f);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

TEST_CASE(test_spin)
{
    enum { N = 100 };
    static double lat[N];
    eng e;
    eryx__fiber *f = eryx__fiber_new(0);
    CHECK(f != NULL);
    eng_new(&e);
    e.host.on_ping = note_start;
    for (int i = 0; i < N; i++) {
        pthread_t th;
        stopper s = {f, 1000, 0};
        atomic_store(&started, 0);
        CHECK_EQ(pthread_create(&th, NULL, stop_after_start, &s), 0);
        job j = {&e, OP_WAIT_THEN, 0, i % 4 == 3 ? WT_GROW_SPIN : WT_PING_SPIN, 0, 0, 0};
        if (j.b == WT_GROW_SPIN) {
            atomic_store(&started, 1);      /* no ping on this path */
            eryx__memory_set_limit(&e.inst.w2c_memory, 8);
        }
        CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_INTERRUPTED);
        double t = now_us();
        CHECK_EQ(pthread_join(th, NULL), 0);
        lat[i] = t - s.t_sent;
        eryx__fiber_clear_interrupt(f);
        /* The instance is dead in general, but this one is simple enough to
         * check that the fiber and the engine go on. */
        job k = {&e, OP_COUNT, 10, 0, 0, 0, 0};
        CHECK_RC(call_on(f, &k, NULL), ERYX__CALL_OK);
        CHECK_EQ(k.r, xorshift_n(10));
    }
    qsort(lat, N, sizeof lat[0], cmp_double);
    printf("interrupt latency (guest loop on the main thread): p50 %.1f us, p99 %.1f us, "
           "max %.1f us\n",
           lat[N / 2], lat[N * 99 / 100], lat[N - 1]);
    e.host.on_ping = NULL;
    eryx__fiber_free(f);
    eng_free(&e);
}

/* The loop runs on a thread that resumed the fiber (not the one that
 * started it); the interrupt comes from the main thread. */
typedef struct spinner {
    eryx__fiber *f;
    int rc;
} spinner;

static void *resume_spin(void *arg)
{
    spinner *s = arg;
    s->rc = eryx__engine_resume(s->f, NULL);
    return NULL;
}

TEST_CASE(test_spin_elsewhere)
{
    enum { N = 50 };
    static double lat[N];
    eng e;
    eryx__fiber *f = eryx__fiber_new(0);
    CHECK(f != NULL);
    eng_new(&e);
    for (int i = 0; i < N; i++) {
        static job j;
        j = (job){&e, OP_WAIT_THEN, 1, WT_SPIN, 0, 0, 0};
        CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_SUSPENDED);
        spinner s = {f, -2};
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, resume_spin, &s), 0);
        sleep_us(2000);
        double t0 = now_us();
        eryx__engine_interrupt(f);
        CHECK_EQ(pthread_join(th, NULL), 0);
        lat[i] = now_us() - t0;
        CHECK_RC(s.rc, ERYX__CALL_INTERRUPTED);
        eryx__fiber_clear_interrupt(f);
    }
    qsort(lat, N, sizeof lat[0], cmp_double);
    printf("interrupt latency (guest loop on another thread, incl. join): p50 %.1f us, "
           "p99 %.1f us\n",
           lat[N / 2], lat[N * 99 / 100]);
    eryx__fiber_free(f);
    eng_free(&e);
}

/* In a host import: the interrupt waits for the import to finish. */
static atomic_int in_import, sent, import_done, saw_pending;
static eryx__fiber *import_fiber;

static uint32_t slow_import(struct Z_host_instance_t *host, uint32_t x)
{
    atomic_store(&in_import, 1);
    while (!atomic_load(&sent))
        ;
    /* The signal has been sent; give it ample time to arrive (and not to
     * jump out of here). */
    double t0 = now_us();
    while (now_us() - t0 < 20000)
        ;
    atomic_store(&saw_pending, eryx__engine_interrupt_pending());
    atomic_store(&import_done, 1);
    return x;
}

static void interrupt_self(struct Z_host_instance_t *host)
{
    eryx__engine_interrupt(import_fiber);
}

static void *interrupt_in_import(void *arg)
{
    while (!atomic_load(&in_import))
        sleep_us(100);
    eryx__engine_interrupt(import_fiber);
    atomic_store(&sent, 1);
    return NULL;
}

TEST_CASE(test_in_import)
{
    eng e;
    pthread_t th;
    eryx__fiber *f = import_fiber = eryx__fiber_new(0);
    CHECK(f != NULL);
    eng_new(&e);
    e.host.on_ping = slow_import;
    for (int i = 0; i < 3; i++) {
        atomic_store(&in_import, 0);
        atomic_store(&sent, 0);
        atomic_store(&import_done, 0);
        atomic_store(&saw_pending, 0);
        CHECK_EQ(pthread_create(&th, NULL, interrupt_in_import, NULL), 0);
        /* After suspends too, on the second round. */
        job j = {&e, OP_WAIT_THEN, (uint32_t)i, WT_PING, 0, 0, 7};
        int rc = call_on(f, &j, NULL);
        for (int k = 0; k < i; k++) {
            CHECK_RC(rc, ERYX__CALL_SUSPENDED);
            rc = eryx__engine_resume(f, NULL);
        }
        CHECK_RC(rc, ERYX__CALL_INTERRUPTED);
        CHECK_EQ(atomic_load(&import_done), 1);
        CHECK_EQ(atomic_load(&saw_pending), 1);
        CHECK_EQ(j.r, 7);                   /* the guest never got the result */
        CHECK_EQ(pthread_join(th, NULL), 0);
        eryx__fiber_clear_interrupt(f);
    }
    e.host.on_ping = NULL;

    /* Interrupted in an import that then suspends (the interrupt comes from
     * the import itself, so the signal hits this very thread in host code):
     * the call returns INTERRUPTED instead of SUSPENDED, nothing to resume. */
    e.host.on_wait = interrupt_self;
    job j = {&e, OP_WAIT_THEN, 2, WT_RETURN, 0, 0, 7};
    CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_INTERRUPTED);
    CHECK(!eryx__fiber_suspended(f));
    CHECK_EQ(j.r, 7);
    eryx__fiber_clear_interrupt(f);
    e.host.on_wait = NULL;
    CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_SUSPENDED);
    e.host.on_wait = interrupt_self;
    CHECK_RC(eryx__engine_resume(f, NULL), ERYX__CALL_INTERRUPTED);  /* second wait */
    CHECK(!eryx__fiber_suspended(f));
    eryx__fiber_clear_interrupt(f);
    e.host.on_wait = NULL;
    eryx__fiber_free(f);
    eng_free(&e);
}

/* Interrupts racing with calls (and suspends) that end on their own. */
static pthread_barrier_t bar;
static eryx__fiber *race_fiber;
static atomic_int race_stop;

static void *race_interrupter(void *arg)
{
    unsigned seed = 12345;
    for (;;) {
        pthread_barrier_wait(&bar);
        if (atomic_load(&race_stop))
            return NULL;
        long d = rand_r(&seed) % 300;
        if (d > 0)
            sleep_us(d);
        eryx__engine_interrupt(race_fiber);
        pthread_barrier_wait(&bar);
    }
}

TEST_CASE(test_race)
{
    enum { N = 1000 };
    eng e;
    pthread_t th;
    int counts[2] = {0, 0};
    unsigned seed = 777;
    eryx__fiber *f = race_fiber = eryx__fiber_new(0);
    CHECK(f != NULL);
    eng_new(&e);
    CHECK_EQ(pthread_barrier_init(&bar, NULL, 2), 0);
    CHECK_EQ(pthread_create(&th, NULL, race_interrupter, NULL), 0);
    for (int i = 0; i < N; i++) {
        pthread_barrier_wait(&bar);
        int rc;
        uint32_t n = (uint32_t)(rand_r(&seed) % 200000);
        job j = {&e, OP_COUNT, n, 0, 0, 0, 0};
        if (i % 2 == 0) {
            rc = call_on(f, &j, NULL);
            if (rc == ERYX__CALL_OK)
                CHECK_EQ(j.r, xorshift_n(n));
        } else {
            j = (job){&e, OP_WAIT_THEN, 5, WT_RETURN, 0, 0, 0};
            rc = call_on(f, &j, NULL);
            while (rc == ERYX__CALL_SUSPENDED)
                rc = eryx__engine_resume(f, NULL);
            if (rc == ERYX__CALL_OK)
                CHECK_EQ(j.r, 5 + 5 * e.host.reply);
        }
        if (rc != ERYX__CALL_OK)
            CHECK_RC(rc, ERYX__CALL_INTERRUPTED);
        counts[rc == ERYX__CALL_INTERRUPTED]++;
        pthread_barrier_wait(&bar);         /* the interrupt has been sent */
        CHECK(!eryx__fiber_suspended(f));
        eryx__fiber_clear_interrupt(f);
    }
    atomic_store(&race_stop, 1);
    pthread_barrier_wait(&bar);
    CHECK_EQ(pthread_join(th, NULL), 0);
    pthread_barrier_destroy(&bar);
    printf("race: %d calls finished, %d interrupted\n", counts[0], counts[1]);
    /* Late signals from the race must not affect what follows. */
    job j = {&e, OP_COUNT, 100, 0, 0, 0, 0};
    for (int i = 0; i < 100; i++) {
        CHECK_RC(call_on(f, &j, NULL), ERYX__CALL_OK);
        CHECK_EQ(j.r, xorshift_n(100));
    }
    eryx__fiber_free(f);
    eng_free(&e);
}

static void setup(void)
{
    eng_global();
}

TEST_MAIN_WITH(setup, NULL)
