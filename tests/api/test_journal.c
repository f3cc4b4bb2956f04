/*
 * Callback journals (eryx_exec_start_journaled, eryx_exec_suspend, the
 * journal's bytes): an execution suspended while it waits on a call is
 * resumed in another sandbox restored to the state from before it, the
 * calls already answered are replayed by eryx and only the unanswered one
 * reaches the embedder; code that calls something else is detected; bytes
 * that are not a whole journal are refused.
 */
#include <eryx.h>
#include <pthread.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "../check.h"

static eryx_runtime *rt;

/* No handlers: these tests drive the non-blocking API themselves. */
static const eryx_callback callbacks[] = {
    {.name = "get", .schema = "{\"properties\": {\"key\": {\"type\": \"string\"}}}"},
};

static eryx_sandbox *new_sandbox(uint32_t max_calls)
{
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = callbacks;
    cfg.n_callbacks = 1;
    cfg.max_callbacks = max_calls;
    eryx_sandbox *sb = NULL;
    int rc = eryx_sandbox_new(rt, &cfg, &sb);
    if (rc != ERYX_OK)
        fprintf(stderr, "eryx_sandbox_new: %s\n", eryx_errmsg(NULL));
    REQUIRE(rc == ERYX_OK);
    return sb;
}

static void run_ok(eryx_sandbox *sb, const char *code)
{
    eryx_result *r = NULL;
    int rc = eryx_sandbox_run(sb, code, strlen(code), &r);
    if (rc != ERYX_OK)
        fprintf(stderr, "%s: %s\n", eryx_errstr(rc), r ? r->err : eryx_errmsg(sb));
    REQUIRE_INT(rc, ERYX_OK);
    eryx_result_free(r);
}

