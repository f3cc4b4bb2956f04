/* API misuse gives a status and a message, never a crash. */
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

static void teardown(void)
{
    if (case_rt)
        CHECK_INT(eryx_runtime_free(case_rt), ERYX_OK);
}

TEST_MAIN_WITH(NULL, teardown)
