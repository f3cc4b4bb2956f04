/* Several threads run their own sandboxes at once, from one runtime. */
#include <eryx.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "../check.h"

#define THREADS 4
#define RUNS 5

static eryx_runtime *rt;

struct job {
    int id;
    int failures;
};

static void *worker(void *arg)
{
    struct job *j = arg;
    for (int n = 0; n < RUNS; n++) {
        eryx_sandbox *sb = NULL;
        eryx_result *r = NULL;
        if (eryx_sandbox_new(rt, NULL, &sb) != ERYX_OK) {
            j->failures++;
            continue;
        }
        char code[160], want[64];
        snprintf(code, sizeof code,
                 "total = sum(i * i for i in range(20000))\n"
                 "print(%d, %d, total)", j->id, n);
        snprintf(want, sizeof want, "%d %d 2666466670000\n", j->id, n);
        if (eryx_sandbox_run(sb, code, strlen(code), &r) != ERYX_OK || strcmp(r->out, want))
            j->failures++;
        eryx_result_free(r);
        /* A trap in one sandbox leaves the others running. */
        if (eryx_sandbox_run(sb, "def f(): return f()\nf()", 23, &r) != ERYX_PYTHON_EXCEPTION)
            j->failures++;
        eryx_result_free(r);
        eryx_sandbox_free(sb);
    }
    return NULL;
}

/* Forks on several threads at once: parked sandboxes (warm from freed new
 * ones, cold from freed forks) change hands between threads, and nobody
 * sees another's state. */
static void *forker(void *arg)
{
    struct job *j = arg;
    for (int n = 0; n < 40; n++) {
        eryx_sandbox *sb = NULL, *child = NULL, *grandchild = NULL;
        eryx_result *r = NULL;
        char code[96], want[32];
        if (eryx_sandbox_new(rt, NULL, &sb) != ERYX_OK) {
            j->failures++;
            continue;
        }
        snprintf(code, sizeof code, "v = %d", j->id * 1000 + n);
        if (eryx_sandbox_run(sb, code, strlen(code), &r) != ERYX_OK)
            j->failures++;
        eryx_result_free(r);
        if (eryx_sandbox_fork(sb, &child) != ERYX_OK) {
            j->failures++;
            eryx_sandbox_free(sb);
            continue;
        }
        eryx_sandbox_free(sb);
        if (eryx_sandbox_fork(child, &grandchild) != ERYX_OK)
            j->failures++;
        snprintf(want, sizeof want, "%d\n", j->id * 1000 + n + 1);
        const char *bump = "v += 1\nprint(v)", *look = "print(v)";
        if (eryx_sandbox_run(child, bump, strlen(bump), &r) != ERYX_OK ||
            strcmp(r->out, want) != 0)
            j->failures++;
        eryx_result_free(r);
        eryx_sandbox_free(child);
        /* Forked before the child's run: the value before it. */
        snprintf(want, sizeof want, "%d\n", j->id * 1000 + n);
        if (grandchild && (eryx_sandbox_run(grandchild, look, strlen(look), &r) != ERYX_OK ||
                           strcmp(r->out, want) != 0))
            j->failures++;
        eryx_result_free(r);
        eryx_sandbox_free(grandchild);
    }
    return NULL;
}

struct sleeper {
    eryx_sandbox *sb;
    int rc;
};

static void *sleep_in_sandbox(void *arg)
{
    struct sleeper *s = arg;
    eryx_result *r = NULL;
    const char *code = "import time\ntime.sleep(0.5)";
    s->rc = eryx_sandbox_run(s->sb, code, strlen(code), &r);
    eryx_result_free(r);
    return NULL;
}

/* One sandbox entered by two threads at once: the second gets ERYX_MISUSE
 * and the first run is not disturbed. */