/* The state a sandbox had before an execution, as a memfd session. */
static int save_state(eryx_sandbox *sb)
{
    int fd = memfd_create("session", MFD_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE_INT(eryx_sandbox_save_fd(sb, fd), ERYX_OK);
    return fd;
}

static eryx_sandbox *restore_state(int fd)
{
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = callbacks;
    cfg.n_callbacks = 1;
    eryx_sandbox *sb = NULL;
    REQUIRE(lseek(fd, 0, SEEK_SET) == 0);
    int rc = eryx_sandbox_load_fd(rt, &cfg, fd, &sb);
    if (rc != ERYX_OK)
        fprintf(stderr, "eryx_sandbox_load_fd: %s\n", eryx_errmsg(NULL));
    REQUIRE_INT(rc, ERYX_OK);
    return sb;
}

/* Steps until the execution waits with new calls (or ends): the calls in
 * *calls, their count returned; *rc the last step's status. */
static int step_to_calls(eryx_exec *ex, eryx_call **calls, int max, int *rc)
{
    int n = 0;
    while ((*rc = eryx_exec_step(ex)) == ERYX_PENDING) {
        eryx_call *c;
        while ((c = eryx_exec_next_call(ex)) && n < max)
            calls[n++] = c;
        if (n)
            return n;
        while (!eryx_exec_ready(ex))
            usleep(200);
    }
    return n;
}

/* Finishes an execution whose last step gave ERYX_OK: its output and how
 * many calls reached the embedder. */
static void finish_ok(eryx_exec *ex, const char *out, uint32_t n_callbacks)
{
    eryx_result *r = NULL;
    CHECK_INT(eryx_exec_finish(ex, &r), ERYX_OK);
    REQUIRE(r != NULL);
    CHECK_STR(r->out, out);
    CHECK_INT(r->n_callbacks, n_callbacks);
    eryx_result_free(r);
}

static void reply_str(eryx_call *c, const char *s)
{
    char buf[128];
    snprintf(buf, sizeof buf, "\"%s\"", s);
    CHECK_INT(eryx_call_reply(c, buf, strlen(buf)), ERYX_OK);
}

/* An execution of code in sb after setup ran there, recording into a new
 * journal (*j), stepped until its first calls (in calls, *n of them). */
static eryx_exec *start_recording(eryx_sandbox *sb, const char *setup, const char *code,
                                  eryx_journal **j, eryx_call **calls, int max, int *n)
{
    run_ok(sb, setup);
    REQUIRE_INT(eryx_journal_new(j), ERYX_OK);
    eryx_exec *ex = NULL;
    REQUIRE_INT(eryx_exec_start_journaled(sb, code, strlen(code), NULL, *j, &ex), ERYX_OK);
    int rc;
    *n = step_to_calls(ex, calls, max, &rc);
    REQUIRE_INT(rc, ERYX_PENDING);
    return ex;
}

/* a and b gathered, then one call made of their replies, then one that
 * fails: a run with four calls and the outcomes of each kind. */
static const char code3[] = "import asyncio\n"
                            "a, b = await asyncio.gather(get(key=prefix + 'a'), get(key='b'))\n"
                            "try:\n"
                            "    await get(key='fails')\n"
                            "except CallbackError as e:\n"
                            "    failure = f'{e.kind}: {e}'\n"
                            "c = await get(key=a + b)\n"
                            "print(a, b, failure, c)\n"
                            "result = c\n";

/* Records code3 in a sandbox whose state is saved first (*state_fd),
 * suspends it while its last call waits, and returns the journal's bytes. */
static void *record_and_suspend(int *state_fd, size_t *len)
{
    eryx_sandbox *sb = new_sandbox(0);
    run_ok(sb, "prefix = 'p-'");
    *state_fd = save_state(sb);
    eryx_journal *j = NULL;
    eryx_call *calls[4];
    int rc, n;
    eryx_exec *ex = start_recording(sb, "pass", code3, &j, calls, 4, &n);
    REQUIRE_INT(n, 2); /* the gather's two, in one step */
    CHECK_STR(eryx_call_args(calls[0]), "{\"key\":\"p-a\"}");
    CHECK_STR(eryx_call_args(calls[1]), "{\"key\":\"b\"}");
    /* While it records, the journal is the execution's. */
    void *data = NULL;
    CHECK_INT(eryx_journal_save(j, &data, len), ERYX_MISUSE);
    CHECK_INT(eryx_journal_count(j), 0);
    eryx_sandbox *other = new_sandbox(0);
    eryx_exec *ex2 = NULL;
    CHECK_INT(eryx_exec_start_journaled(other, NULL, 0, NULL, j, &ex2), ERYX_MISUSE);
    eryx_sandbox_free(other);
    /* Answered out of order: the journal keeps the order of issue. */
    reply_str(calls[1], "y");
    reply_str(calls[0], "x");
    n = step_to_calls(ex, calls, 4, &rc);
    REQUIRE_INT(n, 1);
    CHECK_STR(eryx_call_args(calls[0]), "{\"key\":\"fails\"}");
    CHECK_INT(eryx_call_fail(calls[0], ERYX_CALL_INVALID_ARGS, "no such key"), ERYX_OK);
    n = step_to_calls(ex, calls, 4, &rc);
    REQUIRE_INT(n, 1);
    CHECK_STR(eryx_call_args(calls[0]), "{\"key\":\"xy\"}");
    eryx_call *waiting = calls[0];

    CHECK_INT(eryx_exec_suspend(ex), ERYX_OK);
    CHECK(eryx_sandbox_is_dead(sb));
    CHECK_INT(eryx_call_reply(waiting, "\"late\"", 6), ERYX_NOTFOUND); /* not recorded */
    CHECK_INT(eryx_journal_count(j), 4);
    CHECK_INT(eryx_journal_pending(j), 1);
    REQUIRE_INT(eryx_journal_save(j, &data, len), ERYX_OK);
    eryx_journal_free(j);
    eryx_sandbox_free(sb);
    return data;
}

/* record_and_suspend's journal, through its bytes. */
static eryx_journal *suspended_journal(int *state_fd)
{
    size_t len;
    void *data = record_and_suspend(state_fd, &len);
    eryx_journal *j = NULL;
    REQUIRE_INT(eryx_journal_load(data, len, &j), ERYX_OK);
    eryx_free(data);
    return j;
}

TEST_CASE(test_suspend_and_resume)
{
    int fd;
    eryx_journal *j = suspended_journal(&fd);
    CHECK_INT(eryx_journal_count(j), 4);
    CHECK_INT(eryx_journal_pending(j), 1);

    /* Elsewhere: the state from before the execution, then the journal. */
    eryx_sandbox *sb = restore_state(fd);
    close(fd);
    eryx_exec *ex = NULL;
    REQUIRE_INT(eryx_exec_start_journaled(sb, NULL, 0, NULL, j, &ex), ERYX_OK);
    eryx_call *calls[4];
    int rc, n = step_to_calls(ex, calls, 4, &rc);
    /* The three answered calls were replayed: only the pending one comes. */
    REQUIRE_INT(rc, ERYX_PENDING);
    REQUIRE_INT(n, 1);
    CHECK_INT(eryx_exec_replayed(ex), 3);
    CHECK_STR(eryx_call_name(calls[0]), "get");
    CHECK_STR(eryx_call_args(calls[0]), "{\"key\":\"xy\"}");
    reply_str(calls[0], "z");
    n = step_to_calls(ex, calls, 4, &rc);
    CHECK_INT(n, 0);
    CHECK_INT(rc, ERYX_OK);
    finish_ok(ex, "x y invalid_arguments: no such key z\n", 1); /* one call surfaced */
    /* The answer was recorded: the whole journal now replays alone. */
    CHECK_INT(eryx_journal_count(j), 4);
    CHECK_INT(eryx_journal_pending(j), 0);
    eryx_sandbox_free(sb);
    eryx_journal_free(j);
}

/* The same journal twice: the second replay surfaces nothing. */
TEST_CASE(test_replay_complete_journal)
{
    int fd;
    eryx_journal *j = suspended_journal(&fd);
    for (int round = 0; round < 2; round++) {
        eryx_sandbox *sb = restore_state(fd);
        eryx_exec *ex = NULL;
        REQUIRE_INT(eryx_exec_start_journaled(sb, code3, strlen(code3), NULL, j, &ex), ERYX_OK);
        eryx_call *calls[4];
        int rc, n = step_to_calls(ex, calls, 4, &rc);
        if (round == 0) {
            REQUIRE_INT(n, 1);
            reply_str(calls[0], "w");
            n = step_to_calls(ex, calls, 4, &rc);
        }
        CHECK_INT(n, 0);
        CHECK_INT(rc, ERYX_OK);
        CHECK_INT(eryx_exec_replayed(ex), round == 0 ? 3 : 4);
        finish_ok(ex, "x y invalid_arguments: no such key w\n", round == 0 ? 1 : 0);
        eryx_sandbox_free(sb);
    }
    close(fd);
    eryx_journal_free(j);
}

/* A timeout is an outcome too: replayed as one, at once. */
TEST_CASE(test_timeout_replayed)
{
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.callbacks = callbacks;
    cfg.n_callbacks = 1;
    cfg.callback_timeout_ns = 50 * 1000000ull;
    eryx_sandbox *sb = NULL;
    REQUIRE_INT(eryx_sandbox_new(rt, &cfg, &sb), ERYX_OK);
    const char *code = "try:\n"
                       "    await get(key='slow')\n"
                       "except CallbackError as e:\n"
                       "    print(e.kind)\n"
                       "print(await get(key='next'))\n";
    eryx_journal *j = NULL;
    eryx_call *calls[2];
    int rc, n;
    eryx_exec *ex = start_recording(sb, "pass", code, &j, calls, 2, &n);
    REQUIRE_INT(n, 1);
    CHECK_INT(eryx_exec_replayed(ex), 0); /* a recording replays nothing */
    CHECK_INT(eryx_exec_replayed(NULL), 0);
    eryx_call *slow = calls[0];
    /* Nobody answers: the step after the deadline times it out. */
    while ((rc = eryx_exec_step(ex)) == ERYX_PENDING && !(calls[0] = eryx_exec_next_call(ex)))
        usleep(5000);
    REQUIRE_INT(rc, ERYX_PENDING);
    CHECK_STR(eryx_call_args(calls[0]), "{\"key\":\"next\"}");
    CHECK_INT(eryx_call_reply(slow, "1", 1), ERYX_NOTFOUND);
    CHECK_INT(eryx_exec_suspend(ex), ERYX_OK);
    CHECK_INT(eryx_journal_pending(j), 1);
    eryx_sandbox_free(sb);

    REQUIRE_INT(eryx_sandbox_new(rt, &cfg, &sb), ERYX_OK);
    REQUIRE_INT(eryx_exec_start_journaled(sb, NULL, 0, NULL, j, &ex), ERYX_OK);
    n = step_to_calls(ex, calls, 2, &rc);
    REQUIRE_INT(n, 1);
    CHECK_INT(eryx_exec_replayed(ex), 1); /* the timeout */
    CHECK_STR(eryx_call_args(calls[0]), "{\"key\":\"next\"}");
    CHECK_INT(eryx_call_reply(calls[0], "2", 1), ERYX_OK);
    CHECK_INT(eryx_exec_step(ex), ERYX_OK);
    finish_ok(ex, "timeout\n2\n", 1);
    eryx_sandbox_free(sb);
    eryx_journal_free(j);
}

/* Records `x = await get(key=k); await get(key=x)` with k = 'a', answers
 * the first call and suspends on the second. */
static eryx_journal *record_two(const char *code)
{
    eryx_sandbox *sb = new_sandbox(0);
    eryx_journal *j = NULL;
    eryx_call *calls[2];
    int rc, n;
    eryx_exec *ex = start_recording(sb, "k = 'a'", code, &j, calls, 2, &n);
    REQUIRE_INT(n, 1);
    reply_str(calls[0], "b");
    n = step_to_calls(ex, calls, 2, &rc);
    REQUIRE_INT(n, 1);
    CHECK_INT(eryx_exec_suspend(ex), ERYX_OK);
    eryx_sandbox_free(sb);
    CHECK_INT(eryx_journal_count(j), 2);
    return j;
}

/* Replays record_two's journal where k is 'other': its first call differs,
 * so the replay diverges before any call reaches the embedder. The
 * execution (to finish), its sandbox in *sb. */
static eryx_exec *replay_other_k(eryx_journal *j, eryx_sandbox **sb)
{
    *sb = new_sandbox(0);
    run_ok(*sb, "k = 'other'");
    eryx_exec *ex = NULL;
    REQUIRE_INT(eryx_exec_start_journaled(*sb, NULL, 0, NULL, j, &ex), ERYX_OK);
    eryx_call *calls[2];
    int rc, n = step_to_calls(ex, calls, 2, &rc);
    CHECK_INT(n, 0);
    CHECK_INT(rc, ERYX_DIVERGED);
    return ex;
}

TEST_CASE(test_divergence)
{
    const char *code = "x = await get(key=k)\nprint('got', x)\nawait get(key=x)\n";
    eryx_journal *j = record_two(code);
    eryx_sandbox *sb = NULL;
    eryx_exec *ex = replay_other_k(j, &sb);
    eryx_call *calls[2];
    int rc, n;
    CHECK_INT(eryx_exec_replayed(ex), 0);
    CHECK_CONTAINS(eryx_errmsg(sb), "did not repeat the journal's calls");
    CHECK_CONTAINS(eryx_errmsg(sb), "'get' with other arguments");
    CHECK_CONTAINS(eryx_errstr(ERYX_DIVERGED), "ERYX_DIVERGED");
    eryx_result *r = NULL;
    CHECK_INT(eryx_exec_finish(ex, &r), ERYX_DIVERGED);
    REQUIRE(r != NULL);
    CHECK_STR(r->out, ""); /* stopped at the call, before the print */
    eryx_result_free(r);
    CHECK(eryx_sandbox_is_dead(sb));
    /* The journal is unchanged: replayed faithfully, it still works. */
    CHECK_INT(eryx_journal_count(j), 2);
    CHECK_INT(eryx_journal_pending(j), 1);
    eryx_sandbox_free(sb);
    sb = new_sandbox(0);
    run_ok(sb, "k = 'a'");
    REQUIRE_INT(eryx_exec_start_journaled(sb, NULL, 0, NULL, j, &ex), ERYX_OK);
    n = step_to_calls(ex, calls, 2, &rc);
    REQUIRE_INT(n, 1);
    CHECK_STR(eryx_call_args(calls[0]), "{\"key\":\"b\"}");
    reply_str(calls[0], "c");
    CHECK_INT(eryx_exec_step(ex), ERYX_OK);
    finish_ok(ex, "got b\n", 1);
    eryx_sandbox_free(sb);
    eryx_journal_free(j);
}

/* A replay that diverges leaves the draw records as they were: what it
 * drew past them belongs to a path the recorded run did not take. */
TEST_CASE(test_divergence_keeps_draws)
{
    const char *code = "import os, time\nif k != 'a':\n    os.urandom(64); time.time()\n"
                       "x = await get(key=k)\nawait get(key=x)\n";
    eryx_journal *j = record_two(code);
    void *before = NULL, *after = NULL;
    size_t len_before = 0, len_after = 0;
    REQUIRE_INT(eryx_journal_save(j, &before, &len_before), ERYX_OK);
    eryx_sandbox *sb = NULL;
    eryx_exec *ex = replay_other_k(j, &sb);
    CHECK_INT(eryx_exec_finish(ex, NULL), ERYX_DIVERGED);
    REQUIRE_INT(eryx_journal_save(j, &after, &len_after), ERYX_OK);
    CHECK_INT(len_after, len_before);
    CHECK(len_after == len_before && memcmp(before, after, len_before) == 0);
    eryx_free(before);
    eryx_free(after);
    eryx_sandbox_free(sb);
    eryx_journal_free(j);
}

/* Code that ends before it made the journal's calls diverged too. */
TEST_CASE(test_divergence_finished_early)
{
    const char *code = "if k == 'a':\n    x = await get(key=k)\n    await get(key=x)\n"
                       "print('done')\n";
    eryx_journal *j = record_two(code);
    eryx_sandbox *sb = new_sandbox(0);
    run_ok(sb, "k = 'z'");
    eryx_exec *ex = NULL;
    REQUIRE_INT(eryx_exec_start_journaled(sb, NULL, 0, NULL, j, &ex), ERYX_OK);
    CHECK_INT(eryx_exec_step(ex), ERYX_DIVERGED);
    CHECK_CONTAINS(eryx_errmsg(sb), "finished after 0 of its 2 calls");
    eryx_result *r = NULL;
    CHECK_INT(eryx_exec_finish(ex, &r), ERYX_DIVERGED);
    REQUIRE(r != NULL);
    CHECK_STR(r->out, "done\n");
    eryx_result_free(r);
    CHECK(!eryx_sandbox_is_dead(sb)); /* the code ended normally */
    eryx_sandbox_free(sb);
    eryx_journal_free(j);
}

TEST_CASE(test_other_code_refused)
{
    const char *code = "x = await get(key=k)\nawait get(key=x)\n";
    eryx_journal *j = record_two(code);
    eryx_sandbox *sb = new_sandbox(0);
    run_ok(sb, "k = 'a'");
    eryx_exec *ex = NULL;
    CHECK_INT(eryx_exec_start_journaled(sb, "print(1)", 8, NULL, j, &ex), ERYX_INVALID);
    CHECK(ex == NULL);
    CHECK_CONTAINS(eryx_errmsg(sb), "code differs from the journal's");
    eryx_run_options o;
    eryx_run_options_default(&o);
    o.mode = ERYX_RUN_INTERACTIVE;
    CHECK_INT(eryx_exec_start_journaled(sb, NULL, 0, &o, j, &ex), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(sb), "run mode");
    eryx_run_options_default(&o);
    o.filename = "other.py";
    CHECK_INT(eryx_exec_start_journaled(sb, NULL, 0, &o, j, &ex), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(sb), "filename");
    /* A sandbox allowing fewer calls than the journal holds. */
    eryx_sandbox *small = new_sandbox(1);
    run_ok(small, "k = 'a'");
    CHECK_INT(eryx_exec_start_journaled(small, NULL, 0, NULL, j, &ex), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(small), "max_callbacks");
    eryx_sandbox_free(small);
    /* An empty journal needs code; nothing was refused into it. */
    eryx_journal *empty = NULL;
    REQUIRE_INT(eryx_journal_new(&empty), ERYX_OK);
    CHECK_INT(eryx_exec_start_journaled(sb, NULL, 0, NULL, empty, &ex), ERYX_INVALID);
    /* Not journaled: no suspend. */
    REQUIRE_INT(eryx_exec_start(sb, "1", 1, NULL, &ex), ERYX_OK);
    CHECK_INT(eryx_exec_suspend(ex), ERYX_INVALID);
    CHECK_INT(eryx_exec_step(ex), ERYX_OK);
    CHECK_INT(eryx_exec_finish(ex, NULL), ERYX_OK);
    /* Finished: suspend refuses, finish takes the result. */
    REQUIRE_INT(eryx_exec_start_journaled(sb, "2", 1, NULL, empty, &ex), ERYX_OK);
    CHECK_INT(eryx_exec_step(ex), ERYX_OK);
    CHECK_INT(eryx_exec_suspend(ex), ERYX_INVALID);
    CHECK_INT(eryx_exec_finish(ex, NULL), ERYX_OK);
    CHECK_INT(eryx_journal_count(empty), 0);
    eryx_journal_free(empty);
    eryx_sandbox_free(sb);
    eryx_journal_free(j);
}

/* The journal caps its entries at the sandbox's max_callbacks. */
TEST_CASE(test_entries_bounded)
{
    eryx_sandbox *sb = new_sandbox(3);
    const char *code = "import asyncio\n"
                       "r = await asyncio.gather(*(get(key=str(i)) for i in range(5)),\n"
                       "                         return_exceptions=True)\n"
                       "print([type(x).__name__ for x in r])\n";
    eryx_journal *j = NULL;
    eryx_call *calls[8];
    int rc, n;
    eryx_exec *ex = start_recording(sb, "pass", code, &j, calls, 8, &n);
    REQUIRE_INT(n, 3);
    for (int i = 0; i < n; i++)
        reply_str(calls[i], "v");
    n = step_to_calls(ex, calls, 8, &rc);
    CHECK_INT(rc, ERYX_OK);
    finish_ok(ex, "['str', 'str', 'str', 'CallbackError', 'CallbackError']\n", 3);
    CHECK_INT(eryx_journal_count(j), 3);
    eryx_sandbox_free(sb);
    eryx_journal_free(j);
}

TEST_CASE(test_bytes_refused)
{
    int fd;
    size_t len;
    uint8_t *data = record_and_suspend(&fd, &len);
    close(fd);
    eryx_journal *j = NULL;
    /* Every prefix is refused, with a reason. */
    for (size_t n = 0; n < len; n++) {
        CHECK_INT(eryx_journal_load(data, n, &j), ERYX_INVALID);
        CHECK(j == NULL);
    }
    CHECK_CONTAINS(eryx_errmsg(NULL), "journal bytes refused");
    /* So is every one-byte change (the checksum, or the magic). */
    uint8_t *copy = malloc(len + 1);
    REQUIRE(copy);
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, data, len);
        copy[i] ^= 0x20;
        CHECK_INT(eryx_journal_load(copy, len, &j), ERYX_INVALID);
    }
    /* And a trailing byte. */
    memcpy(copy, data, len);
    copy[len] = 0;
    CHECK_INT(eryx_journal_load(copy, len + 1, &j), ERYX_INVALID);
    CHECK_INT(eryx_journal_load("not a journal", 13, &j), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(NULL), "not an eryx journal");
    memcpy(copy, data, len);
    copy[7] = '9';
    CHECK_INT(eryx_journal_load(copy, len, &j), ERYX_INVALID);
    CHECK_CONTAINS(eryx_errmsg(NULL), "another format version");
    CHECK_INT(eryx_journal_load(NULL, 0, &j), ERYX_INVALID);
    CHECK_INT(eryx_journal_load(NULL, 1, &j), ERYX_MISUSE);
    /* The bytes round-trip exactly. */
    REQUIRE_INT(eryx_journal_load(data, len, &j), ERYX_OK);
    void *again = NULL;
    size_t again_len = 0;
    REQUIRE_INT(eryx_journal_save(j, &again, &again_len), ERYX_OK);
    CHECK_INT(again_len, len);
    CHECK_MEM(again, data, len);
    eryx_free(again);
    eryx_journal_free(j);
    free(copy);
    eryx_free(data);
    CHECK_INT(eryx_journal_count(NULL), 0);
    eryx_journal_free(NULL);
}

