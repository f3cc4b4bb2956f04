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
    atomic_int inside; /* the run printed: it is in its sleep */
    int rc;
};

static void note_inside(void *ud, int fd, const char *data, size_t len)
{
    (void)fd, (void)data, (void)len;
    atomic_store(&((struct sleeper *)ud)->inside, 1);
}

static void *sleep_in_sandbox(void *arg)
{
    struct sleeper *s = arg;
    eryx_result *r = NULL;
    const char *code = "import time\nprint('in', flush=True)\ntime.sleep(1)";
    s->rc = eryx_sandbox_run(s->sb, code, strlen(code), &r);
    eryx_result_free(r);
    return NULL;
}

/* One sandbox entered by two threads at once: the second gets ERYX_MISUSE
 * and the first run is not disturbed. */
TEST_CASE(test_concurrent_use_detected)
{
    struct sleeper s = {.rc = -1};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.on_output = note_inside;
    cfg.output_user_data = &s;
    REQUIRE(eryx_sandbox_new(rt, &cfg, &s.sb) == ERYX_OK);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, sleep_in_sandbox, &s) == 0);
    struct timespec pause = {0, 1000 * 1000};
    for (int ms = 0; !atomic_load(&s.inside) && ms < 30000; ms++)
        nanosleep(&pause, NULL); /* (bounded: a run that failed never prints) */
    CHECK(atomic_load(&s.inside));
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

/* A run that waits, inside a callback, while another thread makes calls
 * on its sandbox that are refused for their arguments. */
struct handoff {
    eryx_sandbox *sb;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stage;          /* 1: the run is inside; 2: the refusals are done */
    int refused;
    char msg[256];      /* the refusing thread's own message */
};

static void set_stage(struct handoff *h, int stage)
{
    pthread_mutex_lock(&h->mu);
    h->stage = stage;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static void wait_stage(struct handoff *h, int stage)
{
    pthread_mutex_lock(&h->mu);
    while (h->stage != stage)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static void inside(void *user_data, eryx_call *call)
{
    struct handoff *h = user_data;
    set_stage(h, 1);
    wait_stage(h, 2);
    eryx_call_reply(call, "null", 4);
}

static void *refuse_meanwhile(void *arg)
{
    struct handoff *h = arg;
    wait_stage(h, 1);
    eryx_run_options bad;
    eryx_run_options_default(&bad);
    bad.size = 3;
    eryx_exec *ex = NULL;
    h->refused += eryx_sandbox_save(h->sb, NULL) == ERYX_MISUSE;
    h->refused += eryx_exec_start(h->sb, NULL, 5, NULL, &ex) == ERYX_MISUSE;
    h->refused += eryx_exec_start(h->sb, "1", 1, &bad, &ex) == ERYX_MISUSE;
    snprintf(h->msg, sizeof h->msg, "%s", eryx_errmsg(NULL));
    set_stage(h, 2);
    return NULL;
}

/* Calls refused for their arguments while another thread runs the sandbox
 * tell it on their own thread's message: the sandbox's belongs to the
 * thread inside. Until 2026-12-07 they wrote the sandbox's while the run
 * owned it (a data race to TSan, in an audit's reproducer), and a bad
 * options struct was judged before the sandbox was entered: ERYX_INVALID
 * where the sandbox being in use is ERYX_MISUSE (refused == 2 here). */
TEST_CASE(test_bad_arguments_leave_a_running_sandbox_message)
{
    struct handoff h = {.stage = 0};
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    eryx_callback cb = {0, "inside", NULL, NULL, inside, &h, ERYX_CALLBACK_INLINE};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = &cb;
    cfg.n_callbacks = 1;
    REQUIRE(eryx_sandbox_new(rt, &cfg, &h.sb) == ERYX_OK);
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, refuse_meanwhile, &h) == 0);
    eryx_result *r = NULL;
    const char *code = "await inside()\nprint('done')";
    CHECK_INT(eryx_sandbox_run(h.sb, code, strlen(code), &r), ERYX_OK);
    CHECK_STR(eryx_errmsg(h.sb), "");
    pthread_join(th, NULL);
    CHECK_STR(r ? r->out : "", "done\n");
    eryx_result_free(r);
    CHECK_INT(h.refused, 3);
    CHECK_CONTAINS(h.msg, "misuse");
    /* Idle, a refusal is the sandbox's message, as before. */
    CHECK_INT(eryx_sandbox_save(h.sb, NULL), ERYX_MISUSE);
    CHECK_CONTAINS(eryx_errmsg(h.sb), "path is NULL");
    eryx_sandbox_free(h.sb);
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
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
