/*
 * The smallest embedding: one runtime, one sandbox, two runs that share
 * state, and an exception read back from the result.
 *   cc hello.c $(pkg-config --cflags --libs eryx) -o hello
 */
#include <eryx.h>
#include <stdio.h>
#include <string.h>

static int run(eryx_sandbox *sb, const char *code)
{
    eryx_result *res = NULL;
    int rc = eryx_sandbox_run(sb, code, strlen(code), &res);
    if (rc == ERYX_OK) {
        fwrite(res->out, 1, res->out_len, stdout);
    } else if (rc == ERYX_PYTHON_EXCEPTION) {
        printf("the code raised %s: %s\n", res->exc_type, res->exc_message);
    } else {
        fprintf(stderr, "run failed: %s (%s)\n", eryx_errstr(rc), eryx_errmsg(sb));
    }
    eryx_result_free(res);
    return rc;
}

int main(void)
{
    eryx_runtime *rt = NULL;
    eryx_sandbox *sb = NULL;
    int rc = eryx_runtime_new(NULL, &rt);
    if (rc == ERYX_OK)
        rc = eryx_sandbox_new(rt, NULL, &sb);
    if (rc != ERYX_OK) {
        fprintf(stderr, "setup failed: %s (%s)\n", eryx_errstr(rc), eryx_errmsg(NULL));
        eryx_runtime_free(rt);
        return 1;
    }
    run(sb, "import sys\nprimes = [n for n in range(2, 50) if all(n % d for d in range(2, n))]\n"
            "print('Python', sys.version.split()[0], 'in a sandbox')");
    run(sb, "print('primes below 50:', primes)");
    run(sb, "int('not a number')");
    eryx_sandbox_free(sb);
    eryx_runtime_free(rt);
    return 0;
}
