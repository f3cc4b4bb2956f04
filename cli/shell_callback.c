/*
 * `--callback NAME=COMMAND`: a host function that runs COMMAND through
 * /bin/sh with the call's JSON arguments on its stdin and takes its stdout as
 * the JSON result. A non-zero exit fails the call with the command's stderr
 * as the message. Calls issued together run at once (eryx_sandbox_run runs
 * their handlers on several threads).
 *
 * A command runs in a process group of its own, which is stopped (SIGTERM,
 * then SIGKILL a second later) when nobody waits for its answer any more:
 * the call timed out or its run ended. Groups still running when the eryx
 * command exits, or dies of SIGTERM or SIGHUP (cli/signals.c), are killed
 * then. Before, such commands outlived eryx.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shell_callback.h"

extern char **environ;

/* Output kept per stream of one command; beyond, the call fails. */
#define MAX_COMMAND_OUTPUT (16u << 20)
/* How often a running command's caller is asked whether it still waits. */
#define WANTED_POLL_MS 100
/* From SIGTERM to SIGKILL for a command nobody waits for. */
#define STOP_GRACE_MS 1000

/* ---- the process groups alive, killed at exit ------------------------------ */

static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t *live;
static size_t n_live, cap_live;
static int exiting;           /* eryx_cli_shell_kill_all ran: nothing may start */

/* Handlers run on the library's workers, which go on while eryx exits: a
 * command started after this ran would be in no list and outlive eryx, so
 * it also stops any start from then on (spawn holds live_mu across its
 * posix_spawn and the group's entry). */
void eryx_cli_shell_kill_all(void)
{
    pthread_mutex_lock(&live_mu);
    exiting = 1;
    for (size_t i = 0; i < n_live; i++)
        kill(-live[i], SIGKILL);
    pthread_mutex_unlock(&live_mu);
}

/* Takes live_mu with room for one more group: 0, or -1 (not held) when
 * eryx is exiting or memory ran out. */
static int live_lock_room(void)
{
    static int registered;
    pthread_mutex_lock(&live_mu);
    if (!registered)
        registered = atexit(eryx_cli_shell_kill_all) == 0;
    if (!exiting && n_live == cap_live) {
        size_t cap = cap_live ? cap_live * 2 : 16;
        pid_t *p = realloc(live, cap * sizeof *p);
        if (p) {
            live = p;
            cap_live = cap;
        }
    }
    if (exiting || n_live == cap_live) {
        pthread_mutex_unlock(&live_mu);
        return -1;
    }
    return 0;
}

static void live_remove(pid_t pgid)
{
    pthread_mutex_lock(&live_mu);
    for (size_t i = 0; i < n_live; i++) {
        if (live[i] == pgid) {
            live[i] = live[--n_live];
            break;
        }
    }
    pthread_mutex_unlock(&live_mu);
}

typedef struct buf {
    char *data;
    size_t len, cap;
    int overflow;
} buf;

