/*
 * Sessions: state that outlives a run, a sandbox and a process.
 * A session builds up variables and a file in /tmp, is forked (the fork
 * diverges without touching the original), saved to a file and loaded into
 * a new sandbox, as another process of the same build could; sandboxes come
 * from a pool, which hands them out clean.
 *   cc sessions.c $(pkg-config --cflags --libs eryx) -o sessions
 *   ./sessions [SESSION_FILE]        (default: a temporary file)
 */
#include <eryx.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run(eryx_sandbox *sb, const char *label, const char *code)
{
    eryx_result *res = NULL;
    int rc = eryx_sandbox_run(sb, code, strlen(code), &res);
    if (rc == ERYX_OK)
        printf("%s: %.*s", label, (int)res->out_len, res->out);
    else
        fprintf(stderr, "%s: %s (%s)\n", label, eryx_errstr(rc),
                res && res->traceback ? res->traceback : eryx_errmsg(sb));
    eryx_result_free(res);
    return rc;
}

static int demo(eryx_runtime *rt, eryx_pool *pool, const char *path)
{
    eryx_sandbox *sb = NULL, *fork = NULL, *loaded = NULL;
    int rc = eryx_pool_acquire(pool, 1000000000u, &sb);
    if (rc != ERYX_OK)
        return rc;
    /* Two runs of one session: the second sees the first's variables. */
    if ((rc = run(sb, "run 1", "notes = ['started']\n"
                               "open('/tmp/log.txt', 'w').write('line 1\\n')\n"
                               "print(len(notes))\n")) != ERYX_OK ||
        (rc = run(sb, "run 2", "notes.append('continued')\nprint(notes)\n")) != ERYX_OK)
        goto out;

    /* A fork shares the session's memory copy-on-write and then diverges. */
    if ((rc = eryx_sandbox_fork(sb, &fork)) != ERYX_OK ||
        (rc = run(fork, "fork", "notes.append('forked')\nprint(notes)\n")) != ERYX_OK ||
        (rc = run(sb, "original", "print(notes)\n")) != ERYX_OK)
        goto out;

    /* Saved with its /tmp, loaded into a fresh sandbox. */
    if ((rc = eryx_sandbox_save(sb, path)) != ERYX_OK ||
        (rc = eryx_sandbox_load(rt, NULL, path, &loaded)) != ERYX_OK ||
        (rc = run(loaded, "loaded", "print(notes, open('/tmp/log.txt').read().strip())\n"))
            != ERYX_OK)
        goto out;

    /* Back to the pool: reset, so the next user sees none of it. */
    eryx_pool_release(pool, sb);
    sb = NULL;
    if ((rc = eryx_pool_acquire(pool, 1000000000u, &sb)) == ERYX_OK)
        rc = run(sb, "next user", "import os\nprint('notes' in globals(), os.listdir('/tmp'))\n");
out:
    if (rc != ERYX_OK)
        fprintf(stderr, "failed: %s %s\n", eryx_errmsg(NULL), sb ? eryx_errmsg(sb) : "");
    if (sb)
        eryx_pool_release(pool, sb);
    eryx_sandbox_free(fork);
    eryx_sandbox_free(loaded);
    return rc;
}

int main(int argc, char **argv)
{
    char tmp[] = "/tmp/eryx-session-XXXXXX";
    const char *path = argc > 1 ? argv[1] : NULL;
    if (!path) {
        int fd = mkstemp(tmp);
        if (fd < 0)
            return 1;
        close(fd);
        path = tmp;
    }
    eryx_runtime *rt = NULL;
    eryx_pool *pool = NULL;
    int rc = eryx_runtime_new(NULL, &rt);
    if (rc == ERYX_OK)
        rc = eryx_pool_new(rt, NULL, &pool);
    if (rc == ERYX_OK)
        rc = demo(rt, pool, path);
    else
        fprintf(stderr, "setup failed: %s (%s)\n", eryx_errstr(rc), eryx_errmsg(NULL));
    eryx_pool_free(pool);
    eryx_runtime_free(rt);
    if (path == tmp)
        unlink(tmp);
    printf("status %s\n", rc == ERYX_OK ? "ok" : eryx_errstr(rc));
    return rc == ERYX_OK ? 0 : 1;
}
