/*
 * Without /proc/self/pagemap (a container that hides it, a kernel without
 * it) nothing can be restored in place: resets, parking and the pool fall
 * back to mapping the runtime image afresh, and the first-run prefault is
 * skipped. This test makes the file unreadable for itself only — a private
 * mount namespace with /dev/null bound over it (needs CAP_SYS_ADMIN, as
 * the test runs in CI: as root) — and checks that every path still gives a
 * clean sandbox.
 */
#include <eryx.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mount.h>
#include <unistd.h>

#include "../check.h"

static void hide_pagemap(void)
{
    REQUIRE(unshare(CLONE_NEWNS) == 0);
    REQUIRE(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
    REQUIRE(mount("/dev/null", "/proc/self/pagemap", NULL, MS_BIND, NULL) == 0);
    int fd = open("/proc/self/pagemap", O_RDONLY);
    REQUIRE(fd >= 0);
    uint64_t entry;
    CHECK_INT(pread(fd, &entry, sizeof entry, 0), 0); /* nothing to read */
    close(fd);
}

static void check_run(eryx_sandbox *sb, const char *code, const char *want_out)
{
    eryx_result *r = NULL;
    CHECK_INT(eryx_sandbox_run(sb, code, strlen(code), &r), ERYX_OK);
    CHECK_STR(r ? r->out : NULL, want_out);
    eryx_result_free(r);
}

/* One case: the mount namespace it makes is its process's. */
TEST_CASE(test_no_pagemap)
{
    hide_pagemap();
    eryx_runtime *rt = NULL;
    REQUIRE(eryx_runtime_new(NULL, &rt) == ERYX_OK);
    eryx_sandbox *sb = NULL;
    REQUIRE(eryx_sandbox_new(rt, NULL, &sb) == ERYX_OK);
    check_run(sb, "x = 1\nopen('/tmp/f', 'w').write('data')\nprint(x)", "1\n");
    /* Reset: the image is mapped afresh, state and /tmp are gone. */
    CHECK_INT(eryx_sandbox_reset(sb), ERYX_OK);
    check_run(sb, "import os\nprint('x' in globals(), os.path.exists('/tmp/f'))",
              "False False\n");
    /* Freed and reused (parked by mapping afresh), several times over. */
    for (int i = 0; i < 6; i++) {
        eryx_sandbox_free(sb);
        REQUIRE(eryx_sandbox_new(rt, NULL, &sb) == ERYX_OK);
        check_run(sb, "print('x' in globals())\nx = 2", "False\n");
    }
    /* A fork, reset afterwards. */
    eryx_sandbox *child = NULL;
    CHECK_INT(eryx_sandbox_fork(sb, &child), ERYX_OK);
    check_run(child, "print(x)", "2\n");
    CHECK_INT(eryx_sandbox_reset(child), ERYX_OK);
    check_run(child, "print('x' in globals())", "False\n");
    eryx_sandbox_free(child);
    eryx_sandbox_free(sb);
    /* The pool: every release resets. */
    eryx_pool *pool = NULL;
    REQUIRE(eryx_pool_new(rt, NULL, &pool) == ERYX_OK);
    for (int i = 0; i < 4; i++) {
        eryx_sandbox *p = NULL;
        REQUIRE(eryx_pool_acquire(pool, 0, &p) == ERYX_OK);
        check_run(p, "print('y' in globals())\ny = 1", "False\n");
        CHECK_INT(eryx_pool_release(pool, p), ERYX_OK);
    }
    CHECK_INT(eryx_pool_free(pool), ERYX_OK);
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
}

TEST_MAIN()
