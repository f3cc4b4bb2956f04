/*
 * Costs of journals and of sessions through file descriptors
 * (docs/journal.md):
 *   - an execution making N sequential calls, answered at once by this
 *     loop, recorded into a journal; the journal's bytes and their save and
 *     load; the replay of the whole journal in a fresh sandbox (no call
 *     surfaced), against the same run without a journal;
 *   - code drawing from the host (100,000 time.time() reads, 10,000
 *     os.urandom(16)) before one call, run plain and recorded (the
 *     journal keeps every draw) and replayed from the journal, best of 5;
 *   - code making 2,000 round trips of 100 bytes to a loopback echo
 *     server (a thread of this process) before one call, the same three
 *     ways (the replay makes no network operation), best of 5;
 *   - a session of ~M MB saved to a path (temporary file, fsync, rename)
 *     and to a memfd, and loaded back from each.
 * usage: bench_journal [N [M]]   (defaults 200 calls, 40 MB: the default
 * max_memory of 128 MiB holds it)
 */
#include <arpa/inet.h>
#include <eryx.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void need(int rc, const char *what, eryx_sandbox *sb)
{
    if (rc != ERYX_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, eryx_errstr(rc), eryx_errmsg(sb));
        exit(1);
    }
}

static const eryx_callback cbs[] = {{.name = "get"}};

/* A sandbox for these runs; with a network if net is not NULL. */
static eryx_sandbox *sandbox_net(eryx_runtime *rt, const eryx_net_config *net)
{
    eryx_sandbox_config cfg;
    eryx_sandbox_config_default(&cfg);
    cfg.net = net;
    cfg.callbacks = cbs;
    cfg.n_callbacks = 1;
    cfg.max_callbacks = 100000;
    eryx_sandbox *sb = NULL;
    need(eryx_sandbox_new(rt, &cfg, &sb), "sandbox", NULL);
    eryx_result *r = NULL;
    need(eryx_sandbox_run(sb, "pass", 4, &r), "warm-up", sb); /* first-run faults */
    eryx_result_free(r);
    return sb;
}

static eryx_sandbox *sandbox(eryx_runtime *rt)
{
    return sandbox_net(rt, NULL);
}

/* Runs code to its end, answering every call surfaced; returns how many
 * were surfaced, *steps how many steps it took. j may be NULL. */
static int drive(eryx_sandbox *sb, const char *code, eryx_journal *j, int *steps)
{
    eryx_exec *ex = NULL;
    need(j ? eryx_exec_start_journaled(sb, code, strlen(code), NULL, j, &ex)
           : eryx_exec_start(sb, code, strlen(code), NULL, &ex),
         "start", sb);
    int rc, surfaced = 0;
    *steps = 1;
    while ((rc = eryx_exec_step(ex)) == ERYX_PENDING) {
        ++*steps;
        eryx_call *c;
        while ((c = eryx_exec_next_call(ex))) {
            surfaced++;
            eryx_call_reply(c, "\"value\"", 7);
        }
    }
    need(rc, "run", sb);
    need(eryx_exec_finish(ex, NULL), "finish", sb);
    return surfaced;
}

static void bench_journal(eryx_runtime *rt, int n)
{
    char code[256];
    snprintf(code, sizeof code,
             "out = []\nfor i in range(%d):\n    out.append(await get(key=str(i)))\n", n);
    eryx_sandbox *sb = sandbox(rt);
    int steps[3];
    drive(sb, code, NULL, &steps[0]); /* the first imports asyncio's parts */
    double t = now_ms();
    int plain = drive(sb, code, NULL, &steps[0]);
    double t_plain = now_ms() - t;
    eryx_journal *j = NULL;
    need(eryx_journal_new(&j), "journal", NULL);
    t = now_ms();
    int recorded = drive(sb, code, j, &steps[1]);
    double t_record = now_ms() - t;
    void *bytes = NULL;
    size_t len = 0;
    t = now_ms();
    need(eryx_journal_save(j, &bytes, &len), "save", NULL);
    double t_save = now_ms() - t;
    eryx_journal_free(j);
    t = now_ms();
    need(eryx_journal_load(bytes, len, &j), "load", NULL);
    double t_load = now_ms() - t;
    eryx_sandbox_free(sb);
    sb = sandbox(rt);
    t = now_ms();
    int replay_surfaced = drive(sb, code, j, &steps[2]);
    double t_replay = now_ms() - t;
    printf("%d calls: run %.2f ms (%d surfaced, %d steps), recorded %.2f ms (%d, %d steps), "
           "journal %zu bytes (save %.3f ms, load %.3f ms), full replay %.2f ms "
           "(%d surfaced, %d steps)\n",
           n, t_plain, plain, steps[0], t_record, recorded, steps[1], len, t_save, t_load,
           t_replay, replay_surfaced, steps[2]);
    eryx_free(bytes);
    eryx_journal_free(j);
    eryx_sandbox_free(sb);
}

/* Runs code (one call at its end) plain, recorded into a journal and
 * replayed from it, in a sandbox that ran it once for its imports, five
 * times: the best of each in best[], the journal's size in *len. */
static void best_of_5(eryx_runtime *rt, const eryx_net_config *net, const char *code,
                      double best[3], size_t *len)
{
    int steps;
    best[0] = best[1] = best[2] = 1e9;
    for (int round = 0; round < 5; round++) {
        eryx_sandbox *sb = sandbox_net(rt, net);
        drive(sb, code, NULL, &steps); /* imports */
        eryx_journal *j = NULL;
        need(eryx_journal_new(&j), "journal", NULL);
        double t = now_ms();
        drive(sb, code, NULL, &steps);
        double plain = now_ms() - t;
        t = now_ms();
        drive(sb, code, j, &steps);
        double recorded = now_ms() - t;
        void *bytes = NULL;
        need(eryx_journal_save(j, &bytes, len), "save", NULL);
        eryx_free(bytes);
        t = now_ms();
        drive(sb, code, j, &steps); /* the sandbox ran it: same imports */
        double replayed = now_ms() - t;
        double v[3] = {plain, recorded, replayed};
        for (int i = 0; i < 3; i++)
            if (v[i] < best[i])
                best[i] = v[i];
        eryx_journal_free(j);
        eryx_sandbox_free(sb);
    }
}