TEST_CASE(test_concurrent_use_detected)
{
    struct sleeper s = {NULL, -1};
    REQUIRE(eryx_sandbox_new(rt, NULL, &s.sb) == ERYX_OK);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, sleep_in_sandbox, &s) == 0);
    struct timespec pause = {0, 150 * 1000 * 1000};
    nanosleep(&pause, NULL);
    eryx_result *r = NULL;
    CHECK_INT(eryx_sandbox_run(s.sb, "1", 1, &r), ERYX_MISUSE);
    CHECK_CONTAINS(eryx_errmsg(NULL), "in use by another thread");
    CHECK(r == NULL);
    pthread_join(t, NULL);
    CHECK_INT(s.rc, ERYX_OK);
    CHECK_INT(eryx_sandbox_run(s.sb, "1", 1, &r), ERYX_OK);
    eryx_result_free(r);
    eryx_sandbox_free(s.sb);
}

struct timed_runs {
    eryx_sandbox *sb;
    atomic_int done;
    int wrong;          /* runs whose message was not their own */
    int timeouts;
};

static void *run_into_the_limit(void *arg)
{
    struct timed_runs *t = arg;
    for (int i = 0; i < 60; i++) {
        eryx_result *r = NULL;
        int rc = eryx_sandbox_run(t->sb, "while True: pass", 16, &r);
        /* ERYX_MISUSE: the other thread was inside for a moment. */
        if (rc == ERYX_TIMEOUT)
            t->timeouts++;
        if ((rc != ERYX_TIMEOUT && rc != ERYX_MISUSE) ||
            (rc == ERYX_TIMEOUT && strstr(eryx_errmsg(t->sb), "misuse")))
            t->wrong++;
        eryx_result_free(r);
    }
    atomic_store(&t->done, 1);
    return NULL;
}

/* Calls refused for their arguments while another thread runs the sandbox
 * tell it on their own thread's message: the sandbox's is the running
 * thread's. They wrote the sandbox's, which the run's outcome then read
 * (a timeout reported as "misuse: eryx_exec_start: out is NULL ..." in
 * half the runs of an audit's reproducer, and a data race to TSan). */
TEST_CASE(test_bad_arguments_leave_a_running_sandbox_message)
{
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.timeout_ns = 2 * 1000 * 1000;
    struct timed_runs t = {NULL, 0, 0, 0};
    REQUIRE(eryx_sandbox_new(rt, &cfg, &t.sb) == ERYX_OK);
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, run_into_the_limit, &t) == 0);
    int refused = 0, calls = 0;
    eryx_run_options bad;
    eryx_run_options_default(&bad);
    bad.size = 3;
    while (!atomic_load(&t.done)) {
        eryx_exec *ex = NULL;
        calls += 3;
        refused += eryx_sandbox_save(t.sb, NULL) == ERYX_MISUSE;
        refused += eryx_exec_start(t.sb, NULL, 5, NULL, &ex) == ERYX_MISUSE;
        int rc = eryx_exec_start(t.sb, "1", 1, &bad, &ex);
        refused += rc == ERYX_MISUSE || rc == ERYX_INVALID;
    }
    pthread_join(th, NULL);
    CHECK_INT(refused, calls);
    CHECK_INT(t.wrong, 0);
    CHECK(t.timeouts >= 30);
    /* Idle, a refusal is the sandbox's message, as before. */
    CHECK_INT(eryx_sandbox_save(t.sb, NULL), ERYX_MISUSE);
    CHECK_CONTAINS(eryx_errmsg(t.sb), "path is NULL");
    eryx_sandbox_free(t.sb);
}

/* fn on THREADS threads at once; each must report no failure. */
static void on_threads(void *(*fn)(void *))
{
    pthread_t t[THREADS];
    struct job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (struct job){i, 0};
        REQUIRE(pthread_create(&t[i], NULL, fn, &jobs[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        CHECK_INT(jobs[i].failures, 0);
    }
}

TEST_CASE(test_workers)
{
    on_threads(worker);
}

TEST_CASE(test_forkers)
{
    on_threads(forker);
}

static void setup(void)
{
    REQUIRE(eryx_runtime_new(NULL, &rt) == ERYX_OK);
}

static void teardown(void)
{
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
}

TEST_MAIN_WITH(setup, teardown)
