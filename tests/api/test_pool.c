/* The pool: limits, waiting, clean sandboxes, eviction, threads. */
#include <eryx.h>
#include <pthread.h>
#include <unistd.h>

#include "../check.h"

static eryx_runtime *rt;

static char *run_out(eryx_sandbox *sb, const char *code)
{
    eryx_result *r = NULL;
    int rc = eryx_sandbox_run(sb, code, strlen(code), &r);
    CHECK_INT(rc, ERYX_OK);
    char *out = strdup(r && r->out ? r->out : "");
    eryx_result_free(r);
    return out;
}

TEST_CASE(test_limits_and_reuse)
{
    eryx_pool_config cfg;
    eryx_pool_config_default(&cfg);
    cfg.max_size = 2;
    cfg.min_idle = 1;
    eryx_pool *pool = NULL;
    REQUIRE(eryx_pool_new(rt, &cfg, &pool) == ERYX_OK);
    eryx_pool_stats st = {.size = sizeof st};
    eryx_pool_get_stats(pool, &st);
    CHECK_INT(st.idle, 1);
    CHECK_INT(st.creations, 1);

    eryx_sandbox *a = NULL, *b = NULL, *c = NULL;
    CHECK_INT(eryx_pool_acquire(pool, 0, &a), ERYX_OK);
    CHECK_INT(eryx_pool_acquire(pool, 0, &b), ERYX_OK);
    CHECK_INT(eryx_pool_acquire(pool, 0, &c), ERYX_TIMEOUT); /* try-acquire: full */
    CHECK(c == NULL);
    CHECK_INT(eryx_pool_acquire(pool, 20u * 1000 * 1000, &c), ERYX_TIMEOUT); /* waited */
    free(run_out(a, "secret = 'user A'\nopen('/tmp/a', 'w').write('A')"));
    CHECK_INT(eryx_pool_release(pool, a), ERYX_OK);
    /* The next user gets a clean sandbox. */
    CHECK_INT(eryx_pool_acquire(pool, 0, &c), ERYX_OK);
    char *out = run_out(c, "import os\nprint('secret' in globals(), os.path.exists('/tmp/a'))");
    CHECK_STR(out, "False False\n");
    free(out);
    /* A dead sandbox comes back clean too. */
    eryx_result *r = NULL;
    CHECK_INT(eryx_sandbox_run(b, "import os\nos._exit(1)", 21, &r), ERYX_OK);
    eryx_result_free(r);
    CHECK_INT(eryx_pool_release(pool, b), ERYX_OK);
    CHECK_INT(eryx_pool_free(pool), ERYX_MISUSE); /* c is still out */
    CHECK_INT(eryx_pool_release(pool, c), ERYX_OK);
    eryx_pool_get_stats(pool, &st);
    CHECK_INT(st.acquisitions, 3);
    CHECK_INT(st.creations, 2);
    CHECK_INT(st.waits, 1);
    CHECK_INT(st.in_use, 0);
    CHECK_INT(st.idle, 2);
    CHECK_INT(eryx_pool_free(pool), ERYX_OK);
}

TEST_CASE(test_eviction)
{
    eryx_pool_config cfg;
    eryx_pool_config_default(&cfg);
    cfg.max_size = 4;
    cfg.min_idle = 1;
    cfg.idle_timeout_ns = 1; /* anything idle beyond min_idle goes at once */
    eryx_pool *pool = NULL;
    REQUIRE(eryx_pool_new(rt, &cfg, &pool) == ERYX_OK);
    eryx_sandbox *s[3];
    for (int i = 0; i < 3; i++)
        REQUIRE(eryx_pool_acquire(pool, 0, &s[i]) == ERYX_OK);
    for (int i = 0; i < 3; i++)
        CHECK_INT(eryx_pool_release(pool, s[i]), ERYX_OK);
    eryx_pool_stats st = {.size = sizeof st};
    eryx_pool_get_stats(pool, &st);
    CHECK_INT(st.idle, 1);
    CHECK_INT(st.evictions, 2);
    CHECK_INT(eryx_pool_free(pool), ERYX_OK);
    /* An idle_timeout_ns of 0 is not set, as for every limit: the 60 s
     * default, not "at once" (which it was until 2026-12-07). */
    cfg.idle_timeout_ns = 0;
    REQUIRE(eryx_pool_new(rt, &cfg, &pool) == ERYX_OK);
    for (int i = 0; i < 3; i++)
        REQUIRE(eryx_pool_acquire(pool, 0, &s[i]) == ERYX_OK);
    for (int i = 0; i < 3; i++)
        CHECK_INT(eryx_pool_release(pool, s[i]), ERYX_OK);
    eryx_pool_get_stats(pool, &st);
    CHECK_INT(st.idle, 3);
    CHECK_INT(st.evictions, 0);
    CHECK_INT(eryx_pool_free(pool), ERYX_OK);
}

