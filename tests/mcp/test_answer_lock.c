/*
 * A finished run's answer is made (its JSON built and serialised) without
 * the server's global lock, which every session's calls take: a 12 MB
 * answer took tens of milliseconds under it, twice serialised, and every
 * other client waited (cli/mcp_server.c, job_main).
 *
 * The server runs in this process, its stdout /dev/null. Every allocation
 * of jansson's of a mebibyte or more (the answer's strings and its text)
 * is held until another thread has gone through the global lock
 * (lock_probe.h): when the allocating thread holds the lock, that thread
 * cannot get through, and after PROBE_MS the allocation is counted as
 * made under the lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "jsonrpc.h"
#include "lock_probe.h"
#include "mcp.h"
#include "mcp_server.h"
#include "net_link.h"

#define BIG ((size_t)1 << 20)

static atomic_int armed;
static atomic_int probed, under_lock;

static void *probing_malloc(size_t n)
{
    if (n >= BIG && atomic_load(&armed) && !in_probe) {
        atomic_fetch_add(&probed, 1);
        if (!lock_free())
            atomic_fetch_add(&under_lock, 1);
    }
    return malloc(n);
}

/* Runs code in the stdio server's session "default" and waits for its
 * answer to have gone out (to /dev/null). */
static void run(const char *code)
{
    json_t *reply = dispatch_json(
        &eryx_mcp_stdio, json_pack("{s:s, s:i, s:s, s:{s:s, s:{s:s}}}", "jsonrpc", "2.0", "id",
                                   1, "method", "tools/call", "params", "name", "run_python",
                                   "arguments", "code", code));
    CHECK(reply == NULL); /* the job answers */
    json_decref(reply);
    for (int i = 0; i < 6000 && eryx_mcp_session_busy(""); i++)
        usleep(10000);
    CHECK(!eryx_mcp_session_busy(""));
}

/* Serves with --mcp-max-message max_message and runs code once. */
static void serve(eryx_runtime *rt, const eryx_sandbox_config *cfg, size_t max_message,
                  const char *code)
{
    eryx_cli_mcp m = {.serve = 1, .max_message = max_message};
    REQUIRE(eryx_mcp_serve_begin(&m, rt, cfg) == 0);
    atomic_store(&armed, 1);
    run(code);
    atomic_store(&armed, 0);
    eryx_mcp_serve_end();
}

/* An HTTP call's progress token: the channel's copy goes with the
 * answer, not with the channel, which a cut resumable stream keeps five
 * minutes more (the token is counted in the calls' bounds only until the
 * answer). */
static void token_dropped_at_answer(eryx_runtime *rt, const eryx_sandbox_config *cfg)
{
    eryx_cli_mcp m = {.serve = 1};
    REQUIRE(eryx_mcp_serve_begin(&m, rt, cfg) == 0);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
    net_link link = {.fd = sv[0], .tls = NULL, .timeout_ms = 1000};
    channel *ch = eryx_mcp_channel_new(&link, "tok-sid");
    REQUIRE(ch != NULL);
    json_t *reply = dispatch_json(
        ch, json_pack("{s:s, s:i, s:s, s:{s:s, s:{s:s}, s:{s:s}}}", "jsonrpc", "2.0", "id", 7,
                      "method", "tools/call", "params", "name", "run_python", "arguments",
                      "code", "pass", "_meta", "progressToken", "a-progress-token"));
    CHECK(reply == NULL);
    json_decref(reply);
    for (int i = 0; i < 6000 && eryx_mcp_session_busy("tok-sid"); i++)
        usleep(10000);
    CHECK(!eryx_mcp_session_busy("tok-sid"));
    pthread_mutex_lock(&ch->lock);
    CHECK(ch->done);
    CHECK(ch->progress_token == NULL);
    pthread_mutex_unlock(&ch->lock);
    eryx_mcp_channel_unref(ch);
    eryx_mcp_serve_end();
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    REQUIRE(null >= 0 && dup2(null, STDOUT_FILENO) == STDOUT_FILENO);
    close(null);
    json_set_alloc_funcs(probing_malloc, free);
    eryx_runtime *rt = NULL;
    REQUIRE(eryx_runtime_new(NULL, &rt) == ERYX_OK);
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.max_output = 16u << 20;
    /* 6 MB printed: stdout is in the answer twice (structured and text),
     * 12 MB, every piece of it a large allocation. Then the same over an
     * 8 MiB --mcp-max-message: made again with its texts cut. */
    const char *code = "print('x' * 6_000_000)";
    serve(rt, &cfg, 64u << 20, code);
    int whole = atomic_load(&probed);
    serve(rt, &cfg, 8u << 20, code);
    int cut = atomic_load(&probed) - whole;
    fprintf(stderr, "large JSON allocations: %d (whole answer), %d (cut answer), under the "
            "global lock: %d\n", whole, cut, atomic_load(&under_lock));
    CHECK(whole >= 4);
    CHECK(cut >= 4);
    CHECK_INT(atomic_load(&under_lock), 0);
    token_dropped_at_answer(rt, &cfg);
    eryx_runtime_free(rt);
    return CHECK_DONE();
}
