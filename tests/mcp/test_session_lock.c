/*
 * `eryx mcp` makes and frees sessions' sandboxes without its global lock,
 * which every session's calls take: a sandbox takes milliseconds to make,
 * and freeing one that ran unmaps tens of megabytes; under the lock, every
 * other client waited for them (cli/mcp_server.c, make_session and
 * free_sessions).
 *
 * The server runs in this process, its stdout a pipe the test reads.
 * eryx_sandbox_new and eryx_sandbox_free are wrapped (the linker's
 * --wrap): each call first checks that another thread can go through the
 * global lock (lock_probe.h), on every path that makes or frees one: a
 * session's first call, one dropped for room (--max-sessions 1), a reset,
 * an ended MCP session of HTTP, the sessions left at shutdown. A creation
 * can also be held until the test lets it go, or made to fail:
 * - while one is held, a call on another session is answered at once
 *   (here: refused, since the one being made holds the only place), and
 *   list_sessions does not show the half-made session;
 * - a failed creation answers with the reason and gives its place back.
 */
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "jsonrpc.h"
#include "lock_probe.h"
#include "mcp.h"
#include "mcp_server.h"
#include "net_link.h"

/* How long a held creation waits for the test before going on by itself
 * (it does only when the test is stuck behind the global lock: the old
 * code, which made sandboxes under it). */
#define HOLD_MS 5000
/* How long an answer is waited for: a bound for a broken server, not a
 * measure (they come in milliseconds). */
#define ANSWER_MS 60000

int __real_eryx_sandbox_new(eryx_runtime *rt, const eryx_sandbox_config *cfg,
                            eryx_sandbox **out);
int __wrap_eryx_sandbox_new(eryx_runtime *rt, const eryx_sandbox_config *cfg,
                            eryx_sandbox **out);
void __real_eryx_sandbox_free(eryx_sandbox *sb);
void __wrap_eryx_sandbox_free(eryx_sandbox *sb);

static atomic_int armed;
static atomic_int made, freed;                   /* calls probed */
static atomic_int made_locked, freed_locked;     /* of which under the lock */
static atomic_int hold_next, fail_next, hold_expired;
static sem_t held, release;
static atomic_uint_fast64_t made_max_us, freed_max_us; /* the real calls' */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void note_max(atomic_uint_fast64_t *max, uint64_t us)
{
    uint64_t m = atomic_load(max);
    while (us > m && !atomic_compare_exchange_weak(max, &m, us)) {
    }
}

int __wrap_eryx_sandbox_new(eryx_runtime *rt, const eryx_sandbox_config *cfg,
                            eryx_sandbox **out)
{
    if (atomic_load(&armed)) {
        atomic_fetch_add(&made, 1);
        if (!lock_free())
            atomic_fetch_add(&made_locked, 1);
        if (atomic_exchange(&hold_next, 0)) {
            sem_post(&held);
            if (!sem_wait_ms(&release, HOLD_MS))
                atomic_fetch_add(&hold_expired, 1);
        }
        if (atomic_exchange(&fail_next, 0)) {
            *out = NULL;
            return ERYX_NOMEM;
        }
    }
    uint64_t t0 = now_us();
    int rc = __real_eryx_sandbox_new(rt, cfg, out);
    note_max(&made_max_us, now_us() - t0);
    return rc;
}

void __wrap_eryx_sandbox_free(eryx_sandbox *sb)
{
    if (sb && atomic_load(&armed)) {
        atomic_fetch_add(&freed, 1);
        if (!lock_free())
            atomic_fetch_add(&freed_locked, 1);
    }
    uint64_t t0 = now_us();
    __real_eryx_sandbox_free(sb);
    if (sb)
        note_max(&freed_max_us, now_us() - t0);
}

/* ---- the server's stdout, read back ---- */

static int out_fd = -1;          /* the pipe's reading end */
static char buf[1 << 16];
static size_t buf_len;
static json_t *early;            /* answers read before they were asked for */