struct worker {
    eryx_pool *pool;
    int failures;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 25; i++) {
        eryx_sandbox *sb = NULL;
        if (eryx_pool_acquire(w->pool, 10ull * 1000 * 1000 * 1000, &sb) != ERYX_OK) {
            w->failures++;
            continue;
        }
        char code[96];
        snprintf(code, sizeof code, "print('x' in globals())\nx = %d", i);
        char *out = run_out(sb, code);
        w->failures += strcmp(out, "False\n") != 0;
        free(out);
        if (eryx_pool_release(w->pool, sb) != ERYX_OK)
            w->failures++;
    }
    return NULL;
}

/* 4 threads share 2 sandboxes: each always gets a clean one. */
TEST_CASE(test_threads)
{
    eryx_pool_config cfg;
    eryx_pool_config_default(&cfg);
    cfg.max_size = 2;
    eryx_pool *pool = NULL;
    REQUIRE(eryx_pool_new(rt, &cfg, &pool) == ERYX_OK);
    pthread_t t[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){pool, 0};
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_INT(w[i].failures, 0);
    }
    eryx_pool_stats st = {.size = sizeof st};
    eryx_pool_get_stats(pool, &st);
    CHECK_INT(st.acquisitions, 100);
    CHECK(st.creations <= 2);
    CHECK_INT(eryx_pool_free(pool), ERYX_OK);
}

/* A sandbox the pool did not hand out is not the pool's to take: releasing
 * one (made by eryx_sandbox_new, or acquired from another pool) took it
 * with ERYX_OK and counted in_use down from 0 to 4294967295, so the pool
 * could never be freed (nor the runtime: the sandbox stayed in it), and
 * the other pool's count never came down. */
TEST_CASE(test_release_foreign_sandbox)
{
    eryx_pool_config cfg;
    eryx_pool_config_default(&cfg);
    cfg.max_size = 2;
    eryx_pool *pool = NULL, *other = NULL;
    REQUIRE(eryx_pool_new(rt, &cfg, &pool) == ERYX_OK);
    REQUIRE(eryx_pool_new(rt, &cfg, &other) == ERYX_OK);
    eryx_sandbox *mine = NULL, *theirs = NULL;
    REQUIRE(eryx_sandbox_new(rt, NULL, &mine) == ERYX_OK);
    REQUIRE(eryx_pool_acquire(other, 0, &theirs) == ERYX_OK);
    CHECK_INT(eryx_pool_release(pool, mine), ERYX_MISUSE);
    CHECK_CONTAINS(eryx_errmsg(NULL), "not acquired from this pool");
    CHECK_INT(eryx_pool_release(pool, theirs), ERYX_MISUSE);
    eryx_pool_stats st = {.size = sizeof st};
    eryx_pool_get_stats(pool, &st);
    CHECK_INT(st.in_use, 0);
    CHECK_INT(st.idle, 1);
    /* Both are still their owners' and work. */
    free(run_out(mine, "x = 1"));
    free(run_out(theirs, "x = 1"));
    CHECK_INT(eryx_pool_free(pool), ERYX_OK);
    CHECK_INT(eryx_pool_release(other, theirs), ERYX_OK);
    CHECK_INT(eryx_pool_free(other), ERYX_OK);
    eryx_sandbox_free(mine);
}

/* eryx_sandbox_free of a sandbox the pool lent freed it behind the pool's
 * back: in_use stayed 1 for good, so the pool could never be freed (nor
 * the runtime, its idle sandboxes alive). The free is refused instead, as
 * for a running sandbox: the handle stays valid for the release. */