/* ---- the order replies came in ------------------------------------------------ */

/* Each task's second call depends on when its first reply came: a replay
 * must deliver the recorded outcomes in the replies that delivered them,
 * or the calls come in another order (ERYX_DIVERGED). */
static const char code_order[] = "import asyncio\n"
                                 "order = []\n"
                                 "async def one(i):\n"
                                 "    a = await get(key=str(i))\n"
                                 "    order.append(i)\n"
                                 "    return await get(key=a + '!')\n"
                                 "r = await asyncio.gather(*(one(i) for i in range(4)))\n"
                                 "print(order, r)\n";

static const char *key_of(eryx_call *c)
{
    static char key[32];
    const char *a = eryx_call_args(c);
    const char *k = strstr(a, "\"key\":\"");
    REQUIRE(k);
    snprintf(key, sizeof key, "%s", k + 7);
    key[strcspn(key, "\"")] = '\0';
    return key;
}

/* Answers the four first calls last to first, one per step (each answer
 * makes its task issue its second call, which comes back from the step);
 * with suspend_after >= 0, suspends once that many were answered. */
static void record_reverse(eryx_sandbox *sb, eryx_journal **j, int suspend_after)
{
    eryx_call *first[4], *second[4], *calls[4];
    int rc, n;
    eryx_exec *ex = start_recording(sb, "pass", code_order, j, first, 4, &n);
    REQUIRE_INT(n, 4);
    for (int i = 3; i >= 0; i--) {
        if (3 - i == suspend_after) {
            CHECK_INT(eryx_exec_suspend(ex), ERYX_OK);
            return;
        }
        reply_str(first[i], key_of(first[i]));
        n = step_to_calls(ex, calls, 4, &rc);
        REQUIRE_INT(n, 1);
        second[i] = calls[0];
        char want[3] = {(char)('0' + i), '!', 0};
        CHECK_STR(key_of(second[i]), want);
    }
    for (int i = 0; i < 4; i++)
        reply_str(second[i], key_of(second[i]));
    n = step_to_calls(ex, calls, 4, &rc);
    CHECK_INT(rc, ERYX_OK);
    finish_ok(ex, "[3, 2, 1, 0] ['0!', '1!', '2!', '3!']\n", 8);
}

