/* The harness itself (tests/check.h): a failed check, a failed REQUIRE and a
 * crash each fail their case only, the others still run, the summary and the
 * exit status say so, and cases can be picked by name. The cases below are
 * run by this program's outer half, which reads what the runner printed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"

TEST_CASE(passes)
{
    CHECK_INT(1 + 1, 2);
    CHECK_STR("a", "a");
}

TEST_CASE(fails_check)
{
    CHECK_INT(1 + 1, 3);
    puts("went on after the failed check");
}

TEST_CASE(fails_require)
{
    REQUIRE(0);
    puts("not reached");
}

TEST_CASE(crashes)
{
    abort();
}

TEST_CASE(passes_after)
{
    CHECK(1);
}

/* Runs this program on the cases in `names` (NULL: all), output in `out`;
 * returns its exit status. */
static int inner(const char *names, char *out, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ERYX_TEST_INNER=1 ERYX_TEST_CASE='%s' /proc/%d/exe 2>&1",
             names ? names : "", (int)getpid());
    FILE *p = popen(cmd, "r");
    REQUIRE(p != NULL);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void outer(void)
{
    static char out[1 << 16];
    CHECK_INT(inner(NULL, out, sizeof out), 1);
    CHECK_CONTAINS(out, "[  OK  ] passes (");
    CHECK_CONTAINS(out, "test_check.c:20: 1 + 1 == 3: 2 != 3");
    CHECK_CONTAINS(out, "went on after the failed check");
    CHECK_CONTAINS(out, "[ FAIL ] fails_check");
    CHECK_CONTAINS(out, "required: 0");
    CHECK(strstr(out, "not reached") == NULL);
    CHECK_CONTAINS(out, "[ FAIL ] fails_require");
    CHECK_CONTAINS(out, "crashes: killed by signal 6");
    CHECK_CONTAINS(out, "[ FAIL ] crashes");
    CHECK_CONTAINS(out, "[  OK  ] passes_after");
    CHECK_CONTAINS(out, "5 case(s), 3 failed");
    CHECK_CONTAINS(out, "failed: fails_check fails_require crashes\n");
    fputs(out, stdout);

    CHECK_INT(inner("passes,passes_after", out, sizeof out), 0);
    CHECK_CONTAINS(out, "2 case(s), 0 failed");
    CHECK(strstr(out, "fails_check") == NULL);
    CHECK_INT(inner("nonesuch", out, sizeof out), 2);
}

int main(int argc, char **argv)
{
    if (getenv("ERYX_TEST_INNER"))
        return check_main_(argc, argv, NULL, NULL);
    outer();
    return CHECK_DONE();
}