TEST_CASE(test_free_of_lent_sandbox)
{
    eryx_pool_config cfg;
    eryx_pool_config_default(&cfg);
    cfg.max_size = 1;
    eryx_pool *pool = NULL;
    REQUIRE(eryx_pool_new(rt, &cfg, &pool) == ERYX_OK);
    eryx_sandbox *sb = NULL;
    REQUIRE(eryx_pool_acquire(pool, 0, &sb) == ERYX_OK);
    eryx_sandbox_free(sb);
    CHECK_CONTAINS(eryx_errmsg(NULL), "eryx_pool_release");
    free(run_out(sb, "x = 1"));
    CHECK_INT(eryx_pool_release(pool, sb), ERYX_OK);
    CHECK_INT(eryx_pool_free(pool), ERYX_OK);
}

static void secret_handler(void *ud, eryx_call *call)
{
    (void)ud;
    eryx_call_reply(call, "\"user A's\"", 10);
}

/* A user who replaced the callbacks (eryx_sandbox_set_callbacks) gave
 * them, handler and user_data, to the next user of the sandbox: the reset
 * kept them. The pool's own callbacks come back instead. */
TEST_CASE(test_release_restores_callbacks)
{
    eryx_callback own = {.name = "pooled", .handler = secret_handler};
    eryx_sandbox_config scfg;
    eryx_sandbox_config_default(&scfg);
    scfg.callbacks = &own;
    scfg.n_callbacks = 1;
    eryx_pool_config cfg;
    eryx_pool_config_default(&cfg);
    cfg.max_size = 1;
    cfg.sandbox = &scfg;
    eryx_pool *pool = NULL;
    REQUIRE(eryx_pool_new(rt, &cfg, &pool) == ERYX_OK);
    eryx_sandbox *a = NULL, *b = NULL;
    REQUIRE(eryx_pool_acquire(pool, 0, &a) == ERYX_OK);
    eryx_callback cb = {.name = "secret", .handler = secret_handler};
    CHECK_INT(eryx_sandbox_set_callbacks(a, &cb, 1), ERYX_OK);
    char *out = run_out(a, "print(await secret())");
    CHECK_STR(out, "user A's\n");
    free(out);
    CHECK_INT(eryx_pool_release(pool, a), ERYX_OK);
    REQUIRE(eryx_pool_acquire(pool, 0, &b) == ERYX_OK);
    out = run_out(b, "print('secret' in globals(), 'pooled' in globals())");
    CHECK_STR(out, "False True\n");
    free(out);
    CHECK_INT(eryx_pool_release(pool, b), ERYX_OK);
    CHECK_INT(eryx_pool_free(pool), ERYX_OK);
}

typedef struct release_in_output {
    eryx_pool *pool;
    eryx_sandbox *sb;
    int calls, rc;
} release_in_output;

static void release_from_output(void *ud, int fd, const char *data, size_t len)
{
    (void)fd, (void)data, (void)len;
    release_in_output *o = ud;
    if (!o->calls++)
        o->rc = eryx_pool_release(o->pool, o->sb);
}

/* A release from inside another sandbox's guest code (its on_output)
 * cannot warm the sandbox up there: it returned ERYX_MISUSE, which says
 * the sandbox stays the caller's, after freeing it (the handle was dead).
 * It now frees it and says so: ERYX_OK, the handle dead, its place given
 * back (a binding releasing from a finalizer had no way to). */