/* Journal bytes round trip (what a server keeps). */
static eryx_journal *through_bytes(eryx_journal *j)
{
    void *data = NULL;
    size_t len = 0;
    REQUIRE_INT(eryx_journal_save(j, &data, &len), ERYX_OK);
    eryx_journal_free(j);
    REQUIRE_INT(eryx_journal_load(data, len, &j), ERYX_OK);
    eryx_free(data);
    return j;
}

TEST_CASE(test_replay_keeps_reply_order)
{
    eryx_sandbox *sb = new_sandbox(0);
    eryx_journal *j = NULL;
    record_reverse(sb, &j, -1);
    eryx_sandbox_free(sb);
    j = through_bytes(j);
    CHECK_INT(eryx_journal_count(j), 8);
    sb = new_sandbox(0);
    eryx_exec *ex = NULL;
    REQUIRE_INT(eryx_exec_start_journaled(sb, NULL, 0, NULL, j, &ex), ERYX_OK);
    eryx_call *calls[4];
    int rc, n = step_to_calls(ex, calls, 4, &rc);
    if (rc != ERYX_OK)
        fprintf(stderr, "%s\n", eryx_errmsg(sb));
    CHECK_INT(n, 0);
    CHECK_INT(rc, ERYX_OK);
    finish_ok(ex, "[3, 2, 1, 0] ['0!', '1!', '2!', '3!']\n", 0);
    eryx_sandbox_free(sb);
    eryx_journal_free(j);
}

