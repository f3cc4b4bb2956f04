/* API misuse gives a status and a message, never a crash. */
#include <stdio.h>
#include <string.h>

#include <eryx.h>

#include "../check.h"

TEST_CASE(test_errstr)
{
#define CHECK_NAMED(name, value, text) CHECK_CONTAINS(eryx_errstr(value), "ERYX_" #name);
    ERYX_STATUS_MAP(CHECK_NAMED)
#undef CHECK_NAMED
    CHECK_STR(eryx_errstr(-1), "unknown status");
    CHECK_STR(eryx_errstr(1000), "unknown status");
    CHECK_STR(eryx_version(), ERYX_VERSION_STRING);
}

TEST_CASE(test_null_handles)
{
    eryx_result *r = NULL;
    CHECK_INT(eryx_runtime_new(NULL, NULL), ERYX_MISUSE);
    CHECK_CONTAINS(eryx_errmsg(NULL), "out is NULL");
    eryx_sandbox *sb = (eryx_sandbox *)1;
    CHECK_INT(eryx_sandbox_new(NULL, NULL, &sb), ERYX_MISUSE);
    CHECK(sb == NULL);
    CHECK_INT(eryx_sandbox_run(NULL, "1", 1, &r), ERYX_MISUSE);
    CHECK_INT(eryx_runtime_free(NULL), ERYX_OK);
    eryx_sandbox_free(NULL);
    eryx_result_free(NULL);
}

/* The runtime of the running case, freed by teardown. */
static eryx_runtime *case_rt;

static eryx_runtime *case_runtime(void)
{
    REQUIRE(eryx_runtime_new(NULL, &case_rt) == ERYX_OK);
    return case_rt;
}

TEST_CASE(test_bad_configs)
{
    eryx_runtime *rt = case_runtime();
    eryx_sandbox *sb = NULL;
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.size = 3;
    CHECK_INT(eryx_sandbox_new(rt, &cfg, &sb), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(NULL), "eryx_sandbox_config_default");
    eryx_sandbox_config_default(&cfg);
    cfg.max_memory = 1 << 20;
    CHECK_INT(eryx_sandbox_new(rt, &cfg, &sb), ERYX_INVALID);
    eryx_sandbox_config_default(&cfg);
    cfg.n_mounts = 1;
    CHECK_INT(eryx_sandbox_new(rt, &cfg, &sb), ERYX_MISUSE);
    eryx_mount m = {0, "/nonexistent/eryx-test-dir", "/data", 0};
    cfg.mounts = &m;
    CHECK_INT(eryx_sandbox_new(rt, &cfg, &sb), ERYX_IO);
    CHECK_CONTAINS(eryx_errmsg(NULL), "/nonexistent/eryx-test-dir");
    m.guest_path = "relative";
    CHECK_INT(eryx_sandbox_new(rt, &cfg, &sb), ERYX_INVALID);
    CHECK(sb == NULL);
    eryx_runtime_config rc;
    eryx_runtime_config_default(&rc);
    rc.size = 1000;
    eryx_runtime *rt2 = NULL;
    CHECK_INT(eryx_runtime_new(&rc, &rt2), ERYX_INVALID);
    CHECK(rt2 == NULL);
}

TEST_CASE(test_bad_run_arguments)
{
    eryx_runtime *rt = case_runtime();
    eryx_sandbox *sb = NULL;
    REQUIRE(eryx_sandbox_new(rt, NULL, &sb) == ERYX_OK);
    eryx_result *r = NULL;
    CHECK_INT(eryx_sandbox_run(sb, "1", 1, NULL), ERYX_MISUSE);
    CHECK_INT(eryx_sandbox_run(sb, NULL, 5, &r), ERYX_MISUSE);
    CHECK_CONTAINS(eryx_errmsg(sb), "code is NULL");
    eryx_run_options o;
    eryx_run_options_default(&o);
    o.size = 0;
    CHECK_INT(eryx_sandbox_run_ex(sb, "1", 1, &o, &r), ERYX_INVALID);
    eryx_run_options_default(&o);
    o.mode = (eryx_run_mode)7;
    CHECK_INT(eryx_sandbox_run_ex(sb, "1", 1, &o, &r), ERYX_INVALID);
    eryx_run_options_default(&o);
    o.filename = "";
    CHECK_INT(eryx_sandbox_run_ex(sb, "1", 1, &o, &r), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(sb), "filename");
    eryx_run_options_default(&o);
    o.stdin_len = 3;
    CHECK_INT(eryx_sandbox_run_ex(sb, "1", 1, &o, &r), ERYX_MISUSE);
    /* NULL code with length 0 is the empty program. */
    CHECK_INT(eryx_sandbox_run(sb, NULL, 0, &r), ERYX_OK);
    eryx_result_free(r);

    /* The runtime refuses to go while a sandbox lives. */
    CHECK_INT(eryx_runtime_free(rt), ERYX_MISUSE);
    CHECK_CONTAINS(eryx_errmsg(NULL), "1 sandboxes alive");
    eryx_sandbox_free(sb);
}