TEST_CASE(test_release_inside_guest_code)
{
    eryx_pool *pool = NULL;
    REQUIRE(eryx_pool_new(rt, NULL, &pool) == ERYX_OK);
    release_in_output o = {.pool = pool};
    REQUIRE(eryx_pool_acquire(pool, 0, &o.sb) == ERYX_OK);
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.on_output = release_from_output;
    cfg.output_user_data = &o;
    eryx_sandbox *other = NULL;
    REQUIRE(eryx_sandbox_new(rt, &cfg, &other) == ERYX_OK);
    free(run_out(other, "print('x')"));
    CHECK_INT(o.rc, ERYX_OK);
    eryx_result *r = NULL;
    CHECK_INT(eryx_sandbox_run(o.sb, "x = 1", 5, &r), ERYX_MISUSE); /* the handle died */
    CHECK(r == NULL);
    eryx_pool_stats st = {.size = sizeof st};
    eryx_pool_get_stats(pool, &st);
    CHECK_INT(st.in_use, 0);
    eryx_sandbox *again = NULL;
    CHECK_INT(eryx_pool_acquire(pool, 0, &again), ERYX_OK);
    free(run_out(again, "x = 1"));
    CHECK_INT(eryx_pool_release(pool, again), ERYX_OK);
    eryx_sandbox_free(other);
    CHECK_INT(eryx_pool_free(pool), ERYX_OK);
}

static void *release_later(void *arg)
{
    void **a = arg;
    usleep(200 * 1000);
    CHECK_INT(eryx_pool_release(a[0], a[1]), ERYX_OK);
    return NULL;
}

/* ERYX_NO_LIMIT ("Limits" in eryx.h) waits for as long as it takes: the
 * deadline now + UINT64_MAX wrapped to the past, and the acquire gave up
 * at once with ERYX_TIMEOUT. */
TEST_CASE(test_acquire_without_limit)
{
    eryx_pool_config cfg;
    eryx_pool_config_default(&cfg);
    cfg.max_size = 1;
    eryx_pool *pool = NULL;
    REQUIRE(eryx_pool_new(rt, &cfg, &pool) == ERYX_OK);
    eryx_sandbox *a = NULL, *b = NULL;
    REQUIRE(eryx_pool_acquire(pool, 0, &a) == ERYX_OK);
    void *args[2] = {pool, a};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, release_later, args) == 0);
    CHECK_INT(eryx_pool_acquire(pool, ERYX_NO_LIMIT, &b), ERYX_OK);
    pthread_join(t, NULL);
    CHECK_INT(eryx_pool_release(pool, b), ERYX_OK);
    CHECK_INT(eryx_pool_free(pool), ERYX_OK);
}

static void *close_later(void *arg)
{
    usleep(200 * 1000);
    eryx_pool_close(arg);
    return NULL;
}

/* eryx_pool_close: an acquire waiting without a limit returns at once
 * (there was no way to end it but a release), later ones too; the
 * sandbox out is still released, and the pool freed. */
TEST_CASE(test_close_wakes_the_waiters)
{
    eryx_pool_config cfg;
    eryx_pool_config_default(&cfg);
    cfg.max_size = 1;
    eryx_pool *pool = NULL;
    REQUIRE(eryx_pool_new(rt, &cfg, &pool) == ERYX_OK);
    eryx_sandbox *a = NULL, *b = NULL;
    REQUIRE(eryx_pool_acquire(pool, 0, &a) == ERYX_OK);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, close_later, pool) == 0);
    CHECK_INT(eryx_pool_acquire(pool, ERYX_NO_LIMIT, &b), ERYX_MISUSE);
    CHECK(b == NULL);
    CHECK_CONTAINS(eryx_errmsg(NULL), "closed");
    pthread_join(t, NULL);
    CHECK_INT(eryx_pool_acquire(pool, 0, &b), ERYX_MISUSE);
    CHECK_INT(eryx_pool_close(pool), ERYX_OK);
    CHECK_INT(eryx_pool_release(pool, a), ERYX_OK);
    CHECK_INT(eryx_pool_free(pool), ERYX_OK);
    CHECK_INT(eryx_pool_close(NULL), ERYX_MISUSE);
}

/* A lease whose execution is not finished (its last step returned) is
 * not taken back: ERYX_MISUSE, now with a message (it had none), and the
 * lease is still the caller's; finished, it goes back. */