/* The next line of stdout, parsed (NULL after ANSWER_MS). */
static json_t *read_message(void)
{
    for (;;) {
        char *nl = memchr(buf, '\n', buf_len);
        if (nl) {
            json_t *msg = json_loadb(buf, (size_t)(nl - buf), 0, NULL);
            buf_len -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, buf_len);
            return msg;
        }
        struct pollfd p = {out_fd, POLLIN, 0};
        if (buf_len == sizeof buf || poll(&p, 1, ANSWER_MS) != 1)
            return NULL;
        ssize_t n = read(out_fd, buf + buf_len, sizeof buf - buf_len);
        if (n <= 0)
            return NULL;
        buf_len += (size_t)n;
    }
}

/* The result of request id's answer on stdout (a reference kept in
 * early; NULL if none came). */
static json_t *answer(int id)
{
    for (;;) {
        size_t i;
        json_t *msg;
        json_array_foreach(early, i, msg) {
            if (json_integer_value(json_object_get(msg, "id")) == id)
                return json_object_get(msg, "result");
        }
        msg = read_message();
        if (!msg)
            return NULL;
        json_array_append_new(early, msg);
    }
}

static const char *text_of(json_t *result)
{
    const char *t = json_string_value(
        json_object_get(json_array_get(json_object_get(result, "content"), 0), "text"));
    return t ? t : "";
}

static int is_error(json_t *result)
{
    return json_is_true(json_object_get(result, "isError"));
}

/* ---- calls ---- */

/* Sends tools/call of tool with these arguments (session and code, each
 * NULL to leave out) on ch: the answer the dispatch gave at once, or NULL
 * (the job's thread answers on ch). */
static json_t *call(channel *ch, int id, const char *tool, const char *session, const char *code)
{
    json_t *args = json_object();
    if (session)
        json_object_set_new(args, "session", json_string(session));
    if (code)
        json_object_set_new(args, "code", json_string(code));
    return dispatch_json(ch, json_pack("{s:s, s:i, s:s, s:{s:s, s:o}}", "jsonrpc", "2.0",
                                       "id", id, "method", "tools/call", "params", "name",
                                       tool, "arguments", args));
}

/* A call that its job answers on stdout: the answer's result. */
static json_t *run(int id, const char *tool, const char *session, const char *code)
{
    json_t *reply = call(&eryx_mcp_stdio, id, tool, session, code);
    CHECK(reply == NULL);
    json_decref(reply);
    return answer(id);
}

/* The names list_sessions gives on stdio, comma-separated. */
static void session_names(int id, char *out, size_t cap)
{
    json_t *reply = call(&eryx_mcp_stdio, id, "list_sessions", NULL, NULL);
    json_t *list = json_object_get(
        json_object_get(json_object_get(reply, "result"), "structuredContent"), "sessions");
    out[0] = '\0';
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s", n ? "," : "",
                 json_string_value(json_object_get(s, "name")));
    }
    json_decref(reply);
}

/* While a session is being made, another session's call is answered (no
 * wait for the creation), the one being made holds its place, and it is
 * not listed until made. */
static void held_creation(void)
{
    char names[256];
    atomic_store(&hold_next, 1);
    json_t *reply = call(&eryx_mcp_stdio, 1, "run_python", "slow", "x = 1");
    CHECK(reply == NULL);
    REQUIRE(sem_wait_ms(&held, ANSWER_MS));
    json_t *other = run(2, "run_python", "other", "pass");
    REQUIRE(other != NULL);
    CHECK_INT(atomic_load(&hold_expired), 0); /* it was answered while "slow" was being made */
    CHECK(is_error(other));
    CHECK_CONTAINS(text_of(other), "already 1 sessions");
    session_names(3, names, sizeof names);
    CHECK_STR(names, "");
    sem_post(&release);
    json_t *slow = answer(1);
    REQUIRE(slow != NULL);
    CHECK(!is_error(slow));
    session_names(4, names, sizeof names);
    CHECK_STR(names, "slow");
}