/* What the on_output below saw of running another sandbox. */
typedef struct nested_run {
    eryx_sandbox *other;
    int calls, rc;
    char msg[256];
} nested_run;

static void run_other(void *ud, int fd, const char *data, size_t len)
{
    (void)fd, (void)data, (void)len;
    nested_run *n = ud;
    if (n->calls++)
        return;
    eryx_result *r = NULL;
    n->rc = eryx_sandbox_run(n->other, "x = 1", 5, &r);
    snprintf(n->msg, sizeof n->msg, "%s", eryx_errmsg(n->other));
    eryx_result_free(r);
}

/* A run from inside another sandbox's guest code (its on_output, on the
 * thread running it) is refused: it made the other sandbox dead ("trapped:
 * guarded call refused"), and the first one's output handler with it. Now
 * it fails with ERYX_MISUSE and both sandboxes go on. */
TEST_CASE(test_run_inside_another_sandboxs_output)
{
    eryx_runtime *rt = case_runtime();
    nested_run n = {0};
    static const char *const env[] = {"NESTED=kept", NULL};
    eryx_sandbox_config ocfg;
    eryx_sandbox_config_default(&ocfg);
    ocfg.env = env;
    REQUIRE(eryx_sandbox_new(rt, &ocfg, &n.other) == ERYX_OK);
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.on_output = run_other;
    cfg.output_user_data = &n;
    eryx_sandbox *sb = NULL;
    REQUIRE(eryx_sandbox_new(rt, &cfg, &sb) == ERYX_OK);
    eryx_result *r = NULL;
    const char *code = "import sys\nprint('one', flush=True)\nprint('two')\n";
    CHECK_INT(eryx_sandbox_run(sb, code, strlen(code), &r), ERYX_OK);
    CHECK_INT(n.rc, ERYX_MISUSE);
    CHECK_CONTAINS(n.msg, "inside another sandbox's guest code");
    CHECK(n.calls >= 2);
    CHECK(r && r->out && strcmp(r->out, "one\ntwo\n") == 0);
    eryx_result_free(r);
    /* Both run on; the refused one's first run still sets it up (its
     * environment here: the refusal came before the run took its set-up). */
    const char *again = "import os\nprint(x if 'x' in dir() else 'fresh', os.environ.get('NESTED'))";
    r = NULL;
    CHECK_INT(eryx_sandbox_run(n.other, again, strlen(again), &r), ERYX_OK);
    CHECK(r && r->out && strcmp(r->out, "fresh kept\n") == 0);
    eryx_result_free(r);
    r = NULL;
    CHECK_INT(eryx_sandbox_run(sb, "print(3)", 8, &r), ERYX_OK);
    CHECK(r && r->out && strcmp(r->out, "3\n") == 0);
    eryx_result_free(r);
    eryx_sandbox_free(sb);
    eryx_sandbox_free(n.other);
}

/* What an output handler got from driving its own execution. */
typedef struct own_exec {
    eryx_exec *ex;
    int calls, step_rc, finish_rc, suspend_rc;
} own_exec;

static void drive_own_exec(void *ud, int fd, const char *data, size_t len)
{
    (void)fd, (void)data, (void)len;
    own_exec *o = ud;
    if (o->calls++)
        return;
    eryx_result *r = NULL;
    o->step_rc = eryx_exec_step(o->ex);
    o->suspend_rc = eryx_exec_suspend(o->ex);
    o->finish_rc = eryx_exec_finish(o->ex, &r);
    CHECK(r == NULL);
}