TEST_CASE(test_release_with_an_unfinished_execution)
{
    eryx_pool *pool = NULL;
    REQUIRE(eryx_pool_new(rt, NULL, &pool) == ERYX_OK);
    eryx_sandbox *sb = NULL;
    REQUIRE(eryx_pool_acquire(pool, 0, &sb) == ERYX_OK);
    eryx_exec *ex = NULL;
    REQUIRE(eryx_exec_start(sb, "x = 1", 5, NULL, &ex) == ERYX_OK);
    CHECK_INT(eryx_exec_step(ex), ERYX_OK);
    CHECK_INT(eryx_pool_release(pool, sb), ERYX_MISUSE);
    CHECK_CONTAINS(eryx_errmsg(NULL), "eryx_exec_finish it first");
    eryx_result *r = NULL;
    CHECK_INT(eryx_exec_finish(ex, &r), ERYX_OK);
    eryx_result_free(r);
    CHECK_INT(eryx_pool_release(pool, sb), ERYX_OK);
    CHECK_INT(eryx_pool_free(pool), ERYX_OK);
}

TEST_CASE(test_bad_config)
{
    eryx_pool_config bad;
    eryx_pool_config_default(&bad);
    bad.min_idle = 100;
    eryx_pool *p = NULL;
    CHECK_INT(eryx_pool_new(rt, &bad, &p), ERYX_INVALID);
}

/* A sandbox that cannot be cleaned at its release (its mount's directory
 * is gone) is freed, and the release says why on the caller's thread: the
 * reset's own message, which it wrote there. It said "...freed: " with
 * nothing after (the sandbox's message, empty) for a day. */
TEST_CASE(test_release_says_why_it_freed)
{
    /* Host mounts resolve every path with openat2(2), which valgrind does
     * not know (ENOSYS: the mount fails). The other tiers run this. */
    if (RUNNING_ON_VALGRIND)
        return;
    char dir[] = "/tmp/eryx-pool-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    eryx_mount m = {0, dir, "/data", 0};
    eryx_sandbox_config sc;
    eryx_sandbox_config_default(&sc);
    sc.mounts = &m;
    sc.n_mounts = 1;
    eryx_pool_config pc;
    eryx_pool_config_default(&pc);
    pc.sandbox = &sc;
    pc.min_idle = 0;
    eryx_pool *p = NULL;
    REQUIRE_INT(eryx_pool_new(rt, &pc, &p), ERYX_OK);
    eryx_sandbox *sb = NULL;
    REQUIRE_INT(eryx_pool_acquire(p, 0, &sb), ERYX_OK);
    REQUIRE(rmdir(dir) == 0);
    CHECK(eryx_pool_release(p, sb) != ERYX_OK);
    CHECK_CONTAINS(eryx_errmsg(NULL), "could not be cleaned and was freed: ");
    CHECK_CONTAINS(eryx_errmsg(NULL), dir);
    eryx_pool_stats st = {.size = sizeof st};
    eryx_pool_get_stats(p, &st);
    CHECK_INT(st.idle + st.in_use, 0);
    CHECK_INT(eryx_pool_free(p), ERYX_OK);
}

/* A runtime without an image (the CLI's when it has no cache) has nothing
 * to reset a sandbox to: a release frees it, and the next user gets a new
 * one. Until 2026-12-07 every release failed (ERYX_INVALID, with no
 * message on the caller's thread) and freed it anyway. */
TEST_CASE(test_pool_without_an_image)
{
    eryx_runtime_config rc;
    eryx_runtime_config_default(&rc);
    rc.flags = ERYX_RUNTIME_NO_IMAGE;
    eryx_runtime *bare = NULL;
    REQUIRE(eryx_runtime_new(&rc, &bare) == ERYX_OK);
    eryx_pool *p = NULL;
    REQUIRE_INT(eryx_pool_new(bare, NULL, &p), ERYX_OK);
    for (int i = 0; i < 3; i++) {
        eryx_sandbox *sb = NULL;
        REQUIRE_INT(eryx_pool_acquire(p, 0, &sb), ERYX_OK);
        char *out = run_out(sb, "print('x' in globals())\nx = 1");
        CHECK_STR(out, "False\n");
        free(out);
        CHECK_INT(eryx_pool_release(p, sb), ERYX_OK);
    }
    eryx_pool_stats st = {.size = sizeof st};
    eryx_pool_get_stats(p, &st);
    CHECK_INT(st.idle, 0);
    CHECK_INT(st.creations, 3);
    CHECK_INT(eryx_pool_free(p), ERYX_OK);
    CHECK_INT(eryx_runtime_free(bare), ERYX_OK);
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
