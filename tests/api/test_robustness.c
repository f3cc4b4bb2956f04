/*
 * Regression tests for the lifecycle and concurrency defects of issue 11:
 * stale handles (also when their sandbox was parked and handed to another
 * owner), blocking handlers against both timeouts, calls not started after
 * their run ended, sleeping guests that do not block a step, re-entrant
 * notify, configs of an older size, freeing a sandbox with a pending
 * execution, the one convention for limits, and oversized run requests.
 */
#include <eryx.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#include "../check.h"

static eryx_runtime *rt;

static eryx_sandbox *new_sandbox(const eryx_sandbox_config *cfg)
{
    eryx_sandbox *sb = NULL;
    int rc = eryx_sandbox_new(rt, cfg, &sb);
    CHECK_INT(rc, ERYX_OK);
    REQUIRE(sb != NULL);
    return sb;
}

/* A sandbox offering `await f(...)`, with no handler: the test answers. */
static eryx_sandbox *sandbox_with_f(void)
{
    static const eryx_callback cb = {.name = "f"};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = &cb;
    cfg.n_callbacks = 1;
    return new_sandbox(&cfg);
}

static int run(eryx_sandbox *sb, const char *code, eryx_result **r)
{
    return eryx_sandbox_run(sb, code, strlen(code), r);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- stale handles --------------------------------------------------------- */

/* A freed sandbox's instance is parked and handed to the next one: the old
 * handle must not reach it. */
TEST_CASE(test_stale_sandbox_handle)
{
    eryx_result *r = NULL;
    eryx_sandbox *a = new_sandbox(NULL);
    CHECK_INT(run(a, "x = 'a'", &r), ERYX_OK);
    eryx_result_free(r);
    eryx_sandbox_free(a);
    eryx_sandbox *b = new_sandbox(NULL);
    CHECK_INT(run(b, "x = 'b'", &r), ERYX_OK);
    eryx_result_free(r);
    r = NULL;
    CHECK_INT(run(a, "x = 'stolen'", &r), ERYX_MISUSE);
    CHECK(r == NULL);
    CHECK_INT(eryx_sandbox_reset(a), ERYX_MISUSE);
    CHECK_INT(eryx_sandbox_clear(a), ERYX_MISUSE);
    CHECK_INT(eryx_sandbox_interrupt(a), ERYX_MISUSE);
    CHECK_INT(eryx_sandbox_is_dead(a), 1);
    CHECK_INT(eryx_sandbox_run_count(a), 0);
    CHECK_STR(eryx_errmsg(a), "not a sandbox (freed?)");
    eryx_sandbox_free(a); /* a second free is ignored */
    CHECK_INT(run(b, "print(x)", &r), ERYX_OK);
    CHECK_STR(r->out, "b\n");
    eryx_result_free(r);
    eryx_sandbox_free(b);
    /* Not even a pointer-sized lie gets through. */
    CHECK_INT(eryx_sandbox_run((eryx_sandbox *)(uintptr_t)0x1000, "1", 1, &r), ERYX_MISUSE);
    CHECK_INT(eryx_sandbox_run((eryx_sandbox *)rt, "1", 1, &r), ERYX_MISUSE);
}

TEST_CASE(test_stale_exec_and_call)
{
    eryx_sandbox *sb = sandbox_with_f();
    eryx_exec *ex = NULL;
    const char *code = "print(await f(a=1))";
    CHECK_INT(eryx_exec_start(sb, code, strlen(code), NULL, &ex), ERYX_OK);
    CHECK_INT(eryx_exec_step(ex), ERYX_PENDING);
    eryx_call *c = eryx_exec_next_call(ex);
    REQUIRE(c != NULL);
    CHECK_STR(eryx_call_name(c), "f");
    CHECK_INT(eryx_call_pending(c), 1);
    CHECK_INT(eryx_call_reply(c, "2", 1), ERYX_OK);
    /* The reply released the call: its handle is dead. */
    CHECK_INT(eryx_call_reply(c, "3", 1), ERYX_MISUSE);
    CHECK_INT(eryx_call_fail(c, ERYX_CALL_FAILED, "x"), ERYX_MISUSE);
    CHECK(eryx_call_name(c) == NULL);
    CHECK_INT(eryx_call_pending(c), 0);
    CHECK_INT(eryx_exec_step(ex), ERYX_OK);
    eryx_result *r = NULL;
    CHECK_INT(eryx_exec_finish(ex, &r), ERYX_OK);
    CHECK_STR(r->out, "2\n");
    eryx_result_free(r);
    CHECK_INT(eryx_exec_step(ex), ERYX_MISUSE);
    CHECK_INT(eryx_exec_finish(ex, &r), ERYX_MISUSE);
    CHECK(eryx_exec_next_call(ex) == NULL);
    CHECK_INT(eryx_exec_deadline_ns(ex), 0);
    eryx_sandbox_free(sb);
}

/* A sandbox given back to a pool is the pool's: the releasing user's handle
 * dies, even while the pool hands the sandbox to someone else. */
TEST_CASE(test_stale_pool_handle)
{
    eryx_pool_config pc;
    eryx_pool_config_default(&pc);
    pc.max_size = 1;
    eryx_pool *pool = NULL;
    CHECK_INT(eryx_pool_new(rt, &pc, &pool), ERYX_OK);
    eryx_sandbox *first = NULL, *second = NULL;
    CHECK_INT(eryx_pool_acquire(pool, 0, &first), ERYX_OK);
    CHECK_INT(eryx_pool_release(pool, first), ERYX_OK);
    CHECK_INT(eryx_pool_acquire(pool, 0, &second), ERYX_OK);
    eryx_result *r = NULL;
    CHECK_INT(run(second, "secret = 42", &r), ERYX_OK);
    eryx_result_free(r);
    r = NULL;
    CHECK_INT(run(first, "print(secret)", &r), ERYX_MISUSE);
    CHECK_INT(eryx_pool_release(pool, first), ERYX_MISUSE);
    CHECK_INT(eryx_pool_release(pool, second), ERYX_OK);
    eryx_pool_stats st = {0};
    eryx_pool_get_stats(pool, &st);
    CHECK_INT(st.in_use, 0);
    CHECK_INT(st.idle, 1);
    CHECK_INT(eryx_pool_free(pool), ERYX_OK);
    CHECK_INT(eryx_pool_free(pool), ERYX_MISUSE);
}

/* ---- handlers that block ----------------------------------------------------- */

static atomic_int started, finished;

static void slow(void *ud, eryx_call *call)
{
    long ms = (long)(intptr_t)ud;
    atomic_fetch_add(&started, 1);
    sleep_ms(ms);
    eryx_call_reply(call, "1", 1);
    atomic_fetch_add(&finished, 1);
}

/* Waits (bounded) until every started handler returned, so that the next
 * test starts clean and nothing outlives the test's data. */
static void drain_handlers(void)
{
    for (int i = 0; i < 1000 && atomic_load(&finished) < atomic_load(&started); i++)
        sleep_ms(10);
    CHECK_INT(atomic_load(&finished), atomic_load(&started));
    atomic_store(&started, 0);
    atomic_store(&finished, 0);
}

static eryx_sandbox *slow_sandbox(long ms, uint64_t timeout_ns, uint64_t callback_timeout_ns)
{
    static eryx_callback cb = {.name = "slow", .handler = slow};
    cb.user_data = (void *)(intptr_t)ms;
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = &cb;
    cfg.n_callbacks = 1;
    cfg.timeout_ns = timeout_ns;
    cfg.callback_timeout_ns = callback_timeout_ns;
    return new_sandbox(&cfg);
}

/* A lone call to a blocking handler no longer runs on the stepping thread:
 * the run's time limit ends the run while the handler still blocks. */
TEST_CASE(test_blocking_handler_run_timeout)
{
    eryx_sandbox *sb = slow_sandbox(1500, 200u * 1000000u, 0);
    eryx_result *r = NULL;
    CHECK_INT(run(sb, "await slow()", &r), ERYX_TIMEOUT);
    CHECK_INT(atomic_load(&started), 1);
    CHECK_INT(atomic_load(&finished), 0); /* returned before the handler */
    eryx_result_free(r);
    eryx_sandbox_free(sb);
    drain_handlers();
}

/* The callback timeout holds against a handler that blocks. */
TEST_CASE(test_blocking_handler_callback_timeout)
{
    eryx_sandbox *sb = slow_sandbox(1500, ERYX_NO_LIMIT, 200u * 1000000u);
    eryx_result *r = NULL;
    CHECK_INT(run(sb, "try:\n    await slow()\nexcept CallbackError as e:\n    print(e.kind)", &r),
              ERYX_OK);
    CHECK_STR(r ? r->out : NULL, "timeout\n");
    CHECK_INT(atomic_load(&finished), 0);
    eryx_result_free(r);
    eryx_sandbox_free(sb);
    drain_handlers();
}

/* 160 gathered one-second calls under a 300 ms limit: the run ends at its
 * limit, and the calls still queued then are never started (their
 * handlers would otherwise read the freed sandbox's registrations). */
TEST_CASE(test_gathered_calls_bounded)
{
    eryx_sandbox *sb = slow_sandbox(1000, 300u * 1000000u, 0);
    eryx_result *r = NULL;
    CHECK_INT(run(sb, "import asyncio\nawait asyncio.gather(*[slow() for _ in range(160)])", &r),
              ERYX_TIMEOUT);
    int at_end = atomic_load(&started);
    CHECK(at_end < 160);
    CHECK_INT(atomic_load(&finished), 0);
    eryx_result_free(r);
    eryx_sandbox_free(sb); /* while handlers still run */
    sleep_ms(1200);
    /* Only those already running when the run ended ever ran. */
    CHECK_INT(atomic_load(&started), at_end);
    drain_handlers();
}

/* ---- steps never block --------------------------------------------------------- */

TEST_CASE(test_sleep_does_not_block_step)
{
    eryx_sandbox *sb = new_sandbox(NULL);
    eryx_exec *ex = NULL;
    const char *code = "import time\nt = time.monotonic()\ntime.sleep(0.3)\n"
                       "print(time.monotonic() - t >= 0.3)";
    CHECK_INT(eryx_exec_start(sb, code, strlen(code), NULL, &ex), ERYX_OK);
    int rc = eryx_exec_step(ex);
    CHECK_INT(rc, ERYX_PENDING); /* the sleep suspended the guest */
    CHECK(eryx_exec_deadline_ns(ex) != 0);
    int steps = 1;
    while (rc == ERYX_PENDING) {
        sleep_ms(20);
        rc = eryx_exec_step(ex);
        steps++;
    }
    CHECK_INT(rc, ERYX_OK);
    CHECK(steps > 2);
    eryx_result *r = NULL;
    CHECK_INT(eryx_exec_finish(ex, &r), ERYX_OK);
    CHECK_STR(r ? r->out : NULL, "True\n");
    eryx_result_free(r);
    /* An interrupt cuts a suspended sleep short. */
    code = "import time\ntime.sleep(30)";
    CHECK_INT(eryx_exec_start(sb, code, strlen(code), NULL, &ex), ERYX_OK);
    CHECK_INT(eryx_exec_step(ex), ERYX_PENDING);
    CHECK_INT(eryx_sandbox_interrupt(sb), ERYX_OK);
    CHECK_INT(eryx_exec_ready(ex), 1);
    while ((rc = eryx_exec_step(ex)) == ERYX_PENDING)
        sleep_ms(5);
    CHECK_INT(rc, ERYX_INTERRUPTED);
    CHECK_INT(eryx_exec_finish(ex, NULL), ERYX_INTERRUPTED);
    CHECK_INT(eryx_sandbox_is_dead(sb), 0);
    eryx_sandbox_free(sb);
}

/* A reply that arrives while the guest sleeps waits for the sleep to end:
 * the execution is not "ready" meanwhile, so a loop that steps when ready
 * does not spin through the sleep. */
static void *reply_later(void *arg)
{
    sleep_ms(50);
    eryx_call_reply(arg, "7", 1);
    return NULL;
}

TEST_CASE(test_reply_during_sleep)
{
    eryx_sandbox *sb = sandbox_with_f();
    eryx_exec *ex = NULL;
    const char *code = "import asyncio, time\nt = asyncio.create_task(f())\n"
                       "await asyncio.sleep(0)\ntime.sleep(0.4)\nprint(await t)";
    CHECK_INT(eryx_exec_start(sb, code, strlen(code), NULL, &ex), ERYX_OK);
    int rc, steps = 0;
    pthread_t t = 0;
    while ((rc = eryx_exec_step(ex)) == ERYX_PENDING) {
        steps++;
        eryx_call *c = eryx_exec_next_call(ex);
        if (c)
            pthread_create(&t, NULL, reply_later, c);
        uint64_t deadline = eryx_exec_deadline_ns(ex);
        for (;;) { /* poll: step when ready or at the deadline */
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            uint64_t ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
            if (eryx_exec_ready(ex) || (deadline && ns >= deadline))
                break;
            sleep_ms(1);
        }
    }
    if (t)
        pthread_join(t, NULL);
    CHECK_INT(rc, ERYX_OK);
    CHECK(steps < 30); /* ~400 if every poll during the sleep stepped */
    eryx_result *r = NULL;
    CHECK_INT(eryx_exec_finish(ex, &r), ERYX_OK);
    CHECK_STR(r ? r->out : NULL, "7\n");
    eryx_result_free(r);
    eryx_sandbox_free(sb);
}

/* ---- notify may call back into eryx -------------------------------------------- */

typedef struct notify_probe {
    eryx_exec *ex;
    atomic_int calls;
    atomic_int saw_ready;
} notify_probe;

static void reentrant_notify(void *ud)
{
    notify_probe *p = ud;
    atomic_fetch_add(&p->calls, 1);
    (void)eryx_exec_deadline_ns(p->ex); /* takes the locks notify used to hold */
    if (eryx_exec_ready(p->ex))
        atomic_fetch_add(&p->saw_ready, 1);
}

static void *interrupt_later(void *arg)
{
    sleep_ms(50);
    eryx_sandbox_interrupt(arg);
    return NULL;
}

TEST_CASE(test_reentrant_notify)
{
    eryx_sandbox *sb = sandbox_with_f();
    notify_probe p = {0};
    const char *code = "await f()\nimport asyncio\nawait asyncio.sleep(30)";
    CHECK_INT(eryx_exec_start(sb, code, strlen(code), NULL, &p.ex), ERYX_OK);
    eryx_exec_set_notify(p.ex, reentrant_notify, &p);
    CHECK_INT(eryx_exec_step(p.ex), ERYX_PENDING);
    eryx_call *c = eryx_exec_next_call(p.ex);
    REQUIRE(c != NULL);
    CHECK_INT(eryx_call_reply(c, "null", 4), ERYX_OK); /* notify on this thread */
    CHECK_INT(atomic_load(&p.calls), 1);
    CHECK_INT(atomic_load(&p.saw_ready), 1);
    CHECK_INT(eryx_exec_step(p.ex), ERYX_PENDING);     /* now in asyncio.sleep */
    pthread_t t;
    pthread_create(&t, NULL, interrupt_later, sb);     /* notify from the stop */
    int rc;
    while ((rc = eryx_exec_step(p.ex)) == ERYX_PENDING)
        sleep_ms(5);
    pthread_join(t, NULL);
    CHECK_INT(rc, ERYX_INTERRUPTED);
    CHECK_INT(atomic_load(&p.calls), 2);
    CHECK_INT(eryx_exec_finish(p.ex, NULL), ERYX_INTERRUPTED);
    eryx_sandbox_free(sb);
}

/* ---- freeing with an execution pending ------------------------------------------ */

TEST_CASE(test_free_with_pending_exec)
{
    eryx_sandbox *sb = sandbox_with_f();
    eryx_exec *ex = NULL;
    const char *code = "await f()";
    CHECK_INT(eryx_exec_start(sb, code, strlen(code), NULL, &ex), ERYX_OK);
    CHECK_INT(eryx_exec_step(ex), ERYX_PENDING);
    eryx_call *c = eryx_exec_next_call(ex);
    REQUIRE(c != NULL);
    eryx_sandbox_free(sb);
    /* The call outlives its sandbox; the execution does not. */
    CHECK_INT(eryx_call_pending(c), 0);
    CHECK_INT(eryx_call_reply(c, "1", 1), ERYX_NOTFOUND);
    CHECK_INT(eryx_exec_step(ex), ERYX_MISUSE);
    CHECK_INT(eryx_exec_finish(ex, NULL), ERYX_MISUSE);
    /* The parked instance serves the next sandbox as new. */
    eryx_sandbox *next = new_sandbox(NULL);
    eryx_result *r = NULL;
    CHECK_INT(run(next, "print(1 + 1)", &r), ERYX_OK);
    CHECK_STR(r ? r->out : NULL, "2\n");
    eryx_result_free(r);
    eryx_sandbox_free(next);
}

/* A handler may not free the sandbox it runs in: the free is ignored (the
 * run goes on), and a second run from the same thread is refused. */
static eryx_sandbox *self_sb;
static int nested_rc;
static char free_msg[200];

static void free_self(void *ud, eryx_call *call)
{
    (void)ud;
    eryx_result *r = NULL;
    nested_rc = eryx_sandbox_run(self_sb, "1", 1, &r);
    eryx_sandbox_free(self_sb);
    snprintf(free_msg, sizeof free_msg, "%s", eryx_errmsg(NULL));
    eryx_call_reply(call, "\"still here\"", 12);
}

TEST_CASE(test_handler_frees_own_sandbox)
{
    static const eryx_callback cb = {.name = "f", .handler = free_self,
                                     .flags = ERYX_CALLBACK_INLINE};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = &cb;
    cfg.n_callbacks = 1;
    self_sb = new_sandbox(&cfg);
    eryx_result *r = NULL;
    CHECK_INT(run(self_sb, "print(await f())", &r), ERYX_OK);
    CHECK_STR(r ? r->out : NULL, "still here\n");
    CHECK_INT(nested_rc, ERYX_MISUSE);
    CHECK_CONTAINS(free_msg, "not freed");
    eryx_result_free(r);
    r = NULL;
    CHECK_INT(run(self_sb, "print('alive')", &r), ERYX_OK);
    eryx_result_free(r);
    eryx_sandbox_free(self_sb);
}

/* A failure whose message is not UTF-8 still reaches the guest (found by
 * the call_reply fuzzer: the call used to be left waiting). */
TEST_CASE(test_fail_message_not_utf8)
{
    eryx_sandbox *sb = sandbox_with_f();
    eryx_exec *ex = NULL;
    const char *code = "try:\n    await f()\nexcept CallbackError as e:\n    print('failed')";
    CHECK_INT(eryx_exec_start(sb, code, strlen(code), NULL, &ex), ERYX_OK);
    CHECK_INT(eryx_exec_step(ex), ERYX_PENDING);
    eryx_call *c = eryx_exec_next_call(ex);
    REQUIRE(c != NULL);
    CHECK_INT(eryx_call_fail(c, ERYX_CALL_FAILED, "\xff\xfe bad"), ERYX_OK);
    CHECK_INT(eryx_exec_step(ex), ERYX_OK);
    eryx_result *r = NULL;
    CHECK_INT(eryx_exec_finish(ex, &r), ERYX_OK);
    CHECK_STR(r ? r->out : NULL, "failed\n");
    eryx_result_free(r);
    eryx_sandbox_free(sb);
}

/* ---- versions of structs ------------------------------------------------------- */

/* A caller built against a header whose config ended before
 * output_limit_stops: the library must not read that field (here garbage
 * that would make writes past max_output fail) and must default it. */
TEST_CASE(test_older_config_size)
{
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.size = offsetof(eryx_sandbox_config, output_limit_stops);
    cfg.max_output = 1000;
    cfg.output_limit_stops = 1; /* beyond the caller's size: not theirs */
    eryx_sandbox *sb = new_sandbox(&cfg);
    eryx_result *r = NULL;
    CHECK_INT(run(sb, "print('x' * 5000)\nprint('still running')", &r), ERYX_OK);
    CHECK_INT(r ? r->out_truncated : 0, 1);
    eryx_result_free(r);
    eryx_sandbox_free(sb);
    /* Older run options: fuel and timeout beyond the size are not read. */
    sb = new_sandbox(NULL);
    eryx_run_options o;
    eryx_run_options_default(&o);
    o.size = offsetof(eryx_run_options, timeout_ns);
    o.timeout_ns = 1; /* 1 ns if it were read */
    CHECK_INT(eryx_sandbox_run_ex(sb, "sum(range(100000))", 18, &o, &r), ERYX_OK);
    eryx_result_free(r);
    eryx_sandbox_free(sb);
    /* A pool config of an older size is accepted (it used to need the
     * exact size); its missing fields get their defaults. */
    eryx_pool_config pc;
    eryx_pool_config_default(&pc);
    pc.size = offsetof(eryx_pool_config, min_idle);
    pc.max_size = 2;
    pc.min_idle = 7; /* not the caller's: would be > max_size */
    eryx_pool *pool = NULL;
    CHECK_INT(eryx_pool_new(rt, &pc, &pool), ERYX_OK);
    eryx_pool_stats st;
    memset(&st, 0xff, sizeof st);
    st.size = offsetof(eryx_pool_stats, idle); /* an older, shorter struct */
    eryx_pool_get_stats(pool, &st);
    CHECK_INT(st.creations, 1);
    CHECK(st.idle == UINT32_MAX && st.in_use == UINT32_MAX); /* not written */
    CHECK_INT(eryx_pool_free(pool), ERYX_OK);
    /* Larger than this library knows: refused. */
    eryx_sandbox_config_default(&cfg);
    cfg.size = sizeof cfg + 8;
    eryx_sandbox *none = NULL;
    CHECK_INT(eryx_sandbox_new(rt, &cfg, &none), ERYX_INVALID);
    CHECK(none == NULL);
}

/* Arrays of callbacks and mounts: elements of a declared size (0 = this
 * first layout); disagreeing sizes are refused. */
TEST_CASE(test_array_element_sizes)
{
    eryx_callback cbs[2] = {{.name = "a"}, {.name = "b"}};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = cbs;
    cfg.n_callbacks = 2;
    eryx_sandbox *sb = new_sandbox(&cfg);
    eryx_sandbox_free(sb);
    cbs[0].size = cbs[1].size = sizeof cbs[0];
    sb = new_sandbox(&cfg);
    eryx_sandbox_free(sb);
    cbs[1].size = 0;
    sb = NULL;
    CHECK_INT(eryx_sandbox_new(rt, &cfg, &sb), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(NULL), "eryx_callback.size");
    CHECK(sb == NULL);
}

/* ---- one convention for limits --------------------------------------------------- */

TEST_CASE(test_run_lifts_limit)
{
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.timeout_ns = 100u * 1000000u;
    eryx_sandbox *sb = new_sandbox(&cfg);
    eryx_run_options o;
    eryx_run_options_default(&o);
    o.timeout_ns = ERYX_NO_LIMIT;
    eryx_result *r = NULL;
    const char *code = "import time\ntime.sleep(0.3)\nprint('done')";
    CHECK_INT(eryx_sandbox_run_ex(sb, code, strlen(code), &o, &r), ERYX_OK);
    CHECK_STR(r ? r->out : NULL, "done\n");
    eryx_result_free(r);
    r = NULL;
    CHECK_INT(run(sb, code, &r), ERYX_TIMEOUT); /* the sandbox's limit again */
    eryx_result_free(r);
    eryx_sandbox_free(sb);
    /* 0 in a config is the default, not "none". */
    eryx_sandbox_config_default(&cfg);
    cfg.timeout_ns = 0;
    cfg.max_output = 0;
    sb = new_sandbox(&cfg);
    CHECK_INT(run(sb, "print('y' * 100)", &r), ERYX_OK);
    CHECK_INT(r ? (long long)r->out_len : -1, 101);
    eryx_result_free(r);
    eryx_sandbox_free(sb);
}

/* ---- host mounts ------------------------------------------------------------ */

/* os.chmod on a read-only mount fails (it used to report success without
 * reaching the host), and host_write_quota bounds what the guest writes
 * into a writable mount. */
TEST_CASE(test_mount_chmod_and_quota)
{
    char dir[] = "/tmp/eryx-robustness-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    char file[64];
    snprintf(file, sizeof file, "%s/f", dir);
    FILE *f = fopen(file, "w");
    REQUIRE(f != NULL);
    fputs("x", f);
    fclose(f);
    eryx_mount mounts[2] = {{.host_path = dir, .guest_path = "/ro"},
                            {.host_path = dir, .guest_path = "/rw", .writable = 1}};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.mounts = mounts;
    cfg.n_mounts = 2;
    cfg.host_write_quota = 64 * 1024;
    eryx_sandbox *sb = new_sandbox(&cfg);
    eryx_result *r = NULL;
    const char *code =
        "import os, errno\n"
        "try:\n    os.chmod('/ro/f', 0o777)\n    print('chmod ok')\n"
        "except OSError as e:\n    print('chmod', errno.errorcode[e.errno])\n"
        "os.chmod('/rw/f', 0o600)\n"
        "try:\n    open('/rw/big', 'wb').write(b'y' * (1 << 20))\n    print('wrote')\n"
        "except OSError as e:\n    print('write', errno.errorcode[e.errno])\n";
    CHECK_INT(run(sb, code, &r), ERYX_OK);
    CHECK_STR(r ? r->out : NULL, "chmod EROFS\nwrite EDQUOT\n");
    eryx_result_free(r);
    eryx_sandbox_free(sb);
    char big[64];
    snprintf(big, sizeof big, "%s/big", dir);
    unlink(big);
    unlink(file);
    rmdir(dir);
}

/* ---- bounded run requests ------------------------------------------------------- */

/* argv strings whose lengths sum past 4 GiB used to wrap the request's
 * 32-bit length; now the request is refused before anything is copied. */
TEST_CASE(test_huge_argv)
{
    size_t big = 400u << 20;
    char *s = malloc(big + 1);
    REQUIRE(s != NULL);
    memset(s, 'a', big);
    s[big] = '\0';
    const char *argv[12];
    for (int i = 0; i < 11; i++)
        argv[i] = s;
    argv[11] = NULL;
    eryx_sandbox *sb = new_sandbox(NULL);
    eryx_run_options o;
    eryx_run_options_default(&o);
    o.argv = argv;
    eryx_result *r = NULL;
    CHECK_INT(eryx_sandbox_run_ex(sb, "pass", 4, &o, &r), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(sb), "1 GiB");
    o.argv = NULL;
    o.filename = s;
    /* 400 MB is a request, but more than the guest's 128 MiB can hold. */
    CHECK_INT(eryx_sandbox_run_ex(sb, "pass", 4, &o, &r), ERYX_NOMEM);
    CHECK(r == NULL);
    CHECK_INT(run(sb, "print('alive')", &r), ERYX_OK);
    CHECK_STR(r ? r->out : NULL, "alive\n");
    eryx_result_free(r);
    eryx_sandbox_free(sb);
    free(s);
}

/* Runs code in sb, answering each call of g with 7 at once and keeping
 * (unanswered) up to 20 calls of f in held. */
static eryx_result *run_answering_g(eryx_sandbox *sb, const char *code, eryx_call **held,
                                    int *n_held)
{
    eryx_exec *ex = NULL;
    CHECK_INT(eryx_exec_start(sb, code, strlen(code), NULL, &ex), ERYX_OK);
    int rc;
    while ((rc = eryx_exec_step(ex)) == ERYX_PENDING) {
        eryx_call *c;
        while ((c = eryx_exec_next_call(ex)) != NULL) {
            if (strcmp(eryx_call_name(c), "g") == 0)
                CHECK_INT(eryx_call_reply(c, "7", 1), ERYX_OK);
            else if (*n_held < 20)
                held[(*n_held)++] = c;
        }
        while (!eryx_exec_ready(ex))
            sleep_ms(1);
    }
    CHECK_INT(rc, ERYX_OK);
    eryx_result *r = NULL;
    CHECK_INT(eryx_exec_finish(ex, &r), ERYX_OK);
    return r;
}

/* A sandbox whose code calls f (run_answering_g holds those calls) and g. */
static eryx_sandbox *new_sandbox_f_g(void)
{
    static const eryx_callback cbs[] = {{.name = "f"}, {.name = "g"}};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = cbs;
    cfg.n_callbacks = 2;
    cfg.max_memory = 512u << 20; /* the guest's copies of what it sends */
    /* The held calls wait for the whole run: under ThreadSanitizer, 20
     * turns of 4 MiB each took past the default 10 s, and the calls held
     * first timed out before the last ones were refused. */
    cfg.callback_timeout_ns = 120ull * 1000 * 1000 * 1000;
    return new_sandbox(&cfg);
}

/* Code that starts n calls of f(x=X), one per turn of the loop (an awaited
 * g each), then prints how many failed, the first one's kind and message. */
static const char *calls_of_f(char *code, size_t size, const char *x, int n)
{
    snprintf(code, size,
             "import asyncio\n"
             "x = %s\n"
             "ts = []\n"
             "for i in range(%d):\n"
             "    ts.append(asyncio.ensure_future(f(x=x)))\n"
             "    await g()   # a turn of the loop each: one f call each\n"
             "await g()       # the last one's failure arrives\n"
             "failed = [t.exception() for t in ts if t.done()]\n"
             "print(len(failed), failed[0].kind, failed[0])\n",
             x, n);
    return code;
}

/* The host holds at most 64 MiB of arguments for one execution's calls not
 * yet done (ERYX_MAX_HELD_ARGS): a guest that passes the same 4 MiB to call
 * after call, holding it once, made the host hold 4 MiB more each time.
 * Sixteen such calls are held; the next fail at once, before the embedder
 * sees them, and the guest goes on. Answered calls give their share back. */
TEST_CASE(test_held_arguments_are_bounded)
{
    eryx_sandbox *sb = new_sandbox_f_g();
    char code[1024];
    eryx_call *held[20];
    int n_held = 0;
    eryx_result *r = run_answering_g(
        sb, calls_of_f(code, sizeof code, "'a' * (4 * 1024 * 1024 - 200)", 20), held, &n_held);
    CHECK_INT(n_held, 16);
    CHECK_CONTAINS(r ? r->out : NULL, "4 failed the host holds 64 MiB of arguments of this "
                                      "run's calls at most");
    CHECK_CONTAINS(r ? r->out : NULL, "'f' (4194112 bytes) would pass it\n");
    eryx_result_free(r);
    for (int i = 0; i < n_held; i++)
        eryx_call_reply(held[i], "1", 1); /* late: dropped, and released */
    /* 30 answered calls of 4 MiB each, one after the other. */
    n_held = 0;
    r = run_answering_g(sb, "x = 'a' * ((4 << 20) - 100)\n"
                            "print(sum([await g(x=x) for i in range(30)]))",
                        held, &n_held);
    CHECK_STR(r ? r->out : NULL, "210\n");
    eryx_result_free(r);
    eryx_sandbox_free(sb);
}

/* What the arguments of one execution's calls take to read as trees is
 * bounded like their text (ERYX_MAX_HELD_TREES, 256 MiB): 400 000 empty
 * dicts are 1.2 MB of text and 93 MB as a jansson tree (the 64 MiB of text
 * allowed were 5 GB of trees). Two such calls are held, the third fails
 * at once, before the embedder sees it; answered, they give their share
 * back, and more go through. One call whose arguments alone would pass
 * the bound (1.39 million dicts, within the 4 MiB of one call) fails too. */
TEST_CASE(test_held_argument_trees_are_bounded)
{
    eryx_sandbox *sb = new_sandbox_f_g();
    char code[1024];
    eryx_call *held[20];
    int n_held = 0;
    eryx_result *r =
        run_answering_g(sb, calls_of_f(code, sizeof code, "[{}] * 400000", 3), held, &n_held);
    CHECK_INT(n_held, 2);
    CHECK_CONTAINS(r ? r->out : NULL, "1 failed the host reads 256 MiB of trees of arguments of "
                                      "this run's calls at most, those not yet answered or "
                                      "whose handlers still run: 'f' (1200007 bytes, 88 MiB as "
                                      "a tree) would pass it\n");
    eryx_result_free(r);
    for (int i = 0; i < n_held; i++)
        eryx_call_reply(held[i], "1", 1); /* late: dropped, and released */
    n_held = 0;
    r = run_answering_g(sb, "print(sum([await g(x=[{}] * 400000) for i in range(5)]))", held,
                        &n_held);
    CHECK_STR(r ? r->out : NULL, "35\n");
    eryx_result_free(r);
    /* (The glue's own JSON, `{}, ` a dict, cannot reach it within 4 MiB;
     * a request written by hand, `{},`, can.) */
    r = run_answering_g(sb, "import _eryx_host\n"
                            "print(_eryx_host.wait(b'{\"calls\":[{\"id\":1,\"name\":\"g\",'\n"
                            "    + b'\"args\":{\"x\":[' + b'{},' * 1390000\n"
                            "    + b'{}]}}],\"timeout\":null}').decode())\n",
                        held, &n_held);
    CHECK_CONTAINS(r ? r->out : NULL, "the arguments of 'g' (4170010 bytes of JSON) would take "
                                      "more than 256 MiB to read (too many objects, arrays and "
                                      "values): the host does not take them");
    eryx_result_free(r);
    eryx_sandbox_free(sb);
}

/* [{},{},...,{},1234567890123456789]: n empty objects and an integer of 19
 * digits, which the host's strict reader leaves to jansson. */
static char *wide_reply(size_t n, size_t *len)
{
    char *s = malloc(3 * n + 32);
    REQUIRE(s != NULL);
    size_t k = 0;
    s[k++] = '[';
    for (size_t i = 0; i < n; i++, k += 3)
        memcpy(s + k, "{},", 3);
    k += (size_t)sprintf(s + k, "1234567890123456789]");
    *len = k;
    return s;
}

/* Runs code in sb, answering every call with reply; rcs gets the status of
 * each eryx_call_reply (up to 4). */
static eryx_result *run_replying(eryx_sandbox *sb, const char *code, const char *reply,
                                 size_t len, int *rcs, int *n_rcs)
{
    eryx_exec *ex = NULL;
    CHECK_INT(eryx_exec_start(sb, code, strlen(code), NULL, &ex), ERYX_OK);
    int rc;
    *n_rcs = 0;
    while ((rc = eryx_exec_step(ex)) == ERYX_PENDING) {
        eryx_call *c;
        while ((c = eryx_exec_next_call(ex)) != NULL) {
            int reply_rc = eryx_call_reply(c, reply, len);
            if (*n_rcs < 4)
                rcs[(*n_rcs)++] = reply_rc;
        }
        while (!eryx_exec_ready(ex))
            sleep_ms(1);
    }
    CHECK_INT(rc, ERYX_OK);
    eryx_result *r = NULL;
    CHECK_INT(eryx_exec_finish(ex, &r), ERYX_OK);
    return r;
}

/* A reply the host's strict reader leaves to jansson (for a NUL, a deep
 * nesting or a large number) is read as a tree, which counts with the
 * arguments' trees (ERYX_MAX_HELD_TREES, 256 MiB) until the guest has it:
 * 16 MiB of [{},{},...] and a 19-digit integer took the host 1.3 GB and
 * 5.4 s (64 MiB, the most a reply may be, about 5 GB), where the same
 * reply ending in 1 took 81 MB and 0.06 s. That reply is refused
 * (ERYX_INVALID, the guest sees a failed call); of two gathered replies
 * whose trees take 154 MiB each, the second is, while the first is not yet
 * delivered; replies that come one after the other all pass. */
TEST_CASE(test_reply_trees_are_bounded)
{
    eryx_sandbox *sb = new_sandbox_f_g();
    static const char prologue[] = "import asyncio\n"
                                   "async def one():\n"
                                   "    try:\n"
                                   "        return len(await f())\n"
                                   "    except CallbackError as e:\n"
                                   "        return f'{e.kind}: {e}'\n";
    char code[1024];
    int rcs[4], n_rcs;
    size_t len;
    char *reply = wide_reply((16u << 20) / 3, &len);
    snprintf(code, sizeof code, "%sprint(await one())", prologue);
    eryx_result *r = run_replying(sb, code, reply, len, rcs, &n_rcs);
    CHECK_INT(n_rcs, 1);
    CHECK_INT(rcs[0], ERYX_INVALID);
    CHECK_STR(r ? r->out : NULL, "failed: the host function 'f' returned JSON that would take more "
                                 "than 256 MiB to read (too many objects, arrays and values): "
                                 "the host does not take it\n");
    eryx_result_free(r);
    free(reply);

    reply = wide_reply((2u << 20) / 3, &len); /* 154 MiB as a tree */
    snprintf(code, sizeof code, "%sprint(await asyncio.gather(one(), one()))", prologue);
    r = run_replying(sb, code, reply, len, rcs, &n_rcs);
    CHECK_INT(n_rcs, 2);
    CHECK_INT(rcs[0], ERYX_OK);
    CHECK_INT(rcs[1], ERYX_INVALID);
    CHECK_STR(r ? r->out : NULL, "[699051, \"failed: the host function 'f' returned JSON that would "
                                 "take 154 MiB to read (too many objects, arrays and values): "
                                 "with the run's other calls not yet delivered, more than the "
                                 "256 MiB the host reads at once\"]\n");
    eryx_result_free(r);
    snprintf(code, sizeof code, "%sprint([await one() for i in range(2)])", prologue);
    r = run_replying(sb, code, reply, len, rcs, &n_rcs);
    CHECK_INT(n_rcs, 2);
    CHECK_INT(rcs[0], ERYX_OK);
    CHECK_INT(rcs[1], ERYX_OK);
    CHECK_STR(r ? r->out : NULL, "[699051, 699051]\n");
    eryx_result_free(r);
    free(reply);
    eryx_sandbox_free(sb);
}

/* One sandbox's handlers that block past their calls' timeouts used to
 * hold every worker of the process (64), so another sandbox's calls waited
 * in the queue until they timed out. Each sandbox now has a share of the
 * workers: B's call is answered at once while A's 100 handlers still block. */
static pthread_mutex_t block_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t block_cv = PTHREAD_COND_INITIALIZER;
static int block_released, block_running;

static void block_handler(void *ud, eryx_call *call)
{
    (void)ud;
    pthread_mutex_lock(&block_mu);
    block_running++;
    while (!block_released)
        pthread_cond_wait(&block_cv, &block_mu);
    block_running--;
    pthread_cond_broadcast(&block_cv);
    pthread_mutex_unlock(&block_mu);
    eryx_call_reply(call, "1", 1);
}

static void answer_handler(void *ud, eryx_call *call)
{
    (void)ud;
    eryx_call_reply(call, "2", 1);
}

TEST_CASE(test_blocked_handlers_do_not_starve_others)
{
    eryx_callback a = {.size = sizeof a, .name = "block", .handler = block_handler};
    eryx_callback b = {.size = sizeof b, .name = "ok", .handler = answer_handler};
    eryx_sandbox_config ca, cb;
    eryx_sandbox_config_default(&ca);
    eryx_sandbox_config_default(&cb);
    ca.callbacks = &a;
    ca.n_callbacks = 1;
    /* Long enough for all 64 handlers to start on a slow build (TSan). */
    ca.callback_timeout_ns = 3000 * 1000000ull;
    cb.callbacks = &b;
    cb.n_callbacks = 1;
    cb.callback_timeout_ns = 5000 * 1000000ull;
    eryx_sandbox *A = new_sandbox(&ca), *B = new_sandbox(&cb);
    eryx_result *r = NULL;
    CHECK_INT(run(A, "import asyncio\n"
                     "r = await asyncio.gather(*[block() for _ in range(100)],\n"
                     "                         return_exceptions=True)\n"
                     "print(sum(isinstance(e, CallbackError) for e in r),\n"
                     "      sum('never started' in str(e) for e in r))", &r), ERYX_OK);
    /* All timed out; those still queued (36, or more on a slow build that
     * had not started all 64 yet) say so. */
    int timed_out = 0, never_started = 0;
    CHECK(r && sscanf(r->out, "%d %d", &timed_out, &never_started) == 2);
    CHECK_INT(timed_out, 100);
    CHECK(never_started >= 36 && never_started < 100);
    eryx_result_free(r);
    /* A's share is 64 handlers: its other 36 calls were never started (a
     * slow build may still be starting the 64th). */
    pthread_mutex_lock(&block_mu);
    for (int i = 0; i < 500 && block_running < 64; i++) {
        pthread_mutex_unlock(&block_mu);
        sleep_ms(10);
        pthread_mutex_lock(&block_mu);
    }
    int blocked = block_running;
    pthread_mutex_unlock(&block_mu);
    CHECK_INT(blocked, 64);
    double t0 = check_now_();
    CHECK_INT(run(B, "print(await ok())", &r), ERYX_OK);
    CHECK_STR(r ? r->out : NULL, "2\n");
    CHECK(check_now_() - t0 < 2.0);
    eryx_result_free(r);
    /* A freed while its handlers block: a sandbox made next (most often at
     * A's address, which keyed A's share once) has a share of its own. */
    eryx_sandbox_free(A);
    eryx_sandbox *C = new_sandbox(&cb);
    t0 = check_now_();
    CHECK_INT(run(C, "print(await ok())", &r), ERYX_OK);
    CHECK_STR(r ? r->out : NULL, "2\n");
    CHECK(check_now_() - t0 < 2.0);
    eryx_result_free(r);
    pthread_mutex_lock(&block_mu);
    block_released = 1;
    pthread_cond_broadcast(&block_cv);
    while (block_running)
        pthread_cond_wait(&block_cv, &block_mu);
    pthread_mutex_unlock(&block_mu);
    eryx_sandbox_free(B);
    eryx_sandbox_free(C);
}

/* Guest code that recurses to just above its stack's guard and then calls
 * an import (os.stat, through C frames that CPython does not count) used
 * to crash the process: the import's frames hit the guard, which is a host
 * crash by the fault handler's rule. Each import now traps first when less
 * than ERYX_HOST_STACK_RESERVE is left.
 *
 * The chain of DEPTH maps takes the stack down by DEPTH frames of
 * map_next, and g's recursion below it calls the import at every level
 * until CPython's C recursion limit raises RecursionError. Shallow chains
 * end in that RecursionError; deep ones reach the guard first and trap.
 * The depths just below the boundary are the ones whose imports land in
 * the reserve (35000-40000 crashed, on the build of the time). The
 * boundary moves with the build's frame sizes (the guest whose CPython is
 * link-time optimised has smaller ones: about 51000 against 30000), so it
 * is found first, by bisection, and then the depths below it are swept,
 * each in a fresh sandbox: the process must see a trap or a Python
 * exception, never a crash. Returns the run's status. */
static int run_at_stack_end(int depth)
{
    char code[512];
    snprintf(code, sizeof code,
             "import os, sys\n"
             "sys.setrecursionlimit(10**6)\n"
             "def g(v):\n"
             "    os.stat('/')\n"
             "    return next(map(g, [v]))\n"
             "x = map(g, iter([1]))\n"
             "for i in range(%d): x = map(abs, x)\n"
             "next(x)\n",
             depth);
    eryx_sandbox *sb = new_sandbox(NULL);
    eryx_result *r = NULL;
    int rc = run(sb, code, &r);
    if (rc == ERYX_TRAP)
        CHECK_CONTAINS(eryx_errmsg(sb), "call stack exhausted");
    else
        CHECK_INT(rc, ERYX_PYTHON_EXCEPTION); /* RecursionError or MemoryError */
    eryx_result_free(r);
    eryx_sandbox_free(sb);
    return rc;
}

TEST_CASE(test_host_call_at_the_stack_end)
{
    int lo = 1000, hi = 200000; /* an exception at lo, a trap at hi */
    CHECK_INT(run_at_stack_end(lo), ERYX_PYTHON_EXCEPTION);
    CHECK_INT(run_at_stack_end(hi), ERYX_TRAP);
    while (hi - lo > 100) {
        int mid = lo + (hi - lo) / 2;
        if (run_at_stack_end(mid) == ERYX_TRAP)
            hi = mid;
        else
            lo = mid;
    }
    int traps = 0;
    for (int depth = hi - 6000; depth <= hi + 1000; depth += 200)
        traps += run_at_stack_end(depth) == ERYX_TRAP;
    CHECK(traps > 0);
}

/* Every case: a runtime of its own, freed once and then refused. */
static void setup(void)
{
    REQUIRE(eryx_runtime_new(NULL, &rt) == ERYX_OK);
}

static void teardown(void)
{
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
    CHECK_INT(eryx_runtime_free(rt), ERYX_MISUSE);
}

TEST_MAIN_WITH(setup, teardown)