/* Suspended after two of the four first replies: the resumed run surfaces
 * the unanswered calls in the order the first run issued them, and the
 * replies the embedder gives early wait for the recorded ones. */
TEST_CASE(test_resume_keeps_reply_order)
{
    eryx_sandbox *sb = new_sandbox(0);
    eryx_journal *j = NULL;
    record_reverse(sb, &j, 2);
    eryx_sandbox_free(sb);
    j = through_bytes(j);
    CHECK_INT(eryx_journal_count(j), 6); /* 4 first calls, "3!" and "2!" */
    CHECK_INT(eryx_journal_pending(j), 4);
    sb = new_sandbox(0);
    eryx_exec *ex = NULL;
    REQUIRE_INT(eryx_exec_start_journaled(sb, NULL, 0, NULL, j, &ex), ERYX_OK);
    /* Everything surfaced, in order, answered at once (the replies to "0"
     * and "1" come before the recorded ones to "3" and "2" were given
     * back: they must wait for them). */
    char seen[128] = "";
    int rc, surfaced = 0;
    while ((rc = eryx_exec_step(ex)) == ERYX_PENDING) {
        eryx_call *c;
        while ((c = eryx_exec_next_call(ex))) {
            strcat(seen, key_of(c));
            strcat(seen, " ");
            reply_str(c, key_of(c));
            surfaced++;
        }
    }
    CHECK_INT(rc, ERYX_OK);
    CHECK_STR(seen, "0 1 3! 2! 0! 1! ");
    CHECK_INT(surfaced, 6);
    finish_ok(ex, "[3, 2, 0, 1] ['0!', '1!', '2!', '3!']\n", 6);
    CHECK_INT(eryx_journal_count(j), 8);
    CHECK_INT(eryx_journal_pending(j), 0);
    eryx_sandbox_free(sb);
    eryx_journal_free(j);
}

