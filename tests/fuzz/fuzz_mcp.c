/*
 * What a client of `eryx mcp` sends on its stdin, through the server as
 * the CLI runs it (eryx_cli_mcp_serve, cli/mcp_server.c): the input is the
 * stream itself, lines of JSON-RPC or anything else, handled as a client's
 * are (initialize, tools/list, tools/call of run_python, reset_session and
 * list_sessions, cancellation, ping, batches, notifications), with
 * sandboxes from the runtime, at most 2 sessions and code under a 300 ms
 * limit. The stream ends once the server has been quiet for QUIET_MS, so
 * that calls run before the client's going stops them. Properties beyond
 * "no crash, no leak, no UB": the server returns 0 once its stdin ends;
 * every line it writes is one JSON-RPC 2.0 message within
 * --mcp-max-message.
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_sandbox.h"
#include "mcp.h"

#define MAX_MESSAGE 65536u
#define QUIET_MS 10
#define MAX_WAIT_MS 1500

static eryx_sandbox_config cfg;
static int saved_stdin, saved_stdout;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_mcp_init(&cfg);
    saved_stdin = dup(STDIN_FILENO);
    saved_stdout = dup(STDOUT_FILENO);
    FUZZ_CHECK(saved_stdin >= 0 && saved_stdout >= 0);
    return 0;
}

typedef struct peer {
    int in_w, out_r;          /* the server's stdin (written), stdout (read) */
    const uint8_t *data;
    size_t size;
    char *buf;                /* read, not yet a whole line */
    size_t len, cap;
    _Atomic uint64_t last_ms; /* when the server last wrote */
} peer;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Each whole line: one JSON-RPC 2.0 message (an object, or a batch's
 * array of them) within the bound. */
static void check_lines(peer *p)
{
    char *start = p->buf, *end = p->buf + p->len, *nl;
    while ((nl = memchr(start, '\n', (size_t)(end - start)))) {
        size_t n = (size_t)(nl - start);
        if (getenv("ERYX_FUZZ_ECHO")) /* to see what an input does */
            fprintf(stderr, "< %.*s\n", (int)n, start);
        FUZZ_CHECK(n <= MAX_MESSAGE);
        json_error_t e;
        json_t *v = json_loadb(start, n, JSON_ALLOW_NUL, &e);
        if (!json_is_object(v) && !json_is_array(v))
            fprintf(stderr, "the server wrote %.*s (%s)\n", (int)(n < 2000 ? n : 2000), start,
                    e.text);
        FUZZ_CHECK(json_is_object(v) || json_is_array(v));
        json_t *one = json_is_array(v) ? json_array_get(v, 0) : v;
        FUZZ_CHECK(!json_is_array(v) || json_array_size(v) > 0);
        const char *version = json_string_value(json_object_get(one, "jsonrpc"));
        FUZZ_CHECK(version && strcmp(version, "2.0") == 0);
        json_decref(v);
        start = nl + 1;
    }
    p->len = (size_t)(end - start);
    memmove(p->buf, start, p->len);
}

static void *reader_main(void *arg)
{
    peer *p = arg;
    for (;;) {
        if (p->cap - p->len < 65536) {
            p->cap = p->cap * 2 + 65536;
            p->buf = realloc(p->buf, p->cap);
            FUZZ_CHECK(p->buf);
        }
        ssize_t n = read(p->out_r, p->buf + p->len, p->cap - p->len);
        if (n <= 0)
            break;
        p->last_ms = now_ms();
        p->len += (size_t)n;
        check_lines(p);
    }
    FUZZ_CHECK(p->len == 0); /* every line ended */
    return NULL;
}

static void *writer_main(void *arg)
{
    peer *p = arg;
    for (size_t sent = 0; sent < p->size;) {
        ssize_t n = write(p->in_w, p->data + sent, p->size - sent);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    uint64_t start = now_ms();
    p->last_ms = start;
    while (now_ms() - p->last_ms < QUIET_MS && now_ms() - start < MAX_WAIT_MS)
        usleep(2000);
    close(p->in_w); /* the client goes */
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4 * MAX_MESSAGE)
        return 0;
    int in[2], out[2];
    FUZZ_CHECK(pipe(in) == 0 && pipe(out) == 0);
    FUZZ_CHECK(dup2(in[0], STDIN_FILENO) >= 0 && dup2(out[1], STDOUT_FILENO) >= 0);
    close(in[0]);
    close(out[1]);
    peer p = {.in_w = in[1], .out_r = out[0], .data = data, .size = size};
    pthread_t reader, writer;
    FUZZ_CHECK(pthread_create(&reader, NULL, reader_main, &p) == 0);
    FUZZ_CHECK(pthread_create(&writer, NULL, writer_main, &p) == 0);
    eryx_cli_mcp m = {.serve = 1, .max_message = MAX_MESSAGE, .max_sessions = 2};
    FUZZ_CHECK(eryx_cli_mcp_serve(&m, fuzz_rt, &cfg) == 0);
    pthread_join(writer, NULL);
    /* The server's stdout closes: the reader sees its end. */
    FUZZ_CHECK(dup2(saved_stdin, STDIN_FILENO) >= 0 && dup2(saved_stdout, STDOUT_FILENO) >= 0);
    pthread_join(reader, NULL);
    close(out[0]);
    free(p.buf);
    return 0;
}