/* A creation that fails answers why and gives its place back (at
 * --max-sessions 1 the next session gets it). */
static void failed_creation(void)
{
    char names[256];
    atomic_store(&fail_next, 1);
    json_t *bad = run(5, "run_python", "bad", "pass"); /* drops "slow" for room */
    REQUIRE(bad != NULL);
    CHECK(is_error(bad));
    CHECK_CONTAINS(text_of(bad), "the session could not be created");
    session_names(6, names, sizeof names);
    CHECK_STR(names, "");
    /* A session that ran, 48 MB: its sandbox is freed when "third" takes
     * its place. */
    json_t *good = run(7, "run_python", "good", "b = bytearray(48_000_000)");
    REQUIRE(good != NULL);
    CHECK(!is_error(good));
    CHECK(strstr(text_of(good), "dropped") == NULL);
    session_names(8, names, sizeof names);
    CHECK_STR(names, "good");
}

/* Dropped for room, reset, ended with an HTTP MCP session. */
static void drops(void)
{
    json_t *third = run(9, "run_python", "third", "b = bytearray(48_000_000)");
    REQUIRE(third != NULL);
    CHECK(!is_error(third));
    json_t *reset = run(10, "reset_session", "third", NULL);
    REQUIRE(reset != NULL);
    CHECK_CONTAINS(text_of(reset), "reset: its variables are gone");

    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
    net_link link = {.fd = sv[0], .tls = NULL, .timeout_ms = 1000};
    channel *ch = eryx_mcp_channel_new(&link, "h1");
    REQUIRE(ch != NULL);
    json_t *reply = call(ch, 11, "run_python", NULL, "pass");
    CHECK(reply == NULL);
    json_decref(reply);
    /* Its answer goes to the socket: the call is over once its job is. */
    for (int i = 0; i < ANSWER_MS / 10 && eryx_mcp_session_busy("h1"); i++)
        usleep(10000);
    CHECK(!eryx_mcp_session_busy("h1"));
    eryx_mcp_end_session("h1");
    eryx_mcp_channel_unref(ch);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    int p[2];
    REQUIRE(pipe(p) == 0);
    REQUIRE(dup2(p[1], STDOUT_FILENO) == STDOUT_FILENO);
    close(p[1]);
    out_fd = p[0];
    early = json_array();
    sem_init(&held, 0, 0);
    sem_init(&release, 0, 0);
    eryx_runtime *rt = NULL;
    REQUIRE(eryx_runtime_new(NULL, &rt) == ERYX_OK);
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    eryx_cli_mcp m = {.serve = 1, .max_sessions = 1};
    REQUIRE(eryx_mcp_serve_begin(&m, rt, &cfg) == 0);
    atomic_store(&armed, 1);
    held_creation();
    failed_creation();
    drops();
    json_t *last = run(12, "run_python", "last", "b = bytearray(48_000_000)");
    REQUIRE(last != NULL);
    CHECK(!is_error(last));
    eryx_mcp_serve_end(); /* frees "last" */
    atomic_store(&armed, 0);
    fprintf(stderr, "sandboxes made: %d (%d under the global lock, the longest %.1f ms); "
            "freed: %d (%d under it, the longest %.1f ms)\n", atomic_load(&made),
            atomic_load(&made_locked), (double)atomic_load(&made_max_us) / 1000.0,
            atomic_load(&freed), atomic_load(&freed_locked),
            (double)atomic_load(&freed_max_us) / 1000.0);
    /* slow, bad, good, third, h1's, last */
    CHECK(atomic_load(&made) >= 6);
    /* slow (for bad's room), good (for third's), third (reset), h1's
     * (ended), last (shutdown) */
    CHECK(atomic_load(&freed) >= 5);
    CHECK_INT(atomic_load(&made_locked), 0);
    CHECK_INT(atomic_load(&freed_locked), 0);
    json_decref(early);
    eryx_runtime_free(rt);
    sem_destroy(&held);
    sem_destroy(&release);
    close(out_fd);
    return CHECK_DONE();
}