/* ---- replies on other threads ------------------------------------------------ */

static void *reply_from_thread(void *arg)
{
    eryx_call *c = arg;
    usleep(500);
    char buf[64];
    snprintf(buf, sizeof buf, "\"%llu\"", (unsigned long long)eryx_call_id(c));
    eryx_call_reply(c, buf, strlen(buf));
    return NULL;
}

/* Replies record on their threads while the stepping thread appends the
 * guest's next calls (the entries array grows under them); the journal
 * then replays alone, to the same output. */
TEST_CASE(test_replies_on_threads)
{
    const char *code = "import asyncio\n"
                       "async def one(i):\n"
                       "    a = await get(key=str(i))\n"
                       "    return await get(key=a + '!')\n"
                       "r = await asyncio.gather(*(one(i) for i in range(24)))\n"
                       "print(len(r), len(set(r)))\n";
    eryx_sandbox *sb = new_sandbox(0);
    eryx_journal *j = NULL;
    REQUIRE_INT(eryx_journal_new(&j), ERYX_OK);
    eryx_exec *ex = NULL;
    REQUIRE_INT(eryx_exec_start_journaled(sb, code, strlen(code), NULL, j, &ex), ERYX_OK);
    pthread_t threads[48];
    int n_threads = 0, rc;
    while ((rc = eryx_exec_step(ex)) == ERYX_PENDING) {
        eryx_call *c;
        while ((c = eryx_exec_next_call(ex))) {
            REQUIRE(n_threads < 48);
            pthread_create(&threads[n_threads++], NULL, reply_from_thread, c);
        }
        while (!eryx_exec_ready(ex))
            usleep(100);
    }
    for (int i = 0; i < n_threads; i++)
        pthread_join(threads[i], NULL);
    CHECK_INT(rc, ERYX_OK);
    CHECK_INT(n_threads, 48);
    finish_ok(ex, "24 24\n", 48);
    CHECK_INT(eryx_journal_count(j), 48);
    CHECK_INT(eryx_journal_pending(j), 0);
    eryx_sandbox_free(sb);

    sb = new_sandbox(0);
    REQUIRE_INT(eryx_exec_start_journaled(sb, NULL, 0, NULL, j, &ex), ERYX_OK);
    CHECK_INT(eryx_exec_step(ex), ERYX_OK);
    finish_ok(ex, "24 24\n", 0);
    eryx_sandbox_free(sb);
    eryx_journal_free(j);
}

struct racer {
    eryx_call *call;
    int rc;
};

static void *reply_racing(void *arg)
{
    struct racer *r = arg;
    r->rc = eryx_call_reply(r->call, "\"raced\"", 7);
    return NULL;
}

/* A reply racing the suspend is recorded if and only if it was taken. */
TEST_CASE(test_reply_races_suspend)
{
    for (int round = 0; round < 20; round++) {
        eryx_sandbox *sb = new_sandbox(0);
        eryx_journal *j = NULL;
        eryx_call *calls[1];
        int n;
        eryx_exec *ex = start_recording(sb, "pass", "await get(key='k')", &j, calls, 1, &n);
        REQUIRE_INT(n, 1);
        struct racer r = {calls[0], -1};
        pthread_t t;
        pthread_create(&t, NULL, reply_racing, &r);
        if (round % 2)
            usleep(50);
        CHECK_INT(eryx_exec_suspend(ex), ERYX_OK);
        pthread_join(t, NULL);
        CHECK(r.rc == ERYX_OK || r.rc == ERYX_NOTFOUND);
        CHECK_INT(eryx_journal_count(j), 1);
        CHECK_INT(eryx_journal_pending(j), r.rc == ERYX_OK ? 0 : 1);
        eryx_journal_free(j);
        eryx_sandbox_free(sb);
    }
}

/* Code whose first call depends on what it drew from the host: random
 * (reseeded on a sandbox's first run), os.urandom, uuid4 and the wall
 * clock. Its second call depends on the first's reply. */
static const char code_draws[] = "import os, random, time, uuid\n"
                                  "drawn = f'{random.random()}|{uuid.uuid4()}|'"
                                  " f'{os.urandom(8).hex()}|{time.time()!r}'\n"
                                  "x = await get(key=drawn)\n"
                                  "await get(key=x + '!')\n"
                                  "print(x, len(os.urandom(4)))\n";

/* Records code_draws in sb (setup first, unless NULL), answers its first
 * call with "ok" and suspends while its second waits: the journal, through
 * its bytes, and the first call's arguments in args. */
static eryx_journal *record_draws(eryx_sandbox *sb, char *args, size_t cap)
{
    eryx_journal *j = NULL;
    eryx_call *calls[2];
    int rc, n;
    REQUIRE_INT(eryx_journal_new(&j), ERYX_OK);
    eryx_exec *ex = NULL;
    REQUIRE_INT(eryx_exec_start_journaled(sb, code_draws, strlen(code_draws), NULL, j, &ex),
                ERYX_OK);
    n = step_to_calls(ex, calls, 2, &rc);
    REQUIRE_INT(n, 1);
    snprintf(args, cap, "%s", eryx_call_args(calls[0]));
    reply_str(calls[0], "ok");
    n = step_to_calls(ex, calls, 2, &rc);
    REQUIRE_INT(n, 1);
    CHECK_STR(eryx_call_args(calls[0]), "{\"key\":\"ok!\"}");
    CHECK_INT(eryx_exec_suspend(ex), ERYX_OK);
    return through_bytes(j);
}

/* Replays j in sb: the first call is served from the journal, the second
 * surfaces with the recorded arguments, and the code finishes. */