static void bench_draws(eryx_runtime *rt)
{
    static const char *const codes[] = {
        "import time\nfor _ in range(100000): time.time()\nawait get(key='a')\n",
        "import os\nfor _ in range(10000): os.urandom(16)\nawait get(key='a')\n",
    };
    static const char *const names[] = {"100,000 time.time()", "10,000 os.urandom(16)"};
    for (int c = 0; c < 2; c++) {
        double best[3];
        size_t len = 0;
        best_of_5(rt, NULL, codes[c], best, &len);
        printf("%s then a call (best of 5): run %.2f ms, recorded %.2f ms "
               "(journal %zu bytes), replayed %.2f ms\n",
               names[c], best[0], best[1], len, best[2]);
    }
}

/* Echoes what each connection sends, until it closes. */
static void *echo_conn(void *arg)
{
    int c = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    while ((n = recv(c, buf, sizeof buf, 0)) > 0)
        if (send(c, buf, (size_t)n, MSG_NOSIGNAL) < 0)
            break;
    close(c);
    return NULL;
}

static void *echo_accept(void *arg)
{
    int fd = (int)(intptr_t)arg, c;
    pthread_t t;
    while ((c = accept(fd, NULL, NULL)) >= 0)
        if (pthread_create(&t, NULL, echo_conn, (void *)(intptr_t)c) == 0)
            pthread_detach(t);
    return NULL;
}

/* A loopback echo server on a thread of its own; its port. */
static int echo_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    pthread_t t;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)&sa, &len) ||
        pthread_create(&t, NULL, echo_accept, (void *)(intptr_t)fd)) {
        perror("echo server");
        exit(1);
    }
    pthread_detach(t);
    return ntohs(sa.sin_port);
}

static void bench_network(eryx_runtime *rt)
{
    enum { TRIPS = 2000 };
    int port = echo_server();
    char rule[64], code[512];
    snprintf(rule, sizeof rule, "127.0.0.1:%d", port);
    const char *allow[] = {rule};
    eryx_net_config net = {.size = sizeof net, .allow = allow, .n_allow = 1};
    snprintf(code, sizeof code,
             "import socket\n"
             "s = socket.create_connection(('127.0.0.1', %d))\n"
             "for _ in range(%d):\n"
             "    s.sendall(b'x' * 100)\n"
             "    got = 0\n"
             "    while got < 100:\n"
             "        got += len(s.recv(4096))\n"
             "s.close()\n"
             "await get(key='a')\n",
             port, TRIPS);
    double best[3];
    size_t len = 0;
    best_of_5(rt, &net, code, best, &len);
    printf("%d loopback round trips of 100 bytes then a call (best of 5): run %.2f ms, "
           "recorded %.2f ms (journal %zu bytes), replayed %.2f ms\n",
           TRIPS, best[0], best[1], len, best[2]);
}

static void bench_session_fd(eryx_runtime *rt, int mb)
{
    eryx_sandbox *sb = sandbox(rt);
    char code[128];
    snprintf(code, sizeof code, "import os\nb = os.urandom(%d << 20)", mb);
    eryx_result *r = NULL;
    need(eryx_sandbox_run(sb, code, strlen(code), &r), "fill", sb);
    eryx_result_free(r);
    char path[] = "/tmp/bench-journal-XXXXXX";
    int tmp = mkstemp(path);
    close(tmp);
    int fd = memfd_create("session", MFD_CLOEXEC);
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    for (int round = 0; round < 5; round++) {
        double t = now_ms();
        need(eryx_sandbox_save(sb, path), "save path", sb);
        double a = now_ms() - t;
        t = now_ms();
        lseek(fd, 0, SEEK_SET);
        need(eryx_sandbox_save_fd(sb, fd), "save fd", sb);
        double b = now_ms() - t;
        eryx_sandbox *l = NULL;
        t = now_ms();
        need(eryx_sandbox_load(rt, NULL, path, &l), "load path", NULL);
        double c = now_ms() - t;
        eryx_sandbox_free(l);
        t = now_ms();
        lseek(fd, 0, SEEK_SET);
        need(eryx_sandbox_load_fd(rt, NULL, fd, &l), "load fd", NULL);
        double d = now_ms() - t;
        eryx_sandbox_free(l);
        double v[4] = {a, b, c, d};
        for (int i = 0; i < 4; i++)
            if (v[i] < best[i])
                best[i] = v[i];
    }
    off_t size = lseek(fd, 0, SEEK_END);
    printf("session of %.1f MB (best of 5): save to a path %.1f ms, to a memfd %.1f ms; "
           "load from the path %.1f ms, from the memfd %.1f ms\n",
           (double)size / 1e6, best[0], best[1], best[2], best[3]);
    close(fd);
    unlink(path);
    eryx_sandbox_free(sb);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200, mb = argc > 2 ? atoi(argv[2]) : 40;
    eryx_runtime *rt = NULL;
    need(eryx_runtime_new(NULL, &rt), "runtime", NULL);
    bench_journal(rt, n);
    bench_draws(rt);
    bench_network(rt);
    bench_session_fd(rt, mb);
    return eryx_runtime_free(rt) == ERYX_OK ? 0 : 1;
}