/* An execution stepped, suspended or finished from its own guest code (an
 * output handler given the handle) is refused: eryx_exec_finish freed the
 * execution under the step that was running it (a crash with
 * MALLOC_PERTURB_), and a step from there resumed the running fiber. */
TEST_CASE(test_exec_driven_from_its_own_output)
{
    eryx_runtime *rt = case_runtime();
    own_exec o = {0};
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.on_output = drive_own_exec;
    cfg.output_user_data = &o;
    eryx_sandbox *sb = NULL;
    REQUIRE(eryx_sandbox_new(rt, &cfg, &sb) == ERYX_OK);
    const char *code = "print('one', flush=True)\nx = sum(range(1000))\nprint('two')\n";
    REQUIRE(eryx_exec_start(sb, code, strlen(code), NULL, &o.ex) == ERYX_OK);
    CHECK_INT(eryx_exec_step(o.ex), ERYX_OK);
    CHECK_INT(o.step_rc, ERYX_MISUSE);
    CHECK_INT(o.suspend_rc, ERYX_MISUSE);
    CHECK_INT(o.finish_rc, ERYX_MISUSE);
    eryx_result *r = NULL;
    CHECK_INT(eryx_exec_finish(o.ex, &r), ERYX_OK);
    CHECK(r && r->out && strcmp(r->out, "one\ntwo\n") == 0);
    eryx_result_free(r);
    CHECK(!eryx_sandbox_is_dead(sb));
    eryx_sandbox_free(sb);
}

/* An execution whose last step returned but that is not finished yet
 * still holds its sandbox: a second execution, a run, a fork, a save are
 * refused, and freeing the sandbox frees it too (its handle dead). The
 * sandbox counted as idle once the step returned: a free then left the
 * execution pointing at freed memory, and eryx_exec_finish crashed; a
 * second start ran beside it. */
TEST_CASE(test_finished_execution_holds_its_sandbox)
{
    eryx_runtime *rt = case_runtime();
    eryx_sandbox *sb = NULL, *fork = NULL;
    REQUIRE(eryx_sandbox_new(rt, NULL, &sb) == ERYX_OK);
    eryx_exec *ex = NULL, *second = NULL;
    REQUIRE(eryx_exec_start(sb, "x = 1", 5, NULL, &ex) == ERYX_OK);
    CHECK_INT(eryx_exec_step(ex), ERYX_OK);
    CHECK_INT(eryx_exec_start(sb, "y = 2", 5, NULL, &second), ERYX_MISUSE);
    CHECK(second == NULL);
    eryx_result *r = NULL;
    CHECK_INT(eryx_sandbox_run(sb, "pass", 4, &r), ERYX_MISUSE);
    eryx_result_free(r);
    CHECK_INT(eryx_sandbox_fork(sb, &fork), ERYX_MISUSE);
    CHECK_CONTAINS(eryx_errmsg(sb), "finish it first");
    eryx_sandbox_free(sb);
    r = NULL;
    CHECK_INT(eryx_exec_finish(ex, &r), ERYX_MISUSE); /* freed with its sandbox */
    CHECK(r == NULL);
    /* Finished in turn, the sandbox is idle again. */
    REQUIRE(eryx_sandbox_new(rt, NULL, &sb) == ERYX_OK);
    REQUIRE(eryx_exec_start(sb, "x = 1", 5, NULL, &ex) == ERYX_OK);
    CHECK_INT(eryx_exec_step(ex), ERYX_OK);
    CHECK_INT(eryx_exec_finish(ex, &r), ERYX_OK);
    eryx_result_free(r);
    r = NULL;
    CHECK_INT(eryx_sandbox_run(sb, "print(x)", 8, &r), ERYX_OK);
    CHECK(r && strcmp(r->out, "1\n") == 0);
    eryx_result_free(r);
    eryx_sandbox_free(sb);
}

static void teardown(void)
{
    if (case_rt)
        CHECK_INT(eryx_runtime_free(case_rt), ERYX_OK);
}

TEST_MAIN_WITH(NULL, teardown)
