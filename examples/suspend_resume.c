/*
 * Suspending code that waits on a slow host function, and resuming it later
 * in another sandbox (docs/journal.md): the sandbox's state from before the
 * execution and the execution's journal are kept as bytes (a server would
 * put them in a database), the first sandbox is gone, and a new one picks
 * up where the code waited: the calls already answered are not asked again,
 * and what the code drew (here a uuid4 ticket) is drawn the same again.
 */
#include <eryx.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHECK(rc, sb)                                                          \
    do {                                                                       \
        if ((rc) != ERYX_OK && (rc) != ERYX_PENDING) {                        \
            fprintf(stderr, "%s: %s\n", eryx_errstr(rc), eryx_errmsg(sb));    \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static const eryx_callback tools[] = {
    {.name = "price", .schema = "{\"properties\": {\"item\": {}}}"},
    {.name = "approve", .schema = "{\"properties\": {\"total\": {}, \"ticket\": {}}}"},
};

static const char code[] = "import asyncio, uuid\n"
                           "a, b = await asyncio.gather(price('tea'), price('cake'))\n"
                           "total = (a + b) * discount\n"
                           "ok = await approve(total, ticket=str(uuid.uuid4()))\n"
                           "print('total', total, 'approved' if ok else 'refused')\n";

/* A session as bytes, through a memfd (eryx_sandbox_save_fd). */
static void *session_bytes(eryx_sandbox *sb, size_t *len)
{
    int fd = memfd_create("session", MFD_CLOEXEC);
    CHECK(eryx_sandbox_save_fd(sb, fd), sb);
    *len = (size_t)lseek(fd, 0, SEEK_CUR);
    void *p = malloc(*len);
    if (!p || pread(fd, p, *len, 0) != (ssize_t)*len)
        exit(1);
    close(fd);
    return p;
}

static eryx_sandbox *sandbox_from(eryx_runtime *rt, const void *p, size_t len)
{
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = tools;
    cfg.n_callbacks = 2;
    int fd = memfd_create("session", MFD_CLOEXEC);
    if (write(fd, p, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0)
        exit(1);
    eryx_sandbox *sb = NULL;
    CHECK(eryx_sandbox_load_fd(rt, &cfg, fd, &sb), NULL);
    close(fd);
    return sb;
}

/* Steps until the guest waits with new calls; answers prices at once and
 * returns the first call it cannot answer now (an approval), or NULL when
 * the code finished. */
static eryx_call *run_until_approval(eryx_exec *ex, int *rc)
{
    while ((*rc = eryx_exec_step(ex)) == ERYX_PENDING) {
        eryx_call *c;
        while ((c = eryx_exec_next_call(ex))) {
            if (strcmp(eryx_call_name(c), "approve") == 0)
                return c;
            printf("asked: price %s\n", eryx_call_args(c));
            const char *v = strstr(eryx_call_args(c), "tea") ? "3" : "5";
            eryx_call_reply(c, v, 1);
        }
    }
    return NULL;
}

int main(void)
{
    eryx_runtime *rt = NULL;
    CHECK(eryx_runtime_new(NULL, &rt), NULL);

    /* Monday: a session with state, then the request. */
    size_t state_len, journal_len;
    void *state, *journal_bytes;
    char asked[256];
    {
        eryx_sandbox_config cfg;
        eryx_sandbox_config_default(&cfg);
        cfg.callbacks = tools;
        cfg.n_callbacks = 2;
        eryx_sandbox *sb = NULL;
        CHECK(eryx_sandbox_new(rt, &cfg, &sb), NULL);
        eryx_result *r = NULL;
        CHECK(eryx_sandbox_run(sb, "discount = 0.5", 14, &r), sb);
        eryx_result_free(r);
        state = session_bytes(sb, &state_len); /* before the execution */

        eryx_journal *j = NULL;
        CHECK(eryx_journal_new(&j), NULL);
        eryx_exec *ex = NULL;
        CHECK(eryx_exec_start_journaled(sb, code, strlen(code), NULL, j, &ex), sb);
        int rc;
        eryx_call *approval = run_until_approval(ex, &rc);
        snprintf(asked, sizeof asked, "%s", eryx_call_args(approval));
        printf("waiting for approval of %s: suspended\n", asked);
        CHECK(eryx_exec_suspend(ex), sb);
        CHECK(eryx_journal_save(j, &journal_bytes, &journal_len), NULL);
        printf("kept: %zu bytes of state, %zu of journal (%zu calls, %zu pending)\n",
               state_len, journal_len, eryx_journal_count(j), eryx_journal_pending(j));
        eryx_journal_free(j);
        eryx_sandbox_free(sb); /* the approval's call handle is dead too */
    }

    /* Tuesday, maybe another process: the approval came. */
    eryx_sandbox *sb = sandbox_from(rt, state, state_len);
    eryx_journal *j = NULL;
    CHECK(eryx_journal_load(journal_bytes, journal_len, &j), NULL);
    eryx_exec *ex = NULL;
    CHECK(eryx_exec_start_journaled(sb, NULL, 0, NULL, j, &ex), sb);
    int rc;
    eryx_call *approval = run_until_approval(ex, &rc); /* no price asked again */
    if (!approval) { /* ERYX_DIVERGED: the code did not repeat its calls */
        fprintf(stderr, "%s: %s\n", eryx_errstr(rc), eryx_errmsg(sb));
        return 1;
    }
    printf("resumed at approval of %s (%s ticket)\n", eryx_call_args(approval),
           strcmp(asked, eryx_call_args(approval)) == 0 ? "the same" : "another");
    eryx_call_reply(approval, "true", 4);
    if (run_until_approval(ex, &rc) != NULL)
        return 1;
    eryx_result *r = NULL;
    CHECK(eryx_exec_finish(ex, &r), sb);
    printf("%sstatus %s\n", r->out, eryx_errstr(rc));
    eryx_result_free(r);
    eryx_journal_free(j);
    eryx_sandbox_free(sb);
    free(state);
    eryx_free(journal_bytes);
    return eryx_runtime_free(rt) == ERYX_OK ? 0 : 1;
}