static void replay_draws(eryx_sandbox *sb, eryx_journal *j)
{
    eryx_exec *ex = NULL;
    REQUIRE_INT(eryx_exec_start_journaled(sb, NULL, 0, NULL, j, &ex), ERYX_OK);
    eryx_call *calls[2];
    int rc, n = step_to_calls(ex, calls, 2, &rc);
    if (rc == ERYX_DIVERGED)
        fprintf(stderr, "diverged: %s\n", eryx_errmsg(sb));
    REQUIRE_INT(rc, ERYX_PENDING);
    REQUIRE_INT(n, 1);
    CHECK_INT(eryx_exec_replayed(ex), 1);
    CHECK_STR(eryx_call_args(calls[0]), "{\"key\":\"ok!\"}");
    reply_str(calls[0], "done");
    n = step_to_calls(ex, calls, 2, &rc);
    CHECK_INT(n, 0);
    CHECK_INT(rc, ERYX_OK);
    finish_ok(ex, "ok 4\n", 1);
}

/* What the code drew before a call is given back on replay, so the call is
 * the same: in a session that had run (no reseed then; the loaded copy
 * would reseed) and on a fresh sandbox's first run (reseeded then: the
 * replay reseeds from the recorded bytes). */
TEST_CASE(test_draws_replayed)
{
    char args[512], again[512];
    eryx_sandbox *sb = new_sandbox(0);
    run_ok(sb, "import random; random.random()");
    int fd = save_state(sb);
    eryx_journal *j = record_draws(sb, args, sizeof args);
    eryx_sandbox_free(sb);
    sb = restore_state(fd);
    close(fd);
    replay_draws(sb, j);
    eryx_sandbox_free(sb);
    eryx_journal_free(j);

    sb = new_sandbox(0); /* this execution is its first run */
    j = record_draws(sb, args, sizeof args);
    eryx_sandbox_free(sb);
    sb = new_sandbox(0);
    replay_draws(sb, j);
    eryx_sandbox_free(sb);
    eryx_journal_free(j);

    /* Not journaled, every sandbox draws its own: a second recording of
     * the same code in a fresh sandbox makes another first call. */
    sb = new_sandbox(0);
    j = record_draws(sb, again, sizeof again);
    CHECK(strcmp(args, again) != 0);
    eryx_sandbox_free(sb);
    eryx_journal_free(j);
}

/* The random record stops at 1 MiB: bytes drawn past it come from the host
 * on replay, and a call that depends on them diverges (detected). Within
 * the bound the same code replays. */
TEST_CASE(test_draws_bound)
{
    for (int big = 0; big < 2; big++) {
        char code[256];
        snprintf(code, sizeof code,
                 "import os, hashlib\n"
                 "h = hashlib.sha256(os.urandom(%d)).hexdigest()\n"
                 "await get(key=h)\n"
                 "await get(key='then')\n",
                 big ? 2 << 20 : 512 << 10);
        eryx_sandbox *sb = new_sandbox(0);
        run_ok(sb, "pass");
        int fd = save_state(sb);
        eryx_journal *j = NULL;
        eryx_call *calls[2];
        int rc, n;
        eryx_exec *ex = start_recording(sb, "pass", code, &j, calls, 2, &n);
        REQUIRE_INT(n, 1);
        reply_str(calls[0], "x");
        REQUIRE_INT(step_to_calls(ex, calls, 2, &rc), 1);
        CHECK_INT(eryx_exec_suspend(ex), ERYX_OK);
        eryx_sandbox_free(sb);
        j = through_bytes(j);
        sb = restore_state(fd);
        close(fd);
        REQUIRE_INT(eryx_exec_start_journaled(sb, NULL, 0, NULL, j, &ex), ERYX_OK);
        n = step_to_calls(ex, calls, 2, &rc);
        if (big) {
            CHECK_INT(rc, ERYX_DIVERGED);
            CHECK_INT(n, 0);
        } else {
            CHECK_INT(rc, ERYX_PENDING);
            REQUIRE_INT(n, 1);
            CHECK_STR(eryx_call_args(calls[0]), "{\"key\":\"then\"}");
        }
        eryx_exec_finish(ex, NULL);
        eryx_sandbox_free(sb);
        eryx_journal_free(j);
    }
}

/* A replay into a sandbox that still holds the image's generator reseeds
 * it even when the recorded run did not, from the host, not from the
 * record: the code's own draws still replay, and two such replays draw
 * differently afterwards, as two fresh sandboxes do. */
TEST_CASE(test_replay_never_shares_the_image_generator)
{
    eryx_sandbox *sb = new_sandbox(0);
    eryx_journal *j = NULL;
    eryx_call *calls[1];
    int rc, n;
    eryx_exec *ex = start_recording(sb, "pass", "import os\n"
                                    "print(await get(key=os.urandom(4).hex()))", &j, calls, 1, &n);
    REQUIRE_INT(n, 1);
    reply_str(calls[0], "b");
    REQUIRE_INT(step_to_calls(ex, calls, 1, &rc), 0);
    REQUIRE_INT(rc, ERYX_OK);
    CHECK_INT(eryx_exec_finish(ex, NULL), ERYX_OK);
    eryx_sandbox_free(sb);
    char drawn[2][64];
    for (int i = 0; i < 2; i++) {
        sb = new_sandbox(0);
        REQUIRE_INT(eryx_exec_start_journaled(sb, NULL, 0, NULL, j, &ex), ERYX_OK);
        REQUIRE_INT(step_to_calls(ex, calls, 1, &rc), 0);
        if (rc != ERYX_OK)
            fprintf(stderr, "replay %d: %s\n", i, eryx_errmsg(sb));
        CHECK_INT(rc, ERYX_OK);
        finish_ok(ex, "b\n", 0);
        eryx_result *r = NULL;
        REQUIRE_INT(eryx_sandbox_run(sb, "import random; print(random.random())", 37, &r),
                    ERYX_OK);
        snprintf(drawn[i], sizeof drawn[i], "%s", r->out);
        eryx_result_free(r);
        eryx_sandbox_free(sb);
    }
    CHECK(strcmp(drawn[0], drawn[1]) != 0);
    eryx_journal_free(j);
}