static void buf_add(buf *b, const char *p, size_t n)
{
    if (b->len + n > MAX_COMMAND_OUTPUT) {
        b->overflow = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *bigger = realloc(b->data, cap);
        if (!bigger) {
            b->overflow = 1;
            return;
        }
        b->data = bigger;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* A command that exits without reading all its input must not kill the
 * eryx command with SIGPIPE: the write happens with SIGPIPE blocked on this
 * thread, and the signal it raised is taken back before unblocking (the
 * process-wide disposition, which children inherit, is left alone). */
static ssize_t write_no_sigpipe(int fd, const void *p, size_t n)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t w = write(fd, p, n);
    int saved = errno;
    /* Also after a partial write: the reader may go while we are blocked
     * in write, which then returns what it wrote and raises SIGPIPE. */
    sigset_t pending;
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return w;
}

static int still_wanted(const shell_wanted *w)
{
    return !w || !w->fn || w->fn(w->user_data);
}

/* Feeds input to fds[0] while draining fds[1] (stdout) and fds[2] (stderr);
 * 0 when all three are done, -1 when nobody wants the answer any more. The
 * command's stdin is written without blocking, only what the pipe takes:
 * a command that writes while it reads (cat, a line filter) fills its
 * stdout while we fill its stdin, and a blocking write of all the input
 * then waited for ever, past the call's timeout, holding a worker. */
static int pump(int in_fd, const char *input, size_t in_len, int out_fd, int err_fd, buf *out,
                buf *err, const shell_wanted *wanted)
{
    struct pollfd p[3] = {{in_fd, POLLOUT, 0}, {out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    size_t sent = 0;
    int rc = 0;
    int flags = fcntl(in_fd, F_GETFL);
    if (flags < 0 || fcntl(in_fd, F_SETFL, flags | O_NONBLOCK) < 0)
        in_len = 0; /* cannot happen on our own pipe; never block on it */
    if (in_len == 0) {
        close(in_fd);
        p[0].fd = -1;
    }
    while (p[0].fd >= 0 || p[1].fd >= 0 || p[2].fd >= 0) {
        if (!still_wanted(wanted)) {
            rc = -1;
            break;
        }
        int r = poll(p, 3, WANTED_POLL_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        if (p[0].fd >= 0 && p[0].revents) {
            ssize_t n = write_no_sigpipe(in_fd, input + sent, in_len - sent);
            if (n > 0)
                sent += (size_t)n;
            int again = n < 0 && (errno == EAGAIN || errno == EINTR);
            if ((n < 0 && !again) || sent == in_len) {
                close(in_fd);
                p[0].fd = -1;
            }
        }
        for (int i = 1; i < 3; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            char chunk[8192];
            ssize_t n = read(p[i].fd, chunk, sizeof chunk);
            if (n > 0) {
                buf_add(i == 1 ? out : err, chunk, (size_t)n);
            } else if (n == 0 || errno != EINTR) {
                close(p[i].fd);
                p[i].fd = -1;
            }
        }
    }
    for (int i = 0; i < 3; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    return rc;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Reaps pid, waiting as long as the answer is wanted: 0, or -1 when it no
 * longer is (pid still running). */
static int reap(pid_t pid, int *status, const shell_wanted *wanted)
{
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return 0;
        if (!still_wanted(wanted))
            return -1;
        sleep_ms(r < 0 ? 0 : 20);
    }
}

/* Stops the command's process group: SIGTERM, SIGKILL after the grace. */
static void stop_group(pid_t pid)
{
    int status;
    kill(-pid, SIGTERM);
    for (int waited = 0; waited < STOP_GRACE_MS; waited += 20) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            kill(-pid, SIGKILL); /* what it left behind in its group */
            return;
        }
        sleep_ms(20);
    }
    kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

/* Spawns sh -c command with three pipes; returns the pid or -1. */
static pid_t spawn(const char *command, int *in, int *out, int *err)
{
    int pin[2], pout[2], perr[2];
    if (pipe2(pin, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(pout, O_CLOEXEC) < 0) {
        close(pin[0]), close(pin[1]);
        return -1;
    }
    if (pipe2(perr, O_CLOEXEC) < 0) {
        close(pin[0]), close(pin[1]), close(pout[0]), close(pout[1]);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    /* A group of its own (its id is the pid), so that everything it
     * starts can be stopped with it; the terminal's Ctrl-C then reaches
     * eryx alone, which stops the command as the run ends. */
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setpgroup(&at, 0);
    /* SIGPIPE at its default, as from a shell: the CLI ignores it during a
     * run (cli/main.c), and an ignored signal stays ignored across exec. */
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    posix_spawnattr_setsigdefault(&at, &pipe_set);
    /* No signal blocked: the handlers run on threads that block SIGINT,
     * SIGTERM and SIGHUP for the CLI's signal thread (cli/signals.c), and
     * a blocked mask survives exec: stop_group's SIGTERM did nothing. */
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETSIGMASK);
    char *argv[] = {"sh", "-c", (char *)command, NULL};
    pid_t pid;
    int rc = ECANCELED;
    if (live_lock_room() == 0) { /* the group is killed at exit */
        rc = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
        if (rc == 0)
            live[n_live++] = pid;
        pthread_mutex_unlock(&live_mu);
    }
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    close(pin[0]), close(pout[1]), close(perr[1]);
    if (rc != 0) {
        close(pin[1]), close(pout[0]), close(perr[0]);
        return -1;
    }
    *in = pin[1];
    *out = pout[0];
    *err = perr[0];
    return pid;
}

int eryx_cli_shell_run(const char *command, const char *args, const shell_wanted *wanted,
                       char **result, size_t *len, char *msg, size_t msglen)
{
    int in, out, err, status = -1, rc = -1;
    buf o = {0}, e = {0};
    *result = NULL;
    *len = 0;
    pid_t pid = spawn(command, &in, &out, &err);
    if (pid < 0) {
        snprintf(msg, msglen, "cannot start the command");
        return -1;
    }
    int abandoned = pump(in, args, strlen(args), out, err, &o, &e, wanted) < 0 ||
                    reap(pid, &status, wanted) < 0;
    if (abandoned)
        stop_group(pid);
    live_remove(pid);
    if (abandoned) {
        snprintf(msg, msglen, "nobody waits for the answer any more (the call timed out or "
                              "its run ended): the command was stopped");
    } else if (o.overflow || e.overflow) {
        snprintf(msg, msglen, "the command wrote more than 16 MiB");
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        *result = o.data ? o.data : strdup("");
        *len = o.len;
        o.data = NULL;
        rc = *result ? 0 : -1;
    } else if (e.len) {
        /* The message is the command's stderr without its last newline. */
        if (e.data[e.len - 1] == '\n')
            e.data[--e.len] = '\0';
        snprintf(msg, msglen, "%s", e.data);
    } else {
        snprintf(msg, msglen, "the command %s %d",
                 WIFEXITED(status) ? "exited with" : "was killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    free(o.data);
    free(e.data);
    return rc;
}

static int call_pending(void *call)
{
    return eryx_call_pending(call);
}

void eryx_cli_shell_callback(void *user_data, eryx_call *call)
{
    char *result, msg[4096];
    size_t len;
    shell_wanted w = {call_pending, call};
    if (eryx_cli_shell_run(user_data, eryx_call_args(call), &w, &result, &len, msg,
                           sizeof msg) == 0)
        eryx_call_reply(call, result, len);
    else
        eryx_call_fail(call, ERYX_CALL_FAILED, msg);
    free(result);
}