/* ---- the trees a replay holds ----------------------------------------------- */

/* Calls gathered, each answered with JSON the strict reader does not take
 * (a 19-digit integer), which a tree reads: 500,000 empty objects, 110 MiB
 * of tree (json_wide.c's estimate) in 1.5 MB. Two fit in the 256 MiB of
 * trees the host reads at once (ERYX_MAX_HELD_TREES), three do not. */
#define WIDE_CALLS 3
#define WIDE_OBJECTS 500000
#define STR_(x) #x
#define STR(x) STR_(x)
static const char code_wide[] =
    "import asyncio\n"
    "async def one(k):\n"
    "    return len(await get(key=k))\n"
    "print(await asyncio.gather(*[one(str(i)) for i in range(" STR(WIDE_CALLS) ")]))\n";

static char *wide_reply(size_t *len)
{
    char *s = malloc(3 * WIDE_OBJECTS + 32), *p = s;
    REQUIRE(s);
    *p++ = '[';
    for (int i = 0; i < WIDE_OBJECTS; i++, p += 3)
        memcpy(p, "{},", 3);
    p += sprintf(p, "1234567890123456789]");
    *len = (size_t)(p - s);
    return s;
}

/* The bytes of a journal of code_wide whose calls were answered one
 * reply at a time: each delivered in a batch of its own. */
static void *record_wide(size_t *len)
{
    eryx_sandbox *sb = new_sandbox(0);
    eryx_journal *j = NULL;
    eryx_call *calls[WIDE_CALLS];
    int n;
    eryx_exec *ex = start_recording(sb, "pass", code_wide, &j, calls, WIDE_CALLS, &n);
    REQUIRE_INT(n, WIDE_CALLS);
    size_t reply_len;
    char *reply = wide_reply(&reply_len);
    for (int i = 0; i < WIDE_CALLS; i++) {
        REQUIRE_INT(eryx_call_reply(calls[i], reply, reply_len), ERYX_OK);
        while (!eryx_exec_ready(ex))
            usleep(200);
        REQUIRE_INT(eryx_exec_step(ex), i < WIDE_CALLS - 1 ? ERYX_PENDING : ERYX_OK);
    }
    free(reply);
    CHECK_INT(eryx_exec_finish(ex, NULL), ERYX_OK);
    eryx_sandbox_free(sb);
    void *data = NULL;
    REQUIRE_INT(eryx_journal_save(j, &data, len), ERYX_OK);
    eryx_journal_free(j);
    return data;
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites the journal bytes as a client could: every entry in batch 1,
 * the checksum made again (docs/journal.md, "The bytes"). */
static void one_batch(uint8_t *p, size_t len)
{
    uint32_t n = get_le32(p + 20), flen = get_le32(p + 24);
    size_t at = 40 + (flen == UINT32_MAX ? 0 : flen) + (size_t)(get_le32(p + 32));
    for (uint32_t i = 0; i < n; i++) {
        REQUIRE(at + 20 <= len);
        REQUIRE(p[at] == 1); /* answered */
        put_le(p + at + 16, 1, 4);
        at += 20 + (size_t)get_le32(p + at + 4) + get_le32(p + at + 8) + get_le32(p + at + 12);
    }
    put_le(p + 8, XXH3_64bits(p + 16, len - 16), 8);
}

/* A replayed outcome's tree counts with the run's others, as a live
 * reply's does, from its batch's delivery until the guest has it: the
 * honest journal replays (one tree at a time), the same calls forged into
 * one batch end the replay as diverged instead of holding 330 MiB of
 * trees (before, every replayed outcome was prepared at the guest's call
 * and held uncounted: 256 MiB of journal could hold 20 GB). */
TEST_CASE(test_replayed_trees_bounded)
{
    size_t len;
    uint8_t *data = record_wide(&len);
    char out[16 * WIDE_CALLS + 8] = "[";
    for (int i = 0; i < WIDE_CALLS; i++)
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%d", i ? ", " : "",
                 WIDE_OBJECTS + 1);
    strcat(out, "]\n");
    for (int forged = 0; forged < 2; forged++) {
        if (forged)
            one_batch(data, len);
        eryx_journal *j = NULL;
        REQUIRE_INT(eryx_journal_load(data, len, &j), ERYX_OK);
        eryx_sandbox *sb = new_sandbox(0);
        eryx_exec *ex = NULL;
        REQUIRE_INT(eryx_exec_start_journaled(sb, NULL, 0, NULL, j, &ex), ERYX_OK);
        eryx_call *calls[1];
        int rc, n = step_to_calls(ex, calls, 1, &rc);
        CHECK_INT(n, 0);
        if (!forged) {
            CHECK_INT(rc, ERYX_OK);
            CHECK_INT(eryx_exec_replayed(ex), WIDE_CALLS);
            finish_ok(ex, out, 0);
            CHECK(!eryx_sandbox_is_dead(sb));
        } else {
            CHECK_INT(rc, ERYX_DIVERGED);
            CHECK_CONTAINS(eryx_errmsg(sb), "take more than the 256 MiB of trees");
            eryx_result *r = NULL;
            CHECK_INT(eryx_exec_finish(ex, &r), ERYX_DIVERGED);
            REQUIRE(r != NULL);
            CHECK_STR(r->out, "");
            eryx_result_free(r);
            CHECK(eryx_sandbox_is_dead(sb));
            CHECK_INT(eryx_journal_pending(j), 0); /* unchanged */
        }
        eryx_sandbox_free(sb);
        eryx_journal_free(j);
    }
    eryx_free(data);
}

static void setup(void)
{
    int rc = eryx_runtime_new(NULL, &rt);
    if (rc != ERYX_OK)
        fprintf(stderr, "eryx_runtime_new: %s: %s\n", eryx_errstr(rc), eryx_errmsg(NULL));
    REQUIRE(rc == ERYX_OK);
}

static void teardown(void)
{
    CHECK_INT(eryx_runtime_free(rt), ERYX_OK);
}

TEST_MAIN_WITH(setup, teardown)
